#define _GNU_SOURCE
/* Waiting: timeouts, wake-ups across processes, crashed holders, no spinning,
 * signals, FIFO hand-off, and the fallback without CLIENT UNBLOCK. */
#include "server.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>


static long long blocked_clients(void)
{
    return ts_info(&tu_srv, "clients", "blocked_clients");
}

/* 3. acquire(1000) on a held lock returns ETIMEDOUT after about a second. */
static void test_wait_timeout(void **state)
{
    redislock *holder = tu_lock(tu_cl, "t", 0), *w = tu_lock(tu_cl, "t", 0);
    int64_t t0, el;
    assert_rl_ok(redislock_acquire(holder, 0));
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(w, 1000), REDISLOCK_ETIMEDOUT);
    el = tu_now_ms() - t0;
    assert_true(el >= 990 && el < TU_MS(1600));
    assert_non_null(strstr(redislock_errmsg(w), "still held"));
    /* the waiter's connection went back to the pool unblocked */
    assert_int_equal(blocked_clients(), 0);
    assert_rl_ok(redislock_release(holder));
    redislock_free(holder);
    redislock_free(w);
}

struct waiter_arg {
    const char *url;
    const char *name;
    int64_t timeout;
    tu_chan *ch;
};

/* Child: acquire, report the time, release after 50 ms. */
static int waiter_proc(void *p)
{
    struct waiter_arg *a = p;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    int rc;
    if (redislock_client_new(&c, a->url, NULL) || redislock_new(&lk, c, a->name, NULL))
        return 10;
    rc = redislock_acquire(lk, a->timeout);
    tu_chan_send(a->ch, rc == 0 ? tu_now_ms() : -1);
    if (rc)
        return 11;
    tu_sleep_ms(50);
    rc = redislock_release(lk);
    redislock_free(lk);
    redislock_client_free(c);
    return rc ? 12 : 0;
}

/* 4. A waiter blocked in another process is woken by release, promptly. */
static void test_wait_woken_by_release(void **state)
{
    redislock *holder = tu_lock(tu_cl, "wake", 0);
    tu_chan ch;
    struct waiter_arg a = { tu_srv.url, "wake", -1, &ch };
    int64_t released, got;
    pid_t pid;

    tu_chan_open(&ch);
    assert_rl_ok(redislock_acquire(holder, 0));
    pid = tu_spawn(waiter_proc, &a);
    ts_await_blocked(&tu_srv, 1);
    assert_rl_ok(redislock_release(holder));
    released = tu_now_ms();
    assert_int_equal(tu_chan_recv(&ch, &got, 5000), 0);
    assert_true(got > 0);
    assert_true(got - released < TU_MS(500)); /* typically well under 1 ms */
    assert_int_equal(tu_wait(pid), 0);
    tu_chan_close(&ch);
    redislock_free(holder);
}

static int crashed_holder_proc(void *p)
{
    struct waiter_arg *a = p;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = 1000;
    if (redislock_client_new(&c, a->url, NULL) || redislock_new(&lk, c, a->name, &o) ||
        redislock_acquire(lk, 0))
        return 10;
    tu_chan_send(a->ch, tu_now_ms());
    for (;;)
        pause(); /* until SIGKILL */
}

/* 5. A holder with a 1 s expiry killed with SIGKILL: a waiter without a
 *    timeout gets the lock within a few hundred ms of the expiry. */
static void test_wait_crashed_holder(void **state)
{
    redislock *w = tu_lock(tu_cl, "crash", 0);
    tu_chan ch;
    struct waiter_arg a = { tu_srv.url, "crash", 0, &ch };
    int64_t acquired_at, got, delay;
    pid_t pid;

    tu_chan_open(&ch);
    pid = tu_spawn(crashed_holder_proc, &a);
    assert_int_equal(tu_chan_recv(&ch, &acquired_at, 5000), 0);
    kill(pid, SIGKILL);
    assert_int_equal(tu_wait(pid), 128 + SIGKILL);
    assert_rl_ok(redislock_acquire(w, -1));
    got = tu_now_ms();
    delay = got - (acquired_at + 1000);
    print_message("      waiter got the lock %lld ms after the holder's expiry\n",
                  (long long)delay);
    assert_true(delay > -50 && delay < TU_MS(300));
    assert_rl_ok(redislock_release(w));
    tu_chan_close(&ch);
    redislock_free(w);
}

