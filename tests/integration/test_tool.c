/* redislock(1) through the real binary against real redis-server processes:
 * exit statuses (success, COMMAND's failure, conflict with -n and -w, -E,
 * usage errors, unreachable servers, a refused database), --status,
 * --reset, --reset-all with --owner-prefix and --dry-run, --list, -i, the
 * default owner id, key layouts, timeouts, closed standard descriptors,
 * quoted names, and majority mode with -u given three times. */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define URL tu_srv.url

static int exists(ts_server *s, const char *key)
{
    return (int)ts_int(s, "EXISTS %s", key);
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static redislock *hold(const char *name, const char *id, int64_t expire_ms)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.id = id;
    o.expire_ms = expire_ms;
    assert_rl_ok(redislock_new(&lk, tu_cl, name, &o));
    assert_rl_ok(redislock_acquire(lk, 0));
    return lk;
}

/* COMMAND's status is the tool's; the lock is free afterwards. */
static void test_tool_command_status(void **state)
{
    tool_proc p;
    const char *noexec = tp_path("not-executable");
    FILE *f;

    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "echo", "hello"), 0);
    assert_string_equal(p.out.buf, "hello\n");
    assert_string_equal(p.err.buf, "");
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "false"), 1);
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "-c", "exit 7"), 7);
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "--command", "echo a b | tr a A"), 0);
    assert_string_equal(p.out.buf, "A b\n");
    /* died of a signal: 128 + N */
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "sh", "-c", "kill -USR1 $$"), 128 + 10);
    /* not found: 127; found but not executable: 126; one line each */
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "/nonexistent/command"), 127);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "/nonexistent/command"));
    f = fopen(noexec, "w");
    assert_non_null(f);
    fputs("echo should not run\n", f);
    fclose(f);
    chmod(noexec, 0644);
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", noexec), 126);
    assert_true(tp_one_line(p.err.buf));
    assert_string_equal(p.out.buf, "");
    assert_int_equal(exists(&tu_srv, "lock:x"), 0);
}

/* -n, -w and -E when another owner holds the lock; COMMAND does not run. */
static void test_tool_conflict(void **state)
{
    redislock *lk = hold("c", "holder-1", 20000);
    redislock_info info;
    tool_proc p;
    char line[256];

    assert_int_equal(TP_RUN(&p, "-u", URL, "-n", "c", "echo", "ran"), 1);
    assert_string_equal(p.out.buf, "");
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "holder-1"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "-n", "-E", "42", "c", "true"), 42);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--nonblock", "--conflict-exit-code=0", "c",
                            "echo", "ran"), 0);
    assert_string_equal(p.out.buf, "");
    assert_int_equal(TP_RUN(&p, "-u", URL, "-q", "-n", "c", "true"), 1);
    assert_string_equal(p.err.buf, "");

    /* -w waits that long (fractions allowed), then the conflict code */
    assert_int_equal(TP_RUN(&p, "-u", URL, "-w", "0.4", "c", "echo", "ran"), 1);
    assert_string_equal(p.out.buf, "");
    assert_true(p.end_ms - p.start_ms >= 400);
    assert_true(p.end_ms - p.start_ms < TU_MS(5000));
    assert_int_equal(TP_RUN(&p, "-u", URL, "-w", ".3", "-E", "3", "c", "true"), 3);

    /* the holder kept it */
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);

    /* a waiter (-w) runs COMMAND as soon as the holder releases */
    TP_START(&p, "-u", URL, "-w", "20", "c", "echo", "ran");
    ts_await_blocked(&tu_srv, 1);
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(3000)), 0);
    assert_string_equal(line, "ran");
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "-n", "c", "true"), 0);
    redislock_free(lk);
}

/* Bad options and arguments: 64 and exactly one line on stderr, nothing
 * run, nothing locked. */
