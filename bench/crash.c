/* A crashed holder: a process holding a lock with an expiry is killed
 * (SIGKILL, so it releases nothing); a waiter blocked on the lock should hold
 * it right after the key expires.  The expiry instant is computed from the
 * PTTL read just before the kill, at the middle of that round trip, so it is
 * known to within about a millisecond. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOCK_NAME "bench:crash"

typedef struct waiter {
    redislock *lk;
    int rc;
    int64_t got_ns;
} waiter;

static void *wait_main(void *p)
{
    waiter *w = p;
    w->rc = redislock_acquire(w->lk, 30000);
    w->got_ns = bench_now_ns();
    return NULL;
}

static pid_t start_holder(const bench_opts *o, int64_t expire_ms)
{
    int fd[2];
    char b;
    pid_t pid;
    if (pipe(fd))
        bench_die("pipe", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        bench_die("fork", strerror(errno));
    if (pid == 0) {
        redislock_client *c;
        redislock *lk;
        bench_child_init();
        c = bench_client(o);
        lk = bench_lock(c, LOCK_NAME, expire_ms);
        close(fd[0]);
        if (redislock_acquire(lk, 30000))
            _exit(1);
        if (write(fd[1], "x", 1) != 1)
            _exit(1);
        sleep(60); /* until killed (never for long, whatever happens) */
        _exit(0);
    }
    close(fd[1]);
    if (read(fd[0], &b, 1) != 1)
        bench_die("crash", "the holder could not take the lock");
    close(fd[0]);
    return pid;
}

int bench_crash(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c = bench_client(o);
    int64_t expire_ms = o->hold_ms ? o->hold_ms : 500;
    bench_samples delay = { 0 }, ping = { 0 };
    int k;

    for (k = 0; k < o->iters; k++) {
        waiter w = { bench_lock(c, LOCK_NAME, 10000), 0, 0 };
        pid_t pid = start_holder(o, expire_ms);
        pthread_t th;
        redisReply *r;
        int64_t t0, t1, expiry;
        int st;

        if (pthread_create(&th, NULL, wait_main, &w))
            bench_die("pthread_create", strerror(errno));
        bench_await_blocked(ctx, 1);
        bench_ping(ctx, 1, &ping);
        t0 = bench_now_ns();
        r = redisCommand(ctx, "PTTL lock:" LOCK_NAME);
        t1 = bench_now_ns();
        if (!r || r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
            kill(pid, SIGKILL);
            bench_die("PTTL", "the holder's key expired before the kill (machine too slow "
                              "for this expiry? raise --hold)");
        }
        expiry = (t0 + t1) / 2 + r->integer * 1000000;
        freeReplyObject(r);
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        pthread_join(th, NULL);
        if (w.rc)
            bench_die("crash: the waiter", redislock_errmsg(w.lk));
        bench_samples_add(&delay, w.got_ns - expiry);
        redislock_release(w.lk);
        redislock_free(w.lk);
    }
    bench_rec_begin(o, "crash");
    bench_rec_int("expire_ms", expire_ms);
    bench_rec_lat("ping", &ping);
    bench_rec_lat("delay", &delay);
    bench_rec_num("delay_max_us", (double)bench_pct(&delay, 100) / 1000.0);
    bench_rec_num("delay_min_us", (double)bench_pct(&delay, 0) / 1000.0);
    bench_rec_end();
    bench_samples_free(&delay), bench_samples_free(&ping);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}
