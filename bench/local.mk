# bench/: the benchmark (issue 5).  redislock-bench measures one scenario per
# run through the public API (plus a hiredis connection of its own for PING
# and INFO); bench/run starts private redis-servers, runs every scenario and
# the redis-py peer, and prints the table (or writes doc/benchmarks.md).
noinst_PROGRAMS += bench/redislock-bench
bench_redislock_bench_SOURCES = bench/bench.h bench/main.c bench/util.c \
	bench/latency.c bench/contend.c bench/crash.c bench/renewal.c \
	bench/relay.c bench/tls.c bench/fencing.c bench/kinds.c \
	bench/handfloor.c
bench_redislock_bench_CPPFLAGS = $(AM_CPPFLAGS) $(HIREDIS_CFLAGS)
bench_redislock_bench_LDADD = lib/libredislock.la $(HIREDIS_LIBS) -lm

# A seconds-long smoke run (tiny durations; checks the figures are well
# formed, never their values).
TESTS += bench/smoke.sh
EXTRA_DIST += bench/run bench/report.py bench/peer_redispy.py bench/smoke.sh \
	bench/prl_published.txt doc/benchmarks.md

# redislock-failover: the Sentinel figures (failover -> first acquire, a
# waiter across a failover, the warm path through a service URL) against a
# deployment it starts itself with the test harness (not run by make check:
# it takes about a minute).
noinst_PROGRAMS += bench/redislock-failover
bench_redislock_failover_SOURCES = bench/failover.c \
	tests/harness/server.c tests/harness/server.h \
	tests/harness/sentinel.c tests/harness/sentinel.h
bench_redislock_failover_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/harness \
	$(HIREDIS_CFLAGS)
bench_redislock_failover_LDADD = lib/libredislock.la $(HIREDIS_LIBS)
# The cost of the statistics (issue 26; bench/run --stats-cost): the
# library built a second time without them (REDISLOCK_NO_STATS), made one
# relocatable object whose internal (hidden) symbols are local and whose
# exports are renamed nostats_redislock_*, and linked beside the library as
# built, so that one program interleaves both on the same server.  Built on
# demand only: make bench/redislock-statcost (GNU ld and objcopy).
EXTRA_LTLIBRARIES = lib/libredislock-nostats.la
lib_libredislock_nostats_la_SOURCES = $(lib_libredislock_core_la_SOURCES)
lib_libredislock_nostats_la_CPPFLAGS = $(lib_libredislock_core_la_CPPFLAGS) \
	-DREDISLOCK_NO_STATS
lib_libredislock_nostats_la_CFLAGS = $(lib_libredislock_core_la_CFLAGS)
bench/nostats.o: lib/libredislock-nostats.la $(srcdir)/lib/redislock.sym
	$(AM_V_GEN)$(LD) -r --whole-archive lib/.libs/libredislock-nostats.a -o $@-r.o && \
	$(OBJCOPY) --localize-hidden \
		$$(sed -n 's/^ *\(redislock_[a-z0-9_]*\);.*/--redefine-sym \1=nostats_\1/p' \
			$(srcdir)/lib/redislock.sym) $@-r.o $@ && rm -f $@-r.o
EXTRA_PROGRAMS = bench/redislock-statcost
bench_redislock_statcost_SOURCES = bench/bench.h bench/statcost.c bench/util.c
bench_redislock_statcost_CPPFLAGS = $(AM_CPPFLAGS) $(HIREDIS_CFLAGS)
bench_redislock_statcost_LDADD = bench/nostats.o lib/libredislock-core.la $(HIREDIS_LIBS) \
	$(OPENSSL_LIBS) -lm
EXTRA_bench_redislock_statcost_DEPENDENCIES = bench/nostats.o
CLEANFILES += bench/nostats.o bench/nostats.o-r.o lib/libredislock-nostats.la \
	bench/redislock-statcost
# The Redis Cluster goals (issue 23): clusters of its own (the test
# harness's tests/harness/cluster.c), redis-cli --cluster create.
noinst_PROGRAMS += bench/redislock-bench-cluster
bench_redislock_bench_cluster_SOURCES = bench/cluster.c bench/util.c bench/bench.h \
	tests/harness/server.c tests/harness/server.h tests/harness/cluster.c \
	tests/harness/cluster.h
bench_redislock_bench_cluster_CPPFLAGS = $(AM_CPPFLAGS) $(HIREDIS_CFLAGS) \
	-I$(top_srcdir)/tests/harness
bench_redislock_bench_cluster_LDADD = lib/libredislock.la $(HIREDIS_LIBS) -lm
