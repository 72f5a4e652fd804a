/* The client: options, masters, and fork() safety.
 *
 * A child must never talk on a socket it shares with its parent, and must
 * not find a library mutex copied in the locked state.  Every client is
 * registered here; the atfork prepare handler takes the registry lock, each
 * client's renewer mutex and each pool mutex, and both sides release them
 * after the fork.  In the child, the fork generation is bumped (fork.c:
 * pools then close their copies of the parent's sockets on first use) and
 * the renewer forgets the parent's renewals: its thread does not exist in
 * the child. */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_MASTERS 31

/* ------------------------------------------------------------- fork() */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static redislock_client *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
    redislock_client *c;
    pthread_mutex_lock(&registry_mu);
    for (c = registry; c; c = c->reg_next) {
        redislock__renew_fork_prepare(c->renewer);
        redislock__topo_fork_prepare(c);
    }
}

static void unlock_all(int child)
{
    redislock_client *c;
    for (c = registry; c; c = c->reg_next) {
        redislock__topo_fork_done(c, child);
        if (child)
            redislock__renew_fork_child(c->renewer);
        else
            redislock__renew_fork_parent(c->renewer);
    }
    pthread_mutex_unlock(&registry_mu);
}

static void after_fork_parent(void)
{
    unlock_all(0);
}

static void after_fork_child(void)
{
    redislock_client *c;
    redislock__fork_next_gen();
    /* a shutdown of the child's client must not reach the parent's */
    for (c = registry; c; c = c->reg_next) {
        close(c->shutdown_fd);
        c->shutdown_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (__atomic_load_n(&c->shutdown, __ATOMIC_SEQ_CST))
            redislock__shutdown_request(c);
    }
    unlock_all(1);
}

static void install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}


static void fork_register(redislock_client *c)
{
    pthread_once(&atfork_once, install);
    pthread_mutex_lock(&registry_mu);
    c->reg_next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_mu);
}

static void fork_unregister(redislock_client *c)
{
    redislock_client **pp;
    pthread_mutex_lock(&registry_mu);
    for (pp = &registry; *pp; pp = &(*pp)->reg_next)
        if (*pp == c) {
            *pp = c->reg_next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
}

/* ------------------------------------------------------------ clients */

int redislock_client_new(redislock_client **out, const char *url,
                         const redislock_client_options *opts)
{
    const char *urls[1];
    redislock__err_clear();
    if (out && !url) {
        *out = NULL;
        return redislock__err(REDISLOCK_EINVAL, "redislock_client_new: url is NULL");
    }
    urls[0] = url;
    return redislock_client_new_multi(out, urls, 1, opts);
}

int redislock_client_new_multi(redislock_client **out, const char *const *urls,
                               size_t n, const redislock_client_options *opts)
{
    redislock_client *c;
    size_t i;
    int rc;

    redislock__err_clear();
    if (!out)
        return redislock__err(REDISLOCK_EINVAL, "redislock_client_new: out is NULL");
    *out = NULL;
    if (!urls || n == 0 || n > MAX_MASTERS)
        return redislock__err(REDISLOCK_EINVAL,
                              "a client needs 1 to %d master URLs (got %zu)",
                              MAX_MASTERS, urls ? n : 0);
    for (i = 0; i < n; i++)
        if (!urls[i])
            return redislock__err(REDISLOCK_EINVAL, "master URL %zu is NULL", i + 1);
    c = redislock__calloc(1, sizeof *c);
    if (!c)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    c->shutdown_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->shutdown_fd < 0)
        rc = redislock__err(REDISLOCK_ENOMEM, "cannot make a client: eventfd: %s",
                            strerror(errno));
    else if (!(rc = redislock__client_opts(c, opts)))
        rc = redislock__topo_init(c, urls, n);
    if (!rc)
        rc = redislock__tls_init(c); /* a no-op without rediss:// masters */
    if (!rc && !(c->renewer = redislock__renewer_new(c)))
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    if (!rc)
        rc = redislock__renew_watch(c); /* a Sentinel member is watched */
    if (rc) {
        redislock_client_free(c);
        return rc;
    }
    fork_register(c);
    *out = c;
    return 0;
}

int redislock_client_shutdown(redislock_client *c)
{
    /* no redislock__err(): a signal handler may call this */
    if (!c)
        return REDISLOCK_EINVAL;
    redislock__shutdown_request(c);
    return 0;
}

void redislock_client_free(redislock_client *c)
{
    if (!c)
        return;
    if (c->renewer) {
        fork_unregister(c);
        redislock__renewer_free(c->renewer);
    }
    redislock__topo_free(c);
    redislock__tls_free(c); /* after the connections that use it */
    if (c->shutdown_fd >= 0)
        close(c->shutdown_fd);
    redislock__free(c->key_prefix);
    redislock__free(c->username);
    redislock__free(c->tls.ca_file);
    redislock__free(c->tls.ca_dir);
    redislock__free(c->tls.cert_file);
    redislock__free(c->tls.key_file);
    redislock__free(c->tls.server_name);
    redislock__free(c->sentinel_username);
    if (c->sentinel_password) {
        memset(c->sentinel_password, 0, strlen(c->sentinel_password));
        redislock__free(c->sentinel_password);
    }
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        redislock__free(c->password);
    }
    redislock__free(c);
}
