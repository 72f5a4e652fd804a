# examples/: built by the normal build against the shared library, so they
# cannot rot.
noinst_PROGRAMS += examples/race
examples_race_SOURCES = examples/race.c
examples_race_LDADD = lib/libredislock.la
