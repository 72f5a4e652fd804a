/* The Lua scripts of the queued kinds (queued.c): the fair lock and the
 * semaphore.  One family of scripts serves both: a fair lock is a
 * semaphore of one permit that also keeps python-redis-lock's lock:<name>.
 *
 * Keys of one lock, in this order (KEYS): holders (ZSET: owner id -> lease
 * end), queue (ZSET: waiter id -> ticket, first come first served),
 * waiters (ZSET: waiter id -> end of its waiter lease; a granted waiter
 * stays there until it takes the grant), fence (the fair lock: the
 * mutex's counter lock-fence:<name>; the semaphore: a hash of its counter
 * (field "") and each holder's token), then the semaphore's permits key
 * (its N while it has holders or waiters), or the fair lock's lock:<name>
 * and lock-signal:<name>.  Six keys: the fair lock; five: the semaphore.
 * Every waiter's wake-up list is named by a prefix (in ARGV) and its id,
 * in the lock's hash tag, so that a release can push the first waiter's
 * (a key a script names itself: it lives in the slot of the others).
 *
 * Every time is the server's (TIME, in ms): no client clock takes part.
 * See doc/design.md, "The fair lock and the semaphore". */
#include "internal.h"

/* What every script of the family shares (the functions, in order: the
 * clock, one lock's keys, forgetting an owner, reclaiming ended leases
 * and places, a grant, handing every free permit on, waking a
 * python-redis-lock waiter). */
#define LIB                                                                               \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                   \
    "local function clock()\n"                                                            \
    "  local t = redis.call('time')\n"                                                    \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),\n"               \
    "         tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                \
    "end\n"                                                                               \
    "local function lockof(b, fair, wp, gl)\n"                                            \
    "  local L = {H = KEYS[b + 1], Q = KEYS[b + 2], W = KEYS[b + 3], F = KEYS[b + 4],\n"  \
    "             X = KEYS[b + 5], fair = fair, wp = wp, gl = gl, m = false, h1 = false,\n" \
    "             foreign = false, granted = false}\n"                                    \
    "  if fair then L.S = KEYS[b + 6] end\n"                                              \
    "  L.now, L.us = clock()\n"                                                           \
    "  return L\n"                                                                        \
    "end\n"                                                                               \
    /* forget one owner: its hold, its place in line, its token (the fair                 \
     * lock: lock:<name> when it was the holder's) */                                     \
    "local function drop(L, id)\n"                                                        \
    "  redis.call('zrem', L.H, id)\n"                                                     \
    "  redis.call('zrem', L.Q, id)\n"                                                     \
    "  redis.call('zrem', L.W, id)\n"                                                     \
    "  if not L.fair then\n"                                                              \
    "    redis.call('hdel', L.F, id)\n"                                                   \
    "  elseif id == L.h1 then\n"                                                          \
    "    L.h1, L.n = false, 0\n"                                                          \
    "    if L.m == id then\n"                                                             \
    "      redis.call('del', L.X)\n"                                                      \
    "      L.m = false\n"                                                                 \
    "    end\n"                                                                           \
    "  end\n"                                                                             \
    "end\n"                                                                               \
    /* holders whose lease ended (the fair lock: its one holder, also when                \
     * lock:<name> is no longer its own), waiters that stopped renewing                   \
     * their place (a grant not taken in time goes with its lease), and                   \
     * whether another owner (python-redis-lock, a mutex) holds lock:<name> */            \
    "local function reclaim(L)\n"                                                         \
    "  local ids\n"                                                                       \
    "  if L.fair then\n"                                                                  \
    "    L.m = redis.call('get', L.X)\n"                                                  \
    "    local h = redis.call('zrange', L.H, 0, 0, 'WITHSCORES')\n"                       \
    "    L.n = 0\n"                                                                       \
    "    if h[1] then\n"                                                                  \
    "      L.h1, L.n = h[1], 1\n"                                                         \
    "      if h[1] ~= L.m or tonumber(h[2]) <= L.now then drop(L, h[1]) end\n"            \
    "    end\n"                                                                           \
    "  else\n"                                                                            \
    "    ids = redis.call('zrangebyscore', L.H, '-inf', L.now)\n"                         \
    "    for i = 1, #ids do drop(L, ids[i]) end\n"                                        \
    "  end\n"                                                                             \
    "  ids = redis.call('zrangebyscore', L.W, '-inf', L.now)\n"                           \
    "  for i = 1, #ids do drop(L, ids[i]) end\n"                                          \
    "  L.foreign = L.fair and L.m and not L.h1\n"                                         \
    "end\n"                                                                               \
    /* the lock (a permit) to a waiter just popped off the queue, for the                 \
     * grant lease, and its wake-up; it stays among the waiters until it                  \
     * takes the grant */                                                                 \
    "local function grant(L, id)\n"                                                       \
    "  redis.call('zadd', L.H, L.now + L.gl, id)\n"                                       \
    "  if L.fair then\n"                                                                  \
    "    redis.call('set', L.X, id, 'PX', L.gl)\n"                                        \
    "    L.m, L.h1 = id, id\n"                                                            \
    "  end\n"                                                                             \
    "  local k = L.wp .. id\n"                                                            \
    "  redis.call('lpush', k, 1)\n"                                                       \
    "  redis.call('pexpire', k, L.gl)\n"                                                  \
    "  L.granted = true\n"                                                                \
    "end\n"                                                                               \
    /* every free permit to the first in line; L.n: the holders after */                  \
    "local function fill(L, limit)\n"                                                     \
    "  if L.foreign then return end\n"                                                    \
    "  local n = L.n or redis.call('zcard', L.H)\n"                                       \
    "  while n < limit do\n"                                                              \
    "    local head = redis.call('zpopmin', L.Q)[1]\n"                                    \
    "    if not head then break end\n"                                                    \
    "    grant(L, head)\n"                                                                \
    "    n = n + 1\n"                                                                     \
    "  end\n"                                                                             \
    "  L.n = n\n"                                                                         \
    "end\n"                                                                               \
    /* lock-signal:<name>: wakes one of python-redis-lock's waiters (its                  \
     * release's three steps); the caller knows lock:<name> is free */                    \
    "local function signal(L, ms)\n"                                                      \
    "  redis.call('del', L.S)\n"                                                          \
    "  redis.call('lpush', L.S, 1)\n"                                                     \
    "  redis.call('pexpire', L.S, ms)\n"                                                  \
    "end\n"

