#!/bin/sh
# The man pages render without a single groff warning (and through man(1)
# when it is installed), every page in doc/ is installed (doc/local.mk), and
# every function exported in lib/redislock.sym has a page that names it in
# its NAME section, reached as "man FUNCTION" through its own file or a link
# in doc/man3-links; every callback typedef of the header is in a page.
srcdir=${top_srcdir:-.}
doc=$srcdir/doc
if ! command -v groff >/dev/null 2>&1; then
    echo "SKIP: groff not installed (scripts/deps installs groff-base)"
    exit 77
fi
status=0
fail() {
    echo "FAIL: $*"
    status=1
}

pages=$(ls "$doc"/*.[1-8])
[ -n "$pages" ] || fail "no man pages in $doc"
for page in $pages; do
    base=$(basename "$page")
    out=$(groff -ww -z -man "$page" 2>&1)
    [ -z "$out" ] || fail "$base: groff: $out"
    if command -v man >/dev/null 2>&1; then
        out=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$out" ] || fail "$base: man: $out"
    fi
    grep -q "doc/$base" "$doc/local.mk" || fail "$base is not in dist_man_MANS (doc/local.mk)"
    for sec in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        grep -q "^\.SH \"*$sec" "$page" || fail "$base has no $sec section"
    done
    case $base in
    *.3)
        [ "$base" = redislock.3 ] && continue
        for sec in "RETURN VALUE" ERRORS EXAMPLE; do
            grep -q "^\.SH \"*$sec" "$page" || fail "$base has no $sec section"
        done
        ;;
    esac
done

# The names a page's NAME section lists ("a, b, c \- what").
names() {
    sed -n '/^\.SH NAME/{n;p;q;}' "$1" | sed 's/ *\\-.*//; s/,/ /g'
}

funcs=$(sed -n '/global:/,/local:/p' "$srcdir/lib/redislock.sym" |
    grep -o '^ *redislock_[a-z0-9_]*;' | tr -d ' ;')
[ -n "$funcs" ] || fail "no functions found in lib/redislock.sym"
n=0
for f in $funcs; do
    n=$((n + 1))
    if [ -f "$doc/$f.3" ]; then
        page=$f
    else
        page=$(awk -v f="$f" '$1 == f { print $2 }' "$doc/man3-links")
        if [ -z "$page" ]; then
            fail "$f has no page: add doc/$f.3 or a line to doc/man3-links"
            continue
        fi
        [ -f "$doc/$page.3" ] || { fail "$f links to $page.3, which does not exist"; continue; }
    fi
    echo " $(names "$doc/$page.3") " | grep -q " $f " ||
        fail "$f: the NAME section of $page.3 does not name it"
    grep -q "^\.BI* .*$f *(" "$doc/$page.3" ||
        grep -q "^\.BI* \"[^\"]*$f(" "$doc/$page.3" ||
        fail "$f: $page.3 has no prototype for it in its SYNOPSIS"
done
# Links must not point at pages that do not name them either.
sed -e '/^#/d' -e '/^$/d' "$doc/man3-links" | while read -r alias page; do
    grep -q "^ *$alias;" "$srcdir/lib/redislock.sym" ||
        echo "FAIL: doc/man3-links: $alias is not an exported function"
done | grep FAIL && status=1

# Every callback type of the header is spelled out in some page, parameters
# in order (a user guessed the log function's from a call and crashed):
# compared without white space or groff's font escapes and quotes.
tr '\n' ' ' < "$srcdir/include/redislock.h" |
    grep -o 'typedef [^;]*(\*redislock_[a-z_]*)([^;]*);' | while read -r td; do
    want=$(printf '%s' "$td" | tr -d ' \t')
    found=""
    for page in "$doc"/*.3; do
        sed -e 's/^\.[A-Z][A-Z]* *//' -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/"//g' "$page" |
            tr -d ' \t\n' | grep -qF "$want" && found=$page && break
    done
    [ -n "$found" ] || echo "FAIL: no page spells out the header's '$td'"
done | grep FAIL && status=1

[ $status -eq 0 ] && echo "PASS: $(echo "$pages" | wc -l) pages render cleanly; all $n exported functions documented"
exit $status
