/* Built by tests/check-cmake.sh with CMake against an installed
 * libredislock: the header and the library it links agree, and a client
 * can be made (with TLS, the static link needs OpenSSL: its private
 * dependencies were found).  Prints the versions. */
#include <redislock.h>

#include <stdio.h>

int main(void)
{
    redislock_client *c = NULL;
    const char *tls = redislock_tls_version();
    int rc;
    if (redislock_version() != REDISLOCK_VERSION_HEX) {
        fprintf(stderr, "header %x, library %x\n", (unsigned)REDISLOCK_VERSION_HEX,
                redislock_version());
        return 1;
    }
    /* no I/O: a client connects on first use */
    rc = redislock_client_new(&c, tls ? "rediss://127.0.0.1:1" : "redis://127.0.0.1:1", NULL);
    if (rc) {
        fprintf(stderr, "redislock_client_new: %s\n", redislock_last_error());
        return 1;
    }
    redislock_client_free(c);
    printf("libredislock %s, %s\n", redislock_version_string(), tls ? tls : "no TLS");
    return 0;
}
