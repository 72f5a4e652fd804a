/* redislock_client_stats(): a snapshot of a client's counters (stats.c),
 * its renewals (renew.c) and open connections (pool.c); and
 * redislock_stats_prometheus(): that snapshot in the Prometheus text
 * exposition format. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The size of each version's layout: a caller compiled against an older
 * header has a shorter struct (fields are only ever added at the end). */
static const size_t layout_size[] = { sizeof(redislock_stats), sizeof(redislock_stats) };
#define LAYOUTS (sizeof layout_size / sizeof layout_size[0])

int redislock_client_stats(redislock_client *c, redislock_stats *st)
{
    redislock_stats s;
    redislock__renew_stats rs;
    unsigned version;

    redislock__err_clear();
    if (!c || !st)
        return redislock__err(REDISLOCK_EINVAL, "redislock_client_stats: %s is NULL",
                              c ? "st" : "client");
    version = st->version;
    if (version >= LAYOUTS)
        return redislock__err(REDISLOCK_EINVAL,
                              "redislock_client_stats: version %u is newer than this "
                              "library's (%u)",
                              version, (unsigned)REDISLOCK_STATS_VERSION);
    memset(&s, 0, sizeof s);
    redislock__stats_read(c, &s);
    redislock__renew_get_stats(c, &rs);
    s.renewals = rs.renewals;
    s.renewal_failures = rs.failures;
    s.renewal_round_trips = rs.round_trips;
    s.renewing = rs.scheduled;
    redislock__topo_counts(c, &s.connections, &s.failovers, &s.redirects);
    s.version = version ? version : 1;
    memcpy(st, &s, layout_size[version]);
    return 0;
}

/* ------------------------------------------------------------ the text */

/* The text so far: what fits in buf, and the length of the whole. */
typedef struct text {
    char *buf;
    size_t size, len;
    const char *labels; /* the caller's, "" for none */
} text;

static void put(text *t, const char *fmt, ...) REDISLOCK__PRINTF(2, 3);
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(t->len < t->size ? t->buf + t->len : NULL,
                  t->len < t->size ? t->size - t->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

static void header(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels,label} value: label is one more 'k="v"' pair, or NULL. */
static void sample(text *t, const char *name, const char *label, const char *value)
{
    const char *sep = *t->labels && label ? "," : "";
    if (*t->labels || label)
        put(t, "%s{%s%s%s} %s\n", name, t->labels, sep, label ? label : "", value);
    else
        put(t, "%s %s\n", name, value);
}

static void counter(text *t, const char *name, const char *label, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sample(t, name, label, num);
}

/* A histogram in seconds from log2 buckets of milliseconds: cumulative
 * counts at le="0.001" (2^0 ms) ... le="16777.216" (2^24 ms), and +Inf. */
static void histogram(text *t, const char *name, const char *help, const uint64_t *buckets,
                      uint64_t sum_us)
{
    char metric[96], le[48], num[32];
    uint64_t total = 0;
    size_t i;
    header(t, name, "histogram", help);
    snprintf(metric, sizeof metric, "%s_bucket", name);
    for (i = 0; i < REDISLOCK_STATS_BUCKETS; i++) {
        total += buckets[i];
        if (i + 1 < REDISLOCK_STATS_BUCKETS)
            snprintf(le, sizeof le, "le=\"%.3f\"", (double)(1ULL << i) / 1000);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        counter(t, metric, le, total);
    }
    snprintf(metric, sizeof metric, "%s_sum", name);
    snprintf(num, sizeof num, "%llu.%06llu", (unsigned long long)(sum_us / 1000000),
             (unsigned long long)(sum_us % 1000000));
    sample(t, metric, NULL, num);
    snprintf(metric, sizeof metric, "%s_count", name);
    counter(t, metric, NULL, total);
}

/* labels: name="value" pairs separated by commas; a name is
 * [a-zA-Z_][a-zA-Z0-9_]*, a value escapes \, " and newline (\n). */
static int labels_ok(const char *p)
{
    while (*p) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
            return 0;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
               (*p >= '0' && *p <= '9'))
            p++;
        if (*p++ != '=' || *p++ != '"')
            return 0;
        for (; *p != '"'; p++) {
            if (!*p || *p == '\n')
                return 0;
            if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
                p++;
            else if (*p == '\\')
                return 0;
        }
        p++;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return 0;
    }
    return 1;
}

