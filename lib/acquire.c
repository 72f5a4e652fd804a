/* Acquire: a loop of two steps with one monotonic deadline over all of it:
 *   1. a round: the acquire script on every master at once; each answers
 *      "taken", or the holder's id and PTTL;
 *   2. if not acquired: BLPOP on the signal key of every master at once for
 *      no longer than min(deadline, the holders' smallest PTTL), timed by
 *      the client (wait.c); or, after a split vote in majority mode (nobody
 *      has a quorum), a random back-off.
 * With one master this is the plain mode.  With N it is majority mode
 * (Redlock): acquired with a quorum of N/2+1 masters and a positive
 * validity; otherwise whatever was taken is released on every master at once
 * before waiting.  See doc/design.md. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* What the acquire script said, per master. */
enum { ACQ_FAILED = -1, ACQ_BUSY = 0, ACQ_TAKEN = 1, ACQ_MINE = 2 };

typedef struct round {
    int state[REDISLOCK__MAX_MASTERS];
    long long pttl[REDISLOCK__MAX_MASTERS];   /* -1: no expiry */
    char owner[REDISLOCK__MAX_MASTERS][REDISLOCK_ID_MAX + 1];
    size_t taken, mine, busy, failed;
    int64_t sent_us, end_us;
    long long min_pttl;        /* smallest PTTL among busy masters; -1: none */
    long long grant_ttl;       /* smallest TTL among granting masters (the
                                  expiry set, or the PTTL of a "mine"); -1:
                                  none expires */
    int holder;                /* a master whose owner holds a quorum; -1 */
    size_t holder_count;       /* masters that owner holds */
    int expired;               /* granted, but the validity ran out first */
} round;

