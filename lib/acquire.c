/* Acquire: a loop of steps with one monotonic deadline over all of it:
 *   1. a round: the acquire script on every master at once; each answers
 *      "taken", "mine" (this owner id holds it, with its PTTL), or the
 *      holder's id and PTTL;
 *   2. what the answers mean is decided by redislock__decide() (decide.c):
 *      held, already held, wait for a wake-up (BLPOP on every master at once,
 *      timed by the client, wait.c) until the deadline or just past the
 *      holder's expiry, back off after a split vote, or an error.
 * With one master this is the plain mode.  With N it is majority mode
 * (Redlock): acquired with a quorum of N/2+1 masters and a positive
 * validity; otherwise whatever was taken is released on every master at once
 * before waiting.  See doc/design.md. */
#include "internal.h"

#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* One master: recovering from a broken connection (see recover()). */
typedef struct recovery {
    int64_t until;   /* 0: not recovering */
    int backoff_ms;
} recovery;

/* One acquire call. */
typedef struct acq {
    redislock *lk;
    redislock_client *c;
    int64_t timeout_ms, start, deadline;
    int64_t hard;              /* how long I/O may run */
    redislock__fanout f;
    recovery rec;
    redislock__answers ans;
    redislock__decision d;
    int popped[REDISLOCK__MAX_MASTERS];
    int busy_timeout;          /* ETIMEDOUT came from a "busy" answer */
    int need_round;            /* a wait's answers could not be used */
    int stop[2];               /* fds readable on a cancel, for the waits */
    int stop_open;             /* stop[0] was made for this call */
} acq;

enum { GO_ON = 1 }; /* a step's result besides 0 (done) and error codes */

/* The documented bound of a call is its timeout + redislock__slack_us();
 * its steps end this much earlier (us), so that the work after the last
 * wait does not carry it past the bound. */
#define FINISH_US 1000

/* What a reply of the acquire script answers at a glance (its first
 * element: REDISLOCK__ANS_*, for every kind), -1 if it is not the
 * script's; the kind's acquire_parse() reads it in full. */
static int answer_of(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    return (int)r->element[0]->integer;
}

/* Majority mode, for the wait (f->grants): does this reply grant the lock
 * ("taken", or "mine")? */
static int grants(const redisReply *r, void *ctx)
{
    int a = answer_of(r);
    (void)ctx;
    return a == REDISLOCK__ANS_TAKEN || a == REDISLOCK__ANS_MINE;
}

/* The pump found the wait's cancel eventfd readable: a cancel, or a
 * wake-up that none explains (then the wait goes on). */
static int cancel_confirmed(void *ctx)
{
    return redislock__cancel_confirmed(ctx);
}

/* 1 if some master answered (a reply, or a failure after sending). */
static int any_answer(const acq *q)
{
    size_t i;
    for (i = 0; i < q->f.n; i++)
        if (q->f.rc[i] || q->f.replies[i])
            return 1;
    return 0;
}

/* Majority mode: so many masters failed during the wait that no quorum
 * can be counted from the others' answers. */
static int too_few_answers(const acq *q)
{
    size_t i, failed = 0;
    for (i = 0; i < q->f.n; i++)
        failed += q->f.rc[i] != 0;
    return q->f.n > 1 && q->f.n - failed < q->c->quorum;
}

/* The acquire script call of this handle (its kind's) that a wait
 * pipelines behind its BLPOP. */
static void acquire_call(const redislock *lk, redislock__call *call)
{
    lk->kind->acquire_call(lk, REDISLOCK__ACQ_WAIT, call);
}

/* The acquire replies in q->f.replies as the answers of a round (a master
 * without one, or with one that is not the script's, FAILED). */
