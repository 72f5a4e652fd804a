/* 11. Bad input and failing servers: a clear code and a one-line message,
 * never a crash, a hang past the deadline or a leak. */
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* The message is one line and says something. */
static void assert_message(const char *needle)
{
    const char *m = redislock_last_error();
    if (!*m || strchr(m, '\n'))
        fail_msg("bad message: '%s'", m);
    if (needle && !strstr(m, needle))
        fail_msg("message '%s' does not mention '%s'", m, needle);
}

static void test_errors_null_arguments(void **state)
{
    redislock *lk = tu_lock(tu_cl, "n", 0);
    redislock_info info;
    redislock *out = (redislock *)1;
    redislock_client *cout = (redislock_client *)1;
    uint64_t n;

    assert_rl_err(redislock_client_new(NULL, tu_srv.url, NULL), REDISLOCK_EINVAL);
    assert_message("out is NULL");
    assert_rl_err(redislock_client_new(&cout, NULL, NULL), REDISLOCK_EINVAL);
    assert_null(cout);
    assert_message("url is NULL");
    assert_rl_err(redislock_new(NULL, tu_cl, "x", NULL), REDISLOCK_EINVAL);
    assert_rl_err(redislock_new(&out, NULL, "x", NULL), REDISLOCK_EINVAL);
    assert_null(out);
    assert_message("client is NULL");
    assert_rl_err(redislock_new(&out, tu_cl, NULL, NULL), REDISLOCK_EINVAL);
    assert_message("NULL");
    assert_rl_err(redislock_acquire(NULL, 0), REDISLOCK_EINVAL);
    assert_rl_err(redislock_try_acquire(NULL), REDISLOCK_EINVAL);
    assert_rl_err(redislock_release(NULL), REDISLOCK_EINVAL);
    assert_rl_err(redislock_extend(NULL, 10), REDISLOCK_EINVAL);
    assert_rl_err(redislock_query(NULL, &info), REDISLOCK_EINVAL);
    assert_rl_err(redislock_query(lk, NULL), REDISLOCK_EINVAL);
    assert_rl_err(redislock_reset(NULL, "x"), REDISLOCK_EINVAL);
    assert_rl_err(redislock_reset(tu_cl, NULL), REDISLOCK_EINVAL);
    assert_rl_err(redislock_reset(tu_cl, ""), REDISLOCK_EINVAL);
    assert_rl_err(redislock_reset_all(NULL, NULL, &n), REDISLOCK_EINVAL);
    assert_int_equal(redislock_held(NULL), 0);
    assert_null(redislock_name(NULL));
    assert_null(redislock_id(NULL));
    assert_non_null(redislock_errmsg(NULL));
    redislock_free(NULL);
    redislock_client_free(NULL);
    redislock_free(lk);
}

static void test_errors_bad_lock_arguments(void **state)
{
    struct {
        const char *name;
        redislock_options o;
        const char *needle;
    } cases[] = {
        { "", REDISLOCK_OPTIONS_INIT, "empty" },
        { "x", { .expire_ms = -1 }, "negative" },
        { "x", { .id = "has space" }, "printable" },
        { "x", { .id = "caf\xc3\xa9" }, "printable" },
        { "x", { .id = "" }, "empty" },
        { "x", { .id_prefix = "bad\tprefix" }, "printable" },
        { "x", { .version = 99 }, "newer" },
        { "x", { .auto_renew = 1 }, "auto_renew needs an expiry" },
        { "x", { .auto_renew = 1, .expire_ms = 1000, .renew_interval_ms = 1000 },
          "renew_interval_ms" },
        { "x", { .expire_ms = 1000, .renew_interval_ms = -3 }, "renew_interval_ms" },
    };
    char longname[REDISLOCK_NAME_MAX + 2];
    char longid[REDISLOCK_ID_MAX + 2];
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lk = (redislock *)1;
        assert_rl_err(redislock_new(&lk, tu_cl, cases[i].name, &cases[i].o),
                      REDISLOCK_EINVAL);
        assert_null(lk);
        assert_message(cases[i].needle);
    }
    memset(longname, 'n', sizeof longname);
    longname[REDISLOCK_NAME_MAX + 1] = '\0';
    assert_rl_err(redislock_new(&lk, tu_cl, longname, NULL), REDISLOCK_EINVAL);
    assert_message("4096");
    longname[REDISLOCK_NAME_MAX] = '\0'; /* exactly the limit: fine */
    assert_rl_ok(redislock_new(&lk, tu_cl, longname, NULL));
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);

    memset(longid, 'i', sizeof longid);
    longid[REDISLOCK_ID_MAX + 1] = '\0';
    o.id = longid;
    assert_rl_err(redislock_new(&lk, tu_cl, "x", &o), REDISLOCK_EINVAL);
    o.id = NULL;
    longid[REDISLOCK_ID_MAX - 10] = '\0';
    o.id_prefix = longid; /* prefix + 24 random characters is too long */
    assert_rl_err(redislock_new(&lk, tu_cl, "x", &o), REDISLOCK_EINVAL);

    lk = tu_lock(tu_cl, "x", 0);
    assert_rl_err(redislock_acquire(lk, -2), REDISLOCK_EINVAL);
    assert_message("timeout");
    assert_non_null(strstr(redislock_errmsg(lk), "timeout"));
    assert_rl_err(redislock_extend(lk, -1), REDISLOCK_EINVAL);
    redislock_free(lk);
}

