/* URL parsing (the scheme in any case):
 *   redis://[user@ | [user]:password@]host[:port][/db]
 *   rediss://[user@ | [user]:password@]host[:port][/db]  (TLS, when built with it)
 *   unix:///path/to.sock[?db=N&user=U&password=P]   (also redis+unix://)
 * Percent-escapes are decoded in the user, the password and the path.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on error (bad escape,
 * embedded NUL) with *oom set when allocation failed. */
static char *decode(const char *s, size_t n, int *oom)
{
    char *out = redislock__malloc(n + 1);
    size_t i, o = 0;
    *oom = out == NULL;
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
bad:
    redislock__free(out);
    return NULL;
}

/* Parse a decimal number in [min, max] from s[0..n). */
static int parse_num(const char *s, size_t n, long min, long max, int *out)
{
    long v = 0;
    size_t i;
    if (n == 0 || n > 10)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int oom(void)
{
    return redislock__err(REDISLOCK_ENOMEM, "out of memory parsing a URL");
}

static int set_copy(char **dst, const char *s, size_t n, const char *what)
{
    int nomem;
    char *v = decode(s, n, &nomem);
    if (!v)
        return nomem ? oom()
                     : redislock__err(REDISLOCK_EINVAL,
                                      "invalid redis URL: bad %%-escape in the %s",
                                      what);
    redislock__free(*dst);
    *dst = v;
    return 0;
}

/* userinfo = user | [user]:password (RFC 3986, as redis-py reads it): a
 * user without a password gets it from the client options (or logs in with
 * an empty one: an ACL user with nopass). */
static int parse_userinfo(redislock__endpoint *ep, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    int rc;
    if (!colon) {
        if (n == 0)
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: empty credentials before '@' "
                                  "(user@, :password@ or user:password@)");
        return set_copy(&ep->username, s, n, "user name");
    }
    if (colon > s && (rc = set_copy(&ep->username, s, (size_t)(colon - s),
                                    "user name")) != 0)
        return rc;
    return set_copy(&ep->password, colon + 1, n - (size_t)(colon - s) - 1,
                    "password");
}

/* A query item name=value with the name n bytes long. */
static int is_item(const char *q, const char *eq, const char *name)
{
    return (size_t)(eq - q) == strlen(name) && !memcmp(q, name, strlen(name));
}

