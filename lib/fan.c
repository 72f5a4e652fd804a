/* Fan-out: the same script calls on every master at once.
 *
 * Each master's calls are queued on its connection and sent without
 * blocking; then the pump (pump.c) collects the replies as they come, until
 * each master has answered or the deadline passes.  A
 * hung master therefore costs the deadline once, not once per master.  A
 * call that meets NOSCRIPT (an empty script cache: a restart, a failover,
 * SCRIPT FLUSH) is resent as EVAL on that connection the moment its reply
 * comes, behind the calls still in flight there, so that replies stay in
 * order and no master waits for the slowest one.  With one master this is
 * the plain pipeline on one connection. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* Collecting: master i owes want[i] replies, to the calls listed in order
 * in f->map[i * 2k ...]: its k calls, then those resent as EVAL. */
typedef struct collector {
    redislock__fanout *f;
    redislock__call *const *calls;
    size_t want[REDISLOCK__MAX_MASTERS], got[REDISLOCK__MAX_MASTERS];
    int loading[REDISLOCK__MAX_MASTERS]; /* logged "loading" for master i */
} collector;

static int collect_wants(void *ctx, size_t i)
{
    const collector *co = ctx;
    return co->got[i] < co->want[i];
}

/* Queue master i's k calls and send what the socket takes (the pump sends
 * the rest); a failure fails the master. */
static void send_calls(redislock__fanout *f, size_t i, redislock__call *const *calls)
{
    size_t j;
    int rc = 0;
    for (j = 0; j < f->k && !rc; j++)
        rc = redislock__call_append(f->conns[i], calls[j]);
    if (!rc && (rc = redislock__conn_flush_nb(f->conns[i])) > 0)
        rc = 0;
    if (rc)
        redislock__fan_fail(f, i, rc);
}

static void collect_reply(void *ctx, size_t i, struct redisReply *r)
{
    collector *co = ctx;
    redislock__fanout *f = co->f;
    size_t k = f->k, *order = f->map + i * 2 * k, pos = co->got[i]++, j = order[pos];
    int rc;
    if (pos < k && redislock__is_noscript(r)) {
        freeReplyObject(r);
        if (!co->loading[i]++)
            redislock__log(f->conns[i]->m->client, REDISLOCK_LOG_INFO,
                           "redis %s: loading the %s script", f->conns[i]->m->ep.addr,
                           co->calls[j]->script->name);
        order[co->want[i]++] = j;
        /* sent by the pump as the socket takes it */
        if ((rc = redislock__call_append_eval(f->conns[i], co->calls[j])))
            redislock__fan_fail(f, i, rc);
        return;
    }
    f->replies[i * k + j] = r;
}

static const redislock__pump_ops collect_ops = { collect_wants, collect_reply, NULL };

void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline)
{
    collector co;
    size_t i, j, k = f->k;

    memset(&co, 0, sizeof co);
    co.f = f;
    co.calls = calls;
    for (i = 0; i < f->n; i++) {
        for (j = 0; j < k; j++)
            f->map[i * 2 * k + j] = j;
        if (f->rc[i])
            continue;
        if (!f->conns[i]) {
            f->rc[i] = REDISLOCK_EIO;
            snprintf(f->err[i], sizeof f->err[i], "not connected");
            continue;
        }
        send_calls(f, i, calls);
        co.want[i] = f->rc[i] ? 0 : k;
    }
    redislock__pump(f, deadline, &collect_ops, &co);
    for (i = 0; i < f->n; i++)
        if (!f->rc[i] && co.got[i] < co.want[i])
            redislock__fan_fail(f, i,
                                redislock__err(REDISLOCK_ETIMEDOUT,
                                               "redis %s: no reply in time",
                                               f->conns[i]->m->ep.addr));
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
            redislock__fan_fail(f, i, rc);
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
    f->stop_fd[0] = f->stop_fd[1] = -1;
    f->replies = redislock__calloc(n * f->k, sizeof *f->replies);
    f->map = redislock__calloc(n * 2 * f->k, sizeof *f->map);
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

const char *redislock__fan_summary(const redislock__fanout *f, char *buf, size_t len)
{
    size_t i, o = 0, failed = 0;
    buf[0] = '\0';
    for (i = 0; i < f->n; i++) {
        int n;
        if (!f->rc[i])
            continue;
        if (failed++ == 2) {
            snprintf(buf + o, len - o, "; ...");
            break;
        }
        n = snprintf(buf + o, len - o, "%s%s", o ? "; " : "", f->err[i]);
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
    return buf;
}
