/* Fault injection against a real redis-server: the server restarted, the
 * clients' connections killed, the server hung (SIGSTOP), and signals
 * delivered to a waiting thread.  Each case checks that the lock promise
 * holds: no hang, no early return, no lost wake-up, no double holder, and a
 * state afterwards that is consistent with what the server has. */
#include "faults.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ts_server srv;
static int started;

static int group_setup(void **state)
{
    int rc = ts_start(&srv);
    if (rc)
        return rc == 77 ? 0 : -1;
    started = 1;
    return 0;
}

static int group_teardown(void **state)
{
    ts_stop(&srv);
    faults_summary("test_faults_server");
    return 0;
}

static int setup(void **state)
{
    if (!started)
        skip();
    if (!srv.pid)
        assert_int_equal(ts_restart(&srv), 0);
    ts_resume(&srv);
    ts_flushall(&srv);
    return 0;
}

static redislock_client *client(int command_timeout_ms, int connect_timeout_ms)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.command_timeout_ms = command_timeout_ms;
    o.connect_timeout_ms = connect_timeout_ms;
    return tu_client_opts(srv.url, &o);
}

/* The lock's owner on the server ("" if free). */
static const char *owner_of(const char *key)
{
    static char buf[300];
    redisReply *r = ts_cmd(&srv, "GET %s", key);
    buf[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(buf, sizeof buf, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return buf;
}

/* ----------------------------------------------------------- restarts */

/* The server restarts while a waiter blocks: the waiter reconnects and,
 * the restarted server being empty, takes the lock before its deadline;
 * the old holder's release then says ENOTHELD (the waiter holds it). */
static void test_restart_while_waiting(void **state)
{
    redislock_client *c = client(1000, 3000);
    redislock *holder = tu_lock(c, "r1", 0), *lk = tu_lock(c, "r1", 0);
    faults_waiter w;

    assert_rl_ok(redislock_acquire(holder, 0));
    faults_waiter_start(&w, lk, 8000);
    ts_await_blocked(&srv, 1);
    FAULT("server restarted while a waiter blocks in BLPOP");
    assert_int_equal(ts_restart(&srv), 0);
    faults_waiter_join(&w);
    if (w.rc != REDISLOCK_OK)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got - w.start < TU_MS(8000));
    assert_string_equal(owner_of("lock:r1"), redislock_id(lk));
    assert_rl_err(redislock_release(holder), REDISLOCK_ENOTHELD);
    assert_int_equal(redislock_held(holder), 0);
    assert_string_equal(owner_of("lock:r1"), redislock_id(lk)); /* untouched */
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* The server restarts while a lock is held.  Down: release is an I/O error
 * and the handle still believes it holds the lock.  Back up empty: release
 * says ENOTHELD.  Back up with the key (as after a reload from disk):
 * release succeeds.  Never a crash, never a wrong OK. */
static void test_restart_while_held(void **state)
{
    redislock_client *c = client(500, 500);
    redislock *lk = tu_lock(c, "r2", 0), *other = tu_lock(c, "r2", 0);
    redislock_info info;

    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("server down while a lock is held");
    ts_stop(&srv);
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    assert_msg_has(redislock_errmsg(lk), srv.sock);
    assert_rl_err(redislock_query(lk, &info), REDISLOCK_EIO);
    assert_int_equal(redislock_held(lk), 1); /* unknown: it may still be held */

    FAULT("server restarted empty while a lock is held");
    assert_int_equal(ts_restart(&srv), 0);
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 0);
    assert_rl_err(redislock_extend(lk, 1000), REDISLOCK_ENOTHELD);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_int_equal(redislock_held(lk), 0);

    /* taken again, then the server comes back with the key as it was */
    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("server restarted with the lock key restored");
    assert_int_equal(ts_restart(&srv), 0);
    freeReplyObject(ts_cmd(&srv, "SET lock:r2 %s", redislock_id(lk)));
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    assert_rl_ok(redislock_release(lk));
    assert_string_equal(owner_of("lock:r2"), "");
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
    redislock_free(lk);
    redislock_free(other);
    redislock_client_free(c);
}

struct release_job {
    redislock *lk;
    int rc;
    int64_t elapsed;
};

static void *release_main(void *p)
{
    struct release_job *j = p;
    int64_t t0 = tu_now_ms();
    j->rc = redislock_release(j->lk);
    j->elapsed = tu_now_ms() - t0;
    return NULL;
}

/* A release is in flight on a hung server, which is then killed and
 * restarted: the release fails with an I/O error well within its command
 * timeout (the connection is reset), and the state afterwards is the
 * restarted server's: the lock is free. */
static void test_restart_release_in_flight(void **state)
{
    redislock_client *c = client(3000, 1000);
    redislock *lk = tu_lock(c, "r3", 0), *other = tu_lock(c, "r3", 0);
    struct release_job j = { lk, -1000, 0 };
    pthread_t t;

    assert_rl_ok(redislock_acquire(lk, 0));
    ts_pause(&srv);
    pthread_create(&t, NULL, release_main, &j);
    tu_sleep_ms(150); /* the release is sent and waits for the reply */
    FAULT("server killed and restarted while a release is in flight");
    /* SIGKILL while stopped: it never runs the release (ts_restart alone
     * would send SIGCONT first) */
    kill(srv.pid, SIGKILL);
    assert_int_equal(ts_restart(&srv), 0);
    pthread_join(t, NULL);
    if (j.rc != REDISLOCK_EIO)
        fail_msg("release in flight: %s", redislock_err_name(j.rc));
    assert_true(j.elapsed < TU_MS(3000)); /* the reset, not the timeout */
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
    redislock_free(lk);
    redislock_free(other);
    redislock_client_free(c);
}

/* ---------------------------------------------------- connections killed */

/* A waiter's BLPOP connection is killed: it reconnects, waits again, and
 * is woken by the release.  With two waiters, the killed one and a second
 * one both get the lock in turn: no wake-up is lost. */
static void test_kill_waiter_in_blpop(void **state)
{
    redislock_client *c = client(1000, 2000);
    redislock *holder = tu_lock(c, "k1", 0);
    redislock *a = tu_lock(c, "k1", 0), *b = tu_lock(c, "k1", 0);
    faults_waiter wa, wb;
    int64_t released;
    long long id;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&wa, 0, sizeof wa);
    memset(&wb, 0, sizeof wb);
    faults_waiter_start_hold(&wa, a, 10000, 50);
    ts_await_blocked(&srv, 1);
    faults_waiter_start_hold(&wb, b, 10000, 50);
    ts_await_blocked(&srv, 2);

    id = faults_blocked_id(&srv, 0);
    assert_true(id > 0);
    FAULT("CLIENT KILL ID of a waiter blocked in BLPOP");
    assert_true(faults_kill_id(&srv, id));
    ts_await_blocked(&srv, 2); /* it came back and blocks again */
    tu_sleep_ms(50);
    assert_false(faults_waiter_done(&wa));
    assert_false(faults_waiter_done(&wb));
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_join(&wa);
    faults_waiter_join(&wb);
    if (wa.rc || wb.rc)
        fail_msg("waiters: %s (%s), %s (%s)", redislock_err_name(wa.rc), wa.msg,
                 redislock_err_name(wb.rc), wb.msg);
    assert_int_equal(wa.release_rc, 0);
    assert_int_equal(wb.release_rc, 0);
    assert_true(wa.got >= released && wb.got >= released);
    assert_true(wa.got < released + TU_MS(2000) && wb.got < released + TU_MS(2000));
    print_message("      woken %lld and %lld ms after the release\n",
                  (long long)(wa.got - released), (long long)(wb.got - released));
    redislock_free(holder);
    redislock_free(a);
    redislock_free(b);
    redislock_client_free(c);
}

