"""The peer of the benchmark: redis-py's built-in Lock, driven in the same
shape as redislock-bench's contention cells (N threads or processes take one
lock in a loop for a fixed time, each holding it for a fixed time), and one
waiter blocked for seconds.  redis-py's Lock waits by sleeping 0.1 s between
tries (its default), as python-redis-lock's own benchmark used it.

    peer_redispy.py contend SOCKET CONC HOLD_MS threads|processes DURATION_S
    peer_redispy.py waitcost SOCKET DURATION_S
    peer_redispy.py crash SOCKET KILLS EXPIRE_MS

Prints one record per run, in redislock-bench's format:
    @ contend impl=redis-py mode=... conc=... total=... commands=...
Commands are the requests redis-py sends for a Lock (SET, EVALSHA, EVAL,
SCRIPT LOAD) counted from INFO commandstats deltas; commands that Lua
scripts run inside are left out.
"""
import multiprocessing
import os
import random
import resource
import sys
import threading
import time

import redis

EXPIRE_S = 5  # as python-redis-lock's benchmark: conn.lock(name, timeout=5)
NAME = "bench:peer"
PEER_COMMANDS = ("set", "evalsha", "eval", "script|load", "script")


def calls(r):
    stats = r.info("commandstats")
    total = 0
    for key, value in stats.items():
        name = key[len("cmdstat_"):] if key.startswith("cmdstat_") else key
        if name in PEER_COMMANDS:
            total += int(value["calls"])
    return total


def contender(r, i, hold_s, duration_s, nconc, ready, start, counts, errors):
    lock = r.lock(NAME, timeout=EXPIRE_S, sleep=0.1)
    with ready.get_lock():
        ready.value += 1
        if ready.value == nconc:
            start.value = time.monotonic() + 0.02
    t0 = time.monotonic()
    while start.value == 0:
        if time.monotonic() - t0 > 60:
            raise RuntimeError("the other contenders did not start within 60 s")
        time.sleep(0.0001)
    now = time.monotonic()
    if start.value > now:
        time.sleep(start.value - now)
    end = start.value + duration_s
    n = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        try:
            if not lock.acquire(blocking=True, blocking_timeout=end - now):
                break
        except redis.RedisError as e:
            sys.stderr.write("peer: %s\n" % e)
            with errors.get_lock():
                errors.value += 1
            break
        if time.monotonic() < end:
            n += 1
        if hold_s:
            time.sleep(hold_s)
        try:
            lock.release()
        except redis.RedisError as e:
            sys.stderr.write("peer: release: %s\n" % e)
            with errors.get_lock():
                errors.value += 1
            break
    counts[i] = n


