/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The TPM watchdog, on the main loop: a TPM command that does not answer is a
 * WARNING after a few seconds and ends the agent with exit status 4 after
 * tpm_timeout (the worker thread is blocked in the TPM stack and cannot be
 * interrupted, so the process exits at once); a TPM that stays unusable
 * (connection lost and not restored) for tpm_timeout stops the agent cleanly
 * with exit status 4. Either way the service manager restarts the agent.
 */
#pragma once

#include <glib.h>

#include "kl-tpm-private.h"

G_BEGIN_DECLS

typedef struct _KlWatchdog KlWatchdog;

/* asks the agent to stop with @exit_status (main thread) */
typedef void (*KlWatchdogStopFunc)(gint exit_status, gpointer user_data);

/* TRUE while a TPM command may start (main thread) */
typedef gboolean (*KlWatchdogActiveFunc)(gpointer user_data);

/* checks @tpm every second on the thread-default main context */
KlWatchdog *
kl_watchdog_new(KlTpm *tpm, guint timeout_s, KlWatchdogStopFunc stop, gpointer user_data);
/*
 * checks only while @func says a TPM command may start, a command is busy,
 * the TPM is unusable or a stall was reported (an idle agent's main loop does
 * not wake up every second)
 */
void
kl_watchdog_set_active_func(KlWatchdog *watchdog, KlWatchdogActiveFunc func, gpointer user_data);
void
kl_watchdog_free(KlWatchdog *watchdog);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlWatchdog, kl_watchdog_free)

/* seconds after which a command that has not answered is reported */
guint
kl_watchdog_warn_after_s(guint timeout_s);

G_END_DECLS
