/* Fault injection against a real redis-server: the server restarted, the
 * clients' connections killed, the server hung (SIGSTOP), and signals
 * delivered to a waiting thread.  Each case checks that the lock promise
 * holds: no hang, no early return, no lost wake-up, no double holder, and a
 * state afterwards that is consistent with what the server has.  The cases
 * with a holder and a waiter are rows of faults_case (faults.h). */
#include "faults.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the server: the one master of the fixture (restarted and continued
 * before each test if a test stopped or paused it) */
static ts_server *const srv = &tf_masters[0];

static int group_teardown(void **state)
{
    faults_summary("test_faults_server");
    return tf_masters_group_teardown(state);
}

static redislock_client *client(int command_timeout_ms, int connect_timeout_ms)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.command_timeout_ms = command_timeout_ms;
    o.connect_timeout_ms = connect_timeout_ms;
    return tf_client_opts(srv->url, &o);
}

/* The lock's owner on the server ("" if free). */
static const char *owner_of(const char *key)
{
    return faults_owner(srv, key);
}

/* ----------------------------------------------------------- restarts */

/* The server restarts while a waiter blocks: the waiter reconnects and,
 * the restarted server being empty, takes the lock before its deadline;
 * the old holder's release then says ENOTHELD (the waiter holds it). */
static void restart_server(faults_scene *s)
{
    assert_int_equal(ts_restart(s->srv), 0);
}

static void check_old_holder_lost_it(faults_scene *s)
{
    const char *lk_id = redislock_id(s->w[0]->lk);
    assert_string_equal(owner_of("lock:r1"), lk_id);
    assert_rl_err(redislock_release(s->holder), REDISLOCK_ENOTHELD);
    assert_int_equal(redislock_held(s->holder), 0);
    assert_string_equal(owner_of("lock:r1"), lk_id); /* untouched */
}

static const faults_case test_restart_waiter_takes_lock_from_empty_server = {
    .fault = "server restarted while a waiter blocks in BLPOP",
    .servers = tf_masters, .nservers = 1, .lock = "r1",
    .command_timeout_ms = 1000, .connect_timeout_ms = 3000,
    .timeout_ms = 8000, .await_blocked = 1,
    .inject = restart_server,
    .want = REDISLOCK_OK, .max_slowed_ms = 8000,
    .check = check_old_holder_lost_it,
};

/* The server goes down while a lock is held: release is an I/O error
 * naming the server, and the handle still believes it holds the lock (it
 * cannot know). */
static void test_restart_down_release_fails_handle_still_holds(void **state)
{
    redislock_client *c = client(500, 500);
    redislock *lk = tf_lock(c, "r2", 0);
    redislock_info info;

    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("server down while a lock is held");
    ts_stop(srv);
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    assert_msg_has(redislock_errmsg(lk), srv->sock);
    assert_rl_err(redislock_query(lk, &info), REDISLOCK_EIO);
    assert_int_equal(redislock_held(lk), 1); /* unknown: it may still be held */
}

/* The server comes back empty after a failed release: the handle learns
 * that the lock is gone (query, extend and release say so). */
static void test_restart_empty_handle_learns_lock_gone(void **state)
{
    redislock_client *c = client(500, 500);
    redislock *lk = tf_lock(c, "r2", 0);
    redislock_info info;

    assert_rl_ok(redislock_acquire(lk, 0));
    ts_stop(srv);
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    FAULT("server restarted empty while a lock is held");
    assert_int_equal(ts_restart(srv), 0);
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 0);
    assert_rl_err(redislock_extend(lk, 1000), REDISLOCK_ENOTHELD);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_int_equal(redislock_held(lk), 0);
}

/* The server comes back with the lock key as it was (as after a reload
 * from disk): the lock is still held, and its release works. */
