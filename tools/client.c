/* The client: one master, or several for majority mode. */
#include "tool.h"

#include <stdlib.h>

redislock_client *rlt_client(const rlt_config *cfg, int *status)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    const char *pw = getenv("REDISLOCK_PASSWORD");
    const char *urls[RLT_MAX_URLS];
    int rc;

    if ((*status = rlt_tls_prepare(cfg, &o, urls)) >= 0)
        return NULL;

    if (pw && *pw)
        o.password = pw;
    rc = redislock_client_new_multi(&c, urls, cfg->nurls, &o);
    if (rc) {
        rlt_err("%s", redislock_last_error());
        *status = rlt_exit_for(rc);
        return NULL;
    }
    return c;
}
