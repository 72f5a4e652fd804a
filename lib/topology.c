/* The topology: which node serves a key, and how many must agree.
 *
 * A client has one member per URL; the quorum is counted over members
 * (c->quorum of c->nmasters: one member is the plain mode, N members
 * majority mode).  Each member answers, for a key, the node that serves it
 * now:
 *   - FIXED (redis://, rediss://, unix://): its one server;
 *   - SENTINEL (redis-sentinel://): the master its sentinels name
 *     (sentinel.c), which a failover moves;
 *   - CLUSTER (redis-cluster://): the master that owns the key's slot in
 *     the member's slot map (cluster.c), which -MOVED patches and a
 *     resharding or a failover changes.
 * The layers above ask for a connection to "member i for this key"
 * (redislock__topo_connect) and hand back the error replies that say the
 * topology moved (redislock__topo_reply): the member then finds its node
 * again, and the caller retries within its own deadline.  Nodes live until
 * the client is freed (pool.c). */
#include "internal.h"

#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Two URLs that name the same server (whatever the db): counted twice they
 * would make one server look like a majority.  Only the spelling is compared
 * ("localhost" and "127.0.0.1" are not recognised as one). */
static int same_server(const redislock__endpoint *a, const redislock__endpoint *b)
{
    if (a->is_unix != b->is_unix)
        return 0;
    if (a->is_unix)
        return strcmp(a->host, b->host) == 0;
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* WAIT settings: the URL's, else the client's. */
static void wait_settings(redislock__member *mb, const redislock__endpoint *ep)
{
    const redislock_client *c = mb->client;
    mb->min_replicas = ep->min_replicas >= 0 ? ep->min_replicas : c->min_replicas;
    mb->wait_ms = ep->wait_ms > 0 ? ep->wait_ms : (int)c->wait_ms;
}

static int fixed_init(redislock__member *mb, const char *url)
{
    redislock__master *m;
    int rc = redislock__node_open(mb->client, url, &m);
    if (rc)
        return rc;
    m->member = mb;
    mb->nodes = m;
    mb->node = m;
    mb->tmpl.tls = m->ep.tls;
    wait_settings(mb, &m->ep);
    mb->name = redislock__strdup(m->ep.addr);
    return mb->name ? 0 : redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
}

static int sentinel_init(redislock__member *mb, const char *url)
{
    redislock__topo_url t;
    char buf[300];
    int rc = redislock__topo_url_parse(url, &t);
    if (rc)
        return rc;
    mb->tmpl = t.tmpl; /* moved */
    memset(&t.tmpl, 0, sizeof t.tmpl);
    wait_settings(mb, &mb->tmpl);
    snprintf(buf, sizeof buf, "sentinel service %.200s", t.service);
    mb->name = redislock__strdup(buf);
    rc = mb->name ? redislock__sentinel_new(mb, &t)
                  : redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    redislock__topo_url_clear(&t);
    return rc;
}

static int cluster_init(redislock__member *mb, const char *url)
{
    redislock__topo_url t;
    char buf[300];
    size_t i, o;
    int rc = redislock__topo_url_parse(url, &t);
    if (rc)
        return rc;
    mb->tmpl = t.tmpl; /* moved */
    memset(&t.tmpl, 0, sizeof t.tmpl);
    wait_settings(mb, &mb->tmpl);
    o = (size_t)snprintf(buf, sizeof buf, "cluster ");
    for (i = 0; i < t.n && o < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, strchr(t.hosts[i], ':') ? "%s[%s]:%d"
                                                                             : "%s%s:%d",
                              i ? "," : "", t.hosts[i], t.ports[i]);
    mb->name = redislock__strdup(buf);
    if (strpbrk(mb->client->key_prefix, "{}")) {
        redislock__topo_url_clear(&t);
        return redislock__err(REDISLOCK_EINVAL, "the key prefix '%.60s' has a brace: on a "
                              "cluster it would split a lock's keys over slots",
                              mb->client->key_prefix);
    }
    /* a lock's keys must share a slot: lock:{name}, lock-signal:{name} */
    mb->client->hash_tag = 1;
    mb->client->cluster = 1;
    rc = mb->name ? redislock__cluster_new(mb, &t)
                  : redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    redislock__topo_url_clear(&t);
    return rc;
}

static int member_init(redislock_client *c, redislock__member *mb, const char *url)
{
    mb->client = c;
    mb->kind = redislock__url_kind(url);
    pthread_mutex_init(&mb->mu, NULL);
    switch (mb->kind) {
    case REDISLOCK__MEMBER_SENTINEL:
        return sentinel_init(mb, url);
    case REDISLOCK__MEMBER_CLUSTER:
        return cluster_init(mb, url);
    default:
        return fixed_init(mb, url);
    }
}

int redislock__topo_init(redislock_client *c, const char *const *urls, size_t n)
{
    size_t i, j;
    int rc;
    c->members = redislock__calloc(n, sizeof *c->members);
    if (!c->members)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    for (i = 0; i < n; i++) {
        redislock__member *mb = &c->members[i];
        c->nmasters = i + 1;
        if ((rc = member_init(c, mb, urls[i]))) {
            if (n > 1)
                rc = redislock__err(rc, "master %zu: %s", i + 1, redislock_last_error());
            return rc;
        }
        for (j = 0; j < i && mb->kind == REDISLOCK__MEMBER_FIXED; j++)
            if (c->members[j].kind == REDISLOCK__MEMBER_FIXED &&
                same_server(&c->members[j].node->ep, &mb->node->ep))
                return redislock__err(REDISLOCK_EINVAL,
                                      "masters %zu and %zu are the same server (%s): "
                                      "majority mode needs independent masters",
                                      j + 1, i + 1, mb->node->ep.addr);
    }
    c->quorum = n / 2 + 1;
    return 0;
}

void redislock__topo_free(redislock_client *c)
{
    size_t i;
    for (i = 0; c->members && i < c->nmasters; i++) {
        redislock__member *mb = &c->members[i];
        redislock__master *m;
        if (!mb->client)
            continue; /* never initialised */
        redislock__sentinel_free(mb);
        redislock__cluster_free(mb);
        while ((m = mb->nodes) != NULL) {
            mb->nodes = m->next_node;
            redislock__node_free(m);
        }
        redislock__endpoint_clear(&mb->tmpl);
        redislock__free(mb->name);
        pthread_mutex_destroy(&mb->mu);
    }
    redislock__free(c->members);
    c->members = NULL;
}

int redislock__topo_connect(redislock_client *c, size_t i, const char *key,
                            size_t keylen, int64_t deadline, redislock__conn **out)
{
    redislock__member *mb = &c->members[i];
    *out = NULL;
    if (mb->kind == REDISLOCK__MEMBER_SENTINEL)
        return redislock__sentinel_connect(mb, deadline, out);
    if (mb->kind == REDISLOCK__MEMBER_CLUSTER)
        return redislock__cluster_connect(mb, key, keylen, deadline, out);
    return redislock__pool_get(mb->node, deadline, out);
}

int redislock__topo_node(redislock_client *c, size_t i, int64_t deadline,
                         redislock__master **out)
{
    redislock__member *mb = &c->members[i];
    if (mb->kind == REDISLOCK__MEMBER_SENTINEL)
        return redislock__sentinel_master(mb, deadline, out);
    if (mb->kind == REDISLOCK__MEMBER_CLUSTER)
        return redislock__cluster_owner(mb, 0, deadline, out);
    *out = mb->node;
    return 0;
}

redislock__master *redislock__topo_route(redislock_client *c, size_t i, const char *key,
                                         size_t keylen)
{
    redislock__member *mb = &c->members[i];
    if (mb->kind == REDISLOCK__MEMBER_CLUSTER)
        return redislock__cluster_route(mb, key, keylen);
    return __atomic_load_n(&mb->node, __ATOMIC_ACQUIRE);
}

int redislock__topo_single(const redislock_client *c, size_t i)
{
    return c->members[i].kind != REDISLOCK__MEMBER_CLUSTER;
}

typedef struct nodes_arg {
    redislock__master **out;
    size_t max, n;
} nodes_arg;

static int add_node(void *arg, int first, int last, redislock__master *m)
{
    nodes_arg *a = arg;
    size_t j;
    (void)first;
    (void)last;
    for (j = 0; j < a->n && a->out[j] != m; j++)
        ;
    if (j == a->n && a->n < a->max)
        a->out[a->n++] = m;
    return 0;
}

int redislock__topo_nodes(redislock_client *c, size_t i, int64_t deadline,
                          redislock__master **out, size_t max, size_t *n)
{
    redislock__member *mb = &c->members[i];
    nodes_arg a;
    int rc;
    *n = 0;
    if (mb->kind != REDISLOCK__MEMBER_CLUSTER) {
        if ((rc = redislock__topo_node(c, i, deadline, out)))
            return rc;
        *n = 1;
        return 0;
    }
    a.out = out;
    a.max = max;
    a.n = 0;
    rc = redislock__cluster_ranges(mb, deadline, 1, add_node, &a);
    *n = a.n;
    return rc;
}

int redislock__topo_ranges(redislock_client *c, size_t i, int64_t deadline,
                           redislock__range_fn fn, void *arg)
{
    return redislock__cluster_ranges(&c->members[i], deadline, 1, fn, arg);
}

int64_t redislock__topo_max_block_us(const redislock__master *m)
{
    /* a cluster node that stops answering (paused, partitioned) while a
     * failover moves its slots is noticed this soon by its waiters; behind a
     * Sentinel, a waiter parked on a master that failed over unnoticed
     * (a missed +switch-master) asks again after a second */
    int kind = m->member ? m->member->kind : REDISLOCK__MEMBER_FIXED;
    return kind == REDISLOCK__MEMBER_CLUSTER    ? 2000000LL
           : kind == REDISLOCK__MEMBER_SENTINEL ? 1000000LL
                                                : 60000000LL;
}

const char *redislock__topo_name(const redislock_client *c, size_t i)
{
    return c->members[i].name;
}

int redislock__topo_fails_over(const redislock_client *c)
{
    size_t i;
    for (i = 0; i < c->nmasters; i++)
        if (c->members[i].kind != REDISLOCK__MEMBER_FIXED)
            return 1;
    return 0;
}

/* Does the error reply r say that its server no longer serves as master?
 *   READONLY, REDIRECT (Valkey): it is a replica now;
 *   UNBLOCKED: a blocked client dropped because the server changed role;
 *   LOADING, MASTERDOWN: restarting, or a replica cut off from its master. */
static int moved_away(const redisReply *r, int *drop)
{
    static const struct { const char *prefix; int drop; } table[] = {
        { "READONLY", 1 }, { "REDIRECT ", 1 }, { "UNBLOCKED", 1 },
        { "LOADING", 0 }, { "MASTERDOWN", 0 },
    };
    size_t k;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (k = 0; k < sizeof table / sizeof table[0]; k++)
        if (!strncmp(r->str, table[k].prefix, strlen(table[k].prefix))) {
            *drop = table[k].drop;
            return 1;
        }
    return 0;
}

int redislock__topo_reply(redislock__conn *conn, const redisReply *r)
{
    redislock__member *mb = conn->m->member;
    int drop = 0;
    if (mb && mb->kind == REDISLOCK__MEMBER_CLUSTER && r->type == REDIS_REPLY_ERROR)
        return redislock__cluster_reply(mb, conn, r);
    if (!mb || mb->kind != REDISLOCK__MEMBER_SENTINEL || !moved_away(r, &drop))
        return REDISLOCK__TOPO_NONE;
    conn->broken = 1;
    redislock__sentinel_stale(mb, conn->m, drop);
    return REDISLOCK__TOPO_MOVED;
}

void redislock__topo_counts(redislock_client *c, uint64_t *connections,
                            uint64_t *failovers, uint64_t *redirects)
{
    size_t i;
    redislock__master *m;
    for (i = 0; i < c->nmasters; i++) {
        redislock__member *mb = &c->members[i];
        pthread_mutex_lock(&mb->mu);
        for (m = mb->nodes; m; m = m->next_node)
            *connections += (uint64_t)redislock__pool_open_count(m);
        pthread_mutex_unlock(&mb->mu);
        if (mb->sen)
            *failovers += redislock__sentinel_switches(mb);
        if (mb->kind == REDISLOCK__MEMBER_CLUSTER) {
            uint64_t refreshes = 0, moves = 0;
            redislock__cluster_stats(mb, &refreshes, &moves);
            *redirects += moves;
        }
    }
}

int redislock__topo_ask(redislock__conn *conn, const redisReply *r, redislock__master **out)
{
    redislock__member *mb = conn->m->member;
    *out = NULL;
    if (!mb || mb->kind != REDISLOCK__MEMBER_CLUSTER)
        return redislock__err(REDISLOCK_EPROTO, "redis %s: ASK from a server that is not "
                              "a cluster node", conn->m->ep.addr);
    return redislock__cluster_ask(mb, conn, r, out);
}

void redislock__topo_lost(redislock__master *node)
{
    redislock__member *mb = node ? node->member : NULL;
    if (mb && mb->kind == REDISLOCK__MEMBER_CLUSTER)
        redislock__cluster_lost(mb, node);
}

/* ------------------------------------------------------------ fork() */

void redislock__topo_fork_prepare(redislock_client *c)
{
    size_t i;
    redislock__master *m;
    for (i = 0; i < c->nmasters; i++) {
        pthread_mutex_lock(&c->members[i].mu);
        for (m = c->members[i].nodes; m; m = m->next_node)
            redislock__pool_lock(m);
    }
}

void redislock__topo_fork_done(redislock_client *c, int child)
{
    size_t i;
    redislock__master *m;
    for (i = 0; i < c->nmasters; i++) {
        redislock__member *mb = &c->members[i];
        for (m = mb->nodes; m; m = m->next_node)
            redislock__pool_unlock(m);
        if (child && mb->sen)
            redislock__sentinel_fork_child(mb);
        if (child && mb->cl)
            redislock__cluster_fork_child(mb);
        pthread_mutex_unlock(&mb->mu);
    }
}

/* ------------------------------------------------------------- watching */

int redislock__topo_watched(const redislock_client *c)
{
    return redislock__topo_fails_over(c);
}

size_t redislock__topo_watch_fds(redislock_client *c, struct pollfd *p, size_t *which,
                                 size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < c->nmasters && n < max; i++) {
        int fd;
        if (c->members[i].kind != REDISLOCK__MEMBER_SENTINEL ||
            (fd = redislock__sentinel_watch_fd(&c->members[i])) < 0)
            continue;
        p[n].fd = fd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        which[n++] = i;
    }
    return n;
}

int64_t redislock__topo_watch(redislock_client *c, const int *readable)
{
    int64_t next = REDISLOCK__NEVER;
    size_t i;
    for (i = 0; i < c->nmasters; i++) {
        if (c->members[i].kind == REDISLOCK__MEMBER_SENTINEL)
            next = redislock__min_deadline(
                next, redislock__sentinel_watch(&c->members[i], readable[i]));
        else if (c->members[i].kind == REDISLOCK__MEMBER_CLUSTER)
            next = redislock__min_deadline(next, redislock__cluster_watch(&c->members[i]));
    }
    return next;
}
