/* SHA-1 against the FIPS 180 test vectors (it names the scripts for EVALSHA;
 * test_basic checks that the names match what Redis computes). */
#include "internal.h"
#include "testutil.h"

#include <string.h>

static void check(const char *in, size_t len, const char *want)
{
    char out[41];
    redislock__sha1_hex(in, len, out);
    assert_string_equal(out, want);
}

static void test_sha1_known_vectors(void **state)
{
    char million[1000000];
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    check("The quick brown fox jumps over the lazy dog", 43,
          "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    /* 55, 56, 63, 64, 65 bytes: the padding edges */
    check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 55,
          "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 64,
          "0098ba824b5c16427bd7a1122a5a442a25ec644d");
    memset(million, 'a', sizeof million);
    check(million, sizeof million, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_known_vectors),
    };
    return cmocka_run_group_tests_name("sha1", tests, NULL, NULL);
}
