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

static void *waiter_main(void *p)
{
    faults_waiter *w = p;
    w->rc = redislock_acquire(w->lk, w->timeout);
    w->got = tu_now_ms();
    snprintf(w->msg, sizeof w->msg, "%s", redislock_errmsg(w->lk));
    __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
    if (w->rc == 0 && w->hold_ms > 0) {
        tu_sleep_ms(w->hold_ms);
        w->release_rc = redislock_release(w->lk);
    }
    return NULL;
}

void faults_waiter_start(faults_waiter *w, redislock *lk, int64_t timeout)
{
    faults_waiter_start_hold(w, lk, timeout, 0);
}

void faults_waiter_start_hold(faults_waiter *w, redislock *lk, int64_t timeout,
                              int hold_ms)
{
    memset(w, 0, sizeof *w);
    w->hold_ms = hold_ms;
    w->lk = lk;
    w->timeout = timeout;
    w->rc = w->release_rc = -1000;
    w->start = tu_now_ms();
    w->got = 0;
    w->done = 0;
    w->msg[0] = '\0';
    if (pthread_create(&w->t, NULL, waiter_main, w))
        fail_msg("pthread_create failed");
}

void faults_waiter_join(faults_waiter *w)
{
    pthread_join(w->t, NULL);
}

int faults_waiter_done(faults_waiter *w)
{
    return __atomic_load_n(&w->done, __ATOMIC_SEQ_CST);
}

void faults_waiter_await(faults_waiter *w, int ms)
{
    int64_t t0 = tu_now_ms();
    while (!faults_waiter_done(w)) {
        if (tu_now_ms() - t0 > ms)
            fail_msg("the waiter did not return within %d ms", ms);
        tu_sleep_ms(2);
    }
}

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

void faults_signals_on(faults_signaller *s, pthread_t target, unsigned seed)
{
    struct sigaction sa;
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
}

long faults_signals_off(faults_signaller *s)
{
    long n;
    __atomic_store_n(&stop_signals, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->t, NULL);
    n = __atomic_load_n(&signals_delivered, __ATOMIC_RELAXED);
    faults_signals_total += n;
    print_message("      %ld signals sent, %ld delivered to the waiter\n", s->sent, n);
    return n;
}
