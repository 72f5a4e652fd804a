/*
 * Private structures and redislock__ prototypes.  Nothing here is exported.
 *
 * Layers, top to bottom; a file calls only files on lower lines
 * (scripts/check-layers checks it on the object files):
 *   api:        client.c handle.c ops.c reset.c list.c metrics.c clusterinfo.c
 *   logic:      acquire.c renew.c scan.c
 *   decisions:  decide.c
 *   kinds:      mutex.c queued.c
 *   masters:    fan.c wait.c
 *   pump:       pump.c
 *   topology:   topology.c
 *   discovery:  sentinel.c cluster.c
 *   per master: pool.c scripts.c
 *   lua:        queued_lua.c
 *   connection: conn.c
 *   transport:  plain.c tls.c
 *   support:    net.c url.c keys.c ownerid.c state.c options.c slots.c
 *   helpers:    alloc.c log.c deadline.c stats.c
 *   base:       error.c clock.c sha1.c fork.c version.c
 *
 * api: the public functions (client.c also registers clients for fork();
 * metrics.c: the counters' snapshot and its Prometheus text).
 * logic: the acquire loop and the renewal thread; decide.c is the pure
 * decision of one acquire round.  kinds: what each kind of lock (the
 * mutex; the fair lock and the semaphore) sends and what its answers mean.  masters: one request on every master at
 * once (fan.c), and the wait for a wake-up on every master (wait.c), both
 * on the one I/O loop (pump.c).  per master: the connection pool and the
 * Lua scripts.  conn.c speaks RESP over a transport (plain.c: a socket of
 * our own; tls.c: OpenSSL over such a socket).  support and below: pure helpers and the lock state that
 * redislock_held() reads.
 */
#ifndef REDISLOCK_INTERNAL_H
#define REDISLOCK_INTERNAL_H

#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Reasons gathered for one message ("a; b; c"), e.g. why no server of a
 * list answered; cut to fit. */
typedef struct redislock__notes {
    char text[600];
    size_t len;
} redislock__notes;
void redislock__notes_add(redislock__notes *w, const char *fmt, ...) REDISLOCK__PRINTF(2, 3);

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
    int tls;         /* rediss:// */
    char *host;      /* host name or address; socket path when is_unix */
    int port;
    int db;
    char *username;  /* NULL if none */
    char *password;  /* NULL if none */
    char *addr;      /* "host:port" or the socket path, for messages */
    int min_replicas; /* ?min_replicas=N: WAIT for N replicas; -1 not given */
    int wait_ms;     /* ?wait_ms=N: how long WAIT waits; 0 not given */
    int sentinel;    /* a sentinel: its own credentials, never SELECT */
} redislock__endpoint;

int redislock__url_parse(const char *url, redislock__endpoint *ep);
void redislock__endpoint_clear(redislock__endpoint *ep);
/* A copy of tmpl (credentials, db, TLS, WAIT settings) for host:port. */
int redislock__endpoint_copy(redislock__endpoint *dst, const redislock__endpoint *tmpl,
                             const char *host, int port);
/* "host:port", "[v6]:port" (allocated; NULL when out of memory). */
char *redislock__hostport_string(const char *host, int port);

/* What a client URL names: one server (redis://, rediss://, unix://), a
 * service behind Sentinels (redis-sentinel://, rediss-sentinel://), or a
 * Cluster (redis-cluster://, rediss-cluster://). */
enum { REDISLOCK__MEMBER_FIXED, REDISLOCK__MEMBER_SENTINEL, REDISLOCK__MEMBER_CLUSTER };
int redislock__url_kind(const char *url);

/* A sentinel or cluster URL:
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/SERVICE[/db][?query]
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]...][?query]
 * (rediss-: TLS to every server).  The credentials, db and query items are
 * those of the data nodes (tmpl, without host); the hosts are the
 * sentinels (default port 26379) or the cluster's seed nodes (6379). */
typedef struct redislock__topo_url {
    int kind;
    size_t n;
    char **hosts;
    int *ports;
    char *service;             /* sentinel: the master's name */
    redislock__endpoint tmpl;
} redislock__topo_url;

int redislock__topo_url_parse(const char *url, redislock__topo_url *t);
void redislock__topo_url_clear(redislock__topo_url *t);

/* ------------------------------------------------------------------ net.c */
struct pollfd;
/* poll() until the monotonic deadline (REDISLOCK__NEVER: no limit; passed:
 * a look without waiting), to the microsecond: poll()'s milliseconds,
 * rounded up, overshot every deadline by up to 1 ms; and in slices, so
 * that the kernel's timer slack (0.1% of a timeout) does not either. */
int redislock__poll(struct pollfd *p, unsigned long n, int64_t deadline);
/* The timeout to ask the kernel for when left_us remain: all of it when
 * short, else less by more than the kernel may stretch it (net.c). */
int64_t redislock__poll_slice(int64_t left_us);
/* Connect a non-blocking, close-on-exec socket by the deadline. */
int redislock__net_connect(const redislock__endpoint *ep, int64_t deadline,
                           int *fd_out);
/* Wait for events on fd until deadline, retrying on EINTR.  Returns 1 when
 * ready, 0 on timeout, -1 with errno set on error. */
int redislock__net_wait(int fd, short events, int64_t deadline);
/* 1 if nothing is readable on fd right now (an idle connection that owes
 * no reply and has not been closed by its peer). */
int redislock__net_idle(int fd);
/* Does the server at ep answer like Redis?  A connection of its own sends
 * an inline PING: 1 when the first byte back is a RESP type, 0 when the
 * server closes or resets it without one (or sends another byte), -1 when
 * that cannot be told (no connection, no answer by the deadline).  May
 * overwrite the thread's last error. */
int redislock__net_probe_resp(const redislock__endpoint *ep, int64_t deadline);
/* Wait for events on fd1 or fd2 (-1: none; with neither it sleeps) until
 * the deadline, resuming after signals: 1 ready, 0 deadline, -1 error. */
int redislock__net_wait2(int fd1, int fd2, short events, int64_t deadline);

/* ------------------------------------------------------------ transport */
typedef struct redislock__master redislock__master;
typedef struct redislock__conn redislock__conn;
typedef struct redislock__kind redislock__kind; /* a kind of lock (mutex.c) */

/* What carries a connection's bytes: a plain socket (plain.c) or TLS over
 * one (tls.c).  send and recv follow send(2)/recv(2): bytes moved, or -1
 * with errno (EAGAIN when it would block; recv returns 0 at EOF).  A
 * transport that fails for a reason errno cannot say leaves it in the
 * connection's terr, and the code to report in terr_code (0: EIO). */
typedef struct redislock__transport {
    const char *name;
    /* Connect (and handshake) by the deadline: sets c->fd.  0, or an error
     * code with its message (EIO for the network, others as they come). */
    int (*open)(redislock__conn *c, int64_t deadline);
    ssize_t (*send)(redislock__conn *c, const char *buf, size_t len);
    ssize_t (*recv)(redislock__conn *c, char *buf, size_t len);
    /* The poll() events to wait for when the caller wants to read
     * (POLLIN) and/or write (POLLOUT). */
    short (*events)(const redislock__conn *c, short want);
    /* 1 if bytes can be read without waiting (buffered in the transport). */
    int (*pending)(const redislock__conn *c);
    /* An idle pooled connection: 1 if still usable. */
    int (*alive)(redislock__conn *c);
    void (*close)(redislock__conn *c);
} redislock__transport;

