/* Redis Cluster replies that a real cluster gives only at the wrong moment,
 * from scripted fake nodes (tests/harness/fakenode.c): -ASK (ASKING and the
 * call in one round trip, the map untouched), -MOVED (the slot patched, one
 * refresh), -TRYAGAIN three times, -CLUSTERDOWN until the deadline
 * (REDISLOCK_ECLUSTERDOWN), a redirect loop and a MOVED to the node itself
 * (errors), a node that closes the connection under a BLPOP, NOSCRIPT on
 * a node (EVAL there), a release that the lock's validity runs out under
 * while its node keeps answering TRYAGAIN or READONLY (the thread
 * scheduled late: redislock__sleep_ms wrapped at link time). */
#include "fakenode.h"
#include "fixtures.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* What a fake node does; one struct per node, static. */
typedef struct fake {
    tfn_node *node;
    int port;
    int owner_port;           /* CLUSTER SLOTS: every slot on this port */
    const char *script_reply; /* RESP for EVALSHA/EVAL (NULL: :0) */
    const char *script_error; /* an error for the first `errors` script calls */
    int errors;
    int noscript;             /* EVALSHA answers NOSCRIPT */
    int close_blpop;          /* close the first BLPOP's connection */
    /* what it saw */
    int slots_asked, scripts, evals, blpops, asking_before_script;
    int last_was_asking;
} fake;

/* redislock__sleep_ms, wrapped (-Wl,--wrap): while late_until_us is set, a
 * sleep that ends before it lasts until then, as a thread that a loaded
 * machine ran late.  0: the real sleep only. */
static int64_t late_until_us;
void __real_redislock__sleep_ms(int ms);
void __wrap_redislock__sleep_ms(int ms);
void __wrap_redislock__sleep_ms(int ms)
{
    int64_t until = __atomic_load_n(&late_until_us, __ATOMIC_SEQ_CST), left;
    __real_redislock__sleep_ms(ms);
    left = until - redislock__now_us();
    if (until && left > 0)
        __real_redislock__sleep_ms((int)((left + 999) / 1000));
}

static void on_time(void *unused)
{
    (void)unused;
    __atomic_store_n(&late_until_us, 0, __ATOMIC_SEQ_CST);
}

static int is(const redisReply *req, const char *cmd)
{
    return req->elements > 0 && !strcasecmp(req->element[0]->str, cmd);
}

/* The node's thread and the test's share a fake: every field the test
 * reads or changes while the node runs goes through these. */