static void test_tool_usage_errors(void **state)
{
    static const char *const cases[][8] = {
        { "--bogus", "x", "true" },
        { "-Z", "x", "true" },
        { "-w", "abc", "x", "true" },
        { "-w", "-1", "x", "true" },
        { "-w", "1e3", "x", "true" },
        { "-w", "nan", "x", "true" },
        { "-w", "1.5s", "x", "true" },
        { "-w", "", "x", "true" },
        { "-e", "0", "x", "true" },
        { "-e", "-5", "x", "true" },
        { "-e", "99999999999", "x", "true" },
        { "-E", "256", "x", "true" },
        { "-E", "-1", "x", "true" },
        { "-E", "x", "x", "true" },
        { "--lost-signal", "FOO", "x", "true" },
        { "-i", "has space", "x", "true" },
        { "-w" },
        { NULL },
        { "x" },
        { "x", "-c" },
        { "x", "-c", "echo a", "extra" },
        { "--status" },
        { "--status", "a", "b" },
        { "--reset" },
        { "--reset-all", "x" },
        { "--status", "--reset", "x" },
        { "--owner-prefix", "p", "x", "true" },
        { "--owner-prefix", "p", "--status", "x" },
        { "-c", "echo a", "x" },
        { "--command", "echo a", "x" },
        { "--dry-run", "x", "true" },
        { "--dry-run", "--list" },
        { "--list", "a", "b" },
        { "--list", "--status", "x" },
        { "--connect-timeout", "0", "x", "true" },
        { "--connect-timeout", "9999999", "x", "true" },
        { "--command-timeout", "abc", "x", "true" },
        { "--command-timeout" },
        { "--reset", "" },
        { "--status", "" },
        { "", "true" },
        { "--reset-all", "--owner-prefix", "has space" },
        { "--list", "--owner-prefix", "has space" },
        { "--reset-all", "--dry-run", "--owner-prefix", "has space" },
    };
    size_t i, j;
    tool_proc p;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[12] = { "-u", URL };
        for (j = 0; j < 8 && cases[i][j]; j++)
            args[2 + j] = cases[i][j];
        args[2 + j] = NULL;
        tp_run(&p, args);
        if (p.status != 64 || !tp_one_line(p.err.buf) || p.out.buf[0])
            fail_msg("case %zu (%s ...): status %d, stdout '%s', stderr '%s'", i,
                     cases[i][0] ? cases[i][0] : "", p.status, p.out.buf, p.err.buf);
    }
    /* messages that say what is allowed */
    assert_int_equal(TP_RUN(&p, "-u", URL, "-e", "99999999999", "x", "true"), 64);
    assert_non_null(strstr(p.err.buf, "from 0.1 to 1000000000"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "-w", "99999999999", "x", "true"), 64);
    assert_non_null(strstr(p.err.buf, "to 1000000000"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "-c", "echo a", "x"), 64);
    assert_non_null(strstr(p.err.buf, "after the lock name"));
    {
        char longname[REDISLOCK_NAME_MAX + 2];
        memset(longname, 'n', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
        assert_int_equal(TP_RUN(&p, "-u", URL, "--reset", longname), 64);
        assert_true(tp_one_line(p.err.buf));
        assert_non_null(strstr(p.err.buf, "at most 4096"));
    }
    /* the same master twice is no majority */
    assert_int_equal(TP_RUN(&p, "-u", URL, "-u", URL, "x", "true"), 64);
    assert_true(tp_one_line(p.err.buf));
    /* a URL the library rejects */
    assert_int_equal(TP_RUN(&p, "-u", "ftp://host", "x", "true"), 64);
    assert_true(tp_one_line(p.err.buf));
    assert_int_equal(ts_int(&tu_srv, "DBSIZE"), 0);

    assert_int_equal(TP_RUN(&p, "--help"), 0);
    assert_non_null(strstr(p.out.buf, "Usage"));
    assert_non_null(strstr(p.out.buf, " 64 "));
    assert_non_null(strstr(p.out.buf, " 69 "));
    {
        static const char *const flags[] = { "--list", "--dry-run", "--key-prefix",
                                             "--hash-tag", "--connect-timeout",
                                             "--command-timeout", "--owner-prefix",
                                             "--lost-signal" };
        size_t k;
        for (k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (!strstr(p.out.buf, flags[k]))
                fail_msg("--help does not mention %s", flags[k]);
    }
    assert_int_equal(TP_RUN(&p, "-V"), 0);
    assert_non_null(strstr(p.out.buf, redislock_version_string()));
}

/* Nothing listens: 69 and one line, in every mode. */
static void test_tool_unreachable(void **state)
{
    char tcp[64], sock[600];
    const char *urls[2] = { tcp, sock };
    size_t i;
    tool_proc p;
    snprintf(tcp, sizeof tcp, "redis://127.0.0.1:%d", tp_unused_port());
    snprintf(sock, sizeof sock, "unix://%s", tp_path("nobody-listens.sock"));
    for (i = 0; i < 2; i++) {
        assert_int_equal(TP_RUN(&p, "-u", urls[i], "x", "echo", "ran"), 69);
        assert_true(tp_one_line(p.err.buf));
        assert_string_equal(p.out.buf, "");
        assert_true(p.end_ms - p.start_ms < TU_MS(10000));
        assert_int_equal(TP_RUN(&p, "-u", urls[i], "-n", "x", "true"), 69);
        assert_int_equal(TP_RUN(&p, "-u", urls[i], "--status", "x"), 69);
        assert_true(tp_one_line(p.err.buf));
        assert_int_equal(TP_RUN(&p, "-u", urls[i], "--reset", "x"), 69);
        assert_int_equal(TP_RUN(&p, "-u", urls[i], "--reset-all"), 69);
    }
    /* $REDISLOCK_URL is the default */
    setenv("REDISLOCK_URL", tcp, 1);
    assert_int_equal(TP_RUN(&p, "--status", "x"), 69);
    assert_non_null(strstr(p.err.buf, tcp + strlen("redis://")));
    setenv("REDISLOCK_URL", URL, 1);
    assert_int_equal(TP_RUN(&p, "--status", "x"), 1); /* free */
    unsetenv("REDISLOCK_URL");
}

/* --status: "free" (exit 1) or "held owner=ID ttl_ms=N" (exit 0), only the
 * status with -q; -i sets the owner id; the default id is
 * "redislock@<hostname>:" and random characters. */
static void test_tool_status(void **state)
{
    redislock *a, *b;
    tool_proc p;
    long long ttl;
    char host[128], cmd[1200], expect[200];

    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "s"), 1);
    assert_string_equal(p.out.buf, "free\n");
    assert_string_equal(p.err.buf, "");
    assert_int_equal(TP_RUN(&p, "-u", URL, "-q", "--status", "s"), 1);
    assert_string_equal(p.out.buf, "");
    a = hold("s", "tester-1", 10000);
    assert_int_equal(TP_RUN(&p, "-u", URL, "-q", "--status", "s"), 0);
    assert_string_equal(p.out.buf, "");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "s"), 0);
    assert_int_equal(sscanf(p.out.buf, "held owner=tester-1 ttl_ms=%lld", &ttl), 1);
    assert_true(ttl > 0 && ttl <= 10000);
    assert_true(tp_one_line(p.out.buf));
    b = hold("s-forever", "tester-2", 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "s-forever"), 0);
    assert_string_equal(p.out.buf, "held owner=tester-2 ttl_ms=-1\n");
    redislock_free(a);
    redislock_free(b);

    /* seen from COMMAND itself: -i, then the default */
    snprintf(cmd, sizeof cmd, "'%s' -u '%s' --status mine", tp_tool(), URL);
    assert_int_equal(TP_RUN(&p, "-u", URL, "-i", "tool-id-7", "-e", "5", "mine", "-c", cmd),
                     0);
    assert_int_equal(sscanf(p.out.buf, "held owner=tool-id-7 ttl_ms=%lld", &ttl), 1);
    assert_true(ttl > 0 && ttl <= 5000);
    assert_int_equal(TP_RUN(&p, "-u", URL, "mine", "-c", cmd), 0);
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(expect, sizeof expect, "held owner=redislock@%s:", host);
    assert_memory_equal(p.out.buf, expect, strlen(expect));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "mine"), 1);
    assert_string_equal(p.out.buf, "free\n");
}

