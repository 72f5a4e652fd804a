/* The client's counters behind redislock_client_stats() (metrics.c): one
 * struct per client, bumped with relaxed atomic adds by whichever thread
 * saw the event, never under a lock, and read the same way.  The hooks
 * are one call each where the event happens: the end of an acquire and of
 * a release (ops.c), a wait (acquire.c), a lost lock (renew.c), a connect
 * (pool.c).  Renewals and open
 * connections are counted where they already were (renew.c, pool.c).
 * Built with REDISLOCK_NO_STATS (bench/: the cost of these hooks) the
 * hooks are empty macros (internal.h) and the counters stay 0. */
#include "internal.h"

size_t redislock__stats_bucket(int64_t us)
{
    uint64_t ms = us <= 0 ? 0 : ((uint64_t)us + 999) / 1000; /* rounded up */
    size_t i = ms <= 1 ? 0 : (size_t)(64 - __builtin_clzll(ms - 1));
    return i < REDISLOCK_STATS_BUCKETS ? i : REDISLOCK_STATS_BUCKETS - 1;
}

#ifndef REDISLOCK_NO_STATS
static void add(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static void observe(redislock__histogram *h, int64_t us)
{
    add(&h->buckets[redislock__stats_bucket(us)], 1);
    add(&h->sum_us, us > 0 ? (uint64_t)us : 0);
}

/* The hold of lk ends at end_us (release, loss): counted once, by whichever
 * thread takes its start (the renewal thread may find it lost while the
 * handle's thread releases it). */
static void hold_ends(redislock *lk, int64_t end_us)
{
    int64_t start = __atomic_exchange_n(&lk->hold_start_us, 0, __ATOMIC_RELAXED);
    if (start)
        observe(&lk->c->stats.hold, end_us - start);
}

int64_t redislock__stats_start(void)
{
    return redislock__now_us();
}

void redislock__stats_waited(redislock *lk)
{
    lk->waited = 1;
}

void redislock__stats_acquired(redislock *lk, int rc, int64_t start_us)
{
    /* in the order of the REDISLOCK__ACQ_* indices */
    static const int results[REDISLOCK__ACQ_ERROR] = {
        REDISLOCK_OK, REDISLOCK_EALREADY, REDISLOCK_EBUSY, REDISLOCK_ETIMEDOUT,
        REDISLOCK_ECANCELED
    };
    redislock__stats *s = &lk->c->stats;
    int64_t none = 0, now;
    size_t i = 0;
    while (i < REDISLOCK__ACQ_ERROR && results[i] != rc)
        i++;
    add(&s->acquire[i], 1); /* REDISLOCK__ACQ_ERROR: none of them */
    if (rc != REDISLOCK_OK && rc != REDISLOCK_EALREADY && !lk->waited)
        return;
    now = redislock__now_us();
    /* a hold starts when the acquire returns it (an EALREADY on a hold
     * already counted keeps its start) */
    if (rc == REDISLOCK_OK || rc == REDISLOCK_EALREADY)
        __atomic_compare_exchange_n(&lk->hold_start_us, &none, now, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
    if (lk->waited) {
        lk->waited = 0;
        observe(&s->wait, now - start_us);
    }
}

void redislock__stats_released(redislock *lk)
{
    if (__atomic_load_n(&lk->hold_start_us, __ATOMIC_RELAXED))
        hold_ends(lk, redislock__now_us());
}

void redislock__stats_lost(redislock *lk, int reason)
{
    redislock__stats *s = &lk->c->stats;
    add(&s->lost[reason > 0 && reason < REDISLOCK_STATS_LOST_REASONS ? reason : 0], 1);
    hold_ends(lk, redislock__now_us());
}

void redislock__stats_connect(redislock_client *c, int rc, int after_failure)
{
    if (rc)
        add(&c->stats.connect_failures, 1);
    else
        add(after_failure ? &c->stats.reconnects : &c->stats.connects, 1);
}
#endif

static uint64_t get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* A histogram's count is the sum of its buckets, read first: the sum read
 * after them covers at least those observations. */
static void read_histogram(const redislock__histogram *h, uint64_t *count, uint64_t *sum_us,
                           uint64_t *buckets)
{
    size_t i;
    *count = 0;
    for (i = 0; i < REDISLOCK_STATS_BUCKETS; i++)
        *count += buckets[i] = get(&h->buckets[i]);
    *sum_us = get(&h->sum_us);
}

void redislock__stats_read(const redislock_client *c, redislock_stats *st)
{
    const redislock__stats *s = &c->stats;
    size_t i;
    st->acquired = get(&s->acquire[REDISLOCK__ACQ_OK]);
    st->already = get(&s->acquire[REDISLOCK__ACQ_ALREADY]);
    st->busy = get(&s->acquire[REDISLOCK__ACQ_BUSY]);
    st->timeouts = get(&s->acquire[REDISLOCK__ACQ_TIMEOUT]);
    st->cancels = get(&s->acquire[REDISLOCK__ACQ_CANCELED]);
    st->errors = get(&s->acquire[REDISLOCK__ACQ_ERROR]);
    read_histogram(&s->wait, &st->waits, &st->wait_us, st->wait_buckets);
    read_histogram(&s->hold, &st->holds, &st->hold_us, st->hold_buckets);
    for (i = 0; i < REDISLOCK_STATS_LOST_REASONS; i++)
        st->lost[i] = get(&s->lost[i]);
    st->reconnects = get(&s->reconnects);
    st->connects = get(&s->connects) + st->reconnects;
    st->connect_failures = get(&s->connect_failures);
}
