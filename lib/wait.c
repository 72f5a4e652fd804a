/* Waiting for a wake-up: BLPOP on the signal key with a client-side timer.
 *
 * The server checks blocked clients' timeouts only at its cron rate (every
 * 100 ms with the default hz 10), so a BLPOP timeout alone would wake a
 * waiter up to 100 ms late after the holder's expiry or the caller's
 * deadline.  The client therefore times the wait itself; when its timer
 * fires first it sends CLIENT UNBLOCK <id> TIMEOUT from a second connection.
 * The server handles that atomically with respect to pushes: either the
 * waiter was already served (its reply, with the wake-up, is on the way and
 * is read) or it gets the timeout reply.  No wake-up is lost.
 *
 * The connection's CLIENT ID is learnt by pipelining CLIENT ID in front of
 * its first BLPOP: no extra round trip.  Servers without CLIENT UNBLOCK
 * (Redis < 5) fall back to the server's own timeout. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* A BLPOP never blocks longer than this; the caller then re-checks the lock
 * (one script call) and waits again.  It bounds how long a connection to a
 * silently vanished server can go unnoticed. */
#define MAX_BLOCK_US (60 * 1000000LL)

int64_t redislock__slack_us(const redislock_client *c)
{
    int64_t ms = c->command_timeout_ms < 250 ? c->command_timeout_ms : 250;
    return ms * 1000;
}

static void format_timeout(const redislock__master *m, int64_t wait_us,
                           char *buf, size_t len)
{
    long long ms;
    if (wait_us == REDISLOCK__NEVER) {
        snprintf(buf, len, "0");
        return;
    }
    ms = (long long)((wait_us + 999) / 1000);
    if (ms < 1)
        ms = 1;
    if (__atomic_load_n(&m->int_timeouts, __ATOMIC_RELAXED))
        snprintf(buf, len, "%lld", (ms + 999) / 1000);
    else
        snprintf(buf, len, "%lld.%03lld", ms / 1000, ms % 1000);
}

/* Read the CLIENT ID reply pipelined before the BLPOP. */
static int read_client_id(redislock__conn *c, int64_t deadline)
{
    redisReply *r = NULL;
    int rc = redislock__conn_read(c, deadline, &r);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        c->client_id = r->integer;
    } else {
        c->client_id = -1;
        __atomic_store_n(&c->m->no_unblock, 1, __ATOMIC_RELAXED);
        redislock__log(c->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: no CLIENT ID (%s); waits end on the server's "
                       "timeout", c->m->ep.addr,
                       r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
    }
    freeReplyObject(r);
    return 0;
}

/* Interpret the BLPOP reply.  1 for "retry with whole-second timeouts". */
static int blpop_result(redislock__conn *c, redisReply *r, int *retry)
{
    int rc;
    *retry = 0;
    if (r->type == REDIS_REPLY_NIL)
        rc = REDISLOCK__WAIT_EXPIRED;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        rc = REDISLOCK__WAIT_WOKEN;
    else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "timeout is not") &&
             !__atomic_load_n(&c->m->int_timeouts, __ATOMIC_RELAXED)) {
        __atomic_store_n(&c->m->int_timeouts, 1, __ATOMIC_RELAXED);
        redislock__log(c->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: BLPOP wants whole seconds (Redis < 6)",
                       c->m->ep.addr);
        *retry = 1;
        rc = 0;
    } else
        rc = redislock__conn_reply_error(c, r, "BLPOP");
    freeReplyObject(r);
    return rc;
}

/* CLIENT UNBLOCK c from a helper connection.  0 when sent and answered. */
static int unblock(redislock__conn *c, int64_t hard)
{
    redislock__conn *h = NULL;
    redisReply *r = NULL;
    char id[24];
    int rc;
    if (c->client_id <= 0)
        return -1;
    if ((rc = redislock__pool_get(c->m, hard, &h)))
        return rc;
    snprintf(id, sizeof id, "%lld", c->client_id);
    rc = redislock__conn_appendv(h, "CLIENT", "UNBLOCK", id, "TIMEOUT", NULL);
    if (!rc)
        rc = redislock__conn_flush(h, hard);
    if (!rc)
        rc = redislock__conn_read(h, hard, &r);
    if (!rc && r->type == REDIS_REPLY_ERROR) {
        __atomic_store_n(&c->m->no_unblock, 1, __ATOMIC_RELAXED);
        redislock__log(c->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: CLIENT UNBLOCK refused (%s); waits end on the "
                       "server's timeout", c->m->ep.addr, r->str);
        rc = -1;
    }
    if (r)
        freeReplyObject(r);
    redislock__pool_put(h);
    return rc;
}

