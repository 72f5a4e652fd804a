#include "intervals.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixtures.h"

struct ti_log {
    int slots, per_slot;
    int *count;     /* [slots] */
    ti_hold *holds; /* [slots][per_slot] */
};

ti_log *ti_log_new(int slots, int per_slot)
{
    size_t counts = (size_t)slots * sizeof(int);
    size_t holds = (size_t)slots * (size_t)per_slot * sizeof(ti_hold);
    /* the header, then the holds (aligned), then the counts */
    size_t head = (sizeof(ti_log) + sizeof(ti_hold) - 1) / sizeof(ti_hold) * sizeof(ti_hold);
    char *mem = tf_shared(head + holds + counts);
    ti_log *l = (ti_log *)mem;
    l->slots = slots;
    l->per_slot = per_slot;
    l->holds = (ti_hold *)(mem + head);
    l->count = (int *)(mem + head + holds);
    return l;
}

void ti_add(ti_log *l, int slot, int64_t start_us, int64_t end_us)
{
    int k = l->count[slot];
    if (k < l->per_slot) {
        l->holds[(size_t)slot * (size_t)l->per_slot + (size_t)k].start_us = start_us;
        l->holds[(size_t)slot * (size_t)l->per_slot + (size_t)k].end_us = end_us;
    }
    l->count[slot] = k + 1;
}

int ti_count(const ti_log *l, int slot)
{
    return l->count[slot];
}

int64_t ti_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ti_vouched(redislock *lk)
{
    int64_t t = ti_now_us();
    return redislock_held(lk) ? t : 0;
}

typedef struct entry {
    ti_hold h;
    int slot;
} entry;

static int by_start(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    return a->h.start_us < b->h.start_us ? -1 : a->h.start_us > b->h.start_us;
}

int ti_find_overlap(const ti_log *l, ti_report *r, ti_overlap *o)
{
    entry *all;
    size_t n = 0, i;
    int s, k, overlap = 0;

    r->holds = 0;
    r->min_gap_us = -1;
    /* one more than the most there can be: never malloc(0) */
    all = malloc(sizeof *all * ((size_t)l->slots * (size_t)l->per_slot + 1));
    if (!all)
        fail_msg("ti_find_overlap: out of memory");
    for (s = 0; s < l->slots; s++)
        for (k = 0; k < l->count[s] && k < l->per_slot; k++) {
            all[n].h = l->holds[(size_t)s * (size_t)l->per_slot + (size_t)k];
            all[n].slot = s;
            n++;
        }
    qsort(all, n, sizeof *all, by_start);
    /* up to the first overlap the holds are disjoint, so in the order of
     * their starts each one ends before the next starts */
    for (i = 1; i < n && !overlap; i++) {
        int64_t gap = all[i].h.start_us - all[i - 1].h.end_us;
        if (gap < 0) {
            overlap = 1;
            o->first = all[i - 1].h;
            o->first_slot = all[i - 1].slot;
            o->second = all[i].h;
            o->second_slot = all[i].slot;
        } else if (r->min_gap_us < 0 || gap < r->min_gap_us) {
            r->min_gap_us = gap;
        }
    }
    r->holds = n;
    free(all);
    return overlap;
}

ti_report ti_check(const ti_log *l)
{
    ti_report r;
    ti_overlap o;
    if (ti_find_overlap(l, &r, &o))
        fail_msg("two holds overlap: [%lld, %lld] us (contender %d) and [%lld, %lld] us "
                 "(contender %d): the second began %lld us before the first ended",
                 (long long)o.first.start_us, (long long)o.first.end_us, o.first_slot,
                 (long long)o.second.start_us, (long long)o.second.end_us,
                 o.second_slot, (long long)(o.first.end_us - o.second.start_us));
    return r;
}

/* ------------------------------------------- at most n holders at once */

typedef struct event {
    int64_t t;
    int delta; /* +1 a hold starts, -1 one ends */
} event;

static int by_time(const void *x, const void *y)
{
    const event *a = x, *b = y;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    return a->delta - b->delta; /* an end before a start: touching holds */
}

int ti_most_at_once(const ti_log *l, ti_report *r, int64_t *when_us)
{
    event *ev;
    size_t n = 0, i;
    int s, k, now = 0, most = 0;
    ev = malloc(sizeof *ev * (2 * (size_t)l->slots * (size_t)l->per_slot + 1));
    if (!ev)
        fail_msg("ti_most_at_once: out of memory");
    for (s = 0; s < l->slots; s++)
        for (k = 0; k < l->count[s] && k < l->per_slot; k++) {
            const ti_hold *h = &l->holds[(size_t)s * (size_t)l->per_slot + (size_t)k];
            ev[n].t = h->start_us, ev[n++].delta = 1;
            ev[n].t = h->end_us, ev[n++].delta = -1;
        }
    qsort(ev, n, sizeof *ev, by_time);
    *when_us = 0;
    for (i = 0; i < n; i++) {
        now += ev[i].delta;
        if (now > most) {
            most = now;
            *when_us = ev[i].t;
        }
    }
    r->holds = n / 2;
    r->min_gap_us = -1;
    free(ev);
    return most;
}

ti_report ti_check_at_most(const ti_log *l, int n)
{
    ti_report r;
    int64_t when;
    int most = ti_most_at_once(l, &r, &when);
    if (most > n)
        fail_msg("%d holds at once at %lld us: at most %d may be", most, (long long)when, n);
    return r;
}
