/* The Lua scripts, run with EVALSHA and resent with EVAL on NOSCRIPT.
 *
 * release, extend and reset keep python-redis-lock 4.x's semantics and reply
 * codes (see doc/design.md); acquire is ours: it answers in the same round
 * trip either "acquired" or who holds the lock and for how long, so that a
 * waiter can block no longer than the holder's expiry. */
#include "internal.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>

/* KEYS: lock, signal.  ARGV: id, expiry ms (0: none).
 * {1}: acquired.  {2, pttl}: this id holds it.  {0, pttl, owner}: busy.
 * A stale wake-up left by a release nobody waited for is dropped on success,
 * since the lock is no longer free. */
redislock__script redislock__script_acquire = {
    "acquire",
    "local px = tonumber(ARGV[2])\n"
    "local ok\n"
    "if px > 0 then\n"
    "  ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)\n"
    "else\n"
    "  ok = redis.call('set', KEYS[1], ARGV[1], 'NX')\n"
    "end\n"
    "if ok then\n"
    "  redis.call('del', KEYS[2])\n"
    "  return {1}\n"
    "end\n"
    "local owner = redis.call('get', KEYS[1])\n"
    "local ttl = redis.call('pttl', KEYS[1])\n"
    "if owner == ARGV[1] then return {2, ttl} end\n"
    "return {0, ttl, owner}\n",
    ""
};

/* The same with fencing (a separate script, so that the one above, which
 * every lock without fencing sends, stays byte for byte what it was).
 * KEYS: lock, signal, fence (the token counter, in the lock's slot).
 * ARGV: id, expiry ms.  {1, token}: acquired.  {2, pttl, token}: this id
 * holds it (the token of its grant: the counter's value).  {0, pttl,
 * owner}: busy.
 * A grant's token is max(counter + 1, the server's TIME in microseconds),
 * stored in the counter: it is larger than every earlier grant's, and a
 * counter that was lost (a restart without persistence, an older snapshot,
 * a deleted key) starts again beyond every token handed out before, as
 * long as the server's clock has not gone back.  The counter never
 * expires and no reset deletes it.  Effects replication (needed for TIME
 * before a write on Redis < 5) sends replicas the value itself. */
redislock__script redislock__script_acquire_fenced = {
    "acquire_fenced",
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local function bump()\n"
    "  local t = redis.call('time')\n"
    "  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "  local cur = tonumber(redis.call('get', KEYS[3]))\n"
    "  if cur and cur >= now then return redis.call('incr', KEYS[3]) end\n"
    "  redis.call('set', KEYS[3], string.format('%.0f', now))\n"
    "  return now\n"
    "end\n"
    "local px = tonumber(ARGV[2])\n"
    "local ok\n"
    "if px > 0 then\n"
    "  ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)\n"
    "else\n"
    "  ok = redis.call('set', KEYS[1], ARGV[1], 'NX')\n"
    "end\n"
    "if ok then\n"
    "  redis.call('del', KEYS[2])\n"
    "  return {1, bump()}\n"
    "end\n"
    "local owner = redis.call('get', KEYS[1])\n"
    "local ttl = redis.call('pttl', KEYS[1])\n"
    "if owner == ARGV[1] then\n"
    "  local tok = tonumber(redis.call('get', KEYS[3]))\n"
    "  return {2, ttl, tok or bump()}\n"
    "end\n"
    "return {0, ttl, owner}\n",
    ""
};

/* KEYS: lock, signal.  ARGV: id, signal expiry ms.  0: released, 1: not held.
 * The list is emptied before the push so that it never holds more than one
 * wake-up: each release wakes exactly one waiter. */
redislock__script redislock__script_release = {
    "release",
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 1 end\n"
    "redis.call('del', KEYS[2])\n"
    "redis.call('lpush', KEYS[2], 1)\n"
    "redis.call('pexpire', KEYS[2], ARGV[2])\n"
    "redis.call('del', KEYS[1])\n"
    "return 0\n",
    ""
};

/* KEYS: lock.  ARGV: id, expiry ms.  0: done, 1: not held, 2: no expiry. */
redislock__script redislock__script_extend = {
    "extend",
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 1 end\n"
    "if redis.call('pttl', KEYS[1]) < 0 then return 2 end\n"
    "redis.call('pexpire', KEYS[1], ARGV[2])\n"
    "return 0\n",
    ""
};

/* KEYS: lock.  {owner or nil, pttl} read atomically. */
redislock__script redislock__script_status = {
    "status",
    "return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}\n",
    ""
};

/* KEYS: lock1, signal1, lock2, signal2, ...  ARGV: signal expiry ms, owner
 * prefix ("" for any).  Resets the string keys whose owner matches; returns
 * {how many, how many keys were skipped as not strings}.  Run on a bounded
 * batch so that no call is slow. */