static void test_errors_bad_urls(void **state)
{
    struct {
        const char *url;
        int code;
        const char *needle;
    } cases[] = {
        { "", REDISLOCK_EINVAL, "empty" },
        { "redis://", REDISLOCK_EINVAL, "no host" },
        { "redis://:6379", REDISLOCK_EINVAL, "no host" },
        { "redis://localhost:99999", REDISLOCK_EINVAL, "bad port" },
        { "redis://localhost:0", REDISLOCK_EINVAL, "bad port" },
        { "redis://localhost:12ab", REDISLOCK_EINVAL, "bad port" },
        { "redis://localhost:", REDISLOCK_EINVAL, "bad port" },
        { "redis://localhost/x", REDISLOCK_EINVAL, "db" },
        { "redis://[::1", REDISLOCK_EINVAL, "unclosed" },
        { "http://localhost", REDISLOCK_EINVAL, "unknown scheme" },
        { "localhost:6379", REDISLOCK_EINVAL, "unknown scheme" },
        { "unix://relative.sock", REDISLOCK_EINVAL, "absolute" },
        { "unix:///tmp/x.sock?db=a", REDISLOCK_EINVAL, "db" },
        { "unix:///tmp/x.sock?color=red", REDISLOCK_EINVAL, "unknown query" },
        { "redis://user@localhost", REDISLOCK_EINVAL, "password" },
        { "redis://:p%zzw@localhost", REDISLOCK_EINVAL, "escape" },
        { "rediss://localhost", REDISLOCK_ENOTSUP, "TLS" },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redislock_client *c = (redislock_client *)1;
        int rc = redislock_client_new(&c, cases[i].url, NULL);
        if (rc != cases[i].code)
            fail_msg("%s -> %s, expected %s", cases[i].url, redislock_err_name(rc),
                     redislock_err_name(cases[i].code));
        assert_null(c);
        assert_message(cases[i].needle);
    }
}

static void test_errors_bad_client_options(void **state)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.command_timeout_ms = -1;
    assert_rl_err(redislock_client_new(&c, tu_srv.url, &o), REDISLOCK_EINVAL);
    o = (redislock_client_options)REDISLOCK_CLIENT_OPTIONS_INIT;
    o.signal_expire_ms = -5;
    assert_rl_err(redislock_client_new(&c, tu_srv.url, &o), REDISLOCK_EINVAL);
    o = (redislock_client_options)REDISLOCK_CLIENT_OPTIONS_INIT;
    o.version = 7;
    assert_rl_err(redislock_client_new(&c, tu_srv.url, &o), REDISLOCK_EINVAL);
    o = (redislock_client_options)REDISLOCK_CLIENT_OPTIONS_INIT;
    o.log_level = 9;
    assert_rl_err(redislock_client_new(&c, tu_srv.url, &o), REDISLOCK_EINVAL);
    assert_null(c);
}

/* Connection refused: an error at once, naming host:port. */
static void test_errors_connection_refused(void **state)
{
    ts_server gone;
    redislock_client *c;
    redislock *lk;
    char url[64], addr[64];
    int64_t t0;

    memset(&gone, 0, sizeof gone);
    /* a port that was free a moment ago: nothing listens there */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", tu_srv.port + 1);
    {
        /* make sure: find a port with nothing listening */
        int port;
        for (port = tu_srv.port + 1; port < tu_srv.port + 50; port++) {
            redisContext *probe = redisConnect("127.0.0.1", port);
            int refused = probe && probe->err;
            if (probe)
                redisFree(probe);
            if (refused)
                break;
        }
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    }
    c = tu_client(url);
    lk = tu_lock(c, "x", 0);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 5000), REDISLOCK_EIO);
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
    assert_message(addr);
    assert_message("refused");
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    assert_rl_err(redislock_reset(c, "x"), REDISLOCK_EIO);
    assert_rl_err(redislock_reset_all(c, NULL, NULL), REDISLOCK_EIO);
    redislock_free(lk);
    redislock_client_free(c);

    c = tu_client("unix:///nonexistent/dir/redis.sock");
    lk = tu_lock(c, "x", 0);
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EIO);
    assert_message("/nonexistent/dir/redis.sock");
    redislock_free(lk);
    redislock_client_free(c);
}

