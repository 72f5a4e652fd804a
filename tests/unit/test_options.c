/* Client and lock options that need no server: the versioned client options
 * (a version-1 or version-2 caller's shorter struct is read only as far as
 * its version reaches), the TLS options of version 3, the versioned lock
 * options (version 1 without fencing, max_hold_ms and heartbeat_ms; version
 * 2 without the kinds of lock) and the checks of version 2's and 3's (the
 * fair lock's and the semaphore's keys), the clock drift allowance and the expiry bounds it
 * implies. */
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

/* The layout a caller built against version 2 passes: version 3 without
 * the TLS fields at the end. */
typedef struct v2_options {
    unsigned version;
    int64_t connect_timeout_ms, command_timeout_ms;
    const char *key_prefix;
    int hash_tag;
    int64_t signal_expire_ms;
    int max_idle_connections;
    const char *username, *password;
    redislock_log_fn log;
    void *log_userdata;
    int log_level;
    int64_t master_timeout_ms;
    int clock_drift_ppm;
} v2_options;

static void test_version_2_options_are_read_no_further_than_version_2(void **state)
{
    v2_options *o = calloc(1, sizeof *o);
    redislock_client *c = NULL;
    (void)state;
    assert_non_null(o);
    /* the fields version 2 has are where version 3 has them */
    assert_int_equal(offsetof(v2_options, clock_drift_ppm),
                     offsetof(redislock_client_options, clock_drift_ppm));
    assert_true(sizeof *o <= offsetof(redislock_client_options, tls_ca_file));
    o->version = 2;
    o->command_timeout_ms = 123;
    o->clock_drift_ppm = 20000;
    o->max_idle_connections = 3;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1",
                                      (const redislock_client_options *)(void *)o));
    assert_int_equal(c->command_timeout_ms, 123);
    assert_int_equal(c->drift_ppm, 20000);
    assert_int_equal(c->max_idle, 3);
    assert_null(c->tls.ca_file);
    assert_int_equal(c->tls.insecure, 0);
    redislock_client_free(c);
    free(o);
}

/* A caller built against version 3 passes a struct that ends with
 * tls_insecure: the Sentinel and WAIT fields of version 4 are not read
 * (allocated at exactly that size: valgrind and ASan see a read past it),
 * and take their defaults. */
static void test_version_3_options_are_read_no_further_than_version_3(void **state)
{
    size_t v3 = offsetof(redislock_client_options, tls_insecure) + sizeof(int);
    redislock_client_options full = REDISLOCK_CLIENT_OPTIONS_INIT;
    void *o = calloc(1, v3);
    redislock_client *c = NULL;
    (void)state;
    assert_non_null(o);
    full.version = 3;
    full.command_timeout_ms = 321;
    full.tls_insecure = 1;
    memcpy(o, &full, v3);
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1",
                                      (const redislock_client_options *)o));
    assert_int_equal(c->command_timeout_ms, 321);
    assert_int_equal(c->tls.insecure, 1);
    assert_null(c->sentinel_password);
    assert_int_equal(c->sentinel_timeout_ms, 300);
    assert_int_equal(c->min_replicas, 0);
    assert_int_equal(c->wait_ms, 50);
    redislock_client_free(c);
    free(o);
}

/* Version 4: the sentinels' credentials are copied; min_replicas and
 * wait_ms are checked; a URL's ?min_replicas wins over the option. */
static void test_version_4_sentinel_and_wait_options(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = NULL;
    char pw[] = "s3cret";
    (void)state;
    o.sentinel_username = "watcher";
    o.sentinel_password = pw;
    o.sentinel_timeout_ms = 150;
    o.min_replicas = 2;
    o.wait_ms = 75;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", &o));
    pw[0] = 'X'; /* copied */
    assert_string_equal(c->sentinel_username, "watcher");
    assert_string_equal(c->sentinel_password, "s3cret");
    assert_int_equal(c->sentinel_timeout_ms, 150);
    assert_int_equal(c->members[0].min_replicas, 2);
    assert_int_equal(c->members[0].wait_ms, 75);
    redislock_client_free(c);
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1?min_replicas=0&wait_ms=9",
                                      &o));
    assert_int_equal(c->members[0].min_replicas, 0);
    assert_int_equal(c->members[0].wait_ms, 9);
    redislock_client_free(c);
    o.min_replicas = -1;
    assert_rl_err(redislock_client_new(&c, "redis://127.0.0.1:1", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "min_replicas"));
    o.min_replicas = 0;
    o.wait_ms = -5;
    assert_rl_err(redislock_client_new(&c, "redis://127.0.0.1:1", &o), REDISLOCK_EINVAL);
}

/* The lock options a caller built against version 1 passes: no fencing,
 * max_hold_ms, heartbeat_ms.  Allocated alone, as above. */
typedef struct v1_lock_options {
    unsigned version;
    int64_t expire_ms;
    const char *id;
    const char *id_prefix;
    int auto_renew;
    int64_t renew_interval_ms;
    redislock_lost_fn on_lost;
    void *on_lost_userdata;
} v1_lock_options;

