# shellcheck shell=sh
# Shell functions (sourced by scripts/check-hiredis1 and scripts/get-server)
# that fetch Debian packages from another suite without installing them and
# without touching the system's apt configuration: a private sources list,
# package lists and cache under a directory of the caller's, used through
# apt-get's -o options only.  Uses sudo when not run as root.

# apt_private_init DIR SUITE...: set up DIR/apt for the suites (e.g.
# "trixie", "bookworm-backports"; main only) of $REDISLOCK_DEBIAN_MIRROR
# (default http://deb.debian.org/debian) and download their package lists.
# Returns 1, saying so, when the archive cannot be reached.
apt_private_init() {
    apt_dir=$1/apt
    shift
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    : >"$apt_dir/sources.list"
    for suite in "$@"; do
        echo "deb ${REDISLOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian} $suite main" \
            >>"$apt_dir/sources.list"
    done
    apt_opts="-o Dir::Etc::sourcelist=$apt_dir/sources.list
        -o Dir::Etc::sourceparts=/dev/null -o Dir::State::Lists=$apt_dir/lists
        -o Dir::Cache=$apt_dir/cache -o APT::Sandbox::User=root"
    apt_sudo=""
    [ "$(id -u)" -eq 0 ] || apt_sudo="sudo"
    # shellcheck disable=SC2086
    if ! $apt_sudo apt-get $apt_opts update -qq >/dev/null 2>&1; then
        echo "SKIP: Debian's package index for $* is not reachable"
        return 1
    fi
}

# apt_private apt-get|apt-cache ARGS...: run apt with the private setup.
apt_private() {
    cmd=$1
    shift
    # shellcheck disable=SC2086
    $apt_sudo "$cmd" $apt_opts "$@"
}

# apt_lib_deps PKG[/SUITE]...: the library packages (lib*, zlib*) that the
# packages depend on, one name a line.
apt_lib_deps() {
    apt_private apt-cache depends "$@" 2>/dev/null |
        sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \(z\{0,1\}lib[^ <>]*\).*/\2/p' |
        sort -u
}

# apt_lib_closure SUITE PKG...: the libraries PKG needs in SUITE and the
# ones they need in turn, libc6 included, one name a line (one apt-cache
# run per level of dependencies).
apt_lib_closure() {
    suite=$1
    shift
    echo libc6 >"$apt_dir/closure"
    level=$*
    while [ -n "$level" ]; do
        # shellcheck disable=SC2046,SC2086 # lists of names, split on purpose
        level=$(apt_lib_deps $(printf '%s\n' $level | sed "s|\$|/$suite|") |
            grep -vxF -f "$apt_dir/closure" || true)
        # shellcheck disable=SC2086
        [ -z "$level" ] || printf '%s\n' $level >>"$apt_dir/closure"
    done
    cat "$apt_dir/closure"
}

# apt_fetch DIR PKG[/SUITE]...: download the packages into DIR and unpack
# them all into DIR/root.  Returns 1, saying which, when one cannot be had.
apt_fetch() {
    dest=$1
    shift
    mkdir -p "$dest/root"
    if ! (cd "$dest" && apt_private apt-get download "$@" >/dev/null 2>&1); then
        echo "SKIP: could not download $*"
        return 1
    fi
    for deb in "$dest"/*.deb; do
        dpkg -x "$deb" "$dest/root"
    done
}
