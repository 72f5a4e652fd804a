/* One Redis connection: RESP commands out, replies in through hiredis'
 * reader, over a transport (plain.c: a socket of our own; tls.c: TLS over
 * one, for rediss://).  Every wait has
 * a deadline, EINTR never ends a wait, and several connections can be
 * waited on at once (pump.c). */
#include "internal.h"

#include <errno.h>
#include <hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int redislock__conn_io_error(redislock__conn *c, int err, const char *what)
{
    c->broken = 1;
    return redislock__err(c->terr_code ? c->terr_code : REDISLOCK_EIO,
                          "redis %s: %s: %s", c->m->ep.addr, what,
                          c->terr[0] ? c->terr
                          : err      ? strerror(err)
                                     : "connection closed by server");
}

/* A TCP connection without TLS that the server closed or reset (err 0 or
 * ECONNRESET) before sending a single byte: Redis does that on a TLS port,
 * to a client that speaks in the clear.  If a PING on a connection of its
 * own gets no answer either, the server does not speak Redis in the clear:
 * EPROTO with a hint, which no caller retries (an I/O error is retried, as
 * for a server restarting).  0 when it cannot be that. */
static int not_plain_redis(redislock__conn *c, int err)
{
    const redislock__endpoint *ep = &c->m->ep;
    if (c->rx || (err && err != ECONNRESET) || ep->is_unix ||
        c->tr != &redislock__transport_plain ||
        redislock__net_probe_resp(ep, redislock__step_deadline(c->m->client, 1,
                                                                REDISLOCK__NEVER)) != 0)
        return 0;
    c->broken = 1;
    return redislock__err(REDISLOCK_EPROTO,
                          "redis %s: the server %s the connection without a reply, also "
                          "to a PING (is it a TLS port? use rediss://)",
                          ep->addr, err ? "reset" : "closed");
}

/* A send failed with err.  A server that refuses a client (maxclients)
 * writes its reason and closes: if that reason is waiting in the socket,
 * report it instead of a bare "broken pipe". */
static int send_error(redislock__conn *c, int err)
{
    char buf[512], text[256];
    ssize_t n = 0;
    int rc;
    if (err == EPIPE || err == ECONNRESET) {
        do
            n = c->tr->recv(c, buf, sizeof buf - 1);
        while (n < 0 && errno == EINTR);
    }
    if (n > 1 && buf[0] == '-') {
        size_t len = (size_t)n;
        char *eol = memchr(buf, '\r', len);
        if (eol)
            len = (size_t)(eol - buf);
        redislock__printable(buf + 1, len - 1, text, sizeof text);
        c->broken = 1;
        return redislock__err(REDISLOCK_EPROTO, "redis %s: the server closed the "
                              "connection: %s", c->m->ep.addr, text);
    }
    if (n <= 0 && (err == EPIPE || err == ECONNRESET) && (rc = not_plain_redis(c, ECONNRESET)))
        return rc;
    return redislock__conn_io_error(c, err, "send");
}

static int grow(redislock__conn *c, size_t need)
{
    size_t cap = c->ocap ? c->ocap : 256;
    char *p;
    if (c->olen + need <= c->ocap)
        return 0;
    while (cap < c->olen + need)
        cap *= 2;
    p = redislock__realloc(c->obuf, cap);
    if (!p)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory queueing a command");
    c->obuf = p;
    c->ocap = cap;
    return 0;
}

