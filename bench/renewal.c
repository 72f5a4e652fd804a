/* Auto-renewal of 1, 100, 10,000 locks (CPU time and round trips), and
 * scale: 1,000 distinct locks held at once by 64 threads (connections).
 *
 * The server cannot tell a pipeline from single requests, so a sampler
 * thread reads INFO commandstats every 2 ms and counts bursts of EVALSHA
 * calls separated by at least 50 ms of silence: with one renewal thread per
 * client, each burst is one pipeline (one round trip). */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RENEW_EXPIRE_MS 3000
#define BURST_GAP_NS (50 * 1000000LL)
#define SAMPLE_NS (2 * 1000000LL)

typedef struct sampler {
    const char *url;
    const char *what;        /* "evalsha": count bursts; else: peak clients */
    int stop;
    pthread_t th;
    long long bursts, peak;
    int64_t cpu_ns;
} sampler;

static void *sampler_main(void *p)
{
    sampler *s = p;
    redisContext *ctx = bench_connect(s->url);
    int64_t cpu0 = bench_thread_cpu_ns(), last_change = 0;
    long long last = -1;
    while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
        if (!strcmp(s->what, "evalsha")) {
            long long v = bench_lib_calls(ctx, "evalsha");
            int64_t t = bench_now_ns();
            if (last >= 0 && v > last) {
                if (t - last_change > BURST_GAP_NS)
                    s->bursts++;
                last_change = t;
            }
            last = v;
        } else {
            long long v = bench_info(ctx, "clients", "connected_clients");
            if (v > s->peak)
                s->peak = v;
        }
        bench_sleep_ns(SAMPLE_NS);
    }
    s->cpu_ns = bench_thread_cpu_ns() - cpu0;
    redisFree(ctx);
    return NULL;
}

static void sampler_start(sampler *s, const char *url, const char *what)
{
    memset(s, 0, sizeof *s);
    s->url = url;
    s->what = what;
    if (pthread_create(&s->th, NULL, sampler_main, s))
        bench_die("pthread_create", strerror(errno));
}

static void sampler_stop(sampler *s)
{
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->th, NULL);
}

/* --------------------------------------------------------------- renewal */

int bench_renew(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c = bench_client(o);
    redislock **lk = calloc((size_t)o->nlocks, sizeof *lk);
    redislock_options lo = REDISLOCK_OPTIONS_INIT;
    long long calls0, calls;
    int64_t t0, acquired_ns, cpu0, main0, cpu, observe_ns;
    sampler s;
    int i, held = 0;

    if (!lk)
        bench_die("renew", "out of memory");
    lo.expire_ms = RENEW_EXPIRE_MS;
    lo.auto_renew = 1;
    t0 = bench_now_ns();
    for (i = 0; i < o->nlocks; i++) {
        char name[64];
        snprintf(name, sizeof name, "bench:renew:%d", i);
        if (redislock_new(&lk[i], c, name, &lo))
            bench_die("lock", redislock_last_error());
        if (redislock_try_acquire(lk[i]))
            bench_die("acquire", redislock_errmsg(lk[i]));
    }
    acquired_ns = bench_now_ns() - t0;

    observe_ns = (int64_t)(o->duration_s * 1e9);
    sampler_start(&s, o->urls[0], "evalsha");
    calls0 = bench_lib_calls(ctx, "evalsha");
    cpu0 = bench_process_cpu_ns();
    main0 = bench_thread_cpu_ns();
    bench_sleep_ns(observe_ns);
    calls = bench_lib_calls(ctx, "evalsha") - calls0;
    sampler_stop(&s);
    /* the renewal thread's CPU: the process's less this thread and the
     * sampler's */
    cpu = bench_process_cpu_ns() - cpu0 - (bench_thread_cpu_ns() - main0) - s.cpu_ns;
    for (i = 0; i < o->nlocks; i++)
        held += redislock_held(lk[i]);

    bench_rec_begin(o, "renew");
    bench_rec_int("locks", o->nlocks);
    bench_rec_int("expire_ms", RENEW_EXPIRE_MS);
    bench_rec_num("acquire_all_ms", (double)acquired_ns / 1e6);
    bench_rec_num("observed_s", (double)observe_ns / 1e9);
    bench_rec_int("renewals", calls);
    bench_rec_int("pipelines", s.bursts);
    bench_rec_num("cpu_ms", (double)cpu / 1e6);
    bench_rec_int("held_after", held);
    bench_rec_end();

    for (i = 0; i < o->nlocks; i++) {
        redislock_release(lk[i]);
        redislock_free(lk[i]);
    }
    free(lk);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}