static void take_answers(acq *q)
{
    redislock__answers *a = &q->ans;
    size_t i;
    int rc;
    a->n = q->f.n;
    a->quorum = q->c->quorum;
    for (i = 0; i < a->n; i++) {
        a->state[i] = REDISLOCK__ANS_FAILED;
        if (q->f.rc[i])
            continue;
        if (!q->f.replies[i])
            redislock__fan_fail(&q->f, i,
                                redislock__err(REDISLOCK_EIO, "not connected"));
        else if ((rc = q->lk->kind->acquire_parse(q->lk, q->f.replies[i], a, i)) > 0)
            redislock__fan_reply_fail(&q->f, i, q->f.replies[i], "acquire script");
        else if (rc < 0)
            redislock__fan_fail(&q->f, i, rc);
        else if (a->state[i] != REDISLOCK__ANS_BUSY && redislock__fan_unacked(&q->f, i)) {
            /* granted on the master, not on enough replicas: not a grant
             * (given back like an unanswered one) */
            a->state[i] = REDISLOCK__ANS_FAILED;
            redislock__fan_fail_unacked(&q->f, i);
        }
        if (a->state[i] == REDISLOCK__ANS_BUSY && a->place > 0)
            q->lk->uncertain = 1; /* queued: a release may hand it over at any
                                     moment (a failure leaves the queue) */
    }
}

/* Step 1 on every master that has a connection: the answers in q->ans. */
static void run_round(acq *q)
{
    redislock__call call, *cp = &call;
    memset(&q->ans, 0, sizeof q->ans);
    q->lk->kind->acquire_call(q->lk, q->timeout_ms == 0 ? REDISLOCK__ACQ_TRY
                                                        : REDISLOCK__ACQ_WAIT, &call);
    q->ans.sent_us = redislock__now_us();
    q->f.wait = 1; /* a grant must reach min_replicas */
    redislock__fan_calls(&q->f, &cp, redislock__step_deadline(q->c, 0, q->hard));
    q->ans.end_us = redislock__now_us();
    redislock__call_free(&call);
    take_answers(q);
}

/* Put back the connections of masters that failed.  A wake-up popped on
 * one of them by the wait before this round is handed back: it was not
 * used.  (The round used the others.) */
static void drop_failed(redislock *lk, redislock__fanout *f, int *popped)
{
    size_t i;
    for (i = 0; i < f->n; i++) {
        if (f->conns[i] && (f->rc[i] || f->conns[i]->broken)) {
            redislock__master *node = f->conns[i]->m; /* lives as long as the client */
            f->conns[i]->broken = 1;
            redislock__pool_put(f->conns[i]);
            f->conns[i] = NULL;
            if (popped && popped[i] && lk->kind->hand_back)
                redislock__hand_back(node, lk->sig, lk->siglen);
        }
        if (popped)
            popped[i] = 0;
    }
}

/* One master: after a broken connection (stale pooled connection, server
 * restarted, connection killed) the first retry is immediate, later ones
 * back off from 10 to 200 ms, for up to the connect timeout in all and never
 * past the caller's deadline.  A restarting server can refuse or reset
 * connections for a while; that is all part of the same window. */

static int recover(recovery *r, const redislock_client *c, int64_t hard)
{
    int left;
    if (!r->until) {
        /* a member that fails over (Sentinel) comes back at another
         * address: worth trying until the caller's deadline */
        r->until = redislock__topo_fails_over(c)
                       ? hard
                       : redislock__min_deadline(redislock__after_ms(c->connect_timeout_ms),
                                                 hard);
        r->backoff_ms = 0;
    }
    left = redislock__poll_ms(r->until);
    if (left == 0 || (left > 0 && left < r->backoff_ms))
        return 0;
    if (r->backoff_ms) {
        redislock__log(c, REDISLOCK_LOG_INFO, "%s; retrying in %d ms",
                       redislock_last_error(), r->backoff_ms);
        redislock__sleep_ms(r->backoff_ms);
    }
    r->backoff_ms = r->backoff_ms ? (r->backoff_ms >= 100 ? 200 : r->backoff_ms * 2)
                                  : 10;
    return 1;
}


