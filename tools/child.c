/* COMMAND as a child process.  Every event reaches the main thread through
 * one self-pipe: SIGINT, SIGTERM and SIGHUP (forwarded to the child),
 * SIGCHLD (reap), and the renewal thread's lost-lock report (byte 0).  The
 * main loop polls the pipe and reaps with waitpid(WNOHANG), so no event is
 * lost between a check and the wait. */
#define _GNU_SOURCE /* pipe2 */
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP };
#define NFWD (sizeof forwarded / sizeof forwarded[0])

static int evpipe[2] = { -1, -1 };
static int handled[NFWD];            /* 0: was ignored at start, left alone */
static volatile sig_atomic_t recording; /* lock held: record, do not die */
static int pending_lost;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (!recording && sig != SIGCHLD) {
        /* still waiting for the lock: die of it as without a handler (the
         * signal is blocked in here and arrives when the handler returns) */
        signal(sig, SIG_DFL);
        raise(sig);
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
    size_t i;
    if (pipe2(evpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rlt_err("cannot make a pipe: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < NFWD; i++) {
        /* a signal ignored by whoever started us stays ignored (as shells
         * do for background jobs), also for COMMAND */
        if (sigaction(forwarded[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(forwarded[i], &sa, NULL);
        handled[i] = 1;
    }
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    return 0;
}

void rlt_note_lost(void)
{
    unsigned char b = 0;
    if (write(evpipe[1], &b, 1) < 0) {
        /* pipe full: the loop wakes up anyway */
    }
}

void rlt_signals_hold(void)
{
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
            else if (buf[i] != SIGCHLD && !sig)
                sig = buf[i];
        }
    return sig;
}

int rlt_child_start(const rlt_config *cfg, int *pid)
{
    posix_spawnattr_t attr;
    sigset_t dfl, mask;
    char *sh_argv[4];
    char *const *argv = cfg->argv;
    const char *path;
    pid_t p;
    size_t i;
    int rc;

    if (cfg->shell_cmd) {
        sh_argv[0] = (char *)"sh";
        sh_argv[1] = (char *)"-c";
        sh_argv[2] = (char *)cfg->shell_cmd;
        sh_argv[3] = NULL;
        argv = sh_argv;
    }
    path = cfg->shell_cmd ? "/bin/sh" : argv[0];
    /* In the child: our handlers back to the default before exec, and the
     * signal mask of the tool's main thread. */
    sigemptyset(&dfl);
    for (i = 0; i < NFWD; i++)
        if (handled[i])
            sigaddset(&dfl, forwarded[i]);
    sigaddset(&dfl, SIGCHLD);
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    if ((rc = posix_spawnattr_init(&attr)) ||
        (rc = posix_spawnattr_setsigdefault(&attr, &dfl)) ||
        (rc = posix_spawnattr_setsigmask(&attr, &mask)) ||
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETSIGMASK))) {
        rlt_err("cannot prepare to run %s: %s", path, strerror(rc));
        return RLT_EXIT_OSERR;
    }
    fflush(NULL);
    rc = posix_spawnp(&p, path, NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc) {
        rlt_err("cannot run %s: %s", path, strerror(rc));
        if (rc == ENOENT || rc == ENOTDIR)
            return RLT_EXIT_NOTFOUND;
        return rc == ENOMEM || rc == EAGAIN ? RLT_EXIT_OSERR : RLT_EXIT_NOEXEC;
    }
    *pid = p;
    return 0;
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
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st)))
            break;
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
                    kill(pid, buf[i]);
                }
            }
    }
    return exit_status(st);
}
