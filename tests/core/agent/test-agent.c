/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The attestation state machine against a scripted fake registrar + verifier
 * (injected transport), a fake TPM/plugin source and a fake clock.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-agent.h"
#include "kl-http.h"
#include "kl-log.h"

#define AGENT_ID   "d432fbb3-d2f1-4a97-9ef7-75bd81c00002"
#define SESSION_ID "0024f423-c785-4683-9c2b-3ff2b27e3631"
#define TOKEN	   SESSION_ID ".yZa6oMA61ywSLUArUbaaMQ8lbSjY_oXGKeKrKgYIyPY"
#define SECRET	   "abcdefghijklmnopqrstuvwxyz012345"
#define REGISTRAR  "http://127.0.0.1:8890"
#define VERIFIER   "https://127.0.0.1:8881"
#define ATT_PATH   "/v3.0/agents/" AGENT_ID "/attestations"
/* 2026-11-23T14:33:00Z, between session creation and token expiry of the fixture */
#define FIXTURE_NOW_US (G_GINT64_CONSTANT(1795444380) * G_USEC_PER_SEC)

typedef struct {
	gchar *method;
	gchar *path; /* substring of the URL */
	guint status;
	gchar *body; /* file name in tests/data/verifier, or literal JSON when it starts with '{' */
	gchar *location;
	gint64 retry_after;
	guint took_ms; /* the fake clock moves by this much while the request runs */
} ScriptEntry;

typedef struct _Fixture {
	GMainLoop *loop;
	KlHttp *registrar_http;
	KlHttp *verifier_http;
	KlRegistrarClient *registrar;
	KlVerifierClient *verifier;
	KlAgent *agent;
	GMutex lock;
	GPtrArray *requests; /* "METHOD url" */
	GPtrArray *bodies;   /* request bodies (same index) */
	GPtrArray *auth;     /* Authorization header or "" */
	GPtrArray *request_ids;
	GQueue script;	      /* ScriptEntry* */
	GArray *delays;	      /* guint64 ms asked for by the agent */
	GArray *delay_states; /* KlAgentState when each delay was asked for */
	gboolean enrolled;
	gboolean collect_fails;
	gint collects;		/* calls of fake_collect (atomic: the worker thread counts) */
	guint contribute_fails; /* the registration contribution fails this many times */
	gint exit_status;
	guint stop_after; /* kl_agent_stop() once this many attestations were accepted */
	gint64 now_us;
	gchar *default_location;
	gboolean real_delays;
	guint slow_ms;		/* the fake peers take this long to answer */
	gboolean advance_clock; /* the fake clock moves by every delay the agent asks for */
	guint splay_percent;
	guint jitter_percent;
	guint32 seed;		 /* 0: 42 */
	gint64 interval_s;	 /* 0: 45 */
	KlStatus *status;	 /* attached to the agent when set */
	GArray *delay_times;	 /* gint64 fake clock (µs) when each delay was asked for */
	GArray *request_times;	 /* gint64 fake clock (µs) of each request (same index) */
	GArray *request_waits;	 /* guint: waits the agent had asked for before each request */
	gboolean stop_in_phase1; /* the next phase-1 answer comes after kl_agent_stop() */
	/* the capabilities' entries (JsonObject*), the same objects at every cycle; NULL: new ones
	 */
	GPtrArray *caps;
	void (*caps_change)(struct _Fixture *f); /* once, after the first attestation */
	/* the verifier does not answer (connection refused) while the fake clock is in [down, up)
	 */
	gint64 verifier_down_us;
	gint64 verifier_up_us;
	gint64 stop_at_us; /* kl_agent_stop() at the first wait at or after this fake time */
	gchar *answer_202; /* the verifier's answer to the evidence (NULL: the fixture file) */
} Fixture;

static void
script_entry_free(ScriptEntry *entry)
{
	g_free(entry->method);
	g_free(entry->path);
	g_free(entry->body);
	g_free(entry->location);
	g_free(entry);
}

static void
fixture_script(Fixture *f,
	       const gchar *method,
	       const gchar *path,
	       guint status,
	       const gchar *body,
	       const gchar *location,
	       gint64 retry_after)
{
	ScriptEntry *entry = g_new0(ScriptEntry, 1);

	entry->method = g_strdup(method);
	entry->path = g_strdup(path);
	entry->status = status;
	entry->body = g_strdup(body);
	entry->location = g_strdup(location);
	entry->retry_after = retry_after;
	g_queue_push_tail(&f->script, entry);
}

/* the peer does not answer this request: connection refused after @took_ms (fake clock) */
static void
fixture_script_unreachable(Fixture *f, const gchar *method, const gchar *path, guint took_ms)
{
	fixture_script(f, method, path, 0, NULL, NULL, -1);
	((ScriptEntry *)g_queue_peek_tail(&f->script))->took_ms = took_ms;
}

static gchar *
load_fixture(const gchar *name)
{
	g_autofree gchar *path = NULL;
	gchar *contents = NULL;

	if (name == NULL)
		return g_strdup("");
	if (name[0] == '{' || name[0] == '\0' || name[0] == '<')
		return g_strdup(name);
	path = g_test_build_filename(G_TEST_DIST, "data", "verifier", name, NULL);
	g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
	return contents;
}

static const gchar *
find_header(const gchar *const *headers, const gchar *name)
{
	gsize n = strlen(name);

	for (guint i = 0; headers[i] != NULL; i++)
		if (g_ascii_strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
			return headers[i] + n + 2;
	return NULL;
}

static KlHttpResponse *
respond(guint status, const gchar *fixture, const gchar *location, gint64 retry_after)
{
	g_autofree gchar *body = load_fixture(fixture);
	KlHttpResponse *response = kl_http_response_new(status, body);

	response->location = g_strdup(location);
	response->retry_after_s = retry_after;
	response->content_type = g_strdup("application/json");
	return response;
}

static KlHttpResponse *
fake_peer(Fixture *f,
	  const gchar *method,
	  const gchar *url,
	  const gchar *const *headers,
	  const gchar *body,
	  gsize body_len)
{
	const gchar *authorization = find_header(headers, "Authorization");
	const gchar *content_type = find_header(headers, "Content-Type");
	gboolean authorized = g_strcmp0(authorization, "Bearer " TOKEN) == 0;

	/* scripted answers first */
	for (GList *l = f->script.head; l != NULL; l = l->next) {
		ScriptEntry *entry = l->data;
		if (g_strcmp0(entry->method, method) == 0 && strstr(url, entry->path) != NULL) {
			KlHttpResponse *response = respond(
			    entry->status,
			    entry->body,
			    entry->location,
			    entry->status == 0 ? (gint64)entry->took_ms : entry->retry_after);
			g_queue_delete_link(&f->script, l);
			script_entry_free(entry);
			return response;
		}
	}

	/* the registrar */
	if (g_str_has_prefix(url, REGISTRAR)) {
		const gchar *path = url + strlen(REGISTRAR);
		g_assert_null(authorization); /* never a token to the registrar */
		if (g_strcmp0(method, "GET") == 0 && g_strcmp0(path, "/version") == 0)
			return respond(200, "registrar-version-200.json", NULL, -1);
		if (g_strcmp0(method, "GET") == 0 && g_strcmp0(path, "/v3.0/") == 0)
			return respond(500, "", NULL, -1);
		g_assert_cmpstr(content_type, ==, "application/json");
		if (g_strcmp0(method, "POST") == 0 &&
		    g_strcmp0(path, "/v2.6/agents/" AGENT_ID) == 0) {
			g_autoptr(JsonObject) req =
			    kl_json_parse_object(body, (gssize)body_len, NULL);
			g_assert_nonnull(req);
			g_assert_cmpstr(
			    json_object_get_string_member(req, "ek_tpm"), ==, "RUtQVUI=");
			g_assert_cmpstr(
			    json_object_get_string_member(req, "aik_tpm"), ==, "QUtQVUI=");
			g_assert_cmpstr(
			    json_object_get_string_member(req, "ekcert"), ==, "RUtDRVJU");
			g_assert_cmpstr(json_object_get_string_member(req, "ip"), ==, "127.0.0.1");
			g_assert_cmpint(json_object_get_int_member(req, "port"), ==, 9002);
			g_assert_cmpstr(
			    json_object_get_string_member(req, "plugin_field"), ==, "x");
			/* "BLOB" */
			return respond(
			    200, "{\"code\":200,\"results\":{\"blob\":\"QkxPQg==\"}}", NULL, -1);
		}
		if (g_strcmp0(method, "PUT") == 0 &&
		    g_strcmp0(path, "/v2.6/agents/" AGENT_ID) == 0) {
			g_autoptr(GBytes) secret = g_bytes_new_static(SECRET, strlen(SECRET));
			g_autofree gchar *tag = kl_registrar_compute_auth_tag(secret, AGENT_ID);
			g_autoptr(JsonObject) req =
			    kl_json_parse_object(body, (gssize)body_len, NULL);
			if (g_strcmp0(json_object_get_string_member(req, "auth_tag"), tag) != 0)
				return respond(400, "{\"code\":400}", NULL, -1);
			return respond(200, "{\"code\":200,\"results\":{}}", NULL, -1);
		}
		return respond(404, "", NULL, -1);
	}

	/* the verifier */
	g_assert_true(g_str_has_prefix(url, VERIFIER));
	if (body != NULL)
		g_assert_cmpstr(content_type, ==, "application/vnd.api+json");
	if (g_str_has_suffix(url, "/v3.0/sessions") && g_strcmp0(method, "POST") == 0) {
		g_assert_null(authorization);
		return respond(200, "session-challenge-200.json", NULL, -1);
	}
	if (g_str_has_suffix(url, "/v3.0/sessions/" SESSION_ID) &&
	    g_strcmp0(method, "PATCH") == 0) {
		g_autoptr(JsonObject) req = kl_json_parse_object(body, (gssize)body_len, NULL);
		JsonObject *data = json_object_get_object_member(req, "data");
		JsonObject *attrs = json_object_get_object_member(data, "attributes");
		JsonArray *provided =
		    json_object_get_array_member(attrs, "authentication_provided");
		JsonObject *pop = json_array_get_object_element(provided, 0);
		JsonObject *proof = json_object_get_object_member(pop, "data");
		g_assert_cmpstr(json_object_get_string_member(attrs, "agent_id"), ==, AGENT_ID);
		g_assert_cmpstr(json_object_get_string_member(proof, "message"), ==, "QVRURVNU");
		g_assert_cmpstr(json_object_get_string_member(proof, "signature"), ==, "U0lH");
		return respond(
		    200, f->enrolled ? "session-pass-200.json" : "session-fail-200.json", NULL, -1);
	}
	if (g_str_has_suffix(url, ATT_PATH) && g_strcmp0(method, "POST") == 0) {
		g_autoptr(JsonObject) req = kl_json_parse_object(body, (gssize)body_len, NULL);
		JsonObject *attrs = json_object_get_object_member(
		    json_object_get_object_member(req, "data"), "attributes");
		JsonArray *supported = json_object_get_array_member(attrs, "evidence_supported");
		g_assert_cmpuint(json_array_get_length(supported), ==, 3);
		g_assert_cmpstr(
		    json_object_get_string_member(
			json_object_get_object_member(attrs, "system_info"), "boot_time"),
		    ==,
		    "2026-11-23T10:00:00Z");
		if (!authorized)
			return respond(401, "errors-401.json", NULL, -1);
		return respond(201, "attestation-201.json", f->default_location, -1);
	}
	if (strstr(url, "/agents/" AGENT_ID "/attestations/") != NULL &&
	    g_strcmp0(method, "PATCH") == 0) {
		g_autoptr(JsonObject) req = kl_json_parse_object(body, (gssize)body_len, NULL);
		JsonObject *attrs = json_object_get_object_member(
		    json_object_get_object_member(req, "data"), "attributes");
		JsonArray *collected = json_object_get_array_member(attrs, "evidence_collected");
		g_assert_cmpuint(json_array_get_length(collected), ==, 3);
		g_assert_cmpstr(json_object_get_string_member(
				    json_array_get_object_element(collected, 0), "evidence_type"),
				==,
				"tpm_quote");
		g_assert_cmpstr(json_object_get_string_member(
				    json_array_get_object_element(collected, 2), "evidence_type"),
				==,
				"ima_log");
		if (!authorized)
			return respond(401, "errors-401.json", NULL, -1);
		return respond(
		    202, f->answer_202 != NULL ? f->answer_202 : "attestation-202.json", NULL, -1);
	}
	return respond(404, "", NULL, -1);
}

static gboolean
stop_idle_cb(gpointer user_data)
{
	Fixture *f = user_data;
	kl_agent_stop(f->agent);
	return G_SOURCE_REMOVE;
}

static KlHttpResponse *
fake_transport(const gchar *method,
	       const gchar *url,
	       const gchar *const *headers,
	       const gchar *body,
	       gsize body_len,
	       gpointer user_data,
	       GCancellable *cancellable,
	       GError **error)
{
	Fixture *f = user_data;
	KlHttpResponse *response;
	const gchar *auth = find_header(headers, "Authorization");
	guint waits;

	if (f->slow_ms > 0)
		g_usleep(f->slow_ms * 1000);
	if (f->stop_in_phase1 && g_strcmp0(method, "POST") == 0 &&
	    g_str_has_suffix(url, ATT_PATH)) {
		/* SIGTERM while the verifier prepares its answer to phase 1 */
		gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

		f->stop_in_phase1 = FALSE;
		g_idle_add(stop_idle_cb, f);
		while (!g_cancellable_is_cancelled(cancellable) &&
		       g_get_monotonic_time() < deadline)
			g_usleep(1000);
		g_assert_true(g_cancellable_is_cancelled(cancellable));
	}
	g_mutex_lock(&f->lock);
	waits = f->delays->len;
	g_array_append_val(f->request_waits, waits);
	g_ptr_array_add(f->requests, g_strdup_printf("%s %s", method, url));
	g_ptr_array_add(f->bodies, g_strndup(body != NULL ? body : "", body_len));
	g_ptr_array_add(f->auth, g_strdup(auth != NULL ? auth : ""));
	g_ptr_array_add(f->request_ids, g_strdup(find_header(headers, "X-Request-ID")));
	g_array_append_val(f->request_times, f->now_us);
	if (g_str_has_prefix(url, VERIFIER) && f->now_us >= f->verifier_down_us &&
	    f->now_us < f->verifier_up_us) {
		g_mutex_unlock(&f->lock);
		g_set_error(error, KL_ERROR, KL_ERROR_NETWORK, "%s: Connection refused", url);
		return NULL;
	}
	response = fake_peer(f, method, url, headers, body, body_len);
	if (response->status == 0) {
		/* scripted: no answer */
		f->now_us += (gint64)response->retry_after_s * 1000;
		kl_http_response_free(response);
		g_mutex_unlock(&f->lock);
		g_set_error(error, KL_ERROR, KL_ERROR_NETWORK, "%s: Connection refused", url);
		return NULL;
	}
	g_mutex_unlock(&f->lock);
	return response;
}

/* ---- log capture (warnings are expected here, not fatal) ---- */

static GMutex log_lock;
static GPtrArray *log_lines;	 /* "LEVEL message" */
static GPtrArray *expected_logs; /* "LEVEL pattern" */

static const gchar *
level_name(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "ERROR";
	if (level & KL_LOG_LEVEL_FATAL)
		return "ERROR"; /* kl_error() */
	if (level & G_LOG_LEVEL_CRITICAL)
		return "CRITICAL";
	if (level & G_LOG_LEVEL_WARNING)
		return "WARNING";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "MESSAGE";
	if (level & G_LOG_LEVEL_INFO)
		return "INFO";
	return "DEBUG";
}

static void
capture_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	g_mutex_lock(&log_lock);
	g_ptr_array_add(log_lines, g_strdup_printf("%s %s", level_name(level), message));
	g_mutex_unlock(&log_lock);
	if (g_test_verbose())
		g_printerr("# %s: %s %s\n", domain, level_name(level), message);
}

