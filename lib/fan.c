/* Fan-out: the same script calls on every master at once.
 *
 * Each master's calls are queued on its connection and sent without
 * blocking; then one poll() loop over all the sockets collects the replies
 * as they come, until each master has answered or the deadline passes.  A
 * hung master therefore costs the deadline once, not once per master.  Calls
 * that meet NOSCRIPT are resent as EVAL in a second parallel step, after the
 * first drained, so that replies stay in order.  With one master this is the
 * plain pipeline on one connection. */
#include "internal.h"

#include <errno.h>
#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

static void fail(redislock__fanout *f, size_t i, int rc)
{
    f->rc[i] = rc;
    snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
    if (f->conns[i])
        f->conns[i]->broken = 1;
}

/* Collect want[i] replies from each master i into the reply slots listed in
 * map[i * k ...], until all came or the deadline passed. */
static void collect(redislock__fanout *f, const size_t *map, const size_t *want,
                    int64_t deadline)
{
    struct pollfd pfd[REDISLOCK__MAX_MASTERS];
    size_t idx[REDISLOCK__MAX_MASTERS], got[REDISLOCK__MAX_MASTERS], i, np;
    size_t k = f->k;
    int last = 0;
    memset(got, 0, sizeof got);
    for (;;) {
        int ms, r;
        np = 0;
        for (i = 0; i < f->n; i++) {
            redislock__conn *c = f->conns[i];
            if (f->rc[i] || got[i] == want[i])
                continue;
            pfd[np].fd = c->fd;
            pfd[np].events = POLLIN | (c->opos < c->olen ? POLLOUT : 0);
            pfd[np].revents = 0;
            idx[np++] = i;
        }
        if (np == 0)
            return;
        if (last)
            break;
        /* Past the deadline, still take what has arrived (one pass without
         * waiting): a thread that was not scheduled in time must not call a
         * reply lost that is sitting in its socket. */
        ms = redislock__poll_ms(deadline);
        last = ms == 0;
        r = poll(pfd, (nfds_t)np, ms);
        if (r < 0 && errno == EINTR) {
            last = 0; /* a signal: the deadline still holds */
            continue;
        }
        if (r < 0) {
            for (i = 0; i < np; i++)
                fail(f, idx[i], redislock__conn_io_error(f->conns[idx[i]], errno, "poll"));
            return;
        }
        for (i = 0; i < np; i++) {
            size_t m = idx[i];
            redislock__conn *c = f->conns[m];
            int rc = 0;
            if (!pfd[i].revents)
                continue;
            if ((pfd[i].revents & POLLOUT) && (rc = redislock__conn_flush_nb(c)) < 0) {
                fail(f, m, rc);
                continue;
            }
            while (got[m] < want[m]) {
                redisReply *rep = NULL;
                rc = redislock__conn_read_nb(c, &rep);
                if (rc <= 0)
                    break;
                f->replies[m * k + map[m * k + got[m]++]] = rep;
            }
            if (rc < 0)
                fail(f, m, rc);
        }
    }
    for (i = 0; i < f->n; i++)
        if (!f->rc[i] && got[i] < want[i])
            fail(f, i,
                 redislock__err(REDISLOCK_ETIMEDOUT, "redis %s: no reply in time",
                                f->conns[i]->m->ep.addr));
}

/* Queue calls on master i (EVAL instead of EVALSHA when eval) and send what
 * the socket takes. */
static void send_calls(redislock__fanout *f, size_t i, redislock__call *const *calls,
                       const size_t *which, size_t n, int eval)
{
    size_t j;
    int rc = 0;
    for (j = 0; j < n && !rc; j++)
        rc = eval ? redislock__call_append_eval(f->conns[i], calls[which[j]])
                  : redislock__call_append(f->conns[i], calls[which[j]]);
    if (!rc && (rc = redislock__conn_flush_nb(f->conns[i])) > 0)
        rc = 0;
    if (rc)
        fail(f, i, rc);
}

