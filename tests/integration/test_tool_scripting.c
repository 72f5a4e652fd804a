/* redislock(1) in scripts, through the real binary against real
 * redis-server processes: a name that --list prints is usable as printed
 * (through a shell, for names with spaces, quotes, control bytes, UTF-8
 * and bytes that are not), --json for --status, --list and --version, and
 * several masters in $REDISLOCK_URL. */
#include "server.h"
#include "testutil.h"
#include "toolproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define URL tu_srv.url

static ts_server m[3];

/* A lock held by owner without expiry, set on the server directly (any
 * bytes, as another program may write them). */
static void plant(ts_server *s, const char *name, const char *owner)
{
    redisReply *r = ts_cmd(s, "SET lock:%s %s", name, owner);
    assert_non_null(r);
    freeReplyObject(r);
}

/* Names (and owners) of the round trip. */
static const struct {
    const char *name, *owner, *printed;
} odd[] = {
    { "my nightly job", "o1", "'my nightly job' owner=o1 ttl_ms=-1\n" },
    { "it's $HOME `x` *", "o2", "'it'\\''s $HOME `x` *' owner=o2 ttl_ms=-1\n" },
    { "tab\there\nnewline\x1b[1m", "o3",
      "$'tab\\x09here\\x0anewline\\x1b[1m' owner=o3 ttl_ms=-1\n" },
    { "caf\xc3\xa9 \xe2\x82\xac", "o4", "'caf\xc3\xa9 \xe2\x82\xac' owner=o4 ttl_ms=-1\n" },
    { "bad\xff\xfe", "o5", "$'bad\\xff\\xfe' owner=o5 ttl_ms=-1\n" },
    { "plain-name_1.2:x@y", "py owner", "plain-name_1.2:x@y owner='py owner' ttl_ms=-1\n" },
};
#define NODD (sizeof odd / sizeof odd[0])