/*
 * Structured lines (journal fields) bypass g_log_set_handler(): the writer
 * captures them too, with their fields as "KEY=value" lines in log_fields.
 */
static GPtrArray *log_fields; /* "KEY=value" of every kl-core structured line */

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
	const gchar *domain = NULL;
	const gchar *message = NULL;

	for (gsize i = 0; i < n_fields; i++) {
		if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
			domain = fields[i].value;
		else if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			message = fields[i].value;
	}
	if (g_strcmp0(domain, "kl-core") != 0 || message == NULL)
		return g_log_writer_default(level, fields, n_fields, data);
	g_mutex_lock(&log_lock);
	for (gsize i = 0; i < n_fields; i++) {
		if (g_str_has_prefix(fields[i].key, "KEYLIME_"))
			g_ptr_array_add(log_fields,
					g_strdup_printf("%s=%s %s",
							fields[i].key,
							(const gchar *)fields[i].value,
							message));
	}
	g_mutex_unlock(&log_lock);
	capture_log(domain, level, message, NULL);
	return G_LOG_WRITER_HANDLED;
}

/* a structured line with the journal field KEY=value whose message matches @pattern */
static gboolean
field_logged(const gchar *key_value, const gchar *pattern)
{
	g_autofree gchar *full = g_strdup_printf("%s %s", key_value, pattern);
	gboolean found = FALSE;

	g_mutex_lock(&log_lock);
	for (guint i = 0; i < log_fields->len && !found; i++)
		found = g_pattern_match_simple(full, g_ptr_array_index(log_fields, i));
	g_mutex_unlock(&log_lock);
	return found;
}

static guint
count_logged(const gchar *level, const gchar *pattern)
{
	g_autofree gchar *full = g_strdup_printf("%s %s", level, pattern);
	guint n = 0;

	g_mutex_lock(&log_lock);
	for (guint i = 0; i < log_lines->len; i++)
		if (g_pattern_match_simple(full, g_ptr_array_index(log_lines, i)))
			n++;
	g_mutex_unlock(&log_lock);
	return n;
}

static void
expect_log(const gchar *level, const gchar *pattern)
{
	g_ptr_array_add(expected_logs, g_strdup_printf("%s\t%s", level, pattern));
}

/* every expected line was logged, each exactly once */
static void
assert_expected_logs(void)
{
	for (guint i = 0; i < expected_logs->len; i++) {
		g_auto(GStrv) parts = g_strsplit(g_ptr_array_index(expected_logs, i), "\t", 2);
		guint n = count_logged(parts[0], parts[1]);
		if (n != 1)
			g_test_message(
			    "expected one %s log line matching '%s'", parts[0], parts[1]);
		g_assert_cmpuint(n, ==, 1);
	}
	g_ptr_array_set_size(expected_logs, 0);
}

/* ---- fake TPM + plugins ---- */

static GBytes *
fake_ek_public(gpointer data)
{
	static GBytes *bytes = NULL;
	if (g_once_init_enter(&bytes))
		g_once_init_leave(&bytes, g_bytes_new_static("EKPUB", 5));
	return bytes;
}

static GBytes *
fake_ek_cert(gpointer data)
{
	static GBytes *bytes = NULL;
	if (g_once_init_enter(&bytes))
		g_once_init_leave(&bytes, g_bytes_new_static("EKCERT", 6));
	return bytes;
}

static GBytes *
fake_ak_public(gpointer data)
{
	static GBytes *bytes = NULL;
	if (g_once_init_enter(&bytes))
		g_once_init_leave(&bytes, g_bytes_new_static("AKPUB", 5));
	return bytes;
}

static gboolean
fake_activate(gpointer data, GBytes *blob, GBytes **secret, GError **error)
{
	g_assert_cmpmem(g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), "BLOB", 4);
	*secret = g_bytes_new_static(SECRET, strlen(SECRET));
	return TRUE;
}

static gboolean
fake_certify(gpointer data, GBytes *challenge, GBytes **attest, GBytes **signature, GError **error)
{
	g_assert_cmpuint(g_bytes_get_size(challenge), ==, 16);
	*attest = g_bytes_new_static("ATTEST", 6);
	*signature = g_bytes_new_static("SIG", 3);
	return TRUE;
}

static gboolean
fake_contribute(gpointer data, JsonObject *body, GError **error)
{
	Fixture *f = data;

	if (f->contribute_fails > 0) {
		f->contribute_fails--;
		g_set_error_literal(error, KL_ERROR, KL_ERROR_TPM, "IAK: TPM busy");
		return FALSE;
	}
	json_object_set_string_member(body, "plugin_field", "x");
	return TRUE;
}

static JsonObject *
fake_entry(const gchar *evidence_class, const gchar *evidence_type, const gchar *member)
{
	JsonObject *entry = json_object_new();
	JsonObject *inner = json_object_new();

	json_object_set_string_member(entry, "evidence_class", evidence_class);
	json_object_set_string_member(entry, "evidence_type", evidence_type);
	json_object_set_object_member(entry, member, inner);
	return entry;
}

static GPtrArray *
fake_capabilities(gpointer data, GError **error)
{
	Fixture *f = data;
	GPtrArray *entries = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);

	if (f->caps != NULL) {
		g_mutex_lock(&f->lock);
		for (guint i = 0; i < f->caps->len; i++)
			g_ptr_array_add(entries, json_object_ref(g_ptr_array_index(f->caps, i)));
		g_mutex_unlock(&f->lock);
		return entries;
	}
	g_ptr_array_add(entries, fake_entry("certification", "tpm_quote", "capabilities"));
	g_ptr_array_add(entries, fake_entry("log", "uefi_log", "capabilities"));
	g_ptr_array_add(entries, fake_entry("log", "ima_log", "capabilities"));
	return entries;
}

/* like the agent's: only the types of fake_capabilities */
static gboolean
fake_resolve(gpointer data, KlEvidenceRequest *item, GError **error)
{
	const gchar *type = item->evidence_type;

	if (g_strcmp0(type, "tpm_quote") == 0 || g_strcmp0(type, "uefi_log") == 0 ||
	    g_strcmp0(type, "ima_log") == 0)
		return TRUE;
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "the verifier requested evidence type '%s', which no active plugin provides",
		    type);
	return FALSE;
}

static KlEvidenceEntry *
fake_collect(gpointer data,
	     KlEvidenceRequest *item,
	     GCancellable *cancellable,
	     KlEvidenceReport *report,
	     KlJsonBody *body,
	     GError **error)
{
	Fixture *f = data;
	const gchar *type = item->evidence_type;
	KlEvidenceEntry *entry;

	g_assert_true(json_object_is_immutable(item->chosen_parameters));
	g_atomic_int_inc(&f->collects);
	if (!fake_resolve(data, item, error))
		return NULL;
	if (f->collect_fails && g_strcmp0(type, "uefi_log") == 0) {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_IO, "uefi_log: log vanished");
		return NULL;
	}
	entry = kl_evidence_entry_new_for(item->evidence_class, type, json_object_new());
	if (g_strcmp0(type, "ima_log") == 0) {
		g_assert_cmpint(
		    json_object_get_int_member(item->chosen_parameters, "starting_offset"), ==, 0);
		/* reported, not in the data: the core never reads a plugin's data */
		report->summary = g_strdup("12 new entries");
		report->entry_count = 12;
	}
	return entry;
}

static const KlAgentSource fake_source = {
	.get_ek_public = fake_ek_public,
	.get_ek_cert = fake_ek_cert,
	.get_ak_public = fake_ak_public,
	.activate_credential = fake_activate,
	.certify_ak = fake_certify,
	.contribute_registration = fake_contribute,
	.get_capabilities = fake_capabilities,
	.resolve = fake_resolve,
	.collect = fake_collect,
};

/* ---- harness ---- */

static guint64
fake_delay(KlAgent *agent, guint64 delay_ms, gpointer user_data)
{
	Fixture *f = user_data;

	KlAgentState state = kl_agent_get_state(agent);

	g_mutex_lock(&f->lock);
	g_array_append_val(f->delays, delay_ms);
	g_array_append_val(f->delay_times, f->now_us);
	if (f->advance_clock)
		f->now_us += (gint64)delay_ms * 1000;
	g_array_append_val(f->delay_states, state);
	g_mutex_unlock(&f->lock);
	if (f->caps_change != NULL && kl_agent_get_attestation_count(agent) == 1) {
		g_mutex_lock(&f->lock);
		f->caps_change(f);
		f->caps_change = NULL;
		g_mutex_unlock(&f->lock);
	}
	if (f->stop_after > 0 && kl_agent_get_attestation_count(agent) >= f->stop_after)
		kl_agent_stop(agent);
	if (f->stop_at_us > 0 && f->now_us >= f->stop_at_us)
		kl_agent_stop(agent);
	return f->real_delays ? delay_ms : 0;
}

