/* The benchmark (issue 5): shared helpers.  The measurements use only the
 * public API of libredislock; a plain hiredis connection of the benchmark's
 * own times PING and reads INFO, so that every latency can be given as a
 * multiple of the round trip on the same kind of connection.
 *
 * Results go to stdout as one record per line:
 *   @ <scenario> key=value key=value ...
 * bench/report.py turns them into the table and doc/benchmarks.md. */
#ifndef BENCH_H
#define BENCH_H

#include <redislock.h>

#include <hiredis.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_URLS 8
#define BENCH_MAX_CONTENDERS 64

typedef struct bench_opts {
    const char *urls[BENCH_MAX_URLS]; /* --url, repeatable (majority mode) */
    int nurls;
    double duration_s;  /* --duration: seconds per contention cell etc. */
    int iters;          /* --iters: samples of a latency */
    int conc;           /* --conc: contenders */
    int hold_ms;        /* --hold */
    int processes;      /* --mode processes (else threads) */
    int nlocks;         /* --locks */
    int threads;        /* --threads */
    int delay_us;       /* --delay-us: one-way delay of a relay (majority) */
    const char *label;  /* --label: copied into every record */
    const char *cacert; /* --cacert: CA file for rediss:// (tls) */
    int kind;           /* --kind mutex|fair|semaphore (REDISLOCK_KIND_*) */
    int permits;        /* --permits N: the semaphore's */
} bench_opts;

/* ---------------------------------------------------------------- time */
int64_t bench_now_ns(void);          /* CLOCK_MONOTONIC, shared by processes */
int64_t bench_thread_cpu_ns(void);   /* CLOCK_THREAD_CPUTIME_ID */
int64_t bench_process_cpu_ns(void);  /* getrusage(RUSAGE_SELF), user + sys */
void bench_sleep_ns(int64_t ns);

/* ------------------------------------------------------------ samples */
typedef struct bench_samples {
    int64_t *v;
    size_t n, cap;
} bench_samples;

void bench_samples_add(bench_samples *s, int64_t v);
/* Nearest-rank percentile (sorts the samples); 0 if empty. */
int64_t bench_pct(bench_samples *s, double p);
void bench_samples_free(bench_samples *s);

/* --------------------------------------------------- own redis connection */
/* Connect with hiredis to a unix:// or redis://host:port URL; exits on
 * failure (the benchmark cannot go on without its server). */
redisContext *bench_connect(const char *url);
/* PING round trip: n samples into s. */
void bench_ping(redisContext *ctx, int n, bench_samples *s);
/* An integer field of INFO <section>; -1 if absent. */
long long bench_info(redisContext *ctx, const char *section, const char *field);
/* Sum of INFO commandstats calls of the commands a libredislock client sends
 * (evalsha, eval, blpop, client|*, scan, select, auth): commands that Lua
 * scripts run inside are left out, and so are the benchmark's own INFO and
 * CONFIG.  With cmd set, only that command's calls. */
long long bench_lib_calls(redisContext *ctx, const char *cmd);
/* Server time per call of one command (INFO commandstats usec_per_call,
 * since the server started); -1 if it never ran. */
double bench_usec_per_call(redisContext *ctx, const char *cmd);
/* Wait (polling INFO every 50 us) until at least n clients are blocked. */
void bench_await_blocked(redisContext *ctx, long long n);

/* ------------------------------------------------------------- records */
/* Start a record "@ scenario label=... "; then add fields; then end it. */
void bench_rec_begin(const bench_opts *o, const char *scenario);
void bench_rec_int(const char *key, long long v);
void bench_rec_num(const char *key, double v);
void bench_rec_str(const char *key, const char *v);
void bench_rec_end(void);
/* Latency fields <key>_p50_us, <key>_p99_us (and the sample count). */
void bench_rec_lat(const char *key, bench_samples *s);
/* The distribution: <key>_n, _min_us, _p25_us, _p50_us, _p75_us, _p99_us,
 * _max_us, and _p50_lo_us / _p50_hi_us (a 95% confidence interval of the
 * median, from the order statistics: how far a p50 can move by chance). */
void bench_rec_dist(const char *key, bench_samples *s);
/* Two modes (a bimodal latency): the split that best separates the samples
 * into a faster and a slower group (Otsu's method on the middle 98%), as
 * <key>_split_us, <key>_fast_share (0..1), <key>_fast_p50_us,
 * <key>_slow_p50_us, and <key>_sep: Ashman's D of the two groups (above 2:
 * two clearly separate modes; below: one mode cut in two). */
void bench_rec_modes(const char *key, bench_samples *s);

/* Exit with a message naming what failed. */
void bench_die(const char *what, const char *detail);
/* A client for the options' URLs (one or several masters); exits on error. */
redislock_client *bench_client(const bench_opts *o);
redislock *bench_lock(redislock_client *c, const char *name, int64_t expire_ms);
/* A lock of the options' kind (kinds.c): the mutex, a fair lock or a
 * semaphore of o->permits (1 by default). */
redislock *bench_kind_lock(redislock_client *c, const char *name, int64_t expire_ms,
                           const bench_opts *o);

/* ---------------------------------------------------------- contenders */
/* Run fn(i, arg) for i in 0..n-1 in n threads, or in n forked processes;
 * wait for all.  arg must live in bench_shared() memory for processes.
 * Returns the number that failed (non-zero return or abnormal exit). */
int bench_spawn(int n, int processes, int (*fn)(int i, void *arg), void *arg);
/* fork() after flushing stdio, dying on failure; the child (0) dies with
 * the benchmark (Linux: PR_SET_PDEATHSIG), so no child outlives a
 * benchmark that failed; it must _exit(). */
pid_t bench_fork(void);
/* Zeroed memory shared with forked children (mmap MAP_SHARED). */
void *bench_shared(size_t size);
void bench_shared_free(void *p, size_t size);

/* ---------------------------------------------------------------- relay */
/* A relay in front of a server's unix socket that holds every chunk back
 * for delay_ns in each direction: a stand-in for a network (relay.c). */
typedef struct bench_relay {
    char target[108], path[108], url[120];
    int lfd;
    pthread_t th;
    int64_t delay_ns;
} bench_relay;

void bench_relay_start(bench_relay *r, const char *target_url, const char *path,
                       int64_t delay_ns);
void bench_relay_stop(bench_relay *r);

/* ----------------------------------------------------------- scenarios */
int bench_uncontended(const bench_opts *o);
int bench_handoff(const bench_opts *o);
int bench_majority(const bench_opts *o);
int bench_contend(const bench_opts *o);
int bench_waitcost(const bench_opts *o);
int bench_crash(const bench_opts *o);
int bench_renew(const bench_opts *o);
int bench_scale(const bench_opts *o);
int bench_tls(const bench_opts *o);
int bench_fencing(const bench_opts *o);
int bench_fairness(const bench_opts *o);
int bench_semutil(const bench_opts *o);
int bench_kcrash(const bench_opts *o);
int bench_kwaiter(const bench_opts *o);
int bench_kclock(const bench_opts *o);
int bench_handfloor(const bench_opts *o);

#endif
