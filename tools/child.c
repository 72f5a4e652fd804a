/* COMMAND as a child process that cannot outlive the tool, nor its lock.
 *
 * COMMAND runs in a process group of its own, led by a small guard process
 * forked from the tool: every signal the tool forwards, and the lost-lock
 * signal, goes to that whole group (a shell's children included).  The
 * guard ignores every signal and reads a pipe whose only write end the tool
 * holds: when the tool dies in any way (SIGKILL included), the read sees
 * end-of-file and the guard kills the group with SIGKILL.  The guard, as a
 * member (the leader), also keeps the group id from being reused while it
 * waits.  COMMAND itself also gets PR_SET_PDEATHSIG(SIGKILL), set after the
 * fork by the main thread, which lives as long as the tool (the death
 * signal follows the thread that forked, not the process).  When the tool
 * ends normally it tells the guard, which then exits without killing
 * anything.
 *
 * The guard is also a dead-man switch for a tool that is alive but does not
 * run (SIGSTOP, a debugger, a frozen cgroup): the tool tells it, several
 * times per renewal interval, until when the lock is valid (the local
 * validity: the server's expiry less the drift allowance).  When that news
 * stops (no message for 3 of those intervals) and the validity it last
 * heard of is about to end, the guard sends COMMAND's group the lost signal
 * (SIGTERM by default) a quarter of the expiry before the end, and SIGKILL
 * just before the end (leaving the group first, so that it lives on to keep
 * the group id), so COMMAND is gone before another holder can be granted
 * the lock.  A tool that reports the lock lost (it then applies
 * --lost-signal), or stops itself for job control, disarms the switch;
 * --lost-signal none turns it off.
 *
 * At a terminal where the tool is the foreground job, COMMAND's group is
 * made the terminal's foreground group (tcsetpgrp), so that COMMAND can read
 * the terminal and Ctrl-C / Ctrl-Z reach it directly.  When COMMAND stops
 * there (Ctrl-Z, or terminal input in the background), the tool takes the
 * terminal back and stops itself, so that the shell sees the job stop; on
 * SIGCONT it hands the terminal back (if it is in the foreground) and
 * continues COMMAND.  Without a terminal, SIGTSTP is forwarded like any
 * other signal and the tool keeps renewing the lock while COMMAND is
 * stopped.
 *
 * Every catchable signal is handled: forwarded to COMMAND's group once the
 * lock is held (the tool exits when COMMAND does, releasing the lock), or,
 * before that, fatal as without a handler.  Exceptions: SIGPIPE and SIGTTOU
 * are ignored by the tool (a failed write is reported instead; messages are
 * written from the background), the synchronous fault signals (SIGSEGV,
 * SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) and SIGTTIN keep their
 * default action, and a signal ignored by whoever started the tool stays
 * ignored, for COMMAND too.  COMMAND starts with the dispositions and the
 * signal mask the tool had at start.
 *
 * Every event reaches the main thread through one self-pipe: the signals,
 * SIGCHLD (reap), and the renewal thread's lost-lock report (byte 0).  The
 * main loop polls the pipe and reaps with waitpid(WNOHANG), so no event is
 * lost between a check and the wait. */
#define _GNU_SOURCE /* pipe2 */
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAXSIG 65 /* signal numbers 1..64 fit in one pipe byte */

static int evpipe[2] = { -1, -1 };
static unsigned char handled[MAXSIG];   /* our handler is installed */
static unsigned char ignored_at_start[MAXSIG];
static sigset_t start_mask;
static volatile sig_atomic_t recording; /* lock held: record, do not die */
static redislock *volatile waiting;      /* the lock being waited for */
static volatile sig_atomic_t cancel_sig; /* the signal that cancelled the wait */
static int pending_lost;

static int tty_fd = -1;     /* the terminal, when we are its foreground job */
static pid_t cmd_pgid;      /* COMMAND's group (the guard's pid), 0 if none */
static pid_t guard_pid;
static int guard_fd = -1;   /* write end of the guard's pipe */
static int cmd_stopped;     /* COMMAND is stopped as far as we know */
static const rlt_watch *watch; /* the lock, for the guard's news */
static int64_t news_ms;     /* how often the guard hears from the tool */
static int64_t last_news_ms; /* when it last did */

