/* Contention in the shape of python-redis-lock's own benchmark (N threads or
 * processes take one lock in a loop for a fixed time, holding it for a
 * fixed time each), and the cost of one waiter blocked for seconds.
 *
 * With a hold time, every hold is logged (acquire returned, release
 * called, release returned, by whom) so that the cell's time splits into
 * what the lock was held and where the rest went (issue 27): the start
 * (to the first grant), the hand-offs (a release called -> the next
 * holder's acquire returned), and the end (after the last hold that
 * ended in time).  The holds do not overlap (one lock), so the shares add
 * up to 100%. */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The lock expiry used by python-redis-lock's benchmark (expire=5). */
#define CONTEND_EXPIRE_MS 5000

/* One hold: acquire returned, release called, release returned. */
typedef struct hold {
    int64_t acq, rel, done;
    int who;
} hold;

typedef struct contend {
    const bench_opts *o;
    redislock_client *c;        /* threads: one client for all */
    int ready;
    int64_t start_ns, end_ns;
    long long count[BENCH_MAX_CONTENDERS];
    int64_t held_ns[BENCH_MAX_CONTENDERS]; /* from acquire return to release */
    int errors;
    hold *holds;                /* with a hold time: every hold */
    size_t nholds, cap;         /* nholds: atomic */
} contend;

static void log_hold(contend *s, int who, int64_t acq, int64_t rel, int64_t done)
{
    size_t k;
    if (!s->holds)
        return;
    k = __atomic_fetch_add(&s->nholds, 1, __ATOMIC_SEQ_CST);
    if (k < s->cap)
        s->holds[k] = (hold){ acq, rel, done, who };
}

