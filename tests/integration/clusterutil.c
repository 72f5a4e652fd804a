#include "clusterutil.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

int cu_slot(const char *name)
{
    char key[300];
    int n = snprintf(key, sizeof key, "lock:{%s}", name);
    return redislock__keyslot(key, (size_t)n);
}

const char *cu_name_on(tc_cluster *cl, ts_server *s, const char *prefix, char *buf,
                       size_t len)
{
    int i;
    for (i = 0; i < 100000; i++) {
        snprintf(buf, len, "%s%d", prefix, i);
        if (tc_owner(cl, cu_slot(buf)) == s)
            return buf;
    }
    fail_msg("no name of %s on node %d", prefix, s->port);
    return NULL;
}

const char *cu_url_of(const ts_server *s, char *buf, size_t len)
{
    snprintf(buf, len, "redis-cluster://127.0.0.1:%d", s->port);
    return buf;
}

void cu_stats(redislock_client *c, uint64_t *refreshes, uint64_t *moves)
{
    redislock__cluster_stats(&c->members[0], refreshes, moves);
}

const char *cu_get(ts_server *s, const char *key, char *buf, size_t len)
{
    redisReply *r = ts_cmd(s, "ASKING"); /* a slot being imported answers too */
    if (r)
        freeReplyObject(r);
    r = ts_cmd(s, "GET %s", key);
    snprintf(buf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
    return buf;
}
