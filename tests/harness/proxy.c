/* A fault proxy for tests (see proxy.h).  One thread polls the listening
 * socket, a wake-up pipe and both ends of every connection pair; a held
 * direction is simply not read, so its bytes wait in the kernel until the
 * mode lets them through. */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 256

typedef struct pair {
    int fd[2]; /* 0: client side, 1: server side; -1 when free */
} pair;

struct tp_proxy {
    pthread_t thread;
    int lfd;
    int wake[2];
    int mode;          /* atomic */
    int refuse_new;    /* atomic */
    int stop;          /* atomic */
    unsigned long long reply_bytes; /* atomic */
    char target[600];
    char path[600];
    char url[640];
    pair pairs[MAX_PAIRS];
};

static int unix_connect(const char *path)
{
    struct sockaddr_un a;
    size_t n = strlen(path);
    int fd;
    if (n >= sizeof a.sun_path)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, n);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void close_pair(pair *p)
{
    if (p->fd[0] >= 0)
        close(p->fd[0]);
    if (p->fd[1] >= 0)
        close(p->fd[1]);
    p->fd[0] = p->fd[1] = -1;
}

static void accept_one(tp_proxy *p, int mode)
{
    int cfd = accept(p->lfd, NULL, NULL), sfd, i;
    if (cfd < 0)
        return;
    if (mode == TP_DROP || __atomic_load_n(&p->refuse_new, __ATOMIC_SEQ_CST) ||
        (sfd = unix_connect(p->target)) < 0) {
        close(cfd);
        return;
    }
    for (i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i].fd[0] < 0) {
            p->pairs[i].fd[0] = cfd;
            p->pairs[i].fd[1] = sfd;
            return;
        }
    close(cfd);
    close(sfd);
}

/* Move what is readable on side `from` of pair i to the other side.
 * Blocking writes: the peers are local and read promptly. */
static int forward(tp_proxy *p, pair *pr, int from)
{
    char buf[65536];
    ssize_t n = read(pr->fd[from], buf, sizeof buf), off = 0;
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    while (off < n) {
        ssize_t w = send(pr->fd[!from], buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += w;
    }
    if (from == 1)
        __atomic_add_fetch(&p->reply_bytes, (unsigned long long)n, __ATOMIC_RELAXED);
    return 0;
}

static void *run(void *arg)
{
    tp_proxy *p = arg;
    struct pollfd pfd[2 + 2 * MAX_PAIRS];
    int who[2 + 2 * MAX_PAIRS];
    while (!__atomic_load_n(&p->stop, __ATOMIC_SEQ_CST)) {
        int mode = __atomic_load_n(&p->mode, __ATOMIC_SEQ_CST), i, n = 0;
        char b[64];
        if (mode == TP_DROP)
            for (i = 0; i < MAX_PAIRS; i++)
                if (p->pairs[i].fd[0] >= 0)
                    close_pair(&p->pairs[i]);
        pfd[n].fd = p->wake[0];
        pfd[n].events = POLLIN;
        who[n++] = -1;
        pfd[n].fd = p->lfd;
        pfd[n].events = POLLIN;
        who[n++] = -2;
        for (i = 0; i < MAX_PAIRS; i++) {
            if (p->pairs[i].fd[0] < 0)
                continue;
            /* a held direction is not read; hang-ups are still seen */
            pfd[n].fd = p->pairs[i].fd[0];
            pfd[n].events = mode == TP_STALL ? 0 : POLLIN;
            who[n++] = 2 * i;
            pfd[n].fd = p->pairs[i].fd[1];
            pfd[n].events = mode == TP_PASS ? POLLIN : 0;
            who[n++] = 2 * i + 1;
        }
        if (poll(pfd, (nfds_t)n, 1000) <= 0)
            continue;
        for (i = 0; i < n; i++) {
            pair *pr;
            if (!pfd[i].revents)
                continue;
            if (who[i] == -1) {
                while (read(p->wake[0], b, sizeof b) > 0)
                    ;
                continue;
            }
            if (who[i] == -2) {
                accept_one(p, mode);
                continue;
            }
            pr = &p->pairs[who[i] / 2];
            if (pr->fd[0] < 0)
                continue;
            if ((pfd[i].revents & POLLIN) && forward(p, pr, who[i] % 2) == 0)
                continue;
            /* closed or failed (POLLHUP/POLLERR, or EOF): when held, keep
             * the other side's bytes waiting only while the peer is open */
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                close_pair(pr);
        }
    }
    return NULL;
}

tp_proxy *tp_start(const char *target_sock, const char *dir)
{
    static int seq;
    struct sockaddr_un a;
    tp_proxy *p = calloc(1, sizeof *p);
    int i;
    if (!p)
        return NULL;
    for (i = 0; i < MAX_PAIRS; i++)
        p->pairs[i].fd[0] = p->pairs[i].fd[1] = -1;
    snprintf(p->target, sizeof p->target, "%s", target_sock);
    snprintf(p->path, sizeof p->path, "%s/proxy-%d-%d.sock", dir, (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_SEQ_CST));
    snprintf(p->url, sizeof p->url, "unix://%s", p->path);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(p->path) >= sizeof a.sun_path)
        goto fail;
    memcpy(a.sun_path, p->path, strlen(p->path));
    unlink(p->path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(p->lfd, 512) < 0 || pipe(p->wake) < 0)
        goto fail;
    fcntl(p->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(p->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(p->wake[1], F_SETFD, FD_CLOEXEC);
    if (pthread_create(&p->thread, NULL, run, p))
        goto fail;
    return p;
fail:
    if (p->lfd > 0)
        close(p->lfd);
    free(p);
    return NULL;
}

const char *tp_url(const tp_proxy *p)
{
    return p->url;
}

void tp_set_mode(tp_proxy *p, enum tp_mode mode)
{
    __atomic_store_n(&p->mode, (int)mode, __ATOMIC_SEQ_CST);
    if (write(p->wake[1], "", 1) < 0) {
        /* the thread also wakes every second */
    }
}

void tp_refuse_new(tp_proxy *p, int on)
{
    __atomic_store_n(&p->refuse_new, on, __ATOMIC_SEQ_CST);
}

unsigned long long tp_reply_bytes(tp_proxy *p)
{
    return __atomic_load_n(&p->reply_bytes, __ATOMIC_RELAXED);
}

void tp_stop(tp_proxy *p)
{
    int i;
    if (!p)
        return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_SEQ_CST);
    tp_set_mode(p, TP_DROP);
    pthread_join(p->thread, NULL);
    for (i = 0; i < MAX_PAIRS; i++)
        close_pair(&p->pairs[i]);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    unlink(p->path);
    free(p);
}
