/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-backoff.h"
#include "kl-capabilities.h"
#include "kl-json-doc.h"
#include "kl-verifier-client.h"

/* evidence items the agent collects for one attestation at most */
#define KL_VERIFIER_MAX_REQUESTED 32
/* a 400 without a body to an upload this large is the verifier's size limit */
#define KL_VERIFIER_UPLOAD_SUSPECT (1024 * 1024)
/* a phase-2 answer longer than this echoes the evidence: only its end is read */
#define KL_VERIFIER_ECHO_BYTES (16 * 1024)

struct _KlVerifierClient {
	KlHttp *http;
	KlCapabilitiesBody *capabilities_body; /* the phase-1 body's parts, round to round */
	KlJsonBodyCache *evidence_cache;       /* the evidence bodies' attached texts */
	gchar *url;			       /* no trailing slash */
	gchar *api_version;		       /* "v3.0" */
	gchar *agent_id;
	gchar *agent_id_escaped;
	gchar *attestations_path; /* "/agents/<agent_id_escaped>/attestations/" */
	gchar *attestations_url;  /* the phase-1 URL */
	/* KlJsonObjectMemo per item of evidence_requested: chosen_parameters, round to round */
	GPtrArray *params_memos;
	guint large_cut; /* large evidence uploads cut by the verifier in a row */
};

KlVerifierClient *
kl_verifier_client_new(KlHttp *http,
		       const gchar *verifier_url,
		       const gchar *api_version,
		       const gchar *agent_id,
		       gboolean allow_plain_http,
		       GError **error)
{
	g_autoptr(KlVerifierClient) client = g_new0(KlVerifierClient, 1);
	g_autoptr(GUri) uri = NULL;
	g_autofree gchar *scheme = NULL;
	gsize n;

	if (verifier_url == NULL || verifier_url[0] == '\0') {
		g_set_error_literal(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "verifier_url is empty: set it in agent.conf or with --verifier-url");
		return NULL;
	}
	uri = g_uri_parse(verifier_url, G_URI_FLAGS_NONE, NULL);
	if (uri == NULL || g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0') {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "verifier_url '%s' is not an absolute URL such as https://verifier:8881",
		    verifier_url);
		return NULL;
	}
	scheme = g_ascii_strdown(g_uri_get_scheme(uri), -1);
	if (g_strcmp0(scheme, "https") != 0) {
		if (g_strcmp0(scheme, "http") != 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "verifier_url '%s': the scheme must be https",
				    verifier_url);
			return NULL;
		}
		if (!allow_plain_http) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "verifier_url '%s' uses plain http: the verifier only speaks "
				    "https and the bearer token must not travel in clear; use "
				    "https:// (or --insecure for a test setup)",
				    verifier_url);
			return NULL;
		}
	}
	client->http = http;
	client->capabilities_body = kl_capabilities_body_new();
	client->url = g_strdup(verifier_url);
	n = strlen(client->url);
	while (n > 0 && client->url[n - 1] == '/')
		client->url[--n] = '\0';
	if (api_version == NULL || api_version[0] == '\0')
		api_version = KL_VERIFIER_API_DEFAULT;
	client->api_version =
	    api_version[0] == 'v' ? g_strdup(api_version) : g_strdup_printf("v%s", api_version);
	client->agent_id = g_strdup(agent_id);
	client->agent_id_escaped = g_uri_escape_string(agent_id, NULL, FALSE);
	client->attestations_path =
	    g_strconcat("/agents/", client->agent_id_escaped, "/attestations/", NULL);
	client->attestations_url = kl_verifier_client_attestations_url(client, NULL);
	return g_steal_pointer(&client);
}

void
kl_verifier_client_free(KlVerifierClient *client)
{
	if (client == NULL)
		return;
	g_free(client->url);
	g_free(client->api_version);
	g_free(client->agent_id);
	g_free(client->agent_id_escaped);
	g_free(client->attestations_path);
	g_free(client->attestations_url);
	kl_capabilities_body_free(client->capabilities_body);
	kl_json_body_cache_free(client->evidence_cache);
	g_clear_pointer(&client->params_memos, g_ptr_array_unref);
	g_free(client);
}

KlHttp *
kl_verifier_client_get_http(KlVerifierClient *client)
{
	return client->http;
}

const gchar *
kl_verifier_client_get_url(KlVerifierClient *client)
{
	return client->url;
}

const gchar *
kl_verifier_client_get_api_version(KlVerifierClient *client)
{
	return client->api_version;
}

gchar *
kl_verifier_client_sessions_url(KlVerifierClient *client, const gchar *session_id)
{
	g_autofree gchar *escaped = NULL;

	if (session_id == NULL)
		return g_strdup_printf("%s/v3.0/sessions", client->url);
	escaped = g_uri_escape_string(session_id, NULL, FALSE);
	return g_strdup_printf("%s/v3.0/sessions/%s", client->url, escaped);
}

gchar *
kl_verifier_client_attestations_url(KlVerifierClient *client, const gchar *index)
{
	g_autofree gchar *escaped = NULL;

	if (index == NULL)
		return g_strdup_printf("%s/%s/agents/%s/attestations",
				       client->url,
				       client->api_version,
				       client->agent_id_escaped);
	escaped = g_uri_escape_string(index, NULL, FALSE);
	return g_strdup_printf("%s/%s/agents/%s/attestations/%s",
			       client->url,
			       client->api_version,
			       client->agent_id_escaped,
			       escaped);
}

/*
 * The evidence URL for the phase-1 Location @location whose path on the
 * verifier's origin is @path: /v<api>/agents/<this agent>/attestations/<index>
 */
