/* Replays a fuzz target's seed corpus (tests/fuzz/corpus-TARGET/) and its
 * regression inputs (tests/fuzz/regress-TARGET/: inputs that once crashed)
 * through the target, built with the normal compiler and flags: part of the
 * regular suite, so a fixed crash stays fixed, also under valgrind and the
 * sanitizer builds.  FUZZ_TARGET names the target (-D at build time). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET"
#endif

/* Replay every file in dir; the number replayed, or -1 if dir is missing. */
static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        FILE *f;
        uint8_t *buf;
        size_t len;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        f = fopen(path, "rb");
        assert_non_null(f);
        buf = malloc((size_t)st.st_size + 1);
        assert_non_null(buf);
        len = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
        assert_int_equal(len, (size_t)st.st_size);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : ".";
}

static void test_corpus(void **state)
{
    char dir[2048];
    int n;
    (void)state;
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus-%s", srcdir(), FUZZ_TARGET);
    n = replay_dir(dir);
    if (n <= 0)
        fail_msg("no seed corpus in %s (%s)", dir, n < 0 ? strerror(errno) : "empty");
    print_message("      %d seed inputs replayed\n", n);
}

static void test_regressions(void **state)
{
    char dir[2048];
    int n;
    (void)state;
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress-%s", srcdir(), FUZZ_TARGET);
    n = replay_dir(dir);
    if (n < 0)
        fail_msg("cannot read %s: %s", dir, strerror(errno));
    print_message("      %d regression inputs replayed\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_regressions),
    };
    return cmocka_run_group_tests_name("fuzz_replay_" FUZZ_TARGET, tests, NULL, NULL);
}