/* Not acquired (no quorum, or the validity ran out before the answers
 * came): release on every master where this owner may hold the key (taken,
 * its own from before, or no answer), all at once; but for a grant that
 * came too late, only what this round took: a key this owner id held before
 * the call may be what another handle with the same id believes it holds.
 * Connections that answered are reused; the others are new.  1 if every
 * master it asked answered. */
static int undo(redislock *lk, redislock__fanout *f, const redislock__answers *a,
                int late, int64_t limit)
{
    redislock_client *c = lk->c;
    redislock__fanout u;
    redislock__call call, *cp = &call;
    int64_t deadline = redislock__step_deadline(c, 0, limit);
    size_t i;
    int any = 0, all = 1;

    if (redislock__fan_init(&u, f->n, 1))
        return 0;
    for (i = 0; i < f->n; i++) {
        if (a->state[i] == REDISLOCK__ANS_BUSY || (late && a->state[i] == REDISLOCK__ANS_MINE)) {
            u.rc[i] = 1; /* skip: another owner's, or held before */
            continue;
        }
        any = 1;
        if (a->state[i] != REDISLOCK__ANS_FAILED)
            u.conns[i] = f->conns[i]; /* borrowed */
    }
    if (any) {
        redislock__fan_connect(&u, c, lk->key, lk->keylen, deadline);
        lk->kind->release_call(lk, &call);
        redislock__fan_calls(&u, &cp, deadline);
        redislock__call_free(&call);
    }
    for (i = 0; i < f->n; i++) {
        if (u.rc[i] < 0)
            all = 0; /* no answer: what this owner holds there is unknown */
        if (u.conns[i] != f->conns[i]) /* borrowed ones stay with f */
            redislock__pool_put(u.conns[i]);
        u.conns[i] = NULL;
    }
    redislock__fan_free(&u);
    return all;
}

/* A queued kind (one master): "semaphore X: all N permits are held (the
 * first lease to end: OWNER's, in N ms); K of Q in line[ after N ms]" */
static void describe_queued(const acq *q, const char *after, char *buf, size_t len)
{
    const redislock__answers *a = &q->ans;
    char nbuf[300], obuf[100], line[64], ttl[64];
    redislock__qname(q->lk, nbuf, sizeof nbuf);
    redislock__printable(a->owner[0], strlen(a->owner[0]), obuf, sizeof obuf);
    if (a->place > 0)
        snprintf(line, sizeof line, "%lld of %lld in line", a->place, a->queued);
    else
        snprintf(line, sizeof line, "%lld in line", a->queued);
    if (a->left < 0)
        snprintf(ttl, sizeof ttl, "no expiry");
    else
        snprintf(ttl, sizeof ttl, "expires in %lld ms", a->left);
    if (q->lk->kind->id == REDISLOCK_KIND_SEMAPHORE)
        snprintf(buf, len, "semaphore %s: all %lld permits are held (the first lease to end: "
                 "%s, %s); %s%s", nbuf, a->holders, obuf, ttl, line, after);
    else
        snprintf(buf, len, "fair lock %s is held by %s (%s); %s%s", nbuf, obuf, ttl, line,
                 after);
}

