/* A Redis Cluster member (redis-cluster://): the slot map and its upkeep.
 *
 * The map says, for each of the 16384 slots, which master serves it (a
 * node of the member, made once per address and kept until the client is
 * freed, so that readers need no lock: a slot's owner is loaded and stored
 * atomically).  It comes from CLUSTER SLOTS (slots.c parses it), asked of
 * the masters the map knows and then of the seed nodes of the URL, the
 * node that failed last asked last; the first useful answer wins (an empty
 * map, from a node still starting, is passed over).
 *
 * When the map is asked again:
 *   - on first use, and when a key's slot has no known owner;
 *   - after -MOVED: the slot is patched at once (topology.c), and one full
 *     refresh is scheduled, folding every request of the next 200 ms
 *     together;
 *   - after a sign that a master went away (its connection refused or
 *     closed, -UNBLOCKED, -READONLY, -CLUSTERDOWN): at once, but not more
 *     often than every 50 ms;
 *   - every 10 s from the client's renewal thread (redislock__cluster_watch),
 *     which also runs a scheduled refresh that nobody else ran.
 * One thread refreshes at a time.  A thread that knows its slot's owner
 * never waits for another's refresh; one that does not waits for the
 * answer within its own deadline. */
#include "internal.h"

#include <errno.h>
#include <hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Refreshes asked for by -MOVED are folded within this window. */
#define FOLD_US 200000LL
/* After a master went away: at most one refresh per this. */
#define URGENT_US 50000LL
/* The renewal thread's periodic check. */
#define CHECK_EVERY_US 10000000LL
/* One node's CLUSTER SLOTS answer (connect included), at most. */
#define ASK_MAX_MS 1000
#define MAX_SEEDS 64
#define MAX_ASK 128

struct redislock__cluster {
    redislock__master *slot[REDISLOCK__SLOTS]; /* owners; NULL unknown (atomic) */
    redislock__master *seeds[MAX_SEEDS];
    size_t nseeds;
    pthread_cond_t cv;           /* a refresh ended */
    int refreshing;              /* a thread is refreshing */
    unsigned long gen;           /* refreshes ended */
    int64_t last_us;             /* when the last refresh ended (0: never) */
    int64_t due_us;              /* a refresh is wanted from then on; 0: none */
    redislock__master *failed;   /* asked last in the next refresh */
    int last_rc;                 /* the last refresh's result, and its */
    char last_err[REDISLOCK__ERRLEN]; /* message (for threads that waited) */
    uint64_t refreshes, moves;   /* stats */
};

/* --------------------------------------------------------------- set-up */

int redislock__cluster_new(redislock__member *mb, const redislock__topo_url *t)
{
    redislock__cluster *cl = redislock__calloc(1, sizeof *cl);
    pthread_condattr_t ca;
    size_t i;
    int rc;
    if (!cl)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    mb->cl = cl;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (i = 0; i < t->n && cl->nseeds < MAX_SEEDS; i++) {
        if ((rc = redislock__node_get(mb, &mb->tmpl, t->hosts[i], t->ports[i],
                                      &cl->seeds[cl->nseeds])))
            return rc;
        cl->nseeds++;
    }
    return 0;
}

void redislock__cluster_free(redislock__member *mb)
{
    if (!mb->cl)
        return;
    pthread_cond_destroy(&mb->cl->cv);
    redislock__free(mb->cl);
    mb->cl = NULL;
}

