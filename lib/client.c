/* The client: options, masters, logging. */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_COMMAND_TIMEOUT_MS 2000
#define DEFAULT_SIGNAL_EXPIRE_MS 1000
#define DEFAULT_MAX_IDLE 8
#define DEFAULT_MASTER_TIMEOUT_MS 50
#define MAX_MASTERS 31
#define DEFAULT_DRIFT_PPM 10000
#define MAX_DRIFT_PPM 500000

/* The options as the caller's version laid them out; later fields default. */
static void copy_opts(const redislock_client_options *o, redislock_client_options *out)
{
    static const redislock_client_options defaults = REDISLOCK_CLIENT_OPTIONS_INIT;
    size_t n = sizeof *out;
    *out = defaults;
    if (o->version <= 1)
        n = offsetof(redislock_client_options, clock_drift_ppm);
    memcpy(out, o, n);
}

static int check_opts(const redislock_client_options *o)
{
    if (o->connect_timeout_ms < 0 || o->command_timeout_ms < 0 ||
        o->master_timeout_ms < 0)
        return redislock__err(REDISLOCK_EINVAL, "a client timeout is negative");
    if (o->signal_expire_ms < 0)
        return redislock__err(REDISLOCK_EINVAL, "signal_expire_ms is negative");
    if (o->max_idle_connections < 0)
        return redislock__err(REDISLOCK_EINVAL, "max_idle_connections is negative");
    if (o->log_level < 0 || o->log_level > REDISLOCK_LOG_DEBUG)
        return redislock__err(REDISLOCK_EINVAL, "log_level %d is out of range",
                              o->log_level);
    if (o->clock_drift_ppm < -1 || o->clock_drift_ppm > MAX_DRIFT_PPM)
        return redislock__err(REDISLOCK_EINVAL,
                              "clock_drift_ppm %d is out of range (-1 for none, 0 for "
                              "the default of %d, at most %d)",
                              o->clock_drift_ppm, DEFAULT_DRIFT_PPM, MAX_DRIFT_PPM);
    if (o->key_prefix && strlen(o->key_prefix) > 256)
        return redislock__err(REDISLOCK_EINVAL, "key_prefix is longer than 256 bytes");
    return 0;
}

/* Two URLs that name the same server (whatever the db): counted twice they
 * would make one server look like a majority.  Only the spelling is compared
 * ("localhost" and "127.0.0.1" are not recognised as one). */