/* Every normal connection killed at each step of a holder's life, while a
 * waiter blocks: after acquire (before extend), after extend (before
 * release); the operations reconnect and the waiter still gets the lock. */
static void test_kill_holder_each_step(void **state)
{
    redislock_client *c = client(1000, 2000);
    redislock *holder = tu_lock(c, "k2", 5000), *lk = tu_lock(c, "k2", 5000);
    redislock_info info;
    faults_waiter w;
    long long pttl;

    assert_rl_ok(redislock_acquire(holder, 0));
    FAULT("CLIENT KILL TYPE normal between acquire and extend");
    assert_true(faults_kill_normal(&srv) >= 1);
    assert_rl_ok(redislock_extend(holder, 20000));
    pttl = ts_int(&srv, "PTTL lock:k2");
    assert_true(pttl > 5000 && pttl <= 20000);

    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 10000);
    ts_await_blocked(&srv, 1);
    FAULT("CLIENT KILL TYPE normal before query and release (waiter blocked)");
    assert_true(faults_kill_normal(&srv) >= 1); /* the waiter's */
    assert_rl_ok(redislock_query(holder, &info));
    assert_int_equal(info.mine, 1);
    ts_await_blocked(&srv, 1);
    FAULT("CLIENT KILL TYPE normal right before release");
    assert_true(faults_kill_normal(&srv) >= 1);
    assert_rl_ok(redislock_release(holder));
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_string_equal(owner_of("lock:k2"), redislock_id(lk));
    FAULT("CLIENT KILL TYPE normal before reset");
    faults_kill_normal(&srv);
    assert_int_equal(redislock_reset(c, "k2"), 1);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* -------------------------------------------------------------- hung server */

