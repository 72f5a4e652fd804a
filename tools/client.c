/* The client: one master, or several for majority mode. */
#include "tool.h"

#include <stdlib.h>

/* -vv: the library's log lines (from any thread; one write each). */
static void log_line(void *userdata, int level, const char *msg)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    char q[600];
    rlt_err("[%s] %s", names[level >= 0 && level < 4 ? level : 3],
            rlt_quote(msg, q, sizeof q));
}

redislock_client *rlt_client(const rlt_config *cfg, int *status)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    const char *pw = getenv("REDISLOCK_PASSWORD");
    const char *urls[RLT_MAX_URLS];
    int rc;

    if ((*status = rlt_tls_prepare(cfg, &o, urls)) >= 0)
        return NULL;

    const char *spw = cfg->sentinel_password ? cfg->sentinel_password
                                             : getenv("REDISLOCK_SENTINEL_PASSWORD");

    if (pw && *pw)
        o.password = pw;
    if (spw && *spw)
        o.sentinel_password = spw;
    o.min_replicas = cfg->min_replicas;
    o.key_prefix = cfg->key_prefix;
    o.hash_tag = cfg->hash_tag;
    o.connect_timeout_ms = cfg->connect_timeout_ms;
    o.command_timeout_ms = cfg->command_timeout_ms;
    if (cfg->verbose > 1) {
        o.log = log_line;
        o.log_level = cfg->verbose > 2 ? REDISLOCK_LOG_DEBUG : REDISLOCK_LOG_INFO;
    }
    rc = redislock_client_new_multi(&c, urls, cfg->nurls, &o);
    if (rc) {
        rlt_err("%s", redislock_last_error());
        *status = rlt_exit_for(rc);
        return NULL;
    }
    return c;
}
