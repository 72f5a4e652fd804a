#include "fakenode.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 32

struct tfn_out {
    char *buf;
    size_t len, cap;
    int close;
};

typedef struct conn {
    int fd;
    redisReader *rd;
} conn;

struct tfn_node {
    tfn_handler h;
    void *ud;
    int lfd, port;
    int stop_pipe[2];
    pthread_t t;
    pthread_mutex_t mu;
    long requests;
    conn conns[MAX_CONNS];
};

void tfn_reply(tfn_out *out, const char *fmt, ...)
{
    va_list ap;
    int n;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(out->buf + out->len, out->cap - out->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && out->len + (size_t)n < out->cap) {
            out->len += (size_t)n;
            return;
        }
        out->cap = out->cap * 2 + (size_t)(n > 0 ? n : 0) + 64;
        out->buf = realloc(out->buf, out->cap);
        if (!out->buf)
            abort();
    }
}

void tfn_close(tfn_out *out)
{
    out->close = 1;
}

static void drop(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->rd)
        redisReaderFree(c->rd);
    c->fd = -1;
    c->rd = NULL;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Read what came on c and answer every whole request. */
static void serve(tfn_node *nd, conn *c)
{
    char buf[16384];
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    tfn_out out = { NULL, 0, 0, 0 };
    void *req = NULL;
    if (r <= 0) {
        drop(c);
        return;
    }
    redisReaderFeed(c->rd, buf, (size_t)r);
    while (!out.close && redisReaderGetReply(c->rd, &req) == REDIS_OK && req) {
        long n;
        pthread_mutex_lock(&nd->mu);
        n = nd->requests++;
        pthread_mutex_unlock(&nd->mu);
        nd->h(nd->ud, req, n, &out);
        freeReplyObject(req);
        req = NULL;
    }
    if (out.len)
        write_all(c->fd, out.buf, out.len);
    free(out.buf);
    if (out.close)
        drop(c);
}

static void accept_one(tfn_node *nd)
{
    int fd = accept(nd->lfd, NULL, NULL), i;
    if (fd < 0)
        return;
    for (i = 0; i < MAX_CONNS; i++)
        if (nd->conns[i].fd < 0) {
            nd->conns[i].fd = fd;
            nd->conns[i].rd = redisReaderCreate();
            return;
        }
    close(fd);
}

static void *run(void *arg)
{
    tfn_node *nd = arg;
    for (;;) {
        struct pollfd p[MAX_CONNS + 2];
        int idx[MAX_CONNS], np = 2, i;
        p[0].fd = nd->stop_pipe[0];
        p[0].events = POLLIN;
        p[1].fd = nd->lfd;
        p[1].events = POLLIN;
        for (i = 0; i < MAX_CONNS; i++)
            if (nd->conns[i].fd >= 0) {
                p[np].fd = nd->conns[i].fd;
                p[np].events = POLLIN;
                idx[np - 2] = i;
                np++;
            }
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        if (p[1].revents)
            accept_one(nd);
        for (i = 2; i < np; i++)
            if (p[i].revents)
                serve(nd, &nd->conns[idx[i - 2]]);
    }
    return NULL;
}

tfn_node *tfn_start(tfn_handler h, void *ud)
{
    tfn_node *nd = calloc(1, sizeof *nd);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int i, one = 1;
    if (!nd)
        return NULL;
    nd->h = h;
    nd->ud = ud;
    for (i = 0; i < MAX_CONNS; i++)
        nd->conns[i].fd = -1;
    pthread_mutex_init(&nd->mu, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    nd->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (nd->lfd < 0 || setsockopt(nd->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(nd->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(nd->lfd, 64) < 0 ||
        getsockname(nd->lfd, (struct sockaddr *)&sa, &len) < 0 ||
        pipe(nd->stop_pipe) < 0) {
        if (nd->lfd >= 0)
            close(nd->lfd);
        free(nd);
        return NULL;
    }
    nd->port = ntohs(sa.sin_port);
    if (pthread_create(&nd->t, NULL, run, nd) != 0) {
        close(nd->lfd);
        close(nd->stop_pipe[0]);
        close(nd->stop_pipe[1]);
        free(nd);
        return NULL;
    }
    return nd;
}

int tfn_port(const tfn_node *n)
{
    return n->port;
}

long tfn_requests(tfn_node *n)
{
    long v;
    pthread_mutex_lock(&n->mu);
    v = n->requests;
    pthread_mutex_unlock(&n->mu);
    return v;
}

void tfn_stop(tfn_node *n)
{
    int i;
    if (!n)
        return;
    if (write(n->stop_pipe[1], "x", 1) < 0)
        perror("tfn_stop");
    pthread_join(n->t, NULL);
    for (i = 0; i < MAX_CONNS; i++)
        drop(&n->conns[i]);
    close(n->lfd);
    close(n->stop_pipe[0]);
    close(n->stop_pipe[1]);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
