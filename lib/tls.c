/* The TLS transport (rediss://): OpenSSL over a socket of our own, the
 * second transport under conn.c beside plain.c.
 *
 * One SSL_CTX per client (made with the client: its CA, certificate and
 * key files are loaded once), one SSL per connection.  OpenSSL reads and
 * writes through a BIO of ours that calls recv() and send(MSG_NOSIGNAL) on
 * the non-blocking socket: no SIGPIPE ever reaches the host process, and
 * the handshake waits in poll() by the connect deadline like everything
 * else.  Verification is on unless tls_insecure: the chain against the CA
 * file/directory or the system's store, and the host name (or IP address)
 * of the URL or tls_server_name; TLS 1.2 at least.
 *
 * Failures: a handshake or certificate the server or we refuse is
 * REDISLOCK_ETLS with OpenSSL's reason; the network (timeouts, resets, a
 * closed socket) stays REDISLOCK_EIO, also during the handshake, so that
 * a restarting server is retried as over a plain socket.  An alert before
 * the server's first reply (TLS 1.3 servers refuse a client certificate
 * only after the client's side of the handshake is done) is a handshake
 * failure too.
 *
 * fork(): a connection of another generation (the parent's, in the child)
 * is freed without a close_notify: the socket is the parent's too. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_OPENSSL

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef struct tls_state {
    SSL *ssl;
    int fd;
    int eof;              /* recv() found the socket closed by the server */
    int sys_err;          /* errno of the last send()/recv() that failed */
    int read_wants_write; /* the last SSL_read waits for room to send */
    int starved;          /* the last SSL_read wants bytes from the socket */
    int write_wants_read; /* the last SSL_write waits for bytes to read */
    int established;      /* the server sent application data */
    int failed;           /* a fatal error: no more I/O, no close_notify */
} tls_state;

/* ------------------------------------------------------------ the BIO */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    tls_state *t = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    t->sys_err = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tls_state *t = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    n = recv(t->fd, buf, (size_t)len, 0);
    if (n > 0)
        return (int)n;
    if (n == 0) {
        t->eof = 1;
        return 0;
    }
    t->sys_err = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_read(b);
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    const tls_state *t = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* nothing is buffered here */
        return 1;
    case BIO_CTRL_EOF:
        return t && t->eof;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "redislock socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_method = m; /* kept for the life of the process */
        return;
    }
    BIO_meth_free(m);
}

/* ------------------------------------------------------------ messages */

/* OpenSSL's reason for the failure on this thread's error queue (the
 * earliest), and the certificate verification result when that failed;
 * the queue is cleared. */
static const char *reason(SSL *ssl, char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    const char *r = !e                            ? NULL
                    : ERR_GET_LIB(e) == ERR_LIB_SYS ? strerror(ERR_GET_REASON(e))
                                                    : ERR_reason_error_string(e);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char num[32];
    if (!r) {
        snprintf(num, sizeof num, "error %lu", e);
        r = e ? num : "unknown error";
    }
    if (v != X509_V_OK)
        snprintf(buf, len, "%s: %s", r, X509_verify_cert_error_string(v));
    else
        snprintf(buf, len, "%s", r);
    ERR_clear_error();
    return buf;
}

/* A failure loading the client's TLS files: ETLS naming what and file. */
static int setup_error(const char *what, const char *file)
{
    char why[160], name[300];
    reason(NULL, why, sizeof why);
    if (!file)
        return redislock__err(REDISLOCK_ETLS, "TLS: %s: %s", what, why);
    redislock__printable(file, strlen(file), name, sizeof name);
    return redislock__err(REDISLOCK_ETLS, "TLS: %s %s: %s", what, name, why);
}

/* ------------------------------------------------------------ context */

/* Encrypted keys are not supported: never prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0;
}

static int load_files(SSL_CTX *ctx, const struct redislock__tls_opts *o)
{
    const char *key = o->key_file ? o->key_file : o->cert_file;
    if (!o->insecure) {
        if (o->ca_file || o->ca_dir) {
            if (SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_dir) != 1)
                return setup_error(o->ca_file ? "cannot load the CA file"
                                              : "cannot use the CA directory",
                                   o->ca_file ? o->ca_file : o->ca_dir);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            return setup_error("cannot use the system's trust store", NULL);
        }
    }
    if (!o->cert_file)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
        return setup_error("cannot load the client certificate", o->cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return setup_error("cannot load the client key (unencrypted PEM)", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return setup_error("the client key does not match its certificate", key);
    return 0;
}

/* OpenSSL caches a certificate's extensions (its key identifiers, its
 * flags) on the certificate's first use, under the certificate's lock,
 * and reads them without it: two first handshakes at once on one SSL_CTX
 * race on the CA certificates of its store (TSan, OpenSSL 3.0:
 * ASN1_STRING_set against ASN1_STRING_cmp).  Every certificate the
 * context holds now (the store's, ours and our chain) is used once here,
 * before any thread can.  Certificates a CA directory lends later are
 * cached by their lookup. */