def contend(sock, nconc, hold_ms, mode, duration_s):
    admin = redis.Redis(unix_socket_path=sock)
    ready = multiprocessing.Value("i", 0)
    start = multiprocessing.Value("d", 0.0)
    errors = multiprocessing.Value("i", 0)
    counts = multiprocessing.Array("q", nconc)
    hold_s = hold_ms / 1000.0
    calls0 = calls(admin)
    if mode == "threads":
        r = redis.Redis(unix_socket_path=sock)  # one pool for all threads
        ts = [threading.Thread(target=contender,
                               args=(r, i, hold_s, duration_s, nconc, ready,
                                     start, counts, errors))
              for i in range(nconc)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        pids = []
        for i in range(nconc):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    r = redis.Redis(unix_socket_path=sock)
                    contender(r, i, hold_s, duration_s, nconc, ready, start,
                              counts, errors)
                except BaseException as e:  # report, never hang the parent
                    sys.stderr.write("peer: %r\n" % e)
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            if st:
                with errors.get_lock():
                    errors.value += 1
    cmds = calls(admin) - calls0
    c = list(counts)
    total = sum(c)
    print("@ contend impl=redis-py mode=%s conc=%d hold_ms=%d duration_s=%g "
          "total=%d avg=%.4g min=%d max=%d commands=%d errors=%d"
          % (mode, nconc, hold_ms, duration_s, total, total / nconc, min(c),
             max(c), cmds, errors.value))


def waitcost(sock, duration_s):
    """A redis-py waiter blocked duration_s on a held lock (its own process)."""
    admin = redis.Redis(unix_socket_path=sock)
    holder = admin.lock(NAME + ":wait", timeout=60)
    holder.acquire()
    calls0 = calls(admin)
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        r = redis.Redis(unix_socket_path=sock)
        lock = r.lock(NAME + ":wait", timeout=60, sleep=0.1)
        c0 = time.thread_time()
        p0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        ok = lock.acquire(blocking=True, blocking_timeout=duration_s + 5)
        waited = time.monotonic() - t0
        c1 = time.thread_time()
        p1 = resource.getrusage(resource.RUSAGE_SELF)
        if ok:
            lock.release()
        cpu_p = (p1.ru_utime + p1.ru_stime) - (p0.ru_utime + p0.ru_stime)
        os.write(wr, ("%d %f %f %f" % (ok, waited, (c1 - c0) * 1e3,
                                       cpu_p * 1e3)).encode())
        os._exit(0)
    time.sleep(duration_s - 0.02)
    cmds = calls(admin) - calls0
    time.sleep(0.02)
    holder.release()
    os.waitpid(pid, 0)
    ok, waited, cpu_t, cpu_p = os.read(rd, 200).decode().split()
    print("@ waitcost impl=redis-py end=released result=%s blocked_s=%.4g "
          "commands=%d cpu_thread_ms=%.4g cpu_process_ms=%.4g"
          % ("OK" if ok == "1" else "FAILED", float(waited), cmds,
             float(cpu_t), float(cpu_p)))


def watch(admin, name, owner, give_up):
    """The moment the key stops holding owner, as GET sees it (the middle
    of the window between the last GET that found it and the first that did
    not), and half that window; None if the first GET did not find it."""
    last = None
    while time.monotonic() < give_up:
        sent = time.monotonic()
        v = admin.get(name)
        if v == owner:
            last = sent
            continue
        if last is None:
            return None, None
        now = time.monotonic()
        return (last + now) / 2, (now - last) / 2
    raise SystemExit("crash: the holder's key did not expire")


def crash(sock, kills, expire_ms):
    """A holder process SIGKILLed while holding a lock with an expiry; the
    time from the key's expiry (seen by a watcher on its own connection,
    as bench/crash.c does) to a waiting redis-py Lock holding it."""
    admin = redis.Redis(unix_socket_path=sock)
    name = NAME + ":crash"
    delays, halves, missed = [], [], 0
    for _ in range(kills):
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            r = redis.Redis(unix_socket_path=sock)
            r.lock(name, timeout=expire_ms / 1000.0).acquire()
            os.write(wr, b"x")
            time.sleep(60)  # until killed (never for long, whatever happens)
            os._exit(0)
        os.read(rd, 1)
        os.close(rd)
        os.close(wr)
        got = []
        waiter = redis.Redis(unix_socket_path=sock).lock(name, timeout=10, sleep=0.1,
                                                         thread_local=False)

        def wait():
            waiter.acquire(blocking=True, blocking_timeout=30)
            got.append(time.monotonic())

        # a random phase: the waiter polls every 0.1 s, and starting it right
        # after the holder's acquire would line its polls up with the expiry
        time.sleep(random.uniform(0, 0.1))
        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.05)  # the waiter has tried once and sleeps
        owner = admin.get(name)
        t0 = time.monotonic()
        pttl = admin.pttl(name)
        t1 = time.monotonic()
        expiry = (t0 + t1) / 2 + pttl / 1000.0
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        time.sleep(max(0.0, expiry - 0.003 - time.monotonic()))
        gone, half = watch(admin, name, owner, expiry + 10)
        t.join()
        if gone is None:
            missed += 1
        else:
            delays.append((got[0] - gone) * 1e6)
            halves.append(half * 1e6)
        waiter.release()
    if not delays:  # every watcher started too late (a slow machine: TSan)
        print("@ crash impl=redis-py masters=1 expire_ms=%d kills=%d missed=%d delay_n=0"
              % (expire_ms, kills, missed))
        return
    delays.sort()
    halves.sort()
    n = len(delays)

    def pct(v, p):
        return v[min(len(v), max(1, int(p / 100.0 * len(v) + 0.999999))) - 1]

    print("@ crash impl=redis-py masters=1 expire_ms=%d kills=%d missed=%d delay_n=%d "
          "delay_min_us=%.4g delay_p25_us=%.4g delay_p50_us=%.4g delay_p75_us=%.4g "
          "delay_p99_us=%.4g delay_max_us=%.4g resolution_p50_us=%.4g"
          % (expire_ms, kills, missed, n, delays[0], pct(delays, 25), pct(delays, 50),
             pct(delays, 75), pct(delays, 99), delays[-1], pct(halves, 50)))


def main(argv):
    if len(argv) == 7 and argv[1] == "contend":
        contend(argv[2], int(argv[3]), int(argv[4]), argv[5], float(argv[6]))
    elif len(argv) == 4 and argv[1] == "waitcost":
        waitcost(argv[2], float(argv[3]))
    elif len(argv) == 5 and argv[1] == "crash":
        crash(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
