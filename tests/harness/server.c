#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base_dir[400];
static int server_seq;
static ts_server *all[64];
static int nall;

static void cleanup_all(void)
{
    int i;
    for (i = 0; i < nall; i++)
        if (all[i])
            ts_stop(all[i]);
    if (base_dir[0] && !getenv("REDISLOCK_TEST_TMPDIR")) {
        char cmd[500];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", base_dir);
    }
}

static const char *base(void)
{
    if (!base_dir[0]) {
        const char *env = getenv("REDISLOCK_TEST_TMPDIR");
        if (env) {
            snprintf(base_dir, sizeof base_dir, "%s", env);
        } else {
            snprintf(base_dir, sizeof base_dir, "%s/redislock-test.XXXXXX",
                     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
            if (!mkdtemp(base_dir)) {
                perror("mkdtemp");
                exit(99);
            }
        }
        atexit(cleanup_all);
    }
    return base_dir;
}

/* The server binary: $REDISLOCK_TEST_SERVER (make check sets it to the
 * redis-server configure found, unless it is set already), else
 * redis-server on the PATH. */
static const char *server_binary(void)
{
    const char *p = getenv("REDISLOCK_TEST_SERVER");
    return p && *p ? p : "redis-server";
}

static int have_server_binary(void)
{
    const char *p = server_binary();
    char buf[4096];
    const char *path;
    if (strchr(p, '/'))
        return access(p, X_OK) == 0;
    path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, p);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ----------------------------------------------------------- certificates */

static const char certs_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1.key\"; }\n"
    "ca() { key $1; openssl req -x509 -new -key $1.key -sha256 -days 3650 "
    "-subj /CN=redislock-test-$1 -out $1.crt; }\n"
    /* leaf NAME CN SAN DAYS CA */
    "leaf() {\n"
    "  key $1\n"
    "  openssl req -new -key $1.key -subj \"/CN=$2\" -out $1.csr\n"
    "  printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth,clientAuth\\n' \"$3\" >$1.ext\n"
    "  openssl x509 -req -in $1.csr -CA $5.crt -CAkey $5.key -CAcreateserial -days $4 "
    "-sha256 -extfile $1.ext -out $1.crt\n"
    "}\n"
    "ca ca\n"
    "ca ca2\n"
    "leaf server localhost DNS:localhost,IP:127.0.0.1 3650 ca\n"
    /* openssl 3.0's x509 takes a negative -days: valid until yesterday */
    "leaf expired localhost DNS:localhost,IP:127.0.0.1 -1 ca\n"
    "leaf other other.example DNS:other.example 3650 ca\n"
    "leaf dnsonly localhost DNS:localhost 3650 ca\n"
    "leaf client client DNS:client 3650 ca\n"
    "leaf client2 client DNS:client 3650 ca2\n";

static char certs_dir[512];
static int certs_state; /* 0 not yet, 1 made, 77 no openssl, -1 failed */

int ts_certs_make(void)
{
    char cmd[2000], script[600];
    FILE *f;
    if (certs_state)
        return certs_state == 1 ? 0 : certs_state;
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "harness: the openssl command is not installed; skipping\n");
        return certs_state = 77;
    }
    certs_state = -1;
    snprintf(certs_dir, sizeof certs_dir, "%s/certs", base());
    snprintf(script, sizeof script, "%s/make.sh", certs_dir);
    if ((mkdir(certs_dir, 0700) < 0 && errno != EEXIST) || !(f = fopen(script, "w")))
        return -1;
    fputs(certs_script, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sh '%s' '%s' >'%s/make.log' 2>&1", script, certs_dir,
             certs_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: making certificates failed (see %s/make.log)\n",
                certs_dir);
        return -1;
    }
    certs_state = 1;
    return 0;
}

const char *ts_cert(const char *file)
{
    static char paths[32][600];
    static int n;
    int i;
    if (ts_certs_make() != 0)
        return NULL;
    for (i = 0; i < n; i++)
        if (!strcmp(strrchr(paths[i], '/') + 1, file))
            return paths[i];
    if (n == 32)
        return NULL;
    snprintf(paths[n], sizeof paths[n], "%s/%s", certs_dir, file);
    return paths[n++];
}

