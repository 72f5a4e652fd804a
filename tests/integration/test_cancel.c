/* Ending waits: redislock_cancel() on a handle, from another thread or a
 * signal handler, and redislock_client_shutdown() for every wait of a
 * client.  A cancelled wait returns REDISLOCK_ECANCELED within about one
 * round trip (a few ms at most on a server that hangs) and leaves no lock
 * taken, even when a grant raced with it, also one that needed confirming
 * after a long wait.  A cancel from a forked child never reaches the
 * parent's wait, a wake-up of the cancel descriptor without a cancel never
 * makes a wait spin, and a wait leaves no descriptor behind. */
#include "fixtures.h"
#include "internal.h" /* the handle's cancel descriptor, for the spurious wake-up */
#include "server.h"
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The lock's owner on the server ("" if free). */
static void owner(const char *name, char *buf, size_t len)
{
    ts_str(&tu_srv, buf, len, "GET lock:%s", name);
}

/* (waits of 20 s stand for waits for ever: a failing test must not hang) */
static void test_cancel_from_another_thread_ends_a_long_wait(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *holder = tf_lock(c, "c1", 0);
    tf_waiter *w;
    int64_t t0, took;
    char who[300];
    (void)state;
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(tf_lock(c, "c1", 0), 20000);
    ts_await_blocked(&tu_srv, 1);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_cancel(w->lk));
    tf_waiter_join(w);
    took = w->got - t0;
    print_message("      a 20 s wait, cancelled: returned after %lld ms\n",
                  (long long)took);
    assert_rl_err(w->rc, REDISLOCK_ECANCELED);
    assert_non_null(strstr(w->msg, "cancel"));
    assert_true(took < TU_MS(200));
    assert_int_equal(redislock_held(w->lk), 0);
    owner("c1", who, sizeof who);
    assert_string_equal(who, redislock_id(holder));
    assert_int_equal(ts_info(&tu_srv, "clients", "blocked_clients"), 0);
    /* answered: the next wait on the handle is not cancelled */
    assert_rl_ok(redislock_release(holder));
    assert_rl_ok(redislock_acquire(w->lk, 1000));
}

static redislock *volatile to_cancel;

static void on_usr1(int sig)
{
    (void)sig;
    redislock_cancel(to_cancel); /* async-signal-safe */
}

static void restore_usr1(void *unused)
{
    (void)unused;
    signal(SIGUSR1, SIG_DFL);
}

static void test_cancel_from_a_signal_handler(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *holder = tf_lock(c, "c2", 0);
    tf_waiter *w;
    struct sigaction sa;
    (void)state;
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(tf_lock(c, "c2", 0), TU_MS(10000));
    to_cancel = w->lk;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    tf_defer(restore_usr1, NULL);
    ts_await_blocked(&tu_srv, 1);
    pthread_kill(w->t, SIGUSR1);
    tf_waiter_join(w);
    assert_rl_err(w->rc, REDISLOCK_ECANCELED);
    assert_true(w->got - w->start < TU_MS(10000) / 2);
}

/* A cancel that comes before the acquire is not lost: that acquire answers
 * it at once; the one after works. */
static void test_cancel_before_the_wait_is_answered_by_the_next_acquire(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *lk = tf_lock(c, "c3", 0);
    int64_t t0;
    (void)state;
    assert_rl_ok(redislock_cancel(lk));
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 5000), REDISLOCK_ECANCELED);
    assert_true(tu_now_ms() - t0 < TU_MS(100));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:c3"), 0);
    assert_rl_ok(redislock_acquire(lk, 5000));
    assert_rl_err(redislock_cancel(NULL), REDISLOCK_EINVAL);
}

/* The holder releases and the waiter is cancelled at the same moment, many
 * times: whatever the call answers, the server agrees (a grant that raced
 * with the cancel was released again). */
