/* redislock(1) with processes and signals, through the real binary against
 * a real redis-server: 10 concurrent invocations never overlap; SIGTERM,
 * SIGINT and SIGHUP reach COMMAND and the lock is released; a signal while
 * waiting ends the tool; SIGKILL of the tool frees the lock at its expiry;
 * a lock lost while COMMAND runs is reported and COMMAND gets SIGTERM. */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define URL tu_srv.url

/* A COMMAND that says "ready", traps the forwarded signals (printing which
 * one and exiting with `code`), and otherwise runs until killed. */
static const char *trapping(int code)
{
    static char buf[300];
    snprintf(buf, sizeof buf,
             "for s in TERM INT HUP; do trap \"echo got $s; exit %d\" $s; done; "
             "echo ready; while :; do sleep 0.05; done",
             code);
    return buf;
}

static void expect_line(tool_proc *p, int err, const char *want, int timeout_ms)
{
    char line[512];
    if (tp_line(p, err, line, sizeof line, timeout_ms))
        fail_msg("no line '%s' on %s within %d ms (so far: '%s')", want,
                 err ? "stderr" : "stdout", timeout_ms, err ? p->err.buf : p->out.buf);
    if (strcmp(line, want))
        fail_msg("got '%s', expected '%s'", line, want);
}

/* 10 tools start at once; each COMMAND records "start end" (ns of
 * CLOCK_REALTIME); sorted by start, each starts after the previous ended. */
static void test_tool_serialised(void **state)
{
    enum { N = 10 };
    tool_proc p[N];
    long long s[N], e[N];
    char cmd[600];
    const char *log = tp_path("intervals");
    FILE *f;
    int i, j, n = 0;

    snprintf(cmd, sizeof cmd,
             "s=$(date +%%s%%N); sleep 0.05; e=$(date +%%s%%N); echo \"$s $e\" >> '%s'",
             log);
    for (i = 0; i < N; i++)
        TP_START(&p[i], "-u", URL, "-w", "120", "serial", "-c", cmd);
    for (i = 0; i < N; i++) {
        assert_int_equal(tp_finish(&p[i], (int)TU_MS(60000)), 0);
        assert_string_equal(p[i].err.buf, "");
    }
    f = fopen(log, "r");
    assert_non_null(f);
    while (n < N && fscanf(f, "%lld %lld", &s[n], &e[n]) == 2)
        n++;
    fclose(f);
    assert_int_equal(n, N);
    for (i = 0; i < N; i++) /* sort by start */
        for (j = i + 1; j < N; j++)
            if (s[j] < s[i]) {
                long long t = s[i], u = e[i];
                s[i] = s[j], e[i] = e[j], s[j] = t, e[j] = u;
            }
    for (i = 0; i < N; i++) {
        assert_true(e[i] > s[i]);
        if (i > 0 && s[i] <= e[i - 1])
            fail_msg("COMMAND %d started at %lld before COMMAND %d ended at %lld", i,
                     s[i], i - 1, e[i - 1]);
    }
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:serial"), 0);
}

/* Each of SIGTERM, SIGINT, SIGHUP sent to the tool reaches COMMAND (which
 * reports it and exits 5: the tool's status), and the lock is released.
 * A COMMAND that does not catch it dies of it: 128 + signal. */
static void test_tool_forwards_signals(void **state)
{
    static const struct { int sig; const char *name; } sigs[] = {
        { SIGTERM, "TERM" }, { SIGINT, "INT" }, { SIGHUP, "HUP" }
    };
    char want[32];
    size_t i;
    tool_proc p;
    for (i = 0; i < 3; i++) {
        TP_START(&p, "-u", URL, "fwd", "-c", trapping(5));
        expect_line(&p, 0, "ready", (int)TU_MS(5000));
        assert_int_equal(ts_int(&tu_srv, "EXISTS lock:fwd"), 1);
        assert_int_equal(kill(p.pid, sigs[i].sig), 0);
        snprintf(want, sizeof want, "got %s", sigs[i].name);
        expect_line(&p, 0, want, (int)TU_MS(5000));
        assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 5);
        assert_int_equal(ts_int(&tu_srv, "EXISTS lock:fwd"), 0);
    }
    TP_START(&p, "-u", URL, "fwd", "-c", "echo ready; exec sleep 30");
    expect_line(&p, 0, "ready", (int)TU_MS(5000));
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 128 + SIGTERM);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:fwd"), 0);
}

/* A signal while the tool still waits for the lock ends it at once, as it
 * would without the tool: COMMAND never runs, the holder keeps the lock. */