redislock__script redislock__script_reset_many = {
    "reset_many",
    "local n = 0\n"
    "local skipped = 0\n"
    "local pre = ARGV[2]\n"
    "local plen = #pre\n"
    "for i = 1, #KEYS, 2 do\n"
    "  local k = KEYS[i]\n"
    "  local t = redis.call('type', k).ok\n"
    "  if t == 'string' then\n"
    "    local owner = redis.call('get', k)\n"
    "    if plen == 0 or string.sub(owner, 1, plen) == pre then\n"
    "      redis.call('del', KEYS[i + 1])\n"
    "      redis.call('lpush', KEYS[i + 1], 1)\n"
    "      redis.call('pexpire', KEYS[i + 1], ARGV[1])\n"
    "      n = n + redis.call('del', k)\n"
    "    end\n"
    "  elseif t ~= 'none' then\n"
    "    skipped = skipped + 1\n"
    "  end\n"
    "end\n"
    "return {n, skipped}\n",
    ""
};

/* KEYS: for each lock, its lock key and the holders and queue keys of
 * the fair lock of that name (lock-holders:{name}, lock-queue:{name}).
 * For each, in order: {owner, pttl, fair, queued} read atomically (fair:
 * 1 when the owner is that fair lock's holder; queued: its queue's
 * length), or 0 when the key is gone or not a string (not a lock).  Run
 * on a bounded batch so that no call is slow. */
redislock__script redislock__script_list = {
    "list",
    "local function n(r)\n"
    "  if type(r) == 'table' then return 0 end\n"
    "  return r\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, #KEYS, 3 do\n"
    "  local k = KEYS[i]\n"
    "  if redis.call('type', k).ok == 'string' then\n"
    "    local o = redis.call('get', k)\n"
    "    local f = redis.pcall('zscore', KEYS[i + 1], o)\n"
    "    if f and type(f) ~= 'table' then f = 1 else f = 0 end\n"
    "    out[#out + 1] = {o, redis.call('pttl', k), f, n(redis.pcall('zcard', KEYS[i + 2]))}\n"
    "  else\n"
    "    out[#out + 1] = 0\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""
};

/* KEYS: signal.  ARGV: signal expiry ms.  Puts back a wake-up that a waiter
 * popped and will not use, keeping the list at one element at most. */
redislock__script redislock__script_signal = {
    "signal",
    "if redis.call('llen', KEYS[1]) == 0 then redis.call('lpush', KEYS[1], 1) end\n"
    "redis.call('pexpire', KEYS[1], ARGV[1])\n"
    "return 0\n",
    ""
};

/* KEYS: lock.  ARGV: id, expiry ms.  0: renewed, 1: gone, 3: another owner
 * holds it.  Auto-renewal's extend: it tells "gone" from "taken", and it
 * never shortens the TTL (an extend beyond the expiry stands): a renewal
 * that reaches the server after a newer extend then cannot cut the key
 * below what the extend's answer let the handle believe. */
redislock__script redislock__script_renew = {
    "renew",
    "local v = redis.call('get', KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then\n"
    "    redis.call('pexpire', KEYS[1], ARGV[2])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if v then return 3 end\n"
    "return 1\n",
    ""
};

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void)
{
    redislock__script *all[] = {
        &redislock__script_acquire, &redislock__script_acquire_fenced,
        &redislock__script_release,
        &redislock__script_extend, &redislock__script_status,
        &redislock__script_reset_many,
        &redislock__script_signal, &redislock__script_renew,
        &redislock__script_list,
        &redislock__script_q_acquire, &redislock__script_q_release,
        &redislock__script_q_extend, &redislock__script_q_status,
        &redislock__script_q_reset, &redislock__script_q_reset_name,
        &redislock__script_q_list,
    };
    size_t i;
    for (i = 0; i < sizeof all / sizeof all[0]; i++)
        redislock__sha1_hex(all[i]->body, strlen(all[i]->body), all[i]->sha);
}

void redislock__call_init(redislock__call *call, const redislock__script *s)
{
    pthread_once(&sha_once, compute_shas);
    memset(call, 0, sizeof *call);
    call->script = s;
    call->argv = call->inl_argv;
    call->lens = call->inl_lens;
    call->cap = (int)(sizeof call->inl_argv / sizeof call->inl_argv[0]);
    call->argc = 3; /* EVALSHA sha numkeys */
}

void redislock__call_free(redislock__call *call)
{
    if (call->argv != call->inl_argv) {
        redislock__free((void *)call->argv);
        redislock__free(call->lens);
    }
    call->argv = call->inl_argv;
    call->lens = call->inl_lens;
}

