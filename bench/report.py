"""Turn the records of a benchmark run (bench/run) into tables: the goals of
issue 5 with the measured figure and met / not met, then every measurement.

    report.py [--markdown [--keep OLD.md]] [--published FILE] RECORDS
    report.py --kinds RECORDS

Without --markdown: the tables only (for the terminal).  With it: the whole
doc/benchmarks.md, with the machine, the date and what each column means;
--keep copies the end of an earlier doc/benchmarks.md, from the line
KEEP_MARK on (sections measured by other programs).  --kinds: the goals of
issue 24 (the fair lock and the semaphore: bench/run --kinds) alone.
Records are lines "@ scenario key=value ..." and "@ info key value".
"""
import sys

INF = float("inf")
QUEUED_KINDS = ("fair", "semaphore")


def parse(path):
    info, recs = {}, []
    with open(path) as f:
        for line in f:
            if not line.startswith("@ "):
                continue
            parts = line.rstrip("\n").split(" ")
            if parts[1] == "info":
                info[parts[2]] = " ".join(parts[3:])
                continue
            r = {"scenario": parts[1]}
            for kv in parts[2:]:
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    try:
                        r[k] = float(v)
                    except ValueError:
                        r[k] = v
            recs.append(r)
    return info, recs


def pick(recs, scenario, **kw):
    """Records of a scenario with the given fields; those of the queued kinds
    (kind=fair or semaphore: bench/run --kinds) only when kind= is asked for."""
    return [r for r in recs if r["scenario"] == scenario
            and (r.get("kind") not in QUEUED_KINDS or "kind" in kw)
            and all(r.get(k) == v for k, v in kw.items())]


def fmt(v, nd=1):
    if v is None:
        return "-"
    if v == INF:
        return "inf"
    if isinstance(v, float) and v.is_integer() and nd == 0:
        return "%d" % v
    return "%.*f" % (nd, v)


def ratio(a, b):
    if a is None or b is None:
        return None
    return a / b if b else INF


def fairness(r):
    return ratio(r["min"], r["max"]) if r and r["max"] else None


def table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out) + "\n"


def yes(ok):
    if isinstance(ok, str):
        return ok
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**not met**"


