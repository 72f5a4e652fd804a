/* Auto-renewal: one thread per client serves every renewed lock of that
 * client.
 *
 * The locks wait in a min-heap ordered by their next due time; the thread
 * sleeps until the earliest one is due, takes every lock due within a short
 * window (so locks due together go together), and renews the batch in one
 * pipeline per master (per node of a cluster: the locks are grouped by the
 * master that serves them) on a connection of its own.  A renewal that fails for
 * a transient reason (connection dropped, timeout, error reply) is retried
 * with back-off and a new connection while the lock's expiry allows; a
 * renewal that finds the key gone or owned by someone else, or an expiry
 * that passes without a successful renewal, makes the lock lost: the handle
 * stops reporting it held and its callback runs once.
 *
 * Two limits stop the renewal of a lock that is still held, without I/O:
 * max_hold_ms (the lock is due at acquire + max_hold_ms at the latest, and
 * is not renewed from then on) and heartbeat_ms (a lock whose worker has
 * not called redislock_heartbeat() within heartbeat_ms is not renewed).
 * Either makes it lost at once; its key expires by itself at the expiry the
 * last renewal set, which is the worker's time to stop.
 *
 * Results carry the handle's renewal generation: release, extend and
 * acquire bump it, so the result of a renewal that was in flight when the
 * lock was released (or extended, or released and taken again) is ignored:
 * the local expiry is never set from a request older than the last one the
 * handle's own thread made.
 *
 * Between batches the thread sleeps in poll() on a wake-up pipe and on its
 * kept connections.  A kept connection owes no reply, so one that becomes
 * readable was closed by the server (a restart, CLIENT KILL, a timeout):
 * every scheduled lock is then checked at once instead of at its next
 * interval, because a server restarted without persistence has forgotten
 * them and may already have granted them to another owner. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2(); NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Locks due within this part of their interval are renewed together with
 * the first one due (at most 250 ms early). */
#define WINDOW_DIVISOR 4
#define WINDOW_MAX_US 250000
/* A master that refused the watch connection is tried again after this. */
#define WATCH_RETRY_US 100000

struct redislock__renewer {
    redislock_client *c;
    pthread_mutex_t mu;
    int wake[2];              /* pipe to the thread: the schedule changed, or
                                 stop; -1 while no thread runs */
    pthread_cond_t done_cv;   /* from the thread: a batch or callback ended */
    pthread_t thread;
    int running;              /* the thread exists (in this process) */
    int stop;
    redislock **heap;
    size_t n, cap;
    redislock *all;           /* every registered handle */
    redislock__conn **conns;  /* one per master, used by the thread only */
    int64_t *watch_retry_us;  /* per master: no new watch connection before */
    redislock__renew_stats st;
    int64_t watch_due;        /* the topology's next watch turn */
    int watch_ready[REDISLOCK__MAX_MASTERS]; /* its fds that polled readable */
};

/* What one renewal found (or, for the last two, why none was sent). */
enum {
    RENEW_OK, RENEW_GONE, RENEW_OTHER, RENEW_NOQUORUM, RENEW_RETRY,
    RENEW_MAX_HOLD, RENEW_NO_HEARTBEAT, RENEW_NO_REPLICAS
};

typedef struct item {
    redislock *lk;
    unsigned gen;
    int result;
    int64_t sent_us;
} item;

/* ------------------------------------------------------------------ heap */

static void heap_set(redislock__renewer *r, size_t i, redislock *lk)
{
    r->heap[i] = lk;
    lk->rn.heap_idx = i;
}

static void sift_up(redislock__renewer *r, size_t i)
{
    redislock *lk = r->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (r->heap[parent]->rn.due_us <= lk->rn.due_us)
            break;
        heap_set(r, i, r->heap[parent]);
        i = parent;
    }
    heap_set(r, i, lk);
}

static void sift_down(redislock__renewer *r, size_t i)
{
    redislock *lk = r->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= r->n)
            break;
        if (child + 1 < r->n && r->heap[child + 1]->rn.due_us < r->heap[child]->rn.due_us)
            child++;
        if (r->heap[child]->rn.due_us >= lk->rn.due_us)
            break;
        heap_set(r, i, r->heap[child]);
        i = child;
    }
    heap_set(r, i, lk);
}

