/* The main mode: acquire NAME (renewed automatically), run COMMAND, release
 * when it ends.  A lost lock (also one held past --max-hold) is reported on
 * stderr and COMMAND's process group gets --lost-signal (SIGTERM by default).  COMMAND finds
 * REDISLOCK_NAME, REDISLOCK_OWNER and, with --fencing, REDISLOCK_TOKEN in
 * its environment. */
#include "tool.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct run_state {
    const rlt_config *cfg;
    redislock *lk;
    int pid;
    int lost;
    char qname[1100]; /* the name for messages: one line whatever it holds */
} run_state;

/* On the renewal thread: only tell the main loop. */
static void lost_cb(redislock *lk, int reason, void *userdata)
{
    rlt_note_lost();
}

static void report_lost(run_state *st, int running)
{
    const rlt_config *cfg = st->cfg;
    int reason = redislock_lost_reason(st->lk);
    const char *why = reason == REDISLOCK_LOST_MAX_HOLD
                          ? "it was held for --max-hold"
                          : redislock_lost_reason_string(reason);
    st->lost = 1;
    if (running && cfg->lost_signal) {
        rlt_err("%s %s was lost while COMMAND ran: %s; sending its process group "
                "signal %d (%s)",
                rlt_noun(cfg), st->qname, why, cfg->lost_signal, strsignal(cfg->lost_signal));
        rlt_child_signal(cfg->lost_signal);
    } else {
        rlt_err("%s %s was lost while COMMAND ran: %s", rlt_noun(cfg), st->qname, why);
    }
}

static void on_lost(void *arg)
{
    report_lost(arg, 1);
}

static int64_t validity_ms(void *arg)
{
    const run_state *st = arg;
    return redislock_validity_ms(st->lk);
}

/* "redislock@<hostname>:" with anything an owner id may not hold replaced
 * by '_': --reset-all --owner-prefix "redislock@<hostname>:" clears the
 * tool's locks of one host, and a service that clears its own stale locks
 * at start-up with a prefix of its own ("<service>@<host>:", or the old
 * advice "<host>:") never matches them. */
