/* What one acquire round means: a pure function of the masters' answers
 * and the call's situation (no I/O, no clock, no randomness of its own), so
 * that the quorum and validity rules read as one table and are tested from
 * tables (tests/unit/test_decide.c).  acquire.c runs the steps it asks for.
 *
 * In order:
 *   - one master that did not answer: ROUND_FAILED (retried or reported);
 *   - a quorum granted ("taken" or "mine") and the validity, counted from
 *     the round's send for the smallest TTL granted less the drift
 *     allowance, is still ahead: HELD, or ALREADY when this owner id held it
 *     before the call on every granting master (and no earlier reply of
 *     ours was lost: then "mine" is our own grant), with the fencing token
 *     of the grant (fencing needs one master: the largest is that one's);
 *   - a quorum granted by acquires pipelined behind a wait that lasted
 *     more than half the TTL: CONFIRM (one more round reads the key's
 *     PTTL: "mine", counted as ours);
 *   - a quorum granted too late: undo what the round took, back off, retry;
 *   - majority mode, not held: undo what this owner may hold;
 *   - fewer than a quorum answered: NO_QUORUM;
 *   - a try: BUSY; past the deadline: TIMED_OUT;
 *   - nobody holds a quorum (a split vote): BACK_OFF for a random time;
 *   - else WAIT for a wake-up, until the deadline or until the lock can be
 *     free without one (a holder that died pushes none): half a
 *     millisecond past the PTTL of the busy key whose expiry leaves a
 *     quorum free (see free_at()). */
#include "internal.h"

#include <string.h>

static void count(const redislock__answers *a, int64_t expire_ms, redislock__decision *d)
{
    size_t i;
    for (i = 0; i < a->n; i++) {
        int s = a->state[i];
        long long ttl = a->pttl[i];
        if (s == REDISLOCK__ANS_FAILED) {
            d->failed++;
            continue;
        }
        if (s == REDISLOCK__ANS_BUSY) {
            d->busy++;
            continue;
        }
        /* "mine" keeps the key's own TTL, which may be shorter than the
         * expiry: the grant is valid no longer than that */
        if (s == REDISLOCK__ANS_TAKEN) {
            d->taken++;
            ttl = expire_ms > 0 ? (long long)expire_ms : -1;
        } else {
            d->mine++;
        }
        if (ttl >= 0 && (d->grant_ttl < 0 || ttl < d->grant_ttl))
            d->grant_ttl = ttl;
        if (a->token[i] > d->token)
            d->token = a->token[i];
    }
}

/* Does one other owner hold a quorum?  (Then it is worth waiting for its
 * release; otherwise it is a split vote.) */
static void find_holder(const redislock__answers *a, redislock__decision *d)
{
    size_t i, j;
    for (i = 0; i < a->n; i++) {
        size_t k = 0;
        if (a->state[i] != REDISLOCK__ANS_BUSY)
            continue;
        for (j = 0; j < a->n; j++)
            if (a->state[j] == REDISLOCK__ANS_BUSY && !strcmp(a->owner[i], a->owner[j]))
                k++;
        if (k > d->holder_count) {
            d->holder_count = k;
            d->holder = k >= a->quorum ? (int)i : -1;
        }
    }
}

/* A busy answer's PTTL counts whole milliseconds, truncated (Redis
 * expires a key once its clock's millisecond is past the expiry's), so
 * the key goes between PTTL and PTTL + 1 ms after the script read it, at
 * some moment of the round.  A wait that ended past the whole millisecond
 * (it used to end at PTTL + 1 ms) found the key gone 0.5 ms late on
 * average, up to 1 ms.  It ends half a millisecond past the PTTL instead:
 * the key is gone by then about half the time.  Otherwise the acquire
 * behind the wait reads PTTL 0, and the next wait ends when the first
 * answer says the key is gone at the latest (PTTL + 1 ms past it: the
 * decision's gone_by, passed on to the next one), or half a millisecond
 * after that read if sooner.  So each wait ends at most about half a
 * millisecond after the key went, two per expiry.  gone_by counts only
 * for the same key: while it lies ahead and this answer's earliest expiry
 * (its send + PTTL) comes before it; a bound that passed with the key
 * still there (the clocks drifted apart, or another key) is dropped, and
 * a read of PTTL 0 alone bounds the expiry within 1 ms: a third wait at
 * most.  This holds for any expiry, not only a crashed holder's: a key
 * that outlives its PTTL by a fraction of a millisecond is retried within
 * half a millisecond, not a whole one. */
#define PAST_PTTL_US 500