static gchar *
kl_verifier_client_location_url(KlVerifierClient *client,
				const gchar *location,
				const gchar *path,
				gboolean has_query)
{
	const gchar *needle = client->attestations_path;
	gsize needle_len = strlen(needle);
	gboolean add_v = FALSE;
	const gchar *p;
	const gchar *rest;

	/* the verifier's 202 links say "/3/agents/..." (no "v"): put it back */
	p = path + 1;
	if (g_ascii_isdigit(*p)) {
		while (g_ascii_isdigit(*p) || *p == '.')
			p++;
		add_v = *p == '/';
	}

	/*
	 * must be /v<api>/agents/<this agent>/attestations/<index> (the "v" put
	 * back changes nothing after the first "/": @needle starts with "/a")
	 */
	rest = strstr(path, needle);
	if (!(add_v || path[1] == 'v') || rest == NULL || rest[needle_len] == '\0' || has_query) {
		rest = NULL;
	} else {
		for (p = rest + needle_len; *p != '\0'; p++) {
			if (!g_ascii_isalnum(*p) && *p != '_' && *p != '.' && *p != '-') {
				rest = NULL;
				break;
			}
		}
	}
	if (rest == NULL) {
		g_message("phase-1 Location '%s' does not name this agent's attestation; using "
			  ".../attestations/latest",
			  location);
		return kl_verifier_client_attestations_url(client, "latest");
	}
	/* rebuild from the configured base URL: same origin, verified above */
	return g_strconcat(client->url, add_v ? "/v" : "", path + (add_v ? 1 : 0), NULL);
}

gchar *
kl_verifier_client_evidence_url(KlVerifierClient *client, const gchar *location)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GUri) uri = NULL;
	g_autofree gchar *resolved = NULL;
	const gchar *path;

	if (location == NULL)
		return kl_verifier_client_attestations_url(client, "latest");
	/*
	 * the usual answer, a plain absolute path ("/v3/agents/..."), is on the
	 * verifier's origin by itself: no resolution needed when it has no query,
	 * fragment, dot segment, percent-encoding, backslash, space or control
	 * character
	 */
	if (location[0] == '/' && location[1] != '/' && strstr(location, "/.") == NULL &&
	    location[strcspn(location, "?#%\\ \x7f")] == '\0') {
		gboolean plain = TRUE;

		for (const gchar *q = location; *q != '\0' && plain; q++)
			plain = (guchar)*q >= 0x20;
		if (plain)
			return kl_verifier_client_location_url(client, location, location, FALSE);
	}
	resolved = kl_http_resolve_location(client->url, location, &error_local);
	if (resolved == NULL) {
		g_message("phase-1 Location ignored (%s); using .../attestations/latest",
			  error_local->message);
		return kl_verifier_client_attestations_url(client, "latest");
	}
	/* the path stays percent-encoded: nothing decoded goes into the URL built below */
	uri = g_uri_parse(resolved, G_URI_FLAGS_ENCODED, NULL);
	path = uri != NULL ? g_uri_get_path(uri) : NULL;
	if (path == NULL || path[0] != '/')
		return kl_verifier_client_attestations_url(client, "latest");
	return kl_verifier_client_location_url(client,
					       location,
					       path,
					       g_uri_get_query(uri) != NULL ||
						   g_uri_get_fragment(uri) != NULL);
}

KlHttpResponse *
kl_verifier_client_send(KlVerifierClient *client,
			const gchar *method,
			const gchar *url,
			const gchar *body,
			gsize body_len,
			gboolean authorize,
			GCancellable *cancellable,
			GError **error)
{
	KlHttpRequest request = {
		.method = method,
		.url = url,
		.content_type = body != NULL ? KL_VERIFIER_CONTENT_TYPE : NULL,
		.body = body,
		.body_len = body_len,
		.authorize = authorize,
	};
	return kl_http_send(client->http, &request, cancellable, error);
}

static gsize
kl_verifier_body_read(gpointer data, gchar *buf, gsize len)
{
	return kl_json_body_read(data, buf, len);
}

static gboolean
kl_verifier_body_seek(gpointer data, guint64 offset)
{
	return kl_json_body_seek(data, offset);
}

/* the PATCH of the evidence, read from @body while it is sent: any answer size, only its end is
 * kept */
static KlHttpResponse *
kl_verifier_client_patch_evidence(KlVerifierClient *client,
				  const gchar *url,
				  KlJsonBody *body,
				  GCancellable *cancellable,
				  GError **error)
{
	gsize body_len = (gsize)kl_json_body_get_size(body);
	KlHttpBodyReader reader = {
		.read = kl_verifier_body_read,
		.seek = kl_verifier_body_seek,
		.data = body,
	};
	KlHttpRequest request = {
		.method = "PATCH",
		.url = url,
		.content_type = KL_VERIFIER_CONTENT_TYPE,
		.body_reader = &reader,
		.body_len = body_len,
		.authorize = TRUE,
		.tail_only = TRUE,
		/*
		 * the verifier parses and stores the evidence before it answers: a
		 * second more per MiB (150k IMA entries are ~22 MB)
		 */
		.extra_timeout_ms = (guint)MIN(body_len / 1024, (gsize)G_MAXUINT / 2),
	};
	return kl_http_send(client->http, &request, cancellable, error);
}

/* ---- typed answers ---- */

