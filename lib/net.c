/* Sockets: non-blocking connect with a deadline, waits that survive EINTR. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll(); NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Linux lets a poll() timeout run late by its "slack", to batch timer
 * wake-ups: 0.1% of the timeout (0.5% for a thread with nice > 0), at
 * least the thread's timer slack (50 us by default), at most 100 ms.  A
 * wait of 1 s thus ended about 1 ms late (measured: 1.03-1.09 ms), which
 * was most of the delay between a crashed holder's expiry and its waiter
 * holding the lock (issue 27).  So a wait is polled in slices: up to
 * SHORT_US, the time left, whose slack is at most the timer slack;
 * beyond, 127/128 of it, whose slack (at most 0.5%) ends it before the
 * deadline, and then the rest: one more wake-up (two from 1.28 s on,
 * three from 164 s on) for a deadline kept to about 50 us. */
#define SHORT_US 10000

int64_t redislock__poll_slice(int64_t left_us)
{
    return left_us <= SHORT_US ? left_us : left_us - left_us / 128;
}

int redislock__poll(struct pollfd *p, unsigned long n, int64_t deadline)
{
    struct timespec ts;
    if (deadline == REDISLOCK__NEVER)
        return ppoll(p, (nfds_t)n, NULL, NULL);
    for (;;) {
        int64_t left = deadline - redislock__now_us(), slice;
        int r;
        if (left < 0)
            left = 0;
        slice = redislock__poll_slice(left);
        ts.tv_sec = (time_t)(slice / 1000000);
        ts.tv_nsec = (long)(slice % 1000000) * 1000;
        r = ppoll(p, (nfds_t)n, &ts, NULL);
        if (r != 0 || slice == left)
            return r; /* ready, an error (EINTR too), or the deadline */
    }
}

int redislock__net_wait(int fd, short events, int64_t deadline)
{
    struct pollfd p;
    for (;;) {
        int n;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        n = redislock__poll(&p, 1, deadline);
        if (n > 0)
            return 1;
        if (n == 0) {
            if (redislock__now_us() < deadline)
                continue; /* woke early */
            return 0;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* Connect fd to addr by the deadline.  0, or -1 with errno set. */
static int connect_fd(int fd, const struct sockaddr *addr, socklen_t len,
                      int64_t deadline)
{
    int err = 0;
    socklen_t elen = sizeof err;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN)
        return -1;
    switch (redislock__net_wait(fd, POLLOUT, deadline)) {
    case 0:
        errno = ETIMEDOUT;
        return -1;
    case -1:
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

static int connect_unix(const redislock__endpoint *ep, int64_t deadline,
                        int *fd_out)
{
    struct sockaddr_un sa;
    int fd;
    size_t n = strlen(ep->host);
    if (n >= sizeof sa.sun_path)
        return redislock__err(REDISLOCK_EINVAL,
                              "redis %s: socket path longer than %zu bytes",
                              ep->addr, sizeof sa.sun_path - 1);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ep->host, n);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return redislock__err(REDISLOCK_EIO, "redis %s: socket: %s", ep->addr,
                              strerror(errno));
    if (connect_fd(fd, (struct sockaddr *)&sa, sizeof sa, deadline) < 0) {
        int e = errno;
        close(fd);
        return redislock__err(REDISLOCK_EIO, "redis %s: connect: %s", ep->addr,
                              e == EAGAIN ? "server backlog full"
                                          : strerror(e));
    }
    *fd_out = fd;
    return 0;
}

static int connect_tcp(const redislock__endpoint *ep, int64_t deadline,
                       int *fd_out)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc, fd = -1, err = 0, one = 1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", ep->port);
    rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0)
        return redislock__err(REDISLOCK_EIO, "redis %s: cannot resolve host: %s",
                              ep->addr, gai_strerror(rc));
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
        if (err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return redislock__err(REDISLOCK_EIO, "redis %s: connect: %s", ep->addr,
                              err == ETIMEDOUT ? "timed out" : strerror(err));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    *fd_out = fd;
    return 0;
}

int redislock__net_connect(const redislock__endpoint *ep, int64_t deadline,
                           int *fd_out)
{
    return ep->is_unix ? connect_unix(ep, deadline, fd_out)
                       : connect_tcp(ep, deadline, fd_out);
}

int redislock__net_probe_resp(const redislock__endpoint *ep, int64_t deadline)
{
    static const char resp_types[] = "+-:$*_#,(!=%~>|"; /* RESP2 and RESP3 */
    char ch;
    ssize_t r;
    int fd = -1, w;
    if (redislock__net_connect(ep, deadline, &fd))
        return -1;
    if (send(fd, "PING\r\n", 6, MSG_NOSIGNAL) != 6) {
        close(fd);
        return -1;
    }
    for (;;) {
        w = redislock__net_wait(fd, POLLIN, deadline);
        if (w <= 0)
            break;
        r = recv(fd, &ch, 1, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        close(fd);
        if (r == 1)
            return ch && strchr(resp_types, ch) ? 1 : 0;
        return r == 0 || errno == ECONNRESET ? 0 : -1;
    }
    close(fd);
    return -1;
}

int redislock__net_idle(int fd)
{
    struct pollfd p;
    int n;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    do
        n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    return n == 0;
}

int redislock__net_wait2(int fd1, int fd2, short events, int64_t deadline)
{
    struct pollfd p[2];
    nfds_t n = 0;
    int r;
    if (fd1 >= 0)
        p[n].fd = fd1, p[n].events = events, p[n++].revents = 0;
    if (fd2 >= 0)
        p[n].fd = fd2, p[n].events = events, p[n++].revents = 0;
    for (;;) {
        if (redislock__now_us() >= deadline)
            return 0;
        r = redislock__poll(p, n, deadline);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}