static void test_version_1_lock_options_are_read_no_further_than_version_1(void **state)
{
    v1_lock_options *o = calloc(1, sizeof *o);
    redislock_client *c = NULL;
    redislock *lk = NULL;
    unsigned v;
    (void)state;
    assert_non_null(o);
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", NULL));
    for (v = 0; v <= 1; v++) { /* 0 is the same as 1 */
        o->version = v;
        o->expire_ms = 3000;
        o->id = "v1-owner";
        o->auto_renew = 1;
        o->renew_interval_ms = 700;
        assert_rl_ok(redislock_new(&lk, c, "v1", (const redislock_options *)(void *)o));
        assert_int_equal(lk->expire_ms, 3000);
        assert_string_equal(lk->id, "v1-owner");
        assert_int_equal(lk->rn.enabled, 1);
        assert_int_equal(lk->rn.interval_ms, 700);
        assert_null(lk->fence); /* no fencing */
        assert_int_equal(lk->rn.max_hold_ms, 0);
        assert_int_equal(lk->rn.heartbeat_ms, 0);
        redislock_free(lk);
    }
    redislock_client_free(c);
    free(o);
}

/* Version 3's TLS fields are copied; "" is the same as NULL; a key needs
 * its certificate.  A client without rediss:// masters loads no file. */
static void test_version_3_tls_options_are_copied(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = NULL;
    char ca[] = "/nonexistent/ca.pem";
    (void)state;
    assert_true(o.version >= 3);
    o.tls_ca_file = ca;
    o.tls_ca_dir = "";
    o.tls_cert_file = "/nonexistent/client.pem";
    o.tls_server_name = "redis.example";
    o.tls_insecure = 1;
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", &o));
    ca[1] = 'X'; /* copied, not kept */
    assert_string_equal(c->tls.ca_file, "/nonexistent/ca.pem");
    assert_null(c->tls.ca_dir);
    assert_string_equal(c->tls.cert_file, "/nonexistent/client.pem");
    assert_null(c->tls.key_file);
    assert_string_equal(c->tls.server_name, "redis.example");
    assert_int_equal(c->tls.insecure, 1);
    assert_null(c->tls_ctx);
    redislock_client_free(c);
    o.tls_cert_file = NULL;
    o.tls_key_file = "/nonexistent/client.key";
    assert_rl_err(redislock_client_new(&c, "redis://127.0.0.1:1", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "tls_key_file"));
}

/* The lock options a caller built against version 2 passes: no fair,
 * permits, waiter_lease_ms, grant_lease_ms.  Allocated alone, so that a
 * read past its end is caught by the sanitizers. */
typedef struct v2_lock_options {
    unsigned version;
    int64_t expire_ms;
    const char *id;
    const char *id_prefix;
    int auto_renew;
    int64_t renew_interval_ms;
    redislock_lost_fn on_lost;
    void *on_lost_userdata;
    int fencing;
    int64_t max_hold_ms;
    int64_t heartbeat_ms;
} v2_lock_options;

static void test_version_2_lock_options_are_read_no_further_than_version_2(void **state)
{
    v2_lock_options *o = calloc(1, sizeof *o);
    redislock_client *c = NULL;
    redislock *lk = NULL;
    (void)state;
    assert_non_null(o);
    assert_rl_ok(redislock_client_new(&c, "redis://127.0.0.1:1", NULL));
    o->version = 2;
    o->expire_ms = 3000;
    o->fencing = 1;
    o->auto_renew = 1;
    o->max_hold_ms = 9000;
    o->heartbeat_ms = 800;
    assert_rl_ok(redislock_new(&lk, c, "v2", (const redislock_options *)(void *)o));
    assert_ptr_equal(lk->kind, &redislock__kind_mutex);
    assert_string_equal(lk->fence, "lock-fence:v2");
    assert_int_equal(lk->rn.max_hold_ms, 9000);
    assert_int_equal(lk->rn.heartbeat_ms, 800);
    redislock_free(lk);
    redislock_client_free(c);
    free(o);
}

/* Version 3: the kinds of lock, their keys and leases, and what they
 * refuse without a server. */
