/* A semaphore holder or waiter for the clock-offset test (test_kinds.c),
 * run under libfaketime so that its clocks read 30 s ahead or behind:
 *   kindclock URL NAME hold|wait EXPIRE_MS
 * hold: takes a permit of the semaphore NAME (1 permit, owner id
 * "clk-kindclock"), prints "acquired" and sleeps until killed; wait: waits
 * (10 s at most) for a permit, prints "acquired", releases it and exits 0. */
#include <redislock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    redislock_client *c;
    redislock *lk;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int hold;
    if (argc != 5)
        return 64;
    hold = !strcmp(argv[3], "hold");
    o.permits = 1;
    o.expire_ms = atoll(argv[4]);
    o.id = hold ? "clk-kindclock" : NULL;
    if (redislock_client_new(&c, argv[1], NULL) || redislock_new(&lk, c, argv[2], &o) ||
        redislock_acquire(lk, hold ? 0 : 10000)) {
        fprintf(stderr, "kindclock: %s\n", redislock_last_error());
        return 1;
    }
    printf("acquired\n");
    fflush(stdout);
    if (hold)
        for (;;)
            pause();
    if (redislock_release(lk))
        return 2;
    redislock_free(lk);
    redislock_client_free(c);
    return 0;
}
