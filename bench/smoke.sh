#!/bin/sh
# Smoke run of the benchmark for `make check`: every scenario with tiny sizes
# and durations (seconds).  Checks that the run completes, that every
# scenario produced its records with well-formed numbers, and that the
# report renders; never checks a timing.
set -u
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
[ -n "${REDISLOCK_TEST_SERVER:-}" ] || REDISLOCK_TEST_SERVER=$(command -v redis-server || true)
[ -n "$REDISLOCK_TEST_SERVER" ] || { echo "redis-server not found: skip"; exit 77; }
export REDISLOCK_TEST_SERVER

tmp=$(mktemp -d "${REDISLOCK_TEST_TMPDIR:-${TMPDIR:-/tmp}}/bench-smoke.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
rec=$tmp/records
out=$tmp/out
md=$tmp/benchmarks.md

TMPDIR=$tmp sh "$srcdir/bench/run" --quick --build "$builddir" --records "$rec" \
    --markdown "$md" >"$out" 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ]; then
    echo "bench/run failed ($rc):"; cat "$tmp/err" "$out"; exit 1
fi
fail=0
# one record per scenario, each with its key figures (a crash record may
# have measured no kill: under valgrind or TSan the watcher is too slow to
# time the expiry, and every kill is counted as missed; report.py says so)
for want in "uncontended .*acqrel_p50_us=" "handoff .*handoff_p50_us=" \
    "crash masters=1 .*\(delay_n=0 \|delay_p50_us=.*resolution_p50_us=\)" \
    "crash masters=3 .*\(delay_n=0 \|delay_p50_us=.*commands_max=\)" \
    "handoff .*hold_ms=10 .*handoff_p25_us=.*handoff_fast_share=" \
    "contend impl=redislock .*hold_ms=10 .*held_pct=.*gap_p50_us=" \
    "waitcost impl=redislock .*commands=" \
    "majority masters=5 .*acqrel_p50_us=" "renew locks=100 .*pipelines=" \
    "scale .*conns_peak=" "contend impl=redislock .*total=" \
    "fencing .*fenced_p50_us=.*tokens_not_increasing=0" \
    "statcost url=unix .*ratio_p50=.*counted_with=[1-9][0-9]* counted_without=0" \
    "statcost url=tcp .*ratio_mean=.*cpu_ratio="; do
    grep -q "^@ $want" "$rec" || { echo "no record matching '@ $want'"; fail=1; }
done
# built with TLS: the TLS record and its section
if grep -q '^@ info tls OpenSSL' "$rec" && command -v openssl >/dev/null; then
    grep -q '^@ tls .*ratio_p50=.*newconn_tls_p50_us=' "$rec" ||
        { echo "no TLS record"; fail=1; }
    grep -q '^TLS' "$out" || { echo "report lacks 'TLS'"; fail=1; }
fi
# every field is a number, except the few named ones
bad=$(grep '^@ ' "$rec" | grep -v '^@ info ' | tr ' ' '\n' | grep '=' |
      grep -Ev '^(label|url|mode|impl|end|result)=' |
      grep -Ev '^[a-z0-9_]+=-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$' || true)
[ -z "$bad" ] || { echo "malformed fields:"; echo "$bad"; fail=1; }
# nothing failed inside the runs
grep -q ' errors=[1-9]' "$rec" && { echo "contention errors:"; grep ' errors=[1-9]' "$rec"; fail=1; }
grep -q ' failed=[1-9]' "$rec" && { echo "scale failures"; fail=1; }
# the report: the goals table and every section
for s in "Goals" "Contention" "Hand-off in detail" "Where the time goes" \
    "Cost of waiting" "Crashed holder" "Majority mode" "Renewal" "Scale" \
    "Fencing tokens" "Statistics"; do
    grep -q "^$s" "$out" || { echo "report lacks '$s'"; fail=1; }
done
if ! grep -q '^## Machine' "$md" || ! grep -q ' cores, ' "$md"; then
    echo "markdown lacks the machine"; fail=1
fi
grep -q 'published' "$md" || { echo "markdown lacks the published table"; fail=1; }
# the fair lock and the semaphore (bench/run --kinds): every scenario's
# record and the goals' table
krec=$tmp/kinds-records
if ! TMPDIR=$tmp sh "$srcdir/bench/run" --kinds --quick --no-peer --build "$builddir" \
    --records "$krec" >"$tmp/kinds-out" 2>"$tmp/kinds-err"; then
    echo "bench/run --kinds failed:"; cat "$tmp/kinds-err" "$tmp/kinds-out"; fail=1
fi
for want in "handoff .*kind=fair .*handoff_p50_us=" "handfloor .*take_p50_us=" "fairness conc=16 .*inversions=" \
    "semutil permits=4 .*in_use_pct=" "kcrash .*delay_p50_us=" "kwaiter .*delay_p50_us=" \
    "waitcost .*kind=fair .*commands="; do
    grep -q "^@ $want" "$krec" 2>/dev/null || { echo "no record matching '@ $want'"; fail=1; }
done
grep -q '^| goal (issue 24)' "$tmp/kinds-out" || { echo "no table of issue 24's goals"; fail=1; }
bad=$(grep '^@ ' "$krec" 2>/dev/null | grep -v '^@ info ' | tr ' ' '\n' | grep '=' |
      grep -Ev '^(url|mode|impl|end|result|kind|faketime)=' |
      grep -Ev '^[a-z0-9_]+=-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$' || true)
[ -z "$bad" ] || { echo "malformed fields (kinds):"; echo "$bad"; fail=1; }
grep -q ' errors=[1-9]' "$krec" 2>/dev/null && { echo "kinds errors:"; grep ' errors=[1-9]' "$krec"; fail=1; }
[ $fail -eq 0 ] && echo "bench smoke: ok ($(grep -c '^@ ' "$rec") records)"
exit $fail
