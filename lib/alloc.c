/* Allocator hooks (libuv's uv_replace_allocator model). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static struct {
    void *(*malloc_fn)(size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*calloc_fn)(size_t, size_t);
    void (*free_fn)(void *);
} allocator = { malloc, realloc, calloc, free };

int redislock_replace_allocator(void *(*malloc_fn)(size_t),
                                void *(*realloc_fn)(void *, size_t),
                                void *(*calloc_fn)(size_t, size_t),
                                void (*free_fn)(void *))
{
    if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
        return redislock__err(REDISLOCK_EINVAL,
                              "redislock_replace_allocator: a function is NULL");
    allocator.malloc_fn = malloc_fn;
    allocator.realloc_fn = realloc_fn;
    allocator.calloc_fn = calloc_fn;
    allocator.free_fn = free_fn;
    return REDISLOCK_OK;
}

void *redislock__malloc(size_t n)
{
    return allocator.malloc_fn(n ? n : 1);
}

void *redislock__calloc(size_t n, size_t size)
{
    return allocator.calloc_fn(n ? n : 1, size ? size : 1);
}

void *redislock__realloc(void *p, size_t n)
{
    return allocator.realloc_fn(p, n ? n : 1);
}

void redislock__free(void *p)
{
    if (p)
        allocator.free_fn(p);
}

char *redislock__memdup(const void *p, size_t n)
{
    char *s = redislock__malloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

char *redislock__strdup(const char *s)
{
    return redislock__memdup(s, strlen(s));
}