static gint64
fake_clock(gpointer user_data)
{
	Fixture *f = user_data;
	return f->now_us;
}

static void
done_cb(KlAgent *agent, gint exit_status, gpointer user_data)
{
	Fixture *f = user_data;

	f->exit_status = exit_status;
	g_main_loop_quit(f->loop);
}

static gboolean
timeout_cb(gpointer user_data)
{
	g_assert_not_reached();
	return G_SOURCE_REMOVE;
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	KlHttpOptions ropts = { .name = "registrar", .timeout_ms = 1000 };
	KlHttpOptions vopts = { .name = "verifier", .timeout_ms = 1000 };
	const gchar *versions[] = { "default", NULL };
	g_autoptr(GError) error = NULL;

	g_mutex_init(&f->lock);
	g_mutex_lock(&log_lock);
	g_ptr_array_set_size(log_lines, 0);
	g_mutex_unlock(&log_lock);
	g_ptr_array_set_size(expected_logs, 0);
	f->loop = g_main_loop_new(NULL, FALSE);
	f->requests = g_ptr_array_new_with_free_func(g_free);
	f->bodies = g_ptr_array_new_with_free_func(g_free);
	f->auth = g_ptr_array_new_with_free_func(g_free);
	f->request_ids = g_ptr_array_new_with_free_func(g_free);
	g_queue_init(&f->script);
	f->delays = g_array_new(FALSE, FALSE, sizeof(guint64));
	f->delay_states = g_array_new(FALSE, FALSE, sizeof(KlAgentState));
	f->delay_times = g_array_new(FALSE, FALSE, sizeof(gint64));
	f->request_times = g_array_new(FALSE, FALSE, sizeof(gint64));
	f->request_waits = g_array_new(FALSE, FALSE, sizeof(guint));
	f->enrolled = TRUE;
	f->exit_status = -1;
	f->now_us = FIXTURE_NOW_US;
	f->default_location = g_strdup(ATT_PATH "/0");
	f->registrar_http = kl_http_new(&ropts, &error);
	g_assert_no_error(error);
	f->verifier_http = kl_http_new(&vopts, &error);
	g_assert_no_error(error);
	kl_http_set_transport(f->registrar_http, fake_transport, f);
	kl_http_set_transport(f->verifier_http, fake_transport, f);
	f->registrar = kl_registrar_client_new(f->registrar_http, REGISTRAR, versions, &error);
	g_assert_no_error(error);
	f->verifier =
	    kl_verifier_client_new(f->verifier_http, VERIFIER, "v3.0", AGENT_ID, FALSE, &error);
	g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	kl_agent_free(f->agent);
	kl_verifier_client_free(f->verifier);
	kl_registrar_client_free(f->registrar);
	kl_http_free(f->verifier_http);
	kl_http_free(f->registrar_http);
	g_queue_clear_full(&f->script, (GDestroyNotify)script_entry_free);
	g_ptr_array_unref(f->requests);
	g_ptr_array_unref(f->bodies);
	g_ptr_array_unref(f->auth);
	g_ptr_array_unref(f->request_ids);
	g_array_unref(f->delays);
	g_array_unref(f->delay_states);
	g_array_unref(f->delay_times);
	g_array_unref(f->request_times);
	g_array_unref(f->request_waits);
	kl_status_free(f->status);
	g_main_loop_unref(f->loop);
	g_free(f->default_location);
	g_free(f->answer_202);
	g_clear_pointer(&f->caps, g_ptr_array_unref);
	g_mutex_clear(&f->lock);
}

static void
run_agent(Fixture *f, gboolean once, gint64 max_retries)
{
	KlAgentOptions options = {
		.agent_id = AGENT_ID,
		.contact_ip = "127.0.0.1",
		.contact_port = 9002,
		.boot_time = G_GINT64_CONSTANT(1795428000), /* 2026-11-23T10:00:00Z */
		.backoff_initial_ms = 1000,
		.backoff_max_ms = 600000,
		.backoff_max_retries = max_retries,
		.backoff_seed = f->seed != 0 ? f->seed : 42,
		/* not the built-in 60: a test fails if it is ignored */
		.attestation_interval_s = f->interval_s != 0 ? f->interval_s : 45,
		.once = once,
		.splay_percent = f->splay_percent,
		.jitter_percent = f->jitter_percent,
	};
	guint timeout;

	f->agent = kl_agent_new(&options, &fake_source, f, f->registrar, f->verifier);
	kl_agent_set_delay_func(f->agent, fake_delay, f);
	kl_agent_set_clock_func(f->agent, fake_clock, f);
	if (f->status != NULL)
		kl_agent_set_status(f->agent, f->status);
	kl_agent_start(f->agent, done_cb, f);
	timeout = g_timeout_add_seconds(20, timeout_cb, NULL);
	g_main_loop_run(f->loop);
	g_source_remove(timeout);
}

static guint
count_requests(Fixture *f, const gchar *prefix)
{
	guint n = 0;

	for (guint i = 0; i < f->requests->len; i++)
		if (g_str_has_prefix(g_ptr_array_index(f->requests, i), prefix))
			n++;
	return n;
}

static gint
find_request(Fixture *f, const gchar *prefix, guint from)
{
	for (guint i = from; i < f->requests->len; i++)
		if (g_str_has_prefix(g_ptr_array_index(f->requests, i), prefix))
			return (gint)i;
	return -1;
}

static guint64
delay_at(Fixture *f, guint i)
{
	g_assert_cmpuint(i, <, f->delays->len);
	return g_array_index(f->delays, guint64, i);
}

static KlAgentState
delay_state_at(Fixture *f, guint i)
{
	g_assert_cmpuint(i, <, f->delay_states->len);
	return g_array_index(f->delay_states, KlAgentState, i);
}

/* drops the agent of the last run_agent() and its requests and token, sets the clock */
static void
fixture_next_run(Fixture *f, gint64 now_us)
{
	kl_agent_free(f->agent);
	f->agent = NULL;
	g_ptr_array_set_size(f->requests, 0);
	g_array_set_size(f->request_times, 0);
	g_array_set_size(f->request_waits, 0);
	kl_http_set_bearer_token(f->verifier_http, NULL, NULL);
	f->now_us = now_us;
}

/* every wait between attestations, and nothing else, in order */
static GArray *
attestation_waits(Fixture *f)
{
	GArray *waits = g_array_new(FALSE, FALSE, sizeof(guint64));

	for (guint i = 0; i < f->delays->len; i++) {
		guint64 d = delay_at(f, i);
		if (delay_state_at(f, i) == KL_AGENT_STATE_NEGOTIATING)
			g_array_append_val(waits, d);
	}
	return waits;
}

/* the retry delays after failures (states *_FAILED) */
static GArray *
retry_delays(Fixture *f)
{
	GArray *retries = g_array_new(FALSE, FALSE, sizeof(guint64));

	for (guint i = 0; i < f->delays->len; i++) {
		guint64 d = delay_at(f, i);
		KlAgentState state = delay_state_at(f, i);
		if (state == KL_AGENT_STATE_ATTESTATION_FAILED ||
		    state == KL_AGENT_STATE_REGISTRATION_FAILED)
			g_array_append_val(retries, d);
	}
	return retries;
}

/*
 * Phase 2 follows phase 1 at once: no wait between a phase-1 request and the
 * evidence that answers it. Returns how many evidence submissions were checked.
 */
static guint
assert_phases_back_to_back(Fixture *f)
{
	guint checked = 0;

	for (guint i = 0; i < f->requests->len; i++) {
		const gchar *request = g_ptr_array_index(f->requests, i);
		gint phase1 = -1;

		if (!g_str_has_prefix(request, "PATCH ") ||
		    strstr(request, "/attestations/") == NULL)
			continue;
		for (guint j = i; j-- > 0 && phase1 < 0;) {
			const gchar *earlier = g_ptr_array_index(f->requests, j);
			if (g_str_has_prefix(earlier, "POST ") &&
			    g_str_has_suffix(earlier, "/attestations"))
				phase1 = (gint)j;
		}
		g_assert_cmpint(phase1, >=, 0);
		for (guint w = g_array_index(f->request_waits, guint, phase1);
		     w < g_array_index(f->request_waits, guint, i);
		     w++)
			g_assert_cmpuint(delay_at(f, w), ==, 0);
		checked++;
	}
	return checked;
}

/*
 * The lines of the log that match one of @patterns ("LEVEL message"
 * patterns), in the order they were logged, are exactly @expected
 */
static void
assert_log_sequence(const gchar *const *patterns, const gchar *const *expected)
{
	g_autoptr(GPtrArray) seen = g_ptr_array_new();

	g_mutex_lock(&log_lock);
	for (guint i = 0; i < log_lines->len; i++) {
		const gchar *line = g_ptr_array_index(log_lines, i);
		for (guint k = 0; patterns[k] != NULL; k++)
			if (g_pattern_match_simple(patterns[k], line)) {
				g_ptr_array_add(seen, (gpointer)line);
				break;
			}
	}
	for (guint i = 0; i < seen->len || expected[i] != NULL; i++) {
		g_assert_cmpuint(i, <, seen->len);
		g_assert_nonnull(expected[i]);
		if (!g_pattern_match_simple(expected[i], g_ptr_array_index(seen, i)))
			g_test_message("log line %u: '%s', expected '%s'",
				       i,
				       (const gchar *)g_ptr_array_index(seen, i),
				       expected[i]);
		g_assert_true(g_pattern_match_simple(expected[i], g_ptr_array_index(seen, i)));
	}
	g_mutex_unlock(&log_lock);
}

static void
record_status_line(KlStatus *status, gpointer user_data)
{
	GPtrArray *lines = user_data;

	g_ptr_array_add(lines, kl_status_format_line(status));
}

static gboolean
lines_match(GPtrArray *lines, const gchar *pattern)
{
	for (guint i = 0; i < lines->len; i++)
		if (g_pattern_match_simple(pattern, g_ptr_array_index(lines, i)))
			return TRUE;
	return FALSE;
}

static gchar *
read_text(const gchar *path)
{
	gchar *text = NULL;

	g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
	return text;
}

/* ---- tests ---- */

static void
test_once_happy_path(Fixture *f, gconstpointer data)
{
	const gchar *expected[] = {
		"GET " REGISTRAR "/version",
		/* no GET /v3.0/ probe: "default" does not enable 3.0 */
		"POST " REGISTRAR "/v2.6/agents/" AGENT_ID,
		"PUT " REGISTRAR "/v2.6/agents/" AGENT_ID,
		"POST " VERIFIER "/v3.0/sessions",
		"PATCH " VERIFIER "/v3.0/sessions/" SESSION_ID,
		"POST " VERIFIER ATT_PATH,
		"PATCH " VERIFIER ATT_PATH "/0",
	};
	g_autoptr(GHashTable) ids = g_hash_table_new(g_str_hash, g_str_equal);

	expect_log("INFO", "*registered and activated*");
	expect_log("INFO",
		   "attestation 1 submitted: tpm_quote, uefi_log, ima_log (12 new "
		   "entries) in * ms; next in 2 s");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	/* the journal fields of the cycle line */
	g_assert_true(field_logged("KEYLIME_AGENT_ID=" AGENT_ID, "attestation 1 submitted: *"));
	g_assert_true(field_logged("KEYLIME_ATTESTATION_INDEX=1", "attestation 1 submitted: *"));
	g_assert_true(field_logged("KEYLIME_EVIDENCE_TYPES=tpm_quote,uefi_log,ima_log",
				   "attestation 1 submitted: *"));
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(f->requests->len, ==, G_N_ELEMENTS(expected));
	for (guint i = 0; i < G_N_ELEMENTS(expected); i++) {
		const gchar *id = g_ptr_array_index(f->request_ids, i);
		g_assert_cmpstr(g_ptr_array_index(f->requests, i), ==, expected[i]);
		/* a fresh request id every time */
		g_assert_nonnull(id);
		g_assert_cmpuint(strlen(id), ==, KL_HTTP_REQUEST_ID_LEN);
		g_assert_false(g_hash_table_contains(ids, id));
		g_hash_table_add(ids, (gpointer)id);
	}
	/* the bearer token only on the attestation requests */
	for (guint i = 0; i < 5; i++)
		g_assert_cmpstr(g_ptr_array_index(f->auth, i), ==, "");
	g_assert_cmpstr(g_ptr_array_index(f->auth, 5), ==, "Bearer " TOKEN);
	g_assert_cmpstr(g_ptr_array_index(f->auth, 6), ==, "Bearer " TOKEN);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 1);
	g_assert_cmpint(kl_agent_get_state(f->agent), ==, KL_AGENT_STATE_STOPPED);
	/* the evidence went out right after the verifier's request */
	g_assert_cmpuint(assert_phases_back_to_back(f), ==, 1);
}

