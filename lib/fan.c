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
 * pipeline on one connection.
 *
 * One call per master (k == 1) also follows the topology (follow_moves): a
 * reply that says the key's node moved (a failover, a cluster's -MOVED)
 * sends the call again to the node the topology names now; a cluster's
 * -ASK sends it once to the node named, behind ASKING, in the same round
 * trip; -TRYAGAIN (a slot in migration) and -CLUSTERDOWN are retried on
 * a back-off, all within the caller's deadline. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* Redirects (moves, ASK) followed per master and call, at most: beyond
 * that it is a loop. */
#define MAX_REDIRECTS 16
/* TRYAGAIN back-off steps (ms), jittered; CLUSTERDOWN's step. */
static const int tryagain_ms[] = { 2, 5, 10, 20, 50 };
#define CLUSTERDOWN_MS 100

/* What a reply in a master's order is: a call's index, WAIT's, or
 * ASKING's (a cluster's -ASK: in front of each command it covers). */
#define WAIT_SLOT ((size_t)-1)
#define ASKING_SLOT ((size_t)-2)

/* The slots of f->map per master: ASKING, its k calls and a WAIT, then
 * for every call resent as EVAL an ASKING, the call and a WAIT. */
static size_t stride(const redislock__fanout *f)
{
    return 4 * f->k + 2;
}

/* Collecting: master i owes want[i] replies, in the order listed in
 * f->map[i * stride ...] (call indexes, WAIT_SLOT for WAIT's acks,
 * ASKING_SLOT for ASKING's +OK). */
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
 * connection (the pump sends it), behind ASKING when the call went to a
 * node an -ASK named, and WAIT behind it if the write must reach replicas;
 * all join the master's order. */
