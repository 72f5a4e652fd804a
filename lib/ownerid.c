/* Owner ids: 24 base64 characters of 18 bytes from the kernel's random
 * source, like python-redis-lock's b64encode(urandom(18)). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_SYS_RANDOM_H
#include <sys/random.h>
#endif

static int random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
#ifdef HAVE_GETRANDOM
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            break; /* ENOSYS on old kernels: fall back */
    }
    if (got == n)
        return 0;
#endif
    {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        while (got < n) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r > 0)
                got += (size_t)r;
            else if (!(r < 0 && errno == EINTR))
                break;
        }
        close(fd);
    }
    return got == n ? 0 : -1;
}

int redislock__random_id(const char *prefix, char **out)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char raw[18];
    size_t plen = prefix ? strlen(prefix) : 0, i, o;
    char *id;

    if (plen + 24 > REDISLOCK_ID_MAX)
        return redislock__err(REDISLOCK_EINVAL,
                              "id_prefix is %zu bytes; at most %d are allowed",
                              plen, REDISLOCK_ID_MAX - 24);
    if (plen && redislock__check_id(prefix, "id_prefix"))
        return REDISLOCK_EINVAL;
    if (random_bytes(raw, sizeof raw))
        return redislock__err(REDISLOCK_EIO,
                              "cannot read random bytes for an owner id: %s",
                              strerror(errno));
    id = redislock__malloc(plen + 25);
    if (!id)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory making an owner id");
    if (plen)
        memcpy(id, prefix, plen);
    for (i = 0, o = plen; i < sizeof raw; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        id[o++] = b64[v >> 18];
        id[o++] = b64[(v >> 12) & 63];
        id[o++] = b64[(v >> 6) & 63];
        id[o++] = b64[v & 63];
    }
    id[o] = '\0';
    *out = id;
    return 0;
}

int redislock__check_id(const char *id, const char *what)
{
    size_t n = strlen(id), i;
    if (n == 0)
        return redislock__err(REDISLOCK_EINVAL, "%s is empty", what);
    if (n > REDISLOCK_ID_MAX)
        return redislock__err(REDISLOCK_EINVAL,
                              "%s is %zu bytes; at most %d are allowed", what, n,
                              REDISLOCK_ID_MAX);
    for (i = 0; i < n; i++)
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return redislock__err(REDISLOCK_EINVAL,
                                  "%s has a byte 0x%02x at %zu: only printable "
                                  "ASCII without spaces is allowed",
                                  what, (unsigned char)id[i], i);
    return 0;
}

uint32_t redislock__random_u32(void)
{
    static _Thread_local uint64_t state;
    uint64_t x;
    if (!state) {
        unsigned char seed[8];
        if (random_bytes(seed, sizeof seed) == 0)
            memcpy(&state, seed, sizeof state);
        state |= 1; /* never zero */
    }
    /* xorshift64* */
    x = state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}
