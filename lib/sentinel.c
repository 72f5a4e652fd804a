/* A master found through Redis Sentinel (redis-sentinel://), as the
 * Sentinel client spec says:
 *   - the sentinels are asked in order, each with a short timeout
 *     (sentinel_timeout_ms); the first that answers moves to the front;
 *   - SENTINEL GET-MASTER-ADDR-BY-NAME names the master, and ROLE on the
 *     master must say "master" (a replica named as master is refused and
 *     the next sentinel asked; when every sentinel names one, the round is
 *     tried again after 250 ms, within the caller's deadline);
 *   - SENTINEL SENTINELS, pipelined with the question, adds the sentinels
 *     that the list did not know.
 * Discovery runs when a member is first used, when a new connection is
 * needed and the master was last confirmed over a second ago, and after a
 * sign that it moved (stale): a connection that broke, an error reply that
 * says the server is no longer the master (topology.c).  One thread
 * discovers at a time; the others wait for its answer within their own
 * deadline.
 *
 * The client's renewal thread also watches every sentinel member
 * (redislock__sentinel_watch): a subscription to +switch-master on one
 * sentinel, and a question to a sentinel every second in case a message
 * was missed.  A switch makes the member stale and shuts down every
 * connection to the old master at once (pool_drop): waiters blocked there
 * wake up and wait again on the new one. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <hiredis.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A confirmed master is trusted this long for new connections. */
#define FRESH_US 1000000LL
/* A watch question to a sentinel this often. */
#define CHECK_EVERY_US 1000000LL
/* A failed subscription is tried again after this. */
#define SUB_RETRY_US 500000LL
/* All sentinels named a replica (a failover under way): ask again after. */
#define ROLE_RETRY_MS 250
#define MAX_SENTINELS 64

struct redislock__sentinel {
    char *service;
    redislock__endpoint stmpl;   /* the sentinels': TLS, their own credentials */
    redislock__master *list[MAX_SENTINELS]; /* in order: the last to answer first */
    size_t n;
    pthread_cond_t cv;           /* a discovery ended */
    int resolving;               /* a thread is discovering */
    unsigned long gen;           /* discoveries ended */
    int stale;                   /* the master may have moved: ask first */
    int64_t confirmed_us;        /* when the master was last confirmed */
    int64_t next_check_us;       /* the watch's next question */
    redislock__conn *sub;        /* the +switch-master subscription */
    int64_t sub_retry_us;
    unsigned long sub_gen;       /* fork generation of sub */
    uint64_t switches;           /* failovers seen (stats) */
};

/* --------------------------------------------------------------- set-up */

/* Add the sentinel host:port at the end of the list unless known (the
 * node of an address is always the same one).  Takes mb->mu. */
static int add_sentinel(redislock__member *mb, const char *host, int port)
{
    redislock__sentinel *s = mb->sen;
    redislock__master *m;
    size_t i;
    int rc;
    if ((rc = redislock__node_get(mb, &s->stmpl, host, port, &m)))
        return rc;
    pthread_mutex_lock(&mb->mu);
    for (i = 0; i < s->n && s->list[i] != m; i++)
        ;
    if (i == s->n && s->n < MAX_SENTINELS)
        s->list[s->n++] = m;
    pthread_mutex_unlock(&mb->mu);
    return 0;
}

int redislock__sentinel_new(redislock__member *mb, const redislock__topo_url *t)
{
    redislock_client *c = mb->client;
    redislock__sentinel *s = redislock__calloc(1, sizeof *s);
    pthread_condattr_t ca;
    size_t i;
    int rc = 0;
    if (!s)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    mb->sen = s;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->service = redislock__strdup(t->service);
    s->stmpl.tls = t->tmpl.tls;
    s->stmpl.sentinel = 1;
    s->stmpl.min_replicas = -1;
    if (c->sentinel_username)
        s->stmpl.username = redislock__strdup(c->sentinel_username);
    if (c->sentinel_password)
        s->stmpl.password = redislock__strdup(c->sentinel_password);
    if (!s->service || (c->sentinel_username && !s->stmpl.username) ||
        (c->sentinel_password && !s->stmpl.password))
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    for (i = 0; i < t->n && !rc; i++)
        rc = add_sentinel(mb, t->hosts[i], t->ports[i]);
    return rc;
}