/* The TLS arguments of a server: tls-port and its files (valid until the
 * next call: spawn() execs at once). */
static int tls_args(ts_server *s, const char **argv, char *port, size_t plen)
{
    static char files[3][600];
    const char *cert = s->tls_cert ? s->tls_cert : "server";
    char name[64];
    int n = 0;
    snprintf(port, plen, "%d", s->tls_port);
    snprintf(name, sizeof name, "%s.crt", cert);
    snprintf(files[0], sizeof files[0], "%s", ts_cert(name));
    snprintf(name, sizeof name, "%s.key", cert);
    snprintf(files[1], sizeof files[1], "%s", ts_cert(name));
    snprintf(files[2], sizeof files[2], "%s", ts_cert("ca.crt"));
    argv[n++] = "--tls-port";
    argv[n++] = port;
    argv[n++] = "--tls-cert-file";
    argv[n++] = files[0];
    argv[n++] = "--tls-key-file";
    argv[n++] = files[1];
    argv[n++] = "--tls-ca-cert-file";
    argv[n++] = files[2];
    argv[n++] = "--tls-auth-clients";
    argv[n++] = s->tls_auth_clients ? "yes" : "no";
    return n;
}

static int spawn(ts_server *s)
{
    char port[16], tport[16], pidpath[600], logpath[600];
    const char *argv[64];
    int n = 0, i;
    pid_t pid;
    FILE *f;

    snprintf(port, sizeof port, "%d", s->tcp ? s->port : 0);
    snprintf(logpath, sizeof logpath, "%s/redis.log", s->dir);
    argv[n++] = server_binary();
    if (s->sentinel_conf) {
        static char conf[600];
        struct stat st;
        snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
        if (stat(conf, &st) < 0) { /* a restart keeps what Sentinel wrote */
            f = fopen(conf, "w");
            if (!f)
                return -1;
            fputs(s->sentinel_conf, f);
            fclose(f);
        }
        argv[n++] = conf;
        argv[n++] = "--sentinel";
    }
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--unixsocket";
    argv[n++] = s->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    if (!s->sentinel_conf) {
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
    }
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = logpath;
    if (s->password[0]) {
        argv[n++] = "--requirepass";
        argv[n++] = s->password;
    }
    if (s->tls)
        n += tls_args(s, argv + n, tport, sizeof tport);
    for (i = 0; i < 16 && s->extra[i]; i++)
        argv[n++] = s->extra[i];
    argv[n] = NULL;

    unlink(s->sock);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    snprintf(pidpath, sizeof pidpath, "%s/server.pid", s->dir);
    f = fopen(pidpath, "w");
    if (f) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
    return 0;
}

/* Wait until the server answers PING on its socket; -1 if it died. */
static int wait_ready(ts_server *s)
{
    int i;
    for (i = 0; i < 500; i++) {
        int status;
        redisContext *c;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        c = redisConnectUnix(s->sock);
        if (c && !c->err) {
            redisReply *r = s->password[0]
                                ? redisCommand(c, "AUTH %s", s->password)
                                : redisCommand(c, "PING");
            int ok = r && r->type != REDIS_REPLY_ERROR;
            if (r)
                freeReplyObject(r);
            if (ok) {
                s->ctx = c;
                return 0;
            }
        }
        if (c)
            redisFree(c);
        sleep_ms(10);
    }
    return -1;
}

static void make_urls(ts_server *s)
{
    if (s->password[0])
        snprintf(s->url, sizeof s->url, "unix://%s?password=%s", s->sock,
                 s->password);
    else
        snprintf(s->url, sizeof s->url, "unix://%s", s->sock);
    s->tcp_url[0] = '\0';
    s->tls_url[0] = '\0';
    if (s->tls) {
        if (s->password[0])
            snprintf(s->tls_url, sizeof s->tls_url, "rediss://:%s@127.0.0.1:%d",
                     s->password, s->tls_port);
        else
            snprintf(s->tls_url, sizeof s->tls_url, "rediss://127.0.0.1:%d", s->tls_port);
    }
    if (s->tcp) {
        if (s->password[0])
            snprintf(s->tcp_url, sizeof s->tcp_url, "redis://:%s@127.0.0.1:%d",
                     s->password, s->port);
        else
            snprintf(s->tcp_url, sizeof s->tcp_url, "redis://127.0.0.1:%d",
                     s->port);
    }
}

