/* A handle's local belief about its lock: held or not, lost or not, and the
 * local expiry (when redislock_held() stops vouching for it).
 *
 * The local expiry is always a lower bound of the server's: it is counted
 * from when the request that the server answered was *sent* (the server ran
 * it later), from the TTL that the server reported or set, less a clock
 * drift allowance (this host's monotonic clock may run slower than the
 * server's).  Who writes it:
 *   - the handle's own thread (acquire, extend, release), one at a time;
 *   - the renewal thread, for results whose renewal generation is still
 *     current.  Extend and release bump that generation before they send, so
 *     the result of a renewal sent earlier can never overwrite theirs (see
 *     renew.c and ops.c).
 * Readers (redislock_held() and redislock_validity_ms(), from any thread)
 * use atomics only. */
#include "internal.h"

#include <errno.h>
#include <hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void store_held(redislock *lk, int v)
{
    __atomic_store_n(&lk->held, v, __ATOMIC_SEQ_CST);
}

void redislock__clear_held(redislock *lk)
{
    store_held(lk, 0);
}

void redislock__set_held(redislock *lk, int64_t expires_us)
{
    __atomic_store_n(&lk->expires_us, expires_us, __ATOMIC_SEQ_CST);
    __atomic_store_n(&lk->lost_reason, 0, __ATOMIC_SEQ_CST);
    store_held(lk, 1);
}

void redislock__set_expiry(redislock *lk, int64_t expires_us)
{
    __atomic_store_n(&lk->expires_us, expires_us, __ATOMIC_SEQ_CST);
}