static void check_hung(int rc, int64_t t0, int timeout_ms, const char *what)
{
    int64_t el = tu_now_ms() - t0;
    if (rc != REDISLOCK_EIO)
        fail_msg("%s on a hung server: %s (%s)", what, redislock_err_name(rc),
                 redislock_last_error());
    if (el > timeout_ms + TU_MS(1500))
        fail_msg("%s on a hung server took %lld ms (command timeout %d ms)", what,
                 (long long)el, timeout_ms);
    if (!strstr(redislock_last_error(), srv.sock))
        fail_msg("%s: message lacks the server: %s", what, redislock_last_error());
    faults_run++;
}

/* A hung server (SIGSTOP): every operation fails with an I/O error within
 * its command timeout plus a margin; after SIGCONT every handle recovers and
 * the state is consistent whatever the late-executed commands did. */
static void test_hung_server_each_operation(void **state)
{
    const int tmo = 300;
    redislock_client *c = client(tmo, tmo);
    redislock *a = tu_lock(c, "h1", 30000), *b = tu_lock(c, "h1", 30000);
    redislock_info info;
    uint64_t count = 99;
    int64_t t0;
    int rc;

    assert_rl_ok(redislock_acquire(a, 0));
    assert_rl_ok(redislock_query(a, &info)); /* a pooled connection */
    print_message("      fault: server stopped (SIGSTOP) for 7 operations\n");
    ts_pause(&srv);
    t0 = tu_now_ms();
    check_hung(redislock_acquire(b, 2000), t0, tmo, "acquire(2000)");
    assert_int_equal(redislock_held(b), 0);
    t0 = tu_now_ms();
    check_hung(redislock_try_acquire(b), t0, tmo, "try_acquire");
    t0 = tu_now_ms();
    check_hung(redislock_extend(a, 60000), t0, tmo, "extend");
    t0 = tu_now_ms();
    check_hung(redislock_query(a, &info), t0, tmo, "query");
    t0 = tu_now_ms();
    check_hung(redislock_reset(c, "h-other"), t0, tmo, "reset");
    t0 = tu_now_ms();
    check_hung(redislock_reset_all(c, "nobody:", &count), t0, tmo, "reset_all");
    assert_int_equal(count, 0);
    t0 = tu_now_ms();
    check_hung(redislock_release(a), t0, tmo, "release");
    ts_resume(&srv);

    /* The commands sent meanwhile run now, in any order across
     * connections; wait until the server is done with them. */
    faults_await_clients(&srv, 1);
    assert_rl_ok(redislock_query(a, &info));
    if (info.mine) {
        assert_rl_ok(redislock_release(a));
    } else {
        /* the late release ran; b's late acquire may have run after it */
        assert_rl_err(redislock_release(a), REDISLOCK_ENOTHELD);
    }
    assert_int_equal(redislock_held(a), 0);
    rc = redislock_acquire(b, 1000);
    if (rc != REDISLOCK_OK)
        fail_msg("acquire after SIGCONT: %s: %s", redislock_err_name(rc),
                 redislock_last_error());
    assert_string_equal(owner_of("lock:h1"), redislock_id(b));
    assert_rl_err(redislock_try_acquire(a), REDISLOCK_EBUSY);
    assert_rl_ok(redislock_release(b));
    assert_rl_ok(redislock_acquire(a, 0));
    assert_rl_ok(redislock_release(a));
    redislock_free(a);
    redislock_free(b);
    redislock_client_free(c);
}

/* A waiter blocked in BLPOP when the server hangs, then resumes before its
 * deadline: it neither hangs nor misses the release made after SIGCONT. */
static void test_hung_server_while_waiting(void **state)
{
    redislock_client *c = client(300, 300);
    redislock_client *hc = client(2000, 2000);
    redislock *holder = tu_lock(hc, "h2", 0), *lk = tu_lock(c, "h2", 0);
    faults_waiter w;
    int64_t released;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 3000);
    ts_await_blocked(&srv, 1);
    FAULT("server stopped for 500 ms while a waiter blocks");
    ts_pause(&srv);
    tu_sleep_ms(500);
    ts_resume(&srv);
    tu_sleep_ms(100);
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_join(&w);
    if (w.rc == REDISLOCK_OK) {
        assert_true(w.got >= released);
        assert_rl_ok(redislock_release(lk));
    } else {
        /* it may give up while the server was stopped, but only with an
         * I/O error and before its deadline */
        if (w.rc != REDISLOCK_EIO)
            fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
        assert_true(w.got - w.start < 3000);
    }
    print_message("      waiter: %s after %lld ms\n", redislock_err_name(w.rc),
                  (long long)(w.got - w.start));
    assert_true(w.got - w.start < TU_MS(3000 + 250 + 1000));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
    redislock_client_free(hc);
}