static int heap_push(redislock__renewer *r, redislock *lk)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        redislock **h = redislock__realloc(r->heap, cap * sizeof *h);
        if (!h)
            return REDISLOCK_ENOMEM;
        r->heap = h;
        r->cap = cap;
    }
    r->heap[r->n] = lk;
    lk->rn.heap_idx = r->n++;
    sift_up(r, lk->rn.heap_idx);
    return 0;
}

static void heap_remove(redislock__renewer *r, redislock *lk)
{
    size_t i = lk->rn.heap_idx;
    if (i == REDISLOCK__NOT_SCHEDULED)
        return;
    lk->rn.heap_idx = REDISLOCK__NOT_SCHEDULED;
    if (--r->n == i)
        return;
    heap_set(r, i, r->heap[r->n]);
    sift_down(r, i);
    sift_up(r, r->heap[i]->rn.heap_idx);
}

/* ---------------------------------------------------------------- limits */

/* A due time, no later than the lock's max_hold_ms limit. */
static int64_t capped(const redislock *lk, int64_t due_us)
{
    return lk->rn.limit_us && lk->rn.limit_us < due_us ? lk->rn.limit_us : due_us;
}

/* For a lock taken for renewal at now: RENEW_MAX_HOLD or RENEW_NO_HEARTBEAT
 * when a limit stops its renewal, else RENEW_RETRY (to be renewed). */
static int limit_reached(const redislock *lk, int64_t now)
{
    if (lk->rn.limit_us && now >= lk->rn.limit_us)
        return RENEW_MAX_HOLD;
    if (lk->rn.heartbeat_ms &&
        now - __atomic_load_n(&lk->rn.heartbeat_us, __ATOMIC_SEQ_CST) >
            lk->rn.heartbeat_ms * 1000)
        return RENEW_NO_HEARTBEAT;
    return RENEW_RETRY;
}

/* ------------------------------------------------------------ renewal I/O */

/* The renewer's kept connections go into f; a broken one, or one from
 * before a fork, is dropped.  A kept connection stays in conns[] during the
 * batch (it is still the renewer's: the stats count it, and a fork child
 * closes its copy); a dropped one leaves at once.  Stored atomically:
 * redislock__renew_get_stats() reads it. */
static void take_conns(redislock__renewer *r, redislock__fanout *f)
{
    size_t m;
    for (m = 0; m < r->c->nmasters; m++) {
        redislock__conn *conn = r->conns[m];
        if (conn && (conn->broken || conn->gen != redislock__fork_gen() ||
                     !redislock__topo_single(r->c, m))) {
            redislock__pool_put(conn);
            conn = NULL;
        }
        f->conns[m] = conn;
        if (!conn)
            __atomic_store_n(&r->conns[m], NULL, __ATOMIC_RELAXED);
    }
}

/* Error replies that say a member's node moved (a failover): the topology
 * learns of it, and the connection is not kept. */
static void note_moved(redislock__fanout *f, size_t n)
{
    size_t m, i;
    for (m = 0; m < f->n; m++)
        for (i = 0; i < n && f->conns[m] && !f->rc[m]; i++)
            if (f->replies[m * n + i] &&
                redislock__topo_reply(f->conns[m], f->replies[m * n + i]))
                break;
}

/* After the batch: keep the connections that worked, drop the others. */
static void keep_conns(redislock__renewer *r, redislock__fanout *f, size_t n)
{
    size_t m;
    for (m = 0; m < r->c->nmasters; m++) {
        if (f->conns[m])
            __atomic_add_fetch(&r->st.round_trips, 1, __ATOMIC_RELAXED);
        if (f->rc[m])
            redislock__log(r->c, REDISLOCK_LOG_WARN, "renewal of %zu lock(s): %s", n,
                           f->err[m]);
        if (f->conns[m] && (f->rc[m] == REDISLOCK_EIO || f->rc[m] == REDISLOCK_ETIMEDOUT))
            redislock__topo_lost(f->conns[m]->m); /* a cluster asks its map again */
        if (f->conns[m] && !f->rc[m] && !f->conns[m]->broken &&
            redislock__topo_single(r->c, m)) { /* kept (a cluster's go back) */
            __atomic_store_n(&r->conns[m], f->conns[m], __ATOMIC_RELAXED);
        } else {
            __atomic_store_n(&r->conns[m], NULL, __ATOMIC_RELAXED);
            redislock__pool_put(f->conns[m]);
        }
        f->conns[m] = NULL;
    }
}