void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline)
{
    size_t want[REDISLOCK__MAX_MASTERS] = { 0 }, i, j, k = f->k;
    int64_t window = deadline - redislock__now_us();
    int redo = 0;

    for (i = 0; i < f->n; i++) {
        for (j = 0; j < k; j++)
            f->map[i * k + j] = j;
        want[i] = 0;
        if (f->rc[i])
            continue;
        if (!f->conns[i]) {
            f->rc[i] = REDISLOCK_EIO;
            snprintf(f->err[i], sizeof f->err[i], "not connected");
            continue;
        }
        send_calls(f, i, calls, f->map + i * k, k, 0);
        want[i] = f->rc[i] ? 0 : k;
    }
    collect(f, f->map, want, deadline);

    /* NOSCRIPT (a new or flushed script cache): resend those as EVAL */
    for (i = 0; i < f->n; i++) {
        want[i] = 0;
        if (f->rc[i])
            continue;
        for (j = 0; j < k; j++) {
            redisReply **r = &f->replies[i * k + j];
            if (!redislock__is_noscript(*r))
                continue;
            freeReplyObject(*r);
            *r = NULL;
            f->map[i * k + want[i]++] = j;
        }
        if (want[i]) {
            redislock__log(f->conns[i]->m->client, REDISLOCK_LOG_INFO,
                           "redis %s: loading the %s script",
                           f->conns[i]->m->ep.addr, calls[f->map[i * k]]->script->name);
            send_calls(f, i, calls, f->map + i * k, want[i], 1);
            if (f->rc[i])
                want[i] = 0;
            redo = 1;
        }
    }
    if (redo)
        collect(f, f->map, want, redislock__now_us() + (window > 0 ? window : 0));
}

void redislock__fan_connect(redislock__fanout *f, redislock_client *c,
                            int64_t deadline)
{
    size_t i;
    for (i = 0; i < f->n; i++) {
        int rc;
        if (f->conns[i] || f->rc[i])
            continue;
        if ((rc = redislock__pool_get(&c->masters[i], deadline, &f->conns[i])))
            fail(f, i, rc);
    }
}

void redislock__fan_put(redislock__fanout *f)
{
    size_t i;
    for (i = 0; i < f->n; i++) {
        redislock__pool_put(f->conns[i]);
        f->conns[i] = NULL;
    }
}

int redislock__fan_once(redislock__fanout *f, redislock_client *c,
                        redislock__call *call)
{
    int rc = redislock__fan_init(f, c->nmasters, 1);
    if (rc)
        return rc;
    /* with one master the connect and command timeouts apply; in majority
     * mode each step is bounded by the per-master timeout, so one hung
     * master costs that once */
    redislock__fan_connect(f, c, redislock__step_deadline(c, 1, REDISLOCK__NEVER));
    redislock__fan_calls(f, &call, redislock__step_deadline(c, 0, REDISLOCK__NEVER));
    return 0;
}

int redislock__fan_init(redislock__fanout *f, size_t n, size_t k)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->k = k ? k : 1;
    f->replies = redislock__calloc(n * f->k, sizeof *f->replies);
    f->map = redislock__calloc(n * f->k, sizeof *f->map);
    if (!f->replies || !f->map) {
        redislock__free(f->replies);
        redislock__free(f->map);
        f->replies = NULL;
        f->map = NULL;
        return redislock__err(REDISLOCK_ENOMEM, "out of memory");
    }
    return 0;
}

void redislock__fan_reset(redislock__fanout *f)
{
    size_t i;
    for (i = 0; i < f->n * f->k; i++)
        if (f->replies[i]) {
            freeReplyObject(f->replies[i]);
            f->replies[i] = NULL;
        }
    for (i = 0; i < f->n; i++) {
        f->rc[i] = 0;
        f->err[i][0] = '\0';
    }
}

void redislock__fan_free(redislock__fanout *f)
{
    redislock__fan_put(f);
    if (!f->replies)
        return;
    redislock__fan_reset(f);
    redislock__free(f->replies);
    redislock__free(f->map);
    f->replies = NULL;
    f->map = NULL;
}
