/* Fault injection on the wire, where a real server cannot do it on demand:
 * recv() and send() are wrapped at link time (-Wl,--wrap=recv,--wrap=send;
 * the library's own objects are linked statically, hiredis and the harness
 * are not affected) to move replies and commands one byte at a time, to
 * fail spuriously with EAGAIN and EINTR, to reset the connection
 * (ECONNRESET) or close it (EOF) in the middle of a reply, after the server
 * has executed the command, and to break it (EPIPE) in the middle of a
 * command, which the server then never executes.  Everything else is a
 * real redis-server.  The same faults under TLS (rediss://, when built
 * with OpenSSL): lib/tls.c's BIO calls the same recv() and send(), so
 * OpenSSL meets the short reads and writes, the spurious EAGAIN and EINTR,
 * and a connection that ends inside a TLS record. */
#include "internal.h"
#include "faults.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);

enum { PASS, ONE_BYTE, FLAKY, CUT, SEND_ONE_BYTE, SEND_FLAKY, SEND_CUT };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int mode = PASS;
static long calls, injected;
static size_t cut_at, delivered;
static int cut_eof, cut_done;

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t r;
    pthread_mutex_lock(&mu);
    calls++;
    switch (mode) {
    case ONE_BYTE:
        if (len > 1) {
            len = 1;
            injected++;
        }
        break;
    case FLAKY:
        if (calls % 2) {
            errno = calls % 4 == 1 ? EINTR : EAGAIN;
            injected++;
            pthread_mutex_unlock(&mu);
            return -1;
        }
        break;
    case CUT:
        if (cut_done)
            break;
        if (delivered >= cut_at) {
            if (cut_at == 0) {
                /* the reply has arrived (the server ran the command) but
                 * the connection fails before any of it is read */
                struct pollfd p = { fd, POLLIN, 0 };
                poll(&p, 1, 2000);
            }
            cut_done = 1;
            injected++;
            pthread_mutex_unlock(&mu);
            if (cut_eof)
                return 0;
            errno = ECONNRESET;
            return -1;
        }
        if (len > cut_at - delivered)
            len = cut_at - delivered;
        r = __real_recv(fd, buf, len, flags);
        if (r > 0)
            delivered += (size_t)r;
        pthread_mutex_unlock(&mu);
        return r;
    }
    pthread_mutex_unlock(&mu);
    return __real_recv(fd, buf, len, flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    pthread_mutex_lock(&mu);
    calls++;
    switch (mode) {
    case SEND_ONE_BYTE:
        if (len > 1) {
            len = 1;
            injected++;
        }
        break;
    case SEND_FLAKY:
        if (calls % 2) {
            errno = calls % 4 == 1 ? EINTR : EAGAIN;
            injected++;
            pthread_mutex_unlock(&mu);
            return -1;
        }
        break;
    case SEND_CUT:
        if (cut_done)
            break;
        if (delivered >= cut_at) {
            cut_done = 1;
            injected++;
            pthread_mutex_unlock(&mu);
            errno = EPIPE;
            return -1;
        }
        if (len > cut_at - delivered)
            len = cut_at - delivered;
        {
            ssize_t r = __real_send(fd, buf, len, flags);
            if (r > 0)
                delivered += (size_t)r;
            pthread_mutex_unlock(&mu);
            return r;
        }
    }
    pthread_mutex_unlock(&mu);
    return __real_send(fd, buf, len, flags);
}

static void set_mode(int m)
{
    pthread_mutex_lock(&mu);
    mode = m;
    calls = 0;
    pthread_mutex_unlock(&mu);
}

/* The next reply stream read fails after n bytes (reset, or EOF). */
static void arm_cut(size_t n, int eof)
{
    pthread_mutex_lock(&mu);
    mode = CUT;
    cut_at = n;
    delivered = 0;
    cut_eof = eof;
    cut_done = 0;
    pthread_mutex_unlock(&mu);
}

/* The next command sent breaks after n bytes (EPIPE). */
static void arm_send_cut(size_t n)
{
    arm_cut(n, 0);
    pthread_mutex_lock(&mu);
    mode = SEND_CUT;
    pthread_mutex_unlock(&mu);
}

static int cut_happened(void)
{
    int d;
    pthread_mutex_lock(&mu);
    d = cut_done;
    pthread_mutex_unlock(&mu);
    return d;
}