class Report:
    def __init__(self, info, recs, published):
        self.info, self.recs, self.published = info, recs, published
        self.goals = []

    def goal(self, what, figure, ok):
        self.goals.append((what, figure, yes(ok)))

    # ------------------------------------------------------------ latency
    def latency(self):
        rows = []
        for r in pick(self.recs, "uncontended"):
            for key, name in (("acqrel", "acquire+release"), ("acquire", "acquire"),
                              ("release", "release"),
                              ("trybusy", "try-acquire, lock held")):
                rows.append(self.lat_row(name, r["url"], "-", r, key))
                if key + "_cmds" in r:
                    rows[-1][2] = fmt(r[key + "_cmds"], 2)
        for r in pick(self.recs, "handoff"):
            how = r["mode"] + (", after %d ms" % r["hold_ms"] if r.get("hold_ms") else "")
            rows.append(self.lat_row("hand-off (%s)" % how, r["url"], "-", r, "handoff"))
            if "floor_p50_us" in r:
                rows.append(self.lat_row("floor: LPUSH -> BLPOP (%s)" % how,
                                         r["url"], "-", r, "floor"))
        for url in ("unix", "tcp"):
            u = pick(self.recs, "uncontended", url=url)
            if u:
                u = u[0]
                p50 = ratio(u["acqrel_p50_us"], u["ping_p50_us"])
                p99 = ratio(u["acqrel_p99_us"], u["ping_p99_us"])
                ev = u.get("server_evalsha_us", 0)
                net = ratio(u["acqrel_p50_us"] - 2 * ev, u["ping_p50_us"])
                self.goal("1. acquire+release <= 2.5 round trips (%s)" % url,
                          "p50 %s RTT (%s us), p99 %s RTT (%s us); less the server's "
                          "script time (2 x %s us): p50 %s RTT"
                          % (fmt(p50, 2), fmt(u["acqrel_p50_us"]), fmt(p99, 2),
                             fmt(u["acqrel_p99_us"]), fmt(ev, 1), fmt(net, 2)),
                          p50 <= 2.5 and p99 <= 2.5)
                t = ratio(u["trybusy_p50_us"], u["ping_p50_us"])
                cmds = u.get("trybusy_cmds")
                self.goal("1. try-acquire on a held lock: one round trip (%s)" % url,
                          "%s request per try; p50 %s RTT (%s us)"
                          % (fmt(cmds, 2), fmt(t, 2), fmt(u["trybusy_p50_us"])),
                          cmds == 1 and t < 2)
        for r in pick(self.recs, "handoff"):
            if "floor_p50_us" not in r or r.get("hold_ms"):
                continue
            p50 = ratio(r["handoff_p50_us"], r["floor_p50_us"])
            self.goal("2. hand-off p50 <= 1.2 x the LPUSH->BLPOP floor (%s, %s)"
                      % (r["url"], r["mode"]),
                      "p50 %s x (%s us, release call -> acquire return; floor %s us, "
                      "LPUSH call -> BLPOP return between the same two contenders); "
                      "p99 %s us"
                      % (fmt(p50, 2), fmt(r["handoff_p50_us"]), fmt(r["floor_p50_us"]),
                         fmt(r["handoff_p99_us"])),
                      p50 <= 1.2)
        out = table(["operation", "connection", "requests", "samples", "p50 us",
                     "p99 us", "PING p50 us", "PING p99 us", "p50 / PING p50",
                     "p99 / PING p99"], rows)
        for u in pick(self.recs, "uncontended"):
            out += ("\nServer time per request (%s run, INFO commandstats): EVALSHA "
                    "%s us, PING %s us.\n" % (u["url"], fmt(u.get("server_evalsha_us"), 2),
                                               fmt(u.get("server_ping_us"), 2)))
        return out

    def handoff_detail(self):
        """The hand-off and its floor in detail: quartiles, a 95% interval
        of the median, and the two modes (issue 27)."""
        rows = []
        for r in pick(self.recs, "handoff"):
            if "handoff_p25_us" not in r:
                continue  # a run from before issue 27
            for key, name in (("handoff", "hand-off"), ("floor", "floor")):
                k = lambda f: r.get("%s_%s" % (key, f))
                share = k("fast_share")
                rows.append([name, r["url"], r["mode"], fmt(r.get("hold_ms", 0), 0),
                             fmt(k("n"), 0), fmt(k("p25_us")),
                             "%s (%s-%s)" % (fmt(k("p50_us")), fmt(k("p50_lo_us")),
                                             fmt(k("p50_hi_us"))),
                             fmt(k("p75_us")), fmt(k("p99_us")),
                             "%s us: %s%% / %s%%" % (fmt(k("split_us"), 0),
                                                    fmt(100 * share, 0),
                                                    fmt(100 * (1 - share), 0))
                             if share is not None else "-",
                             fmt(k("fast_p50_us")), fmt(k("slow_p50_us")),
                             fmt(k("sep"), 1)])
        if not rows:
            return "(not measured in this run)\n"
        return table(["latency", "connection", "contenders", "pause ms", "samples",
                      "p25 us", "p50 us (95% interval)", "p75 us", "p99 us",
                      "split: fast / slow share", "fast p50 us", "slow p50 us",
                      "separation (D)"], rows)

    @staticmethod
    def lat_row(name, url, mode, r, key):
        return [name, url, mode, fmt(r[key + "_n"], 0), fmt(r[key + "_p50_us"]),
                fmt(r[key + "_p99_us"]), fmt(r["ping_p50_us"]), fmt(r["ping_p99_us"]),
                fmt(ratio(r[key + "_p50_us"], r["ping_p50_us"]), 2),
                fmt(ratio(r[key + "_p99_us"], r["ping_p99_us"]), 2)]

    # --------------------------------------------------------- contention
    def contention(self):
        rows, ok10, fair48, peer_tot, peer_fair = [], [], [], [], []
        ours = pick(self.recs, "contend", impl="redislock")
        for r in ours:
            p = pick(self.recs, "contend", impl="redis-py", mode=r["mode"],
                     conc=r["conc"], hold_ms=r["hold_ms"])
            p = p[0] if p else None
            ideal = r["duration_s"] * 1000 / r["hold_ms"] if r["hold_ms"] else None
            pct = 100 * r["total"] / ideal if ideal else None
            f, pf = fairness(r), fairness(p)
            if r["hold_ms"] == 10:
                ok10.append((pct, r))
            if r["hold_ms"] in (0, 2, 10) and r["conc"] in (6, 16, 48):
                fair48.append((f, r))
            tr = ratio(r["total"], p["total"]) if p else None
            fr = ratio(f, pf) if p else None
            if p:
                peer_tot.append(tr)
                peer_fair.append((f, pf))
            rows.append([r["mode"], fmt(r["hold_ms"], 0), fmt(r["conc"], 0),
                         fmt(r["total"], 0), fmt(pct, 1) if pct else "-",
                         fmt(r["held_mean_us"] / 1000 - r["hold_ms"], 3)
                         if r["hold_ms"] and "held_mean_us" in r else "-",
                         fmt(100 * r["total"] * r["held_mean_us"] / 1e6 / r["duration_s"], 1)
                         if r["hold_ms"] and "held_mean_us" in r else "-",
                         fmt(r["avg"], 1), fmt(r["min"], 0), fmt(r["max"], 0),
                         fmt(f, 2), fmt(ratio(r["commands"], r["total"]), 2),
                         fmt(p["total"], 0) if p else "-",
                         fmt(p["min"], 0) if p else "-", fmt(p["max"], 0) if p else "-",
                         fmt(pf, 2) if p else "-",
                         fmt(ratio(p["commands"], p["total"]), 1) if p else "-",
                         fmt(tr, 2), fmt(fr, 2)])
        if ok10:
            worst = min(ok10, key=lambda x: x[0])
            busy = [100 * r["total"] * r["held_mean_us"] / 1e6 / r["duration_s"]
                    for _, r in ok10 if "held_mean_us" in r]
            solo = [x[0] for x in ok10 if x[1]["conc"] == 1]
            self.goal("3. hold 10 ms: total >= 98% of time / 10 ms",
                      "%s%% to %s%% of ideal over %d cells (worst: %s, %d contenders; "
                      "one contender alone, i.e. no hand-off at all: %s); the lock was "
                      "held %s%% to %s%% of the time, the rest is the sleep's overshoot "
                      "plus the hand-offs"
                      % (fmt(worst[0], 1), fmt(max(x[0] for x in ok10), 1), len(ok10),
                         worst[1]["mode"], worst[1]["conc"],
                         " and ".join(fmt(v, 1) + "%" for v in solo) or "-",
                         fmt(min(busy), 1) if busy else "-",
                         fmt(max(busy), 1) if busy else "-"),
                      all(x[0] >= 98 for x in ok10))
        for mode in ("threads", "processes"):
            cells = [(f, r) for f, r in fair48 if r["mode"] == mode]
            if not cells:
                continue
            worst = min(cells, key=lambda x: x[0] if x[0] is not None else -1)
            self.goal("3. fairness: min/max >= 0.8 at 6, 16, 48 contenders, hold 0, "
                      "2, 10 ms, nobody with 0 (%s)" % mode,
                      "%s to %s over %d cells (worst: %d contenders, hold %d ms: min "
                      "%d, max %d)"
                      % (fmt(worst[0], 2), fmt(max(x[0] or 0 for x in cells), 2),
                         len(cells), worst[1]["conc"], worst[1]["hold_ms"],
                         worst[1]["min"], worst[1]["max"]),
                      all(x[0] is not None and x[0] >= 0.8 and x[1]["min"] > 0
                          for x in cells))
            c48 = [r for f, r in cells if r["hold_ms"] == 10 and r["conc"] == 48]
            if c48 and "held_pct" in c48[0]:
                r = c48[0]
                self.goal("3. hold 10 ms, 48 contenders: the lock held >= 99%% of the "
                          "time (%s)" % mode,
                          "%s%% held (%s%% of it the sleep's overshoot); the rest: "
                          "hand-offs %s%% (%d, p50 %s us, mean %s us: release called "
                          "-> the next holder's acquire returned), start %s%%"
                          % (fmt(r["held_pct"], 2), fmt(r["overshoot_pct"], 2),
                             fmt(r["handoff_pct"], 2), r["gap_n"], fmt(r["gap_p50_us"], 0),
                             fmt(r["gap_mean_us"], 0), fmt(r["start_pct"], 2)),
                          r["held_pct"] >= 99)
            elif c48 and "held_mean_us" in c48[0]:
                r = c48[0]
                busy = 100 * r["total"] * r["held_mean_us"] / 1e6 / r["duration_s"]
                self.goal("3. hold 10 ms, 48 contenders: the lock held >= 99%% of the "
                          "time (%s)" % mode, "%s%%" % fmt(busy, 1), busy >= 99)
        return table(["mode", "hold ms", "contenders", "total", "% of ideal",
                      "hold overshoot ms", "busy %", "avg",
                      "min", "max", "min/max", "cmds/acq", "redis-py total",
                      "redis-py min", "redis-py max", "redis-py min/max",
                      "redis-py cmds/acq", "total ratio", "fairness ratio"], rows)

    def time_split(self):
        """Where a contention cell's time went (issue 27): held, hand-offs,
        start; from every hold the benchmark logged."""
        rows = []
        for r in pick(self.recs, "contend", impl="redislock"):
            if "held_pct" not in r:
                continue
            rows.append([r["mode"], fmt(r["hold_ms"], 0), fmt(r["conc"], 0),
                         fmt(r["held_pct"], 2), fmt(r["overshoot_pct"], 2),
                         fmt(r["handoff_pct"], 2), fmt(r["start_pct"], 2),
                         fmt(r["gap_n"], 0), fmt(r["gap_p25_us"], 0), fmt(r["gap_p50_us"], 0),
                         fmt(r["gap_p75_us"], 0), fmt(r["gap_p99_us"], 0),
                         fmt(r["gap_mean_us"], 0),
                         "%d (%s%%)" % (r["gaps_over_1ms"], fmt(r["gaps_over_1ms_pct"], 2)),
                         fmt(r["release_p50_us"], 0), fmt(r["same_holder_again"], 0)])
        if not rows:
            return "(not measured in this run)\n"
        out = table(["mode", "hold ms", "contenders", "held %", "of which overshoot %",
                     "hand-offs %", "start %", "hand-offs", "p25 us", "p50 us", "p75 us",
                     "p99 us", "mean us", "over 1 ms (% of time)", "release call p50 us",
                     "same holder twice"], rows)
        notes = []
        for r in pick(self.recs, "contend", impl="redislock", hold_ms=10, conc=48):
            if "held_pct" not in r:
                continue
            h = pick(self.recs, "handoff", url="unix", mode=r["mode"], hold_ms=10)
            like = ""
            if h:
                like = ("; a hand-off after a 10 ms pause, measured above, took %s us "
                        "(p50), its floor (LPUSH -> BLPOP after the same pause) %s us"
                        % (fmt(h[0]["handoff_p50_us"], 0), fmt(h[0]["floor_p50_us"], 0)))
            notes.append("- %s, 48 contenders, hold 10 ms: held %s%% of the time (the "
                         "sleep's overshoot, %s%%, included); %s%% went to %d hand-offs "
                         "of %s us (p50; mean %s us)%s; %s%% to the start"
                         % (r["mode"], fmt(r["held_pct"], 2), fmt(r["overshoot_pct"], 2),
                            fmt(r["handoff_pct"], 2), r["gap_n"], fmt(r["gap_p50_us"], 0),
                            fmt(r["gap_mean_us"], 0), like, fmt(r["start_pct"], 2)))
        return out + ("\n" + "\n".join(notes) + "\n" if notes else "")

    def peer_summary(self):
        ours = pick(self.recs, "contend", impl="redislock")
        lines = []
        for hold in sorted({r["hold_ms"] for r in ours}):
            tr, better, n = [], 0, 0
            for r in pick(self.recs, "contend", impl="redislock", hold_ms=hold):
                p = pick(self.recs, "contend", impl="redis-py", mode=r["mode"],
                         conc=r["conc"], hold_ms=hold)
                if not p:
                    continue
                p = p[0]
                n += 1
                if p["total"]:
                    tr.append(r["total"] / p["total"])
                if (fairness(r) or 0) >= (fairness(p) or 0):
                    better += 1
            if n:
                lines.append("- hold %d ms: our total / redis-py's total %s to %s "
                             "(%d cells); our min/max >= redis-py's in %d of %d cells"
                             % (hold, fmt(min(tr), 2) if tr else "-",
                                fmt(max(tr), 2) if tr else "-", n, better, n))
        ow = pick(self.recs, "waitcost", impl="redislock", end="released")
        pw = pick(self.recs, "waitcost", impl="redis-py")
        if ow and pw:
            o, p = ow[0], pw[0]
            lines.append("- one waiter blocked %s s: we sent %d requests and used %s ms "
                         "of CPU; redis-py sent %d and used %s ms"
                         % (fmt(o["blocked_s"], 0), o["commands"],
                            fmt(o["cpu_process_ms"], 2), p["commands"],
                            fmt(p["cpu_process_ms"], 2)))
        oc = [r for r in pick(self.recs, "crash") if r.get("impl", "redislock") == "redislock"]
        pc = pick(self.recs, "crash", impl="redis-py")
        if oc and pc and "delay_p50_us" in oc[0] and "delay_p50_us" in pc[0]:
            lines.append("- crashed holder (expiry %d ms): a waiter held the lock %s ms "
                         "after the expiry (p50; max %s); with redis-py %s ms (max %s)"
                         % (oc[0]["expire_ms"], fmt(oc[0]["delay_p50_us"] / 1000, 1),
                            fmt(oc[0]["delay_max_us"] / 1000, 1),
                            fmt(pc[0]["delay_p50_us"] / 1000, 1),
                            fmt(pc[0]["delay_max_us"] / 1000, 1)))
        return "\n".join(lines) + "\n" if lines else "(redis-py was not run)\n"

    # ---------------------------------------------------- cost of waiting
    def waiting(self):
        rows = []
        for r in pick(self.recs, "waitcost"):
            rows.append([r.get("impl", "redislock"), r["end"], r["result"],
                         fmt(r["blocked_s"], 2), fmt(r["commands"], 0),
                         fmt(r["cpu_thread_ms"], 3), fmt(r["cpu_process_ms"], 3)])
        ours = pick(self.recs, "waitcost", impl="redislock")
        if ours:
            cmds = max(r["commands"] for r in ours)
            cpu = max(max(r["cpu_thread_ms"], r["cpu_process_ms"]) for r in ours)
            self.goal("4. one waiter blocked %s s: O(1) commands, < 1 ms CPU"
                      % fmt(ours[0]["blocked_s"], 0),
                      "%d commands, %s ms CPU at most" % (cmds, fmt(cpu, 3)),
                      cmds <= 10 and cpu < 1)
        per = []
        for hold in (0, 10, 500):
            cells = pick(self.recs, "contend", impl="redislock", hold_ms=hold)
            cells = [r for r in cells if r["total"]]
            if cells:
                v = [r["commands"] / r["total"] for r in cells]
                per.append("hold %d ms: %s to %s" % (hold, fmt(min(v), 2), fmt(max(v), 2)))
        if per:
            self.goal("4. commands per acquisition under contention (no goal)",
                      "; ".join(per), "figure only")
        return table(["library", "wait ends by", "result", "blocked s", "commands",
                      "CPU ms (thread)", "CPU ms (process)"], rows)

    # ------------------------------------------------------------- crash
    def crash(self):
        rows = []
        for r in pick(self.recs, "crash"):
            impl = r.get("impl", "redislock")
            masters = int(r.get("masters", 1))
            ms = lambda k: fmt(r[k] / 1000, 2) if k in r else "-"
            rows.append([impl, fmt(masters, 0), fmt(r["expire_ms"], 0), fmt(r["delay_n"], 0),
                         fmt(r.get("missed", 0), 0), ms("delay_min_us"), ms("delay_p25_us"),
                         ms("delay_p50_us"), ms("delay_p75_us"), ms("delay_p99_us"),
                         ms("delay_max_us"), fmt(r.get("resolution_p50_us"), 0),
                         "%s / %s" % (fmt(r.get("commands_p50"), 1), fmt(r.get("commands_max"), 1))
                         if "commands_p50" in r else "-",
                         fmt(r.get("ping_p50_us"), 1)])
            if impl != "redislock":
                continue
            mode = "single master" if masters == 1 else "majority, %d masters" % masters
            if not r["delay_n"]:  # every kill missed: a watcher or waiter came too late
                self.goal("5. crashed holder: expiry -> waiter holds it <= 20 ms (%s)" % mode,
                          "no kill measured (%d missed: the machine too slow for the "
                          "watcher)" % r.get("missed", 0), None)
                continue
            self.goal("5. crashed holder: expiry -> waiter holds it <= 20 ms (%s)" % mode,
                      "p50 %s ms, max %s ms over %d kills"
                      % (fmt(r["delay_p50_us"] / 1000, 2), fmt(r["delay_max_us"] / 1000, 2),
                         r["delay_n"]), r["delay_max_us"] <= 20000)
            if "resolution_p50_us" not in r:
                continue  # a run from before issue 27: no watcher
            self.goal("27. crashed holder: lock gone on the server -> waiter holds it, "
                      "p50 <= 0.5 ms, p99 <= 2 ms (%s)" % mode,
                      "p50 %s ms, p99 %s ms (p25 %s, p75 %s, max %s) over %d kills, "
                      "against the server's own expiry (watcher, +-%s us)"
                      % (fmt(r["delay_p50_us"] / 1000, 2), fmt(r["delay_p99_us"] / 1000, 2),
                         fmt(r["delay_p25_us"] / 1000, 2), fmt(r["delay_p75_us"] / 1000, 2),
                         fmt(r["delay_max_us"] / 1000, 2), r["delay_n"],
                         fmt(r["resolution_p50_us"], 0)),
                      r["delay_p50_us"] <= 500 and r["delay_p99_us"] <= 2000)
            self.goal("27. crashed holder: O(1) commands per expiry, no polling (%s)" % mode,
                      "%s commands per master for the waiter's whole acquire (p50; max %s)"
                      % (fmt(r["commands_p50"], 1), fmt(r["commands_max"], 1)),
                      r["commands_max"] <= 10)
        return table(["library", "masters", "expiry ms", "kills", "missed", "min ms",
                      "p25 ms", "p50 ms", "p75 ms", "p99 ms", "max ms",
                      "watcher +- us (p50)", "commands per master p50 / max",
                      "PING p50 us"], rows)

    # ----------------------------------------------------------- majority
    def majority(self):
        rows = []
        recs = sorted(pick(self.recs, "majority"),
                      key=lambda r: (r.get("delay_us", 0), r["masters"]))
        for r in recs:
            delay = r.get("delay_us", 0)
            base = [b for b in recs if b["masters"] == 1 and b.get("delay_us", 0) == delay]
            base = base[0] if base else None
            b50 = ratio(r["acqrel_p50_us"], base["acqrel_p50_us"]) if base else None
            b99 = ratio(r["acqrel_p99_us"], base["acqrel_p99_us"]) if base else None
            where = ("relay, %s ms RTT added" % fmt(2 * delay / 1000.0, 1) if delay
                     else "local sockets")
            rows.append([where, fmt(r["masters"], 0), fmt(r["acqrel_n"], 0),
                         fmt(r["acqrel_p50_us"]), fmt(r["acqrel_p99_us"]),
                         fmt(ratio(r["acqrel_p50_us"], r["ping_p50_us"]), 2),
                         fmt(b50, 2), fmt(b99, 2), fmt(r.get("series_p50_us")),
                         fmt(ratio(r["acqrel_p50_us"], r.get("series_p50_us")), 2)])
            if r["masters"] > 1 and b50 is not None:
                self.goal("6. majority, %d masters <= 1.5x one master (%s)"
                          % (r["masters"], where),
                          "p50 %sx (%s us vs %s us), p99 %sx; the same masters asked "
                          "one after another: %s us"
                          % (fmt(b50, 2), fmt(r["acqrel_p50_us"]),
                             fmt(base["acqrel_p50_us"]), fmt(b99, 2),
                             fmt(r.get("series_p50_us"))), b50 <= 1.5)
        return table(["masters reached over", "masters", "samples",
                      "acquire+release p50 us", "p99 us", "p50 / PING p50",
                      "p50 / 1 master", "p99 / 1 master", "in series p50 us",
                      "parallel / series"], rows)

    # ------------------------------------------------------------ renewal
    def renewal(self):
        rows = []
        for r in pick(self.recs, "renew"):
            cycles = r["renewals"] / r["locks"] if r["locks"] else None
            rows.append([fmt(r["locks"], 0), fmt(r["expire_ms"], 0),
                         fmt(r["observed_s"], 1), fmt(r["renewals"], 0),
                         fmt(r["pipelines"], 0),
                         fmt(ratio(r["renewals"], r["pipelines"]), 0),
                         fmt(cycles, 1), fmt(ratio(r["pipelines"], cycles), 2),
                         fmt(r["cpu_ms"], 2), fmt(r["cpu_ms"] / r["observed_s"], 2),
                         fmt(r["held_after"], 0), fmt(r["acquire_all_ms"], 1)])
            self.goal("7. renewal of %d locks (no numeric goal)" % r["locks"],
                      "%d renewals in %d round trips in %s s, %s ms CPU; %d of %d still held"
                      % (r["renewals"], r["pipelines"], fmt(r["observed_s"], 0),
                         fmt(r["cpu_ms"], 1), r["held_after"], r["locks"]),
                      "figure only; all held" if r["held_after"] == r["locks"]
                      else "**locks lost**")
        return table(["locks", "expiry ms", "observed s", "renewals (EVALSHA)",
                      "round trips", "renewals per round trip", "cycles",
                      "round trips per cycle", "CPU ms", "CPU ms per s", "held after",
                      "acquiring all took ms"], rows)

    # -------------------------------------------------------------- scale
    def scale(self):
        rows = []
        for r in pick(self.recs, "scale"):
            rows.append([fmt(r["locks"], 0), fmt(r["threads"], 0), fmt(r["acquired"], 0),
                         fmt(r["keys_held"], 0), fmt(r["acquire_all_ms"], 1),
                         fmt(r["conns_peak"], 0), fmt(r["conns_held"], 0),
                         fmt(r["conns_after"], 0)])
            self.goal("8. %d locks held at once by %d threads (no numeric goal)"
                      % (r["locks"], r["threads"]),
                      "all held after %s ms; connections: peak %d, %d kept"
                      % (fmt(r["acquire_all_ms"], 0), r["conns_peak"], r["conns_held"]),
                      "figure only; all acquired"
                      if r["acquired"] == r["locks"] and not r["failed"]
                      else "**failures**")
        return table(["locks", "threads", "acquired", "lock keys on server",
                      "all held after ms", "connections peak",
                      "connections while held", "connections after release"], rows)

    # ---------------------------------------------------------------- TLS
    def tls(self):
        lat, cpu = [], []
        for r in pick(self.recs, "tls"):
            for key, name in (("acqrel", "acquire+release, warm connection"),
                              ("newconn", "new connection: connect, handshake, "
                                          "first acquire")):
                t50, t99 = r[key + "_tls_p50_us"], r[key + "_tls_p99_us"]
                c50, c99 = r[key + "_tcp_p50_us"], r[key + "_tcp_p99_us"]
                lat.append([name, fmt(r[key + "_tls_n"], 0), fmt(t50), fmt(t99),
                            fmt(c50), fmt(c99), fmt(ratio(t50, c50), 2),
                            fmt(ratio(t99, c99), 2)])
            cpu.append(["acquire+release, client (calling thread)", fmt(r["cpu_tls_us"]),
                        fmt(r["cpu_tcp_us"]), fmt(ratio(r["cpu_tls_us"], r["cpu_tcp_us"]), 2)])
            cpu.append(["acquire+release, server", fmt(r["server_cpu_tls_us"]),
                        fmt(r["server_cpu_tcp_us"]),
                        fmt(ratio(r["server_cpu_tls_us"], r["server_cpu_tcp_us"]), 2)])
            cpu.append(["new connection + first acquire, client", fmt(r["newconn_cpu_tls_us"]),
                        fmt(r["newconn_cpu_tcp_us"]),
                        fmt(ratio(r["newconn_cpu_tls_us"], r["newconn_cpu_tcp_us"]), 2)])
            self.goal("9. TLS acquire+release on warm connections <= 1.3x plain TCP",
                      "p50 %sx (%s us vs %s us), p99 %sx; %d connections opened during "
                      "the loop" % (fmt(r["ratio_p50"], 2), fmt(r["acqrel_tls_p50_us"]),
                                    fmt(r["acqrel_tcp_p50_us"]), fmt(r["ratio_p99"], 2),
                                    r["warm_new_connections"]),
                      r["ratio_p50"] <= 1.3)
            self.goal("9. a new TLS connection (no numeric goal)",
                      "p50 %s us against %s us for TCP (handshake about %s us, %s us of "
                      "client CPU); kept off the hot path by the pool"
                      % (fmt(r["newconn_tls_p50_us"]), fmt(r["newconn_tcp_p50_us"]),
                         fmt(r["newconn_tls_p50_us"] - r["newconn_tcp_p50_us"], 0),
                         fmt(r["newconn_cpu_tls_us"] - r["newconn_cpu_tcp_us"], 0)),
                      "figure only")
        return (table(["operation", "samples", "TLS p50 us", "TLS p99 us", "TCP p50 us",
                       "TCP p99 us", "p50 TLS / TCP", "p99 TLS / TCP"], lat) + "\n" +
                table(["CPU per operation", "TLS us", "TCP us", "TLS / TCP"], cpu))

    # --------------------------------------------------------- statistics
    def statcost(self):
        rows = []
        for r in pick(self.recs, "statcost"):
            rows.append([r["url"], fmt(r["with_n"], 0), fmt(r["without_p50_us"]),
                         fmt(r["with_p50_us"]), fmt(r["ratio_p50"], 3),
                         fmt(r["without_mean_us"]), fmt(r["with_mean_us"]),
                         fmt(r["ratio_mean"], 3), fmt(r["ratio_p99"], 3),
                         fmt(r["cpu_without_us"], 2), fmt(r["cpu_with_us"], 2),
                         fmt(r["cpu_ratio"], 3), fmt(r["ping_p50_us"])])
            self.goal("26. statistics cost <= 2%% of an uncontended acquire+release (%s)"
                      % r["url"],
                      "p50 %s, mean %s, client CPU %s (with / without)"
                      % (fmt(r["ratio_p50"], 3), fmt(r["ratio_mean"], 3),
                         fmt(r["cpu_ratio"], 3)),
                      max(r["ratio_p50"], r["ratio_mean"]) <= 1.02)
        return table(["socket", "pairs", "without p50 us", "with p50 us", "p50 ratio",
                      "without mean us", "with mean us", "mean ratio", "p99 ratio",
                      "CPU without us", "CPU with us", "CPU ratio", "PING p50 us"], rows)

    # ----------------------------------------------------------- sentinel
    def sentinel(self):
        warm = {r["url"]: r for r in pick(self.recs, "sentinel_warm")}
        if not warm:
            return "(not measured in this run: bench/run --sentinel)\n"
        rows = [[u, fmt(r["n"], 0), fmt(r["p50_us"], 0), fmt(r["p99_us"], 0),
                 fmt(r["ratio"], 2)] for u, r in warm.items()]
        out = table(["URL", "pairs", "p50 us", "p99 us", "p50 / master URL"], rows)
        if "service" in warm:
            self.goal("22. warm acquire+release through the service URL <= 1.05x the "
                      "master's own URL", fmt(warm["service"]["ratio"], 2),
                      warm["service"]["ratio"] <= 1.05)
        fo = {}
        for r in pick(self.recs, "sentinel_failover"):
            fo.setdefault(r["kind"], []).append(r)
        rows = []
        bounds = {"forced": ("SENTINEL FAILOVER -> first acquire on the new master", 1400),
                  "killed": ("master SIGKILLed -> first successful acquire", 2400)}
        for kind, (what, bound) in bounds.items():
            rs = fo.get(kind, [])
            if not rs:
                continue
            ms = [r["first_ms"] for r in rs]
            rows.append([what, fmt(len(rs), 0), ", ".join(fmt(m, 0) for m in ms),
                         ", ".join(fmt(r["named_ms"], 0) if r["named_ms"] >= 0
                                   else "later" for r in rs)])
            self.goal("22. %s <= %.1f s" % (what, bound / 1000.0),
                      "%s-%s ms" % (fmt(min(ms), 0), fmt(max(ms), 0)),
                      min(ms) >= 0 and max(ms) <= bound)
        out += "\n" + table(["event", "runs", "ms (each run)",
                             "a sentinel named the new master at ms"], rows)
        ws = pick(self.recs, "sentinel_waiter")
        if ws:
            us = [r["handoff_us"] for r in ws]
            ok = all(r["ok"] == 1 for r in ws)
            out += ("\nWaiter with no timeout across a SIGKILL failover, from the "
                    "release on the new master to the waiter holding the lock: %s us "
                    "(%d runs%s).\n" % (", ".join(fmt(u, 0) for u in us), len(ws),
                                        "" if ok else "; SOME FAILED"))
            self.goal("22. waiter across a failover holds <= 100 ms after the release",
                      "%s-%s us" % (fmt(min(us), 0), fmt(max(us), 0)),
                      ok and max(us) <= 100000)
        return out

    # ------------------------------------------------------------ cluster
    def cluster(self):
        rows = []
        w = pick(self.recs, "cluster-warm")
        if not w:
            return "(not measured in this run: bench/run --cluster)\n"
        w = w[-1]
        rows.append(["warm acquire+release, cluster URL / the node used directly <= 1.05x",
                     "p50 %s (%s vs %s us; %s each), p99 %s vs %s us"
                     % (fmt(w["ratio"], 3), fmt(w["cluster_p50_us"]), fmt(w["direct_p50_us"]),
                        fmt(w["n"], 0), fmt(w["cluster_p99_us"]), fmt(w["direct_p99_us"]))])
        self.goal("23. warm acquire+release on a cluster <= 1.05x the node directly",
                  fmt(w["ratio"], 3), w["ratio"] <= 1.05)
        for r in pick(self.recs, "cluster-sigkill")[-1:]:
            rows.append(["master SIGKILLed -> first acquire <= replica writable + 200 ms",
                         "+%s ms (p50) / +%s ms (max) after writable; writable %s / %s ms "
                         "after the kill; %s kills"
                         % (fmt(r["first_after_writable_p50_ms"], 0),
                            fmt(r["first_after_writable_max_ms"], 0),
                            fmt(r["writable_p50_ms"], 0), fmt(r["writable_max_ms"], 0),
                            fmt(r["runs"], 0))])
            self.goal("23. master SIGKILLed -> first acquire <= writable + 200 ms",
                      "+%s ms max" % fmt(r["first_after_writable_max_ms"], 0),
                      r["runs"] > 0 and r["first_after_writable_max_ms"] <= 200)
        for r in pick(self.recs, "cluster-migrate")[-1:]:
            rows.append(["waiter on a migrated slot woken <= the server's MOVED + 150 ms",
                         "%s ms (p50) / %s ms (max) after the MOVED (which came %s / %s ms "
                         "after SETSLOT NODE); %s migrations"
                         % (fmt(r["wake_after_moved_p50_ms"]), fmt(r["wake_after_moved_max_ms"]),
                            fmt(r["moved_p50_ms"]), fmt(r["moved_max_ms"]), fmt(r["runs"], 0))])
            rows.append(["release issued while the slot is open: succeeds <= 50 ms after "
                         "SETSLOT NODE", "%s ms (p50) / %s ms (max)"
                         % (fmt(r["release_after_setslot_p50_ms"]),
                            fmt(r["release_after_setslot_max_ms"]))])
            self.goal("23. waiter on a migrated slot <= MOVED + 150 ms",
                      "%s ms max" % fmt(r["wake_after_moved_max_ms"]),
                      r["wake_after_moved_max_ms"] <= 150)
            self.goal("23. release while the slot is open <= 50 ms after SETSLOT NODE",
                      "%s ms max" % fmt(r["release_after_setslot_max_ms"]),
                      r["release_after_setslot_max_ms"] <= 50)
        for r in pick(self.recs, "cluster-failover")[-1:]:
            rows.append(["CLUSTER FAILOVER under a waiter: holds <= 150 ms after the next "
                         "release", "%s ms (p50) / %s ms (max); %s runs (%s left out)"
                         % (fmt(r["hold_after_release_p50_ms"], 2),
                            fmt(r["hold_after_release_max_ms"], 2), fmt(r["runs"], 0),
                            fmt(r["skipped"], 0))])
            self.goal("23. CLUSTER FAILOVER under a waiter: holds <= 150 ms after the release",
                      "%s ms max" % fmt(r["hold_after_release_max_ms"], 2),
                      r["runs"] > 0 and r["hold_after_release_max_ms"] <= 150)
        return table(["goal (issue 23)", "measured"], rows)

    # ------------------------------------------------------------ fencing
    def fencing(self):
        rows = []
        for r in pick(self.recs, "fencing"):
            rows.append([r["url"], fmt(r["fenced_n"], 0), fmt(r["plain_p50_us"]),
                         fmt(r["plain_p99_us"]), fmt(r["fenced_p50_us"]),
                         fmt(r["fenced_p99_us"]), fmt(r["ratio_p50"], 3),
                         fmt(r["ratio_p99"], 3), fmt(r["ping_p50_us"]),
                         fmt(r["tokens_not_increasing"], 0)])
            self.goal("10. fencing: acquire+release within 10%% of without (%s)" % r["url"],
                      "p50 %sx (%s us vs %s us), p99 %sx; tokens not increasing: %d"
                      % (fmt(r["ratio_p50"], 3), fmt(r["fenced_p50_us"]),
                         fmt(r["plain_p50_us"]), fmt(r["ratio_p99"], 3),
                         r["tokens_not_increasing"]),
                      r["ratio_p50"] <= 1.10 and r["tokens_not_increasing"] == 0)
        return table(["connection", "samples", "without p50 us", "without p99 us",
                      "with fencing p50 us", "with fencing p99 us", "p50 ratio",
                      "p99 ratio", "PING p50 us", "tokens not increasing"], rows)

    # ------------------------------------------- fair lock and semaphore
    def kinds(self):
        """Issue 24's goals (bench/run --kinds): their own table."""
        g = []

        def goal(what, figure, ok):
            g.append((what, figure, yes(ok)))
        for r in pick(self.recs, "handoff", kind="fair"):
            p50 = ratio(r["handoff_p50_us"], r["floor_p50_us"])
            mx = [m for m in pick(self.recs, "handoff") if m["mode"] == r["mode"]
                  and m["url"] == r["url"] and "floor_p50_us" in m]
            mutex = (", the mutex in the same run %sx"
                     % fmt(ratio(mx[0]["handoff_p50_us"], mx[0]["floor_p50_us"]), 2)
                     if mx else "")
            goal("fair lock hand-off <= 1.15 x the LPUSH->BLPOP floor (%s, %s)"
                 % (r["url"], r["mode"]),
                 "p50 %sx (%s us; floor %s us); p99 %s us%s"
                 % (fmt(p50, 2), fmt(r["handoff_p50_us"]), fmt(r["floor_p50_us"]),
                    fmt(r["handoff_p99_us"]), mutex), p50 <= 1.15)
        for r in pick(self.recs, "handfloor"):
            fl = r["floor_p50_us"]
            goal("what any scripted hand-off costs (bench handfloor, plain hiredis, %s): "
                 "a script whose one call is the LPUSH; the least checked grant (4 calls); "
                 "that grant with a take behind the BLPOP" % r["url"],
                 "p50 %sx, %sx, %sx the floor (%s, %s, %s us; floor %s us): the take "
                 "behind the BLPOP runs before the server writes the BLPOP's reply"
                 % (fmt(ratio(r["script_p50_us"], fl), 2), fmt(ratio(r["grant_p50_us"], fl), 2),
                    fmt(ratio(r["take_p50_us"], fl), 2), fmt(r["script_p50_us"]),
                    fmt(r["grant_p50_us"]), fmt(r["take_p50_us"]), fmt(fl)),
                 "reference (not a goal)")
        for r in pick(self.recs, "fairness"):
            f = fairness(r)
            goal("fair lock, %d processes in tight loops: acquisition order = queue "
                 "order, min/max >= 0.95" % r["conc"],
                 "%d grants checked against the queue (MONITOR), %d out of order; "
                 "min/max %s (%d / %d)" % (r["checked"], r["inversions"], fmt(f, 3),
                                          r["min"], r["max"]),
                 r["inversions"] == 0 and r["checked"] > 0 and f is not None and f >= 0.95)
        for r in pick(self.recs, "semutil"):
            goal("semaphore of %d, %d contenders, hold %d ms: permits in use >= 98%%, "
                 "never more than N (sampled on the server)"
                 % (r["permits"], r["conc"], r["hold_ms"]),
                 "held %s%% of the permit-time (all %d held in %s%% of %d samples); "
                 "at most %d entries" % (fmt(r["in_use_pct"], 1), r["permits"],
                                        fmt(r["full_pct"], 1), r["samples"], r["most"]),
                 r["in_use_pct"] >= 98 and r["most"] <= r["permits"] and not r["errors"])
        for r in pick(self.recs, "kcrash"):
            goal("crashed holder (SIGKILL) -> head waiter holds <= 20 ms after the lease",
                 "p50 %s ms, max %s ms over %d kills (lease %d ms)"
                 % (fmt(r["delay_p50_us"] / 1000, 2), fmt(r["delay_max_us"] / 1000, 2),
                    r["delay_n"], r["expire_ms"]), r["delay_max_us"] <= 20000)
        for r in pick(self.recs, "kwaiter"):
            gl = r["grant_lease_ms"]
            goal("crashed head waiter -> next waiter holds <= grant lease + 20 ms",
                 "p50 %s ms, max %s ms after the release over %d runs (grant lease %d ms)"
                 % (fmt(r["delay_p50_us"] / 1000, 1), fmt(r["delay_max_us"] / 1000, 1),
                    r["delay_n"], gl), r["delay_max_us"] <= (gl + 20) * 1000)
        clk = pick(self.recs, "kclock")
        if clk:
            ok = all(abs(r["lease_left_ms"] - r["expire_ms"]) <= 20 and
                     abs(r["lease_left_500ms_later"] - (r["expire_ms"] - 500)) <= 50
                     for r in clk)
            goal("client clocks offset +-30 s: leases unaffected",
                 "; ".join("%s: server lease %d ms, %d ms 500 ms later, validity %d ms"
                           % (r["faketime"], r["lease_left_ms"], r["lease_left_500ms_later"],
                              r["validity_ms"]) for r in clk), ok)
        for r in pick(self.recs, "waitcost", kind="fair"):
            goal("a fair-lock waiter blocked %s s (%s): O(1) commands, no polling"
                 % (fmt(r["blocked_s"], 1), r["end"]),
                 "%d commands, %s ms CPU" % (r["commands"], fmt(r["cpu_process_ms"], 3)),
                 r["commands"] <= 10)
        return table(["goal (issue 24)", "measured", "status"], g)

    # ---------------------------------------------------------- published
    def published_table(self):
        if not self.published:
            return ""
        rows = []
        with open(self.published) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                impl, hold, conc, total, avg, mn, mx = line.split()
                rows.append([impl, hold, conc, total, avg, mn, mx])
        return table(["implementation", "hold s", "processes", "total", "avg", "min",
                      "max"], rows)

    # ------------------------------------------------------------- output
    def machine(self):
        i = self.info
        lines = ["- date: %s" % i.get("date", "?"),
                 "- machine: %s cores, %s, %s" % (i.get("nproc", "?"), i.get("cpu", "?"),
                                                 i.get("kernel", "?")),
                 "- %s; libredislock %s; hiredis %s; TLS %s; redis-py %s"
                 % (i.get("redis", "?"), i.get("redislock", "?"), i.get("hiredis", "?"),
                    i.get("tls", "none"), i.get("redis_py", "not installed")),
                 "- load average (1, 5, 15 min) before: %s, after: %s"
                 % (i.get("load_before", "?"), i.get("load_after", "?")),
                 "- contention: %s s per cell; whole run: %s s%s"
                 % (i.get("duration", "?"), i.get("elapsed_s", "?"),
                    " (quick run: tiny sizes)" if i.get("quick") == "1" else "")]
        if self.info.get("note"):
            lines.append("- note: " + self.info["note"])
        if self.loaded():
            lines.append("- **the machine was loaded** by other jobs during this run "
                         "(1-minute load average reached %.1f on %s cores): timings "
                         "are noisier and slower than on an idle machine"
                         % (self.load_max(), i.get("nproc", "?")))
        return "\n".join(lines) + "\n"

    def load_max(self):
        vals = []
        for k in ("load_before", "load_after"):
            try:
                vals.append(float(self.info.get(k, "0").split()[0]))
            except (ValueError, IndexError):
                pass
        return max(vals) if vals else 0.0

    def loaded(self):
        try:
            n = int(self.info.get("nproc", "1"))
        except ValueError:
            n = 1
        return self.load_max() > 0.5 * n

    def sections(self):
        return [("Latency", self.latency()), ("Hand-off in detail", self.handoff_detail()),
                ("Contention", self.contention()), ("Where the time goes", self.time_split()),
                ("Cost of waiting", self.waiting()), ("Crashed holder", self.crash()),
                ("Majority mode", self.majority()), ("Renewal", self.renewal()),
                ("Scale", self.scale()), ("TLS", self.tls()),
                ("Fencing tokens", self.fencing()), ("Statistics", self.statcost()),
                ("Sentinel", self.sentinel()), ("Cluster", self.cluster())]

    def text(self):
        secs = self.sections()
        out = ["libredislock benchmark\n", self.machine()]
        for name, body in secs:
            out.append("\n%s\n\n%s" % (name, body))
        out.append("\nredis-py comparison\n\n" + self.peer_summary())
        out.append("\nGoals\n\n" + table(["goal", "measured", "status"], self.goals))
        return "".join(out)

    def markdown(self):
        secs = dict(self.sections())
        goals = table(["goal", "measured", "status"], self.goals)
        return MARKDOWN.format(
            machine=self.machine(), goals=goals, latency=secs["Latency"],
            handoff_detail=secs["Hand-off in detail"], contention=secs["Contention"],
            time_split=secs["Where the time goes"], peer=self.peer_summary(),
            waiting=secs["Cost of waiting"], crash=secs["Crashed holder"],
            majority=secs["Majority mode"], renewal=secs["Renewal"],
            scale=secs["Scale"], tls=secs["TLS"], fencing=secs["Fencing tokens"],
            statcost=secs["Statistics"], sentinel=secs["Sentinel"],
            cluster=secs["Cluster"],
            published=self.published_table(),
            duration=self.info.get("duration", "?"))


