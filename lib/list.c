/* The listing of locks (redislock_list()): SCAN from the client, never
 * KEYS (scan.c); each page's owners and expiries read in small script
 * batches (pipelined).  The mutex's lock:<name> keys (a fair lock's too,
 * with its queue), then the semaphores, an entry per holder. */
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
    redislock__plan_free(&p);
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
        rc = redislock__scan_member(c, i, pattern, patlen, list_page, &a, &a.addr);
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
