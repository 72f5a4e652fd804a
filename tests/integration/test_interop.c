/* Interoperability with python-redis-lock 4.x on the default key layout:
 * a Python release wakes a C waiter and the other way round.
 *
 * The peer is tests/interop/prl_peer.py.  It uses the real python-redis-lock
 * when it is importable, else a stand-in that speaks its 4.0 protocol; the
 * test prints which.  Skipped when no python3 with redis-py is found. */
#include "fixtures.h"
#include "intervals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char python[512];
static int have_python;

/* Every test starts here: skipped (not failed) without a Python peer. */
static int setup(void **state)
{
    return have_python ? tu_setup(state) : 0;
}
#define NEED_PYTHON()      \
    do {                   \
        if (!have_python)  \
            skip();        \
    } while (0)

typedef struct peer {
    pid_t pid;
    FILE *in;   /* to the peer */
    FILE *out;  /* from the peer */
} peer;

/* One peer per test, in static storage: the teardown ends it if a failed
 * test did not. */
static peer the_peer;

static int python_ok(const char *py)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import redis' >/dev/null 2>&1", py);
    return system(cmd) == 0;
}

static int find_python(void)
{
    const char *cands[] = { getenv("PYTHON3"), "/usr/bin/python3", "python3" };
    size_t i;
    for (i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (cands[i] && *cands[i] && python_ok(cands[i])) {
            snprintf(python, sizeof python, "%s", cands[i]);
            return 1;
        }
    return 0;
}

static void peer_end(void *arg)
{
    peer *p = arg;
    if (p->in)
        fclose(p->in);
    if (p->out)
        fclose(p->out);
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        tu_wait(p->pid);
    }
    memset(p, 0, sizeof *p);
}

static peer *peer_start(void)
{
    peer *p = &the_peer;
    int to[2], from[2];
    char script[700];
    const char *src = getenv("top_srcdir");
    char first[128];
    snprintf(script, sizeof script, "%s/tests/interop/prl_peer.py", src ? src : ".");
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execlp(python, python, script, tu_srv.sock, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    p->in = fdopen(to[1], "w");
    p->out = fdopen(from[0], "r");
    tf_defer(peer_end, p);
    assert_non_null(fgets(first, sizeof first, p->out));
    print_message("      %s", first);
    return p;
}

static void peer_send(peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->in, fmt, ap);
    va_end(ap);
    fputc('\n', p->in);
    fflush(p->in);
}

/* Read one line from the peer (blocking; the peer's own timeouts bound it). */
static char *peer_line(peer *p, char *buf, size_t len)
{
    char *r = fgets(buf, (int)len, p->out);
    assert_non_null(r);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static void peer_stop(peer *p)
{
    peer_send(p, "quit");
    fclose(p->in);
    fclose(p->out);
    tu_wait(p->pid);
    memset(p, 0, sizeof *p);
}

static int group_teardown(void **state)
{
    return have_python ? tu_group_teardown(state) : 0;
}

static int group_setup(void **state)
{
    if (!find_python()) {
        fprintf(stderr, "interop: no python3 with redis-py (Debian: python3-redis); "
                        "skipping\n");
        return 0;
    }
    have_python = 1;
    return tu_group_setup(state);
}

/* A Python holder's release wakes a C waiter. */
static void test_interop_python_release_wakes_c(void **state)
{
    NEED_PYTHON();
    peer *py;
    char line[256];
    tf_waiter *w = tf_waiter_new(tf_lock(tu_cl, "shared", 0), 10000);
    int64_t released;

    py = peer_start();
    peer_send(py, "acquire shared 0 0");
    assert_memory_equal(peer_line(py, line, sizeof line), "acquired", 8);
    assert_rl_err(redislock_try_acquire(w->lk), REDISLOCK_EBUSY);
    tf_waiter_run(w);
    ts_await_blocked(&tu_srv, 1);
    peer_send(py, "release");
    assert_string_equal(peer_line(py, line, sizeof line), "released");
    released = tu_now_ms();
    tf_waiter_join(w);
    assert_rl_ok(w->rc);
    assert_true(w->got - released < TU_MS(500));
    assert_rl_ok(redislock_release(w->lk));
    peer_stop(py);
}

/* A C holder's release wakes a Python waiter blocked in BLPOP. */
static void test_interop_c_release_wakes_python(void **state)
{
    NEED_PYTHON();
    peer *py;
    char line[256];
    redislock *lk = tf_lock(tu_cl, "shared2", 0);
    int64_t released, got;

    py = peer_start();
    assert_rl_ok(redislock_acquire(lk, 0));
    peer_send(py, "acquire shared2 0 -1");
    ts_await_blocked(&tu_srv, 1);
    assert_rl_ok(redislock_release(lk));
    released = tu_now_ms();
    peer_line(py, line, sizeof line);
    assert_int_equal(sscanf(line, "acquired %lld", (long long *)&got), 1);
    assert_true(got - released < TU_MS(1000));
    /* the Python holder owns the key now; C sees it busy, with its id */
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EBUSY);
    peer_send(py, "id");
    peer_line(py, line, sizeof line);
    assert_non_null(strstr(redislock_errmsg(lk), line + 3));
    peer_send(py, "release");
    assert_string_equal(peer_line(py, line, sizeof line), "released");
    peer_stop(py);
}