/* "lock X is [still] held by OWNER (...)[ after N ms]" */
static void describe_busy(const acq *q, int64_t waited_ms, char *buf, size_t len)
{
    const redislock__answers *a = &q->ans;
    const redislock__decision *d = &q->d;
    char nbuf[300], ttl[64], after[48] = "", obuf[100];
    const char *still = waited_ms >= 0 ? "still " : "";
    int i = d->holder;
    size_t j;
    if (waited_ms >= 0)
        snprintf(after, sizeof after, " after %lld ms", (long long)waited_ms);
    redislock__qname(q->lk, nbuf, sizeof nbuf);
    if (q->lk->kind->queued && !d->late) {
        describe_queued(q, after, buf, len);
        return;
    }
    if (d->late) {
        snprintf(buf, len,
                 "lock %s: granted with %lld ms to live, but the round took %lld "
                 "ms: released again%s",
                 nbuf, d->grant_ttl, (long long)((a->end_us - a->sent_us) / 1000), after);
        return;
    }
    for (j = 0; j < a->n && i < 0; j++) /* a split vote: name one owner */
        if (a->state[j] == REDISLOCK__ANS_BUSY)
            i = (int)j;
    if (i < 0) {
        snprintf(buf, len, "lock %s: no quorum this round%s", nbuf, after);
        return;
    }
    /* the owner id is the server's data: any bytes */
    redislock__printable(a->owner[i], strlen(a->owner[i]), obuf, sizeof obuf);
    if (a->pttl[i] < 0)
        snprintf(ttl, sizeof ttl, "no expiry");
    else
        snprintf(ttl, sizeof ttl, "expires in %lld ms", a->pttl[i]);
    if (a->n == 1)
        snprintf(buf, len, "lock %s is %sheld by %s (%s)%s", nbuf, still, obuf, ttl,
                 after);
    else
        snprintf(buf, len, "lock %s is %sheld by %s on %zu of %zu masters (%s)%s%s",
                 nbuf, still, obuf, d->holder_count, a->n, ttl,
                 d->holder < 0 ? ", no quorum: split vote" : "", after);
}

/* Is the failure rc of the only master worth another try?  A broken
 * connection is (a server restarting).  No answer in time means a hung or
 * slow server: trying it again would only wait again, unless the topology
 * can move the key to another node (a Sentinel's or a cluster's failover
 * replaces a hung master). */
static int retryable(const acq *q, int rc)
{
    return rc == REDISLOCK_EIO ||
           (rc == REDISLOCK_ETIMEDOUT && redislock__topo_fails_over(q->c));
}

/* A failure of the only master (connecting, or the round): an I/O error is
 * retried for a while (a server restarting), anything else is reported. */
static int single_failed(acq *q, int started)
{
    int rc = redislock__err(q->f.rc[0], "%s", q->f.err[0]);
    /* A server that refuses the first connection is down: say so at once.
     * Recovery is for a server lost in the middle of a call. */
    if (retryable(q, rc) && (started || q->rec.until) &&
        recover(&q->rec, q->c, q->hard)) {
        q->need_round = 1; /* no answers: the next step is a plain round */
        return GO_ON;
    }
    return rc;
}

static int follow(acq *q);
static int decide_step(acq *q, int pipelined);

/* Not held this round: what the handle believed from an earlier call must
 * not outlive what the answers show (another handle of the same owner id
 * may have shortened or released the lock).  Another owner holds enough
 * masters that no quorum can be ours: not held.  Our own key was about to
 * expire (a late grant): valid no longer than its PTTL says. */
static void forget_belief(acq *q)
{
    const redislock__decision *d = &q->d;
    if (d->busy > q->f.n - q->c->quorum)
        redislock__clear_held(q->lk);
    else if (d->late)
        redislock__lower_expiry(q->lk, redislock__local_expiry(q->c->drift_ppm,
                                                               q->ans.sent_us,
                                                               d->grant_ttl));
}

/* Step 1: a round and its decision, then follow().  GO_ON when the loop
 * continues (to wait, or to try again), else the call's result. */
static int round_step(acq *q)
{
    char msg[600];

    if (q->d.verdict == REDISLOCK__WAIT && redislock__now_us() >= q->hard) {
        /* This thread got the processor back only after the time the call
         * may take (a wait that ended by the deadline leaves the slack for
         * one more round): the holder had it at the last round. */
        describe_busy(q, (redislock__now_us() - q->start) / 1000, msg, sizeof msg);
        q->busy_timeout = 1;
        return redislock__err(REDISLOCK_ETIMEDOUT, "%s", msg);
    }
    redislock__fan_reset(&q->f);
    redislock__fan_connect(&q->f, q->c, q->lk->key, q->lk->keylen,
                           redislock__step_deadline(q->c, 1, q->hard));
    if (q->f.n == 1 && q->f.rc[0])
        return single_failed(q, 0);
    run_round(q);
    return decide_step(q, 0);
}

