/* Redis Cluster's pure parts, tested from tables (tests/unit/test_cluster.c):
 *   - the key's slot: CRC16 (XMODEM: polynomial 0x1021, initial 0) of the
 *     key, or of its hash tag (the bytes between the first '{' and the
 *     first '}' after it, when there is at least one), modulo 16384, as the
 *     cluster spec defines;
 *   - the -MOVED / -ASK error replies: "MOVED <slot> <host>:<port>", the
 *     host an IPv4 address, an IPv6 address (unbracketed, as Redis writes
 *     it: the port is after the last ':'), a host name, or empty (the
 *     node that answered);
 *   - a CLUSTER SLOTS reply: ranges and their master's endpoint.  A NULL
 *     or "" endpoint means the node that answered; "?" (a host name not
 *     known yet) leaves the range unknown, as do ports out of range. */
#include "internal.h"

#include <hiredis.h>
#include <stdlib.h>
#include <string.h>

/* CRC16/XMODEM, table-driven (the table the cluster spec gives). */
static uint16_t crc16_table[256];
static pthread_once_t crc16_once = PTHREAD_ONCE_INIT;

static void crc16_init(void)
{
    unsigned i, j;
    for (i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t)(i << 8);
        for (j = 0; j < 8; j++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        crc16_table[i] = crc;
    }
}

uint16_t redislock__crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    size_t i;
    pthread_once(&crc16_once, crc16_init);
    for (i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^
                         crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
    return crc;
}

int redislock__keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return redislock__crc16(open + 1, (size_t)(close - open - 1)) &
                   (REDISLOCK__SLOTS - 1);
    }
    return redislock__crc16(key, len) & (REDISLOCK__SLOTS - 1);
}

/* A decimal number in [lo, hi] from s[0..n); -1 if it is not one. */
static long number(const char *s, size_t n, long lo, long hi)
{
    long v = 0;
    size_t i;
    if (n == 0 || n > 6)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi ? v : -1;
}

/* "host:port", "[v6]:port", "v6:port" or ":port" from s[0..n) into rd. */
static int parse_endpoint(const char *s, size_t n, redislock__redirect *rd)
{
    const char *colon = NULL, *h = s;
    size_t i, hlen;
    long port;
    for (i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || (port = number(colon + 1, (size_t)(s + n - colon - 1), 1, 65535)) < 0)
        return -1;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof rd->host)
        return -1;
    for (i = 0; i < hlen; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '[' || h[i] == ']' || h[i] == '/')
            return -1;
    memcpy(rd->host, h, hlen);
    rd->host[hlen] = '\0';
    rd->port = (int)port;
    return 0;
}

int redislock__redirect_parse(const char *err, size_t len, redislock__redirect *rd)
{
    const char *p, *end = err + len, *sp;
    long slot;
    memset(rd, 0, sizeof *rd);
    if (len > 6 && !memcmp(err, "MOVED ", 6))
        p = err + 6;
    else if (len > 4 && !memcmp(err, "ASK ", 4))
        p = err + 4, rd->ask = 1;
    else
        return -1;
    sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || (slot = number(p, (size_t)(sp - p), 0, REDISLOCK__SLOTS - 1)) < 0)
        return -1;
    rd->slot = (int)slot;
    return parse_endpoint(sp + 1, (size_t)(end - sp - 1), rd);
}

/* One CLUSTER SLOTS entry: [start, end, [host, port, id...], replicas...]
 * into *out; 0, 1 when it is well formed but its endpoint is unknown ("?",
 * no port), -1 when it is malformed. */
static int parse_entry(const redisReply *e, const char *answered, redislock__slot_range *out)
{
    const redisReply *node, *host, *port;
    size_t hlen;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
        return -1;
    out->first = (int)e->element[0]->integer;
    out->last = (int)e->element[1]->integer;
    if (e->element[0]->integer < 0 || e->element[1]->integer >= REDISLOCK__SLOTS ||
        out->first > out->last)
        return -1;
    node = e->element[2];
    host = node->element[0];
    port = node->element[1];
    if ((host->type != REDIS_REPLY_STRING && host->type != REDIS_REPLY_NIL) ||
        port->type != REDIS_REPLY_INTEGER)
        return -1;
    if (port->integer < 1 || port->integer > 65535)
        return 1;
    out->port = (int)port->integer;
    if (host->type == REDIS_REPLY_NIL || host->len == 0) /* the node that answered */
        host = NULL;
    else if (host->len == 1 && host->str[0] == '?') /* host name not known yet */
        return 1;
    hlen = host ? host->len : strlen(answered);
    if (hlen >= sizeof out->host)
        return -1;
    memcpy(out->host, host ? host->str : answered, hlen);
    out->host[hlen] = '\0';
    return 0;
}

int redislock__slots_parse(const redisReply *r, const char *answered,
                           redislock__slot_range **out, size_t *n)
{
    size_t i;
    *out = NULL;
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    if (r->elements == 0)
        return 0;
    *out = redislock__calloc(r->elements, sizeof **out);
    if (!*out)
        return REDISLOCK_ENOMEM;
    for (i = 0; i < r->elements; i++) {
        int rc = parse_entry(r->element[i], answered, &(*out)[*n]);
        if (rc < 0) {
            redislock__free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
        if (rc == 0)
            (*n)++;
    }
    return 0;
}
