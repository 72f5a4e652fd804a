/* The handle's operations: acquire (entry point), release, extend, query.
 * Each sends its script to every master at once (fan.c); with one master
 * the answer is that master's, with N it is the quorum's. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* Per-master integer answers of a fan-out, counted. */
typedef struct tally {
    size_t count[4];   /* answers 0..3 */
    size_t failed;     /* no answer, or not an integer */
} tally;

static void count_ints(redislock__fanout *f, const char *what, tally *t)
{
    size_t i;
    memset(t, 0, sizeof *t);
    for (i = 0; i < f->n; i++) {
        const redisReply *r = f->replies[i];
        if (!f->rc[i] && r->type == REDIS_REPLY_INTEGER && r->integer == 0 &&
            redislock__fan_unacked(f, i)) {
            redislock__fan_fail_unacked(f, i); /* done, but not on replicas */
            t->failed++;
            continue;
        }
        if (!f->rc[i] && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 &&
            r->integer <= 3) {
            t->count[r->integer]++;
            continue;
        }
        if (!f->rc[i])
            redislock__fan_reply_fail(f, i, r, what);
        t->failed++;
    }
}

/* The error of the only master, with "no reply in time" as an I/O error. */
static int single_error(const redislock__fanout *f, const redislock_client *c)
{
    if (f->rc[0] == REDISLOCK_ETIMEDOUT)
        return redislock__err(REDISLOCK_EIO, "%s (command timeout %lld ms)", f->err[0],
                              (long long)c->command_timeout_ms);
    return redislock__err(f->rc[0], "%s", f->err[0]);
}

static int not_held(const redislock *lk, const char *where)
{
    char nbuf[300];
    return redislock__err(REDISLOCK_ENOTHELD,
                          "%s %s is not held by %s%s (it expired, was reset, "
                          "or was never acquired)",
                          lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf), lk->id, where);
}

static int no_quorum(const redislock *lk, const redislock__fanout *f, const char *op,
                     size_t failed)
{
    char nbuf[300], sum[600];
    return redislock__err(REDISLOCK_ENOQUORUM,
                          "%s of lock %s: %zu of %zu masters failed (%zu needed): %s", op,
                          redislock__qname(lk, nbuf, sizeof nbuf), failed, f->n,
                          lk->c->quorum, redislock__fan_summary(f, sum, sizeof sum));
}

int redislock_acquire(redislock *lk, int64_t timeout_ms)
{
    int64_t t0 = redislock__stats_start();
    int rc;
    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_acquire: lock is NULL");
    lk->master_errors[0] = '\0';
    if (timeout_ms < -1)
        return redislock__finish(lk, redislock__err(REDISLOCK_EINVAL,
                                                    "timeout_ms %lld is invalid (-1 "
                                                    "waits for ever, 0 tries once)",
                                                    (long long)timeout_ms));
    (void)redislock__renew_watch(lk->c); /* again after a fork */
    rc = redislock__acquire(lk, timeout_ms);
    if (rc == 0 && lk->rn.enabled && (rc = redislock__renew_add(lk))) {
        /* cannot keep it alive: do not keep it at all */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", redislock_last_error());
        redislock_release(lk);
        rc = redislock__err(rc, "%s; the lock was released again", msg);
    }
    redislock__stats_acquired(lk, rc, t0);
    return redislock__finish(lk, rc);
}

int redislock_try_acquire(redislock *lk)
{
    return redislock_acquire(lk, 0);
}

