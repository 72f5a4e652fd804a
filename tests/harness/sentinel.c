#include "sentinel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* An array reply of flat field/value strings: the value of field, or "". */
static const char *field(const redisReply *r, const char *name)
{
    size_t i;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return "";
    for (i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING &&
            !strcmp(r->element[i]->str, name))
            return r->element[i + 1]->str;
    return "";
}

/* The master port sentinel s names, 0 if none or no answer. */
static int named_port(ts_sentinels *g, ts_server *s)
{
    redisReply *r;
    int port = 0;
    if (!s->pid)
        return 0;
    r = ts_cmd(s, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", g->service);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(r->element[1]->str);
    if (r)
        freeReplyObject(r);
    return port;
}

/* Does sentinel s see the deployment whole: the replica up (no s_down),
 * the two other sentinels, and the master named `port`? */
static int sees_all(ts_sentinels *g, ts_server *s, int port)
{
    redisReply *r;
    int ok = named_port(g, s) == port;
    if (ok) {
        r = ts_cmd(s, "SENTINEL REPLICAS %s", g->service);
        ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
             !strstr(field(r->element[0], "flags"), "down") &&
             !strcmp(field(r->element[0], "master-link-status"), "ok");
        if (r)
            freeReplyObject(r);
    }
    if (ok) {
        r = ts_cmd(s, "SENTINEL SENTINELS %s", g->service);
        ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == TS_NSENTINELS - 1;
        if (r)
            freeReplyObject(r);
    }
    return ok;
}

static int link_up(ts_server *replica)
{
    redisReply *r = ts_cmd(replica, "INFO replication");
    int up = r && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
    if (r)
        freeReplyObject(r);
    return up;
}

/* Does the replica acknowledge a write made now, within wait_ms?  A write
 * of the harness's own, then WAIT 1 (WAIT waits for the calling
 * connection's last write, which comes after everyone's before it). */
static int acks_a_write(ts_server *master, int wait_ms)
{
    redisReply *r = ts_cmd(master, "SET ts-sentinel-sync 1");
    int ok;
    if (r)
        freeReplyObject(r);
    r = ts_cmd(master, "WAIT 1 %d", wait_ms);
    ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
    if (r)
        freeReplyObject(r);
    return ok;
}

static ts_server *by_port(ts_sentinels *g, int port)
{
    int i;
    for (i = 0; i < 2; i++)
        if (g->node[i].port == port)
            return &g->node[i];
    return NULL;
}

/* Make r a replica of m if it still thinks it is a master (a failed-over
 * or restarted old master), as Sentinel would a few seconds later. */
static void demote(ts_server *r, const ts_server *m)
{
    redisReply *x = ts_cmd(r, "ROLE");
    int master = x && x->type == REDIS_REPLY_ARRAY && x->elements > 0 &&
                 !strcmp(x->element[0]->str, "master");
    if (x)
        freeReplyObject(x);
    if (!master)
        return;
    x = ts_cmd(r, "REPLICAOF 127.0.0.1 %d", m->port);
    if (x)
        freeReplyObject(x);
}

int ts_sentinels_settle(ts_sentinels *g, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    do {
        ts_server *m = ts_sentinels_master(g, 0);
        int i, ok = m != NULL && m->pid;
        ts_server *r = m ? ts_sentinels_other(g, m) : NULL;
        if (ok && r->pid)
            demote(r, m);
        ok = ok && r->pid && link_up(r);
        for (i = 0; ok && i < TS_NSENTINELS; i++)
            ok = sees_all(g, &g->sen[i], m->port);
        /* The link up is not yet the replica acknowledging writes.  After
         * a failover the old master resyncs in full (its offset is past
         * what the new master can serve); it reports the link up once it
         * loaded the RDB and sends its first REPLCONF ACK at once.  A
         * master that reaps its diskless-sync child only after that ACK
         * (serverCron, hz 10) streams nothing to the replica until the
         * next one, up to 1 s later (the replica's replicationCron): WAIT
         * counts 0 meanwhile, and min_replicas refuses every grant. */
        if (ok && acks_a_write(m, 50))
            return 0;
        nap(20);
    } while (now_ms() < end);
    return -1;
}

static void fast_mode(ts_sentinels *g)
{
    int i;
    for (i = 0; i < TS_NSENTINELS; i++) {
        redisReply *r = ts_cmd(&g->sen[i], "SENTINEL DEBUG info-period 250 ping-period 250 "
                                           "publish-period 250");
        if (r)
            freeReplyObject(r);
    }
}

int ts_sentinels_start(ts_sentinels *g, const char *service, int fast)
{
    int i, rc;
    snprintf(g->service, sizeof g->service, "%s", service);
    g->fast = fast;
    for (i = 0; i < 2; i++) {
        g->node[i].tcp = 1;
        /* a full resync after a failover starts at once, not after 5 s */
        g->node[i].extra[0] = "--repl-diskless-sync-delay";
        g->node[i].extra[1] = "0";
        if (i == 1) {
            static char port[2][16];
            snprintf(port[0], sizeof port[0], "%d", g->node[0].port);
            g->node[1].extra[2] = "--replicaof";
            g->node[1].extra[3] = "127.0.0.1";
            g->node[1].extra[4] = port[0];
        }
        if ((rc = ts_start(&g->node[i])) != 0)
            return rc;
    }
    for (i = 0; i < TS_NSENTINELS; i++) {
        snprintf(g->conf[i], sizeof g->conf[i],
                 "sentinel monitor %s 127.0.0.1 %d 2\n"
                 "sentinel down-after-milliseconds %s 1000\n"
                 "sentinel failover-timeout %s 4000\n",
                 service, g->node[0].port, service, service);
        g->sen[i].sentinel_conf = g->conf[i];
        if ((rc = ts_start(&g->sen[i])) != 0)
            return rc;
    }
    snprintf(g->url, sizeof g->url, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,"
             "127.0.0.1:%d/%s", g->sen[0].port, g->sen[1].port, g->sen[2].port, service);
    if (fast)
        fast_mode(g);
    if (ts_sentinels_settle(g, 30000) < 0) {
        fprintf(stderr, "harness: the sentinels did not converge in 30 s\n");
        return -1;
    }
    return 0;
}

ts_server *ts_sentinels_master(ts_sentinels *g, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    for (;;) {
        int i, port = 0, agree = 1;
        for (i = 0; i < TS_NSENTINELS; i++) {
            int p;
            if (!g->sen[i].pid)
                continue;
            p = named_port(g, &g->sen[i]);
            if (!port)
                port = p;
            agree &= p == port;
        }
        if (agree && port)
            return by_port(g, port);
        if (now_ms() >= end)
            return NULL;
        nap(10);
    }
}

ts_server *ts_sentinels_other(ts_sentinels *g, const ts_server *master)
{
    return master == &g->node[0] ? &g->node[1] : &g->node[0];
}

int ts_sentinels_await(ts_sentinels *g, const ts_server *want, int timeout_ms)
{
    long long t0 = now_ms(), end = t0 + timeout_ms;
    do {
        ts_server *m = ts_sentinels_master(g, 0);
        if (m == want) {
            redisReply *r = ts_cmd(m, "SET ts-sentinel-probe 1");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            if (ok)
                return (int)(now_ms() - t0);
        }
        nap(5);
    } while (now_ms() < end);
    return -1;
}

int ts_sentinels_sync(ts_sentinels *g, ts_server *master)
{
    (void)g;
    return acks_a_write(master, 2000) ? 0 : -1;
}

void ts_sentinels_failover(ts_sentinels *g)
{
    int i;
    for (i = 0; i < TS_NSENTINELS; i++) {
        redisReply *r;
        if (!g->sen[i].pid)
            continue;
        r = ts_cmd(&g->sen[i], "SENTINEL FAILOVER %s", g->service);
        if (r)
            freeReplyObject(r);
        return;
    }
}

int ts_clients(ts_server *s)
{
    redisReply *r = ts_cmd(s, "CLIENT LIST TYPE normal");
    int n = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        char *line, *save = NULL;
        n = 0;
        for (line = strtok_r(r->str, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            /* not the sentinels' own, not this very CLIENT LIST */
            if (!strstr(line, "name=sentinel") && !strstr(line, "cmd=client"))
                n++;
    }
    if (r)
        freeReplyObject(r);
    return n;
}