static void host_prefix(char *buf, size_t size)
{
    char host[128];
    size_t i;
    if (gethostname(host, sizeof host) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (i = 0; host[i]; i++)
        if (host[i] <= ' ' || host[i] >= 127)
            host[i] = '_';
    snprintf(buf, size, "redislock@%s:", host);
}

/* -1 when the lock is held, else the exit status (maybe 0 with -E 0). */
static int acquire(const run_state *st)
{
    const rlt_config *cfg = st->cfg;
    redislock *lk = st->lk;
    int64_t t0 = rlt_now_ms();
    int rc;
    if (cfg->timeout_ms != 0)
        rlt_info(cfg, "waiting for %s %s (as %s)", rlt_noun(cfg), st->qname, redislock_id(lk));
    rlt_signals_waiting(lk);
    rc = redislock_acquire(lk, cfg->timeout_ms);
    rlt_signals_waiting(NULL);
    switch (rc) {
    case REDISLOCK_ECANCELED:
        rlt_info(cfg, "signal %d while waiting for %s %s: stopped waiting, nothing "
                 "held", rlt_signals_cancelled(), rlt_noun(cfg), st->qname);
        return 128 + rlt_signals_cancelled();
    case REDISLOCK_OK:
        rlt_info(cfg, "got %s %s as %s after %lld ms", rlt_noun(cfg), st->qname, redislock_id(lk),
                 (long long)(rlt_now_ms() - t0));
        return -1;
    case REDISLOCK_EBUSY:
    case REDISLOCK_ETIMEDOUT:
    case REDISLOCK_EALREADY:
        if (!cfg->quiet)
            rlt_err("%s", redislock_errmsg(lk));
        return cfg->conflict_code;
    default:
        rlt_err("%s", redislock_errmsg(lk));
        return rlt_exit_for_server(rc);
    }
}

static void release(run_state *st)
{
    const rlt_config *cfg = st->cfg;
    int rc;
    if (!st->lost && redislock_lost_reason(st->lk))
        report_lost(st, 0); /* reported after COMMAND ended */
    if (st->lost) {
        /* past --max-hold the key is still ours: free it for the next */
        if (redislock_lost_reason(st->lk) == REDISLOCK_LOST_MAX_HOLD)
            (void)redislock_release(st->lk);
        return;
    }
    rc = redislock_release(st->lk);
    if (rc == REDISLOCK_ENOTHELD) {
        rlt_err("%s", redislock_errmsg(st->lk));
        st->lost = 1;
    } else if (rc) {
        rlt_err("cannot release %s %s (it expires by itself): %s", rlt_noun(cfg), st->qname,
                redislock_errmsg(st->lk));
    } else {
        rlt_info(cfg, "released %s %s", rlt_noun(cfg), st->qname);
    }
}

/* Whether one of the Redis URLs in s (one or several, as $REDISLOCK_URL
 * takes them) carries a password: in a user part that has one
 * (scheme://[user]:password@host...) or in a query (?password=...). */
static int url_has_password(const char *s)
{
    const char *p;
    if (strstr(s, "?password=") || strstr(s, "&password="))
        return 1;
    for (p = strstr(s, "://"); p; p = strstr(p, "://")) {
        const char *at;
        size_t host;
        p += 3;
        host = strcspn(p, "/? \t\n");
        at = memchr(p, '@', host);
        if (at && memchr(p, ':', (size_t)(at - p)))
            return 1;
    }
    return 0;
}

/* The Redis passwords stay out of COMMAND's environment (COMMAND may run
 * other people's code, log its environment, or pass it on):
 * $REDISLOCK_PASSWORD, $REDISLOCK_SENTINEL_PASSWORD, and $REDISLOCK_URL
 * when it holds one, are removed, unless --keep-credentials.  0, or -1
 * with errno. */
static int drop_credentials(const rlt_config *cfg)
{
    const char *url = getenv("REDISLOCK_URL");
    if (cfg->keep_credentials)
        return 0;
    if (url && url_has_password(url) && unsetenv("REDISLOCK_URL"))
        return -1;
    return unsetenv("REDISLOCK_PASSWORD") || unsetenv("REDISLOCK_SENTINEL_PASSWORD");
}

/* COMMAND's environment: who holds the lock, and the fencing token.  An
 * inherited REDISLOCK_TOKEN (a redislock inside a redislock) is removed
 * without --fencing; so are the credentials (drop_credentials()).  0, or
 * the exit status after a message. */
static int export_env(const rlt_config *cfg, redislock *lk)
{
    char token[32];
    int rc;
    snprintf(token, sizeof token, "%" PRIu64, redislock_token(lk));
    rc = setenv("REDISLOCK_NAME", cfg->name, 1) ||
         setenv("REDISLOCK_OWNER", redislock_id(lk), 1) ||
         (cfg->fencing ? setenv("REDISLOCK_TOKEN", token, 1)
                       : unsetenv("REDISLOCK_TOKEN")) ||
         drop_credentials(cfg);
    if (rc) {
        rlt_err("cannot set COMMAND's environment: %s", strerror(errno));
        return RLT_EXIT_OSERR;
    }
    return 0;
}

int rlt_run(const rlt_config *cfg, redislock_client *c)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    run_state st = { cfg, NULL, 0, 0, "" };
    rlt_watch watch = { on_lost, validity_ms, &st };
    char prefix[160];
    int rc, status, sig;

    rlt_quote(cfg->name, st.qname, sizeof st.qname);
    if ((status = rlt_signals_init()))
        return status;
    host_prefix(prefix, sizeof prefix);
    o.expire_ms = cfg->expire_ms;
    o.id = cfg->id;
    o.id_prefix = prefix;
    o.auto_renew = 1;
    o.on_lost = lost_cb;
    o.fencing = cfg->fencing;
    o.max_hold_ms = cfg->max_hold_ms;
    o.fair = cfg->fair;
    o.permits = cfg->permits;
    if ((rc = redislock_new(&st.lk, c, cfg->name, &o))) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for(rc);
    }
    if ((status = acquire(&st)) >= 0) {
        redislock_free(st.lk);
        return status;
    }
    rlt_signals_hold();
    if ((sig = rlt_signals_pending())) {
        rlt_info(cfg, "signal %d arrived: COMMAND not started", sig);
        status = 128 + sig;
    } else if ((status = export_env(cfg, st.lk)) == 0 &&
               (status = rlt_child_start(cfg, &watch, &st.pid)) == 0) {
        status = rlt_child_wait(st.pid);
    }
    release(&st);
    rlt_child_done();
    redislock_free(st.lk);
    return st.lost && status == 0 ? RLT_EXIT_LOST : status;
}
