/* The facts README's "What a service author needs to know" and redislock(3)
 * state, checked against a real server: handles sharing a fixed id are one
 * owner (EALREADY, and one release frees the other's lock); each blocked
 * waiter holds a connection; extend sets the expiry, it does not add. */
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_service_shared_id_is_one_owner(void **state)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock *a, *b;
    int64_t t0;
    o.id = "svc@host:fixed";
    assert_rl_ok(redislock_new(&a, tu_cl, "shared", &o));
    assert_rl_ok(redislock_new(&b, tu_cl, "shared", &o));
    assert_rl_ok(redislock_acquire(a, 0));
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(b, 1000), REDISLOCK_EALREADY); /* no wait */
    assert_true(tu_now_ms() - t0 < TU_MS(500));
    assert_rl_ok(redislock_release(b));                  /* frees a's lock */
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:shared"), 0);
    assert_rl_err(redislock_release(a), REDISLOCK_ENOTHELD);
    redislock_free(a);
    redislock_free(b);
}

struct waiter {
    pthread_t t;
    int rc;
};

static void *wait_lock(void *arg)
{
    struct waiter *w = arg;
    redislock *lk = tu_lock(tu_cl, "busy", 0);
    w->rc = redislock_acquire(lk, 20000);
    if (w->rc == REDISLOCK_OK)
        redislock_release(lk);
    redislock_free(lk);
    return NULL;
}

/* N waiting threads: N connections blocked in BLPOP at once. */
static void test_service_connection_per_waiter(void **state)
{
    enum { N = 20 };
    struct waiter w[N];
    redislock *h = tu_lock(tu_cl, "busy", 0);
    int i;
    assert_rl_ok(redislock_acquire(h, 0));
    for (i = 0; i < N; i++)
        assert_int_equal(pthread_create(&w[i].t, NULL, wait_lock, &w[i]), 0);
    ts_await_blocked(&tu_srv, N);
    assert_true(ts_info(&tu_srv, "clients", "connected_clients") >= N + 1);
    assert_rl_ok(redislock_release(h)); /* each waiter gets it in turn */
    for (i = 0; i < N; i++) {
        pthread_join(w[i].t, NULL);
        assert_int_equal(w[i].rc, REDISLOCK_OK);
    }
    redislock_free(h);
}

/* extend(5000) on a lock with 60 s left leaves 5 s, not 65. */
static void test_service_extend_sets(void **state)
{
    redislock *lk = tu_lock(tu_cl, "ext", 60000);
    long long ttl;
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_extend(lk, 5000));
    ttl = ts_int(&tu_srv, "PTTL lock:ext");
    assert_true(ttl > 0 && ttl <= 5000);
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_service_shared_id_is_one_owner, tu_setup),
        cmocka_unit_test_setup(test_service_connection_per_waiter, tu_setup),
        cmocka_unit_test_setup(test_service_extend_sets, tu_setup),
    };
    return cmocka_run_group_tests_name("service", tests, tu_group_setup, tu_group_teardown);
}