static int same_server(const redislock__endpoint *a, const redislock__endpoint *b)
{
    if (a->is_unix != b->is_unix)
        return 0;
    if (a->is_unix)
        return strcmp(a->host, b->host) == 0;
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

static char *dup_opt(const char *s, int *oom)
{
    char *d;
    if (!s)
        return NULL;
    d = redislock__strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

int redislock_client_new(redislock_client **out, const char *url,
                         const redislock_client_options *opts)
{
    const char *urls[1];
    redislock__err_clear();
    if (out && !url) {
        *out = NULL;
        return redislock__err(REDISLOCK_EINVAL, "redislock_client_new: url is NULL");
    }
    urls[0] = url;
    return redislock_client_new_multi(out, urls, 1, opts);
}

int redislock_client_new_multi(redislock_client **out, const char *const *urls,
                               size_t n, const redislock_client_options *opts)
{
    redislock_client_options oc = REDISLOCK_CLIENT_OPTIONS_INIT;
    const redislock_client_options *o = &oc;
    redislock_client *c;
    size_t i, j;
    int rc, oom = 0;

    redislock__err_clear();
    if (!out)
        return redislock__err(REDISLOCK_EINVAL, "redislock_client_new: out is NULL");
    *out = NULL;
    if (!urls || n == 0 || n > MAX_MASTERS)
        return redislock__err(REDISLOCK_EINVAL,
                              "a client needs 1 to %d master URLs (got %zu)",
                              MAX_MASTERS, urls ? n : 0);
    for (i = 0; i < n; i++)
        if (!urls[i])
            return redislock__err(REDISLOCK_EINVAL, "master URL %zu is NULL", i + 1);
    if (opts && opts->version > REDISLOCK_CLIENT_OPTIONS_VERSION)
        return redislock__err(REDISLOCK_EINVAL,
                              "client options version %u is newer than this "
                              "library (%d)",
                              opts->version, REDISLOCK_CLIENT_OPTIONS_VERSION);
    if (opts)
        copy_opts(opts, &oc);
    if ((rc = check_opts(o)))
        return rc;
    c = redislock__calloc(1, sizeof *c);
    if (!c)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms
                                                  : DEFAULT_CONNECT_TIMEOUT_MS;
    c->command_timeout_ms = o->command_timeout_ms ? o->command_timeout_ms
                                                  : DEFAULT_COMMAND_TIMEOUT_MS;
    c->master_timeout_ms = o->master_timeout_ms ? o->master_timeout_ms
                                                : DEFAULT_MASTER_TIMEOUT_MS;
    c->signal_expire_ms = o->signal_expire_ms ? o->signal_expire_ms
                                              : DEFAULT_SIGNAL_EXPIRE_MS;
    c->max_idle = o->max_idle_connections ? o->max_idle_connections
                                          : DEFAULT_MAX_IDLE;
    c->drift_ppm = o->clock_drift_ppm == 0    ? DEFAULT_DRIFT_PPM
                   : o->clock_drift_ppm < 0 ? 0
                                            : o->clock_drift_ppm;
    c->hash_tag = o->hash_tag != 0;
    c->log = o->log;
    c->log_userdata = o->log_userdata;
    c->log_level = o->log_level ? o->log_level : REDISLOCK_LOG_WARN;
    c->key_prefix = dup_opt(o->key_prefix ? o->key_prefix : "", &oom);
    c->username = dup_opt(o->username, &oom);
    c->password = dup_opt(o->password, &oom);
    c->masters = redislock__calloc(n, sizeof *c->masters);
    if (oom || !c->masters) {
        redislock_client_free(c);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    }
    for (i = 0; i < n; i++) {
        if ((rc = redislock__master_init(&c->masters[i], c, urls[i]))) {
            if (n > 1)
                rc = redislock__err(rc, "master %zu: %s", i + 1, redislock_last_error());
            redislock_client_free(c);
            return rc;
        }
        c->nmasters = i + 1;
        for (j = 0; j < i; j++)
            if (same_server(&c->masters[j].ep, &c->masters[i].ep)) {
                rc = redislock__err(REDISLOCK_EINVAL,
                                    "masters %zu and %zu are the same server (%s): "
                                    "majority mode needs independent masters",
                                    j + 1, i + 1, c->masters[i].ep.addr);
                redislock_client_free(c);
                return rc;
            }
    }
    c->quorum = n / 2 + 1;
    c->renewer = redislock__renewer_new(c);
    if (!c->renewer) {
        redislock_client_free(c);
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    }
    redislock__fork_register(c);
    *out = c;
    return 0;
}

void redislock_client_free(redislock_client *c)
{
    size_t i;
    if (!c)
        return;
    if (c->renewer) {
        redislock__fork_unregister(c);
        redislock__renewer_free(c->renewer);
    }
    for (i = 0; i < c->nmasters; i++)
        redislock__master_destroy(&c->masters[i]);
    redislock__free(c->masters);
    redislock__free(c->key_prefix);
    redislock__free(c->username);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        redislock__free(c->password);
    }
    redislock__free(c);
}

void redislock__log(const redislock_client *c, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (!c || !c->log || level > c->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log(c->log_userdata, level, buf);
}

int64_t redislock__io_deadline(const redislock_client *c, int64_t limit)
{
    return redislock__min_deadline(redislock__after_ms(c->command_timeout_ms),
                                   limit);
}

int64_t redislock__step_deadline(const redislock_client *c, int connect,
                                 int64_t limit)
{
    int ms = c->nmasters > 1 ? c->master_timeout_ms
             : connect       ? c->connect_timeout_ms
                             : c->command_timeout_ms;
    return redislock__min_deadline(redislock__after_ms(ms), limit);
}
