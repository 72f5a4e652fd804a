/* redislock(1) with processes and signals, through the real binary against
 * a real redis-server: 10 concurrent invocations never overlap; every
 * catchable signal reaches COMMAND's whole process group and the lock is
 * released (SIGPIPE is ignored); a signal while waiting ends the tool,
 * holding nothing;
 * SIGKILL of the tool kills COMMAND and its children and frees the lock at
 * its expiry; SIGTSTP stops COMMAND while the lock stays renewed; a lock
 * lost while COMMAND runs is reported and COMMAND's group gets SIGTERM; at
 * a terminal COMMAND is the foreground job (it reads the terminal, Ctrl-C
 * and Ctrl-Z reach it). */
#define _GNU_SOURCE /* posix_openpt */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* The lines of s that the tool itself wrote ("redislock: ..."). */
static int tool_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : "")
        n += !strncmp(s, "redislock: ", 11);
    return n;
}

/* Wait until none of the pids is alive; fails after timeout_ms.  Returns the
 * ms it took. */
static int64_t await_dead(const pid_t *pids, int n, int timeout_ms)
{
    int64_t t0 = tu_now_ms();
    int i, alive;
    for (;;) {
        for (i = 0, alive = 0; i < n; i++)
            alive += tp_alive(pids[i]);
        if (!alive)
            return tu_now_ms() - t0;
        if (tu_now_ms() - t0 > timeout_ms)
            fail_msg("%d of %d processes still alive %d ms later", alive, n, timeout_ms);
        tu_sleep_ms(2);
    }
}

/* Wait until the process is in state st ('T': stopped); fails after
 * timeout_ms. */
