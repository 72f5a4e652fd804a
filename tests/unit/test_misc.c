/* Error codes, key layout, owner ids, version, quoting, allocator hooks,
 * the slices of a timed poll. */
#include "internal.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_misc_error_codes_distinct_and_named(void **state)
{
    int codes[] = {
#define XX(name, value, msg) REDISLOCK_##name,
        REDISLOCK_ERRNO_MAP(XX)
#undef XX
    };
    size_t i, j;
    assert_string_equal(redislock_strerror(0), "success");
    assert_string_equal(redislock_err_name(0), "OK");
    assert_string_equal(redislock_err_name(REDISLOCK_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(redislock_strerror(-999), "unknown error");
    assert_string_equal(redislock_err_name(7), "UNKNOWN");
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(redislock_err_name(codes[i]), "UNKNOWN");
        for (j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

/* Codes are stable: ETLS is -13 (and its name and message exist). */
static void test_misc_tls_error_code_is_stable_and_named(void **state)
{
    assert_int_equal(REDISLOCK_ETLS, -13);
    assert_string_equal(redislock_err_name(REDISLOCK_ETLS), "ETLS");
    assert_non_null(strstr(redislock_strerror(REDISLOCK_ETLS), "TLS"));
}

/* redislock_tls_version() says whether this build has TLS. */
static void test_misc_tls_version_says_whether_built_with_tls(void **state)
{
#ifdef HAVE_OPENSSL
    assert_non_null(redislock_tls_version());
    assert_non_null(strstr(redislock_tls_version(), "SSL"));
#else
    assert_null(redislock_tls_version());
#endif
}

static void test_misc_version_header_library_package_agree(void **state)
{
    char want[32];
    assert_int_equal(redislock_version(), REDISLOCK_VERSION_HEX);
    snprintf(want, sizeof want, "%d.%d.%d", REDISLOCK_VERSION_MAJOR,
             REDISLOCK_VERSION_MINOR, REDISLOCK_VERSION_PATCH);
    assert_string_equal(redislock_version_string(), want);
    /* the header and the package (configure.ac) agree */
    assert_string_equal(redislock_version_string(), PACKAGE_VERSION);
}

static void test_misc_key_names_of_each_layout(void **state)
{
    redislock_client c;
    size_t n;
    char *k;
    memset(&c, 0, sizeof c);
    c.key_prefix = (char *)"";
    k = redislock__key(&c, 0, "job", 3, &n);
    assert_string_equal(k, "lock:job");
    assert_int_equal(n, 8);
    redislock__free(k);
    k = redislock__key(&c, 1, "job", 3, &n);
    assert_string_equal(k, "lock-signal:job");
    redislock__free(k);
    k = redislock__key(&c, REDISLOCK__KEY_FENCE, "job", 3, &n);
    assert_string_equal(k, "lock-fence:job");
    redislock__free(k);
    k = redislock__key_pattern(&c, &n);
    assert_string_equal(k, "lock:*");
    redislock__free(k);
    k = redislock__signal_of(&c, "lock:a:b", 8, &n);
    assert_string_equal(k, "lock-signal:a:b");
    redislock__free(k);

    c.key_prefix = (char *)"x*[y]:";
    c.hash_tag = 1;
    k = redislock__key(&c, 0, "job", 3, &n);
    assert_string_equal(k, "x*[y]:lock:{job}");
    redislock__free(k);
    k = redislock__key(&c, 1, "job", 3, &n);
    assert_string_equal(k, "x*[y]:lock-signal:{job}");
    redislock__free(k);
    k = redislock__key(&c, REDISLOCK__KEY_FENCE, "job", 3, &n);
    assert_string_equal(k, "x*[y]:lock-fence:{job}"); /* the lock's slot */
    redislock__free(k);
    k = redislock__key_pattern(&c, &n);
    assert_string_equal(k, "x\\*\\[y\\]:lock:{*");
    redislock__free(k);
    k = redislock__signal_of(&c, "x*[y]:lock:{job}", 16, &n);
    assert_string_equal(k, "x*[y]:lock-signal:{job}");
    redislock__free(k);
    assert_null(redislock__signal_of(&c, "short", 5, &n));
}

static void test_misc_random_ids_printable_with_prefix(void **state)
{
    char *a, *b;
    size_t i;
    assert_int_equal(redislock__random_id(NULL, &a), 0);
    assert_int_equal(redislock__random_id("host-1:", &b), 0);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(strlen(b), 31);
    assert_memory_equal(b, "host-1:", 7);
    assert_string_not_equal(a, b + 7);
    for (i = 0; i < 24; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789+/",
                               a[i]));
    assert_int_equal(redislock__check_id(a, "id"), 0);
    redislock__free(a);
    redislock__free(b);
    assert_int_equal(redislock__random_id("sp ace", &a), REDISLOCK_EINVAL);
}

static void test_misc_quote_escapes_and_truncates(void **state)
{
    char buf[300];
    assert_string_equal(redislock__quote("ab\n\xff", 4, buf, sizeof buf), "ab\\x0a\\xff");
    memset(buf, 'x', 200);
    assert_string_equal(redislock__quote(buf, 100, buf + 200, 100) + 64, "...");
}

/* Allocator hooks: every allocation of the library goes through them, and a
 * failing allocator gives ENOMEM, never a crash. */
static int allocs, fail_after = -1;

static void *counting_malloc(size_t n)
{
    if (fail_after >= 0 && allocs >= fail_after)
        return NULL;
    allocs++;
    return malloc(n);
}

static void *counting_realloc(void *p, size_t n)
{
    if (fail_after >= 0 && allocs >= fail_after)
        return NULL;
    allocs++;
    return realloc(p, n);
}

static void *counting_calloc(size_t n, size_t s)
{
    if (fail_after >= 0 && allocs >= fail_after)
        return NULL;
    allocs++;
    return calloc(n, s);
}

/* Back to the C library's allocator, whatever the test left. */
static int restore_allocator(void **state)
{
    fail_after = -1;
    redislock_replace_allocator(malloc, realloc, calloc, free);
    return 0;
}

static void test_misc_allocator_hooks_see_every_allocation(void **state)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    assert_int_equal(redislock_replace_allocator(NULL, realloc, calloc, free),
                     REDISLOCK_EINVAL);
    assert_int_equal(redislock_replace_allocator(counting_malloc, counting_realloc,
                                                 counting_calloc, free),
                     0);
    allocs = 0;
    assert_rl_ok(redislock_client_new(&c, "redis://localhost", NULL));
    assert_rl_ok(redislock_new(&lk, c, "x", NULL));
    assert_true(allocs > 3);
    redislock_free(lk);
    redislock_client_free(c);
}

/* Each allocation point of client and handle creation failing in turn:
 * ENOMEM, never a crash or a leak. */
static void test_misc_allocator_failure_is_enomem(void **state)
{
    redislock_client *c = NULL;
    redislock *lk = NULL;
    int i, rc;
    assert_int_equal(redislock_replace_allocator(counting_malloc, counting_realloc,
                                                 counting_calloc, free),
                     0);
    for (i = 0; i < 40; i++) {
        allocs = 0;
        fail_after = i;
        c = NULL;
        lk = NULL;
        rc = redislock_client_new(&c, "redis://:pw@localhost/1", NULL);
        if (rc == 0)
            rc = redislock_new(&lk, c, "x", NULL);
        fail_after = -1;
        redislock_free(lk);
        redislock_client_free(c);
        if (rc)
            assert_int_equal(rc, REDISLOCK_ENOMEM);
        if (rc == 0)
            break;
    }
    assert_true(i > 3 && i < 40);
}

/* The slices a wait is polled in (net.c): the kernel may end a poll()
 * late by 0.1% of its timeout (0.5% for a thread with nice > 0), at least
 * the timer slack (50 us by default), at most 100 ms.  Whatever it does
 * within that, every slice but the last ends before the deadline, the
 * last is short (so it ends within about 50 us of the deadline), and a
 * wait of up to 2 minutes takes at most four slices.  (A wait of 1 s was
 * polled in one go: it ended about 1 ms late.) */
static int64_t worst_stretch(int64_t slice)
{
    int64_t s = slice / 200;
    return s < 50 ? 50 : (s > 100000 ? 100000 : s);
}

static void test_misc_poll_slices_end_by_the_deadline(void **state)
{
    int64_t left0;
    (void)state;
    for (left0 = 1; left0 <= 120 * 1000000LL; left0 += left0 / 7 + 1) {
        int late;
        for (late = 0; late < 2; late++) { /* the kernel on time, or late */
            int64_t left = left0;
            int slices = 0;
            for (;;) {
                int64_t slice = redislock__poll_slice(left);
                slices++;
                assert_true(slice > 0 && slice <= left);
                if (slice == left) {
                    assert_true(left <= 10000); /* late by the timer slack at most */
                    break;
                }
                assert_true(slice + worst_stretch(slice) < left);
                left -= slice + (late ? worst_stretch(slice) : 0);
            }
            assert_true(slices <= 4);
        }
    }
    assert_int_equal(redislock__poll_slice(0), 0);
}

/* A poll with nothing ready returns at its deadline, not before (it may
 * take several slices). */
static void test_misc_poll_returns_at_its_deadline(void **state)
{
    int64_t deadline = redislock__now_us() + 30000;
    (void)state;
    assert_int_equal(redislock__poll(NULL, 0, deadline), 0);
    assert_true(redislock__now_us() >= deadline);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misc_poll_slices_end_by_the_deadline),
        cmocka_unit_test(test_misc_poll_returns_at_its_deadline),
        cmocka_unit_test(test_misc_error_codes_distinct_and_named),
        cmocka_unit_test(test_misc_version_header_library_package_agree),
        cmocka_unit_test(test_misc_tls_error_code_is_stable_and_named),
        cmocka_unit_test(test_misc_tls_version_says_whether_built_with_tls),
        cmocka_unit_test(test_misc_key_names_of_each_layout),
        cmocka_unit_test(test_misc_random_ids_printable_with_prefix),
        cmocka_unit_test(test_misc_quote_escapes_and_truncates),
        cmocka_unit_test_teardown(test_misc_allocator_hooks_see_every_allocation,
                                  restore_allocator),
        cmocka_unit_test_teardown(test_misc_allocator_failure_is_enomem, restore_allocator),
    };
    return cmocka_run_group_tests_name("misc", tests, NULL, NULL);
}