static int setup(void **state)
{
    set_mode(PASS);
    return tu_setup(state);
}

/* A server with a TLS port and a client on it, for the same faults under
 * TLS (skipped without OpenSSL or the openssl command). */
static ts_server tls_srv;
static redislock_client *tls_cl;

static int group_setup(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    int rc = tu_group_setup(state);
    if (rc || !tu_srv.pid || !redislock_tls_version())
        return rc;
    tls_srv.tls = 1;
    if ((rc = ts_start(&tls_srv)) != 0)
        return rc == 77 ? 0 : -1;
    o.tls_ca_file = ts_cert("ca.crt");
    return redislock_client_new(&tls_cl, tls_srv.tls_url, &o) ? -1 : 0;
}

/* Without TLS (a build without OpenSSL, or no openssl command) the TLS
 * tests skip themselves: a skip() in a setup function is an error to
 * cmocka 1.1. */
static int tls_setup(void **state)
{
    (void)state;
    set_mode(PASS);
    if (tls_cl)
        ts_flushall(&tls_srv);
    return 0;
}

#define NEED_TLS()     \
    do {               \
        if (!tls_cl)   \
            skip();    \
    } while (0)

static int group_teardown(void **state)
{
    faults_summary("test_faults_wire");
    printf("test_faults_wire: %ld recv()/send() failures or short transfers injected\n",
           injected);
    redislock_client_free(tls_cl);
    tls_cl = NULL;
    ts_stop(&tls_srv);
    return tu_group_teardown(state);
}

/* A whole lock life with short reads (or spurious EAGAIN/EINTR) on every
 * recv(): acquire, a waiter's CLIENT ID + BLPOP and its wake-up, query,
 * extend, release, reset_all over a SCAN page of 100 keys. */
static void lifecycle_on(redislock_client *cl, ts_server *srv)
{
    redislock *holder = tf_lock(cl, "w", 10000), *lk = tf_lock(cl, "w", 10000);
    redislock_info info;
    tf_waiter *w;
    uint64_t count = 0;
    int64_t released;

    assert_rl_ok(redislock_acquire(holder, 0));
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EBUSY);
    w = tf_waiter_start(lk, 5000);
    ts_await_blocked(srv, 1);
    assert_rl_ok(redislock_query(holder, &info));
    assert_int_equal(info.mine, 1);
    assert_rl_ok(redislock_extend(holder, 20000));
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
    assert_true(w->got >= released && w->got < released + TU_MS(1500));
    assert_rl_ok(redislock_release(lk));
    tf_take_locks(cl, "wire-", 100);
    assert_rl_ok(redislock_reset_all(cl, NULL, &count));
    assert_int_equal(count, 100);
}

static void lifecycle(void)
{
    lifecycle_on(tu_cl, &tu_srv);
}

static void test_wire_one_byte_reads_lock_life_works(void **state)
{
    long n;
    FAULT("every recv() returns at most one byte");
    set_mode(ONE_BYTE);
    lifecycle();
    pthread_mutex_lock(&mu);
    n = calls;
    pthread_mutex_unlock(&mu);
    set_mode(PASS);
    print_message("      %ld one-byte reads\n", n);
    assert_true(n > 1000); /* the SCAN page alone is over 1500 bytes */
}

static void test_wire_one_byte_writes_lock_life_works(void **state)
{
    long n;
    FAULT("every send() takes at most one byte");
    set_mode(SEND_ONE_BYTE);
    lifecycle();
    pthread_mutex_lock(&mu);
    n = calls;
    pthread_mutex_unlock(&mu);
    set_mode(PASS);
    print_message("      %ld one-byte writes\n", n);
    assert_true(n > 1000);
}

static void test_wire_send_spurious_eagain_eintr_lock_life_works(void **state)
{
    FAULT("every other send() fails with EINTR or EAGAIN");
    set_mode(SEND_FLAKY);
    lifecycle();
    set_mode(PASS);
}

/* A command broken off on its way out (EPIPE after n bytes of it): the
 * caller gets an I/O error, the server never runs the half command, and
 * the next call works.  Acquire retries on a new connection and takes the
 * lock; the others fail and change nothing. */
