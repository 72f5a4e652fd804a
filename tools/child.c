/* COMMAND as a child process that cannot outlive the tool.
 *
 * COMMAND runs in a process group of its own, led by a small guard process
 * forked from the tool: every signal the tool forwards, and the lost-lock
 * signal, goes to that whole group (a shell's children included).  The
 * guard ignores every signal and blocks reading a pipe whose only write end
 * the tool holds: when the tool dies in any way (SIGKILL included), the read
 * sees end-of-file and the guard kills the group with SIGKILL.  The guard,
 * as a member, also keeps the group id from being reused while it waits.
 * COMMAND itself also gets PR_SET_PDEATHSIG(SIGKILL), set after the fork by
 * the main thread, which lives as long as the tool (the death signal follows
 * the thread that forked, not the process).  When the tool ends normally it
 * writes one byte to the guard, which then exits without killing anything.
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

/* The guard (a forked child; async-signal-safe calls only): lead a new
 * process group, ignore every signal, and kill the group if the tool dies
 * (end-of-file on the pipe) rather than standing it down (one byte). */
static void guard_main(int rfd, int max_fd)
{
    struct sigaction ign;
    char b;
    ssize_t n;
    int sig, fd, devnull;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    for (sig = 1; sig < MAXSIG && sig <= SIGRTMAX; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &ign, NULL);
    if (setpgid(0, 0) < 0)
        _exit(1);
    /* hold none of the tool's files: its output pipes, Redis sockets */
    devnull = open("/dev/null", O_RDWR);
    for (fd = 0; fd < 3; fd++)
        if (devnull >= 0 && devnull != fd)
            dup2(devnull, fd);
    for (fd = 3; fd <= max_fd; fd++)
        if (fd != rfd)
            close(fd);
    do
        n = read(rfd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        kill(-getpid(), SIGKILL);
    _exit(0);
}

static int start_guard(void)
{
    struct rlimit rl;
    int gp[2], max_fd = 1023;
    pid_t g;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < 65536)
        max_fd = (int)rl.rlim_cur - 1;
    if (pipe2(gp, O_CLOEXEC) < 0) {
        rlt_err("cannot make a pipe: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    g = fork();
    if (g < 0) {
        rlt_err("cannot fork: %s", strerror(errno));
        close(gp[0]);
        close(gp[1]);
        return RLT_EXIT_OSERR;
    }
    if (g == 0)
        guard_main(gp[0], max_fd);
    close(gp[0]);
    setpgid(g, g); /* also done by the guard: whichever runs first */
    guard_pid = g;
    guard_fd = gp[1];
    cmd_pgid = g;
    return 0;
}

/* The end of a normal run: the guard exits without killing anything. */
void rlt_child_done(void)
{
    if (guard_fd < 0)
        return;
    if (write(guard_fd, "", 1) < 0) {
        /* the guard is gone already */
    }
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

int rlt_child_start(const rlt_config *cfg, int *pid)
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
    if ((status = start_guard()))
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

int rlt_child_wait(int pid, void (*on_lost)(void *arg), void *arg)
{
    struct pollfd pfd = { evpipe[0], POLLIN, 0 };
    unsigned char buf[64];
    int st, lost_seen = 0;
    ssize_t n, i;
    pid_t r;

    if (pending_lost && !lost_seen++)
        on_lost(arg);

    for (;;) {
        r = waitpid(pid, &st, WNOHANG | WUNTRACED | WCONTINUED);
        if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st)))
            break;
        if (r == pid && WIFSTOPPED(st)) {
            cmd_stopped = 1;
            if (tty_fd >= 0) {
                /* job control: the shell must see the job stop */
                take_tty();
                raise(SIGSTOP);
            }
            continue;
        }
        if (r == pid && WIFCONTINUED(st))
            cmd_stopped = 0;
        if (r < 0 && errno != EINTR) {
            rlt_err("cannot wait for COMMAND: %s", strerror(errno));
            return RLT_EXIT_OSERR;
        }
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            rlt_err("poll: %s", strerror(errno));
            return RLT_EXIT_OSERR;
        }
        while ((n = read(evpipe[0], buf, sizeof buf)) > 0)
            for (i = 0; i < n; i++) {
                if (buf[i] == 0) {
                    if (!lost_seen++)
                        on_lost(arg);
                } else if (buf[i] != SIGCHLD) {
                    on_signal_event(buf[i]);
                }
            }
    }
    take_tty();
    return exit_status(st);
}
