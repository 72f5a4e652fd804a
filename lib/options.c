/* Client and lock options: the caller's struct as its version laid it
 * out; client options are also checked and applied to a new client with
 * the defaults (lock options are checked by handle.c). */
#include "internal.h"

#include <stddef.h>
#include <string.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_COMMAND_TIMEOUT_MS 2000
#define DEFAULT_SIGNAL_EXPIRE_MS 1000
#define DEFAULT_MAX_IDLE 8
#define DEFAULT_MASTER_TIMEOUT_MS 50
#define DEFAULT_DRIFT_PPM 10000
#define DEFAULT_SENTINEL_TIMEOUT_MS 300
#define DEFAULT_WAIT_MS 50
#define MAX_DRIFT_PPM 500000
/* No timeout longer than a day: a larger one is a mistake (and near
 * INT64_MAX microseconds it would overflow). */
#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)

/* Version 1's layout: int milliseconds, no clock_drift_ppm. */
typedef struct options_v1 {
    unsigned version;
    int connect_timeout_ms, command_timeout_ms;
    const char *key_prefix;
    int hash_tag, signal_expire_ms, max_idle_connections;
    const char *username, *password;
    redislock_log_fn log;
    void *log_userdata;
    int log_level, master_timeout_ms;
} options_v1;

/* Version 2's layout ends with clock_drift_ppm: a version-2 caller's
 * struct is not read past it. */
#define V2_SIZE (offsetof(redislock_client_options, clock_drift_ppm) + sizeof(int))

/* Version 3's layout ends with tls_insecure. */
#define V3_SIZE (offsetof(redislock_client_options, tls_insecure) + sizeof(int))

/* The caller's options in this version's layout; the fields its version
 * does not have keep their defaults. */
static void upgrade(const redislock_client_options *o, redislock_client_options *out)
{
    const options_v1 *v;
    if (o->version >= 4) {
        *out = *o;
        return;
    }
    if (o->version == 3) {
        memcpy(out, o, V3_SIZE);
        return;
    }
    if (o->version == 2) {
        memcpy(out, o, V2_SIZE);
        return;
    }
    v = (const options_v1 *)(const void *)o;
    out->connect_timeout_ms = v->connect_timeout_ms;
    out->command_timeout_ms = v->command_timeout_ms;
    out->key_prefix = v->key_prefix;
    out->hash_tag = v->hash_tag;
    out->signal_expire_ms = v->signal_expire_ms;
    out->max_idle_connections = v->max_idle_connections;
    out->username = v->username;
    out->password = v->password;
    out->log = v->log;
    out->log_userdata = v->log_userdata;
    out->log_level = v->log_level;
    out->master_timeout_ms = v->master_timeout_ms;
}

/* A TLS file or name option: NULL and "" both mean "not given". */
static const char *given(const char *s)
{
    return s && *s ? s : NULL;
}