/* --reset: forced release ("removed 1", then "removed 0") that wakes a
 * waiting tool; --reset-all with and without --owner-prefix. */
static void test_tool_reset(void **state)
{
    redislock *a = hold("r", "someone", 0);
    redislock *h[3];
    tool_proc p, w;
    char line[64];

    TP_START(&w, "-u", URL, "-w", "20", "r", "echo", "woken");
    ts_await_blocked(&tu_srv, 1);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset", "r"), 0);
    assert_string_equal(p.out.buf, "removed 1\n");
    assert_int_equal(tp_line(&w, 0, line, sizeof line, (int)TU_MS(3000)), 0);
    assert_string_equal(line, "woken");
    assert_int_equal(tp_finish(&w, (int)TU_MS(5000)), 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset", "r"), 0);
    assert_string_equal(p.out.buf, "removed 0\n");
    redislock_free(a);

    h[0] = hold("r1", "hostA:1", 0);
    h[1] = hold("r2", "hostA:2", 0);
    h[2] = hold("r3", "hostB:1", 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset-all", "--owner-prefix", "hostA:"), 0);
    assert_string_equal(p.out.buf, "removed 2\n");
    assert_int_equal(exists(&tu_srv, "lock:r1") + exists(&tu_srv, "lock:r2"), 0);
    assert_int_equal(exists(&tu_srv, "lock:r3"), 1);
    assert_int_equal(TP_RUN(&p, "-u", URL, "-q", "--reset-all"), 0);
    assert_string_equal(p.out.buf, "");
    assert_int_equal(exists(&tu_srv, "lock:r3"), 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset-all"), 0);
    assert_string_equal(p.out.buf, "removed 0\n");
    redislock_free(h[0]);
    redislock_free(h[1]);
    redislock_free(h[2]);
}

/* A service that clears its own stale locks at start-up, with the old
 * advice (id_prefix "<host>:") or the new one ("<service>@<host>:"), leaves
 * a running tool's lock alone (the issue: the cron job's lock was removed
 * and the job exited 75).  The tool's own prefix clears it. */
static void test_tool_default_id_prefix(void **state)
{
    tool_proc p;
    char host[128], prefix[200], cmd[600];
    const char *flag = tp_path("prefix-done");
    uint64_t n = 99;

    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(cmd, sizeof cmd, "echo ready; while [ ! -e '%s' ]; do sleep 0.02; done", flag);
    TP_START(&p, "-u", URL, "cron-job", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, prefix, sizeof prefix, (int)TU_MS(5000)), 0);
    snprintf(prefix, sizeof prefix, "%s:", host);
    assert_rl_ok(redislock_reset_all(tu_cl, prefix, &n));
    assert_int_equal(n, 0);
    snprintf(prefix, sizeof prefix, "billing@%s:", host);
    assert_rl_ok(redislock_reset_all(tu_cl, prefix, &n));
    assert_int_equal(n, 0);
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);
    assert_string_equal(p.err.buf, "");

    /* --reset-all --owner-prefix "redislock@<host>:" does clear it */
    unlink(flag);
    TP_START(&p, "-u", URL, "--lost-signal", "none", "cron-job", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, cmd, sizeof cmd, (int)TU_MS(5000)), 0);
    snprintf(prefix, sizeof prefix, "redislock@%s:", host);
    assert_rl_ok(redislock_reset_all(tu_cl, prefix, &n));
    assert_int_equal(n, 1);
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 75);
}