/* What the masters' answers to the renewal of item i (of n) mean: renewed
 * by a quorum within the validity, gone or taken on a quorum, no quorum
 * possible, or to be retried. */
static int tally(const redislock_client *c, const redislock__fanout *f, size_t n,
                 size_t i, const redislock *lk, int64_t sent)
{
    size_t ok = 0, gone = 0, other = 0, retry = 0, norepl = 0, m;
    for (m = 0; m < c->nmasters; m++) {
        const redisReply *rep = f->replies[m * n + i];
        if (f->rc[m] || !rep || rep->type != REDIS_REPLY_INTEGER) {
            if (!f->rc[m] && rep && rep->type == REDIS_REPLY_ERROR)
                redislock__log(c, REDISLOCK_LOG_WARN, "renewal of a lock: %s", rep->str);
            retry++;
        } else if (rep->integer == 0 && redislock__fan_unacked(f, m)) {
            norepl++; /* renewed on the master, but a failover may lose it */
        } else if (rep->integer == 0) {
            ok++;
        } else if (rep->integer == 3) {
            other++;
        } else {
            gone++;
        }
    }
    if (ok >= c->quorum &&
        redislock__now_us() < redislock__valid_until(c, sent, lk->expire_ms))
        return RENEW_OK;
    if (gone >= c->quorum)
        return RENEW_GONE;
    if (other >= c->quorum)
        return RENEW_OTHER;
    if (norepl && ok + retry < c->quorum)
        return RENEW_NO_REPLICAS;
    if (ok + retry < c->quorum)
        return RENEW_NOQUORUM;
    return RENEW_RETRY;
}

/* Renew a group of locks whose keys every member serves from one node:
 * one pipeline per member, all members at once, on the renewer's own
 * connections, by the earliest local expiry among them.  Sets each item's
 * result (see tally()). */
static void renew_group(redislock__renewer *r, item *items, size_t n)
{
    redislock_client *c = r->c;
    size_t i;
    redislock__fanout f;
    redislock__call *calls = redislock__calloc(n, sizeof *calls);
    redislock__call **callp = redislock__calloc(n, sizeof *callp);
    int64_t deadline = REDISLOCK__NEVER, sent;

    for (i = 0; i < n; i++) {
        items[i].result = RENEW_RETRY;
        deadline = redislock__min_deadline(deadline, redislock__expiry(items[i].lk));
    }
    if (!calls || !callp || redislock__fan_init(&f, c->nmasters, n)) {
        redislock__log(c, REDISLOCK_LOG_ERROR, "renewal: out of memory");
        redislock__free(calls);
        redislock__free(callp);
        return;
    }
    take_conns(r, &f);
    /* every member serves all the keys of a group from one node: the first
     * lock's key finds it */
    redislock__fan_connect(&f, c, items[0].lk->key, items[0].lk->keylen,
                           redislock__step_deadline(c, 1, deadline));
    for (i = 0; i < n; i++) {
        redislock *lk = items[i].lk;
        lk->kind->renew_call(lk, &calls[i]);
        callp[i] = &calls[i];
    }
    sent = redislock__now_us();
    f.wait = 1; /* a renewal must reach min_replicas */
    redislock__fan_calls(&f, callp, redislock__step_deadline(c, 0, deadline));
    note_moved(&f, n);
    keep_conns(r, &f, n);
    for (i = 0; i < n; i++) {
        items[i].sent_us = sent;
        items[i].result = tally(c, &f, n, i, items[i].lk, sent);
        redislock__call_free(&calls[i]);
    }
    redislock__fan_free(&f);
    redislock__free(calls);
    redislock__free(callp);
}

/* An item with the nodes that serve its key on the cluster members. */
typedef struct routed {
    item it;
    redislock__master *node[REDISLOCK__MAX_MASTERS];
} routed;

static int by_route(const void *a, const void *b, void *arg)
{
    const routed *x = a, *y = b;
    size_t m, n = *(const size_t *)arg;
    for (m = 0; m < n; m++)
        if (x->node[m] != y->node[m])
            return (uintptr_t)x->node[m] < (uintptr_t)y->node[m] ? -1 : 1;
    return 0;
}

