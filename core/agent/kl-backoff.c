/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "kl-backoff.h"

struct _KlBackoff {
	guint64 initial_ms;
	guint64 max_ms;
	gint64 max_retries;
	guint failures;
	guint64 previous_ms;
	GRand *rand;
};

KlBackoff *
kl_backoff_new(guint64 initial_ms, guint64 max_ms, gint64 max_retries, guint32 seed)
{
	KlBackoff *backoff = g_new0(KlBackoff, 1);

	backoff->initial_ms = MAX(initial_ms, 1);
	backoff->max_ms = MAX(max_ms, backoff->initial_ms);
	backoff->max_retries = max_retries;
	backoff->rand = seed != 0 ? g_rand_new_with_seed(seed) : g_rand_new();
	return backoff;
}

void
kl_backoff_free(KlBackoff *backoff)
{
	if (backoff == NULL)
		return;
	g_rand_free(backoff->rand);
	g_free(backoff);
}

void
kl_backoff_reset(KlBackoff *backoff)
{
	backoff->failures = 0;
	backoff->previous_ms = 0;
}

guint64
kl_backoff_next(KlBackoff *backoff)
{
	guint64 upper;
	guint64 delay;

	/* decorrelated jitter: uniform in [initial, 3 * previous], capped */
	if (backoff->previous_ms == 0) {
		delay = backoff->initial_ms;
	} else {
		upper =
		    backoff->previous_ms > G_MAXUINT64 / 3 ? G_MAXUINT64 : backoff->previous_ms * 3;
		upper = MIN(upper, backoff->max_ms);
		if (upper <= backoff->initial_ms) {
			delay = backoff->initial_ms;
		} else {
			gdouble r = g_rand_double(backoff->rand);
			delay = backoff->initial_ms +
				(guint64)(r * (gdouble)(upper - backoff->initial_ms + 1));
			delay = MIN(delay, upper);
		}
	}
	delay = MIN(delay, backoff->max_ms);
	backoff->previous_ms = delay;
	if (backoff->failures < G_MAXUINT)
		backoff->failures++;
	return delay;
}

guint
kl_backoff_get_failures(KlBackoff *backoff)
{
	return backoff->failures;
}

gboolean
kl_backoff_exhausted(KlBackoff *backoff)
{
	if (backoff->max_retries < 0)
		return FALSE;
	return (gint64)backoff->failures > backoff->max_retries;
}

guint64
kl_backoff_get_initial(KlBackoff *backoff)
{
	return backoff->initial_ms;
}

guint64
kl_backoff_get_max(KlBackoff *backoff)
{
	return backoff->max_ms;
}

gint64
kl_backoff_retry_after_ms(guint status, gint64 retry_after_s)
{
	if (status != 429 && status != 503)
		return -1;
	if (retry_after_s < 0)
		return -1;
	if ((guint64)retry_after_s > KL_BACKOFF_RETRY_AFTER_MAX_MS / 1000)
		return (gint64)KL_BACKOFF_RETRY_AFTER_MAX_MS;
	return retry_after_s * 1000;
}