int redislock_release(redislock *lk)
{
    redislock_client *c;
    redislock__fanout f;
    redislock__call call;
    tally t;
    int rc, lost;
    int64_t expires;
    char nbuf[300];

    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_release: lock is NULL");
    c = lk->c;
    redislock__renew_remove(lk); /* at once: no renewal after this point */
    lk->kind->release_call(lk, &call);
    /* a cluster slot in migration answers TRYAGAIN to the two-key script
     * until it is closed, a failover redirects: retried while the lock is
     * valid */
    expires = redislock__expiry(lk);
    rc = redislock__fan_once_until(&f, c, &call, lk->key, lk->keylen, 0, expires);
    redislock__call_free(&call);
    if (rc)
        return redislock__finish(lk, rc);
    count_ints(&f, "release", &t);
    redislock__note_masters(lk, &f);
    if (c->nmasters == 1 && t.failed && f.ran_out[0]) {
        /* retried until its validity ran out (f.ran_out is only set when
         * the limit was `expires`, not a timeout): it expires on the
         * server by itself; lost, not released */
        redislock__clear_held(lk);
        redislock__set_token(lk, 0);
        lk->uncertain = 0;
        redislock__set_lost(lk, REDISLOCK_LOST_EXPIRED);
        rc = redislock__err(REDISLOCK_ENOTHELD, "%s %s was lost before the release: the "
                            "server still redirected it or asked to try again when the "
                            "lock's validity ran out (%s)",
                            lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf), f.err[0]);
    } else if (c->nmasters == 1 && t.failed) {
        rc = single_error(&f, c);
    } else {
        /* answered: whatever happened, this handle no longer holds it */
        redislock__stats_released(lk);
        redislock__clear_held(lk);
        redislock__set_token(lk, 0);
        lk->uncertain = 0;
        lost = redislock_lost_reason(lk);
        if (lost) /* reported lost: not held, whatever the masters said now */
            rc = redislock__err(REDISLOCK_ENOTHELD,
                                "%s %s was lost before the release: %s",
                                lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf),
                                redislock_lost_reason_string(lost));
        else if (t.count[0] >= c->quorum)
            rc = 0;
        else if (t.failed > c->nmasters - c->quorum)
            rc = no_quorum(lk, &f, "release", t.failed);
        else
            rc = not_held(lk, c->nmasters > 1 ? " on a quorum of masters" : "");
    }
    redislock__fan_free(&f);
    return redislock__finish(lk, rc);
}

/* A lock that its renewal gave up (max_hold_ms, heartbeat_ms) is still this
 * owner's on the server until it expires, but the handle must not extend
 * it: that would undo the cap.  ENOTHELD then, else 0. */
static int given_up(const redislock *lk)
{
    char nbuf[300];
    int lost = redislock_lost_reason(lk);
    if (lost != REDISLOCK_LOST_MAX_HOLD && lost != REDISLOCK_LOST_NO_HEARTBEAT)
        return 0;
    return redislock__err(REDISLOCK_ENOTHELD,
                          "%s %s was given up by its renewal (%s); acquire it "
                          "again to hold it",
                          lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf),
                          redislock_lost_reason_string(lost));
}

int redislock_extend(redislock *lk, int64_t expire_ms)
{
    redislock_client *c;
    redislock__fanout f;
    redislock__call call;
    tally t;
    int64_t sent, valid;
    int rc;
    char nbuf[300];

    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_extend: lock is NULL");
    c = lk->c;
    if (expire_ms < 0)
        return redislock__finish(lk, redislock__err(REDISLOCK_EINVAL,
                                                    "expire_ms is negative (%lld)",
                                                    (long long)expire_ms));
    if (expire_ms > REDISLOCK__MAX_EXPIRE_MS)
        return redislock__finish(lk, redislock__err(REDISLOCK_EINVAL,
                                                    "expire_ms %lld is too large (at "
                                                    "most %lld)",
                                                    (long long)expire_ms,
                                                    (long long)REDISLOCK__MAX_EXPIRE_MS));
    if ((rc = given_up(lk)))
        return redislock__finish(lk, rc);
    if (expire_ms == 0)
        expire_ms = lk->expire_ms;
    if (expire_ms == 0)
        return redislock__finish(lk, redislock__err(REDISLOCK_EINVAL,
                                                    "extend needs an expiry: the "
                                                    "handle has none and expire_ms "
                                                    "is 0"));
    lk->kind->extend_call(lk, expire_ms, &call);
    /* A renewal in flight may reach the server after this extend: its
     * result must not set the local expiry after ours.  Renewal stops here
     * and resumes from this extend's answer. */
    redislock__renew_remove(lk);
    sent = redislock__now_us();
    rc = redislock__fan_once(&f, c, &call, lk->key, lk->keylen, 1);
    redislock__call_free(&call);
    valid = redislock__valid_until(c, sent, expire_ms);
    if (rc) {
        redislock__lower_expiry(lk, valid); /* it may have run */
        redislock__renew_resume(lk, sent, expire_ms);
        return redislock__finish(lk, rc);
    }
    count_ints(&f, "extend", &t);
    redislock__note_masters(lk, &f);
    if (t.failed)
        redislock__lower_expiry(lk, valid); /* where no answer came, it may have run */
    if (c->nmasters == 1 && t.failed) {
        rc = single_error(&f, c);
    } else if (t.count[0] >= c->quorum && redislock__now_us() < valid) {
        if (!redislock_lost_reason(lk) && __atomic_load_n(&lk->held, __ATOMIC_SEQ_CST))
            redislock__set_expiry(lk, valid);
        rc = 0;
    } else if (t.count[2] >= c->quorum) {
        rc = redislock__err(REDISLOCK_ENOTEXPIRABLE, "lock %s was acquired without expiry",
                            redislock__qname(lk, nbuf, sizeof nbuf));
    } else if (t.failed > c->nmasters - c->quorum) {
        rc = no_quorum(lk, &f, "extend", t.failed);
    } else {
        /* held on fewer than a quorum, or extended too late to count: not
         * held any more */
        redislock__clear_held(lk);
        rc = t.count[0] >= c->quorum
                 ? redislock__err(REDISLOCK_ENOTHELD,
                                  "%s %s: extended, but the validity ran out before "
                                  "the answers came",
                                  lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf))
                 : not_held(lk, c->nmasters > 1 ? " on a quorum of masters" : "");
    }
    if (redislock_held(lk))
        redislock__renew_resume(lk, sent, expire_ms);
    redislock__fan_free(&f);
    return redislock__finish(lk, rc);
}