static void
test_continuous_reuses_token(Fixture *f, gconstpointer data)
{
	const gchar *patterns[] = {
		"DEBUG state *",
		"DEBUG the verifier requests *",
		"INFO attestation * submitted*",
		NULL,
	};
	const gchar *expected[] = {
		"DEBUG state Unregistered",
		"DEBUG state Registered",
		"DEBUG the verifier requests tpm_quote, uefi_log, ima_log (Location " ATT_PATH
		"/0)",
		"DEBUG state Attesting",
		"INFO attestation 1 submitted: *",
		"DEBUG state Negotiating",
		"DEBUG the verifier requests *",
		"DEBUG state Attesting",
		"INFO attestation 2 submitted: *",
		"DEBUG state Negotiating",
		"DEBUG the verifier requests *",
		"DEBUG state Attesting",
		"INFO attestation 3 submitted: *",
		NULL,
	};

	f->stop_after = 3;
	/* the debug lines of the state machine too */
	g_assert_true(kl_log_set_level("debug", NULL));
	run_agent(f, FALSE, 5);
	g_assert_true(kl_log_set_level("info", NULL));
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* each phase and each cycle is told in order, phase 2 right after phase 1 */
	assert_log_sequence(patterns, expected);
	g_assert_cmpuint(assert_phases_back_to_back(f), ==, 3);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 3);
	/* one session for three attestations */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH "/0"), ==, 3);
	/* the verifier's seconds_to_next_attestation (2 s) paces the cycles */
	g_assert_cmpuint(count_requests(f, "POST " REGISTRAR), ==, 1);
	{
		guint twos = 0;
		for (guint i = 0; i < f->delays->len; i++)
			if (delay_at(f, i) == 2000)
				twos++;
		g_assert_cmpuint(twos, ==, 3);
	}
}

static void
test_registrar_403_fatal(Fixture *f, gconstpointer data)
{
	fixture_script(f,
		       "POST",
		       "/v2.6/agents/",
		       403,
		       "{\"code\":403,\"status\":\"Forbidden\",\"results\":{}}",
		       NULL,
		       -1);
	expect_log("ERROR", "*refused agent*regdelete*");
	run_agent(f, FALSE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_REGISTRAR_IDENTITY);
	/* nothing went to the verifier */
	g_assert_cmpint(find_request(f, "POST " VERIFIER, 0), ==, -1);
	g_assert_cmpuint(count_requests(f, "POST " REGISTRAR), ==, 1);
}

static void
test_activation_400_reregisters(Fixture *f, gconstpointer data)
{
	fixture_script(f, "PUT", "/v2.6/agents/", 400, "{\"code\":400}", NULL, -1);
	expect_log("WARNING", "*deleted the record*");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " REGISTRAR "/v2.6/agents/"), ==, 2);
	g_assert_cmpuint(count_requests(f, "PUT " REGISTRAR), ==, 2);
}

static void
test_registrar_500_retries_with_backoff(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", "/v2.6/agents/", 500, "", NULL, -1);
	fixture_script(f, "POST", "/v2.6/agents/", 503, "", NULL, 30);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " REGISTRAR "/v2.6/agents/"), ==, 3);
	/* start (0), backoff after 500 (initial 1000 ms), Retry-After of the 503 (30 s) */
	g_assert_cmpuint(delay_at(f, 1), ==, 1000);
	g_assert_cmpuint(delay_at(f, 2), ==, 30000);
}

static void
test_phase1_401_reauth_immediately(Fixture *f, gconstpointer data)
{
	f->stop_after = 2;
	/* answers are consumed in order: the first POST passes through (scripted 201) */
	fixture_script(f, "POST", ATT_PATH, 201, "attestation-201.json", ATT_PATH "/0", -1);
	fixture_script(f, "POST", ATT_PATH, 401, "errors-401.json", NULL, -1);
	expect_log("MESSAGE", "*HTTP 401: Authentication token expired*authenticating again");
	run_agent(f, FALSE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 2);
	/* a second session after the 401 */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 2);
	/* delays: start 0, registered 0, next 2000, retry now 0, ... */
	{
		gboolean backoff = FALSE;
		for (guint i = 0; i < f->delays->len; i++)
			if (delay_at(f, i) == 1000)
				backoff = TRUE;
		g_assert_false(backoff);
	}
}

static void
test_phase1_401_fresh_token_backs_off(Fixture *f, gconstpointer data)
{
	/* the verifier rejects a token it just issued: no tight loop */
	fixture_script(f, "POST", ATT_PATH, 401, "errors-401.json", NULL, -1);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 2);
	/* 0 (start), 0 (registered), then the backoff */
	g_assert_cmpuint(delay_at(f, 2), ==, 1000);
}

static void
test_phase1_404_not_enrolled(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", ATT_PATH, 404, "{\"errors\":[{\"status\":\"404\"}]}", NULL, -1);
	fixture_script(f, "POST", ATT_PATH, 404, "{\"errors\":[{\"status\":\"404\"}]}", NULL, -1);
	expect_log("MESSAGE",
		   "agent " AGENT_ID " is not enrolled at the verifier: enroll it with "
		   "keylime_tenant -c add --push-model -u " AGENT_ID "*");
	run_agent(f, TRUE, 5);
	/* logged once (the second time at debug level) */
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 3);
	g_assert_cmpuint(delay_at(f, 2), ==, 1000);
	g_assert_cmpuint(delay_at(f, 3), >=, 1000);
	g_assert_cmpuint(delay_at(f, 3), <=, 3000);
}

static void
test_session_not_enrolled_gives_up_once(Fixture *f, gconstpointer data)
{
	f->enrolled = FALSE;
	expect_log("MESSAGE", "*is not enrolled at the verifier*");
	expect_log("ERROR", "*giving up after 3 attempts*");
	run_agent(f, TRUE, 2);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_NOT_ACCEPTED);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER "/v3.0/sessions/"), ==, 3);
	g_assert_cmpint(find_request(f, "POST " VERIFIER ATT_PATH, 0), ==, -1);
}

static void
test_phase1_422_logs_detail(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", ATT_PATH, 422, "errors-422.json", NULL, -1);
	expect_log("WARNING",
		   "offering capabilities: the verifier answered HTTP 422: Attribute "
		   "'evidence' must contain at least the PCRs requested "
		   "(invalid_resource_data); retrying in 1.0 s");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* a fault of phase 1 is reported in state Negotiating */
	g_assert_true(field_logged("KEYLIME_STATE=Negotiating", "offering capabilities: *"));
}

static void
test_phase1_429_retry_after(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", ATT_PATH, 429, "{\"errors\":[]}", NULL, 7);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(delay_at(f, 2), ==, 7000);
	/* the token was kept: one session only */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
}

static void
test_retry_after_ignored_on_500(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", ATT_PATH, 500, "", NULL, 900);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(delay_at(f, 2), ==, 1000);
}

static void
test_retry_cap_follows_verifier_cadence(Fixture *f, gconstpointer data)
{
	guint64 longest = 0;

	/* one accepted attestation (the verifier asks for 2 s), then 6 failures */
	fixture_script(f, "PATCH", ATT_PATH "/", 202, "attestation-202.json", NULL, -1);
	for (guint i = 0; i < 6; i++)
		fixture_script(f, "PATCH", ATT_PATH "/", 500, "", NULL, -1);
	f->stop_after = 2;
	run_agent(f, FALSE, 10);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 2);
	/*
	 * backoff from 1 s doubling would reach 32 s by the 6th failure; the
	 * verifier times an agent out after 5 intervals (10 s), so no retry may
	 * wait longer than 4 intervals (8 s)
	 */
	for (guint i = 0; i < f->delays->len; i++) {
		longest = MAX(longest, delay_at(f, i));
	}
	g_assert_cmpuint(longest, <=, 8000);
	g_assert_cmpuint(longest, >, 2000);
}

static void
test_malformed_201_backs_off(Fixture *f, gconstpointer data)
{
	fixture_script(f, "POST", ATT_PATH, 201, "{\"data\": [", ATT_PATH "/0", -1);
	fixture_script(
	    f,
	    "POST",
	    ATT_PATH,
	    201,
	    "{\"data\":{\"attributes\":{\"evidence_requested\":[{\"evidence_type\":1}]}}}",
	    ATT_PATH "/0",
	    -1);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 3);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 1);
}

static void
test_phase1_403_keeps_token(Fixture *f, gconstpointer data)
{
	fixture_script(f,
		       "POST",
		       ATT_PATH,
		       403,
		       "{\"errors\":[{\"detail\":\"Action submit_attestation requires agent "
		       "authentication (PoP token)\"}]}",
		       NULL,
		       -1);
	expect_log("WARNING",
		   "offering capabilities: the verifier answered HTTP 403: Action "
		   "submit_attestation requires agent authentication (PoP token); "
		   "retrying in 1.0 s");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
	/* re-authentication happens after a 401 only */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
	g_assert_cmpuint(delay_at(f, 2), ==, 1000);
}

static void
test_phase2_403_restarts_phase1(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	fixture_script(f,
		       "PATCH",
		       ATT_PATH "/",
		       403,
		       "{\"errors\":[{\"code\":\"challenges_expired\",\"detail\":\"expired\"}]}",
		       NULL,
		       -1);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 2);
	/* the round expired at the verifier: a new phase 1 at once, no backoff */
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 1);
	g_assert_cmpuint(g_array_index(retries, guint64, 0), ==, 0);
	/* a 403 on evidence does not cost a new session */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
}

static void
test_phase2_401_reauth(Fixture *f, gconstpointer data)
{
	f->stop_after = 2;
	fixture_script(f, "PATCH", ATT_PATH "/", 202, "attestation-202.json", NULL, -1);
	fixture_script(f, "PATCH", ATT_PATH "/", 401, "errors-401.json", NULL, -1);
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 2);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 2);
}

static void
test_registration_contribution_failure_retries(Fixture *f, gconstpointer data)
{
	/* a plugin that cannot add its fields: no registration without them */
	f->contribute_fails = 1;
	expect_log("WARNING", "*registration postponed*IAK: TPM busy; retrying in 1.0 s");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* the only POST carried the plugin's field (checked by the fake registrar) */
	g_assert_cmpuint(count_requests(f, "POST " REGISTRAR "/v2.6/agents/"), ==, 1);
	g_assert_cmpuint(delay_at(f, 1), ==, 1000);
}

static void
test_phase1_401_forever_backs_off(Fixture *f, gconstpointer data)
{
	/* the verifier accepts every PoP but refuses every token: never a tight loop */
	for (guint i = 0; i < 4; i++)
		fixture_script(f, "POST", ATT_PATH, 401, "errors-401.json", NULL, -1);
	run_agent(f, TRUE, 10);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* one session per refused token, no more */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 5);
	/* 0 (start), 0 (registered), the backoff after each 401; phase 2 follows at once */
	g_assert_cmpuint(f->delays->len, ==, 6);
	for (guint i = 2; i < 6; i++)
		g_assert_cmpuint(delay_at(f, i), >=, 1000);
	g_assert_cmpuint(MAX(MAX(delay_at(f, 3), delay_at(f, 4)), delay_at(f, 5)), >, 1000);
}

