/* Logging through the client's log function, if any. */
#include "internal.h"

#include <stdio.h>

void redislock__log(const redislock_client *c, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (!c || !c->log || level > c->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log(c->log_userdata, level, buf);
}
