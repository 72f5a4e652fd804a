/* metrics: serve a client's lock metrics to Prometheus on /metrics, beside
 * worker threads that contend for one lock (redislock_client_stats(3)).
 *
 *   metrics URL [PORT]
 * Listens on 127.0.0.1:PORT (0, the default: a free port), prints
 * "listening on http://127.0.0.1:PORT/metrics", and serves until SIGINT or
 * SIGTERM; then it shuts the client down (the waiting workers return at
 * once), and exits 0.  Four workers take the lock "metrics-demo" (waiting
 * up to 2 s), hold it 0-20 ms and release it, in a loop.  Try
 *   curl http://127.0.0.1:PORT/metrics
 * Exit status: 0 after a signal, 2 usage, 3 error.
 */
#include <redislock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS 4

static redislock_client *client;
static volatile sig_atomic_t stopping;
static int wake[2]; /* the signal handler writes here: poll() returns */

static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    stopping = 1;
    redislock_client_shutdown(client); /* async-signal-safe */
    if (write(wake[1], "x", 1) < 0) { /* nothing to do: poll() also times out */
    }
    errno = saved;
}

static void *worker(void *arg)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    unsigned seed = (unsigned)(size_t)arg;
    o.expire_ms = 10000;
    if (redislock_new(&lk, client, "metrics-demo", &o)) {
        fprintf(stderr, "metrics: %s\n", redislock_last_error());
        return NULL;
    }
    while (!stopping) {
        int rc = redislock_acquire(lk, 2000);
        if (rc == REDISLOCK_OK) {
            usleep((useconds_t)(rand_r(&seed) % 20000));
            if (redislock_release(lk))
                fprintf(stderr, "metrics: %s\n", redislock_errmsg(lk));
        } else if (rc != REDISLOCK_ETIMEDOUT && rc != REDISLOCK_ECANCELED) {
            fprintf(stderr, "metrics: %s\n", redislock_errmsg(lk));
            sleep(1);
        }
    }
    redislock_free(lk);
    return NULL;
}

/* One request on fd: GET /metrics, or 404.  Best effort: a client that
 * sends nothing within a second is dropped. */
static void serve(int fd)
{
    static char body[65536];
    char req[2048], head[256];
    struct pollfd p = { fd, POLLIN, 0 };
    redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
    ssize_t n = 0;
    int len = -1;

    if (poll(&p, 1, 1000) == 1)
        n = read(fd, req, sizeof req - 1);
    if (n <= 0)
        return;
    req[n] = '\0';
    if (!strncmp(req, "GET /metrics ", 13) && !redislock_client_stats(client, &st))
        len = redislock_stats_prometheus(&st, "example=\"metrics\"", body, sizeof body);
    if (len < 0 || (size_t)len >= sizeof body) {
        static const char nf[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
        if (write(fd, nf, sizeof nf - 1) < 0)
            return;
        return;
    }
    n = snprintf(head, sizeof head,
                 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
                 "charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                 len);
    if (write(fd, head, (size_t)n) == n && write(fd, body, (size_t)len) == len)
        return; /* sent */
}

/* A listening socket on 127.0.0.1:port; its port in *port. */
static int listen_on(int *port)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)*port);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&sa, &salen)) {
        perror("metrics: listen");
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    pthread_t th[WORKERS];
    struct sigaction sa;
    int port = argc > 2 ? atoi(argv[2]) : 0, lfd, i, started = 0;

    if (argc < 2 || argc > 3 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: metrics URL [PORT]\n");
        return 2;
    }
    if (redislock_client_new(&client, argv[1], NULL)) {
        fprintf(stderr, "metrics: %s\n", redislock_last_error());
        return 3;
    }
    if (pipe(wake) || (lfd = listen_on(&port)) < 0) {
        redislock_client_free(client);
        return 3;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (i = 0; i < WORKERS; i++)
        started += !pthread_create(&th[i], NULL, worker, (void *)(size_t)(i + 1));
    printf("listening on http://127.0.0.1:%d/metrics\n", port);
    fflush(stdout);
    while (!stopping) {
        struct pollfd p[2] = { { lfd, POLLIN, 0 }, { wake[0], POLLIN, 0 } };
        if (poll(p, 2, -1) > 0 && (p[0].revents & POLLIN)) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                serve(fd);
                close(fd);
            }
        }
    }
    for (i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    close(lfd);
    redislock_client_free(client);
    return 0;
}