/* The waiter's deadline passes while the server is stopped: its timer
 * fires, the CLIENT UNBLOCK it sends gets no answer either, and it returns
 * by its deadline plus the documented slack (min(command timeout, 250 ms)),
 * with a timeout or an I/O error naming the server.  After SIGCONT all is
 * as before: the holder releases, a new waiter takes the lock. */
static void test_hung_server_waiter_deadline(void **state)
{
    redislock_client *c = client(1000, 1000);
    redislock_client *hc = client(2000, 2000);
    redislock *holder = tu_lock(hc, "h3", 0), *lk = tu_lock(c, "h3", 0);
    faults_waiter w;
    int64_t el;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 800);
    ts_await_blocked(&srv, 1);
    FAULT("server stopped across a waiter's deadline");
    ts_pause(&srv);
    faults_waiter_join(&w);
    ts_resume(&srv);
    el = w.got - w.start;
    print_message("      waiter: %s after %lld ms: %s\n", redislock_err_name(w.rc),
                  (long long)el, w.msg);
    if (w.rc != REDISLOCK_ETIMEDOUT && w.rc != REDISLOCK_EIO)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    if (w.rc == REDISLOCK_EIO)
        assert_msg_has(w.msg, srv.sock);
    assert_true(el >= 800);
    assert_true(el < 800 + 250 + TU_MS(400));
    assert_int_equal(redislock_held(lk), 0);
    assert_string_equal(owner_of("lock:h3"), redislock_id(holder));
    assert_rl_ok(redislock_release(holder));
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
    redislock_client_free(hc);
}

/* ------------------------------------------------------------------ signals */

/* Signals at random while a waiter waits: it is woken by the release, not
 * before; a waiter whose lock is never released times out at its deadline,
 * not before and not much after; a lock with expiry is taken when it
 * expires. */
static void test_signals_to_waiter(void **state)
{
    redislock_client *c = client(1000, 1000);
    redislock *holder = tu_lock(c, "s1", 0), *lk = tu_lock(c, "s1", 0);
    redislock *eh = tu_lock(c, "s2", 700), *el = tu_lock(c, "s2", 0);
    faults_signaller s;
    faults_waiter w;
    int64_t released;

    /* woken by the release */
    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 10000);
    FAULT("SIGUSR1 at random to a waiter woken by a release");
    faults_signals_on(&s, w.t, 1);
    ts_await_blocked(&srv, 1);
    tu_sleep_ms(700);
    assert_false(faults_waiter_done(&w));
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_await(&w, TU_MS(12000));
    assert_true(faults_signals_off(&s) > 0);
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got >= released && w.got < released + TU_MS(1000));
    assert_rl_ok(redislock_release(lk));

    /* times out at its deadline */
    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 800);
    FAULT("SIGUSR1 at random to a waiter that times out");
    faults_signals_on(&s, w.t, 2);
    faults_waiter_await(&w, TU_MS(5000));
    assert_true(faults_signals_off(&s) > 0);
    faults_waiter_join(&w);
    assert_int_equal(w.rc, REDISLOCK_ETIMEDOUT);
    assert_true(w.got - w.start >= 800);
    assert_true(w.got - w.start < TU_MS(800 + 250 + 500));
    assert_rl_ok(redislock_release(holder));

    /* takes a lock when the holder's expiry runs out */
    assert_rl_ok(redislock_acquire(eh, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, el, 5000);
    FAULT("SIGUSR1 at random to a waiter waiting for an expiry");
    faults_signals_on(&s, w.t, 3);
    faults_waiter_await(&w, TU_MS(7000));
    assert_true(faults_signals_off(&s) > 0);
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got - w.start >= 600 && w.got - w.start < TU_MS(700 + 1000));
    assert_rl_ok(redislock_release(el));
    redislock_free(holder);
    redislock_free(lk);
    redislock_free(eh);
    redislock_free(el);
    redislock_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_restart_while_waiting, setup),
        cmocka_unit_test_setup(test_restart_while_held, setup),
        cmocka_unit_test_setup(test_restart_release_in_flight, setup),
        cmocka_unit_test_setup(test_kill_waiter_in_blpop, setup),
        cmocka_unit_test_setup(test_kill_holder_each_step, setup),
        cmocka_unit_test_setup(test_hung_server_each_operation, setup),
        cmocka_unit_test_setup(test_hung_server_while_waiting, setup),
        cmocka_unit_test_setup(test_hung_server_waiter_deadline, setup),
        cmocka_unit_test_setup(test_signals_to_waiter, setup),
    };
    int rc = cmocka_run_group_tests_name("faults_server", tests, group_setup,
                                         group_teardown);
    return rc;
}