extern const redislock__transport redislock__transport_plain;
/* TLS (tls.c); without OpenSSL its open fails with ENOTSUP. */
extern const redislock__transport redislock__transport_tls;

/* The client's TLS context (one SSL_CTX for all its rediss:// masters),
 * made from its options when a master is rediss://: 0, or REDISLOCK_ETLS
 * when a file cannot be loaded (ENOTSUP without OpenSSL). */
int redislock__tls_init(redislock_client *c);
void redislock__tls_free(redislock_client *c);

/* ----------------------------------------------------------------- conn.c */
struct redislock__conn {
    int fd;
    const redislock__transport *tr;
    void *tctx;             /* the transport's own state */
    char terr[160];         /* the transport's last error, if errno cannot say */
    int terr_code;          /* the code for terr; 0: REDISLOCK_EIO */
    struct redisReader *reader;
    redislock__master *m;
    unsigned long gen;      /* fork generation it was opened in */
    char *obuf;             /* RESP not yet sent */
    size_t olen, opos, ocap;
    int pending;            /* replies still to read */
    int broken;             /* unusable: close instead of pooling */
    int rx;                 /* a byte came from the server */
    long long client_id;    /* CLIENT ID; 0 unknown, -1 unsupported */
    redislock__conn *next;  /* the pool's idle list, or its busy list */
    redislock__conn *prev;  /* the busy list */
};

/* A hiredis reader that refuses arrays longer than any lock server's answer
 * (it would allocate their element table up front). */
struct redisReader *redislock__reader_new(void);
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
/* The poll() events to wait for: a reply, and room to send what is queued. */
short redislock__conn_events(const redislock__conn *c);
/* 1 if a reply may be read without polling (bytes buffered in the transport). */
int redislock__conn_pending(const redislock__conn *c);
/* An idle connection: 1 if usable (a pooled connection owes no reply, so
 * anything readable means closed by the server, or garbage). */
int redislock__conn_alive(redislock__conn *c);
/* Turn an error reply, or a reply of an unexpected type, into a code and a
 * message naming the server (EAUTH for NOAUTH/WRONGPASS, EPROTO otherwise).
 * what names the command. */
int redislock__conn_reply_error(redislock__conn *c, const struct redisReply *r,
                                const char *what);
/* Mark a connection broken and return an EIO-class error for errno. */
int redislock__conn_io_error(redislock__conn *c, int err, const char *what);

/* ------------------------------------------------- topology: the members */
typedef struct redislock__sentinel redislock__sentinel;
typedef struct redislock__cluster redislock__cluster;

/* One member of a client's topology: what one URL names.  The quorum is
 * counted over members (one: plain mode; N: majority mode).  A member
 * answers "which node serves this key now" (topology.c): its one server, a
 * Sentinel's current master, later a Cluster's slot owner. */
typedef struct redislock__member {
    int kind;                 /* REDISLOCK__MEMBER_* */
    redislock_client *client;
    redislock__master *node;  /* FIXED: its server; SENTINEL: the master in
                                 use, NULL until discovered (atomic) */
    redislock__endpoint tmpl; /* the data nodes' credentials, db, TLS, WAIT */
    int min_replicas;         /* WAIT for so many replicas after each write */
    int wait_ms;              /* how long that WAIT waits */
    char *name;               /* for messages */
    pthread_mutex_t mu;       /* the node list, and the sentinel state */
    redislock__master *nodes; /* every node made for it (freed with it) */
    redislock__sentinel *sen; /* SENTINEL: sentinel.c's state */
    redislock__cluster *cl;   /* CLUSTER: cluster.c's slot map */
} redislock__member;

/* The node of member mb at host:port (the same one for the same address,
 * made from tmpl the first time).  Takes mb->mu. */
int redislock__node_get(redislock__member *mb, const redislock__endpoint *tmpl,
                        const char *host, int port, redislock__master **out);

/* -------------------------------------------------------------- sentinel.c */
/* The member's Sentinel state from its URL (sentinels, service). */
int redislock__sentinel_new(redislock__member *mb, const redislock__topo_url *t);
void redislock__sentinel_free(redislock__member *mb);
/* A connection to the member's master: an idle one when the master is
 * known and not stale, else after discovering it, by the deadline. */
int redislock__sentinel_connect(redislock__member *mb, int64_t deadline,
                                redislock__conn **out);
/* The master, discovered when unknown or stale. */
int redislock__sentinel_master(redislock__member *mb, int64_t deadline,
                               redislock__master **out);
/* node may no longer be the master: ask before the next connection; with
 * drop, shut down its connections now. */
void redislock__sentinel_stale(redislock__member *mb, redislock__master *node, int drop);
/* Failovers seen (the master changed). */
uint64_t redislock__sentinel_switches(redislock__member *mb);
/* The renewal thread's watch: the subscription's fd (-1 none), and its
 * turn (read what came, keep subscribed, ask every second); returns when
 * it wants the next turn. */
int redislock__sentinel_watch_fd(redislock__member *mb);
int64_t redislock__sentinel_watch(redislock__member *mb, int readable);
void redislock__sentinel_fork_child(redislock__member *mb);

/* ---------------------------------------------------------------- slots.c */
#define REDISLOCK__SLOTS 16384
/* CRC16/XMODEM of buf, as Redis Cluster uses it. */
uint16_t redislock__crc16(const char *buf, size_t len);
/* The cluster slot of a key (its hash tag's when it has one). */
int redislock__keyslot(const char *key, size_t len);
/* A -MOVED or -ASK error reply (without the '-'). */
typedef struct redislock__redirect {
    int ask;          /* ASK (else MOVED) */
    int slot;
    char host[256];   /* "" : the node that answered */
    int port;
} redislock__redirect;
/* 0, or -1 when err is not a well-formed MOVED/ASK. */
int redislock__redirect_parse(const char *err, size_t len, redislock__redirect *rd);
/* One range of a CLUSTER SLOTS reply and its master. */
typedef struct redislock__slot_range {
    int first, last;
    char host[256];
    int port;
} redislock__slot_range;
struct redisReply;
/* The ranges of a CLUSTER SLOTS reply (allocated, *n of them; the caller
 * frees *out).  NULL or "" endpoints become `answered` (the host asked);
 * ranges whose endpoint is "?" or has no port are left out.  0, -1 for a
 * malformed reply, REDISLOCK_ENOMEM. */
int redislock__slots_parse(const struct redisReply *r, const char *answered,
                           redislock__slot_range **out, size_t *n);

/* -------------------------------------------------------------- cluster.c */
/* The member's Cluster state from its URL (the seed nodes). */
int redislock__cluster_new(redislock__member *mb, const redislock__topo_url *t);
void redislock__cluster_free(redislock__member *mb);
void redislock__cluster_fork_child(redislock__member *mb);
/* The master serving slot, from the map (asked first when the slot is
 * unknown, or when a scheduled refresh is due).  ECLUSTERDOWN when the
 * cluster names no master for it. */
int redislock__cluster_owner(redislock__member *mb, int slot, int64_t deadline,
                             redislock__master **out);
/* A connection to the master serving key (slot 0 for NULL); when that
 * master refuses it, the map is asked again and the new owner tried. */
int redislock__cluster_connect(redislock__member *mb, const char *key, size_t keylen,
                               int64_t deadline, redislock__conn **out);
/* The class (REDISLOCK__TOPO_*) of error reply r on conn; MOVED patches the
 * map and schedules a refresh. */
int redislock__cluster_reply(redislock__member *mb, redislock__conn *conn,
                             const struct redisReply *r);
