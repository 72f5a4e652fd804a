/* Waiting for a wake-up: BLPOP on the signal key, on one master or on all
 * of them at once (majority mode), with a client-side timer.
 *
 * The server ends a timed-out BLPOP only when its event loop next runs
 * (Redis >= 6 from a timeout table before it sleeps; older ones at the cron
 * rate, every 100 ms with the default hz 10), so a BLPOP timeout alone can
 * wake a waiter late after the holder's expiry or the caller's deadline.
 * The client therefore times the wait itself; the server's own timeout,
 * the same length, is the fallback and sometimes comes first.  When its timer
 * fires, or when the wake-ups came, the BLPOPs still pending
 * are cancelled with CLIENT UNBLOCK <id> TIMEOUT sent from helper
 * connections.  The server handles that atomically with respect to pushes:
 * either the waiter was already served (its reply, with the wake-up, is on
 * the way and is read) or it gets the timeout reply.  No wake-up is lost:
 * the caller learns of every one it consumed.
 *
 * Majority mode: a wake-up on one master is one part of a hand-off (the
 * releaser's release reaches the masters one by one).  The wait goes on on
 * the other masters, for up to master_timeout_ms, until a quorum of the
 * acquires behind the BLPOPs granted (f->grants says which replies grant;
 * the masters still blocked are then waited for no longer than that took,
 * at least 1 ms: a stopped master does not hold up a grant) or too few are
 * left to make one.  An acquire behind a BLPOP that meets NOSCRIPT (a
 * flushed script cache) is resent as EVAL on its connection at once.
 *
 * A cancel (a stop_fd, f->stopped) waits for nothing: what has already
 * arrived is read, and the connections still owing a reply are given up
 * (closed when put back: the server drops their BLPOPs).  The caller gives
 * back what the acquires behind them may have taken.  A wake-up that the
 * server hands to such a connection in the instant it is being closed is
 * lost; the next waiter then wakes at its own timer (the holder's expiry
 * or its deadline).
 *
 * A connection's CLIENT ID is learnt by pipelining CLIENT ID in front of its
 * first BLPOP: no extra round trip.  Servers without CLIENT UNBLOCK
 * (Redis < 5, or denied by ACL) fall back to the server's own timeout. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* A BLPOP never blocks longer than the topology allows (60 s; 1 s behind
 * a Sentinel, 2 s on a cluster: a waiter parked on a master that failed
 * over is not left there even if the switch went unnoticed); the caller
 * then re-checks the lock (one script call) and waits again.  It bounds how
 * long a connection to a silently vanished server can go unnoticed. */


static void format_timeout(const redislock__master *m, int64_t wait_us,
                           char *buf, size_t len)
{
    long long ms = (long long)((wait_us + 999) / 1000);
    if (ms < 1)
        ms = 1;
    if (__atomic_load_n(&m->int_timeouts, __ATOMIC_RELAXED))
        snprintf(buf, len, "%lld", (ms + 999) / 1000);
    else
        snprintf(buf, len, "%lld.%03lld", ms / 1000, ms % 1000);
}

/* Per connection: what is still expected from it. */
enum { EXPECT_ID, EXPECT_BLPOP, EXPECT_AFTER, EXPECT_ACK, DONE };

/* When a pump of the wait stops (besides the deadline). */
enum { UNTIL_FIRST_BLPOP, UNTIL_QUORUM, UNTIL_IDS_KNOWN, UNTIL_ALL_DONE };

typedef struct waiter {
    redislock__fanout *f;
    int unblocking;            /* the connections are CLIENT UNBLOCK helpers */
    int until;                 /* UNTIL_* of the pump running now */
    int blpops_answered;       /* BLPOP replies read so far */
    redislock__call *after;    /* the call pipelined behind each BLPOP */
    int quorum_met;            /* a quorum of those calls granted */
    int stage[REDISLOCK__MAX_MASTERS];
    int popped[REDISLOCK__MAX_MASTERS];
    int evaled[REDISLOCK__MAX_MASTERS]; /* the call was resent as EVAL */
} waiter;

static void on_client_id(waiter *w, size_t i, const redisReply *r)
{
    redislock__conn *c = w->f->conns[i];
    redislock__master *m = c->m;
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        c->client_id = r->integer;
    } else {
        c->client_id = -1;
        __atomic_store_n(&m->no_unblock, 1, __ATOMIC_RELAXED);
        redislock__log(m->client, REDISLOCK_LOG_INFO,
                       "redis %s: no CLIENT ID (%s); waits end on the "
                       "server's timeout", m->ep.addr,
                       r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
    }
    w->stage[i] = EXPECT_BLPOP;
}

