/* The benchmark's helpers: clocks, percentiles, its own hiredis connection
 * (PING, INFO), result records, and running contenders as threads or
 * processes. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- time */

static int64_t ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_now_ns(void) { return ts_ns(CLOCK_MONOTONIC); }
int64_t bench_thread_cpu_ns(void) { return ts_ns(CLOCK_THREAD_CPUTIME_ID); }

int64_t bench_process_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

void bench_sleep_ns(int64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
    while (ns > 0 && nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* ------------------------------------------------------------ samples */

void bench_samples_add(bench_samples *s, int64_t v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        int64_t *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            bench_die("samples", "out of memory");
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t bench_pct(bench_samples *s, double p)
{
    size_t rank;
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp64);
    rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

void bench_samples_free(bench_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* --------------------------------------------------- own redis connection */

redisContext *bench_connect(const char *url)
{
    struct timeval tv = { 5, 0 };
    redisContext *ctx = NULL;
    const char *p;
    if (!strncmp(url, "unix://", 7) || !strncmp(url, "redis+unix://", 13)) {
        p = strstr(url, "://") + 3;
        ctx = redisConnectUnixWithTimeout(p, tv);
    } else if (!strncmp(url, "redis://", 8)) {
        char host[256];
        int port = 6379;
        const char *colon;
        size_t len;
        p = url + 8;
        colon = strrchr(p, ':');
        len = colon ? (size_t)(colon - p) : strcspn(p, "/");
        if (len >= sizeof host)
            bench_die(url, "host name too long");
        memcpy(host, p, len);
        host[len] = 0;
        if (colon)
            port = atoi(colon + 1);
        ctx = redisConnectWithTimeout(host, port, tv);
    } else {
        bench_die(url, "the benchmark takes unix:// or redis://host:port URLs");
    }
    if (!ctx || ctx->err)
        bench_die(url, ctx ? ctx->errstr : "out of memory");
    return ctx;
}

static redisReply *cmd(redisContext *ctx, const char *c)
{
    redisReply *r = redisCommand(ctx, c);
    if (!r)
        bench_die(c, ctx->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        bench_die(c, r->str);
    return r;
}

void bench_ping(redisContext *ctx, int n, bench_samples *s)
{
    int i;
    for (i = 0; i < n + n / 10; i++) {
        int64_t t0 = bench_now_ns();
        freeReplyObject(cmd(ctx, "PING"));
        if (i >= n / 10) /* the first tenth warms up */
            bench_samples_add(s, bench_now_ns() - t0);
    }
}

long long bench_info(redisContext *ctx, const char *section, const char *field)
{
    char c[64], key[128];
    redisReply *r;
    const char *p;
    long long v = -1;
    snprintf(c, sizeof c, "INFO %s", section);
    snprintf(key, sizeof key, "\n%s:", field);
    r = cmd(ctx, c);
    if (r->type == REDIS_REPLY_STRING && (p = strstr(r->str, key)))
        v = atoll(p + strlen(key));
    freeReplyObject(r);
    return v;
}

static int lib_command(const char *name)
{
    static const char *const names[] = { "evalsha", "eval", "blpop", "scan",
                                         "select", "auth", NULL };
    int i;
    if (!strncmp(name, "client|", 7) || !strcmp(name, "client"))
        return 1;
    for (i = 0; names[i]; i++)
        if (!strcmp(name, names[i]))
            return 1;
    return 0;
}

long long bench_lib_calls(redisContext *ctx, const char *which)
{
    redisReply *r = cmd(ctx, "INFO commandstats");
    long long total = 0;
    char *line, *save = NULL;
    for (line = strtok_r(r->str, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        char name[128];
        long long calls;
        if (sscanf(line, "cmdstat_%127[^:]:calls=%lld", name, &calls) != 2)
            continue;
        if (which ? !strcmp(name, which) : lib_command(name))
            total += calls;
    }
    freeReplyObject(r);
    return total;
}

double bench_usec_per_call(redisContext *ctx, const char *which)
{
    redisReply *r = cmd(ctx, "INFO commandstats");
    char key[128];
    const char *p, *u;
    double v = -1;
    snprintf(key, sizeof key, "cmdstat_%s:", which);
    if ((p = strstr(r->str, key)) && (u = strstr(p, "usec_per_call=")))
        v = atof(u + strlen("usec_per_call="));
    freeReplyObject(r);
    return v;
}

void bench_await_blocked(redisContext *ctx, long long n)
{
    int64_t give_up = bench_now_ns() + 10 * 1000000000LL;
    while (bench_info(ctx, "clients", "blocked_clients") < n) {
        if (bench_now_ns() > give_up)
            bench_die("waiting for blocked clients", "none blocked within 10 s");
        bench_sleep_ns(50000);
    }
}

/* ------------------------------------------------------------- records */

static char rec[8192];
static size_t rec_len;

static void rec_add(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(rec + rec_len, sizeof rec - rec_len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof rec - rec_len)
        rec_len += (size_t)n;
}

void bench_rec_begin(const bench_opts *o, const char *scenario)
{
    rec_len = 0;
    rec_add("@ %s", scenario);
    if (o->label)
        rec_add(" label=%s", o->label);
}

void bench_rec_int(const char *key, long long v) { rec_add(" %s=%lld", key, v); }
void bench_rec_num(const char *key, double v) { rec_add(" %s=%.6g", key, v); }
void bench_rec_str(const char *key, const char *v) { rec_add(" %s=%s", key, v); }

void bench_rec_end(void)
{
    rec_add("\n");
    fwrite(rec, 1, rec_len, stdout);
    fflush(stdout);
    rec_len = 0;
}

void bench_rec_lat(const char *key, bench_samples *s)
{
    char k[96];
    snprintf(k, sizeof k, "%s_n", key);
    bench_rec_int(k, (long long)s->n);
    snprintf(k, sizeof k, "%s_p50_us", key);
    bench_rec_num(k, (double)bench_pct(s, 50) / 1000.0);
    snprintf(k, sizeof k, "%s_p99_us", key);
    bench_rec_num(k, (double)bench_pct(s, 99) / 1000.0);
}

/* The sample of 1-based rank r (clamped), the samples sorted. */
static int64_t at_rank(const bench_samples *s, double r)
{
    size_t k = r < 1 ? 1 : (size_t)r;
    return s->v[(k > s->n ? s->n : k) - 1];
}

void bench_rec_dist(const char *key, bench_samples *s)
{
    static const struct {
        const char *name;
        double p;
    } pcts[] = { { "min", 0 }, { "p25", 25 }, { "p50", 50 }, { "p75", 75 },
                 { "p99", 99 }, { "max", 100 } };
    char k[96];
    double half;
    size_t i;
    snprintf(k, sizeof k, "%s_n", key);
    bench_rec_int(k, (long long)s->n);
    if (s->n == 0)
        return;
    for (i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        snprintf(k, sizeof k, "%s_%s_us", key, pcts[i].name);
        bench_rec_num(k, (double)bench_pct(s, pcts[i].p) / 1000.0); /* sorts */
    }
    /* ranks n/2 -+ 1.96 sqrt(n)/2 bound the median with 95% confidence */
    half = 1.96 * sqrt((double)s->n) / 2;
    snprintf(k, sizeof k, "%s_p50_lo_us", key);
    bench_rec_num(k, (double)at_rank(s, (double)s->n / 2 - half) / 1000.0);
    snprintf(k, sizeof k, "%s_p50_hi_us", key);
    bench_rec_num(k, (double)at_rank(s, (double)s->n / 2 + half + 1) / 1000.0);
}

/* Mean and variance of the sorted samples v[a..b). */
static void moments(const int64_t *v, size_t a, size_t b, double *mean, double *var)
{
    double sum = 0, sq = 0;
    size_t i;
    for (i = a; i < b; i++)
        sum += (double)v[i];
    *mean = b > a ? sum / (double)(b - a) : 0;
    for (i = a; i < b; i++)
        sq += ((double)v[i] - *mean) * ((double)v[i] - *mean);
    *var = b > a ? sq / (double)(b - a) : 0;
}

void bench_rec_modes(const char *key, bench_samples *s)
{
    size_t lo, hi, i, best = 0, fast = 0;
    double total = 0, left = 0, best_between = -1, m0, m1, v0, v1;
    char k[96];
    if (s->n < 20)
        return;
    bench_pct(s, 50); /* sorts */
    lo = s->n / 100, hi = s->n - s->n / 100;
    for (i = lo; i < hi; i++)
        total += (double)s->v[i];
    /* Otsu: the split k (the first sample of the slow group) that makes
     * the between-group variance w0 w1 (mean0 - mean1)^2 largest */
    for (i = lo + 1; i < hi; i++) {
        double w0, w1, between;
        left += (double)s->v[i - 1];
        if (s->v[i] == s->v[i - 1])
            continue;
        w0 = (double)(i - lo), w1 = (double)(hi - i);
        between = w0 * w1 * (left / w0 - (total - left) / w1) * (left / w0 - (total - left) / w1);
        if (between > best_between)
            best_between = between, best = i;
    }
    if (!best)
        return; /* all alike */
    moments(s->v, lo, best, &m0, &v0);
    moments(s->v, best, hi, &m1, &v1);
    while (fast < s->n && s->v[fast] < s->v[best])
        fast++;
    snprintf(k, sizeof k, "%s_split_us", key);
    bench_rec_num(k, (double)s->v[best] / 1000.0);
    snprintf(k, sizeof k, "%s_fast_share", key);
    bench_rec_num(k, (double)fast / (double)s->n);
    snprintf(k, sizeof k, "%s_fast_p50_us", key);
    bench_rec_num(k, (double)s->v[fast / 2] / 1000.0);
    snprintf(k, sizeof k, "%s_slow_p50_us", key);
    bench_rec_num(k, (double)s->v[fast + (s->n - fast) / 2] / 1000.0);
    snprintf(k, sizeof k, "%s_sep", key);
    bench_rec_num(k, v0 + v1 > 0 ? sqrt(2.0) * (m1 - m0) / sqrt(v0 + v1) : 0);
}

void bench_die(const char *what, const char *detail)
{
    fprintf(stderr, "redislock-bench: %s: %s\n", what, detail);
    exit(1);
}

redislock_client *bench_client(const bench_opts *o)
{
    redislock_client *c = NULL;
    int rc = o->nurls > 1 ? redislock_client_new_multi(&c, o->urls, (size_t)o->nurls, NULL)
                          : redislock_client_new(&c, o->urls[0], NULL);
    if (rc)
        bench_die("client", redislock_last_error());
    return c;
}

redislock *bench_lock(redislock_client *c, const char *name, int64_t expire_ms)
{
    redislock *lk = NULL;
    redislock_options lo = REDISLOCK_OPTIONS_INIT;
    lo.expire_ms = expire_ms;
    if (redislock_new(&lk, c, name, &lo))
        bench_die("lock", redislock_last_error());
    return lk;
}

/* ---------------------------------------------------------- contenders */

pid_t bench_fork(void)
{
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        bench_die("fork", strerror(errno));
#ifdef __linux__
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    return pid;
}

void *bench_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        bench_die("mmap", strerror(errno));
    return p;
}

void bench_shared_free(void *p, size_t size) { munmap(p, size); }

typedef struct spawn_arg {
    int (*fn)(int, void *);
    void *arg;
    int i;
    int rc;
} spawn_arg;

static void *thread_main(void *p)
{
    spawn_arg *a = p;
    a->rc = a->fn(a->i, a->arg);
    return NULL;
}

int bench_spawn(int n, int processes, int (*fn)(int i, void *arg), void *arg)
{
    spawn_arg a[BENCH_MAX_CONTENDERS];
    pthread_t th[BENCH_MAX_CONTENDERS];
    pid_t pid[BENCH_MAX_CONTENDERS];
    int i, failed = 0;
    if (n > BENCH_MAX_CONTENDERS)
        bench_die("contenders", "too many");
    fflush(NULL);
    for (i = 0; i < n; i++) {
        a[i] = (spawn_arg){ fn, arg, i, 0 };
        if (!processes) {
            if (pthread_create(&th[i], NULL, thread_main, &a[i]))
                bench_die("pthread_create", strerror(errno));
            continue;
        }
        pid[i] = bench_fork();
        if (pid[i] == 0)
            _exit(fn(i, arg) ? 1 : 0);
    }
    for (i = 0; i < n; i++) {
        if (!processes) {
            pthread_join(th[i], NULL);
            failed += a[i].rc != 0;
        } else {
            int st;
            while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
                ;
            failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
    }
    return failed;
}
