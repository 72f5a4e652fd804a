/* redislock-bench: one measurement per run, against servers that the driver
 * (bench/run) started.  Usage:
 *
 *   redislock-bench SCENARIO --url URL [--url URL ...] [options]
 *
 * SCENARIO: uncontended, handoff, majority, contend, waitcost, crash, renew,
 * scale, tls, fencing, fairness, semutil, kcrash, kwaiter, kclock, handfloor;
 * "redislock-bench version" prints the library and hiredis versions.
 * Options: --duration S, --iters N, --conc N, --hold MS,
 * --mode threads|processes, --locks N, --threads N, --label TEXT,
 * --delay-us N (majority: reach the masters through relays that delay each
 * direction by N us, a stand-in for a network), --cacert FILE (tls: the CA
 * of the server's TLS port), --kind mutex|fair|semaphore (handoff, waitcost:
 * the kind of lock) and --permits N (semutil: the semaphore's). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(const bench_opts *);
} scenarios[] = {
    { "uncontended", bench_uncontended }, { "handoff", bench_handoff },
    { "majority", bench_majority },       { "contend", bench_contend },
    { "waitcost", bench_waitcost },       { "crash", bench_crash },
    { "renew", bench_renew },             { "scale", bench_scale },
    { "tls", bench_tls },
    { "fencing", bench_fencing },
    { "fairness", bench_fairness },       { "semutil", bench_semutil },
    { "kcrash", bench_kcrash },           { "kwaiter", bench_kwaiter },
    { "kclock", bench_kclock },           { "handfloor", bench_handfloor },
};

static void usage(void)
{
    fputs("usage: redislock-bench SCENARIO --url URL [--url URL ...] [--duration S]\n"
          "       [--iters N] [--conc N] [--hold MS] [--mode threads|processes]\n"
          "       [--locks N] [--threads N] [--delay-us N] [--label TEXT] [--cacert FILE]\n"
          "       [--kind mutex|fair|semaphore] [--permits N]\n"
          "scenarios: uncontended handoff majority contend waitcost crash renew scale tls\n"
          "           fencing fairness semutil kcrash kwaiter kclock handfloor\n",
          stderr);
    exit(2);
}

static int number(const char *opt, const char *v, int lo, int hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == 0 || *end || n < lo || n > hi) {
        fprintf(stderr, "redislock-bench: %s: expected a number from %d to %d, got '%s'\n",
                opt, lo, hi, v);
        exit(2);
    }
    return (int)n;
}

int main(int argc, char **argv)
{
    bench_opts o = { .duration_s = 3, .iters = 2000, .conc = 2, .hold_ms = 0,
                     .nlocks = 1000, .threads = 64 };
    size_t i;
    int a;
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "version")) { /* what this binary was built with */
        printf("@ info redislock %s\n@ info hiredis %d.%d.%d\n@ info tls %s\n",
               redislock_version_string(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
               redislock_tls_version() ? redislock_tls_version() : "none");
        return 0;
    }
    for (a = 2; a < argc; a++) {
        const char *opt = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!v)
            usage();
        a++;
        if (!strcmp(opt, "--url")) {
            if (o.nurls == BENCH_MAX_URLS)
                usage();
            o.urls[o.nurls++] = v;
        } else if (!strcmp(opt, "--duration")) {
            char *end;
            o.duration_s = strtod(v, &end);
            if (*end || !(o.duration_s > 0 && o.duration_s <= 3600)) {
                fprintf(stderr, "redislock-bench: --duration: expected seconds, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(opt, "--iters")) {
            o.iters = number(opt, v, 1, 10000000);
        } else if (!strcmp(opt, "--conc")) {
            o.conc = number(opt, v, 1, BENCH_MAX_CONTENDERS);
        } else if (!strcmp(opt, "--hold")) {
            o.hold_ms = number(opt, v, 0, 3600000);
        } else if (!strcmp(opt, "--mode")) {
            if (strcmp(v, "threads") && strcmp(v, "processes"))
                usage();
            o.processes = !strcmp(v, "processes");
        } else if (!strcmp(opt, "--locks")) {
            o.nlocks = number(opt, v, 1, 1000000);
        } else if (!strcmp(opt, "--threads")) {
            o.threads = number(opt, v, 1, BENCH_MAX_CONTENDERS);
        } else if (!strcmp(opt, "--delay-us")) {
            o.delay_us = number(opt, v, 0, 1000000);
        } else if (!strcmp(opt, "--label")) {
            o.label = v;
        } else if (!strcmp(opt, "--cacert")) {
            o.cacert = v;
        } else if (!strcmp(opt, "--kind")) {
            if (!strcmp(v, "mutex"))
                o.kind = REDISLOCK_KIND_MUTEX;
            else if (!strcmp(v, "fair"))
                o.kind = REDISLOCK_KIND_FAIR;
            else if (!strcmp(v, "semaphore"))
                o.kind = REDISLOCK_KIND_SEMAPHORE;
            else
                usage();
        } else if (!strcmp(opt, "--permits")) {
            o.permits = number(opt, v, 1, 1000000);
        } else {
            usage();
        }
    }
    if (o.nurls == 0)
        usage();
    for (i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        if (!strcmp(argv[1], scenarios[i].name))
            return scenarios[i].fn(&o) ? 1 : 0;
    usage();
    return 2;
}
