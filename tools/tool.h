/* redislock(1): run a command while holding a lock on Redis (flock(1) for a
 * fleet of hosts).  The pieces of the tool share this header; they use only
 * the public API (redislock.h). */
#ifndef REDISLOCK_TOOL_H
#define REDISLOCK_TOOL_H

#include <redislock.h>

#include <stdint.h>

/* Exit statuses besides COMMAND's own (documented in redislock(1) and
 * --help; modelled on flock(1), sysexits.h and env(1)). */
enum {
    RLT_EXIT_CONFLICT = 1,     /* default of -E: lock not obtained */
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

enum rlt_mode { RLT_RUN, RLT_STATUS, RLT_RESET, RLT_RESET_ALL };

/* Everything the command line asked for. */
typedef struct rlt_config {
    enum rlt_mode mode;
    const char *urls[RLT_MAX_URLS];
    size_t nurls;
    const char *name;          /* lock name (not for --reset-all) */
    char *const *argv;         /* COMMAND and its arguments, NULL-terminated */
    const char *shell_cmd;     /* -c: run through /bin/sh -c */
    int64_t timeout_ms;        /* -1 waits for ever, 0 is -n */
    int64_t expire_ms;         /* -e */
    int conflict_code;         /* -E */
    const char *id;            /* -i, or NULL for a random one */
    const char *owner_prefix;  /* --reset-all --owner-prefix */
    int lost_signal;           /* sent to COMMAND when the lock is lost; 0: none */
    int fencing;               /* --fencing: REDISLOCK_TOKEN for COMMAND */
    int64_t max_hold_ms;       /* --max-hold; 0: none */
    int verbose, quiet;
} rlt_config;

/* options.c: fill cfg from the command line.  Returns -1 when the tool should
 * go on, else the exit status (0 after --help/--version, RLT_EXIT_USAGE after
 * a one-line message on stderr). */
int rlt_parse_args(rlt_config *cfg, int argc, char **argv);

/* msg.c: "redislock: ..." lines on stderr. */
void rlt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rlt_info(const rlt_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit status for a library error code that ends the tool. */
int rlt_exit_for(int err);
/* CLOCK_MONOTONIC in ms. */
int64_t rlt_now_ms(void);

/* client.c: a client on cfg's URL(s); NULL after a message on stderr with
 * *status set to the exit status. */
redislock_client *rlt_client(const rlt_config *cfg, int *status);

/* admin.c: --status, --reset, --reset-all.  Return the exit status. */
int rlt_status(const rlt_config *cfg, redislock_client *c);
int rlt_reset(const rlt_config *cfg, redislock_client *c);
int rlt_reset_all(const rlt_config *cfg, redislock_client *c);

/* run.c: acquire, run COMMAND, release.  Returns the exit status. */
int rlt_run(const rlt_config *cfg, redislock_client *c);

/* child.c: COMMAND as a child process, with SIGINT/SIGTERM/SIGHUP forwarded
 * and lost-lock reports, through one self-pipe. */
/* Install the handlers (call before acquiring): until rlt_signals_hold(),
 * one of those signals ends the tool as it would without handlers (a signal
 * that lands inside the acquire after the server granted the lock leaves it
 * to expire). */
int rlt_signals_init(void);
/* The lock is held: from now on those signals are recorded, not fatal. */
void rlt_signals_hold(void);
/* The first of those signals that arrived since rlt_signals_hold(), or 0. */
int rlt_signals_pending(void);
/* Called from any thread (the renewal thread): the lock was lost. */
void rlt_note_lost(void);
/* Start COMMAND.  0 on success; else the exit status after a message. */
int rlt_child_start(const rlt_config *cfg, int *pid);
/* Wait for the child, forwarding signals; on a lost-lock report call
 * on_lost(arg) once.  Returns the child's status as an exit status (its
 * code, or 128 + signal). */
int rlt_child_wait(int pid, void (*on_lost)(void *arg), void *arg);

#endif
