#!/usr/bin/env python3
"""A python-redis-lock peer for the interoperability test.

Uses the real python-redis-lock (``import redis_lock``) when it is installed;
otherwise a stand-in written here from python-redis-lock 4.0's wire behaviour
(SET NX EX, then BLPOP on the signal list with the timeout in whole seconds;
release by an owner-checked script that pushes one wake-up).  The first line
printed says which one is in use.

Usage: prl_peer.py SOCKET_PATH | cluster:HOST:PORT

Commands, one per line on stdin; answers on stdout:
  acquire NAME EXPIRE TIMEOUT  -> "acquired <monotonic ms> <us>" or "timeout <ms> <us>"
                                  (EXPIRE 0: none; TIMEOUT -1: block for ever,
                                   0: do not block)
  release                      -> "released" or "notheld"
  release_at                   -> the same with the monotonic us read just
                                  before the release: "released <us>"
  reset NAME                   -> "reset"
  id                           -> "id <owner id>"
  quit
"""
import sys
import time

import redis

try:
    import redis_lock  # the real library
    REAL = True
except ImportError:  # pragma: no cover - depends on the machine
    REAL = False

UNLOCK = """
if redis.call("get", KEYS[1]) ~= ARGV[1] then
    return 1
end
redis.call("del", KEYS[2])
redis.call("lpush", KEYS[2], 1)
redis.call("pexpire", KEYS[2], ARGV[2])
redis.call("del", KEYS[1])
return 0
"""

RESET = """
redis.call("del", KEYS[2])
redis.call("lpush", KEYS[2], 1)
redis.call("pexpire", KEYS[2], ARGV[2])
return redis.call("del", KEYS[1])
"""


class StandInLock:
    """python-redis-lock 4.0's protocol, as documented in shared/PROTOCOL.md."""

    def __init__(self, client, name, expire=None, signal_expire=1000):
        import base64
        import os
        self.client = client
        self.expire = expire
        self.signal_expire = signal_expire
        self.id = base64.b64encode(os.urandom(18)).decode("ascii")
        self.name = "lock:" + name
        self.signal = "lock-signal:" + name
        self.unlock = client.register_script(UNLOCK)
        self.reset_script = client.register_script(RESET)

    def acquire(self, blocking=True, timeout=None):
        if self.client.get(self.name) == self.id.encode("ascii"):
            raise RuntimeError("already acquired")  # AlreadyAcquired
        blpop_timeout = timeout or self.expire or 0
        timed_out = False
        while True:
            if self.client.set(self.name, self.id, nx=True, ex=self.expire):
                return True
            if timed_out or not blocking:
                return False
            timed_out = not self.client.blpop(self.signal, blpop_timeout) and timeout

    def release(self):
        if self.unlock(keys=(self.name, self.signal),
                       args=(self.id, self.signal_expire)) == 1:
            raise RuntimeError("not acquired")

    def reset(self):
        self.reset_script(keys=(self.name, self.signal),
                          args=(self.id, self.signal_expire))


def make_lock(client, name, expire):
    if REAL:
        return redis_lock.Lock(client, name, expire=expire)
    return StandInLock(client, name, expire=expire)


def now_ms():
    return int(time.monotonic() * 1000)


def now_us():
    return int(time.monotonic() * 1000000)


def connect(where):
    """A unix socket path, or cluster:HOST:PORT (a seed node of a Redis
    Cluster, through redis-py's RedisCluster: lock names then carry their
    braces, e.g. "{job}", so that both keys share a slot)."""
    if where.startswith("cluster:"):
        import logging
        from redis.cluster import RedisCluster
        # RedisCluster logs the NoScriptError it then answers with EVAL
        logging.disable(logging.ERROR)
        host, port = where[len("cluster:"):].rsplit(":", 1)
        return RedisCluster(host=host, port=int(port))
    return redis.StrictRedis(unix_socket_path=where)


def main():
    client = connect(sys.argv[1])
    print("peer", "python-redis-lock" if REAL else "stand-in", flush=True)
    lock = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "acquire":
            name, expire, timeout = words[1], int(words[2]), int(words[3])
            lock = make_lock(client, name, expire or None)
            if timeout < 0:
                ok = lock.acquire(blocking=True)
            elif timeout == 0:
                ok = lock.acquire(blocking=False)
            else:
                ok = lock.acquire(blocking=True, timeout=timeout)
            us = now_us()
            print(("acquired" if ok else "timeout"), us // 1000, us, flush=True)
        elif cmd in ("release", "release_at"):
            before = now_us()
            try:
                lock.release()
                print("released" + (" %d" % before if cmd == "release_at" else ""),
                      flush=True)
            except Exception:  # NotAcquired in the real library
                print("notheld", flush=True)
        elif cmd == "reset":
            make_lock(client, words[1], None).reset()
            print("reset", flush=True)
        elif cmd == "id":
            print("id", lock.id, flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