static void push(redislock__call *call, const char *p, size_t len)
{
    if (call->oom)
        return;
    if (call->argc == call->cap) {
        int cap = call->cap * 2;
        const char **argv = redislock__malloc(sizeof *argv * (size_t)cap);
        size_t *lens = redislock__malloc(sizeof *lens * (size_t)cap);
        if (!argv || !lens) {
            redislock__free((void *)argv);
            redislock__free(lens);
            call->oom = 1;
            return;
        }
        memcpy(argv, call->argv, sizeof *argv * (size_t)call->argc);
        memcpy(lens, call->lens, sizeof *lens * (size_t)call->argc);
        redislock__call_free(call);
        call->argv = argv;
        call->lens = lens;
        call->cap = cap;
    }
    call->argv[call->argc] = p;
    call->lens[call->argc++] = len;
}

void redislock__call_key(redislock__call *call, const char *k, size_t len)
{
    call->nkeys++;
    push(call, k, len);
}

void redislock__call_arg(redislock__call *call, const char *a, size_t len)
{
    push(call, a, len);
}

void redislock__call_int(redislock__call *call, long long v)
{
    char *buf;
    if (call->nnum >= (int)(sizeof call->nums / sizeof call->nums[0]) - 1) {
        call->oom = 1; /* a programming error: too many integer arguments */
        return;
    }
    buf = call->nums[1 + call->nnum++];
    push(call, buf, (size_t)snprintf(buf, sizeof call->nums[0], "%lld", v));
}

static int append_as(redislock__conn *c, redislock__call *call, int eval)
{
    const redislock__script *s = call->script;
    if (call->oom)
        return redislock__err(REDISLOCK_ENOMEM,
                              "out of memory building the %s script call",
                              s->name);
    call->argv[0] = eval ? "EVAL" : "EVALSHA";
    call->lens[0] = eval ? 4 : 7;
    call->argv[1] = eval ? s->body : s->sha;
    call->lens[1] = eval ? strlen(s->body) : 40;
    call->argv[2] = call->nums[0];
    call->lens[2] = (size_t)snprintf(call->nums[0], sizeof call->nums[0], "%d",
                                     call->nkeys);
    return redislock__conn_append(c, call->argc, call->argv, call->lens);
}

int redislock__call_append(redislock__conn *c, redislock__call *call)
{
    return append_as(c, call, 0);
}

int redislock__call_append_eval(redislock__conn *c, redislock__call *call)
{
    return append_as(c, call, 1);
}

int redislock__is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
           !memcmp(r->str, "NOSCRIPT", 8);
}

/* Read the reply of the one call in flight; resend as EVAL on NOSCRIPT.
 * Error replies are returned as replies. */
static int reply_raw(redislock__conn *c, redislock__call *call, int64_t deadline,
                     redisReply **out)
{
    redisReply *r = NULL;
    int rc = redislock__conn_read(c, deadline, &r);
    if (rc)
        return rc;
    if (redislock__is_noscript(r)) {
        freeReplyObject(r);
        r = NULL;
        redislock__log(c->m->client, REDISLOCK_LOG_INFO,
                       "redis %s: loading the %s script", c->m->ep.addr,
                       call->script->name);
        if ((rc = append_as(c, call, 1)) ||
            (rc = redislock__conn_flush(c, deadline)) ||
            (rc = redislock__conn_read(c, deadline, &r)))
            return rc;
    }
    *out = r;
    return 0;
}

int redislock__call_reply(redislock__conn *c, redislock__call *call,
                          int64_t deadline, redisReply **out)
{
    redisReply *r = NULL;
    int rc = reply_raw(c, call, deadline, &r);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        char what[64];
        snprintf(what, sizeof what, "%s script", call->script->name);
        rc = redislock__conn_reply_error(c, r, what);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

int redislock__call_run(redislock__conn *c, redislock__call *call,
                        int64_t deadline, redisReply **out)
{
    int rc = redislock__call_append(c, call);
    if (!rc)
        rc = redislock__conn_flush(c, deadline);
    if (!rc)
        rc = redislock__call_reply(c, call, deadline, out);
    return rc;
}

int redislock__call_pipeline(redislock__conn *c, redislock__call *const *calls,
                             size_t n, int64_t deadline, redisReply **out)
{
    size_t i;
    int rc = 0;
    for (i = 0; i < n; i++)
        out[i] = NULL;
    for (i = 0; i < n && !rc; i++)
        rc = redislock__call_append(c, calls[i]);
    if (!rc)
        rc = redislock__conn_flush(c, deadline);
    for (i = 0; i < n && !rc; i++)
        rc = redislock__conn_read(c, deadline, &out[i]);
    /* NOSCRIPT (script cache flushed, or a new server): redo those calls one
     * by one now that the pipeline is drained, so replies stay in order. */
    for (i = 0; i < n && !rc; i++) {
        if (!redislock__is_noscript(out[i]))
            continue;
        freeReplyObject(out[i]);
        out[i] = NULL;
        if (!(rc = redislock__call_append(c, calls[i])) &&
            !(rc = redislock__conn_flush(c, deadline)))
            rc = reply_raw(c, calls[i], deadline, &out[i]);
    }
    return rc;
}
