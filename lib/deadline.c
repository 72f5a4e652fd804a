/* The deadlines of the steps of an operation, one rule for every caller:
 * with one master a step is bounded by the connect or the command timeout,
 * with several by master_timeout_ms (so one hung master costs that once),
 * and none goes past the caller's limit. */
#include "internal.h"

int64_t redislock__io_deadline(const redislock_client *c, int64_t limit)
{
    return redislock__min_deadline(redislock__after_ms(c->command_timeout_ms),
                                   limit);
}

int64_t redislock__step_deadline(const redislock_client *c, int connect,
                                 int64_t limit)
{
    int64_t ms = c->nmasters > 1 ? c->master_timeout_ms
             : connect       ? c->connect_timeout_ms
                             : c->command_timeout_ms;
    return redislock__min_deadline(redislock__after_ms(ms), limit);
}

int64_t redislock__slack_us(const redislock_client *c)
{
    int64_t ms = c->command_timeout_ms < 250 ? c->command_timeout_ms : 250;
    return ms * 1000;
}

int64_t redislock__brief_us(const redislock_client *c)
{
    int64_t ms = c->command_timeout_ms < 25 ? c->command_timeout_ms : 25;
    return ms * 1000;
}
