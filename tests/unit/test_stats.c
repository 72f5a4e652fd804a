/* The statistics without a server: the log2 buckets, the hooks' counting
 * on a client that never connects, and the Prometheus text of a known
 * snapshot (labels, cumulative buckets, seconds, snprintf's contract). */
#include "internal.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bucket i holds durations of at most 2^i ms above 2^(i-1) ms. */
static void test_stats_buckets_are_log2_ms(void **state)
{
    static const struct {
        int64_t us;
        size_t bucket;
    } cases[] = {
        { -5, 0 },      { 0, 0 },       { 1, 0 },        { 1000, 0 },
        { 1001, 1 },    { 2000, 1 },    { 2001, 2 },     { 4000, 2 },
        { 4001, 3 },    { 50000, 6 },   { 64000, 6 },    { 64001, 7 },
        { 1000000, 10 }, /* 1 s: up to 1.024 s */
        { 16777216000LL, 24 }, { 16777216001LL, 25 }, { INT64_MAX, 25 },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (redislock__stats_bucket(cases[i].us) != cases[i].bucket)
            fail_msg("%lld us: bucket %zu, expected %zu", (long long)cases[i].us,
                     redislock__stats_bucket(cases[i].us), cases[i].bucket);
}

/* The hooks count each result, a wait's time, a hold from its round to
 * its end (once, whoever ends it), losses by reason and connects; the
 * snapshot's histogram counts are the sums of their buckets. */
static void test_stats_hooks_count(void **state)
{
    redislock_client *c;
    redislock *lk;
    redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
    static const int results[] = { REDISLOCK_OK, REDISLOCK_EALREADY, REDISLOCK_EBUSY,
                                   REDISLOCK_ETIMEDOUT, REDISLOCK_ECANCELED, REDISLOCK_EIO,
                                   REDISLOCK_ENOQUORUM };
    int64_t now;
    size_t i;
    (void)state;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", NULL)); /* no I/O */
    assert_rl_ok(redislock_new(&lk, c, "x", NULL));
    for (i = 0; i < sizeof results / sizeof results[0]; i++)
        redislock__stats_acquired(lk, results[i], redislock__now_us());
    /* a call that waited 5 ms: bucket 3 (4 to 8 ms) */
    redislock__stats_waited(lk);
    redislock__stats_acquired(lk, REDISLOCK_ETIMEDOUT, redislock__now_us() - 5000);
    /* the hold began with the first OK; the EALREADY kept its start */
    now = redislock__now_us();
    lk->hold_start_us = now - 3000000; /* 3 s: bucket 12 (2.048 to 4.096 s) */
    redislock__stats_released(lk);
    redislock__stats_released(lk); /* a second release: nothing more */
    /* 384 ms: bucket 9 (257 to 512 ms), whatever valgrind adds before it ends */
    lk->hold_start_us = redislock__now_us() - 384000;
    redislock__stats_lost(lk, REDISLOCK_LOST_EXPIRED);
    redislock__stats_released(lk); /* the loss ended it */
    redislock__stats_lost(lk, REDISLOCK_LOST_GONE);
    redislock__stats_connect(c, 0, 0);
    redislock__stats_connect(c, 0, 1);
    redislock__stats_connect(c, REDISLOCK_EIO, 1);

    assert_rl_ok(redislock_client_stats(c, &st));
    assert_int_equal(st.version, 1);
    assert_int_equal(st.acquired, 1);
    assert_int_equal(st.already, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.timeouts, 2);
    assert_int_equal(st.cancels, 1);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.wait_buckets[3], 1);
    assert_true(st.wait_us >= 5000);
    assert_int_equal(st.holds, 2);
    assert_int_equal(st.hold_buckets[12], 1);
    assert_int_equal(st.hold_buckets[9], 1);
    assert_true(st.hold_us >= 3384000);
    assert_int_equal(st.lost[REDISLOCK_LOST_EXPIRED], 1);
    assert_int_equal(st.lost[REDISLOCK_LOST_GONE], 1);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.connect_failures, 1);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.renewing, 0);
    assert_int_equal(st.failovers + st.redirects, 0);

    /* version 0 is 1; a newer one, or NULL, is EINVAL */
    memset(&st, 0xff, sizeof st);
    st.version = 0;
    assert_rl_ok(redislock_client_stats(c, &st));
    assert_int_equal(st.version, 1);
    assert_int_equal(st.redirects, 0);
    st.version = REDISLOCK_STATS_VERSION + 1;
    assert_rl_err(redislock_client_stats(c, &st), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "newer"));
    assert_rl_err(redislock_client_stats(NULL, &st), REDISLOCK_EINVAL);
    assert_rl_err(redislock_client_stats(c, NULL), REDISLOCK_EINVAL);
    redislock_free(lk);
    redislock_client_free(c);
}

/* A known snapshot as text: HELP/TYPE lines, result and reason labels,
 * cumulative buckets with le in seconds, the sum in seconds, the caller's
 * labels first in every sample. */
