/* Forced resets: one lock by name, or every lock under the key prefix
 * (optionally only those whose owner id has a given prefix); and the
 * listing of locks.
 *
 * reset_all and list walk the keyspace with SCAN from the client, never
 * KEYS, and handle each page in small script batches (pipelined), so that
 * no single server call runs long enough to show in SLOWLOG or stall other
 * clients. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* qsort_r(); NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
#endif
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lock keys per reset_many call: 6 commands each, about 0.2 ms in all on an
 * idle server: far from the 10 ms SLOWLOG threshold even when preempted. */
#define BATCH 64
#define SCAN_COUNT "1000"

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

/* How a SCAN page's keys go into script batches: plan.order[plan.bounds[b]
 * .. plan.bounds[b + 1]) are the page elements of batch b, at most BATCH,
 * and on a cluster all in one slot (a script's keys must share one). */
typedef struct plan {
    size_t *order, *bounds, nb;
    int *slot;
} plan;

static void plan_free(plan *p)
{
    redislock__free(p->order);
    redislock__free(p->bounds);
    redislock__free(p->slot);
}

static int by_slot(const void *a, const void *b, void *arg)
{
    const int *slot = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (slot[x] != slot[y])
        return slot[x] < slot[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The plan of a page whose keys are all strings; 0, EPROTO for a page with
 * anything else, ENOMEM. */
static int page_plan(const redislock_client *c, const redisReply *page, plan *p)
{
    size_t i, n = page->elements;
    memset(p, 0, sizeof *p);
    for (i = 0; i < n; i++)
        if (page->element[i]->type != REDIS_REPLY_STRING)
            return redislock__err(REDISLOCK_EPROTO, "unexpected SCAN reply");
    p->order = redislock__calloc(n, sizeof *p->order);
    p->bounds = redislock__calloc(n + 1, sizeof *p->bounds);
    p->slot = redislock__calloc(n, sizeof *p->slot);
    if (!p->order || !p->bounds || !p->slot) {
        plan_free(p);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory walking the locks");
    }
    for (i = 0; i < n; i++) {
        p->order[i] = i;
        p->slot[i] = c->cluster ? redislock__keyslot(page->element[i]->str,
                                                     page->element[i]->len)
                                : 0;
    }
    if (c->cluster)
        qsort_r(p->order, n, sizeof *p->order, by_slot, p->slot);
    for (i = 0; i < n; i++)
        if (i == 0 || i - p->bounds[p->nb - 1] == BATCH ||
            p->slot[p->order[i]] != p->slot[p->order[i - 1]])
            p->bounds[p->nb++] = i;
    p->bounds[p->nb] = n;
    return 0;
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
    plan p;
    int rc;

    if (page->elements == 0)
        return 0;
    if ((rc = page_plan(c, page, &p)))
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
    plan_free(&p);
    return rc;
}

/* What to do with one SCAN page: 0 to go on, an error, or a positive value
 * to stop the walk. */
typedef int (*page_fn)(redislock_client *c, redislock__conn *conn,
                       const redisReply *page, void *arg);

/* Walk the keys of node m that match pattern with SCAN, one page at a
 * time.  Returns 0, an error, or page's positive value. */
static int scan_node(redislock_client *c, redislock__master *m, const char *pattern,
                     size_t patlen, page_fn page, void *arg)
{
    redislock__conn *conn = NULL;
    char cursor[32] = "0";
    int rc = redislock__pool_get(m, redislock__after_ms(c->connect_timeout_ms), &conn);
    while (!rc) {
        const char *argv[6] = { "SCAN", cursor, "MATCH", pattern, "COUNT",
                                SCAN_COUNT };
        size_t lens[6] = { 4, strlen(cursor), 5, patlen, 5, sizeof SCAN_COUNT - 1 };
        redisReply *r = NULL;
        rc = redislock__conn_command(conn, redislock__io_deadline(c, REDISLOCK__NEVER),
                                     6, argv, lens, &r);
        if (rc)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = r->type == REDIS_REPLY_ERROR
                     ? redislock__conn_reply_error(conn, r, "SCAN")
                     : redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected SCAN reply",
                                      m->ep.addr);
            freeReplyObject(r);
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        rc = page(c, conn, r->element[1], arg);
        freeReplyObject(r);
        if (!strcmp(cursor, "0"))
            break;
    }
    if (rc == REDISLOCK_ETIMEDOUT)
        rc = redislock__err(REDISLOCK_EIO, "redis %s: no reply within %lld ms",
                            m->ep.addr, (long long)c->command_timeout_ms);
    redislock__pool_put(conn);
    return rc;
}

/* The masters of member i (one, or every master of a cluster). */
#define MAX_NODES 256

/* Walk every master of member i (scan_node), each named in *where as it
 * is walked (for messages and the list's entries). */
static int scan_master(redislock_client *c, size_t i, const char *pattern, size_t patlen,
                       page_fn page, void *arg, const char **where)
{
    redislock__master *nodes[MAX_NODES];
    size_t n = 0, k;
    int rc = redislock__topo_nodes(c, i, redislock__after_ms(c->connect_timeout_ms), nodes,
                                   MAX_NODES, &n);
    *where = redislock__topo_name(c, i);
    for (k = 0; k < n && !rc; k++) {
        *where = nodes[k]->ep.addr;
        rc = scan_node(c, nodes[k], pattern, patlen, page, arg);
    }
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
    int rc = scan_master(c, i, pattern, patlen, reset_page_fn, &a, &where);
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

/* ------------------------------------------------------------------ list */

typedef struct list_arg {
    redislock_list_fn fn;
    void *userdata;
    size_t master;
    const char *addr;
    uint64_t count;
    int user_rc;
} list_arg;

/* Hand one lock to the callback: 0, or 1 when it asked to stop. */
static int list_one(redislock_client *c, list_arg *a, const redisReply *key,
                    const redisReply *owner, long long ttl)
{
    redislock_list_entry e;
    size_t skip = redislock__name_offset(c);
    char *copy = NULL;
    if (key->len <= skip)
        return 0;
    memset(&e, 0, sizeof e);
    e.name = key->str + skip;
    e.name_len = key->len - skip;
    if (c->hash_tag && e.name[e.name_len - 1] == '}') {
        /* without the closing brace, NUL-terminated */
        if (!(copy = redislock__memdup(e.name, --e.name_len)))
            return redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
        e.name = copy;
    }
    e.owner = owner->str;
    e.owner_len = owner->len;
    e.ttl_ms = ttl;
    e.master = a->master;
    e.master_addr = a->addr;
    a->count++;
    a->user_rc = a->fn(&e, a->userdata);
    redislock__free(copy);
    return a->user_rc ? 1 : 0;
}

/* The list script's replies for one batch of the page (elements idx[0..n)). */
static int list_batch(redislock_client *c, list_arg *a, redislock__conn *conn,
                      const redisReply *page, const size_t *idx, size_t n,
                      const redisReply *r)
{
    size_t j;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return r->type == REDIS_REPLY_ERROR
                   ? redislock__conn_reply_error(conn, r, "list script")
                   : redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to "
                                    "the list script", a->addr);
    for (j = 0; j < n && !rc; j++) {
        const redisReply *e = r->element[j];
        if (e->type != REDIS_REPLY_ARRAY)
            continue; /* gone, or not a lock */
        if (e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to "
                                  "the list script", a->addr);
        rc = list_one(c, a, page->element[idx[j]], e->element[0], e->element[1]->integer);
    }
    return rc;
}

/* Read owner and expiry of the keys of one SCAN page (pipelined batches of
 * the list script) and hand every lock to the callback, in SCAN's order
 * (in slot order on a cluster). */
static int list_page(redislock_client *c, redislock__conn *conn,
                     const redisReply *page, void *arg)
{
    list_arg *a = arg;
    size_t nb = 0, i, j;
    redislock__call *calls = NULL;
    redislock__call **callp = NULL;
    redisReply **replies = NULL;
    plan p;
    int rc;

    if (page->elements == 0)
        return 0;
    if ((rc = page_plan(c, page, &p)))
        return rc;
    nb = p.nb;
    calls = redislock__calloc(nb, sizeof *calls);
    callp = redislock__calloc(nb, sizeof *callp);
    replies = redislock__calloc(nb, sizeof *replies);
    if (!calls || !callp || !replies) {
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
        goto out;
    }
    for (i = 0; i < nb; i++) {
        redislock__call_init(&calls[i], &redislock__script_list);
        for (j = p.bounds[i]; j < p.bounds[i + 1]; j++)
            redislock__call_key(&calls[i], page->element[p.order[j]]->str,
                                page->element[p.order[j]]->len);
        callp[i] = &calls[i];
    }
    rc = redislock__call_pipeline(conn, callp, nb,
                                  redislock__io_deadline(c, REDISLOCK__NEVER), replies);
    for (i = 0; i < nb && !rc; i++)
        rc = list_batch(c, a, conn, page, p.order + p.bounds[i],
                        p.bounds[i + 1] - p.bounds[i], replies[i]);
out:
    for (i = 0; calls && i < nb; i++)
        redislock__call_free(&calls[i]);
    for (i = 0; replies && i < nb; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    redislock__free(calls);
    redislock__free(callp);
    redislock__free(replies);
    plan_free(&p);
    return rc;
}

int redislock_list(redislock_client *c, const char *name_pattern, redislock_list_fn fn,
                   void *userdata, uint64_t *count)
{
    list_arg a;
    char *pattern = NULL, errs[600] = "";
    size_t patlen = 0, i, failed = 0;
    int rc = 0, first_rc = 0;

    redislock__err_clear();
    if (count)
        *count = 0;
    if (!c || !fn)
        return redislock__err(REDISLOCK_EINVAL, "redislock_list: %s is NULL",
                              !c ? "client" : "fn");
    if (name_pattern && strlen(name_pattern) > REDISLOCK_NAME_MAX)
        return redislock__err(REDISLOCK_EINVAL,
                              "the name pattern is %zu bytes; at most %d are allowed",
                              strlen(name_pattern), REDISLOCK_NAME_MAX);
    pattern = redislock__name_pattern(c, name_pattern, &patlen);
    if (!pattern)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
    memset(&a, 0, sizeof a);
    a.fn = fn;
    a.userdata = userdata;
    /* Each master in turn: a lock held in majority mode shows once per
     * master that has it. */
    for (i = 0; i < c->nmasters; i++) {
        a.master = i;
        rc = scan_master(c, i, pattern, patlen, list_page, &a, &a.addr);
        if (rc > 0)
            break; /* the callback said stop */
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
        *count = a.count;
    if (rc > 0)
        return a.user_rc;
    if (c->nmasters == 1)
        return failed ? redislock__err(first_rc, "%s", errs) : 0;
    /* a lock held has a quorum: with at most n - quorum masters missing,
     * every held lock was still seen on one of the others */
    if (failed > c->nmasters - c->quorum)
        return redislock__err(REDISLOCK_ENOQUORUM, "list: %zu of %zu masters failed: %s",
                              failed, c->nmasters, errs);
    if (failed)
        redislock__log(c, REDISLOCK_LOG_WARN, "list: %s", errs);
    return 0;
}
