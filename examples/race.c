/* race: N processes race for one lock; each holds it for a moment.
 * Prints who held it when, and how long after the previous holder called
 * release each waiter got the lock (release round trip + wake-up + acquire
 * round trip).
 *
 *   race URL [PROCESSES] [HOLD_MS]
 */
#include <redislock.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct shared {
    int64_t start_us;
    int64_t last_release_us;
};

static int worker(const char *url, int n, int hold_ms, struct shared *sh)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    char prefix[32];
    int64_t asked, got, woken;
    int rc;

    snprintf(prefix, sizeof prefix, "worker%d:", n);
    o.expire_ms = 10000;
    o.id_prefix = prefix;
    if ((rc = redislock_client_new(&c, url, NULL)) ||
        (rc = redislock_new(&lk, c, "demo", &o))) {
        fprintf(stderr, "worker %d: %s\n", n, redislock_last_error());
        return 1;
    }
    asked = now_us();
    rc = redislock_acquire(lk, 30000);
    got = now_us();
    if (rc) {
        fprintf(stderr, "worker %d: %s\n", n, redislock_errmsg(lk));
        return 1;
    }
    woken = __atomic_load_n(&sh->last_release_us, __ATOMIC_SEQ_CST);
    if (woken > asked)
        printf("[%6.1f ms] worker %d got the lock after waiting %6.1f ms, "
               "%4.2f ms after the previous holder called release\n",
               (got - sh->start_us) / 1000.0, n, (got - asked) / 1000.0,
               (got - woken) / 1000.0);
    else
        printf("[%6.1f ms] worker %d got the lock at once\n",
               (got - sh->start_us) / 1000.0, n);
    fflush(stdout);
    usleep((useconds_t)hold_ms * 1000);
    __atomic_store_n(&sh->last_release_us, now_us(), __ATOMIC_SEQ_CST);
    if (redislock_release(lk))
        fprintf(stderr, "worker %d: %s\n", n, redislock_errmsg(lk));
    redislock_free(lk);
    redislock_client_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    int procs = argc > 2 ? atoi(argv[2]) : 5, hold = argc > 3 ? atoi(argv[3]) : 200;
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int i, failed = 0;
    if (sh == MAP_FAILED || procs < 1 || procs > 100 || hold < 0) {
        fprintf(stderr, "usage: race URL [PROCESSES (1-100)] [HOLD_MS]\n");
        return 2;
    }
    sh->start_us = now_us();
    printf("%d processes race for lock 'demo' on %s, each holding it %d ms\n",
           procs, url, hold);
    fflush(stdout);
    for (i = 0; i < procs; i++)
        if (fork() == 0)
            _exit(worker(url, i + 1, hold, sh));
    for (i = 0; i < procs; i++) {
        int st;
        if (wait(&st) > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            failed++;
    }
    return failed ? 1 : 0;
}
