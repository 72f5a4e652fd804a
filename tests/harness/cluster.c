#include "cluster.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void drop(redisReply *r)
{
    if (r)
        freeReplyObject(r);
}

/* 1 if nothing listens on 127.0.0.1:port and it can be bound now. */
static int port_free(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)port);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A port p in 20000..55000 with p and p + 10000 (the bus) free. */
static int pair_port(void)
{
    int i;
    for (i = 0; i < 200; i++) {
        int p = 20000 + (int)((unsigned)rand() % 35000);
        if (port_free(p) && port_free(p + 10000))
            return p;
    }
    return -1;
}

static const char *cli_binary(void)
{
    const char *p = getenv("REDIS_CLI");
    return p && *p ? p : "redis-cli";
}

static int start_node(tc_cluster *cl, int i)
{
    ts_server *s = &cl->node[i];
    int attempt;
    for (attempt = 0; attempt < 5; attempt++) {
        int port = pair_port(), k = 0, rc;
        if (port < 0)
            return -1;
        snprintf(cl->args[i][0], sizeof cl->args[i][0], "%d", port);
        s->extra[k++] = "--port";
        s->extra[k++] = cl->args[i][0];
        s->extra[k++] = "--cluster-enabled";
        s->extra[k++] = "yes";
        s->extra[k++] = "--cluster-node-timeout";
        s->extra[k++] = "1000";
        s->extra[k++] = "--cluster-allow-replica-migration";
        s->extra[k++] = "no";
        s->extra[k] = NULL;
        s->tcp = 0; /* the port is ours (and its bus's), given above */
        rc = ts_start(s);
        if (rc == 77)
            return 77;
        if (rc == 0 && !port_free(port)) {
            s->port = port;
            s->tcp = 1;
            snprintf(s->tcp_url, sizeof s->tcp_url, "redis://127.0.0.1:%d", port);
            return 0;
        }
        ts_stop(s);
    }
    return -1;
}

int tc_start(tc_cluster *cl, int n, int replicas)
{
    char cmd[1500], log[700];
    size_t o;
    int i, rc;
    srand((unsigned)getpid() ^ (unsigned)now_ms());
    if (system("command -v \"${REDIS_CLI:-redis-cli}\" >/dev/null 2>&1") != 0) {
        fprintf(stderr, "harness: %s not found; skipping\n", cli_binary());
        return 77;
    }
    cl->n = n;
    cl->replicas = replicas;
    for (i = 0; i < n; i++)
        if ((rc = start_node(cl, i)) != 0)
            return rc;
    snprintf(log, sizeof log, "%s/../cluster-create.log", cl->node[0].dir);
    o = (size_t)snprintf(cmd, sizeof cmd, "'%s' --cluster create", cli_binary());
    for (i = 0; i < n; i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " 127.0.0.1:%d", cl->node[i].port);
    snprintf(cmd + o, sizeof cmd - o, " --cluster-replicas %d --cluster-yes >'%s' 2>&1 </dev/null",
             replicas, log);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: redis-cli --cluster create failed (see %s)\n", log);
        return -1;
    }
    o = (size_t)snprintf(cl->url, sizeof cl->url, "redis-cluster://");
    for (i = 0; i < n; i++)
        o += (size_t)snprintf(cl->url + o, sizeof cl->url - o, "%s127.0.0.1:%d", i ? "," : "",
                              cl->node[i].port);
    if (tc_wait_ok(cl, 30000) < 0) {
        fprintf(stderr, "harness: the cluster did not become whole in 30 s\n");
        return -1;
    }
    return 0;
}

/* CLUSTER SLOTS of s as "first-last:port ..." sorted by slot ("" on error). */
static void slots_text(ts_server *s, char *buf, size_t len)
{
    redisReply *r = ts_cmd(s, "CLUSTER SLOTS");
    size_t i, o = 0;
    int order[200], n = 0, a, b;
    buf[0] = '\0';
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements > 200) {
        drop(r);
        return;
    }
    for (i = 0; i < r->elements; i++)
        order[n++] = (int)i;
    for (a = 0; a < n; a++) /* by first slot */
        for (b = a + 1; b < n; b++)
            if (r->element[order[b]]->element[0]->integer <
                r->element[order[a]]->element[0]->integer) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    for (a = 0; a < n && o < len; a++) {
        const redisReply *e = r->element[order[a]];
        o += (size_t)snprintf(buf + o, len - o, "%lld-%lld:%lld ", e->element[0]->integer,
                              e->element[1]->integer, e->element[2]->element[1]->integer);
    }
    drop(r);
}

static int state_ok(ts_server *s)
{
    redisReply *r = ts_cmd(s, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
    drop(r);
    return ok;
}

int tc_is_master(ts_server *s)
{
    redisReply *r = ts_cmd(s, "ROLE");
    int m = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
            r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "master");
    drop(r);
    return m;
}

static int link_up(ts_server *s)
{
    redisReply *r = ts_cmd(s, "INFO replication");
    int up = r && r->type == REDIS_REPLY_STRING &&
             (strstr(r->str, "role:master") || strstr(r->str, "master_link_status:up"));
    drop(r);
    return up;
}