void redislock__cluster_fork_child(redislock__member *mb)
{
    redislock__cluster *cl = mb->cl;
    pthread_condattr_t ca;
    cl->refreshing = 0; /* the thread that refreshed does not exist here */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* ------------------------------------------------------------- asking */

/* CLUSTER SLOTS of node m: its ranges in *rs (the caller frees them). */
static int ask_node(redislock__master *m, int64_t deadline, redislock__slot_range **rs,
                    size_t *n)
{
    redislock__conn *conn = NULL;
    redisReply *r = NULL;
    int rc = redislock__pool_get(m, deadline, &conn);
    if (!rc && !(rc = redislock__conn_appendv(conn, "CLUSTER", "SLOTS", (const char *)NULL)) &&
        !(rc = redislock__conn_flush(conn, deadline)))
        rc = redislock__conn_read(conn, deadline, &r);
    if (!rc && r->type == REDIS_REPLY_ERROR)
        rc = redislock__conn_reply_error(conn, r, "CLUSTER SLOTS");
    else if (!rc && (rc = redislock__slots_parse(r, m->ep.host, rs, n)) < 0 &&
             rc != REDISLOCK_ENOMEM)
        rc = redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected CLUSTER SLOTS reply",
                            m->ep.addr);
    else if (rc == REDISLOCK_ENOMEM)
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory reading the slot map");
    if (rc == REDISLOCK_ETIMEDOUT)
        rc = redislock__err(REDISLOCK_EIO, "redis %s: no answer to CLUSTER SLOTS in time",
                            m->ep.addr);
    if (r)
        freeReplyObject(r);
    redislock__pool_put(conn);
    return rc;
}

/* The nodes to ask, in order: the masters of the map, then the seeds;
 * the one that failed last goes last.  mb->mu held. */
static size_t candidates(redislock__member *mb, redislock__master **out)
{
    redislock__cluster *cl = mb->cl;
    redislock__master *prev = NULL;
    size_t n = 0, i, j;
    for (i = 0; i < REDISLOCK__SLOTS && n < MAX_ASK - MAX_SEEDS; i++) {
        redislock__master *m = cl->slot[i];
        if (!m || m == prev)
            continue;
        prev = m;
        for (j = 0; j < n && out[j] != m; j++)
            ;
        if (j == n)
            out[n++] = m;
    }
    for (i = 0; i < cl->nseeds; i++) {
        for (j = 0; j < n && out[j] != cl->seeds[i]; j++)
            ;
        if (j == n)
            out[n++] = cl->seeds[i];
    }
    for (i = 0; i + 1 < n; i++)
        if (out[i] == cl->failed) {
            memmove(out + i, out + i + 1, (n - i - 1) * sizeof *out);
            out[n - 1] = cl->failed;
            break;
        }
    return n;
}

/* Install the ranges in the map.  A slot they leave out keeps the owner it
 * had: a node in the middle of a failover can leave a slot out of its
 * answer for a moment, and the owner's own replies (-MOVED, -CLUSTERDOWN)
 * correct a stale entry, where an unknown one would fail the call. */
static int install(redislock__member *mb, const redislock__slot_range *rs, size_t n)
{
    redislock__cluster *cl = mb->cl;
    redislock__master **owner = redislock__calloc(REDISLOCK__SLOTS, sizeof *owner);
    size_t i;
    int s, rc = 0, changed = 0;
    if (!owner)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory reading the slot map");
    for (i = 0; i < n && !rc; i++) {
        redislock__master *m = NULL;
        if (!(rc = redislock__node_get(mb, &mb->tmpl, rs[i].host, rs[i].port, &m)))
            for (s = rs[i].first; s <= rs[i].last; s++)
                owner[s] = m;
    }
    if (!rc) {
        pthread_mutex_lock(&mb->mu);
        for (s = 0; s < REDISLOCK__SLOTS; s++)
            if (owner[s] && cl->slot[s] != owner[s]) {
                changed++;
                __atomic_store_n(&cl->slot[s], owner[s], __ATOMIC_RELEASE);
            }
        pthread_mutex_unlock(&mb->mu);
        if (changed)
            redislock__log(mb->client, REDISLOCK_LOG_INFO, "%s: slot map: %d slot(s) "
                           "changed owner, %zu range(s)", mb->name, changed, n);
    }
    redislock__free(owner);
    return rc;
}