/* The status call of lk's kind and its verdict: *info and *qi. */
static int query(redislock *lk, redislock_info *info, redislock_queue_info *qi)
{
    redislock_client *c = lk->c;
    redislock__fanout f;
    redislock__call call;
    size_t i, failed = 0;
    int rc;

    memset(info, 0, sizeof *info);
    memset(qi, 0, sizeof *qi);
    lk->kind->status_call(lk, &call);
    rc = redislock__fan_once(&f, c, &call, lk->key, lk->keylen, 0);
    redislock__call_free(&call);
    if (rc)
        return redislock__finish(lk, rc);
    for (i = 0; i < f.n; i++) {
        const redisReply *r = f.replies[i];
        if (!f.rc[i] && !lk->kind->status_ok(r))
            redislock__fan_reply_fail(&f, i, r, "status script");
        if (f.rc[i])
            failed++;
    }
    redislock__note_masters(lk, &f);
    if (c->nmasters == 1 && failed)
        rc = single_error(&f, c);
    else if (failed > c->nmasters - c->quorum)
        rc = no_quorum(lk, &f, "query", failed);
    else
        lk->kind->query(lk, &f, c->quorum, info, qi);
    redislock__fan_free(&f);
    return redislock__finish(lk, rc);
}

int redislock_query(redislock *lk, redislock_info *info)
{
    redislock_queue_info qi;
    redislock__err_clear();
    if (!lk || !info)
        return redislock__err(REDISLOCK_EINVAL, "redislock_query: %s is NULL",
                              lk ? "info" : "lock");
    return query(lk, info, &qi);
}

int redislock_query_queue(redislock *lk, redislock_queue_info *qi, redislock_info *info)
{
    redislock_queue_info v;
    redislock_info in;
    unsigned version;
    int rc;
    redislock__err_clear();
    if (!lk || !qi)
        return redislock__err(REDISLOCK_EINVAL, "redislock_query_queue: %s is NULL",
                              lk ? "qi" : "lock");
    version = qi->version;
    if (version > REDISLOCK_QUEUE_INFO_VERSION)
        return redislock__finish(lk, redislock__err(REDISLOCK_EINVAL,
                                                    "queue info version %u is newer than "
                                                    "this library (%d)", version,
                                                    REDISLOCK_QUEUE_INFO_VERSION));
    rc = query(lk, info ? info : &in, &v);
    if (rc == 0) {
        /* version 1 (and 0, the same) is the whole struct so far */
        *qi = v;
        qi->version = version;
    }
    return rc;
}
