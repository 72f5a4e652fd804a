/* The client: one master, or several for majority mode. */
#include "tool.h"

#include <stdlib.h>

redislock_client *rlt_client(const rlt_config *cfg, int *status)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    const char *pw = getenv("REDISLOCK_PASSWORD");
    int rc;

    if (pw && *pw)
        o.password = pw;
    o.key_prefix = cfg->key_prefix;
    o.hash_tag = cfg->hash_tag;
    o.connect_timeout_ms = cfg->connect_timeout_ms;
    o.command_timeout_ms = cfg->command_timeout_ms;
    rc = redislock_client_new_multi(&c, cfg->urls, cfg->nurls, &o);
    if (rc) {
        rlt_err("%s", redislock_last_error());
        *status = rlt_exit_for(rc);
        return NULL;
    }
    return c;
}