/* Ask the nodes in turn until one gives a map; install it. */
static int ask_all(redislock__member *mb, int64_t deadline)
{
    redislock__master *order[MAX_ASK] = { NULL };
    redislock__slot_range *rs = NULL;
    size_t n, i, nr = 0;
    redislock__notes w;
    memset(&w, 0, sizeof w);
    pthread_mutex_lock(&mb->mu);
    n = candidates(mb, order);
    pthread_mutex_unlock(&mb->mu);
    for (i = 0; i < n && redislock__now_us() < deadline; i++) {
        int64_t step = redislock__min_deadline(redislock__after_ms(ASK_MAX_MS), deadline);
        int rc = ask_node(order[i], step, &rs, &nr);
        if (rc) {
            redislock__notes_add(&w, "%s", redislock_last_error());
            continue;
        }
        if (nr == 0) {
            redislock__notes_add(&w, "redis %s: an empty slot map (a node still "
                                 "starting?)", order[i]->ep.addr);
            redislock__free(rs);
            continue;
        }
        rc = install(mb, rs, nr);
        redislock__free(rs);
        return rc;
    }
    return redislock__err(REDISLOCK_EIO, "%s: no node gave a slot map: %s", mb->name,
                          w.len ? w.text : "no time left");
}

/* ------------------------------------------------------------ refreshing */

/* Wait (mb->mu held) until no refresh runs or the deadline: 0 or
 * ETIMEDOUT. */
static int wait_turn(redislock__member *mb, int64_t deadline)
{
    redislock__cluster *cl = mb->cl;
    while (cl->refreshing) {
        struct timespec ts;
        if (deadline == REDISLOCK__NEVER) {
            pthread_cond_wait(&cl->cv, &mb->mu);
            continue;
        }
        ts.tv_sec = (time_t)(deadline / 1000000);
        ts.tv_nsec = (long)(deadline % 1000000) * 1000;
        if (pthread_cond_timedwait(&cl->cv, &mb->mu, &ts) == ETIMEDOUT && cl->refreshing)
            return REDISLOCK_ETIMEDOUT;
    }
    return 0;
}

/* Refresh the map now unless another thread does: with wait, a thread
 * that finds a refresh running waits for its end (and takes its answer);
 * without, it returns 0 at once. */
static int refresh(redislock__member *mb, int64_t deadline, int wait)
{
    redislock__cluster *cl = mb->cl;
    unsigned long gen;
    int rc;
    pthread_mutex_lock(&mb->mu);
    if (cl->refreshing && !wait) {
        pthread_mutex_unlock(&mb->mu);
        return 0;
    }
    gen = cl->gen;
    if (wait_turn(mb, deadline)) {
        pthread_mutex_unlock(&mb->mu);
        return redislock__err(REDISLOCK_EIO, "%s: the refresh of its slot map did not "
                              "end in time", mb->name);
    }
    if (cl->gen != gen) { /* another thread just did it: its answer */
        rc = cl->last_rc;
        if (rc)
            rc = redislock__err(rc, "%s", cl->last_err);
        pthread_mutex_unlock(&mb->mu);
        return rc;
    }
    cl->refreshing = 1;
    cl->due_us = 0;
    pthread_mutex_unlock(&mb->mu);
    rc = ask_all(mb, deadline);
    pthread_mutex_lock(&mb->mu);
    cl->refreshing = 0;
    cl->gen++;
    cl->refreshes++;
    cl->last_us = redislock__now_us();
    cl->last_rc = rc;
    snprintf(cl->last_err, sizeof cl->last_err, "%s", rc ? redislock_last_error() : "");
    if (!rc)
        cl->failed = NULL;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&mb->mu);
    return rc;
}

/* Ask for a refresh no sooner than fold_us after the last one. */
static void want_refresh(redislock__member *mb, int64_t fold_us, redislock__master *failed)
{
    redislock__cluster *cl = mb->cl;
    int64_t due = redislock__now_us();
    pthread_mutex_lock(&mb->mu);
    if (cl->last_us && cl->last_us + fold_us > due)
        due = cl->last_us + fold_us;
    if (!cl->due_us || due < cl->due_us)
        cl->due_us = due;
    if (failed)
        cl->failed = failed;
    pthread_mutex_unlock(&mb->mu);
}