static void warm_certificates(SSL_CTX *ctx)
{
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    STACK_OF(X509) *chain = NULL;
    X509 *own = SSL_CTX_get0_certificate(ctx);
    int i;
    for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x)
            (void)X509_get_extension_flags(x);
    }
    if (own)
        (void)X509_get_extension_flags(own);
    if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1)
        for (i = 0; i < sk_X509_num(chain); i++)
            (void)X509_get_extension_flags(sk_X509_value(chain, i));
}

int redislock__tls_init(redislock_client *c)
{
    SSL_CTX *ctx;
    size_t i;
    int rc, any = 0;
    for (i = 0; i < c->nmasters; i++)
        any |= c->members[i].tmpl.tls;
    if (!any)
        return 0;
    pthread_once(&bio_once, make_bio_method);
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !bio_method) {
        SSL_CTX_free(ctx);
        return setup_error("cannot make a TLS context", NULL);
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* conn.c retries a write with the rest of its buffer, which may have
     * moved and grown since */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_NO_RENEGOTIATION
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
#endif
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /* one recv() for a reply, not one for the record's header and one for
     * its body (see tls_pending for the bytes this leaves in OpenSSL) */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, c->tls.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if ((rc = load_files(ctx, &c->tls))) {
        SSL_CTX_free(ctx);
        return rc;
    }
    warm_certificates(ctx);
    if (c->tls.insecure)
        redislock__log(c, REDISLOCK_LOG_WARN,
                       "TLS: tls_insecure is set: the servers' certificates and "
                       "names are not verified");
    c->tls_ctx = ctx;
    return 0;
}

void redislock__tls_free(redislock_client *c)
{
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
}

/* ------------------------------------------------------------ connection */

static int is_ip_address(const char *s)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* The SSL of a new connection: SNI and the name to verify. */
static int new_ssl(redislock__conn *c, tls_state *t)
{
    const redislock_client *cl = c->m->client;
    const char *name = cl->tls.server_name ? cl->tls.server_name : c->m->ep.host;
    int ip = is_ip_address(name), ok = 1;
    char why[160];
    BIO *b;
    ERR_clear_error();
    t->ssl = SSL_new(cl->tls_ctx);
    b = t->ssl ? BIO_new(bio_method) : NULL;
    if (!b)
        return redislock__err(REDISLOCK_ENOMEM, "redis %s: cannot make a TLS "
                              "connection: %s", c->m->ep.addr, reason(NULL, why, sizeof why));
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_connect_state(t->ssl);
    if (!ip)
        ok = SSL_set_tlsext_host_name(t->ssl, name) == 1;
    if (ok && !cl->tls.insecure) {
        X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1
                : X509_VERIFY_PARAM_set1_host(p, name, 0) == 1;
    }
    if (!ok)
        return redislock__err(REDISLOCK_ETLS, "redis %s: TLS: cannot use the server "
                              "name: %s", c->m->ep.addr, reason(NULL, why, sizeof why));
    return 0;
}

/* The handshake failed with SSL_get_error() e. */
static int handshake_error(redislock__conn *c, tls_state *t, int e)
{
    char why[160];
    const char *addr = c->m->ep.addr;
    t->failed = 1;
    if (t->eof || (e == SSL_ERROR_SYSCALL && !t->sys_err)) {
        ERR_clear_error();
        return redislock__err(REDISLOCK_EIO, "redis %s: TLS handshake: connection "
                              "closed by server", addr);
    }
    if (e == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return redislock__err(REDISLOCK_EIO, "redis %s: TLS handshake: %s", addr,
                              strerror(t->sys_err));
    }
    reason(t->ssl, why, sizeof why);
    return redislock__err(REDISLOCK_ETLS, "redis %s: TLS handshake: %s%s", addr, why,
                          strstr(why, "wrong version number")
                              ? " (is it a TLS port?)" : "");
}

