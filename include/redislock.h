/*
 * libredislock: distributed locks on Redis.
 *
 * One lock is a pair of keys on a Redis master: "lock:<name>" holds the owner
 * id of the holder, "lock-signal:<name>" is a list used only to wake one waiter
 * when the lock is released.  Waiters block in BLPOP; they are woken by the
 * release, never by polling.  The default key layout and the scripts are those
 * of python-redis-lock 4.x, so C and Python processes can share a lock.
 *
 * Thread safety (the contract, stated once here and repeated where it differs):
 *  - redislock_client: fully thread-safe.  One client serves every thread of a
 *    process; it keeps a pool of connections internally.
 *  - redislock (a lock handle): may be used from any thread, but by one thread
 *    at a time.  Exceptions: redislock_held(), redislock_name(),
 *    redislock_id(), redislock_token() and redislock_heartbeat() may be
 *    called at any time from any thread, also while another thread is
 *    inside acquire or release on the same handle.
 *  - redislock_strerror(), redislock_err_name(), redislock_version*(): pure.
 *  - redislock_last_error(): per thread.
 *  - redislock_replace_allocator(): call before any other function.
 *
 * Errors: every function that can fail returns 0 (REDISLOCK_OK) or one of the
 * negative REDISLOCK_E* codes below, and leaves a one-line message naming the
 * cause (and the server address for I/O errors) in redislock_last_error() of
 * the calling thread, and for handle functions also in redislock_errmsg().
 */
#ifndef REDISLOCK_H
#define REDISLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(REDISLOCK_BUILDING) && defined(__GNUC__)
#define REDISLOCK_EXPORT __attribute__((visibility("default")))
#else
#define REDISLOCK_EXPORT
#endif

/* The result of these calls says whether the lock is held: ignoring it is a
 * bug (GCC warns even about a cast to void: test the result). */
#if defined(__GNUC__)
#define REDISLOCK_NODISCARD __attribute__((warn_unused_result))
#else
#define REDISLOCK_NODISCARD
#endif

/* ------------------------------------------------------------------ version */

#define REDISLOCK_VERSION_MAJOR 0
#define REDISLOCK_VERSION_MINOR 1
#define REDISLOCK_VERSION_PATCH 0
#define REDISLOCK_VERSION_HEX \
    ((REDISLOCK_VERSION_MAJOR << 16) | (REDISLOCK_VERSION_MINOR << 8) | \
     REDISLOCK_VERSION_PATCH)

/* The version of the library actually linked, as REDISLOCK_VERSION_HEX. */
REDISLOCK_EXPORT unsigned redislock_version(void);
/* The same as "MAJOR.MINOR.PATCH"; a static string. */
REDISLOCK_EXPORT const char *redislock_version_string(void);
/* The TLS library this build uses for rediss:// URLs, as it names itself
 * (e.g. "OpenSSL 3.0.19 27 Jan 2026"), or NULL when the library was built
 * without TLS (rediss:// then fails with REDISLOCK_ENOTSUP).  Static. */
REDISLOCK_EXPORT const char *redislock_tls_version(void);

/* ------------------------------------------------------------------- errors */

/* XX(name, value, message).  Codes are negative and stable. */
#define REDISLOCK_ERRNO_MAP(XX)                                              \
    XX(EINVAL, -1, "invalid argument")                                       \
    XX(EBUSY, -2, "lock is held by another owner")                           \
    XX(ETIMEDOUT, -3, "timed out waiting for the lock")                      \
    XX(ENOTHELD, -4, "lock is not held by this owner")                       \
    XX(ENOTEXPIRABLE, -5, "lock has no expiry")                              \
    XX(EALREADY, -6, "lock is already held by this owner")                   \
    XX(EIO, -7, "connection error")                                          \
    XX(EPROTO, -8, "server error or unexpected reply")                       \
    XX(EAUTH, -9, "authentication failed")                                   \
    XX(ENOMEM, -10, "out of memory")                                         \
    XX(ENOTSUP, -11, "not supported")                                        \
    XX(ENOQUORUM, -12, "no quorum of masters")                              \
    XX(ETLS, -13, "TLS setup, handshake or certificate verification failed") \
    XX(ECANCELED, -14, "the wait was cancelled")                            \
    XX(ENOREPLICAS, -15, "too few replicas acknowledged the lock in time")     \
    XX(ECLUSTERDOWN, -16, "the cluster is down (CLUSTERDOWN)")

typedef enum redislock_errno {
    REDISLOCK_OK = 0,
#define REDISLOCK__XX(name, value, msg) REDISLOCK_##name = (value),
    REDISLOCK_ERRNO_MAP(REDISLOCK__XX)
#undef REDISLOCK__XX
} redislock_errno;

