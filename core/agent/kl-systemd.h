/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The service manager protocol (sd_notify) when systemd started the agent
 * with Type=notify: READY=1 once the registrar has accepted and activated the
 * agent (the moment the attestation loop starts), STATUS= with the agent's
 * one-line state after every change, WATCHDOG=1 every half WatchdogSec= only
 * while the state machine makes progress, STOPPING=1 on shutdown.
 *
 * Without NOTIFY_SOCKET, or in a build without libsystemd, every function
 * does nothing.
 */
#pragma once

#include <glib.h>

#include "kl-agent.h"
#include "kl-status.h"

G_BEGIN_DECLS

/*
 * The longest a step may run before the agent counts as wedged: the
 * watchdog timeout or KL_SYSTEMD_STEP_REQUESTS request timeouts, whichever
 * is longer (a step makes at most a few HTTP requests and TPM commands).
 */
#define KL_SYSTEMD_STEP_REQUESTS 4

typedef struct _KlSystemd KlSystemd;

/*
 * Listens to @status (READY=1 once it says registered, STATUS= with its
 * one-line summary) and watches @agent's step in flight for the watchdog, on
 * the thread-default main context; both must outlive the result.
 * @request_timeout_ms: the HTTP request timeout. (transfer full), NULL when
 * the agent was not started by a service manager.
 */
KlSystemd *
kl_systemd_new(KlAgent *agent, KlStatus *status, gint64 request_timeout_ms);
void
kl_systemd_free(KlSystemd *sd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlSystemd, kl_systemd_free)

/* STOPPING=1 with a STATUS= line: call when the stop is asked for */
void
kl_systemd_stopping(KlSystemd *sd);

/* whether the watchdog is fed now: no step in flight for longer than allowed */
gboolean
kl_systemd_agent_is_progressing(KlAgent *agent, gint64 now_us, gint64 step_limit_us);

G_END_DECLS