static void test_stats_prometheus_text(void **state)
{
    redislock_stats st;
    char buf[16384];
    int n;
    (void)state;
    memset(&st, 0, sizeof st);
    st.version = REDISLOCK_STATS_VERSION;
    st.acquired = 7;
    st.busy = 2;
    st.waits = 3;
    st.wait_buckets[0] = 1;
    st.wait_buckets[3] = 2;
    st.wait_us = 12500;
    st.holds = 1;
    st.hold_buckets[REDISLOCK_STATS_BUCKETS - 1] = 1;
    st.hold_us = 20000000000ULL; /* 20000 s: above 2^24 ms */
    st.lost[REDISLOCK_LOST_OTHER_OWNER] = 4;
    st.connects = 5;
    st.renewal_round_trips = 9;
    n = redislock_stats_prometheus(&st, NULL, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n == strlen(buf));
    print_message("%s", buf);
#define HAS(text)                                                     \
    do {                                                              \
        if (!strstr(buf, text))                                       \
            fail_msg("the text lacks '%s':\n%s", text, buf);          \
    } while (0)
    HAS("# HELP redislock_acquires_total ");
    HAS("# TYPE redislock_acquires_total counter\n");
    HAS("\nredislock_acquires_total{result=\"acquired\"} 7\n");
    HAS("\nredislock_acquires_total{result=\"busy\"} 2\n");
    HAS("\nredislock_acquires_total{result=\"cancelled\"} 0\n");
    HAS("# TYPE redislock_acquire_wait_seconds histogram\n");
    HAS("\nredislock_acquire_wait_seconds_bucket{le=\"0.001\"} 1\n");
    HAS("\nredislock_acquire_wait_seconds_bucket{le=\"0.004\"} 1\n");
    HAS("\nredislock_acquire_wait_seconds_bucket{le=\"0.008\"} 3\n");
    HAS("\nredislock_acquire_wait_seconds_bucket{le=\"16777.216\"} 3\n");
    HAS("\nredislock_acquire_wait_seconds_bucket{le=\"+Inf\"} 3\n");
    HAS("\nredislock_acquire_wait_seconds_sum 0.012500\n");
    HAS("\nredislock_acquire_wait_seconds_count 3\n");
    HAS("\nredislock_hold_seconds_bucket{le=\"16777.216\"} 0\n");
    HAS("\nredislock_hold_seconds_bucket{le=\"+Inf\"} 1\n");
    HAS("\nredislock_hold_seconds_sum 20000.000000\n");
    HAS("\nredislock_locks_lost_total{reason=\"other_owner\"} 4\n");
    HAS("\nredislock_locks_lost_total{reason=\"no_heartbeat\"} 0\n");
    HAS("\nredislock_connections_opened_total 5\n");
    HAS("# TYPE redislock_connections gauge\n");
    HAS("\nredislock_renewal_round_trips_total 9\n");
    HAS("\nredislock_failovers_total 0\n");
    HAS("\nredislock_redirects_total 0\n");
    assert_null(strstr(buf, "reason=\"7\"")); /* unknown reasons never seen: left out */
    assert_int_equal(buf[n - 1], '\n');

    /* labels first, in every sample */
    n = redislock_stats_prometheus(&st, "client=\"billing\",env=\"a\\\"b\"", buf, sizeof buf);
    assert_true(n > 0);
    HAS("\nredislock_acquires_total{client=\"billing\",env=\"a\\\"b\",result=\"acquired\"} 7\n");
    HAS("\nredislock_acquire_wait_seconds_sum{client=\"billing\",env=\"a\\\"b\"} 0.012500\n");
    HAS("\nredislock_connections_opened_total{client=\"billing\",env=\"a\\\"b\"} 5\n");
#undef HAS
}

/* snprintf()'s contract, and bad arguments. */
static void test_stats_prometheus_sizes_and_errors(void **state)
{
    redislock_stats st;
    char small[64], full[16384];
    int n, m;
    static const char *const bad[] = {
        "client", "client=billing", "client=\"billing", "1x=\"a\"", "a=\"b\",",
        "a=\"b\" ,c=\"d\"", "a=\"b\\x\"", "a=\"line\nbreak\"", "=\"v\"",
    };
    size_t i;
    (void)state;
    memset(&st, 0, sizeof st);
    n = redislock_stats_prometheus(&st, NULL, full, sizeof full);
    assert_true(n > 1000 && (size_t)n < sizeof full);
    m = redislock_stats_prometheus(&st, NULL, small, sizeof small);
    assert_int_equal(m, n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, full, sizeof small - 1);
    assert_int_equal(redislock_stats_prometheus(&st, NULL, NULL, 0), n);
    assert_rl_err(redislock_stats_prometheus(NULL, NULL, full, sizeof full), REDISLOCK_EINVAL);
    assert_rl_err(redislock_stats_prometheus(&st, NULL, NULL, 10), REDISLOCK_EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (redislock_stats_prometheus(&st, bad[i], full, sizeof full) != REDISLOCK_EINVAL)
            fail_msg("labels '%s' accepted", bad[i]);
    assert_non_null(strstr(redislock_last_error(), "labels"));
    assert_true(redislock_stats_prometheus(&st, "", full, sizeof full) == n);
    st.version = REDISLOCK_STATS_VERSION + 1;
    assert_rl_err(redislock_stats_prometheus(&st, NULL, full, sizeof full), REDISLOCK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_buckets_are_log2_ms),
        cmocka_unit_test(test_stats_hooks_count),
        cmocka_unit_test(test_stats_prometheus_text),
        cmocka_unit_test(test_stats_prometheus_sizes_and_errors),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