void redislock__sentinel_free(redislock__member *mb)
{
    redislock__sentinel *s = mb->sen;
    if (!s)
        return;
    if (s->sub)
        redislock__pool_put(s->sub); /* its node is freed after this */
    pthread_cond_destroy(&s->cv);
    redislock__free(s->service);
    redislock__endpoint_clear(&s->stmpl);
    redislock__free(s);
    mb->sen = NULL;
}

/* ------------------------------------------------------------ discovery */

/* Why a round found no master, for the message. */
typedef struct why {
    redislock__notes notes;
    int unknown, answered, replica;
} why;

/* A TCP port given as a decimal string, or 0. */
static int port_of(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v > 0 && v < 65536 ? (int)v : 0;
}

/* The sentinels of a SENTINEL SENTINELS reply (flat field/value arrays). */
static void learn_sentinels(redislock__member *mb, const redisReply *r)
{
    size_t i, j;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *ip = NULL;
        int port = 0;
        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        for (j = 0; j + 1 < e->elements; j += 2) {
            const redisReply *k = e->element[j], *v = e->element[j + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (!strcmp(k->str, "ip"))
                ip = v->str;
            else if (!strcmp(k->str, "port"))
                port = port_of(v->str);
        }
        if (ip && *ip && port > 0)
            (void)add_sentinel(mb, ip, port); /* best effort */
    }
}

/* Ask one sentinel: its answer's master node in *out (NULL when it does
 * not know the service).  0, or an error (the sentinel failed). */
static int ask_sentinel(redislock__member *mb, redislock__master *sm, int64_t deadline,
                        int learn, redislock__master **out)
{
    redislock__sentinel *s = mb->sen;
    redislock__conn *conn = NULL;
    redisReply *addr = NULL, *list = NULL;
    int rc, port;
    *out = NULL;
    if ((rc = redislock__pool_get(sm, deadline, &conn)))
        return rc;
    rc = redislock__conn_appendv(conn, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s->service,
                                 (const char *)NULL);
    if (!rc && learn)
        rc = redislock__conn_appendv(conn, "SENTINEL", "SENTINELS", s->service,
                                     (const char *)NULL);
    if (!rc)
        rc = redislock__conn_flush(conn, deadline);
    if (!rc)
        rc = redislock__conn_read(conn, deadline, &addr);
    if (!rc && learn)
        rc = redislock__conn_read(conn, deadline, &list);
    if (!rc && addr->type == REDIS_REPLY_ARRAY && addr->elements == 2 &&
        addr->element[0]->type == REDIS_REPLY_STRING &&
        addr->element[1]->type == REDIS_REPLY_STRING &&
        (port = port_of(addr->element[1]->str)) > 0) {
        rc = redislock__node_get(mb, &mb->tmpl, addr->element[0]->str, port, out);
    } else if (!rc && addr->type == REDIS_REPLY_ERROR) {
        rc = redislock__conn_reply_error(conn, addr, "SENTINEL GET-MASTER-ADDR-BY-NAME");
    } else if (!rc && addr->type != REDIS_REPLY_NIL) {
        rc = redislock__err(REDISLOCK_EPROTO, "redis %s: unexpected reply to SENTINEL "
                            "GET-MASTER-ADDR-BY-NAME", sm->ep.addr);
    }
    if (!rc && learn)
        learn_sentinels(mb, list);
    if (rc == REDISLOCK_ETIMEDOUT)
        rc = redislock__err(REDISLOCK_EIO, "sentinel %s: no answer in time", sm->ep.addr);
    if (addr)
        freeReplyObject(addr);
    if (list)
        freeReplyObject(list);
    redislock__pool_put(conn);
    return rc;
}

/* ROLE on the node a sentinel named: 0 when it says master, 1 when it
 * says anything else, or an error. */
static int check_role(redislock__master *m, int64_t deadline)
{
    redislock__conn *conn = NULL;
    redisReply *r = NULL;
    int rc = redislock__pool_get(m, deadline, &conn);
    if (!rc && !(rc = redislock__conn_appendv(conn, "ROLE", (const char *)NULL)) &&
        !(rc = redislock__conn_flush(conn, deadline)))
        rc = redislock__conn_read(conn, deadline, &r);
    if (!rc) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
            r->element[0]->type == REDIS_REPLY_STRING)
            rc = strcmp(r->element[0]->str, "master") != 0;
        else
            rc = r->type == REDIS_REPLY_ERROR ? redislock__conn_reply_error(conn, r, "ROLE")
                                              : redislock__err(REDISLOCK_EPROTO,
                                                               "redis %s: odd ROLE reply",
                                                               m->ep.addr);
        freeReplyObject(r);
    }
    if (rc == REDISLOCK_ETIMEDOUT)
        rc = redislock__err(REDISLOCK_EIO, "redis %s: no answer to ROLE in time",
                            m->ep.addr);
    redislock__pool_put(conn);
    return rc;
}