/* A grant's fencing token: max(counter + 1, TIME in us), the mutex's rule;
 * the fair lock shares lock-fence:<name> with the mutex (its counter is
 * the one holder's token), the semaphore keeps each holder's token. */
#define TOKENS                                                                            \
    "local function bump(L, id)\n"                                                        \
    "  local tok = L.us\n"                                                                \
    "  if L.fair then\n"                                                                  \
    "    local cur = tonumber(redis.call('get', L.F))\n"                                  \
    "    if cur and cur >= L.us then return redis.call('incr', L.F) end\n"                \
    "    redis.call('set', L.F, string.format('%.0f', L.us))\n"                           \
    "    return tok\n"                                                                    \
    "  end\n"                                                                             \
    "  local cur = tonumber(redis.call('hget', L.F, ''))\n"                               \
    "  if cur and cur >= L.us then tok = redis.call('hincrby', L.F, '', 1)\n"             \
    "  else redis.call('hset', L.F, '', string.format('%.0f', L.us)) end\n"               \
    "  redis.call('hset', L.F, id, string.format('%.0f', tok))\n"                         \
    "  return tok\n"                                                                      \
    "end\n"                                                                               \
    "local function token_of(L, id)\n"                                                    \
    "  local t\n"                                                                         \
    "  if L.fair then t = redis.call('get', L.F) else t = redis.call('hget', L.F, id) end\n" \
    "  return tonumber(t) or bump(L, id)\n"                                               \
    "end\n"                                                                               \
    "local function taken(L, id, fenced)\n"                                               \
    "  if fenced then return {1, bump(L, id)} end\n"                                      \
    "  return {1}\n"                                                                      \
    "end\n"

