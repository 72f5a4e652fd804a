/* --status, --reset and --reset-all: one round trip each (a SCAN walk for
 * --reset-all), one line on stdout. */
#include "tool.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int rlt_status(const rlt_config *cfg, redislock_client *c)
{
    redislock *lk = NULL;
    redislock_info info;
    /* only queried; majority mode wants handles with an expiry */
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int rc;
    o.expire_ms = cfg->expire_ms;
    rc = redislock_new(&lk, c, cfg->name, &o);
    if (rc) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for(rc);
    }
    rc = redislock_query(lk, &info);
    if (rc) {
        rlt_err("%s", redislock_errmsg(lk));
        redislock_free(lk);
        return rlt_exit_for(rc);
    }
    redislock_free(lk);
    if (info.held) {
        fputs("held owner=", stdout);
        rlt_put_field(info.owner, strlen(info.owner));
        printf(" ttl_ms=%" PRId64 "\n", info.ttl_ms);
    } else {
        puts("free");
    }
    return rlt_flush_out();
}

int rlt_reset(const rlt_config *cfg, redislock_client *c)
{
    int rc = redislock_reset(c, cfg->name);
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for(rc);
    }
    if (!cfg->quiet)
        printf("removed %d\n", rc);
    return rlt_flush_out();
}

int rlt_reset_all(const rlt_config *cfg, redislock_client *c)
{
    uint64_t n = 0;
    int rc = redislock_reset_all(c, cfg->owner_prefix, &n);
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        if (n)
            rlt_err("%" PRIu64 " locks were removed before the error", n);
        return rlt_exit_for(rc);
    }
    if (!cfg->quiet)
        printf("removed %" PRIu64 "\n", n);
    return rlt_flush_out();
}