/* Move sentinel k to the front of the list. */
static void to_front(redislock__sentinel *s, redislock__master *sm)
{
    size_t i, k;
    for (k = 0; k < s->n && s->list[k] != sm; k++)
        ;
    if (k == s->n)
        return;
    for (i = k; i > 0; i--)
        s->list[i] = s->list[i - 1];
    s->list[0] = sm;
}

/* One pass over the sentinels: the master (ROLE checked) in *out, 0;
 * else an error with w filled. */
static int one_pass(redislock__member *mb, int64_t deadline, why *w,
                    redislock__master **out)
{
    redislock__sentinel *s = mb->sen;
    redislock__master *order[MAX_SENTINELS];
    size_t i, n;
    pthread_mutex_lock(&mb->mu);
    n = s->n;
    memcpy(order, s->list, n * sizeof *order);
    pthread_mutex_unlock(&mb->mu);
    for (i = 0; i < n; i++) {
        redislock__master *m = NULL;
        int64_t step = redislock__min_deadline(
            redislock__after_ms(mb->client->sentinel_timeout_ms), deadline);
        int rc = ask_sentinel(mb, order[i], step, 1, &m);
        if (rc) {
            redislock__notes_add(&w->notes, "%s", redislock_last_error());
            continue;
        }
        w->answered++;
        if (!m) {
            w->unknown++;
            redislock__notes_add(&w->notes, "sentinel %s does not know it",
                                 order[i]->ep.addr);
            continue;
        }
        rc = check_role(m, step);
        if (rc < 0) {
            redislock__notes_add(&w->notes, "%s (named by sentinel %s)",
                                 redislock_last_error(), order[i]->ep.addr);
            continue;
        }
        if (rc > 0) {
            w->replica++;
            redislock__notes_add(&w->notes, "sentinel %s names %s, which is not a master",
                                 order[i]->ep.addr, m->ep.addr);
            continue;
        }
        pthread_mutex_lock(&mb->mu);
        to_front(s, order[i]);
        pthread_mutex_unlock(&mb->mu);
        *out = m;
        return 0;
    }
    return -1;
}

/* Discover the master by the deadline. */
static int discover(redislock__member *mb, int64_t deadline, redislock__master **out)
{
    redislock__sentinel *s = mb->sen;
    why w;
    for (;;) {
        int64_t left;
        memset(&w, 0, sizeof w);
        if (one_pass(mb, deadline, &w, out) == 0)
            return 0;
        left = deadline - redislock__now_us();
        /* a replica named as master: a failover is under way, ask again */
        if (!w.replica || left <= ROLE_RETRY_MS * 1000LL)
            break;
        redislock__sleep_ms(ROLE_RETRY_MS);
    }
    if (w.answered && w.unknown == w.answered)
        return redislock__err(REDISLOCK_EIO, "sentinels do not know service '%s' (%s)",
                              s->service, w.notes.text);
    return redislock__err(REDISLOCK_EIO, "no sentinel of service '%s' named a master "
                          "that answers: %s", s->service, w.notes.text);
}

/* Make node the member's master (mb->mu held): a different one before is
 * dropped (its connections shut down). */
static void switch_to(redislock__member *mb, redislock__master *node)
{
    redislock__master *old = mb->node;
    redislock__sentinel *s = mb->sen;
    node->capa_redirect = 1;
    __atomic_store_n(&mb->node, node, __ATOMIC_RELEASE);
    __atomic_store_n(&s->stale, 0, __ATOMIC_RELAXED);
    s->confirmed_us = redislock__now_us();
    if (old && old != node) {
        s->switches++;
        redislock__log(mb->client, REDISLOCK_LOG_WARN, "sentinel service %s: master "
                       "moved from %s to %s", s->service, old->ep.addr, node->ep.addr);
        redislock__pool_drop(old);
    } else if (!old) {
        redislock__log(mb->client, REDISLOCK_LOG_INFO, "sentinel service %s: master is %s",
                       s->service, node->ep.addr);
    }
}

