/* Fan-out: the same script calls on every master at once.
 *
 * Each master's calls are queued on its connection and sent without
 * blocking; then the pump (pump.c) collects the replies as they come, until
 * each master has answered or the deadline passes.  A
 * hung master therefore costs the deadline once, not once per master.  A
 * call that meets NOSCRIPT (an empty script cache: a restart, a failover,
 * SCRIPT FLUSH) is resent as EVAL on that connection the moment its reply
 * comes, behind the calls still in flight there (and a WAIT behind it when
 * the write must reach replicas), so that replies stay in order and no
 * master waits for the slowest one.  With one master this is the plain
 * pipeline on one connection. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* A move (a failover) is followed this many times at most per call. */
#define MAX_MOVES 16

/* What a reply in a master's order is: a call's index, or WAIT's. */
#define WAIT_SLOT ((size_t)-1)

/* The slots of f->map per master: its k calls and a WAIT, then for every
 * call resent as EVAL the call and a WAIT. */
static size_t stride(const redislock__fanout *f)
{
    return 3 * f->k + 1;
}

/* Collecting: master i owes want[i] replies, in the order listed in
 * f->map[i * stride ...] (call indexes, or WAIT_SLOT for WAIT's acks). */
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

/* A NOSCRIPT reply to call j of master i: the same call as EVAL on that
 * connection (the pump sends it), and WAIT behind it if the write must
 * reach replicas; both join the master's order. */
static void resend(collector *co, size_t i, size_t j)
{
    redislock__fanout *f = co->f;
    size_t *order = f->map + i * stride(f);
    int rc;
    if (!co->loading[i]++)
        redislock__log(f->conns[i]->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: loading the %s script", f->conns[i]->m->ep.addr,
                       co->calls[j]->script->name);
    order[co->want[i]++] = j;
    if ((rc = redislock__call_append_eval(f->conns[i], co->calls[j])) ||
        (rc = redislock__fan_append_wait(f, i))) {
        redislock__fan_fail(f, i, rc);
        return;
    }
    if (f->acks_wanted[i])
        order[co->want[i]++] = WAIT_SLOT;
}

static void collect_reply(void *ctx, size_t i, struct redisReply *r)
{
    collector *co = ctx;
    redislock__fanout *f = co->f;
    size_t pos = co->got[i]++, j = f->map[i * stride(f) + pos];
    if (j == WAIT_SLOT) {
        redislock__fan_take_ack(f, i, r);
        return;
    }
    if (pos < f->k && redislock__is_noscript(r)) {
        freeReplyObject(r);
        resend(co, i, j);
        return;
    }
    f->replies[i * f->k + j] = r;
}

static const redislock__pump_ops collect_ops = { collect_wants, collect_reply, NULL };

/* Queue master i's k calls, WAIT behind them when the write must reach
 * replicas, and send what the socket takes: 0, or the error that failed
 * the master. */
static int send_calls(redislock__fanout *f, size_t i, redislock__call *const *calls)
{
    size_t j;
    int rc = 0;
    for (j = 0; j < f->k && !rc; j++)
        rc = redislock__call_append(f->conns[i], calls[j]);
    if (!rc)
        rc = redislock__fan_append_wait(f, i);
    if (!rc && (rc = redislock__conn_flush_nb(f->conns[i])) > 0)
        rc = 0;
    if (rc)
        redislock__fan_fail(f, i, rc);
    return rc;
}

/* Send the k calls to the masters of mask (all with rc 0 when NULL) and
 * collect their replies by the deadline. */