/* What the tool tells the guard: one record per write (atomic on a pipe). */
enum { NEWS_VALID = 'V', NEWS_DISARM = 'D', NEWS_END = 'E' };
typedef struct guard_news {
    int32_t kind;
    int32_t unused;
    int64_t valid_us;        /* NEWS_VALID: the lock's validity ends then
                                (CLOCK_MONOTONIC, microseconds) */
} guard_news;

/* The guard's settings, fixed before it is forked. */
typedef struct guard_plan {
    int rfd, max_fd;
    pid_t tool_pgid;
    int first_sig;           /* the lost signal; 0: no dead-man switch */
    int64_t grace_us;        /* first_sig this long before the end */
    int64_t silence_us;      /* no news for this long: the tool does not run */
} guard_plan;

/* Signals that keep their default action: faults are crashes, not
 * requests; SIGKILL and SIGSTOP cannot be caught; SIGCHLD has its own use;
 * SIGPIPE and SIGTTOU are ignored; the tool never reads the terminal. */
static int left_alone(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE: case SIGTTOU:
    case SIGTTIN: case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE:
    case SIGABRT: case SIGTRAP: case SIGSYS:
        return 1;
    default:
        /* glibc keeps 32 and 33 for itself */
        return sig > 31 && (sig < SIGRTMIN || sig > SIGRTMAX);
    }
}

/* Signals whose default action neither ends nor stops a process. */
static int harmless(int sig)
{
    return sig == SIGCONT || sig == SIGWINCH || sig == SIGURG;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (!recording && sig != SIGCHLD && waiting && !harmless(sig) && sig != SIGTSTP) {
        /* waiting for the lock: end the wait (redislock_cancel() is
         * async-signal-safe); the tool then exits 128 + sig, holding
         * nothing (a grant that raced with it is released) */
        if (!cancel_sig)
            cancel_sig = sig;
        redislock_cancel(waiting);
        /* and recorded: if the acquire had just succeeded, COMMAND is not
         * started and the lock is released */
        if (write(evpipe[1], &b, 1) < 0) {
            /* pipe full: the signal is seen anyway */
        }
        errno = saved;
        return;
    }
    if (!recording && sig != SIGCHLD) {
        /* not waiting yet: act as without a handler (the signal is blocked
         * in here and arrives when the handler returns) */
        if (sig == SIGTSTP) {
            raise(SIGSTOP);
        } else if (!harmless(sig)) {
            signal(sig, SIG_DFL);
            raise(sig);
        }
        errno = saved;
        return;
    }
    if (write(evpipe[1], &b, 1) < 0) {
        /* pipe full: the loop wakes up anyway */
    }
    errno = saved;
}