/* 1 if a scheduled refresh is due. */
static int refresh_due(redislock__member *mb)
{
    int64_t due;
    pthread_mutex_lock(&mb->mu);
    due = mb->cl->due_us;
    pthread_mutex_unlock(&mb->mu);
    return due && redislock__now_us() >= due;
}

/* ----------------------------------------------------------- routing */

int redislock__cluster_owner(redislock__member *mb, int slot, int64_t deadline,
                             redislock__master **out)
{
    redislock__cluster *cl = mb->cl;
    redislock__master *m = __atomic_load_n(&cl->slot[slot], __ATOMIC_ACQUIRE);
    int rc = 0;
    if (m && refresh_due(mb) && refresh(mb, deadline, 0))
        redislock__log(mb->client, REDISLOCK_LOG_DEBUG, "%s", redislock_last_error());
    if (!m) /* unknown: wait for a map */
        rc = refresh(mb, deadline, 1);
    *out = __atomic_load_n(&cl->slot[slot], __ATOMIC_ACQUIRE);
    if (*out)
        return 0;
    if (rc)
        return rc;
    return redislock__err(REDISLOCK_ECLUSTERDOWN, "%s: no master serves slot %d (the "
                          "cluster does not cover it)", mb->name, slot);
}

int redislock__cluster_connect(redislock__member *mb, const char *key, size_t keylen,
                               int64_t deadline, redislock__conn **out)
{
    int slot = key ? redislock__keyslot(key, keylen) : 0, rc;
    redislock__master *m = NULL, *again = NULL;
    char keep[REDISLOCK__ERRLEN];
    *out = NULL;
    if ((rc = redislock__cluster_owner(mb, slot, deadline, &m)))
        return rc;
    if (!(rc = redislock__pool_get(m, deadline, out)))
        return 0;
    /* the owner did not take the connection: a failover may have moved
     * the slot; ask the others now (at most every URGENT_US) */
    snprintf(keep, sizeof keep, "%s", redislock_last_error());
    want_refresh(mb, URGENT_US, m);
    if (refresh_due(mb) && !refresh(mb, deadline, 0) &&
        !redislock__cluster_owner(mb, slot, deadline, &again) && again != m)
        return redislock__pool_get(again, deadline, out);
    return redislock__err(rc, "%s", keep);
}

int redislock__cluster_reply(redislock__member *mb, redislock__conn *conn,
                             const redisReply *r)
{
    static const char *const gone[] = { "UNBLOCKED", "READONLY", "LOADING", "MASTERDOWN" };
    redislock__redirect rd;
    redislock__master *to = NULL;
    size_t k;
    if (!redislock__redirect_parse(r->str, r->len, &rd) && !rd.ask) {
        const char *host = rd.host[0] ? rd.host : conn->m->ep.host;
        if (redislock__node_get(mb, &mb->tmpl, host, rd.port, &to) || to == conn->m)
            return REDISLOCK__TOPO_NONE; /* to itself: an error like any other */
        pthread_mutex_lock(&mb->mu);
        __atomic_store_n(&mb->cl->slot[rd.slot], to, __ATOMIC_RELEASE);
        mb->cl->moves++;
        pthread_mutex_unlock(&mb->mu);
        redislock__log(mb->client, REDISLOCK_LOG_INFO, "%s: slot %d moved from %s to %s",
                       mb->name, rd.slot, conn->m->ep.addr, to->ep.addr);
        want_refresh(mb, FOLD_US, NULL);
        return REDISLOCK__TOPO_REDIRECT;
    }
    if (!strncmp(r->str, "ASK ", 4))
        return REDISLOCK__TOPO_ASK;
    if (!strncmp(r->str, "TRYAGAIN", 8))
        return REDISLOCK__TOPO_TRYAGAIN;
    if (!strncmp(r->str, "CLUSTERDOWN", 11)) {
        want_refresh(mb, FOLD_US, NULL);
        return REDISLOCK__TOPO_CLUSTERDOWN;
    }
    for (k = 0; k < sizeof gone / sizeof gone[0]; k++)
        if (!strncmp(r->str, gone[k], strlen(gone[k]))) {
            /* no longer a master (a failover), or not ready */
            conn->broken = 1;
            want_refresh(mb, URGENT_US, conn->m);
            return REDISLOCK__TOPO_MOVED;
        }
    return REDISLOCK__TOPO_NONE;
}