static void on_blpop(waiter *w, size_t i, const redisReply *r)
{
    redislock__master *m = w->f->conns[i]->m;
    w->stage[i] = w->after ? EXPECT_AFTER : DONE;
    w->blpops_answered++;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        w->popped[i] = 1;
    } else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "timeout is not")) {
        /* Redis < 6: whole seconds from now on; the caller simply retries */
        __atomic_store_n(&m->int_timeouts, 1, __ATOMIC_RELAXED);
        redislock__log(m->client, REDISLOCK_LOG_INFO,
                       "redis %s: BLPOP wants whole seconds (Redis < 6)", m->ep.addr);
    } else if (r->type != REDIS_REPLY_NIL) {
        /* the call behind it ran too; its reply is not read: the
         * connection is closed, and the caller treats the master as one
         * that may have run it.  A reply that says the server is no longer
         * the master (UNBLOCKED after a failover) is a lost connection: the
         * caller finds the master again and waits there. */
        char text[160];
        if (redislock__topo_reply(w->f->conns[i], r))
            redislock__fan_fail(w->f, i,
                                redislock__err(REDISLOCK_EIO, "redis %s: BLPOP: %s",
                                               m->ep.addr,
                                               redislock__printable(r->str, r->len > 100 ? 100 : r->len,
                                                                    text, sizeof text)));
        else
            redislock__fan_reply_fail(w->f, i, r, "BLPOP");
        w->f->conns[i]->broken = 1;
        w->stage[i] = DONE;
    }
}

/* The call behind master i's BLPOP met an empty script cache (a restart,
 * a failover, SCRIPT FLUSH): the same call as EVAL at once on this
 * connection (the pump sends it), with WAIT behind it when the write must
 * reach replicas.  The WAIT behind the first call, if any, answers first. */
static void after_noscript(waiter *w, size_t i)
{
    redislock__conn *c = w->f->conns[i];
    int ack = redislock__fan_wait_for(w->f, i) > 0, rc;
    redislock__log(c->m->client, REDISLOCK_LOG_INFO, "redis %s: loading the %s script",
                   c->m->ep.addr, w->after->script->name);
    w->evaled[i] = 1;
    w->stage[i] = ack ? EXPECT_ACK : EXPECT_AFTER;
    if ((rc = redislock__call_append_eval(c, w->after)) ||
        (rc = redislock__fan_append_wait(w->f, i)))
        redislock__fan_fail(w->f, i, rc);
}

/* The pump's handlers. */
static void on_reply(void *ctx, size_t i, redisReply *r)
{
    waiter *w = ctx;
    if (w->unblocking) {
        w->stage[i] = DONE;
        if (r->type == REDIS_REPLY_ERROR) {
            redislock__fan_reply_fail(w->f, i, r, "CLIENT UNBLOCK");
            w->f->conns[i]->broken = 1;
        }
    } else if (w->stage[i] == EXPECT_ID) {
        on_client_id(w, i, r);
    } else if (w->stage[i] == EXPECT_BLPOP) {
        on_blpop(w, i, r);
    } else if (w->stage[i] == EXPECT_AFTER && redislock__is_noscript(r) && !w->evaled[i]) {
        after_noscript(w, i);
    } else if (w->stage[i] == EXPECT_AFTER) { /* the call behind the BLPOP */
        w->stage[i] = redislock__fan_wait_for(w->f, i) ? EXPECT_ACK : DONE;
        w->f->replies[i] = r;
        return;
    } else { /* WAIT behind that call: the EVAL resent meanwhile comes next */
        w->stage[i] = w->evaled[i] == 1 ? EXPECT_AFTER : DONE;
        w->evaled[i] += w->evaled[i] == 1;
        redislock__fan_take_ack(w->f, i, r);
        return;
    }
    freeReplyObject(r);
}

static int wants(void *ctx, size_t i)
{
    const waiter *w = ctx;
    return w->stage[i] != DONE;
}

/* Majority mode after a wake-up: a quorum of the calls behind the BLPOPs
 * granted (w->quorum_met), or too few are still to come for one. */