/* SSL_connect until done, waiting in poll() by the deadline. */
static int handshake(redislock__conn *c, tls_state *t, int64_t deadline)
{
    for (;;) {
        int r, e, w;
        ERR_clear_error();
        r = SSL_connect(t->ssl);
        if (r == 1)
            return 0;
        e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return handshake_error(c, t, e);
        w = redislock__net_wait(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                deadline);
        if (w > 0)
            continue;
        t->failed = 1;
        if (w == 0)
            return redislock__err(REDISLOCK_EIO, "redis %s: TLS handshake: no answer "
                                  "in time (is it a TLS port?)", c->m->ep.addr);
        return redislock__err(REDISLOCK_EIO, "redis %s: TLS handshake: poll: %s",
                              c->m->ep.addr, strerror(errno));
    }
}

static int tls_open(redislock__conn *c, int64_t deadline)
{
    tls_state *t;
    int rc;
    if (!c->m->client->tls_ctx) /* cannot happen: made with the client */
        return redislock__err(REDISLOCK_ETLS, "redis %s: no TLS context", c->m->ep.addr);
    if ((rc = redislock__net_connect(&c->m->ep, deadline, &c->fd)))
        return rc;
    t = redislock__calloc(1, sizeof *t);
    if (!t)
        return redislock__err(REDISLOCK_ENOMEM, "out of memory opening a connection");
    t->fd = c->fd;
    c->tctx = t;
    if ((rc = new_ssl(c, t)))
        return rc;
    return handshake(c, t, deadline);
}

/* A TLS failure: its reason in c->terr, with ETLS before the server's
 * first reply (the handshake's), EIO after. */
static void tls_failure(redislock__conn *c, tls_state *t)
{
    char why[120];
    reason(t->ssl, why, sizeof why);
    snprintf(c->terr, sizeof c->terr, "TLS%s: %s", t->established ? "" : " handshake",
             why);
    c->terr_code = t->established ? 0 : REDISLOCK_ETLS;
}

/* A send failed on the socket before the server's first reply: a server
 * that refused the handshake after the client's side of it (TLS 1.3 with a
 * client certificate it does not accept) sent an alert and closed.  The
 * alert, still readable, is the reason, not the reset. */
static void read_alert(redislock__conn *c, tls_state *t)
{
    char b[256];
    size_t n;
    int r;
    ERR_clear_error();
    r = SSL_read_ex(t->ssl, b, sizeof b, &n);
    if (r != 1 && SSL_get_error(t->ssl, r) == SSL_ERROR_SSL)
        tls_failure(c, t);
}

/* A failed SSL_read or SSL_write (e from SSL_get_error()): -1 with errno
 * (EAGAIN when it must wait, the socket's errno), or 0 for the end of the
 * stream when reading.  A TLS failure leaves its reason in c->terr. */
static ssize_t io_failed(redislock__conn *c, tls_state *t, int e, int writing)
{
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        if (writing)
            t->write_wants_read = e == SSL_ERROR_WANT_READ;
        else
            t->read_wants_write = e == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        t->eof = 1;
        break;
    case SSL_ERROR_SYSCALL:
        if (writing && !t->established)
            read_alert(c, t);
        break;
    default:
        if (!t->eof) /* not the server's close seen as a truncation */
            tls_failure(c, t);
    }
    ERR_clear_error();
    t->failed = 1;
    if (t->eof && !writing)
        return 0;
    errno = c->terr[0] ? EPROTO : t->eof ? EPIPE : t->sys_err ? t->sys_err : ECONNRESET;
    return -1;
}

static ssize_t tls_send(redislock__conn *c, const char *buf, size_t len)
{
    tls_state *t = c->tctx;
    size_t n = 0;
    int r;
    if (t->failed) {
        errno = EPIPE;
        return -1;
    }
    ERR_clear_error();
    r = SSL_write_ex(t->ssl, buf, len, &n);
    t->write_wants_read = 0;
    if (r == 1)
        return (ssize_t)n;
    return io_failed(c, t, SSL_get_error(t->ssl, r), 1);
}

