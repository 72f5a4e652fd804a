#!/bin/sh
# The shared library exports exactly the API: the functions the header marks
# REDISLOCK_EXPORT, which must also be the global list of lib/redislock.sym
# (and of debian/libredislock0.symbols).
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
so=$(ls "$builddir"/lib/.libs/libredislock.so.* 2>/dev/null | head -n 1)
if [ -z "$so" ]; then
    echo "SKIP: no shared library built"
    exit 77
fi
if ! command -v nm >/dev/null 2>&1; then
    echo "SKIP: nm not found"
    exit 77
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' |
    sed 's/@.*//' | grep -v '^REDISLOCK_' | LC_ALL=C sort -u > "$tmp/exported"
# Declarations span lines: join the header, then pick names after REDISLOCK_EXPORT.
tr '\n' ' ' < "$srcdir/include/redislock.h" |
    grep -o 'REDISLOCK_EXPORT [^(;#]*(' | sed 's/($//; s/.*[ *]//' | grep '^redislock_' |
    LC_ALL=C sort -u > "$tmp/header"
sed -n '/global:/,/local:/p' "$srcdir/lib/redislock.sym" |
    grep -o '^ *redislock_[a-z0-9_]*;' | tr -d ' ;' | LC_ALL=C sort -u > "$tmp/symfile"

status=0
if ! diff -u "$tmp/header" "$tmp/exported"; then
    echo "FAIL: exported symbols differ from the header's REDISLOCK_EXPORT list"
    status=1
fi
if ! diff -u "$tmp/header" "$tmp/symfile"; then
    echo "FAIL: lib/redislock.sym differs from the header's REDISLOCK_EXPORT list"
    status=1
fi
# The Debian symbols file (not in the release tarball) lists them too, at
# version node REDISLOCK_0 (dpkg-buildpackage checks it against the build).
if [ -f "$srcdir/debian/libredislock0.symbols" ]; then
    sed -n 's/^ \(redislock_[a-z0-9_]*\)@REDISLOCK_0 .*/\1/p' \
        "$srcdir/debian/libredislock0.symbols" | LC_ALL=C sort -u > "$tmp/debian"
    if ! diff -u "$tmp/header" "$tmp/debian"; then
        echo "FAIL: debian/libredislock0.symbols differs from the header's REDISLOCK_EXPORT list"
        status=1
    fi
fi
n=$(wc -l < "$tmp/exported")
[ $status -eq 0 ] && echo "PASS: $n exported symbols, all declared in redislock.h"
exit $status