static int get(int *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static int bump(int *p)
{
    return __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
}

static void set_reply(fake *f, const char *reply)
{
    __atomic_store_n(&f->script_reply, reply, __ATOMIC_SEQ_CST);
}

static void set_error(fake *f, const char *err, int n)
{
    __atomic_store_n(&f->errors, n, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->script_error, err, __ATOMIC_SEQ_CST);
}

static void set(int *p, int v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static void handler(void *ud, const redisReply *req, long n, tfn_out *out)
{
    fake *f = ud;
    int asking = f->last_was_asking;
    const char *reply = __atomic_load_n(&f->script_reply, __ATOMIC_SEQ_CST);
    const char *error = __atomic_load_n(&f->script_error, __ATOMIC_SEQ_CST);
    int errors = get(&f->errors), noscript = get(&f->noscript);
    (void)n;
    f->last_was_asking = is(req, "ASKING");
    if (is(req, "CLUSTER")) {
        bump(&f->slots_asked);
        tfn_reply(out, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                  get(&f->owner_port) ? get(&f->owner_port) : f->port);
    } else if (is(req, "ASKING")) {
        tfn_reply(out, "+OK\r\n");
    } else if (is(req, "EVALSHA") || is(req, "EVAL")) {
        int k = bump(&f->scripts);
        if (asking)
            bump(&f->asking_before_script);
        if (is(req, "EVAL"))
            bump(&f->evals);
        if (is(req, "EVALSHA") && noscript)
            tfn_reply(out, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
        else if (error && (errors < 0 || k < errors))
            tfn_reply(out, "-%s\r\n", error);
        else
            tfn_reply(out, "%s", reply ? reply : ":0\r\n");
    } else if (is(req, "CLIENT")) {
        tfn_reply(out, ":1\r\n");
    } else if (is(req, "BLPOP")) {
        if (bump(&f->blpops) == 0 && get(&f->close_blpop)) {
            tfn_close(out);
            return;
        }
        tfn_reply(out, "*-1\r\n");
    } else {
        tfn_reply(out, "+OK\r\n");
    }
}

static void stop(void *arg)
{
    tfn_stop(arg);
}

static void start(fake *f)
{
    f->node = tfn_start(handler, f);
    assert_non_null(f->node);
    f->port = tfn_port(f->node);
    tf_defer(stop, f->node);
}

static redislock_client *client_of(const fake *seed, int64_t cmd_timeout_ms)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    char url[128];
    o.command_timeout_ms = cmd_timeout_ms;
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d", seed->port);
    return tf_client_opts(url, &o);
}

#define TAKEN "*1\r\n:1\r\n"
#define BUSY "*3\r\n:0\r\n:5000\r\n$5\r\nother\r\n"
#define JOB_SLOT 2906 /* lock:{job} */

/* -ASK: the call goes to the node named, behind ASKING, once; the map is
 * not changed (the next call goes to the owner again). */
static void test_fake_ask_sends_asking_with_the_call(void **state)
{
    static fake a, b;
    static char ask[64];
    redislock *lk;
    (void)state;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    start(&b);
    start(&a);
    snprintf(ask, sizeof ask, "ASK %d 127.0.0.1:%d", JOB_SLOT, b.port);
    set_error(&a, ask, -1);
    set_reply(&b, TAKEN);
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(get(&b.scripts), 1);
    assert_int_equal(get(&b.asking_before_script), 1);
    set_reply(&b, ":0\r\n");
    assert_rl_ok(redislock_release(lk)); /* again to a (ASK), then b */
    assert_int_equal(get(&a.scripts), 2);
    assert_int_equal(get(&b.asking_before_script), 2);
}

/* -MOVED: the slot is patched at once (the next call goes to the new node
 * without a redirect), and one full refresh follows within the fold. */
static void test_fake_moved_patches_the_slot_and_refreshes_once(void **state)
{
    static fake a, b;
    static char moved[64];
    redislock_client *c;
    redislock *lk;
    int i, asked;
    (void)state;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    start(&b);
    start(&a);
    set(&b.owner_port, b.port);
    snprintf(moved, sizeof moved, "MOVED %d 127.0.0.1:%d", JOB_SLOT, b.port);
    set_error(&a, moved, -1);
    set_reply(&b, TAKEN);
    c = client_of(&a, 1000);
    lk = tf_lock(c, "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(get(&a.scripts), 1);
    assert_int_equal(get(&b.scripts), 1);
    asked = get(&a.slots_asked) + get(&b.slots_asked);
    set_reply(&b, ":0\r\n");
    for (i = 0; i < 5; i++) /* patched: straight to b */
        assert_rl_ok(redislock_release(lk));
    assert_int_equal(get(&a.scripts), 1);
    tu_sleep_ms(250); /* the fold (200 ms) is over: the next call refreshes */
    assert_rl_ok(redislock_release(lk));
    print_message("      CLUSTER SLOTS asked %d time(s) before the MOVED, %d after\n", asked,
                  get(&a.slots_asked) + get(&b.slots_asked) - asked);
    assert_int_equal(get(&a.slots_asked) + get(&b.slots_asked) - asked, 1);
}

/* -TRYAGAIN three times, then the answer: retried on the same node after
 * back-offs of 2, 5, 10 ms (jittered: half to all of each). */
static void test_fake_tryagain_three_times_then_ok(void **state)
{
    static fake a;
    redislock *lk;
    int64_t t0, took;
    (void)state;
    memset(&a, 0, sizeof a);
    start(&a);
    set_error(&a, "TRYAGAIN Multiple keys request during rehashing of slot", 3);
    set_reply(&a, TAKEN);
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(lk, 0));
    took = tu_now_ms() - t0;
    print_message("      acquired after %d tries in %lld ms\n", get(&a.scripts), (long long)took);
    assert_int_equal(get(&a.scripts), 4);
    assert_true(took >= 8 && took < TU_MS(200)); /* 1 + 2.5 + 5 ms at least */
}

/* -CLUSTERDOWN until the deadline: REDISLOCK_ECLUSTERDOWN, not "busy", by
 * the command timeout. */
static void test_fake_clusterdown_until_the_deadline(void **state)
{
    static fake a;
    redislock *lk;
    int64_t t0, took;
    (void)state;
    memset(&a, 0, sizeof a);
    start(&a);
    set_error(&a, "CLUSTERDOWN The cluster is down", -1);
    lk = tf_lock(client_of(&a, 500), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_ECLUSTERDOWN);
    took = tu_now_ms() - t0;
    print_message("      %s (%lld ms, %d tries)\n", redislock_errmsg(lk), (long long)took,
                  get(&a.scripts));
    assert_non_null(strstr(redislock_errmsg(lk), "CLUSTERDOWN"));
    assert_true(took >= 350 && took < TU_MS(1000));
    assert_true(get(&a.scripts) >= 3);
    t0 = tu_now_ms();
    assert_rl_err(redislock_release(lk), REDISLOCK_ECLUSTERDOWN);
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
}

/* Two nodes that redirect to each other: an error after 16 redirects; a
 * node that redirects to itself: an error at once. */
static void test_fake_redirect_loop_and_moved_to_itself(void **state)
{
    static fake a, b, self;
    static char to_b[64], to_a[64], to_self[64];
    redislock *lk;
    (void)state;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&self, 0, sizeof self);
    start(&a);
    start(&b);
    start(&self);
    snprintf(to_b, sizeof to_b, "MOVED %d 127.0.0.1:%d", JOB_SLOT, b.port);
    snprintf(to_a, sizeof to_a, "ASK %d 127.0.0.1:%d", JOB_SLOT, a.port);
    set_error(&a, to_b, -1);
    set_error(&b, to_a, -1);
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EPROTO);
    print_message("      %s (%d + %d calls)\n", redislock_errmsg(lk), get(&a.scripts), get(&b.scripts));
    assert_non_null(strstr(redislock_errmsg(lk), "redirect loop"));
    /* 17 sends of the acquire, then 17 of the release that gives back what
     * an acquire without an answer may have taken */
    assert_true(get(&a.scripts) + get(&b.scripts) <= 2 * 17);
    snprintf(to_self, sizeof to_self, "MOVED %d 127.0.0.1:%d", JOB_SLOT, self.port);
    set_error(&self, to_self, -1);
    lk = tf_lock(client_of(&self, 1000), "job", 5000);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EPROTO);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_int_equal(get(&self.scripts), 2); /* the acquire, and the give-back release */
}

