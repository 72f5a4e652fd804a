/* The listing of locks (redislock_list()): SCAN from the client, never
 * KEYS (scan.c); each page's owners and expiries read in small script
 * batches (pipelined).  Two walks: the lock:<name> keys (the mutex's, and
 * the fair lock's, with its queue), then the semaphores' holders keys, an
 * entry per holder. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* Locks per list script call. */
#define BATCH 64

typedef struct list_arg {
    redislock_list_fn fn;
    void *userdata;
    size_t master;
    const char *addr;
    uint64_t count;
    int user_rc;
    int sem;                  /* the semaphores' walk */
} list_arg;

/* A lock's name in a key the walk found: 0 and *off, *len, or -1. */
static int name_in(const redislock_client *c, int sem, const redisReply *key, size_t *off,
                   size_t *len)
{
    size_t skip = redislock__name_offset(c);
    if (sem)
        return redislock__tagged_name(c, "sem:", ":holders", key->str, key->len, off, len);
    if (key->len <= skip)
        return -1;
    *off = skip;
    *len = key->len - skip;
    if (c->hash_tag && key->str[key->len - 1] == '}')
        --*len; /* without the closing brace */
    return 0;
}

/* Hand one holder to the callback (e filled but for the name): 0, 1 when
 * it asked to stop, or ENOMEM. */
static int list_one(redislock_client *c, list_arg *a, const redisReply *key,
                    redislock_list_entry *e)
{
    size_t off, len;
    char *copy;
    if (name_in(c, a->sem, key, &off, &len))
        return 0;
    if (!(copy = redislock__memdup(key->str + off, len))) /* NUL-terminated */
        return redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
    e->name = copy;
    e->name_len = len;
    e->master = a->master;
    e->master_addr = a->addr;
    a->count++;
    a->user_rc = a->fn(e, a->userdata);
    redislock__free(copy);
    return a->user_rc ? 1 : 0;
}

static int unexpected(const list_arg *a)
{
    return redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to the list script",
                          a->addr);
}

/* The lock walk's answer for one key: {owner, pttl, fair, queued}. */
static int lock_entry(redislock_client *c, list_arg *a, const redisReply *key,
                      const redisReply *r)
{
    redislock_list_entry e;
    size_t k;
    if (r->elements != 4 || r->element[0]->type != REDIS_REPLY_STRING)
        return unexpected(a);
    for (k = 1; k < 4; k++)
        if (r->element[k]->type != REDIS_REPLY_INTEGER)
            return unexpected(a);
    memset(&e, 0, sizeof e);
    e.owner = r->element[0]->str;
    e.owner_len = r->element[0]->len;
    e.ttl_ms = r->element[1]->integer;
    e.kind = r->element[2]->integer ? REDISLOCK_KIND_FAIR : REDISLOCK_KIND_MUTEX;
    e.holders = 1;
    e.permits = 1;
    e.queued = r->element[3]->integer;
    return list_one(c, a, key, &e);
}

/* The semaphore walk's answer for one key: {{id, ms left, ...}, queued,
 * permits}: an entry per holder. */
static int sem_entries(redislock_client *c, list_arg *a, const redisReply *key,
                       const redisReply *r)
{
    redislock_list_entry e;
    const redisReply *h;
    size_t k;
    int rc = 0;
    if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER || r->element[0]->elements % 2)
        return unexpected(a);
    h = r->element[0];
    memset(&e, 0, sizeof e);
    e.kind = REDISLOCK_KIND_SEMAPHORE;
    e.holders = (int64_t)h->elements / 2;
    e.queued = r->element[1]->integer;
    e.permits = r->element[2]->integer;
    for (k = 0; k + 1 < h->elements && !rc; k += 2) {
        if (h->element[k]->type != REDIS_REPLY_STRING ||
            h->element[k + 1]->type != REDIS_REPLY_INTEGER)
            return unexpected(a);
        e.owner = h->element[k]->str;
        e.owner_len = h->element[k]->len;
        e.ttl_ms = h->element[k + 1]->integer;
        rc = list_one(c, a, key, &e);
    }
    return rc;
}

/* The list script's replies for one batch of the page (elements idx[0..n)). */
static int list_batch(redislock_client *c, list_arg *a, redislock__conn *conn,
                      const redisReply *page, const size_t *idx, size_t n,
                      const redisReply *r)
{
    size_t j;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return r->type == REDIS_REPLY_ERROR ? redislock__conn_reply_error(conn, r, "list script")
                                            : unexpected(a);
    for (j = 0; j < n && !rc; j++) {
        const redisReply *e = r->element[j];
        if (e->type != REDIS_REPLY_ARRAY)
            continue; /* gone, or not a lock */
        rc = a->sem ? sem_entries(c, a, page->element[idx[j]], e)
                    : lock_entry(c, a, page->element[idx[j]], e);
    }
    return rc;
}

