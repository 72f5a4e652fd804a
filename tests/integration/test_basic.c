/* Basic lock operations against a real redis-server. */
#include "fixtures.h"

#include <stdio.h>
#include <string.h>

static int group_setup(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    int rc = ts_start(&tu_srv);
    if (rc)
        return rc == 77 ? 0 : -1;
    o.signal_expire_ms = 300;
    if (redislock_client_new(&tu_cl, tu_srv.url, &o))
        return -1;
    return 0;
}

static char *get_str(const char *fmt, const char *arg)
{
    static char buf[512];
    redisReply *r = ts_cmd(&tu_srv, fmt, arg);
    buf[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(buf, sizeof buf, "%s", r->str);
    else if (r && r->type == REDIS_REPLY_NIL)
        strcpy(buf, "(nil)");
    if (r)
        freeReplyObject(r);
    return buf;
}

/* Acquire sets the key to the handle's owner id (24 random characters),
 * without an expiry when the handle has none. */
static void test_basic_acquire_sets_owner_id_without_expiry(void **state)
{
    redislock *lk = tf_lock(tu_cl, "job", 0);

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(redislock_held(lk), 1);
    assert_string_equal(get_str("GET %s", "lock:job"), redislock_id(lk));
    assert_int_equal(ts_int(&tu_srv, "PTTL lock:job"), -1);
    assert_int_equal(strlen(redislock_id(lk)), 24);
}

/* Release deletes the key and leaves one wake-up ("1") in the signal list,
 * which expires after the client's signal expiry (300 ms here). */
static void test_basic_release_leaves_one_expiring_wakeup(void **state)
{
    redislock *lk = tf_lock(tu_cl, "job", 0);
    int64_t start;
    long long pttl;

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:job"), 0);
    assert_int_equal(ts_int(&tu_srv, "LLEN lock-signal:job"), 1);
    assert_string_equal(get_str("LINDEX %s 0", "lock-signal:job"), "1");
    pttl = ts_int(&tu_srv, "PTTL lock-signal:job");
    assert_true(pttl > 0 && pttl <= 300);
    start = tu_now_ms();
    while (ts_int(&tu_srv, "EXISTS lock-signal:job") == 1 && tu_now_ms() - start < 3000)
        tu_sleep_ms(20);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-signal:job"), 0);
}

/* An expiry is set in ms; a second acquire of a free lock also works. */
static void test_basic_expiry_set_in_ms(void **state)
{
    redislock *lk = tf_lock(tu_cl, "exp", 5000);
    long long pttl;
    assert_rl_ok(redislock_acquire(lk, 1000));
    pttl = ts_int(&tu_srv, "PTTL lock:exp");
    assert_true(pttl > 4000 && pttl <= 5000);
    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_acquire(lk, -1));
    assert_rl_ok(redislock_release(lk));
}

/* try_acquire on a held lock answers busy at once, in one command, naming
 * the holder. */
static void test_basic_try_acquire_busy_in_one_command(void **state)
{
    redislock *holder = tf_lock(tu_cl, "busy", 0), *other = tf_lock(tu_cl, "busy", 0);
    int64_t t0;
    assert_rl_ok(redislock_acquire(holder, 0));
    /* warm the connection pool so that no connection set-up is counted */
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    ts_resetstat(&tu_srv);
    t0 = tu_now_ms();
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    assert_true(tu_now_ms() - t0 < TU_MS(200));
    assert_int_equal(ts_calls(&tu_srv, NULL), 1);
    assert_int_equal(ts_calls(&tu_srv, "evalsha"), 1);
    /* the message names the holder */
    assert_non_null(strstr(redislock_errmsg(other), redislock_id(holder)));
    assert_non_null(strstr(redislock_last_error(), "no expiry"));
    assert_int_equal(redislock_held(other), 0);
    assert_rl_ok(redislock_release(holder));
}

/* A handle (or another with the same id) that holds the lock gets EALREADY. */
static void test_basic_acquire_by_holder_id_is_ealready(void **state)
{
    redislock *lk = tf_lock(tu_cl, "again", 0), *twin;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_err(redislock_acquire(lk, 500), REDISLOCK_EALREADY);
    o.id = redislock_id(lk);
    twin = tf_lock_opts(tu_cl, "again", &o);
    assert_rl_err(redislock_try_acquire(twin), REDISLOCK_EALREADY);
    assert_rl_ok(redislock_release(lk));
}

/* Extend sets the TTL to the given expiry, or with 0 back to the handle's. */
static void test_basic_extend_sets_ttl(void **state)
{
    redislock *lk = tf_lock(tu_cl, "ext", 2000);
    long long after;

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_extend(lk, 60000));
    after = ts_int(&tu_srv, "PTTL lock:ext");
    assert_true(after > 50000 && after <= 60000);
    assert_rl_ok(redislock_extend(lk, 0)); /* back to the handle's 2000 */
    after = ts_int(&tu_srv, "PTTL lock:ext");
    assert_true(after > 1000 && after <= 2000);
}