static int parse_query(redislock__endpoint *ep, const char *q)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        const char *v;
        size_t vn;
        int rc;
        if (!eq)
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: query item without '='");
        v = eq + 1;
        vn = n - (size_t)(v - q);
        if (is_item(q, eq, "db")) {
            if (parse_num(v, vn, 0, INT_MAX, &ep->db))
                return redislock__err(REDISLOCK_EINVAL,
                                      "invalid redis URL: bad db number");
        } else if (is_item(q, eq, "password")) {
            if ((rc = set_copy(&ep->password, v, vn, "password")))
                return rc;
        } else if (is_item(q, eq, "user")) {
            if ((rc = set_copy(&ep->username, v, vn, "user name")))
                return rc;
        } else if (is_item(q, eq, "min_replicas")) {
            if (parse_num(v, vn, 0, 1000, &ep->min_replicas))
                return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad "
                                      "min_replicas (a number from 0 to 1000)");
        } else if (is_item(q, eq, "wait_ms")) {
            if (parse_num(v, vn, 1, 86400000, &ep->wait_ms))
                return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad "
                                      "wait_ms (milliseconds, 1 to 86400000)");
        } else {
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: unknown query item (db, user, "
                                  "password, min_replicas and wait_ms are known)");
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int parse_unix(redislock__endpoint *ep, const char *rest)
{
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    int rc;
    if (n == 0 || rest[0] != '/')
        return redislock__err(REDISLOCK_EINVAL,
                              "invalid redis URL: unix:// needs an absolute "
                              "socket path (unix:///path/to.sock)");
    if ((rc = set_copy(&ep->host, rest, n, "socket path")))
        return rc;
    if (strlen(ep->host) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return redislock__err(REDISLOCK_EINVAL,
                              "invalid redis URL: the socket path is %zu bytes; a "
                              "unix socket address holds at most %zu",
                              strlen(ep->host),
                              sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
    ep->is_unix = 1;
    if (q && (rc = parse_query(ep, q + 1)))
        return rc;
    /* for messages: a path may hold any byte but NUL */
    n = strlen(ep->host);
    ep->addr = redislock__malloc(4 * n + 4);
    if (!ep->addr)
        return oom();
    redislock__printable(ep->host, n, ep->addr, 4 * n + 4);
    return 0;
}

/* host[:port] or [v6][:port] from s[0..n) into *host (allocated) and
 * *port (defport when none is given).  0, or EINVAL/ENOMEM. */
static int parse_hostport(const char *s, size_t n, int defport, char **host, int *port)
{
    const char *end = s + n, *p, *hend, *pstr = NULL;
    char buf[100];
    if (n && *s == '[') {
        hend = memchr(s, ']', n);
        if (!hend)
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: unclosed '[' in the host");
        s++;
        p = hend + 1;
        if (p < end && *p != ':')
            return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: junk after ']'");
        if (p < end)
            pstr = p + 1;
    } else {
        hend = memchr(s, ':', n);
        if (hend)
            pstr = hend + 1;
        else
            hend = end;
    }
    if (hend == s)
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: no host");
    *port = defport;
    if (pstr && parse_num(pstr, (size_t)(end - pstr), 1, 65535, port))
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad port '%s'",
                              redislock__quote(pstr, (size_t)(end - pstr), buf, 80));
    for (p = s; p < hend; p++)
        if ((unsigned char)*p <= ' ' || *p == '@' || *p == '/' || *p == '%' || *p == ',')
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: bad character in the host");
    *host = redislock__memdup(s, (size_t)(hend - s));
    return *host ? 0 : oom();
}

/* "host:port" (IPv6 in brackets) for messages. */
char *redislock__hostport_string(const char *host, int port)
{
    char buf[300];
    snprintf(buf, sizeof buf, strchr(host, ':') ? "[%.256s]:%d" : "%.256s:%d", host,
             port);
    return redislock__strdup(buf);
}

/* The credentials before the last '@' ahead of end; *host_start after them. */
static int parse_credentials(redislock__endpoint *ep, const char *rest, const char *end,
                             const char **host_start)
{
    const char *at = NULL, *p;
    int rc;
    for (p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    *host_start = rest;
    if (!at)
        return 0;
    if ((rc = parse_userinfo(ep, rest, (size_t)(at - rest))))
        return rc;
    *host_start = at + 1;
    return 0;
}

static int parse_tcp(redislock__endpoint *ep, const char *rest)
{
    const char *end = rest + strcspn(rest, "/?#");
    const char *host;
    char buf[300];
    int rc;

    if ((rc = parse_credentials(ep, rest, end, &host)) ||
        (rc = parse_hostport(host, (size_t)(end - host), 6379, &ep->host, &ep->port)))
        return rc;
    if (*end == '/') {
        const char *db = end + 1;
        size_t n = strcspn(db, "?#");
        if (n && parse_num(db, n, 0, INT_MAX, &ep->db))
            return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad db number '%s'",
                                  redislock__quote(db, n, buf, 80));
        end = db + n;
    }
    if (*end == '?') {
        if ((rc = parse_query(ep, end + 1)))
            return rc;
    } else if (*end) {
        return redislock__err(REDISLOCK_EINVAL,
                              "invalid redis URL: junk after the host");
    }
    ep->addr = redislock__hostport_string(ep->host, ep->port);
    return ep->addr ? 0 : oom();
}

static int parse_tls(redislock__endpoint *ep, const char *rest)
{
#ifdef HAVE_OPENSSL
    ep->tls = 1;
    return parse_tcp(ep, rest);
#else
    (void)ep;
    (void)rest;
    return redislock__err(REDISLOCK_ENOTSUP,
                          "TLS (rediss://) is not supported: this libredislock was "
                          "built without OpenSSL (configure --with-openssl)");
#endif
}

int redislock__url_parse(const char *url, redislock__endpoint *ep)
{
    int rc;
    memset(ep, 0, sizeof *ep);
    ep->min_replicas = -1;
    if (!url || !*url)
        return redislock__err(REDISLOCK_EINVAL, "the redis URL is empty");
    /* a scheme is case-insensitive (RFC 3986): REDIS:// too */
    if (!strncasecmp(url, "redis://", 8))
        rc = parse_tcp(ep, url + 8);
    else if (!strncasecmp(url, "unix://", 7))
        rc = parse_unix(ep, url + 7);
    else if (!strncasecmp(url, "redis+unix://", 13))
        rc = parse_unix(ep, url + 13);
    else if (!strncasecmp(url, "rediss://", 9))
        rc = parse_tls(ep, url + 9);
    else
        rc = redislock__err(REDISLOCK_EINVAL,
                            "invalid redis URL: unknown scheme (use redis://, "
                            "rediss:// or unix://)");
    if (rc)
        redislock__endpoint_clear(ep);
    return rc;
}

void redislock__endpoint_clear(redislock__endpoint *ep)
{
    redislock__free(ep->host);
    redislock__free(ep->username);
    if (ep->password) {
        memset(ep->password, 0, strlen(ep->password));
        redislock__free(ep->password);
    }
    redislock__free(ep->addr);
    memset(ep, 0, sizeof *ep);
}

int redislock__endpoint_copy(redislock__endpoint *dst, const redislock__endpoint *tmpl,
                             const char *host, int port)
{
    memset(dst, 0, sizeof *dst);
    dst->tls = tmpl->tls;
    dst->db = tmpl->db;
    dst->port = port;
    dst->min_replicas = tmpl->min_replicas;
    dst->wait_ms = tmpl->wait_ms;
    dst->sentinel = tmpl->sentinel;
    dst->host = redislock__strdup(host);
    dst->addr = redislock__hostport_string(host, port);
    if (tmpl->username)
        dst->username = redislock__strdup(tmpl->username);
    if (tmpl->password)
        dst->password = redislock__strdup(tmpl->password);
    if (!dst->host || !dst->addr || (tmpl->username && !dst->username) ||
        (tmpl->password && !dst->password)) {
        redislock__endpoint_clear(dst);
        return oom();
    }
    return 0;
}

/* ------------------------------------------------------ topology URLs */

#define MAX_TOPO_HOSTS 64

static int scheme_is(const char *url, const char *scheme)
{
    return !strncasecmp(url, scheme, strlen(scheme));
}

int redislock__url_kind(const char *url)
{
    if (url && (scheme_is(url, "redis-sentinel://") || scheme_is(url, "rediss-sentinel://")))
        return REDISLOCK__MEMBER_SENTINEL;
    if (url && (scheme_is(url, "redis-cluster://") || scheme_is(url, "rediss-cluster://")))
        return REDISLOCK__MEMBER_CLUSTER;
    return REDISLOCK__MEMBER_FIXED;
}

/* The comma-separated host list s[0..n) into t. */
static int parse_hosts(redislock__topo_url *t, const char *s, size_t n, int defport)
{
    const char *end = s + n;
    size_t count = 1, i;
    int rc;
    for (i = 0; i < n; i++)
        count += s[i] == ',';
    if (count > MAX_TOPO_HOSTS)
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: more than %d hosts",
                              MAX_TOPO_HOSTS);
    t->hosts = redislock__calloc(count, sizeof *t->hosts);
    t->ports = redislock__calloc(count, sizeof *t->ports);
    if (!t->hosts || !t->ports)
        return oom();
    while (s <= end && t->n < count) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *hend = comma ? comma : end;
        if ((rc = parse_hostport(s, (size_t)(hend - s), defport, &t->hosts[t->n],
                                 &t->ports[t->n])))
            return rc;
        t->n++;
        s = hend + 1;
    }
    return 0;
}