/* ARGV: id, lease ms, permits, waiter lease ms, grant lease ms, wake
 * prefix, flags (1: fencing, 2: queue me when it is busy: not a try).
 *   {1[, token]}                        taken: held for the lease
 *   {2, ms left[, token]}               this id held it before
 *   {0, wait ms, owner, place, queued, holders, ms left}  busy: ms left
 *       until the lease that ends first ends (-1: never; owner: that
 *       holder), and how long to wait: that, for a waiter no longer than a
 *       third of its waiter lease (the waiter second in line: than the
 *       grant lease, lest the first in line died); place in line (0: not
 *       queued)
 *   {-1, N}                             the server's permits are N: not
 *                                       those of the call
 * A granted waiter (a holder still among the waiters) takes its grant for
 * the lease.  Free permits go to the first in line (fill) before this
 * owner is looked at, so nobody passes the queue, a try included. */
redislock__script redislock__script_q_acquire = {
    "queued acquire",
    /* first, before any function is made: a grant to this waiter (what
     * wakes it), taken for the lease at once; without fencing */
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local s = tonumber(redis.call('zscore', KEYS[1], ARGV[1]))\n"
    "if ARGV[7] == '2' and s and s > now and redis.call('zscore', KEYS[3], ARGV[1]) and\n"
    "   (#KEYS == 5 or redis.call('get', KEYS[5]) == ARGV[1]) then\n"
    "  redis.call('zadd', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])\n"
    "  redis.call('zrem', KEYS[3], ARGV[1])\n"
    "  if #KEYS == 6 then redis.call('set', KEYS[5], ARGV[1], 'PX', ARGV[2]) end\n"
    "  return {1}\n"
    "end\n"
    LIB TOKENS
    "local fair = #KEYS == 6\n"
    "local L = lockof(0, fair, ARGV[6], tonumber(ARGV[5]))\n"
    "local id, lease, limit, wl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),\n"
    "                             tonumber(ARGV[4])\n"
    "local flags = tonumber(ARGV[7])\n"
    "local fenced, queue = flags % 2 == 1, flags >= 2\n"
    "reclaim(L)\n"
    "local stored = false\n"
    "if not fair then\n"
    "  stored = redis.call('get', L.X)\n"
    "  if stored and tonumber(stored) ~= limit then return {-1, tonumber(stored)} end\n"
    "end\n"
    "fill(L, limit)\n"
    "s = redis.call('zscore', L.H, id)\n"
    "if s and not redis.call('zscore', L.W, id) then\n"
    "  if fenced then return {2, tonumber(s) - L.now, token_of(L, id)} end\n"
    "  return {2, tonumber(s) - L.now}\n"
    "end\n"
    "if s or (not L.foreign and L.n < limit) then\n"
    "  if s then\n"
    "    redis.call('zadd', L.H, 'XX', L.now + lease, id)\n"
    "    redis.call('zrem', L.W, id)\n"
    "    redis.call('del', L.wp .. id)\n"
    "  else\n"
    "    redis.call('zadd', L.H, L.now + lease, id)\n"
    "  end\n"
    "  if fair then\n"
    "    redis.call('set', L.X, id, 'PX', lease)\n"
    "    if not s then redis.call('del', L.S) end\n"
    "  elseif not stored then\n"
    "    redis.call('set', L.X, limit)\n"
    "  end\n"
    "  return taken(L, id, fenced)\n"
    "end\n"
    "local qlen, place = redis.call('zcard', L.Q), 0\n"
    "if queue then\n"
    "  local r = redis.call('zrank', L.Q, id)\n"
    "  if not r then\n"
    "    local last = redis.call('zrange', L.Q, -1, -1, 'WITHSCORES')\n"
    "    local ticket = 1\n"
    "    if last[2] then ticket = tonumber(last[2]) + 1 end\n"
    "    redis.call('zadd', L.Q, ticket, id)\n"
    "    r = qlen\n"
    "    qlen = qlen + 1\n"
    "  end\n"
    "  place = r + 1\n"
    "  redis.call('zadd', L.W, L.now + wl, id)\n"
    "  redis.call('del', L.wp .. id)\n"
    "  if not fair and not stored then redis.call('set', L.X, limit) end\n"
    "end\n"
    "local first = redis.call('zrange', L.H, 0, 0, 'WITHSCORES')\n"
    "local owner, left = L.m or '', -1\n"
    "if first[1] then\n"
    "  owner, left = first[1], tonumber(first[2]) - L.now\n"
    "elseif L.foreign then\n"
    "  left = redis.call('pttl', L.X)\n"
    "end\n"
    "local wait = left\n"
    "if queue then\n"
    "  local cap = math.floor(wl / 3)\n"
    "  if place == 2 and L.gl < cap then cap = L.gl end\n"
    "  if wait < 0 or wait > cap then wait = cap end\n"
    "end\n"
    "return {0, wait, owner, place, qlen, L.n, left}\n",
    ""
};