/* The answers in q->ans came (from a round, or from acquires pipelined
 * behind a wait): decide, then follow().  GO_ON, or the call's result. */
static int decide_step(acq *q, int pipelined)
{
    redislock *lk = q->lk;
    redislock__decide_in in;
    size_t i;

    for (i = 0; i < q->f.n; i++)
        if (q->f.rc[i]) {
            /* an acquire that got no answer may have run: a later "mine"
             * answer then means ours */
            lk->uncertain = 1;
            redislock__note_masters(lk, &q->f);
            break;
        }
    drop_failed(lk, &q->f, q->popped);
    in.expire_ms = lk->expire_ms;
    in.drift_ppm = q->c->drift_ppm;
    in.uncertain = lk->uncertain;
    in.timeout_ms = q->timeout_ms;
    in.deadline = q->deadline;
    in.now_us = redislock__now_us();
    in.jitter = redislock__random_u32();
    in.pipelined = pipelined;
    in.gone_by = q->d.verdict == REDISLOCK__WAIT ? q->d.gone_by : 0; /* the last wait's */
    redislock__decide(&q->ans, &in, &q->d);
    if (q->d.verdict == REDISLOCK__ROUND_FAILED)
        return single_failed(q, 1);
    q->rec.until = 0;
    return follow(q);
}

/* Step 2: do what the decision says.  GO_ON, or the call's result. */
static int follow(acq *q)
{
    redislock *lk = q->lk;
    char msg[600], nbuf[300], sum[600];

    switch (q->d.verdict) {
    case REDISLOCK__HELD:
        lk->uncertain = 0;
        lk->acquired_us = q->ans.sent_us;
        redislock__set_token(lk, (uint64_t)q->d.token);
        redislock__set_held(lk, q->d.valid_until);
        return 0;
    case REDISLOCK__ALREADY: /* this owner id held it before the call */
        lk->acquired_us = q->ans.sent_us;
        redislock__set_token(lk, (uint64_t)q->d.token);
        redislock__set_held(lk, q->d.valid_until);
        return redislock__err(REDISLOCK_EALREADY,
                              "%s %s is already held by this owner id (%s)",
                              lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf), lk->id);
    case REDISLOCK__CONFIRM:
        /* the grant is ours: the next round's "mine" says so; a failure
         * or a cancel before that gives it back (give_up()) */
        lk->uncertain = 1;
        return GO_ON;
    default:
        break;
    }
    forget_belief(q);
    if (q->d.late)
        redislock__log(q->c, REDISLOCK_LOG_INFO,
                       "acquire %s: granted with %lld ms to live, but the round took "
                       "%lld ms; releasing it again",
                       redislock__qname(lk, nbuf, sizeof nbuf), q->d.grant_ttl,
                       (long long)((q->ans.end_us - q->ans.sent_us) / 1000));
    if (q->d.undo) {
        /* within the call's bound: a master that stopped answering would
         * otherwise add its master timeout to a call that ran out */
        undo(lk, &q->f, &q->ans, q->d.late, q->hard);
        drop_failed(lk, &q->f, NULL);
        if (!q->d.late || !q->d.mine) /* nothing of this owner is left */
            lk->uncertain = 0;
    }
    switch (q->d.verdict) {
    case REDISLOCK__NO_QUORUM:
        return redislock__err(REDISLOCK_ENOQUORUM,
                              "lock %s: only %zu of %zu masters answered (%zu needed): %s",
                              redislock__qname(lk, nbuf, sizeof nbuf),
                              q->f.n - q->d.failed, q->f.n, q->c->quorum,
                              redislock__fan_summary(&q->f, sum, sizeof sum));
    case REDISLOCK__BUSY:
        describe_busy(q, -1, msg, sizeof msg);
        return redislock__err(REDISLOCK_EBUSY, "%s", msg);
    case REDISLOCK__TIMED_OUT:
        describe_busy(q, (redislock__now_us() - q->start) / 1000, msg, sizeof msg);
        q->busy_timeout = 1;
        return redislock__err(REDISLOCK_ETIMEDOUT, "%s", msg);
    default:
        return GO_ON;
    }
}