/* A handle with the holder's id may extend and release the lock; the
 * handle that took it then finds it not held. */
static void test_basic_same_id_may_extend_and_release(void **state)
{
    redislock *lk = tf_lock(tu_cl, "ext", 2000), *same;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    long long after;

    assert_rl_ok(redislock_acquire(lk, 0));
    o.id = redislock_id(lk);
    o.expire_ms = 2000;
    same = tf_lock_opts(tu_cl, "ext", &o);
    assert_rl_ok(redislock_extend(same, 30000));
    after = ts_int(&tu_srv, "PTTL lock:ext");
    assert_true(after > 20000 && after <= 30000);
    assert_rl_ok(redislock_release(same));
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
}

/* Another owner id can neither extend nor release the lock: ENOTHELD, the
 * TTL and the owner unchanged. */
static void test_basic_other_id_cannot_extend_or_release(void **state)
{
    redislock *lk = tf_lock(tu_cl, "ext", 30000), *other = tf_lock(tu_cl, "ext", 2000);
    long long before, after;

    assert_rl_ok(redislock_acquire(lk, 0));
    before = ts_int(&tu_srv, "PTTL lock:ext");
    assert_rl_err(redislock_extend(other, 90000), REDISLOCK_ENOTHELD);
    after = ts_int(&tu_srv, "PTTL lock:ext");
    assert_true(after <= before && after > 20000);
    assert_rl_err(redislock_release(other), REDISLOCK_ENOTHELD);
    assert_string_equal(get_str("GET %s", "lock:ext"), redislock_id(lk));
    assert_rl_ok(redislock_release(lk));
}

/* A lock without expiry cannot be extended: ENOTEXPIRABLE, and no expiry
 * is added; a zero or negative expiry is EINVAL. */
static void test_basic_extend_without_expiry_refused(void **state)
{
    redislock *forever = tf_lock(tu_cl, "forever", 0);

    assert_rl_ok(redislock_acquire(forever, 0));
    assert_rl_err(redislock_extend(forever, 1000), REDISLOCK_ENOTEXPIRABLE);
    assert_int_equal(ts_int(&tu_srv, "PTTL lock:forever"), -1);
    assert_rl_err(redislock_extend(forever, 0), REDISLOCK_EINVAL);
    assert_rl_err(redislock_extend(forever, -5), REDISLOCK_EINVAL);
    assert_rl_ok(redislock_release(forever));
}

/* Release of a lock never acquired, or released already: ENOTHELD. */
static void test_basic_release_twice_is_enotheld(void **state)
{
    redislock *lk = tf_lock(tu_cl, "rel", 150);

    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD); /* never acquired */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD); /* double */
}

/* Release after the lock expired: ENOTHELD, and held() says no. */
static void test_basic_release_after_expiry_is_enotheld(void **state)
{
    redislock *lk = tf_lock(tu_cl, "rel", 150);
    int64_t t0;

    assert_rl_ok(redislock_acquire(lk, 0));
    t0 = tu_now_ms();
    while (ts_int(&tu_srv, "EXISTS lock:rel") == 1 && tu_now_ms() - t0 < 3000)
        tu_sleep_ms(20);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD); /* expired */
    assert_int_equal(redislock_held(lk), 0);
}

/* Release after a reset and a new owner: ENOTHELD, and the new owner's
 * lock is untouched. */
static void test_basic_release_after_reset_leaves_new_owner(void **state)
{
    redislock *lk = tf_lock(tu_cl, "rel", 150), *newowner = tf_lock(tu_cl, "rel", 0);

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(redislock_reset(tu_cl, "rel"), 1);
    assert_rl_ok(redislock_acquire(newowner, 0));
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD); /* reset */
    assert_string_equal(get_str("GET %s", "lock:rel"), redislock_id(newowner));
    assert_rl_ok(redislock_release(newowner));
}

/* Queries: held by anyone, holder id, TTL, mine. */
static void test_basic_query_reports_holder_ttl_and_mine(void **state)
{
    redislock *lk = tf_lock(tu_cl, "q", 10000), *other = tf_lock(tu_cl, "q", 0);
    redislock_info info;

    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 0);
    assert_int_equal(info.mine, 0);
    assert_int_equal(info.ttl_ms, 0);
    assert_string_equal(info.owner, "");

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 1);
    assert_int_equal(info.mine, 1);
    assert_true(info.ttl_ms > 9000 && info.ttl_ms <= 10000);
    assert_string_equal(info.owner, redislock_id(lk));

    assert_rl_ok(redislock_query(other, &info));
    assert_int_equal(info.held, 1);
    assert_int_equal(info.mine, 0);
    assert_string_equal(info.owner, redislock_id(lk));
    assert_rl_ok(redislock_release(lk));

    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.ttl_ms, -1);
    assert_rl_ok(redislock_release(other));
}