void
kl_verifier_answer_clear(KlVerifierAnswer *answer)
{
	answer->result = KL_VERIFIER_OK;
	answer->status = 0;
	answer->retry_after_ms = -1;
	g_clear_error(&answer->error);
	g_clear_pointer(&answer->session_id, g_free);
	g_clear_pointer(&answer->challenge, g_bytes_unref);
	kl_verifier_session_clear(&answer->session);
	g_clear_pointer(&answer->requested, g_ptr_array_unref);
	g_clear_pointer(&answer->location, g_free);
	answer->sent_bytes = 0;
	answer->seconds_to_next = -1;
}

const gchar *
kl_verifier_result_to_string(KlVerifierResult result)
{
	switch (result) {
	case KL_VERIFIER_OK:
		return "ok";
	case KL_VERIFIER_FAILED:
		return "failed";
	case KL_VERIFIER_UNAUTHORIZED:
		return "unauthorized";
	case KL_VERIFIER_NOT_ENROLLED:
		return "not-enrolled";
	case KL_VERIFIER_CONFLICT:
		return "conflict";
	case KL_VERIFIER_ROUND_OVER:
		return "round-over";
	case KL_VERIFIER_TOO_LARGE:
		return "too-large";
	default:
		return "?";
	}
}

/* takes @error */
static KlVerifierResult
kl_verifier_answer_set(KlVerifierAnswer *answer, KlVerifierResult result, GError *error)
{
	answer->result = result;
	g_clear_error(&answer->error);
	answer->error = error;
	return result;
}

/* no answer at all: takes @error */
static KlVerifierResult
kl_verifier_answer_no_response(KlVerifierAnswer *answer, GError *error)
{
	return kl_verifier_answer_set(answer, KL_VERIFIER_FAILED, error);
}

/* an answer was received: its status and Retry-After */
static void
kl_verifier_answer_received(KlVerifierAnswer *answer, KlHttpResponse *response)
{
	answer->status = response->status;
	answer->retry_after_ms =
	    kl_backoff_retry_after_ms(response->status, response->retry_after_s);
}

/* "@what: the verifier answered HTTP 422: detail" */
static GError *
kl_verifier_status_error(KlHttpResponse *response, const gchar *what)
{
	gsize len = 0;
	const gchar *body = kl_http_response_get_body(response, &len);
	g_autofree gchar *details = kl_verifier_describe_errors(body, len);

	return g_error_new(KL_ERROR,
			   KL_ERROR_HTTP,
			   "%s: the verifier answered HTTP %u%s%s",
			   what,
			   response->status,
			   details != NULL ? ": " : "",
			   details != NULL ? details : "");
}

static GError *
kl_verifier_not_enrolled_error(KlVerifierClient *client, gint code)
{
	return g_error_new(KL_ERROR,
			   code,
			   "agent %s is not enrolled at the verifier: enroll it with "
			   "keylime_tenant -c add --push-model -u %s",
			   client->agent_id,
			   client->agent_id);
}

KlVerifierResult
kl_verifier_client_create_session(KlVerifierClient *client,
				  GCancellable *cancellable,
				  KlVerifierAnswer *answer)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *url = kl_verifier_client_sessions_url(client, NULL);
	g_autofree gchar *body = NULL;
	const gchar *text;
	gsize len = 0;

	kl_verifier_answer_clear(answer);
	body = kl_verifier_build_session_request(client->agent_id, &len);
	response =
	    kl_verifier_client_send(client, "POST", url, body, len, FALSE, cancellable, &error);
	if (response == NULL)
		return kl_verifier_answer_no_response(answer, g_steal_pointer(&error));
	kl_verifier_answer_received(answer, response);
	if (response->status != 200)
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_FAILED,
		    kl_verifier_status_error(response, "creating a session"));
	text = kl_http_response_get_body(response, &len);
	if (!kl_verifier_parse_session_challenge(
		text, len, &answer->session_id, &answer->challenge, &error))
		return kl_verifier_answer_set(answer, KL_VERIFIER_FAILED, g_steal_pointer(&error));
	return kl_verifier_answer_set(answer, KL_VERIFIER_OK, NULL);
}

KlVerifierResult
kl_verifier_client_prove_session(KlVerifierClient *client,
				 const gchar *session_id,
				 GBytes *attest,
				 GBytes *signature,
				 GCancellable *cancellable,
				 KlVerifierAnswer *answer)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *url = kl_verifier_client_sessions_url(client, session_id);
	g_autofree gchar *body = NULL;
	const gchar *text;
	gsize len = 0;

	kl_verifier_answer_clear(answer);
	body =
	    kl_verifier_build_session_proof(session_id, client->agent_id, attest, signature, &len);
	response =
	    kl_verifier_client_send(client, "PATCH", url, body, len, FALSE, cancellable, &error);
	if (response == NULL)
		return kl_verifier_answer_no_response(answer, g_steal_pointer(&error));
	kl_verifier_answer_received(answer, response);
	switch (response->status) {
	case 200:
		break;
	case 401:
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_UNAUTHORIZED,
		    g_error_new(
			KL_ERROR,
			KL_ERROR_AUTH,
			"the verifier rejected the proof of possession for agent %s (HTTP "
			"401): the AK it has on record differs from this agent's AK, or the "
			"AK is not RSA with RSASSA/SHA-256; re-register and re-enroll the "
			"agent if its AK changed",
			client->agent_id));
	default:
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_FAILED,
		    kl_verifier_status_error(response, "completing the session"));
	}
	text = kl_http_response_get_body(response, &len);
	if (!kl_verifier_parse_session_result(text, len, &answer->session, &error))
		return kl_verifier_answer_set(answer, KL_VERIFIER_FAILED, g_steal_pointer(&error));
	if (!answer->session.pass) {
		kl_verifier_session_clear(&answer->session);
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_NOT_ENROLLED,
		    kl_verifier_not_enrolled_error(client, KL_ERROR_AUTH));
	}
	return kl_verifier_answer_set(answer, KL_VERIFIER_OK, NULL);
}