static size_t numlen(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int redislock__conn_append(redislock__conn *c, int argc,
                           const char *const *argv, const size_t *lens)
{
    size_t need = 1 + numlen((size_t)argc) + 2 + 1; /* +1: sprintf NUL */
    int i;
    char *p;
    for (i = 0; i < argc; i++)
        need += 1 + numlen(lens[i]) + 2 + lens[i] + 2;
    if (grow(c, need))
        return REDISLOCK_ENOMEM;
    p = c->obuf + c->olen;
    p += sprintf(p, "*%d\r\n", argc);
    for (i = 0; i < argc; i++) {
        p += sprintf(p, "$%zu\r\n", lens[i]);
        if (lens[i])
            memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    c->olen = (size_t)(p - c->obuf);
    c->pending++;
    return 0;
}

int redislock__conn_appendv(redislock__conn *c, ...)
{
    const char *argv[16];
    size_t lens[16];
    int argc = 0;
    const char *a;
    va_list ap;
    va_start(ap, c);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 16) {
        argv[argc] = a;
        lens[argc++] = strlen(a);
    }
    va_end(ap);
    return redislock__conn_append(c, argc, argv, lens);
}

int redislock__conn_flush_nb(redislock__conn *c)
{
    while (c->opos < c->olen) {
        ssize_t n = c->tr->send(c, c->obuf + c->opos, c->olen - c->opos);
        if (n > 0) {
            c->opos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return send_error(c, errno);
    }
    c->olen = c->opos = 0;
    return 1;
}

int redislock__conn_flush(redislock__conn *c, int64_t deadline)
{
    while (c->opos < c->olen) {
        ssize_t n = c->tr->send(c, c->obuf + c->opos, c->olen - c->opos);
        if (n > 0) {
            c->opos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = redislock__net_wait(c->fd, c->tr->events(c, POLLOUT), deadline);
            if (w > 0)
                continue;
            if (w == 0) {
                c->broken = 1; /* a partial command cannot be taken back */
                return redislock__err(REDISLOCK_ETIMEDOUT,
                                      "redis %s: timed out sending a command",
                                      c->m->ep.addr);
            }
        }
        return send_error(c, errno);
    }
    c->olen = c->opos = 0;
    return 0;
}

/* Bound on the elements of one reply array.  hiredis allocates an array's
 * element table as soon as it reads the count, before any element came: a
 * broken or hostile server that announces "*250005000" made the client
 * allocate 2 GB (fuzz_reply).  No answer of a lock server comes near this
 * (a SCAN page holds about 1,000 keys, a script batch 64). */
#define MAX_REPLY_ELEMENTS 1000000

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
typedef size_t array_len_t; /* hiredis 1.x */
#else
typedef int array_len_t; /* hiredis 0.14 */
#endif

static redisReplyObjectFunctions guarded_fns;
static void *(*default_array)(const redisReadTask *, array_len_t);
static redisReplyObjectFunctions *default_fns; /* atomic: the readers' own */
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static _Thread_local long long refused_len; /* the count guarded_array refused */

static void *guarded_array(const redisReadTask *task, array_len_t n)
{
    if ((long long)n > MAX_REPLY_ELEMENTS) {
        refused_len = (long long)n;
        return NULL; /* the reader's error: "Out of memory" */
    }
    return default_array(task, n);
}

static void guard_init(void)
{
    redisReplyObjectFunctions *d = __atomic_load_n(&default_fns, __ATOMIC_ACQUIRE);
    guarded_fns = *d;
    default_array = d->createArray;
    guarded_fns.createArray = guarded_array;
}

/* A new reader with the bound on array replies (also the fuzz target's). */
redisReader *redislock__reader_new(void)
{
    redisReader *r = redisReaderCreate();
    if (!r)
        return NULL;
    __atomic_store_n(&default_fns, r->fn, __ATOMIC_RELEASE);
    pthread_once(&guard_once, guard_init);
    r->fn = &guarded_fns;
    return r;
}

/* Take one parsed reply from the reader: 1 if one was there. */
static int take(redislock__conn *c, redisReply **out)
{
    void *r = NULL;
    refused_len = 0;
    if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
        c->broken = 1;
        if (refused_len)
            return redislock__err(REDISLOCK_EPROTO,
                                  "redis %s: protocol error: an array of %lld elements "
                                  "(no answer of a lock server has more than %d)",
                                  c->m->ep.addr, refused_len, MAX_REPLY_ELEMENTS);
        return redislock__err(REDISLOCK_EPROTO, "redis %s: protocol error: %s",
                              c->m->ep.addr, c->reader->errstr);
    }
    if (!r)
        return 0;
    c->pending--;
    *out = r;
    return 1;
}

/* Read what the socket has now: 1 if bytes were fed, 0 if none yet. */
static int fill(redislock__conn *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = c->tr->recv(c, buf, sizeof buf);
        int err, rc;
        if (n > 0) {
            c->rx = 1;
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                c->broken = 1;
                return redislock__err(REDISLOCK_ENOMEM,
                                      "redis %s: out of memory reading a reply",
                                      c->m->ep.addr);
            }
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        err = n == 0 ? 0 : errno;
        if ((rc = not_plain_redis(c, err)))
            return rc;
        return redislock__conn_io_error(c, err, "read");
    }
}

int redislock__conn_read_nb(redislock__conn *c, redisReply **out)
{
    int rc;
    if (c->broken)
        return redislock__err(REDISLOCK_EIO, "redis %s: connection is broken",
                              c->m->ep.addr);
    for (;;) {
        if ((rc = take(c, out)) != 0)
            return rc;
        if ((rc = fill(c)) <= 0)
            return rc;
    }
}

int redislock__conn_read(redislock__conn *c, int64_t deadline, redisReply **out)
{
    for (;;) {
        int rc = redislock__conn_read_nb(c, out), w;
        if (rc != 0)
            return rc < 0 ? rc : 0;
        w = redislock__net_wait(c->fd, c->tr->events(c, POLLIN), deadline);
        if (w == 0)
            return redislock__err(REDISLOCK_ETIMEDOUT,
                                  "redis %s: no reply in time", c->m->ep.addr);
        if (w < 0)
            return redislock__conn_io_error(c, errno, "poll");
    }
}

int redislock__conn_command(redislock__conn *c, int64_t deadline, int argc,
                            const char *const *argv, const size_t *lens,
                            redisReply **out)
{
    int rc = redislock__conn_append(c, argc, argv, lens);
    if (!rc)
        rc = redislock__conn_flush(c, deadline);
    if (!rc)
        rc = redislock__conn_read(c, deadline, out);
    return rc;
}

