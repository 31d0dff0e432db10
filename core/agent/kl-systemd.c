/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * sd_notify for keylime_push_model_agent: readiness, status line, watchdog,
 * stopping. See kl-systemd.h.
 */
#include "config.h"

#include <unistd.h>

#if KL_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "kl-systemd.h"

struct _KlSystemd {
	KlAgent *agent;
	KlStatus *status;
	gboolean ready;
	gchar *last_status;
	guint64 watchdog_us;  /* 0: no watchdog */
	gint64 step_limit_us; /* a step running longer is a wedged agent */
	GSource *watchdog;    /* every watchdog_us / 2 */
	gboolean wedged_logged;
};

gboolean
kl_systemd_agent_is_progressing(KlAgent *agent, gint64 now_us, gint64 step_limit_us)
{
	return kl_agent_get_step_age_us(agent, now_us) <= step_limit_us;
}

#if KL_HAVE_LIBSYSTEMD

static void
kl_systemd_send(const gchar *text)
{
	int r = sd_notify(0, text);

	if (r < 0)
		g_debug("sd_notify(%s) failed: %s", text, g_strerror(-r));
}

/* STATUS= with the current line, when it changed; optionally with other assignments */
static void
kl_systemd_update(KlSystemd *sd, const gchar *extra, gboolean force)
{
	g_autofree gchar *line = kl_status_format_line(sd->status);
	g_autofree gchar *text = NULL;

	if (!force && extra == NULL && g_strcmp0(line, sd->last_status) == 0)
		return;
	text = g_strdup_printf(
	    "%s%sSTATUS=%s", extra != NULL ? extra : "", extra != NULL ? "\n" : "", line);
	kl_systemd_send(text);
	g_free(sd->last_status);
	sd->last_status = g_steal_pointer(&line);
}

static void
kl_systemd_status_cb(KlStatus *status, gpointer user_data)
{
	KlSystemd *sd = user_data;

	if (!sd->ready && kl_status_get_snapshot(status)->registered) {
		/*
		 * registered and activated: the attestation loop starts. Enrollment at
		 * the verifier is an operator's act that may come much later, so it
		 * is not waited for (STATUS= says "waiting for enrollment").
		 */
		sd->ready = TRUE;
		kl_systemd_update(sd, "READY=1", TRUE);
		return;
	}
	kl_systemd_update(sd, NULL, FALSE);
}

static gboolean
kl_systemd_watchdog_cb(gpointer user_data)
{
	KlSystemd *sd = user_data;
	gint64 now = g_get_monotonic_time();

	if (!kl_systemd_agent_is_progressing(sd->agent, now, sd->step_limit_us)) {
		if (!sd->wedged_logged)
			g_warning("one step of the agent has been running for %" G_GINT64_FORMAT
				  " s (a TPM command, a plugin or a request that does not "
				  "return): the systemd watchdog is no longer fed, so that "
				  "systemd restarts the agent",
				  kl_agent_get_step_age_us(sd->agent, now) / G_USEC_PER_SEC);
		sd->wedged_logged = TRUE;
		return G_SOURCE_CONTINUE;
	}
	sd->wedged_logged = FALSE;
	/* the line has relative times ("3 s ago"): refresh it with each ping */
	kl_systemd_update(sd, "WATCHDOG=1", TRUE);
	return G_SOURCE_CONTINUE;
}

KlSystemd *
kl_systemd_new(KlAgent *agent, KlStatus *status, gint64 request_timeout_ms)
{
	KlSystemd *sd;
	uint64_t usec = 0;
	const gchar *socket = g_getenv("NOTIFY_SOCKET");

	if (socket == NULL || socket[0] == '\0')
		return NULL;
	sd = g_new0(KlSystemd, 1);
	sd->agent = agent;
	sd->status = status;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		sd->watchdog_us = usec;
	sd->step_limit_us =
	    MAX((gint64)sd->watchdog_us,
		(gint64)KL_SYSTEMD_STEP_REQUESTS * MAX(request_timeout_ms, 1) * 1000);
	kl_status_add_listener(status, kl_systemd_status_cb, sd);
	if (sd->watchdog_us > 0) {
		sd->watchdog = g_timeout_source_new(MAX(sd->watchdog_us / 2000, 1));
		g_source_set_callback(sd->watchdog, kl_systemd_watchdog_cb, sd, NULL);
		g_source_attach(sd->watchdog, g_main_context_get_thread_default());
		g_debug("systemd watchdog every %" G_GUINT64_FORMAT
			" ms; a step may run for %" G_GINT64_FORMAT " s",
			sd->watchdog_us / 2000,
			sd->step_limit_us / G_USEC_PER_SEC);
	}
	return sd;
}

void
kl_systemd_stopping(KlSystemd *sd)
{
	if (sd == NULL)
		return;
	kl_systemd_send("STOPPING=1\nSTATUS=stopping");
}

void
kl_systemd_free(KlSystemd *sd)
{
	if (sd == NULL)
		return;
	if (sd->watchdog != NULL) {
		g_source_destroy(sd->watchdog);
		g_source_unref(sd->watchdog);
	}
	kl_status_remove_listener(sd->status, kl_systemd_status_cb, sd);
	g_free(sd->last_status);
	g_free(sd);
}

#else /* !KL_HAVE_LIBSYSTEMD */

KlSystemd *
kl_systemd_new(KlAgent *agent, KlStatus *status, gint64 request_timeout_ms)
{
	const gchar *socket = g_getenv("NOTIFY_SOCKET");

	if (socket != NULL && socket[0] != '\0')
		g_debug("built without libsystemd: no readiness or watchdog notifications");
	return NULL;
}

void
kl_systemd_stopping(KlSystemd *sd)
{
}

void
kl_systemd_free(KlSystemd *sd)
{
}

#endif
