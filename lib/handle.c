/* Lock handles: creation, options, getters, and the per-handle messages.
 * The local state they report (held, lost, validity) is kept by state.c. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ handles */

/* The options of version 2: fencing, max_hold_ms, heartbeat_ms. */
static int check_v2(const redislock_client *c, const redislock_options *o)
{
    if (o->fencing && c->nmasters > 1)
        return redislock__err(REDISLOCK_ENOTSUP,
                              "fencing tokens need a single master: majority mode "
                              "(%zu masters) cannot hand out tokens that never go "
                              "back (see redislock(3), \"Fencing tokens\")",
                              c->nmasters);
    if (o->max_hold_ms < 0 || o->heartbeat_ms < 0)
        return redislock__err(REDISLOCK_EINVAL, "%s is negative (%lld)",
                              o->max_hold_ms < 0 ? "max_hold_ms" : "heartbeat_ms",
                              (long long)(o->max_hold_ms < 0 ? o->max_hold_ms
                                                             : o->heartbeat_ms));
    if (o->max_hold_ms > REDISLOCK__MAX_EXPIRE_MS || o->heartbeat_ms > REDISLOCK__MAX_EXPIRE_MS)
        return redislock__err(REDISLOCK_EINVAL,
                              "%s is too large (at most %lld, about 100 years)",
                              o->max_hold_ms > REDISLOCK__MAX_EXPIRE_MS ? "max_hold_ms"
                                                                       : "heartbeat_ms",
                              (long long)REDISLOCK__MAX_EXPIRE_MS);
    if ((o->max_hold_ms || o->heartbeat_ms) && !o->auto_renew)
        return redislock__err(REDISLOCK_EINVAL,
                              "%s needs auto_renew: without renewal the lock ends at "
                              "its expiry anyway",
                              o->max_hold_ms ? "max_hold_ms" : "heartbeat_ms");
    return 0;
}

/* The lock options make sense for client c. */
static int check_opts(const redislock_client *c, const redislock_options *o)
{
    int rc;
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
    return check_v2(c, o);
}

/* Name, keys and owner id of a new handle. */
static int fill_names(redislock *lk, const char *name, size_t namelen,
                      const redislock_options *o)
{
    int rc;
    lk->namelen = namelen;
    lk->name = redislock__memdup(name, namelen);
    if (!lk->name)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    if (o->id) {
        if (!(lk->id = redislock__strdup(o->id)))
            return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    } else if ((rc = redislock__random_id(o->id_prefix, &lk->id))) {
        return rc;
    }
    lk->idlen = strlen(lk->id);
    return lk->kind->keys(lk, name, namelen, o);
}

int redislock_new(redislock **out, redislock_client *c, const char *name,
                  const redislock_options *opts)
{
    redislock_options v, *o = &v;
    const redislock__kind *kind;
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
    if ((rc = redislock__check_name(c, name, namelen)) ||
        (rc = redislock__lock_opts(opts, &v)) || (rc = check_opts(c, o)) ||
        ((o->fair || o->permits) && (rc = redislock__queued_check(c, o))))
        return rc;
    kind = o->permits ? &redislock__kind_semaphore
           : o->fair  ? &redislock__kind_fair
                      : &redislock__kind_mutex;
    lk = redislock__calloc(1, sizeof *lk);
    if (!lk)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a lock");
    lk->c = c;
    lk->kind = kind;
    lk->expire_ms = o->expire_ms;
    lk->fencing = o->fencing != 0;
    redislock__kind_leases(lk, o);
    lk->rn.enabled = o->auto_renew != 0;
    lk->rn.interval_ms = o->renew_interval_ms ? o->renew_interval_ms
                                              : (o->expire_ms + 2) / 3;
    lk->rn.on_lost = o->on_lost;
    lk->rn.on_lost_userdata = o->on_lost_userdata;
    lk->rn.max_hold_ms = o->max_hold_ms;
    lk->rn.heartbeat_ms = o->heartbeat_ms;
    lk->rn.heap_idx = REDISLOCK__NOT_SCHEDULED;
    lk->cancel_fd = -1; /* made by each wait (state.c) */
    lk->cancel_gen = redislock__fork_gen();
    if ((rc = fill_names(lk, name, namelen, o))) {
        redislock_free(lk);
        return rc;
    }
    *out = lk;
    return 0;
}

void redislock_free(redislock *lk)
{
    if (!lk)
        return;
    if (lk->rn.registered && redislock__renew_detach(lk))
        return; /* freed by the renewal thread after the callback */
    redislock__lock_destroy(lk);
}

int redislock_cancel(redislock *lk)
{
    /* no redislock__err(): it formats, which a signal handler must not */
    if (!lk)
        return REDISLOCK_EINVAL;
    redislock__cancel_request(lk);
    return 0;
}

const char *redislock_name(const redislock *lk)
{
    return lk ? lk->name : "";
}

const char *redislock_id(const redislock *lk)
{
    return lk ? lk->id : "";
}

int redislock_heartbeat(redislock *lk)
{
    char nbuf[300];
    if (!lk)
        return redislock__err(REDISLOCK_EINVAL, "redislock_heartbeat: lock is NULL");
    redislock__renew_heartbeat(lk);
    if (redislock_held(lk))
        return 0;
    return redislock__err(REDISLOCK_ENOTHELD, "%s %s is not held (%s)",
                          lk->kind->noun, redislock__qname(lk, nbuf, sizeof nbuf),
                          redislock_lost_reason(lk)
                              ? redislock_lost_reason_string(redislock_lost_reason(lk))
                              : "not acquired, or released");
}

const char *redislock_errmsg(const redislock *lk)
{
    return lk ? lk->errmsg : "the lock handle is NULL";
}

const char *redislock_master_errors(const redislock *lk)
{
    return lk ? lk->master_errors : "";
}