/* One look: whole or not. */
static int whole(tc_cluster *cl)
{
    char first[4000] = "", cur[4000];
    int i, seen = 0;
    for (i = 0; i < cl->n; i++) {
        ts_server *s = &cl->node[i];
        if (!s->pid)
            continue;
        if (!state_ok(s) || !link_up(s))
            return 0;
        slots_text(s, cur, sizeof cur);
        if (!cur[0])
            return 0;
        if (!seen++)
            snprintf(first, sizeof first, "%s", cur);
        else if (strcmp(first, cur) != 0)
            return 0;
    }
    return seen > 0;
}

int tc_wait_ok(tc_cluster *cl, int timeout_ms)
{
    long long t0 = now_ms(), end = t0 + timeout_ms;
    do {
        if (whole(cl))
            return (int)(now_ms() - t0);
        nap(20);
    } while (now_ms() < end);
    return -1;
}

/* FLUSHALL on master m, then WAIT until its replicas acknowledged it.  A
 * replica whose link is up (tc_wait_ok) after a restart may not be counted
 * by its master's WAIT yet: after test_cluster_failover's SIGKILL (the
 * killed node restarted as a replica), a test's own WAIT 1 on that master
 * once took 787 ms, where it takes 0-3 ms otherwise.
 * 0, or -1 when fewer than cl->replicas acknowledged in timeout_ms. */
static int flush_acked(tc_cluster *cl, ts_server *m, int timeout_ms)
{
    long long t0 = now_ms(), acks;
    drop(ts_cmd(m, "FLUSHALL"));
    if (!cl->replicas)
        return 0;
    acks = ts_int(m, "WAIT %d %d", cl->replicas, timeout_ms);
    if (acks < cl->replicas) {
        fprintf(stderr, "harness: redis %d: %lld of %d replicas acknowledged in %d ms\n",
                m->port, acks, cl->replicas, timeout_ms);
        return -1;
    }
    if (now_ms() - t0 > 100)
        fprintf(stderr, "harness: redis %d: its replicas acknowledged after %lld ms\n",
                m->port, now_ms() - t0);
    return 0;
}

int tc_reset(tc_cluster *cl, int timeout_ms)
{
    int i;
    for (i = 0; i < cl->n; i++) {
        ts_resume(&cl->node[i]);
        if (!cl->node[i].pid && ts_restart(&cl->node[i]) != 0)
            return -1;
    }
    if (tc_wait_ok(cl, timeout_ms) < 0)
        return -1;
    for (i = 0; i < cl->n; i++)
        if (tc_is_master(&cl->node[i]) && flush_acked(cl, &cl->node[i], timeout_ms) < 0)
            return -1;
    return 0;
}

ts_server *tc_by_port(tc_cluster *cl, int port)
{
    int i;
    for (i = 0; i < cl->n; i++)
        if (cl->node[i].port == port)
            return &cl->node[i];
    return NULL;
}

ts_server *tc_owner(tc_cluster *cl, int slot)
{
    int i;
    for (i = 0; i < cl->n; i++) {
        redisReply *r;
        size_t k;
        ts_server *found = NULL;
        if (!cl->node[i].pid)
            continue;
        r = ts_cmd(&cl->node[i], "CLUSTER SLOTS");
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            drop(r);
            continue;
        }
        for (k = 0; k < r->elements; k++) {
            const redisReply *e = r->element[k];
            if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
                found = tc_by_port(cl, (int)e->element[2]->element[1]->integer);
        }
        drop(r);
        return found;
    }
    return NULL;
}

ts_server *tc_owner_of(tc_cluster *cl, const char *key)
{
    int i;
    for (i = 0; i < cl->n; i++)
        if (cl->node[i].pid) {
            long long slot = ts_int(&cl->node[i], "CLUSTER KEYSLOT %s", key);
            return slot >= 0 ? tc_owner(cl, (int)slot) : NULL;
        }
    return NULL;
}