/* The target node of an -ASK reply r on conn. */
int redislock__cluster_ask(redislock__member *mb, redislock__conn *conn,
                           const struct redisReply *r, redislock__master **out);
/* node went away (a connection to it broke): refresh soon. */
void redislock__cluster_lost(redislock__member *mb, redislock__master *node);
/* The owner of key in the map as it is (NULL unknown); no I/O. */
redislock__master *redislock__cluster_route(redislock__member *mb, const char *key,
                                            size_t keylen);
/* Call fn for every range of slots with one owner (fresh: ask the map
 * first), until fn returns non-zero (returned). */
typedef int (*redislock__range_fn)(void *arg, int first, int last, redislock__master *m);
int redislock__cluster_ranges(redislock__member *mb, int64_t deadline, int fresh,
                              redislock__range_fn fn, void *arg);
void redislock__cluster_stats(redislock__member *mb, uint64_t *refreshes, uint64_t *moves);
/* The renewal thread's turn: the periodic (10 s) or scheduled refresh;
 * returns when it wants the next turn. */
int64_t redislock__cluster_watch(redislock__member *mb);

/* -------------------------------------------------------------- topology.c */
struct pollfd;
struct redisReply;
/* The members of a new client, one per URL (c->members, c->nmasters,
 * c->quorum). */
int redislock__topo_init(redislock_client *c, const char *const *urls, size_t n);
void redislock__topo_free(redislock_client *c);
/* A connection to the node of member i that serves key now, by the
 * deadline (finding the node first when the topology asks for it). */
int redislock__topo_connect(redislock_client *c, size_t i, const char *key,
                            size_t keylen, int64_t deadline, redislock__conn **out);
/* The node of member i (the one that holds every key: not for a cluster,
 * where it is the owner of slot 0; see redislock__topo_nodes). */
int redislock__topo_node(redislock_client *c, size_t i, int64_t deadline,
                         redislock__master **out);
/* Member i for messages: its address, or "sentinel service NAME". */
const char *redislock__topo_name(const redislock_client *c, size_t i);
/* 1 if some member can fail over (its node moves): callers then retry a
 * lost server until their deadline rather than for the connect timeout. */
int redislock__topo_fails_over(const redislock_client *c);
/* What an error reply means for the topology: NONE (an error like any
 * other), or MOVED: the server no longer serves (READONLY, REDIRECT,
 * UNBLOCKED, LOADING, MASTERDOWN behind a Sentinel or on a cluster; a
 * cluster): find the node again (redislock__topo_connect) and retry
 * after a pause; REDIRECT (a cluster's -MOVED, which patched the map): at
 * once.  A cluster also answers ASK (send
 * ASKING and the call to redislock__topo_ask()'s node, once), TRYAGAIN
 * (the slot is migrating: back off, retry on the same node) and
 * CLUSTERDOWN (back off longer; REDISLOCK_ECLUSTERDOWN if it lasts). */
enum {
    REDISLOCK__TOPO_NONE = 0, REDISLOCK__TOPO_MOVED = 1, REDISLOCK__TOPO_ASK = 2,
    REDISLOCK__TOPO_TRYAGAIN = 3, REDISLOCK__TOPO_CLUSTERDOWN = 4,
    REDISLOCK__TOPO_REDIRECT = 5 /* a cluster's -MOVED: the map already says
                                    where; resend at once */
};
int redislock__topo_reply(redislock__conn *conn, const struct redisReply *r);
/* Add the open connections of every node (sentinels' included), the
 * failovers followed (a Sentinel's master moved) and the redirects (a
 * cluster's -MOVED). */
void redislock__topo_counts(redislock_client *c, uint64_t *connections,
                            uint64_t *failovers, uint64_t *redirects);
/* The node an -ASK reply r on conn names. */
int redislock__topo_ask(redislock__conn *conn, const struct redisReply *r,
                        redislock__master **out);
/* A connection to node broke: its member may have moved (a cluster asks
 * its map again soon). */
void redislock__topo_lost(redislock__master *node);
/* The node of member i that serves key as far as is known now, without
 * I/O (NULL: not known yet). */
redislock__master *redislock__topo_route(redislock_client *c, size_t i, const char *key,
                                         size_t keylen);
/* 1 if member i serves every key from one node (not a cluster). */
int redislock__topo_single(const redislock_client *c, size_t i);
/* Every master of member i (one, or a cluster's), at most max: 0 and *n,
 * or an error. */
int redislock__topo_nodes(redislock_client *c, size_t i, int64_t deadline,
                          redislock__master **out, size_t max, size_t *n);
/* A cluster member i: its map asked now, then fn for each range of slots
 * of one master (cluster.c). */
int redislock__topo_ranges(redislock_client *c, size_t i, int64_t deadline,
                           redislock__range_fn fn, void *arg);
/* The longest a BLPOP may block on node m before the waiter checks again:
 * shorter on a cluster, where a node that stopped answering must be
 * noticed. */
int64_t redislock__topo_max_block_us(const redislock__master *m);
/* fork(): every member's and node's mutex, before and after. */
void redislock__topo_fork_prepare(redislock_client *c);
void redislock__topo_fork_done(redislock_client *c, int child);
/* The client needs the watch (a Sentinel member): its renewal thread runs
 * from the first call on. */
int redislock__topo_watched(const redislock_client *c);
/* The fds to poll for the watch (which[k]: the member of p[k]), and the
 * watch's turn with readable[member] set for those that polled readable;
 * returns when it wants the next turn. */
size_t redislock__topo_watch_fds(redislock_client *c, struct pollfd *p, size_t *which,
                                 size_t max);
int64_t redislock__topo_watch(redislock_client *c, const int *readable);

/* ----------------------------------------------------------------- pool.c */
struct redislock__member;

/* One server (a node) and its connection pool.  A member of the topology
 * (topology.c) has one node (a fixed URL) or several (the masters a
 * Sentinel named over time, a cluster's nodes); a node lives until its
 * client is freed, so that a connection's m and the messages that name
 * m->ep.addr stay valid whatever the topology does meanwhile. */
struct redislock__master {
    redislock__endpoint ep;
    redislock_client *client;
    struct redislock__member *member; /* the member it serves */
    redislock__master *next_node;     /* the member's other nodes */
    pthread_mutex_t mu;
    redislock__conn *idle;
    redislock__conn *busy;  /* checked out (pool_drop shuts them down) */
    int nidle;
    int nopen;              /* open connections, idle or in use */
    unsigned long gen;      /* fork generation of the pooled sockets */
    int no_unblock;         /* CLIENT ID/UNBLOCK not available */
    int int_timeouts;       /* BLPOP wants whole seconds (Redis < 6) */
    int capa_redirect;      /* send CLIENT CAPA redirect on connect (a
                               Sentinel's master: Valkey answers -REDIRECT
                               instead of -READONLY once demoted) */
    int down;               /* a connect failed or a connection was dropped
                               since the last connect: the next is a
                               reconnect (for the log) */
    int failing;            /* the last connect failed (log the next failure
                               at DEBUG only) */
};

/* A node for a URL of one server. */
int redislock__node_open(redislock_client *c, const char *url, redislock__master **out);
/* A node for host:port with tmpl's credentials, db and TLS. */
int redislock__node_make(redislock_client *c, const redislock__endpoint *tmpl,
                         const char *host, int port, redislock__master **out);
/* Close its idle connections and free it (none may be checked out). */
void redislock__node_free(redislock__master *m);
/* A live connection, idle or new.  Idle ones that the server has closed
 * meanwhile are dropped without a round trip. */
