/* Messages on stderr, the answer on stdout, the standard descriptors, and
 * the exit status for a library error. */
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vline(const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* one write, so that lines of concurrent tools do not interleave */
    fprintf(stderr, "redislock: %s\n", buf);
    fflush(stderr);
}

void rlt_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

void rlt_info(const rlt_config *cfg, const char *fmt, ...)
{
    va_list ap;
    if (!cfg->verbose)
        return;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

const char *rlt_quote(const char *s, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    for (i = 0; s[i] && o + 8 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (s[i])
        o += (size_t)snprintf(buf + o, size - o, "...");
    buf[o] = '\0';
    return buf;
}

int rlt_flush_out(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    rlt_err("cannot write the answer to standard output: %s", strerror(errno));
    return RLT_EXIT_OSERR;
}

int rlt_std_fds(void)
{
    int fd;
    for (fd = 0; fd < 3; fd++) {
        int nfd;
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* the opposite direction, so that any use fails as on a closed
         * descriptor (gnulib's stdopen does the same) */
        nfd = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
        if (nfd != fd) {
            if (nfd >= 0)
                close(nfd);
            return RLT_EXIT_OSERR;
        }
    }
    return 0;
}

int rlt_exit_for(int err)
{
    switch (err) {
    case REDISLOCK_EINVAL:
    case REDISLOCK_ENOTSUP:
        return RLT_EXIT_USAGE;
    case REDISLOCK_ENOMEM:
        return RLT_EXIT_OSERR;
    default: /* EIO, EPROTO, EAUTH, ENOQUORUM, ... */
        return RLT_EXIT_UNAVAILABLE;
    }
}

int rlt_exit_for_server(int err)
{
    return err == REDISLOCK_EINVAL ? RLT_EXIT_UNAVAILABLE : rlt_exit_for(err);
}

int64_t rlt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
