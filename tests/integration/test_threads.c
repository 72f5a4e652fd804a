/* 12. 32 threads share one client, each with its own handle, on 4 locks,
 * running a random mix of operations: every call succeeds or fails with an
 * expected code, each lock has at most one holder at a time, and the client
 * keeps a bounded number of connections. */
#include "fixtures.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 32
#define LOCKS 4
#define OPS 300

static ts_server srv;
static redislock_client *cl;
static int inside[LOCKS];
static int violations, unexpected, ops_done;
static char first_unexpected[600];

static int slow_replies; /* acquires that saw no reply within their time */

static void note_unexpected(const char *what, int rc)
{
    if (__atomic_add_fetch(&unexpected, 1, __ATOMIC_SEQ_CST) == 1)
        snprintf(first_unexpected, sizeof first_unexpected, "%s -> %s: %s", what,
                 redislock_err_name(rc), redislock_last_error());
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    int idx = (int)(uintptr_t)arg % LOCKS, i;
    char name[16];
    redislock *lk;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    snprintf(name, sizeof name, "L%d", idx);
    o.expire_ms = 10000;
    if (redislock_new(&lk, cl, name, &o)) {
        note_unexpected("redislock_new", -1);
        return NULL;
    }
    for (i = 0; i < OPS; i++) {
        int op = (int)(rand_r(&seed) % 4), rc;
        redislock_info info;
        switch (op) {
        case 0: /* acquire with a short timeout, hold briefly, release */
        case 1:
            rc = op == 0 ? redislock_acquire(lk, 50) : redislock_try_acquire(lk);
            if (rc == 0) {
                if (__atomic_add_fetch(&inside[idx], 1, __ATOMIC_SEQ_CST) != 1)
                    __atomic_add_fetch(&violations, 1, __ATOMIC_SEQ_CST);
                if (rand_r(&seed) % 2 && (rc = redislock_extend(lk, 5000)))
                    note_unexpected("extend", rc);
                __atomic_sub_fetch(&inside[idx], 1, __ATOMIC_SEQ_CST);
                if ((rc = redislock_release(lk)))
                    note_unexpected("release", rc);
            } else if (rc == REDISLOCK_EIO && op == 0 &&
                       strstr(redislock_last_error(), "no reply in time")) {
                /* 32 threads under valgrind: a reply can take longer than
                 * 50 ms plus the slack; that is an I/O error by contract */
                __atomic_add_fetch(&slow_replies, 1, __ATOMIC_SEQ_CST);
            } else if (rc != REDISLOCK_ETIMEDOUT && rc != REDISLOCK_EBUSY) {
                note_unexpected("acquire", rc);
            }
            break;
        case 2:
            if ((rc = redislock_query(lk, &info)))
                note_unexpected("query", rc);
            else if (info.mine)
                note_unexpected("query says mine while not holding", 0);
            break;
        default: /* release while not holding: ENOTHELD, harmless */
            rc = redislock_release(lk);
            if (rc != REDISLOCK_ENOTHELD)
                note_unexpected("release of a lock not held", rc);
            break;
        }
        __atomic_add_fetch(&ops_done, 1, __ATOMIC_SEQ_CST);
    }
    redislock_free(lk);
    return NULL;
}

static long long connected_clients(void)
{
    return ts_info(&srv, "clients", "connected_clients");
}

static void test_threads_shared_client_mixed_operations_consistent(void **state)
{
    pthread_t t[THREADS];
    int i;
    long long conns;
    int64_t t0;

    tf_server_start(&srv);
    cl = tf_client(srv.url);
    t0 = tu_now_ms();
    for (i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    conns = connected_clients() - 1; /* less the harness's own */
    print_message("      %d operations by %d threads in %lld ms; %lld connections "
                  "left open (idle pool); %d acquires without a reply in time\n",
                  ops_done, THREADS, (long long)(tu_now_ms() - t0), conns, slow_replies);
    if (unexpected)
        fail_msg("%d unexpected results; first: %s", unexpected, first_unexpected);
    assert_int_equal(violations, 0);
    assert_int_equal(ops_done, THREADS * OPS);
    assert_true(conns >= 1 && conns <= 8); /* the default max idle */
    tf_undefer(cl);
    /* freeing the client closes them all */
    t0 = tu_now_ms();
    while (connected_clients() > 1 && tu_now_ms() - t0 < 2000)
        tu_sleep_ms(10);
    assert_int_equal(connected_clients(), 1);
}

/* A child process after fork() never talks on the parent's sockets: it
 * opens its own, and the parent's pooled connections keep working. */
static int child_after_fork(void *arg)
{
    redislock *lk = NULL;
    redislock_client *c = arg;
    int rc;
    if (redislock_new(&lk, c, "forked", NULL))
        return 10;
    rc = redislock_acquire(lk, 1000);
    if (!rc)
        rc = redislock_release(lk);
    redislock_free(lk);
    return rc ? 11 : 0;
}

static long long total_connections(ts_server *s)
{
    return ts_info(s, "stats", "total_connections_received");
}

static void test_threads_child_after_fork_uses_own_connections(void **state)
{
    static ts_server fsrv;
    redislock_client *c;
    redislock *lk;
    pid_t pid;
    long long before, after;

    tf_server_start(&fsrv);
    c = tf_client(fsrv.url);
    lk = tf_lock(c, "forked", 0);
    assert_rl_ok(redislock_acquire(lk, 0)); /* a pooled connection exists */
    assert_rl_ok(redislock_release(lk));
    before = total_connections(&fsrv);
    pid = tu_spawn(child_after_fork, c);
    assert_int_equal(tu_wait(pid), 0);
    after = total_connections(&fsrv);
    /* the child connected anew (the harness's INFO adds none: it is
     * already connected) */
    assert_true(after >= before + 1);
    /* the parent's pooled connection is intact and still answers in order */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(total_connections(&fsrv), after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_threads_shared_client_mixed_operations_consistent,
                                  tf_teardown),
        cmocka_unit_test_teardown(test_threads_child_after_fork_uses_own_connections,
                                  tf_teardown),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
