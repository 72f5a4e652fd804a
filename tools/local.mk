# tools/: the redislock command-line tool (issue 4).  Uses only the public
# API, linked against the shared library like any user's program.
bin_PROGRAMS += tools/redislock
tools_redislock_SOURCES = tools/tool.h tools/main.c tools/options.c tools/msg.c \
	tools/client.c tools/admin.c tools/run.c tools/child.c tools/tls.c \
	tools/fields.c
tools_redislock_LDADD = lib/libredislock.la

# Its tests: the real binary, run by cmocka programs against redis-server
# processes from the harness.
if HAVE_CMOCKA
tool_tests = tests/integration/test_tool tests/integration/test_tool_signals \
	tests/integration/test_tool_fencing tests/integration/test_tool_scripting \
	tests/integration/test_tool_kinds
check_PROGRAMS += $(tool_tests)
TESTS += $(tool_tests)
tool_test_sources = tests/integration/toolproc.c tests/integration/toolproc.h
tests_integration_test_tool_SOURCES = tests/integration/test_tool.c $(tool_test_sources)
tests_integration_test_tool_CPPFLAGS = $(TEST_CPPFLAGS)
tests_integration_test_tool_LDADD = $(TEST_LDADD)
tests_integration_test_tool_signals_SOURCES = tests/integration/test_tool_signals.c \
	$(tool_test_sources)
tests_integration_test_tool_signals_CPPFLAGS = $(TEST_CPPFLAGS)
tests_integration_test_tool_signals_LDADD = $(TEST_LDADD)
tests_integration_test_tool_fencing_SOURCES = tests/integration/test_tool_fencing.c \
	$(tool_test_sources)
tests_integration_test_tool_fencing_CPPFLAGS = $(TEST_CPPFLAGS)
tests_integration_test_tool_fencing_LDADD = $(TEST_LDADD)
tests_integration_test_tool_scripting_SOURCES = tests/integration/test_tool_scripting.c \
	$(tool_test_sources)
tests_integration_test_tool_scripting_CPPFLAGS = $(TEST_CPPFLAGS)
tests_integration_test_tool_scripting_LDADD = $(TEST_LDADD)
tests_integration_test_tool_kinds_SOURCES = tests/integration/test_tool_kinds.c \
	$(tool_test_sources)
tests_integration_test_tool_kinds_CPPFLAGS = $(TEST_CPPFLAGS)
tests_integration_test_tool_kinds_LDADD = $(TEST_LDADD)
endif
