/* redislock(1): run a command while holding a lock on Redis, like flock(1)
 * for a fleet of hosts.  See doc/redislock.1. */
#include "tool.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    rlt_config cfg;
    redislock_client *c;
    int status = rlt_parse_args(&cfg, argc, argv);

    if (status >= 0)
        return status;
    if (!(c = rlt_client(&cfg, &status)))
        return status;
    switch (cfg.mode) {
    case RLT_STATUS:
        status = rlt_status(&cfg, c);
        break;
    case RLT_RESET:
        status = rlt_reset(&cfg, c);
        break;
    case RLT_RESET_ALL:
        status = rlt_reset_all(&cfg, c);
        break;
    case RLT_RUN:
        status = rlt_run(&cfg, c);
        break;
    }
    redislock_client_free(c);
    return status;
}
