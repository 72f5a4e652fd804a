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

/* Escape s[0..n) into buf, reading at most max_in bytes; "..." when cut. */
static const char *escape(const char *s, size_t n, size_t max_in, char *buf,
                          size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    if (buflen < 8) {
        if (buflen)
            buf[0] = '\0';
        return buf;
    }
    for (i = 0; i < n && i < max_in; i++) {
        unsigned char ch = (unsigned char)s[i];
        int plain = ch >= 0x20 && ch < 0x7f && ch != '\\';
        if (o + (plain ? 1 : 4) + 3 >= buflen)
            break; /* keep room for "..." and the NUL */
        if (plain) {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (i < n) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = '\0';
    return buf;
}

const char *redislock__printable(const char *s, size_t n, char *buf, size_t buflen)
{
    return escape(s, n, (size_t)-1, buf, buflen);
}

const char *redislock__quote(const char *s, size_t n, char *buf, size_t buflen)
{
    return escape(s, n, 64, buf, buflen);
}

void redislock__notes_add(redislock__notes *w, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (w->len + 3 >= sizeof w->text)
        return;
    if (w->len) {
        memcpy(w->text + w->len, "; ", 3);
        w->len += 2;
    }
    va_start(ap, fmt);
    n = vsnprintf(w->text + w->len, sizeof w->text - w->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t)n;
    if (w->len > sizeof w->text - 1)
        w->len = sizeof w->text - 1;
}
