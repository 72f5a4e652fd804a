/* Fencing tokens, the resource's side.  A lock cannot stop a holder that
 * pauses (GC, SIGSTOP, swapping, a hung disk) past its expiry from writing
 * after another holder took over; the resource can, if every writer hands
 * it the lock's fencing token and it refuses a token smaller than the
 * largest it has seen.
 *
 *   fenced [-p] [-e MS] URL LOCK FILE VALUE
 *
 * acquires LOCK with fencing and auto-renewal (expiry MS, default 1000),
 * then writes VALUE to FILE with the lock's token.  FILE stands for the
 * resource: a store that keeps the largest token it has accepted with the
 * value written under it, and takes a write only with a token at least as
 * large (the same holder may write more than once).  Prints "token N" once
 * the lock is held (and checked), then "accepted" or "rejected: token N <
 * M"; exits 0, or 3 when the store rejected the write (1 for other
 * failures).
 * -p: after checking that the lock is still held, wait for a line on stdin
 * before writing: the test stops the process there (SIGSTOP), as a pause
 * would between the check and the write, which no check can close. */
#include <redislock.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ------------------------------------------------ the resource: a store */

/* Write "token value" to path if token >= the token it holds (0 if none);
 * the check and the write are one step under flock().  1 when accepted,
 * 0 when rejected (*seen: the store's token), -1 on an I/O error. */
static int store_write(const char *path, uint64_t token, const char *value,
                       uint64_t *seen)
{
    char buf[4096], line[4200];
    ssize_t n;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644), ok = -1, len;
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX) < 0)
        goto out;
    n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        goto out;
    buf[n] = '\0';
    *seen = strtoull(buf, NULL, 10); /* 0 for an empty store */
    if (token < *seen) {
        ok = 0; /* a writer whose lock has passed to a later holder */
        goto out;
    }
    len = snprintf(line, sizeof line, "%" PRIu64 " %s\n", token, value);
    if (len < 0 || (size_t)len >= sizeof line || ftruncate(fd, 0) < 0 ||
        pwrite(fd, line, (size_t)len, 0) != len || fsync(fd) < 0)
        goto out;
    ok = 1;
out:
    close(fd); /* also drops the flock */
    return ok;
}

/* ---------------------------------------------------- the lock's holder */

int main(int argc, char **argv)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int opt, pause_first = 0, bad = 0, status = 1;
    uint64_t token, seen = 0;
    char line[16];

    o.expire_ms = 1000;
    while ((opt = getopt(argc, argv, "pe:")) != -1) {
        if (opt == 'p')
            pause_first = 1;
        else if (opt == 'e' && atoi(optarg) > 0)
            o.expire_ms = atoi(optarg);
        else
            bad = 1;
    }
    if (bad || argc - optind != 4) {
        fprintf(stderr, "usage: fenced [-p] [-e MS] URL LOCK FILE VALUE\n");
        return 2;
    }
    o.fencing = 1;
    o.auto_renew = 1;
    if (redislock_client_new(&c, argv[optind], NULL) ||
        redislock_new(&lk, c, argv[optind + 1], &o)) {
        fprintf(stderr, "fenced: %s\n", redislock_last_error());
        goto out;
    }
    if (redislock_acquire(lk, 10000)) {
        fprintf(stderr, "fenced: %s\n", redislock_errmsg(lk));
        goto out;
    }
    token = redislock_token(lk);
    /* Check before each critical step; a pause after the check still
     * writes late, which only the token catches. */
    if (!redislock_held(lk)) {
        fprintf(stderr, "fenced: the lock was lost before the write\n");
        goto out;
    }
    printf("token %" PRIu64 "\n", token);
    fflush(stdout);
    if (pause_first && !fgets(line, sizeof line, stdin))
        goto out;
    switch (store_write(argv[optind + 2], token, argv[optind + 3], &seen)) {
    case 1:
        printf("accepted\n");
        status = 0;
        break;
    case 0:
        printf("rejected: token %" PRIu64 " < %" PRIu64 "\n", token, seen);
        status = 3;
        break;
    default:
        perror("fenced: the store");
    }
    (void)redislock_release(lk); /* ENOTHELD when it was lost: fine */
out:
    redislock_free(lk);
    redislock_client_free(c);
    return status;
}
