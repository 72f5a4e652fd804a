/* Forced resets: one lock by name, or every lock under the key prefix
 * (optionally only those whose owner id has a given prefix), of every
 * kind: the mutex's lock:<name> keys, then the fair locks' and the
 * semaphores' holders (whose permits go to their first waiters).
 *
 * reset_all walks the keyspace with SCAN from the client, never KEYS
 * (scan.c), and handles each page in small script batches (pipelined), so
 * that no single server call runs long enough to show in SLOWLOG or stall
 * other clients. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* Lock keys per reset_many call: 6 commands each, about 0.2 ms in all on an
 * idle server: far from the 10 ms SLOWLOG threshold even when preempted. */
#define BATCH 64

int redislock_reset(redislock_client *c, const char *name)
{
    redislock__fanout f;
    redislock__call call;
    char *key = NULL, *sig = NULL, sum[600];
    size_t keylen = 0, siglen = 0, namelen, i, failed = 0;
    int rc, removed = 0;

    redislock__err_clear();
    if (!c || !name || !*name)
        return redislock__err(REDISLOCK_EINVAL, "redislock_reset: %s",
                              !c ? "client is NULL"
                                 : name ? "the lock name is empty"
                                        : "the lock name is NULL");
    namelen = strlen(name);
    if (namelen > REDISLOCK_NAME_MAX)
        return redislock__err(REDISLOCK_EINVAL,
                              "the lock name is %zu bytes; at most %d are allowed",
                              namelen, REDISLOCK_NAME_MAX);
    if ((rc = redislock__check_name(c, name, namelen)))
        return rc;
    key = redislock__key(c, REDISLOCK__KEY_LOCK, name, namelen, &keylen);
    sig = redislock__key(c, REDISLOCK__KEY_SIGNAL, name, namelen, &siglen);
    if (!key || !sig) {
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory resetting a lock");
        goto out;
    }
    redislock__call_init(&call, &redislock__script_reset);
    redislock__call_key(&call, key, keylen);
    redislock__call_key(&call, sig, siglen);
    redislock__call_int(&call, c->signal_expire_ms);
    rc = redislock__fan_once(&f, c, &call, key, keylen, 0);
    redislock__call_free(&call);
    if (rc)
        goto out;
    for (i = 0; i < f.n; i++) {
        const redisReply *r = f.replies[i];
        if (!f.rc[i] && r->type == REDIS_REPLY_INTEGER) {
            removed |= r->integer > 0;
            continue;
        }
        if (!f.rc[i]) {
            char q[300], t[100];
            if (r->type == REDIS_REPLY_STRING) /* the key's type: not a lock */
                f.rc[i] = redislock__err(REDISLOCK_EPROTO,
                                         "redis %s: %s is not a lock (a %s): left "
                                         "alone", f.conns[i]->m->ep.addr,
                                         redislock__quote(key, keylen, q, sizeof q),
                                         redislock__printable(r->str, r->len > 20 ? 20 : r->len,
                                                              t, sizeof t));
            else
                f.rc[i] = r->type == REDIS_REPLY_ERROR
                              ? redislock__conn_reply_error(f.conns[i], r,
                                                            "reset script")
                              : redislock__err(REDISLOCK_EPROTO,
                                               "redis %s: unexpected reply to the "
                                               "reset script", f.conns[i]->m->ep.addr);
            snprintf(f.err[i], sizeof f.err[i], "%s", redislock_last_error());
        }
        failed++;
    }
    if (c->nmasters == 1 && failed)
        rc = redislock__err(f.rc[0] == REDISLOCK_ETIMEDOUT ? REDISLOCK_EIO : f.rc[0],
                            "%s", f.err[0]);
    else if (failed > c->nmasters - c->quorum)
        rc = redislock__err(REDISLOCK_ENOQUORUM,
                            "reset: %zu of %zu masters failed: %s", failed, c->nmasters,
                            redislock__fan_summary(&f, sum, sizeof sum));
    else
        rc = removed;
    redislock__fan_free(&f);
out:
    redislock__free(key);
    redislock__free(sig);
    return rc;
}

/* One batch of lock keys of a SCAN page. */
typedef struct batch {
    redislock__call call;
    char *sigs[BATCH];
} batch;

static void batch_free(batch *b, int n)
{
    int i;
    for (i = 0; i < n; i++)
        redislock__free(b->sigs[i]);
    redislock__call_free(&b->call);
}

static int batch_build(redislock_client *c, batch *b, const redisReply *page,
                       const size_t *idx, int n, const char *owner_prefix)
{
    int i;
    redislock__call_init(&b->call, &redislock__script_reset_many);
    memset(b->sigs, 0, sizeof b->sigs);
    for (i = 0; i < n; i++) {
        const redisReply *k = page->element[idx[i]];
        size_t siglen = 0;
        b->sigs[i] = redislock__signal_of(c, k->str, k->len, &siglen);
        if (!b->sigs[i])
            return redislock__err(REDISLOCK_ENOMEM, "out of memory in reset_all");
        redislock__call_key(&b->call, k->str, k->len);
        redislock__call_key(&b->call, b->sigs[i], siglen);
    }
    redislock__call_int(&b->call, c->signal_expire_ms);
    redislock__call_arg(&b->call, owner_prefix, strlen(owner_prefix));
    return 0;
}

