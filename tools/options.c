/* Command-line parsing for redislock(1): flock(1)'s shape, strict numbers,
 * one-line messages and RLT_EXIT_USAGE for anything wrong. */
#include "config.h"
#include "tool.h"

#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_URL "redis://127.0.0.1:6379"
#define MAX_SECS 1000000000LL /* about 31 years */
#define MAX_TIMEOUT_SECS 2147483LL /* the library's timeouts are int ms */

enum {
    OPT_STATUS = 256, OPT_RESET, OPT_RESET_ALL, OPT_OWNER_PREFIX, OPT_LOST_SIGNAL,
    OPT_LIST, OPT_CLUSTER_NODES, OPT_DRY_RUN, OPT_KEY_PREFIX, OPT_HASH_TAG,
    OPT_CONNECT_TIMEOUT, OPT_COMMAND_TIMEOUT, OPT_FENCING, OPT_MAX_HOLD, OPT_JSON,
    OPT_SENTINEL_PASSWORD, OPT_MIN_REPLICAS, OPT_KEEP_CREDENTIALS, OPT_FAIR, OPT_PERMITS
};

static const struct option longopts[] = {
    { "url", required_argument, NULL, 'u' },
    RLT_TLS_LONGOPTS,
    { "nonblock", no_argument, NULL, 'n' },
    { "nb", no_argument, NULL, 'n' },
    { "timeout", required_argument, NULL, 'w' },
    { "wait", required_argument, NULL, 'w' },
    { "expire", required_argument, NULL, 'e' },
    { "conflict-exit-code", required_argument, NULL, 'E' },
    { "id", required_argument, NULL, 'i' },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "status", no_argument, NULL, OPT_STATUS },
    { "reset", no_argument, NULL, OPT_RESET },
    { "reset-all", no_argument, NULL, OPT_RESET_ALL },
    { "owner-prefix", required_argument, NULL, OPT_OWNER_PREFIX },
    { "lost-signal", required_argument, NULL, OPT_LOST_SIGNAL },
    { "list", no_argument, NULL, OPT_LIST },
    { "cluster-nodes", no_argument, NULL, OPT_CLUSTER_NODES },
    { "dry-run", no_argument, NULL, OPT_DRY_RUN },
    { "key-prefix", required_argument, NULL, OPT_KEY_PREFIX },
    { "hash-tag", no_argument, NULL, OPT_HASH_TAG },
    { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
    { "command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT },
    { "fencing", no_argument, NULL, OPT_FENCING },
    { "max-hold", required_argument, NULL, OPT_MAX_HOLD },
    { "json", no_argument, NULL, OPT_JSON },
    { "sentinel-password", required_argument, NULL, OPT_SENTINEL_PASSWORD },
    { "min-replicas", required_argument, NULL, OPT_MIN_REPLICAS },
    { "keep-credentials", no_argument, NULL, OPT_KEEP_CREDENTIALS },
    { "fair", no_argument, NULL, OPT_FAIR },
    { "permits", required_argument, NULL, OPT_PERMITS },
    { "command", required_argument, NULL, 'c' },
    { NULL, 0, NULL, 0 }
};

static void usage(void)
{
    printf(
"Usage:\n"
"  redislock [options] NAME COMMAND [ARG...]  run COMMAND holding lock NAME\n"
"  redislock [options] NAME -c 'SHELL COMMAND'  the same through /bin/sh -c\n"
"  redislock [options] --status NAME    'held owner=ID ttl_ms=N' (exit 0)\n"
"                                       or 'free' (exit 1); with --fair or\n"
"                                       --permits N also 'holders=H\n"
"                                       permits=N queued=Q'\n"
"  redislock [options] --reset NAME     forced release (wakes one waiter)\n"
"  redislock [options] --reset-all [--owner-prefix P] [--dry-run]\n"
"                                       forced release of every lock (or of\n"
"                                       those whose owner id starts with P)\n"
"  redislock [options] --list [PATTERN] a line 'NAME owner=ID ttl_ms=N' per\n"
"                                       lock (PATTERN: a glob on NAME); NAME\n"
"                                       and ID quoted for the shell if needed;\n"
"                                       fair locks add 'kind=fair queued=Q',\n"
"                                       semaphores a line per holder with\n"
"                                       'kind=semaphore holders=H permits=N\n"
"                                       queued=Q'\n"
"  redislock [options] --cluster-nodes  the slot map of a cluster URL: a line\n"
"                                       'FIRST-LAST HOST:PORT' per range\n"
"\n"
"Options:\n"
"  -u, --url URL          a Redis master; repeat for majority mode (Redlock):\n"
"                         redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB] or\n"
"                         unix:///PATH[?db=N&user=USER&password=PASSWORD] or\n"
"                         redis-sentinel://[[USER][:PASSWORD]@]HOST[:PORT][,...]\n"
"                         /SERVICE[/DB] (the master its sentinels name), or a\n"
"                         Redis Cluster by its seed nodes:\n"
"                         redis-cluster://[[USER][:PASSWORD]@]HOST:PORT[,...]\n"
"                         default $REDISLOCK_URL (one URL, or several separated\n"
"                         by spaces or commas), else " DEFAULT_URL "\n"
"      --sentinel-password P  the sentinels' own password (the URL's is the\n"
"                         master's); also $REDISLOCK_SENTINEL_PASSWORD\n"
"      --min-replicas N   after every write of the lock, wait (50 ms) until N\n"
"                         replicas have it, else fail (exit 69) or report\n"
"                         the lock lost; a URL's ?min_replicas= wins\n"
"  -n, --nonblock         do not wait: if the lock is held, fail at once\n"
"  -w, --timeout SECS     wait at most SECS (fractions allowed) for the lock\n"
"  -e, --expire SECS      lock expiry, renewed while COMMAND runs (default 30;\n"
"                         0.1 to 1000000000)\n"
"  -E, --conflict-exit-code N\n"
"                         exit status when the lock was not obtained (default 1)\n"
"  -i, --id ID            owner id (default: \"redislock@<hostname>:\" and 24\n"
"                         random characters)\n"
"      --lost-signal SIG  signal sent to COMMAND's process group if the lock is\n"
"                         lost (default TERM; 'none' only reports it)\n"
"      --fencing          give COMMAND a fencing token in $REDISLOCK_TOKEN\n"
"      --fair             a fair lock: waiters are served in the order they came\n"
"                         (still lock:NAME, seen as held by python-redis-lock)\n"
"      --permits N        a semaphore of N permits: at most N COMMANDs run at\n"
"                         once fleet-wide, waiters served in order (1 to 1000000;\n"
"                         every user of NAME must give the same N)\n"
"      --max-hold SECS    renew the lock for at most SECS: then COMMAND gets the\n"
"                         lost signal, and the lock lapses within one expiry\n"
"      --keep-credentials leave $REDISLOCK_PASSWORD, $REDISLOCK_SENTINEL_PASSWORD\n"
"                         and a $REDISLOCK_URL with a password in COMMAND's\n"
"                         environment (removed by default)\n"
"      --owner-prefix P   with --reset-all or --list: only the locks whose\n"
"                         owner id starts with P\n"
"      --dry-run          with --reset-all: list the locks it would remove and\n"
"                         'would remove N'; remove nothing\n"
"      --key-prefix P     keys P + \"lock:NAME\" (the library's key_prefix)\n"
"      --hash-tag         keys \"lock:{NAME}\": one Redis Cluster slot (not\n"
"                         python-redis-lock compatible)\n"
"      --connect-timeout SECS  connect and log in within SECS (default 2)\n"
"      --command-timeout SECS  wait at most SECS for a reply (default 2)\n"
"  -v, --verbose          report waiting, acquiring and releasing on stderr;\n"
"                         twice: also the library's log (connections), 3 times:\n"
"                         its debug log\n"
"  -q, --quiet            no message when the lock was not obtained; no output\n"
"                         from --status, --reset and --reset-all\n"
"      --json             --status, --list and --version answer in JSON (for\n"
"                         scripts): an object, an array of objects\n"
"  -h, --help             show this help\n"
"  -V, --version          show the version\n"
"\n"
"Signals: once the lock is held, every signal that would end or stop the tool\n"
"is forwarded to COMMAND's process group (SIGPIPE is ignored); if the tool is\n"
"killed, COMMAND's process group is killed too, and if it is stopped\n"
"(SIGSTOP) until the lock runs out, COMMAND's group gets the lost signal and\n"
"then SIGKILL before the lock expires.\n"
"\n"
"Exit status: COMMAND's own (128+N if it died of signal N); the -E code\n"
"(default 1) when the lock was not obtained; 64 for a usage error; 69 when\n"
"Redis is unreachable, answers with an error, refuses the URL's database, or\n"
"too few masters answer; 71 for a system error or an answer that could not be\n"
"written; 75 when the lock was lost while COMMAND ran and COMMAND exited 0;\n"
"126 when COMMAND cannot be run and 127 when it is not found.  --status exits\n"
"0 when the lock is held and 1 when it is free; --reset, --reset-all and\n"
"--list and --cluster-nodes exit 0 on success.  The password may also be given in\n"
"$REDISLOCK_PASSWORD.  See redislock(1).\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rlt_err("%s (see --help)", msg);
    return RLT_EXIT_USAGE;
}

/* Seconds as digits with an optional fraction ("2", "0.25", ".5"), to ms,
 * rounding a fraction of a ms up.  No sign, exponent, hex, inf or nan. */
static int parse_secs(const char *s, int64_t *ms)
{
    int64_t whole = 0, frac = 0;
    int nd = 0, nf = 0, rest = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (whole > MAX_SECS)
            return -1;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, nf++) {
            if (nf < 3)
                frac = frac * 10 + (*p - '0');
            else if (*p != '0')
                rest = 1;
        }
    if (*p || (nd == 0 && nf == 0) || whole > MAX_SECS)
        return -1;
    for (; nf < 3; nf++)
        frac *= 10;
    *ms = whole * 1000 + frac + rest;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_signal(const char *s, int *sig)
{
    static const struct { const char *name; int sig; } sigs[] = {
        { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
        { "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
        { "TERM", SIGTERM }, { "ALRM", SIGALRM }
    };
    size_t i;
    long n;
    if (!strcasecmp(s, "none")) {
        *sig = 0;
        return 0;
    }
    if (!parse_int(s, 0, 64, &n)) {
        *sig = (int)n;
        return 0;
    }
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (!strcasecmp(s, sigs[i].name)) {
            *sig = sigs[i].sig;
            return 0;
        }
    return -1;
}

static int set_mode(rlt_config *cfg, enum rlt_mode m, const char *opt)
{
    if (cfg->mode != RLT_RUN && cfg->mode != m)
        return bad("%s cannot be combined with another of --status, --reset, "
                   "--reset-all, --list, --cluster-nodes", opt);
    cfg->mode = m;
    return -1;
}

/* A timeout option: seconds, more than 0, in the library's int ms. */
static int parse_timeout(const char *opt, const char *s, int *ms)
{
    int64_t v;
    if (parse_secs(s, &v) || v < 1 || v > MAX_TIMEOUT_SECS * 1000)
        return bad("%s: '%s' is not a number of seconds from 0.001 to %lld", opt, s,
                   MAX_TIMEOUT_SECS);
    *ms = (int)v;
    return -1;
}

/* The lock name the library would refuse, as a usage error (a refusal
 * later, from a call that talks to the server, means the server's). */
static int check_name(const char *name)
{
    if (!*name)
        return bad("the lock name is empty");
    if (strlen(name) > REDISLOCK_NAME_MAX)
        return bad("the lock name is %zu bytes; at most %d are allowed", strlen(name),
                   REDISLOCK_NAME_MAX);
    return -1;
}

/* The arguments after the options: NAME and COMMAND, or -c SHELL_COMMAND
 * (after NAME, as flock(1) takes it). */
static int positional(rlt_config *cfg, int n, char **args)
{
    int rc;
    switch (cfg->mode) {
    case RLT_RESET_ALL:
    case RLT_SLOTS:
        if (n > 0)
            return bad("%s takes no lock name (got '%s')",
                       cfg->mode == RLT_SLOTS ? "--cluster-nodes" : "--reset-all", args[0]);
        return -1;
    case RLT_LIST:
        if (n > 1)
            return bad("--list takes one PATTERN (unexpected '%s'); quote it", args[1]);
        if (n == 1 && strlen(args[0]) > REDISLOCK_NAME_MAX)
            return bad("the pattern is %zu bytes; at most %d are allowed",
                       strlen(args[0]), REDISLOCK_NAME_MAX);
        cfg->name = n ? args[0] : NULL;
        return -1;
    case RLT_STATUS:
    case RLT_RESET:
        if (n == 0)
            return bad("%s needs a lock NAME",
                       cfg->mode == RLT_STATUS ? "--status" : "--reset");
        if (n > 1)
            return bad("unexpected argument '%s' after the lock name", args[1]);
        cfg->name = args[0];
        return check_name(cfg->name);
    case RLT_RUN:
        break;
    }
    if (n == 0)
        return bad("missing lock NAME and COMMAND");
    cfg->name = args[0];
    if ((rc = check_name(cfg->name)) >= 0)
        return rc;
    if (n == 1)
        return bad("missing COMMAND after the lock name '%s'", args[0]);
    if (!strcmp(args[1], "-c") || !strcmp(args[1], "--command")) {
        if (n == 2)
            return bad("%s needs a shell command", args[1]);
        if (n > 3)
            return bad("%s takes one shell command; quote it (unexpected '%s')",
                       args[1], args[3]);
        cfg->shell_cmd = args[2];
        return -1;
    }
    cfg->argv = args + 1;
    return -1;
}

/* 1 if s starts with "SCHEME://" (a letter, then letters, digits, '+',
 * '-' or '.'). */
static int starts_url(const char *s)
{
    const char *p = s;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
        p++;
    return !strncmp(p, "://", 3);
}

/* The copy of $REDISLOCK_URL that the URLs point into, until exit. */
static char *env_copy;

static void free_env_copy(void)
{
    free(env_copy);
}

/* $REDISLOCK_URL: one URL, or several (majority mode) separated by white
 * space or commas.  A comma separates only where a URL follows it, so
 * that one in a password stays.  No URL at all: the default. */
static int env_urls(rlt_config *cfg, const char *env)
{
    char *p;
    if (!(env_copy = strdup(env))) {
        rlt_err("out of memory");
        return RLT_EXIT_OSERR;
    }
    atexit(free_env_copy);
    p = env_copy;
    while (*p) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',') {
            *p++ = '\0';
            continue;
        }
        if (cfg->nurls == RLT_MAX_URLS)
            return bad("$REDISLOCK_URL: at most %d masters are supported", RLT_MAX_URLS);
        cfg->urls[cfg->nurls++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' &&
               !(*p == ',' && starts_url(p + 1 + strspn(p + 1, " \t\n"))))
            p++;
    }
    if (cfg->nurls == 0)
        cfg->urls[cfg->nurls++] = DEFAULT_URL;
    return -1;
}

/* --version (after every option: --json may follow it). */
static int print_version(const rlt_config *cfg)
{
    const char *tls = redislock_tls_version();
    if (!cfg->json) {
        printf("redislock %s (libredislock %s, %s)\n", PACKAGE_VERSION,
               redislock_version_string(), rlt_tls_describe());
        return 0;
    }
    printf("{\"version\":\"%s\",\"library\":\"%s\",", PACKAGE_VERSION,
           redislock_version_string());
    if (tls)
        rlt_put_json("tls", tls, strlen(tls));
    else
        fputs("\"tls\":null", stdout);
    puts("}");
    return 0;
}

const char *rlt_noun(const rlt_config *cfg)
{
    return cfg->permits ? "semaphore" : cfg->fair ? "fair lock" : "lock";
}

int rlt_parse_args(rlt_config *cfg, int argc, char **argv)
{
    int opt, rc, version = 0;
    long n;
    const char *env;

    memset(cfg, 0, sizeof *cfg);
    cfg->mode = RLT_RUN;
    cfg->timeout_ms = -1;
    cfg->expire_ms = 30000;
    cfg->conflict_code = RLT_EXIT_CONFLICT;
    cfg->lost_signal = SIGTERM;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:u:nw:e:E:i:c:vqhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            if (cfg->nurls == RLT_MAX_URLS)
                return bad("at most %d masters (-u) are supported", RLT_MAX_URLS);
            cfg->urls[cfg->nurls++] = optarg;
            break;
        case RLT_OPT_TLS:
        case RLT_OPT_CACERT:
        case RLT_OPT_CACERTDIR:
        case RLT_OPT_CERT:
        case RLT_OPT_KEY:
        case RLT_OPT_SNI:
        case RLT_OPT_INSECURE:
            if ((rc = rlt_tls_option(cfg, opt, optarg)) >= 0)
                return rc;
            break;
        case 'n':
            cfg->timeout_ms = 0;
            break;
        case 'w':
            if (parse_secs(optarg, &cfg->timeout_ms))
                return bad("-w: '%s' is not a number of seconds from 0 to %lld", optarg,
                           MAX_SECS);
            break;
        case 'e':
            if (parse_secs(optarg, &cfg->expire_ms) || cfg->expire_ms < 100)
                return bad("-e: '%s' is not a number of seconds from 0.1 to %lld",
                           optarg, MAX_SECS);
            break;
        case 'c':
            return bad("-c (--command) goes after the lock name, as in flock(1): "
                       "redislock [options] NAME -c 'SHELL COMMAND'");
        case 'E':
            if (parse_int(optarg, 0, 255, &n))
                return bad("-E: '%s' is not an exit status from 0 to 255", optarg);
            cfg->conflict_code = (int)n;
            break;
        case 'i':
            cfg->id = optarg;
            break;
        case 'v':
            cfg->verbose++;
            cfg->quiet = 0;
            break;
        case 'q':
            cfg->quiet = 1;
            cfg->verbose = 0;
            break;
        case 'h':
            usage();
            rlt_tls_usage();
            return 0;
        case 'V':
            version = 1;
            break;
        case OPT_JSON:
            cfg->json = 1;
            break;
        case OPT_STATUS:
            if ((rc = set_mode(cfg, RLT_STATUS, "--status")) >= 0)
                return rc;
            break;
        case OPT_RESET:
            if ((rc = set_mode(cfg, RLT_RESET, "--reset")) >= 0)
                return rc;
            break;
        case OPT_RESET_ALL:
            if ((rc = set_mode(cfg, RLT_RESET_ALL, "--reset-all")) >= 0)
                return rc;
            break;
        case OPT_LIST:
            if ((rc = set_mode(cfg, RLT_LIST, "--list")) >= 0)
                return rc;
            break;
        case OPT_CLUSTER_NODES:
            if ((rc = set_mode(cfg, RLT_SLOTS, "--cluster-nodes")) >= 0)
                return rc;
            break;
        case OPT_OWNER_PREFIX:
            cfg->owner_prefix = optarg;
            break;
        case OPT_DRY_RUN:
            cfg->dry_run = 1;
            break;
        case OPT_KEY_PREFIX:
            cfg->key_prefix = optarg;
            break;
        case OPT_HASH_TAG:
            cfg->hash_tag = 1;
            break;
        case OPT_CONNECT_TIMEOUT:
            if ((rc = parse_timeout("--connect-timeout", optarg,
                                    &cfg->connect_timeout_ms)) >= 0)
                return rc;
            break;
        case OPT_COMMAND_TIMEOUT:
            if ((rc = parse_timeout("--command-timeout", optarg,
                                    &cfg->command_timeout_ms)) >= 0)
                return rc;
            break;
        case OPT_FENCING:
            cfg->fencing = 1;
            break;
        case OPT_SENTINEL_PASSWORD:
            cfg->sentinel_password = optarg;
            break;
        case OPT_MIN_REPLICAS:
            if (parse_int(optarg, 0, 1000, &n))
                return bad("--min-replicas: '%s' is not a number from 0 to 1000", optarg);
            cfg->min_replicas = (int)n;
            break;
        case OPT_KEEP_CREDENTIALS:
            cfg->keep_credentials = 1;
            break;
        case OPT_FAIR:
            cfg->fair = 1;
            break;
        case OPT_PERMITS:
            if (parse_int(optarg, 1, 1000000, &n))
                return bad("--permits: '%s' is not a number from 1 to 1000000", optarg);
            cfg->permits = (int)n;
            break;
        case OPT_MAX_HOLD:
            if (parse_secs(optarg, &cfg->max_hold_ms) || cfg->max_hold_ms == 0)
                return bad("--max-hold: '%s' is not a number of seconds above 0", optarg);
            break;
        case OPT_LOST_SIGNAL:
            if (parse_signal(optarg, &cfg->lost_signal))
                return bad("--lost-signal: '%s' is not a signal name or number",
                           optarg);
            break;
        case ':':
            return bad("option '%s' needs an argument", argv[optind - 1]);
        default:
            if (optopt && optopt < 256) {
                char o[3] = { '-', (char)optopt, '\0' };
                return bad("unknown option '%s'", o);
            }
            return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (version)
        return print_version(cfg);
    if (cfg->json && cfg->mode != RLT_STATUS && cfg->mode != RLT_LIST)
        return bad("--json is only valid with --status, --list and --version");
    if (cfg->owner_prefix && cfg->mode != RLT_RESET_ALL && cfg->mode != RLT_LIST)
        return bad("--owner-prefix is only valid with --reset-all and --list");
    if (cfg->dry_run && cfg->mode != RLT_RESET_ALL)
        return bad("--dry-run is only valid with --reset-all");
    if ((cfg->fair || cfg->permits) && cfg->mode != RLT_RUN && cfg->mode != RLT_STATUS)
        return bad("%s is only valid when running COMMAND and with --status (--reset, "
                   "--reset-all and --list cover every kind of lock)",
                   cfg->permits ? "--permits" : "--fair");
    if ((rc = positional(cfg, argc - optind, argv + optind)) >= 0)
        return rc;
    if (cfg->nurls == 0)
        return env_urls(cfg, (env = getenv("REDISLOCK_URL")) ? env : "");
    return -1;
}
