/* Messages on stderr, and the exit status for a library error. */
#include "tool.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static void vline(const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* one write, so that lines of concurrent tools do not interleave */
    fprintf(stderr, "redislock: %s\n", buf);
    fflush(stderr);
}

void rlt_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

void rlt_info(const rlt_config *cfg, const char *fmt, ...)
{
    va_list ap;
    if (!cfg->verbose)
        return;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

int rlt_exit_for(int err)
{
    switch (err) {
    case REDISLOCK_EINVAL:
    case REDISLOCK_ENOTSUP:
        return RLT_EXIT_USAGE;
    case REDISLOCK_ENOMEM:
        return RLT_EXIT_OSERR;
    default: /* EIO, EPROTO, EAUTH, ENOQUORUM, ... */
        return RLT_EXIT_UNAVAILABLE;
    }
}

int64_t rlt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