static int quorum_settled(waiter *w)
{
    const redislock__fanout *f = w->f;
    size_t i, granted = 0, open = 0;
    for (i = 0; i < f->n; i++) {
        if (f->rc[i])
            continue;
        if (w->stage[i] != DONE)
            open++;
        else if (f->replies[i] && f->grants(f->replies[i], f->grants_ctx) &&
                 !redislock__fan_unacked(f, i)) /* min_replicas: acked */
            granted++;
    }
    w->quorum_met = granted >= f->quorum;
    return w->quorum_met || granted + open < f->quorum;
}

static int done(void *ctx)
{
    waiter *w = ctx;
    size_t i;
    if (w->until == UNTIL_FIRST_BLPOP)
        return w->blpops_answered > 0;
    if (w->until == UNTIL_QUORUM)
        return quorum_settled(w);
    if (w->until != UNTIL_IDS_KNOWN)
        return 0;
    for (i = 0; i < w->f->n; i++)
        if (w->stage[i] == EXPECT_ID && !w->f->rc[i])
            return 0;
    return 1;
}

static const redislock__pump_ops wait_ops = { wants, on_reply, done };

static void pump(waiter *w, int64_t deadline, int until)
{
    w->until = until;
    redislock__pump(w->f, deadline, &wait_ops, w);
}

/* An error reply that means CLIENT UNBLOCK will never work on this server:
 * denied by ACL (NOPERM), or unknown (a server without it). */
static int unblock_refused(const char *err)
{
    return strstr(err, "NOPERM") || strstr(err, "unknown command") ||
           strstr(err, "unknown subcommand") || strstr(err, "Unknown subcommand");
}

/* CLIENT UNBLOCK every connection still blocked, from one helper connection
 * per master, all at once.  Connections of masters where that is not
 * possible keep waiting for the server's own timeout. */
static void cancel(waiter *w, int64_t hard)
{
    redislock__fanout *f = w->f, helpers;
    waiter hw;
    size_t i;
    int any = 0;
    const redislock_client *cl = NULL;
    memset(&helpers, 0, sizeof helpers);
    memset(&hw, 0, sizeof hw);
    helpers.n = f->n;
    helpers.stop_fd[0] = helpers.stop_fd[1] = -1; /* not fd 0: nothing stops it */
    hw.f = &helpers;
    hw.unblocking = 1;
    for (i = 0; i < f->n; i++) {
        redislock__conn *c = f->conns[i];
        char id[24];
        hw.stage[i] = DONE;
        if (!c || f->rc[i] || w->stage[i] > EXPECT_BLPOP || c->client_id <= 0 ||
            __atomic_load_n(&c->m->no_unblock, __ATOMIC_RELAXED))
            continue;
        cl = c->m->client;
        if (redislock__pool_get(c->m, hard, &helpers.conns[i])) {
            /* transient (the server is at maxclients, restarting...): this
             * wait ends on the server's timeout; the next tries again */
            redislock__log(cl, REDISLOCK_LOG_WARN,
                           "redis %s: no connection for CLIENT UNBLOCK (%s); this "
                           "wait ends on the server's timeout",
                           c->m->ep.addr, redislock_last_error());
            continue;
        }
        snprintf(id, sizeof id, "%lld", c->client_id);
        if (redislock__conn_appendv(helpers.conns[i], "CLIENT", "UNBLOCK", id,
                                    "TIMEOUT", (const char *)NULL) ||
            redislock__conn_flush_nb(helpers.conns[i]) < 0) {
            helpers.conns[i]->broken = 1;
            continue;
        }
        hw.stage[i] = EXPECT_BLPOP; /* one reply expected */
        any = 1;
    }
    if (any)
        pump(&hw, hard, UNTIL_ALL_DONE);
    for (i = 0; i < f->n; i++) {
        if (helpers.conns[i] && hw.stage[i] != DONE)
            helpers.conns[i]->broken = 1;
        else if (helpers.conns[i] && !f->rc[i] && w->stage[i] <= EXPECT_BLPOP &&
                 helpers.rc[i] && unblock_refused(helpers.err[i])) {
            /* the server refuses the command for good (ACL, unknown) */
            redislock__master *m = helpers.conns[i]->m;
            __atomic_store_n(&m->no_unblock, 1, __ATOMIC_RELAXED);
            redislock__log(m->client, REDISLOCK_LOG_INFO,
                           "redis %s: CLIENT UNBLOCK refused (%s); waits end on the "
                           "server's timeout", m->ep.addr, helpers.err[i]);
        } else if (helpers.conns[i] && helpers.rc[i]) {
            /* anything else (a connection refused at maxclients, a broken
             * connection) is transient: the next wait tries again */
            redislock__log(helpers.conns[i]->m->client, REDISLOCK_LOG_WARN,
                           "redis %s: CLIENT UNBLOCK failed (%s); this wait ends "
                           "on the server's timeout", helpers.conns[i]->m->ep.addr,
                           helpers.err[i]);
        }
        redislock__pool_put(helpers.conns[i]);
    }
}