/* Majority mode: -u three times; the lock is on a quorum while COMMAND
 * runs and on none afterwards; works with one master down, not with two. */
static ts_server m[3];

static void test_tool_majority(void **state)
{
    tool_proc p, q;
    char line[256], cmd[700];
    int i, on = 0;
    const char *flag = tp_path("majority-done");

    for (i = 0; i < 3; i++)
        assert_int_equal(ts_start(&m[i]), 0);
    snprintf(cmd, sizeof cmd, "echo ready; while [ ! -e '%s' ]; do sleep 0.02; done", flag);
    TP_START(&p, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "mj", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_string_equal(line, "ready");
    for (i = 0; i < 3; i++)
        on += exists(&m[i], "lock:mj");
    assert_true(on >= 2);
    assert_int_equal(TP_RUN(&q, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "-n", "mj",
                            "true"),
                     1);
    assert_int_equal(TP_RUN(&q, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "--status",
                            "mj"),
                     0);
    assert_memory_equal(q.out.buf, "held owner=", 11);
    /* --list: the lock once per master that has it, with master= */
    assert_int_equal(TP_RUN(&q, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "--list"), 0);
    on = 0;
    for (i = 0; i < 3; i++) {
        char want[700];
        snprintf(want, sizeof want, " master=%s\n", m[i].sock);
        on += strstr(q.out.buf, want) != NULL;
    }
    assert_true(on >= 2);
    assert_memory_equal(q.out.buf, "mj owner=", 9);
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(exists(&m[i], "lock:mj"), 0);

    ts_stop(&m[2]); /* 2 of 3 still make a quorum */
    assert_int_equal(TP_RUN(&q, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "-n", "mj",
                            "echo", "ran"),
                     0);
    assert_string_equal(q.out.buf, "ran\n");
    ts_stop(&m[1]); /* 1 of 3 does not */
    assert_int_equal(TP_RUN(&q, "-u", m[0].url, "-u", m[1].url, "-u", m[2].url, "-n", "mj",
                            "echo", "ran"),
                     69);
    assert_string_equal(q.out.buf, "");
    assert_true(tp_one_line(q.err.buf));
    ts_stop(&m[0]);
}

/* Error replies the server sent since the last CONFIG RESETSTAT: a tool
 * line written into a Redis connection shows up here. */
static long long error_replies(void)
{
    return ts_info(&tu_srv, "stats", "total_error_replies");
}

/* Standard descriptors closed at start: nothing the tool writes lands in a
 * Redis connection that took the free descriptor (the issue: the "got lock"
 * line went to the server, which answered with ERR), and an answer that
 * cannot be written is a failure (71), not a success. */
static void test_tool_closed_fds(void **state)
{
    tool_proc p;
    ts_resetstat(&tu_srv);
    tp_start_closed(&p, (const char *const[]){ "-v", "-u", URL, "job", "sleep", "0.3", NULL },
                    7);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 0);
    assert_int_equal(error_replies(), 0);
    assert_int_equal(exists(&tu_srv, "lock:job"), 0);

    /* --status with stdout closed: the answer is lost, so 71 */
    tp_start_closed(&p, (const char *const[]){ "-u", URL, "--status", "job", NULL }, 2);
    assert_int_not_equal(tp_finish(&p, (int)TU_MS(10000)), 0);
    assert_int_equal(p.status, 71);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "standard output"));
    assert_int_equal(error_replies(), 0);
    tp_start_closed(&p, (const char *const[]){ "-u", URL, "--reset", "job", NULL }, 2);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 71);
    /* ... but with -q there is no answer to lose */
    tp_start_closed(&p, (const char *const[]){ "-q", "-u", URL, "--reset", "job", NULL }, 2);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 0);

    /* stderr closed: the answer still comes, errors are only lost */
    tp_start_closed(&p, (const char *const[]){ "-v", "-u", URL, "--reset", "job", NULL }, 4);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 0);
    assert_string_equal(p.out.buf, "removed 0\n");
    assert_int_equal(error_replies(), 0);

    /* stdin closed: COMMAND sees it closed, not a socket of the tool */
    tp_start_closed(&p,
                    (const char *const[]){ "-u", URL, "job", "-c",
                                           "if read l; then echo read; else echo eof; fi",
                                           NULL },
                    1);
    assert_int_equal(tp_finish(&p, (int)TU_MS(10000)), 0);
    assert_string_equal(p.out.buf, "eof\n");
    assert_int_equal(error_replies(), 0);
}

