/* redislock(1): run a command while holding a lock on Redis (flock(1) for a
 * fleet of hosts).  The pieces of the tool share this header; they use only
 * the public API (redislock.h). */
#ifndef REDISLOCK_TOOL_H
#define REDISLOCK_TOOL_H

#include <redislock.h>

#include <stddef.h>
#include <stdint.h>

/* Exit statuses besides COMMAND's own (documented in redislock(1) and
 * --help; modelled on flock(1), sysexits.h and env(1)). */
enum {
    RLT_EXIT_CONFLICT = 1,     /* default of -E: lock not obtained */
    RLT_EXIT_FREE = 1,         /* --status: the lock is free */
    RLT_EXIT_USAGE = 64,       /* EX_USAGE: bad options or arguments */
    RLT_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: Redis unreachable, server
                                  error, no quorum */
    RLT_EXIT_OSERR = 71,       /* EX_OSERR: out of memory, cannot fork */
    RLT_EXIT_LOST = 75,        /* EX_TEMPFAIL: the lock was lost while
                                  COMMAND ran and COMMAND still exited 0 */
    RLT_EXIT_NOEXEC = 126,     /* COMMAND found but could not be run */
    RLT_EXIT_NOTFOUND = 127    /* COMMAND not found */
};

#define RLT_MAX_URLS 31

enum rlt_mode { RLT_RUN, RLT_STATUS, RLT_RESET, RLT_RESET_ALL, RLT_LIST, RLT_SLOTS };

/* TLS (tls.c): redis-cli's option spellings. */
typedef struct rlt_tls {
    int on;                 /* --tls: every redis:// URL becomes rediss:// */
    const char *cacert;     /* --cacert, else $REDISLOCK_CACERT */
    const char *cacertdir;  /* --cacertdir */
    const char *cert;       /* --cert, else $REDISLOCK_CERT */
    const char *key;        /* --key, else $REDISLOCK_KEY */
    const char *sni;        /* --sni */
    int insecure;           /* --insecure */
} rlt_tls;

enum {
    RLT_OPT_TLS = 512, RLT_OPT_CACERT, RLT_OPT_CACERTDIR, RLT_OPT_CERT, RLT_OPT_KEY,
    RLT_OPT_SNI, RLT_OPT_INSECURE
};
/* Their entries of getopt_long()'s table (needs <getopt.h>). */
#define RLT_TLS_LONGOPTS                                                  \
    { "tls", no_argument, NULL, RLT_OPT_TLS },                            \
    { "cacert", required_argument, NULL, RLT_OPT_CACERT },                \
    { "cacertdir", required_argument, NULL, RLT_OPT_CACERTDIR },          \
    { "cert", required_argument, NULL, RLT_OPT_CERT },                    \
    { "key", required_argument, NULL, RLT_OPT_KEY },                      \
    { "sni", required_argument, NULL, RLT_OPT_SNI },                      \
    { "insecure", no_argument, NULL, RLT_OPT_INSECURE }

/* Everything the command line asked for. */
typedef struct rlt_config {
    enum rlt_mode mode;
    rlt_tls tls;               /* --tls, --cacert, ... */
    const char *urls[RLT_MAX_URLS];
    size_t nurls;
    const char *name;          /* lock name (not for --reset-all), or the
                                  --list PATTERN (NULL: every lock) */
    char *const *argv;         /* COMMAND and its arguments, NULL-terminated */
    const char *shell_cmd;     /* -c: run through /bin/sh -c */
    int64_t timeout_ms;        /* -1 waits for ever, 0 is -n */
    int64_t expire_ms;         /* -e */
    int conflict_code;         /* -E */
    const char *id;            /* -i, or NULL for a random one */
    const char *owner_prefix;  /* --reset-all/--list --owner-prefix */
    int dry_run;               /* --reset-all --dry-run */
    int lost_signal;           /* sent to COMMAND when the lock is lost; 0: none */
    int fencing;               /* --fencing: REDISLOCK_TOKEN for COMMAND */
    int64_t max_hold_ms;       /* --max-hold; 0: none */
    int keep_credentials;      /* --keep-credentials: leave the password in
                                  COMMAND's environment */
    int verbose, quiet;
    int json;                  /* --json: --status, --list, --version */
    const char *key_prefix;    /* --key-prefix */
    int hash_tag;              /* --hash-tag */
    int connect_timeout_ms;    /* --connect-timeout; 0: the library's */
    int command_timeout_ms;    /* --command-timeout; 0: the library's */
    const char *sentinel_password; /* --sentinel-password */
    int min_replicas;          /* --min-replicas */
    int fair;                  /* --fair: a fair lock */
    int permits;               /* --permits N: a semaphore of N; 0: a lock */
} rlt_config;

/* options.c: fill cfg from the command line.  Returns -1 when the tool should
 * go on, else the exit status (0 after --help/--version, RLT_EXIT_USAGE after
 * a one-line message on stderr). */
int rlt_parse_args(rlt_config *cfg, int argc, char **argv);

/* tls.c: one of the RLT_OPT_* options: -1 to go on, else the exit
 * status after a message. */
