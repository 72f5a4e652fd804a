/* URL parsing, table-driven. */
#include "internal.h"
#include "testutil.h"

#include <string.h>

typedef struct url_case {
    const char *url;
    int rc;
    int is_unix;
    const char *host;
    int port, db;
    const char *user, *pass, *addr;
} url_case;

#define BAD(u, code) { u, code, 0, NULL, 0, 0, NULL, NULL, NULL }

static const url_case cases[] = {
    { "redis://localhost", 0, 0, "localhost", 6379, 0, NULL, NULL, "localhost:6379" },
    { "redis://127.0.0.1:6380/2", 0, 0, "127.0.0.1", 6380, 2, NULL, NULL,
      "127.0.0.1:6380" },
    { "redis://:pw@h:1/", 0, 0, "h", 1, 0, NULL, "pw", "h:1" },
    { "redis://alice:pw@h", 0, 0, "h", 6379, 0, "alice", "pw", "h:6379" },
    { "redis://alice:p%40ss%3Aw@h:7000/15", 0, 0, "h", 7000, 15, "alice", "p@ss:w",
      "h:7000" },
    { "redis://:p@ss@h", 0, 0, "h", 6379, 0, NULL, "p@ss", "h:6379" },
    { "redis://[::1]:6390/1", 0, 0, "::1", 6390, 1, NULL, NULL, "[::1]:6390" },
    { "redis://[::1]", 0, 0, "::1", 6379, 0, NULL, NULL, "[::1]:6379" },
    { "redis://h?password=x", 0, 0, "h", 6379, 0, NULL, "x", "h:6379" },
    { "unix:///tmp/r.sock", 0, 1, "/tmp/r.sock", 0, 0, NULL, NULL, "/tmp/r.sock" },
    { "unix:///tmp/r.sock?db=4", 0, 1, "/tmp/r.sock", 0, 4, NULL, NULL, "/tmp/r.sock" },
    { "redis+unix:///a%20b/r.sock?db=1&password=s&user=u", 0, 1, "/a b/r.sock", 0, 1,
      "u", "s", "/a b/r.sock" },
    /* the query form README documents: user and password after a socket
     * path or a host, escapes for the characters that end a field */
    { "unix:///tmp/r.sock?user=alice&password=s%26cr%3Dt%25", 0, 1, "/tmp/r.sock", 0, 0,
      "alice", "s&cr=t%", "/tmp/r.sock" },
    { "unix:///tmp/r.sock?password=only", 0, 1, "/tmp/r.sock", 0, 0, NULL, "only",
      "/tmp/r.sock" },
    { "redis://h:7/3?user=u&password=p%40ss", 0, 0, "h", 7, 3, "u", "p@ss", "h:7" },
    { "redis://:inurl@h?password=inquery", 0, 0, "h", 6379, 0, NULL, "inquery", "h:6379" },
    /* a user without a password (RFC 3986; the password from the options,
     * or none for a nopass ACL user); a scheme in any case */
    { "redis://alice@h:7", 0, 0, "h", 7, 0, "alice", NULL, "h:7" },
    { "redis://al%40ice@h", 0, 0, "h", 6379, 0, "al@ice", NULL, "h:6379" },
    { "REDIS://h:1/2", 0, 0, "h", 1, 2, NULL, NULL, "h:1" },
    { "Redis://u:p@h", 0, 0, "h", 6379, 0, "u", "p", "h:6379" },
    { "UNIX:///tmp/r.sock", 0, 1, "/tmp/r.sock", 0, 0, NULL, NULL, "/tmp/r.sock" },
    { "REDIS+UNIX:///tmp/r.sock", 0, 1, "/tmp/r.sock", 0, 0, NULL, NULL, "/tmp/r.sock" },
    BAD("redis://@h", REDISLOCK_EINVAL),
    BAD("", REDISLOCK_EINVAL),
    BAD("redis://", REDISLOCK_EINVAL),
    BAD("redis://h:", REDISLOCK_EINVAL),
    BAD("redis://h:65536", REDISLOCK_EINVAL),
    BAD("redis://h:-1", REDISLOCK_EINVAL),
    BAD("redis://h:12345678901", REDISLOCK_EINVAL),
    BAD("redis://h/99999999999", REDISLOCK_EINVAL),
    BAD("redis://h/-1", REDISLOCK_EINVAL),
    BAD("redis://h x", REDISLOCK_EINVAL),
    BAD("redis://[::1]x", REDISLOCK_EINVAL),
    BAD("redis://:%4@h", REDISLOCK_EINVAL),
    BAD("redis://:%00@h", REDISLOCK_EINVAL),
    BAD("unix://", REDISLOCK_EINVAL),
    BAD("unix://?db=1", REDISLOCK_EINVAL),
    BAD("unix:///s?db", REDISLOCK_EINVAL),
    BAD("unix:///s?pass=x", REDISLOCK_EINVAL),
    BAD("unix:///s?password=%zz", REDISLOCK_EINVAL),
    BAD("unix:///s?user=a%00b", REDISLOCK_EINVAL),
    BAD("REDIS:/h", REDISLOCK_EINVAL),
    BAD("ftp://h", REDISLOCK_EINVAL),
};

