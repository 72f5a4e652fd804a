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

void redislock__pool_lock(redislock__master *m)
{
    pthread_mutex_lock(&m->mu);
}

void redislock__pool_unlock(redislock__master *m)
{
    pthread_mutex_unlock(&m->mu);
}

int redislock__master_init(redislock__master *m, redislock_client *c,
                           const char *url)
{
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = redislock__url_parse(url, &m->ep)))
        return rc;
    m->client = c;
    m->gen = redislock__fork_gen();
    pthread_mutex_init(&m->mu, NULL);
    return 0;
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

void redislock__master_destroy(redislock__master *m)
{
    if (!m->client)
        return; /* never initialised */
    pthread_mutex_lock(&m->mu);
    close_idle(m);
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_destroy(&m->mu);
    redislock__endpoint_clear(&m->ep);
    m->client = NULL;
}


int redislock__pool_get(redislock__master *m, int64_t deadline,
                        redislock__conn **out)
{
    unsigned long gen = redislock__fork_gen();
    int rc, was_down, was_failing, nopen;
    pthread_mutex_lock(&m->mu);
    if (m->gen != gen) {
        /* First use in a child after fork(): forget the parent's sockets.
         * Connections checked out by the parent's other threads do not exist
         * in the child; count none of them. */
        close_idle(m);
        m->nopen = 0;
        m->gen = gen;
    }
    while (m->idle) {
        redislock__conn *c = m->idle;
        m->idle = c->next;
        m->nidle--;
        if (redislock__conn_alive(c)) { /* nothing to read: owes no reply */
            pthread_mutex_unlock(&m->mu);
            c->next = NULL;
            *out = c;
            return 0;
        }
        m->nopen--;
        m->down = 1;
        redislock__log(m->client, REDISLOCK_LOG_INFO,
                       "redis %s: dropping a pooled connection the server closed",
                       m->ep.addr);
        redislock__conn_close(c);
    }
    m->nopen++;
    pthread_mutex_unlock(&m->mu);
    rc = redislock__conn_open(m, deadline, out);
    pthread_mutex_lock(&m->mu);
    was_down = m->down;
    was_failing = m->failing;
    if (rc && m->gen == gen)
        m->nopen--;
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
    if (c->gen != m->gen) {
        /* opened before a fork, in the parent: not counted here */
        pthread_mutex_unlock(&m->mu);
        redislock__conn_close(c);
        return;
    }
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

int redislock__pool_open_count(redislock__master *m)
{
    int n;
    pthread_mutex_lock(&m->mu);
    n = m->nopen;
    pthread_mutex_unlock(&m->mu);
    return n;
}
