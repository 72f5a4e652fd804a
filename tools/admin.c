/* --status, --reset, --reset-all and --list: one round trip each (a SCAN
 * walk for --reset-all and --list), lines on stdout (with --json, for
 * --status and --list, JSON). */
#include "tool.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *kind_name(int kind)
{
    return kind == REDISLOCK_KIND_SEMAPHORE ? "semaphore"
           : kind == REDISLOCK_KIND_FAIR    ? "fair"
                                            : "mutex";
}

/* --status --json: {"name":..,"held":..,"owner":..,"ttl_ms":..} and, for
 * a fair lock or a semaphore, "kind", "holders", "permits", "queued". */
static void status_json(const rlt_config *cfg, const redislock_info *info,
                        const redislock_queue_info *qi)
{
    putchar('{');
    rlt_put_json("name", cfg->name, strlen(cfg->name));
    printf(",\"held\":%s,", info->held ? "true" : "false");
    if (info->held)
        rlt_put_json("owner", info->owner, strlen(info->owner));
    else
        fputs("\"owner\":null", stdout);
    printf(",\"ttl_ms\":%" PRId64, info->ttl_ms);
    if (qi->kind != REDISLOCK_KIND_MUTEX)
        printf(",\"kind\":\"%s\",\"holders\":%" PRId64 ",\"permits\":%" PRId64
               ",\"queued\":%" PRId64, kind_name(qi->kind), qi->holders, qi->permits,
               qi->queued);
    puts("}");
}

/* --status: "held owner=ID ttl_ms=N" or "free", and for a fair lock or a
 * semaphore "holders=H permits=N queued=Q" after "held"/"free". */
static void status_text(const redislock_info *info, const redislock_queue_info *qi)
{
    fputs(info->held ? "held" : "free", stdout);
    if (qi->kind != REDISLOCK_KIND_MUTEX)
        printf(" holders=%" PRId64 " permits=%" PRId64 " queued=%" PRId64, qi->holders,
               qi->permits, qi->queued);
    if (info->held) {
        fputs(" owner=", stdout);
        rlt_put_word(info->owner, strlen(info->owner));
        printf(" ttl_ms=%" PRId64, info->ttl_ms);
    }
    putchar('\n');
}

int rlt_status(const rlt_config *cfg, redislock_client *c)
{
    redislock *lk = NULL;
    redislock_info info;
    redislock_queue_info qi = { .version = REDISLOCK_QUEUE_INFO_VERSION };
    /* only queried; majority mode wants handles with an expiry (and so do
     * the fair lock and the semaphore) */
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int rc;
    o.expire_ms = cfg->expire_ms;
    o.fair = cfg->fair;
    o.permits = cfg->permits;
    rc = redislock_new(&lk, c, cfg->name, &o);
    if (rc) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for(rc);
    }
    rc = redislock_query_queue(lk, &qi, &info);
    if (rc) {
        rlt_err("%s", redislock_errmsg(lk));
        redislock_free(lk);
        return rlt_exit_for_server(rc);
    }
    redislock_free(lk);
    if (cfg->quiet) {
        /* the exit status tells */
    } else if (cfg->json) {
        status_json(cfg, &info, &qi);
    } else {
        status_text(&info, &qi);
    }
    if ((rc = rlt_flush_out()))
        return rc;
    return info.held ? 0 : RLT_EXIT_FREE;
}

int rlt_reset(const rlt_config *cfg, redislock_client *c)
{
    int rc = redislock_reset(c, cfg->name);
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for_server(rc);
    }
    if (!cfg->quiet)
        printf("removed %d\n", rc);
    return rlt_flush_out();
}

/* --owner-prefix follows the owner id rules; the library's check, through a
 * handle that is never used (no I/O), so that a refusal by reset_all
 * itself can only be the server's. */
static int check_owner_prefix(const rlt_config *cfg, redislock_client *c)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int rc;
    if (!cfg->owner_prefix || !*cfg->owner_prefix)
        return 0;
    o.id = cfg->owner_prefix;
    o.expire_ms = cfg->expire_ms;
    if ((rc = redislock_new(&lk, c, "x", &o))) {
        rlt_err("--owner-prefix: %s", redislock_last_error());
        return rlt_exit_for(rc);
    }
    redislock_free(lk);
    return 0;
}

/* What --list and --reset-all --dry-run print, and count per master. */
typedef struct list_state {
    const rlt_config *cfg;
    int masters;             /* several: each line names its master */
    uint64_t shown[RLT_MAX_URLS];
    uint64_t lines;
} list_state;

