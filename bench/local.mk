# bench/: the benchmark (issue 5).  redislock-bench measures one scenario per
# run through the public API (plus a hiredis connection of its own for PING
# and INFO); bench/run starts private redis-servers, runs every scenario and
# the redis-py peer, and prints the table (or writes doc/benchmarks.md).
noinst_PROGRAMS += bench/redislock-bench
bench_redislock_bench_SOURCES = bench/bench.h bench/main.c bench/util.c \
	bench/latency.c bench/contend.c bench/crash.c bench/renewal.c \
	bench/relay.c bench/tls.c bench/fencing.c
bench_redislock_bench_CPPFLAGS = $(AM_CPPFLAGS) $(HIREDIS_CFLAGS)
bench_redislock_bench_LDADD = lib/libredislock.la $(HIREDIS_LIBS)

# A seconds-long smoke run (tiny durations; checks the figures are well
# formed, never their values).
TESTS += bench/smoke.sh
EXTRA_DIST += bench/run bench/report.py bench/peer_redispy.py bench/smoke.sh \
	bench/prl_published.txt doc/benchmarks.md

# The Redis Cluster goals (issue 23): clusters of its own (the test
# harness's tests/harness/cluster.c), redis-cli --cluster create.
noinst_PROGRAMS += bench/redislock-bench-cluster
bench_redislock_bench_cluster_SOURCES = bench/cluster.c bench/util.c bench/bench.h \
	tests/harness/server.c tests/harness/server.h tests/harness/cluster.c \
	tests/harness/cluster.h
bench_redislock_bench_cluster_CPPFLAGS = $(AM_CPPFLAGS) $(HIREDIS_CFLAGS) \
	-I$(top_srcdir)/tests/harness
bench_redislock_bench_cluster_LDADD = lib/libredislock.la $(HIREDIS_LIBS)
