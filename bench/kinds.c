/* The fair lock and the semaphore (issue 24):
 *  - fairness: N processes take a fair lock in tight loops; the server's
 *    own command stream (MONITOR) shows every entry into the queue and
 *    every grant, and each grant is checked against the queue's order;
 *  - semutil: a semaphore of N permits, 4N contenders holding it 10 ms
 *    each: the holders sampled on the server (a script, the server's
 *    clock) every millisecond: the permits held, and never more than N;
 *  - kcrash: a holder killed with SIGKILL, the first waiter's hold timed
 *    from the end of the lease (the server's PTTL of lock:<name>);
 *  - kwaiter: the first waiter killed, the release granting it; the second
 *    waiter's hold timed from the release (the grant lease: 1000 ms);
 *  - kclock: run under libfaketime with shifted clocks (bench/run): the
 *    lease the server keeps for a 1000 ms permit, by the server's clock.
 * The hand-off and the cost of a waiter are latency.c's and contend.c's
 * with --kind fair.  bench/run --kinds runs them all; report.py --kinds
 * gives the goals' table. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

redislock *bench_kind_lock(redislock_client *c, const char *name, int64_t expire_ms,
                           const bench_opts *o)
{
    redislock *lk = NULL;
    redislock_options lo = REDISLOCK_OPTIONS_INIT;
    lo.expire_ms = expire_ms;
    lo.fair = o->kind == REDISLOCK_KIND_FAIR;
    lo.permits = o->kind == REDISLOCK_KIND_SEMAPHORE ? (o->permits ? o->permits : 1) : 0;
    if (redislock_new(&lk, c, name, &lo))
        bench_die("lock", redislock_last_error());
    return lk;
}

/* ------------------------------------------------------------ fairness */

#define FAIR_NAME "bench:fairness"
#define MAX_IDS 64

typedef struct fair_run {
    const bench_opts *o;
    int ready, stop;
    long long count[BENCH_MAX_CONTENDERS];
} fair_run;

static int fair_contender(int i, void *arg)
{
    fair_run *f = arg;
    redislock_client *c = bench_client(f->o);
    redislock *lk = bench_kind_lock(c, FAIR_NAME, 10000, f->o);
    __atomic_add_fetch(&f->ready, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&f->ready, __ATOMIC_SEQ_CST) < f->o->conc)
        bench_sleep_ns(1000000);
    while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
        int rc = redislock_acquire(lk, 2000);
        if (rc == REDISLOCK_ETIMEDOUT)
            continue;
        if (rc) {
            fprintf(stderr, "fairness: %s\n", redislock_errmsg(lk));
            return 1;
        }
        f->count[i]++;
        if (f->o->hold_ms)
            bench_sleep_ns((int64_t)f->o->hold_ms * 1000000);
        if (redislock_release(lk)) {
            fprintf(stderr, "fairness: release: %s\n", redislock_errmsg(lk));
            return 1;
        }
    }
    redislock_free(lk);
    redislock_client_free(c);
    return 0;
}

/* The queue as MONITOR shows it: id -> ticket while queued. */
typedef struct order {
    char id[MAX_IDS][64];
    long long ticket[MAX_IDS]; /* -1: not queued */
    int n;
    long long grants, checked, inversions, lines, enqueued, after_queued;
    int left;                  /* the id the line before took off the queue */
    int popped;                /* the line before popped the queue's head */
    long long left_ticket;     /* and its ticket (-1: none) */
    redisContext *mon;
    int done;
} order;

static int id_of(order *q, const char *id)
{
    int i;
    for (i = 0; i < q->n; i++)
        if (!strcmp(q->id[i], id))
            return i;
    if (q->n == MAX_IDS)
        return -1;
    snprintf(q->id[q->n], sizeof q->id[0], "%s", id);
    q->ticket[q->n] = -1;
    return q->n++;
}

/* The quoted words of a MONITOR line ("zadd" "key" ...) into w[] (ids and
 * keys here hold no quote or backslash). */
static int words(char *line, char **w, int max)
{
    int n = 0;
    char *p = strchr(line, ']');
    while (p && n < max && (p = strchr(p + 1, '"'))) {
        char *e = strchr(p + 1, '"');
        if (!e)
            break;
        *e = '\0';
        w[n++] = p + 1;
        p = e;
    }
    return n;
}