/* Majority mode, every master's BLPOP failed: if none failed for I/O (which
 * the next round reconnects), they all answered with an error (WRONGTYPE...)
 * and will again: fail now rather than spin until the deadline. */
static int no_master_can_wait(acq *q)
{
    char nbuf[300], sum[600];
    size_t i;
    for (i = 0; i < q->f.n; i++)
        if (q->f.rc[i] == REDISLOCK_EIO || q->f.rc[i] == REDISLOCK_ETIMEDOUT)
            return 0;
    redislock__note_masters(q->lk, &q->f);
    return redislock__err(REDISLOCK_EPROTO, "lock %s: no master can wait for a wake-up: %s",
                          redislock__qname(q->lk, nbuf, sizeof nbuf),
                          redislock__fan_summary(&q->f, sum, sizeof sum));
}

/* After a wait: the masters that failed are logged (with one master, the
 * error is the call's).  0, or the error that ends the call. */
static int wait_failures(acq *q, int rc)
{
    char nbuf[300];
    size_t i, n = q->f.n;
    for (i = 0; i < n; i++)
        if (q->f.rc[i]) {
            redislock__log(q->c, REDISLOCK_LOG_WARN, "acquire %s: %s",
                           redislock__qname(q->lk, nbuf, sizeof nbuf), q->f.err[i]);
            if (n == 1)
                redislock__err(q->f.rc[i], "%s", q->f.err[i]);
        }
    if (n > 1 && rc == REDISLOCK_EIO)
        return no_master_can_wait(q);
    if (n > 1 || !q->f.rc[0])
        return 0;
    /* An error reply to BLPOP (WRONGTYPE: the signal key is not a list;
     * ACL) comes again on every retry: report it at once instead of
     * spinning between rounds and BLPOPs.  A server that did not answer in
     * time (ETIMEDOUT) would only be waited for again (see retryable()). */
    if (!retryable(q, q->f.rc[0]))
        return redislock__err(q->f.rc[0], "%s", q->f.err[0]);
    return 0;
}

/* The fds a wait polls for a cancel: the handle's eventfd, made for this
 * call when it first waits (closed when the call ends), and the client's. */
static int stop_fd(acq *q)
{
    if (!q->stop_open) {
        q->stop[0] = redislock__cancel_open(q->lk);
        q->stop_open = 1;
    }
    return q->stop[0];
}

static void stop_fds(acq *q)
{
    q->f.stop_fd[0] = stop_fd(q);
    q->f.stop_fd[1] = q->stop[1];
    q->f.stop_check = cancel_confirmed;
    q->f.stop_ctx = q->lk;
}

/* After a wait: this call may hold the lock where an acquire behind a
 * BLPOP got no answer (it may have run) or answered "taken".  Until a
 * decision says otherwise, a failure or a cancel gives that back
 * (give_up()), and a "mine" answer counts as ours. */
static void note_what_may_be_held(acq *q)
{
    size_t i;
    for (i = 0; i < q->f.n; i++) {
        const redisReply *r = q->f.replies[i];
        if (q->f.rc[i] || (r && answer_of(r) == REDISLOCK__ANS_TAKEN))
            q->lk->uncertain = 1;
    }
}

/* Wait for a wake-up until q->d.until, with the acquire script pipelined
 * behind each BLPOP: the server runs it the moment the BLPOP ends, before
 * the releaser (or anyone else) can send another request, so the woken
 * waiter gets the lock without a round trip of its own.  Its answers are
 * decided at once.  GO_ON (q->need_round when a plain round must come
 * next; a cancel is answered by the loop), or the call's result. */