/* Run "SHELL -c CMD" (stderr with stdout into out); its exit status. */
static int shell(const char *sh, const char *cmd, char *out, size_t size)
{
    int fd[2], st;
    size_t n = 0;
    ssize_t r;
    pid_t pid;
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execlp(sh, sh, "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    while ((r = read(fd[0], out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The word a --list line starts with: the name as printed. */
static void first_word(const char *line, char *word, size_t size)
{
    const char *end = strstr(line, " owner=");
    assert_non_null(end);
    assert_true((size_t)(end - line) < size);
    memcpy(word, line, (size_t)(end - line));
    word[end - line] = '\0';
}

/* "redislock -u URL OPTION WORD" through sh: 0 when it answered want. */
static void pass_back(const char *sh, const char *option, const char *word,
                      const char *want)
{
    char cmd[2048], out[1024];
    int rc;
    snprintf(cmd, sizeof cmd, "'%s' -u '%s' %s %s", tp_tool(), URL, option, word);
    rc = shell(sh, cmd, out, sizeof out);
    if (rc != 0 || strcmp(out, want))
        fail_msg("%s: %s %s: exit %d, '%s' (expected '%s')", sh, option, word, rc, out,
                 want);
}

/* Every name --list prints, passed back as printed through a shell, is that
 * lock: --status says it is held by its owner, --reset removes it.  (Before,
 * "my\x20nightly\x20job" passed back named another lock: "free", then
 * "removed 0".)  bash for every name ($'...' is not in dash), dash for
 * those without control bytes. */
static void test_tool_list_names_round_trip(void **state)
{
    char word[1024], want[256];
    const char *line;
    tool_proc p;
    size_t i;

    for (i = 0; i < NODD; i++)
        plant(&tu_srv, odd[i].name, odd[i].owner);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list"), 0);
    assert_string_equal(p.err.buf, "");
    for (i = 0; i < NODD; i++) {
        line = strstr(p.out.buf, odd[i].printed);
        if (!line || (line > p.out.buf && line[-1] != '\n'))
            fail_msg("--list lacks the line \"%s\":\n%s", odd[i].printed, p.out.buf);
        first_word(line, word, sizeof word);
        snprintf(want, sizeof want, "held owner=%s",
                 strstr(odd[i].printed, "owner=") + strlen("owner="));
        pass_back("bash", "--status", word, want);
        if (word[0] != '$')
            pass_back("sh", "--status", word, want);
        pass_back("bash", "--reset", word, "removed 1\n");
    }
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list"), 0);
    assert_string_equal(p.out.buf, ""); /* all removed */
}

/* --json: --status (held, free), --list (an array, one lock per line; a
 * name that is not UTF-8 also as hex), --version; what python's json
 * module reads back when python3 is there. */
static void test_tool_json(void **state)
{
    char want[1024], cmd[2048], out[2048];
    tool_proc p;
    const char *py = getenv("PYTHON3");

    assert_int_equal(TP_RUN(&p, "-u", URL, "--json", "--status", "j 1"), 1);
    assert_string_equal(p.out.buf, "{\"name\":\"j 1\",\"held\":false,\"owner\":null,\"ttl_ms\":0}\n");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--json", "--list"), 0);
    assert_string_equal(p.out.buf, "[]\n");
    plant(&tu_srv, "j 1", "o\"1\\");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--status", "--json", "j 1"), 0);
    assert_string_equal(p.out.buf,
                        "{\"name\":\"j 1\",\"held\":true,\"owner\":\"o\\\"1\\\\\",\"ttl_ms\":-1}\n");
    plant(&tu_srv, "tab\tbad\xff", "o2");
    assert_int_equal(TP_RUN(&p, "-u", URL, "--list", "--json"), 0);
    assert_memory_equal(p.out.buf, "[\n{", 3);
    assert_non_null(strstr(p.out.buf, "}\n]\n"));
    snprintf(want, sizeof want,
             "{\"name\":\"j 1\",\"owner\":\"o\\\"1\\\\\",\"ttl_ms\":-1,\"master\":\"%s\"}",
             tu_srv.sock);
    assert_non_null(strstr(p.out.buf, want));
    snprintf(want, sizeof want,
             "{\"name\":\"tab\\u0009bad\\ufffd\",\"name_hex\":\"74616209626164ff\","
             "\"owner\":\"o2\",\"ttl_ms\":-1,\"master\":\"%s\"}",
             tu_srv.sock);
    assert_non_null(strstr(p.out.buf, want));
    assert_int_equal(TP_RUN(&p, "--version", "--json"), 0);
    assert_memory_equal(p.out.buf, "{\"version\":\"", 12);
    assert_non_null(strstr(p.out.buf, "\"library\":\""));
    assert_non_null(strstr(p.out.buf, redislock_tls_version() ? "\"tls\":\"" : "\"tls\":null"));
    /* --json elsewhere is a usage error */
    assert_int_equal(TP_RUN(&p, "-u", URL, "--json", "x", "true"), 64);
    assert_int_equal(TP_RUN(&p, "-u", URL, "--json", "--reset", "x"), 64);
    if (!py || !*py) {
        print_message("      python3 not found: JSON not parsed back\n");
        return;
    }
    snprintf(cmd, sizeof cmd,
             "'%s' -u '%s' --list --json | '%s' -c 'import json, sys; d = json.load(sys.stdin); "
             "print(sorted(bytes.fromhex(e[\"name_hex\"]) if \"name_hex\" in e "
             "else e[\"name\"].encode() for e in d))'",
             tp_tool(), URL, py);
    assert_int_equal(shell("sh", cmd, out, sizeof out), 0);
    assert_string_equal(out, "[b'j 1', b'tab\\tbad\\xff']\n");
}

/* $REDISLOCK_URL takes several masters (majority mode), separated by
 * spaces or commas; a comma that no URL follows belongs to its URL (a
 * password). */
static void test_tool_env_urls(void **state)
{
    char env[2400], cmd[1200], line[64];
    tool_proc p;
    int i, on = 0;

    for (i = 0; i < 3; i++)
        assert_int_equal(ts_start(&m[i]), 0);
    snprintf(env, sizeof env, " %s,%s\t , %s ", m[0].url, m[1].url, m[2].url);
    setenv("REDISLOCK_URL", env, 1);
    /* COMMAND lists the lock it holds: on a quorum of the three */
    snprintf(cmd, sizeof cmd, "'%s' --list", tp_tool());
    assert_int_equal(TP_RUN(&p, "-e", "30", "mj", "-c", cmd), 0);
    for (i = 0; i < 3; i++) {
        snprintf(line, sizeof line, "mj owner=redislock@");
        on += strstr(p.out.buf, m[i].sock) != NULL;
    }
    if (on < 2 || !strstr(p.out.buf, line))
        fail_msg("COMMAND's --list: %s", p.out.buf);
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_int(&m[i], "EXISTS lock:mj"), 0); /* released */
    assert_int_equal(TP_RUN(&p, "--list", "--json"), 0);
    assert_string_equal(p.out.buf, "[]\n");
    plant(&m[0], "x", "o");
    plant(&m[2], "x", "o");
    assert_int_equal(TP_RUN(&p, "--status", "x"), 0); /* a quorum: 2 of 3 */
    assert_int_equal(TP_RUN(&p, "--list"), 0);
    snprintf(env, sizeof env, "x owner=o ttl_ms=-1 master=%s\n", m[2].sock);
    assert_non_null(strstr(p.out.buf, env));
    /* one URL with a comma in its password: one master, unreachable */
    snprintf(env, sizeof env, "redis://:p,w@127.0.0.1:%d", tp_unused_port());
    setenv("REDISLOCK_URL", env, 1);
    assert_int_equal(TP_RUN(&p, "--status", "x"), 69);
    assert_non_null(strstr(p.err.buf, strchr(env, '@') + 1));
    assert_null(strstr(p.err.buf, "master"));
    unsetenv("REDISLOCK_URL");
    for (i = 0; i < 3; i++)
        ts_stop(&m[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tool_list_names_round_trip, tu_setup,
                                        tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_json, tu_setup, tp_teardown),
        cmocka_unit_test_setup_teardown(test_tool_env_urls, tu_setup, tp_teardown),
    };
    return cmocka_run_group_tests_name("tool_scripting", tests, tu_group_setup,
                                       tu_group_teardown);
}
