/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "kl-backoff.h"

static void
test_backoff_bounds(void)
{
	g_autoptr(KlBackoff) backoff = kl_backoff_new(1000, 60000, 5, 1234);
	guint64 previous = 0;

	/* the first delay is the initial delay */
	g_assert_cmpuint(kl_backoff_next(backoff), ==, 1000);
	previous = 1000;
	for (guint i = 0; i < 200; i++) {
		guint64 delay = kl_backoff_next(backoff);
		/* decorrelated jitter: [initial, min(cap, 3 * previous)] */
		g_assert_cmpuint(delay, >=, 1000);
		g_assert_cmpuint(delay, <=, MIN(60000, previous * 3));
		previous = delay;
	}
	g_assert_cmpuint(kl_backoff_get_failures(backoff), ==, 201);
}

static void
test_backoff_cap_reached(void)
{
	g_autoptr(KlBackoff) backoff = kl_backoff_new(1000, 5000, -1, 7);
	gboolean at_cap = FALSE;

	for (guint i = 0; i < 100; i++) {
		guint64 delay = kl_backoff_next(backoff);
		g_assert_cmpuint(delay, <=, 5000);
		if (delay > 4500)
			at_cap = TRUE;
	}
	/* delays grow up to the cap, and never exceed it */
	g_assert_true(at_cap);
	g_assert_false(kl_backoff_exhausted(backoff));
}

static void
test_backoff_jitter_differs(void)
{
	g_autoptr(KlBackoff) a = kl_backoff_new(1000, 600000, 5, 1);
	g_autoptr(KlBackoff) b = kl_backoff_new(1000, 600000, 5, 2);
	gboolean differ = FALSE;

	/* two agents of a fleet do not retry in lock step */
	for (guint i = 0; i < 10; i++)
		if (kl_backoff_next(a) != kl_backoff_next(b))
			differ = TRUE;
	g_assert_true(differ);
}

static void
test_backoff_seeded_reproducible(void)
{
	g_autoptr(KlBackoff) a = kl_backoff_new(500, 600000, 5, 99);
	g_autoptr(KlBackoff) b = kl_backoff_new(500, 600000, 5, 99);

	for (guint i = 0; i < 20; i++)
		g_assert_cmpuint(kl_backoff_next(a), ==, kl_backoff_next(b));
}

static void
test_backoff_reset_and_exhausted(void)
{
	g_autoptr(KlBackoff) backoff = kl_backoff_new(100, 100000, 2, 5);

	kl_backoff_next(backoff);
	kl_backoff_next(backoff);
	g_assert_false(kl_backoff_exhausted(backoff));
	kl_backoff_next(backoff);
	g_assert_true(kl_backoff_exhausted(backoff));
	kl_backoff_reset(backoff);
	g_assert_false(kl_backoff_exhausted(backoff));
	g_assert_cmpuint(kl_backoff_get_failures(backoff), ==, 0);
	/* after a reset the delay starts small again */
	g_assert_cmpuint(kl_backoff_next(backoff), ==, 100);
}

static void
test_backoff_degenerate_config(void)
{
	/* max < initial and 0 initial are corrected, never a busy loop */
	g_autoptr(KlBackoff) a = kl_backoff_new(0, 0, 5, 3);
	g_autoptr(KlBackoff) b = kl_backoff_new(5000, 10, 5, 3);

	g_assert_cmpuint(kl_backoff_next(a), ==, 1);
	g_assert_cmpuint(kl_backoff_next(b), ==, 5000);
	g_assert_cmpuint(kl_backoff_next(b), ==, 5000);
}

static void
test_retry_after_precedence(void)
{
	/* honoured only on 429 and 503 */
	g_assert_cmpint(kl_backoff_retry_after_ms(429, 7), ==, 7000);
	g_assert_cmpint(kl_backoff_retry_after_ms(503, 0), ==, 0);
	g_assert_cmpint(kl_backoff_retry_after_ms(500, 7), ==, -1);
	g_assert_cmpint(kl_backoff_retry_after_ms(202, 7), ==, -1);
	g_assert_cmpint(kl_backoff_retry_after_ms(401, 7), ==, -1);
	g_assert_cmpint(kl_backoff_retry_after_ms(429, -1), ==, -1);
	/* clamped to one hour */
	g_assert_cmpint(kl_backoff_retry_after_ms(429, 86400), ==, 3600000);
	g_assert_cmpint(kl_backoff_retry_after_ms(503, G_MAXINT64), ==, 3600000);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/backoff/bounds", test_backoff_bounds);
	g_test_add_func("/backoff/cap", test_backoff_cap_reached);
	g_test_add_func("/backoff/jitter", test_backoff_jitter_differs);
	g_test_add_func("/backoff/seeded", test_backoff_seeded_reproducible);
	g_test_add_func("/backoff/reset-exhausted", test_backoff_reset_and_exhausted);
	g_test_add_func("/backoff/degenerate", test_backoff_degenerate_config);
	g_test_add_func("/backoff/retry-after", test_retry_after_precedence);
	return g_test_run();
}
