/*
 * Private structures and redislock__ prototypes.  Nothing here is exported.
 *
 * Layers, each calling only the ones below it:
 *   lock.c, reset.c        lock logic (public API for handles and resets)
 *   wait.c                 BLPOP wait with a client-side timer
 *   scripts.c, keys.c      Lua scripts (EVALSHA/NOSCRIPT) and key layout
 *   pool.c                 per-master connection pool, fork safety
 *   conn.c                 one Redis connection: RESP out, hiredis reader in
 *   net.c, url.c           sockets with deadlines, URL parsing
 *   alloc.c error.c clock.c options (client.c)   support
 */
#ifndef REDISLOCK_INTERNAL_H
#define REDISLOCK_INTERNAL_H

#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "redislock.h"

struct redisReader;
struct redisReply;

#if defined(__GNUC__)
#define REDISLOCK__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define REDISLOCK__PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- alloc.c */
void *redislock__malloc(size_t n);
void *redislock__calloc(size_t n, size_t size);
void *redislock__realloc(void *p, size_t n);
void redislock__free(void *p);
/* A NUL-terminated copy of n bytes; NULL on allocation failure. */
char *redislock__memdup(const void *p, size_t n);
char *redislock__strdup(const char *s);

/* ---------------------------------------------------------------- error.c */
/* Format the calling thread's detail message and return code. */
int redislock__err(int code, const char *fmt, ...) REDISLOCK__PRINTF(2, 3);
void redislock__err_clear(void);
/* Quote up to 64 bytes of a possibly binary string for messages. */
const char *redislock__quote(const char *s, size_t n, char *buf, size_t buflen);
/* The same without the 64-byte limit (only buflen): text from a server or
 * a caller (error replies, socket paths) made printable, so that a message
 * stays one line.  Control bytes and '\\' become \xNN; "..." when cut. */
const char *redislock__printable(const char *s, size_t n, char *buf, size_t buflen);

/* ---------------------------------------------------------------- clock.c */
#define REDISLOCK__NEVER INT64_MAX
/* CLOCK_MONOTONIC in microseconds. */
int64_t redislock__now_us(void);
/* now + ms (REDISLOCK__NEVER when ms < 0). */
int64_t redislock__after_ms(int64_t ms);
/* The earlier of two deadlines. */
int64_t redislock__min_deadline(int64_t a, int64_t b);
/* Milliseconds until deadline for poll(): -1 for never, 0 when passed,
 * rounded up otherwise. */
int redislock__poll_ms(int64_t deadline);
/* Sleep, resuming after signals (only for back-off after failures). */
void redislock__sleep_ms(int ms);

/* ------------------------------------------------------------------ url.c */
typedef struct redislock__endpoint {
    int is_unix;
    char *host;      /* host name or address; socket path when is_unix */
    int port;
    int db;
    char *username;  /* NULL if none */
    char *password;  /* NULL if none */
    char *addr;      /* "host:port" or the socket path, for messages */
} redislock__endpoint;

int redislock__url_parse(const char *url, redislock__endpoint *ep);
void redislock__endpoint_clear(redislock__endpoint *ep);

/* ------------------------------------------------------------------ net.c */
/* Connect a non-blocking, close-on-exec socket by the deadline. */
int redislock__net_connect(const redislock__endpoint *ep, int64_t deadline,
                           int *fd_out);
/* Wait for events on fd until deadline, retrying on EINTR.  Returns 1 when
 * ready, 0 on timeout, -1 with errno set on error. */
int redislock__net_wait(int fd, short events, int64_t deadline);

/* ----------------------------------------------------------------- conn.c */
typedef struct redislock__master redislock__master;
typedef struct redislock__conn redislock__conn;

struct redislock__conn {
    int fd;
    struct redisReader *reader;
    redislock__master *m;
    unsigned long gen;      /* fork generation it was opened in */
    char *obuf;             /* RESP not yet sent */
    size_t olen, opos, ocap;
    int pending;            /* replies still to read */
    int broken;             /* unusable: close instead of pooling */
    long long client_id;    /* CLIENT ID; 0 unknown, -1 unsupported */
    redislock__conn *next;  /* idle list */
};