/* ARGV: id, permits, grant lease ms, wake prefix, signal expiry ms.
 * 0: released (a hold, or a grant not taken yet); 1: not held.  This owner
 * also leaves the queue (a waiter that gives up), and the permit goes to
 * the first in line at once; the fair lock with nobody in line wakes a
 * python-redis-lock waiter.  Releasing twice, or after the lease ended,
 * changes nothing. */
redislock__script redislock__script_q_release = {
    "queued release",
    /* first, before any function is made: the fair lock's holder hands it
     * to the first waiter (when no waiter's place has ended), or wakes a
     * python-redis-lock waiter */
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local was = false\n"
    "if #KEYS == 6 and redis.call('get', KEYS[5]) == ARGV[1] and\n"
    "   redis.call('zrem', KEYS[1], ARGV[1]) == 1 then\n"
    "  was = true\n"
    "  redis.call('zrem', KEYS[3], ARGV[1])\n"
    "  if not redis.call('zrangebyscore', KEYS[3], '-inf', now, 'LIMIT', 0, 1)[1] then\n"
    "    local head = redis.call('zpopmin', KEYS[2])[1]\n"
    "    if head then\n"
    "      redis.call('zadd', KEYS[1], now + tonumber(ARGV[3]), head)\n"
    "      redis.call('set', KEYS[5], head, 'PX', ARGV[3])\n"
    "      redis.call('lpush', ARGV[4] .. head, 1)\n"
    "      redis.call('pexpire', ARGV[4] .. head, ARGV[3])\n"
    "    else\n"
    "      redis.call('del', KEYS[5])\n"
    "      redis.call('del', KEYS[6])\n"
    "      redis.call('lpush', KEYS[6], 1)\n"
    "      redis.call('pexpire', KEYS[6], ARGV[5])\n"
    "    end\n"
    "    return 0\n"
    "  end\n"
    "  redis.call('del', KEYS[5])\n"
    "end\n"
    LIB
    "local fair = #KEYS == 6\n"
    "local L = lockof(0, fair, ARGV[4], tonumber(ARGV[3]))\n"
    "local id = ARGV[1]\n"
    "reclaim(L)\n"
    "local held = was or redis.call('zrem', L.H, id) == 1\n"
    "redis.call('zrem', L.W, id)\n"
    "local limit = 1\n"
    "if fair then\n"
    "  if held then\n"
    "    redis.call('del', L.X)\n"
    "    L.m, L.h1, L.n, L.foreign = false, false, 0, false\n"
    "  end\n"
    "else\n"
    "  if held then L.n = nil else redis.call('zrem', L.Q, id) end\n"
    "  redis.call('hdel', L.F, id)\n"
    "  limit = tonumber(redis.call('get', L.X)) or tonumber(ARGV[2])\n"
    "end\n"
    "if fair and not held then redis.call('zrem', L.Q, id) end\n"
    "fill(L, limit)\n"
    "if fair and held and not L.granted then signal(L, ARGV[5]) end\n"
    "if not fair and L.n == 0 and redis.call('zcard', L.Q) == 0 then\n"
    "  redis.call('del', L.X)\n"
    "end\n"
    "if held then return 0 end\n"
    "return 1\n",
    ""
};