int redislock__pool_get(redislock__master *m, int64_t deadline,
                        redislock__conn **out);
/* An idle connection if one is alive: 0 and *out, or 1 when none. */
int redislock__pool_get_idle(redislock__master *m, redislock__conn **out);
/* Return a connection; broken or busy ones are closed. */
void redislock__pool_put(redislock__conn *c);
/* The node no longer serves (a failover moved its role away): close its
 * idle connections and shut down those checked out, so that every user
 * (a waiter in BLPOP, the renewal thread) sees it closed at once. */
void redislock__pool_drop(redislock__master *m);
/* fork(): lock every pool mutex before, unlock after (see fork.c). */
void redislock__pool_lock(redislock__master *m);
void redislock__pool_unlock(redislock__master *m);
/* Open connections of a master (idle and in use), for tests and stats. */
int redislock__pool_open_count(redislock__master *m);

/* ----------------------------------------------------------------- fork.c */
/* Generation of this process: bumped in the child after every fork(). */
unsigned long redislock__fork_gen(void);
/* The child's atfork handler (client.c): a new generation. */
void redislock__fork_next_gen(void);

/* ---------------------------------------------------------------- renew.c */
typedef struct redislock__renewer redislock__renewer;
#define REDISLOCK__NOT_SCHEDULED ((size_t)-1)

redislock__renewer *redislock__renewer_new(redislock_client *c);
/* Stop the thread (joining it) and detach every handle.  NULL is a no-op. */
void redislock__renewer_free(redislock__renewer *r);
/* Start the renewal thread of a client whose topology needs watching (a
 * Sentinel member), if it does not run (a new client, a fork child). */
int redislock__renew_watch(redislock_client *c);
/* Schedule renewals of a lock just acquired (or extended) at sent_us. */
int redislock__renew_add(redislock *lk);
/* The worker is alive (redislock_heartbeat()): lock-free, any thread. */
void redislock__renew_heartbeat(redislock *lk);
/* Stop renewing lk at once (release, and extend before it sends);
 * in-flight results are ignored. */
void redislock__renew_remove(redislock *lk);
/* After an extend sent at sent_us that left the key ttl_ms to live: renew
 * again after the interval (sooner for a short ttl_ms).  No-op for a lock
 * that is not auto-renewed. */
void redislock__renew_resume(redislock *lk, int64_t sent_us, int64_t ttl_ms);
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

/* ---------------------------------------------------------------- stats.c */
/* The counters of a client (see stats.c): updated with relaxed atomic adds
 * from any thread. */
enum {
    REDISLOCK__ACQ_OK, REDISLOCK__ACQ_ALREADY, REDISLOCK__ACQ_BUSY,
    REDISLOCK__ACQ_TIMEOUT, REDISLOCK__ACQ_CANCELED, REDISLOCK__ACQ_ERROR,
    REDISLOCK__ACQ_RESULTS
};
typedef struct redislock__histogram {
    uint64_t buckets[REDISLOCK_STATS_BUCKETS];
    uint64_t sum_us;
} redislock__histogram;
typedef struct redislock__stats {
    uint64_t acquire[REDISLOCK__ACQ_RESULTS]; /* acquire calls by result */
    redislock__histogram wait;   /* acquire calls that waited */
    redislock__histogram hold;   /* holds that ended */
    uint64_t lost[REDISLOCK_STATS_LOST_REASONS];
    uint64_t connects;           /* connections opened, not after a failure */
    uint64_t reconnects;         /* opened after a failure or a drop */
    uint64_t connect_failures;
} redislock__stats;

/* The hooks, one call where each event happens. */
#ifndef REDISLOCK_NO_STATS
/* The start of an acquire call (its time). */
int64_t redislock__stats_start(void);
/* This acquire call waits for a wake-up (acquire.c). */
void redislock__stats_waited(redislock *lk);
/* An acquire call that started at start_us ended with rc: its result, its
 * time if it waited, the start of a hold. */
void redislock__stats_acquired(redislock *lk, int rc, int64_t start_us);
/* The hold of lk, if one is counted, ends now (a release answered). */
void redislock__stats_released(redislock *lk);
/* The renewal found lk lost for reason: counted, and its hold ends. */
void redislock__stats_lost(redislock *lk, int reason);
/* A connect of the pool: rc, and whether it came after a failure or a drop. */
void redislock__stats_connect(redislock_client *c, int rc, int after_failure);
#else /* bench/: the same build without them */
#define redislock__stats_start() ((int64_t)0)
#define redislock__stats_waited(lk) ((void)(lk))
#define redislock__stats_acquired(lk, rc, t0) ((void)(lk), (void)(rc), (void)(t0))
#define redislock__stats_released(lk) ((void)(lk))
#define redislock__stats_lost(lk, reason) ((void)(lk), (void)(reason))
#define redislock__stats_connect(c, rc, after) ((void)(c), (void)(rc), (void)(after))
#endif
/* The log2 bucket of a duration in microseconds: i for at most 2^i ms (0
 * up to 1 ms), REDISLOCK_STATS_BUCKETS - 1 for longer than 2^24 ms. */
size_t redislock__stats_bucket(int64_t us);
/* The counters into st (the fields stats.c owns). */
void redislock__stats_read(const redislock_client *c, redislock_stats *st);

/* --------------------------------------------------------------- client.c */
struct redislock_client {
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
    int64_t master_timeout_ms; /* majority mode: per master and step */
    int64_t drift_ppm;       /* clock drift allowance, parts per million */
    int64_t signal_expire_ms;
    int max_idle;
    char *key_prefix;
    int hash_tag;
    int cluster;             /* a member is a Redis Cluster: hash tags always */
    char *username;
    char *password;
    redislock_log_fn log;
    void *log_userdata;
    int log_level;
    size_t nmasters;         /* members (one per URL); majority mode above 1 */
    size_t quorum;           /* nmasters / 2 + 1 */
    redislock__member *members;
    char *sentinel_username; /* the sentinels' own credentials */
    char *sentinel_password;
    int64_t sentinel_timeout_ms;
    int min_replicas;        /* default WAIT after writes (a URL's wins) */
    int64_t wait_ms;
    redislock__renewer *renewer;
    redislock_client *reg_next;  /* fork registry */
    int shutdown;            /* atomic: redislock_client_shutdown() was called */
    int shutdown_fd;         /* eventfd, readable for ever after a shutdown */
    struct redislock__tls_opts {
        char *ca_file, *ca_dir, *cert_file, *key_file, *server_name;
        int insecure;
    } tls;                   /* copied from the options (options.c) */
    void *tls_ctx;           /* tls.c's SSL_CTX; NULL without rediss:// */
    redislock__stats stats;  /* stats.c's counters */
};

/* -------------------------------------------------------------- options.c */
/* Check the caller's options (any version) and set the client's fields
 * from them and the defaults; the strings are copied. */
int redislock__client_opts(redislock_client *c, const redislock_client_options *opts);
/* The caller's lock options (NULL: the defaults) in this version's layout,
 * reading no further than the caller's version reaches; the fields it
 * does not have are 0.  EINVAL for a version newer than this library. */
int redislock__lock_opts(const redislock_options *opts, redislock_options *out);

/* ------------------------------------------------------------------ log.c */
void redislock__log(const redislock_client *c, int level, const char *fmt, ...)
    REDISLOCK__PRINTF(3, 4);