static void test_restart_with_key_restored_lock_still_held(void **state)
{
    redislock_client *c = client(500, 500);
    redislock *lk = tf_lock(c, "r2", 0), *other = tf_lock(c, "r2", 0);

    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("server restarted with the lock key restored");
    assert_int_equal(ts_restart(srv), 0);
    freeReplyObject(ts_cmd(srv, "SET lock:r2 %s", redislock_id(lk)));
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    assert_rl_ok(redislock_release(lk));
    assert_string_equal(owner_of("lock:r2"), "");
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
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

static void join_release(void *t)
{
    pthread_join(*(pthread_t *)t, NULL);
}

/* A release is in flight on a hung server, which is then killed and
 * restarted: the release fails with an I/O error well within its command
 * timeout (the connection is reset), and the state afterwards is the
 * restarted server's: the lock is free. */
static void test_restart_release_in_flight_fails_at_once(void **state)
{
    static struct release_job j; /* the thread may outlive a failed test */
    static pthread_t t;
    redislock_client *c = client(3000, 1000);
    redislock *lk = tf_lock(c, "r3", 0), *other = tf_lock(c, "r3", 0);

    assert_rl_ok(redislock_acquire(lk, 0));
    ts_pause(srv);
    j.lk = lk;
    j.rc = -1000;
    pthread_create(&t, NULL, release_main, &j);
    tf_defer(join_release, &t);
    tu_sleep_ms(150); /* the release is sent and waits for the reply */
    FAULT("server killed and restarted while a release is in flight");
    /* SIGKILL while stopped: it never runs the release (ts_restart alone
     * would send SIGCONT first) */
    kill(srv->pid, SIGKILL);
    assert_int_equal(ts_restart(srv), 0);
    tf_undefer(&t);
    if (j.rc != REDISLOCK_EIO)
        fail_msg("release in flight: %s", redislock_err_name(j.rc));
    assert_true(j.elapsed < TU_MS(3000)); /* the reset, not the timeout */
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
}

/* ---------------------------------------------------- connections killed */

/* A waiter's BLPOP connection is killed: it reconnects, waits again, and
 * is woken by the release.  With two waiters, the killed one and a second
 * one both get the lock in turn: no wake-up is lost. */
static void kill_first_blocked(faults_scene *s)
{
    long long id = faults_blocked_id(s->srv, 0);
    assert_true(id > 0);
    assert_true(faults_kill_id(s->srv, id));
    ts_await_blocked(s->srv, 2); /* it came back and blocks again */
}

static const faults_case test_kill_waiter_in_blpop_no_wakeup_lost = {
    .fault = "CLIENT KILL ID of a waiter blocked in BLPOP",
    .servers = tf_masters, .nservers = 1, .lock = "k1",
    .command_timeout_ms = 1000, .connect_timeout_ms = 2000,
    .waiters = 2, .hold_ms = 50, .timeout_ms = 10000, .await_blocked = 1,
    .inject = kill_first_blocked, .still_waiting_ms = 50,
    .release = 1, .want = REDISLOCK_OK, .woken_within_ms = 2000,
};

/* Every normal connection killed at each step of a holder's life, while a
 * waiter blocks: after acquire (before extend), after extend (before query
 * and release), before reset; the operations reconnect and the waiter
 * still gets the lock. */
static void kill_then_extend(faults_scene *s)
{
    long long pttl;
    FAULT("CLIENT KILL TYPE normal between acquire and extend");
    assert_true(faults_kill_normal(s->srv) >= 1);
    assert_rl_ok(redislock_extend(s->holder, 20000));
    pttl = ts_int(s->srv, "PTTL lock:k2");
    assert_true(pttl > 5000 && pttl <= 20000);
}

static void kill_then_query_kill_again(faults_scene *s)
{
    redislock_info info;
    assert_true(faults_kill_normal(s->srv) >= 1); /* the waiter's */
    assert_rl_ok(redislock_query(s->holder, &info));
    assert_int_equal(info.mine, 1);
    ts_await_blocked(s->srv, 1);
    FAULT("CLIENT KILL TYPE normal right before release");
    assert_true(faults_kill_normal(s->srv) >= 1);
}

static void kill_then_reset(faults_scene *s)
{
    assert_string_equal(owner_of("lock:k2"), redislock_id(s->w[0]->lk));
    FAULT("CLIENT KILL TYPE normal before reset");
    faults_kill_normal(s->srv);
    assert_int_equal(redislock_reset(s->client, "k2"), 1);
    assert_rl_err(redislock_release(s->w[0]->lk), REDISLOCK_ENOTHELD);
}

static const faults_case test_kill_connections_each_step_waiter_served = {
    .fault = "CLIENT KILL TYPE normal before query and release (waiter blocked)",
    .servers = tf_masters, .nservers = 1, .lock = "k2",
    .holder_expire_ms = 5000, .waiter_expire_ms = 5000,
    .command_timeout_ms = 1000, .connect_timeout_ms = 2000,
    .prepare = kill_then_extend,
    .timeout_ms = 10000, .await_blocked = 1,
    .inject = kill_then_query_kill_again,
    .release = 1, .want = REDISLOCK_OK,
    .check = kill_then_reset,
};

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
    if (!strstr(redislock_last_error(), srv->sock))
        fail_msg("%s: message lacks the server: %s", what, redislock_last_error());
    faults_run++;
}

