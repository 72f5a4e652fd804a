/* redislock(1) --fencing and --max-hold (issue 17), through the real binary
 * against a real redis-server: COMMAND finds REDISLOCK_NAME and
 * REDISLOCK_OWNER always and REDISLOCK_TOKEN with --fencing (the token the
 * server's counter holds, larger each run; an inherited one is removed
 * without --fencing); past --max-hold COMMAND gets the lost signal, the tool
 * exits 75 after a COMMAND that still exits 0, and the lock is free at
 * once; usage errors. */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define URL tu_srv.url
#define SHOW "echo \"name=$REDISLOCK_NAME owner=$REDISLOCK_OWNER token=${REDISLOCK_TOKEN-unset}\""

static long long counter(const char *key)
{
    redisReply *r = ts_cmd(&tu_srv, "GET %s", key);
    long long v = -1;
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

static void test_tool_command_gets_name_owner_and_token(void **state)
{
    tool_proc p;
    char host[128], owner[300];
    unsigned long long t1, t2;
    (void)state;
    assert_int_equal(TP_RUN(&p, "-u", URL, "--fencing", "job", "-c", SHOW), 0);
    assert_int_equal(sscanf(p.out.buf, "name=job owner=%299s token=%llu", owner, &t1), 2);
    assert_int_equal(counter("lock-fence:job"), (long long)t1);
    /* the tool's default owner id: "redislock@<hostname>:" and random */
    assert_memory_equal(owner, "redislock@", 10);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    assert_memory_equal(owner + 10, host, strlen(host) > 8 ? 8 : strlen(host));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--fencing", "-i", "me-1", "job", "-c", SHOW), 0);
    assert_int_equal(sscanf(p.out.buf, "name=job owner=me-1 token=%llu", &t2), 1);
    assert_true(t2 > t1);
    /* without --fencing: no token, also when one was inherited */
    setenv("REDISLOCK_TOKEN", "12345", 1);
    assert_int_equal(TP_RUN(&p, "-u", URL, "-i", "me-2", "job", "-c", SHOW), 0);
    unsetenv("REDISLOCK_TOKEN");
    assert_string_equal(p.out.buf, "name=job owner=me-2 token=unset\n");
    assert_int_equal(counter("lock-fence:job"), (long long)t2);
}

static void test_tool_max_hold_sends_the_lost_signal_and_frees_the_lock(void **state)
{
    tool_proc p;
    char line[512];
    int64_t t0, ready, term;
    (void)state;
    t0 = tu_now_ms();
    TP_START(&p, "-u", URL, "-e", "5", "--max-hold", "0.5", "mh", "-c",
             "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    assert_string_equal(line, "ready");
    ready = tu_now_ms();
    assert_int_equal(tp_line(&p, 0, line, sizeof line, (int)TU_MS(5000)), 0);
    term = tu_now_ms();
    assert_string_equal(line, "got TERM");
    printf("# --max-hold 0.5: COMMAND got SIGTERM %lld ms after the tool started, "
           "%lld ms after COMMAND said it was ready\n",
           (long long)(term - t0), (long long)(term - ready));
    /* the lock was acquired after t0 and before "ready" (the start of a
     * tool from the build tree may take a while: libtool's wrapper) */
    assert_true(term - t0 >= 500);
    assert_true(term - ready <= 500 + TU_MS(500));
    /* COMMAND exited 0 after losing the lock: 75 */
    assert_int_equal(tp_finish(&p, (int)TU_MS(5000)), 75);
    assert_non_null(strstr(p.err.buf, "--max-hold"));
    /* released when COMMAND ended, not at the 5 s expiry */
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:mh"), 0);
    /* a COMMAND that ends in time is not touched */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--max-hold", "5", "mh", "true"), 0);
    assert_string_equal(p.err.buf, "");
}

static void test_tool_fencing_and_max_hold_usage(void **state)
{
    tool_proc p;
    (void)state;
    assert_int_equal(TP_RUN(&p, "-u", URL, "--max-hold", "soon", "x", "true"), 64);
    assert_true(tp_one_line(p.err.buf));
    assert_int_equal(TP_RUN(&p, "-u", URL, "--max-hold", "0", "x", "true"), 64);
    /* majority mode has no fencing tokens */
    assert_int_equal(TP_RUN(&p, "-u", "redis://127.0.0.1:1", "-u", "redis://127.0.0.1:2",
                            "-u", "redis://127.0.0.1:3", "--fencing", "x", "true"),
                     64);
    assert_true(tp_one_line(p.err.buf));
    assert_non_null(strstr(p.err.buf, "majority"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_tool_command_gets_name_owner_and_token),
        T(test_tool_max_hold_sends_the_lost_signal_and_frees_the_lock),
        T(test_tool_fencing_and_max_hold_usage),
    };
    return cmocka_run_group_tests_name("tool_fencing", tests, tu_group_setup,
                                       tu_group_teardown);
}