/* Sentinel: "/SERVICE[/db]" at p; *after where it ends. */
static int parse_service(redislock__topo_url *t, const char *p, const char **after)
{
    const char *s, *slash;
    size_t n;
    char buf[100];
    int rc;
    if (*p != '/' || (n = strcspn(s = p + 1, "?#")) == 0 || *s == '/')
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: a sentinel URL names "
                              "its service: redis-sentinel://host:port[,...]/SERVICE[/db]");
    slash = memchr(s, '/', n);
    if ((rc = set_copy(&t->service, s, slash ? (size_t)(slash - s) : n, "service name")))
        return rc;
    if (slash) {
        size_t dn = n - (size_t)(slash + 1 - s);
        if (dn && parse_num(slash + 1, dn, 0, INT_MAX, &t->tmpl.db))
            return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad db number '%s'",
                                  redislock__quote(slash + 1, dn, buf, 80));
    }
    *after = s + n;
    return 0;
}

static int parse_topo(redislock__topo_url *t, const char *rest)
{
    const char *end = rest + strcspn(rest, "/?#"), *host, *after = end;
    int rc, sentinel = t->kind == REDISLOCK__MEMBER_SENTINEL;
    if ((rc = parse_credentials(&t->tmpl, rest, end, &host)) ||
        (rc = parse_hosts(t, host, (size_t)(end - host), sentinel ? 26379 : 6379)))
        return rc;
    if (sentinel && (rc = parse_service(t, end, &after)))
        return rc;
    if (!sentinel && *after == '/' && after[1] != '?' && after[1] != '\0')
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: a cluster has only "
                              "database 0 (no /db in redis-cluster://)");
    if (!sentinel && *after == '/')
        after++;
    if (*after == '?')
        return parse_query(&t->tmpl, after + 1);
    if (*after)
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: junk after the hosts");
    return 0;
}