/* A static one-line description of an error code ("success" for 0). */
REDISLOCK_EXPORT const char *redislock_strerror(int err);
/* The code's name without prefix, e.g. "ETIMEDOUT"; "UNKNOWN" if none. */
REDISLOCK_EXPORT const char *redislock_err_name(int err);
/* The detail message of the last failed call in this thread ("" if none).
 * The string belongs to the library and stays valid until the next call. */
REDISLOCK_EXPORT const char *redislock_last_error(void);

/* --------------------------------------------------------------- allocator */

/* Replace the allocator used by libredislock (hiredis keeps its own; this
 * library never changes hiredis' global allocator).  Must be called before any
 * other function, and the functions must be thread-safe.  Returns
 * REDISLOCK_EINVAL if a function is NULL. */
REDISLOCK_EXPORT int redislock_replace_allocator(
    void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
    void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

/* ------------------------------------------------------------------ client */

typedef struct redislock_client redislock_client;

enum redislock_log_level {
    REDISLOCK_LOG_ERROR = 0,
    REDISLOCK_LOG_WARN = 1,
    REDISLOCK_LOG_INFO = 2,
    REDISLOCK_LOG_DEBUG = 3
};

/* A log line (no trailing newline).  Called from whichever thread did the
 * work, possibly several at once: it must be thread-safe and must not call
 * back into the library with the same client. */
typedef void (*redislock_log_fn)(void *userdata, int level, const char *msg);

/* Client options.  Zero (or NULL) in any field means "the default", so both
 *   redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
 * and a designated initializer { .command_timeout_ms = 500 } are fine.
 * Fields may be added at the end in later versions; "version" tells which
 * layout the caller was compiled with (0 is the same as 1): the library
 * reads only the fields of that version and takes defaults for the rest.
 * Version 1 had int milliseconds and no clock_drift_ppm; since version 2
 * every duration in the API is an int64_t of milliseconds.  Version 3 added
 * the TLS fields (used only for rediss:// masters), version 4 those of
 * Sentinel and replication (min_replicas). */
typedef struct redislock_client_options {
    unsigned version;
    int64_t connect_timeout_ms; /* TCP/unix connect + handshake; default 2000 */
    int64_t command_timeout_ms; /* wait for one reply; default 2000 */
    const char *key_prefix;   /* prepended to "lock:" and "lock-signal:";
                                 default "" (python-redis-lock compatible) */
    int hash_tag;             /* 1: keys "lock:{name}", "lock-signal:{name}"
                                 (one Redis Cluster slot; not compatible with
                                 python-redis-lock).  Default 0. */
    int64_t signal_expire_ms; /* expiry of a wake-up; default 1000 */
    int max_idle_connections; /* idle connections kept per master; default 8 */
    const char *username;     /* ACL user; overrides the URL's */
    const char *password;     /* overrides the URL's */
    redislock_log_fn log;     /* default: no logging */
    void *log_userdata;
    int log_level;            /* highest level passed to log; default WARN */
    int64_t master_timeout_ms; /* majority mode: the longest one master may
                                  take to answer one step; default 50 */
    /* Version 2. */
    int clock_drift_ppm;      /* how much faster a server's clock may run than
                                 this host's, in parts per million: a lock's
                                 local validity is its TTL less this share of
                                 it and 2 ms.  Default 10000 (1%); -1: only
                                 the 2 ms (see redislock(3), "Clocks") */
    /* Version 3: TLS, for rediss:// masters.  The server's certificate and
     * name are verified by default, against the system's trust store. */
    const char *tls_ca_file;  /* PEM file of the CAs to trust instead of the
                                 system's store */
    const char *tls_ca_dir;   /* directory of hashed CA certificates
                                 (openssl rehash), instead of the store */
    const char *tls_cert_file; /* client certificate (PEM, may hold the
                                  chain) for servers that require one */
    const char *tls_key_file; /* its private key (PEM); default: the key
                                 in tls_cert_file */
    const char *tls_server_name; /* the name sent in SNI and checked against
                                    the certificate; default: the URL's host
                                    (an IP address is checked against the
                                    certificate's IP entries, without SNI) */
    int tls_insecure;         /* 1: do not verify the server's certificate
                                 or name (logged at WARN); for tests only */
    /* Version 4: Sentinel (redis-sentinel:// URLs) and replication. */
    const char *sentinel_username; /* the sentinels' own ACL user (the URL's
                                      credentials are the master's) */
    const char *sentinel_password; /* the sentinels' own password */
    int64_t sentinel_timeout_ms; /* connect + answer of one sentinel during
                                    discovery; default 300 */
    int min_replicas;         /* after every write of a lock (acquire,
                                 extend, renewal), WAIT until this many
                                 replicas have it, or fail (see
                                 REDISLOCK_ENOREPLICAS); default 0: no WAIT.
                                 A URL's ?min_replicas=N wins */
    int64_t wait_ms;          /* how long that WAIT waits; default 50 (a
                                 URL's ?wait_ms=N wins) */
} redislock_client_options;

#define REDISLOCK_CLIENT_OPTIONS_VERSION 4
#define REDISLOCK_CLIENT_OPTIONS_INIT { REDISLOCK_CLIENT_OPTIONS_VERSION, 0, 0, \
        NULL, 0, 0, 0, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, \
        NULL, 0, NULL, NULL, 0, 0, 0 }

