# examples/: built by the normal build against the shared library, so they
# cannot rot.  race is used by scripts/demo, fenced by test_fencing, metrics
# by test_stats.
noinst_PROGRAMS += examples/race examples/pool examples/trylock examples/startup \
	examples/fenced examples/metrics
examples_race_SOURCES = examples/race.c
examples_race_LDADD = lib/libredislock.la
examples_pool_SOURCES = examples/pool.c
examples_pool_LDADD = lib/libredislock.la
examples_trylock_SOURCES = examples/trylock.c
examples_trylock_LDADD = lib/libredislock.la
examples_startup_SOURCES = examples/startup.c
examples_startup_LDADD = lib/libredislock.la
examples_fenced_SOURCES = examples/fenced.c
examples_fenced_LDADD = lib/libredislock.la
examples_metrics_SOURCES = examples/metrics.c
examples_metrics_LDADD = lib/libredislock.la
# ... and installed as sources with the documentation
exampledir = $(docdir)/examples
dist_example_DATA = examples/pool.c examples/trylock.c examples/startup.c \
	examples/race.c examples/fenced.c examples/metrics.c