static int contend_run(int i, void *arg)
{
    contend *s = arg;
    const bench_opts *o = s->o;
    redislock_client *c = s->c ? s->c : bench_client(o);
    redislock *lk = bench_lock(c, "bench:contend", CONTEND_EXPIRE_MS);
    int64_t end, now, rel;

    /* The last one ready sets the start, a moment ahead, for everyone. */
    if (__atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST) == o->conc) {
        int64_t start = bench_now_ns() + 20000000;
        s->end_ns = start + (int64_t)(o->duration_s * 1e9);
        __atomic_store_n(&s->start_ns, start, __ATOMIC_SEQ_CST);
    }
    now = bench_now_ns();
    while (!__atomic_load_n(&s->start_ns, __ATOMIC_SEQ_CST)) {
        if (bench_now_ns() - now > 60 * 1000000000LL)
            bench_die("contend", "the other contenders did not start within 60 s");
        bench_sleep_ns(100000);
    }
    now = bench_now_ns();
    if (s->start_ns > now)
        bench_sleep_ns(s->start_ns - now);
    end = s->end_ns;
    while ((now = bench_now_ns()) < end) {
        int64_t left_ms = (end - now + 999999) / 1000000;
        int rc = redislock_acquire(lk, left_ms);
        if (rc == REDISLOCK_ETIMEDOUT)
            break;
        if (rc) {
            fprintf(stderr, "contend: %s\n", redislock_errmsg(lk));
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        now = bench_now_ns();
        if (now < end)
            s->count[i]++;
        if (o->hold_ms)
            bench_sleep_ns((int64_t)o->hold_ms * 1000000);
        rel = bench_now_ns();
        if (now < end) /* only the holds that count */
            s->held_ns[i] += rel - now;
        if ((rc = redislock_release(lk))) {
            fprintf(stderr, "contend: release: %s\n", redislock_errmsg(lk));
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        log_hold(s, i, now, rel, bench_now_ns());
    }
    redislock_free(lk);
    if (!s->c)
        redislock_client_free(c);
    return 0;
}

static int by_acquire(const void *a, const void *b)
{
    const hold *x = a, *y = b;
    return x->acq < y->acq ? -1 : x->acq > y->acq;
}

/* The part of [a, b) within the cell. */
static int64_t within(const contend *s, int64_t a, int64_t b)
{
    int64_t lo = a > s->start_ns ? a : s->start_ns, hi = b < s->end_ns ? b : s->end_ns;
    return hi > lo ? hi - lo : 0;
}

static double pct_of_cell(const contend *s, int64_t ns)
{
    return 100.0 * (double)ns / (double)(s->end_ns - s->start_ns);
}

/* Where the cell's time went (see the top of the file): the fields of the
 * record. */
static void time_split(contend *s)
{
    const bench_opts *o = s->o;
    size_t n = s->nholds < s->cap ? s->nholds : s->cap, i;
    int64_t held = 0, over = 0, gaps = 0, slow = 0, sum = 0;
    int64_t hold_ns = (int64_t)o->hold_ms * 1000000;
    bench_samples gap = { 0 }, rel = { 0 };
    long long same = 0, nslow = 0;
    if (!n)
        return;
    qsort(s->holds, n, sizeof *s->holds, by_acquire);
    for (i = 0; i < n; i++) {
        const hold *h = &s->holds[i];
        int64_t next = i + 1 < n ? s->holds[i + 1].acq : INT64_MAX;
        held += within(s, h->acq, h->rel);
        if (h->rel - h->acq > hold_ns)
            over += within(s, h->acq + hold_ns, h->rel);
        gaps += within(s, h->rel, next);
        if (next > s->end_ns || h->acq < s->start_ns)
            continue;
        bench_samples_add(&gap, next - h->rel);
        sum += next - h->rel;
        bench_samples_add(&rel, h->done - h->rel);
        same += s->holds[i + 1].who == h->who;
        if (next - h->rel > 1000000)
            nslow++, slow += next - h->rel;
    }
    bench_rec_num("held_pct", pct_of_cell(s, held));
    bench_rec_num("overshoot_pct", pct_of_cell(s, over));
    bench_rec_num("start_pct", pct_of_cell(s, within(s, s->start_ns, s->holds[0].acq)));
    bench_rec_num("handoff_pct", pct_of_cell(s, gaps));
    bench_rec_dist("gap", &gap);
    bench_rec_num("gap_mean_us", gap.n ? (double)sum / 1e3 / (double)gap.n : 0);
    bench_rec_int("gaps_over_1ms", nslow);
    bench_rec_num("gaps_over_1ms_pct", pct_of_cell(s, slow));
    bench_rec_lat("release", &rel);
    bench_rec_int("same_holder_again", same);
    bench_samples_free(&gap), bench_samples_free(&rel);
}

int bench_contend(const bench_opts *o)
{
    contend *s = bench_shared(sizeof *s);
    redisContext *ctx = bench_connect(o->urls[0]);
    long long calls0, calls, total = 0, min = -1, max = 0;
    int64_t held = 0;
    int i, failed;

    s->o = o;
    s->c = o->processes ? NULL : bench_client(o);
    if (o->hold_ms) { /* every hold fits: they take turns; one more each at the end */
        s->cap = (size_t)(o->duration_s * 1000 / o->hold_ms) + 2 * (size_t)o->conc + 64;
        s->holds = bench_shared(s->cap * sizeof *s->holds);
    }
    calls0 = bench_lib_calls(ctx, NULL);
    failed = bench_spawn(o->conc, o->processes, contend_run, s);
    calls = bench_lib_calls(ctx, NULL) - calls0;
    for (i = 0; i < o->conc; i++) {
        total += s->count[i];
        held += s->held_ns[i];
        if (min < 0 || s->count[i] < min)
            min = s->count[i];
        if (s->count[i] > max)
            max = s->count[i];
    }
    bench_rec_begin(o, "contend");
    bench_rec_str("impl", "redislock");
    bench_rec_str("mode", o->processes ? "processes" : "threads");
    bench_rec_int("conc", o->conc);
    bench_rec_int("hold_ms", o->hold_ms);
    bench_rec_num("duration_s", o->duration_s);
    bench_rec_int("total", total);
    bench_rec_num("avg", (double)total / o->conc);
    bench_rec_int("min", min);
    bench_rec_int("max", max);
    bench_rec_int("commands", calls);
    /* the mean time a holder actually held it (the sleep overshoots) */
    bench_rec_num("held_mean_us", total ? (double)held / 1e3 / (double)total : 0);
    bench_rec_int("errors", s->errors + failed);
    time_split(s);
    bench_rec_end();
    if (s->c)
        redislock_client_free(s->c);
    if (s->holds)
        bench_shared_free(s->holds, s->cap * sizeof *s->holds);
    bench_shared_free(s, sizeof *s);
    redisFree(ctx);
    return 0;
}

/* --------------------------------------------------------- cost of waiting */

typedef struct waitcost {
    int rc;
    int64_t cpu_thread_ns, cpu_process_ns, waited_ns;
} waitcost;

/* One waiter (a process of its own) blocks on a lock that the benchmark holds
 * for --duration seconds.  "released": the holder releases after that time;
 * "timeout": the waiter's own timeout of that length runs out.  Commands are
 * those the server counted while the waiter was blocked (from before it
 * started until the end of the time), CPU is the waiter's for its whole
 * acquire call. */
static void waitcost_one(const bench_opts *o, int timed)
{
    waitcost *w = bench_shared(sizeof *w);
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c = bench_client(o);
    /* the queued kinds need an expiry: longer than the wait */
    int64_t expire_ms = o->kind ? (int64_t)(o->duration_s * 1000) + 30000 : 0;
    redislock *holder = bench_kind_lock(c, "bench:waitcost", expire_ms, o);
    int64_t wait_ns = (int64_t)(o->duration_s * 1e9);
    long long calls0, calls;
    pid_t pid;
    int st;

    if (redislock_acquire(holder, -1))
        bench_die("acquire", redislock_errmsg(holder));
    calls0 = bench_lib_calls(ctx, NULL);
    pid = bench_fork();
    if (pid == 0) {
        redislock_client *wc = bench_client(o);
        redislock *lk = bench_kind_lock(wc, "bench:waitcost", expire_ms, o);
        int64_t c0 = bench_thread_cpu_ns(), p0 = bench_process_cpu_ns();
        int64_t t0 = bench_now_ns();
        w->rc = redislock_acquire(lk, timed ? wait_ns / 1000000 : -1);
        w->waited_ns = bench_now_ns() - t0;
        w->cpu_thread_ns = bench_thread_cpu_ns() - c0;
        w->cpu_process_ns = bench_process_cpu_ns() - p0;
        if (w->rc == 0)
            redislock_release(lk);
        redislock_free(lk);
        redislock_client_free(wc);
        _exit(0);
    }
    bench_await_blocked(ctx, 1);
    bench_sleep_ns(wait_ns - 20000000); /* the timed waiter gives up by itself */
    calls = bench_lib_calls(ctx, NULL) - calls0;
    if (!timed)
        bench_sleep_ns(20000000);
    if (!timed && redislock_release(holder))
        bench_die("release", redislock_errmsg(holder));
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (timed) {
        calls = bench_lib_calls(ctx, NULL) - calls0;
        redislock_release(holder);
    }
    bench_rec_begin(o, "waitcost");
    bench_rec_str("impl", "redislock");
    bench_rec_str("end", timed ? "timeout" : "released");
    if (o->kind)
        bench_rec_str("kind", o->kind == REDISLOCK_KIND_FAIR ? "fair" : "semaphore");
    bench_rec_str("result", redislock_err_name(w->rc));
    bench_rec_num("blocked_s", (double)w->waited_ns / 1e9);
    bench_rec_int("commands", calls);
    bench_rec_num("cpu_thread_ms", (double)w->cpu_thread_ns / 1e6);
    bench_rec_num("cpu_process_ms", (double)w->cpu_process_ns / 1e6);
    bench_rec_end();
    redislock_free(holder);
    redislock_client_free(c);
    redisFree(ctx);
    bench_shared_free(w, sizeof *w);
}

int bench_waitcost(const bench_opts *o)
{
    waitcost_one(o, 0);
    waitcost_one(o, 1);
    return 0;
}