/* A node that closes the connection under a BLPOP: the waiter asks again
 * (a round) and waits again, and gets the lock when it is free. */
static void test_fake_node_closes_under_blpop(void **state)
{
    static fake a;
    redislock *lk;
    (void)state;
    memset(&a, 0, sizeof a);
    start(&a);
    set_reply(&a, BUSY);   /* held by another */
    set(&a.close_blpop, 1);
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    {
        tf_waiter *w = tf_waiter_start(lk, 3000);
        int i;
        for (i = 0; i < 200 && get(&a.blpops) < 2; i++)
            tu_sleep_ms(5);
        assert_true(get(&a.blpops) >= 2); /* closed under the first, waited again */
        set_reply(&a, TAKEN);
        tf_waiter_await(w, 5000);
        tf_waiter_assert_ok(w);
        print_message("      %d BLPOPs, %d script calls\n", get(&a.blpops), get(&a.scripts));
    }
}

/* NOSCRIPT on a node: the same call as EVAL there. */
static void test_fake_noscript_is_answered_with_eval(void **state)
{
    static fake a;
    redislock *lk;
    (void)state;
    memset(&a, 0, sizeof a);
    start(&a);
    set(&a.noscript, 1);
    set_reply(&a, TAKEN);
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(get(&a.evals), 1);
    assert_int_equal(get(&a.scripts), 2);
}

/* The release of a lock (valid 300 ms) whose node answers error until
 * the end: its first back-off or redirect pause ends 30 ms past the
 * lock's validity (the thread ran late), so that the release finds no
 * time left to send the call again.  The lock is reported lost at its
 * expiry (ENOTHELD, LOST_EXPIRED, not held), as when a TRYAGAIN is
 * answered last; neither held nor released.  Seen in CI: test_cluster's
 * slot held open under a release ended EIO at 988 ms. */
/* A lock of a (command timeout timeout_ms) taken, then every call answered
 * error, and the sleeps wrapped (on_time undoes it at the end). */
