/* Error codes, their names and messages, and the per-thread detail line. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define REDISLOCK__MSG_MAX 512

static _Thread_local char last_error[REDISLOCK__MSG_MAX];

const char *redislock_strerror(int err)
{
    switch (err) {
    case REDISLOCK_OK:
        return "success";
#define XX(name, value, msg) case REDISLOCK_##name: return msg;
        REDISLOCK_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *redislock_err_name(int err)
{
    switch (err) {
    case REDISLOCK_OK:
        return "OK";
#define XX(name, value, msg) case REDISLOCK_##name: return #name;
        REDISLOCK_ERRNO_MAP(XX)
#undef XX
    default:
        return "UNKNOWN";
    }
}

const char *redislock_last_error(void)
{
    return last_error;
}

int redislock__err(int code, const char *fmt, ...)
{
    char buf[REDISLOCK__MSG_MAX]; /* arguments may point into last_error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof last_error);
    return code;
}

void redislock__err_clear(void)
{
    last_error[0] = '\0';
}

const char *redislock__quote(const char *s, size_t n, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    if (buflen < 8) {
        if (buflen)
            buf[0] = '\0';
        return buf;
    }
    for (i = 0; i < n && i < 64 && o + 5 < buflen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            buf[o++] = (char)ch;
        } else if (o + 5 < buflen) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (i < n && o + 3 < buflen) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = '\0';
    return buf;
}