/* Renew a batch.  A cluster member serves keys from several masters: the
 * locks are grouped by the nodes that serve them (as the slot map says
 * now), one pipeline per node; other members serve a batch from one node. */
static void renew_batch(redislock__renewer *r, item *items, size_t n)
{
    redislock_client *c = r->c;
    size_t ncl = 0, m, i, j;
    routed *rt;
    if (!c->cluster) {
        renew_group(r, items, n);
        return;
    }
    rt = redislock__calloc(n, sizeof *rt);
    if (!rt) {
        renew_group(r, items, n); /* out of memory: the MOVEDs sort it out */
        return;
    }
    for (i = 0; i < n; i++) {
        rt[i].it = items[i];
        for (m = 0, ncl = 0; m < c->nmasters; m++)
            if (!redislock__topo_single(c, m))
                rt[i].node[ncl++] = redislock__topo_route(c, m, items[i].lk->key,
                                                          items[i].lk->keylen);
    }
    qsort_r(rt, n, sizeof *rt, by_route, &ncl);
    for (i = 0; i < n; i++)
        items[i] = rt[i].it;
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && by_route(&rt[i], &rt[j], &ncl) == 0; j++)
            ;
        renew_group(r, items + i, j - i);
    }
    redislock__free(rt);
}

static void unlink_handle(redislock__renewer *r, redislock *lk)
{
    if (lk->rn.prev)
        lk->rn.prev->rn.next = lk->rn.next;
    else
        r->all = lk->rn.next;
    if (lk->rn.next)
        lk->rn.next->rn.prev = lk->rn.prev;
    lk->rn.registered = 0;
}

/* ---------------------------------------------------------------- thread */

static int open_pipe(redislock__renewer *r)
{
    /* close-on-exec from the start: another thread may fork and exec */
    if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        r->wake[0] = r->wake[1] = -1;
        return redislock__err(REDISLOCK_ENOMEM,
                              "cannot start the renewal thread: pipe: %s",
                              strerror(errno));
    }
    return 0;
}

static void close_pipe(redislock__renewer *r)
{
    if (r->wake[0] >= 0) {
        close(r->wake[0]);
        close(r->wake[1]);
    }
    r->wake[0] = r->wake[1] = -1;
}

