/* Test harness: a Redis Cluster of real redis-server processes on free
 * loopback ports (each port p with p + 10000, the cluster bus, free too),
 * made with `redis-cli --cluster create --cluster-yes`, in the test's temp
 * directory and killed at exit like every ts_server.  cluster-node-timeout
 * 1000, cluster-allow-replica-migration no.  Readiness is polled (every
 * live node says cluster_state:ok and gives the same CLUSTER SLOTS; every
 * replica's link is up), never slept for. */
#ifndef TEST_CLUSTER_H
#define TEST_CLUSTER_H

#include "server.h"

#define TC_MAX_NODES 6

typedef struct tc_cluster {
    int n;                        /* nodes */
    int replicas;                 /* per master */
    ts_server node[TC_MAX_NODES];
    char args[TC_MAX_NODES][10][24];
    char url[600];                /* redis-cluster://127.0.0.1:P,... (every node) */
} tc_cluster;

/* Start n nodes and make them a cluster with `replicas` replicas per
 * master (the tc_cluster must outlive the process: static or global).
 * 0, 77 when redis-server or redis-cli is missing, -1 on failure. */
int tc_start(tc_cluster *cl, int n, int replicas);
/* Wait until the cluster is whole: every live node says cluster_state:ok
 * and gives the same CLUSTER SLOTS, every live replica's link is up.
 * Milliseconds waited, or -1 after timeout_ms. */
int tc_wait_ok(tc_cluster *cl, int timeout_ms);
/* Every node running (restarted if stopped, continued if paused), the
 * cluster whole, every master empty and acknowledged by its replicas (a
 * WAIT right after does not wait).  0 or -1. */
int tc_reset(tc_cluster *cl, int timeout_ms);
/* The master that serves slot (asked of a live node); NULL if none. */
ts_server *tc_owner(tc_cluster *cl, int slot);
/* The master that a live node says serves slot of key. */
ts_server *tc_owner_of(tc_cluster *cl, const char *key);
/* A node by port; NULL if none. */
ts_server *tc_by_port(tc_cluster *cl, int port);
/* A live replica of master m (NULL if none). */
ts_server *tc_replica_of(tc_cluster *cl, ts_server *m);
/* The node's cluster id (static buffer per node). */
const char *tc_id(tc_cluster *cl, ts_server *s);
/* 1 if s says it is a master. */
int tc_is_master(ts_server *s);
/* A slot migration, in the steps a resharding takes:
 * begin: SETSLOT IMPORTING on dst, MIGRATING on src, MIGRATE of the
 * slot's keys (the slot is then open); end: SETSLOT NODE dst on dst, then
 * src, then every other master (the target first: redis/redis#7116).
 * 0 or -1. */
int tc_migrate_begin(tc_cluster *cl, int slot, ts_server *src, ts_server *dst);
int tc_migrate_keys(ts_server *src, ts_server *dst, int slot);
int tc_migrate_end(tc_cluster *cl, int slot, ts_server *src, ts_server *dst);
/* Move every slot of src to dst (the whole migration, each slot at once
 * closed): 0 or -1. */
int tc_move_all(tc_cluster *cl, ts_server *src, ts_server *dst);
/* Wait until s is a master that accepts writes of a key of slot (a
 * failover ended): ms waited, -1 after timeout_ms. */
int tc_await_master(tc_cluster *cl, ts_server *s, int timeout_ms);

#endif
