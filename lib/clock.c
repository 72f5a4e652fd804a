/* Monotonic time and deadlines, in microseconds. */
#include "internal.h"

#include <time.h>

int64_t redislock__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t redislock__after_ms(int64_t ms)
{
    if (ms < 0 || ms > (INT64_MAX / 2) / 1000)
        return REDISLOCK__NEVER;
    return redislock__now_us() + ms * 1000;
}

int64_t redislock__min_deadline(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int redislock__poll_ms(int64_t deadline)
{
    int64_t left;
    if (deadline == REDISLOCK__NEVER)
        return -1;
    left = deadline - redislock__now_us();
    if (left <= 0)
        return 0;
    left = (left + 999) / 1000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

void redislock__sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0)
        ; /* EINTR: sleep the rest */
}
