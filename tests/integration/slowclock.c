/* A lock holder for the clock-drift test (test_safety.c), run under
 * libfaketime so that its clocks run slower than the server's:
 *   slowclock URL NAME EXPIRE_MS
 * acquires the lock without renewal, prints "acquired", then watches
 * redislock_held() until it answers 0 and prints the last moment, on the
 * real CLOCK_MONOTONIC (read with the system call, which libfaketime does
 * not intercept), at which it still answered 1. */
#include <redislock.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long real_now_us(void)
{
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    redislock_client *c;
    redislock *lk;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    long long last = 0;
    if (argc != 4)
        return 64;
    o.expire_ms = atoll(argv[3]);
    if (redislock_client_new(&c, argv[1], NULL) || redislock_new(&lk, c, argv[2], &o) ||
        redislock_acquire(lk, 0)) {
        fprintf(stderr, "slowclock: %s\n", redislock_last_error());
        return 1;
    }
    printf("acquired\n");
    fflush(stdout);
    while (redislock_held(lk))
        last = real_now_us();
    printf("%lld\n", last);
    fflush(stdout);
    redislock_free(lk);
    redislock_client_free(c);
    return 0;
}