/* ----------------------------------------------------------------- scale */

typedef struct scale {
    const bench_opts *o;
    redislock **lk;
    int done, go_release, failed;
    long long acquired;
    int64_t start_ns, all_held_ns;
    long long clients_held, keys_held;
} scale;

static int scale_run(int t, void *arg)
{
    scale *s = arg;
    int j, n = 0;
    for (j = t; j < s->o->nlocks; j += s->o->threads) {
        if (redislock_acquire(s->lk[j], 10000)) {
            fprintf(stderr, "scale: %s\n", redislock_errmsg(s->lk[j]));
            __atomic_store_n(&s->failed, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        n++;
    }
    __atomic_add_fetch(&s->acquired, n, __ATOMIC_SEQ_CST);
    if (__atomic_add_fetch(&s->done, 1, __ATOMIC_SEQ_CST) == s->o->threads) {
        /* the last thread: every lock is held now */
        redisContext *ctx = bench_connect(s->o->urls[0]);
        redisReply *r;
        s->all_held_ns = bench_now_ns() - s->start_ns;
        s->clients_held = bench_info(ctx, "clients", "connected_clients") - 1;
        r = redisCommand(ctx, "DBSIZE");
        s->keys_held = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r)
            freeReplyObject(r);
        redisFree(ctx);
        __atomic_store_n(&s->go_release, 1, __ATOMIC_SEQ_CST);
    }
    while (!__atomic_load_n(&s->go_release, __ATOMIC_SEQ_CST))
        bench_sleep_ns(1000000);
    for (j = t; j < s->o->nlocks; j += s->o->threads)
        if (redislock_held(s->lk[j]))
            redislock_release(s->lk[j]);
    return 0;
}

int bench_scale(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c;
    scale s = { o, NULL, 0, 0, 0, 0, 0, 0, 0, 0 };
    long long base, after;
    sampler sm;
    int i;

    { /* start from an empty database, so DBSIZE counts our locks */
        redisReply *r = redisCommand(ctx, "FLUSHALL");
        if (r)
            freeReplyObject(r);
    }
    sampler_start(&sm, o->urls[0], "clients");
    bench_sleep_ns(10000000);
    base = bench_info(ctx, "clients", "connected_clients");
    c = bench_client(o);
    s.lk = calloc((size_t)o->nlocks, sizeof *s.lk);
    if (!s.lk)
        bench_die("scale", "out of memory");
    for (i = 0; i < o->nlocks; i++) {
        char name[64];
        snprintf(name, sizeof name, "bench:scale:%d", i);
        s.lk[i] = bench_lock(c, name, 30000);
    }
    s.start_ns = bench_now_ns();
    bench_spawn(o->threads, 0, scale_run, &s);
    sampler_stop(&sm);
    after = bench_info(ctx, "clients", "connected_clients");

    bench_rec_begin(o, "scale");
    bench_rec_int("locks", o->nlocks);
    bench_rec_int("threads", o->threads);
    bench_rec_int("acquired", s.acquired);
    bench_rec_int("keys_held", s.keys_held);
    bench_rec_num("acquire_all_ms", (double)s.all_held_ns / 1e6);
    /* connections of the library: less the benchmark's own two (this one
     * and the sampler), and the one that counted */
    bench_rec_int("conns_held", s.clients_held - base);
    bench_rec_int("conns_peak", sm.peak - base);
    bench_rec_int("conns_after", after - base + 1);
    bench_rec_int("failed", s.failed);
    bench_rec_end();

    for (i = 0; i < o->nlocks; i++)
        redislock_free(s.lk[i]);
    free(s.lk);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}