/* ------------------------------------------------------------- deadline.c */
/* now + command timeout, bounded by limit (REDISLOCK__NEVER for none). */
int64_t redislock__io_deadline(const redislock_client *c, int64_t limit);
/* The deadline of one step of an operation (connecting, or one reply):
 * with one master now + the connect or command timeout, with several
 * now + master_timeout_ms; never later than limit. */
int64_t redislock__step_deadline(const redislock_client *c, int connect,
                                 int64_t limit);
/* The extra time an operation may take past the caller's deadline to
 * collect a reply: min(command timeout, 250 ms), in microseconds. */
int64_t redislock__slack_us(const redislock_client *c);
/* How long a give-back (the owner-checked release of what an acquire
 * without an answer may have taken) waits for its answer after a cancel or
 * after a server that did not answer in time: min(command timeout, 25 ms),
 * in microseconds.  A wait keeps that much of its slack for it. */
int64_t redislock__brief_us(const redislock_client *c);

/* ------------------------------------------- a handle's renewal (renew.c) */
/* The renewal state of a handle: the first six fields are set once by
 * redislock_new(), then it is owned by renew.c; heartbeat_us is atomic
 * (redislock_heartbeat() stores it from any thread); every other field
 * belongs to the renewer's mutex. */
typedef struct redislock__renewal {
    int enabled;            /* auto_renew */
    int64_t interval_ms;
    redislock_lost_fn on_lost;
    void *on_lost_userdata;
    int64_t max_hold_ms;    /* 0: no cap */
    int64_t heartbeat_ms;   /* 0: no heartbeat needed */
    int64_t heartbeat_us;   /* atomic: the last redislock_heartbeat() (or
                               acquire), CLOCK_MONOTONIC */
    int64_t limit_us;       /* acquired + max_hold_ms: no renewal from then
                               on; 0 without a cap */
    int registered;         /* known to the renewer (until freed/detached) */
    size_t heap_idx;        /* REDISLOCK__NOT_SCHEDULED when not scheduled */
    int64_t due_us;         /* next renewal */
    int in_flight;          /* being renewed, or its callback running */
    unsigned gen;           /* bumped by acquire, extend and release: results
                               of an older renewal are ignored */
    int backoff_ms;         /* after failed renewals */
    int free_pending;       /* freed from its own callback */
    redislock *next, *prev; /* all registered handles */
} redislock__renewal;

/* ----------------------------------------------------------- handle state */
struct redislock {
    redislock_client *c;
    const redislock__kind *kind; /* mutex.c's, ... */
    char *name;
    size_t namelen;
    char *key;          /* lock:<name>: the key its calls are routed by */
    size_t keylen;
    char *sig;          /* lock-signal:<name>: what a waiter blocks on */
    size_t siglen;
    char *fence;        /* lock-fence:<name>, the token counter; NULL
                           without fencing (the mutex) */
    size_t fencelen;
    int fencing;        /* the options' fencing */
    /* the queued kinds (queued.c): their holders, queue and waiters keys,
     * then the semaphore's permits key or the fair lock's lock-signal, and
     * what every waiter's wake-up list is named after (+ its owner id);
     * NULL for the mutex */
    char *qkeys[4];
    size_t qkeylens[4];
    char *wake;
    size_t wakelen;
    int64_t permits;        /* a semaphore's N; 1 otherwise */
    int64_t waiter_lease_ms, grant_lease_ms;
    char *id;
    size_t idlen;
    int64_t expire_ms;
    int held;           /* atomic: read by redislock_held() from any thread */
    int64_t expires_us; /* atomic: local estimate of the key's expiry,
                           counted from when the last successful acquire,
                           extend or renewal was sent; 0 without expiry */
    int lost_reason;    /* atomic: REDISLOCK_LOST_*, or 0 */
    int cancel;         /* atomic: redislock_cancel() not yet answered */
    int cancel_fd;      /* atomic: the eventfd of the wait running now; -1
                           none (state.c, "cancelling") */
    unsigned long cancel_gen; /* atomic: the fork generation of cancel_fd */
    int cancel_users;   /* atomic: redislock_cancel() calls writing to it */
    uint64_t token;     /* atomic: the fencing token of the last grant, 0
                           if none (see redislock_token()) */
    int64_t acquired_us; /* when the round of the last grant was sent (the
                            start of max_hold_ms); the handle's thread */
    int uncertain;      /* an acquire's reply was lost: we may hold it */
    int waited;         /* stats.c: this acquire call waited */
    int64_t hold_start_us; /* atomic, stats.c: the counted hold's start; 0 */
    char errmsg[512];
    char master_errors[1024]; /* failed masters of the last operation */

    redislock__renewal rn;  /* auto-renewal: renew.c's */
};

/* ----------------------------------------------------------------- keys.c */
/* The keys of a lock: its owner, its wake-ups, its fencing token counter. */
enum { REDISLOCK__KEY_LOCK = 0, REDISLOCK__KEY_SIGNAL = 1, REDISLOCK__KEY_FENCE = 2 };
/* The key of lock name: prefix + "lock:" (or "lock-signal:", or
 * "lock-fence:", by kind) + name, with braces around name in the hash-tag
 * layout.  Allocated, NUL-terminated. */