/* Wrong or missing password: EAUTH. */
static void test_errors_wrong_password(void **state)
{
    static ts_server auth;
    redislock_client *c;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock *lk;
    char url[800];

    snprintf(auth.password, sizeof auth.password, "s3cret");
    TS_START_OR_SKIP(&auth);
    snprintf(url, sizeof url, "unix://%s?password=wrong", auth.sock);
    c = tu_client(url);
    lk = tu_lock(c, "x", 0);
    assert_rl_err(redislock_acquire(lk, 1000), REDISLOCK_EAUTH);
    assert_message("AUTH");
    redislock_free(lk);
    redislock_client_free(c);

    /* with a db: AUTH and SELECT are pipelined; the AUTH error is the one
     * reported, not SELECT's NOAUTH that follows from it */
    snprintf(url, sizeof url, "unix://%s?password=wrong&db=1", auth.sock);
    c = tu_client(url);
    lk = tu_lock(c, "x", 0);
    assert_rl_err(redislock_acquire(lk, 1000), REDISLOCK_EAUTH);
    assert_message("AUTH failed");
    redislock_free(lk);
    redislock_client_free(c);

    snprintf(url, sizeof url, "unix://%s", auth.sock);
    c = tu_client(url);
    lk = tu_lock(c, "x", 0);
    assert_rl_err(redislock_acquire(lk, 1000), REDISLOCK_EAUTH);
    assert_message("NOAUTH");
    redislock_free(lk);
    redislock_client_free(c);

    o.password = "s3cret"; /* from the options: the URL needs no secret */
    c = tu_client_opts(url, &o);
    lk = tu_lock(c, "x", 0);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);

    c = tu_client(auth.url); /* unix://...?password=s3cret */
    lk = tu_lock(c, "x", 0);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);
    ts_stop(&auth);
}

/* SELECT: the db of the URL is used; a bad db is a clear error. */
static void test_errors_select_db(void **state)
{
    redislock_client *c;
    redislock *lk;
    char url[800];
    redisReply *r;

    snprintf(url, sizeof url, "%s/3", tu_srv.tcp_url);
    c = tu_client(url);
    lk = tu_lock(c, "indb3", 0);
    assert_rl_ok(redislock_acquire(lk, 0));
    r = ts_cmd(&tu_srv, "SELECT 3");
    freeReplyObject(r);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:indb3"), 1);
    r = ts_cmd(&tu_srv, "SELECT 0");
    freeReplyObject(r);
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);

    snprintf(url, sizeof url, "%s/999", tu_srv.tcp_url);
    c = tu_client(url);
    lk = tu_lock(c, "x", 0);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EINVAL);
    assert_message("SELECT 999");
    redislock_free(lk);
    redislock_client_free(c);
}

/* A key of the wrong type where the lock should be: a clear server error. */
static void test_errors_wrongtype(void **state)
{
    redislock *lk = tu_lock(tu_cl, "typed", 0);
    redisReply *r = ts_cmd(&tu_srv, "RPUSH lock:typed a");
    freeReplyObject(r);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EPROTO);
    assert_message("WRONGTYPE");
    assert_int_equal(redislock_held(lk), 0);
    redislock_free(lk);
}

struct waiter {
    const char *url;
    const char *name;
    int64_t timeout;
    int rc;
    int64_t elapsed;
    char msg[512];
};

static void log_stderr(void *ud, int level, const char *msg)
{
    fprintf(stderr, "%lld [%d] %s\n", (long long)tu_now_ms(), level, msg);
}

static void *waiter_thread(void *p)
{
    struct waiter *w = p;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    int64_t t0;
    o.log = log_stderr;
    o.log_level = REDISLOCK_LOG_DEBUG;
    if (redislock_client_new(&c, w->url, &o) || redislock_new(&lk, c, w->name, NULL)) {
        w->rc = -100;
        return NULL;
    }
    t0 = tu_now_ms();
    w->rc = redislock_acquire(lk, w->timeout);
    w->elapsed = tu_now_ms() - t0;
    snprintf(w->msg, sizeof w->msg, "%s", redislock_errmsg(lk));
    if (w->rc == 0)
        redislock_release(lk);
    redislock_free(lk);
    redislock_client_free(c);
    return NULL;
}

static long long blocked(ts_server *s)
{
    return ts_info(s, "clients", "blocked_clients");
}