static void test_grant_that_races_with_a_cancel_is_not_kept(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    int i, cancelled = 0, got = 0;
    (void)state;
    for (i = 0; i < 40; i++) {
        char name[32], who[300];
        redislock *holder, *lk;
        tf_waiter *w;
        snprintf(name, sizeof name, "race%d", i);
        holder = tf_lock(c, name, 0);
        lk = tf_lock(c, name, 0);
        assert_rl_ok(redislock_acquire(holder, 0));
        w = tf_waiter_start(lk, TU_MS(5000));
        ts_await_blocked(&tu_srv, 1);
        if (i % 2)
            redislock_cancel(lk);
        assert_rl_ok(redislock_release(holder));
        if (!(i % 2))
            redislock_cancel(lk);
        tf_waiter_join(w);
        owner(name, who, sizeof who);
        if (w->rc == REDISLOCK_ECANCELED) {
            cancelled++;
            assert_string_not_equal(who, redislock_id(lk));
            assert_int_equal(redislock_held(lk), 0);
        } else {
            tf_waiter_assert_ok(w);
            got++;
            assert_string_equal(who, redislock_id(lk));
            assert_rl_ok(redislock_release(lk));
        }
        /* whatever happened, nobody waits and no cancel is left over */
        redislock_cancel(lk);
        assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_ECANCELED);
    }
    print_message("      40 releases racing a cancel: %d cancelled, %d got the lock; "
                  "the server agreed every time\n", cancelled, got);
    assert_true(cancelled > 0);
}

static void test_client_shutdown_ends_every_wait(void **state)
{
    enum { N = 8 };
    redislock_client *c = tf_client(tu_srv.url);
    redislock *holder = tf_lock(c, "c5", 0);
    tf_waiter *w[N];
    int i;
    int64_t t0;
    redislock_info info;
    (void)state;
    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < N; i++)
        w[i] = tf_waiter_start(tf_lock(c, "c5", 0), 20000);
    ts_await_blocked(&tu_srv, N);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_client_shutdown(c));
    for (i = 0; i < N; i++) {
        tf_waiter_join(w[i]);
        assert_rl_err(w[i]->rc, REDISLOCK_ECANCELED);
        assert_non_null(strstr(w[i]->msg, "shutting down"));
    }
    print_message("      %d 20 s waits ended %lld ms after the shutdown\n", N,
                  (long long)(tu_now_ms() - t0));
    assert_true(tu_now_ms() - t0 < TU_MS(500));
    /* no new wait; the rest still works, so the holder can let go */
    assert_rl_err(redislock_acquire(w[0]->lk, 1000), REDISLOCK_ECANCELED);
    assert_rl_err(redislock_try_acquire(w[0]->lk), REDISLOCK_ECANCELED);
    assert_rl_ok(redislock_query(holder, &info));
    assert_rl_ok(redislock_release(holder));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:c5"), 0);
    assert_rl_err(redislock_client_shutdown(NULL), REDISLOCK_EINVAL);
}

static void test_cancel_ends_a_wait_on_three_masters(void **state)
{
    redislock_client *c;
    redislock *holder;
    tf_waiter *w;
    int i;
    (void)state;
    if (tf_nmasters < 3)
        skip();
    c = tf_multi(3, 0);
    holder = tf_lock(c, "m", 10000);
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(tf_lock(c, "m", 10000), TU_MS(8000));
    tf_await_blocked_all(tf_masters, 3, 1);
    assert_rl_ok(redislock_cancel(w->lk));
    tf_waiter_join(w);
    assert_rl_err(w->rc, REDISLOCK_ECANCELED);
    assert_true(w->got - w->start < TU_MS(8000) / 2);
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_info(&tf_masters[i], "clients", "blocked_clients"), 0);
}

/* 1 if the server holds lock `name` under lk's owner id. */
static int owns(ts_server *srv, const char *name, const redislock *lk)
{
    char who[300];
    return !strcmp(ts_str(srv, who, sizeof who, "GET lock:%s", name), redislock_id(lk));
}

/* Lock `name` held (without expiry) by a handle of c, and a waiter (expiry
 * expire_ms, timeout_ms) blocked behind it on srv; the waiter's handle is
 * w->lk. */
static tf_waiter *blocked_waiter(redislock_client *c, ts_server *srv, const char *name,
                                 int64_t expire_ms, int64_t timeout_ms, redislock **holder)
{
    tf_waiter *w;
    *holder = tf_lock(c, name, 0);
    assert_rl_ok(redislock_acquire(*holder, 0));
    w = tf_waiter_start(tf_lock(c, name, expire_ms), timeout_ms);
    ts_await_blocked(srv, 1);
    return w;
}