/* Open a connection to m and run AUTH/SELECT on it. */
int redislock__conn_open(redislock__master *m, int64_t deadline,
                         redislock__conn **out);
void redislock__conn_close(redislock__conn *c);
/* Queue one command (no I/O). */
int redislock__conn_append(redislock__conn *c, int argc,
                           const char *const *argv, const size_t *lens);
/* Queue a command given as NUL-terminated strings, ending with
 * (const char *)NULL (a bare NULL may be an int in a variadic call). */
int redislock__conn_appendv(redislock__conn *c, ...);
/* Send what is queued. */
int redislock__conn_flush(redislock__conn *c, int64_t deadline);
/* Send what the socket takes now: 1 when all is sent, 0 if some is left. */
int redislock__conn_flush_nb(redislock__conn *c);
/* Read the next reply.  REDISLOCK_ETIMEDOUT when the deadline passes first
 * (the connection stays usable: the reply is still pending). */
int redislock__conn_read(redislock__conn *c, int64_t deadline,
                         struct redisReply **out);
/* Read without blocking: 1 and *out when a whole reply is buffered or could
 * be read now, 0 if not yet, or an error. */
int redislock__conn_read_nb(redislock__conn *c, struct redisReply **out);
/* Queue, send and read one command. */
int redislock__conn_command(redislock__conn *c, int64_t deadline, int argc,
                            const char *const *argv, const size_t *lens,
                            struct redisReply **out);
/* Turn an error reply into a code and message (EAUTH for NOAUTH/WRONGPASS,
 * EPROTO otherwise).  what names the command. */
int redislock__conn_reply_error(redislock__conn *c, const struct redisReply *r,
                                const char *what);
/* Mark a connection broken and return an EIO-class error for errno. */
int redislock__conn_io_error(redislock__conn *c, int err, const char *what);

/* ----------------------------------------------------------------- pool.c */
struct redislock__master {
    redislock__endpoint ep;
    redislock_client *client;
    pthread_mutex_t mu;
    redislock__conn *idle;
    int nidle;
    int nopen;              /* open connections, idle or in use */
    unsigned long gen;      /* fork generation of the pooled sockets */
    int no_unblock;         /* CLIENT ID/UNBLOCK not available */
    int int_timeouts;       /* BLPOP wants whole seconds (Redis < 6) */
    int down;               /* a connect failed or a connection was dropped
                               since the last connect: the next is a
                               reconnect (for the log) */
    int failing;            /* the last connect failed (log the next failure
                               at DEBUG only) */
};

int redislock__master_init(redislock__master *m, redislock_client *c,
                           const char *url);
void redislock__master_destroy(redislock__master *m);
/* A live connection, idle or new.  Idle ones that the server has closed
 * meanwhile are dropped without a round trip. */
int redislock__pool_get(redislock__master *m, int64_t deadline,
                        redislock__conn **out);
/* Return a connection; broken or busy ones are closed. */
void redislock__pool_put(redislock__conn *c);
/* fork(): lock every pool mutex before, unlock after (see fork.c). */
void redislock__pool_lock(redislock__master *m);
void redislock__pool_unlock(redislock__master *m);
/* Open connections of a master (idle and in use), for tests and stats. */
int redislock__pool_open_count(redislock__master *m);

/* ----------------------------------------------------------------- fork.c */
/* Generation of this process: bumped in the child after every fork(). */
unsigned long redislock__fork_gen(void);
/* Clients are registered so that the atfork handlers can reach their
 * mutexes and renewal state. */
void redislock__fork_register(redislock_client *c);
void redislock__fork_unregister(redislock_client *c);

/* ---------------------------------------------------------------- renew.c */
typedef struct redislock__renewer redislock__renewer;
#define REDISLOCK__NOT_SCHEDULED ((size_t)-1)

redislock__renewer *redislock__renewer_new(redislock_client *c);
/* Stop the thread (joining it) and detach every handle.  NULL is a no-op. */
void redislock__renewer_free(redislock__renewer *r);
/* Schedule renewals of a lock just acquired (or extended) at sent_us. */
int redislock__renew_add(redislock *lk);
/* Stop renewing lk at once (release); in-flight results are ignored. */
void redislock__renew_remove(redislock *lk);
/* renew_remove, and wait until no renewal or callback uses lk (free).
 * Returns 1 when called from lk's own lost-callback: the renewal thread then
 * destroys lk once the callback returns. */
