#!/bin/sh
# make install puts a CMake package in LIBDIR/cmake/redislock: a small CMake
# project (tests/cmake/) finds it in a prefix installed with DESTDIR and
# builds and runs against the shared library, then the static one (whose
# private dependencies the package finds); a version above the installed
# one is refused.
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
if ! command -v cmake >/dev/null 2>&1; then
    echo "SKIP: cmake not installed (scripts/deps installs it)"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/redislock-cmake.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
status=0
fail() {
    echo "FAIL: $*"
    status=1
}

# An install of its own (the tree's make, not the one running this test).
if ! (unset MAKEFLAGS MFLAGS MAKELEVEL; cd "$builddir" &&
      ${MAKE:-make} install DESTDIR="$tmp/root") >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    echo "FAIL: make install DESTDIR=$tmp/root"
    exit 1
fi
prefix=$(sed -n 's/^prefix=//p' "$builddir/redislock.pc")
libdir=$(sed -n 's/^libdir=//p' "$builddir/redislock.pc" | sed "s|\${exec_prefix}|$prefix|; s|\${prefix}|$prefix|")
root=$tmp/root$prefix
version=$(sed -n 's/^Version: //p' "$builddir/redislock.pc")
want=$(echo "$version" | cut -d. -f1-2)
for f in redislockConfig.cmake redislockConfigVersion.cmake; do
    [ -f "$tmp/root$libdir/cmake/redislock/$f" ] || fail "$libdir/cmake/redislock/$f not installed"
done

# configure + build + run; $1: shared or static
build() {
    kind=$1
    static=OFF
    [ "$kind" = static ] && static=ON
    # a sanitizer build's library needs the sanitizers' runtimes linked in
    if ! cmake -S "$srcdir/tests/cmake" -B "$tmp/$kind" -DCMAKE_PREFIX_PATH="$root" \
            -DWANT_VERSION="$want" -DREDISLOCK_USE_STATIC_LIBS=$static \
            -DCMAKE_EXE_LINKER_FLAGS="${SAN_LDFLAGS:-}" \
            >"$tmp/$kind.log" 2>&1 ||
        ! cmake --build "$tmp/$kind" >>"$tmp/$kind.log" 2>&1; then
        cat "$tmp/$kind.log"
        fail "$kind: the CMake project does not build"
        return
    fi
    if ! out=$("$tmp/$kind/app"); then
        fail "$kind: the program failed: $out"
        return
    fi
    echo "$kind: $out"
    # the library it runs with is the installed one, or none (static)
    if command -v ldd >/dev/null 2>&1; then
        lib=$(ldd "$tmp/$kind/app" | grep libredislock)
        case "$kind:$lib" in
        shared:*"$tmp/root"*) ;;
        static:) ;;
        *) fail "$kind: the program links '$lib'" ;;
        esac
    fi
}
build shared
build static

# a version above the installed one is not found
major=$(echo "$version" | cut -d. -f1)
if cmake -S "$srcdir/tests/cmake" -B "$tmp/newer" -DCMAKE_PREFIX_PATH="$root" \
        -DWANT_VERSION="$((major + 1)).0" >"$tmp/newer.log" 2>&1; then
    fail "find_package(redislock $((major + 1)).0) accepted version $version"
elif ! grep -q "$version" "$tmp/newer.log"; then
    cat "$tmp/newer.log"
    fail "find_package(redislock $((major + 1)).0) failed without naming version $version"
fi

[ $status -eq 0 ] && echo "PASS: find_package(redislock $want) builds against the shared and the static library"
exit $status