/* One batch's call: each key the walk found, and two keys of the same
 * name after it (the fair lock's holders and queue; the semaphore's queue
 * and permits), kept in extra[] until the call is sent. */
static int batch_call(redislock_client *c, const list_arg *a, const redisReply *page,
                      const size_t *idx, size_t n, redislock__call *call, char **extra)
{
    static const char *const fam[2][2] = { { "lock-holders:", "lock-queue:" }, { "sem:", "sem:" } };
    static const char *const suf[2][2] = { { "", "" }, { ":queue", ":permits" } };
    size_t j, off, len, el[2];
    int k;
    redislock__call_init(call, a->sem ? &redislock__script_q_list : &redislock__script_list);
    for (j = 0; j < n; j++) {
        const redisReply *key = page->element[idx[j]];
        if (name_in(c, a->sem, key, &off, &len))
            off = 0, len = key->len; /* not ours: its answer is 0 */
        redislock__call_key(call, key->str, key->len);
        for (k = 0; k < 2; k++) {
            extra[2 * j + k] = redislock__tagged_key(c, fam[a->sem][k], key->str + off, len,
                                                     suf[a->sem][k], &el[k]);
            if (!extra[2 * j + k])
                return redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
            redislock__call_key(call, extra[2 * j + k], el[k]);
        }
    }
    return 0;
}

/* Read the keys of one SCAN page (pipelined batches of the list script)
 * and hand every lock (semaphore holder) to the callback, in SCAN's order
 * (in slot order on a cluster). */
static int list_page(redislock_client *c, redislock__conn *conn,
                     const redisReply *page, void *arg)
{
    list_arg *a = arg;
    size_t nb = 0, i;
    redislock__call *calls = NULL, **callp = NULL;
    redisReply **replies = NULL;
    char **extra = NULL;
    redislock__plan p;
    int rc;

    if (page->elements == 0)
        return 0;
    if ((rc = redislock__page_plan(c, page, BATCH, &p)))
        return rc;
    nb = p.nb;
    calls = redislock__calloc(nb, sizeof *calls);
    callp = redislock__calloc(nb, sizeof *callp);
    replies = redislock__calloc(nb, sizeof *replies);
    extra = redislock__calloc(2 * page->elements, sizeof *extra);
    if (!calls || !callp || !replies || !extra) {
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
        goto out;
    }
    for (i = 0; i < nb && !rc; i++) {
        rc = batch_call(c, a, page, p.order + p.bounds[i], p.bounds[i + 1] - p.bounds[i],
                        &calls[i], extra + 2 * p.bounds[i]);
        callp[i] = &calls[i];
    }
    if (!rc)
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
    for (i = 0; extra && i < 2 * page->elements; i++)
        redislock__free(extra[i]);
    redislock__free(calls);
    redislock__free(callp);
    redislock__free(replies);
    redislock__free(extra);
    redislock__plan_free(&p);
    return rc;
}

/* Walk member i: the lock keys, then the semaphores'.  0, an error, or 1
 * when the callback said stop. */
static int list_member(redislock_client *c, list_arg *a, char *const *pattern,
                       const size_t *patlen)
{
    int rc = 0;
    for (a->sem = 0; a->sem < 2 && !rc; a->sem++)
        rc = redislock__scan_member(c, a->master, pattern[a->sem], patlen[a->sem], list_page,
                                    a, &a->addr);
    return rc;
}

int redislock_list(redislock_client *c, const char *name_pattern, redislock_list_fn fn,
                   void *userdata, uint64_t *count)
{
    list_arg a;
    char *pattern[2], errs[600] = "";
    size_t patlen[2] = { 0, 0 }, i, failed = 0;
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
    pattern[0] = redislock__name_pattern(c, name_pattern, &patlen[0]);
    pattern[1] = redislock__tagged_pattern(c, "sem:", name_pattern, ":holders", &patlen[1]);
    if (!pattern[0] || !pattern[1]) {
        redislock__free(pattern[0]);
        redislock__free(pattern[1]);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory in list");
    }
    memset(&a, 0, sizeof a);
    a.fn = fn;
    a.userdata = userdata;
    /* Each master in turn: a lock held in majority mode shows once per
     * master that has it. */
    for (i = 0; i < c->nmasters; i++) {
        a.master = i;
        rc = list_member(c, &a, pattern, patlen);
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
    redislock__free(pattern[0]);
    redislock__free(pattern[1]);
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