KlVerifierResult
kl_verifier_client_offer_capabilities(KlVerifierClient *client,
				      GPtrArray *evidence_supported,
				      const gchar *boot_time,
				      GCancellable *cancellable,
				      KlVerifierAnswer *answer)
{
	static const gchar what[] = "offering capabilities";
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	const gchar *url = client->attestations_url;
	const gchar *body;
	const gchar *text;
	gsize len = 0;

	kl_verifier_answer_clear(answer);
	body = kl_capabilities_body_build(
	    client->capabilities_body, evidence_supported, boot_time, &len);
	response =
	    kl_verifier_client_send(client, "POST", url, body, len, TRUE, cancellable, &error);
	if (response == NULL)
		return kl_verifier_answer_no_response(answer, g_steal_pointer(&error));
	kl_verifier_answer_received(answer, response);
	switch (response->status) {
	case 201:
		break;
	case 401:
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_UNAUTHORIZED, kl_verifier_status_error(response, what));
	case 404:
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_NOT_ENROLLED,
		    kl_verifier_not_enrolled_error(client, KL_ERROR_NOT_FOUND));
	case 409:
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_CONFLICT, kl_verifier_status_error(response, what));
	default:
		/* 403 included: only a 401 says that the token is no longer valid */
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_FAILED, kl_verifier_status_error(response, what));
	}
	text = kl_http_response_get_body(response, &len);
	if (client->params_memos == NULL)
		client->params_memos =
		    g_ptr_array_new_with_free_func((GDestroyNotify)kl_json_object_memo_free);
	answer->requested =
	    kl_verifier_parse_evidence_requested_memo(text, len, client->params_memos, &error);
	if (answer->requested == NULL)
		return kl_verifier_answer_set(answer, KL_VERIFIER_FAILED, g_steal_pointer(&error));
	if (answer->requested->len == 0)
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_FAILED,
		    g_error_new_literal(KL_ERROR,
					KL_ERROR_INVALID_DATA,
					"the verifier requested no evidence; give the agent a "
					"TPM, IMA or measured-boot policy at enrollment"));
	answer->location = g_strdup(response->location);
	return kl_verifier_answer_set(answer, KL_VERIFIER_OK, NULL);
}

KlVerifierResult
kl_verifier_client_submit_evidence(KlVerifierClient *client,
				   const gchar *location,
				   GPtrArray *evidence_collected,
				   KlJsonBody *body,
				   GCancellable *cancellable,
				   KlVerifierAnswer *answer)
{
	static const gchar what[] = "submitting evidence";
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *url = NULL;
	const gchar *text;
	gint64 seconds = 0;
	gboolean given;
	gsize len = 0;

	kl_verifier_answer_clear(answer);
	/*
	 * the body is written while it is sent: its large strings are escaped
	 * from the plugins' buffers, never copied into a tree or a text first
	 */
	if (client->evidence_cache == NULL)
		client->evidence_cache = kl_json_body_cache_new();
	kl_json_body_set_cache(body, client->evidence_cache);
	kl_verifier_build_evidence(evidence_collected, body);
	g_ptr_array_set_size(evidence_collected, 0);
	answer->sent_bytes = (gsize)kl_json_body_get_size(body);
	url = kl_verifier_client_evidence_url(client, location);
	response = kl_verifier_client_patch_evidence(client, url, body, cancellable, &error);
	/* sent (or not): the body's buffer serves the next one */
	kl_json_body_release(body);
	if (response == NULL && answer->sent_bytes >= KL_VERIFIER_UPLOAD_SUSPECT &&
	    kl_http_get_closed_by_peer(client->http)) {
		/*
		 * Keylime's web server refuses a body above max_upload_size with a
		 * bare 400 and closes the connection without reading the body: the
		 * agent, still sending, sees the connection cut and never the 400.
		 * Once is a verifier restarting; twice in a row is the size.
		 */
		if (++client->large_cut >= 2)
			return kl_verifier_answer_set(
			    answer,
			    KL_VERIFIER_TOO_LARGE,
			    g_error_new(
				KL_ERROR,
				KL_ERROR_HTTP,
				"the verifier refused the evidence of %.1f MiB: it cut the "
				"connection before it answered, %u times in a row (%s): a "
				"verifier does so with a body over its max_upload_size "
				"([verifier] max_upload_size in verifier.conf, 100 MiB by "
				"default); raise it on the verifier, or shorten the IMA log "
				"(a reboot starts a new one)",
				(gdouble)answer->sent_bytes / (1024.0 * 1024.0),
				client->large_cut,
				error->message));
		g_prefix_error(&error,
			       "evidence of %.1f MiB: ",
			       (gdouble)answer->sent_bytes / (1024.0 * 1024.0));
		return kl_verifier_answer_no_response(answer, g_steal_pointer(&error));
	}
	client->large_cut = 0;
	if (response == NULL)
		return kl_verifier_answer_no_response(answer, g_steal_pointer(&error));
	kl_verifier_answer_received(answer, response);
	switch (response->status) {
	case 202:
		break;
	case 401:
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_UNAUTHORIZED, kl_verifier_status_error(response, what));
	case 403: {
		const gchar *answer_text = kl_http_response_get_body(response, NULL);

		if (strstr(answer_text, "old_attestation") != NULL ||
		    strstr(answer_text, "challenges_expired") != NULL ||
		    strstr(answer_text, "evidence_immutable") != NULL)
			return kl_verifier_answer_set(answer,
						      KL_VERIFIER_ROUND_OVER,
						      kl_verifier_status_error(response, what));
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_FAILED, kl_verifier_status_error(response, what));
	}
	case 400:
	case 413:
		/*
		 * Keylime's web server refuses a body above the verifier's
		 * max_upload_size before reading it: 400 without a body (tornado), or
		 * 413 behind a proxy
		 */
		if (response->status == 400 && (g_bytes_get_size(response->body) > 0 ||
						answer->sent_bytes < KL_VERIFIER_UPLOAD_SUSPECT))
			return kl_verifier_answer_set(
			    answer, KL_VERIFIER_FAILED, kl_verifier_status_error(response, what));
		return kl_verifier_answer_set(
		    answer,
		    KL_VERIFIER_TOO_LARGE,
		    g_error_new(KL_ERROR,
				KL_ERROR_HTTP,
				"the verifier refused the evidence of %.1f MiB as too large "
				"(HTTP %u%s): it accepts at most max_upload_size bytes "
				"([verifier] max_upload_size in verifier.conf, 100 MiB by "
				"default); raise it on the verifier, or shorten the IMA log "
				"(a reboot starts a new one)",
				(gdouble)answer->sent_bytes / (1024.0 * 1024.0),
				response->status,
				response->status == 400 ? " without a body" : ""));
	default:
		return kl_verifier_answer_set(
		    answer, KL_VERIFIER_FAILED, kl_verifier_status_error(response, what));
	}
	text = kl_http_response_get_body(response, &len);
	if (response->truncated || len > KL_VERIFIER_ECHO_BYTES) {
		/*
		 * the evidence echoed back (Keylime does): only meta, at the end, is
		 * of use; reading the whole answer for it cost more than the request
		 */
		g_debug("the verifier's answer to the evidence has %" G_GUINT64_FORMAT
			" bytes; read its end only",
			response->body_total);
		given = kl_verifier_scan_seconds_to_next(text, len, &seconds);
	} else {
		given = kl_verifier_parse_seconds_to_next(text, len, &seconds);
	}
	answer->seconds_to_next = given ? MAX(seconds, 0) : -1;
	return kl_verifier_answer_set(answer, KL_VERIFIER_OK, NULL);
}