static int wait_step(acq *q)
{
    redislock *lk = q->lk;
    redislock__call call;
    int rc;

    redislock__fan_reset(&q->f);
    redislock__fan_connect(&q->f, q->c, q->lk->key, q->lk->keylen,
                           redislock__step_deadline(q->c, 1, q->hard));
    if (q->f.n == 1 && q->f.rc[0])
        return single_failed(q, 0);
    memset(&q->ans, 0, sizeof q->ans);
    acquire_call(lk, &call);
    redislock__stats_waited(lk);
    stop_fds(q); /* a cancel ends it */
    q->ans.sent_us = redislock__now_us();
    q->f.wait = 1;
    rc = redislock__wait_signals(&q->f, lk->sig, lk->siglen, q->d.until, q->popped, &call);
    q->f.stop_fd[0] = q->f.stop_fd[1] = -1;
    q->ans.end_us = redislock__now_us();
    q->ans.woke_us = q->f.woke_us;
    redislock__call_free(&call);
    note_what_may_be_held(q);
    if (q->f.stopped) /* a cancel: answered by the loop, which gives back */
        return GO_ON;
    if ((rc = wait_failures(q, rc)))
        return rc;
    if (q->f.n == 1 && q->f.rc[0]) {
        /* the connection broke; what ran there is found out by the next
         * round (wait_failures() ended the call for anything else) */
        drop_failed(lk, &q->f, q->popped);
        q->need_round = 1;
        return recover(&q->rec, q->c, q->hard)
                   ? GO_ON
                   : redislock__err(REDISLOCK_EIO, "%s", q->f.err[0]);
    }
    if (!any_answer(q) || too_few_answers(q)) {
        /* the deadline passed before anything was sent, or too many
         * masters failed to decide on: a plain round (reconnecting) tells;
         * what the wait's acquires took shows there as "mine" */
        drop_failed(lk, &q->f, q->popped);
        q->need_round = 1;
        return GO_ON;
    }
    take_answers(q);
    return decide_step(q, 1);
}

/* The call fails, but an acquire of it may have run without its answer
 * coming (a connection lost after a wake-up, with the acquire pipelined
 * behind the BLPOP; an error reply to the BLPOP), or took the lock as a
 * cancel came: release on every master, owner-checked, so that a lock
 * taken unknowingly is not left held (its release wakes the next waiter).
 * Best effort, within the call's bound; after a cancel, or a server that
 * did not answer in time, the answer is awaited no longer than
 * redislock__brief_us() (a release that was sent still runs when the
 * server reads it).  The last error stays. */
static void give_up(acq *q, int rc, int brief)
{
    char keep[512];
    int64_t now = redislock__now_us(), limit;
    size_t i;
    snprintf(keep, sizeof keep, "%s", redislock_last_error());
    limit = redislock__min_deadline(brief ? now + redislock__brief_us(q->c)
                                          : REDISLOCK__NEVER,
                                    q->hard);
    redislock__fan_put(&q->f);
    memset(&q->ans, 0, sizeof q->ans);
    for (i = 0; i < q->f.n; i++)
        q->ans.state[i] = REDISLOCK__ANS_FAILED; /* may hold it anywhere */
    if (undo(q->lk, &q->f, &q->ans, 0, limit > now ? limit : now))
        q->lk->uncertain = 0; /* every master answered the release */
    redislock__err(rc, "%s", keep);
}

/* A split vote (or a grant that came too late): sleep until q->d.until. */
static void back_off(acq *q)
{
    char nbuf[300];
    int64_t pause = q->d.until - redislock__now_us();
    redislock__log(q->c, REDISLOCK_LOG_DEBUG,
                   "acquire %s: split vote (%zu of %zu masters granted); backing off "
                   "%lld us",
                   redislock__qname(q->lk, nbuf, sizeof nbuf), q->d.taken + q->d.mine,
                   q->f.n, (long long)pause);
    if (pause > 0) /* a cancel ends it early */
        redislock__net_wait2(stop_fd(q), q->stop[1], POLLIN, q->d.until);
}

/* A cancel (redislock_cancel(), or the client shutting down) ends the call
 * with ECANCELED, whatever the last step found: a lock granted as it came
 * (held, or a grant still to be confirmed) and whatever an acquire without
 * an answer may have taken are given back by give_up(), since the handle
 * is then "uncertain". */
