/* Redis Cluster replies that a real cluster gives only at the wrong moment,
 * from scripted fake nodes (tests/harness/fakenode.c): -ASK (ASKING and the
 * call in one round trip, the map untouched), -MOVED (the slot patched, one
 * refresh), -TRYAGAIN three times, -CLUSTERDOWN until the deadline
 * (REDISLOCK_ECLUSTERDOWN), a redirect loop and a MOVED to the node itself
 * (errors), a node that closes the connection under a BLPOP, NOSCRIPT on
 * a node (EVAL there). */
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

static int is(const redisReply *req, const char *cmd)
{
    return req->elements > 0 && !strcasecmp(req->element[0]->str, cmd);
}

static void handler(void *ud, const redisReply *req, long n, tfn_out *out)
{
    fake *f = ud;
    int asking = f->last_was_asking;
    (void)n;
    f->last_was_asking = is(req, "ASKING");
    if (is(req, "CLUSTER")) {
        f->slots_asked++;
        tfn_reply(out, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                  f->owner_port ? f->owner_port : f->port);
    } else if (is(req, "ASKING")) {
        tfn_reply(out, "+OK\r\n");
    } else if (is(req, "EVALSHA") || is(req, "EVAL")) {
        int k = f->scripts++;
        f->asking_before_script += asking;
        if (is(req, "EVAL"))
            f->evals++;
        if (is(req, "EVALSHA") && f->noscript)
            tfn_reply(out, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
        else if (f->script_error && (f->errors < 0 || k < f->errors))
            tfn_reply(out, "-%s\r\n", f->script_error);
        else
            tfn_reply(out, "%s", f->script_reply ? f->script_reply : ":0\r\n");
    } else if (is(req, "CLIENT")) {
        tfn_reply(out, ":1\r\n");
    } else if (is(req, "BLPOP")) {
        if (f->blpops++ == 0 && f->close_blpop) {
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
    a.script_error = ask;
    a.errors = -1;
    b.script_reply = TAKEN;
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(b.scripts, 1);
    assert_int_equal(b.asking_before_script, 1);
    b.script_reply = ":0\r\n";
    assert_rl_ok(redislock_release(lk)); /* again to a (ASK), then b */
    assert_int_equal(a.scripts, 2);
    assert_int_equal(b.asking_before_script, 2);
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
    b.owner_port = b.port;
    snprintf(moved, sizeof moved, "MOVED %d 127.0.0.1:%d", JOB_SLOT, b.port);
    a.script_error = moved;
    a.errors = -1;
    b.script_reply = TAKEN;
    c = client_of(&a, 1000);
    lk = tf_lock(c, "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(a.scripts, 1);
    assert_int_equal(b.scripts, 1);
    asked = a.slots_asked + b.slots_asked;
    b.script_reply = ":0\r\n";
    for (i = 0; i < 5; i++) /* patched: straight to b */
        assert_rl_ok(redislock_release(lk));
    assert_int_equal(a.scripts, 1);
    tu_sleep_ms(250); /* the fold (200 ms) is over: the next call refreshes */
    assert_rl_ok(redislock_release(lk));
    print_message("      CLUSTER SLOTS asked %d time(s) before the MOVED, %d after\n", asked,
                  a.slots_asked + b.slots_asked - asked);
    assert_int_equal(a.slots_asked + b.slots_asked - asked, 1);
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
    a.script_error = "TRYAGAIN Multiple keys request during rehashing of slot";
    a.errors = 3;
    a.script_reply = TAKEN;
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(lk, 0));
    took = tu_now_ms() - t0;
    print_message("      acquired after %d tries in %lld ms\n", a.scripts, (long long)took);
    assert_int_equal(a.scripts, 4);
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
    a.script_error = "CLUSTERDOWN The cluster is down";
    a.errors = -1;
    lk = tf_lock(client_of(&a, 500), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_ECLUSTERDOWN);
    took = tu_now_ms() - t0;
    print_message("      %s (%lld ms, %d tries)\n", redislock_errmsg(lk), (long long)took,
                  a.scripts);
    assert_non_null(strstr(redislock_errmsg(lk), "CLUSTERDOWN"));
    assert_true(took >= 350 && took < TU_MS(1000));
    assert_true(a.scripts >= 3);
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
    a.script_error = to_b;
    a.errors = -1;
    b.script_error = to_a;
    b.errors = -1;
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EPROTO);
    print_message("      %s (%d + %d calls)\n", redislock_errmsg(lk), a.scripts, b.scripts);
    assert_non_null(strstr(redislock_errmsg(lk), "redirect loop"));
    /* 17 sends of the acquire, then 17 of the release that gives back what
     * an acquire without an answer may have taken */
    assert_true(a.scripts + b.scripts <= 2 * 17);
    snprintf(to_self, sizeof to_self, "MOVED %d 127.0.0.1:%d", JOB_SLOT, self.port);
    self.script_error = to_self;
    self.errors = -1;
    lk = tf_lock(client_of(&self, 1000), "job", 5000);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EPROTO);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_int_equal(self.scripts, 2); /* the acquire, and the give-back release */
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
    a.script_error = "";     /* unused */
    a.errors = 0;
    a.script_reply = BUSY;   /* held by another */
    a.close_blpop = 1;
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    {
        tf_waiter *w = tf_waiter_start(lk, 3000);
        int i;
        for (i = 0; i < 200 && a.blpops < 2; i++)
            tu_sleep_ms(5);
        assert_true(a.blpops >= 2); /* closed under the first, waited again */
        a.script_reply = TAKEN;
        tf_waiter_await(w, 5000);
        tf_waiter_assert_ok(w);
        print_message("      %d BLPOPs, %d script calls\n", a.blpops, a.scripts);
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
    a.noscript = 1;
    a.script_reply = TAKEN;
    lk = tf_lock(client_of(&a, 1000), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(a.evals, 1);
    assert_int_equal(a.scripts, 2);
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
    };
    return cmocka_run_group_tests_name("cluster_fake", tests, NULL, NULL);
}