/* ---- bodies ---- */

static gchar *
kl_verifier_document_to_string(JsonObject *data, gsize *len)
{
	g_autoptr(JsonObject) root = json_object_new();

	json_object_set_object_member(root, "data", json_object_ref(data));
	return kl_json_object_to_string(root, len);
}

static JsonObject *
kl_verifier_pop_method(void)
{
	JsonObject *method = json_object_new();

	json_object_set_string_member(method, "authentication_class", "pop");
	json_object_set_string_member(method, "authentication_type", "tpm_pop");
	return method;
}

gchar *
kl_verifier_build_session_request(const gchar *agent_id, gsize *len)
{
	g_autoptr(JsonObject) data = json_object_new();
	JsonObject *attributes = json_object_new();
	JsonArray *supported = json_array_new();

	json_array_add_object_element(supported, kl_verifier_pop_method());
	json_object_set_string_member(attributes, "agent_id", agent_id);
	json_object_set_array_member(attributes, "authentication_supported", supported);
	json_object_set_string_member(data, "type", "session");
	json_object_set_object_member(data, "attributes", attributes);
	return kl_verifier_document_to_string(data, len);
}

gchar *
kl_verifier_build_session_proof(
    const gchar *session_id, const gchar *agent_id, GBytes *attest, GBytes *signature, gsize *len)
{
	g_autoptr(JsonObject) data = json_object_new();
	JsonObject *attributes = json_object_new();
	JsonArray *provided = json_array_new();
	JsonObject *method = kl_verifier_pop_method();
	JsonObject *proof = json_object_new();
	gsize size = 0;
	gconstpointer ptr;

	g_autofree gchar *message_b64 = NULL;
	g_autofree gchar *signature_b64 = NULL;

	ptr = g_bytes_get_data(attest, &size);
	message_b64 = g_base64_encode(ptr, size);
	ptr = g_bytes_get_data(signature, &size);
	signature_b64 = g_base64_encode(ptr, size);
	json_object_set_string_member(proof, "message", message_b64);
	json_object_set_string_member(proof, "signature", signature_b64);
	json_object_set_object_member(method, "data", proof);
	json_array_add_object_element(provided, method);
	json_object_set_string_member(attributes, "agent_id", agent_id);
	json_object_set_array_member(attributes, "authentication_provided", provided);
	json_object_set_string_member(data, "type", "session");
	json_object_set_string_member(data, "id", session_id);
	json_object_set_object_member(data, "attributes", attributes);
	return kl_verifier_document_to_string(data, len);
}

gchar *
kl_verifier_build_capabilities(GPtrArray *evidence_supported, const gchar *boot_time, gsize *len)
{
	g_autoptr(JsonObject) data = json_object_new();
	JsonObject *attributes = json_object_new();
	JsonArray *supported = json_array_new();
	JsonObject *system_info = json_object_new();

	for (guint i = 0; i < evidence_supported->len; i++)
		json_array_add_object_element(
		    supported, json_object_ref(g_ptr_array_index(evidence_supported, i)));
	json_object_set_array_member(attributes, "evidence_supported", supported);
	json_object_set_string_member(system_info, "boot_time", boot_time);
	json_object_set_object_member(attributes, "system_info", system_info);
	json_object_set_string_member(data, "type", "attestation");
	json_object_set_object_member(data, "attributes", attributes);
	return kl_verifier_document_to_string(data, len);
}

