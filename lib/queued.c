/* The queued kinds: the fair lock and the semaphore.
 *
 * Their waiters stand in a queue on the server (first come, first served)
 * and block in BLPOP on a wake-up list of their own; a release hands the
 * lock (a permit) to the first waiter for a short grant lease and pushes
 * its wake-up, and the acquire pipelined behind that waiter's BLPOP takes
 * it for the lease at once: the waiter wakes holding it, no newcomer can
 * pass, and a waiter that died loses the grant when its grant lease ends.
 * A semaphore of N lets N owners hold it at once; a fair lock is one
 * permit that also keeps python-redis-lock's lock:<name> (held by its
 * holder's id), so that python-redis-lock and the mutex see it held.
 * Leases are the server's time; the scripts are queued_lua.c's.  See
 * doc/design.md, "The fair lock and the semaphore". */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_WAITER_LEASE_MS 15000
/* a waiter renews its place every third of its lease: not too often */
#define MIN_WAITER_LEASE_MS 300
#define MIN_GRANT_LEASE_MS 10
#define MAX_LEASE_MS (24LL * 3600 * 1000)
#define MAX_PERMITS 1000000

/* lk->qkeys: holders, queue, waiters, then the semaphore's permits key or
 * the fair lock's lock-signal:<name>. */
enum { Q_HOLDERS, Q_QUEUE, Q_WAITERS, Q_LAST };

static int is_fair(const redislock *lk)
{
    return lk->kind == &redislock__kind_fair;
}

static int no_memory(void)
{
    return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
}

/* The wake-up list of this owner: the prefix and its id. */
static int wake_key(redislock *lk)
{
    if (!lk->wake)
        return no_memory();
    lk->siglen = lk->wakelen + lk->idlen;
    lk->sig = redislock__malloc(lk->siglen + 1);
    if (!lk->sig)
        return no_memory();
    memcpy(lk->sig, lk->wake, lk->wakelen);
    memcpy(lk->sig + lk->wakelen, lk->id, lk->idlen + 1);
    return 0;
}

/* Its keys are in the name's hash tag, and so is every waiter's wake-up
 * list (prefix + id): an id with a brace could make one waiter's list
 * another key of some other lock. */
static int check_id(const redislock *lk)
{
    if (strpbrk(lk->id, "{}"))
        return redislock__err(REDISLOCK_EINVAL,
                              "the owner id of a %s may not contain '{' or '}' (it names "
                              "the waiter's wake-up key): %s",
                              lk->kind->noun, lk->id);
    return 0;
}

void redislock__qkeys_free(redislock__qkeys *q)
{
    int k;
    for (k = 0; k < 6; k++)
        redislock__free(q->k[k]);
    redislock__free(q->wake);
    memset(q, 0, sizeof *q);
}

int redislock__qkeys_make(const redislock_client *c, int fair, const char *name,
                          size_t namelen, redislock__qkeys *q)
{
    static const char *const fam[] = { "lock-holders:", "lock-queue:", "lock-waiters:" };
    static const char *const suf[] = { ":holders", ":queue", ":waiters", ":token",
                                       ":permits" };
    int k, ok = 1;
    memset(q, 0, sizeof *q);
    q->fair = fair;
    q->n = fair ? 6 : 5;
    for (k = 0; k < 5; k++) {
        if (!fair)
            q->k[k] = redislock__tagged_key(c, "sem:", name, namelen, suf[k], &q->len[k]);
        else if (k < 3)
            q->k[k] = redislock__tagged_key(c, fam[k], name, namelen, "", &q->len[k]);
        else
            q->k[k] = redislock__key(c, k == 3 ? REDISLOCK__KEY_FENCE : REDISLOCK__KEY_LOCK,
                                     name, namelen, &q->len[k]);
        ok &= q->k[k] != NULL;
    }
    if (fair)
        ok &= (q->k[5] = redislock__key(c, REDISLOCK__KEY_SIGNAL, name, namelen,
                                        &q->len[5])) != NULL;
    q->wake = fair ? redislock__tagged_key(c, "lock-wake:", name, namelen, ":", &q->wakelen)
                   : redislock__tagged_key(c, "sem:", name, namelen, ":wake:", &q->wakelen);
    if (!ok || !q->wake) {
        redislock__qkeys_free(q);
        return no_memory();
    }
    return 0;
}

void redislock__qkeys_push(const redislock__qkeys *q, redislock__call *call)
{
    int k;
    for (k = 0; k < q->n; k++)
        redislock__call_key(call, q->k[k], q->len[k]);
}

/* The handle's keys from q's (which is left empty): holders, queue and
 * waiters in lk->qkeys, the fence, lk->key (the fair lock's lock:<name>;
 * the semaphore's holders key, a copy), and the last one (lock-signal,
 * permits) in lk->qkeys[Q_LAST]. */
