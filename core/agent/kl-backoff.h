/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Jittered exponential backoff ("decorrelated jitter": each delay is drawn
 * uniformly from [initial, 3 x previous], capped at max) and Retry-After
 * handling. Not thread-safe; owned by one state machine.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* upper bound for any server-requested delay (Retry-After) */
#define KL_BACKOFF_RETRY_AFTER_MAX_MS (3600 * G_GUINT64_CONSTANT(1000))

typedef struct _KlBackoff KlBackoff;

/**
 * kl_backoff_new:
 * @initial_ms: first delay (exponential_backoff_initial_delay); 0 is raised to 1 ms
 * @max_ms: cap of every delay (exponential_backoff_max_delay); raised to @initial_ms
 * @max_retries: exponential_backoff_max_retries; < 0 means unlimited
 * @seed: RNG seed for tests; 0 seeds from /dev/urandom
 */
KlBackoff *
kl_backoff_new(guint64 initial_ms, guint64 max_ms, gint64 max_retries, guint32 seed);
void
kl_backoff_free(KlBackoff *backoff);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlBackoff, kl_backoff_free)

/* forget earlier failures (after a success) */
void
kl_backoff_reset(KlBackoff *backoff);

/* records one more failure and returns the delay to wait before retrying */
guint64
kl_backoff_next(KlBackoff *backoff);

/* failures recorded since the last reset */
guint
kl_backoff_get_failures(KlBackoff *backoff);

/* TRUE once more than max_retries failures were recorded since the last reset */
gboolean
kl_backoff_exhausted(KlBackoff *backoff);

guint64
kl_backoff_get_initial(KlBackoff *backoff);
guint64
kl_backoff_get_max(KlBackoff *backoff);

/**
 * kl_backoff_retry_after_ms:
 * @status: HTTP status of the response
 * @retry_after_s: the parsed Retry-After header in seconds, < 0 when absent
 *
 * Returns: the delay the server asked for, clamped to
 * %KL_BACKOFF_RETRY_AFTER_MAX_MS, or -1 when it does not apply: Retry-After is
 * honoured only on 429 and 503.
 */
gint64
kl_backoff_retry_after_ms(guint status, gint64 retry_after_s);

G_END_DECLS