int rlt_tls_option(rlt_config *cfg, int opt, const char *arg);
/* The TLS part of --help. */
void rlt_tls_usage(void);
/* "TLS: <library>" or "no TLS", for --version. */
const char *rlt_tls_describe(void);
/* The client options for TLS (from cfg and the environment) and the URLs
 * to use (cfg->nurls of them; --tls applied).  -1, or the exit status
 * after a message. */
int rlt_tls_prepare(const rlt_config *cfg, redislock_client_options *o,
                    const char **urls);

/* msg.c: "redislock: ..." lines on stderr. */
void rlt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rlt_info(const rlt_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit status for a library error code that ends the tool. */
int rlt_exit_for(int err);
/* The same for an error of a call that talked to the server, after the
 * tool checked its own arguments: REDISLOCK_EINVAL there is the server
 * refusing what the URL asks (a database number out of range), so 69. */
int rlt_exit_for_server(int err);
/* s for a message line: control bytes, '\\' and bytes above 126 as \xHH,
 * cut with "..." to fit size. */
const char *rlt_quote(const char *s, char *buf, size_t size);
/* fields.c: a field of an answer line on stdout as one shell word that a
 * shell gives back unchanged: as it is when made of letters, digits and
 * "_@%+=:,./-" only; else in single quotes; a field with a control
 * character or bytes that are not UTF-8 as $'...' with \xHH escapes. */
void rlt_put_word(const char *s, size_t len);
/* "key":"s" in JSON (--json), and "key_hex":"..." with the exact bytes after
 * it when s is not UTF-8 (the string then has U+FFFD for those bytes). */
void rlt_put_json(const char *key, const char *s, size_t len);
/* Flush stdout: 0, or RLT_EXIT_OSERR after a message when the answer could
 * not be written (a closed or full output). */
int rlt_flush_out(void);
/* At start: /dev/null on each of fds 0-2 that is closed, opened so that a
 * use fails (so that no socket of ours becomes stdout).  0 or
 * RLT_EXIT_OSERR. */
int rlt_std_fds(void);
/* CLOCK_MONOTONIC in ms. */
int64_t rlt_now_ms(void);

/* client.c: a client on cfg's URL(s); NULL after a message on stderr with
 * *status set to the exit status. */
redislock_client *rlt_client(const rlt_config *cfg, int *status);

/* admin.c: --status, --reset, --reset-all, --list, --cluster-nodes.
 * Return the exit status. */
int rlt_status(const rlt_config *cfg, redislock_client *c);
int rlt_reset(const rlt_config *cfg, redislock_client *c);
int rlt_reset_all(const rlt_config *cfg, redislock_client *c);
int rlt_list(const rlt_config *cfg, redislock_client *c);
/* --cluster-nodes: the slot map of every cluster URL, a line per range. */
int rlt_slots(const rlt_config *cfg, redislock_client *c);

/* The kind of lock cfg names, for messages: "lock", "fair lock" or
 * "semaphore". */
const char *rlt_noun(const rlt_config *cfg);

/* run.c: acquire, run COMMAND, release.  Returns the exit status. */
int rlt_run(const rlt_config *cfg, redislock_client *c);

/* child.c: COMMAND as a child process in a process group of its own that
 * dies with the tool, every catchable signal forwarded to that group, and
 * lost-lock reports, through one self-pipe. */
/* Install the handlers (call before acquiring): until rlt_signals_hold(),
 * a signal ends the tool as it would without handlers (a signal that lands
 * inside the acquire after the server granted the lock leaves it to
 * expire). */
int rlt_signals_init(void);
/* While lk is being acquired, those signals cancel the wait
 * (redislock_cancel()) instead of ending the tool. */
void rlt_signals_waiting(redislock *lk);
/* The signal that cancelled the wait, or 0. */
int rlt_signals_cancelled(void);
/* The lock is held: from now on those signals are recorded, not fatal. */
void rlt_signals_hold(void);
/* The first of those signals that arrived since rlt_signals_hold(), or 0. */
int rlt_signals_pending(void);
/* Called from any thread (the renewal thread): the lock was lost. */
void rlt_note_lost(void);
/* The lock COMMAND runs under, as rlt_child_start() and rlt_child_wait()
 * see it: on_lost(arg) is called once on a lost-lock report; validity_ms
 * (arg) is redislock_validity_ms() of the lock, for the guard's dead-man
 * switch (see child.c). */
typedef struct rlt_watch {
    void (*on_lost)(void *arg);
    int64_t (*validity_ms)(void *arg);
    void *arg;
} rlt_watch;
/* Start COMMAND under the guard, which hears from now on how long the lock
 * of w stays valid.  0 on success; else the exit status after a message. */
int rlt_child_start(const rlt_config *cfg, const rlt_watch *w, int *pid);
/* Wait for the child, forwarding signals and keeping the guard informed;
 * on a lost-lock report call the watch's on_lost once.  Returns the child's
 * status as an exit status (its code, or 128 + signal). */
int rlt_child_wait(int pid);
/* Send sig to COMMAND's whole process group (0: nothing). */
void rlt_child_signal(int sig);
/* After a normal end: COMMAND's group is no longer killed when the tool
 * exits (processes COMMAND left in the background run on). */
void rlt_child_done(void);

#endif