static int take_keys(redislock *lk, redislock__qkeys *q)
{
    int k;
    for (k = 0; k < Q_LAST; k++) {
        lk->qkeys[k] = q->k[k], lk->qkeylens[k] = q->len[k];
        q->k[k] = NULL;
    }
    lk->fence = q->k[3], lk->fencelen = q->len[3];
    q->k[3] = NULL;
    lk->qkeys[Q_LAST] = q->k[q->n - 1], lk->qkeylens[Q_LAST] = q->len[q->n - 1];
    q->k[q->n - 1] = NULL;
    if (q->fair) {
        lk->key = q->k[4], lk->keylen = q->len[4];
        q->k[4] = NULL;
    } else {
        lk->keylen = q->len[0];
        lk->key = redislock__memdup(q->k[0] ? q->k[0] : lk->qkeys[Q_HOLDERS], lk->keylen);
    }
    lk->wake = q->wake, lk->wakelen = q->wakelen;
    q->wake = NULL;
    redislock__qkeys_free(q);
    return lk->key ? wake_key(lk) : no_memory();
}

static int keys(redislock *lk, const char *name, size_t namelen, const redislock_options *o)
{
    redislock__qkeys q;
    int rc;
    (void)o;
    if ((rc = check_id(lk)) || (rc = redislock__qkeys_make(lk->c, is_fair(lk), name,
                                                            namelen, &q)))
        return rc;
    return take_keys(lk, &q);
}

/* KEYS of the scripts: holders, queue, waiters, fence, then the
 * semaphore's permits key, or the fair lock's lock:<name> and
 * lock-signal:<name>. */
static void call_keys(const redislock *lk, redislock__call *call)
{
    int k;
    for (k = 0; k < Q_LAST; k++)
        redislock__call_key(call, lk->qkeys[k], lk->qkeylens[k]);
    redislock__call_key(call, lk->fence, lk->fencelen);
    if (is_fair(lk))
        redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_key(call, lk->qkeys[Q_LAST], lk->qkeylens[Q_LAST]);
}

static void acquire_call(const redislock *lk, int mode, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_q_acquire);
    call_keys(lk, call);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->expire_ms);
    redislock__call_int(call, lk->permits);
    redislock__call_int(call, lk->waiter_lease_ms);
    redislock__call_int(call, lk->grant_lease_ms);
    redislock__call_arg(call, lk->wake, lk->wakelen);
    redislock__call_int(call, (lk->fencing ? 1 : 0) | (mode == REDISLOCK__ACQ_WAIT ? 2 : 0));
}

/* Element k of r: an integer into *v (0), or -1. */
static int int_at(const redisReply *r, size_t k, long long *v)
{
    if (r->elements <= k || r->element[k]->type != REDIS_REPLY_INTEGER)
        return -1;
    *v = r->element[k]->integer;
    return 0;
}

/* The fencing token at element k: a positive integer (with fencing). */
static int token_at(const redislock *lk, const redisReply *r, size_t k, long long *tok)
{
    if (!lk->fencing)
        return 0;
    return int_at(r, k, tok) || *tok <= 0 ? -1 : 0;
}

static int permits_differ(const redislock *lk, long long server)
{
    char nbuf[300];
    return redislock__err(REDISLOCK_EINVAL,
                          "semaphore %s has %lld permits on the server, this handle %lld: "
                          "every handle of a semaphore must use the same number while it "
                          "has holders or waiters",
                          redislock__qname(lk, nbuf, sizeof nbuf), server,
                          (long long)lk->permits);
}

/* queued_lua.c's acquire answers, into master i's answer: 0, 1 for a
 * reply that is none of them, or EINVAL when the server's permits
 * differ. */
static int acquire_parse(const redislock *lk, const redisReply *r, redislock__answers *a,
                         size_t i)
{
    long long s, v;
    a->pttl[i] = -1;
    a->token[i] = 0;
    a->owner[i][0] = '\0';
    if (r->type != REDIS_REPLY_ARRAY || int_at(r, 0, &s))
        return 1;
    if (s == -1)
        return int_at(r, 1, &v) ? 1 : permits_differ(lk, v);
    if (s == REDISLOCK__ANS_TAKEN) {
        if (token_at(lk, r, 1, &a->token[i]))
            return 1;
    } else if (s == REDISLOCK__ANS_MINE) {
        if (int_at(r, 1, &a->pttl[i]) || token_at(lk, r, 2, &a->token[i]))
            return 1;
    } else if (s == REDISLOCK__ANS_BUSY) {
        if (int_at(r, 1, &a->pttl[i]) || r->elements < 7 || int_at(r, 3, &a->place) ||
            int_at(r, 4, &a->queued) || int_at(r, 5, &a->holders) ||
            int_at(r, 6, &a->left))
            return 1;
        redislock__copy_owner(a->owner[i], r->element[2], NULL);
    } else {
        return 1;
    }
    a->state[i] = (int)s;
    return 0;
}