static int64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* 6. No spinning: a waiter blocked 3 s on a lock without expiry sends a
 *    handful of commands and uses almost no CPU. */
static void test_wait_no_spinning(void **state)
{
    redislock *holder = tu_lock(tu_cl, "spin", 0), *w = tu_lock(tu_cl, "spin", 0);
    long long reqs;
    int64_t cpu;
    assert_rl_ok(redislock_acquire(holder, 0));
    ts_resetstat(&tu_srv);
    cpu = cpu_us();
    assert_rl_err(redislock_acquire(w, 3000), REDISLOCK_ETIMEDOUT);
    cpu = cpu_us() - cpu;
    reqs = ts_calls(&tu_srv, NULL);
    print_message("      3 s wait: %lld requests, %lld us CPU\n", reqs, (long long)cpu);
    /* acquire script, CLIENT ID, BLPOP, CLIENT UNBLOCK (+1 spare) */
    assert_true(reqs >= 2 && reqs <= 5);
    assert_true(cpu < TU_MS(50000));
    assert_rl_ok(redislock_release(holder));
    redislock_free(holder);
    redislock_free(w);
}

/* One monotonic deadline across retries: a holder that keeps releasing and
 * re-taking the lock makes a waiter lose races, and the waiter still
 * returns by its deadline. */
struct churn_arg {
    redislock_client *c;
    int stop; /* atomic */
};

static void *churn_thread(void *p)
{
    struct churn_arg *a = p;
    redislock *lk = tu_lock(a->c, "churn", 0);
    while (!__atomic_load_n(&a->stop, __ATOMIC_SEQ_CST)) {
        if (redislock_acquire(lk, 1000) == 0)
            redislock_release(lk);
    }
    redislock_free(lk);
    return NULL;
}

