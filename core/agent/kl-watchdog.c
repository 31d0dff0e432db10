/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "kl-agent.h"
#include "kl-log.h"
#include "kl-watchdog.h"

struct _KlWatchdog {
	KlTpm *tpm;
	guint timeout_s;
	KlWatchdogStopFunc stop;
	gpointer stop_data;
	GSource *timer;
	gint64 next_us; /* monotonic time of the next look while watching, 0: not watching */
	KlWatchdogActiveFunc active;
	gpointer active_data;
	gboolean stall_warned;
	gboolean stopping;
};

typedef struct {
	GSource source;
	KlWatchdog *self;
} KlWatchdogSource;

guint
kl_watchdog_warn_after_s(guint timeout_s)
{
	return CLAMP(timeout_s / 2, 1, 10);
}

/*
 * Something may stall: a command is busy, the TPM is unusable, a stall was
 * reported (its end is reported too), or the owner says a TPM command may
 * start at any time (without an active function: always)
 */
static gboolean
kl_watchdog_watching(KlWatchdog *self)
{
	guint busy_s = 0;
	const gchar *why = NULL;

	return self->active == NULL || self->active(self->active_data) || self->stall_warned ||
	       kl_tpm_get_busy(self->tpm, &busy_s) != NULL ||
	       kl_tpm_get_unusable_s(self->tpm, &why) > 0;
}

/*
 * Once a second while watching, as a one-second timeout would; not at all
 * otherwise, so that an idle agent's main loop does not wake up every second.
 * The main loop prepares its sources after each dispatch, so the one that
 * starts a step (and may start a TPM command) arms the watchdog before the
 * loop waits again.
 */
static gboolean
kl_watchdog_prepare(GSource *source, gint *timeout)
{
	KlWatchdog *self = ((KlWatchdogSource *)source)->self;
	gint64 now;

	if (!kl_watchdog_watching(self)) {
		self->next_us = 0;
		*timeout = -1;
		return FALSE;
	}
	now = g_source_get_time(source);
	if (self->next_us == 0)
		self->next_us = now + G_USEC_PER_SEC;
	if (now >= self->next_us) {
		*timeout = 0;
		return TRUE;
	}
	*timeout = (gint)((self->next_us - now + 999) / 1000);
	return FALSE;
}

static gboolean
kl_watchdog_check(GSource *source)
{
	KlWatchdog *self = ((KlWatchdogSource *)source)->self;

	return self->next_us != 0 && g_source_get_time(source) >= self->next_us;
}

static gboolean
kl_watchdog_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	KlWatchdog *self = ((KlWatchdogSource *)source)->self;

	/* the next look one second after this one */
	self->next_us = g_source_get_time(source) + G_USEC_PER_SEC;
	return callback(user_data);
}

static GSourceFuncs kl_watchdog_source_funcs = {
	.prepare = kl_watchdog_prepare,
	.check = kl_watchdog_check,
	.dispatch = kl_watchdog_dispatch,
};

static gboolean
kl_watchdog_tick_cb(gpointer user_data)
{
	KlWatchdog *self = user_data;
	guint busy_s = 0;
	const gchar *what = kl_tpm_get_busy(self->tpm, &busy_s);
	const gchar *why = NULL;
	guint unusable_s = kl_tpm_get_unusable_s(self->tpm, &why);

	if (what != NULL && busy_s >= self->timeout_s) {
		kl_error("the TPM has not answered %s for %u s (tpm_timeout): the TPM, the TPM "
			 "simulator or the resource manager stalls; exiting with status 4 so that "
			 "the service manager restarts the agent",
			 what,
			 busy_s);
		fflush(stderr);
		/* the worker is blocked inside the TPM stack: no clean shutdown is possible */
		_exit(KL_EXIT_TPM);
	}
	if (what != NULL && busy_s >= kl_watchdog_warn_after_s(self->timeout_s)) {
		if (!self->stall_warned)
			g_warning(
			    "the TPM has not answered %s for %u s: the TPM, the TPM simulator "
			    "or the resource manager stalls; the agent exits (status 4) if it "
			    "does not answer within tpm_timeout = %u s",
			    what,
			    busy_s,
			    self->timeout_s);
		self->stall_warned = TRUE;
	} else if (what == NULL && self->stall_warned) {
		g_message("the TPM answers again");
		self->stall_warned = FALSE;
	}

	if (unusable_s >= self->timeout_s && !self->stopping) {
		kl_error("the TPM has been unusable for %u s (%s; tpm_timeout = %u s): stopping "
			 "with status 4 so that the service manager restarts the agent",
			 unusable_s,
			 why != NULL ? why : "unknown cause",
			 self->timeout_s);
		self->stopping = TRUE;
		self->stop(KL_EXIT_TPM, self->stop_data);
	}
	return G_SOURCE_CONTINUE;
}

KlWatchdog *
kl_watchdog_new(KlTpm *tpm, guint timeout_s, KlWatchdogStopFunc stop, gpointer user_data)
{
	KlWatchdog *self = g_new0(KlWatchdog, 1);

	self->tpm = tpm;
	self->timeout_s = MAX(timeout_s, 1);
	self->stop = stop;
	self->stop_data = user_data;
	self->timer = g_source_new(&kl_watchdog_source_funcs, sizeof(KlWatchdogSource));
	((KlWatchdogSource *)self->timer)->self = self;
	g_source_set_name(self->timer, "kl-watchdog");
	g_source_set_callback(self->timer, kl_watchdog_tick_cb, self, NULL);
	g_source_attach(self->timer, g_main_context_get_thread_default());
	return self;
}

void
kl_watchdog_set_active_func(KlWatchdog *watchdog, KlWatchdogActiveFunc func, gpointer user_data)
{
	watchdog->active = func;
	watchdog->active_data = user_data;
}

void
kl_watchdog_free(KlWatchdog *watchdog)
{
	if (watchdog == NULL)
		return;
	g_source_destroy(watchdog->timer);
	g_source_unref(watchdog->timer);
	g_free(watchdog);
}