/* Owner ids: caller-given, with a prefix, and random ones differ. */
static void test_basic_owner_ids_given_prefixed_or_random(void **state)
{
    redislock *a, *b, *c;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.id_prefix = "hostA:";
    a = tf_lock_opts(tu_cl, "ids", &o);
    b = tf_lock_opts(tu_cl, "ids", &o);
    assert_memory_equal(redislock_id(a), "hostA:", 6);
    assert_int_equal(strlen(redislock_id(a)), 30);
    assert_string_not_equal(redislock_id(a), redislock_id(b));
    o.id = "worker-7";
    c = tf_lock_opts(tu_cl, "ids", &o);
    assert_string_equal(redislock_id(c), "worker-7");
    assert_rl_ok(redislock_acquire(c, 0));
    assert_string_equal(get_str("GET %s", "lock:ids"), "worker-7");
    assert_rl_ok(redislock_release(c));
    assert_string_equal(redislock_name(c), "ids");
}

/* Key layouts: a prefix, and the opt-in hash-tag layout. */
static void test_basic_key_prefix_and_hash_tag_layouts(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *pc, *tc;
    redislock *p, *t;

    o.key_prefix = "app1:";
    pc = tf_client_opts(tu_srv.url, &o);
    o.key_prefix = NULL;
    o.hash_tag = 1;
    tc = tf_client_opts(tu_srv.url, &o);
    p = tf_lock(pc, "k", 0);
    t = tf_lock(tc, "k", 0);
    assert_rl_ok(redislock_acquire(p, 0));
    assert_rl_ok(redislock_acquire(t, 0)); /* different keys: both free */
    assert_string_equal(get_str("GET %s", "app1:lock:k"), redislock_id(p));
    assert_string_equal(get_str("GET %s", "lock:{k}"), redislock_id(t));
    assert_rl_ok(redislock_release(p));
    assert_rl_ok(redislock_release(t));
    assert_int_equal(ts_int(&tu_srv, "LLEN app1:lock-signal:k"), 1);
    assert_int_equal(ts_int(&tu_srv, "LLEN lock-signal:{k}"), 1);
}

/* NOSCRIPT: the scripts are loaded again after SCRIPT FLUSH, once each. */
static void test_basic_scripts_reloaded_after_flush(void **state)
{
    redislock *lk = tf_lock(tu_cl, "flush", 0);
    redisReply *r;
    assert_rl_ok(redislock_acquire(lk, 0));
    r = ts_cmd(&tu_srv, "SCRIPT FLUSH");
    freeReplyObject(r);
    ts_resetstat(&tu_srv);
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_calls(&tu_srv, "evalsha"), 1);
    assert_int_equal(ts_calls(&tu_srv, "eval"), 1);
    assert_rl_ok(redislock_acquire(lk, 0)); /* loads acquire */
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_calls(&tu_srv, "eval"), 2);
    assert_rl_ok(redislock_acquire(lk, 0)); /* both cached now */
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_calls(&tu_srv, "eval"), 2);
    assert_int_equal(ts_calls(&tu_srv, "evalsha"), 5);
}

/* A binary name with bytes > 127 works and round-trips. */
static void test_basic_binary_name_round_trips(void **state)
{
    const char name[] = "caf\xc3\xa9-\xff\x80-lock";
    redislock *lk = tf_lock(tu_cl, name, 0), *other = tf_lock(tu_cl, name, 0);
    redisReply *r;
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    r = ts_cmd(&tu_srv, "EXISTS lock:%s", name);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_try_acquire(other));
    assert_rl_ok(redislock_release(other));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_basic_acquire_sets_owner_id_without_expiry),
        TEST(test_basic_release_leaves_one_expiring_wakeup),
        TEST(test_basic_expiry_set_in_ms),
        TEST(test_basic_try_acquire_busy_in_one_command),
        TEST(test_basic_acquire_by_holder_id_is_ealready),
        TEST(test_basic_extend_sets_ttl),
        TEST(test_basic_same_id_may_extend_and_release),
        TEST(test_basic_other_id_cannot_extend_or_release),
        TEST(test_basic_extend_without_expiry_refused),
        TEST(test_basic_release_twice_is_enotheld),
        TEST(test_basic_release_after_expiry_is_enotheld),
        TEST(test_basic_release_after_reset_leaves_new_owner),
        TEST(test_basic_query_reports_holder_ttl_and_mine),
        TEST(test_basic_owner_ids_given_prefixed_or_random),
        TEST(test_basic_key_prefix_and_hash_tag_layouts),
        TEST(test_basic_scripts_reloaded_after_flush),
        TEST(test_basic_binary_name_round_trips),
    };
    return cmocka_run_group_tests_name("basic", tests, group_setup, tu_group_teardown);
}