static void
test_phase1_409_backs_off(Fixture *f, gconstpointer data)
{
	guint64 longest = 0;

	for (guint i = 0; i < 4; i++)
		fixture_script(f, "POST", ATT_PATH, 409, "", NULL, -1);
	run_agent(f, TRUE, 10);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 5);
	/* shortly after the first conflict, then the backoff */
	g_assert_cmpuint(delay_at(f, 2), ==, 1000);
	for (guint i = 3; i < f->delays->len; i++)
		longest = MAX(longest, delay_at(f, i));
	g_assert_cmpuint(longest, >, 1000);
}

static void
test_phase2_422_restarts_phase1(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	fixture_script(f, "PATCH", ATT_PATH "/", 422, "errors-422.json", NULL, -1);
	expect_log("WARNING",
		   "submitting evidence: the verifier answered HTTP 422: Attribute 'evidence' "
		   "must contain at least the PCRs requested (invalid_resource_data); retrying "
		   "in 1.0 s");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* a new phase 1 after the backoff, same token */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 2);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 1);
	g_assert_cmpuint(g_array_index(retries, guint64, 0), ==, 1000);
	/* reported as a fault of phase 2 (state Attesting), phase 1's faults as Negotiating */
	g_assert_true(field_logged("KEYLIME_STATE=Attesting", "submitting evidence: *"));
	g_assert_false(field_logged("KEYLIME_STATE=Negotiating", "submitting evidence: *"));
}

/* scripts a 202 to the evidence: @head, base64 filler up to @size bytes, @tail */
static void
script_echo(Fixture *f, const gchar *head, gsize size, const gchar *tail)
{
	GString *echo = g_string_sized_new(size + strlen(tail) + 64);

	g_string_append(echo, head);
	while (echo->len < size)
		g_string_append(echo, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=");
	g_string_append(echo, tail);
	fixture_script(f, "PATCH", ATT_PATH "/", 202, echo->str, NULL, -1);
	g_string_free(echo, TRUE);
}

/*
 * The verifier's 202 echoes the evidence back (14.5 MB for 100k IMA entries):
 * an answer of 50 MB, far above the 16 MiB cap of other answers, is an
 * accepted submission, and meta (at its end) still sets the next cycle.
 */
static void
test_evidence_echo_50mb(Fixture *f, gconstpointer data)
{
	script_echo(f,
		    "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence\":\"",
		    50 * 1024 * 1024,
		    "\"}},\"meta\":{\"seconds_to_next_attestation\":7}}");
	f->stop_after = 1;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_logged("INFO", "attestation 1 submitted: *; next in 7 s"), ==, 1);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 1);
}

/*
 * A 202 that echoes a small evidence (40 kB, as Keylime does at every cycle):
 * only its end is read for meta, and a key of the same name inside the echoed
 * evidence (an IMA file name, escaped in the JSON) is not taken for it.
 */
static void
test_evidence_echo_small(Fixture *f, gconstpointer data)
{
	script_echo(f,
		    "{\"data\":{\"type\":\"attestation\",\"attributes\":{"
		    "\"evidence\":\"10 abc ima-ng /usr/bin/\\\"seconds_to_next_"
		    "attestation\\\": 99 ",
		    40 * 1024,
		    "\"}},\"meta\":{\"seconds_to_next_attestation\": 7}}");
	f->stop_after = 1;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_logged("INFO", "attestation 1 submitted: *; next in 7 s"), ==, 1);
}

/*
 * Evidence above the verifier's max_upload_size: one ERROR line naming the
 * size and the option, then the longest backoff (not a retry every few
 * seconds); a second refusal is not logged at ERROR again.
 */
static void
test_evidence_too_large(Fixture *f, gconstpointer data)
{
	gboolean longest = FALSE;

	fixture_script(f, "PATCH", ATT_PATH "/", 413, "", NULL, -1);
	fixture_script(f, "PATCH", ATT_PATH "/", 413, "", NULL, -1);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(
	    count_logged("ERROR", "*refused the evidence of * MiB as too large*max_upload_size*"),
	    ==,
	    1);
	g_assert_cmpuint(
	    count_logged("INFO", "*refused the evidence of * MiB as too large*"), ==, 1);
	for (guint i = 0; i < f->delays->len; i++)
		if (delay_at(f, i) == 600000)
			longest = TRUE;
	g_assert_true(longest);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 3);
}

/* 403 old_attestation: the round is over at the verifier, a new phase 1 starts at once */
static void
test_old_attestation_restarts_at_once(Fixture *f, gconstpointer data)
{
	fixture_script(f,
		       "PATCH",
		       ATT_PATH "/",
		       403,
		       "{\"errors\":[{\"status\":\"403\",\"code\":\"old_attestation\","
		       "\"detail\":\"Attestation 3 is not the latest\"}]}",
		       NULL,
		       -1);
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(count_logged("MESSAGE", "*starting a new attestation at once"), ==, 1);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
	/* no backoff between the refusal and the new phase 1 */
	for (guint i = 0; i < f->delays->len; i++)
		g_assert_cmpuint(delay_at(f, i), <, 1000);
}

static void
test_collect_failure_sends_nothing(Fixture *f, gconstpointer data)
{
	f->collect_fails = TRUE;
	expect_log("WARNING", "*cannot collect the requested uefi_log evidence*log vanished*");
	expect_log("ERROR", "*giving up*");
	run_agent(f, TRUE, 1);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_NOT_ACCEPTED);
	/* never an "error" body */
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 0);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
}

static void
test_unknown_type_collects_nothing(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	/* a quote first, then a type no plugin provides: the quote must not be taken */
	fixture_script(f,
		       "POST",
		       ATT_PATH,
		       201,
		       "{\"data\":{\"attributes\":{\"evidence_requested\":["
		       "{\"evidence_class\":\"certification\",\"evidence_type\":\"tpm_quote\","
		       "\"chosen_parameters\":{}},"
		       "{\"evidence_class\":\"log\",\"evidence_type\":\"kl_unknown_log\","
		       "\"chosen_parameters\":{}}]}}}",
		       ATT_PATH "/0",
		       -1);
	expect_log("WARNING",
		   "*cannot collect the requested kl_unknown_log evidence (item 2); nothing was "
		   "sent, starting a new attestation: the verifier requested evidence type "
		   "'kl_unknown_log', which no active plugin provides*");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* a new phase 1 after the backoff; one PATCH, for the second round only */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 2);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 1);
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 1);
	g_assert_cmpuint(g_array_index(retries, guint64, 0), ==, 1000);
	/* the three items of the accepted round, nothing of the dropped one */
	g_assert_cmpint(g_atomic_int_get(&f->collects), ==, 3);
}

static void
test_location_other_origin_not_followed(Fixture *f, gconstpointer data)
{
	g_free(f->default_location);
	f->default_location = g_strdup("https://evil.example:8881" ATT_PATH "/0");
	expect_log("MESSAGE", "*another origin*");
	run_agent(f, TRUE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpint(find_request(f, "PATCH " VERIFIER ATT_PATH "/latest", 0), >=, 0);
	for (guint i = 0; i < f->requests->len; i++)
		g_assert_null(strstr(g_ptr_array_index(f->requests, i), "evil"));
}

static void
test_location_without_v(Fixture *f, gconstpointer data)
{
	g_free(f->default_location);
	f->default_location = g_strdup("/3/agents/" AGENT_ID "/attestations/5");
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpint(
	    find_request(f, "PATCH " VERIFIER "/v3/agents/" AGENT_ID "/attestations/5", 0), >=, 0);
}

static void
test_next_attestation_clamped(Fixture *f, gconstpointer data)
{
	f->stop_after = 3;
	fixture_script(f,
		       "PATCH",
		       ATT_PATH "/",
		       202,
		       "{\"meta\":{\"seconds_to_next_attestation\":0}}",
		       NULL,
		       -1);
	fixture_script(f,
		       "PATCH",
		       ATT_PATH "/",
		       202,
		       "{\"meta\":{\"seconds_to_next_attestation\":99999999}}",
		       NULL,
		       -1);
	fixture_script(f, "PATCH", ATT_PATH "/", 202, "{}", NULL, -1);
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	{
		g_autoptr(GArray) nexts = g_array_new(FALSE, FALSE, sizeof(guint64));
		for (guint i = 0; i < f->delays->len; i++)
			if (delay_at(f, i) != 0)
				g_array_append_val(nexts, g_array_index(f->delays, guint64, i));
		g_assert_cmpuint(nexts->len, ==, 3);
		g_assert_cmpuint(g_array_index(nexts, guint64, 0), ==, 1000);
		g_assert_cmpuint(g_array_index(nexts, guint64, 1), ==, 3600000);
		/* no meta: attestation_interval_seconds */
		g_assert_cmpuint(g_array_index(nexts, guint64, 2), ==, 45000);
	}
	/* and the cycle lines say so */
	g_assert_cmpuint(count_logged("INFO", "attestation 1 submitted: * ms; next in 1 s"), ==, 1);
	g_assert_cmpuint(
	    count_logged("INFO", "attestation 2 submitted: * ms; next in 3600 s"), ==, 1);
	g_assert_cmpuint(
	    count_logged("INFO", "attestation 3 submitted: * ms; next in 45 s"), ==, 1);
}

static void
test_token_expiry_proactive(Fixture *f, gconstpointer data)
{
	/* the fixture token expires 2026-11-23T14:35:11Z: 5 s before that, re-authenticate */
	f->now_us = (G_GINT64_CONSTANT(1795444511) - 5) * G_USEC_PER_SEC;
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* a fresh session is used: a proactive re-auth happens only for an existing token */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);

	/*
	 * continuous, the clock following the 2 s cycles: a token of 30 s is
	 * renewed once a quarter of its lifetime (7 s) is left, not 10 s before
	 * its expiry (a short session_lifetime would renew at every cycle)
	 */
	fixture_next_run(f, (G_GINT64_CONSTANT(1795444511) - 30) * G_USEC_PER_SEC);
	f->advance_clock = TRUE;
	f->stop_after = 10;
	run_agent(f, FALSE, 5);
	/* cycles at 30, 28, ... 12, 10, 8 s before expiry: still the first token */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
	fixture_next_run(f, (G_GINT64_CONSTANT(1795444511) - 30) * G_USEC_PER_SEC);
	f->stop_after = 13;
	run_agent(f, FALSE, 5);
	/* ... 6 s before expiry: renewed first */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 2);
	f->advance_clock = FALSE;

	/* with time to spare the token is reused */
	fixture_next_run(f, FIXTURE_NOW_US);
	run_agent(f, FALSE, 5);
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER "/v3.0/sessions"), ==, 1);
}

static void
test_stop_while_waiting(Fixture *f, gconstpointer data)
{
	/* a 1 h Retry-After, really waited for: SIGTERM must not wait for it */
	fixture_script(f, "POST", ATT_PATH, 429, "", NULL, 3600);
	f->real_delays = TRUE;
	g_timeout_add(300, stop_idle_cb, f);
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpint(kl_agent_get_state(f->agent), ==, KL_AGENT_STATE_STOPPED);
}

/* capabilities of tpm_quote, uefi_log and @log_type, sealed or not */
static GPtrArray *
caps_of(const gchar *log_type, gboolean sealed)
{
	GPtrArray *caps = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);

	g_ptr_array_add(caps, fake_entry("certification", "tpm_quote", "capabilities"));
	g_ptr_array_add(caps, fake_entry("log", "uefi_log", "capabilities"));
	g_ptr_array_add(caps, fake_entry("log", log_type, "capabilities"));
	for (guint i = 0; sealed && i < caps->len; i++)
		json_object_seal(g_ptr_array_index(caps, i));
	return caps;
}

static const gchar *const first_types[] = { "tpm_quote", "uefi_log", "ima_log", NULL };
static const gchar *const other_types[] = { "tpm_quote", "uefi_log", "kl_other_log", NULL };

static gboolean
status_types_are(Fixture *f, const gchar *const *types)
{
	return g_strv_equal((const gchar *const *)kl_status_get_snapshot(f->status)->evidence_types,
			    types);
}

/* after the first cycle: other sealed entries, with another type */
static void
caps_new_sealed(Fixture *f)
{
	g_assert_true(status_types_are(f, first_types));
	/* the first cycle read them */
	g_assert_cmpuint(kl_agent_get_offered_reused(f->agent), ==, 0);
	g_ptr_array_unref(f->caps);
	f->caps = caps_of("kl_other_log", TRUE);
}

