/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The verifier's push API (protocol.md §4-§6): URLs, request bodies and
 * checked parsing of its answers. Each exchange (session, proof, phase 1,
 * phase 2) returns a typed KlVerifierAnswer: what the verifier's status and
 * body mean, with the few facts the caller needs. The state machine
 * (kl-agent.c) only decides what to do next.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "kl-evidence-entry.h"
#include "kl-evidence-request.h"
#include "kl-http.h"
#include "kl-json-body.h"

G_BEGIN_DECLS

#define KL_VERIFIER_CONTENT_TYPE "application/vnd.api+json"
#define KL_VERIFIER_API_DEFAULT	 "v3.0"

typedef struct _KlVerifierClient KlVerifierClient;

/**
 * kl_verifier_client_new:
 * @http: (transfer none): the verifier's transport (must outlive the client)
 * @verifier_url: e.g. "https://verifier:8881"
 * @api_version: "v3.0" or "3.0" (NULL: v3.0)
 * @allow_plain_http: accept an http:// URL (only with tls_accept_invalid_certs)
 *
 * Fails with KL_ERROR_CONFIG for an unusable URL.
 */
KlVerifierClient *
kl_verifier_client_new(KlHttp *http,
		       const gchar *verifier_url,
		       const gchar *api_version,
		       const gchar *agent_id,
		       gboolean allow_plain_http,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
void
kl_verifier_client_free(KlVerifierClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlVerifierClient, kl_verifier_client_free)

KlHttp *
kl_verifier_client_get_http(KlVerifierClient *client);
/* the base URL without a trailing slash */
const gchar *
kl_verifier_client_get_url(KlVerifierClient *client);
/* "v3.0" */
const gchar *
kl_verifier_client_get_api_version(KlVerifierClient *client);

/* {base}/v3.0/sessions[/{id}] (sessions only exist under v3.0) */
gchar *
kl_verifier_client_sessions_url(KlVerifierClient *client, const gchar *session_id);
/* {base}/{api}/agents/{id}/attestations[/{index}] */
gchar *
kl_verifier_client_attestations_url(KlVerifierClient *client, const gchar *index);
/*
 * The URL to PATCH evidence to: the phase-1 Location when it is on the
 * verifier's origin and names this agent's attestation (a "/3/agents/..."
 * path gets its missing "v" back), else .../attestations/latest. (transfer full)
 */
gchar *
kl_verifier_client_evidence_url(KlVerifierClient *client, const gchar *location);

/* sends JSON:API with Content-Type application/vnd.api+json; any status (--json-file) */
KlHttpResponse *
kl_verifier_client_send(KlVerifierClient *client,
			const gchar *method,
			const gchar *url,
			const gchar *body,
			gsize body_len,
			gboolean authorize,
			GCancellable *cancellable,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* ---- exchanges: one typed answer each ---- */

typedef struct {
	gboolean pass;		 /* evaluation == "pass" and a token */
	gchar *evaluation;	 /* as sent, or NULL */
	gchar *token;		 /* secret */
	gint64 token_expires_at; /* Unix seconds; 0 when not given */
} KlVerifierSession;

void
kl_verifier_session_clear(KlVerifierSession *session);

/**
 * KlVerifierResult:
 * @KL_VERIFIER_OK: the expected answer, parsed
 * @KL_VERIFIER_FAILED: no answer (network, timeout, cancelled), a status
 *   without a meaning of its own, or an unusable body: try again, after
 *   KlVerifierAnswer.retry_after_ms when it is >= 0
 * @KL_VERIFIER_UNAUTHORIZED: 401: the bearer token was refused (phase 1 and
 *   2), or the proof of possession was (session)
 * @KL_VERIFIER_NOT_ENROLLED: phase 1 got 404, or the session's evaluation was
 *   not "pass": the agent is not enrolled at the verifier
 * @KL_VERIFIER_CONFLICT: phase 1 got 409 (the verifier was creating another
 *   attestation for this agent)
 * @KL_VERIFIER_ROUND_OVER: phase 2 got 403 old_attestation,
 *   challenges_expired or evidence_immutable: this round is over, a new
 *   phase 1 is needed
 * @KL_VERIFIER_TOO_LARGE: phase 2 was refused for its size (413, or 400
 *   without a body to an upload of 1 MiB or more: the verifier's
 *   max_upload_size)
 */
typedef enum {
	KL_VERIFIER_OK,
	KL_VERIFIER_FAILED,
	KL_VERIFIER_UNAUTHORIZED,
	KL_VERIFIER_NOT_ENROLLED,
	KL_VERIFIER_CONFLICT,
	KL_VERIFIER_ROUND_OVER,
	KL_VERIFIER_TOO_LARGE,
} KlVerifierResult;

/*
 * What one exchange came to. Declare it `g_auto(KlVerifierAnswer) answer = { 0 };`;
 * each exchange fills it in from scratch.
 */
typedef struct {
	KlVerifierResult result;
	guint status;	       /* the HTTP status; 0 without an answer */
	gint64 retry_after_ms; /* Retry-After of a 429/503 (clamped), else -1 */
	GError *error;	       /* why, for every result but KL_VERIFIER_OK */
	/* kl_verifier_client_create_session() */
	gchar *session_id;
	GBytes *challenge; /* the 16-byte tpm_pop nonce */
	/* kl_verifier_client_prove_session(): KL_VERIFIER_OK has session.pass */
	KlVerifierSession session;
	/* kl_verifier_client_offer_capabilities() */
	GPtrArray *requested; /* KlEvidenceRequest*, never empty */
	gchar *location;      /* the phase-1 Location (nullable) */
	/* kl_verifier_client_submit_evidence() */
	gsize sent_bytes;	/* the evidence body's size */
	gint64 seconds_to_next; /* meta.seconds_to_next_attestation (>= 0), -1 when not given */
} KlVerifierAnswer;

void
kl_verifier_answer_clear(KlVerifierAnswer *answer);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KlVerifierAnswer, kl_verifier_answer_clear)

/* the name of a result ("not-enrolled"), for messages and tests */
const gchar *
kl_verifier_result_to_string(KlVerifierResult result);

/* POST /v3.0/sessions: session_id and challenge */
KlVerifierResult
kl_verifier_client_create_session(KlVerifierClient *client,
				  GCancellable *cancellable,
				  KlVerifierAnswer *answer);

/* PATCH /v3.0/sessions/{id} with the proof: session (token, expiry) */
KlVerifierResult
kl_verifier_client_prove_session(KlVerifierClient *client,
				 const gchar *session_id,
				 GBytes *attest,
				 GBytes *signature,
				 GCancellable *cancellable,
				 KlVerifierAnswer *answer);

/*
 * Phase 1, POST .../attestations with @evidence_supported (JsonObject*
 * entries) and @boot_time: requested (never empty), location
 */
KlVerifierResult
kl_verifier_client_offer_capabilities(KlVerifierClient *client,
				      GPtrArray *evidence_supported,
				      const gchar *boot_time,
				      GCancellable *cancellable,
				      KlVerifierAnswer *answer);

/*
 * Phase 2, PATCH of @evidence_collected (KlEvidenceEntry*: {evidence_class,
 * evidence_type, data}) to the phase-1 @location (see
 * kl_verifier_client_evidence_url()). @body is the (new) body the entries were
 * collected into (their attached strings, KlEvidenceEntry.attachments); it is laid
 * out once (kl_verifier_build_evidence()) and read while it is sent, so the
 * large strings are never copied (an attached text that comes back cycle after
 * cycle, like the UEFI log, is not even scanned again: the client's
 * KlJsonBodyCache); @evidence_collected is emptied. The answer
 * may be of any size (the verifier echoes the evidence back); only its end is
 * read. sent_bytes, seconds_to_next.
 */
KlVerifierResult
kl_verifier_client_submit_evidence(KlVerifierClient *client,
				   const gchar *location,
				   GPtrArray *evidence_collected,
				   KlJsonBody *body,
				   GCancellable *cancellable,
				   KlVerifierAnswer *answer);

/* ---- bodies (pure) ---- */

gchar *
kl_verifier_build_session_request(const gchar *agent_id, gsize *len);
gchar *
kl_verifier_build_session_proof(
    const gchar *session_id, const gchar *agent_id, GBytes *attest, GBytes *signature, gsize *len);
/* @evidence_supported: JsonObject* entries {evidence_class, evidence_type, capabilities} */
gchar *
kl_verifier_build_capabilities(GPtrArray *evidence_supported, const gchar *boot_time, gsize *len);
/*
 * @evidence_collected: KlEvidenceEntry* entries {evidence_class,
 * evidence_type, data}, collected into @body (their attached strings,
 * KlEvidenceEntry.attachments); lays out @body (kl_json_body_finish()); the same
 * text as kl_json_object_to_string() of {"data":{"type":"attestation",
 * "attributes":{"evidence_collected":[...]}}} with each entry an object
 * {"evidence_class","evidence_type","data"}
 */
void
kl_verifier_build_evidence(GPtrArray *evidence_collected, KlJsonBody *body);

/* ---- answers (untrusted input) ---- */

/* POST /sessions 200: data.id and the decoded 16-byte tpm_pop challenge */
gboolean
kl_verifier_parse_session_challenge(const gchar *body,
				    gsize len,
				    gchar **session_id,
				    GBytes **challenge,
				    GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* PATCH /sessions/{id} 200 or 401 */
gboolean
kl_verifier_parse_session_result(const gchar *body,
				 gsize len,
				 KlVerifierSession *session,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Phase-1 201: data.attributes.evidence_requested[], each item parsed once
 * into a KlEvidenceRequest (chosen_parameters sealed; empty when the verifier
 * sent none). (transfer full) array of KlEvidenceRequest*.
 */
GPtrArray *
kl_verifier_parse_evidence_requested(const gchar *body,
				     gsize len,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * The same with @memos (element-type KlJsonObjectMemo, owned by the caller
 * and kept from one answer to the next; grown to one per item): an item's
 * chosen_parameters that are byte-identical to the previous answer's at the
 * same place are the same sealed object, and only changed members are built.
 */
GPtrArray *
kl_verifier_parse_evidence_requested_memo(const gchar *body,
					  gsize len,
					  GPtrArray *memos,
					  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* phase-2 202: meta.seconds_to_next_attestation; FALSE when absent or not a number */
/*
 * meta.seconds_to_next_attestation from the END of an answer that was too
 * long to keep whole (the verifier's 202 echoes the evidence; `meta` comes
 * last): the last occurrence of the member, a number after it
 */
gboolean
kl_verifier_scan_seconds_to_next(const gchar *tail, gsize len, gint64 *seconds);
gboolean
kl_verifier_parse_seconds_to_next(const gchar *body, gsize len, gint64 *seconds);

/* "detail; detail" of a JSON:API errors[] body, NULL if there is none (transfer full) */
gchar *
kl_verifier_describe_errors(const gchar *body, gsize len);

/* ---- small helpers ---- */

/* /proc/stat btime */
gboolean
kl_read_boot_time(const gchar *proc_stat_path,
		  gint64 *btime,
		  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
gchar *
kl_format_boot_time(gint64 btime);
/* ISO 8601 with offset or Z; -1 if unparsable */
gint64
kl_parse_timestamp(const gchar *text);

G_END_DECLS