static redislock *late_setup(fake *a, int timeout_ms, int64_t expire_ms, const char *error)
{
    redislock *lk;
    memset(a, 0, sizeof *a);
    start(a);
    set_reply(a, TAKEN);
    lk = tf_lock(client_of(a, timeout_ms), "job", expire_ms);
    assert_rl_ok(redislock_acquire(lk, 0));
    set_error(a, error, -1);
    tf_defer(on_time, NULL);
    return lk;
}

static void release_runs_out_late(const char *error)
{
    static fake a;
    redislock *lk = late_setup(&a, 1000, 300, error);
    int64_t t0, took;
    __atomic_store_n(&late_until_us, redislock__expiry(lk) + 30000, __ATOMIC_SEQ_CST);
    t0 = tu_now_ms();
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    took = tu_now_ms() - t0;
    print_message("      %s (%lld ms, %d calls)\n", redislock_errmsg(lk), (long long)took,
                  get(&a.scripts));
    assert_int_equal(redislock_lost_reason(lk), REDISLOCK_LOST_EXPIRED);
    assert_false(redislock_held(lk));
    assert_non_null(strstr(redislock_errmsg(lk), "validity ran out"));
    assert_true(took < TU_MS(1000));
}

static void test_fake_release_runs_out_after_a_tryagain(void **state)
{
    (void)state;
    release_runs_out_late("TRYAGAIN Multiple keys request during rehashing of slot");
}

/* READONLY: the node became a replica (a failover); the call goes to the
 * node the map names after a pause, here the same one again. */
static void test_fake_release_runs_out_after_a_readonly(void **state)
{
    (void)state;
    release_runs_out_late("READONLY You can't write against a read only replica.");
}

/* The same late thread under a release of a lock without expiry: the
 * deadline that ran out is the command timeout, not a validity, so the
 * release fails and says nothing about the lock: EIO after a TRYAGAIN,
 * ECLUSTERDOWN after a CLUSTERDOWN (under valgrind the pause once ended
 * past the limit by itself, and the CLUSTERDOWN came back as EIO). */
static void release_late_without_expiry(const char *error, int want)
{
    static fake a;
    redislock *lk = late_setup(&a, 300, 0, error);
    __atomic_store_n(&late_until_us, redislock__now_us() + 330000, __ATOMIC_SEQ_CST);
    assert_rl_err(redislock_release(lk), want);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_non_null(strstr(redislock_errmsg(lk), error));
    assert_int_equal(redislock_lost_reason(lk), 0);
}

static void test_fake_release_without_expiry_runs_out_of_its_timeout(void **state)
{
    (void)state;
    release_late_without_expiry("TRYAGAIN Multiple keys request during rehashing of slot",
                                REDISLOCK_EIO);
}

static void test_fake_release_late_after_clusterdown_is_clusterdown(void **state)
{
    (void)state;
    release_late_without_expiry("CLUSTERDOWN The cluster is down", REDISLOCK_ECLUSTERDOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fake_ask_sends_asking_with_the_call, tf_teardown),
        cmocka_unit_test_teardown(test_fake_moved_patches_the_slot_and_refreshes_once,
                                  tf_teardown),
        cmocka_unit_test_teardown(test_fake_tryagain_three_times_then_ok, tf_teardown),
        cmocka_unit_test_teardown(test_fake_clusterdown_until_the_deadline, tf_teardown),
        cmocka_unit_test_teardown(test_fake_redirect_loop_and_moved_to_itself, tf_teardown),
        cmocka_unit_test_teardown(test_fake_node_closes_under_blpop, tf_teardown),
        cmocka_unit_test_teardown(test_fake_noscript_is_answered_with_eval, tf_teardown),
        cmocka_unit_test_teardown(test_fake_release_runs_out_after_a_tryagain, tf_teardown),
        cmocka_unit_test_teardown(test_fake_release_runs_out_after_a_readonly, tf_teardown),
        cmocka_unit_test_teardown(test_fake_release_without_expiry_runs_out_of_its_timeout,
                                  tf_teardown),
        cmocka_unit_test_teardown(test_fake_release_late_after_clusterdown_is_clusterdown,
                                  tf_teardown),
    };
    return cmocka_run_group_tests_name("cluster_fake", tests, NULL, NULL);
}