/* after the first cycle: the same entries, not sealed, one changed in place */
static void
caps_changed_in_place(Fixture *f)
{
	g_assert_true(status_types_are(f, first_types));
	g_assert_cmpuint(kl_agent_get_offered_reused(f->agent), ==, 0);
	json_object_set_string_member(
	    g_ptr_array_index(f->caps, 2), "evidence_type", "kl_other_log");
}

/*
 * one run of four attestations: the first with the ima_log entries (@sealed
 * or not), then @change makes them report kl_other_log; the status shows the
 * new types; returns how many negotiations reused the last types
 */
static guint64
run_offered_types(Fixture *f, gboolean sealed, void (*change)(Fixture *f))
{
	if (f->status == NULL)
		f->status = kl_status_new(AGENT_ID, "1.2.3");
	g_clear_pointer(&f->caps, g_ptr_array_unref);
	f->caps = caps_of("ima_log", sealed);
	f->caps_change = change;
	f->stop_after = 4;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 4);
	g_assert_null(f->caps_change);
	g_assert_true(status_types_are(f, other_types));
	return kl_agent_get_offered_reused(f->agent);
}

/*
 * The evidence types the agent reports (status file, metrics) follow the
 * plugins' capabilities: a plugin that hands back the same sealed entries has
 * the same types, not read again; other entries, or entries that are not
 * sealed and changed, are read again.
 */
static void
test_offered_types_follow_capabilities(Fixture *f, gconstpointer data)
{
	/* other sealed entries at cycle 2 are read; the same ones at cycles 3 and 4 are not */
	g_assert_cmpuint(run_offered_types(f, TRUE, caps_new_sealed), ==, 2);

	/* entries that are not sealed, changed in place: read every cycle */
	fixture_next_run(f, FIXTURE_NOW_US);
	g_assert_cmpuint(run_offered_types(f, FALSE, caps_changed_in_place), ==, 0);
}

/*
 * SIGTERM while phase 1 is in flight: the agent stops once the verifier's
 * answer is in, without taking a quote or sending evidence for it
 */
static void
test_stop_between_phases(Fixture *f, gconstpointer data)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-status-XXXXXX", NULL);
	g_autofree gchar *status_path = g_build_filename(dir, "status.json", NULL);
	g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);

	f->status = kl_status_new(AGENT_ID, "1.2.3");
	kl_status_set_files(f->status, status_path, NULL);
	kl_status_add_listener(f->status, record_status_line, lines);
	f->stop_in_phase1 = TRUE;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpint(kl_agent_get_state(f->agent), ==, KL_AGENT_STATE_STOPPED);
	g_assert_false(f->stop_in_phase1);
	/* phase 1 was answered; no quote, no evidence after it */
	g_assert_cmpuint(count_requests(f, "POST " VERIFIER ATT_PATH), ==, 1);
	g_assert_cmpuint(count_requests(f, "PATCH " VERIFIER ATT_PATH), ==, 0);
	g_assert_cmpint(g_atomic_int_get(&f->collects), ==, 0);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 0);
	g_assert_cmpuint(count_logged("INFO", "attestation * submitted*"), ==, 0);
	g_assert_cmpuint(count_logged("WARNING", "*"), ==, 0);
	/* the status file says so */
	g_assert_cmpstr(g_ptr_array_index(lines, lines->len - 1), ==, "stopped");
	{
		g_autofree gchar *json = read_text(status_path);
		g_autoptr(JsonObject) root = kl_json_parse_object(json, -1, NULL);

		g_assert_nonnull(root);
		g_assert_cmpstr(json_object_get_string_member(root, "state"), ==, "stopped");
		g_assert_cmpint(json_object_get_int_member(root, "attestations"), ==, 0);
	}
	g_unlink(status_path);
	g_rmdir(dir);
}

static gboolean
quit_cb(gpointer user_data)
{
	g_main_loop_quit(user_data);
	return G_SOURCE_REMOVE;
}

static void
test_free_during_step(Fixture *f, gconstpointer data)
{
	KlAgentOptions options = {
		.agent_id = AGENT_ID,
		.backoff_initial_ms = 1000,
		.backoff_max_ms = 1000,
		.attestation_interval_s = 60,
	};

	/* the owner frees the agent while a request is in flight (no stop, no done) */
	f->slow_ms = 200;
	f->agent = kl_agent_new(&options, &fake_source, f, f->registrar, f->verifier);
	kl_agent_start(f->agent, done_cb, f);
	g_timeout_add(50, quit_cb, f->loop);
	g_main_loop_run(f->loop);
	g_assert_cmpint(kl_agent_get_state(f->agent), ==, KL_AGENT_STATE_UNREGISTERED);
	g_clear_pointer(&f->agent, kl_agent_free);
	/* the finished step's completion is still queued: it must not touch the agent */
	g_timeout_add(300, quit_cb, f->loop);
	g_main_loop_run(f->loop);
	g_assert_cmpint(f->exit_status, ==, -1);
}

/* --json-file prints the verifier's answer, but never the bearer token in it */
static void
test_json_file_session_token_hidden(Fixture *f, gconstpointer data)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *path = NULL;
		gint fd = g_file_open_tmp("kl-json-file-XXXXXX.json", &path, &error);
		const gchar *proof =
		    "{\"data\":{\"type\":\"session\",\"id\":\"" SESSION_ID "\","
		    "\"attributes\":{\"agent_id\":\"" AGENT_ID "\",\"authentication_provided\":"
		    "[{\"authentication_class\":\"pop\",\"authentication_type\":\"tpm_pop\","
		    "\"data\":{\"message\":\"QVRURVNU\",\"signature\":\"U0lH\"}}]}}}";
		KlAgentOptions options = {
			.agent_id = AGENT_ID,
			.contact_ip = "127.0.0.1",
			.contact_port = 9002,
			.boot_time = G_GINT64_CONSTANT(1795428000),
			.backoff_initial_ms = 1000,
			.backoff_max_ms = 1000,
			.backoff_max_retries = 0,
			.attestation_interval_s = 60,
			.json_file = NULL,
			.message_type = "session",
			.method = "PATCH",
			.session_index = SESSION_ID,
		};
		guint timeout;

		g_assert_no_error(error);
		close(fd);
		g_file_set_contents(path, proof, -1, &error);
		g_assert_no_error(error);
		options.json_file = path;
		f->agent = kl_agent_new(&options, &fake_source, f, f->registrar, f->verifier);
		kl_agent_set_delay_func(f->agent, fake_delay, f);
		kl_agent_start(f->agent, done_cb, f);
		timeout = g_timeout_add_seconds(20, timeout_cb, NULL);
		g_main_loop_run(f->loop);
		g_source_remove(timeout);
		g_unlink(path);
		g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
		return;
	}
	g_test_trap_subprocess(NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("HTTP 200\n*\"evaluation\":\"pass\"*");
	g_test_trap_assert_stdout("*\"token\":\"(not shown; SHA-256 fingerprint *)\"*");
	g_test_trap_assert_stdout_unmatched("*yZa6oMA61ywSLUArUbaaMQ8lbSjY*");
	g_test_trap_assert_stderr_unmatched("*yZa6oMA61ywSLUArUbaaMQ8lbSjY*");
}

/* ---- splay and jitter ---- */

/* the delay before the first contact of an agent started with @seed */
static guint64
first_contact_delay(Fixture *f, guint32 seed, gint64 interval_s, guint splay, gboolean once)
{
	KlAgentOptions options = {
		.agent_id = AGENT_ID,
		.backoff_initial_ms = 1000,
		.backoff_max_ms = 600000,
		.backoff_max_retries = 5,
		.backoff_seed = seed,
		.attestation_interval_s = interval_s,
		.once = once,
		.splay_percent = splay,
		.jitter_percent = 10,
	};
	KlAgent *agent = kl_agent_new(&options, &fake_source, f, f->registrar, f->verifier);
	guint64 delay;

	g_array_set_size(f->delays, 0);
	g_array_set_size(f->delay_states, 0);
	g_array_set_size(f->delay_times, 0);
	kl_agent_set_delay_func(agent, fake_delay, f);
	kl_agent_set_clock_func(agent, fake_clock, f);
	kl_agent_start(agent, done_cb, f);
	g_assert_cmpuint(f->delays->len, ==, 1);
	g_assert_cmpint(delay_state_at(f, 0), ==, KL_AGENT_STATE_UNREGISTERED);
	delay = delay_at(f, 0);
	/* never run: the timer is dropped with the agent */
	kl_agent_free(agent);
	return delay;
}

static void
test_splay_first_contact(Fixture *f, gconstpointer data)
{
	guint64 lowest = G_MAXUINT64;
	guint64 highest = 0;
	guint buckets[4] = { 0 };

	/* 400 agents started together: every first contact within one interval (45 s) */
	for (guint32 seed = 1; seed <= 400; seed++) {
		guint64 d = first_contact_delay(f, seed, 45, 100, FALSE);
		g_assert_cmpuint(d, <=, 45000);
		lowest = MIN(lowest, d);
		highest = MAX(highest, d);
		buckets[MIN(d * 4 / 45001, 3)]++;
	}
	/* spread over the whole window, not bunched: each quarter gets its share */
	g_assert_cmpuint(lowest, <, 1000);
	g_assert_cmpuint(highest, >, 44000);
	for (guint i = 0; i < 4; i++) {
		g_assert_cmpuint(buckets[i], >, 70);
		g_assert_cmpuint(buckets[i], <, 130);
	}
	/* splay_percent scales the window */
	for (guint32 seed = 1; seed <= 100; seed++)
		g_assert_cmpuint(first_contact_delay(f, seed, 45, 20, FALSE), <=, 9000);
	/* a long interval: the window stops at 5 minutes */
	highest = 0;
	for (guint32 seed = 1; seed <= 100; seed++) {
		guint64 d = first_contact_delay(f, seed, 3600, 100, FALSE);
		g_assert_cmpuint(d, <=, KL_AGENT_SPLAY_MAX_MS);
		highest = MAX(highest, d);
	}
	g_assert_cmpuint(highest, >, KL_AGENT_SPLAY_MAX_MS * 9 / 10);
	/* off, and --once (interactive) does not wait */
	for (guint32 seed = 1; seed <= 20; seed++) {
		g_assert_cmpuint(first_contact_delay(f, seed, 45, 0, FALSE), ==, 0);
		g_assert_cmpuint(first_contact_delay(f, seed, 45, 100, TRUE), ==, 0);
	}
}

static void
test_splay_first_contact_status(Fixture *f, gconstpointer data)
{
	const KlStatusSnapshot *snap;

	f->splay_percent = 100;
	f->status = kl_status_new(AGENT_ID, "1.2.3");
	f->stop_after = 1;
	expect_log("INFO", "first contact in * (a random wait within 45.0 s, splay_percent = 100*");
	run_agent(f, FALSE, 5);
	assert_expected_logs();
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	/* the splay came first, before any request */
	g_assert_cmpint(delay_state_at(f, 0), ==, KL_AGENT_STATE_UNREGISTERED);
	g_assert_cmpuint(delay_at(f, 0), >, 0);
	g_assert_cmpuint(delay_at(f, 0), <=, 45000);
	snap = kl_status_get_snapshot(f->status);
	g_assert_cmpuint(snap->attestations, ==, 1);
	g_assert_cmpint(snap->state, ==, KL_STATUS_STATE_STOPPED);
}

static void
test_jitter_never_early(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) waits = NULL;
	g_autoptr(GHashTable) seen = g_hash_table_new(g_int64_hash, g_int64_equal);
	guint stretched = 0;

	/* the verifier asks for 2 s; jitter_percent = 10: 2.0 .. 2.2 s */
	f->jitter_percent = 10;
	f->stop_after = 40;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	waits = attestation_waits(f);
	g_assert_cmpuint(waits->len, >=, 39);
	for (guint i = 0; i < waits->len; i++) {
		guint64 d = g_array_index(waits, guint64, i);
		g_assert_cmpuint(d, >=, 2000); /* never early: the verifier answers 429 */
		g_assert_cmpuint(d, <=, 2200);
		if (d > 2000)
			stretched++;
		g_hash_table_add(seen, &g_array_index(waits, guint64, i));
	}
	/* really random: not one fixed stretch */
	g_assert_cmpuint(stretched, >, waits->len / 2);
	g_assert_cmpuint(g_hash_table_size(seen), >, waits->len / 2);
	/* the cycle lines and their journal field count on */
	g_assert_true(field_logged("KEYLIME_ATTESTATION_INDEX=10", "attestation 10 submitted: *"));
	g_assert_true(field_logged("KEYLIME_ATTESTATION_INDEX=40", "attestation 40 submitted: *"));
}

