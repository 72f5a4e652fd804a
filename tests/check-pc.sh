#!/bin/sh
# redislock.pc: a user's compile gets no hiredis flags (redislock.h includes
# no hiredis header; Requires.private would add hiredis' -I and -D flags to
# --cflags), a static link gets -lhiredis, and a program built with exactly
# those flags compiles against the header.
builddir=${top_builddir:-.}
srcdir=${top_srcdir:-.}
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "SKIP: pkg-config not installed"
    exit 77
fi
PKG_CONFIG_PATH=$builddir
export PKG_CONFIG_PATH
status=0
cflags=$(pkg-config --cflags redislock) || { echo "FAIL: pkg-config --cflags"; exit 1; }
case "$cflags" in
*hiredis* | *FILE_OFFSET_BITS*)
    echo "FAIL: pkg-config --cflags redislock gives hiredis' flags: $cflags"
    status=1
    ;;
esac
libs=$(pkg-config --libs redislock)
case "$libs" in
*hiredis*) echo "FAIL: --libs (shared) names hiredis: $libs"; status=1 ;;
esac
static=$(pkg-config --static --libs redislock)
case "$static" in
*-lhiredis*) ;;
*) echo "FAIL: --static --libs lacks -lhiredis: $static"; status=1 ;;
esac
# The header compiles with the flags a user gets (the source tree's include/
# stands in for the installed one).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/redislock-pc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '#include <redislock.h>\nint main(void) { return redislock_version() == 0; }\n' \
    >"$tmp/t.c"
# shellcheck disable=SC2086
if ! ${CC:-cc} -c $cflags -I"$srcdir/include" -Werror -Wall "$tmp/t.c" -o "$tmp/t.o"; then
    echo "FAIL: the header does not compile with the user's flags"
    status=1
fi
[ $status -eq 0 ] && echo "PASS: cflags '$cflags'; static libs '$static'"
exit $status