void
kl_verifier_build_evidence(GPtrArray *evidence_collected, KlJsonBody *body)
{
	/*
	 * {"data":{"type":"attestation","attributes":{"evidence_collected":[...]}}}:
	 * the envelopes are written as text (each entry's head is its plugin's,
	 * written once), only the plugins' data are trees
	 */
	kl_json_body_append_raw(
	    body, "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_collected\":[");
	for (guint i = 0; i < evidence_collected->len; i++) {
		KlEvidenceEntry *entry = g_ptr_array_index(evidence_collected, i);

		if (i > 0)
			kl_json_body_append_raw(body, ",");
		kl_json_body_append_raw(body, entry->head);
		kl_json_body_append_object_attached(body, entry->data, entry->attachments);
		kl_json_body_append_raw(body, "}");
	}
	kl_json_body_append_raw(body, "]}}}");
	kl_json_body_finish(body);
}

/* ---- answers ---- */

/*
 * The answers are read with the token reader of kl-json-doc.h: the whole
 * document is checked as strictly as kl_json_parse_object() does, and only
 * the chosen_parameters handed to a plugin become json-glib objects.
 */
static KlJsonDoc *
kl_verifier_parse_attributes(
    const gchar *body, gsize len, guint *data_out, guint *attributes_out, GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	guint data;
	guint attributes;

	doc = kl_json_doc_parse(body, len, error);
	if (doc == NULL)
		return NULL;
	data = kl_json_doc_get_object_member(doc, 0, "data", error);
	if (data == KL_JSON_DOC_ABSENT)
		return NULL;
	attributes = kl_json_doc_get_object_member(doc, data, "attributes", error);
	if (attributes == KL_JSON_DOC_ABSENT)
		return NULL;
	if (data_out != NULL)
		*data_out = data;
	*attributes_out = attributes;
	return g_steal_pointer(&doc);
}

static gboolean
kl_verifier_parse_session_challenge_inner(
    const gchar *body, gsize len, gchar **session_id, GBytes **challenge, GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	g_autoptr(GBytes) nonce = NULL;
	guint data = 0;
	guint attributes = 0;
	guint requested;
	guint method;
	const gchar *id;

	doc = kl_verifier_parse_attributes(body, len, &data, &attributes, error);
	if (doc == NULL)
		return FALSE;
	id = kl_json_doc_get_string_member(doc, data, "id", error);
	if (id == NULL)
		return FALSE;
	requested =
	    kl_json_doc_get_array_member(doc, attributes, "authentication_requested", error);
	if (requested == KL_JSON_DOC_ABSENT)
		return FALSE;
	for (method = kl_json_doc_first(doc, requested);
	     method != KL_JSON_DOC_ABSENT && method < kl_json_doc_next(doc, requested) &&
	     nonce == NULL;
	     method = kl_json_doc_next(doc, method)) {
		const gchar *type = NULL;
		const gchar *text;
		guint params;

		if (kl_json_doc_get_type(doc, method) != KL_JSON_DOC_OBJECT)
			continue;
		if (!kl_json_doc_get_optional_string_member(
			doc, method, "authentication_type", &type, error))
			return FALSE;
		if (g_strcmp0(type, "tpm_pop") != 0)
			continue;
		params = kl_json_doc_get_object_member(doc, method, "chosen_parameters", error);
		if (params == KL_JSON_DOC_ABSENT)
			return FALSE;
		text = kl_json_doc_get_string_member(doc, params, "challenge", error);
		if (text == NULL)
			return FALSE;
		nonce = kl_base64_decode_strict(text, error);
		if (nonce == NULL) {
			g_prefix_error(error, "member \"challenge\": ");
			return FALSE;
		}
	}
	if (nonce == NULL) {
		g_set_error_literal(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "the verifier requested no tpm_pop authentication");
		return FALSE;
	}
	if (g_bytes_get_size(nonce) == 0 || g_bytes_get_size(nonce) > 64) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "tpm_pop challenge of %" G_GSIZE_FORMAT " bytes (expected 1..64)",
			    g_bytes_get_size(nonce));
		return FALSE;
	}
	*session_id = g_strdup(id);
	*challenge = g_steal_pointer(&nonce);
	return TRUE;
}

gboolean
kl_verifier_parse_session_challenge(
    const gchar *body, gsize len, gchar **session_id, GBytes **challenge, GError **error)
{
	if (!kl_verifier_parse_session_challenge_inner(body, len, session_id, challenge, error)) {
		g_prefix_error(error, "session answer: ");
		return FALSE;
	}
	return TRUE;
}

void
kl_verifier_session_clear(KlVerifierSession *session)
{
	if (session->token != NULL) {
		memset(session->token, 0, strlen(session->token));
		g_clear_pointer(&session->token, g_free);
	}
	g_clear_pointer(&session->evaluation, g_free);
	session->pass = FALSE;
	session->token_expires_at = 0;
}

gint64
kl_parse_timestamp(const gchar *text)
{
	g_autoptr(GDateTime) dt = NULL;

	if (text == NULL)
		return -1;
	dt = g_date_time_new_from_iso8601(text, NULL);
	if (dt == NULL)
		return -1;
	return g_date_time_to_unix(dt);
}

