/* A waiter that pops a wake-up and then fails (its connection breaks before
 * the retry) hands the wake-up back, so the next waiter is not left asleep.
 *
 * The failure is injected at link time (-Wl,--wrap=redislock__fan_calls):
 * the first waiter's acquire rounds after its wake-up fail as a dropped
 * connection would.
 * Everything else runs against a real redis-server. */
#include "internal.h"
#include "testutil.h"

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

struct waiter {
    redislock *lk;
    int is_victim;
    int rc;
    int64_t at;
};

static void *waiter(void *p)
{
    struct waiter *w = p;
    if (w->is_victim) {
        victim = pthread_self();
        __atomic_store_n(&victim_set, 1, __ATOMIC_SEQ_CST);
    }
    w->rc = redislock_acquire(w->lk, 5000);
    w->at = tu_now_ms();
    return NULL;
}

static void test_handback_next_waiter_woken(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder;
    struct waiter w1, w2;
    pthread_t t1, t2;
    int64_t released;

    TS_START_OR_SKIP(&tu_srv);
    o.connect_timeout_ms = 300; /* the victim gives up recovering after that */
    c = tu_client_opts(tu_srv.url, &o);
    holder = tu_lock(c, "hb", 0);
    w1.lk = tu_lock(c, "hb", 0);
    w1.is_victim = 1;
    w2.lk = tu_lock(c, "hb", 0);
    w2.is_victim = 0;

    assert_rl_ok(redislock_acquire(holder, 0));
    pthread_create(&t1, NULL, waiter, &w1);
    ts_await_blocked(&tu_srv, 1);
    pthread_create(&t2, NULL, waiter, &w2);
    ts_await_blocked(&tu_srv, 2);
    /* FIFO: the victim, blocked first, gets the wake-up */
    assert_rl_ok(redislock_release(holder));
    released = tu_now_ms();
    pthread_join(t2, NULL);
    pthread_join(t1, NULL);
    assert_true(injected >= 1);
    assert_int_equal(w1.rc, REDISLOCK_EIO);
    assert_rl_ok(w2.rc);
    print_message("      second waiter woken %lld ms after the release "
                  "(its own timeout was 5000 ms)\n",
                  (long long)(w2.at - released));
    assert_true(w2.at - released < TU_MS(1000));
    assert_rl_ok(redislock_release(w2.lk));
    redislock_free(holder);
    redislock_free(w1.lk);
    redislock_free(w2.lk);
    redislock_client_free(c);
    ts_stop(&tu_srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handback_next_waiter_woken),
    };
    return cmocka_run_group_tests_name("handback", tests, NULL, NULL);
}