/* Wait (mb->mu held) until no discovery runs or the deadline: 0 or
 * ETIMEDOUT. */
static int wait_turn(redislock__member *mb, int64_t deadline)
{
    redislock__sentinel *s = mb->sen;
    while (s->resolving) {
        struct timespec ts;
        if (deadline == REDISLOCK__NEVER) {
            pthread_cond_wait(&s->cv, &mb->mu);
            continue;
        }
        ts.tv_sec = (time_t)(deadline / 1000000);
        ts.tv_nsec = (long)(deadline % 1000000) * 1000;
        if (pthread_cond_timedwait(&s->cv, &mb->mu, &ts) == ETIMEDOUT && s->resolving)
            return REDISLOCK_ETIMEDOUT;
    }
    return 0;
}

/* The master of the member, discovered first when it is unknown, stale or
 * not confirmed for a second (unless `fresh` is 0: then only when unknown
 * or stale).  One discovery at a time; a thread that waited for another's
 * takes its answer. */
static int master(redislock__member *mb, int64_t deadline, int fresh,
                  redislock__master **out)
{
    redislock__sentinel *s = mb->sen;
    redislock__master *node = NULL;
    unsigned long gen;
    int rc;
    pthread_mutex_lock(&mb->mu);
    gen = s->gen;
    if (wait_turn(mb, deadline)) {
        pthread_mutex_unlock(&mb->mu);
        return redislock__err(REDISLOCK_EIO, "sentinel service %s: the discovery of "
                              "its master did not end in time", s->service);
    }
    if (mb->node && (s->gen != gen || (!s->stale && (!fresh ||
        redislock__now_us() - s->confirmed_us < FRESH_US)))) {
        *out = mb->node; /* known, or just discovered by another thread */
        pthread_mutex_unlock(&mb->mu);
        return 0;
    }
    s->resolving = 1;
    pthread_mutex_unlock(&mb->mu);
    rc = discover(mb, deadline, &node);
    pthread_mutex_lock(&mb->mu);
    s->resolving = 0;
    s->gen++;
    if (!rc && node)
        switch_to(mb, node);
    *out = mb->node;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&mb->mu);
    return rc;
}

int redislock__sentinel_master(redislock__member *mb, int64_t deadline,
                               redislock__master **out)
{
    return master(mb, deadline, 0, out);
}

int redislock__sentinel_connect(redislock__member *mb, int64_t deadline,
                                redislock__conn **out)
{
    redislock__master *node = __atomic_load_n(&mb->node, __ATOMIC_ACQUIRE);
    int rc;
    if (node && !__atomic_load_n(&mb->sen->stale, __ATOMIC_RELAXED) &&
        redislock__pool_get_idle(node, out) == 0)
        return 0; /* the warm path: no question to a sentinel */
    if ((rc = master(mb, deadline, 1, &node)))
        return rc;
    return redislock__pool_get(node, deadline, out);
}