/* Create a client for one Redis master.  The URL is one of
 *   redis://[[user][:password]@]host[:port][/db]   (port 6379, db 0 default)
 *   rediss://[[user][:password]@]host[:port][/db]  (the same over TLS)
 *   unix:///path/to/redis.sock[?db=N]               (also redis+unix://)
 * with the scheme in any case.  A user without a password takes the
 * options' password, or logs in with an empty one (an ACL user with
 * nopass).  An IPv6 host is written in brackets: redis://[::1]:6380.  Resolving a host
 * name is not bounded by connect_timeout_ms (see redislock_client_new(3)).
 * rediss:// fails with REDISLOCK_ENOTSUP when the library was built without
 * TLS (redislock_tls_version() is NULL); with TLS, the CA, certificate and
 * key files of the options are loaded here (REDISLOCK_ETLS if one cannot
 * be).  No connection is made here; the first use connects (TLS handshake,
 * then AUTH and SELECT on every new connection).
 * On success *out owns a client to be freed with redislock_client_free(). */
REDISLOCK_EXPORT int redislock_client_new(redislock_client **out,
                                          const char *url,
                                          const redislock_client_options *opts);

/* Create a client for n independent Redis masters: majority mode (the
 * Redlock algorithm).  Every operation goes to all masters at once; a lock is
 * held when a quorum of n/2+1 masters granted it within its validity (the
 * expiry less the time the round took and a drift allowance).  Locks made on
 * such a client need an expiry.  n == 1 is the same as redislock_client_new().
 * Two URLs naming the same server (host and port, or socket path, whatever
 * the db) are refused with REDISLOCK_EINVAL.
 * Fencing tokens cannot be made monotonic in this mode (see redislock(3)). */
REDISLOCK_EXPORT int redislock_client_new_multi(redislock_client **out,
                                                const char *const *urls, size_t n,
                                                const redislock_client_options *opts);

/* Shut the client down: every acquire waiting on it returns
 * REDISLOCK_ECANCELED within about one round trip, and within about 25 ms
 * when a server hangs (a lock granted as it ended is released again), and
 * every later acquire fails at once with
 * REDISLOCK_ECANCELED.  Other calls (release, extend, query, reset) go on
 * working, so that a service can release what it holds and then free the
 * client.  Callable from any thread, and async-signal-safe (it sets a flag
 * and writes to an eventfd).  0, or REDISLOCK_EINVAL for NULL. */
REDISLOCK_EXPORT int redislock_client_shutdown(redislock_client *c);

/* Free a client, stop its renewal thread and close its connections.  NULL
 * is a no-op.  Handles made from it should be freed first; a handle still
 * alive may only be freed afterwards (its renewal has stopped). */
REDISLOCK_EXPORT void redislock_client_free(redislock_client *c);

/* ------------------------------------------------------------ statistics */

/* A duration histogram has log2 buckets: bucket i counts the durations of
 * at most 2^i ms that did not fit the bucket before (bucket 0: up to 1 ms;
 * bucket 24: up to 2^24 ms, about 4.7 hours); the last bucket counts the
 * longer ones. */
#define REDISLOCK_STATS_BUCKETS 26
/* lost[] is indexed by REDISLOCK_LOST_* reason (0: none), with room for
 * reasons to come. */
#define REDISLOCK_STATS_LOST_REASONS 16

/* What a client has done since it was made (redislock_client_stats()).
 * Counters only grow; "now" marks the two gauges.  Fields are added at
 * the end; "version" tells which layout the caller was compiled with (0 is
 * the same as 1): set it, e.g.
 *   redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
 * and the library fills the fields of that version. */
