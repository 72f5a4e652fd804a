/* Key layout.  Default (python-redis-lock compatible):
 *   lock:<name>  lock-signal:<name>
 * With a key prefix P:  P lock:<name>  P lock-signal:<name>
 * With hash tags:       lock:{<name>}  lock-signal:{<name>}  (one cluster slot)
 * A lock with fencing also has its token counter, laid out the same way:
 *   lock-fence:<name>, P lock-fence:<name>, lock-fence:{<name>}
 * ("lock-fence:" does not match the "lock:*" of reset_all's SCAN, nor
 * python-redis-lock's reset_all KEYS pattern: resets never delete it).
 *
 * The queued kinds (queued.c) add keys that always carry the name in a
 * hash tag, whatever the layout, so that they share one cluster slot:
 *   P lock-holders:{<name>}  P lock-queue:{<name>}  ... (the fair lock,
 *                            beside its lock:<name> of the layout)
 *   P sem:{<name>}:holders   P sem:{<name>}:queue   ... (the semaphore)
 */
#include "internal.h"

#include <string.h>

static const char LOCK[] = "lock:";
static const char SIGNAL[] = "lock-signal:";
static const char FENCE[] = "lock-fence:";

static char *concat(const char *a, size_t alen, const char *b, size_t blen,
                    const char *mid, size_t midlen, const char *c, size_t clen,
                    const char *tail, size_t taillen, size_t *outlen)
{
    size_t n = alen + blen + midlen + clen + taillen;
    char *s = redislock__malloc(n + 1), *p = s;
    if (!s)
        return NULL;
    memcpy(p, a, alen), p += alen;
    memcpy(p, b, blen), p += blen;
    memcpy(p, mid, midlen), p += midlen;
    if (clen)
        memcpy(p, c, clen), p += clen;
    memcpy(p, tail, taillen), p += taillen;
    *p = '\0';
    if (outlen)
        *outlen = n;
    return s;
}

char *redislock__key(const redislock_client *c, int kind, const char *name,
                     size_t namelen, size_t *outlen)
{
    const char *k = kind == REDISLOCK__KEY_SIGNAL ? SIGNAL
                    : kind == REDISLOCK__KEY_FENCE ? FENCE
                                                   : LOCK;
    return concat(c->key_prefix, strlen(c->key_prefix), k, strlen(k),
                  c->hash_tag ? "{" : "", c->hash_tag ? 1 : 0, name, namelen,
                  c->hash_tag ? "}" : "", c->hash_tag ? 1 : 0, outlen);
}

char *redislock__key_pattern(const redislock_client *c, size_t *outlen)
{
    /* Escape the glob characters of the prefix; then "lock:" ["\{"] "*". */
    size_t plen = strlen(c->key_prefix), i, o = 0;
    char *s = redislock__malloc(2 * plen + sizeof LOCK + 4), *p;
    if (!s)
        return NULL;
    for (i = 0; i < plen; i++) {
        char ch = c->key_prefix[i];
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\')
            s[o++] = '\\';
        s[o++] = ch;
    }
    p = s + o;
    memcpy(p, LOCK, sizeof LOCK - 1), p += sizeof LOCK - 1;
    if (c->hash_tag)
        *p++ = '{';
    *p++ = '*';
    *p = '\0';
    if (outlen)
        *outlen = (size_t)(p - s);
    return s;
}

char *redislock__name_pattern(const redislock_client *c, const char *glob,
                              size_t *outlen)
{
    /* the escaped prefix and "lock:" ["{"], as for every lock; then the
     * caller's glob, unescaped ("*" by default) ["}"] */
    size_t base = 0, glen;
    char *all = redislock__key_pattern(c, &base), *s;
    if (!all)
        return NULL;
    base--; /* drop its "*" */
    if (!glob || !*glob)
        glob = "*";
    glen = strlen(glob);
    s = redislock__malloc(base + glen + 2);
    if (s) {
        memcpy(s, all, base);
        memcpy(s + base, glob, glen);
        if (c->hash_tag)
            s[base + glen++] = '}';
        s[base + glen] = '\0';
        if (outlen)
            *outlen = base + glen;
    }
    redislock__free(all);
    return s;
}

