/* The mutex: python-redis-lock's lock, the first kind of lock.
 *
 * Keys (keys.c): lock:<name> holds the holder's owner id (with an optional
 * expiry), lock-signal:<name> is the list a release pushes one wake-up
 * into, and lock-fence:<name> is the fencing counter of a lock made with
 * fencing.  The scripts are those of scripts.c, sent byte for byte as
 * before the kinds existed: python-redis-lock peers and older copies of
 * this library see nothing new on the wire. */
#include "internal.h"

#include <hiredis.h>
#include <string.h>

static int keys(redislock *lk, const char *name, size_t namelen, const redislock_options *o)
{
    const redislock_client *c = lk->c;
    lk->key = redislock__key(c, REDISLOCK__KEY_LOCK, name, namelen, &lk->keylen);
    lk->sig = redislock__key(c, REDISLOCK__KEY_SIGNAL, name, namelen, &lk->siglen);
    if (o->fencing)
        lk->fence = redislock__key(c, REDISLOCK__KEY_FENCE, name, namelen, &lk->fencelen);
    if (!lk->key || !lk->sig || (o->fencing && !lk->fence))
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    return 0;
}

static void acquire_call(const redislock *lk, int mode, redislock__call *call)
{
    (void)mode; /* a waiter of the mutex is not queued: a try is a round */
    /* without fencing: the script and arguments as before fencing existed */
    redislock__call_init(call, lk->fence ? &redislock__script_acquire_fenced
                                         : &redislock__script_acquire);
    redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_key(call, lk->sig, lk->siglen);
    if (lk->fence)
        redislock__call_key(call, lk->fence, lk->fencelen);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->expire_ms);
}

/* Element k of r as a fencing token: a positive integer. */
static int token_at(const redisReply *r, size_t k, long long *token)
{
    if (r->elements <= k || r->element[k]->type != REDIS_REPLY_INTEGER ||
        r->element[k]->integer <= 0)
        return -1;
    *token = r->element[k]->integer;
    return 0;
}

/* The one place that reads the acquire script's reply (both scripts):
 *   {1}             taken               {1, token}       with fencing
 *   {2, pttl}       this id holds it    {2, pttl, token} with fencing
 *   {0, pttl, owner} busy
 * into master i's answer.  1 if it is none of these. */
static int acquire_parse(const redislock *lk, const redisReply *r, redislock__answers *a,
                         size_t i)
{
    int s, fenced = lk->fence != NULL;
    a->pttl[i] = -1;
    a->token[i] = 0;
    a->owner[i][0] = '\0';
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return 1;
    s = (int)r->element[0]->integer;
    if (s == REDISLOCK__ANS_TAKEN) {
        if (fenced && token_at(r, 1, &a->token[i]))
            return 1;
        a->state[i] = s;
        return 0;
    }
    if ((s != REDISLOCK__ANS_BUSY && s != REDISLOCK__ANS_MINE) || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return 1;
    if (s == REDISLOCK__ANS_MINE && fenced && token_at(r, 2, &a->token[i]))
        return 1;
    a->state[i] = s;
    a->pttl[i] = r->element[1]->integer;
    if (s == REDISLOCK__ANS_BUSY)
        redislock__copy_owner(a->owner[i], r->elements > 2 ? r->element[2] : NULL, NULL);
    return 0;
}

static void release_call(const redislock *lk, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_release);
    redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_key(call, lk->sig, lk->siglen);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->c->signal_expire_ms);
}

static void extend_call(const redislock *lk, int64_t expire_ms, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_extend);
    redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, expire_ms);
}

static void renew_call(const redislock *lk, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_renew);
    redislock__call_key(call, lk->key, lk->keylen);
    redislock__call_arg(call, lk->id, lk->idlen);
    redislock__call_int(call, lk->expire_ms);
}

static void status_call(const redislock *lk, redislock__call *call)
{
    redislock__call_init(call, &redislock__script_status);
    redislock__call_key(call, lk->key, lk->keylen);
}

/* {owner or nil, pttl} */
static int status_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[1]->type == REDIS_REPLY_INTEGER;
}

/* Majority mode: the remaining TTL of a lock held on the given masters is
 * the quorum-th largest of their PTTLs (-1 counts as for ever). */
static long long quorum_ttl(long long *pttls, size_t n, size_t quorum)
{
    size_t i, j;
    for (i = 0; i < n; i++) /* sort, largest first, -1 above all */
        for (j = i + 1; j < n; j++) {
            long long a = pttls[i] < 0 ? (1LL << 62) : pttls[i];
            long long b = pttls[j] < 0 ? (1LL << 62) : pttls[j];
            if (b > a) {
                long long tmp = pttls[i];
                pttls[i] = pttls[j];
                pttls[j] = tmp;
            }
        }
    return pttls[quorum - 1];
}

/* The owner found on most masters, if it has a quorum. */
static void query(const redislock *lk, const redislock__fanout *f, size_t quorum,
                  redislock_info *info, redislock_queue_info *qi)
{
    long long pttls[REDISLOCK__MAX_MASTERS];
    size_t i, j, best = 0;
    int besti = -1;
    for (i = 0; i < f->n; i++) {
        size_t count = 0;
        const redisReply *o = f->rc[i] ? NULL : f->replies[i]->element[0];
        if (!o || o->type != REDIS_REPLY_STRING)
            continue;
        for (j = 0; j < f->n; j++) {
            const redisReply *p = f->rc[j] ? NULL : f->replies[j]->element[0];
            if (p && p->type == REDIS_REPLY_STRING && p->len == o->len &&
                !memcmp(p->str, o->str, o->len))
                pttls[count++] = f->replies[j]->element[1]->integer;
        }
        if (count > best) {
            best = count;
            besti = (int)i;
            if (count >= quorum)
                info->ttl_ms = quorum_ttl(pttls, count, quorum);
        }
    }
    if (besti >= 0 && best >= quorum) {
        const redisReply *o = f->replies[besti]->element[0];
        info->held = 1;
        redislock__copy_owner(info->owner, o, &info->owner_truncated);
        info->mine = o->len == lk->idlen && !memcmp(o->str, lk->id, lk->idlen);
    } else {
        info->ttl_ms = 0;
    }
    qi->kind = REDISLOCK_KIND_MUTEX;
    qi->holders = info->held;
    qi->permits = 1; /* its waiters are not queued: queued, position 0 */
}

const redislock__kind redislock__kind_mutex = {
    "lock", REDISLOCK_KIND_MUTEX, 1, 0, keys, acquire_call, acquire_parse, release_call, extend_call,
    renew_call, status_call, status_ok, query,
};
