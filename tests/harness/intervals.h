/* The no-overlap check of mutual exclusion, across threads and processes.
 *
 * Every contender logs each of its holds as an interval on CLOCK_MONOTONIC
 * (one clock for every process of the machine), in microseconds: from the
 * moment redislock_acquire() returned to the last moment redislock_held()
 * vouched for the lock (ti_vouched(): the clock is read before held() is
 * asked, so the interval never claims more than held() said).  The log is
 * in shared memory: children made by fork() after ti_log_new() write to
 * the same log, each contender to a slot of its own.
 *
 * ti_check() puts every logged hold of every slot in the order of their
 * starts and fails the test if one starts before an earlier one ended (two
 * holders at once).  It reports how many holds it checked and the smallest
 * gap between the end of one hold and the start of the next: the margin
 * by which the lock kept its promise. */
#ifndef TEST_INTERVALS_H
#define TEST_INTERVALS_H

#include <stddef.h>
#include <stdint.h>

#include "redislock.h"

typedef struct ti_hold {
    int64_t start_us, end_us;
} ti_hold;

typedef struct ti_log ti_log;

/* A log of slots x per_slot holds, in shared memory freed after the test
 * (tf_shared()). */
ti_log *ti_log_new(int slots, int per_slot);
/* Log one hold of slot (one writer per slot).  Holds beyond per_slot are
 * counted but not kept. */
void ti_add(ti_log *l, int slot, int64_t start_us, int64_t end_us);
/* How many holds slot logged (kept or not). */
int ti_count(const ti_log *l, int slot);

/* CLOCK_MONOTONIC in microseconds. */
int64_t ti_now_us(void);
/* The time read just before redislock_held(lk) answered 1; 0 when it
 * answered 0. */
int64_t ti_vouched(redislock *lk);

typedef struct ti_report {
    size_t holds;       /* holds checked (those kept) */
    int64_t min_gap_us; /* smallest gap from one hold's end to the next
                           one's start; -1 with fewer than two holds */
} ti_report;

typedef struct ti_overlap {
    ti_hold first, second; /* second began before first ended */
    int first_slot, second_slot;
} ti_overlap;

/* Look for two logged holds that overlap (one starting before an earlier
 * one ended; touching is no overlap).  Fills *r (holds, and the smallest
 * gap up to the first overlap); returns 1 and fills *o if two overlap, 0
 * if none do. */
int ti_find_overlap(const ti_log *l, ti_report *r, ti_overlap *o);
/* The same, failing the test (naming both holds and their slots) if two
 * holds overlap. */
ti_report ti_check(const ti_log *l);

/* A semaphore of n permits: the most holds logged that overlap at one
 * instant (touching is no overlap), and when (*when_us).  Fills r->holds
 * (min_gap_us -1). */
int ti_most_at_once(const ti_log *l, ti_report *r, int64_t *when_us);
/* The same, failing the test when more than n holds overlap. */
ti_report ti_check_at_most(const ti_log *l, int n);

#endif
