#define _GNU_SOURCE /* pipe2 */
#include "toolproc.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char tool_path[PATH_MAX];
static pid_t live[64]; /* started, not finished: killed by tp_kill_all() */
static char scratch[1024];

const char *tp_tool(void)
{
    if (!tool_path[0]) {
        const char *top = getenv("top_builddir");
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s/tools/redislock", top && *top ? top : ".");
        if (!realpath(rel, tool_path))
            fail_msg("cannot find the tool at %s: %s", rel, strerror(errno));
    }
    return tool_path;
}

static void remove_scratch(void)
{
    char cmd[sizeof scratch + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
        fprintf(stderr, "toolproc: could not remove %s\n", scratch);
}

const char *tp_dir(void)
{
    if (!scratch[0]) {
        const char *t = getenv("REDISLOCK_TEST_TMPDIR");
        if (!t)
            t = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(scratch, sizeof scratch, "%s/tool.XXXXXX", t);
        if (!mkdtemp(scratch))
            fail_msg("mkdtemp: %s", strerror(errno));
        atexit(remove_scratch);
    }
    return scratch;
}

const char *tp_path(const char *name)
{
    static char buf[4][PATH_MAX];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", tp_dir(), name);
    return b;
}

void tp_track(pid_t pid, int add)
{
    static int registered;
    size_t i;
    if (!registered++)
        atexit(tp_kill_all);
    for (i = 0; i < sizeof live / sizeof live[0]; i++)
        if (add ? live[i] == 0 : live[i] == pid) {
            live[i] = add ? pid : 0;
            return;
        }
}

void tp_kill_all(void)
{
    size_t i;
    for (i = 0; i < sizeof live / sizeof live[0]; i++)
        if (live[i]) {
            kill(-live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

void tp_start(tool_proc *p, const char *const *args)
{
    tp_start_closed(p, args, 0);
}

void tp_default_signals(void)
{
    sigset_t none;
    int sig;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
}

void tp_start_closed(tool_proc *p, const char *const *args, unsigned closed)
{
    int o[2], e[2];
    size_t n = 0;
    const char *argv[64];
    const char *tool = tp_tool();

    argv[n++] = "redislock";
    while (*args && n < 63)
        argv[n++] = *args++;
    argv[n] = NULL;
    memset(p, 0, sizeof *p);
    if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    p->start_ms = tu_now_ms();
    p->pid = fork();
    if (p->pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (p->pid == 0) {
        setpgid(0, 0); /* the tool and its COMMAND: one group to clean up */
        tp_default_signals();
        if (dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
            _exit(120);
        for (n = 0; n < 3; n++)
            if (closed & (1u << n))
                close((int)n);
        execv(tool, (char *const *)argv);
        _exit(121);
    }
    setpgid(p->pid, p->pid);
    tp_track(p->pid, 1);
    close(o[1]);
    close(e[1]);
    p->out.fd = o[0];
    p->err.fd = e[0];
    if (closed & 2) {
        close(o[0]);
        p->out.fd = -1;
    }
    if (closed & 4) {
        close(e[0]);
        p->err.fd = -1;
    }
}

char tp_proc_state(pid_t pid)
{
    char path[64], buf[512], *rp;
    FILE *f;
    size_t n;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses */
    rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

int tp_alive(pid_t pid)
{
    char st = tp_proc_state(pid);
    return st && st != 'Z' && st != 'X';
}

/* Read what is there (waiting at most timeout_ms for something): 1 if
 * bytes came, 0 on EOF, -1 on timeout. */
static int fill(tp_stream *s, int timeout_ms)
{
    struct pollfd pfd = { s->fd, POLLIN, 0 };
    ssize_t r;
    int n;
    if (s->fd < 0)
        return 0;
    do
        n = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    if (s->len + 1 >= sizeof s->buf)
        fail_msg("tool output longer than %zu bytes", sizeof s->buf);
    do
        r = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    s->len += (size_t)r;
    s->buf[s->len] = '\0';
    return 1;
}

int tp_line(tool_proc *p, int err, char *line, size_t size, int timeout_ms)
{
    tp_stream *s = err ? &p->err : &p->out;
    int64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(s->buf + s->pos, '\n', s->len - s->pos);
        if (nl) {
            size_t n = (size_t)(nl - (s->buf + s->pos));
            snprintf(line, size, "%.*s", (int)n, s->buf + s->pos);
            s->pos += n + 1;
            return 0;
        }
        if (fill(s, (int)(end - tu_now_ms())) <= 0)
            return -1;
    }
}

int tp_finish(tool_proc *p, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    int st;
    pid_t r;
    while (p->out.fd >= 0 || p->err.fd >= 0) {
        struct pollfd pfd[2] = { { p->out.fd, POLLIN, 0 }, { p->err.fd, POLLIN, 0 } };
        int left = (int)(end - tu_now_ms()), n;
        if (left <= 0) {
            tp_kill_all();
            fail_msg("the tool (pid %d) did not finish in %d ms; stdout: %s; "
                     "stderr: %s", (int)p->pid, timeout_ms, p->out.buf, p->err.buf);
        }
        n = poll(pfd, 2, left);
        if (n < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        if (pfd[0].revents)
            fill(&p->out, 0);
        if (pfd[1].revents)
            fill(&p->err, 0);
    }
    /* Both streams are closed: the tool and COMMAND have ended (or closed
     * them); the tool exits right after COMMAND and the release. */
    do
        r = waitpid(p->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    p->end_ms = tu_now_ms();
    tp_track(p->pid, 0);
    if (r != p->pid)
        fail_msg("waitpid: %s", strerror(errno));
    if (WIFEXITED(st))
        p->status = WEXITSTATUS(st);
    else
        p->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    if (p->status == 120 || p->status == 121)
        fail_msg("could not execute %s", tp_tool());
    return p->status;
}

int tp_run(tool_proc *p, const char *const *args)
{
    tp_start(p, args);
    return tp_finish(p, (int)TU_MS(30000));
}

int tp_one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl && nl != s && nl[1] == '\0';
}

int tp_unused_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int tp_teardown(void **state)
{
    tp_kill_all();
    return 0;
}