typedef struct redislock_stats {
    unsigned version;
    /* acquire calls (redislock_acquire(), redislock_try_acquire()) that got
     * past checking their arguments, by result */
    uint64_t acquired;         /* REDISLOCK_OK */
    uint64_t already;          /* REDISLOCK_EALREADY */
    uint64_t busy;             /* REDISLOCK_EBUSY: a try found it held */
    uint64_t timeouts;         /* REDISLOCK_ETIMEDOUT */
    uint64_t cancels;          /* REDISLOCK_ECANCELED */
    uint64_t errors;           /* any other error */
    /* acquire calls that waited for a wake-up at least once, and how long
     * each call took in all, whatever its result */
    uint64_t waits;            /* the sum of wait_buckets */
    uint64_t wait_us;
    uint64_t wait_buckets[REDISLOCK_STATS_BUCKETS];
    /* holds that ended (released, or reported lost by the renewal), from
     * the return of the acquire that got the lock to that end; a handle
     * freed while holding leaves its lock held until it expires, uncounted */
    uint64_t holds;            /* the sum of hold_buckets */
    uint64_t hold_us;
    uint64_t hold_buckets[REDISLOCK_STATS_BUCKETS];
    uint64_t lost[REDISLOCK_STATS_LOST_REASONS]; /* by REDISLOCK_LOST_* */
    /* connections to the masters */
    uint64_t connects;         /* opened */
    uint64_t reconnects;       /* of those, after a failed connect or a
                                  dropped connection */
    uint64_t connect_failures; /* connects that failed */
    uint64_t connections;      /* open now, idle or in use */
    /* auto-renewal */
    uint64_t renewals;         /* lock renewals that succeeded */
    uint64_t renewal_failures; /* renewals that failed (and were retried,
                                  or the lock reported lost) */
    uint64_t renewal_round_trips; /* pipelines sent: one per master and
                                     batch of due locks */
    uint64_t renewing;         /* locks being auto-renewed now */
    /* Sentinel failovers followed (a redis-sentinel:// service's master
     * moved), and Redis Cluster -MOVED redirects followed */
    uint64_t failovers;
    uint64_t redirects;
} redislock_stats;

#define REDISLOCK_STATS_VERSION 1

/* A snapshot of c's counters into *st (st->version set by the caller).
 * Cheap and lock-free for the threads that count: each counter is read
 * atomically, so each is exact and never goes back between snapshots; a
 * histogram's count is the sum of its buckets; counters of events that
 * happen while the snapshot is taken may be a step apart.  Thread-safe.
 * 0, or REDISLOCK_EINVAL (NULL, or a version newer than this library). */
REDISLOCK_EXPORT int redislock_client_stats(redislock_client *c, redislock_stats *st);

/* Write st in the Prometheus text exposition format (version 0.0.4), for a
 * service to serve on its own /metrics: metric names start with
 * "redislock_", durations are in seconds.  labels (NULL or "" for none) is
 * added to every sample, as 'name="value"' pairs separated by commas, e.g.
 * 'client="billing"' (a value escapes \, " and newline with a backslash).
 * Like snprintf(): writes at most size bytes, NUL included, and returns the
 * length of the whole text (without the NUL), so a return >= size means it
 * was cut; REDISLOCK_EINVAL for a NULL st, a buf NULL with size > 0, or
 * labels that are not well formed.  Pure: any thread. */
REDISLOCK_EXPORT int redislock_stats_prometheus(const redislock_stats *st, const char *labels,
                                                char *buf, size_t size);

/* --------------------------------------------------------------- a lock */

typedef struct redislock redislock;

/* Why a held lock was lost (see redislock_options.on_lost). */
enum redislock_lost_reason {
    REDISLOCK_LOST_GONE = 1,        /* the key vanished: it expired or was reset */
    REDISLOCK_LOST_OTHER_OWNER = 2, /* another owner holds it now */
    REDISLOCK_LOST_EXPIRED = 3,     /* its expiry passed before a renewal
                                       succeeded (server unreachable or hung) */
    REDISLOCK_LOST_NO_QUORUM = 4,   /* majority mode: fewer than a quorum of
                                       masters renewed it */
    REDISLOCK_LOST_MAX_HOLD = 5,    /* held for max_hold_ms: renewal stopped;
                                       the key expires by itself */
    REDISLOCK_LOST_NO_HEARTBEAT = 6, /* no redislock_heartbeat() within
                                       heartbeat_ms: renewal stopped; the key
                                       expires by itself */
    REDISLOCK_LOST_NO_REPLICAS = 7  /* min_replicas: a renewal reached fewer
                                       replicas than that in wait_ms (a
                                       failover could lose the lock) */
};