static int check(const redislock_client_options *o)
{
    if (o->connect_timeout_ms < 0 || o->command_timeout_ms < 0 ||
        o->master_timeout_ms < 0 || o->signal_expire_ms < 0 ||
        o->sentinel_timeout_ms < 0 || o->wait_ms < 0)
        return redislock__err(REDISLOCK_EINVAL, "a client timeout is negative");
    if (o->connect_timeout_ms > MAX_TIMEOUT_MS || o->command_timeout_ms > MAX_TIMEOUT_MS ||
        o->master_timeout_ms > MAX_TIMEOUT_MS || o->signal_expire_ms > MAX_TIMEOUT_MS ||
        o->sentinel_timeout_ms > MAX_TIMEOUT_MS || o->wait_ms > MAX_TIMEOUT_MS)
        return redislock__err(REDISLOCK_EINVAL,
                              "a client timeout is longer than a day (%lld ms)",
                              MAX_TIMEOUT_MS);
    if (o->min_replicas < 0 || o->min_replicas > 1000)
        return redislock__err(REDISLOCK_EINVAL, "min_replicas %d is out of range (0 to "
                              "1000)", o->min_replicas);
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
    if (given(o->tls_key_file) && !given(o->tls_cert_file))
        return redislock__err(REDISLOCK_EINVAL,
                              "tls_key_file is set without tls_cert_file");
    return 0;
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

static int64_t or_default(int64_t v, int64_t def)
{
    return v ? v : def;
}

int redislock__client_opts(redislock_client *c, const redislock_client_options *opts)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    int rc, oom = 0;
    if (opts && opts->version > REDISLOCK_CLIENT_OPTIONS_VERSION)
        return redislock__err(REDISLOCK_EINVAL,
                              "client options version %u is newer than this "
                              "library (%d)",
                              opts->version, REDISLOCK_CLIENT_OPTIONS_VERSION);
    if (opts)
        upgrade(opts, &o);
    if ((rc = check(&o)))
        return rc;
    c->connect_timeout_ms = or_default(o.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    c->command_timeout_ms = or_default(o.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
    c->master_timeout_ms = or_default(o.master_timeout_ms, DEFAULT_MASTER_TIMEOUT_MS);
    c->signal_expire_ms = or_default(o.signal_expire_ms, DEFAULT_SIGNAL_EXPIRE_MS);
    c->max_idle = o.max_idle_connections ? o.max_idle_connections : DEFAULT_MAX_IDLE;
    c->drift_ppm = o.clock_drift_ppm < 0 ? 0 : or_default(o.clock_drift_ppm, DEFAULT_DRIFT_PPM);
    c->hash_tag = o.hash_tag != 0;
    c->log = o.log;
    c->log_userdata = o.log_userdata;
    c->log_level = o.log_level ? o.log_level : REDISLOCK_LOG_WARN;
    c->key_prefix = dup_opt(o.key_prefix ? o.key_prefix : "", &oom);
    c->username = dup_opt(o.username, &oom);
    c->password = dup_opt(o.password, &oom);
    c->tls.ca_file = dup_opt(given(o.tls_ca_file), &oom);
    c->tls.ca_dir = dup_opt(given(o.tls_ca_dir), &oom);
    c->tls.cert_file = dup_opt(given(o.tls_cert_file), &oom);
    c->tls.key_file = dup_opt(given(o.tls_key_file), &oom);
    c->tls.server_name = dup_opt(given(o.tls_server_name), &oom);
    c->tls.insecure = o.tls_insecure != 0;
    c->sentinel_username = dup_opt(o.sentinel_username, &oom);
    c->sentinel_password = dup_opt(o.sentinel_password, &oom);
    c->sentinel_timeout_ms = or_default(o.sentinel_timeout_ms, DEFAULT_SENTINEL_TIMEOUT_MS);
    c->min_replicas = o.min_replicas;
    c->wait_ms = or_default(o.wait_ms, DEFAULT_WAIT_MS);
    if (oom)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory creating a client");
    return 0;
}

/* Version 2 of the lock options ends with heartbeat_ms (no fair, permits,
 * waiter_lease_ms, grant_lease_ms). */
#define LOCK_V2_SIZE (offsetof(redislock_options, heartbeat_ms) + sizeof(int64_t))

/* Version 1 of the lock options: the same fields as version 2 up to
 * on_lost_userdata, nothing after (no fencing, max_hold_ms, heartbeat_ms). */
typedef struct lock_options_v1 {
    unsigned version;
    int64_t expire_ms;
    const char *id;
    const char *id_prefix;
    int auto_renew;
    int64_t renew_interval_ms;
    redislock_lost_fn on_lost;
    void *on_lost_userdata;
} lock_options_v1;

int redislock__lock_opts(const redislock_options *opts, redislock_options *out)
{
    static const redislock_options defaults = REDISLOCK_OPTIONS_INIT;
    const lock_options_v1 *v;
    if (!opts) {
        *out = defaults;
        return 0;
    }
    if (opts->version > REDISLOCK_OPTIONS_VERSION)
        return redislock__err(REDISLOCK_EINVAL,
                              "lock options version %u is newer than this "
                              "library (%d)",
                              opts->version, REDISLOCK_OPTIONS_VERSION);
    if (opts->version >= 3) {
        *out = *opts;
        return 0;
    }
    if (opts->version == 2) {
        /* a version-2 caller's struct ends with heartbeat_ms */
        memset(out, 0, sizeof *out);
        memcpy(out, opts, LOCK_V2_SIZE);
        return 0;
    }
    /* a version-1 caller's struct ends before the version-2 fields */
    v = (const lock_options_v1 *)(const void *)opts;
    memset(out, 0, sizeof *out);
    out->version = v->version;
    out->expire_ms = v->expire_ms;
    out->id = v->id;
    out->id_prefix = v->id_prefix;
    out->auto_renew = v->auto_renew;
    out->renew_interval_ms = v->renew_interval_ms;
    out->on_lost = v->on_lost;
    out->on_lost_userdata = v->on_lost_userdata;
    return 0;
}