/* The Python side cannot release a C holder's lock, nor C a Python one;
 * each release leaves the other's lock intact. */
static void test_interop_neither_side_releases_the_others_lock(void **state)
{
    NEED_PYTHON();
    peer *py;
    char line[256];
    redislock *lk = tf_lock(tu_cl, "own", 0);
    redislock_info info;

    py = peer_start();
    peer_send(py, "acquire own 0 0");
    assert_memory_equal(peer_line(py, line, sizeof line), "acquired", 8);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 1);
    assert_int_equal(info.mine, 0);
    assert_int_equal(strlen(info.owner), 24);
    peer_send(py, "release");
    assert_string_equal(peer_line(py, line, sizeof line), "released");

    assert_rl_ok(redislock_acquire(lk, 0));
    peer_send(py, "release"); /* the peer's last lock object: not the holder */
    assert_string_equal(peer_line(py, line, sizeof line), "notheld");
    assert_rl_ok(redislock_release(lk));
    peer_stop(py);
}

/* A C reset wakes a Python waiter; a Python reset wakes a C waiter. */
static void test_interop_reset_wakes_the_other_side(void **state)
{
    NEED_PYTHON();
    peer *py;
    char line[256];
    redislock *lk = tf_lock(tu_cl, "rst", 0);
    tf_waiter *w = tf_waiter_new(tf_lock(tu_cl, "rst", 0), 10000);

    py = peer_start();
    assert_rl_ok(redislock_acquire(lk, 0));
    peer_send(py, "acquire rst 0 -1");
    ts_await_blocked(&tu_srv, 1);
    assert_int_equal(redislock_reset(tu_cl, "rst"), 1);
    assert_memory_equal(peer_line(py, line, sizeof line), "acquired", 8);

    tf_waiter_run(w);
    ts_await_blocked(&tu_srv, 1);
    peer_send(py, "reset rst");
    assert_string_equal(peer_line(py, line, sizeof line), "reset");
    tf_waiter_join(w);
    assert_rl_ok(w->rc);
    assert_rl_ok(redislock_release(w->lk));
    peer_stop(py);
}

/* A Python holder with expire=1 that dies: the C waiter takes the lock at
 * the expiry, although no wake-up was ever pushed. */
static void test_interop_c_waiter_takes_lock_at_python_holders_expiry(void **state)
{
    NEED_PYTHON();
    peer *py;
    char line[256];
    redislock *lk = tf_lock(tu_cl, "dies", 0);
    long long at;
    int64_t delay;

    py = peer_start();
    peer_send(py, "acquire dies 1 0");
    peer_line(py, line, sizeof line);
    assert_int_equal(sscanf(line, "acquired %lld", &at), 1);
    tf_undefer(py); /* SIGKILL */
    assert_rl_ok(redislock_acquire(lk, 5000));
    delay = tu_now_ms() - (at + 1000);
    print_message("      C waiter took the lock %lld ms after the Python holder's "
                  "expiry\n", (long long)delay);
    assert_true(delay > -50 && delay < TU_MS(300));
    assert_rl_ok(redislock_release(lk));
}

/* ---------------------------------------------- the fair lock (issue 24) */

/* A fair lock is python-redis-lock's lock:<name> to a Python peer: held
 * while a C fair holder has it; its release (nobody in the fair queue)
 * wakes a Python waiter through lock-signal:<name>. */