gboolean
kl_verifier_parse_session_result(const gchar *body,
				 gsize len,
				 KlVerifierSession *session,
				 GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	guint attributes = 0;
	const gchar *evaluation = NULL;
	const gchar *token = NULL;
	const gchar *expires = NULL;

	memset(session, 0, sizeof(*session));
	doc = kl_verifier_parse_attributes(body, len, NULL, &attributes, error);
	if (doc == NULL ||
	    !kl_json_doc_get_optional_string_member(
		doc, attributes, "evaluation", &evaluation, error) ||
	    !kl_json_doc_get_optional_string_member(doc, attributes, "token", &token, error) ||
	    !kl_json_doc_get_optional_string_member(
		doc, attributes, "token_expires_at", &expires, error)) {
		g_prefix_error(error, "session answer: ");
		return FALSE;
	}
	session->evaluation = g_strdup(evaluation);
	session->pass = g_strcmp0(evaluation, "pass") == 0 && token != NULL && token[0] != '\0';
	if (session->pass) {
		/* the token goes into an HTTP header: refuse anything odd */
		for (const gchar *p = token; *p != '\0'; p++) {
			if ((guchar)*p <= 0x20 || (guchar)*p >= 0x7f) {
				kl_verifier_session_clear(session);
				g_set_error_literal(error,
						    KL_ERROR,
						    KL_ERROR_INVALID_DATA,
						    "session answer: the token contains characters "
						    "not allowed in an HTTP header");
				return FALSE;
			}
		}
		session->token = g_strdup(token);
	}
	if (expires != NULL) {
		gint64 t = kl_parse_timestamp(expires);
		session->token_expires_at = t > 0 ? t : 0;
	}
	return TRUE;
}

static KlEvidenceRequest *
kl_verifier_parse_requested_item(
    KlJsonDoc *doc, guint request, const gchar *body, KlJsonObjectMemo *memo, GError **error)
{
	g_autoptr(JsonObject) params = NULL;
	const gchar *evidence_class;
	const gchar *evidence_type;
	guint member;

	if (kl_json_doc_get_type(doc, request) != KL_JSON_DOC_OBJECT) {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_INVALID_DATA, "not an object");
		return NULL;
	}
	evidence_class = kl_json_doc_get_string_member(doc, request, "evidence_class", error);
	if (evidence_class == NULL)
		return NULL;
	evidence_type = kl_json_doc_get_string_member(doc, request, "evidence_type", error);
	if (evidence_type == NULL)
		return NULL;
	member = kl_json_doc_get_member(doc, request, "chosen_parameters");
	if (member != KL_JSON_DOC_ABSENT && kl_json_doc_get_type(doc, member) != KL_JSON_DOC_NULL) {
		if (kl_json_doc_get_type(doc, member) != KL_JSON_DOC_OBJECT) {
			/* the error of the checked getter */
			kl_json_doc_get_object_member(doc, request, "chosen_parameters", error);
			return NULL;
		}
		/* sealed; what is byte-identical to the previous answer is not built again */
		params = kl_json_object_memo_build(memo, doc, member, body);
	}
	/* plugins get read-only parameters (sealed) */
	return kl_evidence_request_new(evidence_class, evidence_type, params);
}

GPtrArray *
kl_verifier_parse_evidence_requested(const gchar *body, gsize len, GError **error)
{
	return kl_verifier_parse_evidence_requested_memo(body, len, NULL, error);
}

GPtrArray *
kl_verifier_parse_evidence_requested_memo(const gchar *body,
					  gsize len,
					  GPtrArray *memos,
					  GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	g_autoptr(GPtrArray) items = NULL;
	guint attributes = 0;
	guint requested;
	guint item;
	guint i = 0;

	doc = kl_verifier_parse_attributes(body, len, NULL, &attributes, error);
	if (doc == NULL) {
		g_prefix_error(error, "attestation answer: ");
		return NULL;
	}
	requested = kl_json_doc_get_array_member(doc, attributes, "evidence_requested", error);
	if (requested == KL_JSON_DOC_ABSENT) {
		g_prefix_error(error, "attestation answer: ");
		return NULL;
	}
	/* each item is a TPM command or a log read: the verifier does not get to ask for 10⁶ */
	if (kl_json_doc_get_length(doc, requested) > KL_VERIFIER_MAX_REQUESTED) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "attestation answer: evidence_requested has %u items (at most %d "
			    "accepted: one per evidence type)",
			    kl_json_doc_get_length(doc, requested),
			    KL_VERIFIER_MAX_REQUESTED);
		return NULL;
	}
	items = g_ptr_array_new_full(kl_json_doc_get_length(doc, requested),
				     (GDestroyNotify)kl_evidence_request_free);
	for (item = kl_json_doc_first(doc, requested);
	     item != KL_JSON_DOC_ABSENT && i < kl_json_doc_get_length(doc, requested);
	     item = kl_json_doc_next(doc, item), i++) {
		KlJsonObjectMemo *memo = NULL;
		KlEvidenceRequest *request;

		if (memos != NULL) {
			while (memos->len <= i)
				g_ptr_array_add(memos, kl_json_object_memo_new());
			memo = g_ptr_array_index(memos, i);
		}
		request = kl_verifier_parse_requested_item(doc, item, body, memo, error);
		if (request == NULL) {
			g_prefix_error(error, "attestation answer: evidence_requested[%u]: ", i);
			return NULL;
		}
		g_ptr_array_add(items, request);
	}
	return g_steal_pointer(&items);
}