int redislock__topo_url_parse(const char *url, redislock__topo_url *t)
{
    int rc, tls;
    size_t skip;
    memset(t, 0, sizeof *t);
    t->tmpl.min_replicas = -1;
    t->kind = redislock__url_kind(url);
    if (t->kind == REDISLOCK__MEMBER_FIXED)
        return redislock__err(REDISLOCK_EINVAL, "not a sentinel or cluster URL");
    tls = url[5] == 's' || url[5] == 'S';
    skip = strlen(t->kind == REDISLOCK__MEMBER_SENTINEL ? "redis-sentinel://"
                                                        : "redis-cluster://") + (size_t)tls;
#ifndef HAVE_OPENSSL
    if (tls)
        return redislock__err(REDISLOCK_ENOTSUP,
                              "TLS (%.*s) is not supported: this libredislock was built "
                              "without OpenSSL (configure --with-openssl)",
                              (int)skip, url);
#endif
    t->tmpl.tls = tls;
    rc = parse_topo(t, url + skip);
    if (!rc && t->tmpl.db && t->kind == REDISLOCK__MEMBER_CLUSTER)
        rc = redislock__err(REDISLOCK_EINVAL, "invalid redis URL: a cluster has only "
                            "database 0");
    if (rc)
        redislock__topo_url_clear(t);
    return rc;
}

void redislock__topo_url_clear(redislock__topo_url *t)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        redislock__free(t->hosts[i]);
    redislock__free(t->hosts);
    redislock__free(t->ports);
    redislock__free(t->service);
    redislock__endpoint_clear(&t->tmpl);
    memset(t, 0, sizeof *t);
}
