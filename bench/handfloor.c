/* What a scripted hand-off can cost at best (issue 24's goal: the fair
 * lock's hand-off within 1.15x of the LPUSH->BLPOP floor).
 *
 * Two processes, plain hiredis, no libredislock: a waiter blocked in BLPOP
 * on a list and a pusher that wakes it, four ways taken in turn (so that
 * all four see the same load):
 *   floor   LPUSH (the floor of every hand-off benchmark);
 *   script  EVALSHA of a script whose one call is that LPUSH (what running
 *           any Lua at all adds);
 *   grant   EVALSHA of the least a checked hand-off to a queue's head must
 *           do: GET the lock (is it the caller's?), ZPOPMIN the queue, SET
 *           the lock to the head with a lease, LPUSH the head's wake-up;
 *           the waiter returns on the BLPOP reply (it wakes holding it);
 *   take    grant, with a 3-call script pipelined behind the waiter's
 *           BLPOP (TIME; the lock is mine?; SET it for the full lease): a
 *           waiter that must confirm its grant before it returns.
 * Sample: the pusher's call -> the waiter's BLPOP (or take) reply.  The
 * pusher sets the lock and the queue up again before each, while the
 * waiter is blocked (INFO blocked_clients), and pauses 200 us so that the
 * server idles as it does in the hand-off benchmark. */
#include "bench.h"

#include <stdio.h>
#include <string.h>

enum { V_FLOOR, V_SCRIPT, V_GRANT, V_TAKE, NV };
static const char *const vname[NV] = { "floor", "script", "grant", "take" };

#define K_LOCK "bench:hf:{x}:lock"
#define K_QUEUE "bench:hf:{x}:queue"
#define K_WAKE "bench:hf:{x}:wake:B"

static const char *const script_body = "return redis.call('lpush', KEYS[3], 1)";
static const char *const grant_body =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local head = redis.call('zpopmin', KEYS[2])[1]\n"
    "if not head then return -2 end\n"
    "redis.call('set', KEYS[1], head, 'PX', 1000)\n"
    "return redis.call('lpush', KEYS[3], 1)";
static const char *const take_body =
    "local t = redis.call('time')\n"
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('set', KEYS[1], ARGV[1], 'PX', 10000)\n"
    "return {1, t[1]}";

typedef struct hf {
    const bench_opts *o; /* fork()ed: valid in both */
    int n;
    char sha[3][48];     /* script, grant, take */
    int64_t *sent, *got; /* per iteration */
} hf;

static void load(redisContext *ctx, const char *body, char *sha)
{
    redisReply *r = redisCommand(ctx, "SCRIPT LOAD %s", body);
    if (!r || r->type != REDIS_REPLY_STRING || r->len >= 48)
        bench_die("handfloor", "SCRIPT LOAD failed");
    memcpy(sha, r->str, r->len + 1);
    freeReplyObject(r);
}

static void reply_ok(redisContext *ctx, const char *what)
{
    redisReply *r = NULL;
    if (redisGetReply(ctx, (void **)&r) != REDIS_OK || !r || r->type == REDIS_REPLY_ERROR ||
        r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_INTEGER && r->integer < 0))
        bench_die("handfloor", what);
    freeReplyObject(r);
}

static void waiter(hf *h, redisContext *ctx)
{
    int i;
    for (i = 0; i < h->n; i++) {
        redisAppendCommand(ctx, "BLPOP " K_WAKE " 0");
        if (i % NV == V_TAKE)
            redisAppendCommand(ctx, "EVALSHA %s 1 " K_LOCK " B", h->sha[2]);
        reply_ok(ctx, "the waiter's BLPOP failed");
        if (i % NV == V_TAKE)
            reply_ok(ctx, "the waiter's take failed");
        h->got[i] = bench_now_ns();
    }
}

static void pusher(hf *h, redisContext *ctx)
{
    int i, v;
    for (i = 0; i < h->n; i++) {
        v = i % NV;
        freeReplyObject(redisCommand(ctx, "SET " K_LOCK " A"));
        freeReplyObject(redisCommand(ctx, "ZADD " K_QUEUE " 1 B"));
        bench_await_blocked(ctx, 1);
        bench_sleep_ns(200000);
        h->sent[i] = bench_now_ns();
        if (v == V_FLOOR)
            redisAppendCommand(ctx, "LPUSH " K_WAKE " 1");
        else
            redisAppendCommand(ctx, "EVALSHA %s 3 " K_LOCK " " K_QUEUE " " K_WAKE " A",
                               h->sha[v == V_SCRIPT ? 0 : 1]);
        reply_ok(ctx, "the pusher's call failed");
    }
}

static int hf_run(int who, void *arg)
{
    hf *h = arg;
    redisContext *ctx = bench_connect(h->o->urls[0]);
    if (who)
        waiter(h, ctx);
    else
        pusher(h, ctx);
    redisFree(ctx);
    return 0;
}

int bench_handfloor(const bench_opts *o)
{
    int n = (o->iters > 0 ? o->iters : 500) * NV;
    size_t size = sizeof(hf) + 2 * (size_t)n * sizeof(int64_t);
    hf *h = bench_shared(size);
    bench_samples s[NV] = { { 0 } };
    redisContext *ctx = bench_connect(o->urls[0]);
    int i, v;

    h->o = o;
    h->n = n;
    h->sent = (int64_t *)(h + 1);
    h->got = h->sent + n;
    load(ctx, script_body, h->sha[0]);
    load(ctx, grant_body, h->sha[1]);
    load(ctx, take_body, h->sha[2]);
    freeReplyObject(redisCommand(ctx, "DEL " K_LOCK " " K_QUEUE " " K_WAKE));
    if (bench_spawn(2, 1, hf_run, h))
        bench_die("handfloor", "a process failed");
    freeReplyObject(redisCommand(ctx, "DEL " K_LOCK " " K_QUEUE " " K_WAKE));
    redisFree(ctx);
    for (i = 0; i < n; i++)
        bench_samples_add(&s[i % NV], h->got[i] - h->sent[i]);
    bench_rec_begin(o, "handfloor");
    bench_rec_str("url", strncmp(o->urls[0], "unix", 4) ? "tcp" : "unix");
    for (v = 0; v < NV; v++) {
        bench_rec_lat(vname[v], &s[v]);
        bench_samples_free(&s[v]);
    }
    bench_rec_end();
    bench_shared_free(h, size);
    return 0;
}