void redislock__sentinel_stale(redislock__member *mb, redislock__master *node, int drop)
{
    pthread_mutex_lock(&mb->mu);
    if (mb->node == node) {
        if (!mb->sen->stale)
            redislock__log(mb->client, REDISLOCK_LOG_INFO, "sentinel service %s: %s may "
                           "no longer be its master; asking the sentinels",
                           mb->sen->service, node->ep.addr);
        __atomic_store_n(&mb->sen->stale, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&mb->mu);
    if (drop)
        redislock__pool_drop(node);
}

uint64_t redislock__sentinel_switches(redislock__member *mb)
{
    uint64_t n;
    pthread_mutex_lock(&mb->mu);
    n = mb->sen->switches;
    pthread_mutex_unlock(&mb->mu);
    return n;
}

/* ---------------------------------------------------------------- watch */

/* Close the subscription (broken) and try again later. */
static void unsubscribe(redislock__sentinel *s, int64_t now)
{
    if (s->sub) {
        s->sub->broken = 1;
        redislock__pool_put(s->sub);
    }
    s->sub = NULL;
    s->sub_retry_us = now + SUB_RETRY_US;
}

/* Subscribe to +switch-master on the front sentinel, by the deadline. */
static void subscribe(redislock__member *mb, int64_t deadline)
{
    redislock__sentinel *s = mb->sen;
    redislock__master *sm;
    redislock__conn *conn = NULL;
    redisReply *r = NULL;
    int rc;
    pthread_mutex_lock(&mb->mu);
    sm = s->n ? s->list[0] : NULL;
    pthread_mutex_unlock(&mb->mu);
    if (!sm || redislock__pool_get(sm, deadline, &conn))
        goto fail;
    rc = redislock__conn_appendv(conn, "SUBSCRIBE", "+switch-master", (const char *)NULL);
    if (!rc && !(rc = redislock__conn_flush(conn, deadline)))
        rc = redislock__conn_read(conn, deadline, &r);
    if (rc || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        conn->broken = 1;
        redislock__pool_put(conn);
        goto fail;
    }
    freeReplyObject(r);
    s->sub = conn;
    s->sub_gen = redislock__fork_gen();
    redislock__log(mb->client, REDISLOCK_LOG_DEBUG, "sentinel %s: watching +switch-master",
                   sm->ep.addr);
    return;
fail:
    redislock__log(mb->client, REDISLOCK_LOG_DEBUG,
                   "sentinel service %s: cannot subscribe to +switch-master (%s)",
                   s->service, sm ? redislock_last_error() : "no sentinel");
    s->sub = NULL;
    s->sub_retry_us = redislock__now_us() + SUB_RETRY_US;
}

/* A +switch-master message: "service oldip oldport newip newport".  1 if
 * it is about this member's service. */
static int about_us(const redislock__sentinel *s, const redisReply *r)
{
    const redisReply *payload;
    size_t n = strlen(s->service);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return 0;
    payload = r->element[2];
    return payload->type == REDIS_REPLY_STRING && payload->len > n &&
           !memcmp(payload->str, s->service, n) && payload->str[n] == ' ';
}

/* Read what the subscription has: 1 if our service switched. */
static int read_messages(redislock__member *mb)
{
    redislock__sentinel *s = mb->sen;
    int switched = 0, rc;
    for (;;) {
        redisReply *r = NULL;
        rc = redislock__conn_read_nb(s->sub, &r);
        if (rc <= 0)
            break;
        s->sub->pending++; /* a subscription owes replies for ever */
        if (about_us(s, r)) {
            redislock__log(mb->client, REDISLOCK_LOG_INFO, "sentinel service %s: "
                           "+switch-master %s", s->service, r->element[2]->str);
            switched = 1;
        }
        freeReplyObject(r);
    }
    if (rc < 0)
        unsubscribe(s, redislock__now_us());
    return switched;
}

int redislock__sentinel_watch_fd(redislock__member *mb)
{
    redislock__sentinel *s = mb->sen;
    return s->sub && s->sub_gen == redislock__fork_gen() ? s->sub->fd : -1;
}

int64_t redislock__sentinel_watch(redislock__member *mb, int readable)
{
    redislock__sentinel *s = mb->sen;
    redislock__master *node = NULL;
    int64_t now = redislock__now_us(), step;
    step = redislock__after_ms(2 * mb->client->sentinel_timeout_ms);
    if (s->sub && s->sub_gen != redislock__fork_gen())
        s->sub = NULL; /* the parent's (fork child: closed by fork_child) */
    if (s->sub && readable && read_messages(mb)) {
        /* ask now: the message says where, the sentinels confirm it */
        redislock__sentinel_stale(mb, __atomic_load_n(&mb->node, __ATOMIC_ACQUIRE), 0);
        s->next_check_us = now;
    }
    if (!s->sub && now >= s->sub_retry_us)
        subscribe(mb, step);
    if (now >= s->next_check_us) {
        /* a missed message, or no subscription: ask every second */
        (void)master(mb, step, 1, &node);
        s->next_check_us = redislock__now_us() + CHECK_EVERY_US;
    }
    return s->sub ? s->next_check_us
                  : redislock__min_deadline(s->next_check_us, s->sub_retry_us);
}

void redislock__sentinel_fork_child(redislock__member *mb)
{
    redislock__sentinel *s = mb->sen;
    pthread_condattr_t ca;
    /* the thread that discovered or watched does not exist here */
    s->resolving = 0;
    s->stale = 1;
    if (s->sub)
        redislock__conn_close(s->sub);
    s->sub = NULL;
    s->sub_retry_us = 0;
    s->next_check_us = 0;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
}