/* KEYS: holders, waiters[, lock:<name> (the fair lock)].  ARGV: id, ms,
 * 1 for the renewal (never shortens the lease) or 0 (extend: sets it).
 * 0: done; 1: not held (lease ended, reset, or a grant not taken); 3:
 * another owner holds the fair lock. */
redislock__script redislock__script_q_extend = {
    "queued extend",
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local id = ARGV[1]\n"
    "local fair = #KEYS == 3\n"
    "if fair then\n"
    "  local m = redis.call('get', KEYS[3])\n"
    "  if m ~= id then\n"
    "    if m then return 3 end\n"
    "    return 1\n"
    "  end\n"
    "end\n"
    "local s = tonumber(redis.call('zscore', KEYS[1], id))\n"
    "if not s or s <= now or redis.call('zscore', KEYS[2], id) then return 1 end\n"
    "local to = now + tonumber(ARGV[2])\n"
    "if ARGV[3] == '1' and s >= to then return 0 end\n"
    "redis.call('zadd', KEYS[1], 'XX', to, id)\n"
    "if fair then redis.call('pexpire', KEYS[3], ARGV[2]) end\n"
    "return 0\n",
    ""
};

/* ARGV: id, permits.  Read only.  {holders, queued, permits, mine (0/1),
 * owner or false, ms left (-1: never), place in line (0: none)}: owner
 * is this id when it holds, else the holder whose lease ends first (the
 * fair lock: whoever holds lock:<name>). */
redislock__script redislock__script_q_status = {
    "queued status",
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local after = '(' .. string.format('%.0f', now)\n"
    "local fair = #KEYS == 6\n"
    "local H, Q, W, X = KEYS[1], KEYS[2], KEYS[3], KEYS[5]\n"
    "local id = ARGV[1]\n"
    "local limit = 1\n"
    "if not fair then limit = tonumber(redis.call('get', X)) or tonumber(ARGV[2]) end\n"
    "local holders = redis.call('zcount', H, after, '+inf')\n"
    "local first = redis.call('zrangebyscore', H, after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)\n"
    "local owner, left, mine = false, 0, 0\n"
    "if first[1] then owner, left = first[1], tonumber(first[2]) - now end\n"
    "local s = tonumber(redis.call('zscore', H, id))\n"
    "if s and s > now and not redis.call('zscore', W, id) then\n"
    "  owner, left, mine = id, s - now, 1\n"
    "end\n"
    "if fair then\n"
    "  owner = redis.call('get', X)\n"
    "  holders, left = 0, 0\n"
    "  if owner then holders, left = 1, redis.call('pttl', X) end\n"
    "  if owner ~= id then mine = 0 end\n"
    "end\n"
    "local place = 0\n"
    "local r, w = redis.call('zrank', Q, id), tonumber(redis.call('zscore', W, id))\n"
    "if r and w and w > now then place = r + 1 end\n"
    "return {holders, redis.call('zcard', Q), limit, mine, owner, left, place}\n",
    ""
};

/* One name reset whatever its kind, in one call (redislock_reset()).
 * KEYS: the fair lock's six (holders, queue, waiters, fence, lock:<name>,
 * lock-signal:<name>: the mutex's two), then the semaphore's five.  ARGV:
 * signal expiry ms, grant lease ms, the fair lock's wake prefix, the
 * semaphore's.  lock:<name> goes as python-redis-lock's RESET does (one
 * waiter woken); then every holder of the fair lock and of the semaphore
 * goes and the freed permits go to the first waiters (a fair lock handed
 * on takes back that wake-up: its new holder has lock:<name>).  The type of
 * lock:<name> when it is not a string (left alone), else how many were
 * removed. */
