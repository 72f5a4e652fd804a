/* Fuzz target: everything that interprets server replies.  The input is
 * served as the byte stream a Redis master sends back, on a real
 * connection object (a socketpair), to a real public operation: acquire
 * (try, or waiting: the acquire script's reply, CLIENT ID, BLPOP), release,
 * extend, query, reset, reset_all (SCAN pages, pipelined batches, NOSCRIPT
 * resends), one after another on the same stream, with one master or three
 * (majority mode: quorum counting, undo).
 *
 * Connections come from a wrapped pool (-Wl,--wrap=redislock__pool_get and
 * redislock__pool_put): the first connection to master i reads part i of
 * the input; the write side is shut after it, so every read ends (EOF)
 * instead of waiting.  Further connections (recovery, CLIENT UNBLOCK
 * helpers, hand-backs) fail as a refused connect would.
 *
 * Input: byte 0 chooses the operations, byte 1 the masters (1 or 3) and the
 * lock's expiry; the rest is the reply stream, split into the masters'
 * parts at each "\n~~\n".  Any outcome is fine but a crash, a leak, an
 * out-of-range read, a hang, or a failure without a one-line message. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

#define NM 3
#define SEP "\n~~\n"

int __real_redislock__pool_get(redislock__master *m, int64_t deadline,
                               redislock__conn **out);
void __real_redislock__pool_put(redislock__conn *c);
int __wrap_redislock__pool_get(redislock__master *m, int64_t deadline,
                               redislock__conn **out);
void __wrap_redislock__pool_put(redislock__conn *c);

static struct feed {
    redislock__master *m;
    const uint8_t *data;
    size_t len;
    int used;        /* its one connection was made */
    int peer;        /* the "server" end, kept open until the input ends */
    redislock__conn *idle;
} feeds[NM];
static int nfeeds;

static struct feed *feed_of(redislock__master *m)
{
    int i;
    for (i = 0; i < nfeeds; i++)
        if (feeds[i].m == m)
            return &feeds[i];
    return NULL;
}

static int refuse(redislock__master *m)
{
    return redislock__err(REDISLOCK_EIO, "redis %s: connect: fuzz: no more connections",
                          m->ep.addr);
}

int __wrap_redislock__pool_get(redislock__master *m, int64_t deadline,
                               redislock__conn **out)
{
    struct feed *f = feed_of(m);
    redislock__conn *c;
    int sv[2];
    size_t off = 0;
    (void)deadline;
    if (!f)
        return refuse(m);
    if (f->idle) {
        *out = f->idle;
        f->idle = NULL;
        return 0;
    }
    if (f->used)
        return refuse(m);
    f->used = 1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return refuse(m);
    while (off < f->len) {
        ssize_t n = write(sv[1], f->data + off, f->len - off);
        if (n <= 0)
            break; /* longer than the socket buffer: serve what fits */
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    f->peer = sv[1];
    c = redislock__calloc(1, sizeof *c);
    if (!c || !(c->reader = redislock__reader_new())) {
        redislock__free(c);
        close(sv[0]);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory");
    }
    c->fd = sv[0];
    c->tr = &redislock__transport_plain;
    c->m = m;
    c->gen = redislock__fork_gen();
    *out = c;
    return 0;
}

void __wrap_redislock__pool_put(redislock__conn *c)
{
    struct feed *f;
    if (!c)
        return;
    f = feed_of(c->m);
    if (f && !f->idle && !c->broken && !c->pending && !c->olen) {
        f->idle = c; /* the next operation goes on reading the stream */
        return;
    }
    redislock__conn_close(c);
}

static void feeds_end(void)
{
    int i;
    for (i = 0; i < nfeeds; i++) {
        redislock__conn_close(feeds[i].idle);
        if (feeds[i].peer > 0)
            close(feeds[i].peer);
    }
    memset(feeds, 0, sizeof feeds);
    nfeeds = 0;
}

/* Split the stream into n parts at SEP. */
static void split(const uint8_t *p, size_t len, redislock_client *c, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        const uint8_t *end = NULL;
        size_t k;
        feeds[i].m = c->members[i].node;
        feeds[i].data = p;
        for (k = 0; k + 4 <= len && i + 1 < n; k++)
            if (!memcmp(p + k, SEP, 4)) {
                end = p + k;
                break;
            }
        feeds[i].len = end ? (size_t)(end - p) : len;
        if (end) {
            len -= (size_t)(end - p) + 4;
            p = end + 4;
        } else {
            len = 0;
        }
    }
    nfeeds = (int)n;
}

