/* URL parsing:
 *   redis://[[user]:password@]host[:port][/db]
 *   rediss://[[user]:password@]host[:port][/db]      (TLS, when built with it)
 *   unix:///path/to.sock[?db=N&user=U&password=P]   (also redis+unix://)
 * Percent-escapes are decoded in the user, the password and the path.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* userinfo = [user]:password | password-less user is not meaningful */
static int parse_userinfo(redislock__endpoint *ep, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    int rc;
    if (!colon)
        return redislock__err(REDISLOCK_EINVAL,
                              "invalid redis URL: credentials must be "
                              "[user]:password@");
    if (colon > s && (rc = set_copy(&ep->username, s, (size_t)(colon - s),
                                    "user name")) != 0)
        return rc;
    return set_copy(&ep->password, colon + 1, n - (size_t)(colon - s) - 1,
                    "password");
}

static int parse_query(redislock__endpoint *ep, const char *q)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        int rc;
        if (!eq)
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: query item without '='");
        if ((size_t)(eq - q) == 2 && !memcmp(q, "db", 2)) {
            if (parse_num(eq + 1, n - 3, 0, INT_MAX, &ep->db))
                return redislock__err(REDISLOCK_EINVAL,
                                      "invalid redis URL: bad db number");
        } else if ((size_t)(eq - q) == 8 && !memcmp(q, "password", 8)) {
            if ((rc = set_copy(&ep->password, eq + 1, n - 9, "password")))
                return rc;
        } else if ((size_t)(eq - q) == 4 && !memcmp(q, "user", 4)) {
            if ((rc = set_copy(&ep->username, eq + 1, n - 5, "user name")))
                return rc;
        } else {
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: unknown query item "
                                  "(db, user and password are known)");
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

static int parse_tcp(redislock__endpoint *ep, const char *rest)
{
    const char *end = rest + strcspn(rest, "/?#");
    const char *at = NULL, *p, *host, *hend, *port = NULL;
    char buf[300];
    int rc;

    /* The last '@' before the path ends the credentials. */
    for (p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (at) {
        if ((rc = parse_userinfo(ep, rest, (size_t)(at - rest))))
            return rc;
        host = at + 1;
    } else {
        host = rest;
    }
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (!hend)
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: unclosed '[' in the host");
        host++;
        p = hend + 1;
        if (p < end && *p != ':')
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: junk after ']'");
        if (p < end)
            port = p + 1;
    } else {
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend)
            port = hend + 1;
        else
            hend = end;
    }
    if (hend == host)
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: no host");
    ep->port = 6379;
    if (port && parse_num(port, (size_t)(end - port), 1, 65535, &ep->port))
        return redislock__err(REDISLOCK_EINVAL, "invalid redis URL: bad port '%s'",
                              redislock__quote(port, (size_t)(end - port), buf, 80));
    for (p = host; p < hend; p++)
        if ((unsigned char)*p <= ' ' || *p == '@' || *p == '/' || *p == '%')
            return redislock__err(REDISLOCK_EINVAL,
                                  "invalid redis URL: bad character in the host");
    ep->host = redislock__memdup(host, (size_t)(hend - host));
    if (!ep->host)
        return oom();
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
    snprintf(buf, sizeof buf, strchr(ep->host, ':') ? "[%.256s]:%d" : "%.256s:%d",
             ep->host, ep->port);
    ep->addr = redislock__strdup(buf);
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
    if (!url || !*url)
        return redislock__err(REDISLOCK_EINVAL, "the redis URL is empty");
    if (!strncmp(url, "redis://", 8))
        rc = parse_tcp(ep, url + 8);
    else if (!strncmp(url, "unix://", 7))
        rc = parse_unix(ep, url + 7);
    else if (!strncmp(url, "redis+unix://", 13))
        rc = parse_unix(ep, url + 13);
    else if (!strncmp(url, "rediss://", 9))
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