int redislock__renew_detach(redislock *lk);
/* atfork: take/release the renewer mutex; forget renewals in the child. */
void redislock__renew_fork_prepare(redislock__renewer *r);
void redislock__renew_fork_parent(redislock__renewer *r);
void redislock__renew_fork_child(redislock__renewer *r);

typedef struct redislock__renew_stats {
    uint64_t cycles;        /* batches renewed */
    uint64_t renewals;      /* lock renewals that succeeded */
    uint64_t round_trips;   /* pipelines sent (one per master per batch) */
    uint64_t failures;      /* renewals that failed and were retried */
    uint64_t lost;          /* locks reported lost */
    size_t scheduled;       /* locks being renewed now */
    int threads;            /* 1 while the renewal thread runs */
    int connections;        /* connections the renewer holds */
} redislock__renew_stats;
void redislock__renew_get_stats(redislock_client *c, redislock__renew_stats *st);

/* --------------------------------------------------------------- client.c */
struct redislock_client {
    int connect_timeout_ms;
    int command_timeout_ms;
    int master_timeout_ms;   /* majority mode: per master and step */
    int signal_expire_ms;
    int max_idle;
    char *key_prefix;
    int hash_tag;
    char *username;
    char *password;
    redislock_log_fn log;
    void *log_userdata;
    int log_level;
    size_t nmasters;
    size_t quorum;           /* nmasters / 2 + 1 */
    redislock__master *masters;
    redislock__renewer *renewer;
    redislock_client *reg_next;  /* fork registry */
};

void redislock__log(const redislock_client *c, int level, const char *fmt, ...)
    REDISLOCK__PRINTF(3, 4);
/* now + command timeout, bounded by limit (REDISLOCK__NEVER for none). */
int64_t redislock__io_deadline(const redislock_client *c, int64_t limit);

/* ----------------------------------------------------------- handle state */
struct redislock {
    redislock_client *c;
    char *name;
    size_t namelen;
    char *key;          /* lock:<name> */
    size_t keylen;
    char *sig;          /* lock-signal:<name> */
    size_t siglen;
    char *id;
    size_t idlen;
    int64_t expire_ms;
    int held;           /* atomic: read by redislock_held() from any thread */
    int64_t expires_us; /* atomic: local estimate of the key's expiry,
                           counted from when the last successful acquire,
                           extend or renewal was sent; 0 without expiry */
    int lost_reason;    /* atomic: REDISLOCK_LOST_*, or 0 */
    int uncertain;      /* an acquire's reply was lost: we may hold it */
    char errmsg[512];
    char master_errors[1024]; /* failed masters of the last operation */

    /* auto-renewal; the fields below belong to the renewer's mutex */
    int auto_renew;
    int64_t renew_interval_ms;
    redislock_lost_fn on_lost;
    void *on_lost_userdata;
    int renew_registered;   /* known to the renewer (until freed/detached) */
    size_t heap_idx;        /* REDISLOCK__NOT_SCHEDULED when not scheduled */
    int64_t due_us;         /* next renewal */
    int in_flight;          /* being renewed, or its callback running */
    unsigned renew_gen;     /* bumped by every acquire and release: results
                               of an older renewal are ignored */
    int backoff_ms;         /* after failed renewals */
    int free_pending;       /* freed from its own callback */
    redislock *renew_next, *renew_prev; /* all registered handles */
};

/* ----------------------------------------------------------------- keys.c */
/* The key of lock name: prefix + "lock:" (or "lock-signal:") + name, with
 * braces around name in the hash-tag layout.  Allocated, NUL-terminated. */
char *redislock__key(const redislock_client *c, int signal, const char *name,
                     size_t namelen, size_t *outlen);
/* The SCAN pattern matching every lock key of the client. */
char *redislock__key_pattern(const redislock_client *c, size_t *outlen);
/* The SCAN pattern matching the lock keys whose names match glob (SCAN's
 * glob syntax; NULL or "" for every name). */
char *redislock__name_pattern(const redislock_client *c, const char *glob,
                              size_t *outlen);