size_t redislock__name_offset(const redislock_client *c)
{
    return strlen(c->key_prefix) + sizeof LOCK - 1 + (c->hash_tag ? 1 : 0);
}

char *redislock__signal_of(const redislock_client *c, const char *key,
                           size_t keylen, size_t *outlen)
{
    size_t skip = strlen(c->key_prefix) + sizeof LOCK - 1;
    if (keylen < skip)
        return NULL;
    return concat(c->key_prefix, strlen(c->key_prefix), SIGNAL,
                  sizeof SIGNAL - 1, "", 0, key + skip, keylen - skip, "", 0,
                  outlen);
}

int redislock__check_name(const redislock_client *c, const char *name, size_t namelen)
{
    /* lock:{}x and lock-signal:{}x, or lock:{}x} and lock-signal:{}x},
     * hash whole (an empty tag): two slots, and every script fails */
    if (c->cluster && (namelen == 0 || name[0] == '}'))
        return redislock__err(REDISLOCK_EINVAL,
                              "the lock name %s in cluster mode: its keys would land in "
                              "different slots (lock:{NAME} hashes NAME up to its first "
                              "'}')",
                              namelen ? "starts with '}'" : "is empty");
    return 0;
}

/* The n parts one after the other, NUL-terminated; NULL when out of memory. */
static char *join(const char *const *part, const size_t *len, size_t n, size_t *outlen)
{
    size_t i, total = 0, o = 0;
    char *s;
    for (i = 0; i < n; i++)
        total += len[i];
    if (!(s = redislock__malloc(total + 1)))
        return NULL;
    for (i = 0; i < n; i++) {
        memcpy(s + o, part[i], len[i]);
        o += len[i];
    }
    s[o] = '\0';
    if (outlen)
        *outlen = total;
    return s;
}

char *redislock__tagged_key(const redislock_client *c, const char *family, const char *name,
                            size_t namelen, const char *suffix, size_t *outlen)
{
    const char *part[6] = { c->key_prefix, family, "{", name, "}", suffix };
    size_t len[6] = { strlen(c->key_prefix), strlen(family), 1, namelen, 1, strlen(suffix) };
    return join(part, len, 6, outlen);
}

char *redislock__tagged_pattern(const redislock_client *c, const char *family,
                                const char *glob, const char *suffix, size_t *outlen)
{
    /* the escaped prefix (key_pattern's, less its "lock:*"), then
     * family "{" glob "}" suffix, the glob as given */
    size_t base = 0;
    char *all = redislock__key_pattern(c, &base), *s;
    const char *part[6];
    size_t len[6];
    if (!all)
        return NULL;
    base -= sizeof LOCK - 1 + 1 + (c->hash_tag ? 1 : 0); /* "lock:" ["{"] "*" */
    if (!glob || !*glob)
        glob = "*";
    part[0] = all, len[0] = base;
    part[1] = family, len[1] = strlen(family);
    part[2] = "{", len[2] = 1;
    part[3] = glob, len[3] = strlen(glob);
    part[4] = "}", len[4] = 1;
    part[5] = suffix, len[5] = strlen(suffix);
    s = join(part, len, 6, outlen);
    redislock__free(all);
    return s;
}

int redislock__tagged_name(const redislock_client *c, const char *family, const char *suffix,
                           const char *key, size_t keylen, size_t *off, size_t *len)
{
    size_t plen = strlen(c->key_prefix), flen = strlen(family), slen = strlen(suffix);
    if (keylen < plen + flen + 2 + slen || memcmp(key + plen, family, flen) != 0 ||
        key[plen + flen] != '{' || key[keylen - slen - 1] != '}' ||
        memcmp(key + keylen - slen, suffix, slen) != 0)
        return -1;
    *off = plen + flen + 1;
    *len = keylen - slen - 1 - *off;
    return 0;
}