const char *tc_id(tc_cluster *cl, ts_server *s)
{
    static char ids[TC_MAX_NODES][64];
    int i = (int)(s - cl->node);
    redisReply *r = ts_cmd(s, "CLUSTER MYID");
    snprintf(ids[i], sizeof ids[i], "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    drop(r);
    return ids[i];
}

ts_server *tc_replica_of(tc_cluster *cl, ts_server *m)
{
    int i;
    for (i = 0; i < cl->n; i++) {
        ts_server *s = &cl->node[i];
        redisReply *r;
        int mine;
        if (s == m || !s->pid)
            continue;
        r = ts_cmd(s, "ROLE");
        mine = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
               !strcmp(r->element[0]->str, "slave") &&
               r->element[2]->type == REDIS_REPLY_INTEGER && r->element[2]->integer == m->port;
        drop(r);
        if (mine)
            return s;
    }
    return NULL;
}

static int ok_reply(redisReply *r)
{
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        fprintf(stderr, "harness: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    drop(r);
    return ok ? 0 : -1;
}

int tc_migrate_keys(ts_server *src, ts_server *dst, int slot)
{
    for (;;) {
        redisReply *keys = ts_cmd(src, "CLUSTER GETKEYSINSLOT %d 100", slot);
        size_t i;
        int rc = 0;
        if (!keys || keys->type != REDIS_REPLY_ARRAY) {
            drop(keys);
            return -1;
        }
        if (keys->elements == 0) {
            drop(keys);
            return 0;
        }
        for (i = 0; i < keys->elements && !rc; i++) {
            redisReply *r = ts_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst->port,
                                   keys->element[i]->str);
            rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
            if (rc)
                fprintf(stderr, "harness: MIGRATE: %s\n",
                        r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
            drop(r);
        }
        drop(keys);
        if (rc)
            return rc;
    }
}

int tc_migrate_begin(tc_cluster *cl, int slot, ts_server *src, ts_server *dst)
{
    char sid[64], did[64];
    snprintf(sid, sizeof sid, "%s", tc_id(cl, src));
    snprintf(did, sizeof did, "%s", tc_id(cl, dst));
    if (ok_reply(ts_cmd(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, sid)) ||
        ok_reply(ts_cmd(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, did)))
        return -1;
    return 0;
}

int tc_migrate_end(tc_cluster *cl, int slot, ts_server *src, ts_server *dst)
{
    char did[64];
    int i;
    snprintf(did, sizeof did, "%s", tc_id(cl, dst));
    if (tc_migrate_keys(src, dst, slot) ||
        ok_reply(ts_cmd(dst, "CLUSTER SETSLOT %d NODE %s", slot, did)) ||
        ok_reply(ts_cmd(src, "CLUSTER SETSLOT %d NODE %s", slot, did)))
        return -1;
    for (i = 0; i < cl->n; i++) {
        ts_server *s = &cl->node[i];
        if (s != src && s != dst && s->pid && tc_is_master(s))
            drop(ts_cmd(s, "CLUSTER SETSLOT %d NODE %s", slot, did));
    }
    return 0;
}

/* Send n commands of fmt (one %d: the slot) for every slot of list on s's
 * connection in one pipeline; 0 if every reply is +OK. */
static int pipeline_slots(ts_server *s, const int *list, int n, const char *fmt,
                          const char *id)
{
    redisContext *c;
    int i, rc = 0;
    drop(ts_cmd(s, "PING")); /* (re)connects s->ctx */
    c = s->ctx;
    if (!c)
        return -1;
    for (i = 0; i < n; i++)
        redisAppendCommand(c, fmt, list[i], id);
    for (i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK)
            return -1;
        /* a master that gave away its last slot may have turned replica
         * (cluster-allow-replica-migration yes): as redis-cli does, that
         * answer is accepted (redis/redis#9223) */
        if (((redisReply *)r)->type != REDIS_REPLY_STATUS && !rc &&
            !strstr(((redisReply *)r)->str, "only with masters")) {
            fprintf(stderr, "harness: %s\n", ((redisReply *)r)->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

int tc_move_all(tc_cluster *cl, ts_server *src, ts_server *dst)
{
    static int list[16384];
    char sid[64], did[64];
    redisReply *r = ts_cmd(src, "CLUSTER SLOTS"), *keys;
    size_t k;
    int n = 0, s, i;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        drop(r);
        return -1;
    }
    for (k = 0; k < r->elements; k++)
        if (r->element[k]->element[2]->element[1]->integer == src->port)
            for (s = (int)r->element[k]->element[0]->integer;
                 s <= r->element[k]->element[1]->integer; s++)
                list[n++] = s;
    drop(r);
    snprintf(sid, sizeof sid, "%s", tc_id(cl, src));
    snprintf(did, sizeof did, "%s", tc_id(cl, dst));
    if (pipeline_slots(dst, list, n, "CLUSTER SETSLOT %d IMPORTING %s", sid) ||
        pipeline_slots(src, list, n, "CLUSTER SETSLOT %d MIGRATING %s", did))
        return -1;
    keys = ts_cmd(src, "KEYS *");
    for (k = 0; keys && keys->type == REDIS_REPLY_ARRAY && k < keys->elements; k++)
        drop(ts_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst->port, keys->element[k]->str));
    drop(keys);
    if (pipeline_slots(dst, list, n, "CLUSTER SETSLOT %d NODE %s", did) ||
        pipeline_slots(src, list, n, "CLUSTER SETSLOT %d NODE %s", did))
        return -1;
    for (i = 0; i < cl->n; i++) {
        ts_server *o = &cl->node[i];
        if (o != src && o != dst && o->pid && tc_is_master(o))
            (void)pipeline_slots(o, list, n, "CLUSTER SETSLOT %d NODE %s", did);
    }
    return 0;
}

int tc_await_master(tc_cluster *cl, ts_server *s, int timeout_ms)
{
    long long t0 = now_ms(), end = t0 + timeout_ms;
    (void)cl;
    do {
        if (tc_is_master(s) && state_ok(s))
            return (int)(now_ms() - t0);
        nap(5);
    } while (now_ms() < end);
    return -1;
}