static void acquires(text *t, const redislock_stats *st)
{
    header(t, "redislock_acquires_total", "counter",
           "Acquire calls (acquire, try_acquire) by result.");
    counter(t, "redislock_acquires_total", "result=\"acquired\"", st->acquired);
    counter(t, "redislock_acquires_total", "result=\"already\"", st->already);
    counter(t, "redislock_acquires_total", "result=\"busy\"", st->busy);
    counter(t, "redislock_acquires_total", "result=\"timeout\"", st->timeouts);
    counter(t, "redislock_acquires_total", "result=\"cancelled\"", st->cancels);
    counter(t, "redislock_acquires_total", "result=\"error\"", st->errors);
    histogram(t, "redislock_acquire_wait_seconds",
              "Time of the acquire calls that waited for the lock, whatever their result.",
              st->wait_buckets, st->wait_us);
    histogram(t, "redislock_hold_seconds",
              "Time from acquiring a lock to its release, loss, or the handle freed.",
              st->hold_buckets, st->hold_us);
}

static void lost(text *t, const redislock_stats *st)
{
    static const char *const names[] = { NULL, "gone", "other_owner", "expired",
                                         "no_quorum", "max_hold", "no_heartbeat" };
    char label[48];
    size_t i;
    header(t, "redislock_locks_lost_total", "counter",
           "Held locks that the renewal found lost, by reason.");
    for (i = 1; i < REDISLOCK_STATS_LOST_REASONS; i++) {
        if (i >= sizeof names / sizeof names[0] && !st->lost[i])
            continue; /* a reason this version does not know, never seen */
        if (i < sizeof names / sizeof names[0])
            snprintf(label, sizeof label, "reason=\"%s\"", names[i]);
        else
            snprintf(label, sizeof label, "reason=\"%zu\"", i);
        counter(t, "redislock_locks_lost_total", label, st->lost[i]);
    }
}

static void one(text *t, const char *name, const char *type, const char *help, uint64_t v)
{
    header(t, name, type, help);
    counter(t, name, NULL, v);
}

int redislock_stats_prometheus(const redislock_stats *st, const char *labels, char *buf,
                               size_t size)
{
    text t;
    redislock__err_clear();
    if (!st || (!buf && size))
        return redislock__err(REDISLOCK_EINVAL, "redislock_stats_prometheus: %s is NULL",
                              st ? "buf" : "st");
    /* a later version reads only the fields of st->version here */
    if (st->version >= LAYOUTS)
        return redislock__err(REDISLOCK_EINVAL,
                              "redislock_stats_prometheus: version %u is newer than this "
                              "library's (%u)",
                              st->version, (unsigned)REDISLOCK_STATS_VERSION);
    if (labels && !labels_ok(labels))
        return redislock__err(REDISLOCK_EINVAL,
                              "redislock_stats_prometheus: labels are not name=\"value\" "
                              "pairs separated by commas");
    memset(&t, 0, sizeof t);
    t.buf = buf;
    t.size = size;
    t.labels = labels ? labels : "";
    if (size)
        buf[0] = '\0';
    acquires(&t, st);
    lost(&t, st);
    one(&t, "redislock_connections_opened_total", "counter",
        "Connections opened to the masters.", st->connects);
    one(&t, "redislock_reconnects_total", "counter",
        "Connections opened after a failed connect or a dropped connection.", st->reconnects);
    one(&t, "redislock_connect_failures_total", "counter", "Connects that failed.",
        st->connect_failures);
    one(&t, "redislock_connections", "gauge", "Connections open now, idle or in use.",
        st->connections);
    one(&t, "redislock_renewals_total", "counter", "Lock renewals that succeeded.",
        st->renewals);
    one(&t, "redislock_renewal_failures_total", "counter", "Lock renewals that failed.",
        st->renewal_failures);
    one(&t, "redislock_renewal_round_trips_total", "counter",
        "Renewal pipelines sent, one per master and batch.", st->renewal_round_trips);
    one(&t, "redislock_renewing", "gauge", "Locks being auto-renewed now.", st->renewing);
    one(&t, "redislock_failovers_total", "counter",
        "Sentinel failovers followed (a Sentinel service's master moved).", st->failovers);
    one(&t, "redislock_redirects_total", "counter",
        "Cluster -MOVED redirects followed.", st->redirects);
    return (int)t.len;
}
