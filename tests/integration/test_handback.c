/* A waiter that pops a wake-up and then fails (its connection breaks before
 * the retry) hands the wake-up back, so the next waiter is not left asleep.
 *
 * The failure is injected at link time (-Wl,--wrap=redislock__fan_calls):
 * the first waiter's acquire rounds after its wake-up fail as a dropped
 * connection would.
 * Everything else runs against a real redis-server. */
#include "fixtures.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

void __real_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline);
void __wrap_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline);

static pthread_t victim;
static int victim_set, victim_calls, injected;

void __wrap_redislock__fan_calls(redislock__fanout *f, redislock__call *const *calls,
                                 int64_t deadline)
{
    size_t i;
    if (__atomic_load_n(&victim_set, __ATOMIC_SEQ_CST) &&
        pthread_equal(pthread_self(), victim) &&
        calls[0]->script == &redislock__script_acquire && victim_calls++ > 0) {
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
    assert_true(injected >= 1);
    assert_int_equal(w1->rc, REDISLOCK_EIO);
    assert_rl_ok(w2->rc);
    print_message("      second waiter woken %lld ms after the release "
                  "(its own timeout was 5000 ms)\n",
                  (long long)(w2->got - released));
    assert_true(w2->got - released < TU_MS(1000));
    assert_rl_ok(redislock_release(w2->lk));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_handback_failed_waiter_hands_wakeup_to_next,
                                  tf_teardown),
    };
    return cmocka_run_group_tests_name("handback", tests, NULL, NULL);
}