static void resend(collector *co, size_t i, size_t j)
{
    redislock__fanout *f = co->f;
    size_t *order = f->map + i * stride(f);
    int rc = 0;
    if (!co->loading[i]++)
        redislock__log(f->conns[i]->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: loading the %s script", f->conns[i]->m->ep.addr,
                       co->calls[j]->script->name);
    if (f->asking[i]) {
        order[co->want[i]++] = ASKING_SLOT;
        rc = redislock__conn_appendv(f->conns[i], "ASKING", (const char *)NULL);
    }
    order[co->want[i]++] = j;
    if (rc || (rc = redislock__call_append_eval(f->conns[i], co->calls[j])) ||
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
    if (j == ASKING_SLOT) { /* +OK (an error shows in the call's reply) */
        freeReplyObject(r);
        return;
    }
    if (j == WAIT_SLOT) {
        redislock__fan_take_ack(f, i, r);
        return;
    }
    if (redislock__is_noscript(r) && !f->replies[i * f->k + j] &&
        co->loading[i] < (int)f->k) {
        freeReplyObject(r);
        resend(co, i, j);
        return;
    }
    f->replies[i * f->k + j] = r;
}

static const redislock__pump_ops collect_ops = { collect_wants, collect_reply, NULL };

/* Queue master i's k calls (behind ASKING after an -ASK), WAIT behind them
 * when the write must reach replicas, and send what the socket takes: the
 * number of replies owed (their kinds in order[]), or 0 when that failed
 * the master. */
static size_t send_calls(redislock__fanout *f, size_t i, redislock__call *const *calls,
                         size_t *order)
{
    size_t j, n = 0;
    int rc = 0;
    if (f->asking[i]) { /* a cluster's -ASK: this once, on the node it named */
        rc = redislock__conn_appendv(f->conns[i], "ASKING", (const char *)NULL);
        order[n++] = ASKING_SLOT;
    }
    for (j = 0; j < f->k && !rc; j++) {
        rc = redislock__call_append(f->conns[i], calls[j]);
        order[n++] = j;
    }
    if (!rc)
        rc = redislock__fan_append_wait(f, i);
    if (!rc && f->acks_wanted[i])
        order[n++] = WAIT_SLOT;
    if (!rc && (rc = redislock__conn_flush_nb(f->conns[i])) > 0)
        rc = 0;
    if (rc) {
        redislock__fan_fail(f, i, rc);
        return 0;
    }
    return n;
}

/* Send the k calls to the masters of mask (all with rc 0 when NULL) and
 * collect their replies by the deadline. */
static void send_all(redislock__fanout *f, redislock__call *const *calls, const int *mask,
                     int64_t deadline)
{
    collector co;
    size_t i;
    memset(&co, 0, sizeof co);
    co.f = f;
    co.calls = calls;
    for (i = 0; i < f->n; i++) {
        if (f->rc[i] || (mask && !mask[i]))
            continue;
        if (!f->conns[i]) {
            f->rc[i] = REDISLOCK_EIO;
            snprintf(f->err[i], sizeof f->err[i], "not connected");
            continue;
        }
        co.want[i] = send_calls(f, i, calls, f->map + i * stride(f));
    }
    redislock__pump(f, deadline, &collect_ops, &co);
    for (i = 0; i < f->n; i++)
        if (!f->rc[i] && co.got[i] < co.want[i])
            redislock__fan_fail(f, i,
                                redislock__err(REDISLOCK_ETIMEDOUT,
                                               "redis %s: no reply in time",
                                               f->conns[i]->m->ep.addr));
}

/* The state of follow_moves() for one call. */
typedef struct follow {
    int64_t limit;            /* TRYAGAIN and CLUSTERDOWN end by then */
    int64_t pause_us;         /* before the next resend */
    int moves;                /* rounds with a move (the pause doubles) */
    int redirects[REDISLOCK__MAX_MASTERS];
    int tries[REDISLOCK__MAX_MASTERS]; /* TRYAGAIN/CLUSTERDOWN back-offs */
    int64_t since[REDISLOCK__MAX_MASTERS]; /* the first of them */
    int last[REDISLOCK__MAX_MASTERS];      /* the last class backed off */
    int cls[REDISLOCK__MAX_MASTERS];       /* the last reply's class */
    char text[REDISLOCK__MAX_MASTERS][160]; /* the last reply followed */
} follow;

/* Master i's reply slot emptied for a resend. */
static void clear_reply(redislock__fanout *f, size_t i)
{
    freeReplyObject(f->replies[i]);
    f->replies[i] = NULL;
    f->acks[i] = -1;
}

/* Master i's call is sent elsewhere: its connection goes back (closed
 * when broken), and the topology is asked again (fan_connect). */
static void reroute(redislock__fanout *f, size_t i)
{
    redislock__pool_put(f->conns[i]);
    f->conns[i] = NULL;
    f->asking[i] = 0;
}

/* -ASK on master i: the call goes once to the node named, behind ASKING. */
static int follow_ask(redislock__fanout *f, size_t i, int64_t deadline)
{
    redislock__master *to = NULL;
    int rc = redislock__topo_ask(f->conns[i], f->replies[i], &to);
    clear_reply(f, i);
    reroute(f, i);
    if (!rc)
        rc = redislock__pool_get(to, redislock__step_deadline(to->client, 1, deadline),
                                 &f->conns[i]);
    if (rc) {
        redislock__fan_fail(f, i, rc);
        return 0;
    }
    f->asking[i] = 1;
    return 1;
}

/* Master i gave up on TRYAGAIN (EIO; f->ran_out set when the limit was
 * f->retry_until) or CLUSTERDOWN (ECLUSTERDOWN): the last such reply, and
 * for how long. */
static void backoff_fail(redislock__fanout *f, size_t i, const follow *st, int64_t now)
{
    const char *addr = f->conns[i] ? f->conns[i]->m->ep.addr : redislock__topo_name(f->client, i);
    int tryagain = st->last[i] == REDISLOCK__TOPO_TRYAGAIN;
    f->ran_out[i] = tryagain && f->retry_until;
    redislock__fan_fail(f, i, redislock__err(tryagain ? REDISLOCK_EIO : REDISLOCK_ECLUSTERDOWN,
                                             "redis %s: %s (still after %lld ms)", addr,
                                             st->text[i],
                                             (long long)((now - st->since[i]) / 1000)));
}

/* Master i's call was to be sent again but the limit has passed (the
 * pause before the resend ended after it): after a TRYAGAIN or a
 * CLUSTERDOWN as backoff_fail() says; after a redirect EIO, with
 * f->ran_out set when the limit was f->retry_until (a release's lock
 * validity): the call did not run there. */
static void limit_fail(redislock__fanout *f, size_t i, const follow *st)
{
    if (st->cls[i] == REDISLOCK__TOPO_TRYAGAIN || st->cls[i] == REDISLOCK__TOPO_CLUSTERDOWN) {
        backoff_fail(f, i, st, redislock__now_us());
        return;
    }
    f->ran_out[i] = f->retry_until != 0;
    redislock__fan_fail(f, i, redislock__err(REDISLOCK_EIO, "%s: no time left to send the "
                                             "call again (the last reply: %s)",
                                             redislock__topo_name(f->client, i), st->text[i]));
}

/* TRYAGAIN or CLUSTERDOWN on master i: 1 to retry after a back-off (in
 * st->pause_us), 0 when the next try would come after st->limit (the
 * master fails: EIO, or ECLUSTERDOWN; see backoff_fail). */
static int follow_backoff(redislock__fanout *f, size_t i, int cls, follow *st)
{
    int n = st->tries[i]++;
    int base = cls == REDISLOCK__TOPO_CLUSTERDOWN ? CLUSTERDOWN_MS
               : tryagain_ms[n < 4 ? n : 4];
    /* half to all of the step: never longer than it */
    int64_t us = (int64_t)base * 500 + redislock__random_u32() % ((uint32_t)base * 500 + 1);
    int64_t now = redislock__now_us();
    if (!n)
        st->since[i] = now;
    st->last[i] = cls;
    if (now + us < st->limit) {
        if (us > st->pause_us)
            st->pause_us = us;
        clear_reply(f, i);
        if (cls == REDISLOCK__TOPO_CLUSTERDOWN)
            reroute(f, i); /* the map may have changed */
        return 1;
    }
    backoff_fail(f, i, st, now);
    return 0;
}

/* What master i's reply asks for: 1 to send the call again. */
static int follow_one(redislock__fanout *f, size_t i, follow *st, int64_t deadline)
{
    int cls = redislock__topo_reply(f->conns[i], f->replies[i]);
    if (cls == REDISLOCK__TOPO_NONE)
        return 0;
    st->cls[i] = cls;
    redislock__printable(f->replies[i]->str, f->replies[i]->len > 100 ? 100 : f->replies[i]->len,
                         st->text[i], sizeof st->text[i]);
    if (cls != REDISLOCK__TOPO_TRYAGAIN && cls != REDISLOCK__TOPO_CLUSTERDOWN &&
        ++st->redirects[i] > MAX_REDIRECTS) {
        redislock__fan_fail(f, i, redislock__err(REDISLOCK_EPROTO, "redis %s: a redirect "
                                                 "loop: %d redirects, the last %s",
                                                 f->conns[i]->m->ep.addr, MAX_REDIRECTS,
                                                 st->text[i]));
        return 0;
    }
    if (cls == REDISLOCK__TOPO_ASK)
        return follow_ask(f, i, deadline);
    if (cls == REDISLOCK__TOPO_TRYAGAIN || cls == REDISLOCK__TOPO_CLUSTERDOWN)
        return follow_backoff(f, i, cls, st);
    clear_reply(f, i);
    reroute(f, i);
    return cls == REDISLOCK__TOPO_MOVED ? 2 : 1; /* a node gone: pause */
}

/* One call per master (k == 1) whose reply says the topology moved: send it
 * where the topology says now, by the deadline (or by f->retry_until when
 * set: a release retries while its lock is valid), each resend with a reply window of
 * `window`.  A pause of 10, 20, 40... ms between rounds of moves lets a
 * failover finish. */
static void follow_moves(redislock__fanout *f, redislock__call *const *calls,
                         int64_t deadline, int64_t window)
{
    int again[REDISLOCK__MAX_MASTERS] = { 0 }, any, moved, pause_ms = 0;
    follow st;
    size_t i;
    memset(&st, 0, sizeof st);
    st.limit = f->retry_until ? f->retry_until : deadline;
    while (f->client) {
        int64_t step;
        any = moved = 0;
        st.pause_us = 0;
        for (i = 0; i < f->n; i++) {
            again[i] = !f->rc[i] && f->replies[i] ? follow_one(f, i, &st, deadline) : 0;
            any |= again[i] != 0;
            moved |= again[i] == 2;
        }
        if (!any)
            return;
        if (moved && pause_ms)
            st.pause_us = redislock__min_deadline(st.pause_us > pause_ms * 1000LL
                                                      ? st.pause_us : pause_ms * 1000LL,
                                                  st.limit - redislock__now_us());
        if (moved)
            pause_ms = pause_ms ? pause_ms * 2 : 10;
        if (st.pause_us > 0)
            redislock__sleep_ms((int)((st.pause_us + 999) / 1000));
        if (redislock__now_us() >= st.limit) {
            for (i = 0; i < f->n; i++)
                if (again[i] && !f->rc[i])
                    limit_fail(f, i, &st);
            return;
        }
        step = redislock__min_deadline(st.limit, redislock__now_us() + window);
        redislock__fan_connect(f, f->client, f->key, f->keylen, step);
        send_all(f, calls, again, step);
        for (i = 0; i < f->n; i++) /* a last try without an answer by the limit */
            if (again[i] && st.tries[i] && f->rc[i] == REDISLOCK_ETIMEDOUT &&
                redislock__now_us() >= st.limit)
                backoff_fail(f, i, &st, redislock__now_us());
    }
}

void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline)
{
    int64_t window = deadline - redislock__now_us();
    size_t i;
    if (window < 0)
        window = 0;
    for (i = 0; i < f->n; i++)
        f->asking[i] = f->ran_out[i] = 0;
    send_all(f, calls, NULL, deadline);
    if (f->k == 1)
        follow_moves(f, calls, deadline, window);
    for (i = 0; i < f->n; i++)
        f->asking[i] = 0;
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
    return redislock__fan_once_until(f, c, call, key, keylen, wait, 0);
}

int redislock__fan_once_until(redislock__fanout *f, redislock_client *c,
                              redislock__call *call, const char *key, size_t keylen,
                              int wait, int64_t retry_until)
{
    int rc = redislock__fan_init(f, c->nmasters, 1);
    if (rc)
        return rc;
    f->wait = wait;
    f->retry_until = retry_until;
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
    f->map = redislock__calloc(n * (4 * f->k + 2), sizeof *f->map);
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