static int trace = -1;

static void check(int rc)
{
    if (trace > 0)
        fprintf(stderr, "  %s: %s\n", rc >= 0 ? "ok" : redislock_err_name(rc),
                rc >= 0 ? "" : redislock_last_error());
    if (rc < 0 && !redislock_last_error()[0])
        abort(); /* every failure names its cause */
    if (strpbrk(redislock_last_error(), "\r\n"))
        abort(); /* in one line, whatever the server sent */
    if (rc < REDISLOCK_ENOQUORUM)
        abort(); /* an unknown code */
}

/* What a handle believes must follow from what the call returned. */
static void expect_held(const redislock *lk, int want)
{
    if (redislock_held(lk) != want)
        abort();
}

static void run_op(redislock *lk, redislock_client *c, int op)
{
    redislock_info info;
    uint64_t count;
    int rc;
    switch (op) {
    case 0:
    case 1:
        rc = op ? redislock_acquire(lk, 30) : redislock_try_acquire(lk);
        check(rc);
        if (rc == 0)
            expect_held(lk, 1);
        break;
    case 2:
        rc = redislock_release(lk);
        check(rc);
        if (rc == 0 || rc == REDISLOCK_ENOTHELD)
            expect_held(lk, 0);
        break;
    case 3: check(redislock_extend(lk, 1000)); break;
    case 4:
        rc = redislock_query(lk, &info);
        check(rc);
        if (rc == 0 && (strnlen(info.owner, sizeof info.owner) > REDISLOCK_ID_MAX ||
                        (!info.held && (info.owner[0] || info.ttl_ms)) ||
                        (info.mine && !info.held)))
            abort(); /* a free lock has no owner and no TTL */
        break;
    case 5: check(redislock_reset(c, "fz")); break;
    case 6: check(redislock_reset_all(c, NULL, &count)); break;
    case 7: check(redislock_reset_all(c, "own", &count)); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const urls[NM] = { "unix:///nonexistent/fuzz-a.sock",
                                          "unix:///nonexistent/fuzz-b.sock",
                                          "unix:///nonexistent/fuzz-c.sock" };
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_options lo = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    size_t n;
    int ops, i;

    if (trace < 0)
        trace = getenv("FUZZ_REPLY_TRACE") != NULL;
    if (size < 2)
        return 0;
    ops = data[0];
    n = (data[1] & 1) ? NM : 1;
    o.command_timeout_ms = 20;
    o.connect_timeout_ms = 1;
    o.master_timeout_ms = 20;
    o.signal_expire_ms = 100;
    lo.expire_ms = (n > 1 || (data[1] & 2)) ? 10000 : 0;
    lo.id = "fuzz-owner";
    if (redislock_client_new_multi(&c, urls, n, &o))
        abort();
    if (redislock_new(&lk, c, "fz", &lo))
        abort();
    split(data + 2, size - 2, c, n);
    /* three operations on the same stream: 3 bits each, from byte 0 and
     * the upper bits of byte 1 */
    for (i = 0; i < 3; i++) {
        if (trace > 0)
            fprintf(stderr, " op %d:\n", ((ops | (data[1] & 0xf8) << 5) >> (3 * i)) & 7);
        run_op(lk, c, ((ops | (data[1] & 0xf8) << 5) >> (3 * i)) & 7);
    }
    redislock_free(lk);
    redislock_client_free(c);
    feeds_end();
    return 0;
}