/* Where the name starts in a lock key (after the prefix, "lock:" and, in
 * the hash-tag layout, "{"). */
size_t redislock__name_offset(const redislock_client *c);
/* The signal key of a lock key found by SCAN. */
char *redislock__signal_of(const redislock_client *c, const char *key,
                           size_t keylen, size_t *outlen);

/* -------------------------------------------------------------- scripts.c */
typedef struct redislock__script {
    const char *name;
    const char *body;
    char sha[41];
} redislock__script;

extern redislock__script redislock__script_acquire;
extern redislock__script redislock__script_release;
extern redislock__script redislock__script_extend;
extern redislock__script redislock__script_status;
extern redislock__script redislock__script_reset;
extern redislock__script redislock__script_reset_many;
extern redislock__script redislock__script_signal;
extern redislock__script redislock__script_renew;
extern redislock__script redislock__script_list;

/* A script call, built as the whole command
 *   EVALSHA sha numkeys key... arg...
 * so that it can be resent as EVAL body ... after NOSCRIPT.  Builder errors
 * (out of memory) are kept and reported by redislock__call_append(). */
typedef struct redislock__call {
    const redislock__script *script;
    int nkeys;
    int argc;                 /* words so far, the 3 leading ones included */
    int cap;
    int oom;
    const char **argv;
    size_t *lens;
    const char *inl_argv[12]; /* storage for small calls */
    size_t inl_lens[12];
    char nums[6][24];         /* numkeys and formatted integer arguments */
    int nnum;
} redislock__call;

void redislock__call_init(redislock__call *call, const redislock__script *s);
void redislock__call_free(redislock__call *call);
/* Keys first, then arguments.  The bytes are not copied: keep them alive. */
void redislock__call_key(redislock__call *call, const char *k, size_t len);
void redislock__call_arg(redislock__call *call, const char *a, size_t len);
void redislock__call_int(redislock__call *call, long long v);
/* Queue EVALSHA (or EVAL with the body) for the call (no I/O). */
int redislock__call_append(redislock__conn *c, redislock__call *call);
int redislock__call_append_eval(redislock__conn *c, redislock__call *call);
/* Read the reply of the one call in flight on c; on NOSCRIPT resend it as
 * EVAL and read again.  An error reply becomes an error code here. */
int redislock__call_reply(redislock__conn *c, redislock__call *call,
                          int64_t deadline, struct redisReply **out);
/* Append, send and read (with the NOSCRIPT fallback). */
int redislock__call_run(redislock__conn *c, redislock__call *call,
                        int64_t deadline, struct redisReply **out);
/* Send n calls in one pipeline and read their replies, error replies
 * included, into out[0..n).  Calls that meet NOSCRIPT are redone alone after
 * the pipeline drained.  On an I/O error the replies read so far are in out
 * (the rest NULL); the caller frees what is not NULL. */
int redislock__call_pipeline(redislock__conn *c, redislock__call *const *calls,
                             size_t n, int64_t deadline, struct redisReply **out);
int redislock__is_noscript(const struct redisReply *r);
/* The SHA1 hex digest of data (41 bytes with NUL). */
void redislock__sha1_hex(const void *data, size_t len, char out[41]);

/* ------------------------------------------------------------------ fan.c */
#define REDISLOCK__MAX_MASTERS 31
#define REDISLOCK__ERRLEN 256

/* The same calls on every master at once (see fan.c). */
typedef struct redislock__fanout {
    size_t n;                 /* masters */
    size_t k;                 /* calls per master */
    redislock__conn *conns[REDISLOCK__MAX_MASTERS]; /* NULL: not connected */
    int rc[REDISLOCK__MAX_MASTERS];                 /* per master: 0 or error */
    char err[REDISLOCK__MAX_MASTERS][REDISLOCK__ERRLEN];
    struct redisReply **replies; /* [master * k + call], error replies too */
    size_t *map;              /* scratch */
} redislock__fanout;

int redislock__fan_init(redislock__fanout *f, size_t n, size_t k);
/* Free the replies and clear the per-master results (not the conns). */
void redislock__fan_reset(redislock__fanout *f);
/* Put the connections back and free the replies. */
void redislock__fan_free(redislock__fanout *f);
/* Send the k calls to every master whose rc is 0 and collect the replies
 * until deadline.  A master without connection, or failing, gets rc/err. */