/* A hung server (SIGSTOP): every operation fails with an I/O error within
 * its command timeout plus a margin; after SIGCONT every handle recovers and
 * the state is consistent whatever the late-executed commands did. */
static void test_hung_server_operations_fail_in_time_then_recover(void **state)
{
    const int tmo = 300;
    redislock_client *c = client(tmo, tmo);
    redislock *a = tf_lock(c, "h1", 30000), *b = tf_lock(c, "h1", 30000);
    redislock_info info;
    uint64_t count = 99;
    int64_t t0;
    int rc;

    assert_rl_ok(redislock_acquire(a, 0));
    assert_rl_ok(redislock_query(a, &info)); /* a pooled connection */
    print_message("      fault: server stopped (SIGSTOP) for 8 operations\n");
    ts_pause(srv);
    t0 = tu_now_ms();
    check_hung(redislock_acquire(b, 2000), t0, tmo, "acquire(2000)");
    assert_int_equal(redislock_held(b), 0);
    if (!strstr(redislock_last_error(), "(command timeout 300 ms, call timeout 2000 ms)"))
        fail_msg("acquire(2000): the message lacks the timeouts: %s", redislock_last_error());
    t0 = tu_now_ms();
    check_hung(redislock_acquire(b, -1), t0, tmo, "acquire(-1)");
    /* a wait for ever has no call timeout: not "call timeout -1 ms" */
    if (!strstr(redislock_last_error(), "(command timeout 300 ms, no call timeout)"))
        fail_msg("acquire(-1): %s", redislock_last_error());
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
    ts_resume(srv);

    /* The commands sent meanwhile run now, in any order across
     * connections; wait until the server is done with them. */
    faults_await_clients(srv, 1);
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
}

/* A waiter blocked in BLPOP when the server hangs, then resumes before its
 * deadline: it neither hangs nor misses the release made after SIGCONT.
 * (It may give up while the server is stopped, but only with an I/O error
 * and before its deadline.) */
static void pause_500_ms(faults_scene *s)
{
    ts_pause(s->srv);
    tu_sleep_ms(500);
    ts_resume(s->srv);
    tu_sleep_ms(100);
}

static void check_eio_before_deadline(faults_scene *s)
{
    if (s->w[0]->rc == REDISLOCK_EIO)
        assert_true(s->w[0]->got - s->w[0]->start < 3000);
}

static const faults_case test_hung_server_waiter_survives_pause = {
    .fault = "server stopped for 500 ms while a waiter blocks",
    .servers = tf_masters, .nservers = 1, .lock = "h2",
    .command_timeout_ms = 300, .connect_timeout_ms = 300, .holder_client = 1,
    .timeout_ms = 3000, .await_blocked = 1,
    .inject = pause_500_ms,
    .release = 1, .want = REDISLOCK_OK, .or_eio = 1,
    .max_slowed_ms = 3000 + 250 + 1000,
    .check = check_eio_before_deadline,
};

/* The waiter's deadline passes while the server is stopped: its timer
 * fires, the CLIENT UNBLOCK it sends gets no answer either, and it returns
 * by its deadline plus the documented slack (min(command timeout, 250 ms)),
 * with a timeout or an I/O error naming the server.  After SIGCONT all is
 * as before: the holder releases, a new waiter takes the lock. */
static void pause_server(faults_scene *s)
{
    ts_pause(s->srv);
}

