/* Fuzz target: the URL parser (redislock__url_parse) and the public client
 * constructors with arbitrary strings.  The whole input (up to a NUL) is
 * one URL; its lines are the URLs given to redislock_client_new_multi().
 * Any outcome is fine but a crash, a leak, an out-of-range read, an error
 * without a one-line message, or a success that leaves a malformed endpoint. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_URLS 8

static void check_endpoint(const redislock__endpoint *ep)
{
    /* a successful parse always gives a usable endpoint */
    if (!ep->host || !ep->addr || (!ep->is_unix && (ep->port < 1 || ep->port > 65535)) ||
        ep->db < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), *copy, *line, *save = NULL;
    const char *urls[MAX_URLS];
    redislock__endpoint ep;
    redislock_client *c = NULL;
    size_t n = 0;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    memset(&ep, 0, sizeof ep);
    if (redislock__url_parse(s, &ep) == 0)
        check_endpoint(&ep);
    redislock__endpoint_clear(&ep);

    if (redislock_client_new(&c, s, NULL) == 0)
        redislock_client_free(c);
    else if (!redislock_last_error()[0] || strpbrk(redislock_last_error(), "\r\n"))
        abort(); /* an error always comes with a one-line message */
    c = NULL;

    copy = strdup(s);
    if (copy) {
        for (line = strtok_r(copy, "\n", &save); line && n < MAX_URLS;
             line = strtok_r(NULL, "\n", &save))
            urls[n++] = line;
        if (redislock_client_new_multi(&c, urls, n, NULL) == 0)
            redislock_client_free(c);
        else if (!redislock_last_error()[0] || strpbrk(redislock_last_error(), "\r\n"))
            abort();
        free(copy);
    }
    free(s);
    return 0;
}