/* One command the scripts ran: an entry into the queue, a leave, or a
 * grant (ZADD on the holders without XX: a take or a grant, never the
 * take-over of a grant nor a renewal); a grant must go to the queued id
 * with the smallest ticket, or to a newcomer while nobody is queued. */
static void order_line(order *q, char *line)
{
    char *w[6];
    int n = words(line, w, 6), k, i, left = q->left, popped = q->popped;
    long long mine, left_ticket = q->left_ticket;
    q->lines++;
    q->left = -1, q->left_ticket = -1, q->popped = 0;
    if (n == 4 && !strcmp(w[0], "zadd") && strstr(w[1], "lock-queue:")) {
        q->enqueued++;
        if ((k = id_of(q, w[3])) >= 0)
            q->ticket[k] = atoll(w[2]);
    } else if (n == 3 && !strcmp(w[0], "zrem") && strstr(w[1], "lock-queue:")) {
        if ((k = id_of(q, w[2])) >= 0) {
            q->left = k, q->left_ticket = q->ticket[k];
            q->ticket[k] = -1;
        }
    } else if (n == 2 && !strcmp(w[0], "zpopmin") && strstr(w[1], "lock-queue:")) {
        q->popped = 1; /* the next ZADD on the holders grants the head */
    } else if (n == 4 && !strcmp(w[0], "zadd") && strstr(w[1], "lock-holders:")) {
        q->grants++;
        if ((k = id_of(q, w[3])) < 0)
            return;
        /* a grant pops the first waiter off the queue just before; a take
         * is by a newcomer, with nobody queued */
        mine = k == left ? left_ticket : q->ticket[k];
        if (popped)
            q->ticket[k] = -1;
        q->checked++;
        q->after_queued += mine >= 0; /* a grant to a waiter (not a take) */
        for (i = 0; i < q->n; i++)
            if (i != k && q->ticket[i] >= 0 && (mine < 0 || q->ticket[i] < mine)) {
                q->inversions++;
                break;
            }
    }
}

/* The MONITOR reader: a process of its own, forked before anything else
 * (a thread would be forked with the contenders: a child forked while it
 * held a lock, an allocator's under ASan, hung on that lock for ever).  It
 * writes into q, shared memory, until the parent shuts the connection
 * down. */
static void monitor_main(order *q)
{
    redisReply *r;
    while (!__atomic_load_n(&q->done, __ATOMIC_SEQ_CST) &&
           redisGetReply(q->mon, (void **)&r) == REDIS_OK) {
        if (r->type == REDIS_REPLY_STATUS && strstr(r->str, "[0 lua]"))
            order_line(q, r->str);
        freeReplyObject(r);
    }
}

