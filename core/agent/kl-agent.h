/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The push-attestation state machine:
 *
 *   Unregistered -> Registered -> Negotiating -> Attesting -> Negotiating ...
 *        ^  |                        ^   |          |
 *        |  v                        |   v          v
 *   RegistrationFailed            AttestationFailed <-
 *
 * Driven by GLib timers on the main context; every network, TPM and plugin
 * call runs on one worker thread, one step at a time. The two phases of an
 * attestation cycle (Negotiating, then Attesting) are one step: the worker
 * goes on with phase 2 as soon as phase 1 succeeded, unless the agent stops.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "kl-registrar-client.h"
#include "kl-status.h"
#include "kl-verifier-client.h"

G_BEGIN_DECLS

/* exit statuses of keylime_push_model_agent (documented in the README / --help) */
#define KL_EXIT_OK		   0 /* stopped by SIGTERM/SIGINT, --once accepted, --check fine */
#define KL_EXIT_FAILURE		   1 /* internal error, --check found problems */
#define KL_EXIT_USAGE		   2 /* bad command line */
#define KL_EXIT_CONFIG		   3 /* bad configuration */
#define KL_EXIT_TPM		   4 /* TPM unusable (open, EK, AK, agent id) */
#define KL_EXIT_REGISTRAR_IDENTITY 5 /* registrar 403: the agent id has another TPM identity */
#define KL_EXIT_NO_PLUGINS	   6 /* no evidence plugin is active */
#define KL_EXIT_NOT_ACCEPTED	   7 /* --once / --json-file: gave up or the answer was not 2xx */

/*
 * the splay window never exceeds this, whatever the interval: with
 * Type=notify, READY=1 comes after the registration, and the unit gives the
 * start 5 minutes
 */
#define KL_AGENT_SPLAY_MAX_MS (120 * G_GUINT64_CONSTANT(1000))

typedef enum {
	KL_AGENT_STATE_UNREGISTERED,
	KL_AGENT_STATE_REGISTERED,
	KL_AGENT_STATE_NEGOTIATING,
	KL_AGENT_STATE_ATTESTING,
	KL_AGENT_STATE_REGISTRATION_FAILED,
	KL_AGENT_STATE_ATTESTATION_FAILED,
	KL_AGENT_STATE_STOPPED,
} KlAgentState;

const gchar *
kl_agent_state_to_string(KlAgentState state);

/**
 * KlAgentSource:
 *
 * What the agent needs from the TPM and the evidence plugins. All callbacks
 * run on the worker thread, one at a time. Returned GBytes are transfer none,
 * everything else transfer full.
 */
typedef struct {
	GBytes *(*get_ek_public)(gpointer data);
	GBytes *(*get_ek_cert)(gpointer data); /* nullable */
	GBytes *(*get_ak_public)(gpointer data);
	gboolean (*activate_credential)(gpointer data,
					GBytes *blob,
					GBytes **secret,
					GError **error);
	/* TPM2_Certify(AK, AK, qualifyingData = @challenge) */
	gboolean (*certify_ak)(
	    gpointer data, GBytes *challenge, GBytes **attest, GBytes **signature, GError **error);
	/*
	 * adds plugin fields to the registration body; FALSE: a plugin could not
	 * add its fields, and registration is retried later rather than done without them
	 */
	gboolean (*contribute_registration)(gpointer data, JsonObject *body, GError **error);
	/* evidence_supported entries (JsonObject*) of the active plugins for this cycle */
	GPtrArray *(*get_capabilities)(gpointer data, GError **error);
	/*
	 * resolves one evidence request to whatever collects it (recorded in
	 * the request); FALSE when it cannot be collected (no active plugin
	 * provides its type, or in another class). Every item of a request is
	 * resolved before any is collected, so that no TPM quote is wasted.
	 */
	gboolean (*resolve)(gpointer data, KlEvidenceRequest *request, GError **error);
	/*
	 * the evidence_collected entry for one resolved request (the
	 * envelope's text and the data object); @report
	 * (out, zeroed by the caller): what the plugin said it sent, for the
	 * per-cycle info line and the figures; @body: the request body the
	 * entry goes into (large strings may travel in the entry's attachments
	 * instead of being copied into it, kl_json_body_append_object_attached())
	 */
	KlEvidenceEntry *(*collect)(gpointer data,
				    KlEvidenceRequest *request,
				    GCancellable *cancellable,
				    KlEvidenceReport *report,
				    KlJsonBody *body,
				    GError **error);
} KlAgentSource;

