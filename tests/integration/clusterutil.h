/* Helpers of the tests on real clusters (test_cluster, test_cluster_failover). */
#ifndef TEST_CLUSTERUTIL_H
#define TEST_CLUSTERUTIL_H

#include "cluster.h"
#include "fixtures.h"

/* The slot of a lock name's keys (lock:{name}). */
int cu_slot(const char *name);
/* A lock name "prefix<N>" whose slot master s serves (first N from 0). */
const char *cu_name_on(tc_cluster *cl, ts_server *s, const char *prefix, char *buf,
                       size_t len);
/* A cluster URL with only node s as seed. */
const char *cu_url_of(const ts_server *s, char *buf, size_t len);
/* Member 0's slot map refreshes and MOVED patches so far. */
void cu_stats(redislock_client *c, uint64_t *refreshes, uint64_t *moves);
/* The value of key on server s ("" when absent), in buf. */
const char *cu_get(ts_server *s, const char *key, char *buf, size_t len);

#endif
