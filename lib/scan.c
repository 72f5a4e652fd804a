/* Walking the keyspace for reset_all and list: SCAN from the client,
 * never KEYS, on every master of a member (every master of a cluster),
 * one page at a time; a page's keys go into script batches of one cluster
 * slot each (a script's keys must share one). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* qsort_r(); NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
#endif
#include "internal.h"

#include <hiredis.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_COUNT "1000"
/* The masters of member i (one, or every master of a cluster). */
#define MAX_NODES 256

void redislock__plan_free(redislock__plan *p)
{
    redislock__free(p->order);
    redislock__free(p->bounds);
    redislock__free(p->slot);
    /* page_plan frees a plan it could not finish, and its caller again */
    p->order = NULL;
    p->bounds = NULL;
    p->slot = NULL;
}

static int by_slot(const void *a, const void *b, void *arg)
{
    const int *slot = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (slot[x] != slot[y])
        return slot[x] < slot[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

int redislock__page_plan(const redislock_client *c, const redisReply *page, size_t batch,
                         redislock__plan *p)
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
        redislock__plan_free(p);
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
        if (i == 0 || i - p->bounds[p->nb - 1] == batch ||
            p->slot[p->order[i]] != p->slot[p->order[i - 1]])
            p->bounds[p->nb++] = i;
    p->bounds[p->nb] = n;
    return 0;
}

/* Walk the keys of node m that match pattern with SCAN, one page at a
 * time.  Returns 0, an error, or page's positive value. */
static int scan_node(redislock_client *c, redislock__master *m, const char *pattern,
                     size_t patlen, redislock__page_fn page, void *arg)
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

int redislock__scan_member(redislock_client *c, size_t i, const char *pattern,
                           size_t patlen, redislock__page_fn page, void *arg,
                           const char **where)
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

