/* redislock(1) --permits and --fair (issue 24), through the real binary
 * against a real redis-server: five tools on a semaphore of two permits run
 * at most two COMMANDs at once and all five in the end; a tool killed with
 * SIGKILL while it holds a permit frees it when its lease ends (and its
 * COMMAND dies with it); --status and --list (text and JSON) show holders,
 * permits and the queue; usage errors; a semaphore's N that differs from
 * the server's. */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define URL tu_srv.url

/* COMMAND: note its start and end (ns, CLOCK_REALTIME: one clock for all
 * the processes) in FILE, one line each, around a 0.3 s sleep (a format
 * for snprintf: the file's name is its %s). */
#define RECORD \
    "echo \"s $(date +%%s%%N)\" >> '%s'; sleep 0.3; echo \"e $(date +%%s%%N)\" >> '%s'"

static void test_tool_permits_runs_at_most_n_commands_at_once(void **state)
{
    tool_proc p[5];
    char cmd[600], line[64];
    FILE *f;
    int i, now = 0, most = 0, starts = 0;
    long long t, ev[20];
    int kind[20], n = 0;
    (void)state;
    snprintf(cmd, sizeof cmd, RECORD, tp_path("runs"), tp_path("runs"));
    for (i = 0; i < 5; i++)
        TP_START(&p[i], "-u", URL, "--permits", "2", "-e", "5", "job", "-c", cmd);
    for (i = 0; i < 5; i++)
        assert_int_equal(tp_finish(&p[i], (int)TU_MS(20000)), 0);
    f = fopen(tp_path("runs"), "r");
    assert_non_null(f);
    while (n < 20 && fgets(line, sizeof line, f)) {
        char c;
        assert_int_equal(sscanf(line, "%c %lld", &c, &t), 2);
        kind[n] = c == 's' ? 1 : -1;
        ev[n++] = t;
    }
    fclose(f);
    assert_int_equal(n, 10);
    /* in time order (the lines were appended as they happened, but two
     * COMMANDs may interleave their appends) */
    for (i = 1; i < n; i++) {
        int j = i;
        while (j > 0 && (ev[j - 1] > ev[j] || (ev[j - 1] == ev[j] && kind[j - 1] > kind[j]))) {
            long long tt = ev[j];
            int kk = kind[j];
            ev[j] = ev[j - 1], kind[j] = kind[j - 1];
            ev[j - 1] = tt, kind[j - 1] = kk;
            j--;
        }
    }
    for (i = 0; i < n; i++) {
        now += kind[i];
        starts += kind[i] > 0;
        if (now > most)
            most = now;
    }
    printf("# 5 tools, --permits 2: at most %d COMMANDs at once, %d in all, %.2f s\n", most,
           starts, (double)(ev[n - 1] - ev[0]) / 1e9);
    assert_int_equal(starts, 5);
    assert_int_equal(most, 2);
    assert_int_equal(ts_int(&tu_srv, "EXISTS sem:{job}:holders sem:{job}:queue"), 0);
}

/* The holder is killed (SIGKILL: it releases nothing); the waiting tool
 * gets the permit when the lease (-e 1) ends, and the killed tool's
 * COMMAND does not outlive it. */