/* Called once when auto-renewal finds a held lock lost.  It runs on the
 * client's renewal thread, with no library lock held: it may call
 * redislock_held(), redislock_lost_reason(), redislock_name(),
 * redislock_id() and redislock_release() or redislock_free() on this handle,
 * and should return quickly (e.g. set a flag, signal the worker thread):
 * every other renewal of the client waits for it.  It must not wait for
 * another thread that is itself inside the library.  A release or free from
 * the callback is a use of the handle like any other: only when no other
 * thread is using the handle at that moment (one thread at a time). */
typedef void (*redislock_lost_fn)(redislock *lk, int reason, void *userdata);

/* Lock options; zero means the default, as for the client options.
 * Fields are added at the end; "version" tells which layout the caller was
 * compiled with (REDISLOCK_OPTIONS_INIT sets it; 0 is the same as 1): the
 * library reads only the fields of that version, so a designated
 * initializer must set .version = REDISLOCK_OPTIONS_VERSION to use the
 * fields of version 2. */
typedef struct redislock_options {
    unsigned version;
    int64_t expire_ms;       /* lock expiry; 0 = never expires (the default) */
    const char *id;          /* owner id, printable ASCII without spaces,
                                at most 255 bytes; default: random */
    const char *id_prefix;   /* prefix of the random owner id, one per
                                service and host, e.g. "billing@hostA:";
                                lets redislock_reset_all() clear that owner's
                                locks; ignored when id is set */
    int auto_renew;          /* 1: while held, push the expiry back every
                                renew_interval_ms (needs expire_ms > 0) */
    int64_t renew_interval_ms; /* default expire_ms / 3, so that one missed
                                  renewal still leaves time for another */
    redislock_lost_fn on_lost; /* optional */
    void *on_lost_userdata;
    /* Version 2. */
    int fencing;             /* 1: every grant also hands out a fencing token
                                (redislock_token()), larger than any earlier
                                grant's of this lock.  One master only:
                                majority mode answers REDISLOCK_ENOTSUP */
    int64_t max_hold_ms;     /* with auto_renew: no renewal after acquire +
                                max_hold_ms; the lock is reported lost then
                                (REDISLOCK_LOST_MAX_HOLD) and its key expires
                                by itself.  0: no cap */
    int64_t heartbeat_ms;    /* with auto_renew: renew only while
                                redislock_heartbeat() was called within the
                                last heartbeat_ms, else report the lock lost
                                (REDISLOCK_LOST_NO_HEARTBEAT).  0: none */
    /* Version 3: the kinds of lock (see redislock(3), "Lock kinds").  Both
     * queued kinds need expire_ms > 0 and a single master (majority mode:
     * REDISLOCK_ENOTSUP). */
    int fair;                /* 1: a fair lock: still lock:<name> (held by
                                one owner, seen as held by python-redis-lock
                                and by mutex handles), but its waiters are
                                served strictly in the order they came, a
                                release hands it to the first of them.
                                0: the mutex (the default) */
    int permits;             /* N >= 1: a semaphore of N permits: at most N
                                owners hold it at once, each a permit
                                leased for expire_ms; waiters are served in
                                order (fair is implied).  All handles of one
                                semaphore must use the same N while it has
                                holders or waiters (REDISLOCK_EINVAL names
                                the server's).  0: a lock */
    int64_t waiter_lease_ms; /* fair lock, semaphore: a waiter keeps its place
                                in line this long without a word (it renews
                                it every third of that while it waits: the
                                only commands of a long wait), so that one
                                that died leaves the line; default 15000 */
    int64_t grant_lease_ms;  /* fair lock, semaphore: a release hands the
                                lock (or a permit) to the first waiter for
                                this long, until that waiter takes it for
                                expire_ms (at once, unless it died or
                                stalled); default 1000 */
} redislock_options;

#define REDISLOCK_OPTIONS_VERSION 3
#define REDISLOCK_OPTIONS_INIT { REDISLOCK_OPTIONS_VERSION, 0, NULL, NULL, 0, 0, \
        NULL, NULL, 0, 0, 0, 0, 0, 0, 0 }

/* The longest owner id and lock name accepted. */
#define REDISLOCK_ID_MAX 255
#define REDISLOCK_NAME_MAX 4096

/* Make a handle for the lock called name (any bytes but NUL, at most
 * REDISLOCK_NAME_MAX) on client c.  The owner id is random (24 base64
 * characters from getrandom()) unless opts->id is given.  No I/O.
 * Free with redislock_free(). */