static void test_wait_deadline_across_retries(void **state)
{
    struct churn_arg a = { tu_cl, 0 };
    pthread_t t[2];
    redislock *w = tu_lock(tu_cl, "churn", 0);
    int i, rc, ok = 0, timedout = 0;
    for (i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn_thread, &a);
    for (i = 0; i < 10; i++) {
        int64_t t0 = tu_now_ms(), el;
        rc = redislock_acquire(w, 200);
        el = tu_now_ms() - t0;
        if (rc == 0) {
            ok++;
            redislock_release(w);
        } else {
            assert_int_equal(rc, REDISLOCK_ETIMEDOUT);
            timedout++;
        }
        assert_true(el < TU_MS(200 + 300));
    }
    __atomic_store_n(&a.stop, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    print_message("      churn: %d acquired, %d timed out\n", ok, timedout);
    redislock_free(w);
}

/* Signals (EINTR) neither end the wait early nor break it. */
static void on_usr1(int sig)
{
    (void)sig;
}

struct sig_arg {
    redislock *lk;
    int64_t timeout;
    int rc;
    int64_t elapsed;
    int done; /* atomic */
};

static void *sig_waiter(void *p)
{
    struct sig_arg *a = p;
    int64_t t0 = tu_now_ms();
    a->rc = redislock_acquire(a->lk, a->timeout);
    a->elapsed = tu_now_ms() - t0;
    __atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_wait_eintr(void **state)
{
    struct sigaction sa;
    redislock *holder = tu_lock(tu_cl, "sig", 0);
    struct sig_arg a = { tu_lock(tu_cl, "sig", 0), 1500, -99, 0, 0 };
    pthread_t t;
    int sent = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: poll() sees EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    assert_rl_ok(redislock_acquire(holder, 0));

    /* times out at the deadline despite 100 signals per second */
    pthread_create(&t, NULL, sig_waiter, &a);
    while (!__atomic_load_n(&a.done, __ATOMIC_SEQ_CST)) {
        pthread_kill(t, SIGUSR1);
        sent++;
        tu_sleep_ms(10);
    }
    pthread_join(t, NULL);
    assert_rl_err(a.rc, REDISLOCK_ETIMEDOUT);
    assert_true(a.elapsed >= 1490 && a.elapsed < TU_MS(2100));
    assert_true(sent > 50);

    /* and is still woken by a release while being signalled */
    __atomic_store_n(&a.done, 0, __ATOMIC_SEQ_CST);
    a.timeout = 10000;
    pthread_create(&t, NULL, sig_waiter, &a);
    ts_await_blocked(&tu_srv, 1);
    for (sent = 0; sent < 20; sent++) {
        pthread_kill(t, SIGUSR1);
        tu_sleep_ms(5);
    }
    assert_false(__atomic_load_n(&a.done, __ATOMIC_SEQ_CST));
    assert_rl_ok(redislock_release(holder));
    pthread_join(t, NULL);
    assert_rl_ok(a.rc);
    assert_rl_ok(redislock_release(a.lk));
    redislock_free(holder);
    redislock_free(a.lk);
    signal(SIGUSR1, SIG_DFL);
}

/* Each release wakes exactly one waiter, first come first served. */
struct fifo_arg {
    redislock *lk;
    int idx;
    int *order;
    int *pos;
    pthread_mutex_t *mu;
};

static void *fifo_waiter(void *p)
{
    struct fifo_arg *a = p;
    if (redislock_acquire(a->lk, 10000) == 0) {
        pthread_mutex_lock(a->mu);
        a->order[(*a->pos)++] = a->idx;
        pthread_mutex_unlock(a->mu);
        tu_sleep_ms(100); /* hold it, so the others must stay asleep */
        redislock_release(a->lk);
    }
    return NULL;
}

static void test_wait_fifo_one_per_release(void **state)
{
    redislock *holder = tu_lock(tu_cl, "fifo", 0);
    pthread_t t[3];
    struct fifo_arg a[3];
    int order[3] = { -1, -1, -1 }, pos = 0, i;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < 3; i++) {
        a[i].lk = tu_lock(tu_cl, "fifo", 0);
        a[i].idx = i;
        a[i].order = order;
        a[i].pos = &pos;
        a[i].mu = &mu;
        pthread_create(&t[i], NULL, fifo_waiter, &a[i]);
        ts_await_blocked(&tu_srv, i + 1);
    }
    assert_rl_ok(redislock_release(holder));
    /* after one release: exactly one holder, two still blocked */
    while (1) {
        pthread_mutex_lock(&mu);
        i = pos;
        pthread_mutex_unlock(&mu);
        if (i >= 1)
            break;
        tu_sleep_ms(2);
    }
    assert_int_equal(blocked_clients(), 2);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(pos, 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(order[i], i);
    for (i = 0; i < 3; i++)
        redislock_free(a[i].lk);
    redislock_free(holder);
}

/* Without CLIENT UNBLOCK (denied by ACL here, absent before Redis 5) the
 * wait ends on the server's own timeout: late by up to its cron period, but
 * still within the documented bound. */
static void test_wait_without_unblock(void **state)
{
    redislock_client *c2 = tu_client(tu_srv.url);
    redislock *holder = tu_lock(c2, "nounblock", 0), *w = tu_lock(c2, "nounblock", 0);
    redisReply *r = ts_cmd(&tu_srv, "ACL SETUSER default -client|unblock");
    int64_t t0, el;
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_rl_ok(redislock_acquire(holder, 0));
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(w, 500), REDISLOCK_ETIMEDOUT);
    el = tu_now_ms() - t0;
    assert_true(el >= 490 && el <= TU_MS(500 + 250 + 50));
    /* and a crashed-holder style expiry is still honoured */
    assert_rl_ok(redislock_release(holder));
    redislock_free(holder);
    redislock_free(w);
    redislock_client_free(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_wait_timeout, tu_setup),
        cmocka_unit_test_setup(test_wait_woken_by_release, tu_setup),
        cmocka_unit_test_setup(test_wait_crashed_holder, tu_setup),
        cmocka_unit_test_setup(test_wait_no_spinning, tu_setup),
        cmocka_unit_test_setup(test_wait_deadline_across_retries, tu_setup),
        cmocka_unit_test_setup(test_wait_eintr, tu_setup),
        cmocka_unit_test_setup(test_wait_fifo_one_per_release, tu_setup),
        cmocka_unit_test_setup(test_wait_without_unblock, tu_setup),
    };
    return cmocka_run_group_tests_name("wait", tests, tu_group_setup, tu_group_teardown);
}
