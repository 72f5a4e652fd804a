/* redislock_client_stats() against a real server: each acquire result, a
 * wait that ended in a grant, holds, a lock lost by reason, renewals,
 * reconnects and failed connects; and examples/metrics serving them on
 * /metrics over HTTP. */
#include "fixtures.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tf_teardown)

static redislock_stats snap(redislock_client *c)
{
    redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
    assert_rl_ok(redislock_client_stats(c, &st));
    return st;
}

/* The sum of buckets 0..last (durations of at most 2^last ms). */
static uint64_t up_to(const uint64_t *buckets, size_t last)
{
    uint64_t n = 0;
    size_t i;
    for (i = 0; i <= last; i++)
        n += buckets[i];
    return n;
}

/* Every result counted once; only the calls that waited in the wait
 * histogram (with at least the time they waited); a hold from the acquire
 * to the release. */
static void test_stats_acquire_results_waits_and_holds(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *a = tf_lock(c, "s", 0), *b = tf_lock(c, "s", 0);
    redislock_stats st;
    tf_waiter *w;
    int64_t t0;

    assert_rl_ok(redislock_acquire(a, -1));
    assert_rl_err(redislock_acquire(a, -1), REDISLOCK_EALREADY);
    assert_rl_err(redislock_try_acquire(b), REDISLOCK_EBUSY);
    assert_rl_err(redislock_acquire(b, 150), REDISLOCK_ETIMEDOUT);
    assert_rl_ok(redislock_cancel(b));
    assert_rl_err(redislock_acquire(b, -1), REDISLOCK_ECANCELED); /* at once, no wait */
    assert_rl_err(redislock_acquire(b, -5), REDISLOCK_EINVAL);   /* not counted */
    st = snap(c);
    assert_int_equal(st.acquired, 1);
    assert_int_equal(st.already, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.cancels, 1);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.waits, 1);
    assert_true(st.wait_us >= 150000);
    assert_int_equal(up_to(st.wait_buckets, 7), 0); /* not within 128 ms */
    assert_int_equal(st.holds, 0);
    assert_true(st.connects >= 1 && st.connections >= 1);

    /* b waits and gets it when a releases 200 ms later */
    w = tf_waiter_start(b, 5000);
    ts_await_blocked(&tu_srv, 1);
    t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 200)
        tu_sleep_ms(10);
    assert_rl_ok(redislock_release(a));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
    assert_rl_ok(redislock_release(b));
    assert_rl_err(redislock_release(b), REDISLOCK_ENOTHELD); /* no second hold */
    st = snap(c);
    assert_int_equal(st.acquired, 2);
    assert_int_equal(st.waits, 2);
    assert_int_equal(up_to(st.wait_buckets, 7), 0);
    assert_int_equal(st.holds, 2);
    assert_int_equal(up_to(st.hold_buckets, REDISLOCK_STATS_BUCKETS - 1), 2);
    /* a's lasted 150 + 200 ms at least: not within 256 ms (b's, released at
     * once, may be) */
    assert_true(up_to(st.hold_buckets, 8) <= 1);
    assert_true(st.hold_us >= 350000);
}

static int lost_calls;
static void on_lost(redislock *lk, int reason, void *ud)
{
    (void)lk, (void)ud;
    __atomic_store_n(&lost_calls, reason, __ATOMIC_SEQ_CST);
}

/* A renewed lock whose key is deleted: lost, by reason "gone", and its
 * hold ends then; the renewals and their round trips were counted, and
 * nothing is renewed any more. */
static void test_stats_lost_lock_and_renewals(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_stats st;
    redislock *lk;
    int64_t t0;

    o.expire_ms = 3000;
    o.auto_renew = 1;
    o.renew_interval_ms = 50;
    o.on_lost = on_lost;
    lk = tf_lock_opts(c, "renewed", &o);
    lost_calls = 0;
    assert_rl_ok(redislock_acquire(lk, 0));
    st = snap(c);
    assert_int_equal(st.renewing, 1);
    for (t0 = tu_now_ms(); snap(c).renewals < 2; tu_sleep_ms(10))
        if (tu_now_ms() - t0 > TU_MS(5000))
            fail_msg("no renewal in 5 s");
    assert_int_equal(ts_int(&tu_srv, "DEL lock:renewed"), 1);
    for (t0 = tu_now_ms(); !__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST); tu_sleep_ms(10))
        if (tu_now_ms() - t0 > TU_MS(5000))
            fail_msg("the lost lock was not reported in 5 s");
    assert_int_equal(lost_calls, REDISLOCK_LOST_GONE);
    st = snap(c);
    assert_int_equal(st.lost[REDISLOCK_LOST_GONE], 1);
    assert_int_equal(st.lost[REDISLOCK_LOST_EXPIRED] + st.lost[REDISLOCK_LOST_OTHER_OWNER], 0);
    assert_int_equal(st.holds, 1);
    assert_true(st.renewals >= 2 && st.renewal_round_trips >= st.renewals);
    assert_int_equal(st.renewing, 0);
    /* the release after the loss ends no second hold */
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_int_equal(snap(c).holds, 1);
}