static void resume_all_as_before(faults_scene *s)
{
    redislock *lk = s->w[0]->lk;
    ts_resume(s->srv);
    if (s->w[0]->rc == REDISLOCK_EIO)
        assert_msg_has(s->w[0]->msg, s->srv->sock);
    assert_int_equal(redislock_held(lk), 0);
    assert_string_equal(owner_of("lock:h3"), redislock_id(s->holder));
    assert_rl_ok(redislock_release(s->holder));
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
}

static const faults_case test_hung_server_waiter_returns_by_deadline = {
    .fault = "server stopped across a waiter's deadline",
    .servers = tf_masters, .nservers = 1, .lock = "h3",
    .command_timeout_ms = 1000, .connect_timeout_ms = 1000, .holder_client = 1,
    .timeout_ms = 800, .await_blocked = 1,
    .inject = pause_server,
    .want = REDISLOCK_ETIMEDOUT, .or_eio = 1,
    .min_ms = 800, .max_ms = 800 + 250, .max_slowed_ms = 400,
    .check = resume_all_as_before,
};

/* ------------------------------------------------------------------ signals */

/* Signals at random while a waiter waits: it is woken by the release, not
 * before. */
static const faults_case test_signals_waiter_woken_by_release_not_before = {
    .fault = "SIGUSR1 at random to a waiter woken by a release",
    .servers = tf_masters, .nservers = 1, .lock = "s1",
    .command_timeout_ms = 1000, .connect_timeout_ms = 1000,
    .timeout_ms = 10000, .signals = 1, .await_blocked = 1,
    .still_waiting_ms = 700,
    .release = 1, .want = REDISLOCK_OK, .woken_within_ms = 1000,
};

/* Signals at random to a waiter whose lock is never released: it times out
 * at its deadline, not before and not much after; the holder keeps it. */
static void holder_still_holds(faults_scene *s)
{
    assert_rl_ok(redislock_release(s->holder));
}

static const faults_case test_signals_waiter_times_out_at_deadline = {
    .fault = "SIGUSR1 at random to a waiter that times out",
    .servers = tf_masters, .nservers = 1, .lock = "s1",
    .command_timeout_ms = 1000, .connect_timeout_ms = 1000,
    .timeout_ms = 800, .signals = 2,
    .want = REDISLOCK_ETIMEDOUT, .min_ms = 800, .max_slowed_ms = 800 + 250 + 500,
    .check = holder_still_holds,
};

/* Signals at random to a waiter for a lock with an expiry: it takes the
 * lock when the expiry runs out. */
static const faults_case test_signals_waiter_takes_lock_at_expiry = {
    .fault = "SIGUSR1 at random to a waiter waiting for an expiry",
    .servers = tf_masters, .nservers = 1, .lock = "s2", .holder_expire_ms = 700,
    .command_timeout_ms = 1000, .connect_timeout_ms = 1000,
    .timeout_ms = 5000, .signals = 3,
    .want = REDISLOCK_OK, .min_ms = 600, .max_slowed_ms = 700 + 1000,
};

#define TEST(f) cmocka_unit_test_setup_teardown(f, tf_masters_setup, tf_masters_teardown)
#define CASE(c) FAULTS_CASE(c, tf_masters_setup, tf_masters_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_restart_waiter_takes_lock_from_empty_server),
        TEST(test_restart_down_release_fails_handle_still_holds),
        TEST(test_restart_empty_handle_learns_lock_gone),
        TEST(test_restart_with_key_restored_lock_still_held),
        TEST(test_restart_release_in_flight_fails_at_once),
        CASE(test_kill_waiter_in_blpop_no_wakeup_lost),
        CASE(test_kill_connections_each_step_waiter_served),
        TEST(test_hung_server_operations_fail_in_time_then_recover),
        CASE(test_hung_server_waiter_survives_pause),
        CASE(test_hung_server_waiter_returns_by_deadline),
        CASE(test_signals_waiter_woken_by_release_not_before),
        CASE(test_signals_waiter_times_out_at_deadline),
        CASE(test_signals_waiter_takes_lock_at_expiry),
    };
    return cmocka_run_group_tests_name("faults_server", tests, tf_masters_group_setup_1,
                                       group_teardown);
}
