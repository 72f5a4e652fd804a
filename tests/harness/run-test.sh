#!/bin/sh
# LOG_COMPILER for every test: gives the test a private temp directory for the
# redis-server processes it starts (tests/harness/server.c), and afterwards
# kills any that are still running, whatever happened to the test.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/redislock-test.XXXXXX") || exit 99
REDISLOCK_TEST_TMPDIR=$tmp
export REDISLOCK_TEST_TMPDIR

cleanup() {
    for f in "$tmp"/*/server.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A test that hangs is killed (with the processes it forked: timeout(1)
# signals its own process group) after REDISLOCK_TEST_TIMEOUT seconds,
# default 1200, and fails naming itself: a hang then costs minutes, not
# the whole run, and the log says which test it was.
limit=${REDISLOCK_TEST_TIMEOUT:-1200}
bounded() {
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 10 "$limit" "$@"
    else
        "$@"
    fi
}

# REDISLOCK_VALGRIND=1: run the test program under valgrind memcheck; any
# error, or a definite or indirect leak, fails the test.  Forked children
# (test helpers that _exit) are not checked.
case "$1" in
*.sh) bounded sh "$@" ;;
*)
    if [ -n "${REDISLOCK_VALGRIND:-}" ]; then
        bounded "${top_builddir:-.}/libtool" --mode=execute valgrind --quiet \
            --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --show-leak-kinds=definite,indirect --error-exitcode=99 \
            --child-silent-after-fork=yes --track-fds=no "$@"
    else
        bounded "$@"
    fi
    ;;
esac
rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "run-test: $1 did not end within $limit s (REDISLOCK_TEST_TIMEOUT): killed" >&2
fi
exit $rc