static void test_tool_signal_while_waiting(void **state)
{
    redislock *lk = tu_lock(tu_cl, "busy", 20000);
    redislock_info info;
    tool_proc p;
    assert_rl_ok(redislock_acquire(lk, 0));
    TP_START(&p, "-u", URL, "-w", "30", "busy", "echo", "ran");
    ts_await_blocked(&tu_srv, 1);
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 128 + SIGTERM);
    assert_string_equal(p.out.buf, "");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    redislock_free(lk);
}

/* SIGKILL of the tool (renewing a 1 s lock): the lock stays until it
 * expires, then a waiting tool gets it promptly (woken at the expiry, not
 * after polling). */
static void test_tool_sigkill_frees_at_expiry(void **state)
{
    tool_proc holder, waiter;
    char line[64];
    long pid;
    int64_t killed, got;
    int e = tu_slow(); /* expiry in s: 1, longer on a slow run */
    char es[16];
    snprintf(es, sizeof es, "%d", e);
    TP_START(&holder, "-u", URL, "-e", es, "k", "-c", "echo $$; exec sleep 60");
    assert_int_equal(tp_line(&holder, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    pid = atol(line); /* the COMMAND, which outlives the tool */
    assert_true(pid > 1);
    TP_START(&waiter, "-u", URL, "-w", "30", "k", "echo", "got it");
    ts_await_blocked(&tu_srv, 1);
    tu_sleep_ms(1500 * e); /* renewals keep it past its first expiry */
    assert_int_equal(waiter.out.len, 0);
    assert_int_equal(kill(holder.pid, SIGKILL), 0);
    killed = tu_now_ms();
    expect_line(&waiter, 0, "got it", 1000 * e + (int)TU_MS(3000));
    got = tu_now_ms();
    print_message("waiter got the lock %lld ms after SIGKILL of the holder (expiry %d ms)\n",
                  (long long)(got - killed), 1000 * e);
    assert_int_equal(tp_finish(&waiter, (int)TU_MS(5000)), 0);
    kill((pid_t)pid, SIGKILL);
    assert_int_equal(tp_finish(&holder, (int)TU_MS(5000)), 128 + SIGKILL);
}

/* The lock is reset while COMMAND runs: the renewal notices, the tool says
 * so on stderr and sends COMMAND SIGTERM; its status is COMMAND's.  A
 * COMMAND that exits 0 all the same gives 75.  With another owner holding
 * it by then, the tool leaves that owner's lock alone. */
static void test_tool_lock_lost(void **state)
{
    tool_proc p;
    char line[512];
    redisReply *r;

    TP_START(&p, "-u", URL, "-e", "1", "lost", "-c", trapping(9));
    expect_line(&p, 0, "ready", (int)TU_MS(5000));
    assert_int_equal(ts_int(&tu_srv, "DEL lock:lost"), 1);
    expect_line(&p, 0, "got TERM", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 9);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "lost"));

    /* taken over by another owner; COMMAND exits 0 on SIGTERM */
    TP_START(&p, "-u", URL, "-e", "1", "lost", "-c", trapping(0));
    expect_line(&p, 0, "ready", (int)TU_MS(5000));
    r = ts_cmd(&tu_srv, "SET lock:lost intruder");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    expect_line(&p, 0, "got TERM", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 75);
    assert_non_null(strstr(p.err.buf, "lost"));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:lost"), 1); /* intruder's */
    assert_int_equal(ts_int(&tu_srv, "DEL lock:lost"), 1);

    /* --lost-signal none: only reported; COMMAND runs on until it ends */
    TP_START(&p, "-u", URL, "-e", "1", "--lost-signal", "none", "lost", "-c", trapping(0));
    expect_line(&p, 0, "ready", (int)TU_MS(5000));
    assert_int_equal(ts_int(&tu_srv, "DEL lock:lost"), 1);
    assert_int_equal(tp_line(&p, 1, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_non_null(strstr(line, "lost"));
    assert_int_equal(p.out.len - p.out.pos, 0); /* no "got TERM" */
    assert_int_equal(kill(p.pid, SIGHUP), 0);
    expect_line(&p, 0, "got HUP", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 75);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tool_serialised, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_forwards_signals, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_signal_while_waiting, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_sigkill_frees_at_expiry, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_lock_lost, tu_setup, tp_teardown),
    };
    return cmocka_run_group_tests_name("tool signals", tests, tu_group_setup,
                                       tu_group_teardown);
}