static void release_call(const redislock *lk, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_q_release);
    call_keys(lk, call);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->permits);
    redislock__call_int(call, lk->grant_lease_ms);
    redislock__call_arg(call, lk->wake, lk->wakelen);
    redislock__call_int(call, lk->c->signal_expire_ms);
}

/* extend and the renewal: KEYS holders, waiters[, lock:<name>]. */
static void extend_as(const redislock *lk, int64_t expire_ms, int renew, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_q_extend);
    redislock__call_key(call, lk->qkeys[Q_HOLDERS], lk->qkeylens[Q_HOLDERS]);
    redislock__call_key(call, lk->qkeys[Q_WAITERS], lk->qkeylens[Q_WAITERS]);
    if (is_fair(lk))
        redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, expire_ms);
    redislock__call_arg(call, renew ? "1" : "0", 1);
}

static void extend_call(const redislock *lk, int64_t expire_ms, redislock__call *call)
{
    extend_as(lk, expire_ms, 0, call);
}

static void renew_call(const redislock *lk, redislock__call *call)
{
    extend_as(lk, lk->expire_ms, 1, call);
}

static void status_call(const redislock *lk, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_q_status);
    call_keys(lk, call);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->permits);
}

/* {holders, queued, permits, mine, owner or nil, ms left, place} */
static int status_ok(const redisReply *r)
{
    size_t k;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 7)
        return 0;
    for (k = 0; k < 7; k++)
        if (k != 4 && r->element[k]->type != REDIS_REPLY_INTEGER)
            return 0;
    return r->element[4]->type == REDIS_REPLY_STRING || r->element[4]->type == REDIS_REPLY_NIL;
}

/* One master (majority mode has no queued kinds). */
static void query(const redislock *lk, const redislock__fanout *f, size_t quorum,
                  redislock_info *info, redislock_queue_info *qi)
{
    const redisReply *r = f->replies[0];
    (void)quorum;
    qi->kind = lk->kind->id;
    qi->holders = r->element[0]->integer;
    qi->queued = r->element[1]->integer;
    qi->permits = r->element[2]->integer;
    qi->position = r->element[6]->integer;
    info->held = qi->holders > 0;
    info->mine = r->element[3]->integer != 0;
    if (info->held && r->element[4]->type == REDIS_REPLY_STRING) {
        redislock__copy_owner(info->owner, r->element[4], &info->owner_truncated);
        info->ttl_ms = r->element[5]->integer;
    }
}

const redislock__kind redislock__kind_fair = {
    "fair lock", REDISLOCK_KIND_FAIR, 0, 1, keys, acquire_call, acquire_parse,
    release_call, extend_call, renew_call, status_call, status_ok, query,
};

const redislock__kind redislock__kind_semaphore = {
    "semaphore", REDISLOCK_KIND_SEMAPHORE, 0, 1, keys, acquire_call, acquire_parse,
    release_call, extend_call, renew_call, status_call, status_ok, query,
};

/* A lease option: 0 (the default) or within [lo, MAX_LEASE_MS]. */
static int check_lease(const char *what, int64_t v, int64_t lo)
{
    if (v == 0 || (v >= lo && v <= MAX_LEASE_MS))
        return 0;
    return redislock__err(REDISLOCK_EINVAL, "%s %lld is out of range (0 for the default, "
                          "else %lld to %lld)", what, (long long)v, (long long)lo,
                          (long long)MAX_LEASE_MS);
}

int redislock__queued_check(const redislock_client *c, const redislock_options *o)
{
    const char *noun = o->permits ? "semaphore" : "fair lock";
    int rc;
    if (o->permits < 0 || o->permits > MAX_PERMITS)
        return redislock__err(REDISLOCK_EINVAL, "permits %d is out of range (0 for a lock, "
                              "1 to %d for a semaphore)", o->permits, MAX_PERMITS);
    if (c->nmasters > 1)
        return redislock__err(REDISLOCK_ENOTSUP,
                              "a %s needs one master (a server, a Sentinel service or a "
                              "cluster): majority mode (%zu masters) cannot keep one queue "
                              "of waiters", noun, c->nmasters);
    if (o->expire_ms == 0)
        return redislock__err(REDISLOCK_EINVAL,
                              "a %s needs an expiry (expire_ms): each holder's hold is a "
                              "lease that ends when the holder dies", noun);
    if ((rc = check_lease("waiter_lease_ms", o->waiter_lease_ms, MIN_WAITER_LEASE_MS)) ||
        (rc = check_lease("grant_lease_ms", o->grant_lease_ms, MIN_GRANT_LEASE_MS)))
        return rc;
    return 0;
}

void redislock__kind_leases(redislock *lk, const redislock_options *o)
{
    lk->permits = o->permits ? o->permits : 1;
    lk->waiter_lease_ms = o->waiter_lease_ms ? o->waiter_lease_ms : DEFAULT_WAITER_LEASE_MS;
    lk->grant_lease_ms = o->grant_lease_ms ? o->grant_lease_ms : REDISLOCK__GRANT_LEASE_MS;
}
