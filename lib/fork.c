/* The fork generation: bumped in the child after every fork() (by the
 * atfork handler in client.c).  A connection remembers the generation it was
 * opened in; pools close their copies of the parent's sockets on first use
 * in the child, and no connection is ever used in another generation. */
#include "internal.h"

static unsigned long fork_gen;

unsigned long redislock__fork_gen(void)
{
    return __atomic_load_n(&fork_gen, __ATOMIC_SEQ_CST);
}

void redislock__fork_next_gen(void)
{
    __atomic_add_fetch(&fork_gen, 1, __ATOMIC_SEQ_CST);
}