/* The value of an INFO field (up to the line's end) into buf; "" if absent. */
static void info_field(const char *info, const char *field, char *buf, size_t len)
{
    size_t flen = strlen(field);
    const char *p;
    buf[0] = '\0';
    for (p = info; (p = strstr(p, field)) != NULL; p += flen)
        if ((p == info || p[-1] == '\n') && p[flen] == ':') {
            snprintf(buf, len, "%.*s", (int)strcspn(p + flen + 1, "\r\n"), p + flen + 1);
            return;
        }
}

/* Say once per test program which server the tests run against (Valkey
 * reports redis_version 7.2.4 beside its own valkey_version). */
static void announce(ts_server *s)
{
    static int done;
    char rv[64], vv[64];
    redisReply *r;
    if (done++)
        return;
    r = ts_cmd(s, "INFO server");
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return;
    }
    info_field(r->str, "redis_version", rv, sizeof rv);
    info_field(r->str, "valkey_version", vv, sizeof vv);
    if (vv[0])
        fprintf(stderr, "harness: server %s: valkey %s (redis_version %s)\n",
                server_binary(), vv, rv);
    else
        fprintf(stderr, "harness: server %s: redis %s\n", server_binary(), rv);
    freeReplyObject(r);
}

/* The last lines of dir's redis.log on stderr: the directory goes with the
 * test, and the reason a server did not start is in there. */
static void log_tail(const char *dir)
{
    char path[600], line[512], last[5][512];
    int n = 0, i;
    FILE *f;
    snprintf(path, sizeof path, "%s/redis.log", dir);
    if (!(f = fopen(path, "r")))
        return;
    while (fgets(line, sizeof line, f))
        snprintf(last[n++ % 5], sizeof last[0], "%s", line);
    fclose(f);
    for (i = n > 5 ? n - 5 : 0; i < n; i++)
        fprintf(stderr, "harness:   %s", last[i % 5]);
}

int ts_start(ts_server *s)
{
    int attempt, rc;
    if (s->sentinel_conf)
        s->tcp = 1;
    if (!have_server_binary()) {
        fprintf(stderr, "harness: %s not found; skipping\n", server_binary());
        return 77;
    }
    snprintf(s->dir, sizeof s->dir, "%s/s%d", base(), ++server_seq);
    if (mkdir(s->dir, 0700) < 0 && errno != EEXIST)
        return -1;
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    if (s->tls && (rc = ts_certs_make()) != 0)
        return rc;
    for (attempt = 0; attempt < 5; attempt++) {
        if (s->tcp && (s->port = free_port()) < 0)
            return -1;
        if (s->tls && (s->tls_port = free_port()) < 0)
            return -1;
        if (spawn(s) < 0)
            return -1;
        if (wait_ready(s) == 0) {
            announce(s);
            make_urls(s);
            if (nall < 64)
                all[nall++] = s;
            return 0;
        }
        ts_stop(s);
        if (!s->tcp && !s->tls)
            break;
    }
    fprintf(stderr, "harness: redis-server did not start (see %s/redis.log)\n",
            s->dir);
    log_tail(s->dir);
    return -1;
}

int ts_restart(ts_server *s)
{
    ts_stop(s);
    if (spawn(s) < 0 || wait_ready(s) < 0) {
        fprintf(stderr, "harness: restart failed\n");
        return -1;
    }
    return 0;
}

void ts_stop(ts_server *s)
{
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    if (s->pid > 0) {
        int status;
        char pidpath[600];
        kill(s->pid, SIGCONT);
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
            ;
        s->pid = 0;
        snprintf(pidpath, sizeof pidpath, "%s/server.pid", s->dir);
        unlink(pidpath);
    }
}

