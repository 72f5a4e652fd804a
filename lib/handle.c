/* Lock handles: creation, options, getters, and the per-handle messages.
 * The local state they report (held, lost, validity) is kept by state.c. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

int redislock__finish(redislock *lk, int rc)
{
    if (rc < 0)
        snprintf(lk->errmsg, sizeof lk->errmsg, "%s", redislock_last_error());
    else
        lk->errmsg[0] = '\0';
    return rc;
}

const char *redislock__qname(const redislock *lk, char *buf, size_t len)
{
    return redislock__quote(lk->name, lk->namelen, buf, len);
}

void redislock__copy_owner(char *dst, const struct redisReply *r, int *truncated)
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
    if (o->expire_ms > 0 && o->expire_ms * 1000 <= redislock__drift_us(c, o->expire_ms))
        return redislock__err(REDISLOCK_EINVAL,
                              "expire_ms %lld is not longer than the clock drift "
                              "allowance (%lld us): the lock could never be valid",
                              (long long)o->expire_ms,
                              (long long)redislock__drift_us(c, o->expire_ms));
    if (o->expire_ms > REDISLOCK__MAX_EXPIRE_MS)
        return redislock__err(REDISLOCK_EINVAL,
                              "expire_ms %lld is too large (at most %lld, about 100 "
                              "years)",
                              (long long)o->expire_ms, (long long)REDISLOCK__MAX_EXPIRE_MS);
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

const char *redislock_master_errors(const redislock *lk)
{
    return lk ? lk->master_errors : "";
}

void redislock__note_masters(redislock *lk, const redislock__fanout *f)
{
    size_t i, o = 0;
    lk->master_errors[0] = '\0';
    for (i = 0; i < f->n; i++) {
        int n;
        if (!f->rc[i])
            continue;
        n = snprintf(lk->master_errors + o, sizeof lk->master_errors - o, "%s%s",
                     o ? "\n" : "", f->err[i]);
        if (n < 0 || (size_t)n >= sizeof lk->master_errors - o)
            break;
        o += (size_t)n;
    }
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