static int cancelled(acq *q, int rc)
{
    char nbuf[300];
    int shutdown = __atomic_load_n(&q->c->shutdown, __ATOMIC_SEQ_CST);
    if (rc == 0) {
        redislock__clear_held(q->lk);
        q->lk->uncertain = 1;
    }
    if (!shutdown)
        redislock__cancel_answered(q->lk);
    return redislock__err(REDISLOCK_ECANCELED, "acquire %s: %s",
                          redislock__qname(q->lk, nbuf, sizeof nbuf),
                          shutdown ? "the client is shutting down"
                                   : "cancelled (redislock_cancel)");
}

int redislock__acquire(redislock *lk, int64_t timeout_ms)
{
    acq q;
    int rc;

    memset(&q, 0, sizeof q);
    q.lk = lk;
    q.c = lk->c;
    q.timeout_ms = timeout_ms;
    q.start = redislock__now_us();
    q.deadline = timeout_ms < 0 ? REDISLOCK__NEVER : q.start + timeout_ms * 1000;
    /* How long the call may run: its timeout (for a try, the command
     * timeout, its connection included) plus a little time to collect a
     * reply, or to give back what a lost reply may have taken, less what
     * the call does after its last wait (closing, messages: well under
     * FINISH_US); a wait for ever has each step bounded instead. */
    q.hard = timeout_ms < 0 ? REDISLOCK__NEVER
                            : (timeout_ms == 0 ? q.start + q.c->command_timeout_ms * 1000
                                               : q.deadline) +
                                  redislock__slack_us(q.c) - FINISH_US;
    if ((rc = redislock__fan_init(&q.f, q.c->nmasters, 1)))
        return rc;
    q.stop[0] = -1; /* made by the first wait or back-off */
    q.stop[1] = q.c->shutdown_fd;
    if (q.c->nmasters > 1) { /* a wait goes on for a quorum of grants */
        q.f.grants = grants;
        q.f.quorum = q.c->quorum;
    }
    /* a round, then waits (each with its pipelined acquire) until a
     * verdict ends the call; a plain round again after a back-off, a
     * CONFIRM, or a wait that could not be used */
    rc = redislock__cancel_requested(lk) ? GO_ON : round_step(&q);
    while (rc == GO_ON) {
        if (redislock__cancel_requested(lk))
            break;
        int wait = q.d.verdict == REDISLOCK__WAIT && !q.need_round;
        if (q.d.verdict == REDISLOCK__BACK_OFF)
            back_off(&q);
        q.need_round = 0;
        rc = wait ? wait_step(&q) : round_step(&q);
    }
    /* a cancel is answered whatever the last step found (EALREADY: the
     * lock was this owner's before the call; the cancel waits for the next) */
    if (rc != REDISLOCK_EALREADY && redislock__cancel_requested(lk))
        rc = cancelled(&q, rc);
    if (rc < 0 && rc != REDISLOCK_EALREADY && lk->uncertain)
        give_up(&q, rc,
                rc == REDISLOCK_ECANCELED || (rc == REDISLOCK_ETIMEDOUT && !q.busy_timeout));
    redislock__fan_put(&q.f);
    redislock__fan_free(&q.f);
    if (q.stop_open)
        redislock__cancel_close(lk);
    /* ETIMEDOUT only when the server answered "busy" and the time ran out;
     * a server that did not answer in time is an I/O error, whatever the
     * caller's timeout. */
    if (rc == REDISLOCK_ETIMEDOUT && !q.busy_timeout)
        rc = redislock__err(REDISLOCK_EIO,
                            q.timeout_ms < 0 ? "%s (command timeout %lld ms, no call timeout)"
                                             : "%s (command timeout %lld ms, call timeout %lld ms)",
                            redislock_last_error(), (long long)q.c->command_timeout_ms,
                            (long long)q.timeout_ms);
    return rc;
}