REDISLOCK_EXPORT int redislock_new(redislock **out, redislock_client *c,
                                   const char *name,
                                   const redislock_options *opts);

/* Free a handle.  It does not release the lock (use redislock_release());
 * a lock left held stays held until it expires or is reset, and its
 * auto-renewal stops.  NULL is a no-op.  A handle may also be freed after its
 * client (nothing else may be done with it then). */
REDISLOCK_EXPORT void redislock_free(redislock *lk);

/* Acquire the lock.  timeout_ms: -1 waits for ever, 0 tries once (the same as
 * redislock_try_acquire()), > 0 waits at most that long.  A waiter blocks in
 * BLPOP on the signal key and is woken by the holder's release, or when the
 * holder's expiry runs out; it never polls.  Returns REDISLOCK_OK,
 * REDISLOCK_EBUSY (timeout 0), REDISLOCK_ETIMEDOUT, REDISLOCK_EALREADY (this
 * owner id holds it already, valid for the key's remaining TTL), or an I/O
 * or server error (also when the server did not answer in time: ETIMEDOUT
 * only means another owner held it until the timeout).  Signals delivered to
 * the thread do not end the wait early.  The call returns no later than the
 * timeout plus min(command timeout, 250 ms), also when the server hangs; for
 * a try (timeout 0) the command timeout counts as the timeout.  Waiters are
 * served in the order they blocked: a woken waiter's acquire runs on the
 * server at the wake-up, before the releaser can ask again (see
 * redislock(3), "Fairness"). */
REDISLOCK_EXPORT REDISLOCK_NODISCARD int redislock_acquire(redislock *lk,
                                                           int64_t timeout_ms);

/* Make an acquire of lk that is waiting return REDISLOCK_ECANCELED within
 * about one round trip (about 25 ms when a server hangs), leaving no
 * lock taken (a grant that raced with the cancel is released again).  If no
 * acquire is waiting, the next one on lk returns REDISLOCK_ECANCELED at
 * once: a cancel is never lost between two calls; answering it clears it.
 * Callable from any thread, and async-signal-safe (it sets a flag and
 * writes to the eventfd that the wait polls); in a child after fork() it
 * never reaches the parent's wait.  0, or REDISLOCK_EINVAL for NULL. */
REDISLOCK_EXPORT int redislock_cancel(redislock *lk);

/* Try once, in one round trip: REDISLOCK_OK or REDISLOCK_EBUSY. */
REDISLOCK_EXPORT REDISLOCK_NODISCARD int redislock_try_acquire(redislock *lk);

/* Release the lock if this owner id holds it, and wake exactly one waiter.
 * Stops its auto-renewal at once, also when called from another thread than
 * the one that acquired it.  REDISLOCK_ENOTHELD when the lock expired, was
 * reset, is held by another owner, was never acquired, or was reported lost
 * (another owner's lock is left untouched). */
REDISLOCK_EXPORT int redislock_release(redislock *lk);

/* Set the expiry of a held lock to expire_ms from now (0: the handle's
 * expire_ms); this replaces the remaining time (redis-py's extend adds to
 * it).  With auto_renew the renewal resumes from this call; a renewal never
 * shortens the TTL an extend set.  REDISLOCK_ENOTHELD if this owner id does
 * not hold it, REDISLOCK_ENOTEXPIRABLE if it was acquired without expiry. */
REDISLOCK_EXPORT REDISLOCK_NODISCARD int redislock_extend(redislock *lk,
                                                          int64_t expire_ms);

/* What the server says about a lock (one round trip).  For a semaphore:
 * held when any owner holds a permit; the owner and expiry are this
 * handle's own permit when it holds one, else those of the holder whose
 * lease ends first (redislock_query_queue() counts them). */
typedef struct redislock_info {
    int held;        /* 1 if any owner holds it */
    int mine;        /* 1 if this handle's owner id holds it */
    int64_t ttl_ms;  /* remaining expiry; -1 if it never expires; 0 if free */
    char owner[REDISLOCK_ID_MAX + 1]; /* holder's id, "" if free; truncated
                                         (and owner_truncated set) if longer */
    int owner_truncated;
} redislock_info;

REDISLOCK_EXPORT int redislock_query(redislock *lk, redislock_info *info);

/* The kinds of lock (redislock_options.fair and .permits). */
enum redislock_kind {
    REDISLOCK_KIND_MUTEX = 0,    /* python-redis-lock's lock */
    REDISLOCK_KIND_FAIR = 1,     /* a lock whose waiters are served in order */
    REDISLOCK_KIND_SEMAPHORE = 2 /* at most N holders, waiters in order */
};