int redislock__wait_signal(redislock__conn *c, const char *sigkey,
                           size_t sigkeylen, int64_t until)
{
    redislock__master *m = c->m;
    int64_t slack = redislock__slack_us(m->client);
    int attempts;

    for (attempts = 0; attempts < 2; attempts++) {
        int64_t now = redislock__now_us(), hard, wait_us;
        char tmo[32];
        const char *argv[3];
        size_t lens[3];
        int want_id, rc, retry;
        redisReply *r = NULL;

        if (until != REDISLOCK__NEVER && until <= now)
            return REDISLOCK__WAIT_EXPIRED;
        if (until == REDISLOCK__NEVER || until - now > MAX_BLOCK_US)
            until = now + MAX_BLOCK_US;
        wait_us = until - now;
        hard = until + slack;
        format_timeout(m, wait_us, tmo, sizeof tmo);

        want_id = c->client_id == 0 &&
                  !__atomic_load_n(&m->no_unblock, __ATOMIC_RELAXED);
        if (want_id && (rc = redislock__conn_appendv(c, "CLIENT", "ID", NULL)))
            return rc;
        argv[0] = "BLPOP", lens[0] = 5;
        argv[1] = sigkey, lens[1] = sigkeylen;
        argv[2] = tmo, lens[2] = strlen(tmo);
        if ((rc = redislock__conn_append(c, 3, argv, lens)) ||
            (rc = redislock__conn_flush(c, hard)))
            return rc;
        if (want_id && (rc = read_client_id(c, hard)))
            return rc;

        rc = redislock__conn_read(c, until, &r);
        if (rc == REDISLOCK_ETIMEDOUT) {
            /* Our timer fired first: cancel, then collect the reply. */
            if (__atomic_load_n(&m->no_unblock, __ATOMIC_RELAXED) ||
                unblock(c, hard) != 0)
                redislock__log(m->client, REDISLOCK_LOG_DEBUG,
                               "redis %s: waiting for the server's BLPOP timeout",
                               m->ep.addr);
            rc = redislock__conn_read(c, hard, &r);
            if (rc == REDISLOCK_ETIMEDOUT) {
                c->broken = 1;
                return redislock__err(REDISLOCK_EIO,
                                      "redis %s: no reply to BLPOP %s s in time",
                                      m->ep.addr, tmo);
            }
        }
        if (rc)
            return rc;
        rc = blpop_result(c, r, &retry);
        if (!retry)
            return rc;
    }
    return redislock__err(REDISLOCK_EPROTO, "redis %s: BLPOP rejects its timeout",
                          m->ep.addr);
}

void redislock__hand_back(redislock__master *m, const char *sigkey,
                          size_t sigkeylen)
{
    redislock__conn *c = NULL;
    redislock__call call;
    redisReply *r = NULL;
    int64_t deadline = redislock__after_ms(m->client->command_timeout_ms);
    int rc;

    if (redislock__pool_get(m, deadline, &c))
        return;
    redislock__call_init(&call, &redislock__script_signal);
    redislock__call_key(&call, sigkey, sigkeylen);
    redislock__call_int(&call, m->client->signal_expire_ms);
    rc = redislock__call_run(c, &call, deadline, &r);
    redislock__call_free(&call);
    if (r)
        freeReplyObject(r);
    redislock__log(m->client, rc ? REDISLOCK_LOG_WARN : REDISLOCK_LOG_DEBUG,
                   "redis %s: handing back an unused wake-up %s", m->ep.addr,
                   rc ? "failed" : "done");
    redislock__pool_put(c);
}
