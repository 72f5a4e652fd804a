/* The one I/O loop over a set of connections, one per master (the libuv
 * model: one poll(), many small reply handlers).  fan.c collects script
 * replies with it, wait.c the CLIENT ID / BLPOP / CLIENT UNBLOCK replies of
 * a wait. */
#include "internal.h"

#include <errno.h>
#include <hiredis.h>
#include <poll.h>
#include <stdio.h>

void redislock__fan_fail(redislock__fanout *f, size_t i, int rc)
{
    f->rc[i] = rc;
    snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
    if (f->conns[i])
        f->conns[i]->broken = 1;
}

void redislock__fan_reply_fail(redislock__fanout *f, size_t i,
                               const struct redisReply *r, const char *what)
{
    f->rc[i] = redislock__conn_reply_error(f->conns[i], r, what);
    snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
}

int redislock__fan_wait_for(const redislock__fanout *f, size_t i)
{
    const redislock__conn *c = f->conns[i];
    return f->wait && c && c->m->member ? c->m->member->min_replicas : 0;
}

int redislock__fan_append_wait(redislock__fanout *f, size_t i)
{
    char n[16], ms[24];
    int want = redislock__fan_wait_for(f, i);
    f->acks_wanted[i] = want;
    if (!want)
        return 0;
    snprintf(n, sizeof n, "%d", want);
    snprintf(ms, sizeof ms, "%d", f->conns[i]->m->member->wait_ms);
    return redislock__conn_appendv(f->conns[i], "WAIT", n, ms, (const char *)NULL);
}

void redislock__fan_take_ack(redislock__fanout *f, size_t i, struct redisReply *r)
{
    f->acks[i] = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r->type == REDIS_REPLY_ERROR)
        redislock__log(f->conns[i]->m->client, REDISLOCK_LOG_WARN, "redis %s: WAIT: %s",
                       f->conns[i]->m->ep.addr, r->str);
    freeReplyObject(r);
}

int redislock__fan_unacked(const redislock__fanout *f, size_t i)
{
    return f->acks_wanted[i] > 0 && f->acks[i] < f->acks_wanted[i];
}

void redislock__fan_fail_unacked(redislock__fanout *f, size_t i)
{
    const redislock__conn *c = f->conns[i];
    f->rc[i] = redislock__err(REDISLOCK_ENOREPLICAS,
                              "redis %s: %lld of %d replicas acknowledged the write "
                              "within %d ms (min_replicas)",
                              c ? c->m->ep.addr : "?", f->acks[i] < 0 ? 0 : f->acks[i],
                              f->acks_wanted[i], c ? c->m->member->wait_ms : 0);
    snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
}

/* The masters to poll now; pend[j] when one has bytes buffered already
 * (then *ready: poll only looks, without waiting). */
static size_t gather(redislock__fanout *f, const redislock__pump_ops *ops, void *ctx,
                     struct pollfd *pfd, size_t *idx, int *pend, int *ready)
{
    size_t i, np = 0;
    *ready = 0;
    for (i = 0; i < f->n; i++) {
        redislock__conn *c = f->conns[i];
        if (!c || f->rc[i] || !ops->wants(ctx, i))
            continue;
        pfd[np].fd = c->fd;
        pfd[np].events = redislock__conn_events(c);
        pfd[np].revents = 0;
        pend[np] = redislock__conn_pending(c);
        *ready |= pend[np];
        idx[np++] = i;
    }
    return np;
}

/* Send and read on master m's connection after poll() said revents. */
static void serve(redislock__fanout *f, size_t m, short revents,
                  const redislock__pump_ops *ops, void *ctx)
{
    redislock__conn *c = f->conns[m];
    int rc = 0;
    if ((revents & POLLOUT) && (rc = redislock__conn_flush_nb(c)) < 0) {
        redislock__fan_fail(f, m, rc);
        return;
    }
    while (!f->rc[m] && ops->wants(ctx, m)) {
        struct redisReply *rep = NULL;
        rc = redislock__conn_read_nb(c, &rep);
        if (rc <= 0)
            break;
        ops->on_reply(ctx, m, rep);
    }
    if (rc < 0)
        redislock__fan_fail(f, m, rc);
}

/* The stop fds go after the connections' (not counted in np). */
static size_t add_stops(const redislock__fanout *f, struct pollfd *pfd, size_t np)
{
    size_t i, ns = 0;
    for (i = 0; i < 2; i++)
        if (f->stop_fd[i] >= 0) {
            pfd[np + ns].fd = f->stop_fd[i];
            pfd[np + ns].events = POLLIN;
            pfd[np + ns].revents = 0;
            ns++;
        }
    return ns;
}

void redislock__pump(redislock__fanout *f, int64_t deadline,
                     const redislock__pump_ops *ops, void *ctx)
{
    struct pollfd pfd[REDISLOCK__MAX_MASTERS + 2];
    size_t idx[REDISLOCK__MAX_MASTERS], i, np, ns;
    int pend[REDISLOCK__MAX_MASTERS], last = 0, ready;
    for (;;) {
        int r;
        if (ops->done && ops->done(ctx))
            return;
        np = gather(f, ops, ctx, pfd, idx, pend, &ready);
        if (np == 0 || last)
            return;
        ns = add_stops(f, pfd, np);
        /* past the deadline: one more pass for what has already arrived */
        last = !ready && redislock__now_us() >= deadline;
        r = redislock__poll(pfd, np + ns, ready ? 0 : deadline);
        if (r < 0 && errno == EINTR) {
            last = 0; /* a signal: the wait and its deadline go on */
            continue;
        }
        if (r < 0) {
            int e = errno;
            for (i = 0; i < np; i++)
                redislock__fan_fail(f, idx[i],
                                    redislock__conn_io_error(f->conns[idx[i]], e, "poll"));
            return;
        }
        for (i = np; i < np + ns; i++)
            if (pfd[i].revents && (!f->stop_check || f->stop_check(f->stop_ctx))) {
                f->stopped = 1; /* a cancel: the caller ends the wait */
                return;
            }
        for (i = 0; i < np; i++)
            if (pfd[i].revents || pend[i])
                serve(f, idx[i], (short)(pfd[i].revents | (pend[i] ? POLLIN : 0)), ops,
                      ctx);
    }
}