void ts_pause(ts_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGSTOP);
}

void ts_resume(ts_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGCONT);
}

static redisContext *ctx(ts_server *s)
{
    if (s->ctx && s->ctx->err) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    if (!s->ctx) {
        s->ctx = redisConnectUnix(s->sock);
        if (s->ctx && !s->ctx->err && s->password[0]) {
            redisReply *r = redisCommand(s->ctx, "AUTH %s", s->password);
            if (r)
                freeReplyObject(r);
        }
    }
    return s->ctx;
}

/* A command on the harness connection with SIGPIPE blocked: a server may
 * have closed it (a failover kills its clients), and hiredis writes with
 * write(2).  The tests keep SIGPIPE's default action to show that the
 * library never raises it; the harness must not raise it either. */
static redisReply *command(ts_server *s, const char *fmt, va_list ap)
{
    sigset_t pipe_set, old;
    struct timespec zero = { 0, 0 };
    redisReply *r = NULL;
    redisContext *c;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    c = ctx(s);
    if (c && !c->err)
        r = redisvCommand(c, fmt, ap);
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0) /* one this raised */
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

redisReply *ts_cmd(ts_server *s, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = command(s, fmt, ap);
    va_end(ap);
    return r;
}

long long ts_int(ts_server *s, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v = -1000;
    va_start(ap, fmt);
    r = command(s, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    if (r)
        freeReplyObject(r);
    return v;
}

const char *ts_str(ts_server *s, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    redisContext *c = ctx(s);
    buf[0] = '\0';
    if (!c || c->err)
        return buf;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        snprintf(buf, len, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return buf;
}

/* Commands a client sends itself.  INFO commandstats also counts the
 * commands that scripts run (set, get, pttl...), which are not requests. */
static int is_request(const char *name)
{
    static const char *const top[] = { "evalsha", "eval", "blpop", "scan",
                                       "select", "auth", "ping", "hello",
                                       "lpush", "rpush", NULL };
    int i;
    if (!strncmp(name, "client|", 7) || !strncmp(name, "script|", 7))
        return 1;
    for (i = 0; top[i]; i++)
        if (!strcmp(name, top[i]))
            return 1;
    return 0;
}

long long ts_calls(ts_server *s, const char *cmd)
{
    redisReply *r = ts_cmd(s, "INFO commandstats");
    long long total = 0;
    char *line, *save = NULL;
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (line = strtok_r(r->str, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        char name[128];
        long long calls;
        if (sscanf(line, "cmdstat_%127[^:]:calls=%lld", name, &calls) != 2)
            continue;
        if (cmd) {
            if (!strcmp(name, cmd))
                total = calls;
        } else if (is_request(name)) {
            total += calls;
        }
    }
    freeReplyObject(r);
    return total;
}

void ts_resetstat(ts_server *s)
{
    redisReply *r = ts_cmd(s, "CONFIG RESETSTAT");
    if (r)
        freeReplyObject(r);
}

long long ts_info(ts_server *s, const char *section, const char *field)
{
    redisReply *r = ts_cmd(s, "INFO %s", section);
    long long n = -1;
    size_t flen = strlen(field);
    const char *p;
    if (r && r->type == REDIS_REPLY_STRING) {
        for (p = r->str; (p = strstr(p, field)) != NULL; p += flen)
            if ((p == r->str || p[-1] == '\n') && p[flen] == ':') {
                n = atoll(p + flen + 1);
                break;
            }
    }
    if (r)
        freeReplyObject(r);
    return n;
}

void ts_await_blocked(ts_server *s, long long n)
{
    int i;
    for (i = 0; i < 1000; i++) {
        if (ts_info(s, "clients", "blocked_clients") >= n)
            return;
        sleep_ms(5);
    }
    fprintf(stderr, "harness: %lld clients never blocked\n", n);
    abort();
}

void ts_flushall(ts_server *s)
{
    redisReply *r = ts_cmd(s, "FLUSHALL");
    if (r)
        freeReplyObject(r);
}
