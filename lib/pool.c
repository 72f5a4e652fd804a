/* Per-master connection pool, and fork safety.
 *
 * A hiredis-style connection is not thread-safe, so each operation checks one
 * out, uses it alone, and puts it back.  A waiter blocked in BLPOP keeps its
 * connection for as long as it waits.  Idle connections are reused LIFO;
 * one that the server closed meanwhile (restart, CLIENT KILL, timeout) is
 * noticed with a zero-timeout poll and dropped, without a round trip.
 *
 * After fork() the child must never talk on a socket it shares with the
 * parent: the child's generation differs (fork.c), and it closes its copies
 * of the parent's idle sockets on first use.
 *
 * Connections opened and dropped are logged here: each connect at INFO
 * ("connected", or "reconnected" after a failure or a drop), the first of a
 * run of failed connects at WARN (the rest at DEBUG), a dropped connection
 * at INFO. */
#include "internal.h"

#include <string.h>
#include <strings.h>
#include <sys/socket.h>

void redislock__pool_lock(redislock__master *m)
{
    pthread_mutex_lock(&m->mu);
}

void redislock__pool_unlock(redislock__master *m)
{
    pthread_mutex_unlock(&m->mu);
}

static int node_init(redislock__master *m, redislock_client *c)
{
    m->client = c;
    m->gen = redislock__fork_gen();
    pthread_mutex_init(&m->mu, NULL);
    return 0;
}

int redislock__node_open(redislock_client *c, const char *url, redislock__master **out)
{
    redislock__master *m = redislock__calloc(1, sizeof *m);
    int rc;
    *out = NULL;
    if (!m)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    if ((rc = redislock__url_parse(url, &m->ep))) {
        redislock__free(m);
        return rc;
    }
    *out = m;
    return node_init(m, c);
}

int redislock__node_make(redislock_client *c, const redislock__endpoint *tmpl,
                         const char *host, int port, redislock__master **out)
{
    redislock__master *m = redislock__calloc(1, sizeof *m);
    int rc;
    *out = NULL;
    if (!m)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory adding a server");
    if ((rc = redislock__endpoint_copy(&m->ep, tmpl, host, port))) {
        redislock__free(m);
        return rc;
    }
    *out = m;
    return node_init(m, c);
}

/* Drop the idle list; m->mu held. */
static void close_idle(redislock__master *m)
{
    while (m->idle) {
        redislock__conn *c = m->idle;
        m->idle = c->next;
        m->nidle--;
        m->nopen--;
        redislock__conn_close(c);
    }
}

/* After fork(), in the child: the parent's sockets are not ours, and the
 * connections its threads had checked out do not exist here; m->mu held. */
static void sync_gen(redislock__master *m, unsigned long gen)
{
    if (m->gen == gen)
        return;
    close_idle(m);
    m->nopen = 0;
    m->busy = NULL;
    m->gen = gen;
}

void redislock__node_free(redislock__master *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    sync_gen(m, redislock__fork_gen());
    close_idle(m);
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_destroy(&m->mu);
    redislock__endpoint_clear(&m->ep);
    redislock__free(m);
}

/* Put c on the busy list; m->mu held. */
static void busy_push(redislock__master *m, redislock__conn *c)
{
    c->prev = NULL;
    c->next = m->busy;
    if (m->busy)
        m->busy->prev = c;
    m->busy = c;
}