/* Wake the thread (mu held, or the thread is not sleeping on mu). */
static void wake(redislock__renewer *r)
{
    ssize_t n;
    if (r->wake[1] < 0)
        return;
    do
        n = write(r->wake[1], "", 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, the thread will wake anyway */
}

/* Every scheduled lock due now (its master's connection broke); mu held. */
static void check_all_now(redislock__renewer *r)
{
    int64_t now = redislock__now_us();
    size_t i;
    for (i = 0; i < r->n; i++) /* all equal: still a heap */
        r->heap[i]->rn.due_us = now;
}

/* While locks are scheduled, keep a connection to every master open (the
 * one renewals use), so that a server that closes it (a restart) is noticed
 * at once rather than at the next renewal.  Connecting ends by the next due
 * renewal; a master that fails is tried again after WATCH_RETRY_US.  mu
 * held; released while connecting. */
static void ensure_conns(redislock__renewer *r, int64_t due_us)
{
    redislock_client *c = r->c;
    int64_t now = redislock__now_us();
    size_t i;
    for (i = 0; i < c->nmasters; i++) {
        redislock__conn *conn = NULL;
        if (r->conns[i] || now < r->watch_retry_us[i] || !redislock__topo_single(c, i))
            continue; /* a cluster has no one node to watch */
        r->watch_retry_us[i] = now + WATCH_RETRY_US;
        pthread_mutex_unlock(&r->mu);
        if (redislock__topo_connect(c, i, NULL, 0, redislock__step_deadline(c, 1, due_us),
                                    &conn))
            conn = NULL;
        pthread_mutex_lock(&r->mu);
        __atomic_store_n(&r->conns[i], conn, __ATOMIC_RELAXED);
    }
}

/* Sleep until due_us (REDISLOCK__NEVER: until woken), a wake-up, or one of
 * the kept connections closing.  mu held; released while sleeping. */
static void wait_until(redislock__renewer *r, int64_t due_us)
{
    struct pollfd p[1 + 2 * REDISLOCK__MAX_MASTERS];
    size_t idx[1 + 2 * REDISLOCK__MAX_MASTERS], which[REDISLOCK__MAX_MASTERS];
    size_t np = 1, nc, nw, i;
    char buf[64];
    int n, broke = 0;

    p[0].fd = r->wake[0];
    p[0].events = POLLIN;
    for (i = 0; i < r->c->nmasters; i++) {
        if (!r->conns[i])
            continue;
        p[np].fd = r->conns[i]->fd;
        p[np].events = POLLIN;
        idx[np++] = i;
    }
    nc = np;
    nw = redislock__topo_watch_fds(r->c, p + np, which, REDISLOCK__MAX_MASTERS);
    pthread_mutex_unlock(&r->mu);
    n = poll(p, (nfds_t)(nc + nw), redislock__poll_ms(
                                       redislock__min_deadline(due_us, r->watch_due)));
    pthread_mutex_lock(&r->mu);
    if (n <= 0)
        return;
    if (p[0].revents)
        while (read(r->wake[0], buf, sizeof buf) > 0)
            ;
    for (i = 0; i < nw; i++)
        if (p[nc + i].revents) {
            r->watch_ready[which[i]] = 1;
            r->watch_due = 0; /* a turn now */
        }
    for (i = 1; i < nc; i++) {
        redislock__conn *conn = r->conns[idx[i]];
        if (!p[i].revents)
            continue;
        redislock__log(r->c, REDISLOCK_LOG_WARN,
                       "redis %s: the renewal connection was closed by the server; "
                       "checking %zu lock(s) now",
                       conn->m->ep.addr, r->n);
        __atomic_store_n(&r->conns[idx[i]], NULL, __ATOMIC_RELAXED);
        conn->broken = 1;
        redislock__pool_put(conn);
        broke = 1;
    }
    if (broke)
        check_all_now(r);
}

/* Apply one result; mu held.  Returns 1 if the lock was lost now. */
static int apply(redislock__renewer *r, item *it)
{
    redislock *lk = it->lk;
    int64_t now, expires;
    int reason = 0;
    if (lk->rn.gen != it->gen)
        return 0; /* released (or released and taken again) meanwhile */
    switch (it->result) {
    case RENEW_OK:
        expires = redislock__valid_until(r->c, it->sent_us, lk->expire_ms);
        redislock__set_expiry(lk, expires);
        lk->rn.backoff_ms = 0;
        lk->rn.due_us = capped(lk, it->sent_us + lk->rn.interval_ms * 1000);
        r->st.renewals++;
        break;
    case RENEW_GONE:
        reason = REDISLOCK_LOST_GONE;
        break;
    case RENEW_OTHER:
        reason = REDISLOCK_LOST_OTHER_OWNER;
        break;
    case RENEW_NOQUORUM:
        reason = REDISLOCK_LOST_NO_QUORUM;
        break;
    case RENEW_MAX_HOLD:
        reason = REDISLOCK_LOST_MAX_HOLD;
        break;
    case RENEW_NO_HEARTBEAT:
        reason = REDISLOCK_LOST_NO_HEARTBEAT;
        break;
    case RENEW_NO_REPLICAS:
        reason = REDISLOCK_LOST_NO_REPLICAS;
        break;
    default:
        r->st.failures++;
        now = redislock__now_us();
        expires = redislock__expiry(lk);
        if (now >= expires) {
            reason = r->c->nmasters > 1 ? REDISLOCK_LOST_NO_QUORUM
                                        : REDISLOCK_LOST_EXPIRED;
            break;
        }
        lk->rn.backoff_ms = lk->rn.backoff_ms ? (lk->rn.backoff_ms >= 100 ? 200 : lk->rn.backoff_ms * 2)
                                        : 10;
        lk->rn.due_us = now + (int64_t)lk->rn.backoff_ms * 1000;
        if (lk->rn.due_us > expires)
            lk->rn.due_us = expires; /* then it is found expired */
        lk->rn.due_us = capped(lk, lk->rn.due_us);
    }
    if (reason) {
        r->st.lost++;
        redislock__stats_lost(lk, reason);
        return redislock__set_lost(lk, reason);
    }
    if (heap_push(r, lk)) {
        redislock__log(r->c, REDISLOCK_LOG_ERROR,
                       "renewal: out of memory; the lock will expire");
        return 0;
    }
    return 0;
}

/* Take every lock due within a window of the first one off the heap into
 * *items (grown as needed): first the *nrenew to renew, then those that a
 * limit stops (their result set: no I/O).  Returns how many; mu held. */
static size_t take_due(redislock__renewer *r, item **items, size_t *cap, int64_t now,
                       size_t *nrenew)
{
    int64_t window = r->heap[0]->rn.interval_ms * 1000 / WINDOW_DIVISOR;
    size_t n = 0, k = 0;
    if (window > WINDOW_MAX_US)
        window = WINDOW_MAX_US;
    while (r->n && r->heap[0]->rn.due_us <= now + window) {
        redislock *lk = r->heap[0];
        item it;
        if (n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            item *ni = redislock__realloc(*items, ncap * sizeof *ni);
            if (!ni)
                break;
            *items = ni;
            *cap = ncap;
        }
        heap_remove(r, lk);
        lk->rn.in_flight = 1;
        it.lk = lk;
        it.gen = lk->rn.gen;
        it.result = limit_reached(lk, now);
        it.sent_us = 0;
        (*items)[n++] = it;
        if (it.result == RENEW_RETRY) { /* to the front */
            (*items)[n - 1] = (*items)[k];
            (*items)[k++] = it;
        }
    }
    *nrenew = k;
    return n;
}

/* After a batch: apply the results, run the callbacks of the locks lost now
 * (outside the mutex), complete the frees deferred by callbacks.  mu held
 * on entry and on return. */
static void finish_batch(redislock__renewer *r, item *items, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!apply(r, &items[i]))
            items[i].lk->rn.in_flight = 0, items[i].lk = NULL;
    pthread_mutex_unlock(&r->mu);
    for (i = 0; i < n; i++) {
        redislock *lk = items[i].lk;
        if (lk && lk->rn.on_lost)
            lk->rn.on_lost(lk, __atomic_load_n(&lk->lost_reason, __ATOMIC_SEQ_CST),
                           lk->rn.on_lost_userdata);
    }
    pthread_mutex_lock(&r->mu);
    for (i = 0; i < n; i++) {
        redislock *lk = items[i].lk;
        if (!lk)
            continue;
        lk->rn.in_flight = 0;
        if (lk->rn.free_pending) {
            unlink_handle(r, lk);
            pthread_mutex_unlock(&r->mu);
            redislock__lock_destroy(lk);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_cond_broadcast(&r->done_cv);
}

/* The topology's watch (a Sentinel's subscription and questions), when its
 * turn came; mu held, released during the turn. */
static void watch_turn(redislock__renewer *r)
{
    int ready[REDISLOCK__MAX_MASTERS];
    memcpy(ready, r->watch_ready, sizeof ready);
    memset(r->watch_ready, 0, sizeof r->watch_ready);
    r->watch_due = REDISLOCK__NEVER;
    if (!redislock__topo_watched(r->c))
        return;
    pthread_mutex_unlock(&r->mu);
    r->watch_due = redislock__topo_watch(r->c, ready);
    pthread_mutex_lock(&r->mu);
}

static void *run(void *arg)
{
    redislock__renewer *r = arg;
    item *items = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t now;
        size_t n, nrenew;
        if (r->watch_due <= redislock__now_us())
            watch_turn(r);
        if (r->n == 0) {
            wait_until(r, REDISLOCK__NEVER);
            continue;
        }
        now = redislock__now_us();
        if (r->heap[0]->rn.due_us > now) {
            ensure_conns(r, r->heap[0]->rn.due_us);
            if (r->n && r->heap[0]->rn.due_us > redislock__now_us())
                wait_until(r, r->heap[0]->rn.due_us);
            continue;
        }
        n = take_due(r, &items, &cap, now, &nrenew);
        if (n == 0) { /* out of memory: try again in a moment */
            wait_until(r, now + 10000);
            continue;
        }
        r->st.cycles++;
        pthread_mutex_unlock(&r->mu);
        if (nrenew) {
            redislock__log(r->c, REDISLOCK_LOG_DEBUG, "renewing %zu lock(s)", nrenew);
            renew_batch(r, items, nrenew);
        }
        pthread_mutex_lock(&r->mu);
        finish_batch(r, items, n);
    }
    pthread_mutex_unlock(&r->mu);
    redislock__free(items);
    return NULL;
}

/* Start the thread with every signal blocked, so that process signals go to
 * the application's threads.  mu held. */
static int start(redislock__renewer *r)
{
    sigset_t all, old;
    int rc;
    if (r->wake[0] < 0 && (rc = open_pipe(r)))
        return rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, run, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return redislock__err(REDISLOCK_ENOMEM, "cannot start the renewal thread: %s",
                              strerror(rc));
    __atomic_store_n(&r->running, 1, __ATOMIC_RELEASE);
    r->stop = 0;
    return 0;
}

/* -------------------------------------------------------------- interface */

redislock__renewer *redislock__renewer_new(redislock_client *c)
{
    redislock__renewer *r = redislock__calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->wake[0] = r->wake[1] = -1;
    r->conns = redislock__calloc(c->nmasters, sizeof *r->conns);
    r->watch_retry_us = redislock__calloc(c->nmasters, sizeof *r->watch_retry_us);
    if (!r->conns || !r->watch_retry_us) {
        redislock__free(r->conns);
        redislock__free(r->watch_retry_us);
        redislock__free(r);
        return NULL;
    }
    r->c = c;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    return r;
}

void redislock__renewer_free(redislock__renewer *r)
{
    redislock *lk;
    size_t i;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    wake(r);
    pthread_mutex_unlock(&r->mu);
    if (r->running)
        pthread_join(r->thread, NULL);
    /* the handles outlive the client: they must not reach back to it */
    for (lk = r->all; lk; lk = lk->rn.next) {
        lk->rn.registered = 0;
        lk->rn.heap_idx = REDISLOCK__NOT_SCHEDULED;
    }
    for (i = 0; i < r->c->nmasters; i++)
        redislock__pool_put(r->conns[i]);
    redislock__free(r->conns);
    redislock__free(r->watch_retry_us);
    redislock__free(r->heap);
    close_pipe(r);
    pthread_cond_destroy(&r->done_cv);
    pthread_mutex_destroy(&r->mu);
    redislock__free(r);
}

int redislock__renew_add(redislock *lk)
{
    redislock__renewer *r = lk->c->renewer;
    int rc = 0, top;
    pthread_mutex_lock(&r->mu);
    if (!r->running && (rc = start(r)))
        goto out;
    if (!lk->rn.registered) {
        lk->rn.prev = NULL;
        lk->rn.next = r->all;
        if (r->all)
            r->all->rn.prev = lk;
        r->all = lk;
        lk->rn.registered = 1;
        lk->rn.heap_idx = REDISLOCK__NOT_SCHEDULED;
    }
    lk->rn.gen++;
    lk->rn.backoff_ms = 0;
    heap_remove(r, lk);
    /* the hold starts at the grant's send; acquiring is a heartbeat */
    lk->rn.limit_us = lk->rn.max_hold_ms ? lk->acquired_us + lk->rn.max_hold_ms * 1000 : 0;
    __atomic_store_n(&lk->rn.heartbeat_us, redislock__now_us(), __ATOMIC_SEQ_CST);
    lk->rn.due_us = capped(lk, redislock__now_us() + lk->rn.interval_ms * 1000);
    if ((rc = heap_push(r, lk))) {
        rc = redislock__err(REDISLOCK_ENOMEM, "out of memory scheduling a renewal");
        goto out;
    }
    top = lk->rn.heap_idx == 0;
    if (top)
        wake(r);
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int redislock__renew_watch(redislock_client *c)
{
    redislock__renewer *r = c->renewer;
    int rc = 0;
    if (!redislock__topo_watched(c) || __atomic_load_n(&r->running, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&r->mu);
    if (!r->running)
        rc = start(r);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void redislock__renew_resume(redislock *lk, int64_t sent_us, int64_t ttl_ms)
{
    redislock__renewer *r;
    int64_t interval_us;
    if (!lk->rn.registered)
        return;
    r = lk->c->renewer;
    interval_us = lk->rn.interval_ms * 1000;
    /* a shorter TTL than the expiry needs its renewal sooner */
    if (ttl_ms > 0 && ttl_ms * 1000 / 3 < interval_us)
        interval_us = ttl_ms * 1000 / 3;
    pthread_mutex_lock(&r->mu);
    /* A renewal still in flight has an older generation: its result will
     * be ignored, and the lock is scheduled here (the thread runs one batch
     * at a time, so it cannot be taken twice). */
    if (lk->rn.heap_idx == REDISLOCK__NOT_SCHEDULED) {
        lk->rn.backoff_ms = 0;
        lk->rn.due_us = capped(lk, sent_us + interval_us);
        if (heap_push(r, lk) == 0 && lk->rn.heap_idx == 0)
            wake(r);
    }
    pthread_mutex_unlock(&r->mu);
}

void redislock__renew_heartbeat(redislock *lk)
{
    __atomic_store_n(&lk->rn.heartbeat_us, redislock__now_us(), __ATOMIC_SEQ_CST);
}

void redislock__renew_remove(redislock *lk)
{
    redislock__renewer *r;
    if (!lk->rn.registered)
        return;
    r = lk->c->renewer;
    pthread_mutex_lock(&r->mu);
    lk->rn.gen++;
    heap_remove(r, lk);
    pthread_mutex_unlock(&r->mu);
}


int redislock__renew_detach(redislock *lk)
{
    redislock__renewer *r;
    int deferred = 0;
    if (!lk->rn.registered)
        return 0;
    r = lk->c->renewer;
    pthread_mutex_lock(&r->mu);
    lk->rn.gen++;
    heap_remove(r, lk);
    if (lk->rn.in_flight && r->running && pthread_equal(pthread_self(), r->thread)) {
        /* its own lost-callback frees it: the thread frees it afterwards */
        lk->rn.free_pending = 1;
        deferred = 1;
    } else {
        /* a renewal or callback may still use lk: wait for it */
        while (lk->rn.in_flight)
            pthread_cond_wait(&r->done_cv, &r->mu);
        unlink_handle(r, lk);
    }
    pthread_mutex_unlock(&r->mu);
    return deferred;
}

void redislock__renew_fork_prepare(redislock__renewer *r)
{
    if (r)
        pthread_mutex_lock(&r->mu);
}

void redislock__renew_fork_parent(redislock__renewer *r)
{
    if (r)
        pthread_mutex_unlock(&r->mu);
}

void redislock__renew_fork_child(redislock__renewer *r)
{
    redislock *lk;
    size_t i;
    if (!r)
        return;
    /* The thread was not copied: nothing renews the parent's locks here,
     * and nothing is in flight.  A renewed lock acquired in the child starts
     * a thread of its own. */
    __atomic_store_n(&r->running, 0, __ATOMIC_RELEASE);
    r->stop = 0;
    r->n = 0;
    for (lk = r->all; lk; lk = lk->rn.next) {
        lk->rn.heap_idx = REDISLOCK__NOT_SCHEDULED;
        lk->rn.in_flight = 0;
    }
    for (i = 0; i < r->c->nmasters; i++) {
        redislock__conn_close(r->conns[i]); /* the child's copy of the fd */
        r->conns[i] = NULL;
    }
    pthread_cond_init(&r->done_cv, NULL);
    close_pipe(r); /* the parent's thread reads it; start() makes a new one */
    pthread_mutex_unlock(&r->mu);
}

void redislock__renew_get_stats(redislock_client *c, redislock__renew_stats *st)
{
    redislock__renewer *r = c->renewer;
    size_t i;
    /* The thread updates round_trips and conns[] outside the mutex, while
     * it renews: those are read atomically, the rest under the mutex. */
    pthread_mutex_lock(&r->mu);
    st->cycles = r->st.cycles;
    st->renewals = r->st.renewals;
    st->failures = r->st.failures;
    st->lost = r->st.lost;
    st->round_trips = __atomic_load_n(&r->st.round_trips, __ATOMIC_RELAXED);
    st->scheduled = r->n;
    st->threads = r->running && !r->stop;
    st->connections = 0;
    for (i = 0; i < c->nmasters; i++)
        st->connections += __atomic_load_n(&r->conns[i], __ATOMIC_RELAXED) != NULL;
    pthread_mutex_unlock(&r->mu);
}