int redislock__cluster_ask(redislock__member *mb, redislock__conn *conn, const redisReply *r,
                           redislock__master **out)
{
    redislock__redirect rd;
    *out = NULL;
    if (r->type != REDIS_REPLY_ERROR || redislock__redirect_parse(r->str, r->len, &rd) ||
        !rd.ask)
        return redislock__err(REDISLOCK_EPROTO, "redis %s: a bad ASK reply",
                              conn->m->ep.addr);
    return redislock__node_get(mb, &mb->tmpl, rd.host[0] ? rd.host : conn->m->ep.host,
                               rd.port, out);
}

void redislock__cluster_lost(redislock__member *mb, redislock__master *node)
{
    want_refresh(mb, URGENT_US, node);
}

redislock__master *redislock__cluster_route(redislock__member *mb, const char *key,
                                            size_t keylen)
{
    return __atomic_load_n(&mb->cl->slot[redislock__keyslot(key, keylen)], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------- whole map */

int redislock__cluster_ranges(redislock__member *mb, int64_t deadline, int fresh,
                              redislock__range_fn fn, void *arg)
{
    redislock__cluster *cl = mb->cl;
    int s = 0, rc = 0;
    if (fresh || !__atomic_load_n(&cl->gen, __ATOMIC_RELAXED))
        rc = refresh(mb, deadline, 1);
    if (rc && !cl->gen)
        return rc;
    while (s < REDISLOCK__SLOTS) {
        redislock__master *m = __atomic_load_n(&cl->slot[s], __ATOMIC_ACQUIRE);
        int first = s;
        while (s < REDISLOCK__SLOTS && __atomic_load_n(&cl->slot[s], __ATOMIC_ACQUIRE) == m)
            s++;
        if (m && (rc = fn(arg, first, s - 1, m)) != 0)
            return rc;
    }
    return 0;
}

void redislock__cluster_stats(redislock__member *mb, uint64_t *refreshes, uint64_t *moves)
{
    pthread_mutex_lock(&mb->mu);
    *refreshes = mb->cl->refreshes;
    *moves = mb->cl->moves;
    pthread_mutex_unlock(&mb->mu);
}

/* ---------------------------------------------------------------- watch */

/* The time of the last refresh, whoever made it (0: none yet). */
static int64_t last_refresh(redislock__member *mb)
{
    int64_t last;
    pthread_mutex_lock(&mb->mu);
    last = mb->cl->last_us;
    pthread_mutex_unlock(&mb->mu);
    return last;
}

int64_t redislock__cluster_watch(redislock__member *mb)
{
    redislock__cluster *cl = mb->cl;
    int64_t last = last_refresh(mb), next;
    /* a periodic check CHECK_EVERY_US after the last refresh, whoever made
     * it (a map just read by a call is not read again), or one asked for */
    if (!last || redislock__now_us() >= last + CHECK_EVERY_US || refresh_due(mb)) {
        int64_t step = redislock__after_ms(2LL * ASK_MAX_MS);
        if (refresh(mb, step, 0))
            redislock__log(mb->client, REDISLOCK_LOG_DEBUG, "%s", redislock_last_error());
    }
    pthread_mutex_lock(&mb->mu);
    next = (cl->last_us ? cl->last_us : redislock__now_us()) + CHECK_EVERY_US;
    if (cl->due_us)
        next = redislock__min_deadline(cl->due_us, next);
    pthread_mutex_unlock(&mb->mu);
    return next;
}