static void busy_unlink(redislock__master *m, redislock__conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (m->busy == c)
        m->busy = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* An alive idle connection (checked out), or NULL; m->mu held. */
static redislock__conn *take_idle(redislock__master *m)
{
    while (m->idle) {
        redislock__conn *c = m->idle;
        m->idle = c->next;
        m->nidle--;
        if (redislock__conn_alive(c)) { /* nothing to read: owes no reply */
            busy_push(m, c);
            return c;
        }
        m->nopen--;
        m->down = 1;
        redislock__log(m->client, REDISLOCK_LOG_INFO,
                       "redis %s: dropping a pooled connection the server closed",
                       m->ep.addr);
        redislock__conn_close(c);
    }
    return NULL;
}

int redislock__pool_get_idle(redislock__master *m, redislock__conn **out)
{
    pthread_mutex_lock(&m->mu);
    sync_gen(m, redislock__fork_gen());
    *out = take_idle(m);
    pthread_mutex_unlock(&m->mu);
    return *out ? 0 : 1;
}

int redislock__pool_get(redislock__master *m, int64_t deadline,
                        redislock__conn **out)
{
    unsigned long gen = redislock__fork_gen();
    int rc, was_down, was_failing, nopen;
    pthread_mutex_lock(&m->mu);
    sync_gen(m, gen);
    if ((*out = take_idle(m)) != NULL) {
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    m->nopen++;
    pthread_mutex_unlock(&m->mu);
    rc = redislock__conn_open(m, deadline, out);
    pthread_mutex_lock(&m->mu);
    was_down = m->down;
    was_failing = m->failing;
    if (rc && m->gen == gen)
        m->nopen--;
    if (!rc && m->gen == gen)
        busy_push(m, *out);
    m->down = m->failing = rc != 0;
    nopen = m->nopen;
    pthread_mutex_unlock(&m->mu);
    redislock__stats_connect(m->client, rc, was_down);
    if (rc) /* the message names the server and the cause */
        redislock__log(m->client, was_failing ? REDISLOCK_LOG_DEBUG : REDISLOCK_LOG_WARN,
                       "cannot connect: %s", redislock_last_error());
    else
        redislock__log(m->client, REDISLOCK_LOG_INFO, "redis %s: %s (%d open)",
                       m->ep.addr, was_down ? "reconnected" : "connected", nopen);
    return rc;
}

void redislock__pool_put(redislock__conn *c)
{
    redislock__master *m;
    if (!c)
        return;
    m = c->m;
    pthread_mutex_lock(&m->mu);
    if (c->gen != redislock__fork_gen() || c->gen != m->gen) {
        /* opened before a fork, in the parent: not counted here */
        pthread_mutex_unlock(&m->mu);
        redislock__conn_close(c);
        return;
    }
    busy_unlink(m, c);
    if (c->broken || c->pending || c->olen || m->nidle >= m->client->max_idle) {
        int failed = c->broken || c->pending || c->olen;
        m->nopen--;
        if (failed)
            m->down = 1;
        pthread_mutex_unlock(&m->mu);
        if (failed)
            redislock__log(m->client, REDISLOCK_LOG_INFO,
                           "redis %s: dropping a connection after %s", m->ep.addr,
                           c->broken ? "an error" : "a reply that did not come in time");
        redislock__conn_close(c);
        return;
    }
    c->next = m->idle;
    m->idle = c;
    m->nidle++;
    pthread_mutex_unlock(&m->mu);
}

void redislock__pool_drop(redislock__master *m)
{
    redislock__conn *c;
    pthread_mutex_lock(&m->mu);
    sync_gen(m, redislock__fork_gen());
    close_idle(m);
    /* the fds stay open until their users put them back (under this
     * mutex), so none of them can be a reused descriptor */
    for (c = m->busy; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    m->down = 1;
    pthread_mutex_unlock(&m->mu);
}

int redislock__pool_open_count(redislock__master *m)
{
    int n;
    pthread_mutex_lock(&m->mu);
    n = m->nopen;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int redislock__node_get(redislock__member *mb, const redislock__endpoint *tmpl,
                        const char *host, int port, redislock__master **out)
{
    redislock__master *m;
    int rc = 0;
    pthread_mutex_lock(&mb->mu);
    for (m = mb->nodes; m; m = m->next_node)
        if (m->ep.port == port && m->ep.sentinel == tmpl->sentinel &&
            !strcasecmp(m->ep.host, host))
            break;
    if (!m && !(rc = redislock__node_make(mb->client, tmpl, host, port, &m)) && m) {
        m->member = mb;
        m->next_node = mb->nodes;
        mb->nodes = m;
    }
    pthread_mutex_unlock(&mb->mu);
    *out = m;
    return m ? 0 : rc;
}