static void
test_jitter_bounded(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) waits = NULL;
	guint64 longest = 0;

	/* the largest jitter the configuration allows stays far below 5 intervals */
	f->jitter_percent = 50;
	f->stop_after = 30;
	run_agent(f, FALSE, 5);
	waits = attestation_waits(f);
	g_assert_cmpuint(waits->len, >=, 29);
	for (guint i = 0; i < waits->len; i++) {
		guint64 d = g_array_index(waits, guint64, i);
		g_assert_cmpuint(d, >=, 2000);
		g_assert_cmpuint(d, <=, 3000);
		longest = MAX(longest, d);
	}
	g_assert_cmpuint(longest, >, 2500);
	g_assert_cmpuint(longest, <, 5 * 2000);
}

/* the verifier's answer to the evidence, asking for the next one in @seconds */
static gchar *
answer_202(guint seconds)
{
	g_autofree gchar *text = load_fixture("attestation-202.json");
	g_auto(GStrv) parts = g_strsplit(text, "\"seconds_to_next_attestation\": 2}", 2);

	g_assert_cmpuint(g_strv_length(parts), ==, 2);
	return g_strdup_printf(
	    "%s\"seconds_to_next_attestation\": %u}%s", parts[0], seconds, parts[1]);
}

/* the fake time (µs) of the attempt each retry delay leads to, with the delays */
static GArray *
retry_attempts(Fixture *f, GArray **delays)
{
	GArray *attempts = g_array_new(FALSE, FALSE, sizeof(gint64));

	*delays = g_array_new(FALSE, FALSE, sizeof(guint64));
	for (guint i = 0; i < f->delays->len; i++) {
		KlAgentState state = delay_state_at(f, i);
		guint64 d = delay_at(f, i);
		gint64 t = g_array_index(f->delay_times, gint64, i) + (gint64)d * 1000;
		if (state == KL_AGENT_STATE_ATTESTATION_FAILED ||
		    state == KL_AGENT_STATE_REGISTRATION_FAILED) {
			g_array_append_val(attempts, t);
			g_array_append_val(*delays, d);
		}
	}
	return attempts;
}

/*
 * runs the scripted outage: the verifier asks for 60 s (@answer), the
 * configured interval is 60 s (the retry cap and the splay window are both
 * 60 s), on the fake clock; two attestations must be accepted
 */
static void
run_outage(Fixture *f, const gchar *answer)
{
	f->answer_202 = g_strdup(answer);
	f->interval_s = 60;
	f->splay_percent = 100;
	f->jitter_percent = 10;
	f->advance_clock = TRUE;
	f->stop_after = 2;
	run_agent(f, FALSE, 10);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 2);
}

static void
test_outage_grid(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) delays = NULL;
	g_autoptr(GArray) attempts = NULL;
	g_autoptr(GArray) waits = NULL;
	gint64 accepted = -1;
	gint64 anchor;
	g_autofree gchar *answer = answer_202(60);

	/*
	 * the verifier asks for 60 s, the configured interval is 60 s: the retry
	 * cap and the splay window are both 60 s. One accepted attestation, then
	 * the verifier is gone: refused, 503, a request that fails after 5 s,
	 * 429 without Retry-After; then a 503 with Retry-After: 7 (the verifier
	 * answers again), refused once more, and it is back.
	 */
	fixture_script(f, "POST", ATT_PATH, 201, "attestation-201.json", ATT_PATH "/0", -1);
	fixture_script(f, "PATCH", ATT_PATH "/", 202, answer, NULL, -1);
	fixture_script_unreachable(f, "POST", ATT_PATH, 0);
	fixture_script(f, "POST", ATT_PATH, 503, "", NULL, -1);
	fixture_script_unreachable(f, "POST", ATT_PATH, 5000);
	fixture_script(f, "POST", ATT_PATH, 429, "", NULL, -1);
	fixture_script(f, "POST", ATT_PATH, 503, "", NULL, 7);
	fixture_script_unreachable(f, "POST", ATT_PATH, 0);
	run_outage(f, answer);
	for (guint i = 0; i < f->delays->len && accepted < 0; i++)
		if (delay_state_at(f, i) == KL_AGENT_STATE_NEGOTIATING)
			accepted = g_array_index(f->delay_times, gint64, i);
	g_assert_cmpint(accepted, >, 0);

	attempts = retry_attempts(f, &delays);
	g_assert_cmpuint(attempts->len, ==, 6);
	/*
	 * the first failure (the agent's slot, 60..66 s after its attestation)
	 * anchors a grid of 60 s: each retry is exactly one period after the
	 * previous attempt, also after the request that took 5 s (a 55 s wait),
	 * so the agent keeps its place in the interval and never retries twice
	 * in one period, nor earlier than the verifier's 60 s
	 */
	anchor = g_array_index(attempts, gint64, 0) - 60 * G_USEC_PER_SEC;
	g_assert_cmpint(anchor - accepted, >=, 60 * G_USEC_PER_SEC);
	g_assert_cmpint(anchor - accepted, <=, 66 * G_USEC_PER_SEC);
	for (guint i = 0; i < 4; i++)
		g_assert_cmpint(g_array_index(attempts, gint64, i),
				==,
				anchor + (gint64)(i + 1) * 60 * G_USEC_PER_SEC);
	g_assert_cmpuint(g_array_index(delays, guint64, 0), ==, 60000);
	g_assert_cmpuint(g_array_index(delays, guint64, 1), ==, 60000);
	g_assert_cmpuint(g_array_index(delays, guint64, 2), ==, 55000);
	g_assert_cmpuint(g_array_index(delays, guint64, 3), ==, 60000);
	/* Retry-After is the verifier's word: 7 s stretched by the jitter only */
	g_assert_cmpuint(g_array_index(delays, guint64, 4), >=, 7000);
	g_assert_cmpuint(g_array_index(delays, guint64, 4), <=, 7700);
	/* a new outage anchors a new grid at its first failure: one period */
	g_assert_cmpuint(g_array_index(delays, guint64, 5), ==, 60000);
	/* back to the verifier's cadence: 60..66 s */
	waits = attestation_waits(f);
	g_assert_cmpuint(waits->len, >=, 1);
	g_assert_cmpuint(g_array_index(waits, guint64, 0), >=, 60000);
	g_assert_cmpuint(g_array_index(waits, guint64, 0), <=, 66000);
}

/*
 * The verifier answers phase 1 during an outage: the outage is over, so a
 * phase-2 failure right after it (a request that fails after 5 s) anchors a new grid at
 * its own time: one period. The old outage's grid would make it 55 s.
 */
static void
test_outage_phase1_answered(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) delays = NULL;
	g_autoptr(GArray) attempts = NULL;
	g_autofree gchar *answer = answer_202(60);

	fixture_script(f, "POST", ATT_PATH, 201, "attestation-201.json", ATT_PATH "/0", -1);
	fixture_script(f, "PATCH", ATT_PATH "/", 202, answer, NULL, -1);
	fixture_script_unreachable(f, "POST", ATT_PATH, 0);
	fixture_script(f, "POST", ATT_PATH, 201, "attestation-201.json", ATT_PATH "/1", -1);
	fixture_script_unreachable(f, "PATCH", ATT_PATH "/", 5000);
	run_outage(f, answer);

	attempts = retry_attempts(f, &delays);
	g_assert_cmpuint(attempts->len, ==, 2);
	g_assert_cmpuint(g_array_index(delays, guint64, 0), ==, 60000);
	g_assert_cmpuint(g_array_index(delays, guint64, 1), ==, 60000);
}

/*
 * A fleet whose verifier is down for 5 minutes: 200 agents (each with its own
 * splay, so its own slot) attesting every 45 s. After the verifier returns,
 * their first contacts must be as even over one interval as their first
 * contacts after start: not front-loaded (with retries at random 1..45 s
 * after each failure, the first quarter of the interval got ~43 % of them).
 */
static void
test_outage_fleet_even(Fixture *f, gconstpointer data)
{
	const guint agents = 200;
	const gint64 down = FIXTURE_NOW_US + 100 * G_USEC_PER_SEC;
	const gint64 up = down + 300 * G_USEC_PER_SEC;
	guint quarters[4] = { 0 };

	f->answer_202 = answer_202(45);
	f->splay_percent = 100;
	f->jitter_percent = 10;
	f->advance_clock = TRUE;
	f->verifier_down_us = down;
	f->verifier_up_us = up;
	for (guint32 seed = 1; seed <= agents; seed++) {
		gint64 back = -1;
		gint64 last_before = -1;

		fixture_next_run(f, FIXTURE_NOW_US);
		f->stop_at_us = up + 60 * G_USEC_PER_SEC;
		f->seed = seed;
		run_agent(f, FALSE, 10);
		g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
		for (guint i = 0; i < f->requests->len; i++) {
			const gchar *request = g_ptr_array_index(f->requests, i);
			gint64 t = g_array_index(f->request_times, gint64, i);
			if (strstr(request, VERIFIER) == NULL)
				continue;
			if (t < down)
				last_before = t;
			else if (t >= up && back < 0)
				back = t;
		}
		g_assert_cmpint(last_before, >, 0);
		g_assert_cmpint(back, >=, up);
		/* back within one interval (the cap) of the verifier's return */
		g_assert_cmpint(back - up, <, 45 * G_USEC_PER_SEC);
		quarters[(back - up) * 4 / (45 * G_USEC_PER_SEC)]++;
	}
	for (guint i = 0; i < 4; i++) {
		g_test_message(
		    "quarter %u of the interval after the outage: %u agents", i, quarters[i]);
		g_assert_cmpuint(quarters[i], >, 30);
		g_assert_cmpuint(quarters[i], <, 70);
	}
}

static void
test_outage_splay_registration(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	/* the registrar is down twice: spread over the configured interval (45 s) */
	fixture_script(f, "POST", "/v2.6/agents/", 503, "", NULL, -1);
	fixture_script(f, "POST", "/v2.6/agents/", 500, "", NULL, -1);
	f->splay_percent = 100;
	f->seed = 7;
	run_agent(f, TRUE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 2);
	/* --once does not splay its retries: plain backoff (1 s, then 1..3 s) */
	g_assert_cmpuint(g_array_index(retries, guint64, 0), ==, 1000);
	g_assert_cmpuint(g_array_index(retries, guint64, 1), <=, 3000);
}

static void
test_outage_grid_registration(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) delays = NULL;
	g_autoptr(GArray) attempts = NULL;
	gint64 anchor;
	guint longer = 0;

	/*
	 * the registrar is unreachable 30 times: no verifier interval yet, so the
	 * period is the configured interval (3 s here), the cap the backoff's
	 * maximum (600 s). The backoff (1 s, then up to 3x the previous delay)
	 * still lengthens the waits beyond the period, in whole periods.
	 */
	for (guint i = 0; i < 30; i++)
		fixture_script_unreachable(f, "POST", "/v2.6/agents/", 0);
	f->interval_s = 3;
	f->splay_percent = 100;
	f->advance_clock = TRUE;
	f->stop_after = 1;
	run_agent(f, FALSE, 50);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	attempts = retry_attempts(f, &delays);
	g_assert_cmpuint(attempts->len, ==, 30);
	/* the first retry: one period after the first failure, the agent's splayed slot */
	g_assert_cmpuint(g_array_index(delays, guint64, 0), ==, 3000);
	anchor = g_array_index(attempts, gint64, 0) - 3 * G_USEC_PER_SEC;
	for (guint i = 0; i < attempts->len; i++) {
		guint64 d = g_array_index(delays, guint64, i);
		gint64 since = g_array_index(attempts, gint64, i) - anchor;
		/* on the grid, never beyond the cap, never two attempts in one period */
		g_assert_cmpint(since % (3 * G_USEC_PER_SEC), ==, 0);
		g_assert_cmpuint(d, >=, 3000);
		g_assert_cmpuint(d, <=, 600000);
		if (d > 3000)
			longer++;
	}
	g_assert_cmpuint(longer, >, 3);
}

