/* trylock: do a job only if nobody else is doing it right now; never wait.
 * Prints who holds the lock when it is busy.
 *
 *   trylock URL NAME
 * Exit status: 0 done, 1 busy, 2 usage, 3 error.
 */
#include <redislock.h>

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_info info;
    int rc, status = 3;

    if (argc != 3) {
        fprintf(stderr, "usage: trylock URL NAME\n");
        return 2;
    }
    o.expire_ms = 60000;
    if (redislock_client_new(&c, argv[1], NULL) ||
        redislock_new(&lk, c, argv[2], &o)) {
        fprintf(stderr, "trylock: %s\n", redislock_last_error());
        goto out;
    }
    switch ((rc = redislock_try_acquire(lk))) { /* one round trip */
    case REDISLOCK_OK:
        printf("got %s as %s: working\n", argv[2], redislock_id(lk));
        sleep(1); /* the job */
        if (redislock_release(lk))
            fprintf(stderr, "trylock: %s\n", redislock_errmsg(lk));
        status = 0;
        break;
    case REDISLOCK_EBUSY:
        if (redislock_query(lk, &info) == REDISLOCK_OK && info.held)
            printf("busy: %s is held by %s for %lld ms more\n", argv[2], info.owner,
                   (long long)info.ttl_ms);
        else
            printf("busy: %s was held a moment ago\n", argv[2]);
        status = 1;
        break;
    default:
        fprintf(stderr, "trylock: %s: %s\n", redislock_err_name(rc), redislock_errmsg(lk));
    }
out:
    redislock_free(lk);
    redislock_client_free(c);
    return status;
}