static int parse_reply(const redisReply *r, round *rd, size_t i)
{
    rd->pttl[i] = -1;
    rd->owner[i][0] = '\0';
    if (r->type == REDIS_REPLY_ERROR)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -2;
    rd->state[i] = (int)r->element[0]->integer;
    if (rd->state[i] == ACQ_TAKEN)
        return 0;
    if ((rd->state[i] != ACQ_BUSY && rd->state[i] != ACQ_MINE) || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return -2;
    rd->pttl[i] = r->element[1]->integer;
    if (rd->state[i] == ACQ_BUSY)
        redislock__copy_owner(rd->owner[i], r->elements > 2 ? r->element[2] : NULL,
                              NULL);
    return 0;
}

/* Step 1 on every master that has a connection. */
static void run_round(redislock *lk, redislock__fanout *f, int64_t deadline, round *rd)
{
    redislock_client *c = lk->c;
    redislock__call call, *cp = &call;
    size_t i, j;

    memset(rd, 0, sizeof *rd);
    rd->min_pttl = -1;
    rd->grant_ttl = -1;
    rd->holder = -1;
    redislock__call_init(&call, &redislock__script_acquire);
    redislock__call_key(&call, lk->key, lk->keylen);
    redislock__call_key(&call, lk->sig, lk->siglen);
    redislock__call_arg(&call, lk->id, lk->idlen);
    redislock__call_int(&call, lk->expire_ms);
    rd->sent_us = redislock__now_us();
    redislock__fan_calls(f, &cp, deadline);
    rd->end_us = redislock__now_us();
    redislock__call_free(&call);

    for (i = 0; i < f->n; i++) {
        const redisReply *r = f->replies[i];
        int p;
        rd->state[i] = ACQ_FAILED;
        if (f->rc[i]) {
            rd->failed++;
            continue;
        }
        if ((p = parse_reply(r, rd, i)) < 0) {
            f->rc[i] = p == -1 ? redislock__conn_reply_error(f->conns[i], r,
                                                             "acquire script")
                               : redislock__err(REDISLOCK_EPROTO,
                                                "redis %s: unexpected reply to the "
                                                "acquire script",
                                                f->conns[i]->m->ep.addr);
            snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
            rd->state[i] = ACQ_FAILED;
            rd->failed++;
            continue;
        }
        if (rd->state[i] == ACQ_TAKEN || rd->state[i] == ACQ_MINE) {
            /* "mine" keeps the key's own TTL, which may be shorter than
             * the expiry: the grant is valid no longer than that */
            long long ttl = rd->state[i] == ACQ_TAKEN
                                ? (lk->expire_ms > 0 ? (long long)lk->expire_ms : -1)
                                : rd->pttl[i];
            if (ttl >= 0 && (rd->grant_ttl < 0 || ttl < rd->grant_ttl))
                rd->grant_ttl = ttl;
            if (rd->state[i] == ACQ_TAKEN)
                rd->taken++;
            else
                rd->mine++;
        } else {
            rd->busy++;
            if (rd->pttl[i] >= 0 && (rd->min_pttl < 0 || rd->pttl[i] < rd->min_pttl))
                rd->min_pttl = rd->pttl[i];
        }
    }
    /* Does one other owner hold a quorum?  (Then it is worth waiting for
     * its release; otherwise it is a split vote.) */
    for (i = 0; i < f->n; i++) {
        size_t count = 0;
        if (rd->state[i] != ACQ_BUSY)
            continue;
        for (j = 0; j < f->n; j++)
            if (rd->state[j] == ACQ_BUSY && !strcmp(rd->owner[i], rd->owner[j]))
                count++;
        if (count > rd->holder_count) {
            rd->holder_count = count;
            if (count >= c->quorum)
                rd->holder = (int)i;
        }
    }
}

/* Not acquired (no quorum, or the validity ran out before the answers
 * came): release on every master where this owner may hold the key (taken,
 * its own from before, or no answer), all at once; but for a grant that
 * came too late, only what this round took: a key this owner id held before
 * the call may be what another handle with the same id believes it holds.
 * Connections that answered are reused; the others are new. */
static void undo(redislock *lk, redislock__fanout *f, const round *rd)
{
    redislock_client *c = lk->c;
    redislock__fanout u;
    redislock__call call, *cp = &call;
    int64_t deadline = redislock__step_deadline(c, 0, REDISLOCK__NEVER);
    size_t i;
    int any = 0;

    if (redislock__fan_init(&u, f->n, 1))
        return;
    for (i = 0; i < f->n; i++) {
        if (rd->state[i] == ACQ_BUSY || (rd->expired && rd->state[i] == ACQ_MINE)) {
            u.rc[i] = 1; /* skip: another owner's, or held before */
            continue;
        }
        any = 1;
        if (rd->state[i] != ACQ_FAILED)
            u.conns[i] = f->conns[i]; /* borrowed */
    }
    if (any) {
        redislock__fan_connect(&u, c, deadline);
        redislock__call_init(&call, &redislock__script_release);
        redislock__call_key(&call, lk->key, lk->keylen);
        redislock__call_key(&call, lk->sig, lk->siglen);
        redislock__call_arg(&call, lk->id, lk->idlen);
        redislock__call_int(&call, c->signal_expire_ms);
        redislock__fan_calls(&u, &cp, deadline);
        redislock__call_free(&call);
    }
    for (i = 0; i < f->n; i++) {
        if (u.conns[i] != f->conns[i]) /* borrowed ones stay with f */
            redislock__pool_put(u.conns[i]);
        u.conns[i] = NULL;
    }
    redislock__fan_free(&u);
}

/* Put back the connections of masters that failed.  A wake-up popped on
 * one of them by the wait before this round is handed back: it was not
 * used.  (The round used the others.) */
static void drop_failed(redislock *lk, redislock__fanout *f, int *popped)
{
    size_t i;
    for (i = 0; i < f->n; i++) {
        if (f->conns[i] && (f->rc[i] || f->conns[i]->broken)) {
            f->conns[i]->broken = 1;
            redislock__pool_put(f->conns[i]);
            f->conns[i] = NULL;
            if (popped && popped[i])
                redislock__hand_back(&lk->c->masters[i], lk->sig, lk->siglen);
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
typedef struct recovery {
    int64_t until;   /* 0: not recovering */
    int backoff_ms;
} recovery;

static int recover(recovery *r, const redislock_client *c, int64_t hard)
{
    int left;
    if (!r->until) {
        r->until = redislock__min_deadline(redislock__after_ms(c->connect_timeout_ms),
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

/* "lock X is [still] held by OWNER (...)[ after N ms]" */
static void describe_busy(const redislock *lk, const round *rd, size_t n,
                          int64_t waited_ms, char *buf, size_t len)
{
    char nbuf[300], ttl[64], after[48] = "", obuf[100];
    const char *still = waited_ms >= 0 ? "still " : "";
    int i = rd->holder;
    size_t j;
    if (waited_ms >= 0)
        snprintf(after, sizeof after, " after %lld ms", (long long)waited_ms);
    if (rd->expired) {
        snprintf(buf, len,
                 "lock %s: granted with %lld ms to live, but the round took %lld "
                 "ms: released again%s",
                 redislock__qname(lk, nbuf, sizeof nbuf), rd->grant_ttl,
                 (long long)((rd->end_us - rd->sent_us) / 1000), after);
        return;
    }
    for (j = 0; j < n && i < 0; j++) /* a split vote: name one owner */
        if (rd->state[j] == ACQ_BUSY)
            i = (int)j;
    redislock__qname(lk, nbuf, sizeof nbuf);
    if (i < 0) {
        snprintf(buf, len, "lock %s: no quorum this round%s", nbuf, after);
        return;
    }
    /* the owner id is the server's data: any bytes */
    redislock__printable(rd->owner[i], strlen(rd->owner[i]), obuf, sizeof obuf);
    if (rd->pttl[i] < 0)
        snprintf(ttl, sizeof ttl, "no expiry");
    else
        snprintf(ttl, sizeof ttl, "expires in %lld ms", rd->pttl[i]);
    if (n == 1)
        snprintf(buf, len, "lock %s is %sheld by %s (%s)%s", nbuf, still, obuf, ttl,
                 after);
    else
        snprintf(buf, len, "lock %s is %sheld by %s on %zu of %zu masters (%s)%s%s",
                 nbuf, still, obuf, rd->holder_count, n, ttl,
                 rd->holder < 0 ? ", no quorum: split vote" : "", after);
}

int redislock__acquire(redislock *lk, int64_t timeout_ms)
{
    redislock_client *c = lk->c;
    size_t n = c->nmasters, i;
    int64_t start = redislock__now_us();
    int64_t deadline = timeout_ms < 0 ? REDISLOCK__NEVER : start + timeout_ms * 1000;
    /* How long I/O may run: a try uses the plain command timeout; a wait
     * ends by the deadline plus a little time to collect a reply. */
    int64_t hard = timeout_ms <= 0 ? REDISLOCK__NEVER
                                   : deadline + redislock__slack_us(c);
    redislock__fanout f;
    recovery rec = { 0, 0 };
    round rd;
    int popped[REDISLOCK__MAX_MASTERS];
    int rc, busy_timeout = 0;
    char msg[600], nbuf[300], sum[600];

    if ((rc = redislock__fan_init(&f, n, 1)))
        return rc;
    memset(popped, 0, sizeof popped);
    for (;;) {
        int64_t now, until, valid;
        size_t granted;

        redislock__fan_reset(&f);
        redislock__fan_connect(&f, c, redislock__step_deadline(c, 1, hard));
        if (n == 1 && f.rc[0]) {
            /* A server that refuses the first connection is down: say so at
             * once.  Recovery is for a server lost in the middle of a call. */
            rc = redislock__err(f.rc[0], "%s", f.err[0]);
            if (rc == REDISLOCK_EIO && rec.until && recover(&rec, c, hard))
                continue;
            break;
        }
        run_round(lk, &f, redislock__step_deadline(c, 0, hard), &rd);
        if (rd.failed) {
            /* An acquire that got no answer may have run: a later "mine"
             * answer then means ours. */
            lk->uncertain = 1;
            redislock__note_masters(lk, &f);
        }
        drop_failed(lk, &f, popped);

        if (n == 1 && rd.failed) {
            rc = redislock__err(f.rc[0], "%s", f.err[0]);
            /* No answer in time means a hung or slow server: trying again
             * would only wait again.  A broken connection is retried. */
            if (rc == REDISLOCK_EIO && recover(&rec, c, hard))
                continue;
            break;
        }
        rec.until = 0;

        granted = rd.taken + rd.mine;
        /* Valid from when the round was sent (the scripts ran later) for
         * the smallest TTL granted, less the drift allowance. */
        valid = redislock__valid_until(c, rd.sent_us, rd.grant_ttl);
        now = redislock__now_us();
        if (granted >= c->quorum && (valid == 0 || valid > now)) {
            if (rd.taken == 0 && !lk->uncertain) {
                /* this owner id held it before the call */
                redislock__set_held(lk, valid);
                rc = redislock__err(REDISLOCK_EALREADY,
                                    "lock %s is already held by this owner id (%s)",
                                    redislock__qname(lk, nbuf, sizeof nbuf), lk->id);
                break;
            }
            lk->uncertain = 0;
            redislock__set_held(lk, valid);
            rc = 0;
            break;
        }
        if (granted >= c->quorum) {
            /* granted, but its validity ran out before the answers came (a
             * round slower than the expiry, or an own key about to expire):
             * give it back and go on as after a split vote */
            redislock__log(c, REDISLOCK_LOG_INFO,
                           "acquire %s: granted with %lld ms to live, but the round "
                           "took %lld ms; releasing it again",
                           redislock__qname(lk, nbuf, sizeof nbuf), rd.grant_ttl,
                           (long long)((rd.end_us - rd.sent_us) / 1000));
            rd.expired = 1;
        }
        if ((n > 1 && (rd.taken || rd.mine || rd.failed)) || rd.expired) {
            undo(lk, &f, &rd);
            drop_failed(lk, &f, NULL);
            if (!rd.expired || !rd.mine) /* nothing of this owner is left */
                lk->uncertain = 0;
        }
        if (n > 1 && n - rd.failed < c->quorum) {
            rc = redislock__err(REDISLOCK_ENOQUORUM,
                                "lock %s: only %zu of %zu masters answered (%zu "
                                "needed): %s",
                                redislock__qname(lk, nbuf, sizeof nbuf), n - rd.failed,
                                n, c->quorum, redislock__fan_summary(&f, sum, sizeof sum));
            break;
        }
        if (timeout_ms == 0) {
            describe_busy(lk, &rd, n, -1, msg, sizeof msg);
            rc = redislock__err(REDISLOCK_EBUSY, "%s", msg);
            break;
        }
        now = redislock__now_us();
        if (now >= deadline) {
            describe_busy(lk, &rd, n, (now - start) / 1000, msg, sizeof msg);
            rc = redislock__err(REDISLOCK_ETIMEDOUT, "%s", msg);
            busy_timeout = 1;
            break;
        }
        if ((n > 1 && rd.holder < 0) || rd.expired) {
            /* A split vote (or a validity used up by a slow round): a random
             * back-off breaks the symmetry between the contenders. */
            int64_t base = 3 * (rd.end_us - rd.sent_us);
            int64_t pause = 1000 + (int64_t)(redislock__random_u32() %
                                             (uint32_t)(base > 10000 ? base : 10000));
            if (now + pause > deadline)
                pause = deadline - now;
            redislock__log(c, REDISLOCK_LOG_DEBUG,
                           "acquire %s: split vote (%zu of %zu masters granted); "
                           "backing off %lld us",
                           redislock__qname(lk, nbuf, sizeof nbuf), granted, n,
                           (long long)pause);
            redislock__sleep_ms((int)((pause + 999) / 1000));
            continue;
        }
        /* Sleep until woken, the deadline, or just past the holder's
         * expiry (a holder that died pushes no wake-up). */
        until = deadline;
        if (rd.min_pttl >= 0)
            until = redislock__min_deadline(until, now + (rd.min_pttl + 1) * 1000);
        /* Woken or expired: the next round tells which applies.  Failures
         * are in f.rc; EIO means no master is left waiting. */
        rc = redislock__wait_signals(&f, lk->sig, lk->siglen, until, popped);
        for (i = 0; i < n; i++)
            if (f.rc[i]) {
                redislock__log(c, REDISLOCK_LOG_WARN, "acquire %s: %s",
                               redislock__qname(lk, nbuf, sizeof nbuf), f.err[i]);
                if (n == 1)
                    redislock__err(f.rc[i], "%s", f.err[i]);
            }
        if (n > 1 && rc == REDISLOCK_EIO) {
            /* No master is left waiting.  If none failed for I/O (which the
             * next round reconnects), they all answered the BLPOP with an
             * error (WRONGTYPE...) and will again: fail now rather than
             * spin between rounds and BLPOPs until the deadline. */
            int io = 0;
            for (i = 0; i < n; i++)
                if (f.rc[i] == REDISLOCK_EIO || f.rc[i] == REDISLOCK_ETIMEDOUT)
                    io = 1;
            if (!io) {
                redislock__note_masters(lk, &f);
                rc = redislock__err(REDISLOCK_EPROTO,
                                    "lock %s: no master can wait for a wake-up: %s",
                                    redislock__qname(lk, nbuf, sizeof nbuf),
                                    redislock__fan_summary(&f, sum, sizeof sum));
                break;
            }
        }
        /* Masters that failed while waiting are retried by the next round;
         * the wake-ups popped on the others are used by it. */
        drop_failed(lk, &f, NULL);
        if (n == 1 && f.rc[0]) {
            /* An error reply to BLPOP (WRONGTYPE: the signal key is not a
             * list; ACL) comes again on every retry: report it at once
             * instead of spinning between rounds and BLPOPs. */
            if (f.rc[0] != REDISLOCK_EIO) {
                rc = redislock__err(f.rc[0], "%s", f.err[0]);
                break;
            }
            /* the connection broke or the server stopped answering */
            if (recover(&rec, c, hard))
                continue;
            rc = redislock__err(REDISLOCK_EIO, "%s", f.err[0]);
            break;
        }
    }
    redislock__fan_put(&f);
    redislock__fan_free(&f);
    /* ETIMEDOUT only when the server answered "busy" and the time ran out;
     * a server that did not answer in time is an I/O error, whatever the
     * caller's timeout. */
    if (rc == REDISLOCK_ETIMEDOUT && !busy_timeout)
        rc = redislock__err(REDISLOCK_EIO, "%s (command timeout %d ms)",
                            redislock_last_error(), c->command_timeout_ms);
    return rc;
}
