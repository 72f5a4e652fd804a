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

/* Queued-kind locks per reset call: a dozen commands each, and a few more
 * for every permit handed to a waiter. */
#define QBATCH 16

/* The answers of a one-call reset (the mutex's or a queued kind's) on
 * every master: *removed set when one removed something.  0, or the error
 * (one master), or ENOQUORUM. */
static int reset_answers(redislock_client *c, redislock__fanout *f, const char *key,
                         size_t keylen, const char *what, int *removed)
{
    size_t i, failed = 0;
    char sum[600];
    for (i = 0; i < f->n; i++) {
        const redisReply *r = f->replies[i];
        if (!f->rc[i] && r->type == REDIS_REPLY_INTEGER) {
            *removed |= r->integer > 0;
            continue;
        }
        if (!f->rc[i]) {
            char q[300], t[100];
            if (r->type == REDIS_REPLY_STRING) /* the key's type: not a lock */
                f->rc[i] = redislock__err(REDISLOCK_EPROTO,
                                          "redis %s: %s is not a lock (a %s): left "
                                          "alone", f->conns[i]->m->ep.addr,
                                          redislock__quote(key, keylen, q, sizeof q),
                                          redislock__printable(r->str, r->len > 20 ? 20 : r->len,
                                                               t, sizeof t));
            else
                f->rc[i] = r->type == REDIS_REPLY_ERROR
                               ? redislock__conn_reply_error(f->conns[i], r, what)
                               : redislock__err(REDISLOCK_EPROTO,
                                                "redis %s: unexpected reply to the %s",
                                                f->conns[i]->m->ep.addr, what);
            snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
        }
        failed++;
    }
    if (c->nmasters == 1 && failed)
        return redislock__err(f->rc[0] == REDISLOCK_ETIMEDOUT ? REDISLOCK_EIO : f->rc[0],
                              "%s", f->err[0]);
    if (failed > c->nmasters - c->quorum)
        return redislock__err(REDISLOCK_ENOQUORUM, "reset: %zu of %zu masters failed: %s",
                              failed, c->nmasters, redislock__fan_summary(f, sum, sizeof sum));
    return 0;
}

/* A batch of queued-kind locks of one kind and the reset call of them
 * (queued_lua.c's reset: the holders whose id has the prefix go, their
 * permits to the first waiters). */
typedef struct qbatch {
    redislock__call call;
    redislock__qkeys k[QBATCH];
    int n;
} qbatch;

static void qbatch_free(qbatch *b)
{
    int i;
    for (i = 0; i < b->n; i++)
        redislock__qkeys_free(&b->k[i]);
    redislock__call_free(&b->call);
    b->n = 0;
}

/* names[i] is lens[i] bytes long; at most QBATCH of them. */
static int qbatch_build(redislock_client *c, qbatch *b, int fair, const char *const *names,
                        const size_t *lens, int n, const char *owner_prefix)
{
    int i, rc;
    redislock__call_init(&b->call, &redislock__script_q_reset);
    for (b->n = 0; b->n < n; b->n++) {
        if ((rc = redislock__qkeys_make(c, fair, names[b->n], lens[b->n], &b->k[b->n])))
            return rc;
        redislock__qkeys_push(&b->k[b->n], &b->call);
    }
    redislock__call_int(&b->call, fair ? 6 : 5);
    redislock__call_arg(&b->call, owner_prefix, strlen(owner_prefix));
    redislock__call_int(&b->call, REDISLOCK__GRANT_LEASE_MS);
    redislock__call_int(&b->call, c->signal_expire_ms);
    for (i = 0; i < n; i++)
        redislock__call_arg(&b->call, b->k[i].wake, b->k[i].wakelen);
    return 0;
}

/* Every kind of lock called name in one call (queued_lua.c's reset_name):
 * lock:<name> as python-redis-lock's reset, the fair lock's and the
 * semaphore's holders (their permits to the first waiters).  Every key is
 * made before anything is sent: out of memory leaves the server as it
 * was. */
static int reset_name(redislock_client *c, const char *name, size_t namelen, int *removed)
{
    redislock__qkeys q[2];
    redislock__fanout f;
    redislock__call call;
    int k, rc;
    memset(q, 0, sizeof q);
    if ((rc = redislock__qkeys_make(c, 1, name, namelen, &q[0])) ||
        (rc = redislock__qkeys_make(c, 0, name, namelen, &q[1])))
        goto out;
    redislock__call_init(&call, &redislock__script_q_reset_name);
    for (k = 0; k < 2; k++)
        redislock__qkeys_push(&q[k], &call);
    redislock__call_int(&call, c->signal_expire_ms);
    redislock__call_int(&call, REDISLOCK__GRANT_LEASE_MS);
    for (k = 0; k < 2; k++)
        redislock__call_arg(&call, q[k].wake, q[k].wakelen);
    /* routed by lock:<name> (on a cluster every key is in its slot) */
    rc = redislock__fan_once(&f, c, &call, q[0].k[4], q[0].len[4], 0);
    redislock__call_free(&call);
    if (!rc) {
        rc = reset_answers(c, &f, q[0].k[4], q[0].len[4], "reset script", removed);
        redislock__fan_free(&f);
    }
out:
    for (k = 0; k < 2; k++)
        redislock__qkeys_free(&q[k]);
    return rc;
}

