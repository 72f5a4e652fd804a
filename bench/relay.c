/* A delaying relay: stands for a network between the client and a Redis
 * master on this machine.  It listens on a unix socket, connects each
 * accepted connection to the real server's unix socket, and passes the bytes
 * on in both directions, each chunk held back for the one-way delay.  Each
 * direction is one thread (read, sleep until arrival + delay, write), which
 * is exact for request/reply traffic with one request in flight per
 * connection, as in the majority measurement. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct pair {
    int fd[2];          /* client, server */
    int refs;           /* pump threads still running */
    int64_t delay_ns;
} pair;

typedef struct pump {
    pair *p;
    int from, to;
} pump;

static int unix_connect(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *pump_main(void *arg)
{
    pump *pm = arg;
    pair *p = pm->p;
    char buf[65536];
    for (;;) {
        ssize_t n = read(p->fd[pm->from], buf, sizeof buf), off = 0;
        int64_t due;
        struct timespec ts;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        due = bench_now_ns() + p->delay_ns;
        ts.tv_sec = (time_t)(due / 1000000000);
        ts.tv_nsec = (long)(due % 1000000000);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        while (off < n) {
            /* MSG_NOSIGNAL: a peer that closed must not kill the benchmark
             * with SIGPIPE */
            ssize_t w = send(p->fd[pm->to], buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    shutdown(p->fd[pm->to], SHUT_WR);
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_SEQ_CST) == 0) {
        close(p->fd[0]);
        close(p->fd[1]);
        free(p);
    }
    free(pm);
    return NULL;
}

static void *accept_main(void *arg)
{
    bench_relay *r = arg;
    for (;;) {
        pthread_attr_t at;
        pthread_t th;
        pair *p;
        int i, c = accept(r->lfd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* closed by bench_relay_stop() */
        }
        p = calloc(1, sizeof *p);
        if (!p || (p->fd[1] = unix_connect(r->target)) < 0) {
            close(c);
            free(p);
            continue;
        }
        p->fd[0] = c;
        p->refs = 2;
        p->delay_ns = r->delay_ns;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        for (i = 0; i < 2; i++) {
            pump *pm = malloc(sizeof *pm);
            if (!pm)
                bench_die("relay", "out of memory");
            *pm = (pump){ p, i, 1 - i };
            if (pthread_create(&th, &at, pump_main, pm))
                bench_die("relay", "cannot start a thread");
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

void bench_relay_start(bench_relay *r, const char *target_url, const char *path,
                       int64_t delay_ns)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    const char *t = strstr(target_url, "://");
    if (strncmp(target_url, "unix://", 7) || !t)
        bench_die(target_url, "the relay takes unix:// URLs");
    if (strlen(path) >= sizeof a.sun_path || strlen(t + 3) >= sizeof a.sun_path)
        bench_die(path, "socket path too long");
    memset(r, 0, sizeof *r);
    snprintf(r->target, sizeof r->target, "%s", t + 3);
    snprintf(r->path, sizeof r->path, "%s", path);
    snprintf(r->url, sizeof r->url, "unix://%s", path);
    r->delay_ns = delay_ns;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    unlink(path);
    r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof a) || listen(r->lfd, 128))
        bench_die(path, strerror(errno));
    if (pthread_create(&r->th, NULL, accept_main, r))
        bench_die("relay", "cannot start a thread");
}

void bench_relay_stop(bench_relay *r)
{
    shutdown(r->lfd, SHUT_RDWR); /* accept() fails: the thread ends */
    pthread_join(r->th, NULL);
    close(r->lfd);
    unlink(r->path);
}
