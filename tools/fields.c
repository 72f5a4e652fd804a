/* The fields of an answer on stdout: shell words that a shell gives back
 * unchanged (the text of --status and --list), and JSON strings (--json).
 * A lock name or owner id is any bytes: the text form must survive a copy
 * into a command line, the JSON form must be valid UTF-8. */
#include "tool.h"

#include <stdio.h>

/* The length of the UTF-8 sequence of a printable character at s (n bytes
 * left): 1 to 4, or 0 for a byte that is not one (a control character,
 * C1 included, an overlong, surrogate or cut sequence, above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t k, i;
    unsigned cp;
    if (s[0] < 0x80)
        return s[0] >= 0x20 && s[0] != 0x7f;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        k = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        k = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        k = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (n < k)
        return 0;
    for (i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((k == 2 && cp < 0xa0) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0; /* C1 controls (U+0080-U+009F) too: terminals obey them */
    return k;
}

/* Bytes a shell word may hold unquoted (Python's shlex.quote() keeps the
 * same ones). */
static int word_safe(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '@' || ch == '%' || ch == '+' || ch == '=' || ch == ':' ||
           ch == ',' || ch == '.' || ch == '/' || ch == '-';
}

void rlt_put_word(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i, k;
    int plain = len > 0, printable = 1;
    for (i = 0; i < len; i += k ? k : 1) {
        k = utf8_len(u + i, len - i);
        plain &= word_safe(u[i]);
        printable &= k > 0;
    }
    if (plain) {
        fwrite(s, 1, len, stdout);
    } else if (printable) { /* 'it'\''s' */
        putchar('\'');
        for (i = 0; i < len; i++) {
            if (s[i] == '\'')
                fputs("'\\''", stdout);
            else
                putchar(s[i]);
        }
        putchar('\'');
    } else { /* $'...' (bash, zsh, ksh, busybox; POSIX.1-2024; not dash) */
        fputs("$'", stdout);
        for (i = 0; i < len; i += k ? k : 1) {
            k = utf8_len(u + i, len - i);
            if (!k)
                printf("\\x%02x", u[i]);
            else if (s[i] == '\'' || s[i] == '\\')
                printf("\\%c", s[i]);
            else
                fwrite(s + i, 1, k, stdout);
        }
        putchar('\'');
    }
}

/* s as a JSON string; each byte of an invalid sequence becomes U+FFFD.
 * Returns 1 when one did. */
static int json_string(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i, k;
    int lossy = 0;
    putchar('"');
    for (i = 0; i < len; i += k ? k : 1) {
        k = utf8_len(u + i, len - i);
        if (k && s[i] != '"' && s[i] != '\\') {
            fwrite(s + i, 1, k, stdout);
        } else if (k) {
            printf("\\%c", s[i]);
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            printf("\\u%04x", u[i]);
        } else if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
            printf("\\u%04x", u[i + 1]); /* a C1 control, escaped */
            k = 2;
        } else {
            fputs("\\ufffd", stdout);
            lossy = 1;
        }
    }
    putchar('"');
    return lossy;
}

void rlt_put_json(const char *key, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    printf("\"%s\":", key);
    if (!json_string(s, len))
        return;
    /* not UTF-8: the exact bytes too */
    printf(",\"%s_hex\":\"", key);
    for (i = 0; i < len; i++) {
        putchar(hex[(unsigned char)s[i] >> 4]);
        putchar(hex[(unsigned char)s[i] & 15]);
    }
    putchar('"');
}