char *redislock__key(const redislock_client *c, int kind, const char *name,
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
/* EINVAL (with the reason) for a name whose keys would not share a slot
 * on a cluster: empty, or starting with '}'; 0 otherwise. */
int redislock__check_name(const redislock_client *c, const char *name, size_t namelen);
/* The signal key of a lock key found by SCAN. */
char *redislock__signal_of(const redislock_client *c, const char *key,
                           size_t keylen, size_t *outlen);
/* The key P family "{" name "}" suffix (the queued kinds' keys: the name
 * always in a hash tag).  Allocated, NUL-terminated. */
char *redislock__tagged_key(const redislock_client *c, const char *family, const char *name,
                            size_t namelen, const char *suffix, size_t *outlen);
/* The SCAN pattern of those keys whose names match glob (NULL or "" for
 * every name). */
char *redislock__tagged_pattern(const redislock_client *c, const char *family,
                                const char *glob, const char *suffix, size_t *outlen);
/* Where the name is in such a key found by SCAN: 0 and *off, *len; -1 when
 * key is not of that shape. */
int redislock__tagged_name(const redislock_client *c, const char *family, const char *suffix,
                           const char *key, size_t keylen, size_t *off, size_t *len);

/* -------------------------------------------------------------- scripts.c */
typedef struct redislock__script {
    const char *name;
    const char *body;
    char sha[41];
} redislock__script;

extern redislock__script redislock__script_acquire;
extern redislock__script redislock__script_acquire_fenced;
extern redislock__script redislock__script_release;
extern redislock__script redislock__script_extend;
extern redislock__script redislock__script_status;
extern redislock__script redislock__script_reset_many;
extern redislock__script redislock__script_signal;
extern redislock__script redislock__script_renew;
extern redislock__script redislock__script_list;
/* queued_lua.c: the fair lock's and the semaphore's */
extern redislock__script redislock__script_q_acquire;
extern redislock__script redislock__script_q_release;
extern redislock__script redislock__script_q_extend;
extern redislock__script redislock__script_q_status;
extern redislock__script redislock__script_q_reset;
extern redislock__script redislock__script_q_reset_name;
extern redislock__script redislock__script_q_list;

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
    const char *inl_argv[20]; /* storage for small calls */
    size_t inl_lens[20];
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

/* ----------------------------------------------------------------- pump.c */
#define REDISLOCK__MAX_MASTERS 31
#define REDISLOCK__ERRLEN 256

/* One connection per master, each with its outcome: the set that the pump
 * drives and fan.c / wait.c fill. */
typedef struct redislock__fanout {
    size_t n;                 /* masters */
    size_t k;                 /* calls per master (fan.c) */
    redislock__conn *conns[REDISLOCK__MAX_MASTERS]; /* NULL: not connected */
    int rc[REDISLOCK__MAX_MASTERS];                 /* per master: 0 or error */
    char err[REDISLOCK__MAX_MASTERS][REDISLOCK__ERRLEN];
    struct redisReply **replies; /* [master * k + call], error replies too */
    size_t *map;              /* scratch: 3k + 1 per master (fan.c) */
    int stop_fd[2];           /* when one is readable the pump stops (a
                                 cancel); -1: none */
    int (*stop_check)(void *ctx); /* NULL, or asked when a stop_fd is
                                 readable: 0 goes on polling (a wake-up that
                                 no cancel explains, taken away) */
    void *stop_ctx;
    int stopped;              /* the pump stopped for a stop_fd */
    int64_t woke_us;          /* wait.c: when the first BLPOP answered (0: none) */
    /* Majority mode, an acquire's wait: does reply r (of the call behind a
     * BLPOP) grant the lock, and how many masters must grant.  NULL: the
     * wait ends at the first wake-up. */
    int (*grants)(const struct redisReply *r, void *ctx);
    void *grants_ctx;
    size_t quorum;
    redislock_client *client; /* fan_connect's: asked again after a move */
    const char *key;          /* the key the nodes were chosen for */
    size_t keylen;
    int wait;                 /* the calls write a lock: WAIT behind them
                                 where the member wants replicas */
    long long acks[REDISLOCK__MAX_MASTERS]; /* WAIT's answers; -1 none */
    int acks_wanted[REDISLOCK__MAX_MASTERS]; /* the n of the WAIT sent; 0 none */
    int asking[REDISLOCK__MAX_MASTERS]; /* the calls go behind ASKING (a
                                           cluster's -ASK; fan.c) */
    int ran_out[REDISLOCK__MAX_MASTERS]; /* failed at retry_until: the
                                            master still answered TRYAGAIN
                                            or a redirect (or not at all
                                            to the retry sent last) */
    int64_t retry_until;      /* redirects and TRYAGAIN are followed until
                                 then (0: the calls' deadline) */
} redislock__fanout;

/* What the pump asks of its user. */
typedef struct redislock__pump_ops {
    /* Does master i still expect a reply? */
    int (*wants)(void *ctx, size_t i);
    /* A reply came on master i's connection; the handler owns it. */
    void (*on_reply)(void *ctx, size_t i, struct redisReply *r);
    /* Stop before the deadline (checked before every poll)?  NULL: only
     * when no master expects a reply any more. */
    int (*done)(void *ctx);
} redislock__pump_ops;

/* The one I/O loop: poll every connection of f whose master has rc 0 and
 * expects a reply, send what is queued as the socket takes it, and hand each
 * reply to on_reply, until done, no master expects one, a stop_fd is
 * readable and f->stop_check (if any) confirms it (then f->stopped; the fd
 * is not read), or the deadline
 * (then one more pass without waiting takes what has already arrived: a
 * thread scheduled late must not call a reply lost that sits in its
 * socket).  Signals (EINTR) keep the deadline.  A connection that fails
 * gets rc/err and is marked broken. */
void redislock__pump(redislock__fanout *f, int64_t deadline,
                     const redislock__pump_ops *ops, void *ctx);
/* Record master i's failure (the calling thread's last error) and mark its
 * connection broken. */
void redislock__fan_fail(redislock__fanout *f, size_t i, int rc);
/* Master i answered r, which is an error or not what was asked: fail it with
 * the one message for that (conn.c), naming the server and what. */
void redislock__fan_reply_fail(redislock__fanout *f, size_t i,
                               const struct redisReply *r, const char *what);
/* How many replicas a write on master i must reach (WAIT), 0 for none: the
 * member's min_replicas when f->wait is set. */
int redislock__fan_wait_for(const redislock__fanout *f, size_t i);
/* Queue WAIT behind the write(s) on master i when it wants one. */
int redislock__fan_append_wait(redislock__fanout *f, size_t i);
/* WAIT's reply on master i: kept in f->acks[i]; freed. */
void redislock__fan_take_ack(redislock__fanout *f, size_t i, struct redisReply *r);
/* 1 if master i's write reached fewer replicas than its WAIT wanted.  The
 * caller decides whether its reply says a write happened (a grant, an
 * extension, a renewal: then it does not count) or not (busy). */
int redislock__fan_unacked(const redislock__fanout *f, size_t i);
/* Fail master i with REDISLOCK_ENOREPLICAS (its reply stays: the write
 * ran on the master). */
void redislock__fan_fail_unacked(redislock__fanout *f, size_t i);

/* ------------------------------------------------------------------ fan.c */
int redislock__fan_init(redislock__fanout *f, size_t n, size_t k);
/* Free the replies and clear the per-master results (not the conns). */
void redislock__fan_reset(redislock__fanout *f);
/* Put the connections back and free the replies. */
void redislock__fan_free(redislock__fanout *f);
/* Send the k calls to every master whose rc is 0 and collect the replies
 * until deadline; a call that meets NOSCRIPT is resent as EVAL on its
 * connection at once.  A master without connection, or failing, gets
 * rc/err. */
void redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                          int64_t deadline);
/* Check out a connection for every master that has none and rc 0, all by
 * one deadline: to the node that serves key (the topology's answer). */
void redislock__fan_connect(redislock__fanout *f, redislock_client *c, const char *key,
                            size_t keylen, int64_t deadline);
/* Return every connection to its pool (broken ones are closed). */
void redislock__fan_put(redislock__fanout *f);
/* Init f and run one call on every master (a write that must reach the
 * members' min_replicas when wait is set); the caller reads f->rc, f->err
 * and f->replies, then calls redislock__fan_free().  Each step (connect,
 * reply) is bounded by the connect/command timeouts with one master, by the
 * per-master timeout with several. */
int redislock__fan_once(redislock__fanout *f, redislock_client *c,
                        redislock__call *call, const char *key, size_t keylen, int wait);
/* The same, following redirects and retrying TRYAGAIN (a cluster slot in
 * migration) until retry_until instead of the step's deadline (0: that).
 * A master still redirected or told to try again when retry_until
 * passes fails with f->ran_out set (never when retry_until is 0). */
int redislock__fan_once_until(redislock__fanout *f, redislock_client *c,
                              redislock__call *call, const char *key, size_t keylen,
                              int wait, int64_t retry_until);
/* The first failures of a fan-out, "; "-separated, for messages. */
const char *redislock__fan_summary(const redislock__fanout *f, char *buf, size_t len);

/* ---------------------------------------------------------------- state.c */
/* The fixed part of the clock drift allowance. */
#define REDISLOCK__DRIFT_FIXED_US 2000
/* The longest expiry accepted: 100 years (no overflow in microseconds). */
#define REDISLOCK__MAX_EXPIRE_MS (100LL * 366 * 24 * 3600 * 1000)
/* Mark a lock held until expires_us (0: no expiry); clears a lost reason. */
void redislock__set_held(redislock *lk, int64_t expires_us);
void redislock__clear_held(redislock *lk);
/* Replace the local expiry (a request the server ran after the one that set
 * it confirmed a new expiry). */