MARKDOWN = """\
# Benchmarks

Generated by `bench/run --markdown doc/benchmarks.md` (after `scripts/build`).
By default each contention cell runs {duration} s instead of the 10 s of
python-redis-lock's benchmark, so that the whole run (84 cells with the
redis-py peer) stays under 10 minutes; `bench/run --duration 10` gives 10 s
cells (about 15 minutes in all). Everything below comes from one run on this
machine, against private `redis-server` processes that the script starts on
unix sockets (and one free TCP port) and kills at the end. Latencies are also
given as multiples of the PING round trip (RTT) measured in the same run, on
the same kind of connection, interleaved with the operation measured: that
ratio is what the goals are stated in.

## Machine

{machine}
## Goals (issues 5, 14, 17, 22, 23, 26 and 27)

{goals}
"met" for try-acquire means one request per try (INFO commandstats) and a
p50 under 2 RTT (a second round trip would take at least 2); for the waiter,
"O(1)" means at most 10 commands for the whole wait. Goals 7 and 8 have no
numeric target: their status only says whether every lock stayed held / was
acquired.

## 1-2. Latency: uncontended, try-acquire, hand-off

{latency}
- *acquire+release*: `redislock_acquire(lk, -1)` then `redislock_release(lk)`
  on a free lock (one client, one handle), timed together and apart.
- *try-acquire, lock held*: `redislock_try_acquire()` of a lock another handle
  holds (answers `REDISLOCK_EBUSY`).
- *hand-off*: two contenders (threads sharing one client, or processes with a
  client each) pass one lock back and forth; the holder waits until the other
  is blocked in BLPOP (INFO `blocked_clients`), notes the time and calls
  `redislock_release()`; the figure is the time from that call to the
  waiter's `redislock_acquire()` returning (CLOCK_MONOTONIC, shared by
  processes).
- *floor: LPUSH -> BLPOP*: the same two contenders, interleaved with the
  hand-offs in the same run, pass a plain list element: the new holder waits
  until the other is blocked in a plain BLPOP, notes the time and LPUSHes;
  the figure is the time from that call to the BLPOP returning. No hand-off
  can beat it: it is one request, one wake-up and one reply.
- *requests*: requests per operation as the server counts them (INFO
  commandstats over 100 more operations; acquire+release is two EVALSHA).
- *p50 / p99*: median and 99th percentile (nearest rank). *PING*: a plain
  hiredis PING on the same server and kind of connection, one before each
  operation (for hand-off: by the holder on its own connection just before
  each release).
- *p50 / PING p50*, *p99 / PING p99*: the latency in round trips. Each of our
  requests is an EVALSHA of a small Lua script, which costs the server a few
  microseconds more than a PING (the line under the table): on a local socket
  whose whole round trip is about 10 us that alone adds 0.3 to 0.5 RTT per
  request; on a real network (RTT 100 us and more) it would not.
- On a virtual machine the round trip itself depends on how idle the CPUs
  are (waking an idle vCPU costs tens of microseconds): compare the PING
  columns between rows. On a loaded machine the uncontended PING was about
  10 us; on an idle one it can be several times that, while the holder in
  the hand-off loop (busy polling INFO) still sees a short one. Each ratio
  is against the PING timed in the same loop, so it is only as steady as
  that PING.

### Hand-off in detail (issue 27)

{handoff_detail}
On this machine the hand-off and its floor are bimodal: a fast and a slow
group whose shares change from run to run, so that a p50 alone can move by
a third between runs without any change in the code. The table shows both:
*p50 (95% interval)*: the median, and the samples of rank n/2 -+ 0.98 sqrt(n)
around it (a median outside the interval of another run differs by more
than chance); *split*: the latency that best separates a fast and a slow
group (Otsu's method on the middle 98% of the samples), with the share of
each; *fast p50*, *slow p50*: the median of each group; *separation*:
Ashman's D of the two groups (above 2: two distinct modes, and the shares
say more than one p50; below 2: one mode cut in two). With 2,000 samples
the interval of the median is a few percent wide, so a change of 10% shows
in the p50 of each mode. *pause*: the rows with a pause of 10 ms had the
holder wait that long, idle, before each LPUSH, PING and release, as the
holders of the contention cells with hold 10 ms do: every hop then wakes
an idle virtual CPU (the PING after such a pause is also in the table
above), which is what a hand-off costs there (section 3).

## 3. Contention (python-redis-lock's benchmark shape)

{contention}
Each row: N contenders (threads sharing one client, or processes with one
client each) take one lock (expiry 5 s, as in python-redis-lock's benchmark)
in a loop for {duration} s, sleep *hold ms* while holding it, release. The
redis-py columns drive redis-py's `Lock` the same way (`timeout=5`, its default
`sleep=0.1` between tries).
- *total*: acquisitions by all contenders that returned before the end;
  *% of ideal*: total / (time / hold) for hold > 0; *hold overshoot*: how much
  longer than *hold ms* the holders actually held it on average (the sleep
  wakes late on a loaded machine; that time counts against the ideal too);
  *busy %*: the share of the time the lock was held (total x the mean actual
  hold / time): the rest went to hand-offs, so 100 - busy % is what the lock
  itself cost; *avg, min, max*: per contender; *min/max*: fairness (1 = every
  contender got the same share, 0 = one starved). With hold 500 ms a cell
  holds only a few acquisitions, so its min/max says little.
- *cmds/acq*: requests sent to the server per acquisition, from INFO
  commandstats deltas (EVALSHA, EVAL, BLPOP, CLIENT for us; SET, EVALSHA, EVAL,
  SCRIPT for redis-py), commands run inside scripts left out.
- *total ratio*: our total / redis-py's; *fairness ratio*: our min/max /
  redis-py's (inf when a redis-py contender got nothing).

### Where the time goes (issue 27)

{time_split}
Every hold of these cells is logged (acquire returned, release called,
release returned, by whom), so the cell's time splits exactly: *held %*:
from an acquire's return to its release call (the holds never overlap:
one lock); *of which overshoot*: the sleep's lateness (the benchmark
sleeps *hold ms*; the holder holds the lock longer, which counts as held);
*hand-offs %*: from a release call to the next holder's acquire returning;
*start %*: from the cell's start to the first acquire returning. These
add up to 100%. There is no renewal in these cells (expiry 5 s, not
auto-renewed). *hand-offs*: how many, and their latency (*over 1 ms*: the
slow ones and their share of the time); *release call*: the releaser's
own round trip, which ends about when the next holder's acquire does
(Redis writes both replies in the same pass of its event loop); *same
holder twice*: hand-offs won by the releaser coming straight back (a
newcomer) instead of the first waiter (0: first come, first served).

So, at hold 10 ms, the missing time is the hand-offs, nothing else: no
renewal runs (expiry 5 s), the start costs a few hundredths of a percent,
and no waiter sleeps past a release (each release serves the first
blocked waiter in the same pass of the server's loop; *same holder
twice* 0). A hand-off there costs what a hand-off after a 10 ms idle
pause costs (section 1-2, the rows with a pause), three to five times a
warm one, because every hop wakes an idle virtual CPU: the releaser's
request wakes the server, whose reply wakes the waiter (the PING after
such a pause is two to four times a warm one, in the same table). Of what
the lock adds to the floor after such a pause, measured apart (2026-12-05,
800 interleaved samples, raw hiredis): the acquire script that Redis runs
behind the waiter's BLPOP costs 30-45 us when the server has been idle (a
plain SET in its place: 4 us; the release script in place of LPUSH: 4
us), the rest is the library's own path through cold caches. The lock
would be held 99% of the time at hold 10 ms only with hand-offs under
about 100 us after an idle pause; on this machine the floor alone is
about that.

Summary against redis-py, measured in this run:

{peer}
## 4. Cost of waiting

{waiting}
One waiter (a process of its own) blocks on a lock that another client holds.
*released*: the holder releases after the time; *timeout*: the waiter's own
timeout of that length runs out. *commands*: requests the server counted
while the waiter waited (for *released*, up to just before the release);
*CPU*: the waiter's CPU time over its whole acquire call, of its thread
(CLOCK_THREAD_CPUTIME_ID) and of its process (getrusage). Commands per
acquisition under contention are in the *cmds/acq* column above.

## 5. Crashed holder

{crash}
A process holds a lock with the expiry shown and is killed with SIGKILL (it
releases nothing) while a waiter is blocked on the lock (with 3 masters:
majority mode, the holder and the waiter on all three). The figure is the
time from the moment the lock is gone on the server to the waiter's acquire
returning. That moment is the server's own, seen by a watcher: the
benchmark's own connection to each master GETs the key over and over from
3 ms before the expected expiry; the key went between the last GET that
found the holder and the first that did not (*watcher +-*: half that
window); with 3 masters, the lock is gone when a quorum's keys are. A kill
whose watcher started too late is left out (*missed*). *commands per
master*: what the server counted for the waiter's whole acquire (its first
round, CLIENT ID, BLPOP, the acquire behind it, CLIENT UNBLOCK, and the same
again when its first wake-up came early): it does not poll. The waiter
learnt the holder's PTTL (whole milliseconds, truncated: the key goes up to
1 ms after it) and wakes half a millisecond past it, on a timer kept to
about 50 us (the kernel stretches a poll() of 1 s by about 1 ms, so a long
wait is polled in slices); if the key is still there, the acquire behind
the wait reads PTTL 0 and the next wake-up, half a millisecond later, finds
it gone (doc/design.md, "Crashed holders"). The redis-py row is the same
measurement with redis-py's Lock (holder and waiter both redis-py): its
waiter polls every 0.1 s. python-redis-lock's waiter (not measured here)
sleeps in BLPOP up to the whole expiry, or its own timeout, when a holder
dies.

## 6. Majority mode

{majority}
Acquire+release (expiry 10 s) on clients of 1, 3 and 5 masters (private
servers on unix sockets, all on this machine), in one loop so that all see the
same load. *in series*: for reference, the same masters asked one after
another (a single-master client per master, acquire+release on each in turn:
what a client that does not ask them in parallel would pay); the two
alternate which goes first.

- *local sockets*: the masters share this machine's cores with the client.
  A local round trip is nearly all CPU work, so with more masters than idle
  cores they cannot all answer at once: on a loaded machine the cost then
  grows with the number of masters whatever the client does (in earlier runs
  here under load, 3 and 5 masters cost about as much as asking them in
  series); on an idle one the parallel fan-out shows (*parallel / series*).
- *relay*: the same masters reached through a relay in the benchmark process
  that holds every chunk back 0.5 ms in each direction (bench/relay.c), a
  stand-in for masters on other hosts, where the round trip is mostly
  waiting. This is the situation the 1.5x goal is about: the masters are
  asked in parallel, so 3 or 5 masters cost about one round trip, where
  asking them in series costs 3 or 5.

## 7. Renewal

{renewal}
N locks with `auto_renew` (expiry 3 s, so renewed every 1 s), held for the
observed time. *renewals*: EVALSHA calls the server counted; *round trips*:
bursts of EVALSHA separated by at least 50 ms of silence (INFO commandstats
sampled every 2 ms): the renewal thread sends each batch as one pipeline;
*cycles*: renewals / locks (each lock is renewed once per cycle);
*round trips per cycle*: round trips / cycles;
*CPU*: the process's CPU time less the main and sampler threads', i.e. the
renewal thread's. python-redis-lock renews with one thread per lock.

## 8. Scale

{scale}
64 threads share one client and acquire 1,000 distinct locks (each thread
every 64th lock), hold them all at once, then release them. *connections*:
INFO `connected_clients` less the benchmark's own connections: the highest
seen while acquiring (sampled every 2 ms), when all were held, and after the
release (the pool keeps at most `max_idle_connections`, default 8, idle).

## 9. TLS (issue 14)

{tls}
One server with a TCP port and a TLS port (a certificate of its own, RSA
2048, made for the run; TLS 1.3, the default), one client on each, warmed
up, then acquire+release (expiry 10 s) on each in one loop, alternating
which goes first, so that both see the same load. *connections opened
during the loop*: INFO `total_connections_received` over it: the pool keeps
connections, so no handshake is on the hot path. *new connection*: a new
client each time, timed on its first acquire (TCP connect, for TLS the
handshake with the certificate check, one EVALSHA); the CA file is loaded
when the client is made, outside the timing. *CPU*: the calling thread's
CPU time (CLOCK_THREAD_CPUTIME_ID) per operation, and the server's (INFO
`used_cpu_user` + `used_cpu_sys`) over a block of the operations on one
connection kind alone. On a local socket the round trip is mostly CPU
work, so TLS's encryption shows more than it would over a network, where
the round trip is mostly waiting.

## 10. Fencing tokens (issue 17)

{fencing}
Uncontended acquire+release (expiry 10 s) of a lock with `fencing` and of
one without, on one client, in one loop: the two alternate which goes first,
and a PING is timed before each pair. With fencing the acquire script also
reads the server's `TIME` and writes the counter key `lock-fence:<name>` in
the same round trip; release is the same script either way. *ratio*: with
fencing / without. *tokens not increasing*: grants whose token was not
larger than the one before (0 expected).

## 11. Statistics (issue 26)

{statcost}
The cost of the per-client counters (`redislock_client_stats()`) on an
uncontended acquire+release (expiry 10 s): `bench/redislock-statcost` links
the library twice, as built and built again without the counters
(`REDISLOCK_NO_STATS`: the hooks are empty macros), that copy's exports
renamed, and runs both on one server in one loop; the two alternate which
goes first, and a PING is timed before each pair. *mean*: the mean of the
samples up to the 99th percentile. *CPU*: the calling thread's CPU time per
acquire+release, over alternating blocks of 200 of one copy alone. What the
counters add per acquire+release is three clock readings and a few relaxed
atomic adds (about 0.1 to 0.3 us); the ratios are that, within the noise
of a shared machine.

## 12. Sentinel (issue 22)

{sentinel}
`bench/redislock-failover` starts a master, a replica and three sentinels on
free loopback ports (the test harness's `tests/harness/sentinel.c`;
`down-after-milliseconds 1000`, `SENTINEL DEBUG` periods of 250 ms). *Warm*:
uncontended acquire+release through the master's own `redis://` URL, through
the `redis-sentinel://` URL of its service, and through that URL with
`?min_replicas=1` (every write followed by `WAIT 1 50`), in interleaved
blocks of 100. *SENTINEL FAILOVER*: a client tries every 5 ms from the
command on; the figure is its first acquire that the new master served (held
there and not on the old one). *SIGKILL*: the same every 10 ms (as a user's
retry loop would) from the kill. *Waiter*: one thread holds the lock, another
waits with no timeout; the master is killed; after the failover the holder
releases on the new master.

## 13. Cluster (issue 23)

{cluster}
`bench/redislock-bench-cluster` starts its own clusters with the test harness
(`tests/harness/cluster.c`, `redis-cli --cluster create`; a 3-master one,
then a 6-node one with a replica per master; `cluster-node-timeout 1000`)
and measures each goal of issue 23 against the server's own figure of the
same run: the node used directly (warm path), the moment the replica accepts
writes (SIGKILL), a raw BLPOP's MOVED on the same key (migration), the last
`SETSLOT NODE` (a release while the slot is open), the release on the new
master (`CLUSTER FAILOVER`). The 10,000-locks renewal goal is counted by the
renewer itself in `tests/integration/test_cluster.c` (at most one pipeline
per master per batch). The open-slot release has little margin: the
TRYAGAIN back-off's last step is 25-50 ms.

## python-redis-lock's published table (another machine)

Published numbers, **not measured here**: python-redis-lock's README,
section "Benchmarks", "My local run with version 3.6.0 of redis-lock" (the
author's machine; 10 s per cell; processes; `redis_lock` is python-redis-lock,
`native` is redis-py's Lock). They are listed only for the shape of the
comparison; compare our figures with the redis-py columns measured above.

{published}"""


# In doc/benchmarks.md, what follows this line was measured by other
# programs (bench/redislock-bench-cluster...): --keep copies it over.
KEEP_MARK = "<!-- bench/run keeps what follows: measured by other programs -->"


def kept(path):
    """The part of an earlier markdown file from KEEP_MARK on ("" if none)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    at = text.find(KEEP_MARK)
    return "\n" + text[at:] if at >= 0 else ""


def main(argv):
    md, published, path, keep, kinds = False, None, None, None, False
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--markdown":
            md = True
        elif a == "--kinds":
            kinds = True
        elif a == "--published":
            published = args.pop(0)
        elif a == "--keep":
            keep = args.pop(0)
        else:
            path = a
    if not path:
        sys.stderr.write(__doc__)
        return 2
    info, recs = parse(path)
    rep = Report(info, recs, published)
    if kinds:
        sys.stdout.write("Fair lock and semaphore\n\n" + rep.machine() + "\n" + rep.kinds())
        return 0
    sys.stdout.write(rep.markdown() + (kept(keep) if keep else "") if md else rep.text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
