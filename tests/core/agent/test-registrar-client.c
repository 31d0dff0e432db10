/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * kl-registrar-client: auth_tag, API version choice, request shapes and
 * status handling against a fake registrar.
 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-registrar-client.h"

static void
test_auth_tag_vector(void)
{
	/* python3: hmac.new(b64encode(secret), agent_id, sha384).hexdigest() */
	g_autoptr(GBytes) secret = g_bytes_new_static("abcdefghijklmnopqrstuvwxyz012345", 32);
	g_autofree gchar *tag =
	    kl_registrar_compute_auth_tag(secret, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");

	g_assert_cmpstr(tag,
			==,
			"5722855ab92301434883bdfc0d1810450154c06bdeaa1b3ffe1f7fcaabca3575"
			"6506b94d53773738c43cf9a866ad3f0e");
}

static void
test_parse_versions(void)
{
	const gchar *def[] = { "default", NULL };
	const gchar *latest[] = { "latest", NULL };
	const gchar *list[] = { "2.6, v2.4", "2.5", NULL };
	const gchar *bad[] = { "1.0", NULL };
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) a = kl_registrar_parse_versions(def, &error);
	g_auto(GStrv) b = kl_registrar_parse_versions(latest, &error);
	g_auto(GStrv) c = kl_registrar_parse_versions(list, &error);
	g_auto(GStrv) d = kl_registrar_parse_versions(NULL, &error);
	g_autofree gchar *ja = g_strjoinv(",", a);
	g_autofree gchar *jb = g_strjoinv(",", b);
	g_autofree gchar *jc = g_strjoinv(",", c);
	g_autofree gchar *jd = g_strjoinv(",", d);

	g_assert_no_error(error);
	g_assert_cmpstr(ja, ==, "2.1,2.2,2.3,2.4,2.5,2.6");
	g_assert_cmpstr(jb, ==, "2.1,2.2,2.3,2.4,2.5,2.6,3.0");
	g_assert_cmpstr(jc, ==, "2.4,2.5,2.6");
	g_assert_cmpstr(jd, ==, "2.1,2.2,2.3,2.4,2.5,2.6");
	g_assert_null(kl_registrar_parse_versions(bad, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
}

static void
test_choose_version(void)
{
	const gchar *def[] = { "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", NULL };
	const gchar *latest[] = { "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3.0", NULL };
	const gchar *old[] = { "2.1", "2.2", NULL };
	const gchar *server[] = { "1.0", "2.0", "2.1", "2.2", "2.3",
				  "2.4", "2.5", "2.6", "3.0", NULL };
	const gchar *server_old[] = { "2.0", "2.1", "2.2", "2.3", NULL };
	const gchar *server_v1[] = { "1.0", NULL };
	const struct {
		const gchar *const *enabled;
		const gchar *current;
		const gchar *const *supported;
		gboolean v3;
		const gchar *chosen;
	} cases[] = {
		{ def, "2.6", server, FALSE, "2.6" },
		/* v3 usable but not enabled by "default" */
		{ def, "2.6", server, TRUE, "2.6" },
		{ latest, "2.6", server, TRUE, "3.0" },
		/* real registrars answer GET /v3.0/ with 500 */
		{ latest, "2.6", server, FALSE, "2.6" },
		{ old, "2.6", server, FALSE, "2.2" },
		{ def, "2.3", server_old, FALSE, "2.3" },
		{ def, "2.0", server_old, FALSE, "2.3" },
		{ def, NULL, NULL, FALSE, "2.6" },
		{ def, "1.0", server_v1, FALSE, NULL },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *chosen = kl_registrar_choose_version(
		    cases[i].enabled, cases[i].current, cases[i].supported, cases[i].v3);
		g_assert_cmpstr(chosen, ==, cases[i].chosen);
	}
}

static void
test_build_body(void)
{
	g_autoptr(GBytes) ek = g_bytes_new_static("EK", 2);
	g_autoptr(GBytes) ak = g_bytes_new_static("AK", 2);
	g_autoptr(GBytes) cert = g_bytes_new_static("CERT", 4);
	g_autoptr(JsonObject) a = kl_registrar_build_body(ek, ak, cert, "10.0.0.1", 9002);
	g_autoptr(JsonObject) b = kl_registrar_build_body(ek, ak, NULL, "", 0);
	g_autofree gchar *ta = kl_json_object_to_string(a, NULL);
	g_autofree gchar *tb = kl_json_object_to_string(b, NULL);

	g_assert_cmpstr(ta,
			==,
			"{\"ek_tpm\":\"RUs=\",\"aik_tpm\":\"QUs=\",\"ekcert\":\"Q0VSVA==\","
			"\"ip\":\"10.0.0.1\",\"port\":9002}");
	g_assert_cmpstr(tb, ==, "{\"ek_tpm\":\"RUs=\",\"aik_tpm\":\"QUs=\"}");
}

/* ---- against a fake registrar ---- */

typedef struct {
	GPtrArray *requests;
	guint version_status;
	guint v3_status;
	guint register_status;
	guint activate_status;
} FakeRegistrar;

static KlHttpResponse *
fake_registrar(const gchar *method,
	       const gchar *url,
	       const gchar *const *headers,
	       const gchar *body,
	       gsize body_len,
	       gpointer user_data,
	       GCancellable *cancellable,
	       GError **error)
{
	FakeRegistrar *fake = user_data;
	const gchar *path = url + strlen("https://reg.example:8891");
	g_autofree gchar *fixture = NULL;

	g_ptr_array_add(
	    fake->requests,
	    g_strdup_printf("%s %s %.*s", method, path, (int)body_len, body ? body : ""));
	if (g_strcmp0(path, "/version") == 0) {
		g_autofree gchar *p = g_test_build_filename(
		    G_TEST_DIST, "data", "verifier", "registrar-version-200.json", NULL);
		g_assert_true(g_file_get_contents(p, &fixture, NULL, NULL));
		return kl_http_response_new(fake->version_status,
					    fake->version_status == 200 ? fixture : "");
	}
	if (g_strcmp0(path, "/v3.0/") == 0)
		return kl_http_response_new(fake->v3_status, "");
	if (g_strcmp0(method, "POST") == 0 && g_str_has_prefix(path, "/v")) {
		if (fake->register_status != 200)
			return kl_http_response_new(fake->register_status,
						    "{\"code\":403,\"status\":\"Agent d432 already "
						    "exists\",\"results\":{}}");
		return kl_http_response_new(200,
					    "{\"code\":200,\"results\":{\"blob\":\"QkxPQg==\"}}");
	}
	return kl_http_response_new(fake->activate_status, "{\"code\":400,\"status\":\"bad\"}");
}

static void
test_client_flow(void)
{
	KlHttpOptions options = { .name = "registrar" };
	const gchar *latest[] = { "latest", NULL };
	const gchar *def[] = { "default", NULL };
	FakeRegistrar fake = {
		.requests = g_ptr_array_new_with_free_func(g_free),
		.version_status = 200,
		.v3_status = 500,
		.register_status = 200,
		.activate_status = 200,
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autoptr(KlRegistrarClient) client = NULL;
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GBytes) blob = NULL;

	kl_http_set_transport(http, fake_registrar, &fake);
	client = kl_registrar_client_new(http, "https://reg.example:8891/", latest, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(kl_registrar_client_get_url(client), ==, "https://reg.example:8891");

	/* v3.0 enabled, but the probe fails: v2.6 */
	g_assert_true(kl_registrar_client_negotiate(client, NULL, &error));
	g_assert_cmpstr(kl_registrar_client_get_version(client), ==, "2.6");
	g_assert_cmpstr(g_ptr_array_index(fake.requests, 1), ==, "GET /v3.0/ ");

	blob = kl_registrar_client_register(client, "agent-1", body, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpmem(g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), "BLOB", 4);
	g_assert_cmpstr(g_ptr_array_index(fake.requests, 2), ==, "POST /v2.6/agents/agent-1 {}");
	g_assert_true(kl_registrar_client_activate(client, "agent-1", "00ff", NULL, &error));
	g_assert_cmpstr(g_ptr_array_index(fake.requests, 3),
			==,
			"PUT /v2.6/agents/agent-1 {\"auth_tag\":\"00ff\"}");

	/* a working v3.0 */
	fake.v3_status = 200;
	g_assert_true(kl_registrar_client_negotiate(client, NULL, &error));
	g_assert_cmpstr(kl_registrar_client_get_version(client), ==, "3.0");
	g_clear_pointer(&blob, g_bytes_unref);
	blob = kl_registrar_client_register(client, "agent-1", body, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(g_ptr_array_index(fake.requests, fake.requests->len - 1),
			==,
			"POST /v3.0/agents/ {\"agent_id\":\"agent-1\"}");
	g_assert_true(kl_registrar_client_activate(client, "agent-1", "00ff", NULL, &error));
	g_assert_cmpstr(g_ptr_array_index(fake.requests, fake.requests->len - 1),
			==,
			"POST /v3.0/agents/agent-1/activate {\"auth_tag\":\"00ff\"}");

	/* 403 on register: identity conflict */
	g_clear_pointer(&client, kl_registrar_client_free);
	client = kl_registrar_client_new(http, "https://reg.example:8891", def, &error);
	fake.version_status = 404;
	g_assert_true(kl_registrar_client_negotiate(client, NULL, &error));
	g_assert_cmpstr(kl_registrar_client_get_version(client), ==, "2.6");
	fake.register_status = 403;
	g_clear_pointer(&blob, g_bytes_unref);
	blob = kl_registrar_client_register(client, "agent-1", body, NULL, &error);
	g_assert_null(blob);
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "agent_data.json"));
	g_assert_nonnull(strstr(error->message, "already exists"));
	g_clear_error(&error);
	fake.register_status = 500;
	g_assert_null(kl_registrar_client_register(client, "agent-1", body, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_HTTP);
	g_clear_error(&error);

	/* 400 on activate: the record is gone */
	fake.activate_status = 400;
	g_assert_false(kl_registrar_client_activate(client, "agent-1", "00", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_clear_error(&error);
	fake.activate_status = 502;
	g_assert_false(kl_registrar_client_activate(client, "agent-1", "00", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_HTTP);

	g_ptr_array_unref(fake.requests);
}

/* a registrar answering every request with one fixed body */
static KlHttpResponse *
fixed_registrar(const gchar *method,
		const gchar *url,
		const gchar *const *headers,
		const gchar *body,
		gsize body_len,
		gpointer user_data,
		GCancellable *cancellable,
		GError **error)
{
	return kl_http_response_new(200, user_data);
}

static void
test_hostile_answers(void)
{
	KlHttpOptions options = { .name = "registrar" };
	const gchar *def[] = { "default", NULL };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autoptr(KlRegistrarClient) client = NULL;

	/* versions with a newline cannot forge log lines through the error message */
	kl_http_set_transport(http,
			      fixed_registrar,
			      "{\"results\":{\"current_version\":\"1.0\",\"supported_versions\":"
			      "[\"1.0\\nINFO kl-core: forged\",\"v1.0\",\"9.x\"]}}");
	client = kl_registrar_client_new(http, "http://reg.example:8890", def, &error);
	g_assert_no_error(error);
	g_assert_false(kl_registrar_client_negotiate(client, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_null(strchr(error->message, '\n'));
	g_assert_null(strstr(error->message, "forged"));
	g_assert_nonnull(strstr(error->message, "supports API versions 1.0, none"));
	g_clear_error(&error);

	/* activation before a version was negotiated: an error, not a "v(null)" URL */
	g_assert_false(kl_registrar_client_activate(client, "agent-1", "00ff", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INTERNAL);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/registrar/auth-tag", test_auth_tag_vector);
	g_test_add_func("/registrar/parse-versions", test_parse_versions);
	g_test_add_func("/registrar/choose-version", test_choose_version);
	g_test_add_func("/registrar/build-body", test_build_body);
	g_test_add_func("/registrar/client-flow", test_client_flow);
	g_test_add_func("/registrar/hostile-answers", test_hostile_answers);
	return g_test_run();
}