void redislock__set_expiry(redislock *lk, int64_t expires_us);
/* Lower the local expiry to expires_us if that is earlier (never raises). */
void redislock__lower_expiry(redislock *lk, int64_t expires_us);
int64_t redislock__expiry(const redislock *lk);
/* Mark a lock lost; returns 1 the first time. */
int redislock__set_lost(redislock *lk, int reason);
/* The fencing token of the current hold (0: none). */
void redislock__set_token(redislock *lk, uint64_t token);
/* The clock drift allowance for a TTL: drift_ppm of it + 2 ms. */
int64_t redislock__drift_us(const redislock_client *c, int64_t ttl_ms);
/* The local expiry of a lock whose key a request sent at sent_us left with
 * ttl_ms to live (set or reported by the server): sent + ttl - drift.  0 for
 * ttl_ms < 0 (no expiry). */
int64_t redislock__valid_until(const redislock_client *c, int64_t sent_us,
                               int64_t ttl_ms);
/* The same for a drift allowance of drift_ppm (pure). */
int64_t redislock__local_expiry(int64_t drift_ppm, int64_t sent_us, int64_t ttl_ms);

/* ------------------------------------------------- state.c: cancelling */
/* An acquire of lk starts to wait: the eventfd the wait polls for a cancel,
 * made for this call (readable at once when a cancel is pending); -1 if
 * none can be made (the flag still works, checked between steps).  Closed
 * by redislock__cancel_close() when the call ends. */
int redislock__cancel_open(redislock *lk);
void redislock__cancel_close(redislock *lk);
/* The wait's eventfd was readable: 1 if a cancel (or a shutdown) asks to
 * stop; 0 if nothing does (the wake-up is taken away, so that the wait goes
 * on instead of waking again at once). */
int redislock__cancel_confirmed(redislock *lk);
/* redislock_cancel(): async-signal-safe; in a child after fork() it never
 * reaches the parent's wait. */
void redislock__cancel_request(redislock *lk);
/* A cancel of lk, or a shutdown of its client, waits to be answered. */
int redislock__cancel_requested(const redislock *lk);
/* The cancel of lk was answered (ECANCELED): forget it. */
void redislock__cancel_answered(redislock *lk);
/* redislock_client_shutdown(): async-signal-safe. */
void redislock__shutdown_request(redislock_client *c);

/* ------------------------------------------- state.c: messages and memory */
/* Free a handle's memory (no renewal bookkeeping). */
void redislock__lock_destroy(redislock *lk);
/* Keep the outcome of an API call in the handle's message. */
int redislock__finish(redislock *lk, int rc);
const char *redislock__qname(const redislock *lk, char *buf, size_t len);
void redislock__copy_owner(char *dst, const struct redisReply *r, int *truncated);
/* Keep the per-master failures of an operation in the handle. */
void redislock__note_masters(redislock *lk, const redislock__fanout *f);

/* --------------------------------------------------------------- ownerid.c */
/* Random owner id: prefix + 24 base64 characters of 18 random bytes. */
int redislock__random_id(const char *prefix, char **out);
/* 0 if id is a valid owner id (printable ASCII, no space, not empty,
 * at most REDISLOCK_ID_MAX bytes). */
int redislock__check_id(const char *id, const char *what);
/* A random number for back-off jitter (not for ids). */
uint32_t redislock__random_u32(void);

/* --------------------------------------------------------------- decide.c */
/* What the acquire script answered, per master. */
enum {
    REDISLOCK__ANS_FAILED = -1, /* no answer, or not one the script gives */
    REDISLOCK__ANS_BUSY = 0,    /* another owner holds it */
    REDISLOCK__ANS_TAKEN = 1,   /* granted now */
    REDISLOCK__ANS_MINE = 2     /* this owner id held it already */
};

/* One round's answers. */
typedef struct redislock__answers {
    size_t n, quorum;
    int state[REDISLOCK__MAX_MASTERS];
    long long pttl[REDISLOCK__MAX_MASTERS]; /* BUSY, MINE: the key's; -1 none */
    long long token[REDISLOCK__MAX_MASTERS]; /* TAKEN, MINE of the fenced
                                                script: the fencing token; 0 */
    char owner[REDISLOCK__MAX_MASTERS][REDISLOCK_ID_MAX + 1]; /* BUSY */
    int64_t sent_us, end_us;  /* when the round was sent and answered */
    int64_t woke_us;          /* answers of a wait: when its first BLPOP
                                 answered (0: a plain round) */
    long long place, queued, holders, left; /* a queued kind's BUSY (one
                                 master): this owner's place in line (1:
                                 next; 0: not queued), waiters in line,
                                 holders, ms until the first lease ends
                                 (-1: never; pttl is how long to wait) */
} redislock__answers;

/* The call's situation. */
typedef struct redislock__decide_in {
    int64_t expire_ms;        /* the handle's expiry (0: none) */
    int64_t drift_ppm;        /* the client's drift allowance */
    int uncertain;            /* an earlier acquire's reply of ours was lost */
    int64_t timeout_ms;       /* -1 for ever, 0 a try, > 0 */
    int64_t deadline;         /* of the call (REDISLOCK__NEVER) */
    int64_t now_us;           /* after the round */
    uint32_t jitter;          /* a random number for a back-off */
    int pipelined;            /* the answers came from acquires pipelined
                                 behind a wait (wait.c) */
    int64_t gone_by;          /* the last decision's gone_by (0: none) */
} redislock__decide_in;

enum redislock__verdict {
    REDISLOCK__ROUND_FAILED = 1, /* one master, no usable answer */
    REDISLOCK__HELD,             /* acquired: REDISLOCK_OK */
    REDISLOCK__ALREADY,          /* held before the call: EALREADY */
    REDISLOCK__NO_QUORUM,        /* too few masters answered: ENOQUORUM */
    REDISLOCK__BUSY,             /* a try: EBUSY */
    REDISLOCK__TIMED_OUT,        /* held by another past the deadline */
    REDISLOCK__BACK_OFF,         /* a split vote or a late grant: sleep until */
    REDISLOCK__WAIT,             /* BLPOP for a wake-up until `until` */
    REDISLOCK__CONFIRM           /* a pipelined grant: read its PTTL */
};

typedef struct redislock__decision {
    int verdict;
    int undo;                 /* release first what this owner may hold */
    int late;                 /* a quorum granted after its validity ran out:
                                 undo only what the round took */
    int64_t valid_until;      /* HELD, ALREADY: the local expiry (0: none) */
    int64_t until;            /* WAIT, BACK_OFF: until when */
    size_t taken, mine, busy, failed;
    long long grant_ttl;      /* smallest TTL among the grants; -1: none */
    long long free_pttl;      /* WAIT: the busy PTTL after which a quorum
                                 can be free (decide.c free_at()); -1: none */
    int64_t gone_by;          /* WAIT for that expiry: the key is gone by
                                 then at the latest (0: not known) */
    long long token;          /* HELD, ALREADY: the largest fencing token
                                 among the grants; 0: none */
    int holder;               /* a master whose owner holds a quorum; -1 */
    size_t holder_count;      /* how many masters the likeliest holder has */
} redislock__decision;

/* The verdict of a round: pure (see decide.c for the rules, in order). */
void redislock__decide(const redislock__answers *a, const redislock__decide_in *in,
                       redislock__decision *d);

