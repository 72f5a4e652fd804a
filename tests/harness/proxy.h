/* A fault proxy for tests: stands between clients and one redis-server on
 * a unix socket of its own, and misbehaves on request, like a network that
 * stalls or a partition.  One thread per proxy; the test changes the mode
 * from its own thread at any time. */
#ifndef TEST_PROXY_H
#define TEST_PROXY_H

enum tp_mode {
    TP_PASS,          /* pass bytes both ways */
    TP_STALL,         /* hold bytes both ways (a stalled network or peer);
                         what was held flows when the mode is PASS again */
    TP_STALL_REPLIES, /* requests reach the server, replies are held */
    TP_DROP           /* close every connection; refuse new ones at once */
};

typedef struct tp_proxy tp_proxy;

/* Start a proxy in dir (a socket file "proxy-N.sock" there) in front of
 * the server listening on target_sock.  NULL on failure. */
tp_proxy *tp_start(const char *target_sock, const char *dir);
/* "unix://<its socket>" for redislock_client_new(). */
const char *tp_url(const tp_proxy *p);
void tp_set_mode(tp_proxy *p, enum tp_mode mode);
/* With on, new connections are closed at once (the existing ones keep the
 * mode): a client that opens a connection to give something back cannot. */
void tp_refuse_new(tp_proxy *p, int on);
/* Bytes passed server -> client so far (replies). */
unsigned long long tp_reply_bytes(tp_proxy *p);
/* Stop the thread, close everything, free.  NULL is a no-op. */
void tp_stop(tp_proxy *p);

#endif