/* A lock name with a newline and other control bytes stays on one line in
 * the tool's own -v and lost-lock messages. */
static void test_tool_quotes_names(void **state)
{
    tool_proc p;
    char cmd[600];
    const char *flag = tp_path("quote-done");
    const char *name = "two\nlines\tand\x1b[1m";
    const char *s;

    snprintf(cmd, sizeof cmd, "echo ready; while [ ! -e '%s' ]; do sleep 0.02; done", flag);
    TP_START(&p, "-v", "-u", URL, "-e", "1", "--lost-signal", "none", name, "-c", cmd);
    assert_int_equal(tp_line(&p, 0, cmd, sizeof cmd, (int)TU_MS(5000)), 0);
    assert_int_equal(ts_int(&tu_srv, "DEL %s", "lock:two\nlines\tand\x1b[1m"), 1);
    do /* waiting, got, lost */
        assert_int_equal(tp_line(&p, 1, cmd, sizeof cmd, (int)TU_MS(5000)), 0);
    while (!strstr(cmd, "lost"));
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 75);
    /* every line is the tool's, and the name is quoted in each */
    for (s = p.err.buf; *s; s = strchr(s, '\n') + 1) {
        if (strncmp(s, "redislock: ", 11))
            fail_msg("a line that is not the tool's: '%s' (all: '%s')", s, p.err.buf);
        const char *q = strstr(s, "two\\x0alines\\x09and\\x1b[1m");
        assert_true(q && q < strchr(s, '\n'));
    }
    assert_non_null(strstr(p.err.buf, "got lock two\\x0alines"));
}

