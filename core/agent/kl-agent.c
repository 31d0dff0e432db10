/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-agent.h"
#include "kl-backoff.h"
#include "kl-log.h"
#include "kl-string-put.h"

/*
 * re-authenticate this long before the token's known expiry, at most a quarter
 * of the token's lifetime (a 10 s lifetime is renewed after ~7.5 s, not at
 * every cycle)
 */
#define KL_AGENT_TOKEN_MARGIN_S 10
/*
 * after a request body this large, and after the first evidence since start-up
 * (start-up's buffers are gone by then), free memory goes back to the system
 * (malloc_trim)
 */
#define KL_AGENT_TRIM_BODY_BYTES (1024 * 1024)
/*
 * and every this many steps whatever was sent: a cycle's buffers are not the
 * same size every time (a growing IMA log, a longer answer), so free pages are
 * left between the heap's chunks, which malloc only gives back on a trim; the
 * agent's memory would creep up by them over days (+104 kB in 1000 cycles of
 * +100 IMA lines). One trim of the steady heap (about 1 MB) costs about 2.6 k
 * instructions: under 100 per step over the period.
 */
#define KL_AGENT_TRIM_EVERY_STEPS 32
/*
 * Keylime's verifier allows 15 new sessions per agent in 60 s
 * (session_create_rate_limit_per_agent): stay well below it, whatever the
 * session lifetime, so that renewals never meet a 429
 */
#define KL_AGENT_SESSIONS_PER_WINDOW 14
#define KL_AGENT_SESSION_WINDOW_S    60
/* bounds for the verifier's seconds_to_next_attestation */
#define KL_AGENT_NEXT_MIN_S 1
#define KL_AGENT_NEXT_MAX_S 3600
/* during attestation a fault never silences the agent longer than this (unless Retry-After) */
#define KL_AGENT_ATTEST_CAP_MIN_MS 30000
/*
 * Once the verifier's cadence is known, retries during attestation stay within
 * this many of its intervals: the verifier marks an agent TIMEOUT after 5
 * quote intervals without an attestation, so a transient fault must not
 * silence the agent that long.
 */
#define KL_AGENT_ATTEST_CAP_INTERVALS 4
#define KL_AGENT_ATTEST_CAP_FLOOR_MS  2000

typedef enum {
	KL_STEP_OK,
	KL_STEP_RETRY,
	KL_STEP_FATAL,
} KlStepOutcome;

typedef struct {
	KlStepOutcome outcome;
	gint64 delay_ms; /* >= 0: exact delay (Retry-After, next attestation); -1: backoff */
	gint exit_status;
	GError *error;
	gchar *summary;	       /* the per-cycle info line */
	gchar *evidence_types; /* "tpm_quote,ima_log": the journal field of that line */
	gboolean not_enrolled;
	gboolean permanent;   /* retried, but only a person can fix it: ERROR once per cause */
	gboolean restart_now; /* the round is over at the verifier: a new phase 1 at once */
	gboolean negotiated;  /* phase 1 succeeded first: this is the outcome of phase 2 */
} KlStepResult;

typedef KlStepResult *(*KlStepFunc)(KlAgent *agent, GCancellable *cancellable);

struct _KlAgent {
	/* options (copied) */
	gchar *agent_id;
	gchar *contact_ip;
	gint64 contact_port;
	gchar *boot_time;
	gint64 attestation_interval_s;
	gint64 max_retries;
	gboolean once;
	gchar *json_file;
	gchar *message_type;
	gchar *method;
	gchar *attestation_index;
	gchar *session_index;
	guint splay_percent;
	guint jitter_percent;

	KlAgentSource source;
	gpointer source_data;
	KlRegistrarClient *registrar;
	KlVerifierClient *verifier;
	KlBackoff *backoff;
	guint64 backoff_max_ms;
	guint64 verifier_interval_ms; /* the last seconds_to_next_attestation, 0 = unknown */

	/* main-thread state */
	KlAgentState state;
	GMainContext *context;
	GThreadPool *worker;
	GCancellable *cancellable;
	/*
	 * made once: ready when the next step is due (set by the main thread) or
	 * when the step in flight is done (set by the worker); -1 otherwise
	 */
	GSource *gsource;
	KlStepFunc step_func;
	KlStepResult *step_result; /* atomic: the worker's, until the main thread takes it */
	gboolean step_running;
	gboolean stopping;
	gint stop_status; /* the exit status of a requested stop */
	gboolean finished;
	guint once_failures;
	guint attestations;
	gboolean not_enrolled_logged;
	gchar *last_cause; /* the last retried fault, digits removed; NULL after a success */
	guint cause_repeats;
	KlAgentDoneFunc done;
	gpointer done_data;
	KlAgentDelayFunc delay_func;
	gpointer delay_data;
	KlAgentClockFunc clock_func;
	gpointer clock_data;
	KlStatus *status;	 /* nullable */
	GRand *rand;		 /* splay and jitter */
	gint64 outage_anchor_us; /* clock time of the first failure of this outage, 0 = none */
	GMutex step_lock;	 /* step_started_us: the worker restarts it for phase 2 */
	gint64 step_started_us;	 /* monotonic µs of the step in flight (watchdog), 0 = none */

	/* protocol state: touched only by the step in flight (worker) or between steps */
	gint64 token_expires_at;			    /* Unix seconds, 0 unknown */
	gint64 token_obtained_at;			    /* Unix seconds */
	gint64 session_times[KL_AGENT_SESSIONS_PER_WINDOW]; /* ring: Unix s of recent sessions */
	guint session_next;
	gboolean token_fresh; /* obtained during the current cycle */
	gchar *location;
	GPtrArray *requested;	/* KlEvidenceRequest* evidence_requested items */
	gint64 cycle_started;	/* monotonic µs of phase 1 */
	gboolean trim_pending;	/* a large body or the first evidence: trim after the step */
	gboolean evidence_sent; /* the worker's: evidence was sent since start-up */
	guint steps_since_trim; /* the worker's: steps since the last malloc_trim() */
	/* for the status snapshot, read by the main thread once the step is done */
	gchar **offered;	    /* evidence types of the last capabilities */
	GPtrArray *offered_from;    /* their entries: JsonObject*, sealed ones only, else NULL */
	guint64 offered_reused;	    /* capabilities whose types were the last ones, not read */
	gint64 cycle_tpm_us;	    /* time in TPM commands this cycle */
	guint64 cycle_ima_entries;  /* IMA entries sent this cycle */
	guint sessions_established; /* since the main thread last looked */
};

const gchar *
kl_agent_state_to_string(KlAgentState state)
{
	switch (state) {
	case KL_AGENT_STATE_UNREGISTERED:
		return "Unregistered";
	case KL_AGENT_STATE_REGISTERED:
		return "Registered";
	case KL_AGENT_STATE_NEGOTIATING:
		return "Negotiating";
	case KL_AGENT_STATE_ATTESTING:
		return "Attesting";
	case KL_AGENT_STATE_REGISTRATION_FAILED:
		return "RegistrationFailed";
	case KL_AGENT_STATE_ATTESTATION_FAILED:
		return "AttestationFailed";
	case KL_AGENT_STATE_STOPPED:
		return "Stopped";
	default:
		return "?";
	}
}

static void
kl_step_result_free(KlStepResult *result)
{
	if (result == NULL)
		return;
	g_clear_error(&result->error);
	g_free(result->summary);
	g_free(result->evidence_types);
	g_free(result);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlStepResult, kl_step_result_free)

static KlStepResult *
kl_step_ok(void)
{
	KlStepResult *result = g_new0(KlStepResult, 1);
	result->outcome = KL_STEP_OK;
	result->delay_ms = -1;
	return result;
}