/* Majority mode: the key of a busy master must expire for each master a
 * quorum still lacks (the masters that answered "taken" or "mine" are
 * there already, failed ones are not), so the lock can be free when the
 * need-th smallest busy PTTL runs out, not the smallest: waking at that
 * one only took a master, gave it back, and waited again.  One master:
 * its PTTL.  -1 when no such expiry is known (keys without one). */
static long long free_at(const redislock__answers *a, const redislock__decision *d)
{
    long long ttl[REDISLOCK__MAX_MASTERS];
    size_t i, j, k = 0, there = a->n - d->busy - d->failed, need;
    if (there >= a->quorum)
        return -1; /* not a wait */
    need = a->quorum - there;
    for (i = 0; i < a->n; i++) {
        if (a->state[i] != REDISLOCK__ANS_BUSY || a->pttl[i] < 0)
            continue;
        for (j = k++; j > 0 && ttl[j - 1] > a->pttl[i]; j--) /* sorted */
            ttl[j] = ttl[j - 1];
        ttl[j] = a->pttl[i];
    }
    return need >= 1 && need <= k ? ttl[need - 1] : -1;
}

/* WAIT for the expiry of the key with PTTL d->free_pttl (see above). */
static void wait_for_expiry(const redislock__answers *a, const redislock__decide_in *in,
                            redislock__decision *d)
{
    int64_t now = in->now_us, pttl_us = d->free_pttl * 1000;
    d->gone_by = now + pttl_us + 1000;
    if (in->gone_by > now && in->gone_by < d->gone_by && a->sent_us + pttl_us < in->gone_by)
        d->gone_by = in->gone_by; /* an earlier answer about the same key */
    d->until = redislock__min_deadline(
        d->until, redislock__min_deadline(now + pttl_us + PAST_PTTL_US, d->gone_by));
}

/* Not held: what next (no quorum, busy, timed out, back off, wait). */
static void not_held(const redislock__answers *a, const redislock__decide_in *in,
                     redislock__decision *d)
{
    int64_t now = in->now_us;
    if (a->n > 1 && a->n - d->failed < a->quorum) {
        d->verdict = REDISLOCK__NO_QUORUM;
    } else if (in->timeout_ms == 0) {
        d->verdict = REDISLOCK__BUSY;
    } else if (now >= in->deadline) {
        d->verdict = REDISLOCK__TIMED_OUT;
    } else if ((a->n > 1 && d->holder < 0) || d->late) {
        /* a random back-off breaks the symmetry between the contenders,
         * scaled by how long the round took (for the answers of a wait,
         * from its wake-up on: not the whole wait) */
        int64_t base = 3 * (a->end_us - (a->woke_us ? a->woke_us : a->sent_us));
        int64_t pause = 1000 + (int64_t)(in->jitter % (uint32_t)(base > 10000 ? base : 10000));
        d->verdict = REDISLOCK__BACK_OFF;
        d->until = redislock__min_deadline(now + pause, in->deadline);
    } else {
        d->verdict = REDISLOCK__WAIT;
        d->until = in->deadline;
        d->free_pttl = free_at(a, d);
        if (d->free_pttl >= 0)
            wait_for_expiry(a, in, d);
    }
}

void redislock__decide(const redislock__answers *a, const redislock__decide_in *in,
                       redislock__decision *d)
{
    memset(d, 0, sizeof *d);
    d->free_pttl = -1;
    d->grant_ttl = -1;
    d->holder = -1;
    count(a, in->expire_ms, d);
    find_holder(a, d);
    if (a->n == 1 && d->failed) {
        d->verdict = REDISLOCK__ROUND_FAILED;
        return;
    }
    if (d->taken + d->mine >= a->quorum) {
        d->valid_until = redislock__local_expiry(in->drift_ppm, a->sent_us, d->grant_ttl);
        if (in->pipelined && d->valid_until != 0 &&
            d->valid_until - in->now_us < d->grant_ttl * 1000 / 2) {
            /* granted when a long wait ended: the grant is only known to
             * be no older than the send, so less than half its TTL is left
             * for sure; ask the key's own PTTL instead of using it so */
            d->verdict = REDISLOCK__CONFIRM;
            return;
        }
        if (d->valid_until == 0 || d->valid_until > in->now_us) {
            d->verdict = d->taken == 0 && !in->uncertain ? REDISLOCK__ALREADY
                                                         : REDISLOCK__HELD;
            return;
        }
        d->late = 1; /* its validity ran out before the answers came */
        d->valid_until = 0;
    }
    /* what this owner may hold: a late grant gives back only what this
     * round took; in majority mode, everything not another owner's */
    d->undo = d->late || (a->n > 1 && (d->taken || d->mine || d->failed));
    not_held(a, in, d);
}