static void test_url_table(void **state)
{
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const url_case *c = &cases[i];
        redislock__endpoint ep;
        int rc = redislock__url_parse(c->url, &ep);
        if (rc != c->rc)
            fail_msg("'%s': %s (%s), expected %s", c->url, redislock_err_name(rc),
                     redislock_last_error(), redislock_err_name(c->rc));
        if (rc) {
            assert_true(strlen(redislock_last_error()) > 0);
            assert_null(ep.host);
            continue;
        }
        assert_int_equal(ep.is_unix, c->is_unix);
        assert_string_equal(ep.host, c->host);
        if (!c->is_unix)
            assert_int_equal(ep.port, c->port);
        assert_int_equal(ep.db, c->db);
        if (c->user)
            assert_string_equal(ep.username, c->user);
        else
            assert_null(ep.username);
        if (c->pass)
            assert_string_equal(ep.password, c->pass);
        else
            assert_null(ep.password);
        assert_string_equal(ep.addr, c->addr);
        redislock__endpoint_clear(&ep);
    }
}

static void test_url_null(void **state)
{
    redislock__endpoint ep;
    assert_int_equal(redislock__url_parse(NULL, &ep), REDISLOCK_EINVAL);
}

/* Messages never carry the password. */
static void test_url_messages_hide_password(void **state)
{
    redislock__endpoint ep;
    assert_int_equal(redislock__url_parse("redis://:hunter2@h:99999", &ep),
                     REDISLOCK_EINVAL);
    assert_null(strstr(redislock_last_error(), "hunter2"));
}

/* rediss:// is redis:// over TLS (port 6379 by default, as redis-cli);
 * a build without OpenSSL refuses it with ENOTSUP and says why. */
static void test_url_rediss_is_tcp_with_tls(void **state)
{
    static const url_case tls_cases[] = {
        { "rediss://h", 0, 0, "h", 6379, 0, NULL, NULL, "h:6379" },
        { "rediss://alice:pw@cache.example.com:6380/3", 0, 0, "cache.example.com", 6380,
          3, "alice", "pw", "cache.example.com:6380" },
        { "rediss://:pw@[::1]", 0, 0, "::1", 6379, 0, NULL, "pw", "[::1]:6379" },
        { "rediss://10.0.0.1:7000?password=x", 0, 0, "10.0.0.1", 7000, 0, NULL, "x",
          "10.0.0.1:7000" },
    };
    redislock__endpoint ep;
    size_t i;
    (void)state;
#ifdef HAVE_OPENSSL
    for (i = 0; i < sizeof tls_cases / sizeof tls_cases[0]; i++) {
        const url_case *c = &tls_cases[i];
        assert_rl_ok(redislock__url_parse(c->url, &ep));
        assert_int_equal(ep.tls, 1);
        assert_int_equal(ep.is_unix, 0);
        assert_string_equal(ep.host, c->host);
        assert_int_equal(ep.port, c->port);
        assert_int_equal(ep.db, c->db);
        if (c->user)
            assert_string_equal(ep.username, c->user);
        else
            assert_null(ep.username);
        if (c->pass)
            assert_string_equal(ep.password, c->pass);
        else
            assert_null(ep.password);
        assert_string_equal(ep.addr, c->addr);
        redislock__endpoint_clear(&ep);
    }
    assert_rl_ok(redislock__url_parse("redis://h", &ep));
    assert_int_equal(ep.tls, 0);
    redislock__endpoint_clear(&ep);
    assert_rl_ok(redislock__url_parse("REDISS://h", &ep));
    assert_int_equal(ep.tls, 1);
    redislock__endpoint_clear(&ep);
    assert_rl_err(redislock__url_parse("rediss://h:0", &ep), REDISLOCK_EINVAL);
    assert_rl_err(redislock__url_parse("rediss:///tmp/s.sock", &ep), REDISLOCK_EINVAL);
#else
    for (i = 0; i < sizeof tls_cases / sizeof tls_cases[0]; i++) {
        assert_rl_err(redislock__url_parse(tls_cases[i].url, &ep), REDISLOCK_ENOTSUP);
        assert_non_null(strstr(redislock_last_error(), "without OpenSSL"));
        assert_null(ep.host);
    }
#endif
}