static void send_all(redislock__fanout *f, redislock__call *const *calls, const int *mask,
                     int64_t deadline)
{
    collector co;
    size_t i, j, k = f->k;
    memset(&co, 0, sizeof co);
    co.f = f;
    co.calls = calls;
    for (i = 0; i < f->n; i++) {
        size_t *order = f->map + i * stride(f);
        for (j = 0; j < k; j++)
            order[j] = j;
        order[k] = WAIT_SLOT;
        if (f->rc[i] || (mask && !mask[i]))
            continue;
        if (!f->conns[i]) {
            f->rc[i] = REDISLOCK_EIO;
            snprintf(f->err[i], sizeof f->err[i], "not connected");
            continue;
        }
        if (!send_calls(f, i, calls))
            co.want[i] = k + (f->acks_wanted[i] ? 1 : 0);
    }
    redislock__pump(f, deadline, &collect_ops, &co);
    for (i = 0; i < f->n; i++)
        if (!f->rc[i] && co.got[i] < co.want[i])
            redislock__fan_fail(f, i,
                                redislock__err(REDISLOCK_ETIMEDOUT,
                                               "redis %s: no reply in time",
                                               f->conns[i]->m->ep.addr));
}

/* One call per master (k == 1) whose reply says its node moved (a
 * failover): find the node again and send it there, up to MAX_MOVES times,
 * by the deadline.  A pause of 10, 20, 40... ms between moves lets a
 * failover finish. */
static void follow_moves(redislock__fanout *f, redislock__call *const *calls,
                         int64_t deadline)
{
    int moved[REDISLOCK__MAX_MASTERS], n, any, pause_ms = 0;
    size_t i;
    for (n = 0; n < MAX_MOVES && f->client; n++) {
        any = 0;
        for (i = 0; i < f->n; i++) {
            moved[i] = !f->rc[i] && f->replies[i] &&
                       redislock__topo_reply(f->conns[i], f->replies[i]);
            if (!moved[i])
                continue;
            any = 1;
            freeReplyObject(f->replies[i]);
            f->replies[i] = NULL;
            f->acks[i] = -1;
            redislock__pool_put(f->conns[i]); /* broken: closed */
            f->conns[i] = NULL;
        }
        if (!any || redislock__now_us() >= deadline)
            return;
        if (pause_ms)
            redislock__sleep_ms((int)redislock__min_deadline(
                pause_ms, (deadline - redislock__now_us()) / 1000));
        pause_ms = pause_ms ? pause_ms * 2 : 10;
        redislock__fan_connect(f, f->client, f->key, f->keylen, deadline);
        send_all(f, calls, moved, deadline);
    }
}

void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline)
{
    send_all(f, calls, NULL, deadline);
    if (f->k == 1)
        follow_moves(f, calls, deadline);
}

void redislock__fan_connect(redislock__fanout *f, redislock_client *c, const char *key,
                            size_t keylen, int64_t deadline)
{
    size_t i;
    f->client = c;
    f->key = key;
    f->keylen = keylen;
    for (i = 0; i < f->n; i++) {
        int rc;
        if (f->conns[i] || f->rc[i])
            continue;
        if ((rc = redislock__topo_connect(c, i, key, keylen, deadline, &f->conns[i])))
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
                        redislock__call *call, const char *key, size_t keylen, int wait)
{
    int rc = redislock__fan_init(f, c->nmasters, 1);
    if (rc)
        return rc;
    f->wait = wait;
    /* with one master the connect and command timeouts apply; in majority
     * mode each step is bounded by the per-master timeout, so one hung
     * master costs that once */
    redislock__fan_connect(f, c, key, keylen,
                           redislock__step_deadline(c, 1, REDISLOCK__NEVER));
    redislock__fan_calls(f, &call, redislock__step_deadline(c, 0, REDISLOCK__NEVER));
    return 0;
}

int redislock__fan_init(redislock__fanout *f, size_t n, size_t k)
{
    size_t i;
    memset(f, 0, sizeof *f);
    f->n = n;
    f->k = k ? k : 1;
    for (i = 0; i < REDISLOCK__MAX_MASTERS; i++)
        f->acks[i] = -1;
    f->stop_fd[0] = f->stop_fd[1] = -1;
    f->replies = redislock__calloc(n * f->k, sizeof *f->replies);
    f->map = redislock__calloc(n * (3 * f->k + 1), sizeof *f->map);
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
        f->acks[i] = -1;
        f->acks_wanted[i] = 0;
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
