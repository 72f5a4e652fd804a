#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

ts_server tu_srv;
redislock_client *tu_cl;

int tu_group_setup(void **state)
{
    int rc = ts_start(&tu_srv);
    if (rc)
        return rc == 77 ? 0 : -1; /* tu_setup skips every test */
    return redislock_client_new(&tu_cl, tu_srv.url, NULL) ? -1 : 0;
}

int tu_group_setup_tcp(void **state)
{
    tu_srv.tcp = 1;
    return tu_group_setup(state);
}

int tu_group_teardown(void **state)
{
    redislock_client_free(tu_cl);
    tu_cl = NULL;
    ts_stop(&tu_srv);
    return 0;
}

int tu_setup(void **state)
{
    if (!tu_srv.pid)
        skip();
    ts_flushall(&tu_srv);
    return 0;
}

int tu_slow(void)
{
    static int slow;
    if (!slow) {
        const char *e = getenv("REDISLOCK_TEST_SLOW");
        int v = e ? atoi(e) : 1;
        slow = v >= 1 && v <= 100 ? v : 1;
    }
    return slow;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

redislock_client *tu_client_opts(const char *url, const redislock_client_options *o)
{
    redislock_client *c = NULL;
    int rc = redislock_client_new(&c, url, o);
    if (rc)
        fail_msg("redislock_client_new(%s): %s", url, redislock_last_error());
    return c;
}

redislock_client *tu_client(const char *url)
{
    return tu_client_opts(url, NULL);
}

redislock *tu_lock(redislock_client *c, const char *name, int64_t expire_ms)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int rc;
    o.expire_ms = expire_ms;
    rc = redislock_new(&lk, c, name, &o);
    if (rc)
        fail_msg("redislock_new(%s): %s", name, redislock_last_error());
    return lk;
}

/* A child reports its result through a pipe and then kills itself: a
 * forked copy of the test process still holds the parent's allocations,
 * which a leak checker (valgrind) at its exit would call lost. */
#define MAX_CHILDREN 64
static struct {
    pid_t pid;
    int fd;
} children[MAX_CHILDREN];

pid_t tu_spawn(int (*fn)(void *), void *arg)
{
    pid_t pid;
    int p[2], i;
    if (pipe(p) < 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        unsigned char code;
        close(p[0]);
        code = (unsigned char)fn(arg);
        if (write(p[1], &code, 1) != 1)
            _exit(code);
        kill(getpid(), SIGKILL);
        _exit(code);
    }
    close(p[1]);
    for (i = 0; i < MAX_CHILDREN; i++)
        if (!children[i].pid) {
            children[i].pid = pid;
            children[i].fd = p[0];
            return pid;
        }
    close(p[0]);
    return pid;
}

int tu_wait(pid_t pid)
{
    int status, i, code = -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid == pid) {
            unsigned char c;
            if (read(children[i].fd, &c, 1) == 1)
                code = c;
            close(children[i].fd);
            children[i].pid = 0;
            break;
        }
    if (code >= 0)
        return code; /* it finished and reported */
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

void tu_kill_children(void)
{
    int i, status;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid) {
            kill(children[i].pid, SIGKILL);
            while (waitpid(children[i].pid, &status, 0) < 0 && errno == EINTR)
                ;
            close(children[i].fd);
            children[i].pid = 0;
        }
}

void tu_chan_open(tu_chan *ch)
{
    if (pipe(ch->fd) < 0)
        fail_msg("pipe: %s", strerror(errno));
}

void tu_chan_send(tu_chan *ch, int64_t v)
{
    ssize_t n;
    do
        n = write(ch->fd[1], &v, sizeof v);
    while (n < 0 && errno == EINTR);
}

int tu_chan_recv(tu_chan *ch, int64_t *v, int timeout_ms)
{
    struct pollfd p = { ch->fd[0], POLLIN, 0 };
    size_t got = 0;
    int64_t end = tu_now_ms() + timeout_ms;
    while (got < sizeof *v) {
        int left = (int)(end - tu_now_ms()), n;
        ssize_t r;
        if (left < 0)
            left = 0;
        n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r = read(ch->fd[0], (char *)v + got, sizeof *v - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

void tu_chan_close(tu_chan *ch)
{
    close(ch->fd[0]);
    close(ch->fd[1]);
}
