/* fork() safety.
 *
 * A child must never talk on a socket it shares with its parent, and must
 * not find a library mutex copied in the locked state.  Every client is
 * registered here; the atfork prepare handler takes the registry lock, each
 * client's renewer mutex and each pool mutex, and both sides release them
 * after the fork.  In the child, a generation counter is bumped (pools then
 * close their copies of the parent's sockets on first use) and the renewer
 * forgets the parent's renewals: its thread does not exist in the child. */
#include "internal.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static redislock_client *registry;
static unsigned long fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
    redislock_client *c;
    size_t i;
    pthread_mutex_lock(&registry_mu);
    for (c = registry; c; c = c->reg_next) {
        redislock__renew_fork_prepare(c->renewer);
        for (i = 0; i < c->nmasters; i++)
            redislock__pool_lock(&c->masters[i]);
    }
}

static void unlock_all(int child)
{
    redislock_client *c;
    size_t i;
    for (c = registry; c; c = c->reg_next) {
        for (i = 0; i < c->nmasters; i++)
            redislock__pool_unlock(&c->masters[i]);
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
    __atomic_add_fetch(&fork_gen, 1, __ATOMIC_SEQ_CST);
    unlock_all(1);
}

static void install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

unsigned long redislock__fork_gen(void)
{
    return __atomic_load_n(&fork_gen, __ATOMIC_SEQ_CST);
}

void redislock__fork_register(redislock_client *c)
{
    pthread_once(&atfork_once, install);
    pthread_mutex_lock(&registry_mu);
    c->reg_next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_mu);
}

void redislock__fork_unregister(redislock_client *c)
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
