/* Lock handles: acquire, wait, release, extend and query on one master.
 *
 * acquire is a loop over two steps, both on one pooled connection:
 *   1. the acquire script: "acquired", or the holder's id and PTTL;
 *   2. BLPOP on the signal key for no longer than min(deadline, PTTL),
 *      timed by the client (wait.c);
 * with one monotonic deadline over all of it.  See doc/design.md. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* What the acquire script said. */
enum { ACQ_BUSY = 0, ACQ_TAKEN = 1, ACQ_MINE = 2 };

typedef struct acq_result {
    int state;
    long long pttl;          /* holder's remaining ms; -1: no expiry */
    char owner[REDISLOCK_ID_MAX + 1];
    int64_t sent_us;         /* when the script was sent */
} acq_result;

static void set_held(redislock *lk, int v)
{
    __atomic_store_n(&lk->held, v, __ATOMIC_SEQ_CST);
}

void redislock__set_held(redislock *lk, int64_t expires_us)
{
    __atomic_store_n(&lk->expires_us, expires_us, __ATOMIC_SEQ_CST);
    __atomic_store_n(&lk->lost_reason, 0, __ATOMIC_SEQ_CST);
    set_held(lk, 1);
}

int redislock__set_lost(redislock *lk, int reason)
{
    int none = 0;
    set_held(lk, 0);
    return __atomic_compare_exchange_n(&lk->lost_reason, &none, reason, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* The local expiry of a lock whose acquire/extend was sent at sent_us. */
static int64_t expiry_from(const redislock *lk, int64_t sent_us, int64_t expire_ms)
{
    return expire_ms > 0 ? sent_us + expire_ms * 1000 : 0;
}

/* Record the outcome of an API call on the handle. */
static int finish(redislock *lk, int rc)
{
    if (rc < 0)
        snprintf(lk->errmsg, sizeof lk->errmsg, "%s", redislock_last_error());
    else
        lk->errmsg[0] = '\0';
    return rc;
}

static const char *qname(const redislock *lk, char *buf, size_t len)
{
    return redislock__quote(lk->name, lk->namelen, buf, len);
}

static void copy_owner(char *dst, const redisReply *r, int *truncated)
{
    size_t n = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        n = r->len > REDISLOCK_ID_MAX ? REDISLOCK_ID_MAX : r->len;
        memcpy(dst, r->str, n);
        if (truncated)
            *truncated = r->len > REDISLOCK_ID_MAX;
    }
    dst[n] = '\0';
}

/* ------------------------------------------------------------ handles */

int redislock_new(redislock **out, redislock_client *c, const char *name,
                  const redislock_options *opts)
{
    static const redislock_options defaults = REDISLOCK_OPTIONS_INIT;
    const redislock_options *o = opts ? opts : &defaults;
    redislock *lk;
    size_t namelen;
    int rc;

    redislock__err_clear();
    if (!out)
        return redislock__err(REDISLOCK_EINVAL, "redislock_new: out is NULL");
    *out = NULL;
    if (!c)
        return redislock__err(REDISLOCK_EINVAL, "redislock_new: client is NULL");
    if (!name || !*name)
        return redislock__err(REDISLOCK_EINVAL, "the lock name is %s",
                              name ? "empty" : "NULL");
    namelen = strlen(name);
    if (namelen > REDISLOCK_NAME_MAX)
        return redislock__err(REDISLOCK_EINVAL,
                              "the lock name is %zu bytes; at most %d are allowed",
                              namelen, REDISLOCK_NAME_MAX);
    if (o->version > REDISLOCK_OPTIONS_VERSION)
        return redislock__err(REDISLOCK_EINVAL,
                              "lock options version %u is newer than this "
                              "library (%d)",
                              o->version, REDISLOCK_OPTIONS_VERSION);
    if (o->expire_ms < 0)
        return redislock__err(REDISLOCK_EINVAL, "expire_ms is negative (%lld)",
                              (long long)o->expire_ms);
    if (o->id && (rc = redislock__check_id(o->id, "the owner id")))
        return rc;
    if (c->nmasters > 1 && o->expire_ms == 0)
        return redislock__err(REDISLOCK_EINVAL,
                              "majority mode (%zu masters) needs an expiry: "
                              "expire_ms is 0", c->nmasters);
    if (c->nmasters > 1)
        return redislock__err(REDISLOCK_ENOTSUP,
                              "majority mode is not implemented yet");
    if (o->auto_renew && o->expire_ms == 0)
        return redislock__err(REDISLOCK_EINVAL,
                              "auto_renew needs an expiry: expire_ms is 0");
    if (o->renew_interval_ms < 0 ||
        (o->auto_renew && o->renew_interval_ms >= o->expire_ms))
        return redislock__err(REDISLOCK_EINVAL,
                              "renew_interval_ms %lld must be between 0 (the "
                              "default, expire_ms/3) and expire_ms (%lld)",
                              (long long)o->renew_interval_ms,
                              (long long)o->expire_ms);

    lk = redislock__calloc(1, sizeof *lk);
    if (!lk)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    lk->c = c;
    lk->expire_ms = o->expire_ms;
    lk->auto_renew = o->auto_renew != 0;
    lk->renew_interval_ms = o->renew_interval_ms ? o->renew_interval_ms
                                                 : (o->expire_ms + 2) / 3;
    lk->on_lost = o->on_lost;
    lk->on_lost_userdata = o->on_lost_userdata;
    lk->heap_idx = REDISLOCK__NOT_SCHEDULED;
    lk->namelen = namelen;
    lk->name = redislock__memdup(name, namelen);
    lk->key = redislock__key(c, 0, name, namelen, &lk->keylen);
    lk->sig = redislock__key(c, 1, name, namelen, &lk->siglen);
    if (!lk->name || !lk->key || !lk->sig) {
        redislock_free(lk);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    }
    if (o->id) {
        lk->id = redislock__strdup(o->id);
        if (!lk->id) {
            redislock_free(lk);
            return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
        }
    } else if ((rc = redislock__random_id(o->id_prefix, &lk->id))) {
        redislock_free(lk);
        return rc;
    }
    lk->idlen = strlen(lk->id);
    *out = lk;
    return 0;
}

void redislock_free(redislock *lk)
{
    if (!lk)
        return;
    if (lk->renew_registered && redislock__renew_detach(lk))
        return; /* freed by the renewal thread after the callback */
    redislock__lock_destroy(lk);
}

void redislock__lock_destroy(redislock *lk)
{
    redislock__free(lk->name);
    redislock__free(lk->key);
    redislock__free(lk->sig);
    redislock__free(lk->id);
    redislock__free(lk);
}

const char *redislock_name(const redislock *lk)
{
    return lk ? lk->name : NULL;
}

const char *redislock_id(const redislock *lk)
{
    return lk ? lk->id : NULL;
}

const char *redislock_errmsg(const redislock *lk)
{
    return lk ? lk->errmsg : "the lock handle is NULL";
}

int redislock_held(const redislock *lk)
{
    int64_t expires;
    if (!lk || !__atomic_load_n(&lk->held, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&lk->lost_reason, __ATOMIC_SEQ_CST))
        return 0;
    expires = __atomic_load_n(&lk->expires_us, __ATOMIC_SEQ_CST);
    return expires == 0 || redislock__now_us() < expires;
}

int redislock_lost_reason(const redislock *lk)
{
    return lk ? __atomic_load_n(&lk->lost_reason, __ATOMIC_SEQ_CST) : 0;
}

const char *redislock_lost_reason_string(int reason)
{
    switch (reason) {
    case 0:
        return "not lost";
    case REDISLOCK_LOST_GONE:
        return "the lock key vanished (expired or reset)";
    case REDISLOCK_LOST_OTHER_OWNER:
        return "another owner holds the lock";
    case REDISLOCK_LOST_EXPIRED:
        return "the expiry passed before a renewal succeeded";
    case REDISLOCK_LOST_NO_QUORUM:
        return "fewer than a quorum of masters renewed the lock";
    default:
        return "unknown reason";
    }
}

/* ------------------------------------------------------------ acquire */

static int parse_acquire(redislock__conn *conn, const redisReply *r,
                         acq_result *res)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return redislock__err(REDISLOCK_EPROTO,
                              "redis %s: unexpected reply to the acquire script",
                              conn->m->ep.addr);
    res->state = (int)r->element[0]->integer;
    res->pttl = -1;
    res->owner[0] = '\0';
    if (res->state == ACQ_TAKEN)
        return 0;
    if ((res->state != ACQ_BUSY && res->state != ACQ_MINE) || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return redislock__err(REDISLOCK_EPROTO,
                              "redis %s: unexpected reply to the acquire script",
                              conn->m->ep.addr);
    res->pttl = r->element[1]->integer;
    if (res->state == ACQ_BUSY)
        copy_owner(res->owner, r->elements > 2 ? r->element[2] : NULL, NULL);
    return 0;
}

static int acquire_round(redislock *lk, redislock__conn *conn, int64_t deadline,
                         acq_result *res)
{
    redislock__call call;
    redisReply *r = NULL;
    int rc;
    redislock__call_init(&call, &redislock__script_acquire);
    redislock__call_key(&call, lk->key, lk->keylen);
    redislock__call_key(&call, lk->sig, lk->siglen);
    redislock__call_arg(&call, lk->id, lk->idlen);
    redislock__call_int(&call, lk->expire_ms);
    res->sent_us = redislock__now_us();
    rc = redislock__call_run(conn, &call, deadline, &r);
    redislock__call_free(&call);
    if (rc)
        return rc;
    rc = parse_acquire(conn, r, res);
    freeReplyObject(r);
    return rc;
}

static void describe_ttl(long long pttl, char *buf, size_t len)
{
    if (pttl < 0)
        snprintf(buf, len, "no expiry");
    else
        snprintf(buf, len, "expires in %lld ms", pttl);
}

/* Recovery after a broken connection (stale pooled connection, server
 * restarted, connection killed): the first retry is immediate, later ones
 * back off from 10 to 200 ms, for up to the connect timeout in all and never
 * past the caller's deadline.  A server that is restarting can refuse or
 * reset connections for a while; that is all part of the same window. */
typedef struct recovery {
    int64_t until;   /* 0: not recovering */
    int backoff_ms;
} recovery;

/* 1 if another attempt may be made (after sleeping the back-off). */
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

static int acquire_single(redislock *lk, int64_t timeout_ms)
{
    redislock_client *c = lk->c;
    redislock__master *m = &c->masters[0];
    int64_t start = redislock__now_us();
    int64_t deadline = timeout_ms < 0 ? REDISLOCK__NEVER : start + timeout_ms * 1000;
    /* How long I/O may run: a try uses the plain command timeout; a wait
     * ends by the deadline plus a little time to collect a reply. */
    int64_t hard = timeout_ms <= 0 ? REDISLOCK__NEVER
                                   : deadline + redislock__slack_us(c);
    redislock__conn *conn = NULL;
    recovery rec = { 0, 0 };
    acq_result res;
    int rc, woken = 0;
    char nbuf[300], tbuf[64];

    for (;;) {
        int64_t now, until;
        if (!conn) {
            rc = redislock__pool_get(
                m, redislock__min_deadline(redislock__after_ms(c->connect_timeout_ms),
                                           hard),
                &conn);
            /* A server that refuses the first connection is down: say so at
             * once.  Recovery is for a server lost in the middle of a call. */
            if (rc == REDISLOCK_EIO && rec.until && recover(&rec, c, hard))
                continue;
            if (rc)
                break;
        }
        rc = acquire_round(lk, conn, redislock__io_deadline(c, hard), &res);
        if (rc == REDISLOCK_EIO || rc == REDISLOCK_ETIMEDOUT) {
            /* The script may have run: a later "mine" answer means ours. */
            lk->uncertain = 1;
            conn->broken = 1;
            redislock__pool_put(conn);
            conn = NULL;
            if (woken)
                redislock__hand_back(m, lk->sig, lk->siglen);
            woken = 0;
            /* No answer in time means a hung or slow server: trying again
             * would only wait again. */
            if (rc == REDISLOCK_EIO && recover(&rec, c, hard))
                continue;
            break;
        }
        if (rc)
            break;
        rec.until = 0;
        woken = 0;
        if (res.state == ACQ_TAKEN || (res.state == ACQ_MINE && lk->uncertain)) {
            /* counted from when the script was sent: never later than the
             * server's own expiry of the key */
            lk->uncertain = 0;
            redislock__set_held(lk, expiry_from(lk, res.sent_us, lk->expire_ms));
            break;
        }
        if (res.state == ACQ_MINE) {
            rc = redislock__err(REDISLOCK_EALREADY,
                                "lock %s is already held by this owner id (%s)",
                                qname(lk, nbuf, sizeof nbuf), lk->id);
            break;
        }
        describe_ttl(res.pttl, tbuf, sizeof tbuf);
        if (timeout_ms == 0) {
            rc = redislock__err(REDISLOCK_EBUSY, "lock %s is held by %s (%s)",
                                qname(lk, nbuf, sizeof nbuf), res.owner, tbuf);
            break;
        }
        now = redislock__now_us();
        if (now >= deadline) {
            rc = redislock__err(REDISLOCK_ETIMEDOUT,
                                "lock %s is still held by %s (%s) after %lld ms",
                                qname(lk, nbuf, sizeof nbuf), res.owner, tbuf,
                                (long long)((now - start) / 1000));
            break;
        }
        /* Sleep until woken, the deadline, or just past the holder's
         * expiry (a holder that died pushes no wake-up). */
        until = deadline;
        if (res.pttl >= 0)
            until = redislock__min_deadline(until, now + (res.pttl + 1) * 1000);
        rc = redislock__wait_signal(conn, lk->sig, lk->siglen, until);
        if (rc < 0) {
            /* the connection broke or the server stopped answering */
            redislock__pool_put(conn);
            conn = NULL;
            redislock__log(c, REDISLOCK_LOG_WARN, "acquire %s: %s",
                           qname(lk, nbuf, sizeof nbuf), redislock_last_error());
            if (recover(&rec, c, hard))
                continue;
            break;
        }
        woken = rc == REDISLOCK__WAIT_WOKEN;
    }
    redislock__pool_put(conn);
    /* An I/O timeout before the caller's deadline is the server's fault. */
    if (rc == REDISLOCK_ETIMEDOUT && (timeout_ms <= 0 || redislock__now_us() < deadline))
        rc = redislock__err(REDISLOCK_EIO, "%s (command timeout %d ms)",
                            redislock_last_error(), c->command_timeout_ms);
    return rc;
}

int redislock_acquire(redislock *lk, int64_t timeout_ms)
{
    int rc;
    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_acquire: lock is NULL");
    if (timeout_ms < -1)
        return finish(lk, redislock__err(REDISLOCK_EINVAL,
                                         "timeout_ms %lld is invalid (-1 waits "
                                         "for ever, 0 tries once)",
                                         (long long)timeout_ms));
    rc = acquire_single(lk, timeout_ms);
    if (rc == 0 && lk->auto_renew && (rc = redislock__renew_add(lk))) {
        /* cannot keep it alive: do not keep it at all */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", redislock_last_error());
        redislock_release(lk);
        rc = redislock__err(rc, "%s; the lock was released again", msg);
    }
    return finish(lk, rc);
}

int redislock_try_acquire(redislock *lk)
{
    return redislock_acquire(lk, 0);
}

/* --------------------------------------------- release, extend, query */

/* Run one script call on a pooled connection of the first master. */
static int run_once(redislock_client *c, redislock__call *call, redisReply **out)
{
    redislock__conn *conn = NULL;
    int rc = redislock__pool_get(&c->masters[0],
                                 redislock__after_ms(c->connect_timeout_ms), &conn);
    if (!rc) {
        rc = redislock__call_run(conn, call, redislock__io_deadline(c, REDISLOCK__NEVER),
                                 out);
        if (rc == REDISLOCK_ETIMEDOUT)
            rc = redislock__err(REDISLOCK_EIO, "redis %s: no reply within %d ms",
                                conn->m->ep.addr, c->command_timeout_ms);
        redislock__pool_put(conn);
    }
    redislock__call_free(call);
    return rc;
}

/* run_once for a script that answers an integer. */
static int run_int(redislock_client *c, redislock__call *call, long long *v)
{
    redisReply *r = NULL;
    const char *name = call->script->name;
    int rc = run_once(c, call, &r);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        *v = r->integer;
    else
        rc = redislock__err(REDISLOCK_EPROTO,
                            "unexpected reply type %d to the %s script", r->type,
                            name);
    freeReplyObject(r);
    return rc;
}

static int not_held(const redislock *lk)
{
    char nbuf[300];
    return redislock__err(REDISLOCK_ENOTHELD,
                          "lock %s is not held by %s (it expired, was reset, "
                          "or was never acquired)",
                          qname(lk, nbuf, sizeof nbuf), lk->id);
}

int redislock_release(redislock *lk)
{
    redislock__call call;
    long long v = 0;
    int rc, lost;
    char nbuf[300];

    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_release: lock is NULL");
    redislock__renew_remove(lk); /* at once: no renewal after this point */
    redislock__call_init(&call, &redislock__script_release);
    redislock__call_key(&call, lk->key, lk->keylen);
    redislock__call_key(&call, lk->sig, lk->siglen);
    redislock__call_arg(&call, lk->id, lk->idlen);
    redislock__call_int(&call, lk->c->signal_expire_ms);
    if ((rc = run_int(lk->c, &call, &v)))
        return finish(lk, rc);
    set_held(lk, 0);
    lk->uncertain = 0;
    lost = redislock_lost_reason(lk);
    if (lost) /* reported lost: not held, whatever the server said now */
        return finish(lk, redislock__err(REDISLOCK_ENOTHELD,
                                         "lock %s was lost before the release: %s",
                                         qname(lk, nbuf, sizeof nbuf),
                                         redislock_lost_reason_string(lost)));
    return finish(lk, v == 1 ? not_held(lk) : 0);
}

int redislock_extend(redislock *lk, int64_t expire_ms)
{
    redislock__call call;
    long long v = 0;
    int64_t sent;
    int rc;
    char nbuf[300];

    redislock__err_clear();
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_extend: lock is NULL");
    if (expire_ms < 0)
        return finish(lk, redislock__err(REDISLOCK_EINVAL,
                                         "expire_ms is negative (%lld)",
                                         (long long)expire_ms));
    if (expire_ms == 0)
        expire_ms = lk->expire_ms;
    if (expire_ms == 0)
        return finish(lk, redislock__err(REDISLOCK_EINVAL,
                                         "extend needs an expiry: the handle has "
                                         "none and expire_ms is 0"));
    redislock__call_init(&call, &redislock__script_extend);
    redislock__call_key(&call, lk->key, lk->keylen);
    redislock__call_arg(&call, lk->id, lk->idlen);
    redislock__call_int(&call, expire_ms);
    sent = redislock__now_us();
    if ((rc = run_int(lk->c, &call, &v)))
        return finish(lk, rc);
    if (v == 0 && !redislock_lost_reason(lk) &&
        __atomic_load_n(&lk->held, __ATOMIC_SEQ_CST))
        __atomic_store_n(&lk->expires_us, expiry_from(lk, sent, expire_ms),
                         __ATOMIC_SEQ_CST);
    if (v == 1) {
        set_held(lk, 0);
        rc = not_held(lk);
    } else if (v == 2) {
        rc = redislock__err(REDISLOCK_ENOTEXPIRABLE,
                            "lock %s was acquired without expiry",
                            qname(lk, nbuf, sizeof nbuf));
    }
    return finish(lk, rc);
}

int redislock_query(redislock *lk, redislock_info *info)
{
    redislock__call call;
    redisReply *r = NULL;
    int rc;

    redislock__err_clear();
    if (!lk || !info)
        return redislock__err(REDISLOCK_EINVAL, "redislock_query: %s is NULL",
                              lk ? "info" : "lock");
    memset(info, 0, sizeof *info);
    redislock__call_init(&call, &redislock__script_status);
    redislock__call_key(&call, lk->key, lk->keylen);
    rc = run_once(lk->c, &call, &r);
    if (rc)
        return finish(lk, rc);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return finish(lk, redislock__err(REDISLOCK_EPROTO,
                                         "unexpected reply to the status script"));
    }
    if (r->element[0]->type == REDIS_REPLY_STRING) {
        info->held = 1;
        copy_owner(info->owner, r->element[0], &info->owner_truncated);
        info->mine = r->element[0]->len == lk->idlen &&
                     !memcmp(r->element[0]->str, lk->id, lk->idlen);
        info->ttl_ms = r->element[1]->integer;
    }
    freeReplyObject(r);
    return finish(lk, 0);
}
