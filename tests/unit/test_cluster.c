/* Redis Cluster's pure parts (lib/slots.c), from tables: CRC16 and the
 * key's slot with hash tags (the expected slots are what redis-server
 * 7.0.15's CLUSTER KEYSLOT answered), -MOVED/-ASK with IPv4, IPv6 and host
 * names, and CLUSTER SLOTS replies as nodes give them while starting or
 * without a known host name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis.h>

#include "internal.h"

static void test_crc16_check_value(void **state)
{
    (void)state;
    /* CRC-16/XMODEM's check value */
    assert_int_equal(redislock__crc16("123456789", 9), 0x31C3);
    assert_int_equal(redislock__crc16("", 0), 0);
}

static void test_keyslot_vectors(void **state)
{
    static const struct {
        const char *key;
        size_t len;
        int slot;
    } v[] = {
        { "foo", 3, 12182 },
        { "bar", 3, 5061 },
        { "123456789", 9, 12739 },
        { "{user1000}.following", 20, 3443 },
        { "foo{}{bar}", 10, 8363 },        /* an empty first tag: the whole key */
        { "foo{{bar}}zap", 13, 4015 },     /* the tag is "{bar" */
        { "foo{bar}{zap}", 13, 5061 },     /* the first tag: "bar" */
        { "{}", 2, 15257 },
        { "lock:{}", 7, 12884 },           /* an empty name */
        { "lock-signal:{}", 14, 7837 },
        { "lock:{}x}", 9, 3284 },          /* a name starting with '}' */
        { "lock-signal:{}x}", 16, 2806 },
        { "lock:{a{b}c}", 12, 13340 },     /* nested: both keys together */
        { "lock-signal:{a{b}c}", 19, 13340 },
        { "lock:{job}", 10, 2906 },
        { "lock-signal:{job}", 17, 2906 },
        { "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 8, 10303 }, /* UTF-8 */
        { "\xff\x80\x01", 3, 1242 },                      /* 8-bit bytes */
        { "lock:{\xe9t\xe9}", 10, 5690 },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        int got = redislock__keyslot(v[i].key, v[i].len);
        if (got != v[i].slot)
            fail_msg("keyslot(%s) = %d, expected %d", v[i].key, got, v[i].slot);
    }
}

static void test_redirect_parse_table(void **state)
{
    static const struct {
        const char *err;
        int ok, ask, slot, port;
        const char *host;
    } v[] = {
        { "MOVED 3999 127.0.0.1:6381", 1, 0, 3999, 6381, "127.0.0.1" },
        { "ASK 3999 127.0.0.1:6381", 1, 1, 3999, 6381, "127.0.0.1" },
        { "MOVED 0 ::1:7000", 1, 0, 0, 7000, "::1" },               /* IPv6, as Redis writes it */
        { "MOVED 16383 [2001:db8::7]:7001", 1, 0, 16383, 7001, "2001:db8::7" },
        { "ASK 12 fe80::1:2:3:6379", 1, 1, 12, 6379, "fe80::1:2:3" },
        { "MOVED 42 redis-0.redis.svc.cluster.local:6379", 1, 0, 42, 6379,
          "redis-0.redis.svc.cluster.local" },
        { "MOVED 42 :6380", 1, 0, 42, 6380, "" },                    /* the same host */
        { "MOVED 16384 127.0.0.1:6381", 0, 0, 0, 0, "" },            /* no such slot */
        { "MOVED -1 127.0.0.1:6381", 0, 0, 0, 0, "" },
        { "MOVED 12 127.0.0.1", 0, 0, 0, 0, "" },                    /* no port */
        { "MOVED 12 127.0.0.1:0", 0, 0, 0, 0, "" },
        { "MOVED 12 127.0.0.1:65536", 0, 0, 0, 0, "" },
        { "MOVED 12", 0, 0, 0, 0, "" },
        { "MOVED x 1.2.3.4:5", 0, 0, 0, 0, "" },
        { "MOVED 12 bad host:5", 0, 0, 0, 0, "" },
        { "TRYAGAIN Multiple keys request during rehashing of slot", 0, 0, 0, 0, "" },
        { "ERR wrong", 0, 0, 0, 0, "" },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        redislock__redirect rd;
        int rc = redislock__redirect_parse(v[i].err, strlen(v[i].err), &rd);
        if ((rc == 0) != v[i].ok)
            fail_msg("'%s': parse %s", v[i].err, rc ? "failed" : "succeeded");
        if (!v[i].ok)
            continue;
        assert_int_equal(rd.ask, v[i].ask);
        assert_int_equal(rd.slot, v[i].slot);
        assert_int_equal(rd.port, v[i].port);
        assert_string_equal(rd.host, v[i].host);
    }
}

/* A reply built with hiredis' own reader from RESP text. */
static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    redisReaderFeed(rd, text, strlen(text));
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static void test_slots_parse_full_map(void **state)
{
    redisReply *r = resp("*3\r\n"
                         "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
                         "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n"
                         "*3\r\n:5461\r\n:10922\r\n*2\r\n$3\r\n::1\r\n:7001\r\n"
                         "*3\r\n:10923\r\n:16383\r\n*4\r\n$6\r\nnode-2\r\n:7002\r\n$2\r\nid\r\n"
                         "*2\r\n$8\r\nhostname\r\n$6\r\nnode-2\r\n");
    redislock__slot_range *rs = NULL;
    size_t n = 0;
    (void)state;
    assert_int_equal(redislock__slots_parse(r, "10.0.0.1", &rs, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rs[0].first, 0);
    assert_int_equal(rs[0].last, 5460);
    assert_string_equal(rs[0].host, "127.0.0.1");
    assert_int_equal(rs[0].port, 7000);
    assert_string_equal(rs[1].host, "::1");
    assert_string_equal(rs[2].host, "node-2");
    assert_int_equal(rs[2].first, 10923);
    assert_int_equal(rs[2].last, 16383);
    redislock__free(rs);
    freeReplyObject(r);
}

/* Endpoints as a starting node or unknown-endpoint gives them: NULL and ""
 * mean the node asked; "?" and port 0 leave the range out (unknown, asked
 * again later); partial coverage is kept as it is. */
static void test_slots_parse_odd_endpoints(void **state)
{
    redisReply *r = resp("*4\r\n"
                         "*3\r\n:0\r\n:99\r\n*2\r\n$-1\r\n:7000\r\n"
                         "*3\r\n:100\r\n:199\r\n*2\r\n$0\r\n\r\n:7001\r\n"
                         "*3\r\n:200\r\n:299\r\n*2\r\n$1\r\n?\r\n:7002\r\n"
                         "*3\r\n:300\r\n:399\r\n*2\r\n$9\r\n127.0.0.9\r\n:0\r\n");
    redislock__slot_range *rs = NULL;
    size_t n = 0;
    (void)state;
    assert_int_equal(redislock__slots_parse(r, "seed.example", &rs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rs[0].host, "seed.example");
    assert_int_equal(rs[0].port, 7000);
    assert_string_equal(rs[1].host, "seed.example");
    assert_int_equal(rs[1].port, 7001);
    assert_int_equal(rs[1].first, 100);
    redislock__free(rs);
    freeReplyObject(r);
}

static void test_slots_parse_empty_and_malformed(void **state)
{
    static const char *bad[] = {
        "+OK\r\n",
        "*1\r\n:5\r\n",
        "*1\r\n*3\r\n:10\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n",      /* first > last */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",   /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\na\r\n",             /* no port */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",            /* host not a string */
        "*1\r\n*2\r\n:0\r\n:1\r\n",                                /* no master */
    };
    redislock__slot_range *rs = NULL;
    redisReply *r = resp("*0\r\n");
    size_t n = 7, i;
    (void)state;
    assert_int_equal(redislock__slots_parse(r, "h", &rs, &n), 0); /* a node starting */
    assert_int_equal(n, 0);
    assert_null(rs);
    freeReplyObject(r);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = resp(bad[i]);
        if (redislock__slots_parse(r, "h", &rs, &n) != -1)
            fail_msg("reply %zu was accepted", i);
        assert_null(rs);
        freeReplyObject(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_keyslot_vectors),
        cmocka_unit_test(test_redirect_parse_table),
        cmocka_unit_test(test_slots_parse_full_map),
        cmocka_unit_test(test_slots_parse_odd_endpoints),
        cmocka_unit_test(test_slots_parse_empty_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