static void test_wire_command_cut_on_its_way_out_never_runs(void **state)
{
    static const size_t at[] = { 0, 1, 10, 60 };
    redislock *lk = tf_lock(tu_cl, "sc", 0), *other = tf_lock(tu_cl, "sc", 0);
    redislock_info info;
    size_t i;
    int rc;

    /* every script loaded: EVALSHA, not EVAL, is what gets cut */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_query(lk, &info));
    assert_rl_ok(redislock_release(lk));
    print_message("      fault: EPIPE after 0, 1, 10, 60 bytes of each command\n");
    for (i = 0; i < sizeof at / sizeof at[0]; i++) {
        arm_send_cut(at[i]);
        rc = redislock_acquire(lk, 0);
        assert_true(cut_happened());
        faults_run++;
        set_mode(PASS);
        if (rc != REDISLOCK_OK)
            fail_msg("acquire after a cut command: %s: %s", redislock_err_name(rc),
                     redislock_last_error());

        arm_send_cut(at[i]);
        rc = redislock_query(lk, &info);
        assert_true(cut_happened());
        faults_run++;
        set_mode(PASS);
        assert_rl_err(rc, REDISLOCK_EIO);
        assert_msg_has(redislock_last_error(), strerror(EPIPE));

        arm_send_cut(at[i]);
        rc = redislock_release(lk);
        assert_true(cut_happened());
        faults_run++;
        set_mode(PASS);
        assert_rl_err(rc, REDISLOCK_EIO);
        assert_int_equal(redislock_held(lk), 1);

        arm_send_cut(at[i]);
        rc = redislock_reset(tu_cl, "sc");
        assert_true(cut_happened());
        faults_run++;
        set_mode(PASS);
        assert_rl_err(rc, REDISLOCK_EIO);

        /* none of the three ran */
        assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
        assert_rl_ok(redislock_query(lk, &info));
        assert_int_equal(info.mine, 1);
        assert_rl_ok(redislock_release(lk));
    }
}

static void test_wire_recv_spurious_eagain_eintr_lock_life_works(void **state)
{
    long n;
    FAULT("every other recv() fails with EINTR or EAGAIN");
    set_mode(FLAKY);
    lifecycle();
    pthread_mutex_lock(&mu);
    n = calls;
    pthread_mutex_unlock(&mu);
    set_mode(PASS);
    assert_true(n >= 20);
}

/* The reply to each operation is cut after n bytes (n = 0, 1, 3: before
 * it, after its type byte, inside it; the shortest reply, ":0\r\n", has
 * 4), by a reset or an EOF.  The server has executed the command; the caller gets an I/O error
 * (or, for acquire, the recovered result), and the next call sees the
 * server's state: nothing is lost, doubled or corrupted. */
static void cut_case(size_t n, int eof)
{
    redislock *lk = tf_lock(tu_cl, "cut", 10000), *other = tf_lock(tu_cl, "cut", 0);
    redislock_info info;
    uint64_t count = 0;
    int rc;

    /* every script loaded, so that each call below runs at once (a cut
     * NOSCRIPT reply is test_wire_cut_noscript_reply_script_never_ran's) */
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_extend(lk, 0));
    assert_rl_ok(redislock_query(lk, &info));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(redislock_reset(tu_cl, "cut"), 0);
    assert_rl_ok(redislock_reset_all(tu_cl, "nobody", &count));

    /* acquire: it retries on a new connection; the server answers "this id
     * holds it", which, after a lost reply, is the lock we just took */
    arm_cut(n, eof);
    rc = redislock_acquire(lk, 0);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    if (rc != REDISLOCK_OK)
        fail_msg("acquire after a cut reply: %s: %s", redislock_err_name(rc),
                 redislock_last_error());
    assert_int_equal(redislock_held(lk), 1);
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);

    arm_cut(n, eof);
    rc = redislock_extend(lk, 30000);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_true(ts_int(&tu_srv, "PTTL lock:cut") > 10000); /* it ran */

    arm_cut(n, eof);
    rc = redislock_query(lk, &info);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);

    arm_cut(n, eof);
    rc = redislock_release(lk);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_true(strstr(redislock_last_error(),
                       eof ? "connection closed" : strerror(ECONNRESET)) != NULL);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:cut"), 0); /* it ran */
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_int_equal(redislock_held(lk), 0);

    assert_rl_ok(redislock_acquire(other, 0));
    arm_cut(n, eof);
    rc = redislock_reset(tu_cl, "cut");
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_int_equal(redislock_reset(tu_cl, "cut"), 0); /* it ran */
    assert_rl_err(redislock_release(other), REDISLOCK_ENOTHELD);

    assert_rl_ok(redislock_acquire(other, 0));
    arm_cut(n, eof);
    rc = redislock_reset_all(tu_cl, NULL, &count);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_rl_ok(redislock_reset_all(tu_cl, NULL, &count));
    assert_true(count <= 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:cut"), 0);

}