/* Queue and send, on master i's connection: CLIENT ID (if its id is not
 * known yet), BLPOP for wait_us, and the call behind it.  0, or an error. */
static int send_wait(waiter *w, size_t i, const char *sigkey, size_t sigkeylen,
                     int64_t wait_us, redislock__call *after)
{
    redislock__conn *c = w->f->conns[i];
    const char *argv[3];
    size_t lens[3];
    char tmo[32];
    int rc = 0;
    format_timeout(c->m, wait_us, tmo, sizeof tmo);
    if (c->client_id == 0 && !__atomic_load_n(&c->m->no_unblock, __ATOMIC_RELAXED)) {
        rc = redislock__conn_appendv(c, "CLIENT", "ID", (const char *)NULL);
        w->stage[i] = EXPECT_ID;
    } else {
        w->stage[i] = EXPECT_BLPOP;
    }
    argv[0] = "BLPOP", lens[0] = 5;
    argv[1] = sigkey, lens[1] = sigkeylen;
    argv[2] = tmo, lens[2] = strlen(tmo);
    if (!rc)
        rc = redislock__conn_append(c, 3, argv, lens);
    if (!rc && after)
        rc = redislock__call_append(c, after);
    if (!rc && after)
        rc = redislock__fan_append_wait(w->f, i);
    if (!rc && (rc = redislock__conn_flush_nb(c)) > 0)
        rc = 0;
    return rc;
}

/* What master i still owes, for messages. */
static const char *expected(const waiter *w, size_t i)
{
    if (w->stage[i] == EXPECT_ACK)
        return "WAIT";
    return w->stage[i] == EXPECT_AFTER && w->after ? w->after->script->name : "BLPOP";
}

/* After the wait: the masters still owing a reply failed (ETIMEDOUT: a
 * server that did not answer in time is not retried on); the wake-ups
 * popped.  WOKEN, EXPIRED, or EIO when every connection failed. */
static int wait_result(waiter *w, int *popped)
{
    redislock__fanout *f = w->f;
    size_t i;
    int any_popped = 0;
    for (i = 0; i < f->n; i++) {
        if (f->conns[i] && !f->rc[i] && w->stage[i] != DONE)
            redislock__fan_fail(
                f, i,
                redislock__err(REDISLOCK_ETIMEDOUT, "redis %s: no reply to %s in time",
                               f->conns[i]->m->ep.addr, expected(w, i)));
        if (f->conns[i] && (f->rc[i] == REDISLOCK_EIO || f->rc[i] == REDISLOCK_ETIMEDOUT))
            redislock__topo_lost(f->conns[i]->m); /* a cluster asks its map again */
        popped[i] = w->popped[i];
        any_popped |= w->popped[i];
    }
    if (any_popped)
        return REDISLOCK__WAIT_WOKEN;
    for (i = 0; i < f->n; i++)
        if (f->conns[i] && !f->rc[i])
            return REDISLOCK__WAIT_EXPIRED;
    return REDISLOCK_EIO; /* every connection failed; messages in f->err */
}

/* A cancel: wait for nothing more.  What has already arrived is read (one
 * pass without waiting); the connections still owing a reply are given up
 * (EIO; closed when put back, so the server drops their BLPOPs). */
static void cut_short(waiter *w)
{
    redislock__fanout *f = w->f;
    size_t i;
    pump(w, 0, UNTIL_ALL_DONE);
    for (i = 0; i < f->n; i++)
        if (f->conns[i] && !f->rc[i] && w->stage[i] != DONE)
            redislock__fan_fail(f, i,
                                redislock__err(REDISLOCK_EIO,
                                               "redis %s: the wait was cancelled before "
                                               "the reply to %s came",
                                               f->conns[i]->m->ep.addr, expected(w, i)));
}