static ssize_t tls_recv(redislock__conn *c, char *buf, size_t len)
{
    tls_state *t = c->tctx;
    size_t n = 0;
    int r, e;
    if (t->failed) {
        errno = EPIPE;
        return -1;
    }
    ERR_clear_error();
    r = SSL_read_ex(t->ssl, buf, len, &n);
    t->read_wants_write = 0;
    t->starved = 0;
    if (r == 1) {
        t->established = 1;
        t->write_wants_read = 0;
        return (ssize_t)n;
    }
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        t->starved = 1;
        t->write_wants_read = 0; /* what came is taken: a write may go on */
    }
    return io_failed(c, t, e, 0);
}

/* A read or write that waits for the other direction polls for that. */
static short tls_events(const redislock__conn *c, short want)
{
    const tls_state *t = c->tctx;
    short ev = 0;
    if (want & POLLIN)
        ev |= t->read_wants_write ? POLLOUT : POLLIN;
    if (want & POLLOUT)
        ev |= t->write_wants_read ? POLLIN : POLLOUT;
    return ev;
}

/* Bytes that poll() cannot see: decrypted ones, or records read ahead
 * from the socket into OpenSSL and not processed yet.  Once SSL_read asked
 * for more from the socket, what is left there is a partial record, which
 * only the socket can complete: poll() it then, rather than spin. */
static int tls_pending(const redislock__conn *c)
{
    const tls_state *t = c->tctx;
    return t && t->ssl && !t->failed &&
           (SSL_pending(t->ssl) > 0 || (!t->starved && SSL_has_pending(t->ssl)));
}

/* An idle pooled connection owes no reply: application data, an alert, a
 * close_notify or EOF make it unusable.  TLS 1.3 servers may send records
 * that are not data at any time (NewSessionTicket, KeyUpdate): those are
 * processed (also when read ahead with the last reply), and the connection
 * stays. */
static int tls_alive(redislock__conn *c)
{
    tls_state *t = c->tctx;
    int i;
    if (t->failed || SSL_pending(t->ssl) > 0)
        return 0;
    for (i = 0; i < 4; i++) {
        char b;
        size_t n;
        int r, e;
        if (!SSL_has_pending(t->ssl) && redislock__net_idle(c->fd))
            return 1;
        ERR_clear_error();
        r = SSL_read_ex(t->ssl, &b, 1, &n);
        e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            t->failed = e != SSL_ERROR_NONE; /* a reply-less byte: no alert */
            return 0;
        }
    }
    return 0; /* records keep coming: not idle */
}

static void tls_close(redislock__conn *c)
{
    tls_state *t = c->tctx;
    if (t) {
        if (t->ssl) {
            /* close_notify, once and without waiting, only from the process
             * that opened it and only when nothing went wrong */
            if (!t->failed && !c->broken && c->gen == redislock__fork_gen() &&
                SSL_is_init_finished(t->ssl)) {
                ERR_clear_error();
                (void)SSL_shutdown(t->ssl);
            }
            SSL_free(t->ssl); /* and the BIO */
        }
        ERR_clear_error();
        redislock__free(t);
        c->tctx = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

#else /* !HAVE_OPENSSL: url.c refuses rediss:// */

int redislock__tls_init(redislock_client *c)
{
    size_t i;
    for (i = 0; i < c->nmasters; i++)
        if (c->members[i].tmpl.tls)
            return redislock__err(REDISLOCK_ENOTSUP, "TLS (rediss://) is not supported: "
                                  "this libredislock was built without OpenSSL");
    return 0;
}

void redislock__tls_free(redislock_client *c)
{
    (void)c;
}

static int tls_open(redislock__conn *c, int64_t deadline)
{
    (void)deadline;
    return redislock__err(REDISLOCK_ENOTSUP, "redis %s: TLS is not supported by this "
                          "build", c->m->ep.addr);
}

static ssize_t tls_send(redislock__conn *c, const char *buf, size_t len)
{
    (void)c;
    (void)buf;
    (void)len;
    errno = ENOTSUP;
    return -1;
}

static ssize_t tls_recv(redislock__conn *c, char *buf, size_t len)
{
    return tls_send(c, buf, len);
}

static short tls_events(const redislock__conn *c, short want)
{
    (void)c;
    return want;
}

static int tls_pending(const redislock__conn *c)
{
    (void)c;
    return 0;
}

static int tls_alive(redislock__conn *c)
{
    (void)c;
    return 0;
}

static void tls_close(redislock__conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

#endif /* HAVE_OPENSSL */

const redislock__transport redislock__transport_tls = {
    "tls", tls_open, tls_send, tls_recv, tls_events,
    tls_pending, tls_alive, tls_close,
};