/* takes @error */
static KlStepResult *
kl_step_retry(GError *error, gint64 delay_ms)
{
	KlStepResult *result = g_new0(KlStepResult, 1);
	result->outcome = KL_STEP_RETRY;
	result->delay_ms = delay_ms;
	result->error = error;
	return result;
}

static KlStepResult *
kl_step_fatal(GError *error, gint exit_status)
{
	KlStepResult *result = g_new0(KlStepResult, 1);
	result->outcome = KL_STEP_FATAL;
	result->delay_ms = -1;
	result->exit_status = exit_status;
	result->error = error;
	return result;
}

static gint64
kl_agent_now_us(KlAgent *agent)
{
	return agent->clock_func != NULL ? agent->clock_func(agent->clock_data) : g_get_real_time();
}

static gint64
kl_agent_now_s(KlAgent *agent)
{
	return kl_agent_now_us(agent) / G_USEC_PER_SEC;
}

/* uniform in [0, @max_ms] */
static guint64
kl_agent_random_ms(KlAgent *agent, guint64 max_ms)
{
	guint64 value;

	if (max_ms == 0)
		return 0;
	value = (guint64)(g_rand_double(agent->rand) * ((gdouble)max_ms + 1.0));
	return MIN(value, max_ms);
}

/*
 * The splay window: splay_percent of the attestation interval (the
 * verifier's, once it named one), at most KL_AGENT_SPLAY_MAX_MS.
 */
static guint64
kl_agent_splay_window(KlAgent *agent)
{
	guint64 interval = agent->verifier_interval_ms > 0
			       ? agent->verifier_interval_ms
			       : (guint64)agent->attestation_interval_s * 1000;

	return MIN(interval / 100 * agent->splay_percent, KL_AGENT_SPLAY_MAX_MS);
}

/*
 * The retry after an outage (peer unreachable, 5xx, 429 without Retry-After).
 *
 * A fleet loses its peer together, so how it comes back is decided by how
 * its retries are spread over time when the peer returns. Retrying a random
 * 10..60 s after each failure (a renewal process) piles the returns into the
 * first seconds: the density of an agent's next retry after any moment falls
 * off linearly over the window. Instead, during an outage each agent keeps to
 * a grid: anchor + k x period, where the anchor is the moment of its first
 * failure (for an attesting agent, its usual slot in the interval, which the
 * splay spread) and the period is one splay window (one attestation interval
 * by default), at most the cap. The retries of the fleet then stay exactly as
 * spread as its attestations were, for an outage of any length, and an agent
 * that was due in a slot keeps it: its first contact after the peer returns
 * falls where its attestation would have fallen, never earlier than the
 * verifier expects it.
 *
 * Of the grid points the latest not after now + max(@step_ms, period) is
 * taken (@step_ms: the exponential backoff's delay, already capped), so the
 * wait is never longer than one capped backoff step or one period, whichever
 * is longer, and an agent never tries twice within one period. With the
 * splay off there is no grid: @step_ms is returned (plain backoff).
 */
static guint64
kl_agent_outage_delay(KlAgent *agent, guint64 step_ms, guint64 cap_ms)
{
	guint64 period = MIN(kl_agent_splay_window(agent), cap_ms);
	gint64 now = kl_agent_now_us(agent);
	guint64 elapsed;
	guint64 next;

	if (period == 0) {
		agent->outage_anchor_us = 0;
		return step_ms;
	}
	/* the first failure of an outage anchors the grid (and a clock that went back) */
	if (agent->outage_anchor_us == 0 || agent->outage_anchor_us > now)
		agent->outage_anchor_us = now;
	elapsed = (guint64)(now - agent->outage_anchor_us) / 1000;
	next = (elapsed + MAX(step_ms, period)) / period * period;
	return next - elapsed;
}

/* a wait stretched by up to jitter_percent: only later, never earlier */
static guint64
kl_agent_jitter(KlAgent *agent, guint64 delay_ms)
{
	return delay_ms + kl_agent_random_ms(agent, delay_ms / 100 * agent->jitter_percent);
}

/* ---- worker side ---- */

static void
kl_agent_drop_token(KlAgent *agent)
{
	kl_http_set_bearer_token(kl_verifier_client_get_http(agent->verifier), NULL, NULL);
	agent->token_expires_at = 0;
	agent->token_fresh = FALSE;
}

/* a retry after the verifier's answer: at its Retry-After, else with backoff */
static KlStepResult *
kl_agent_answer_retry(KlVerifierAnswer *answer)
{
	return kl_step_retry(g_steal_pointer(&answer->error), answer->retry_after_ms);
}

/*
 * The verifier refused the bearer token (401, phase 1 or 2): it is dropped and
 * the next attempt authenticates again at once, unless the token is brand new
 * (no tight loop against a verifier that refuses every token).
 */
static KlStepResult *
kl_agent_token_refused(KlAgent *agent, KlVerifierAnswer *answer)
{
	KlStepResult *result =
	    kl_step_retry(g_steal_pointer(&answer->error), agent->token_fresh ? -1 : 0);

	kl_agent_drop_token(agent);
	return result;
}

/* not enrolled at the verifier: retried quietly (a person has to enroll the agent) */
static KlStepResult *
kl_agent_not_enrolled(KlVerifierAnswer *answer)
{
	KlStepResult *result = kl_step_retry(g_steal_pointer(&answer->error), -1);

	result->not_enrolled = TRUE;
	return result;
}

static KlStepResult *
kl_agent_step_register(KlAgent *agent, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) body = NULL;
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) secret = NULL;
	g_autofree gchar *auth_tag = NULL;

	if (!kl_registrar_client_negotiate(agent->registrar, cancellable, &error))
		return kl_step_retry(g_steal_pointer(&error),
				     kl_registrar_client_get_retry_after_ms(agent->registrar));
	body = kl_registrar_build_body(agent->source.get_ek_public(agent->source_data),
				       agent->source.get_ak_public(agent->source_data),
				       agent->source.get_ek_cert != NULL
					   ? agent->source.get_ek_cert(agent->source_data)
					   : NULL,
				       agent->contact_ip,
				       agent->contact_port);
	if (agent->source.contribute_registration != NULL &&
	    !agent->source.contribute_registration(agent->source_data, body, &error)) {
		g_prefix_error(&error, "registration postponed: ");
		return kl_step_retry(g_steal_pointer(&error), -1);
	}
	blob = kl_registrar_client_register(
	    agent->registrar, agent->agent_id, body, cancellable, &error);
	if (blob == NULL) {
		if (g_error_matches(error, KL_ERROR, KL_ERROR_AUTH))
			return kl_step_fatal(g_steal_pointer(&error), KL_EXIT_REGISTRAR_IDENTITY);
		return kl_step_retry(g_steal_pointer(&error),
				     kl_registrar_client_get_retry_after_ms(agent->registrar));
	}
	if (!agent->source.activate_credential(agent->source_data, blob, &secret, &error)) {
		g_prefix_error(&error, "cannot decrypt the registrar's credential: ");
		return kl_step_retry(g_steal_pointer(&error), -1);
	}
	auth_tag = kl_registrar_compute_auth_tag(secret, agent->agent_id);
	if (auth_tag == NULL)
		return kl_step_retry(g_error_new_literal(KL_ERROR,
							 KL_ERROR_INTERNAL,
							 "HMAC-SHA384 computation failed"),
				     -1);
	if (!kl_registrar_client_activate(
		agent->registrar, agent->agent_id, auth_tag, cancellable, &error))
		return kl_step_retry(g_steal_pointer(&error),
				     kl_registrar_client_get_retry_after_ms(agent->registrar));
	g_info("agent %s registered and activated at the registrar %s (API v%s)",
	       agent->agent_id,
	       kl_registrar_client_get_url(agent->registrar),
	       kl_registrar_client_get_version(agent->registrar));
	return kl_step_ok();
}