static void await_state(pid_t pid, char st, int timeout_ms)
{
    int64_t t0 = tu_now_ms();
    while (tp_proc_state(pid) != st) {
        if (tu_now_ms() - t0 > timeout_ms)
            fail_msg("process %d in state '%c', not '%c', after %d ms", (int)pid,
                     tp_proc_state(pid), st, timeout_ms);
        tu_sleep_ms(2);
    }
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

/* A signal that comes as the lock is released: the tool holds nothing
 * afterwards, whether its wait was cancelled (128 + signal, COMMAND not
 * started), the grant came first and the signal found COMMAND not started
 * yet (the same), or COMMAND had already started when the signal came (the
 * hand-off is fast enough for that: then COMMAND's output is there and the
 * signal went to it). */
static void test_tool_signal_racing_the_release_leaves_nothing_held(void **state)
{
    int i, rc, ran = 0;
    for (i = 0; i < 10; i++) {
        redislock *lk = tu_lock(tu_cl, "race", 20000);
        tool_proc p;
        assert_rl_ok(redislock_acquire(lk, 0));
        TP_START(&p, "-u", URL, "-w", "30", "race", "echo", "ran");
        ts_await_blocked(&tu_srv, 1);
        if (i % 2)
            assert_int_equal(kill(p.pid, SIGTERM), 0);
        assert_rl_ok(redislock_release(lk));
        if (!(i % 2))
            assert_int_equal(kill(p.pid, SIGTERM), 0);
        rc = tp_finish(&p, (int)TU_MS(5000));
        if (strcmp(p.out.buf, "ran\n") == 0) {
            ran++; /* COMMAND started before the signal came */
            assert_true(rc == 0 || rc == 128 + SIGTERM);
        } else {
            assert_string_equal(p.out.buf, "");
            assert_int_equal(rc, 128 + SIGTERM);
        }
        assert_int_equal(ts_int(&tu_srv, "EXISTS lock:race"), 0);
        redislock_free(lk);
    }
    printf("# %d of 10 runs: COMMAND had started when the signal came\n", ran);
}

/* SIGKILL of the tool (renewing a 1 s lock): COMMAND and the processes it
 * started die with it at once; the lock stays until it expires, then a
 * waiting tool gets it promptly (woken at the expiry, not after polling). */
static void test_tool_sigkill_frees_at_expiry(void **state)
{
    tool_proc holder, waiter;
    char line[64];
    long sh, bg;
    pid_t pids[2];
    int64_t killed, got, died;
    int e = tu_slow(); /* expiry in s: 1, longer on a slow run */
    char es[16];
    snprintf(es, sizeof es, "%d", e);
    TP_START(&holder, "-u", URL, "-e", es, "k", "-c", "sleep 60 & echo $$ $!; wait");
    assert_int_equal(tp_line(&holder, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_int_equal(sscanf(line, "%ld %ld", &sh, &bg), 2);
    pids[0] = (pid_t)sh; /* COMMAND */
    pids[1] = (pid_t)bg; /* a child of COMMAND */
    assert_true(tp_alive(pids[0]) && tp_alive(pids[1]));
    TP_START(&waiter, "-u", URL, "-w", "30", "k", "echo", "got it");
    ts_await_blocked(&tu_srv, 1);
    tu_sleep_ms(1500 * e); /* renewals keep it past its first expiry */
    assert_int_equal(waiter.out.len, 0);
    assert_int_equal(kill(holder.pid, SIGKILL), 0);
    killed = tu_now_ms();
    died = await_dead(pids, 2, (int)TU_MS(1000));
    expect_line(&waiter, 0, "got it", 1000 * e + (int)TU_MS(3000));
    got = tu_now_ms();
    print_message("COMMAND and its child died %lld ms after SIGKILL of the tool; the "
                  "waiter got the lock %lld ms after it (expiry %d ms)\n",
                  (long long)died, (long long)(got - killed), 1000 * e);
    assert_int_equal(tp_finish(&waiter, (int)TU_MS(5000)), 0);
    assert_int_equal(tp_finish(&holder, (int)TU_MS(5000)), 128 + SIGKILL);
}

/* A waiting tool gets SIGTERM while its server hangs (SIGSTOP): it must not
 * wait on the server to stop waiting (it took twice the command timeout,
 * 4 s): 143 at once, COMMAND never run. */
static void test_tool_signal_while_waiting_on_a_hung_server(void **state)
{
    static ts_server hung;
    redislock_client *c;
    redislock *lk;
    tool_proc p;
    int64_t t0, took;
    int rc;
    if (ts_start(&hung) == 77)
        skip();
    c = tu_client(hung.url);
    lk = tu_lock(c, "hs", 0);
    assert_rl_ok(redislock_acquire(lk, 0));
    TP_START(&p, "-u", hung.url, "-w", "30", "hs", "echo", "ran");
    ts_await_blocked(&hung, 1);
    ts_pause(&hung);
    t0 = tu_now_ms();
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    rc = tp_finish(&p, (int)TU_MS(10000));
    took = tu_now_ms() - t0;
    ts_resume(&hung);
    print_message("SIGTERM to a tool waiting on a hung server: exit %d after %lld ms "
                  "(command timeout 2 s)\n", rc, (long long)took);
    assert_int_equal(rc, 128 + SIGTERM);
    assert_string_equal(p.out.buf, "");
    assert_true(took < TU_MS(1000));
    redislock_free(lk);
    redislock_client_free(c);
    ts_stop(&hung);
}

/* The dead-man switch.  The tool, not COMMAND, is stopped (kill -STOP: a
 * debugger, a frozen helper, a cgroup freeze of one process): its renewals
 * stop, and the lock (1 s) expires; a second tool waits for it.  The
 * guard, which outlives the tool, must stop COMMAND's group (SIGTERM, then
 * SIGKILL for a COMMAND that ignores SIGTERM) before the lock expires, so
 * that the two COMMANDs never run at once (the second COMMAND ran beside
 * the first for its whole second).  Returns how long before the expiry
 * COMMAND was gone, in ms. */
static int64_t stopped_tool_case(const char *cmd, int *status)
{
    tool_proc a, b;
    char line[64], holder[300], now[300];
    long cpid;
    int64_t t_stop, t_dead = 0, t_expired = 0, end;
    int e = tu_slow(); /* the expiry in s */
    char es[16];
    snprintf(es, sizeof es, "%d", e);
    TP_START(&a, "-u", URL, "-e", es, "dm", "-c", cmd);
    assert_int_equal(tp_line(&a, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_int_equal(sscanf(line, "%ld", &cpid), 1);
    ts_str(&tu_srv, holder, sizeof holder, "GET lock:dm");
    assert_true(holder[0] != '\0');
    TP_START(&b, "-u", URL, "-w", "30", "dm", "echo", "second");
    ts_await_blocked(&tu_srv, 1);
    tu_sleep_ms(500 * e); /* renewed meanwhile */
    assert_int_equal(kill(a.pid, SIGSTOP), 0);
    t_stop = tu_now_ms();
    end = t_stop + 2000 * e + TU_MS(3000);
    while ((!t_dead || !t_expired) && tu_now_ms() < end) {
        if (!t_dead && !tp_alive((pid_t)cpid))
            t_dead = tu_now_ms();
        ts_str(&tu_srv, now, sizeof now, "GET lock:dm");
        if (!t_expired && strcmp(now, holder))
            t_expired = tu_now_ms();
        tu_sleep_ms(1);
    }
    print_message("tool stopped: COMMAND (%s) gone after %lld ms, the lock expired "
                  "after %lld ms (expiry %d ms)\n",
                  cmd[0] == 't' ? "ignoring SIGTERM" : "dying of SIGTERM",
                  t_dead ? (long long)(t_dead - t_stop) : -1LL,
                  t_expired ? (long long)(t_expired - t_stop) : -1LL, 1000 * e);
    if (!t_dead)
        fail_msg("COMMAND still ran %lld ms after the tool was stopped",
                 (long long)(tu_now_ms() - t_stop));
    assert_true(t_expired > 0);
    assert_int_equal(kill(a.pid, SIGCONT), 0);
    expect_line(&b, 0, "second", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&b, (int)TU_MS(5000)), 0);
    *status = tp_finish(&a, (int)TU_MS(5000));
    return t_expired - t_dead;
}

static void test_tool_stopped_tool_stops_command_before_the_expiry(void **state)
{
    int64_t margin;
    int st;
    margin = stopped_tool_case("echo $$; exec sleep 60", &st);
    print_message("COMMAND was gone %lld ms before the expiry; the tool exited %d\n",
                  (long long)margin, st);
    assert_true(margin > 0);
    assert_int_equal(st, 128 + SIGTERM);
    margin = stopped_tool_case("trap '' TERM; echo $$; exec sleep 60", &st);
    print_message("COMMAND (ignoring SIGTERM) was gone %lld ms before the expiry; the "
                  "tool exited %d\n", (long long)margin, st);
    assert_true(margin > 0);
    assert_int_equal(st, 128 + SIGKILL);
}

/* Signals beyond TERM, INT and HUP (the issue: SIGUSR1 killed the tool and
 * left COMMAND running unrenewed): each reaches COMMAND, whose trap exits 5,
 * and the lock is released. */
static void test_tool_forwards_other_signals(void **state)
{
    static const struct { int sig; const char *name; } sigs[] = {
        { SIGUSR1, "USR1" }, { SIGUSR2, "USR2" }, { SIGQUIT, "QUIT" }, { SIGALRM, "ALRM" }
    };
    char cmd[300], want[32];
    size_t i;
    tool_proc p;
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "trap 'echo got %s; exit 5' %s; echo ready; while :; do sleep 0.05; done",
                 sigs[i].name, sigs[i].name);
        TP_START(&p, "-u", URL, "fwd2", "-c", cmd);
        expect_line(&p, 0, "ready", (int)TU_MS(5000));
        assert_int_equal(kill(p.pid, sigs[i].sig), 0);
        snprintf(want, sizeof want, "got %s", sigs[i].name);
        expect_line(&p, 0, want, (int)TU_MS(5000));
        assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 5);
        assert_int_equal(ts_int(&tu_srv, "EXISTS lock:fwd2"), 0);
    }
}

/* SIGPIPE is ignored by the tool: COMMAND runs on, and the lock is
 * released when it ends. */
static void test_tool_ignores_sigpipe(void **state)
{
    tool_proc p;
    char cmd[600];
    const char *flag = tp_path("pipe-done");
    snprintf(cmd, sizeof cmd,
             "echo ready; while [ ! -e '%s' ]; do sleep 0.02; done; echo done", flag);
    TP_START(&p, "-u", URL, "pipe", "-c", cmd);
    expect_line(&p, 0, "ready", (int)TU_MS(5000));
    assert_int_equal(kill(p.pid, SIGPIPE), 0);
    assert_int_equal(kill(p.pid, 0), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:pipe"), 1);
    fclose(fopen(flag, "w"));
    expect_line(&p, 0, "done", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:pipe"), 0);
}

/* SIGTSTP without a terminal stops COMMAND, not the tool, which keeps
 * renewing the lock (a 1 s expiry outlived); SIGCONT continues COMMAND. */
static void test_tool_sigtstp_keeps_lock(void **state)
{
    tool_proc p;
    char cmd[600], line[64];
    const char *fifo = tp_path("tstp-fifo");
    pid_t sh;
    FILE *f;
    /* COMMAND waits in read(), not in a loop of sleeps: a shell caught in
     * vfork() for a child that was stopped before its exec stays in state
     * 'D', never 'T' */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(cmd, sizeof cmd, "echo $$; read x < '%s'; echo done", fifo);
    TP_START(&p, "-u", URL, "-e", "1", "tstp", "-c", cmd);
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    sh = (pid_t)atol(line);
    assert_int_equal(kill(p.pid, SIGTSTP), 0);
    await_state(sh, 'T', (int)TU_MS(3000));
    tu_sleep_ms(1500); /* past the expiry: only renewals keep it */
    assert_int_not_equal(tp_proc_state(p.pid), 'T');
    assert_true(ts_int(&tu_srv, "PTTL lock:tstp") > 0);
    assert_int_equal(kill(p.pid, SIGCONT), 0);
    f = fopen(fifo, "w");
    assert_non_null(f);
    fputs("go\n", f);
    fclose(f);
    expect_line(&p, 0, "done", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 0);
    assert_int_equal(tool_lines(p.err.buf), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:tstp"), 0);
}

/* Both shells of test_tool_signals_reach_group have set their traps (they
 * say so in either order). */
static void expect_both_ready(tool_proc *p)
{
    char a[64], b[64];
    assert_int_equal(tp_line(p, 0, a, sizeof a, (int)TU_MS(5000)), 0);
    assert_int_equal(tp_line(p, 0, b, sizeof b, (int)TU_MS(5000)), 0);
    if (strcmp(a, "inner ready") ? strcmp(a, "outer ready") || strcmp(b, "inner ready")
                                 : strcmp(b, "outer ready"))
        fail_msg("got '%s' and '%s', expected 'inner ready' and 'outer ready'", a, b);
}

/* A forwarded signal reaches COMMAND's whole process group: a shell's child
 * gets SIGTERM too (before, only the shell got it and waited for its child
 * for ever). */
static void test_tool_signals_reach_group(void **state)
{
    tool_proc p;
    /* the outer shell says it is ready once its trap is set: a TERM that
     * came before would end it (status 143) without "outer TERM" */
    const char *cmd =
        "sh -c 'trap \"echo inner TERM; exit 0\" TERM; echo inner ready; "
        "while :; do sleep 0.05; done' & "
        "trap 'wait; echo outer TERM; exit 5' TERM; echo outer ready; wait";
    TP_START(&p, "-u", URL, "grp", "-c", cmd);
    expect_both_ready(&p);
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    expect_line(&p, 0, "inner TERM", (int)TU_MS(5000));
    expect_line(&p, 0, "outer TERM", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 5);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:grp"), 0);

    /* the lost-lock signal too */
    TP_START(&p, "-u", URL, "-e", "1", "grp", "-c", cmd);
    expect_both_ready(&p);
    assert_int_equal(ts_int(&tu_srv, "DEL lock:grp"), 1);
    expect_line(&p, 0, "inner TERM", (int)TU_MS(5000));
    expect_line(&p, 0, "outer TERM", (int)TU_MS(5000));
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 5);
    assert_int_equal(tool_lines(p.err.buf), 1);
}

/* The tool at a terminal, as an interactive shell's foreground job: the
 * session leader of a new pseudo-terminal, its foreground process group. */
typedef struct pty_tool {
    pid_t pid;
    int master;
    char buf[8192];
    size_t len, pos; /* bytes read; bytes matched by pty_expect() */
} pty_tool;

static void pty_start(pty_tool *t, const char *const *args)
{
    const char *argv[32], *tool = tp_tool();
    char slave[128];
    size_t n = 0;
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(m >= 0);
    assert_int_equal(grantpt(m), 0);
    assert_int_equal(unlockpt(m), 0);
    snprintf(slave, sizeof slave, "%s", ptsname(m));
    argv[n++] = "redislock";
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    memset(t, 0, sizeof *t);
    fflush(NULL);
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        int s;
        setsid();
        s = open(slave, O_RDWR);
        if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
            _exit(120);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2)
            close(s);
        tp_default_signals();
        execv(tool, (char *const *)argv);
        _exit(121);
    }
    tp_track(t->pid, 1);
    t->master = m;
}
#define PTY_START(t, ...) pty_start((t), (const char *const[]){ __VA_ARGS__, NULL })

/* Read the terminal's output until it holds want (after what earlier calls
 * matched); fails after timeout_ms. */
static void pty_expect(pty_tool *t, const char *want, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = { t->master, POLLIN, 0 };
        char *hit = strstr(t->buf + t->pos, want);
        ssize_t r;
        if (hit) {
            t->pos = (size_t)(hit - t->buf) + strlen(want);
            return;
        }
        if (tu_now_ms() >= end || poll(&pfd, 1, (int)(end - tu_now_ms())) <= 0)
            fail_msg("no '%s' on the terminal within %d ms; it shows: '%s'", want,
                     timeout_ms, t->buf);
        r = read(t->master, t->buf + t->len, sizeof t->buf - 1 - t->len);
        if (r <= 0)
            fail_msg("the terminal closed before '%s'; it shows: '%s'", want, t->buf);
        t->len += (size_t)r;
        t->buf[t->len] = '\0';
    }
}