/* A server killed while a waiter blocks: an error well before the deadline
 * when it stays down; the wait goes on (and gets the lock) when it comes
 * back at once. */
static void test_errors_server_killed_while_waiting(void **state)
{
    static ts_server victim;
    redislock_client *c;
    redislock *holder;
    struct waiter w;
    pthread_t t;
    int64_t t0;

    TS_START_OR_SKIP(&victim);
    c = tu_client(victim.url);
    holder = tu_lock(c, "k", 0);

    /* killed for good */
    memset(&w, 0, sizeof w);
    w.url = victim.url;
    w.name = "k";
    w.timeout = 10000;
    assert_rl_ok(redislock_acquire(holder, 0));
    pthread_create(&t, NULL, waiter_thread, &w);
    t0 = tu_now_ms();
    while (blocked(&victim) < 1 && tu_now_ms() - t0 < 5000)
        tu_sleep_ms(5);
    ts_stop(&victim);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, REDISLOCK_EIO);
    assert_true(w.elapsed < TU_MS(4000)); /* reconnects for up to the connect timeout */
    assert_non_null(strstr(w.msg, victim.sock));

    /* killed and restarted at once: the waiter reconnects; the restarted
     * server has no lock (no persistence), so the waiter takes it */
    assert_int_equal(ts_restart(&victim), 0);
    redislock_free(holder);
    redislock_client_free(c);
    c = tu_client(victim.url);
    holder = tu_lock(c, "k", 0);
    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    w.url = victim.url;
    w.name = "k";
    w.timeout = 10000;
    pthread_create(&t, NULL, waiter_thread, &w);
    t0 = tu_now_ms();
    while (blocked(&victim) < 1 && tu_now_ms() - t0 < 5000)
        tu_sleep_ms(5);
    assert_int_equal(ts_restart(&victim), 0);
    pthread_join(t, NULL);
    if (w.rc != 0)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.elapsed < TU_MS(5000));
    redislock_free(holder);
    redislock_client_free(c);
    ts_stop(&victim);
}

/* A hung server (SIGSTOP): command timeouts and the acquire deadline hold. */
static void test_errors_hung_server(void **state)
{
    static ts_server hung;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk, *holder;
    int64_t t0, el;
    int rc;

    TS_START_OR_SKIP(&hung);
    o.command_timeout_ms = 300;
    c = tu_client_opts(hung.url, &o);
    lk = tu_lock(c, "h", 0);
    holder = tu_lock(c, "h", 0);
    assert_rl_ok(redislock_acquire(lk, 0)); /* pool has a live connection */
    assert_rl_ok(redislock_release(lk));

    ts_pause(&hung);
    t0 = tu_now_ms();
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EIO);
    el = tu_now_ms() - t0;
    assert_true(el >= 250 && el < TU_MS(1500)); /* one retry on a new connection */
    assert_message(hung.sock);
    t0 = tu_now_ms();
    rc = redislock_acquire(lk, 200);
    el = tu_now_ms() - t0;
    assert_true(rc == REDISLOCK_ETIMEDOUT || rc == REDISLOCK_EIO);
    assert_true(el < TU_MS(200 + 300 + 200));
    t0 = tu_now_ms();
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    assert_true(tu_now_ms() - t0 < TU_MS(1500));
    ts_resume(&hung);

    /* after SIGCONT: a lock that may have been taken by the lost acquire is
     * ours (same id) or free; either way we can take and release it */
    rc = redislock_acquire(lk, 1000);
    assert_true(rc == REDISLOCK_OK || rc == REDISLOCK_EALREADY);
    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_acquire(holder, 0));
    assert_rl_ok(redislock_release(holder));
    redislock_free(lk);
    redislock_free(holder);
    redislock_client_free(c);
    ts_stop(&hung);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_errors_null_arguments, tu_setup),
        cmocka_unit_test_setup(test_errors_bad_lock_arguments, tu_setup),
        cmocka_unit_test_setup(test_errors_bad_urls, tu_setup),
        cmocka_unit_test_setup(test_errors_bad_client_options, tu_setup),
        cmocka_unit_test_setup(test_errors_connection_refused, tu_setup),
        cmocka_unit_test_setup(test_errors_wrong_password, tu_setup),
        cmocka_unit_test_setup(test_errors_select_db, tu_setup),
        cmocka_unit_test_setup(test_errors_wrongtype, tu_setup),
        cmocka_unit_test_setup(test_errors_server_killed_while_waiting, tu_setup),
        cmocka_unit_test_setup(test_errors_hung_server, tu_setup),
    };
    return cmocka_run_group_tests_name("errors", tests, tu_group_setup_tcp, tu_group_teardown);
}
