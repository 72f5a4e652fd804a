/* The no-overlap check itself (tests/harness/intervals.c), on planted
 * holds: what it must find, what it must let pass, and the gap it reports. */
#include "fixtures.h"
#include "intervals.h"

#include <string.h>

static ti_log *log_of(int slots, int per, const ti_hold *h, const int *slot, int n)
{
    ti_log *l = ti_log_new(slots, per);
    int i;
    for (i = 0; i < n; i++)
        ti_add(l, slot[i], h[i].start_us, h[i].end_us);
    return l;
}

static void test_intervals_no_holds_no_overlap(void **state)
{
    ti_log *l = ti_log_new(4, 10);
    ti_report r;
    ti_overlap o;
    assert_int_equal(ti_find_overlap(l, &r, &o), 0);
    assert_int_equal(r.holds, 0);
    assert_int_equal(r.min_gap_us, -1);
}

/* Holds of several slots, logged out of order, that never overlap: none
 * found, and the smallest gap between one end and the next start. */
static void test_intervals_disjoint_holds_report_smallest_gap(void **state)
{
    const ti_hold h[] = { { 300, 400 }, { 0, 100 }, { 130, 200 }, { 450, 460 } };
    const int slot[] = { 0, 1, 2, 1 };
    ti_report r = ti_check(log_of(3, 10, h, slot, 4));
    assert_int_equal(r.holds, 4);
    assert_int_equal(r.min_gap_us, 30);
}

/* One hold may end at the very moment the next one starts. */
static void test_intervals_touching_holds_do_not_overlap(void **state)
{
    const ti_hold h[] = { { 0, 100 }, { 100, 200 } };
    const int slot[] = { 0, 1 };
    ti_report r = ti_check(log_of(2, 10, h, slot, 2));
    assert_int_equal(r.min_gap_us, 0);
}

/* A hold that starts before the previous one ended is found, named with
 * both slots. */
static void test_intervals_overlap_found(void **state)
{
    const ti_hold h[] = { { 0, 100 }, { 99, 200 } };
    const int slot[] = { 3, 1 };
    ti_report r;
    ti_overlap o;
    assert_int_equal(ti_find_overlap(log_of(4, 10, h, slot, 2), &r, &o), 1);
    assert_int_equal(o.first_slot, 3);
    assert_int_equal(o.second_slot, 1);
    assert_int_equal(o.first.end_us, 100);
    assert_int_equal(o.second.start_us, 99);
}

/* A short hold wholly inside a long one is found. */
static void test_intervals_hold_inside_a_long_one_found(void **state)
{
    const ti_hold h[] = { { 500, 600 }, { 0, 1000 }, { 2000, 2100 } };
    const int slot[] = { 1, 0, 1 };
    ti_report r;
    ti_overlap o;
    assert_int_equal(ti_find_overlap(log_of(2, 10, h, slot, 3), &r, &o), 1);
    assert_int_equal(o.first_slot, 0);
    assert_int_equal(o.second_slot, 1);
    assert_int_equal(o.second.start_us, 500);
}

/* Holds beyond a slot's room are counted but not kept (nor checked). */
static void test_intervals_full_slot_counts_but_keeps_room(void **state)
{
    ti_log *l = ti_log_new(1, 2);
    ti_report r;
    ti_add(l, 0, 0, 10);
    ti_add(l, 0, 20, 30);
    ti_add(l, 0, 5, 25); /* would overlap: not kept */
    assert_int_equal(ti_count(l, 0), 3);
    r = ti_check(l);
    assert_int_equal(r.holds, 2);
}

/* A child made by fork() logs into the same log. */
static int child_logs(void *arg)
{
    ti_add(arg, 1, 500, 600);
    return 0;
}

static void test_intervals_children_share_the_log(void **state)
{
    ti_log *l = ti_log_new(2, 10);
    ti_report r;
    ti_add(l, 0, 0, 100);
    assert_int_equal(tu_wait(tu_spawn(child_logs, l)), 0);
    assert_int_equal(ti_count(l, 1), 1);
    r = ti_check(l);
    assert_int_equal(r.holds, 2);
    assert_int_equal(r.min_gap_us, 400);
}

/* A semaphore's check: the most holds at one instant, touching ones not
 * counted, and when; more than n fails. */
static void test_intervals_most_at_once(void **state)
{
    const ti_hold h[] = { { 0, 100 }, { 50, 150 }, { 100, 200 }, { 120, 130 }, { 300, 400 } };
    const int slot[] = { 0, 1, 2, 3, 0 };
    ti_log *l = log_of(4, 10, h, slot, 5);
    ti_report r;
    int64_t when = -1;
    (void)state;
    /* at 120..130: [50,150], [100,200], [120,130]; [0,100] ended at 100 */
    assert_int_equal(ti_most_at_once(l, &r, &when), 3);
    assert_int_equal(when, 120);
    assert_int_equal(r.holds, 5);
    r = ti_check_at_most(l, 3);
    assert_int_equal(r.holds, 5);
    assert_int_equal(ti_most_at_once(ti_log_new(2, 4), &r, &when), 0);
}

#define TEST(f) cmocka_unit_test_teardown(f, tf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_intervals_no_holds_no_overlap),
        TEST(test_intervals_disjoint_holds_report_smallest_gap),
        TEST(test_intervals_touching_holds_do_not_overlap),
        TEST(test_intervals_overlap_found),
        TEST(test_intervals_hold_inside_a_long_one_found),
        TEST(test_intervals_full_slot_counts_but_keeps_room),
        TEST(test_intervals_children_share_the_log),
        TEST(test_intervals_most_at_once),
    };
    return cmocka_run_group_tests_name("intervals", tests, NULL, NULL);
}
