/* The acquire decision (lib/decide.c) from tables, without a server: the
 * quorum and validity rules for 1 to 7 masters, "mine" after an uncertain
 * reply, the smallest TTL and PTTL, split votes, late grants, deadlines.
 *
 * Each row is a round: one letter per master (T taken, M mine, B busy,
 * F failed), the PTTL each answered, the holders of the busy ones, and the
 * call's situation; and what must follow.  Times are in ms from the round's
 * send, which is at 1,000,000 ms (the clock is an input, not read). */
#include "internal.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#define SENT_US 1000000000LL
#define NONE (-999999)  /* "does not matter" / "not set" */

typedef struct row {
    const char *name;
    const char *states;        /* T M B F per master */
    long long pttl[7];         /* for M and B */
    const char *owners;        /* one letter per master: the holder of a B */
    int64_t expire_ms;
    int uncertain;
    int64_t timeout_ms;        /* -1, 0, > 0 */
    int64_t round_ms;          /* how long the round took: now = sent + this */
    int64_t deadline_ms;       /* from the send; NONE: never */
    uint32_t jitter;
    /* expected */
    int verdict;
    int undo, late;
    int64_t valid_ms;          /* HELD/ALREADY: valid until sent + this (us
                                  precision below); NONE: no expiry */
    int64_t until_us;          /* WAIT/BACK_OFF: until sent + this many us
                                  (MS()); NONE: never */
    int pipelined;             /* answers of acquires pipelined behind a wait */
} row;

/* ms in us */
#define MS(ms) ((ms) * 1000LL)

/* 1% + 2 ms of a TTL, in us */
#define DRIFT_US(ttl) ((ttl) * 10 + 2000)