void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline);
/* Check out a connection for every master that has none and rc 0, all by
 * one deadline. */
void redislock__fan_connect(redislock__fanout *f, redislock_client *c,
                            int64_t deadline);
/* Return every connection to its pool (broken ones are closed). */
void redislock__fan_put(redislock__fanout *f);
/* Init f and run one call on every master; the caller reads f->rc, f->err
 * and f->replies, then calls redislock__fan_free().  Each step (connect,
 * reply) is bounded by the connect/command timeouts with one master, by the
 * per-master timeout with several. */
int redislock__fan_once(redislock__fanout *f, redislock_client *c,
                        redislock__call *call);

/* ---------------------------------------------------------------- handle.c */
/* Free a handle's memory (no renewal bookkeeping). */
void redislock__lock_destroy(redislock *lk);
/* Mark a lock held until expires_us (0: no expiry). */
void redislock__set_held(redislock *lk, int64_t expires_us);
void redislock__clear_held(redislock *lk);
/* Mark a lock lost; returns 1 the first time. */
int redislock__set_lost(redislock *lk, int reason);
/* The local expiry of a lock granted by a round sent at sent_us: the
 * expiry, less (with several masters) a clock drift allowance of 1% + 2 ms.
 * 0 for a lock without expiry. */
int64_t redislock__valid_until(const redislock_client *c, int64_t sent_us,
                               int64_t expire_ms);
/* Keep the outcome of an API call in the handle's message. */
int redislock__finish(redislock *lk, int rc);
const char *redislock__qname(const redislock *lk, char *buf, size_t len);
void redislock__copy_owner(char *dst, const struct redisReply *r, int *truncated);
/* Keep the per-master failures of an operation in the handle. */
void redislock__note_masters(redislock *lk, const redislock__fanout *f);
/* The first failures of a fan-out, "; "-separated, for messages. */
const char *redislock__fan_summary(const redislock__fanout *f, char *buf, size_t len);

/* --------------------------------------------------------------- ownerid.c */
/* Random owner id: prefix + 24 base64 characters of 18 random bytes. */
int redislock__random_id(const char *prefix, char **out);
/* 0 if id is a valid owner id (printable ASCII, no space, not empty,
 * at most REDISLOCK_ID_MAX bytes). */
int redislock__check_id(const char *id, const char *what);
/* A random number for back-off jitter (not for ids). */
uint32_t redislock__random_u32(void);

/* -------------------------------------------------------------- acquire.c */
int redislock__acquire(redislock *lk, int64_t timeout_ms);

/* ----------------------------------------------------------------- wait.c */
/* Outcomes of redislock__wait_signal(). */
enum {
    REDISLOCK__WAIT_WOKEN = 1,   /* a wake-up was popped */
    REDISLOCK__WAIT_EXPIRED = 0  /* "until" passed without one */
};

/* Block on the signal key on every master of f that has a connection and
 * rc 0, until a wake-up is popped on any of them or the monotonic time
 * "until" passes.  The client times the wait itself (the server checks
 * BLPOP timeouts only every 1000/hz ms); the BLPOPs still pending then are
 * cancelled with CLIENT UNBLOCK from helper connections, and a wake-up that
 * raced with the cancellation is still reported: popped[i] is set for every
 * master whose wake-up was consumed.  Masters that fail get rc/err.  Returns
 * WOKEN, EXPIRED, or REDISLOCK_EIO when every connection failed; returns by
 * until + min(command timeout, 250 ms). */
int redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                            size_t sigkeylen, int64_t until, int *popped);
/* Push a wake-up back (LPUSH + PEXPIRE) after popping one that will not be
 * used, so that the next waiter is not left asleep.  Best effort. */
void redislock__hand_back(redislock__master *m, const char *sigkey,
                          size_t sigkeylen);
/* The extra time an operation may take past the caller's deadline to
 * collect a reply: min(command timeout, 250 ms), in microseconds. */
int64_t redislock__slack_us(const redislock_client *c);

#endif /* REDISLOCK_INTERNAL_H */