/* Holders and queue of a lock (redislock_query_queue()).  Fields are added
 * at the end; set version, e.g.
 *   redislock_queue_info qi = { .version = REDISLOCK_QUEUE_INFO_VERSION };
 * and the library fills the fields of that version. */
typedef struct redislock_queue_info {
    unsigned version;
    int kind;          /* the handle's REDISLOCK_KIND_* */
    int64_t holders;   /* owners that hold it now (a permit each) */
    int64_t permits;   /* how many may hold it at once: 1 for a lock; for a
                          semaphore the server's N while it has holders or
                          waiters, else the handle's */
    int64_t queued;    /* waiters in its queue (a waiter that died counts
                          until its waiter lease ends); 0 for a mutex */
    int64_t position;  /* this handle's owner's place in that queue (1:
                          served next); 0 when it is not queued */
} redislock_queue_info;

#define REDISLOCK_QUEUE_INFO_VERSION 1

/* What the server says about the holders and the waiters of lk's lock
 * (one round trip): any kind, on one master or in majority mode (a
 * mutex: holders 0 or 1, as redislock_query() finds it; queued 0).  Also
 * the owner, its expiry and whether it is this handle's, in *info when
 * info is not NULL (as redislock_query(); for a semaphore: this handle's
 * own permit when it holds one, else the holder whose lease ends first).
 * 0, or REDISLOCK_EINVAL (NULL lk or qi, a version newer than this
 * library), or an error of the server. */
REDISLOCK_EXPORT int redislock_query_queue(redislock *lk, redislock_queue_info *qi,
                                           redislock_info *info);

/* Whether this handle holds the lock as far as it knows, without a round
 * trip: acquired, not released, not reported lost, and (for a lock with
 * expiry) not past its local expiry: the TTL that the last successful
 * acquire, extend or renewal set (or, for an "already mine" answer, found),
 * counted from when its request was sent, less the clock drift allowance
 * (1% + 2 ms by default).  Never later than the server's expiry, given the
 * clock assumptions of redislock(3).  1 or 0.  Safe from any thread. */
REDISLOCK_EXPORT int redislock_held(const redislock *lk);

/* The reason the lock was last reported lost (REDISLOCK_LOST_*), or 0.
 * Cleared by the next successful acquire.  Safe from any thread. */
REDISLOCK_EXPORT int redislock_lost_reason(const redislock *lk);
/* A static description of a REDISLOCK_LOST_* reason. */
REDISLOCK_EXPORT const char *redislock_lost_reason_string(int reason);

/* How long the lock stays valid as far as this handle knows: ms until the
 * local expiry (see redislock_held()), -1 for a lock without expiry, 0 when
 * not held.  In majority mode this is the Redlock validity.  Safe from any
 * thread. */
REDISLOCK_EXPORT int64_t redislock_validity_ms(const redislock *lk);

/* The fencing token of the hold that the last successful acquire of this
 * handle obtained (fencing on): a number larger than that of every earlier
 * grant of the lock, for a resource to reject writes that carry a smaller
 * one (see redislock_token(3) for what a resource must check and which
 * failures can make a token repeat).  0 when fencing is off, before the
 * first acquire and after redislock_release().  It stays readable after
 * the lock was lost: a resource that checks tokens rejects it once a later
 * holder has written.  Safe from any thread. */
REDISLOCK_EXPORT uint64_t redislock_token(const redislock *lk);

/* Tell the renewal of a lock made with heartbeat_ms that the worker is
 * alive: auto-renewal goes on only while this was called within the last
 * heartbeat_ms (acquiring counts as a call).  Lock-free (an atomic store),
 * callable from any thread at any time.  Returns REDISLOCK_OK while the
 * handle holds the lock (redislock_held()), REDISLOCK_ENOTHELD otherwise,
 * so that a worker's heartbeat also tells it when to stop; it sets
 * redislock_last_error() but not the handle's message. */
REDISLOCK_EXPORT int redislock_heartbeat(redislock *lk);

/* The masters that failed the last operation on this handle, one line
 * "host:port: reason" each ("" if none).  Use from the handle's thread. */
REDISLOCK_EXPORT const char *redislock_master_errors(const redislock *lk);

/* The lock name and the owner id; owned by the handle.
 * Every getter of a handle accepts NULL: numbers answer 0, strings ""
 * (redislock_errmsg() a message saying the handle is NULL). */
REDISLOCK_EXPORT const char *redislock_name(const redislock *lk);
REDISLOCK_EXPORT const char *redislock_id(const redislock *lk);

/* The message of the last call on this handle if it failed, else "". */
REDISLOCK_EXPORT const char *redislock_errmsg(const redislock *lk);