static const row rows[] = {
    /* one master */
    { "1: taken", "T", { 0 }, "-", 1000, 0, -1, 1, NONE, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    { "1: no answer", "F", { 0 }, "-", 1000, 0, -1, 1, NONE, 0,
      REDISLOCK__ROUND_FAILED, 0, 0, 0, 0, 0 },
    { "1: mine keeps the key's TTL", "M", { 200 }, "-", 1000, 0, -1, 1, NONE, 0,
      REDISLOCK__ALREADY, 0, 0, 200, 0, 0 },
    { "1: mine after a lost reply is ours", "M", { 200 }, "-", 1000, 1, -1, 1, NONE, 0,
      REDISLOCK__HELD, 0, 0, 200, 0, 0 },
    { "1: mine of a key without TTL", "M", { -1 }, "-", 0, 0, -1, 1, NONE, 0,
      REDISLOCK__ALREADY, 0, 0, NONE, 0, 0 },
    { "1: taken without expiry", "T", { 0 }, "-", 0, 0, 0, 1, NONE, 0,
      REDISLOCK__HELD, 0, 0, NONE, 0, 0 },
    { "1: busy, a try", "B", { 500 }, "a", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__BUSY, 0, 0, 0, 0, 0 },
    { "1: busy, wait until just past its PTTL", "B", { 500 }, "a", 1000, 0, 5000, 1,
      5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(1 + 500) + 500, 0 },
    { "1: busy, the deadline comes first", "B", { 5000 }, "a", 1000, 0, 300, 1, 300, 0,
      REDISLOCK__WAIT, 0, 0, 0, MS(300), 0 },
    { "1: busy without expiry, wait for ever", "B", { -1 }, "a", 1000, 0, -1, 1, NONE, 0,
      REDISLOCK__WAIT, 0, 0, 0, NONE, 0 },
    /* a key outlives its PTTL by up to 1 ms (whole ms, truncated): a wait
     * ends half a millisecond past it, PTTL 0 included (issue 27) */
    { "1: busy with PTTL 0, wait half a millisecond", "B", { 0 }, "a", 1000, 0, 5000, 1,
      5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(1) + 500, 0 },
    { "1: pipelined busy answer with PTTL 0 waits half a millisecond", "B", { 0 }, "a",
      1000, 0, 5000, 900, 5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(900) + 500, 1 },
    { "1: busy past the deadline", "B", { 500 }, "a", 1000, 0, 100, 120, 100, 0,
      REDISLOCK__TIMED_OUT, 0, 0, 0, 0, 0 },
    { "1: taken after its validity ran out", "T", { 0 }, "-", 10, 0, 1000, 9, 1000, 0,
      REDISLOCK__BACK_OFF, 1, 1, 0, MS(9 + 1), 0 },
    { "1: taken too late, a try", "T", { 0 }, "-", 10, 0, 0, 9, 0, 0,
      REDISLOCK__BUSY, 1, 1, 0, 0, 0 },
    { "1: mine with PTTL 0 is not valid", "M", { 0 }, "-", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__BUSY, 1, 1, 0, 0, 0 },
    /* answers of acquires pipelined behind a wait (sent when the wait began) */
    { "1: pipelined grant after a short wait", "T", { 0 }, "-", 1000, 0, 5000, 100, 5000,
      0, REDISLOCK__HELD, 0, 0, 1000, 0, 1 },
    { "1: pipelined grant after a wait of over half the TTL is confirmed", "T", { 0 },
      "-", 1000, 0, 5000, 700, 5000, 0, REDISLOCK__CONFIRM, 0, 0, 0, 0, 1 },
    { "1: pipelined grant past its validity is confirmed, not undone", "T", { 0 }, "-",
      1000, 0, 5000, 1500, 5000, 0, REDISLOCK__CONFIRM, 0, 0, 0, 0, 1 },
    { "1: pipelined busy answer waits again", "B", { 400 }, "a", 1000, 0, 5000, 700,
      5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(700 + 400) + 500, 1 },
    { "3: pipelined quorum after a long wait is confirmed", "TTB", { 0, 0, 900 }, "--a",
      1000, 0, 5000, 600, 5000, 0, REDISLOCK__CONFIRM, 0, 0, 0, 0, 1 },
    { "1: pipelined grant without expiry", "T", { 0 }, "-", 0, 0, 5000, 3000, 5000, 0,
      REDISLOCK__HELD, 0, 0, NONE, 0, 1 },
    /* two masters: quorum 2 */
    { "2: one taken, one failed", "TF", { 0 }, "--", 1000, 0, 1000, 1, 1000, 0,
      REDISLOCK__NO_QUORUM, 1, 0, 0, 0, 0 },
    { "2: both taken", "TT", { 0 }, "--", 1000, 0, 1000, 1, 1000, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    /* three masters: quorum 2 */
    { "3: two taken, one busy", "TTB", { 0, 0, 800 }, "--a", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    { "3: taken, mine, failed after a lost reply", "TMF", { 0, 300, 0 }, "---", 1000, 1,
      0, 1, 0, 0, REDISLOCK__HELD, 0, 0, 300, 0, 0 },
    { "3: taken, mine, failed: mine is an earlier hold", "TMF", { 0, 300, 0 }, "---", 1000,
      0, 0, 1, 0, 0, REDISLOCK__HELD, 0, 0, 300, 0, 0 },
    { "3: all mine", "MMM", { 900, 700, 800 }, "---", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__ALREADY, 0, 0, 700, 0, 0 },
    { "3: one taken, another owner holds a quorum", "TBB", { 0, 400, 300 }, "-aa", 1000, 0,
      5000, 2, 5000, 0, REDISLOCK__WAIT, 1, 0, 0, MS(2 + 300) + 500, 0 },
    { "3: split vote", "TBB", { 0, 400, 300 }, "-ab", 1000, 0, 5000, 2, 5000, 0,
      REDISLOCK__BACK_OFF, 1, 0, 0, MS(2 + 1), 0 },
    { "3: split vote, jitter within 3 rounds", "TBB", { 0, 400, 300 }, "-ab", 1000, 0,
      5000, 4, 5000, 11000, REDISLOCK__BACK_OFF, 1, 0, 0, MS(4 + 1 + 11), 0 },
    { "3: split vote, back-off ends by the deadline", "TBB", { 0, 400, 300 }, "-ab", 1000,
      0, 5, 4, 5, 9000, REDISLOCK__BACK_OFF, 1, 0, 0, MS(5), 0 },
    /* the lock can be free (without a release) when the key of the
     * quorum-th busy master expires: the wait ends there */
    { "3: all busy, wait for the second expiry", "BBB", { 300, 900, 600 }, "aaa", 1000,
      0, 5000, 1, 5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(1 + 600) + 500, 0 },
    { "3: one failed, both busy keys must expire", "BBF", { 300, 600, 0 }, "aa-", 1000,
      0, 5000, 1, 5000, 0, REDISLOCK__WAIT, 1, 0, 0, MS(1 + 600) + 500, 0 },
    { "3: the second key has no expiry: wait for a release", "BBB", { 300, -1, -1 },
      "aaa", 1000, 0, 5000, 1, 5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(5000), 0 },
    { "3: two failed", "TFF", { 0 }, "---", 1000, 0, 1000, 1, 1000, 0,
      REDISLOCK__NO_QUORUM, 1, 0, 0, 0, 0 },
    { "3: a quorum busy, a try", "BBT", { 500, 600, 0 }, "aa-", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__BUSY, 1, 0, 0, 0, 0 },
    { "3: validity used up by a slow round", "TTT", { 0 }, "---", 100, 0, 1000, 98, 1000,
      0, REDISLOCK__BACK_OFF, 1, 1, 0, MS(98 + 1), 0 },
    /* four masters: quorum 3 */
    { "4: three taken", "TTTB", { 0, 0, 0, 100 }, "---a", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    { "4: two taken, two busy: split", "TTBB", { 0, 0, 100, 100 }, "--aa", 1000, 0, 1000,
      1, 1000, 0, REDISLOCK__BACK_OFF, 1, 0, 0, MS(1 + 1), 0 },
    /* five masters: quorum 3 */
    { "5: three taken, two failed", "TTTFF", { 0 }, "-----", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    { "5: two taken, two busy, one failed", "TTBBF", { 0, 0, 100, 100, 0 }, "--aa-",
      1000, 0, 1000, 1, 1000, 0, REDISLOCK__BACK_OFF, 1, 0, 0, MS(1 + 1), 0 },
    { "5: three failed", "TTFFF", { 0 }, "-----", 1000, 0, 1000, 1, 1000, 0,
      REDISLOCK__NO_QUORUM, 1, 0, 0, 0, 0 },
    { "5: two taken, three busy: wait for the smallest PTTL", "TBBBT", { 0, 900, 400, 700, 0 },
      "-aaa-", 1000, 0, 5000, 1, 5000, 0, REDISLOCK__WAIT, 1, 0, 0, MS(1 + 400) + 500, 0 },
    { "5: all busy, wait for the third expiry", "BBBBB", { 500, 100, 400, 300, 200 },
      "aaaaa", 1000, 0, 5000, 1, 5000, 0, REDISLOCK__WAIT, 0, 0, 0, MS(1 + 300) + 500, 0 },
    /* six masters: quorum 4 */
    { "6: three taken, three busy: split", "TTTBBB", { 0, 0, 0, 50, 50, 50 }, "---aaa",
      1000, 0, 1000, 1, 1000, 0, REDISLOCK__BACK_OFF, 1, 0, 0, MS(1 + 1), 0 },
    /* seven masters: quorum 4 */
    { "7: four mine, the smallest TTL", "MMMMBBB", { 100, 900, 50, 700, 10, 10, 10 },
      "----aaa", 1000, 0, 0, 1, 0, 0, REDISLOCK__ALREADY, 0, 0, 50, 0, 0 },
    { "7: four taken, three failed", "TTTTFFF", { 0 }, "-------", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__HELD, 0, 0, 1000, 0, 0 },
    { "7: three taken, four failed", "TTTFFFF", { 0 }, "-------", 1000, 0, 0, 1, 0, 0,
      REDISLOCK__NO_QUORUM, 1, 0, 0, 0, 0 },
};

static int state_of(char ch)
{
    switch (ch) {
    case 'T':
        return REDISLOCK__ANS_TAKEN;
    case 'M':
        return REDISLOCK__ANS_MINE;
    case 'B':
        return REDISLOCK__ANS_BUSY;
    default:
        return REDISLOCK__ANS_FAILED;
    }
}

/* The local expiry the row expects, in us (0: none). */
static int64_t want_valid(const row *r)
{
    long long ttl = -1;
    size_t i;
    if (r->valid_ms == NONE)
        return 0;
    for (i = 0; r->states[i]; i++) {
        long long t = r->states[i] == 'T' ? r->expire_ms
                      : r->states[i] == 'M' ? r->pttl[i]
                                            : -1;
        if (t >= 0 && (ttl < 0 || t < ttl))
            ttl = t;
    }
    assert_int_equal(ttl, r->valid_ms); /* the row agrees with itself */
    return SENT_US + ttl * 1000 - DRIFT_US(ttl);
}

static void check_row(const row *r)
{
    redislock__answers a;
    redislock__decide_in in;
    redislock__decision d;
    size_t i;
    memset(&a, 0, sizeof a);
    a.n = strlen(r->states);
    a.quorum = a.n / 2 + 1;
    a.sent_us = SENT_US;
    a.end_us = SENT_US + r->round_ms * 1000;
    for (i = 0; i < a.n; i++) {
        a.state[i] = state_of(r->states[i]);
        a.pttl[i] = r->pttl[i];
        snprintf(a.owner[i], sizeof a.owner[i], "%c", r->owners[i]);
    }
    in.expire_ms = r->expire_ms;
    in.drift_ppm = 10000;
    in.uncertain = r->uncertain;
    in.timeout_ms = r->timeout_ms;
    in.deadline = r->deadline_ms == NONE ? REDISLOCK__NEVER : SENT_US + r->deadline_ms * 1000;
    in.now_us = a.end_us;
    in.jitter = r->jitter;
    in.pipelined = r->pipelined;
    in.gone_by = 0; /* no earlier wait: see test_decide_a_second_wait_... */
    redislock__decide(&a, &in, &d);
    if (d.verdict != r->verdict || d.undo != r->undo || d.late != r->late)
        fail_msg("%s: verdict %d undo %d late %d, expected %d %d %d", r->name, d.verdict,
                 d.undo, d.late, r->verdict, r->undo, r->late);
    if (r->verdict == REDISLOCK__HELD || r->verdict == REDISLOCK__ALREADY) {
        if (d.valid_until != want_valid(r))
            fail_msg("%s: valid until %lld, expected %lld", r->name,
                     (long long)d.valid_until, (long long)want_valid(r));
    }
    if (r->verdict == REDISLOCK__WAIT || r->verdict == REDISLOCK__BACK_OFF) {
        int64_t want = r->until_us == NONE ? REDISLOCK__NEVER : SENT_US + r->until_us;
        if (d.until != want)
            fail_msg("%s: until %lld, expected %lld", r->name, (long long)d.until,
                     (long long)want);
    }
}

static void test_decide_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i]);
    printf("# %zu rounds decided as the table says\n", sizeof rows / sizeof rows[0]);
}

/* Whatever the answers, HELD and ALREADY never come without a quorum of
 * grants, and never with a validity already over: every combination of
 * states for 1 to 5 masters, with short and long rounds. */
/* A split vote in the answers of a wait that lasted 5 s and was woken 2 ms
 * before they came: the random back-off is scaled by those 2 ms (at least
 * 10 ms), not by the whole wait (3 x 5 s: a waiter that had waited long
 * backed off blind for seconds). */
static void test_decide_back_off_after_a_wait_counts_from_its_wake_up(void **state)
{
    redislock__answers a;
    redislock__decide_in in;
    redislock__decision d;
    size_t i;
    (void)state;
    memset(&a, 0, sizeof a);
    memset(&in, 0, sizeof in);
    a.n = 3;
    a.quorum = 2;
    a.sent_us = SENT_US;
    a.end_us = SENT_US + 5000 * 1000LL;
    a.woke_us = a.end_us - 2000;
    for (i = 0; i < 3; i++) {
        a.state[i] = i ? REDISLOCK__ANS_BUSY : REDISLOCK__ANS_TAKEN;
        a.pttl[i] = i ? 400 : -1;
        snprintf(a.owner[i], sizeof a.owner[i], "%c", i == 1 ? 'a' : 'b');
    }
    in.expire_ms = 1000;
    in.drift_ppm = 10000;
    in.timeout_ms = 60000;
    in.deadline = SENT_US + 60000 * 1000LL;
    in.now_us = a.end_us;
    in.pipelined = 1;
    in.jitter = 50000; /* 50 ms: within 3 x 5 s, not within 10 ms */
    redislock__decide(&a, &in, &d);
    assert_int_equal(d.verdict, REDISLOCK__BACK_OFF);
    assert_int_equal(d.until, a.end_us + 1000 + 50000 % 10000);
    a.woke_us = 0; /* a plain round that took 5 s */
    redislock__decide(&a, &in, &d);
    assert_int_equal(d.until, a.end_us + 1000 + 50000);
}

/* One busy master, the waiter's view (issue 27).  A round sent at 0 and
 * answered at 0.1 ms reads PTTL 500: the key goes between 500 and 501.1
 * ms; the wait ends at 600.6 ms (half a millisecond past the PTTL) and
 * says the key is gone by 601.1 ms (gone_by).  The acquire behind that
 * wait reads PTTL 0 at 600.7 ms: the next wait ends at 601.1 ms, not
 * half a millisecond after that read (601.2 ms).  A bound already past
 * (the clocks drifted apart), or one that this answer's key cannot meet
 * (a new holder with a long PTTL), is not used. */
static void decide_one(redislock__answers *a, redislock__decide_in *in,
                       redislock__decision *d, int64_t sent_us, int64_t end_us,
                       long long pttl, int64_t gone_by)
{
    memset(a, 0, sizeof *a);
    memset(in, 0, sizeof *in);
    a->n = 1;
    a->quorum = 1;
    a->sent_us = sent_us;
    a->end_us = end_us;
    a->state[0] = REDISLOCK__ANS_BUSY;
    a->pttl[0] = pttl;
    snprintf(a->owner[0], sizeof a->owner[0], "a");
    in->expire_ms = 1000;
    in->drift_ppm = 10000;
    in->timeout_ms = 60000;
    in->deadline = SENT_US + 60000 * 1000LL;
    in->now_us = end_us;
    in->pipelined = sent_us != end_us - 100;
    in->gone_by = gone_by;
    redislock__decide(a, in, d);
    assert_int_equal(d->verdict, REDISLOCK__WAIT);
}

static void test_decide_a_second_wait_ends_when_the_first_answer_says_the_key_is_gone(
    void **state)
{
    redislock__answers a;
    redislock__decide_in in;
    redislock__decision d;
    int64_t bound;
    (void)state;
    decide_one(&a, &in, &d, SENT_US, SENT_US + 100, 500, 0);
    assert_int_equal(d.until, SENT_US + 100 + MS(500) + 500);
    assert_int_equal(d.gone_by, SENT_US + 100 + MS(501));
    bound = d.gone_by;
    /* the acquire behind the wait (sent at 0.2 ms) reads PTTL 0 */
    decide_one(&a, &in, &d, SENT_US + 200, SENT_US + MS(500) + 700, 0, bound);
    assert_int_equal(d.until, bound);
    assert_int_equal(d.gone_by, bound);
    /* without the earlier bound: half a millisecond after the read */
    decide_one(&a, &in, &d, SENT_US + 200, SENT_US + MS(500) + 700, 0, 0);
    assert_int_equal(d.until, SENT_US + MS(500) + 700 + 500);
    /* a bound already past: not used (no wait that ends at once) */
    decide_one(&a, &in, &d, SENT_US + 200, bound + 50, 0, bound);
    assert_int_equal(d.until, bound + 50 + 500);
    assert_int_equal(d.gone_by, bound + 50 + MS(1));
    /* another key (a new holder's PTTL 900): its own bounds */
    decide_one(&a, &in, &d, SENT_US + 200, SENT_US + MS(500) + 700, 900, bound);
    assert_int_equal(d.until, SENT_US + MS(500) + 700 + MS(900) + 500);
}

static void test_decide_never_holds_without_quorum_and_validity(void **state)
{
    static const char letters[] = "TMBF";
    size_t n, combo, total = 0;
    (void)state;
    for (n = 1; n <= 5; n++) {
        size_t count = 1, i;
        for (i = 0; i < n; i++)
            count *= 4;
        for (combo = 0; combo < count; combo++) {
            int64_t round_ms;
            for (round_ms = 1; round_ms <= 1001; round_ms += 500) {
                redislock__answers a;
                redislock__decide_in in;
                redislock__decision d;
                size_t c = combo, grants = 0;
                memset(&a, 0, sizeof a);
                a.n = n;
                a.quorum = n / 2 + 1;
                a.sent_us = SENT_US;
                a.end_us = SENT_US + round_ms * 1000;
                for (i = 0; i < n; i++, c /= 4) {
                    a.state[i] = state_of(letters[c % 4]);
                    a.pttl[i] = 300;
                    a.owner[i][0] = 'a';
                    grants += a.state[i] == REDISLOCK__ANS_TAKEN ||
                              a.state[i] == REDISLOCK__ANS_MINE;
                }
                memset(&in, 0, sizeof in);
                in.expire_ms = 1000;
                in.drift_ppm = 10000;
                in.timeout_ms = 0;
                in.deadline = SENT_US;
                in.now_us = a.end_us;
                redislock__decide(&a, &in, &d);
                total++;
                if (d.verdict == REDISLOCK__HELD || d.verdict == REDISLOCK__ALREADY) {
                    assert_true(grants >= a.quorum);
                    assert_true(d.valid_until > in.now_us);
                }
            }
        }
    }
    printf("# %zu rounds checked\n", total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_decide_back_off_after_a_wait_counts_from_its_wake_up),
        cmocka_unit_test(
            test_decide_a_second_wait_ends_when_the_first_answer_says_the_key_is_gone),
        cmocka_unit_test(test_decide_never_holds_without_quorum_and_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