void redislock__lower_expiry(redislock *lk, int64_t expires_us)
{
    int64_t cur = __atomic_load_n(&lk->expires_us, __ATOMIC_SEQ_CST);
    if (expires_us == 0)
        return; /* "no expiry" lowers nothing */
    /* 0 is "no expiry": anything is lower */
    while ((cur == 0 || expires_us < cur) &&
           !__atomic_compare_exchange_n(&lk->expires_us, &cur, expires_us, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

int64_t redislock__expiry(const redislock *lk)
{
    return __atomic_load_n(&lk->expires_us, __ATOMIC_SEQ_CST);
}

int redislock__set_lost(redislock *lk, int reason)
{
    int none = 0;
    store_held(lk, 0);
    return __atomic_compare_exchange_n(&lk->lost_reason, &none, reason, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

void redislock__set_token(redislock *lk, uint64_t token)
{
    __atomic_store_n(&lk->token, token, __ATOMIC_SEQ_CST);
}

uint64_t redislock_token(const redislock *lk)
{
    return lk ? __atomic_load_n(&lk->token, __ATOMIC_SEQ_CST) : 0;
}

int64_t redislock__drift_us(const redislock_client *c, int64_t ttl_ms)
{
    return ttl_ms * c->drift_ppm / 1000 + REDISLOCK__DRIFT_FIXED_US;
}

int64_t redislock__local_expiry(int64_t drift_ppm, int64_t sent_us, int64_t ttl_ms)
{
    if (ttl_ms < 0)
        return 0; /* no expiry (a TTL of 0 is a key about to expire) */
    return sent_us + ttl_ms * 1000 - (ttl_ms * drift_ppm / 1000 + REDISLOCK__DRIFT_FIXED_US);
}

int64_t redislock__valid_until(const redislock_client *c, int64_t sent_us,
                               int64_t ttl_ms)
{
    return redislock__local_expiry(c->drift_ppm, sent_us, ttl_ms);
}

int redislock_held(const redislock *lk)
{
    int64_t expires;
    if (!lk || !__atomic_load_n(&lk->held, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&lk->lost_reason, __ATOMIC_SEQ_CST))
        return 0;
    expires = redislock__expiry(lk);
    return expires == 0 || redislock__now_us() < expires;
}

int redislock_lost_reason(const redislock *lk)
{
    return lk ? __atomic_load_n(&lk->lost_reason, __ATOMIC_SEQ_CST) : 0;
}

int64_t redislock_validity_ms(const redislock *lk)
{
    int64_t expires, left;
    if (!redislock_held(lk))
        return 0;
    expires = redislock__expiry(lk);
    if (expires == 0)
        return -1;
    left = (expires - redislock__now_us()) / 1000;
    return left > 0 ? left : 0;
}

/* ------------------------------------------- messages and handle memory */

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

void redislock__lock_destroy(redislock *lk)
{
    size_t k;
    if (lk->cancel_fd >= 0)
        close(lk->cancel_fd);
    redislock__free(lk->name);
    redislock__free(lk->key);
    redislock__free(lk->sig);
    redislock__free(lk->fence);
    for (k = 0; k < sizeof lk->qkeys / sizeof lk->qkeys[0]; k++)
        redislock__free(lk->qkeys[k]);
    redislock__free(lk->wake);
    redislock__free(lk->id);
    redislock__free(lk);
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
    case REDISLOCK_LOST_MAX_HOLD:
        return "held for max_hold_ms: renewal stopped, the key expires by itself";
    case REDISLOCK_LOST_NO_HEARTBEAT:
        return "no heartbeat within heartbeat_ms: renewal stopped, the key expires "
               "by itself";
    case REDISLOCK_LOST_NO_REPLICAS:
        return "fewer replicas than min_replicas acknowledged a renewal in time";
    default:
        return "unknown reason";
    }
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

/* ------------------------------------------------------------- cancelling
 *
 * A wait polls an eventfd of its handle for a cancel.  It exists only while
 * an acquire waits (made by redislock__cancel_open(), closed by
 * redislock__cancel_close()), so a handle costs no descriptor between
 * waits.  redislock_cancel() may run at any moment, in any thread or signal
 * handler: it writes to the eventfd only while it counts itself in
 * cancel_users, and the wait closes the eventfd only after taking it out of
 * cancel_fd and seeing no writer counted, so no write ever reaches a
 * descriptor that was closed (and maybe reused for something else).
 *
 * fork(): the eventfd is shared with the parent, so it carries the fork
 * generation it was made in, and a cancel in a child (an inherited signal
 * handler) never writes to its parent's: it sets the child's flag only,
 * which the child's own waits see.  A cancel that was pending in the parent
 * at the fork is pending in the child too (as a client shutdown is). */

/* Writes one to an eventfd: async-signal-safe. */
static void poke(int fd)
{
    uint64_t one = 1;
    ssize_t n;
    if (fd < 0)
        return;
    do
        n = write(fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, the fd readable anyway */
}

/* Take the eventfd out of the handle and close it once no
 * redislock_cancel() writes to it.  ours: it was made in this process (the
 * parent's writers are no writers here). */
static void drop_fd(redislock *lk, int ours)
{
    int fd = __atomic_exchange_n(&lk->cancel_fd, -1, __ATOMIC_SEQ_CST);
    if (fd < 0)
        return;
    while (ours && __atomic_load_n(&lk->cancel_users, __ATOMIC_SEQ_CST) > 0)
        sched_yield(); /* a cancel between its load of the fd and its write */
    close(fd);
}

int redislock__cancel_open(redislock *lk)
{
    unsigned long gen = redislock__fork_gen();
    int fd;
    if (__atomic_load_n(&lk->cancel_gen, __ATOMIC_SEQ_CST) != gen) {
        /* the first wait in a child after fork(): our copy of the parent's
         * eventfd goes, and so do the parent's writers (threads that do not
         * exist here).  No cancel of this process counts itself until the
         * generation below is stored. */
        __atomic_store_n(&lk->cancel_users, 0, __ATOMIC_SEQ_CST);
        drop_fd(lk, 0);
    } else {
        drop_fd(lk, 1); /* none is left open by a wait; to be sure */
    }
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    __atomic_store_n(&lk->cancel_gen, gen, __ATOMIC_SEQ_CST);
    __atomic_store_n(&lk->cancel_fd, fd, __ATOMIC_SEQ_CST);
    if (fd >= 0 && __atomic_load_n(&lk->cancel, __ATOMIC_SEQ_CST))
        poke(fd); /* a cancel that came before the fd */
    return fd;
}

void redislock__cancel_close(redislock *lk)
{
    drop_fd(lk, __atomic_load_n(&lk->cancel_gen, __ATOMIC_SEQ_CST) == redislock__fork_gen());
}

int redislock__cancel_confirmed(redislock *lk)
{
    int fd = __atomic_load_n(&lk->cancel_fd, __ATOMIC_SEQ_CST);
    uint64_t v;
    if (redislock__cancel_requested(lk))
        return 1;
    /* readable without a cancel: take the wake-up away, then look again (a
     * cancel that came meanwhile set the flag before it wrote) */
    if (fd >= 0)
        while (read(fd, &v, sizeof v) > 0)
            ;
    return redislock__cancel_requested(lk);
}

void redislock__cancel_request(redislock *lk)
{
    unsigned long gen = redislock__fork_gen();
    int fd;
    __atomic_store_n(&lk->cancel, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&lk->cancel_gen, __ATOMIC_SEQ_CST) != gen)
        return; /* no wait of this process has an eventfd (maybe the parent's) */
    __atomic_add_fetch(&lk->cancel_users, 1, __ATOMIC_SEQ_CST);
    fd = __atomic_load_n(&lk->cancel_fd, __ATOMIC_SEQ_CST);
    if (fd >= 0 && __atomic_load_n(&lk->cancel_gen, __ATOMIC_SEQ_CST) == gen)
        poke(fd);
    __atomic_sub_fetch(&lk->cancel_users, 1, __ATOMIC_SEQ_CST);
}

int redislock__cancel_requested(const redislock *lk)
{
    return __atomic_load_n(&lk->cancel, __ATOMIC_SEQ_CST) ||
           __atomic_load_n(&lk->c->shutdown, __ATOMIC_SEQ_CST);
}

void redislock__cancel_answered(redislock *lk)
{
    __atomic_store_n(&lk->cancel, 0, __ATOMIC_SEQ_CST);
}

void redislock__shutdown_request(redislock_client *c)
{
    __atomic_store_n(&c->shutdown, 1, __ATOMIC_SEQ_CST);
    poke(c->shutdown_fd); /* never read: readable for ever */
}