static void test_version_3_lock_kinds(void **state)
{
    static const char *const urls[] = { "redis://127.0.0.1:1", "redis://127.0.0.1:2",
                                        "redis://127.0.0.1:3" };
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = NULL, *multi = NULL;
    redislock *lk = NULL;
    (void)state;
    assert_rl_ok(redislock_client_new(&c, urls[0], NULL));
    assert_rl_ok(redislock_client_new_multi(&multi, urls, 3, NULL));
    o.expire_ms = 3000;
    o.fair = 1;
    o.id = "me";
    assert_rl_ok(redislock_new(&lk, c, "f", &o));
    assert_ptr_equal(lk->kind, &redislock__kind_fair);
    assert_string_equal(lk->key, "lock:f"); /* python-redis-lock's key */
    assert_string_equal(lk->qkeys[0], "lock-holders:{f}");
    assert_string_equal(lk->qkeys[1], "lock-queue:{f}");
    assert_string_equal(lk->qkeys[2], "lock-waiters:{f}");
    assert_string_equal(lk->qkeys[3], "lock-signal:f");
    assert_string_equal(lk->fence, "lock-fence:f");
    assert_string_equal(lk->sig, "lock-wake:{f}:me");
    assert_int_equal(lk->permits, 1);
    assert_int_equal(lk->waiter_lease_ms, 15000);
    assert_int_equal(lk->grant_lease_ms, 1000);
    redislock_free(lk);
    o.permits = 4; /* a semaphore (fair or not: always in order) */
    o.waiter_lease_ms = 900;
    o.grant_lease_ms = 50;
    assert_rl_ok(redislock_new(&lk, c, "s", &o));
    assert_ptr_equal(lk->kind, &redislock__kind_semaphore);
    assert_string_equal(lk->key, "sem:{s}:holders");
    assert_string_equal(lk->qkeys[3], "sem:{s}:permits");
    assert_string_equal(lk->fence, "sem:{s}:token");
    assert_string_equal(lk->sig, "sem:{s}:wake:me");
    assert_int_equal(lk->permits, 4);
    assert_int_equal(lk->waiter_lease_ms, 900);
    assert_int_equal(lk->grant_lease_ms, 50);
    redislock_free(lk);
    /* one queue needs one master */
    assert_rl_err(redislock_new(&lk, multi, "s", &o), REDISLOCK_ENOTSUP);
    assert_non_null(strstr(redislock_last_error(), "majority mode (3 masters)"));
    o.permits = 0;
    assert_rl_err(redislock_new(&lk, multi, "f", &o), REDISLOCK_ENOTSUP);
    redislock_client_free(multi);
    redislock_client_free(c);
}

static void test_lock_options_of_version_2_are_checked(void **state)
{
    static const char *const urls[] = { "redis://127.0.0.1:1", "redis://127.0.0.1:2",
                                        "redis://127.0.0.1:3" };
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = NULL, *multi = NULL;
    redislock *lk = NULL;
    (void)state;
    assert_rl_ok(redislock_client_new(&c, urls[0], NULL));
    assert_rl_ok(redislock_client_new_multi(&multi, urls, 3, NULL));
    o.expire_ms = 3000;
    o.fencing = 1;
    assert_rl_ok(redislock_new(&lk, c, "f", &o));
    assert_string_equal(lk->fence, "lock-fence:f");
    redislock_free(lk);
    /* majority mode cannot hand out tokens that never go back */
    assert_rl_err(redislock_new(&lk, multi, "f", &o), REDISLOCK_ENOTSUP);
    assert_non_null(strstr(redislock_last_error(), "majority"));
    o.fencing = 0;
    o.max_hold_ms = 10000;
    assert_rl_err(redislock_new(&lk, c, "f", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "auto_renew"));
    o.max_hold_ms = 0;
    o.heartbeat_ms = 500;
    assert_rl_err(redislock_new(&lk, c, "f", &o), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "heartbeat_ms needs auto_renew"));
    o.auto_renew = 1;
    o.heartbeat_ms = -1;
    assert_rl_err(redislock_new(&lk, c, "f", &o), REDISLOCK_EINVAL);
    o.heartbeat_ms = 500;
    o.max_hold_ms = REDISLOCK__MAX_EXPIRE_MS + 1;
    assert_rl_err(redislock_new(&lk, c, "f", &o), REDISLOCK_EINVAL);
    o.max_hold_ms = 10000;
    assert_rl_ok(redislock_new(&lk, c, "f", &o));
    assert_int_equal(lk->rn.max_hold_ms, 10000);
    assert_int_equal(lk->rn.heartbeat_ms, 500);
    redislock_free(lk);
    o.version = REDISLOCK_OPTIONS_VERSION + 1;
    assert_rl_err(redislock_new(&lk, c, "f", &o), REDISLOCK_EINVAL);
    assert_null(lk);
    /* the getters of a NULL handle */
    assert_int_equal(redislock_token(NULL), 0);
    assert_rl_err(redislock_heartbeat(NULL), REDISLOCK_EINVAL);
    redislock_client_free(multi);
    redislock_client_free(c);
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
        cmocka_unit_test(test_version_2_options_are_read_no_further_than_version_2),
        cmocka_unit_test(test_version_3_tls_options_are_copied),
        cmocka_unit_test(test_version_3_options_are_read_no_further_than_version_3),
        cmocka_unit_test(test_version_4_sentinel_and_wait_options),
        cmocka_unit_test(test_version_1_lock_options_are_read_no_further_than_version_1),
        cmocka_unit_test(test_lock_options_of_version_2_are_checked),
        cmocka_unit_test(test_version_2_lock_options_are_read_no_further_than_version_2),
        cmocka_unit_test(test_version_3_lock_kinds),
        cmocka_unit_test(test_drift_option_range_is_checked),
        cmocka_unit_test(test_local_expiry_is_ttl_less_the_drift_allowance),
        cmocka_unit_test(test_expiry_must_outlast_the_drift_allowance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