/* -vv adds the library's log: the connection made. */
static void test_tool_verbose_log(void **state)
{
    tool_proc p;
    char want[700];
    assert_int_equal(TP_RUN(&p, "-vv", "-u", URL, "x", "true"), 0);
    snprintf(want, sizeof want, "redislock: [info] redis %s: connected", tu_srv.sock);
    assert_non_null(strstr(p.err.buf, want));
    assert_int_equal(TP_RUN(&p, "-v", "-u", URL, "x", "true"), 0);
    assert_null(strstr(p.err.buf, "[info]"));
}

/* -c after NAME in every way flock(1) takes it: "-c", "--command", after
 * "--", after -n. */
static void test_tool_c_positions(void **state)
{
    tool_proc p;
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "-c", "echo a"), 0);
    assert_string_equal(p.out.buf, "a\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "--command", "echo b"), 0);
    assert_string_equal(p.out.buf, "b\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--", "x", "-c", "echo c"), 0);
    assert_string_equal(p.out.buf, "c\n");
    assert_int_equal(TP_RUN(&p, "-n", "-u", URL, "--", "x", "-c", "echo d"), 0);
    assert_string_equal(p.out.buf, "d\n");
    /* after COMMAND's name it is COMMAND's */
    assert_int_equal(TP_RUN(&p, "-u", URL, "x", "sh", "-c", "echo e"), 0);
    assert_string_equal(p.out.buf, "e\n");
}

/* A database number the server refuses is the server refusing (69), not a
 * usage error (64), in every mode. */
static void test_tool_db_out_of_range(void **state)
{
    char url[800];
    tool_proc p;
    size_t i;
    static const char *const modes[][4] = {
        { "--status", "x" }, { "x", "true" }, { "-n", "x", "true" },
        { "--reset", "x" }, { "--reset-all" }, { "--list" },
        { "--reset-all", "--dry-run" },
    };
    snprintf(url, sizeof url, "%s?db=99999", URL);
    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        const char *args[8] = { "-u", url };
        size_t j;
        for (j = 0; j < 4 && modes[i][j]; j++)
            args[2 + j] = modes[i][j];
        args[2 + j] = NULL;
        tp_run(&p, args);
        if (p.status != 69 || !tp_one_line(p.err.buf) || !strstr(p.err.buf, "SELECT"))
            fail_msg("%s: status %d, stderr '%s'", modes[i][0], p.status, p.err.buf);
    }
}

/* --list [PATTERN]: one line per lock, "NAME owner=ID ttl_ms=N", names and
 * owners quoted for the shell; --owner-prefix; several masters add master=. */
static void test_tool_list(void **state)
{
    redislock *a = hold("job-a", "svc@h1:1", 20000), *b = hold("job-b", "redislock@h2:2", 0);
    redisReply *r;
    tool_proc p;
    long long ttl;
    char line[256];

    r = ts_cmd(&tu_srv, "SET %s %s", "lock:odd name\n", "py owner");
    freeReplyObject(r);
    r = ts_cmd(&tu_srv, "HSET %s f v", "lock:not-a-lock");
    freeReplyObject(r);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list"), 0);
    assert_string_equal(p.err.buf, "");
    assert_non_null(strstr(p.out.buf, "job-b owner=redislock@h2:2 ttl_ms=-1\n"));
    /* quoted for the shell (test_tool_scripting passes such names back) */
    assert_non_null(strstr(p.out.buf, "$'odd name\\x0a' owner='py owner' ttl_ms=-1\n"));
    assert_non_null(strstr(p.out.buf, "job-a owner=svc@h1:1 ttl_ms="));
    assert_int_equal(sscanf(strstr(p.out.buf, "job-a"), "job-a owner=svc@h1:1 ttl_ms=%lld",
                            &ttl), 1);
    assert_true(ttl > 0 && ttl <= 20000);
    assert_null(strstr(p.out.buf, "not-a-lock"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "job-*"), 0);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, 0), 0);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, 0), 0);
    assert_int_not_equal(tp_line(&p, 0, line, sizeof line, 0), 0); /* two lines */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "--owner-prefix", "redislock@"), 0);
    assert_string_equal(p.out.buf, "job-b owner=redislock@h2:2 ttl_ms=-1\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "nothing"), 0);
    assert_string_equal(p.out.buf, "");
    redislock_free(a);
    redislock_free(b);
}