redislock__script redislock__script_q_reset_name = {
    "reset (every kind)",
    "local t = redis.call('type', KEYS[5]).ok\n"
    "if t ~= 'string' and t ~= 'none' then return t end\n"
    LIB
    "redis.call('del', KEYS[6])\n"
    "redis.call('lpush', KEYS[6], 1)\n"
    "redis.call('pexpire', KEYS[6], ARGV[1])\n"
    "local n = redis.call('del', KEYS[5])\n"
    "for _, k in ipairs({{0, true, ARGV[3]}, {6, false, ARGV[4]}}) do\n"
    "  local L = lockof(k[1], k[2], k[3], tonumber(ARGV[2]))\n"
    "  reclaim(L)\n"
    "  local ids = redis.call('zrange', L.H, 0, -1)\n"
    "  for i = 1, #ids do drop(L, ids[i]) end\n"
    "  n = n + #ids\n"
    "  local limit = 1\n"
    "  if not L.fair then\n"
    "    L.n = nil\n"
    "    limit = tonumber(redis.call('get', L.X)) or 0\n"
    "  end\n"
    "  fill(L, limit)\n"
    "  if L.fair and L.granted then redis.call('del', L.S) end\n"
    "  if not L.fair and L.n == 0 and redis.call('zcard', L.Q) == 0 then\n"
    "    redis.call('del', L.X)\n"
    "  end\n"
    "end\n"
    "return n\n",
    ""
};

/* KEYS: the keys of each lock in turn (ARGV[1] of them each: 6 fair
 * locks, 5 semaphores).  ARGV: keys per lock, owner prefix ("": any),
 * grant lease ms, signal expiry ms, then each lock's wake prefix.  Every
 * holder whose id starts with the prefix is removed; the freed permits go
 * to the first waiters (woken); the fair lock left free wakes a
 * python-redis-lock waiter.  Returns how many holders were removed.  Run
 * on a bounded batch. */
redislock__script redislock__script_q_reset = {
    "queued reset",
    LIB
    "local per = tonumber(ARGV[1])\n"
    "local fair, pre, n = per == 6, ARGV[2], 0\n"
    "for b = 0, #KEYS - per, per do\n"
    "  local L = lockof(b, fair, ARGV[5 + b / per], tonumber(ARGV[3]))\n"
    "  reclaim(L)\n"
    "  local ids, removed = redis.call('zrange', L.H, 0, -1), 0\n"
    "  for i = 1, #ids do\n"
    "    if #pre == 0 or string.sub(ids[i], 1, #pre) == pre then\n"
    "      drop(L, ids[i])\n"
    "      removed = removed + 1\n"
    "    end\n"
    "  end\n"
    "  local limit = 1\n"
    "  if not fair then\n"
    "    L.n = nil\n"
    "    limit = tonumber(redis.call('get', L.X)) or 0\n"
    "  end\n"
    "  fill(L, limit)\n"
    "  if fair and removed > 0 and not L.granted and not L.m then signal(L, ARGV[4]) end\n"
    "  if not fair and L.n == 0 and redis.call('zcard', L.Q) == 0 then\n"
    "    redis.call('del', L.X)\n"
    "  end\n"
    "  n = n + removed\n"
    "end\n"
    "return n\n",
    ""
};

/* KEYS: holders, queue, permits of each semaphore in turn.  Read only.
 * For each: 0 when the holders key is not a sorted set (gone, or not a
 * semaphore), else {{id, ms left, ...}, queued, permits}, every holder
 * whose lease has not ended. */
redislock__script redislock__script_q_list = {
    "semaphore list",
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local after = '(' .. string.format('%.0f', now)\n"
    "local out = {}\n"
    "for b = 0, #KEYS - 3, 3 do\n"
    "  if redis.call('type', KEYS[b + 1]).ok ~= 'zset' then\n"
    "    out[#out + 1] = 0\n"
    "  else\n"
    "    local h = redis.call('zrangebyscore', KEYS[b + 1], after, '+inf', 'WITHSCORES')\n"
    "    for i = 2, #h, 2 do h[i] = tonumber(h[i]) - now end\n"
    "    local q, l = redis.pcall('zcard', KEYS[b + 2]), redis.pcall('get', KEYS[b + 3])\n"
    "    if type(q) == 'table' then q = 0 end\n"
    "    if type(l) == 'table' then l = 0 end\n"
    "    out[#out + 1] = {h, q, tonumber(l) or 0}\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""
};