/* One lock of --list --json: an element of the array, on a line of its own. */
static void show_json(const redislock_list_entry *e, uint64_t n)
{
    fputs(n ? ",\n{" : "\n{", stdout);
    rlt_put_json("name", e->name, e->name_len);
    putchar(',');
    rlt_put_json("owner", e->owner, e->owner_len);
    printf(",\"ttl_ms\":%" PRId64 ",", e->ttl_ms);
    rlt_put_json("master", e->master_addr, strlen(e->master_addr));
    if (e->kind != REDISLOCK_KIND_MUTEX || e->queued)
        printf(",\"kind\":\"%s\",\"holders\":%" PRId64 ",\"permits\":%" PRId64
               ",\"queued\":%" PRId64, kind_name(e->kind), e->holders, e->permits, e->queued);
    putchar('}');
}

static int show(const redislock_list_entry *e, void *userdata)
{
    list_state *ls = userdata;
    const char *pre = ls->cfg->owner_prefix;
    if (pre && strncmp(e->owner, pre, strlen(pre)))
        return 0;
    if (e->master < RLT_MAX_URLS)
        ls->shown[e->master]++;
    if (ls->cfg->json) {
        show_json(e, ls->lines++);
        return ferror(stdout) ? 1 : 0;
    }
    rlt_put_word(e->name, e->name_len);
    fputs(" owner=", stdout);
    rlt_put_word(e->owner, e->owner_len);
    printf(" ttl_ms=%" PRId64, e->ttl_ms);
    if (e->kind == REDISLOCK_KIND_SEMAPHORE)
        printf(" kind=semaphore holders=%" PRId64 " permits=%" PRId64, e->holders,
               e->permits);
    else if (e->kind == REDISLOCK_KIND_FAIR)
        fputs(" kind=fair", stdout);
    if (e->kind != REDISLOCK_KIND_MUTEX || e->queued)
        printf(" queued=%" PRId64, e->queued);
    if (ls->masters) {
        fputs(" master=", stdout);
        rlt_put_word(e->master_addr, strlen(e->master_addr));
    }
    putchar('\n');
    /* a reader that went away (| head) ends the walk */
    return ferror(stdout) ? 1 : 0;
}

static int list_locks(const rlt_config *cfg, redislock_client *c, const char *pattern,
                      uint64_t *most)
{
    list_state ls;
    size_t i;
    int rc;
    memset(&ls, 0, sizeof ls);
    ls.cfg = cfg;
    ls.masters = cfg->nurls > 1;
    if (cfg->json)
        putchar('['); /* the array, streamed: one lock per line */
    rc = redislock_list(c, pattern, show, &ls, NULL);
    if (cfg->json && rc == 0)
        fputs(ls.lines ? "\n]\n" : "]\n", stdout);
    if (rc > 0) { /* show() stopped: stdout failed */
        rlt_flush_out();
        return RLT_EXIT_OSERR;
    }
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        return rlt_exit_for_server(rc);
    }
    /* reset_all's count: a lock lives on several masters */
    for (i = 0, *most = 0; i < RLT_MAX_URLS; i++)
        if (ls.shown[i] > *most)
            *most = ls.shown[i];
    return rlt_flush_out();
}

int rlt_list(const rlt_config *cfg, redislock_client *c)
{
    uint64_t n;
    int rc = check_owner_prefix(cfg, c);
    return rc ? rc : list_locks(cfg, c, cfg->name, &n);
}

int rlt_reset_all(const rlt_config *cfg, redislock_client *c)
{
    uint64_t n = 0;
    int rc = check_owner_prefix(cfg, c);
    if (rc)
        return rc;
    if (cfg->dry_run) {
        if ((rc = list_locks(cfg, c, NULL, &n)))
            return rc;
        if (!cfg->quiet)
            printf("would remove %" PRIu64 "\n", n);
        return rlt_flush_out();
    }
    rc = redislock_reset_all(c, cfg->owner_prefix, &n);
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        if (n)
            rlt_err("%" PRIu64 " locks were removed before the error", n);
        return rlt_exit_for_server(rc);
    }
    if (!cfg->quiet)
        printf("removed %" PRIu64 "\n", n);
    return rlt_flush_out();
}

static int show_range(const redislock_slot_range *r, void *ud)
{
    const rlt_config *cfg = ud;
    if (cfg->nurls > 1)
        printf("%d-%d %s url=%zu\n", r->first, r->last, r->master_addr, r->member + 1);
    else
        printf("%d-%d %s\n", r->first, r->last, r->master_addr);
    return ferror(stdout) ? 1 : 0;
}

int rlt_slots(const rlt_config *cfg, redislock_client *c)
{
    int rc = redislock_cluster_slots(c, show_range, (void *)cfg);
    if (rc > 0) { /* show_range() stopped: stdout failed */
        rlt_flush_out();
        return RLT_EXIT_OSERR;
    }
    if (rc < 0) {
        rlt_err("%s", redislock_last_error());
        return rc == REDISLOCK_ENOTSUP ? RLT_EXIT_USAGE : rlt_exit_for_server(rc);
    }
    return rlt_flush_out();
}