/* Connections the server killed are replaced: a reconnect; a server that
 * is not there: failed connects, and an error result. */
static void test_stats_reconnects_and_failed_connects(void **state)
{
    redislock_client *c = tf_client(tu_srv.url), *down;
    redislock *lk = tf_lock(c, "r", 0);
    redislock_stats st;
    char url[64];
    int port;

    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    st = snap(c);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reconnects, 0);
    assert_true(ts_int(&tu_srv, "CLIENT KILL TYPE normal") >= 1);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    st = snap(c);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.connect_failures, 0);

    {   /* a port nothing listens on */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        port = ntohs(sa.sin_port);
        close(fd);
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    down = tf_client(url);
    lk = tf_lock(down, "r", 0);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_EIO);
    st = snap(down);
    assert_true(st.connect_failures >= 1);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.connections, 0);
}

/* ---------------------------------------------------- examples/metrics */

static pid_t example_pid;

static void kill_example(void *arg)
{
    (void)arg;
    if (example_pid > 0) {
        kill(example_pid, SIGKILL);
        waitpid(example_pid, NULL, 0);
        example_pid = 0;
    }
}

/* An HTTP GET of path on 127.0.0.1:port: the whole answer in out. */
static void http_get(int port, const char *path, char *out, size_t size)
{
    struct sockaddr_in sa;
    char req[256];
    size_t n = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n + 1 < size && (r = read(fd, out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
}

/* Its workers contend; GET /metrics answers 200 with the text (its own
 * label in every sample, acquisitions and waits that grow), another path
 * 404; SIGTERM ends it with status 0 (the waiting workers cancelled). */
static void test_stats_example_serves_metrics(void **state)
{
    static char body[65536];
    char path[4096], line[256], *p;
    const char *top = getenv("top_builddir");
    int fd[2], port = 0, st;
    ssize_t n;
    int64_t t0;
    unsigned long long acquired = 0;

    snprintf(path, sizeof path, "%s/examples/metrics", top && *top ? top : ".");
    assert_int_equal(pipe(fd), 0);
    tf_defer(kill_example, NULL);
    example_pid = fork();
    assert_true(example_pid >= 0);
    if (example_pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(path, path, tu_srv.url, "0", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    n = read(fd[0], line, sizeof line - 1); /* "listening on http://127.0.0.1:PORT/metrics" */
    close(fd[0]);
    assert_true(n > 0);
    line[n] = '\0';
    p = strstr(line, "127.0.0.1:");
    assert_non_null(p);
    port = atoi(p + strlen("127.0.0.1:"));
    assert_true(port > 0);
    for (t0 = tu_now_ms(); acquired < 5; tu_sleep_ms(50)) {
        http_get(port, "/metrics", body, sizeof body);
        p = strstr(body, "redislock_acquires_total{example=\"metrics\",result=\"acquired\"} ");
        if (p)
            acquired = strtoull(p + strlen("redislock_acquires_total{example=\"metrics\","
                                           "result=\"acquired\"} "),
                                NULL, 10);
        if (tu_now_ms() - t0 > TU_MS(10000))
            fail_msg("no 5 acquisitions in 10 s; the last answer:\n%s", body);
    }
    assert_memory_equal(body, "HTTP/1.0 200 OK\r\n", 17);
    assert_non_null(strstr(body, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(body, "# TYPE redislock_acquire_wait_seconds histogram\n"));
    assert_non_null(strstr(body, "redislock_acquire_wait_seconds_count{example=\"metrics\"} "));
    assert_non_null(strstr(body, "redislock_hold_seconds_bucket{example=\"metrics\",le=\"+Inf\"} "));
    http_get(port, "/other", body, sizeof body);
    assert_memory_equal(body, "HTTP/1.0 404 Not Found\r\n", 24);
    assert_int_equal(kill(example_pid, SIGTERM), 0);
    assert_int_equal(waitpid(example_pid, &st, 0), example_pid);
    example_pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_stats_acquire_results_waits_and_holds),
        TEST(test_stats_lost_lock_and_renewals),
        TEST(test_stats_reconnects_and_failed_connects),
        TEST(test_stats_example_serves_metrics),
    };
    return cmocka_run_group_tests_name("stats", tests, tu_group_setup, tu_group_teardown);
}