int rlt_signals_init(void)
{
    struct sigaction sa, old;
    int sig;
    if (pipe2(evpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rlt_err("cannot make a pipe: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    pthread_sigmask(SIG_SETMASK, NULL, &start_mask);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask); /* one handler at a time */
    /* always ours, even if ignored at start: COMMAND must not be reaped
     * by the kernel before we read its status */
    if (sigaction(SIGCHLD, &sa, NULL) == 0)
        handled[SIGCHLD] = 1;
    for (sig = 1; sig < MAXSIG && sig <= SIGRTMAX; sig++) {
        if (left_alone(sig) && sig != SIGPIPE && sig != SIGTTOU)
            continue;
        if (sigaction(sig, NULL, &old) < 0)
            continue;
        /* a signal ignored by whoever started us stays ignored (as shells
         * do for background jobs), also for COMMAND */
        if (old.sa_handler == SIG_IGN) {
            ignored_at_start[sig] = 1;
            continue;
        }
        if (sig == SIGPIPE || sig == SIGTTOU) {
            signal(sig, SIG_IGN);
            continue;
        }
        if (sigaction(sig, &sa, NULL) == 0)
            handled[sig] = 1;
    }
    return 0;
}

void rlt_note_lost(void)
{
    unsigned char b = 0;
    if (write(evpipe[1], &b, 1) < 0) {
        /* pipe full: the loop wakes up anyway */
    }
}

void rlt_signals_waiting(redislock *lk)
{
    waiting = lk;
}

int rlt_signals_cancelled(void)
{
    return cancel_sig;
}

void rlt_signals_hold(void)
{
    waiting = NULL;
    recording = 1;
}

int rlt_signals_pending(void)
{
    unsigned char buf[64];
    ssize_t n, i;
    int sig = 0;
    while ((n = read(evpipe[0], buf, sizeof buf)) > 0)
        for (i = 0; i < n; i++) {
            if (buf[i] == 0)
                pending_lost = 1;
            else if (buf[i] != SIGCHLD && !harmless(buf[i]) && buf[i] != SIGTSTP &&
                     !sig)
                sig = buf[i];
        }
    return sig;
}

/* The controlling terminal, if this process group is its foreground job. */
static int foreground_tty(void)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (tcgetpgrp(fd) != getpgrp()) {
        close(fd);
        return -1;
    }
    return fd;
}

/* In a forked child: what the tool changed back to what it was at start. */
static void restore_signals(void)
{
    int sig;
    for (sig = 1; sig < MAXSIG && sig <= SIGRTMAX; sig++)
        if (handled[sig] ||
            ((sig == SIGPIPE || sig == SIGTTOU) && !ignored_at_start[sig]))
            signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &start_mask, NULL);
}

/* CLOCK_MONOTONIC in microseconds (async-signal-safe). */
static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The guard's start (a forked child; async-signal-safe calls only): lead a
 * new process group, ignore every signal, hold none of the tool's files
 * (its output pipes, Redis sockets) but the pipe. */
static void guard_setup(const guard_plan *p)
{
    struct sigaction ign;
    int sig, fd, devnull;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    for (sig = 1; sig < MAXSIG && sig <= SIGRTMAX; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &ign, NULL);
    if (setpgid(0, 0) < 0)
        _exit(1);
    devnull = open("/dev/null", O_RDWR);
    for (fd = 0; fd < 3; fd++)
        if (devnull >= 0 && devnull != fd)
            dup2(devnull, fd);
    for (fd = 3; fd <= p->max_fd; fd++)
        if (fd != p->rfd)
            close(fd);
}

/* The dead-man switch fires: stage 0 sends the lost signal to COMMAND's
 * group, stage 1 SIGKILL, after the guard left the group (for the tool's:
 * the guard lives on, so that the group id is not reused while the tool
 * may still signal it). */
static void guard_fire(const guard_plan *p, int stage)
{
    if (stage == 0) {
        kill(-getpid(), p->first_sig); /* the guard ignores it */
        return;
    }
    if (setpgid(0, p->tool_pgid) < 0) {
        kill(-getpid(), SIGKILL); /* cannot leave: the guard goes too */
        _exit(1);
    }
    kill(-getpid(), SIGKILL);
}

/* The guard: read the tool's news; kill COMMAND's group with SIGKILL if
 * the tool dies (end-of-file), go away if it ends normally, and act as a
 * dead-man switch (see the top of this file). */
static void guard_main(const guard_plan *p)
{
    int64_t valid = 0, heard = mono_us(); /* valid 0: disarmed */
    int stage = 0;
    guard_setup(p);
    for (;;) {
        struct pollfd pfd = { p->rfd, POLLIN, 0 };
        int64_t due = -1, now = mono_us();
        guard_news m;
        ssize_t n;
        if (valid && p->first_sig && stage < 2) {
            /* SIGKILL a little before the end (at most 20 ms), so that
             * COMMAND is gone at least the drift allowance before the
             * server's expiry even if the guard runs a few ms late */
            int64_t early = p->grace_us / 2 < 20000 ? p->grace_us / 2 : 20000;
            int64_t end = stage ? valid - early : valid - p->grace_us;
            due = end > heard + p->silence_us ? end : heard + p->silence_us;
        }
        if (due >= 0 && now >= due) {
            guard_fire(p, stage++);
            continue;
        }
        if (due > now + 3600 * 1000000LL)
            due = now + 3600 * 1000000LL; /* poll() takes an int of ms */
        if (poll(&pfd, 1, due < 0 ? -1 : (int)((due - now + 999) / 1000)) <= 0)
            continue; /* the time came, or EINTR */
        n = read(p->rfd, &m, sizeof m);
        if (n == 0) {
            kill(-getpid(), SIGKILL); /* the tool died */
            _exit(0);
        }
        if (n != (ssize_t)sizeof m)
            continue;
        heard = mono_us();
        if (m.kind == NEWS_END)
            _exit(0);
        valid = m.kind == NEWS_VALID ? m.valid_us : 0;
        if (valid > heard)
            stage = stage < 2 ? 0 : 2; /* renewed: the switch is set again */
    }
}

/* News to the guard (ignored when it is gone). */
static void tell_guard(int kind, int64_t valid_us)
{
    guard_news m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.valid_us = valid_us;
    if (guard_fd >= 0 && write(guard_fd, &m, sizeof m) < 0) {
        /* the guard is gone (it fired): nothing to tell */
    }
}

/* The lock's validity to the guard, at most every news_ms. */
static void news(int force)
{
    int64_t ms, now = rlt_now_ms();
    if (!watch || (!force && now - last_news_ms < news_ms))
        return;
    last_news_ms = now;
    ms = watch->validity_ms(watch->arg);
    if (ms > 0)
        tell_guard(NEWS_VALID, mono_us() + ms * 1000);
    else
        tell_guard(NEWS_DISARM, 0); /* lost, or no expiry */
}

static int start_guard(const rlt_config *cfg)
{
    struct rlimit rl;
    guard_plan p;
    int gp[2];
    pid_t g;
    memset(&p, 0, sizeof p);
    p.max_fd = 1023;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < 65536)
        p.max_fd = (int)rl.rlim_cur - 1;
    p.tool_pgid = getpgrp();
    p.first_sig = cfg->lost_signal;
    p.grace_us = cfg->expire_ms * 1000 / 4;
    news_ms = cfg->expire_ms / 10 < 1000 ? cfg->expire_ms / 10 : 1000;
    p.silence_us = 3 * news_ms * 1000;
    if (pipe2(gp, O_CLOEXEC) < 0) {
        rlt_err("cannot make a pipe: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    p.rfd = gp[0];
    g = fork();
    if (g < 0) {
        rlt_err("cannot fork: %s", strerror(errno));
        close(gp[0]);
        close(gp[1]);
        return RLT_EXIT_OSERR;
    }
    if (g == 0)
        guard_main(&p);
    close(gp[0]);
    setpgid(g, g); /* also done by the guard: whichever runs first */
    guard_pid = g;
    guard_fd = gp[1];
    cmd_pgid = g;
    news(1);
    return 0;
}

/* The end of a normal run: the guard exits without killing anything. */
void rlt_child_done(void)
{
    if (guard_fd < 0)
        return;
    tell_guard(NEWS_END, 0);
    close(guard_fd);
    guard_fd = -1;
    while (waitpid(guard_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    guard_pid = 0;
}

/* The terminal back to the tool's group, if COMMAND's group has it. */
static void take_tty(void)
{
    if (tty_fd >= 0 && tcgetpgrp(tty_fd) == cmd_pgid)
        tcsetpgrp(tty_fd, getpgrp()); /* SIGTTOU is ignored */
}

/* The terminal to COMMAND's group, if the tool's group has it. */
static void give_tty(void)
{
    if (tty_fd >= 0 && tcgetpgrp(tty_fd) == getpgrp())
        tcsetpgrp(tty_fd, cmd_pgid);
}

/* In the forked child: join the guard's group, die with the tool, exec.
 * Only async-signal-safe calls until exec.  An error is written to ep as
 * two ints: the step (0: exec) and errno. */
static void child_main(int ep, pid_t tool, const char *path, char *const *argv)
{
    int msg[2] = { 1, 0 };
    if (setpgid(0, cmd_pgid) < 0)
        goto fail;
    if (tty_fd >= 0)
        tcsetpgrp(tty_fd, cmd_pgid); /* SIGTTOU is still ignored here */
    msg[0] = 2;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != tool)
        _exit(RLT_EXIT_OSERR); /* the tool died before the prctl */
    restore_signals();
    msg[0] = 0;
    execvp(path, argv);
fail:
    msg[1] = errno;
    if (write(ep, msg, sizeof msg) < 0) {
        /* the tool is gone */
    }
    _exit(RLT_EXIT_NOTFOUND);
}

int rlt_child_start(const rlt_config *cfg, const rlt_watch *w, int *pid)
{
    static const char *const steps[] = { "run", "put in its process group",
                                         "tie to the tool's life" };
    char *sh_argv[4];
    char *const *argv = cfg->argv;
    const char *path;
    int ep[2], msg[2], status, e;
    pid_t p, tool = getpid();
    ssize_t n;

    if (cfg->shell_cmd) {
        sh_argv[0] = (char *)"sh";
        sh_argv[1] = (char *)"-c";
        sh_argv[2] = (char *)cfg->shell_cmd;
        sh_argv[3] = NULL;
        argv = sh_argv;
    }
    path = cfg->shell_cmd ? "/bin/sh" : argv[0];
    tty_fd = foreground_tty();
    watch = w;
    if ((status = start_guard(cfg)))
        return status;
    if (pipe2(ep, O_CLOEXEC) < 0) {
        rlt_err("cannot make a pipe: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    fflush(NULL);
    p = fork();
    if (p < 0) {
        e = errno;
        close(ep[0]);
        close(ep[1]);
        rlt_err("cannot fork to run %s: %s", path, strerror(e));
        return RLT_EXIT_OSERR;
    }
    if (p == 0)
        child_main(ep[1], tool, path, argv);
    close(ep[1]);
    setpgid(p, cmd_pgid); /* also done by the child: whichever runs first */
    give_tty();
    do
        n = read(ep[0], msg, sizeof msg);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof msg) { /* it did not exec */
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
            ;
        take_tty();
        e = msg[1];
        rlt_err("cannot %s %s: %s", steps[msg[0] >= 0 && msg[0] < 3 ? msg[0] : 0],
                msg[0] ? "COMMAND" : path, strerror(e));
        if (msg[0])
            return RLT_EXIT_OSERR;
        if (e == ENOENT || e == ENOTDIR)
            return RLT_EXIT_NOTFOUND;
        return e == ENOMEM || e == EAGAIN ? RLT_EXIT_OSERR : RLT_EXIT_NOEXEC;
    }
    *pid = p;
    return 0;
}

/* A signal (or the lost-lock signal) to COMMAND's whole group; a stopped
 * COMMAND is continued so that it can act on it. */
void rlt_child_signal(int sig)
{
    if (!cmd_pgid || !sig)
        return;
    kill(-cmd_pgid, sig);
    if (cmd_stopped && sig != SIGTSTP && !harmless(sig)) {
        kill(-cmd_pgid, SIGCONT);
        cmd_stopped = 0;
    }
}

static void on_signal_event(int sig)
{
    if (sig == SIGCONT) {
        /* the shell continued us (fg or bg): COMMAND too */
        give_tty();
        cmd_stopped = 0;
    }
    rlt_child_signal(sig);
}

static int exit_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return RLT_EXIT_OSERR;
}

/* A lost-lock report: the tool applies --lost-signal, so the guard's
 * switch is off from now on. */
static void lost(int *seen)
{
    const rlt_watch *w = watch;
    if ((*seen)++ || !w)
        return;
    watch = NULL;
    tell_guard(NEWS_DISARM, 0);
    w->on_lost(w->arg);
}

int rlt_child_wait(int pid)
{
    struct pollfd pfd = { evpipe[0], POLLIN, 0 };
    unsigned char buf[64];
    int st, lost_seen = 0;
    ssize_t n, i;
    pid_t r;

    if (pending_lost)
        lost(&lost_seen);

    for (;;) {
        r = waitpid(pid, &st, WNOHANG | WUNTRACED | WCONTINUED);
        if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st)))
            break;
        if (r == pid && WIFSTOPPED(st)) {
            cmd_stopped = 1;
            if (tty_fd >= 0) {
                /* job control: the shell must see the job stop; the user
                 * stopped both, so the guard must not act on the silence */
                tell_guard(NEWS_DISARM, 0);
                take_tty();
                raise(SIGSTOP);
                news(1);
            }
            continue;
        }
        if (r == pid && WIFCONTINUED(st))
            cmd_stopped = 0;
        if (r < 0 && errno != EINTR) {
            rlt_err("cannot wait for COMMAND: %s", strerror(errno));
            return RLT_EXIT_OSERR;
        }
        news(0);
        if (poll(&pfd, 1, watch ? (int)news_ms : -1) < 0 && errno != EINTR) {
            rlt_err("poll: %s", strerror(errno));
            return RLT_EXIT_OSERR;
        }
        while ((n = read(evpipe[0], buf, sizeof buf)) > 0)
            for (i = 0; i < n; i++) {
                if (buf[i] == 0)
                    lost(&lost_seen);
                else if (buf[i] != SIGCHLD)
                    on_signal_event(buf[i]);
            }
    }
    take_tty();
    return exit_status(st);
}
