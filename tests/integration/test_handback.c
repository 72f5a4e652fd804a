/* A waiter that pops a wake-up and then fails is not left holding the lock
 * unknowingly, and the next waiter is not left asleep; nor is one whose
 * BLPOP meets an error reply while the acquire behind it takes the lock.  The acquire runs
 * pipelined behind the BLPOP, so a waiter whose connection breaks after
 * its wake-up may have taken the lock without learning it: when it gives
 * up, it releases (owner-checked), which frees the lock and wakes the next
 * waiter.
 *
 * The failure is injected at link time: the victim's wait loses the
 * pipelined acquire's reply (-Wl,--wrap=redislock__wait_signals), and its
 * acquire rounds after that fail as a dropped connection would
 * (-Wl,--wrap=redislock__fan_calls), until it gives up.  Everything else
 * runs against a real redis-server. */
#include "fixtures.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <hiredis.h>

int __real_redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                                   size_t sigkeylen, int64_t until, int *popped,
                                   redislock__call *after);
int __wrap_redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                                   size_t sigkeylen, int64_t until, int *popped,
                                   redislock__call *after);
void __real_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline);
void __wrap_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline);

static pthread_t victim;
static int victim_set, victim_calls, injected, lost_after_wakeup;
/* the thread whose waits meet WRONGTYPE with the lock freed meanwhile */
static pthread_t wt_victim;
static int wt_set;
static const char *wt_name;

static int is_victim(void)
{
    return __atomic_load_n(&victim_set, __ATOMIC_SEQ_CST) &&
           pthread_equal(pthread_self(), victim);
}

/* The victim's wait: the wake-up and the pipelined acquire run on the
 * server, but the connection "breaks" before the acquire's reply is read. */
int __wrap_redislock__wait_signals(redislock__fanout *f, const char *sigkey,
                                   size_t sigkeylen, int64_t until, int *popped,
                                   redislock__call *after)
{
    int rc;
    if (__atomic_load_n(&wt_set, __ATOMIC_SEQ_CST) && pthread_equal(pthread_self(), wt_victim)) {
        /* between the busy answer and the BLPOP: the signal key becomes a
         * hash (the BLPOP meets WRONGTYPE) and the holder's key goes (the
         * acquire pipelined behind the BLPOP takes the lock) */
        freeReplyObject(ts_cmd(&tu_srv, "HSET lock-signal:%s f v", wt_name));
        freeReplyObject(ts_cmd(&tu_srv, "DEL lock:%s", wt_name));
    }
    rc = __real_redislock__wait_signals(f, sigkey, sigkeylen, until, popped, after);
    if (is_victim() && popped[0] && f->replies[0]) {
        freeReplyObject(f->replies[0]);
        f->replies[0] = NULL;
        f->rc[0] = redislock__conn_io_error(f->conns[0], 104, "read (injected)");
        snprintf(f->err[0], sizeof f->err[0], "%s", redislock_last_error());
        __atomic_add_fetch(&lost_after_wakeup, 1, __ATOMIC_SEQ_CST);
    }
    return rc;
}

void __wrap_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline)
{
    size_t i;
    if (is_victim() && calls[0]->script == &redislock__script_acquire &&
        victim_calls++ > 0) {
        /* after its first (busy) answer, every acquire round of the victim
         * fails like a connection reset before the reply */
        __atomic_add_fetch(&injected, 1, __ATOMIC_SEQ_CST);
        for (i = 0; i < f->n; i++) {
            if (!f->conns[i] || f->rc[i])
                continue;
            f->rc[i] = redislock__conn_io_error(f->conns[i], 104, "read (injected)");
            snprintf(f->err[i], sizeof f->err[i], "%s", redislock_last_error());
        }
        return;
    }
    __real_redislock__fan_calls(f, calls, deadline);
}

/* In the victim's thread, before its acquire. */
static void mark_victim(tf_waiter *w)
{
    victim = pthread_self();
    __atomic_store_n(&victim_set, 1, __ATOMIC_SEQ_CST);
}