static void pty_type(pty_tool *t, const char *s)
{
    assert_int_equal(write(t->master, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reap the tool (within timeout_ms) and close the terminal: its status. */
static int pty_finish(pty_tool *t, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    int st;
    pid_t r;
    while ((r = waitpid(t->pid, &st, WNOHANG)) == 0) {
        char sink[256];
        if (tu_now_ms() > end) {
            tp_kill_all();
            fail_msg("the tool did not end within %d ms; the terminal shows '%s'",
                     timeout_ms, t->buf);
        }
        if (read(t->master, sink, sizeof sink) <= 0) /* keep the output flowing */
            tu_sleep_ms(5);
    }
    tp_track(t->pid, 0);
    close(t->master);
    assert_int_equal(r, t->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* COMMAND reads the terminal: its group is the foreground one (a background
 * group would be stopped by SIGTTIN). */
static void test_tool_terminal_read(void **state)
{
    pty_tool t;
    PTY_START(&t, "-u", URL, "tty", "-c", "echo ready; read l; echo \"got $l\"");
    pty_expect(&t, "ready", (int)TU_MS(5000));
    pty_type(&t, "hello\n");
    pty_expect(&t, "got hello", (int)TU_MS(5000));
    assert_int_equal(pty_finish(&t, (int)TU_MS(5000)), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:tty"), 0);
}

/* Ctrl-C at the terminal reaches COMMAND; the tool exits with its status and
 * releases the lock. */
static void test_tool_terminal_ctrl_c(void **state)
{
    pty_tool t;
    PTY_START(&t, "-u", URL, "tty", "-c",
              "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.05; done");
    pty_expect(&t, "ready", (int)TU_MS(5000));
    pty_type(&t, "\003");
    pty_expect(&t, "got INT", (int)TU_MS(5000));
    assert_int_equal(pty_finish(&t, (int)TU_MS(5000)), 5);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:tty"), 0);
}

/* Ctrl-Z stops COMMAND and then the tool, as a shell expects of a job;
 * SIGCONT (fg) continues both, and COMMAND finishes.  COMMAND waits in the
 * shell's read builtin: a shell stopped inside vfork() (a child stopped
 * before its exec) would never show as stopped. */
static void test_tool_terminal_ctrl_z(void **state)
{
    pty_tool t;
    int st = 0;
    int64_t end;
    pid_t sh, r;
    PTY_START(&t, "-u", URL, "tty", "-c", "echo pid=$$.; read l; echo \"got $l\"");
    pty_expect(&t, ".", (int)TU_MS(5000));
    sh = (pid_t)atol(strstr(t.buf, "pid=") + 4);
    assert_true(sh > 1);
    pty_type(&t, "\032");
    end = tu_now_ms() + TU_MS(5000);
    while ((r = waitpid(t.pid, &st, WNOHANG | WUNTRACED)) == 0 && tu_now_ms() < end)
        tu_sleep_ms(2);
    if (r != t.pid || !WIFSTOPPED(st))
        fail_msg("the tool did not stop within 5 s of Ctrl-Z (COMMAND is in state '%c')",
                 tp_proc_state(sh));
    assert_int_equal(tp_proc_state(sh), 'T');
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:tty"), 1);
    assert_int_equal(kill(t.pid, SIGCONT), 0);
    pty_type(&t, "again\n");
    pty_expect(&t, "got again", (int)TU_MS(5000));
    assert_int_equal(pty_finish(&t, (int)TU_MS(5000)), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:tty"), 0);
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
    assert_int_equal(tool_lines(p.err.buf), 1); /* (sh may add "Terminated") */
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
        cmocka_unit_test_setup_teardown(test_tool_signal_while_waiting_on_a_hung_server,
                                        tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(
            test_tool_stopped_tool_stops_command_before_the_expiry, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_forwards_other_signals, tu_setup,
                                        tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_ignores_sigpipe, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_signal_racing_the_release_leaves_nothing_held,
                                        tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_sigtstp_keeps_lock, tu_setup,
                                        tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_signals_reach_group, tu_setup,
                                        tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_terminal_read, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_terminal_ctrl_c, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_terminal_ctrl_z, tu_setup, tp_teardown),
    };
    return cmocka_run_group_tests_name("tool signals", tests, tu_group_setup,
                                       tu_group_teardown);
}
