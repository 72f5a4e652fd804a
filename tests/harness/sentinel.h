/* Test harness: a Sentinel deployment of real processes on free loopback
 * ports: a master, a replica and three sentinels (redis-server CONF
 * --sentinel, each in its own writable directory), started in the test's
 * temp directory and killed at exit like every ts_server.  Readiness is
 * polled (every sentinel knows the replica and the two other sentinels, the
 * replica's link is up and it acknowledges a write), never slept for. */
#ifndef TEST_SENTINEL_H
#define TEST_SENTINEL_H

#include "server.h"

#define TS_NSENTINELS 3

typedef struct ts_sentinels {
    ts_server node[2];                 /* the data nodes: either may be master */
    ts_server sen[TS_NSENTINELS];
    char service[32];
    char conf[TS_NSENTINELS][512];
    char url[600];                     /* redis-sentinel://127.0.0.1:P,.../SERVICE */
    int fast;
} ts_sentinels;

/* Start the deployment (the ts_sentinels must outlive the process: static
 * or global).  fast: SENTINEL DEBUG info/ping/publish-period 250 on every
 * sentinel (the stale-master window drops from ~8 s to ~2 s);
 * down-after-milliseconds 1000, failover-timeout 4000, quorum 2.  node[0]
 * starts as master.  0, 77 when redis-server is missing, -1 on failure. */
int ts_sentinels_start(ts_sentinels *g, const char *service, int fast);
/* The data node every live sentinel names as master (after waiting up to
 * timeout_ms for them to agree); NULL if they do not agree in time. */
ts_server *ts_sentinels_master(ts_sentinels *g, int timeout_ms);
/* The data node that is not g's master now. */
ts_server *ts_sentinels_other(ts_sentinels *g, const ts_server *master);
/* Wait until every live sentinel names `want` as master and it accepts
 * writes: milliseconds waited, or -1 after timeout_ms. */
int ts_sentinels_await(ts_sentinels *g, const ts_server *want, int timeout_ms);
/* Wait until the deployment is whole again after a failover: every
 * sentinel sees the other node as a replica of the master, its link is up,
 * and it acknowledges a write (WAIT 1 on the master: after a full resync
 * the link is up up to 1 s before the master streams writes to it).  0, or
 * -1 after timeout_ms. */
int ts_sentinels_settle(ts_sentinels *g, int timeout_ms);
/* Wait (up to 2 s) until the replica has every write the master took so
 * far: a write of the harness's own, then WAIT for it (WAIT waits for the
 * calling connection's last write, which comes after everyone's before it).
 * 0, or -1 if the replica did not acknowledge. */
int ts_sentinels_sync(ts_sentinels *g, ts_server *master);
/* SENTINEL FAILOVER on the first live sentinel. */
void ts_sentinels_failover(ts_sentinels *g);
/* Normal clients connected to a data node, neither the sentinels' nor the
 * harness's own. */
int ts_clients(ts_server *s);

#endif