/* --reset-all --dry-run lists what --reset-all would remove and removes
 * nothing; with --owner-prefix, only that owner's. */
static void test_tool_reset_all_dry_run(void **state)
{
    redislock *h[3];
    tool_proc p;
    h[0] = hold("d1", "svc@hostA:1", 0);
    h[1] = hold("d2", "svc@hostA:2", 0);
    h[2] = hold("d3", "other@hostB:1", 0);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset-all", "--dry-run", "--owner-prefix",
                            "svc@hostA:"),
                     0);
    assert_non_null(strstr(p.out.buf, "d1 owner=svc@hostA:1 ttl_ms=-1\n"));
    assert_non_null(strstr(p.out.buf, "d2 owner=svc@hostA:2 ttl_ms=-1\n"));
    assert_null(strstr(p.out.buf, "d3"));
    assert_non_null(strstr(p.out.buf, "would remove 2\n"));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--dry-run", "--reset-all"), 0);
    assert_non_null(strstr(p.out.buf, "would remove 3\n"));
    assert_int_equal(exists(&tu_srv, "lock:d1") + exists(&tu_srv, "lock:d2") +
                         exists(&tu_srv, "lock:d3"),
                     3);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--reset-all", "--owner-prefix", "svc@hostA:"), 0);
    assert_string_equal(p.out.buf, "removed 2\n");
    redislock_free(h[0]);
    redislock_free(h[1]);
    redislock_free(h[2]);
}

/* --key-prefix and --hash-tag choose the keys, in every mode. */
static void test_tool_key_layout(void **state)
{
    tool_proc p;
    char cmd[600], line[64];
    const char *flag = tp_path("layout-done");
    snprintf(cmd, sizeof cmd, "echo ready; while [ ! -e '%s' ]; do sleep 0.02; done", flag);

    TP_START(&p, "-u", URL, "--key-prefix", "app:", "x", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_int_equal(exists(&tu_srv, "app:lock:x"), 1);
    assert_int_equal(exists(&tu_srv, "lock:x"), 0);
    assert_int_equal(tp_run(&(tool_proc){ 0 }, (const char *const[]){
                                "-u", URL, "--key-prefix", "app:", "-n", "x", "true", NULL }),
                     1);
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);
    unlink(flag);

    TP_START(&p, "-u", URL, "--hash-tag", "x", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_int_equal(exists(&tu_srv, "lock:{x}"), 1);
    {
        tool_proc q;
        assert_int_equal(TP_RUN(&q, "-u", URL, "--hash-tag", "--status", "x"), 0);
        assert_memory_equal(q.out.buf, "held owner=", 11);
        assert_int_equal(TP_RUN(&q, "-u", URL, "--status", "x"), 1); /* other layout */
        assert_int_equal(TP_RUN(&q, "-u", URL, "--hash-tag", "--list"), 0);
        assert_memory_equal(q.out.buf, "x owner=", 8);
    }
    touch(flag);
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);

    assert_rl_ok(redislock_reset_all(tu_cl, NULL, NULL));
    {
        redisReply *r = ts_cmd(&tu_srv, "SET app:lock:y someone");
        freeReplyObject(r);
    }
    assert_int_equal(TP_RUN(&p, "-u", URL, "--key-prefix", "app:", "--list"), 0);
    assert_string_equal(p.out.buf, "y owner=someone ttl_ms=-1\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--key-prefix", "app:", "--reset", "y"), 0);
    assert_string_equal(p.out.buf, "removed 1\n");
}

/* --command-timeout and --connect-timeout bound the wait for a hung server
 * (the default is 2 s each). */
static void test_tool_timeouts(void **state)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    char url[64];
    tool_proc p;
    int64_t took;
    int fd;

    ts_pause(&tu_srv);
    TP_RUN(&p, "-u", URL, "--command-timeout", "0.3", "--status", "x");
    ts_resume(&tu_srv);
    took = p.end_ms - p.start_ms;
    print_message("--command-timeout 0.3 on a stopped server: exit %d after %lld ms\n",
                  p.status, (long long)took);
    assert_int_equal(p.status, 69);
    assert_true(took >= 300 && took < TU_MS(1500));

    /* a listener that never accepts: the connection is made, the login
     * (SELECT, for db 1) never answered */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", ntohs(sa.sin_port));
    TP_RUN(&p, "-u", url, "--connect-timeout", "0.3", "--command-timeout", "20", "--status",
           "x");
    took = p.end_ms - p.start_ms;
    print_message("--connect-timeout 0.3, no login answer: exit %d after %lld ms\n",
                  p.status, (long long)took);
    close(fd);
    assert_int_equal(p.status, 69);
    assert_true(took >= 300 && took < TU_MS(1500));
}