/* ------------------------------------------------------ lock kinds (mutex.c) */
/* What a kind of lock knows and nothing else does: its keys, its scripts,
 * how a handle calls them and what their answers mean.  The acquire loop,
 * the waits, the renewal thread, the fan-out and the local state are the
 * same for every kind (libuv's handle types over one loop).  The mutex
 * (mutex.c) is python-redis-lock's lock.
 *
 * An acquire script answers an array whose first element is one of
 * REDISLOCK__ANS_*; release answers 0 (released) or 1 (not held); extend
 * and renew answer 0, 1 (not held, gone) or 3 (another owner holds it); a
 * wait is a BLPOP on lk->sig with the acquire call pipelined behind it. */
enum { REDISLOCK__ACQ_TRY = 0, REDISLOCK__ACQ_WAIT = 1 };
struct redislock__kind {
    const char *noun;       /* "lock", ...: for messages */
    int id;                 /* REDISLOCK_KIND_* */
    int hand_back;          /* a wake-up popped and not used goes back to
                               lk->sig for the next waiter (a shared list) */
    int queued;             /* a waiter stands in a queue on the server from
                               its first busy answer on, and a release may
                               hand it the lock at any moment: until the
                               call ends it may hold it (lk->uncertain), and
                               a call that fails leaves the queue (release) */
    /* The keys of a new handle lk for name (lk->c, lk->id set): lk->key
     * (the key that routes the calls: a cluster slot), lk->sig (what a
     * waiter blocks on), lk->fence, and the kind's own.  0, or ENOMEM. */
    int (*keys)(redislock *lk, const char *name, size_t namelen,
                const redislock_options *o);
    /* The acquire script call of lk; mode REDISLOCK__ACQ_TRY for a try
     * (timeout 0), else REDISLOCK__ACQ_WAIT. */
    void (*acquire_call)(const redislock *lk, int mode, redislock__call *call);
    /* Master i's reply to it, into a: 0; 1 when it is none of the
     * script's answers; or an error code with its message. */
    int (*acquire_parse)(const redislock *lk, const struct redisReply *r,
                         redislock__answers *a, size_t i);
    void (*release_call)(const redislock *lk, redislock__call *call);
    /* extend (replaces the expiry with expire_ms) and the renewal's
     * (never shortens it) */
    void (*extend_call)(const redislock *lk, int64_t expire_ms, redislock__call *call);
    void (*renew_call)(const redislock *lk, redislock__call *call);
    /* redislock_query(): the status call, whether a reply is its answer,
     * and the verdict from the answers of the masters with rc 0 (a quorum
     * of them did answer). */
    void (*status_call)(const redislock *lk, redislock__call *call);
    int (*status_ok)(const struct redisReply *r);
    void (*query)(const redislock *lk, const redislock__fanout *f, size_t quorum,
                  redislock_info *info, redislock_queue_info *qi);
};

extern const redislock__kind redislock__kind_mutex;
/* queued.c: the fair lock and the semaphore, whose waiters stand in a
 * queue on the server and are handed the lock (a permit) by a release. */
extern const redislock__kind redislock__kind_fair;
extern const redislock__kind redislock__kind_semaphore;
/* The options of a fair lock or a semaphore (o->fair or o->permits set)
 * make sense for client c: 0, or EINVAL/ENOTSUP with the reason. */
int redislock__queued_check(const redislock_client *c, const redislock_options *o);
/* lk's permits and its waiter and grant leases from o (defaults). */
void redislock__kind_leases(redislock *lk, const redislock_options *o);
/* The grant lease of a release whose handle has none (a reset). */
#define REDISLOCK__GRANT_LEASE_MS 1000
/* The keys of a queued kind's lock, by name, in the order its scripts
 * take them: holders, queue, waiters, fence, then the semaphore's permits
 * key, or the fair lock's lock:<name> and lock-signal:<name> (n: 5 or 6);
 * and the name its waiters' wake-up lists start with. */
typedef struct redislock__qkeys {
    int fair, n;
    char *k[6];
    size_t len[6];
    char *wake;
    size_t wakelen;
} redislock__qkeys;
int redislock__qkeys_make(const redislock_client *c, int fair, const char *name,
                          size_t namelen, redislock__qkeys *q);
void redislock__qkeys_free(redislock__qkeys *q);
/* Add q's keys to a call of a queued script. */
void redislock__qkeys_push(const redislock__qkeys *q, redislock__call *call);

/* -------------------------------------------------------------- acquire.c */
int redislock__acquire(redislock *lk, int64_t timeout_ms);

/* ----------------------------------------------------------------- scan.c */
/* How a SCAN page's keys go into script batches: order[bounds[b] ..
 * bounds[b + 1]) are the page elements of batch b, at most `batch` of
 * them, and on a cluster all in one slot (a script's keys must share one). */
typedef struct redislock__plan {
    size_t *order, *bounds, nb;
    int *slot;
} redislock__plan;
/* The plan of a page whose keys are all strings; 0, EPROTO for a page with
 * anything else, ENOMEM. */
int redislock__page_plan(const redislock_client *c, const struct redisReply *page,
                         size_t batch, redislock__plan *p);
void redislock__plan_free(redislock__plan *p);
/* What to do with one SCAN page: 0 to go on, an error, or a positive value
 * to stop the walk. */
typedef int (*redislock__page_fn)(redislock_client *c, redislock__conn *conn,
                                  const struct redisReply *page, void *arg);
/* Walk the keys matching pattern (SCAN MATCH, pages of about 1000) on
 * every master of member i, each named in *where as it is walked.
 * Returns 0, an error, or page's positive value. */
int redislock__scan_member(redislock_client *c, size_t i, const char *pattern,
                           size_t patlen, redislock__page_fn page, void *arg,
                           const char **where);

/* ----------------------------------------------------------------- wait.c */
/* Outcomes of redislock__wait_signal(). */
enum {
    REDISLOCK__WAIT_WOKEN = 1,   /* a wake-up was popped */
    REDISLOCK__WAIT_EXPIRED = 0  /* "until" passed without one */
};

/* Block on the signal key on every master of f that has a connection and
 * rc 0, until a wake-up is popped on any of them (majority mode with
 * f->grants: until a quorum of the calls behind granted, or none can, for
 * at most master_timeout_ms after the first wake-up) or the monotonic time
 * "until" passes.  With `after`, that call is pipelined behind each BLPOP:
 * the server runs it the moment the BLPOP ends (a wake-up, a timeout or a
 * CLIENT UNBLOCK), and its reply is left in f->replies[i] (resent as EVAL
 * after NOSCRIPT; a master whose reply did not come has rc set: the call
 * may have run there).  The client times the wait itself (the server checks
 * BLPOP timeouts only every 1000/hz ms); the BLPOPs still pending then are
 * cancelled with CLIENT UNBLOCK from helper connections, and a wake-up that
 * raced with the cancellation is still reported: popped[i] is set for every
 * master whose wake-up was consumed.  A stop_fd (a cancel) ends the wait
 * without waiting on any server: f->stopped, and the masters whose replies
 * had not come fail with EIO.  Masters that fail get rc/err (ETIMEDOUT for
 * one that did not answer in time).  Returns WOKEN, EXPIRED, or
 * REDISLOCK_EIO when every connection failed; returns by until +
 * min(command timeout, 250 ms) less the time kept for a give-back
 * (redislock__brief_us()). */
int redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                            size_t sigkeylen, int64_t until, int *popped,
                            redislock__call *after);
/* Push a wake-up back (LPUSH + PEXPIRE) after popping one that will not be
 * used, so that the next waiter is not left asleep.  Best effort. */
void redislock__hand_back(redislock__master *m, const char *sigkey,
                          size_t sigkeylen);
#endif /* REDISLOCK_INTERNAL_H */
