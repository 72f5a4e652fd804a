/* Test harness: real redis-server processes, started in the test's private
 * temp directory on a unix socket (and a free TCP port when asked), always
 * killed at exit.  Never a fixed port, never a server the user runs. */
#ifndef TEST_SERVER_H
#define TEST_SERVER_H

#include <hiredis.h>
#include <sys/types.h>

typedef struct ts_server {
    pid_t pid;
    int tcp;
    int port;
    char password[64];
    char dir[512];
    char sock[600];
    char url[700];      /* unix:///.../redis.sock (with password if any) */
    char tcp_url[128];  /* redis://127.0.0.1:PORT when tcp */
    redisContext *ctx;  /* the harness's own connection */
    const char *extra[16];
    /* TLS: with tls set, also a TLS port on 127.0.0.1 (the harness itself
     * keeps to the unix socket) */
    int tls;
    int tls_port;
    const char *tls_cert;  /* the server's certificate: "server" (default;
                              localhost and 127.0.0.1), "expired", "other"
                              (other.example only), "dnsonly" (localhost) */
    int tls_auth_clients;  /* 1: require a client certificate */
    char tls_url[128];     /* rediss://127.0.0.1:PORT (password if any) */
    /* Sentinel: with sentinel_conf set, the server runs as a sentinel
     * (redis-server CONF --sentinel) from a config file in its directory
     * that starts as this text (Sentinel rewrites it); tcp is implied. */
    const char *sentinel_conf;
} ts_server;

/* Throwaway certificates, made once per test program with the openssl
 * command in its temp dir (certs/): ca.crt (the CA that signed the
 * server's and the client's), ca2.crt (another CA), server, expired,
 * other, dnsonly (server certificates, see tls_cert), client (CN=client,
 * signed by ca) and client2 (signed by ca2), each NAME.crt + NAME.key.
 * 0, 77 when openssl is not installed, -1 on failure. */
int ts_certs_make(void);
/* The path of a file of certs/ (e.g. "ca.crt"); makes them if needed
 * (NULL when that fails).  The string lives as long as the process. */
const char *ts_cert(const char *file);

/* Start a server.  The ts_server must outlive the process (static or
 * global): an atexit handler kills every server still running.  0 on success, 77 when redis-server is not installed
 * (tests skip), -1 on failure.  Fill s->tcp, s->password, s->extra before. */
int ts_start(ts_server *s);
/* Restart a stopped/killed server on the same socket and port. */
int ts_restart(ts_server *s);
/* Kill (SIGKILL) and reap; safe to call twice. */
void ts_stop(ts_server *s);
void ts_pause(ts_server *s);   /* SIGSTOP */
void ts_resume(ts_server *s);  /* SIGCONT */

/* Run a command on the harness connection (reconnects as needed).
 * The reply is owned by the caller. */
redisReply *ts_cmd(ts_server *s, const char *fmt, ...);
/* Number of calls of one command (lower case, e.g. "evalsha") in INFO
 * commandstats; when cmd is NULL, the requests clients sent (evalsha, eval,
 * blpop, scan, client|..., script|..., select, auth, ping, hello, lpush,
 * rpush), leaving out the commands that scripts ran inside. */
long long ts_calls(ts_server *s, const char *cmd);
/* CONFIG RESETSTAT. */
void ts_resetstat(ts_server *s);
/* An integer field of INFO (e.g. "clients", "blocked_clients"); -1 if absent. */
long long ts_info(ts_server *s, const char *section, const char *field);
/* Wait (asking the server every 5 ms) until n clients are blocked; fails the
 * test after 5 s. */
void ts_await_blocked(ts_server *s, long long n);
void ts_flushall(ts_server *s);
/* An integer reply (or -1000 on error). */
long long ts_int(ts_server *s, const char *fmt, ...);
/* A string reply into buf (cut to len): "" for nil, an error or another
 * type (e.g. GET of a free lock's key).  Returns buf. */
const char *ts_str(ts_server *s, char *buf, size_t len, const char *fmt, ...);

/* A TLS server (s->tls set, tls_cert etc. filled before) is started with
 * ts_start() too; without openssl it returns 77. */

#define TS_START_OR_SKIP(s)                  \
    do {                                     \
        int ts_rc_ = ts_start(s);            \
        if (ts_rc_ == 77)                    \
            skip();                          \
        assert_int_equal(ts_rc_, 0);         \
    } while (0)

#endif