short redislock__conn_events(const redislock__conn *c)
{
    return c->tr->events(c, (short)(POLLIN | (c->opos < c->olen ? POLLOUT : 0)));
}

int redislock__conn_pending(const redislock__conn *c)
{
    return c->tr->pending(c);
}

int redislock__conn_alive(redislock__conn *c)
{
    return !c->broken && c->tr->alive(c);
}

int redislock__conn_reply_error(redislock__conn *c, const redisReply *r,
                                const char *what)
{
    char text[256];
    const char *s = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type";
    size_t len = r->type == REDIS_REPLY_ERROR ? r->len : strlen(s);
    /* the server's text may hold any byte: one printable line of it */
    redislock__printable(s, len > 200 ? 200 : len, text, sizeof text);
    if (!strncmp(s, "NOAUTH", 6) || !strncmp(s, "WRONGPASS", 9))
        return redislock__err(REDISLOCK_EAUTH, "redis %s: %s: %s", c->m->ep.addr,
                              what, text);
    return redislock__err(REDISLOCK_EPROTO, "redis %s: %s: %s", c->m->ep.addr, what,
                          text);
}

/* AUTH, SELECT and CLIENT CAPA redirect (a Sentinel's master), pipelined:
 * one round trip, none when there is nothing to say.  A sentinel uses its
 * own credentials (ep), never the client's.  A user without a password
 * logs in with an empty one (which an ACL user with nopass accepts). */
static int handshake(redislock__conn *c, int64_t deadline)
{
    const redislock_client *cl = c->m->client;
    const redislock__endpoint *ep = &c->m->ep;
    const char *user = cl->username && !ep->sentinel ? cl->username : ep->username;
    const char *pass = cl->password && !ep->sentinel ? cl->password : ep->password;
    char db[16];
    int rc = 0, failed = 0, want_auth = pass || user, want_db = ep->db != 0, i;
    int want_capa = c->m->capa_redirect, n = want_auth + want_db + want_capa;

    if (want_auth)
        rc = user ? redislock__conn_appendv(c, "AUTH", user, pass ? pass : "",
                                            (const char *)NULL)
                  : redislock__conn_appendv(c, "AUTH", pass, (const char *)NULL);
    if (!rc && want_db) {
        snprintf(db, sizeof db, "%d", ep->db);
        rc = redislock__conn_appendv(c, "SELECT", db, (const char *)NULL);
    }
    if (!rc && want_capa)
        rc = redislock__conn_appendv(c, "CLIENT", "CAPA", "redirect", (const char *)NULL);
    if (rc || n == 0)
        return rc;
    if ((rc = redislock__conn_flush(c, deadline)))
        return rc;
    for (i = 0; i < n; i++) {
        redisReply *r = NULL;
        int auth = want_auth && i == 0, capa = want_capa && i == n - 1;
        if ((rc = redislock__conn_read(c, deadline, &r)))
            return rc;
        /* The first error is the cause (a failed AUTH makes SELECT answer
         * NOAUTH); the replies after it are read and dropped.  CLIENT CAPA
         * is unknown to Redis: its error means nothing.
         * redislock__conn_read() returns 0 only with a reply, which the
         * analyzer cannot see across files (redislock__err() returns its
         * negative code). */
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
        if (r->type == REDIS_REPLY_ERROR && !failed && !capa) {
            char text[256];
            redislock__printable(r->str, r->len > 200 ? 200 : r->len, text, sizeof text);
            failed = auth ? redislock__err(REDISLOCK_EAUTH, "redis %s: AUTH failed: %s%s",
                                           ep->addr, text,
                                           pass ? "" : " (a user without a password)")
                          : redislock__err(REDISLOCK_EINVAL,
                                           "redis %s: SELECT %d failed: %s",
                                           ep->addr, ep->db, text);
        }
        freeReplyObject(r);
    }
    return failed;
}

int redislock__conn_open(redislock__master *m, int64_t deadline,
                         redislock__conn **out)
{
    redislock__conn *c = redislock__calloc(1, sizeof *c);
    int rc;
    if (!c)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory opening a connection");
    c->fd = -1;
    c->m = m;
    c->tr = m->ep.tls ? &redislock__transport_tls : &redislock__transport_plain;
    c->gen = redislock__fork_gen();
    c->reader = redislock__reader_new();
    if (!c->reader) {
        redislock__free(c);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory opening a connection");
    }
    rc = c->tr->open(c, deadline);
    if (!rc)
        rc = handshake(c, deadline);
    if (rc) {
        if (rc == REDISLOCK_ETIMEDOUT)
            rc = redislock__err(REDISLOCK_EIO,
                                "redis %s: no answer to AUTH/SELECT in time",
                                m->ep.addr);
        redislock__conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void redislock__conn_close(redislock__conn *c)
{
    if (!c)
        return;
    c->tr->close(c);
    if (c->reader)
        redisReaderFree(c->reader);
    redislock__free(c->obuf);
    redislock__free(c);
}