/* a token that has not expired yet (even if it is due for renewal) */
static gboolean
kl_agent_token_alive(KlAgent *agent)
{
	return kl_http_has_bearer_token(kl_verifier_client_get_http(agent->verifier)) &&
	       (agent->token_expires_at == 0 || kl_agent_now_s(agent) < agent->token_expires_at);
}

/* POST + PATCH /sessions; NULL on success (token set) */
static KlStepResult *
kl_agent_authenticate(KlAgent *agent, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) signature = NULL;
	g_autofree gchar *fingerprint = NULL;
	g_auto(KlVerifierAnswer) answer = { 0 };
	g_autofree gchar *session_id = NULL;

	{
		/* the oldest of the last KL_AGENT_SESSIONS_PER_WINDOW session creations */
		gint64 oldest = agent->session_times[agent->session_next];
		gint64 now = kl_agent_now_s(agent);
		if (oldest > 0 && now - oldest < KL_AGENT_SESSION_WINDOW_S) {
			gint64 wait_s = KL_AGENT_SESSION_WINDOW_S - (now - oldest);
			if (kl_agent_token_alive(agent))
				return NULL; /* the current token still works: use it */
			return kl_step_retry(
			    g_error_new(KL_ERROR,
					KL_ERROR_AUTH,
					"%u sessions were created in the last %d s (Keylime's "
					"verifier allows 15 per minute): the next one in "
					"%" G_GINT64_FORMAT " s",
					KL_AGENT_SESSIONS_PER_WINDOW,
					KL_AGENT_SESSION_WINDOW_S,
					wait_s),
			    wait_s * 1000);
		}
		agent->session_times[agent->session_next] = now;
		agent->session_next = (agent->session_next + 1) % KL_AGENT_SESSIONS_PER_WINDOW;
	}
	kl_agent_drop_token(agent);
	if (kl_verifier_client_create_session(agent->verifier, cancellable, &answer) !=
	    KL_VERIFIER_OK)
		return kl_agent_answer_retry(&answer);

	{
		gint64 started = g_get_monotonic_time();
		gboolean certified = agent->source.certify_ak(
		    agent->source_data, answer.challenge, &attest, &signature, &error);

		agent->cycle_tpm_us += g_get_monotonic_time() - started;
		if (!certified) {
			g_prefix_error(&error, "proof of possession (TPM2_Certify of the AK): ");
			return kl_step_retry(g_steal_pointer(&error), -1);
		}
	}
	session_id = g_steal_pointer(&answer.session_id);
	switch (kl_verifier_client_prove_session(
	    agent->verifier, session_id, attest, signature, cancellable, &answer)) {
	case KL_VERIFIER_OK:
		break;
	case KL_VERIFIER_NOT_ENROLLED:
		return kl_agent_not_enrolled(&answer);
	case KL_VERIFIER_UNAUTHORIZED:
		/* the proof of possession was refused: a new session will not change that soon */
		return kl_step_retry(g_steal_pointer(&answer.error), -1);
	default:
		return kl_agent_answer_retry(&answer);
	}
	kl_http_set_bearer_token(kl_verifier_client_get_http(agent->verifier),
				 kl_verifier_client_get_url(agent->verifier),
				 answer.session.token);
	agent->token_expires_at = answer.session.token_expires_at;
	agent->token_obtained_at = kl_agent_now_s(agent);
	agent->token_fresh = TRUE;
	agent->sessions_established++;
	fingerprint = kl_http_fingerprint(answer.session.token);
	g_debug("authenticated at the verifier (session %s, token %s, expires %" G_GINT64_FORMAT
		")",
		session_id,
		fingerprint,
		answer.session.token_expires_at);
	return NULL;
}

static gboolean
kl_agent_token_usable(KlAgent *agent)
{
	gint64 lifetime = agent->token_expires_at - agent->token_obtained_at;
	gint64 margin = KL_AGENT_TOKEN_MARGIN_S;

	if (!kl_http_has_bearer_token(kl_verifier_client_get_http(agent->verifier)))
		return FALSE;
	if (lifetime > 0)
		margin = MIN(margin, lifetime / 4);
	if (agent->token_expires_at > 0 &&
	    kl_agent_now_s(agent) >= agent->token_expires_at - margin) {
		g_debug("the verifier token expires soon; authenticating again");
		return FALSE;
	}
	return TRUE;
}

static void
kl_agent_entry_unref(gpointer entry)
{
	if (entry != NULL)
		json_object_unref(entry);
}

/*
 * agent->offered: the evidence types of @capabilities. They are the last
 * cycle's when every entry is the same sealed object as then (a plugin whose
 * facts did not change hands back the same sealed entry; the references kept
 * in agent->offered_from keep it from being another object at the same
 * address), else they are read again.
 */
static void
kl_agent_note_offered(KlAgent *agent, GPtrArray *capabilities)
{
	GPtrArray *last = agent->offered_from;
	gboolean same = last != NULL && last->len == capabilities->len;
	g_autoptr(GStrvBuilder) types = NULL;

	for (guint i = 0; same && i < capabilities->len; i++) {
		JsonObject *entry = g_ptr_array_index(capabilities, i);

		same = entry == g_ptr_array_index(last, i) && json_object_is_immutable(entry);
	}
	if (same) {
		agent->offered_reused++;
		return;
	}
	types = g_strv_builder_new();
	g_clear_pointer(&agent->offered_from, g_ptr_array_unref);
	agent->offered_from = g_ptr_array_new_full(capabilities->len, kl_agent_entry_unref);
	for (guint i = 0; i < capabilities->len; i++) {
		JsonObject *entry = g_ptr_array_index(capabilities, i);
		const gchar *type = NULL;

		if (kl_json_object_get_optional_string(entry, "evidence_type", &type, NULL) &&
		    type != NULL)
			g_strv_builder_add(types, type);
		g_ptr_array_add(agent->offered_from,
				json_object_is_immutable(entry) ? json_object_ref(entry) : NULL);
	}
	g_strfreev(agent->offered);
	agent->offered = g_strv_builder_end(types);
}

static KlStepResult *
kl_agent_step_negotiate(KlAgent *agent, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) capabilities = NULL;
	g_auto(KlVerifierAnswer) answer = { 0 };
	KlStepResult *result;

	agent->cycle_started = g_get_monotonic_time();
	agent->cycle_tpm_us = 0;
	agent->cycle_ima_entries = 0;
	agent->token_fresh = FALSE;
	g_clear_pointer(&agent->location, g_free);
	g_clear_pointer(&agent->requested, g_ptr_array_unref);
	if (!kl_agent_token_usable(agent)) {
		result = kl_agent_authenticate(agent, cancellable);
		if (result != NULL)
			return result;
	}
	capabilities = agent->source.get_capabilities(agent->source_data, &error);
	if (capabilities == NULL)
		return kl_step_retry(g_steal_pointer(&error), -1);
	kl_agent_note_offered(agent, capabilities);
	if (capabilities->len == 0)
		return kl_step_retry(g_error_new_literal(KL_ERROR,
							 KL_ERROR_NOT_SUPPORTED,
							 "no evidence plugin can offer evidence "
							 "in this cycle"),
				     -1);
	switch (kl_verifier_client_offer_capabilities(
	    agent->verifier, capabilities, agent->boot_time, cancellable, &answer)) {
	case KL_VERIFIER_OK:
		break;
	case KL_VERIFIER_UNAUTHORIZED:
		return kl_agent_token_refused(agent, &answer);
	case KL_VERIFIER_NOT_ENROLLED:
		return kl_agent_not_enrolled(&answer);
	case KL_VERIFIER_CONFLICT:
		/* a creation race: retry shortly once, then back off like any other fault */
		return kl_step_retry(g_steal_pointer(&answer.error),
				     kl_backoff_get_failures(agent->backoff) == 0 ? 1000 : -1);
	default:
		/* a 403 keeps the token: only a 401 says it is no longer valid */
		return kl_agent_answer_retry(&answer);
	}
	if (kl_log_is_enabled(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN)) {
		g_autofree gchar *types = kl_evidence_requests_describe(answer.requested);

		g_debug("the verifier requests %s (Location %s)",
			types,
			answer.location != NULL ? answer.location : "none");
	}
	agent->location = g_steal_pointer(&answer.location);
	agent->requested = g_steal_pointer(&answer.requested);
	return kl_step_ok();
}