static void test_handback_failed_waiter_hands_wakeup_to_next(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder;
    tf_waiter *w1, *w2;
    int64_t released;

    tf_server_start(&tu_srv);
    o.connect_timeout_ms = 300; /* the victim gives up recovering after that */
    c = tf_client_opts(tu_srv.url, &o);
    holder = tf_lock(c, "hb", 0);
    w1 = tf_waiter_new(tf_lock(c, "hb", 0), 5000);
    w1->before = mark_victim;
    w2 = tf_waiter_new(tf_lock(c, "hb", 0), 5000);

    assert_rl_ok(redislock_acquire(holder, 0));
    tf_waiter_run(w1);
    ts_await_blocked(&tu_srv, 1);
    tf_waiter_run(w2);
    ts_await_blocked(&tu_srv, 2);
    /* FIFO: the victim, blocked first, gets the wake-up */
    assert_rl_ok(redislock_release(holder));
    released = tu_now_ms();
    tf_waiter_join(w2);
    tf_waiter_join(w1);
    assert_int_equal(lost_after_wakeup, 1);
    assert_true(injected >= 1);
    assert_int_equal(w1->rc, REDISLOCK_EIO);
    assert_rl_ok(w2->rc); /* the victim did not keep what its acquire took */
    print_message("      second waiter woken %lld ms after the release "
                  "(its own timeout was 5000 ms)\n",
                  (long long)(w2->got - released));
    assert_true(w2->got - released < TU_MS(1500));
    assert_rl_ok(redislock_release(w2->lk));
}

static void mark_wt_victim(tf_waiter *w)
{
    (void)w;
    wt_victim = pthread_self();
    __atomic_store_n(&wt_set, 1, __ATOMIC_SEQ_CST);
}

/* The BLPOP meets an error reply (WRONGTYPE: the signal key holds a hash)
 * while the acquire pipelined behind it takes the lock (the holder's key
 * went in between): the call fails with EPROTO naming WRONGTYPE, and gives
 * back what the acquire took: the server must not hold the lock under the
 * caller's id (16 of 885 such calls left it held). */
static void test_handback_error_reply_to_blpop_gives_back_what_was_taken(void **state)
{
    enum { N = 20 };
    redislock_client *c;
    int i, leaked = 0;

    __atomic_store_n(&victim_set, 0, __ATOMIC_SEQ_CST); /* the other test's */
    tf_server_start(&tu_srv);
    c = tf_client(tu_srv.url);
    for (i = 0; i < N; i++) {
        char name[32];
        redislock *holder, *lk;
        redisReply *r;
        tf_waiter *w;
        snprintf(name, sizeof name, "wt%d", i);
        wt_name = name;
        holder = tf_lock(c, name, 0);
        lk = tf_lock(c, name, 0);
        assert_rl_ok(redislock_acquire(holder, 0));
        w = tf_waiter_new(lk, 3000);
        w->before = mark_wt_victim;
        tf_waiter_run(w);
        tf_waiter_join(w);
        __atomic_store_n(&wt_set, 0, __ATOMIC_SEQ_CST);
        if (w->rc != REDISLOCK_EPROTO || !strstr(w->msg, "WRONGTYPE"))
            fail_msg("acquire: %s (%s), expected EPROTO naming WRONGTYPE",
                     redislock_err_name(w->rc), w->msg);
        assert_int_equal(redislock_held(lk), 0);
        r = ts_cmd(&tu_srv, "GET lock:%s", name);
        leaked += r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, redislock_id(lk));
        freeReplyObject(r);
        tf_undefer(w);
    }
    print_message("      %d BLPOPs answered WRONGTYPE while the acquire behind took the "
                  "lock: %d left it held\n", N, leaked);
    assert_int_equal(leaked, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_handback_failed_waiter_hands_wakeup_to_next,
                                  tf_teardown),
        cmocka_unit_test_teardown(
            test_handback_error_reply_to_blpop_gives_back_what_was_taken, tf_teardown),
    };
    return cmocka_run_group_tests_name("handback", tests, NULL, NULL);
}
