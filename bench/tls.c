/* TLS (rediss://): acquire+release on warm connections over TLS against
 * plain TCP to the same server in the same loop (interleaved, alternating
 * which goes first), the CPU each costs the client and the server, and the
 * cost of a new TLS connection (TCP connect + handshake + the first
 * request) against a new TCP one, which the pool keeps off the hot path.
 *
 *   redislock-bench tls --url rediss://HOST:TLSPORT --url redis://HOST:PORT
 *                       --url unix:///SOCKET --cacert FILE [--iters N]
 *
 * The three URLs are one server: its TLS port, its TCP port, and its unix
 * socket for the benchmark's own INFO. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARMUP 200

static void check(int rc, redislock *lk, const char *what)
{
    if (rc)
        bench_die(what, redislock_errmsg(lk));
}

static redislock_client *client(const char *url, const char *cacert)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.tls_ca_file = cacert;
    if (redislock_client_new(&c, url, &o))
        bench_die("client", redislock_last_error());
    return c;
}

/* The server's CPU time (user + system) in microseconds, from INFO cpu. */
static double server_cpu_us(redisContext *ctx)
{
    redisReply *r = redisCommand(ctx, "INFO cpu");
    double v = 0;
    const char *p;
    if (!r)
        bench_die("INFO cpu", ctx->errstr);
    if (r->type == REDIS_REPLY_STRING) {
        if ((p = strstr(r->str, "used_cpu_user:")))
            v += atof(p + strlen("used_cpu_user:"));
        if ((p = strstr(r->str, "used_cpu_sys:")))
            v += atof(p + strlen("used_cpu_sys:"));
    }
    freeReplyObject(r);
    return v * 1e6;
}

/* One acquire+release: its time into s (ns), its thread CPU into *cpu. */
static void acqrel(redislock *lk, bench_samples *s, int64_t *cpu)
{
    int64_t c0 = bench_thread_cpu_ns(), t0 = bench_now_ns();
    check(redislock_acquire(lk, -1), lk, "acquire");
    check(redislock_release(lk), lk, "release");
    if (s)
        bench_samples_add(s, bench_now_ns() - t0);
    if (cpu)
        *cpu += bench_thread_cpu_ns() - c0;
}

/* n acquire+release on lk alone: the client's thread CPU and the server's
 * CPU per operation, in microseconds. */
static void cpu_block(redisContext *ctx, redislock *lk, int n, double *client_us,
                      double *server_us)
{
    int64_t cpu = 0;
    double s0 = server_cpu_us(ctx);
    int i;
    for (i = 0; i < n; i++)
        acqrel(lk, NULL, &cpu);
    *server_us = (server_cpu_us(ctx) - s0) / n;
    *client_us = (double)cpu / 1000.0 / n;
}

/* n new clients, each timed on its first request (connect, handshake for
 * TLS, one EVALSHA): samples into s, the calling thread's CPU per new
 * connection into *cpu_us. */
static void new_connections(const char *url, const char *cacert, int n, bench_samples *s,
                            double *cpu_us)
{
    int64_t cpu = 0;
    int i;
    for (i = 0; i < n; i++) {
        redislock_client *c = client(url, cacert);
        redislock *lk = bench_lock(c, "bench:tls:new", 10000);
        int64_t c0 = bench_thread_cpu_ns(), t0 = bench_now_ns();
        check(redislock_acquire(lk, -1), lk, "acquire on a new connection");
        bench_samples_add(s, bench_now_ns() - t0);
        cpu += bench_thread_cpu_ns() - c0;
        check(redislock_release(lk), lk, "release");
        redislock_free(lk);
        redislock_client_free(c);
    }
    *cpu_us = (double)cpu / 1000.0 / n;
}

int bench_tls(const bench_opts *o)
{
    redisContext *ctx;
    redislock_client *ctls, *ctcp;
    redislock *ltls, *ltcp;
    bench_samples tls = { 0 }, tcp = { 0 }, ntls = { 0 }, ntcp = { 0 };
    double cpu_tls, cpu_tcp, srv_tls, srv_tcp, hs_tls, hs_tcp;
    long long conns;
    int i, n = o->iters, nnew = o->iters / 10 + 10;

    if (o->nurls != 3 || !o->cacert)
        bench_die("tls", "needs --url TLS --url TCP --url UNIX (one server) and --cacert");
    ctx = bench_connect(o->urls[2]);
    ctls = client(o->urls[0], o->cacert);
    ctcp = client(o->urls[1], NULL);
    ltls = bench_lock(ctls, "bench:tls", 10000);
    ltcp = bench_lock(ctcp, "bench:tcp", 10000);
    for (i = 0; i < WARMUP; i++) {
        acqrel(ltls, NULL, NULL);
        acqrel(ltcp, NULL, NULL);
    }
    conns = bench_info(ctx, "stats", "total_connections_received");
    for (i = 0; i < n; i++) { /* interleaved, alternating who goes first */
        if (i % 2)
            acqrel(ltls, &tls, NULL);
        acqrel(ltcp, &tcp, NULL);
        if (!(i % 2))
            acqrel(ltls, &tls, NULL);
    }
    conns = bench_info(ctx, "stats", "total_connections_received") - conns;
    cpu_block(ctx, ltls, n, &cpu_tls, &srv_tls);
    cpu_block(ctx, ltcp, n, &cpu_tcp, &srv_tcp);
    new_connections(o->urls[0], o->cacert, nnew, &ntls, &hs_tls);
    new_connections(o->urls[1], NULL, nnew, &ntcp, &hs_tcp);

    bench_rec_begin(o, "tls");
    bench_rec_lat("acqrel_tls", &tls);
    bench_rec_lat("acqrel_tcp", &tcp);
    bench_rec_num("ratio_p50", (double)bench_pct(&tls, 50) / (double)bench_pct(&tcp, 50));
    bench_rec_num("ratio_p99", (double)bench_pct(&tls, 99) / (double)bench_pct(&tcp, 99));
    bench_rec_int("warm_new_connections", conns);
    bench_rec_num("cpu_tls_us", cpu_tls);
    bench_rec_num("cpu_tcp_us", cpu_tcp);
    bench_rec_num("server_cpu_tls_us", srv_tls);
    bench_rec_num("server_cpu_tcp_us", srv_tcp);
    bench_rec_lat("newconn_tls", &ntls);
    bench_rec_lat("newconn_tcp", &ntcp);
    bench_rec_num("newconn_cpu_tls_us", hs_tls);
    bench_rec_num("newconn_cpu_tcp_us", hs_tcp);
    bench_rec_end();

    bench_samples_free(&tls), bench_samples_free(&tcp);
    bench_samples_free(&ntls), bench_samples_free(&ntcp);
    redislock_free(ltls), redislock_free(ltcp);
    redislock_client_free(ctls), redislock_client_free(ctcp);
    redisFree(ctx);
    return 0;
}
