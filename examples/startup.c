/* startup: a service that, when it starts, clears the locks its previous
 * run on this host left behind (it crashed while holding them), then works
 * with renewed locks whose owner ids carry the same prefix.
 *
 *   startup URL [SERVICE]
 */
#include <redislock.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t lost;

/* On the client's renewal thread: only note it. */
static void on_lost(redislock *lk, int reason, void *userdata)
{
    lost = 1;
}

int main(int argc, char **argv)
{
    const char *service = argc > 2 ? argv[2] : "startup-example";
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    char host[64], prefix[160];
    uint64_t cleared = 0;
    int i, rc = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: startup URL [SERVICE]\n");
        return 2;
    }
    if (gethostname(host, sizeof host))
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    /* owner ids "<service>@<host>:<random>": this service on this host, and
     * nothing else (the redislock tool uses "redislock@<host>:") */
    snprintf(prefix, sizeof prefix, "%s@%s:", service, host);
    if (redislock_client_new(&c, argv[1], NULL)) {
        fprintf(stderr, "startup: %s\n", redislock_last_error());
        return 1;
    }
    /* Nothing of ours can be running yet: whatever holds our prefix is
     * stale.  Waiters on those locks are woken. */
    if (redislock_reset_all(c, prefix, &cleared)) {
        fprintf(stderr, "startup: %s\n", redislock_last_error());
        goto out;
    }
    printf("cleared %" PRIu64 " stale locks of %s\n", cleared, prefix);

    o.expire_ms = 15000;
    o.id_prefix = prefix;
    o.auto_renew = 1; /* renewed every 5 s while held */
    o.on_lost = on_lost;
    if (redislock_new(&lk, c, "startup-example/queue", &o) ||
        redislock_acquire(lk, 5000)) {
        fprintf(stderr, "startup: %s\n", redislock_last_error());
        goto out;
    }
    printf("holding %s as %s\n", redislock_name(lk), redislock_id(lk));
    for (i = 0; i < 5 && !lost && redislock_held(lk); i++)
        usleep(100000); /* a step of work, only while the lock is held */
    if (lost)
        fprintf(stderr, "startup: lost the lock: %s\n",
                redislock_lost_reason_string(redislock_lost_reason(lk)));
    else if (redislock_release(lk))
        fprintf(stderr, "startup: %s\n", redislock_errmsg(lk));
    rc = lost;
out:
    redislock_free(lk);
    redislock_client_free(c);
    return rc;
}