/* Rounds of the racing tests: $REDISLOCK_TEST_ROUNDS, else def. */
static int rounds(int def)
{
    const char *e = getenv("REDISLOCK_TEST_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : def;
}

/* A waiter (expiry 1000 ms) blocked 700 ms when the holder's key goes (no
 * wake-up: deleted), then cancelled: the acquire behind its BLPOP takes
 * the lock, and since the wait was longer than half the expiry that grant
 * needs confirming (CONFIRM).  The cancel must give it back all the same:
 * ECANCELED, not held, and the server agrees. */
static void test_cancel_gives_back_a_grant_that_needed_confirming(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    int i, leaked = 0;
    (void)state;
    for (i = 0; i < 3; i++) {
        char name[32];
        redislock *holder, *lk;
        tf_waiter *w;
        snprintf(name, sizeof name, "conf%d", i);
        w = blocked_waiter(c, &tu_srv, name, 1000, 20000, &holder);
        lk = w->lk;
        tu_sleep_ms(700);
        assert_int_equal(ts_int(&tu_srv, "DEL lock:%s", name), 1);
        assert_rl_ok(redislock_cancel(lk));
        tf_waiter_join(w);
        assert_rl_err(w->rc, REDISLOCK_ECANCELED);
        assert_int_equal(redislock_held(lk), 0);
        leaked += owns(&tu_srv, name, lk);
    }
    print_message("      a grant needing confirmation met a cancel: %d of 3 left the "
                  "lock held\n", leaked);
    assert_int_equal(leaked, 0);
}

/* The race: waiter expiry 200 ms, the holder releases 150 ms into
 * the wait and the waiter is cancelled at once: whatever the call answers,
 * the server agrees (ECANCELED: not the waiter's). */
static void test_release_racing_a_cancel_after_a_long_wait_leaves_nothing(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    int i, n = rounds(20), leaked = 0, cancelled = 0;
    (void)state;
    for (i = 0; i < n; i++) {
        char name[32];
        redislock *holder, *lk;
        tf_waiter *w;
        snprintf(name, sizeof name, "lr%d", i);
        w = blocked_waiter(c, &tu_srv, name, 200, 5000, &holder);
        lk = w->lk;
        tu_sleep_ms(150);
        assert_rl_ok(redislock_release(holder));
        redislock_cancel(lk);
        tf_waiter_join(w);
        if (w->rc == REDISLOCK_ECANCELED) {
            cancelled++;
            assert_int_equal(redislock_held(lk), 0);
            leaked += owns(&tu_srv, name, lk);
        } else {
            tf_waiter_assert_ok(w);
            assert_rl_ok(redislock_release(lk));
        }
        tf_undefer(w); /* back to the pool of waiters, then the handles */
        tf_undefer(lk);
        tf_undefer(holder);
    }
    print_message("      %d releases 150 ms into a wait (expiry 200 ms) racing a cancel: "
                  "%d cancelled, %d of them left the lock held\n", n, cancelled, leaked);
    assert_int_equal(leaked, 0);
}

static void resume_server(void *s)
{
    ts_resume(s);
}

/* A waiter blocked on a server that then hangs (SIGSTOP) is cancelled:
 * the call must not wait on the server (issue goal: 50 ms; it took twice
 * the command timeout).  After SIGCONT the holder still holds the lock and
 * nothing of the waiter is left. */
static void cancel_on_hung_server(int shutdown)
{
    static ts_server hung;
    redislock_client *c;
    redislock *holder, *lk;
    tf_waiter *w;
    int64_t t0, took;

    tf_server_start(&hung);
    c = tf_client(hung.url); /* command timeout 2 s */
    w = blocked_waiter(c, &hung, "hung", 30000, 20000, &holder);
    lk = w->lk;
    ts_pause(&hung);
    tf_defer(resume_server, &hung); /* before the waiter is joined */
    t0 = tu_now_ms();
    if (shutdown)
        assert_rl_ok(redislock_client_shutdown(c));
    else
        assert_rl_ok(redislock_cancel(lk));
    tf_waiter_join(w);
    took = w->got - t0;
    print_message("      %s on a hung server: the wait returned after %lld ms "
                  "(command timeout 2000 ms)\n",
                  shutdown ? "redislock_client_shutdown()" : "redislock_cancel()",
                  (long long)took);
    assert_rl_err(w->rc, REDISLOCK_ECANCELED);
    assert_int_equal(redislock_held(lk), 0);
    assert_true(took < TU_MS(500));
    ts_resume(&hung);
    tu_sleep_ms(100); /* what was sent to it meanwhile runs */
    assert_true(owns(&hung, "hung", holder));
    assert_int_equal(ts_info(&hung, "clients", "blocked_clients"), 0);
}

static void test_cancel_on_a_hung_server_does_not_wait_for_it(void **state)
{
    (void)state;
    cancel_on_hung_server(0);
}

static void test_shutdown_on_a_hung_server_does_not_wait_for_it(void **state)
{
    (void)state;
    cancel_on_hung_server(1);
}

/* A waiter for ever whose holder's key expires in 600 ms; the server hangs
 * meanwhile.  When the waiter's timer fires, its CLIENT UNBLOCK gets no
 * answer: the call reports EIO after one command timeout (300 ms) past the
 * timer, not after a second one spent retrying on the same hung server. */
static void test_wait_on_a_hung_server_fails_after_one_command_timeout(void **state)
{
    static ts_server hung;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder, *lk;
    tf_waiter *w;
    int64_t took;

    tf_server_start(&hung);
    o.command_timeout_ms = 300;
    o.connect_timeout_ms = 300;
    c = tf_client_opts(hung.url, &o);
    holder = tf_lock(c, "hw", 600);
    lk = tf_lock(c, "hw", 600);
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(lk, -1);
    ts_await_blocked(&hung, 1);
    ts_pause(&hung);
    tf_defer(resume_server, &hung);
    tf_waiter_join(w);
    took = w->got - w->start;
    print_message("      waiting for a 600 ms holder on a server hung meanwhile: %s "
                  "after %lld ms (command timeout 300 ms)\n",
                  redislock_err_name(w->rc), (long long)took);
    assert_rl_err(w->rc, REDISLOCK_EIO);
    assert_true(took < 600 + 300 + TU_MS(150));
}

/* What a waiter does over 300 ms while the holder keeps the lock.  A
 * wait that goes on waiting sends nothing; one that turned into a loop
 * (BLPOP, CLIENT UNBLOCK and the acquire behind, again and again) burns a
 * core, or, when a CLIENT UNBLOCK overtook its BLPOP, stalls after a few
 * commands until the BLPOP's own timeout. */
typedef struct activity {
    long long commands0; /* the server's total_commands_processed */
    struct rusage ru0;
} activity;

static void activity_start(activity *a)
{
    a->commands0 = ts_info(&tu_srv, "stats", "total_commands_processed");
    getrusage(RUSAGE_SELF, &a->ru0);
}

/* After 300 ms: the commands the server ran meanwhile (not counting the
 * INFO that reads them), and the CPU ms this process used. */
static long long activity_end(const activity *a, long long *cpu_ms)
{
    struct rusage r;
    long long n;
    tu_sleep_ms(300);
    getrusage(RUSAGE_SELF, &r);
    n = ts_info(&tu_srv, "stats", "total_commands_processed") - a->commands0 - 1;
    *cpu_ms = (r.ru_utime.tv_sec - a->ru0.ru_utime.tv_sec + r.ru_stime.tv_sec -
               a->ru0.ru_stime.tv_sec) * 1000LL +
              (r.ru_utime.tv_usec - a->ru0.ru_utime.tv_usec + r.ru_stime.tv_usec -
               a->ru0.ru_stime.tv_usec) / 1000;
    return n;
}

/* In a forked child (tu_spawn): the inherited handle's cancel. */
static int cancel_in_child(void *lk)
{
    return redislock_cancel(lk) == 0 ? 0 : 1;
}

/* A forked child calls redislock_cancel() on a handle it inherited while
 * the parent waits on it (an inherited signal handler does that): the
 * parent is not cancelled and goes on waiting without spinning (it
 * re-issued BLPOP + acquire + CLIENT UNBLOCK thousands of times a second,
 * burning a core). */
static void test_cancel_in_a_forked_child_does_not_reach_the_parent(void **state)
{
    redislock *holder;
    tf_waiter *w = blocked_waiter(tf_client(tu_srv.url), &tu_srv, "fk", 0, 20000, &holder);
    redislock *lk = w->lk;
    activity act;
    long long n, cpu;
    pid_t pid;
    (void)state;
    activity_start(&act);
    pid = tu_spawn(cancel_in_child, lk);
    assert_int_equal(tu_wait(pid), 0);
    n = activity_end(&act, &cpu);
    print_message("      a child's cancel of an inherited handle: in the next 300 ms the "
                  "parent's wait sent %lld commands and used %lld ms of CPU\n", n, cpu);
    assert_true(n <= 1);
    assert_int_equal(tf_waiter_done(w), 0); /* not cancelled */
    assert_rl_ok(redislock_release(holder));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
}

/* A wake-up of the wait's cancel descriptor without a cancel (the flag not
 * set) never turns the wait into a loop. */
static void test_spurious_wake_of_the_cancel_fd_is_not_a_loop(void **state)
{
    redislock *holder;
    tf_waiter *w = blocked_waiter(tf_client(tu_srv.url), &tu_srv, "sp", 0, 20000, &holder);
    uint64_t one = 1;
    activity act;
    long long n, cpu;
    int fd;
    (void)state;
    fd = __atomic_load_n(&w->lk->cancel_fd, __ATOMIC_SEQ_CST);
    assert_true(fd >= 0);
    activity_start(&act);
    assert_int_equal(write(fd, &one, sizeof one), (int)sizeof one);
    n = activity_end(&act, &cpu);
    print_message("      a spurious wake-up of the cancel descriptor: in the next 300 ms "
                  "the wait sent %lld commands and used %lld ms of CPU\n", n, cpu);
    assert_true(n <= 1);
    assert_int_equal(tf_waiter_done(w), 0);
    assert_rl_ok(redislock_release(holder));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Handles that waited keep no descriptor once their waits ended (5,000
 * waiters used 11,109 descriptors): 50 handles each wait for a 20 ms
 * holder (longer on slow runs) to expire; afterwards the process has no
 * more descriptors than before, beyond what the pool keeps idle. */
static void test_waits_leave_no_descriptor_behind(void **state)
{
    enum { N = 50 };
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder, *lk[N];
    int i, before, after;
    (void)state;
    o.max_idle_connections = 2;
    c = tf_client_opts(tu_srv.url, &o);
    holder = tf_lock(c, "fds", TU_MS(20));
    for (i = 0; i < N; i++)
        lk[i] = tf_lock(c, "fds", 0);
    assert_rl_ok(redislock_acquire(lk[0], 0)); /* the pool is warm */
    assert_rl_ok(redislock_release(lk[0]));
    before = open_fds();
    for (i = 0; i < N; i++) {
        assert_rl_ok(redislock_acquire(holder, 0));
        assert_rl_ok(redislock_acquire(lk[i], 2000)); /* waits for the expiry */
        assert_rl_ok(redislock_release(lk[i]));
    }
    after = open_fds();
    print_message("      %d handles that waited: %d descriptors before, %d after\n", N,
                  before, after);
    assert_true(after <= before + 2);
}

static int group_setup(void **state)
{
    if (tu_group_setup(state))
        return -1;
    return tf_masters_start(3);
}

static int group_teardown(void **state)
{
    tf_masters_group_teardown(state);
    return tu_group_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel_from_another_thread_ends_a_long_wait,
                                        tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_a_signal_handler, tu_setup,
                                        tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_cancel_before_the_wait_is_answered_by_the_next_acquire, tu_setup,
            tf_teardown),
        cmocka_unit_test_setup_teardown(test_grant_that_races_with_a_cancel_is_not_kept,
                                        tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(test_client_shutdown_ends_every_wait, tu_setup,
                                        tf_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_ends_a_wait_on_three_masters,
                                        tf_masters_setup, tf_masters_teardown),
        cmocka_unit_test_setup_teardown(
            test_cancel_gives_back_a_grant_that_needed_confirming, tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_release_racing_a_cancel_after_a_long_wait_leaves_nothing, tu_setup,
            tf_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_a_hung_server_does_not_wait_for_it,
                                        tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_on_a_hung_server_does_not_wait_for_it,
                                        tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_wait_on_a_hung_server_fails_after_one_command_timeout, tu_setup,
            tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_cancel_in_a_forked_child_does_not_reach_the_parent, tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(test_spurious_wake_of_the_cancel_fd_is_not_a_loop,
                                        tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(test_waits_leave_no_descriptor_behind, tu_setup,
                                        tf_teardown),
    };
    return cmocka_run_group_tests_name("cancel", tests, group_setup, group_teardown);
}
