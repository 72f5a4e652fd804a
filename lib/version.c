#include "internal.h"

#ifdef HAVE_OPENSSL
#include <openssl/crypto.h>
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned redislock_version(void)
{
    return REDISLOCK_VERSION_HEX;
}

const char *redislock_version_string(void)
{
    return STR(REDISLOCK_VERSION_MAJOR) "." STR(REDISLOCK_VERSION_MINOR) "." STR(
        REDISLOCK_VERSION_PATCH);
}

const char *redislock_tls_version(void)
{
#ifdef HAVE_OPENSSL
    return OpenSSL_version(OPENSSL_VERSION);
#else
    return NULL;
#endif
}
