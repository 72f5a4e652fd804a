#include "internal.h"

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
