#include "faults.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int faults_run;
long faults_signals_total;

void faults_summary(const char *program)
{
    printf("%s: %d fault cases run, %ld signals injected\n", program, faults_run,
           faults_signals_total);
    fflush(stdout);
}

long long faults_blocked_id(ts_server *s, int n)
{
    redisReply *r = ts_cmd(s, "CLIENT LIST");
    long long id = -1;
    char *line, *save = NULL;
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (line = strtok_r(r->str, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, " cmd=blpop") || strncmp(line, "id=", 3))
            continue;
        if (n-- == 0) {
            id = atoll(line + 3);
            break;
        }
    }
    freeReplyObject(r);
    return id;
}

int faults_kill_id(ts_server *s, long long id)
{
    return ts_int(s, "CLIENT KILL ID %lld", id) == 1;
}

long long faults_kill_normal(ts_server *s)
{
    return ts_int(s, "CLIENT KILL TYPE normal");
}

void faults_await_clients(ts_server *s, long long n)
{
    int64_t t0 = tu_now_ms();
    while (ts_info(s, "clients", "connected_clients") > n) {
        if (tu_now_ms() - t0 > 5000)
            fail_msg("the server still has more than %lld clients after 5 s", n);
        tu_sleep_ms(5);
    }
}

const char *faults_owner(ts_server *s, const char *key)
{
    static char buf[300];
    redisReply *r = ts_cmd(s, "GET %s", key);
    buf[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(buf, sizeof buf, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return buf;
}

/* ----------------------------------------------------------------- signals */

static faults_signaller the_signaller;
static int stop_signals; /* atomic */
static long signals_delivered; /* atomic */

static void on_usr1(int sig)
{
    (void)sig;
    __atomic_add_fetch(&signals_delivered, 1, __ATOMIC_RELAXED);
}

static void *signaller_main(void *p)
{
    faults_signaller *s = p;
    while (!__atomic_load_n(&stop_signals, __ATOMIC_SEQ_CST)) {
        if (pthread_kill(s->target, SIGUSR1) == 0)
            s->sent++;
        usleep(500 + (unsigned)(rand_r(&s->seed) % 4500)); /* 0.5 to 5 ms */
    }
    return NULL;
}

static void signals_cleanup(void *p)
{
    if (((faults_signaller *)p)->on)
        faults_signals_off(p);
}

faults_signaller *faults_signals_on(pthread_t target, unsigned seed)
{
    faults_signaller *s = &the_signaller;
    struct sigaction sa;
    if (s->on)
        fail_msg("faults_signals_on: a signaller is already on");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls see EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    __atomic_store_n(&stop_signals, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&signals_delivered, 0, __ATOMIC_RELAXED);
    s->target = target;
    s->seed = seed;
    s->sent = 0;
    if (pthread_create(&s->t, NULL, signaller_main, s))
        fail_msg("pthread_create failed");
    s->on = 1;
    tf_defer(signals_cleanup, s);
    return s;
}

long faults_signals_off(faults_signaller *s)
{
    long n;
    if (!s->on)
        return 0;
    __atomic_store_n(&stop_signals, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->t, NULL);
    s->on = 0;
    n = __atomic_load_n(&signals_delivered, __ATOMIC_RELAXED);
    faults_signals_total += n;
    print_message("      %ld signals sent, %ld delivered to the waiter\n", s->sent, n);
    return n;
}

/* ------------------------------------------------ waiter/holder cases */

static faults_scene scene;

static redislock_client *waiter_client(const faults_case *c)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    const char *urls[TF_MAX_MASTERS];
    int i;
    if (c->command_timeout_ms)
        o.command_timeout_ms = c->command_timeout_ms;
    if (c->connect_timeout_ms)
        o.connect_timeout_ms = c->connect_timeout_ms;
    if (c->nservers == 1)
        return tf_client_opts(c->servers[0].url, &o);
    for (i = 0; i < c->nservers; i++)
        urls[i] = c->servers[i].url;
    o.master_timeout_ms = c->master_timeout_ms;
    return tf_client_multi(urls, c->nservers, &o);
}

/* The waiter's result, its wait, and when it got the lock. */
static void check_waiter(const faults_case *c, const faults_scene *s, const tf_waiter *w)
{
    int64_t waited = w->got - w->start;
    if (w->rc != c->want && !(c->or_eio && w->rc == REDISLOCK_EIO))
        fail_msg("waiter: %s: %s (expected %s%s)", redislock_err_name(w->rc), w->msg,
                 redislock_err_name(c->want), c->or_eio ? " or EIO" : "");
    if (waited < c->min_ms)
        fail_msg("waiter returned after %lld ms, before %lld ms", (long long)waited,
                 (long long)c->min_ms);
    if ((c->max_ms || c->max_slowed_ms) && waited >= c->max_ms + TU_MS(c->max_slowed_ms))
        fail_msg("waiter returned after %lld ms, not under %lld ms", (long long)waited,
                 (long long)(c->max_ms + TU_MS(c->max_slowed_ms)));
    if (w->rc == REDISLOCK_OK && s->released) {
        if (w->got < s->released)
            fail_msg("waiter got the lock %lld ms before the release",
                     (long long)(s->released - w->got));
        if (c->woken_within_ms && w->got >= s->released + TU_MS(c->woken_within_ms))
            fail_msg("waiter got the lock %lld ms after the release, not within %lld ms",
                     (long long)(w->got - s->released),
                     (long long)TU_MS(c->woken_within_ms));
    }
    if (w->rc == REDISLOCK_OK && c->hold_ms > 0)
        assert_rl_ok(w->release_rc);
}

void faults_case_run(const faults_case *c)
{
    faults_scene *s = &scene;
    faults_signaller *sig = NULL;
    int i;

    memset(s, 0, sizeof *s);
    s->c = c;
    s->srv = &c->servers[0];
    s->nwaiters = c->waiters > 1 ? 2 : 1;
    s->client = waiter_client(c);
    if (c->holder_client) {
        redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
        o.command_timeout_ms = o.connect_timeout_ms = 2000;
        s->holder_client = tf_client_opts(c->servers[0].url, &o);
    } else {
        s->holder_client = s->client;
    }
    s->holder = tf_lock(s->holder_client, c->lock, c->holder_expire_ms);
    assert_rl_ok(redislock_acquire(s->holder, 0));
    if (c->prepare)
        c->prepare(s);

    for (i = 0; i < s->nwaiters; i++) {
        s->w[i] = tf_waiter_new(tf_lock(s->client, c->lock, c->waiter_expire_ms),
                                c->timeout_ms);
        s->w[i]->hold_ms = c->hold_ms;
        tf_waiter_run(s->w[i]);
        if (i == 0 && c->signals)
            sig = faults_signals_on(s->w[0]->t, c->signals);
        if (c->await_blocked)
            tf_await_blocked_all(c->servers, c->nservers, i + 1);
    }

    FAULT(c->fault);
    if (c->inject)
        c->inject(s);
    if (c->still_waiting_ms > 0) {
        tu_sleep_ms(c->still_waiting_ms);
        for (i = 0; i < s->nwaiters; i++)
            if (tf_waiter_done(s->w[i]))
                fail_msg("waiter %d returned %s %d ms after the fault: %s", i + 1,
                         redislock_err_name(s->w[i]->rc), c->still_waiting_ms,
                         s->w[i]->msg);
    }
    if (c->release) {
        s->released = tu_now_ms();
        assert_rl_ok(redislock_release(s->holder));
    }

    for (i = 0; i < s->nwaiters; i++)
        tf_waiter_await(s->w[i], (int)TU_MS(c->timeout_ms + 2000));
    if (sig)
        assert_true(faults_signals_off(sig) > 0);
    for (i = 0; i < s->nwaiters; i++) {
        tf_waiter *w = s->w[i];
        tf_waiter_join(w);
        if (s->released && w->rc == REDISLOCK_OK)
            print_message("      waiter %d: %s after %lld ms, %lld ms after the release\n",
                          i + 1, redislock_err_name(w->rc), (long long)(w->got - w->start),
                          (long long)(w->got - s->released));
        else
            print_message("      waiter %d: %s after %lld ms%s%s\n", i + 1,
                          redislock_err_name(w->rc), (long long)(w->got - w->start),
                          w->rc ? ": " : "", w->rc ? w->msg : "");
    }
    for (i = 0; i < s->nwaiters; i++)
        check_waiter(c, s, s->w[i]);
    if (c->check)
        c->check(s);
    /* a waiter that holds the lock can release it */
    for (i = 0; i < s->nwaiters; i++)
        if (s->w[i]->rc == REDISLOCK_OK && c->hold_ms <= 0 && redislock_held(s->w[i]->lk))
            assert_rl_ok(redislock_release(s->w[i]->lk));
}

void faults_case_test(void **state)
{
    faults_case_run(*state);
}