static void test_wire_reset_mid_reply_next_call_sees_server_state(void **state)
{
    static const size_t at[] = { 0, 1, 3 };
    size_t i;
    print_message("      fault: ECONNRESET after 0, 1, 3 bytes of each reply\n");
    for (i = 0; i < sizeof at / sizeof at[0]; i++) {
        ts_flushall(&tu_srv);
        cut_case(at[i], 0);
    }
}

/* A query's status reply cut by a reset inside the owner id (about 45
 * bytes): an I/O error each time, and the next query reads it whole. */
static void test_wire_reset_inside_owner_id_query_fails_cleanly(void **state)
{
    redislock *lk = tf_lock(tu_cl, "q", 0);
    redislock_info info;
    size_t i;
    assert_rl_ok(redislock_acquire(lk, 0));
    for (i = 5; i < 45; i += 8) {
        arm_cut(i, 0);
        assert_rl_err(redislock_query(lk, &info), REDISLOCK_EIO);
        assert_true(cut_happened());
        faults_run++;
        set_mode(PASS);
    }
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    assert_rl_ok(redislock_release(lk));
}

static void test_wire_eof_mid_reply_next_call_sees_server_state(void **state)
{
    static const size_t at[] = { 0, 2 };
    size_t i;
    print_message("      fault: EOF after 0, 2 bytes of each reply\n");
    for (i = 0; i < sizeof at / sizeof at[0]; i++) {
        ts_flushall(&tu_srv);
        cut_case(at[i], 1);
    }
}

/* The script cache is flushed and the NOSCRIPT reply is cut: the call
 * fails with an I/O error (the script never ran: nothing to undo), and the
 * next call loads the script and works. */
static void test_wire_cut_noscript_reply_script_never_ran(void **state)
{
    redislock *lk = tf_lock(tu_cl, "ns", 0);
    int rc;

    FAULT("connection reset in a NOSCRIPT reply");
    freeReplyObject(ts_cmd(&tu_srv, "SCRIPT FLUSH"));
    arm_cut(5, 0); /* inside "-NOSCRIPT ..." */
    rc = redislock_reset(tu_cl, "ns");
    assert_true(cut_happened());
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_rl_ok(redislock_acquire(lk, 0));
    freeReplyObject(ts_cmd(&tu_srv, "SCRIPT FLUSH"));
    arm_cut(0, 0);
    rc = redislock_release(lk);
    assert_true(cut_happened());
    set_mode(PASS);
    assert_rl_err(rc, REDISLOCK_EIO);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:ns"), 1); /* not run */
    assert_int_equal(redislock_held(lk), 1);
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:ns"), 0);
}

/* A waiter's BLPOP reply (its wake-up) is cut by a reset: the waiter
 * reconnects and still takes the lock (the wake-up it lost was the
 * release's, and the lock is free), within its deadline. */
static void cut_wakeup(faults_scene *s)
{
    tu_sleep_ms(20); /* CLIENT ID's reply has been read */
    arm_cut(4, 0);
    s->released = tu_now_ms();
    /* released from the harness's connection (hiredis: not wrapped), so
     * that the next reply the library reads is the waiter's wake-up */
    assert_int_equal(ts_int(s->srv, "DEL lock:wk"), 1);
    assert_int_equal(ts_int(s->srv, "LPUSH lock-signal:wk 1"), 1);
}

static void check_cut_and_wakeup_used(faults_scene *s)
{
    assert_true(cut_happened());
    set_mode(PASS);
    assert_int_equal(ts_int(s->srv, "EXISTS lock-signal:wk"), 0);
}

static const faults_case test_wire_reset_in_wakeup_waiter_still_takes_lock = {
    .fault = "ECONNRESET in the middle of a waiter's wake-up",
    .servers = &tu_srv, .nservers = 1, .lock = "wk",
    .timeout_ms = 5000, .await_blocked = 1,
    .inject = cut_wakeup,
    .want = REDISLOCK_OK, .woken_within_ms = 2500,
    .check = check_cut_and_wakeup_used,
};