static void
kl_agent_append_summary(GString *summary, const gchar *evidence_type, const gchar *sent)
{
	if (summary->len > 0)
		g_string_append(summary, ", ");
	g_string_append(summary, evidence_type);
	if (sent != NULL && sent[0] != '\0') {
		g_string_append(summary, " (");
		g_string_append(summary, sent);
		g_string_append_c(summary, ')');
	}
}

static KlStepResult *
kl_agent_step_attest(KlAgent *agent, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) collected =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_evidence_entry_free);
	g_autoptr(GString) summary = g_string_sized_new(128);
	g_autoptr(GString) types = g_string_sized_new(64);
	g_auto(KlVerifierAnswer) answer = { 0 };
	KlVerifierResult verdict;
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	KlStepResult *result;
	gint64 seconds;

	if (agent->requested == NULL)
		return kl_step_retry(g_error_new_literal(KL_ERROR,
							 KL_ERROR_INTERNAL,
							 "no evidence request to answer"),
				     -1);
	/* every item first: one that cannot be collected must not waste a quote */
	for (guint i = 0; i < agent->requested->len; i++) {
		KlEvidenceRequest *item = g_ptr_array_index(agent->requested, i);

		if (agent->source.resolve(agent->source_data, item, &error))
			continue;
		g_prefix_error(&error,
			       "cannot collect the requested %s evidence (item %u); nothing "
			       "was sent, starting a new attestation: ",
			       item->evidence_type,
			       i + 1);
		return kl_step_retry(g_steal_pointer(&error), -1);
	}
	for (guint i = 0; i < agent->requested->len; i++) {
		KlEvidenceRequest *item = g_ptr_array_index(agent->requested, i);
		const gchar *evidence_type = item->evidence_type;
		g_auto(KlEvidenceReport) report = { 0 };
		KlEvidenceEntry *entry;
		gint64 started = g_get_monotonic_time();

		entry = agent->source.collect(
		    agent->source_data, item, cancellable, &report, body, &error);
		/* the quote (class "certification") is the TPM's share of the cycle */
		if (g_strcmp0(item->evidence_class, "certification") == 0)
			agent->cycle_tpm_us += g_get_monotonic_time() - started;
		if (entry == NULL) {
			if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
				return kl_step_retry(g_steal_pointer(&error), -1);
			g_prefix_error(
			    &error,
			    "cannot collect the requested %s evidence (item %u); nothing "
			    "was sent, starting a new attestation: ",
			    evidence_type,
			    i + 1);
			return kl_step_retry(g_steal_pointer(&error), -1);
		}
		kl_agent_append_summary(summary, evidence_type, report.summary);
		if (types->len > 0)
			g_string_append_c(types, ',');
		g_string_append(types, evidence_type);
		/* the figures count IMA entries: what the ima_log plugin says it sent */
		if (g_strcmp0(evidence_type, "ima_log") == 0)
			agent->cycle_ima_entries += report.entry_count;
		g_ptr_array_add(collected, entry);
	}
	/* the entries' large strings are attached to @body, which is written while it is sent */
	verdict = kl_verifier_client_submit_evidence(
	    agent->verifier, agent->location, collected, body, cancellable, &answer);
	g_clear_pointer(&body, kl_json_body_free);
	agent->trim_pending =
	    answer.sent_bytes >= KL_AGENT_TRIM_BODY_BYTES || !agent->evidence_sent;
	agent->evidence_sent = TRUE;
	switch (verdict) {
	case KL_VERIFIER_OK:
		break;
	case KL_VERIFIER_UNAUTHORIZED:
		return kl_agent_token_refused(agent, &answer);
	case KL_VERIFIER_ROUND_OVER:
		/*
		 * old_attestation, challenges_expired, evidence_immutable: this round
		 * is over at the verifier; a new phase 1 starts at once (once: a
		 * repeated refusal backs off like any other fault)
		 */
		result = kl_step_retry(g_steal_pointer(&answer.error), -1);
		result->restart_now = kl_backoff_get_failures(agent->backoff) == 0;
		return result;
	case KL_VERIFIER_TOO_LARGE:
		/* sending it again soon would fail the same way: a person has to act */
		result =
		    kl_step_retry(g_steal_pointer(&answer.error), (gint64)agent->backoff_max_ms);
		result->permanent = TRUE;
		return result;
	default:
		return kl_agent_answer_retry(&answer);
	}
	seconds =
	    answer.seconds_to_next >= 0 ? answer.seconds_to_next : agent->attestation_interval_s;
	seconds = CLAMP(seconds, KL_AGENT_NEXT_MIN_S, KL_AGENT_NEXT_MAX_S);
	result = kl_step_ok();
	result->delay_ms = seconds * 1000;
	result->evidence_types = g_string_free(g_steal_pointer(&types), FALSE);
	/* "<summary> in <ms> ms; next in <s> s" */
	g_string_append(summary, " in ");
	kl_string_put_uint(summary,
			   (guint64)MAX(g_get_monotonic_time() - agent->cycle_started, 0) / 1000);
	g_string_append(summary, " ms; next in ");
	kl_string_put_uint(summary, (guint64)seconds);
	g_string_append(summary, " s");
	result->summary = g_string_free(g_steal_pointer(&summary), FALSE);
	return result;
}

/* the start of the step in flight for the watchdog (0: none); any thread */
static void
kl_agent_set_step_started(KlAgent *agent, gint64 started_us)
{
	g_mutex_lock(&agent->step_lock);
	agent->step_started_us = started_us;
	g_mutex_unlock(&agent->step_lock);
}

/*
 * One attestation cycle: phase 1 (capabilities, the verifier's request), then
 * at once phase 2 (evidence) on the same worker turn, unless phase 1 failed or
 * the agent is stopping (no quote is taken and nothing is sent after a stop).
 * Nothing the main thread does between the phases has to happen before phase
 * 2: it catches up when the cycle is done (kl_agent_step_done).
 */
