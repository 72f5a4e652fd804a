# tools/: the redislock command-line tool (issue 4).  Uses only the public
# API, linked against the shared library like any user's program.
bin_PROGRAMS += tools/redislock
tools_redislock_SOURCES = tools/tool.h tools/main.c tools/options.c tools/msg.c \
	tools/client.c tools/admin.c tools/run.c tools/child.c
tools_redislock_LDADD = lib/libredislock.la