/* ------------------------------------------------------------ under TLS */

/* The lock life under a fault on a TLS connection; new connections (the
 * waiter's, its CLIENT UNBLOCK helper's) make their handshakes under it
 * too.  Returns the recv()/send() calls made. */
static long tls_lifecycle(int m)
{
    long n;
    NEED_TLS();
    set_mode(m);
    lifecycle_on(tls_cl, &tls_srv);
    pthread_mutex_lock(&mu);
    n = calls;
    pthread_mutex_unlock(&mu);
    set_mode(PASS);
    return n;
}

static void test_wire_tls_one_byte_reads_lock_life_works(void **state)
{
    long n;
    FAULT("every recv() under TLS returns at most one byte");
    n = tls_lifecycle(ONE_BYTE);
    print_message("      %ld one-byte reads\n", n);
    assert_true(n > 1000);
}

static void test_wire_tls_one_byte_writes_lock_life_works(void **state)
{
    long n;
    FAULT("every send() under TLS takes at most one byte");
    n = tls_lifecycle(SEND_ONE_BYTE);
    print_message("      %ld one-byte writes\n", n);
    assert_true(n > 1000);
}

static void test_wire_tls_spurious_eagain_eintr_lock_life_works(void **state)
{
    FAULT("every other recv() under TLS fails with EINTR or EAGAIN");
    assert_true(tls_lifecycle(FLAKY) >= 20);
    FAULT("every other send() under TLS fails with EINTR or EAGAIN");
    assert_true(tls_lifecycle(SEND_FLAKY) >= 20);
}

/* A TLS connection that ends (EOF, or a reset) inside the record of a
 * reply: an I/O error naming the cause, the server's state intact, and the
 * next call works on a new connection. */
static void test_wire_tls_cut_inside_a_record_is_eio(void **state)
{
    static const size_t at[] = { 0, 3, 10 }; /* before, in the header, in the body */
    redislock *lk;
    redislock_info info;
    size_t i;
    int eof;
    NEED_TLS();
    lk = tf_lock(tls_cl, "tc", 0);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_query(lk, &info));
    for (eof = 0; eof < 2; eof++)
        for (i = 0; i < sizeof at / sizeof at[0]; i++) {
            arm_cut(at[i], eof);
            assert_rl_err(redislock_query(lk, &info), REDISLOCK_EIO);
            assert_true(cut_happened());
            faults_run++;
            set_mode(PASS);
            assert_msg_has(redislock_last_error(),
                           eof ? "connection closed" : strerror(ECONNRESET));
            assert_rl_ok(redislock_query(lk, &info));
            assert_int_equal(info.mine, 1);
        }
    /* a command broken off on its way out never runs */
    arm_send_cut(10);
    assert_rl_err(redislock_release(lk), REDISLOCK_EIO);
    assert_true(cut_happened());
    faults_run++;
    set_mode(PASS);
    assert_int_equal(ts_int(&tls_srv, "EXISTS lock:tc"), 1);
    assert_rl_ok(redislock_release(lk));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_teardown)
#define TLS_TEST(f) cmocka_unit_test_setup_teardown(f, tls_setup, tf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_wire_one_byte_reads_lock_life_works),
        TEST(test_wire_recv_spurious_eagain_eintr_lock_life_works),
        TEST(test_wire_one_byte_writes_lock_life_works),
        TEST(test_wire_send_spurious_eagain_eintr_lock_life_works),
        TEST(test_wire_command_cut_on_its_way_out_never_runs),
        TEST(test_wire_reset_mid_reply_next_call_sees_server_state),
        TEST(test_wire_reset_inside_owner_id_query_fails_cleanly),
        TEST(test_wire_eof_mid_reply_next_call_sees_server_state),
        TEST(test_wire_cut_noscript_reply_script_never_ran),
        FAULTS_CASE(test_wire_reset_in_wakeup_waiter_still_takes_lock, setup, tf_teardown),
        TLS_TEST(test_wire_tls_one_byte_reads_lock_life_works),
        TLS_TEST(test_wire_tls_one_byte_writes_lock_life_works),
        TLS_TEST(test_wire_tls_spurious_eagain_eintr_lock_life_works),
        TLS_TEST(test_wire_tls_cut_inside_a_record_is_eio),
    };
    return cmocka_run_group_tests_name("faults_wire", tests, group_setup,
                                       group_teardown);
}
