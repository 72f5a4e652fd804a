/* TLS for redislock(1): redis-cli's option spellings (--tls, --cacert,
 * --cacertdir, --cert, --key, --sni, --insecure), the environment variables
 * that keep paths off cron lines, and the client options they make. */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int rlt_tls_option(rlt_config *cfg, int opt, const char *arg)
{
    rlt_tls *t = &cfg->tls;
    switch (opt) {
    case RLT_OPT_TLS:
        t->on = 1;
        break;
    case RLT_OPT_CACERT:
        t->cacert = arg;
        break;
    case RLT_OPT_CACERTDIR:
        t->cacertdir = arg;
        break;
    case RLT_OPT_CERT:
        t->cert = arg;
        break;
    case RLT_OPT_KEY:
        t->key = arg;
        break;
    case RLT_OPT_SNI:
        t->sni = arg;
        break;
    case RLT_OPT_INSECURE:
        t->insecure = 1;
        break;
    default:
        break;
    }
    return -1;
}

void rlt_tls_usage(void)
{
    printf(
"\n"
"TLS (rediss://HOST[:PORT][/DB] URLs; the server's certificate and name are\n"
"verified against the system's CAs unless told otherwise):\n"
"      --tls                connect with TLS: redis:// URLs become rediss://\n"
"      --cacert FILE        trust the CAs in FILE (PEM) instead of the system's;\n"
"                           default $REDISLOCK_CACERT\n"
"      --cacertdir DIR      trust the CAs in DIR (hashed, openssl rehash)\n"
"      --cert FILE          client certificate (PEM) for servers that require one;\n"
"                           default $REDISLOCK_CERT\n"
"      --key FILE           its private key (PEM, unencrypted); default\n"
"                           $REDISLOCK_KEY, else the key in --cert's FILE\n"
"      --sni NAME           the server name to send and to verify, instead of\n"
"                           the URL's host\n"
"      --insecure           do not verify the server's certificate (tests only;\n"
"                           a warning on stderr says so)\n"
"A TLS failure (handshake, certificate) exits 69 like an unreachable server.\n");
}

const char *rlt_tls_describe(void)
{
    static char buf[200];
    const char *v = redislock_tls_version();
    if (!v)
        return "no TLS";
    snprintf(buf, sizeof buf, "TLS: %s", v);
    return buf;
}

/* The option's value, else the environment variable's if not empty. */
static const char *or_env(const char *v, const char *var)
{
    const char *e;
    if (v)
        return v;
    e = getenv(var);
    return e && *e ? e : NULL;
}

/* --tls: "redis://" -> "rediss://" (and redis-sentinel:// ->
 * rediss-sentinel://); a socket URL cannot take TLS.  The copies live (in
 * copies[]) until the tool exits. */
static int tls_url(size_t i, const char *url, const char **out)
{
    static char *copies[RLT_MAX_URLS];
    char *s;
    if (!strncasecmp(url, "unix:", 5) || !strncasecmp(url, "redis+unix:", 11)) {
        rlt_err("--tls: '%s' is a unix socket: TLS needs redis:// or rediss:// "
                "(see --help)", url);
        return RLT_EXIT_USAGE;
    }
    if (strncasecmp(url, "redis://", 8) && strncasecmp(url, "redis-", 6)) {
        *out = url; /* rediss:// already, or an error the library names */
        return -1;
    }
    if (!(s = malloc(strlen(url) + 2))) {
        rlt_err("out of memory");
        return RLT_EXIT_OSERR;
    }
    memcpy(s, "rediss", 6); /* the scheme's "redis" and one more 's' */
    memcpy(s + 6, url + 5, strlen(url + 5) + 1);
    free(copies[i]);
    *out = copies[i] = s;
    return -1;
}

int rlt_tls_prepare(const rlt_config *cfg, redislock_client_options *o,
                    const char **urls)
{
    const rlt_tls *t = &cfg->tls;
    size_t i;
    int rc;
    for (i = 0; i < cfg->nurls; i++) {
        urls[i] = cfg->urls[i];
        if (t->on && (rc = tls_url(i, cfg->urls[i], &urls[i])) >= 0)
            return rc;
    }
    o->tls_ca_file = or_env(t->cacert, "REDISLOCK_CACERT");
    o->tls_ca_dir = t->cacertdir;
    o->tls_cert_file = or_env(t->cert, "REDISLOCK_CERT");
    o->tls_key_file = or_env(t->key, "REDISLOCK_KEY");
    o->tls_server_name = t->sni;
    o->tls_insecure = t->insecure;
    for (i = 0; t->insecure && i < cfg->nurls; i++)
        if (!strncasecmp(urls[i], "rediss://", 9)) {
            /* the library logs it too, but only to a log function */
            rlt_err("warning: --insecure: the server's certificate and name are not "
                    "verified; anyone on the path can pose as the server");
            break;
        }
    if (o->tls_key_file && !o->tls_cert_file) {
        rlt_err("--key (or $REDISLOCK_KEY) needs --cert (or $REDISLOCK_CERT) "
                "(see --help)");
        return RLT_EXIT_USAGE;
    }
    return -1;
}