static void test_tool_sigkill_of_a_holding_tool_frees_the_permit_at_lease_end(void **state)
{
    tool_proc a, b;
    char line[256], pidfile[600];
    int64_t killed, got;
    long cmd_pid = 0;
    FILE *f;
    (void)state;
    snprintf(pidfile, sizeof pidfile, "echo $$ > '%s'; echo go; sleep 30", tp_path("a.pid"));
    TP_START(&a, "-u", URL, "--permits", "1", "-e", "1", "sk", "-c", pidfile);
    assert_int_equal(tp_line(&a, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_string_equal(line, "go");
    TP_START(&b, "-u", URL, "--permits", "1", "-e", "1", "-w", "10", "sk", "-c", "echo b");
    while (ts_int(&tu_srv, "ZCARD sem:{sk}:queue") < 1)
        usleep(2000);
    killed = tu_now_ms();
    kill(a.pid, SIGKILL);
    assert_int_equal(tp_line(&b, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    got = tu_now_ms();
    assert_string_equal(line, "b");
    assert_int_equal(tp_finish(&b, (int)TU_MS(5000)), 0);
    assert_int_equal(tp_finish(&a, (int)TU_MS(5000)), 128 + SIGKILL);
    printf("# the holding tool killed: the waiting tool ran %lld ms later (lease 1 s)\n",
           (long long)(got - killed));
    assert_true(got - killed <= 1000 + TU_MS(1000));
    f = fopen(tp_path("a.pid"), "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &cmd_pid), 1);
    fclose(f);
    assert_false(tp_alive((pid_t)cmd_pid)); /* killed with its tool */
}

static void test_tool_status_and_list_show_holders_and_queue(void **state)
{
    tool_proc h1, h2, w, p;
    char line[256];
    (void)state;
    TP_START(&h1, "-u", URL, "--permits", "2", "-i", "sv-1", "sv", "-c", "echo go; sleep 30");
    TP_START(&h2, "-u", URL, "--permits", "2", "-i", "sv-2", "sv", "-c", "echo go; sleep 30");
    assert_int_equal(tp_line(&h1, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_int_equal(tp_line(&h2, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    TP_START(&w, "-u", URL, "--permits", "2", "-i", "sv-3", "sv", "-c", "true");
    while (ts_int(&tu_srv, "ZCARD sem:{sv}:queue") < 1)
        usleep(2000);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "2", "--status", "sv"), 0);
    assert_non_null(strstr(p.out.buf, "held holders=2 permits=2 queued=1 owner=sv-"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "2", "--status", "--json", "sv"), 0);
    assert_non_null(strstr(p.out.buf, "\"kind\":\"semaphore\",\"holders\":2,\"permits\":2,"
                                      "\"queued\":1}"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list"), 0);
    assert_non_null(strstr(p.out.buf, "sv owner=sv-1 ttl_ms="));
    assert_non_null(strstr(p.out.buf, " kind=semaphore holders=2 permits=2 queued=1\n"));
    assert_non_null(strstr(p.out.buf, "sv owner=sv-2 ttl_ms="));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "--json", "s*"), 0);
    assert_non_null(strstr(p.out.buf, "\"owner\":\"sv-1\""));
    assert_non_null(strstr(p.out.buf, "\"kind\":\"semaphore\""));
    /* the semaphore's N is the server's while it is in use */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "3", "-n", "sv", "true"), 69);
    assert_non_null(strstr(p.err.buf, "has 2 permits on the server"));
    assert_true(tp_one_line(p.err.buf));
    /* a fair lock */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--fair", "--status", "fl"), 1);
    assert_string_equal(p.out.buf, "free holders=0 permits=1 queued=0\n");
    /* the mutex's output is as before */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "fl"), 1);
    assert_string_equal(p.out.buf, "free\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset-all"), 0);
    assert_string_equal(p.out.buf, "removed 2\n");
    assert_int_equal(tp_finish(&w, (int)TU_MS(5000)), 0); /* woken by the reset */
}

static void test_tool_fair_lock_with_waiters(void **state)
{
    tool_proc h, w, p;
    char line[256];
    (void)state;
    TP_START(&h, "-u", URL, "--fair", "-i", "fh", "fq", "-c", "echo go; sleep 30");
    assert_int_equal(tp_line(&h, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    TP_START(&w, "-u", URL, "--fair", "-w", "10", "fq", "-c", "echo w");
    while (ts_int(&tu_srv, "ZCARD lock-queue:{fq}") < 1)
        usleep(2000);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--fair", "--status", "fq"), 0);
    assert_non_null(strstr(p.out.buf, "held holders=1 permits=1 queued=1 owner=fh ttl_ms="));
    /* python-redis-lock's key: seen held by the mutex's status too */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "fq"), 0);
    assert_non_null(strstr(p.out.buf, "held owner=fh ttl_ms="));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "fq"), 0);
    assert_non_null(strstr(p.out.buf, "fq owner=fh ttl_ms="));
    assert_non_null(strstr(p.out.buf, " kind=fair queued=1\n"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset", "fq"), 0);
    assert_int_equal(tp_line(&w, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_string_equal(line, "w");
    assert_int_equal(tp_finish(&w, (int)TU_MS(5000)), 0);
    kill(h.pid, SIGTERM);
    tp_finish(&h, (int)TU_MS(5000));
}

static void test_tool_kinds_usage(void **state)
{
    tool_proc p;
    (void)state;
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "0", "x", "true"), 64);
    assert_true(tp_one_line(p.err.buf));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "two", "x", "true"), 64);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--fair", "--reset", "x"), 64);
    assert_non_null(strstr(p.err.buf, "--fair is only valid"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--permits", "2", "--list"), 64);
    /* one queue needs one master */
    assert_int_equal(TP_RUN(&p, "-u", "redis://127.0.0.1:1", "-u", "redis://127.0.0.1:2",
                            "-u", "redis://127.0.0.1:3", "--fair", "x", "true"),
                     64);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "majority"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_tool_permits_runs_at_most_n_commands_at_once),
        T(test_tool_sigkill_of_a_holding_tool_frees_the_permit_at_lease_end),
        T(test_tool_status_and_list_show_holders_and_queue),
        T(test_tool_fair_lock_with_waiters),
        T(test_tool_kinds_usage),
    };
    return cmocka_run_group_tests_name("tool_kinds", tests, tu_group_setup, tu_group_teardown);
}