static void
test_not_enrolled_is_no_outage(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	/* "not enrolled" is an answer, not an outage: plain backoff, no splay */
	fixture_script(f, "POST", ATT_PATH, 404, "", NULL, -1);
	f->splay_percent = 100;
	f->stop_after = 1;
	run_agent(f, FALSE, 5);
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 1);
	g_assert_cmpuint(g_array_index(retries, guint64, 0), ==, 1000);
}

static void
test_retry_after_stretched(Fixture *f, gconstpointer data)
{
	g_autoptr(GArray) retries = NULL;

	/* Retry-After: 3 s is honoured, stretched by the jitter only (3.0 .. 3.3 s) */
	for (guint i = 0; i < 5; i++)
		fixture_script(f, "POST", ATT_PATH, 429, "", NULL, 3);
	f->splay_percent = 100;
	f->jitter_percent = 10;
	f->stop_after = 1;
	run_agent(f, FALSE, 10);
	retries = retry_delays(f);
	g_assert_cmpuint(retries->len, ==, 5);
	for (guint i = 0; i < retries->len; i++) {
		g_assert_cmpuint(g_array_index(retries, guint64, i), >=, 3000);
		g_assert_cmpuint(g_array_index(retries, guint64, i), <=, 3300);
	}
}

/* ---- the status snapshot, the status file and the metrics file ---- */

static void
test_status_files(Fixture *f, gconstpointer data)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-status-XXXXXX", NULL);
	g_autofree gchar *status_path = g_build_filename(dir, "status.json", NULL);
	g_autofree gchar *metrics_path = g_build_filename(dir, "agent.prom", NULL);
	g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(JsonObject) root = NULL;
	g_autofree gchar *json = NULL;
	g_autofree gchar *metrics = NULL;
	g_autoptr(GDir) listing = NULL;
	JsonArray *types;

	/* not enrolled once, then the verifier fails once, then three cycles */
	fixture_script(f, "POST", ATT_PATH, 404, "", NULL, -1);
	fixture_script(f, "POST", ATT_PATH, 503, "", NULL, -1);
	f->status = kl_status_new(AGENT_ID, "1.2.3");
	kl_status_set_files(f->status, status_path, metrics_path);
	kl_status_add_listener(f->status, record_status_line, lines);
	f->splay_percent = 100;
	f->stop_after = 3;
	run_agent(f, FALSE, 10);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);

	/* the one-line summary went through every state */
	g_assert_true(lines_match(lines, "starting, first contact in * s"));
	g_assert_true(lines_match(lines, "registering"));
	g_assert_true(lines_match(lines, "waiting for enrollment, retry in 1 s"));
	g_assert_true(lines_match(lines, "verifier failing (server error), retry in * s"));
	g_assert_true(lines_match(lines, "attestation 1 submitted 0 s ago, next in 2 s"));
	g_assert_true(lines_match(lines, "attestation 3 submitted 0 s ago, next in 2 s"));
	g_assert_cmpstr(g_ptr_array_index(lines, lines->len - 1), ==, "stopped");

	json = read_text(status_path);
	root = kl_json_parse_object(json, -1, NULL);
	g_assert_nonnull(root);
	g_assert_cmpint(json_object_get_int_member(root, "format"), ==, KL_STATUS_FORMAT);
	g_assert_cmpstr(json_object_get_string_member(root, "agent_id"), ==, AGENT_ID);
	g_assert_cmpstr(json_object_get_string_member(root, "version"), ==, "1.2.3");
	g_assert_cmpint(json_object_get_int_member(root, "pid"), ==, getpid());
	g_assert_cmpstr(json_object_get_string_member(root, "state"), ==, "stopped");
	g_assert_true(json_object_get_boolean_member(root, "registered"));
	g_assert_true(json_object_get_boolean_member(root, "enrolled"));
	g_assert_cmpint(json_object_get_int_member(root, "attestations"), ==, 3);
	g_assert_cmpint(json_object_get_int_member(root, "interval_seconds"), ==, 2);
	g_assert_cmpint(json_object_get_int_member(
			    json_object_get_object_member(root, "last_attestation"), "time"),
			==,
			FIXTURE_NOW_US / G_USEC_PER_SEC);
	g_assert_true(g_pattern_match_simple(
	    "tpm_quote, uefi_log, ima_log (12 new entries) in * ms; next in 2 s",
	    json_object_get_string_member(json_object_get_object_member(root, "last_attestation"),
					  "summary")));
	g_assert_cmpstr(json_object_get_string_member(
			    json_object_get_object_member(root, "last_error"), "cause"),
			==,
			"server_error");
	types = json_object_get_array_member(root, "evidence_types");
	g_assert_cmpuint(json_array_get_length(types), ==, 3);
	g_assert_cmpstr(json_array_get_string_element(types, 0), ==, "tpm_quote");
	g_assert_cmpstr(json_array_get_string_element(types, 2), ==, "ima_log");

	metrics = read_text(metrics_path);
	g_assert_nonnull(strstr(metrics, "keylime_agent_build_info{version=\"1.2.3\"} 1\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_attestations_submitted_total 3\n"));
	g_assert_nonnull(strstr(metrics,
				"\nkeylime_agent_failures_total{stage=\"attestation\",cause="
				"\"not_enrolled\"} 1\n"));
	g_assert_nonnull(strstr(metrics,
				"\nkeylime_agent_failures_total{stage=\"attestation\",cause="
				"\"server_error\"} 1\n"));
	g_assert_nonnull(strstr(metrics,
				"\nkeylime_agent_failures_total{stage=\"registration\",cause="
				"\"unreachable\"} 0\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_ima_entries_sent_total 36\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_sessions_total 1\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_registered 1\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_enrolled 1\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_cycle_duration_seconds_count 3\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_backoff_consecutive_failures 0\n"));
	g_assert_nonnull(
	    strstr(metrics, "\nkeylime_agent_last_success_timestamp_seconds 1795444380\n"));
	g_assert_nonnull(strstr(metrics, "# TYPE keylime_agent_failures_total counter\n"));
	/* stopped: no longer on schedule */
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_attesting_on_schedule 0\n"));

	/* written by rename: no temporary file left behind */
	listing = g_dir_open(dir, 0, NULL);
	for (const gchar *name; (name = g_dir_read_name(listing)) != NULL;) {
		g_autofree gchar *path = g_build_filename(dir, name, NULL);
		g_assert_true(g_strcmp0(name, "status.json") == 0 ||
			      g_strcmp0(name, "agent.prom") == 0);
		g_unlink(path);
	}
	g_rmdir(dir);
}

static void
test_status_metrics_unwritable(Fixture *f, gconstpointer data)
{
	/* a metrics file that cannot be written: one warning, and the agent goes on */
	f->status = kl_status_new(AGENT_ID, "1.2.3");
	kl_status_set_files(f->status, NULL, "/nonexistent-kl-dir/keylime_agent.prom");
	f->stop_after = 5;
	run_agent(f, FALSE, 5);
	g_assert_cmpint(f->exit_status, ==, KL_EXIT_OK);
	g_assert_cmpuint(kl_agent_get_attestation_count(f->agent), ==, 5);
	g_assert_cmpuint(count_logged("WARNING", "*keylime_agent.prom*metrics file*"), ==, 1);
	g_assert_cmpuint(count_logged("WARNING", "*"), ==, 1);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* the agent logs warnings for conditions these tests provoke on purpose */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	log_lines = g_ptr_array_new_with_free_func(g_free);
	expected_logs = g_ptr_array_new_with_free_func(g_free);
	g_log_set_handler("kl-core", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL, capture_log, NULL);
	log_fields = g_ptr_array_new_with_free_func(g_free);
	g_log_set_writer_func(capture_writer, NULL, NULL);

#define ADD(path, func) g_test_add(path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD("/agent/once-happy-path", test_once_happy_path);
	ADD("/agent/continuous-reuses-token", test_continuous_reuses_token);
	ADD("/agent/registrar-403-fatal", test_registrar_403_fatal);
	ADD("/agent/activation-400-reregisters", test_activation_400_reregisters);
	ADD("/agent/registrar-500-backoff", test_registrar_500_retries_with_backoff);
	ADD("/agent/phase1-401-reauth-immediately", test_phase1_401_reauth_immediately);
	ADD("/agent/phase1-401-fresh-token-backs-off", test_phase1_401_fresh_token_backs_off);
	ADD("/agent/phase1-404-not-enrolled", test_phase1_404_not_enrolled);
	ADD("/agent/session-not-enrolled-gives-up", test_session_not_enrolled_gives_up_once);
	ADD("/agent/phase1-422-logs-detail", test_phase1_422_logs_detail);
	ADD("/agent/phase1-429-retry-after", test_phase1_429_retry_after);
	ADD("/agent/retry-after-ignored-on-500", test_retry_after_ignored_on_500);
	ADD("/agent/retry-cap-follows-verifier-cadence", test_retry_cap_follows_verifier_cadence);
	ADD("/agent/malformed-201", test_malformed_201_backs_off);
	ADD("/agent/phase1-403-keeps-token", test_phase1_403_keeps_token);
	ADD("/agent/phase2-403-restarts-phase1", test_phase2_403_restarts_phase1);
	ADD("/agent/phase2-401-reauth", test_phase2_401_reauth);
	ADD("/agent/registration-contribution-failure-retries",
	    test_registration_contribution_failure_retries);
	ADD("/agent/phase1-401-forever-backs-off", test_phase1_401_forever_backs_off);
	ADD("/agent/phase1-409-backs-off", test_phase1_409_backs_off);
	ADD("/agent/phase2-422-restarts-phase1", test_phase2_422_restarts_phase1);
	ADD("/agent/evidence-echo-50mb", test_evidence_echo_50mb);
	ADD("/agent/evidence-echo-40kb", test_evidence_echo_small);
	ADD("/agent/evidence-too-large", test_evidence_too_large);
	ADD("/agent/old-attestation-restarts-at-once", test_old_attestation_restarts_at_once);
	ADD("/agent/collect-failure-sends-nothing", test_collect_failure_sends_nothing);
	ADD("/agent/unknown-type-collects-nothing", test_unknown_type_collects_nothing);
	ADD("/agent/location-other-origin", test_location_other_origin_not_followed);
	ADD("/agent/location-without-v", test_location_without_v);
	ADD("/agent/next-attestation-clamped", test_next_attestation_clamped);
	ADD("/agent/token-expiry-proactive", test_token_expiry_proactive);
	ADD("/agent/stop-while-waiting", test_stop_while_waiting);
	ADD("/agent/stop-between-phases", test_stop_between_phases);
	ADD("/agent/offered-types-follow-capabilities", test_offered_types_follow_capabilities);
	ADD("/agent/free-during-step", test_free_during_step);
	ADD("/agent/json-file-session-token-hidden", test_json_file_session_token_hidden);
	ADD("/agent/splay/first-contact", test_splay_first_contact);
	ADD("/agent/splay/first-contact-status", test_splay_first_contact_status);
	ADD("/agent/splay/outage-grid", test_outage_grid);
	ADD("/agent/splay/outage-phase1-answered", test_outage_phase1_answered);
	ADD("/agent/splay/outage-fleet-even", test_outage_fleet_even);
	ADD("/agent/splay/outage-registration-once", test_outage_splay_registration);
	ADD("/agent/splay/outage-registration", test_outage_grid_registration);
	ADD("/agent/splay/not-enrolled-is-no-outage", test_not_enrolled_is_no_outage);
	ADD("/agent/jitter/never-early", test_jitter_never_early);
	ADD("/agent/jitter/bounded", test_jitter_bounded);
	ADD("/agent/jitter/retry-after-stretched", test_retry_after_stretched);
	ADD("/agent/status/files", test_status_files);
	ADD("/agent/status/metrics-unwritable", test_status_metrics_unwritable);
#undef ADD
	return g_test_run();
}