/* The wait after its timer, a cancel or the wake-ups: CLIENT UNBLOCK what
 * is still blocked and collect the replies (their ids first: answered at
 * once).  In majority mode all of it within the per-master timeout, so
 * that a master that stopped answering delays the hand-off by that much
 * only, and once a quorum granted no longer than the quorum took (at least
 * 1 ms).  It ends early enough to leave the caller time to give back what
 * an acquire without an answer may have taken: the call as a whole
 * returns by until + slack. */
static void finish(waiter *w, const redislock_client *cl, int64_t until, int64_t woke_us)
{
    int64_t slack = redislock__slack_us(cl), reserve = redislock__brief_us(cl), rest;
    if (reserve > slack / 2)
        reserve = slack / 2;
    rest = redislock__step_deadline(cl, 0, until + slack - reserve);
    if (w->quorum_met) {
        int64_t now = redislock__now_us();
        int64_t grace = now - woke_us > 1000 ? now - woke_us : 1000;
        rest = redislock__min_deadline(rest, now + grace);
    }
    pump(w, rest, UNTIL_IDS_KNOWN);
    cancel(w, rest);
    pump(w, rest, UNTIL_ALL_DONE);
}

/* Send the BLPOPs (and the calls behind them) on every master of f that
 * has a connection and rc 0: how many went out. */
static size_t start(waiter *w, const char *sigkey, size_t sigkeylen, int64_t wait_us,
                    const redislock_client **cl)
{
    redislock__fanout *f = w->f;
    size_t i, active = 0;
    int rc;
    for (i = 0; i < f->n; i++) {
        w->stage[i] = DONE;
        if (!f->conns[i] || f->rc[i])
            continue;
        *cl = f->conns[i]->m->client;
        if ((rc = send_wait(w, i, sigkey, sigkeylen, wait_us, w->after))) {
            redislock__fan_fail(f, i, rc);
            w->stage[i] = DONE;
            continue;
        }
        active++;
    }
    return active;
}

int redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                            size_t sigkeylen, int64_t until, int *popped,
                            redislock__call *after)
{
    waiter w;
    int64_t now = redislock__now_us(), woke_us;
    const redislock_client *cl = NULL;
    size_t i;
    int stop[2];

    memset(&w, 0, sizeof w);
    w.f = f;
    w.after = after;
    f->stopped = 0;
    f->woke_us = 0;
    if (until <= now)
        return REDISLOCK__WAIT_EXPIRED;
    for (i = 0; i < f->n; i++)
        if (f->conns[i] && !f->rc[i])
            until = redislock__min_deadline(
                until, now + redislock__topo_max_block_us(f->conns[i]->m));
    if (!start(&w, sigkey, sigkeylen, until - now, &cl))
        return REDISLOCK_EIO;

    /* Until the first wake-up (or server timeout), our timer, or a cancel
     * (f->stop_fd).  Majority mode: then on the others, for a quorum of
     * grants, within the per-master timeout. */
    pump(&w, until, UNTIL_FIRST_BLPOP);
    woke_us = redislock__now_us();
    if (w.blpops_answered)
        f->woke_us = woke_us;
    if (!f->stopped && after && f->grants && f->n > 1 && w.blpops_answered)
        pump(&w, redislock__step_deadline(cl, 0, until), UNTIL_QUORUM);
    stop[0] = f->stop_fd[0], stop[1] = f->stop_fd[1];
    f->stop_fd[0] = f->stop_fd[1] = -1;
    if (f->stopped)
        cut_short(&w);
    else
        finish(&w, cl, until, woke_us);
    f->stop_fd[0] = stop[0], f->stop_fd[1] = stop[1];
    return wait_result(&w, popped);
}

void redislock__hand_back(redislock__master *m, const char *sigkey,
                          size_t sigkeylen)
{
    redislock__conn *c = NULL;
    redislock__call call;
    redisReply *r = NULL;
    int64_t deadline = redislock__after_ms(m->client->command_timeout_ms);
    int rc;

    if (redislock__pool_get(m, deadline, &c))
        return;
    redislock__call_init(&call, &redislock__script_signal);
    redislock__call_key(&call, sigkey, sigkeylen);
    redislock__call_int(&call, m->client->signal_expire_ms);
    rc = redislock__call_run(c, &call, deadline, &r);
    redislock__call_free(&call);
    if (r)
        freeReplyObject(r);
    redislock__log(m->client, rc ? REDISLOCK_LOG_WARN : REDISLOCK_LOG_DEBUG,
                   "redis %s: handing back an unused wake-up %s", m->ep.addr,
                   rc ? "failed" : "done");
    redislock__pool_put(c);
}