/* Reset the keys of one SCAN page, in pipelined batches; adds to *count,
 * and to *skipped the keys that are not locks. */
static int reset_page(redislock_client *c, redislock__conn *conn,
                      const redisReply *page, const char *owner_prefix,
                      uint64_t *count, uint64_t *skipped)
{
    size_t nb = 0, i;
    batch *bs = NULL;
    redislock__call **calls = NULL;
    redisReply **replies = NULL;
    redislock__plan p;
    int rc;

    if (page->elements == 0)
        return 0;
    if ((rc = redislock__page_plan(c, page, BATCH, &p)))
        return rc;
    nb = p.nb;
    bs = redislock__calloc(nb, sizeof *bs);
    calls = redislock__calloc(nb, sizeof *calls);
    replies = redislock__calloc(nb, sizeof *replies);
    if (!bs || !calls || !replies) {
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory in reset_all");
        goto out;
    }
    for (i = 0; i < nb && !rc; i++) {
        rc = batch_build(c, &bs[i], page, p.order + p.bounds[i],
                         (int)(p.bounds[i + 1] - p.bounds[i]), owner_prefix);
        calls[i] = &bs[i].call;
    }
    if (!rc)
        rc = redislock__call_pipeline(conn, calls, nb,
                                      redislock__io_deadline(c, REDISLOCK__NEVER),
                                      replies);
    for (i = 0; i < nb; i++) {
        redisReply *r = replies[i];
        if (!r)
            continue;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            *count += (uint64_t)r->element[0]->integer;
            *skipped += (uint64_t)r->element[1]->integer;
        } else if (!rc) {
            rc = r->type == REDIS_REPLY_ERROR
                     ? redislock__conn_reply_error(conn, r, "reset_many script")
                     : redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to "
                                      "the reset_many script", conn->m->ep.addr);
        }
        freeReplyObject(r);
    }
out:
    if (bs)
        for (i = 0; i < nb; i++)
            batch_free(&bs[i], BATCH);
    redislock__free(bs);
    redislock__free(calls);
    redislock__free(replies);
    redislock__plan_free(&p);
    return rc;
}

typedef struct reset_arg {
    const char *owner_prefix;
    uint64_t count, skipped;
} reset_arg;

static int reset_page_fn(redislock_client *c, redislock__conn *conn,
                         const redisReply *page, void *arg)
{
    reset_arg *a = arg;
    return reset_page(c, conn, page, a->owner_prefix, &a->count, &a->skipped);
}

/* reset_all on member i (every master of a cluster). */
static int reset_all_master(redislock_client *c, size_t i, const char *pattern,
                            size_t patlen, const char *owner_prefix, uint64_t *count)
{
    reset_arg a = { owner_prefix, 0, 0 };
    const char *where = NULL;
    int rc = redislock__scan_member(c, i, pattern, patlen, reset_page_fn, &a, &where);
    *count = a.count;
    if (a.skipped)
        redislock__log(c, REDISLOCK_LOG_WARN,
                       "%s: reset_all left alone %llu key(s) named like locks that are "
                       "not strings (not locks)",
                       redislock__topo_name(c, i), (unsigned long long)a.skipped);
    return rc;
}

int redislock_reset_all(redislock_client *c, const char *owner_prefix,
                        uint64_t *count)
{
    char *pattern = NULL, errs[600] = "";
    size_t patlen = 0, i, failed = 0;
    uint64_t most = 0;
    int rc = 0, first_rc = 0;

    redislock__err_clear();
    if (count)
        *count = 0;
    if (!c)
        return redislock__err(REDISLOCK_EINVAL, "redislock_reset_all: client is NULL");
    if (!owner_prefix)
        owner_prefix = "";
    if (*owner_prefix && (rc = redislock__check_id(owner_prefix, "owner_prefix")))
        return rc;
    pattern = redislock__key_pattern(c, &patlen);
    if (!pattern)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory in reset_all");
    /* Each master on its own (SCAN pages differ); a lock lives on several
     * masters, so the count is the largest of the masters' counts (a
     * cluster's masters hold different locks: their counts add up). */
    for (i = 0; i < c->nmasters; i++) {
        uint64_t n = 0;
        rc = reset_all_master(c, i, pattern, patlen, owner_prefix, &n);
        if (n > most)
            most = n;
        if (rc) {
            size_t o = strlen(errs);
            if (!failed++)
                first_rc = rc;
            snprintf(errs + o, sizeof errs - o, "%s%s", o ? "; " : "",
                     redislock_last_error());
        }
    }
    redislock__free(pattern);
    if (count)
        *count = most;
    if (c->nmasters == 1)
        return failed ? redislock__err(first_rc, "%s", errs) : 0;
    if (failed > c->nmasters - c->quorum)
        return redislock__err(REDISLOCK_ENOQUORUM, "reset_all: %zu of %zu masters "
                              "failed: %s", failed, c->nmasters, errs);
    if (failed)
        redislock__log(c, REDISLOCK_LOG_WARN, "reset_all: %s", errs);
    return 0;
}