int redislock_reset(redislock_client *c, const char *name)
{
    size_t namelen;
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
    if ((rc = reset_name(c, name, namelen, &removed)))
        return rc;
    return removed;
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
    int fair;                 /* the queued passes: which kind */
} reset_arg;

static int reset_page_fn(redislock_client *c, redislock__conn *conn,
                         const redisReply *page, void *arg)
{
    reset_arg *a = arg;
    return reset_page(c, conn, page, a->owner_prefix, &a->count, &a->skipped);
}

/* The names of the queued-kind locks of a SCAN page of their holders keys
 * in batches, one reset call each, pipelined; adds the holders removed to
 * a->count. */
static int qreset_page_fn(redislock_client *c, redislock__conn *conn,
                          const redisReply *page, void *arg)
{
    reset_arg *a = arg;
    const char *fam = a->fair ? "lock-holders:" : "sem:", *suf = a->fair ? "" : ":holders";
    const char *names[QBATCH];
    size_t lens[QBATCH], b, k, off, len;
    redislock__plan p;
    int rc = redislock__page_plan(c, page, QBATCH, &p);
    for (b = 0; b < p.nb && !rc; b++) {
        qbatch qb;
        redisReply *r = NULL;
        redislock__call *cp = &qb.call;
        int n = 0;
        memset(&qb, 0, sizeof qb);
        for (k = p.bounds[b]; k < p.bounds[b + 1]; k++) {
            const redisReply *e = page->element[p.order[k]];
            if (!redislock__tagged_name(c, fam, suf, e->str, e->len, &off, &len))
                names[n] = e->str + off, lens[n++] = len;
        }
        if (n && !(rc = qbatch_build(c, &qb, a->fair, names, lens, n, a->owner_prefix)) &&
            !(rc = redislock__call_pipeline(conn, &cp, 1,
                                            redislock__io_deadline(c, REDISLOCK__NEVER), &r)))
            rc = r->type == REDIS_REPLY_INTEGER
                     ? (a->count += (uint64_t)r->integer, 0)
                     : r->type == REDIS_REPLY_ERROR
                           ? redislock__conn_reply_error(conn, r, "queued reset script")
                           : redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to "
                                            "the queued reset script", conn->m->ep.addr);
        if (r)
            freeReplyObject(r);
        qbatch_free(&qb);
    }
    redislock__plan_free(&p);
    return rc;
}

/* The SCAN patterns of reset_all: the mutex's lock:* keys, the fair
 * locks' and the semaphores' holders keys. */
typedef struct patterns {
    char *p[3];
    size_t len[3];
} patterns;

/* reset_all on member i (every master of a cluster): the mutex's keys,
 * then the fair locks (a holder whose lock:<name> the first pass removed
 * is gone, and the lock goes to its first waiter), then the semaphores. */
static int reset_all_master(redislock_client *c, size_t i, const patterns *pt,
                            const char *owner_prefix, uint64_t *count)
{
    reset_arg a = { owner_prefix, 0, 0, 0 };
    const char *where = NULL;
    int rc = redislock__scan_member(c, i, pt->p[0], pt->len[0], reset_page_fn, &a, &where);
    if (a.skipped)
        redislock__log(c, REDISLOCK_LOG_WARN,
                       "%s: reset_all left alone %llu key(s) named like locks that are "
                       "not strings (not locks)",
                       redislock__topo_name(c, i), (unsigned long long)a.skipped);
    for (a.fair = 1; a.fair >= 0 && !rc; a.fair--)
        rc = redislock__scan_member(c, i, pt->p[2 - a.fair], pt->len[2 - a.fair],
                                    qreset_page_fn, &a, &where);
    *count = a.count;
    return rc;
}

int redislock_reset_all(redislock_client *c, const char *owner_prefix,
                        uint64_t *count)
{
    char errs[600] = "";
    patterns pt;
    size_t i, failed = 0;
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
    memset(&pt, 0, sizeof pt);
    pt.p[0] = redislock__key_pattern(c, &pt.len[0]);
    pt.p[1] = redislock__tagged_pattern(c, "lock-holders:", NULL, "", &pt.len[1]);
    pt.p[2] = redislock__tagged_pattern(c, "sem:", NULL, ":holders", &pt.len[2]);
    if (!pt.p[0] || !pt.p[1] || !pt.p[2]) {
        for (i = 0; i < 3; i++)
            redislock__free(pt.p[i]);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory in reset_all");
    }
    /* Each master on its own (SCAN pages differ); a lock lives on several
     * masters, so the count is the largest of the masters' counts (a
     * cluster's masters hold different locks: their counts add up). */
    for (i = 0; i < c->nmasters; i++) {
        uint64_t n = 0;
        rc = reset_all_master(c, i, &pt, owner_prefix, &n);
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
    for (i = 0; i < 3; i++)
        redislock__free(pt.p[i]);
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