gboolean
kl_verifier_scan_seconds_to_next(const gchar *tail, gsize len, gint64 *seconds)
{
	static const gchar key[] = "\"seconds_to_next_attestation\"";
	const gchar *found = NULL;
	const gchar *end = tail + len;
	const gchar *p;
	gchar digits[32];
	gsize n = 0;
	gdouble d;
	gchar *stop = NULL;

	/* the last occurrence: meta comes last, so search from the end */
	for (p = end; p > tail && found == NULL;) {
		p--;
		if (*p == '"' && (gsize)(end - p) >= sizeof(key) - 1 &&
		    memcmp(p, key, sizeof(key) - 1) == 0)
			found = p;
	}
	if (found == NULL)
		return FALSE;
	p = found + sizeof(key) - 1;
	while (p < end && g_ascii_isspace(*p))
		p++;
	if (p >= end || *p != ':')
		return FALSE;
	p++;
	while (p < end && g_ascii_isspace(*p))
		p++;
	while (
	    p < end && n < sizeof(digits) - 1 &&
	    (g_ascii_isdigit(*p) || *p == '-' || *p == '.' || *p == 'e' || *p == 'E' || *p == '+'))
		digits[n++] = *p++;
	digits[n] = '\0';
	if (n == 0)
		return FALSE;
	d = g_ascii_strtod(digits, &stop);
	if (stop == NULL || *stop != '\0' || !(d >= -1e15 && d <= 1e15))
		return FALSE;
	*seconds = (gint64)(d + (d >= 0 ? 0.5 : -0.5));
	return TRUE;
}

gboolean
kl_verifier_parse_seconds_to_next(const gchar *body, gsize len, gint64 *seconds)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	guint meta;
	guint member;

	doc = kl_json_doc_parse(body, len, NULL);
	if (doc == NULL)
		return FALSE;
	meta = kl_json_doc_get_member(doc, 0, "meta");
	if (kl_json_doc_get_type(doc, meta) != KL_JSON_DOC_OBJECT)
		return FALSE;
	member = kl_json_doc_get_member(doc, meta, "seconds_to_next_attestation");
	switch (kl_json_doc_get_type(doc, member)) {
	case KL_JSON_DOC_INT:
		*seconds = kl_json_doc_get_int(doc, member);
		return TRUE;
	case KL_JSON_DOC_DOUBLE: {
		gdouble d = kl_json_doc_get_double(doc, member);
		if (!(d >= -1e15 && d <= 1e15)) /* also rejects NaN */
			return FALSE;
		*seconds = (gint64)(d + 0.5);
		return TRUE;
	}
	default:
		return FALSE;
	}
}

gchar *
kl_verifier_describe_errors(const gchar *body, gsize len)
{
	g_autoptr(JsonObject) root = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GString) text = g_string_new(NULL);
	JsonNode *node;
	JsonArray *errors;

	if (body == NULL || len == 0 || len > G_MAXSSIZE)
		return NULL;
	root = kl_json_parse_object(body, (gssize)len, &error_local);
	if (root == NULL || !json_object_has_member(root, "errors"))
		return NULL;
	node = json_object_get_member(root, "errors");
	if (!JSON_NODE_HOLDS_ARRAY(node))
		return NULL;
	errors = json_node_get_array(node);
	for (guint i = 0; i < json_array_get_length(errors) && i < 16; i++) {
		JsonNode *element = json_array_get_element(errors, i);
		JsonObject *err;
		const gchar *detail = NULL;
		const gchar *code = NULL;
		const gchar *title = NULL;

		if (!JSON_NODE_HOLDS_OBJECT(element))
			continue;
		err = json_node_get_object(element);
		if (!kl_json_object_get_optional_string(err, "detail", &detail, NULL))
			detail = NULL;
		if (!kl_json_object_get_optional_string(err, "code", &code, NULL))
			code = NULL;
		if (!kl_json_object_get_optional_string(err, "title", &title, NULL))
			title = NULL;
		if (detail == NULL)
			detail = title;
		if (detail == NULL && code == NULL)
			continue;
		if (text->len > 0)
			g_string_append(text, "; ");
		if (code != NULL && detail != NULL)
			g_string_append_printf(text, "%s (%s)", detail, code);
		else
			g_string_append(text, detail != NULL ? detail : code);
	}
	if (text->len == 0)
		return NULL;
	/* keep log lines bounded and printable */
	if (text->len > 2048)
		g_string_truncate(text, 2048);
	for (gsize i = 0; i < text->len; i++)
		if ((guchar)text->str[i] < 0x20)
			text->str[i] = ' ';
	return g_string_free(g_steal_pointer(&text), FALSE);
}

gboolean
kl_read_boot_time(const gchar *proc_stat_path, gint64 *btime, GError **error)
{
	g_autofree gchar *contents = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents(proc_stat_path, &contents, NULL, error)) {
		g_prefix_error(error, "cannot read the boot time: ");
		return FALSE;
	}
	lines = g_strsplit(contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		guint64 value = 0;
		if (!g_str_has_prefix(lines[i], "btime "))
			continue;
		if (!g_ascii_string_to_unsigned(g_strstrip(lines[i] + 6),
						10,
						1,
						G_MAXINT32 * G_GUINT64_CONSTANT(4),
						&value,
						error)) {
			g_prefix_error(error, "%s: bad btime line: ", proc_stat_path);
			return FALSE;
		}
		*btime = (gint64)value;
		return TRUE;
	}
	g_set_error(error, KL_ERROR, KL_ERROR_NOT_FOUND, "%s has no btime line", proc_stat_path);
	return FALSE;
}

gchar *
kl_format_boot_time(gint64 btime)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(btime);

	if (dt == NULL)
		return g_strdup("1970-01-01T00:00:00Z");
	return g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
}