static KlStepResult *
kl_agent_step_cycle(KlAgent *agent, GCancellable *cancellable)
{
	KlStepResult *result = kl_agent_step_negotiate(agent, cancellable);

	if (result->outcome != KL_STEP_OK || g_cancellable_is_cancelled(cancellable))
		return result;
	kl_step_result_free(result);
	/* for the watchdog, each phase is a step of its own, as the limit assumes */
	kl_agent_set_step_started(agent, g_get_monotonic_time());
	if (kl_log_is_enabled(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
		g_debug("state %s", kl_agent_state_to_string(KL_AGENT_STATE_ATTESTING));
	result = kl_agent_step_attest(agent, cancellable);
	result->negotiated = TRUE;
	return result;
}

/*
 * A copy of a session answer with data.attributes.token replaced by its
 * fingerprint, or NULL when @text holds no token: --json-file prints answers,
 * and the bearer token must not end up on a terminal or in a journal.
 */
static gchar *
kl_agent_redact_token(const gchar *text, gsize len)
{
	g_autoptr(JsonObject) root = NULL;
	g_autofree gchar *fingerprint = NULL;
	g_autofree gchar *note = NULL;
	JsonObject *data;
	JsonObject *attributes;
	const gchar *token = NULL;

	if (len == 0 || len > G_MAXSSIZE)
		return NULL;
	root = kl_json_parse_object(text, (gssize)len, NULL);
	if (root == NULL || !json_object_has_member(root, "data") ||
	    !JSON_NODE_HOLDS_OBJECT(json_object_get_member(root, "data")))
		return NULL;
	data = json_object_get_object_member(root, "data");
	if (!json_object_has_member(data, "attributes") ||
	    !JSON_NODE_HOLDS_OBJECT(json_object_get_member(data, "attributes")))
		return NULL;
	attributes = json_object_get_object_member(data, "attributes");
	if (!kl_json_object_get_optional_string(attributes, "token", &token, NULL) || token == NULL)
		return NULL;
	fingerprint = kl_http_fingerprint(token);
	note = g_strdup_printf("(not shown; SHA-256 fingerprint %s)", fingerprint);
	json_object_set_string_member(attributes, "token", note);
	return kl_json_object_to_string(root, NULL);
}

/* --json-file: send a prepared message (debugging the verifier API) */
static KlStepResult *
kl_agent_step_json_file(KlAgent *agent, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *contents = NULL;
	g_autofree gchar *url = NULL;
	g_autofree gchar *redacted = NULL;
	const gchar *method = agent->method != NULL ? agent->method : "POST";
	const gchar *type = agent->message_type != NULL ? agent->message_type : "attestation";
	gboolean session = g_ascii_strcasecmp(type, "session") == 0;
	gboolean patch = g_ascii_strcasecmp(method, "PATCH") == 0;
	KlStepResult *result;
	const gchar *text;
	gsize len = 0;

	if (!g_file_get_contents(agent->json_file, &contents, &len, &error)) {
		g_prefix_error(&error, "--json-file: ");
		return kl_step_fatal(g_steal_pointer(&error), KL_EXIT_USAGE);
	}
	if (session) {
		url = kl_verifier_client_sessions_url(
		    agent->verifier,
		    patch ? (agent->session_index != NULL ? agent->session_index : "1") : NULL);
	} else {
		result = kl_agent_authenticate(agent, cancellable);
		if (result != NULL) {
			result->outcome = KL_STEP_FATAL;
			result->exit_status = KL_EXIT_NOT_ACCEPTED;
			return result;
		}
		url = kl_verifier_client_attestations_url(
		    agent->verifier,
		    patch ? (agent->attestation_index != NULL ? agent->attestation_index : "latest")
			  : NULL);
	}
	g_info("--json-file: %s %s with %s", method, url, agent->json_file);
	response = kl_verifier_client_send(
	    agent->verifier, method, url, contents, len, !session, cancellable, &error);
	if (response == NULL)
		return kl_step_fatal(g_steal_pointer(&error), KL_EXIT_NOT_ACCEPTED);
	text = kl_http_response_get_body(response, &len);
	redacted = kl_agent_redact_token(text, len);
	if (redacted != NULL) {
		text = redacted;
		len = strlen(redacted);
	}
	printf("HTTP %u\n", response->status);
	fwrite(text, 1, len, stdout);
	if (len > 0 && text[len - 1] != '\n')
		fputc('\n', stdout);
	fflush(stdout);
	if (response->status >= 200 && response->status < 300) {
		result = kl_step_fatal(NULL, KL_EXIT_OK);
		return result;
	}
	return kl_step_fatal(NULL, KL_EXIT_NOT_ACCEPTED);
}

static void
kl_agent_worker_cb(gpointer data, gpointer user_data)
{
	KlAgent *agent = data;
	KlStepResult *result;

	result = agent->step_func(agent, agent->cancellable);
#if defined(__GLIBC__)
	/*
	 * the step's large buffers are freed now: give the memory back. The
	 * large ones (a log's text) were mapped on their own and are unmapped
	 * already (M_MMAP_THRESHOLD). The heap is trimmed after a large body and
	 * then only now and then, for the pages left free between chunks by
	 * buffers of changing sizes: not at every step, whose pages the next one
	 * would fault back in
	 */
	agent->steps_since_trim++;
	if (agent->trim_pending || agent->steps_since_trim >= KL_AGENT_TRIM_EVERY_STEPS) {
		agent->trim_pending = FALSE;
		malloc_trim(0);
		agent->steps_since_trim = 0;
	}
#endif
	/* handed to the main thread (kl_agent_source_dispatch) */
	g_atomic_pointer_set(&agent->step_result, result);
	g_source_set_ready_time(agent->gsource, 0);
}

/* ---- main-thread side ---- */

static void
kl_agent_run_state(KlAgent *agent);
static void
kl_agent_step_done(KlAgent *agent, KlStepResult *result_in);

/*
 * A log line with journal fields besides the message: KEYLIME_AGENT_ID, and
 * when given KEYLIME_ERROR_CAUSE (@cause), KEYLIME_ATTESTATION_INDEX (@index
 * > 0), KEYLIME_EVIDENCE_TYPES (@types), KEYLIME_STATE.
 */
static void
kl_agent_log_message(KlAgent *agent,
		     GLogLevelFlags level,
		     const gchar *cause,
		     guint index,
		     const gchar *types,
		     const gchar *message)
{
	gchar index_text[21];
	const gchar *priority;
	GLogField fields[8];
	gsize n = 0;

	switch (level & G_LOG_LEVEL_MASK) {
	case KL_LOG_LEVEL_FATAL:
		priority = "3";
		break;
	case G_LOG_LEVEL_WARNING:
		priority = "4";
		break;
	case G_LOG_LEVEL_MESSAGE:
		priority = "5";
		break;
	case G_LOG_LEVEL_DEBUG:
		priority = "7";
		break;
	default:
		priority = "6";
		break;
	}
	fields[n++] = (GLogField){ "MESSAGE", message, -1 };
	fields[n++] = (GLogField){ "PRIORITY", priority, -1 };
	fields[n++] = (GLogField){ "GLIB_DOMAIN", G_LOG_DOMAIN, -1 };
	fields[n++] = (GLogField){ "KEYLIME_AGENT_ID", agent->agent_id, -1 };
	fields[n++] = (GLogField){ "KEYLIME_STATE", kl_agent_state_to_string(agent->state), -1 };
	if (cause != NULL)
		fields[n++] = (GLogField){ "KEYLIME_ERROR_CAUSE", cause, -1 };
	if (index > 0) {
		index_text[sizeof index_text - 1] = '\0';
		fields[n++] =
		    (GLogField){ "KEYLIME_ATTESTATION_INDEX",
				 kl_string_uint_digits(index_text + sizeof index_text - 1, index),
				 -1 };
	}
	if (types != NULL)
		fields[n++] = (GLogField){ "KEYLIME_EVIDENCE_TYPES", types, -1 };
	g_log_structured_array(level, fields, n);
}

static void G_GNUC_PRINTF(6, 7) kl_agent_log(KlAgent *agent,
					     GLogLevelFlags level,
					     const gchar *cause,
					     guint index,
					     const gchar *types,
					     const gchar *format,
					     ...)
{
	g_autofree gchar *message = NULL;
	va_list args;

	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);
	kl_agent_log_message(agent, level, cause, index, types, message);
}

static void
kl_agent_finish(KlAgent *agent, gint exit_status)
{
	if (agent->finished)
		return;
	agent->finished = TRUE;
	agent->state = KL_AGENT_STATE_STOPPED;
	kl_status_stopped(agent->status);
	if (agent->gsource != NULL)
		g_source_set_ready_time(agent->gsource, -1);
	if (agent->done != NULL)
		agent->done(agent, exit_status, agent->done_data);
}

/* the wait is over */
static void
kl_agent_timer(KlAgent *agent)
{
	if (agent->state == KL_AGENT_STATE_REGISTRATION_FAILED)
		agent->state = KL_AGENT_STATE_UNREGISTERED;
	else if (agent->state == KL_AGENT_STATE_ATTESTATION_FAILED)
		agent->state = KL_AGENT_STATE_NEGOTIATING;
	kl_agent_run_state(agent);
}

static gchar *
kl_agent_format_delay(guint64 ms)
{
	if (ms < 1000)
		return g_strdup_printf("%" G_GUINT64_FORMAT " ms", ms);
	if (ms < 120000)
		return g_strdup_printf("%.1f s", (gdouble)ms / 1000.0);
	return g_strdup_printf("%" G_GUINT64_FORMAT " min", ms / 60000);
}

/*
 * The agent's one GSource, for its waits and for the worker's hand-back: no
 * source is made per step or per wait. While a step runs there is no wait, so
 * the two never meet; a result waiting for the main thread means the step is
 * done, else the wait is over. The new ready time set during the dispatch
 * (the next wait) costs no wake-up of the main loop.
 */
typedef struct {
	GSource source;
	KlAgent *agent;
} KlAgentGSource;

static gboolean
kl_agent_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	KlAgent *agent = ((KlAgentGSource *)source)->agent;
	KlStepResult *result;

	g_source_set_ready_time(source, -1);
	result = g_atomic_pointer_get(&agent->step_result);
	if (result != NULL) {
		g_atomic_pointer_set(&agent->step_result, NULL);
		kl_agent_step_done(agent, result); /* @agent may be gone after it */
	} else {
		kl_agent_timer(agent);
	}
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs kl_agent_source_funcs = {
	.dispatch = kl_agent_source_dispatch,
};

static void
kl_agent_set_priority(KlAgent *agent, gint priority)
{
	if (g_source_get_priority(agent->gsource) != priority)
		g_source_set_priority(agent->gsource, priority);
}

/* the next step in @delay_ms; 0: once the main loop is idle */
static void
kl_agent_schedule_source(KlAgent *agent, guint64 delay_ms)
{
	kl_agent_set_priority(agent, delay_ms == 0 ? G_PRIORITY_DEFAULT_IDLE : G_PRIORITY_DEFAULT);
	g_source_set_ready_time(
	    agent->gsource, delay_ms == 0 ? 0 : g_get_monotonic_time() + (gint64)delay_ms * 1000);
}

static void
kl_agent_schedule(KlAgent *agent, guint64 delay_ms)
{
	if (agent->delay_func != NULL)
		delay_ms = agent->delay_func(agent, delay_ms, agent->delay_data);
	if (agent->finished)
		return;
	kl_agent_schedule_source(agent, delay_ms);
}

/*
 * the cause of a fault: its error code and message without numbers (delays,
 * ids, sizes, ports), except HTTP statuses (a 500 and a 503 are two causes)
 */
static gchar *
kl_agent_cause_key(const GError *error)
{
	GString *key = g_string_new(NULL);
	const gchar *msg = error->message;

	g_string_append_printf(key, "%s/%d:", g_quark_to_string(error->domain), error->code);
	for (const gchar *p = msg; *p != '\0'; p++) {
		gboolean status = p - msg >= 5 && strncmp(p - 5, "HTTP ", 5) == 0;
		if (status) {
			while (g_ascii_isdigit(*p))
				g_string_append_c(key, *p++);
			if (*p == '\0')
				break;
		}
		if (!g_ascii_isdigit(*p))
			g_string_append_c(key, *p);
	}
	return g_string_free(key, FALSE);
}

static void
kl_agent_cause_clear(KlAgent *agent)
{
	if (agent->last_cause != NULL)
		g_info("recovered after %u failed attempt%s",
		       agent->cause_repeats + 1,
		       agent->cause_repeats > 0 ? "s" : "");
	g_clear_pointer(&agent->last_cause, g_free);
	agent->cause_repeats = 0;
}

/* TRUE when @error has another cause than the last retried fault (and remembers it) */
static gboolean
kl_agent_new_cause(KlAgent *agent, const GError *error)
{
	g_autofree gchar *key = kl_agent_cause_key(error);

	if (g_strcmp0(key, agent->last_cause) == 0)
		return FALSE;
	g_free(agent->last_cause);
	agent->last_cause = g_steal_pointer(&key);
	agent->cause_repeats = 0;
	return TRUE;
}

/* phase 1 succeeded: what the main thread keeps of it */
static void
kl_agent_negotiated(KlAgent *agent)
{
	agent->state = KL_AGENT_STATE_ATTESTING;
	/* the verifier answered: an outage (if any) is over, a new failure starts a new grid */
	agent->outage_anchor_us = 0;
	kl_status_set_evidence_types(agent->status, (const gchar *const *)agent->offered);
}

/* the step in flight is done: takes @result_in */
static void
kl_agent_step_done(KlAgent *agent, KlStepResult *result_in)
{
	g_autoptr(KlStepResult) result = result_in;
	KlAgentState state;
	KlStatusCause cause;
	guint64 delay;

	agent->step_running = FALSE;
	kl_agent_set_step_started(agent, 0);
	for (; agent->sessions_established > 0; agent->sessions_established--)
		kl_status_session_created(agent->status);
	/* phase 1 of this cycle succeeded, and the worker went on with phase 2 */
	if (result != NULL && result->negotiated)
		kl_agent_negotiated(agent);
	state = agent->state;
	if (agent->stopping) {
		kl_agent_finish(agent, agent->stop_status);
		return;
	}
	if (result == NULL) {
		kl_agent_finish(agent, KL_EXIT_FAILURE);
		return;
	}
	if (result->outcome == KL_STEP_FATAL) {
		if (result->error != NULL)
			kl_agent_log(agent,
				     result->exit_status == KL_EXIT_OK ? G_LOG_LEVEL_INFO
								       : KL_LOG_LEVEL_FATAL,
				     kl_status_cause_to_string(
					 kl_status_classify(result->error, result->not_enrolled)),
				     0,
				     NULL,
				     "%s",
				     result->error->message);
		kl_agent_finish(agent, result->exit_status);
		return;
	}
	if (result->outcome == KL_STEP_OK) {
		agent->outage_anchor_us = 0;
		/*
		 * a cycle that keeps failing in phase 2 must still back off: only a
		 * registration or an accepted attestation resets the backoff
		 */
		if (state != KL_AGENT_STATE_NEGOTIATING)
			kl_backoff_reset(agent->backoff);
		switch (state) {
		case KL_AGENT_STATE_UNREGISTERED:
			kl_agent_cause_clear(agent);
			agent->state = KL_AGENT_STATE_REGISTERED;
			kl_status_registered(agent->status);
			kl_agent_schedule(agent, 0);
			return;
		case KL_AGENT_STATE_NEGOTIATING:
			/* phase 1 alone (kl_agent_step_cycle stopped after it): phase 2 now */
			kl_agent_negotiated(agent);
			kl_agent_run_state(agent);
			return;
		case KL_AGENT_STATE_ATTESTING: {
			KlStatusCycle cycle = { 0 };

			agent->attestations++;
			kl_agent_cause_clear(agent);
			agent->not_enrolled_logged = FALSE;
			{
				/* "attestation <n> submitted: <summary>", at every cycle */
				g_autoptr(GString) line =
				    g_string_sized_new(32 + strlen(result->summary));

				g_string_append(line, "attestation ");
				kl_string_put_uint(line, agent->attestations);
				g_string_append(line, " submitted: ");
				g_string_append(line, result->summary);
				kl_agent_log_message(agent,
						     G_LOG_LEVEL_INFO,
						     NULL,
						     agent->attestations,
						     result->evidence_types,
						     line->str);
			}
			agent->verifier_interval_ms = (guint64)MAX(result->delay_ms, 0);
			/* stretched by a little, never shortened: an early agent gets a 429 */
			delay =
			    agent->once ? 0 : kl_agent_jitter(agent, agent->verifier_interval_ms);
			cycle.number = agent->attestations;
			cycle.summary = result->summary;
			cycle.duration_s =
			    (gdouble)(g_get_monotonic_time() - agent->cycle_started) / 1e6;
			cycle.tpm_s = (gdouble)agent->cycle_tpm_us / 1e6;
			cycle.ima_entries = agent->cycle_ima_entries;
			cycle.interval_s = (gint64)(agent->verifier_interval_ms / 1000);
			cycle.next_us = kl_agent_now_us(agent) + (gint64)delay * 1000;
			kl_status_attestation_accepted(agent->status, &cycle);
			if (agent->once) {
				kl_agent_finish(agent, KL_EXIT_OK);
				return;
			}
			agent->state = KL_AGENT_STATE_NEGOTIATING;
			kl_agent_schedule(agent, delay);
			return;
		}
		default:
			kl_agent_finish(agent, KL_EXIT_FAILURE);
			return;
		}
	}

	/* KL_STEP_RETRY */
	if (g_error_matches(result->error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		kl_agent_finish(agent, KL_EXIT_OK);
		return;
	}
	if (result->restart_now || result->delay_ms == 0)
		agent->outage_anchor_us = 0; /* the peer answered: no outage */
	if (result->restart_now) {
		/* counts as a failure, so that a second refusal in a row backs off */
		kl_backoff_next(agent->backoff);
		g_message("%s; starting a new attestation at once", result->error->message);
		agent->state = KL_AGENT_STATE_ATTESTATION_FAILED;
		kl_agent_schedule(agent, 0);
		return;
	}
	if (result->delay_ms == 0) {
		/* immediate retry (re-authentication); does not count as a failure */
		g_message("%s; authenticating again", result->error->message);
		agent->state = state == KL_AGENT_STATE_UNREGISTERED
				   ? KL_AGENT_STATE_REGISTRATION_FAILED
				   : KL_AGENT_STATE_ATTESTATION_FAILED;
		kl_agent_schedule(agent, 0);
		return;
	}
	cause = kl_status_classify(result->error, result->not_enrolled);
	if (result->delay_ms > 0) {
		/* the peer answered: an outage (if any) is over, Retry-After rules */
		agent->outage_anchor_us = 0;
		/* Retry-After (or a short retry): stretched by the jitter, never shortened */
		delay = kl_agent_jitter(agent, (guint64)result->delay_ms);
		kl_backoff_next(agent->backoff); /* still counts as a failure */
	} else {
		guint64 cap = kl_backoff_get_max(agent->backoff);

		delay = kl_backoff_next(agent->backoff);
		if (state != KL_AGENT_STATE_UNREGISTERED) {
			/* the verifier marks an agent TIMEOUT after 5 quote intervals */
			cap = MAX((guint64)agent->attestation_interval_s * 1000,
				  (guint64)KL_AGENT_ATTEST_CAP_MIN_MS);
			if (agent->verifier_interval_ms > 0)
				cap = MIN(
				    cap,
				    MAX(agent->verifier_interval_ms * KL_AGENT_ATTEST_CAP_INTERVALS,
					(guint64)KL_AGENT_ATTEST_CAP_FLOOR_MS));
			delay = MIN(delay, cap);
		}
		/* the fleet that lost its peer together must not come back together */
		if (kl_status_cause_is_outage(cause) && !agent->once)
			delay = kl_agent_outage_delay(agent, delay, cap);
		else
			agent->outage_anchor_us = 0;
	}
	agent->once_failures++;
	if (agent->once && agent->max_retries >= 0 &&
	    (gint64)agent->once_failures > agent->max_retries) {
		kl_agent_log(agent,
			     KL_LOG_LEVEL_FATAL,
			     kl_status_cause_to_string(cause),
			     0,
			     NULL,
			     "%s; giving up after %u attempts (%s)",
			     result->error->message,
			     agent->once_failures,
			     agent->json_file != NULL ? "--json-file" : "--once");
		kl_agent_finish(agent, KL_EXIT_NOT_ACCEPTED);
		return;
	}
	{
		g_autofree gchar *when = kl_agent_format_delay(delay);
		if (result->not_enrolled) {
			kl_agent_log(agent,
				     agent->not_enrolled_logged ? G_LOG_LEVEL_DEBUG
								: G_LOG_LEVEL_MESSAGE,
				     kl_status_cause_to_string(cause),
				     0,
				     NULL,
				     "%s (retrying in %s)",
				     result->error->message,
				     when);
			agent->not_enrolled_logged = TRUE;
		} else if (kl_agent_new_cause(agent, result->error)) {
			/* a fault that may be permanent: a warning once per change of cause */
			kl_agent_log(agent,
				     result->permanent ? KL_LOG_LEVEL_FATAL : G_LOG_LEVEL_WARNING,
				     kl_status_cause_to_string(cause),
				     0,
				     NULL,
				     "%s; retrying in %s",
				     result->error->message,
				     when);
		} else {
			agent->cause_repeats++;
			kl_agent_log(agent,
				     G_LOG_LEVEL_INFO,
				     kl_status_cause_to_string(cause),
				     0,
				     NULL,
				     "%s; retrying in %s (failed %u times in a row)",
				     result->error->message,
				     when,
				     agent->cause_repeats + 1);
		}
	}
	agent->state = state == KL_AGENT_STATE_UNREGISTERED ? KL_AGENT_STATE_REGISTRATION_FAILED
							    : KL_AGENT_STATE_ATTESTATION_FAILED;
	kl_status_failure(agent->status,
			  state == KL_AGENT_STATE_UNREGISTERED ? KL_STATUS_STAGE_REGISTRATION
							       : KL_STATUS_STAGE_ATTESTATION,
			  cause,
			  result->error != NULL ? result->error->message : NULL,
			  kl_backoff_get_failures(agent->backoff),
			  kl_agent_now_us(agent) + (gint64)delay * 1000);
	kl_agent_schedule(agent, delay);
}

static void
kl_agent_run_step(KlAgent *agent, KlStepFunc func)
{
	g_autoptr(GError) error = NULL;

	agent->step_func = func;
	agent->step_running = TRUE;
	/* the step's completion comes at the default priority, whatever the wait's was */
	kl_agent_set_priority(agent, G_PRIORITY_DEFAULT);
	kl_agent_set_step_started(agent, g_get_monotonic_time());
	if (!g_thread_pool_push(agent->worker, agent, &error)) {
		kl_error("cannot run the worker thread: %s", error->message);
		agent->step_running = FALSE;
		kl_agent_finish(agent, KL_EXIT_FAILURE);
	}
}

static void
kl_agent_run_state(KlAgent *agent)
{
	if (agent->stopping || agent->finished)
		return;
	if (kl_log_is_enabled(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
		g_debug("state %s", kl_agent_state_to_string(agent->state));
	switch (agent->state) {
	case KL_AGENT_STATE_UNREGISTERED:
		kl_agent_run_step(agent, kl_agent_step_register);
		break;
	case KL_AGENT_STATE_REGISTERED:
		if (agent->json_file != NULL) {
			kl_agent_run_step(agent, kl_agent_step_json_file);
			break;
		}
		agent->state = KL_AGENT_STATE_NEGOTIATING;
		kl_agent_run_step(agent, kl_agent_step_cycle);
		break;
	case KL_AGENT_STATE_NEGOTIATING:
		kl_agent_run_step(agent, kl_agent_step_cycle);
		break;
	case KL_AGENT_STATE_ATTESTING:
		kl_agent_run_step(agent, kl_agent_step_attest);
		break;
	default:
		break;
	}
}

KlAgent *
kl_agent_new(const KlAgentOptions *options,
	     const KlAgentSource *source,
	     gpointer source_data,
	     KlRegistrarClient *registrar,
	     KlVerifierClient *verifier)
{
	KlAgent *agent = g_new0(KlAgent, 1);

	agent->agent_id = g_strdup(options->agent_id);
	agent->contact_ip = g_strdup(options->contact_ip);
	agent->contact_port = options->contact_port;
	agent->boot_time = kl_format_boot_time(options->boot_time);
	agent->attestation_interval_s =
	    options->attestation_interval_s > 0 ? options->attestation_interval_s : 60;
	agent->max_retries = options->backoff_max_retries;
	agent->once = options->once;
	agent->splay_percent = MIN(options->splay_percent, 100);
	agent->jitter_percent = MIN(options->jitter_percent, 100);
	/* the backoff's seed (tests) makes the splay and jitter reproducible too */
	agent->rand = options->backoff_seed != 0 ? g_rand_new_with_seed(options->backoff_seed + 1)
						 : g_rand_new();
	agent->json_file = g_strdup(options->json_file);
	agent->message_type = g_strdup(options->message_type);
	agent->method = g_strdup(options->method);
	agent->attestation_index = g_strdup(options->attestation_index);
	agent->session_index = g_strdup(options->session_index);
	agent->source = *source;
	agent->source_data = source_data;
	agent->registrar = registrar;
	agent->verifier = verifier;
	agent->backoff_max_ms = MAX(options->backoff_max_ms, 1000);
	agent->backoff = kl_backoff_new(options->backoff_initial_ms,
					options->backoff_max_ms,
					options->backoff_max_retries,
					options->backoff_seed);
	agent->cancellable = g_cancellable_new();
	g_mutex_init(&agent->step_lock);
	agent->state = KL_AGENT_STATE_UNREGISTERED;
	/* one exclusive thread: TPM and plugin calls are never concurrent */
	agent->worker = g_thread_pool_new(kl_agent_worker_cb, agent, 1, TRUE, NULL);
	return agent;
}

void
kl_agent_free(KlAgent *agent)
{
	if (agent == NULL)
		return;
	g_cancellable_cancel(agent->cancellable);
	if (agent->worker != NULL)
		g_thread_pool_free(agent->worker, FALSE, TRUE);
	/* the worker is done: a finished step's result may still wait for the main thread */
	if (agent->gsource != NULL) {
		g_source_destroy(agent->gsource);
		g_source_unref(agent->gsource);
	}
	kl_step_result_free(agent->step_result);
	if (agent->context != NULL)
		g_main_context_unref(agent->context);
	g_object_unref(agent->cancellable);
	kl_backoff_free(agent->backoff);
	g_rand_free(agent->rand);
	g_strfreev(agent->offered);
	g_clear_pointer(&agent->offered_from, g_ptr_array_unref);
	g_clear_pointer(&agent->requested, g_ptr_array_unref);
	g_free(agent->location);
	g_free(agent->last_cause);
	g_free(agent->agent_id);
	g_free(agent->contact_ip);
	g_free(agent->boot_time);
	g_free(agent->json_file);
	g_free(agent->message_type);
	g_free(agent->method);
	g_free(agent->attestation_index);
	g_free(agent->session_index);
	g_mutex_clear(&agent->step_lock);
	g_free(agent);
}

void
kl_agent_set_delay_func(KlAgent *agent, KlAgentDelayFunc func, gpointer user_data)
{
	agent->delay_func = func;
	agent->delay_data = user_data;
}

void
kl_agent_set_clock_func(KlAgent *agent, KlAgentClockFunc func, gpointer user_data)
{
	agent->clock_func = func;
	agent->clock_data = user_data;
}

void
kl_agent_set_status(KlAgent *agent, KlStatus *status)
{
	agent->status = status;
}

void
kl_agent_start(KlAgent *agent, KlAgentDoneFunc done, gpointer user_data)
{
	guint64 delay = 0;

	agent->done = done;
	agent->done_data = user_data;
	agent->context = g_main_context_ref_thread_default();
	agent->gsource = g_source_new(&kl_agent_source_funcs, sizeof(KlAgentGSource));
	((KlAgentGSource *)agent->gsource)->agent = agent;
	g_source_set_name(agent->gsource, "kl-agent");
	g_source_attach(agent->gsource, agent->context);
	agent->state = KL_AGENT_STATE_UNREGISTERED;
	if (agent->status != NULL) {
		if (agent->clock_func != NULL)
			kl_status_set_clock(agent->status, agent->clock_func, agent->clock_data);
		kl_status_set_interval(agent->status, agent->attestation_interval_s);
	}
	/*
	 * splay: agents started together (a fleet rebooted, a rollout) spread
	 * their first contact with the registrar and the verifier over the window;
	 * a one-shot run (--once, --json-file) is interactive and does not wait
	 */
	if (!agent->once && agent->json_file == NULL && agent->splay_percent > 0) {
		g_autofree gchar *window = kl_agent_format_delay(kl_agent_splay_window(agent));
		g_autofree gchar *when = NULL;

		delay = kl_agent_random_ms(agent, kl_agent_splay_window(agent));
		when = kl_agent_format_delay(delay);
		g_info("first contact in %s (a random wait within %s, splay_percent = %u, so that "
		       "agents started together do not reach the registrar and verifier at once)",
		       when,
		       window,
		       agent->splay_percent);
	}
	kl_status_starting(agent->status, kl_agent_now_us(agent) + (gint64)delay * 1000);
	kl_agent_schedule(agent, delay);
}

void
kl_agent_abort(KlAgent *agent, gint exit_status)
{
	if (agent->finished || agent->stopping)
		return;
	agent->stopping = TRUE;
	agent->stop_status = exit_status;
	g_cancellable_cancel(agent->cancellable);
	if (!agent->step_running)
		kl_agent_finish(agent, exit_status);
}

void
kl_agent_stop(KlAgent *agent)
{
	kl_agent_abort(agent, KL_EXIT_OK);
}

KlAgentState
kl_agent_get_state(KlAgent *agent)
{
	return agent->state;
}

guint
kl_agent_get_attestation_count(KlAgent *agent)
{
	return agent->attestations;
}

guint64
kl_agent_get_offered_reused(KlAgent *agent)
{
	return agent->offered_reused;
}

gboolean
kl_agent_is_step_running(KlAgent *agent)
{
	return agent->step_running;
}

gint64
kl_agent_get_step_age_us(KlAgent *agent, gint64 now_us)
{
	gint64 started;

	if (!agent->step_running)
		return 0;
	g_mutex_lock(&agent->step_lock);
	started = agent->step_started_us;
	g_mutex_unlock(&agent->step_lock);
	if (started == 0)
		return 0;
	return MAX(now_us - started, 0);
}
