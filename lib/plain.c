/* The plain transport: a TCP or unix socket of our own (non-blocking,
 * close-on-exec, TCP_NODELAY), written with MSG_NOSIGNAL so that no SIGPIPE
 * ever reaches the host process. */
#include "internal.h"

#include <sys/socket.h>
#include <unistd.h>

static int plain_open(redislock__conn *c, int64_t deadline)
{
    return redislock__net_connect(&c->m->ep, deadline, &c->fd);
}

static ssize_t plain_send(redislock__conn *c, const char *buf, size_t len)
{
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t plain_recv(redislock__conn *c, char *buf, size_t len)
{
    return recv(c->fd, buf, len, 0);
}

static short plain_events(const redislock__conn *c, short want)
{
    (void)c;
    return want;
}

static int plain_pending(const redislock__conn *c)
{
    (void)c;
    return 0;
}

static int plain_alive(redislock__conn *c)
{
    return redislock__net_idle(c->fd);
}

static void plain_close(redislock__conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

const redislock__transport redislock__transport_plain = {
    "plain", plain_open, plain_send, plain_recv, plain_events,
    plain_pending, plain_alive, plain_close,
};