/* A unix socket path must fit a socket address (107 bytes and the NUL):
 * a longer one is refused when the URL is read (EINVAL, the client is not
 * made), not when connecting (where it looked like an unreachable
 * server).  The decoded length counts ("%41" is one byte). */
static void test_url_socket_path_fits_a_socket_address(void **state)
{
    char url[300], path[200];
    redislock__endpoint ep;
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[107] = '\0';
    snprintf(url, sizeof url, "unix://%s", path);
    assert_rl_ok(redislock__url_parse(url, &ep));
    assert_int_equal(strlen(ep.host), 107);
    redislock__endpoint_clear(&ep);
    snprintf(url, sizeof url, "unix://%s%%41", path); /* 108 bytes decoded */
    assert_rl_err(redislock__url_parse(url, &ep), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "108 bytes"));
    assert_non_null(strstr(redislock_last_error(), "at most 107"));
    path[107] = 'p';
    path[120] = '\0';
    snprintf(url, sizeof url, "unix://%s?db=2", path);
    assert_rl_err(redislock__url_parse(url, &ep), REDISLOCK_EINVAL);
}

/* Sentinel and cluster URLs: the hosts (default ports 26379 and 6379), the
 * service, and the master's credentials, db, TLS and WAIT settings. */
static void test_url_topology_forms(void **state)
{
    redislock__topo_url t;
    (void)state;
    assert_int_equal(redislock__url_kind("redis://h"), REDISLOCK__MEMBER_FIXED);
    assert_int_equal(redislock__url_kind("REDIS-SENTINEL://h/s"), REDISLOCK__MEMBER_SENTINEL);
    assert_int_equal(redislock__url_kind("rediss-cluster://h"), REDISLOCK__MEMBER_CLUSTER);
    assert_rl_ok(redislock__topo_url_parse(
        "redis-sentinel://u:p%40w@s1,s2:26380,[::1]:7/my%20svc/3?min_replicas=1&wait_ms=70",
        &t));
    assert_int_equal(t.kind, REDISLOCK__MEMBER_SENTINEL);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.hosts[0], "s1");
    assert_int_equal(t.ports[0], 26379);
    assert_int_equal(t.ports[1], 26380);
    assert_string_equal(t.hosts[2], "::1");
    assert_string_equal(t.service, "my svc");
    assert_int_equal(t.tmpl.db, 3);
    assert_string_equal(t.tmpl.username, "u");
    assert_string_equal(t.tmpl.password, "p@w");
    assert_int_equal(t.tmpl.min_replicas, 1);
    assert_int_equal(t.tmpl.wait_ms, 70);
    assert_int_equal(t.tmpl.tls, 0);
    redislock__topo_url_clear(&t);
    assert_rl_ok(redislock__topo_url_parse("redis-cluster://a:7000,b", &t));
    assert_int_equal(t.kind, REDISLOCK__MEMBER_CLUSTER);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ports[1], 6379);
    assert_int_equal(t.tmpl.min_replicas, -1);
    redislock__topo_url_clear(&t);
}

static void test_url_topology_errors(void **state)
{
    static const char *const bad[] = {
        "redis-sentinel://h",              /* no service */
        "redis-sentinel://h/",             /* empty service */
        "redis-sentinel://h//x",
        "redis-sentinel://unix\xba",       /* the fuzzer's: read past the end */
        "redis-sentinel://h:0/s",
        "redis-sentinel://h,/s",           /* an empty host */
        "redis-sentinel://h/s/x",          /* a db that is not a number */
        "redis-sentinel://h/s?nope=1",
        "redis-cluster://h/3",             /* a cluster has only db 0 */
        "redis-cluster://h?db=2",
        "redis-cluster://",
    };
    redislock__topo_url t;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = redislock__topo_url_parse(bad[i], &t);
        if (rc != REDISLOCK_EINVAL)
            fail_msg("%s: %d, expected EINVAL", bad[i], rc);
        assert_non_null(strstr(redislock_last_error(), "URL"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_socket_path_fits_a_socket_address),
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_url_null),
        cmocka_unit_test(test_url_messages_hide_password),
        cmocka_unit_test(test_url_rediss_is_tcp_with_tls),
        cmocka_unit_test(test_url_topology_forms),
        cmocka_unit_test(test_url_topology_errors),
    };
    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