/* A unix socket path longer than a socket address holds (107 bytes) is a
 * usage error (64), not an unreachable server (69): it can never work. */
static void test_tool_socket_path_too_long_is_a_usage_error(void **state)
{
    char url[200];
    tool_proc p;
    memset(url, 'x', sizeof url);
    memcpy(url, "unix:///tmp/", 12);
    memcpy(url + 12 + 110, ".sock", 6); /* a path of 121 bytes */
    assert_int_equal(TP_RUN(&p, "-u", url, "x", "true"), 64);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "107"));
    assert_int_equal(TP_RUN(&p, "-u", url, "--status", "x"), 64);
}

/* COMMAND's environment, as COMMAND prints it: the lines that start with
 * REDISLOCK_URL= or REDISLOCK_PASSWORD=. */
static const char *secrets_seen(tool_proc *p, const char *const *args)
{
    tp_run(p, args);
    assert_int_equal(p->status, 0);
    return p->out.buf;
}

/* The Redis passwords never reach COMMAND: $REDISLOCK_PASSWORD,
 * $REDISLOCK_SENTINEL_PASSWORD, and $REDISLOCK_URL when it holds a password
 * (also one of several URLs), are removed from COMMAND's environment (URLs
 * without one stay: a redislock inside COMMAND finds the same servers);
 * --keep-credentials keeps them. */
static void test_tool_password_not_in_command_environment(void **state)
{
    static ts_server pw;
    const char *show = "env | grep -E '^REDISLOCK_(URL|PASSWORD|SENTINEL_PASSWORD)=' | sort; "
                       "true";
    char nopw[700], want[800];
    tool_proc p;

    snprintf(pw.password, sizeof pw.password, "s3cret");
    if (ts_start(&pw) == 77)
        skip();
    snprintf(nopw, sizeof nopw, "unix://%s", pw.sock);
    setenv("REDISLOCK_PASSWORD", "s3cret", 1);
    setenv("REDISLOCK_SENTINEL_PASSWORD", "s3cret", 1); /* no sentinel here: unused */
    setenv("REDISLOCK_URL", pw.url, 1); /* unix://...?password=s3cret */
    assert_string_equal(secrets_seen(&p, (const char *const[]){ "pw", "-c", show, NULL }),
                        "");
    assert_string_equal(
        secrets_seen(&p, (const char *const[]){ "-u", nopw, "pw", "-c", show, NULL }), "");
    assert_null(strstr(
        secrets_seen(&p, (const char *const[]){ "pw", "sh", "-c", "env", NULL }), "s3cret"));
    /* kept on request */
    assert_non_null(strstr(secrets_seen(&p, (const char *const[]){ "--keep-credentials",
                                                                  "pw", "-c", show, NULL }),
                           "REDISLOCK_PASSWORD=s3cret\nREDISLOCK_SENTINEL_PASSWORD=s3cret\n"
                           "REDISLOCK_URL=unix://"));
    /* a URL without a password is no secret */
    unsetenv("REDISLOCK_PASSWORD");
    unsetenv("REDISLOCK_SENTINEL_PASSWORD");
    setenv("REDISLOCK_URL", URL, 1);
    snprintf(want, sizeof want, "REDISLOCK_URL=%s\n", URL);
    assert_string_equal(secrets_seen(&p, (const char *const[]){ "pw", "-c", show, NULL }),
                        want);
    unsetenv("REDISLOCK_URL");
    ts_stop(&pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tool_command_status, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_conflict, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_usage_errors, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_unreachable, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_status, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_reset, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_default_id_prefix, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_majority, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_closed_fds, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_quotes_names, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_c_positions, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_verbose_log, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_db_out_of_range, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_list, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_reset_all_dry_run, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_key_layout, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_timeouts, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_socket_path_too_long_is_a_usage_error,
                                        tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_password_not_in_command_environment,
                                        tu_setup, tp_teardown),
    };
    return cmocka_run_group_tests_name("tool", tests, tu_group_setup, tu_group_teardown);
}