static void test_interop_fair_lock_is_held_for_python(void **state)
{
    NEED_PYTHON();
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    peer *py;
    char line[256];
    redislock *lk;
    int64_t released;
    long long got;

    o.fair = 1;
    o.expire_ms = 5000;
    lk = tf_lock_opts(tu_cl, "fairpy", &o);
    py = peer_start();
    assert_rl_ok(redislock_acquire(lk, 0));
    peer_send(py, "acquire fairpy 5 0");
    assert_memory_equal(peer_line(py, line, sizeof line), "timeout", 7);
    peer_send(py, "acquire fairpy 5 -1");
    ts_await_blocked(&tu_srv, 1);
    assert_rl_ok(redislock_release(lk));
    released = tu_now_ms();
    peer_line(py, line, sizeof line);
    assert_int_equal(sscanf(line, "acquired %lld", &got), 1);
    assert_true(got - released < TU_MS(1000));
    /* and the other way: the Python holder keeps the fair lock busy */
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EBUSY);
    peer_send(py, "release");
    assert_string_equal(peer_line(py, line, sizeof line), "released");
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    peer_stop(py);
}

typedef struct fair_contender {
    redislock *lk;
    ti_log *log;
    int slot;
    int *stop;
} fair_contender;

static void *fair_main(void *arg)
{
    fair_contender *f = arg;
    while (!__atomic_load_n(f->stop, __ATOMIC_ACQUIRE)) {
        int64_t start, last;
        if (redislock_acquire(f->lk, 500))
            continue;
        start = ti_now_us();
        last = ti_vouched(f->lk);
        usleep(2000);
        if (ti_vouched(f->lk))
            last = ti_vouched(f->lk);
        ti_add(f->log, f->slot, start, last ? last : start);
        if (redislock_release(f->lk) && redislock_held(f->lk))
            break;
        usleep(15000); /* the lock free now and then: the peer's turn */
    }
    return NULL;
}

/* Three C threads take the fair lock (pausing 15 ms between holds: while
 * its queue is never empty the fair lock goes from one of its waiters to
 * the next, and a python-redis-lock waiter gets no turn: mixed fleets are
 * best effort), a Python peer python-redis-lock's lock of the same name,
 * for 3 s: no two holds overlap (each logged from
 * its acquire's return to its last vouched moment; the peer's from the
 * monotonic clock it read after its acquire returned to the one it read
 * before calling release). */
static void test_interop_fair_lock_and_python_never_overlap(void **state)
{
    NEED_PYTHON();
    static fair_contender fc[3];
    static int stop;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    ti_log *log = ti_log_new(4, 20000);
    pthread_t th[3];
    ti_report r;
    peer *py;
    char line[256];
    int i, py_holds = 0;
    int64_t end;

    o.fair = 1;
    o.expire_ms = 2000;
    o.waiter_lease_ms = 600; /* a waiter behind the peer looks every 200 ms */
    stop = 0;
    for (i = 0; i < 3; i++) {
        fc[i] = (fair_contender){ tf_lock_opts(tf_client(tu_srv.url), "ivpy", &o), log, i,
                                  &stop };
        assert_int_equal(pthread_create(&th[i], NULL, fair_main, &fc[i]), 0);
    }
    py = peer_start();
    end = tu_now_ms() + 3000;
    while (tu_now_ms() < end) {
        long long ms, at;
        peer_send(py, "acquire ivpy 5 1");
        peer_line(py, line, sizeof line);
        if (sscanf(line, "acquired %lld %lld", &ms, &at) != 2)
            continue;
        usleep(3000);
        peer_send(py, "release_at");
        assert_int_equal(sscanf(peer_line(py, line, sizeof line), "released %lld", &ms), 1);
        ti_add(log, 3, at, ms);
        py_holds++;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    peer_stop(py);
    r = ti_check(log);
    print_message("      %zu holds, %d of them python-redis-lock's: none overlap (smallest "
                  "gap %lld us)\n", r.holds, py_holds, (long long)r.min_gap_us);
    assert_true(py_holds > 0);
    assert_true(r.holds > (size_t)py_holds);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_interop_python_release_wakes_c),
        TEST(test_interop_c_release_wakes_python),
        TEST(test_interop_neither_side_releases_the_others_lock),
        TEST(test_interop_reset_wakes_the_other_side),
        TEST(test_interop_c_waiter_takes_lock_at_python_holders_expiry),
        TEST(test_interop_fair_lock_is_held_for_python),
        TEST(test_interop_fair_lock_and_python_never_overlap),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("interop", tests, group_setup, group_teardown);
}
