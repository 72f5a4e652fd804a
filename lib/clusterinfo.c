/* redislock_cluster_slots(): the slot map a client routes with, for
 * tools (redislock --cluster-nodes) and for operators. */
#include "internal.h"

typedef struct slots_arg {
    redislock_slots_fn fn;
    void *userdata;
    size_t member;
} slots_arg;

static int one_range(void *arg, int first, int last, redislock__master *m)
{
    slots_arg *a = arg;
    redislock_slot_range r;
    r.first = first;
    r.last = last;
    r.master_addr = m->ep.addr;
    r.member = a->member;
    return a->fn(&r, a->userdata);
}

int redislock_cluster_slots(redislock_client *c, redislock_slots_fn fn, void *userdata)
{
    slots_arg a;
    size_t i, any = 0;
    redislock__err_clear();
    if (!c || !fn)
        return redislock__err(REDISLOCK_EINVAL, "redislock_cluster_slots: %s is NULL",
                              !c ? "client" : "fn");
    a.fn = fn;
    a.userdata = userdata;
    for (i = 0; i < c->nmasters; i++) {
        int rc;
        if (redislock__topo_single(c, i))
            continue;
        any = 1;
        a.member = i;
        rc = redislock__topo_ranges(c, i, redislock__after_ms(c->connect_timeout_ms +
                                                              c->command_timeout_ms),
                                    one_range, &a);
        if (rc)
            return rc;
    }
    return any ? 0 : redislock__err(REDISLOCK_ENOTSUP, "the client has no cluster URL "
                                    "(redis-cluster://)");
}
