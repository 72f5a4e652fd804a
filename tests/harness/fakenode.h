/* A scripted fake server for tests: listens on a free loopback TCP port,
 * reads RESP requests from any number of connections (one thread, poll),
 * and answers each with what a handler says.  For what a real server will
 * not do on demand: a sentinel that names a replica as master, a node that
 * redirects, closes mid-request, or answers one error then another. */
#ifndef TEST_FAKENODE_H
#define TEST_FAKENODE_H

#include <hiredis.h>

typedef struct tfn_node tfn_node;

/* What a handler answers: append raw RESP with tfn_reply(), or call
 * tfn_close() to close this connection after the replies so far. */
typedef struct tfn_out tfn_out;
void tfn_reply(tfn_out *out, const char *fmt, ...);
void tfn_close(tfn_out *out);

/* The handler sees each request as an array of bulk strings (req->element
 * [0] is the command) and the number of the request on this node (0, 1,
 * ...).  It runs on the node's thread. */
typedef void (*tfn_handler)(void *ud, const redisReply *req, long n, tfn_out *out);

/* Start a node on 127.0.0.1 and a free port.  NULL on failure. */
tfn_node *tfn_start(tfn_handler h, void *ud);
int tfn_port(const tfn_node *n);
/* Requests answered so far. */
long tfn_requests(tfn_node *n);
/* Stop its thread, close every connection, free it.  NULL is a no-op. */
void tfn_stop(tfn_node *n);

#endif