static void wait_for(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int bench_fairness(const bench_opts *o)
{
    fair_run *f = bench_shared(sizeof *f);
    order *q = bench_shared(sizeof *q);
    redisContext *ctx = bench_connect(o->urls[0]);
    redisReply *r;
    long long total = 0, min = -1, max = 0;
    int i, failed;
    pid_t monitor, clock;
    bench_opts ko = *o;

    ko.kind = REDISLOCK_KIND_FAIR;
    f->o = &ko;
    q->left = -1;
    q->left_ticket = -1;
    q->mon = bench_connect(o->urls[0]);
    r = redisCommand(q->mon, "MONITOR");
    if (!r || r->type != REDIS_REPLY_STATUS)
        bench_die("fairness", "MONITOR refused");
    freeReplyObject(r);
    if ((monitor = bench_fork()) == 0) {
        monitor_main(q);
        _exit(0);
    }
    if ((clock = bench_fork()) == 0) { /* stop the contenders after the time */
        while (__atomic_load_n(&f->ready, __ATOMIC_SEQ_CST) < o->conc)
            bench_sleep_ns(1000000);
        bench_sleep_ns((int64_t)(o->duration_s * 1e9));
        __atomic_store_n(&f->stop, 1, __ATOMIC_SEQ_CST);
        _exit(0);
    }
    failed = bench_spawn(o->conc, 1, fair_contender, f);
    wait_for(clock);
    /* what the server sent by now was its last word on the grants; a
     * shutdown of the socket (shared with the reader) ends its read */
    freeReplyObject(redisCommand(ctx, "PING"));
    bench_sleep_ns(100000000);
    __atomic_store_n(&q->done, 1, __ATOMIC_SEQ_CST);
    shutdown(q->mon->fd, SHUT_RDWR);
    wait_for(monitor);
    redisFree(q->mon);
    for (i = 0; i < o->conc; i++) {
        total += f->count[i];
        if (min < 0 || f->count[i] < min)
            min = f->count[i];
        if (f->count[i] > max)
            max = f->count[i];
    }
    bench_rec_begin(o, "fairness");
    bench_rec_int("conc", o->conc);
    bench_rec_int("hold_ms", o->hold_ms);
    bench_rec_num("duration_s", o->duration_s);
    bench_rec_int("total", total);
    bench_rec_int("min", min);
    bench_rec_int("max", max);
    bench_rec_int("grants", q->grants);
    bench_rec_int("checked", q->checked);
    bench_rec_int("enqueued", q->enqueued);
    bench_rec_int("to_waiters", q->after_queued);
    bench_rec_int("inversions", q->inversions);
    bench_rec_int("errors", failed);
    bench_rec_end();
    bench_shared_free(f, sizeof *f);
    bench_shared_free(q, sizeof *q);
    redisFree(ctx);
    return 0;
}

/* ------------------------------------------------------ semaphore use */

#define SEM_NAME "bench:semutil"

typedef struct sem_run {
    const bench_opts *o;
    int ready, stop, errors;
    long long count;
} sem_run;

static int sem_contender(int i, void *arg)
{
    sem_run *s = arg;
    redislock_client *c = bench_client(s->o);
    redislock *lk = bench_kind_lock(c, SEM_NAME, 10000, s->o);
    (void)i;
    __atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
        int rc = redislock_acquire(lk, 2000);
        if (rc == REDISLOCK_ETIMEDOUT)
            continue;
        if (!rc) {
            bench_sleep_ns((int64_t)s->o->hold_ms * 1000000);
            rc = redislock_release(lk);
        }
        if (rc) {
            fprintf(stderr, "semutil: %s\n", redislock_errmsg(lk));
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        __atomic_add_fetch(&s->count, 1, __ATOMIC_SEQ_CST);
    }
    redislock_free(lk);
    redislock_client_free(c);
    return 0;
}

/* The server's count, by its own clock: {entries of the holders key (holds
 * and grants not yet taken, leases ended but not yet reclaimed: never to
 * exceed N), holds taken whose lease has not ended}. */
#define SEM_SAMPLE                                                                    \
    "local t = redis.call('time')\n"                                                 \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"        \
    "local h = redis.call('zrangebyscore', KEYS[1], '(' .. now, '+inf')\n"            \
    "local taken = 0\n"                                                              \
    "for i = 1, #h do\n"                                                             \
    "  if not redis.call('zscore', KEYS[2], h[i]) then taken = taken + 1 end\n"      \
    "end\n"                                                                          \
    "return {redis.call('zcard', KEYS[1]), taken}\n"

/* The holders key every millisecond, from the moment all contenders are in
 * for the time: the mean share of the permits held (taken: a grant on its
 * way to its waiter is not counted), the share of samples with all N
 * held, and the most entries ever seen (grants included). */
int bench_semutil(const bench_opts *o)
{
    sem_run *s = bench_shared(sizeof *s);
    redisContext *ctx = bench_connect(o->urls[0]);
    bench_opts ko = *o;
    long long samples = 0, used = 0, most = 0, full = 0;
    int64_t end;
    pid_t pid;
    int st;

    ko.kind = REDISLOCK_KIND_SEMAPHORE;
    s->o = &ko;
    pid = bench_fork();
    if (pid == 0)
        _exit(bench_spawn(o->conc, 1, sem_contender, s) ? 1 : 0);
    while (__atomic_load_n(&s->ready, __ATOMIC_SEQ_CST) < o->conc)
        bench_sleep_ns(1000000);
    bench_sleep_ns(200000000); /* the queue fills */
    end = bench_now_ns() + (int64_t)(o->duration_s * 1e9);
    while (bench_now_ns() < end) {
        redisReply *r = redisCommand(ctx, "EVAL %s 2 sem:{" SEM_NAME "}:holders "
                                     "sem:{" SEM_NAME "}:waiters", SEM_SAMPLE);
        long long entries, taken;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER)
            bench_die("semutil", "cannot sample the holders");
        entries = r->element[0]->integer, taken = r->element[1]->integer;
        samples++;
        used += taken;
        full += taken == o->permits;
        if (entries > most)
            most = entries;
        freeReplyObject(r);
        bench_sleep_ns(1000000);
    }
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    bench_rec_begin(o, "semutil");
    bench_rec_int("permits", o->permits);
    bench_rec_int("conc", o->conc);
    bench_rec_int("hold_ms", o->hold_ms);
    bench_rec_int("samples", samples);
    bench_rec_num("in_use_pct", samples ? 100.0 * (double)used / (double)samples / o->permits : 0);
    bench_rec_num("full_pct", samples ? 100.0 * (double)full / (double)samples : 0);
    bench_rec_int("most", most);
    bench_rec_int("acquisitions", s->count);
    bench_rec_int("errors", s->errors + !(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    bench_rec_end();
    bench_shared_free(s, sizeof *s);
    redisFree(ctx);
    return 0;
}

/* ------------------------------------------------------------ crashes */

#define CRASH_NAME "bench:kcrash"

/* A process that takes the lock (waiting for it) and says so on fd, then
 * sleeps until it is killed. */
static pid_t holder_process(const bench_opts *o, int64_t expire_ms, int fd)
{
    pid_t pid = bench_fork();
    if (pid == 0) {
        redislock_client *c;
        redislock *lk;
        c = bench_client(o);
        lk = bench_kind_lock(c, CRASH_NAME, expire_ms, o);
        if (redislock_acquire(lk, 30000) || write(fd, "x", 1) != 1)
            _exit(1);
        sleep(60); /* until killed */
        _exit(0);
    }
    return pid;
}

typedef struct kwaiter {
    redislock *lk;
    int rc;
    int64_t got_ns;
} kwaiter;

static void *kwait_main(void *p)
{
    kwaiter *w = p;
    w->rc = redislock_acquire(w->lk, 30000);
    w->got_ns = bench_now_ns();
    return NULL;
}

static void await_queue(redisContext *ctx, long long n)
{
    int64_t t0 = bench_now_ns();
    for (;;) {
        redisReply *r = redisCommand(ctx, "ZCARD lock-queue:{" CRASH_NAME "}");
        long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (v == n)
            return;
        if (bench_now_ns() - t0 > 10 * 1000000000LL)
            bench_die("kcrash", "the waiters did not queue within 10 s");
        bench_sleep_ns(200000);
    }
}

static void kill_wait(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

/* One crashed holder: the first waiter's hold from the lease's end (the
 * PTTL of lock:<name>, read just before the kill, at the middle of that
 * round trip). */
static int64_t crash_once(const bench_opts *o, redisContext *ctx, redislock_client *c)
{
    kwaiter w = { bench_kind_lock(c, CRASH_NAME, 10000, o), 0, 0 };
    int fd[2];
    char b;
    pthread_t th;
    int64_t t0, t1, expiry;
    redisReply *r;
    pid_t pid;
    if (pipe(fd))
        bench_die("pipe", strerror(errno));
    pid = holder_process(o, o->hold_ms ? o->hold_ms : 500, fd[1]);
    if (read(fd[0], &b, 1) != 1)
        bench_die("kcrash", "the holder could not take the lock");
    close(fd[0]), close(fd[1]);
    if (pthread_create(&th, NULL, kwait_main, &w))
        bench_die("pthread_create", strerror(errno));
    await_queue(ctx, 1);
    t0 = bench_now_ns();
    r = redisCommand(ctx, "PTTL lock:" CRASH_NAME);
    t1 = bench_now_ns();
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer <= 0)
        bench_die("PTTL", "the holder's lease ended before the kill (raise --hold)");
    expiry = (t0 + t1) / 2 + r->integer * 1000000;
    freeReplyObject(r);
    kill_wait(pid);
    pthread_join(th, NULL);
    if (w.rc)
        bench_die("kcrash: the waiter", redislock_errmsg(w.lk));
    redislock_release(w.lk);
    redislock_free(w.lk);
    return w.got_ns - expiry;
}

int bench_kcrash(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    bench_opts ko = *o;
    redislock_client *c;
    bench_samples delay = { 0 };
    int k;
    ko.kind = REDISLOCK_KIND_FAIR;
    c = bench_client(&ko);
    for (k = 0; k < o->iters; k++)
        bench_samples_add(&delay, crash_once(&ko, ctx, c));
    bench_rec_begin(o, "kcrash");
    bench_rec_int("expire_ms", o->hold_ms ? o->hold_ms : 500);
    bench_rec_lat("delay", &delay);
    bench_rec_num("delay_max_us", (double)bench_pct(&delay, 100) / 1000.0);
    bench_rec_num("delay_min_us", (double)bench_pct(&delay, 0) / 1000.0);
    bench_rec_end();
    bench_samples_free(&delay);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}

/* One crashed first waiter: a holder (this process), the first waiter a
 * process killed while it waits, the second a thread; the holder releases
 * (to the dead one, for the grant lease); the second's hold from the
 * release. */
static int64_t waiter_once(const bench_opts *o, redisContext *ctx, redislock_client *c)
{
    redislock *h = bench_kind_lock(c, CRASH_NAME, 10000, o);
    kwaiter w = { bench_kind_lock(c, CRASH_NAME, 10000, o), 0, 0 };
    int fd[2];
    pthread_t th;
    int64_t t0;
    pid_t pid;
    if (redislock_acquire(h, 5000))
        bench_die("kwaiter", redislock_errmsg(h));
    if (pipe(fd))
        bench_die("pipe", strerror(errno));
    pid = holder_process(o, 10000, fd[1]); /* waits: the first in line */
    await_queue(ctx, 1);
    if (pthread_create(&th, NULL, kwait_main, &w))
        bench_die("pthread_create", strerror(errno));
    await_queue(ctx, 2);
    kill_wait(pid);
    close(fd[0]), close(fd[1]);
    t0 = bench_now_ns();
    if (redislock_release(h))
        bench_die("kwaiter", redislock_errmsg(h));
    pthread_join(th, NULL);
    if (w.rc)
        bench_die("kwaiter: the second waiter", redislock_errmsg(w.lk));
    redislock_release(w.lk);
    redislock_free(w.lk);
    redislock_free(h);
    return w.got_ns - t0;
}

int bench_kwaiter(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    bench_opts ko = *o;
    redislock_client *c;
    bench_samples delay = { 0 };
    int k;
    ko.kind = REDISLOCK_KIND_FAIR;
    c = bench_client(&ko);
    for (k = 0; k < o->iters; k++)
        bench_samples_add(&delay, waiter_once(&ko, ctx, c));
    bench_rec_begin(o, "kwaiter");
    bench_rec_int("grant_lease_ms", 1000); /* the default */
    bench_rec_lat("delay", &delay);
    bench_rec_num("delay_max_us", (double)bench_pct(&delay, 100) / 1000.0);
    bench_rec_num("delay_min_us", (double)bench_pct(&delay, 0) / 1000.0);
    bench_rec_end();
    bench_samples_free(&delay);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}

/* ------------------------------------------------------ shifted clocks */

/* Run with libfaketime (FAKETIME=+30s, -30s): a permit of 1000 ms; the
 * server's lease end less the server's TIME, right after the grant, and
 * again 500 ms (by this process's clock) later. */
int bench_kclock(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    bench_opts ko = *o;
    redislock_client *c;
    redislock *lk;
    long long lease[2];
    int k;
    ko.kind = REDISLOCK_KIND_SEMAPHORE;
    ko.permits = 1;
    c = bench_client(&ko);
    lk = bench_kind_lock(c, "bench:kclock", 1000, &ko);
    if (redislock_acquire(lk, 5000))
        bench_die("kclock", redislock_errmsg(lk));
    for (k = 0; k < 2; k++) {
        redisReply *r = redisCommand(ctx, "EVAL %s 1 sem:{bench:kclock}:holders %s",
                                     "local t = redis.call('time') "
                                     "return tonumber(redis.call('zscore', KEYS[1], ARGV[1])) "
                                     "- (t[1] * 1000 + math.floor(t[2] / 1000))",
                                     redislock_id(lk));
        if (!r || r->type != REDIS_REPLY_INTEGER)
            bench_die("kclock", "cannot read the lease");
        lease[k] = r->integer;
        freeReplyObject(r);
        if (!k)
            bench_sleep_ns(500000000);
    }
    bench_rec_begin(o, "kclock");
    bench_rec_str("faketime", getenv("FAKETIME") ? getenv("FAKETIME") : "none");
    bench_rec_int("expire_ms", 1000);
    bench_rec_int("lease_left_ms", lease[0]);
    bench_rec_int("lease_left_500ms_later", lease[1]);
    bench_rec_int("validity_ms", redislock_validity_ms(lk));
    bench_rec_end();
    redislock_release(lk);
    redislock_free(lk);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}