typedef struct {
	const gchar *agent_id;
	const gchar *contact_ip; /* nullable */
	gint64 contact_port;	 /* <= 0: not sent */
	gint64 boot_time;	 /* /proc/stat btime */
	guint64 backoff_initial_ms;
	guint64 backoff_max_ms;
	gint64 backoff_max_retries;    /* --once: give up after this many failed steps */
	guint32 backoff_seed;	       /* 0 = random (tests set it) */
	gint64 attestation_interval_s; /* when the verifier names no next time */
	gboolean once;		       /* register + one accepted attestation, then exit */
	/*
	 * splay: the first contact after start waits a random time within this
	 * percentage of the attestation interval (at most KL_AGENT_SPLAY_MAX_MS);
	 * retries after an outage (peer unreachable, 5xx, 429 without
	 * Retry-After) keep to a grid of that period (at most the retry cap)
	 * anchored at the first failure; 0 = none (plain backoff)
	 */
	guint splay_percent;
	/* each wait between attestations is stretched by up to this percentage; 0 = none */
	guint jitter_percent;
	/* --json-file debug mode: send this file after registration (and authentication) */
	const gchar *json_file;
	const gchar *message_type; /* "attestation" (default), "evidence", "session" */
	const gchar *method;	   /* "POST" (default), "PATCH" */
	const gchar *attestation_index;
	const gchar *session_index;
} KlAgentOptions;

typedef struct _KlAgent KlAgent;

typedef void (*KlAgentDoneFunc)(KlAgent *agent, gint exit_status, gpointer user_data);
/*
 * maps a delay the agent wants to the delay it really waits (tests: record it,
 * return 0); called for every wait (there is none between the two phases of a cycle)
 */
typedef guint64 (*KlAgentDelayFunc)(KlAgent *agent, guint64 delay_ms, gpointer user_data);
/* wall clock in microseconds (token expiry) */
typedef gint64 (*KlAgentClockFunc)(gpointer user_data);

/* @registrar, @verifier, @source_data: (transfer none), must outlive the agent */
KlAgent *
kl_agent_new(const KlAgentOptions *options,
	     const KlAgentSource *source,
	     gpointer source_data,
	     KlRegistrarClient *registrar,
	     KlVerifierClient *verifier);
void
kl_agent_free(KlAgent *agent);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlAgent, kl_agent_free)

/* test hooks: fake timers and clock (call before kl_agent_start) */
void
kl_agent_set_delay_func(KlAgent *agent, KlAgentDelayFunc func, gpointer user_data);
void
kl_agent_set_clock_func(KlAgent *agent, KlAgentClockFunc func, gpointer user_data);

/* the snapshot the agent keeps up to date (status file, metrics); (transfer none) */
void
kl_agent_set_status(KlAgent *agent, KlStatus *status);

/* starts on the thread-default main context; @done runs there when the agent ends */
void
kl_agent_start(KlAgent *agent, KlAgentDoneFunc done, gpointer user_data);
/* like kl_agent_stop(), but @done runs with @exit_status (e.g. KL_EXIT_TPM from the watchdog) */
void
kl_agent_abort(KlAgent *agent, gint exit_status);
/* clean shutdown: cancels the step in flight; @done then runs with KL_EXIT_OK */
void
kl_agent_stop(KlAgent *agent);

KlAgentState
kl_agent_get_state(KlAgent *agent);

/*
 * How long the step in flight (registration, negotiation, evidence) has been
 * running at monotonic time @now_us; 0 when none is. The watchdog stops being
 * fed when this grows beyond any legitimate step.
 */
gint64
kl_agent_get_step_age_us(KlAgent *agent, gint64 now_us);

/* attestations accepted (202) so far */
guint
kl_agent_get_attestation_count(KlAgent *agent);
/* negotiations that kept the last evidence types (same sealed entries, not read; tests) */
guint64
kl_agent_get_offered_reused(KlAgent *agent);
/* a step (network, TPM, plugins) is in flight on the worker thread */
gboolean
kl_agent_is_step_running(KlAgent *agent);

G_END_DECLS
