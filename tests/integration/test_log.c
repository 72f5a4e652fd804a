/* The log callback hears about connections: each connect at INFO, the
 * first failed connect of a run at WARN (not every retry), a reconnect
 * after a failure or after the server closed a pooled connection, and a
 * connection dropped after an error.  Real redis-server processes. */
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[64][512];
static int levels[64];
static int nlines;

static void keep(void *userdata, int level, const char *msg)
{
    pthread_mutex_lock(&mu);
    if (nlines < 64) {
        snprintf(lines[nlines], sizeof lines[0], "%s", msg);
        levels[nlines++] = level;
    }
    pthread_mutex_unlock(&mu);
}

static void forget(void)
{
    pthread_mutex_lock(&mu);
    nlines = 0;
    pthread_mutex_unlock(&mu);
}

/* How many kept lines at level contain s. */
static int count(int level, const char *s)
{
    int i, n = 0;
    pthread_mutex_lock(&mu);
    for (i = 0; i < nlines; i++)
        n += levels[i] == level && strstr(lines[i], s) != NULL;
    pthread_mutex_unlock(&mu);
    return n;
}

static void dump(void)
{
    int i;
    for (i = 0; i < nlines; i++)
        print_message("      log %d: %s\n", levels[i], lines[i]);
}

static ts_server srv;

static void test_log_connections(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    redisReply *r;
    char want[700];

    TS_START_OR_SKIP(&srv);
    o.log = keep;
    o.log_level = REDISLOCK_LOG_DEBUG;
    o.connect_timeout_ms = 500;
    c = tu_client_opts(srv.url, &o);
    lk = tu_lock(c, "logged", 0);

    /* the first connection */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    snprintf(want, sizeof want, "redis %s: connected", srv.sock);
    assert_int_equal(count(REDISLOCK_LOG_INFO, want), 1);

    /* the server goes away: one WARN for a run of failed connects */
    ts_stop(&srv);
    forget();
    assert_int_not_equal(redislock_try_acquire(lk), REDISLOCK_OK);
    assert_int_not_equal(redislock_try_acquire(lk), REDISLOCK_OK);
    assert_int_not_equal(redislock_try_acquire(lk), REDISLOCK_OK);
    dump();
    assert_int_equal(count(REDISLOCK_LOG_WARN, "cannot connect"), 1);
    assert_int_equal(count(REDISLOCK_LOG_DEBUG, "cannot connect"), 2);
    assert_int_equal(count(REDISLOCK_LOG_INFO, "dropping a pooled connection"), 1);

    /* back: a reconnect */
    assert_int_equal(ts_restart(&srv), 0);
    forget();
    assert_rl_ok(redislock_try_acquire(lk));
    snprintf(want, sizeof want, "redis %s: reconnected", srv.sock);
    assert_int_equal(count(REDISLOCK_LOG_INFO, want), 1);
    assert_rl_ok(redislock_release(lk));

    /* the server closes the pooled connection: dropped, then reconnected */
    r = ts_cmd(&srv, "CLIENT KILL TYPE normal");
    freeReplyObject(r);
    forget();
    assert_rl_ok(redislock_try_acquire(lk));
    dump();
    assert_int_equal(count(REDISLOCK_LOG_INFO, "dropping a pooled connection the server "
                                               "closed"),
                     1);
    assert_int_equal(count(REDISLOCK_LOG_INFO, want), 1);
    assert_rl_ok(redislock_release(lk));

    /* a reply that does not come in time: that connection is dropped */
    ts_pause(&srv);
    forget();
    assert_int_not_equal(redislock_try_acquire(lk), REDISLOCK_OK);
    ts_resume(&srv);
    dump();
    /* the try's connection, and the one of the release it sends to give
     * back what its unanswered acquire may have taken */
    assert_true(count(REDISLOCK_LOG_INFO, "dropping a connection after") >= 1);
    assert_rl_ok(redislock_try_acquire(lk));
    assert_true(count(REDISLOCK_LOG_INFO, want) >= 1);
    assert_rl_ok(redislock_release(lk));

    redislock_free(lk);
    redislock_client_free(c);
    ts_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_connections),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