/* ------------------------------------------------------------ maintenance */

/* Forced release of the lock called name, whoever holds it; wakes one waiter.
 * Returns 1 if a lock was removed, 0 if it was free, or a negative error. */
REDISLOCK_EXPORT int redislock_reset(redislock_client *c, const char *name);

/* Forced release of every lock under the client's key prefix, or only of
 * those whose owner id starts with owner_prefix (NULL or "" for all).  Uses
 * SCAN in batches, never KEYS, so it does not block the server; wakes one
 * waiter per removed lock.  *count (if not NULL) receives the number removed.
 * Locks taken while it runs may or may not be removed. */
REDISLOCK_EXPORT int redislock_reset_all(redislock_client *c,
                                         const char *owner_prefix,
                                         uint64_t *count);

/* One lock found by redislock_list(); the strings belong to the library and
 * are valid during the callback only.  Fields may be added at the end. */
typedef struct redislock_list_entry {
    const char *name;        /* the lock name, NUL-terminated (name_len bytes;
                                written by another program it may hold any
                                byte, NUL included) */
    size_t name_len;
    const char *owner;       /* the holder's owner id as stored, NUL-terminated
                                (owner_len bytes, any byte) */
    size_t owner_len;
    int64_t ttl_ms;          /* remaining expiry; -1 if it never expires */
    size_t master;           /* the master it was found on: the index of its
                                URL (always 0 with one master) */
    const char *master_addr; /* that master's "host:port" or socket path */
    /* Added with the fair lock and the semaphore: */
    int kind;                /* REDISLOCK_KIND_MUTEX, _FAIR or _SEMAPHORE */
    int64_t holders;         /* how many hold it now (1 for a lock; for a
                                semaphore an entry comes per holder, each
                                with the same figures) */
    int64_t permits;         /* how many may hold it at once (1 for a lock) */
    int64_t queued;          /* waiters in its queue (0 for a mutex, whose
                                waiters do not queue) */
} redislock_list_entry;

/* Called once per lock; return 0 to go on, anything else to stop the walk
 * (redislock_list() then returns that value). */
typedef int (*redislock_list_fn)(const redislock_list_entry *e, void *userdata);

/* Call fn for every lock under the client's key prefix whose name matches
 * name_pattern (SCAN's glob syntax: *, ?, [abc], \ escapes; NULL or "" for
 * every lock), with its owner and remaining expiry read atomically.  Uses
 * SCAN in batches, never KEYS; keys that are not strings are not locks and
 * are skipped.  A lock taken or released during the walk may or may not be
 * seen, and SCAN may report a lock twice.  In majority mode every master is
 * walked in turn (e->master tells which): a lock shows once per master that
 * has it, and the call fails with REDISLOCK_ENOQUORUM only when more masters
 * failed than a quorum can spare.  fn runs in the calling thread, with a
 * connection checked out.  *count (if not NULL) receives the number of
 * calls of fn.  Returns 0, fn's non-zero value, or a negative error. */
REDISLOCK_EXPORT int redislock_list(redislock_client *c, const char *name_pattern,
                                    redislock_list_fn fn, void *userdata,
                                    uint64_t *count);

/* ------------------------------------------------------------- cluster */

/* One range of slots of a Redis Cluster and the master serving it (for
 * redislock_cluster_slots()); the string is valid during the callback
 * only.  Fields may be added at the end. */
typedef struct redislock_slot_range {
    int first, last;          /* slots, inclusive (0 .. 16383) */
    const char *master_addr;  /* the master's "host:port" */
    size_t member;            /* the index of the client's URL it belongs to
                                 (0 with one URL) */
} redislock_slot_range;

/* Called once per range; return 0 to go on, anything else to stop (the
 * value is returned). */
typedef int (*redislock_slots_fn)(const redislock_slot_range *r, void *userdata);

/* Ask every cluster URL of c (redis-cluster://, rediss-cluster://) for its
 * slot map now (CLUSTER SLOTS, from a node that answers) and call fn for
 * each range of slots that one master serves, in slot order: the map the
 * client routes keys with from then on.  Slots no master serves are left
 * out.  Returns 0, fn's non-zero value, REDISLOCK_ENOTSUP when no URL of
 * c is a cluster, or REDISLOCK_EIO (no node gave a map) with the nodes
 * asked and their answers in the message. */
REDISLOCK_EXPORT int redislock_cluster_slots(redislock_client *c, redislock_slots_fn fn,
                                             void *userdata);

#ifdef __cplusplus
}
#endif

#endif /* REDISLOCK_H */
