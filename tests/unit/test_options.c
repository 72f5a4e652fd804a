/* Client and lock options that need no server: the versioned client options
 * (a version-1 caller's shorter struct is read only as far as version 1
 * reaches), the clock drift allowance and the expiry bounds it implies. */
#include "internal.h"
#include "testutil.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The layout a caller built against version 1 passes: int milliseconds,
 * no clock_drift_ppm.  Allocated alone, so that reading further is caught
 * by ASan and valgrind. */
typedef struct v1_options {
    unsigned version;
    int connect_timeout_ms, command_timeout_ms;
    const char *key_prefix;
    int hash_tag, signal_expire_ms, max_idle_connections;
    const char *username, *password;
    redislock_log_fn log;
    void *log_userdata;
    int log_level, master_timeout_ms;
} v1_options;

static void test_version_1_options_are_read_no_further_than_version_1(void **state)
{
    v1_options *o = calloc(1, sizeof *o);
    redislock_client *c = NULL;
    (void)state;
    assert_non_null(o);
    o->version = 1;
    o->command_timeout_ms = 123;
    o->master_timeout_ms = 77;
    o->log_level = REDISLOCK_LOG_INFO;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1",
                                      (const redislock_client_options *)(void *)o));
    assert_int_equal(c->command_timeout_ms, 123);
    assert_int_equal(c->master_timeout_ms, 77);
    assert_int_equal(c->log_level, REDISLOCK_LOG_INFO);
    assert_int_equal(c->connect_timeout_ms, 2000);
    assert_int_equal(c->drift_ppm, 10000); /* the default */
    redislock_client_free(c);
    free(o);
}

static void test_drift_option_range_is_checked(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = NULL;
    (void)state;
    o.clock_drift_ppm = -2;
    assert_rl_err(redislock_client_new(&c, "redis://127.0.0.1:1", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "clock_drift_ppm"));
    o.clock_drift_ppm = 500001;
    assert_rl_err(redislock_client_new(&c, "redis://127.0.0.1:1", &o), REDISLOCK_EINVAL);
    o.clock_drift_ppm = -1; /* only the fixed 2 ms */
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", &o));
    assert_int_equal(c->drift_ppm, 0);
    redislock_client_free(c);
}

/* sent + ttl - (ttl * ppm / 1e6 + 2 ms), in microseconds; 0 for no TTL */
static void test_local_expiry_is_ttl_less_the_drift_allowance(void **state)
{
    static const struct {
        int ppm;          /* option value */
        int64_t ttl_ms;
        int64_t want_us;  /* from a send at 1,000,000 us */
    } cases[] = {
        { 0, 1000, 1000000 + 1000000 - 10000 - 2000 },
        { 0, 30000, 1000000 + 30000000 - 300000 - 2000 },
        { 0, 3, 1000000 + 3000 - 30 - 2000 },
        { -1, 1000, 1000000 + 1000000 - 2000 },
        { 100000, 1000, 1000000 + 1000000 - 100000 - 2000 },
        { 0, 0, 1000000 - 2000 }, /* a key about to expire */
        { 0, -1, 0 },             /* a key without TTL */
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
        redislock_client *c = NULL;
        o.clock_drift_ppm = cases[i].ppm;
        assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", &o));
        assert_int_equal(redislock__valid_until(c, 1000000, cases[i].ttl_ms),
                         cases[i].want_us);
        redislock_client_free(c);
    }
}

/* An expiry not longer than the allowance could never be valid. */
static void test_expiry_must_outlast_the_drift_allowance(void **state)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    (void)state;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", NULL));
    o.expire_ms = 2;
    assert_rl_err(redislock_new(&lk, c, "x", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "drift"));
    o.expire_ms = 3;
    assert_rl_ok(redislock_new(&lk, c, "x", &o));
    redislock_free(lk);
    o.expire_ms = REDISLOCK__MAX_EXPIRE_MS + 1;
    assert_rl_err(redislock_new(&lk, c, "x", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "too large"));
    redislock_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_1_options_are_read_no_further_than_version_1),
        cmocka_unit_test(test_drift_option_range_is_checked),
        cmocka_unit_test(test_local_expiry_is_ttl_less_the_drift_allowance),
        cmocka_unit_test(test_expiry_must_outlast_the_drift_allowance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
