/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the registrar client against a registrar whose every answer
 * has the fuzz input as its body: GET /version (+ the /v3.0/ probe), the
 * registration answer (credential blob) and the activation answer, each with
 * the statuses that take different paths (200, 400, 403, 429, 500). The
 * client must never crash, and must keep its invariants: a chosen version is
 * one it enabled, a blob comes only from a 200, error messages are printable.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-registrar-client.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	const uint8_t *data;
	size_t size;
	guint status;
} KlFuzzRegistrar;

static KlHttpResponse *
kl_fuzz_transport(const gchar *method,
		  const gchar *url,
		  const gchar *const *headers,
		  const gchar *body,
		  gsize body_len,
		  gpointer user_data,
		  GCancellable *cancellable,
		  GError **error)
{
	KlFuzzRegistrar *fuzz = user_data;
	KlHttpResponse *response = kl_http_response_new(fuzz->status, NULL);
	gchar *copy = g_malloc(fuzz->size + 1);

	/* the body may hold NUL bytes: keep its real length */
	memcpy(copy, fuzz->data, fuzz->size);
	copy[fuzz->size] = '\0';
	g_bytes_unref(response->body);
	response->body = g_bytes_new_take(copy, fuzz->size);
	response->retry_after_s = fuzz->status == 429 ? 3 : -1;
	return response;
}

static void
kl_fuzz_check_message(const GError *error)
{
	/* no control characters from the answer may reach a log line */
	if (error == NULL)
		return;
	for (const gchar *p = error->message; *p != '\0'; p++)
		g_assert((guchar)*p >= 0x20 || *p == '\t');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const guint statuses[] = { 200, 400, 403, 429, 500 };
	const gchar *const versions[] = { "latest", NULL };
	KlFuzzRegistrar fuzz = { data, size, 200 };
	KlHttpOptions options = { .name = "registrar" };
	g_autoptr(KlHttp) http = kl_http_new(&options, NULL);
	g_autoptr(KlRegistrarClient) client = NULL;
	g_autoptr(JsonObject) body = json_object_new();

	g_assert(http != NULL);
	kl_http_set_transport(http, kl_fuzz_transport, &fuzz);
	client = kl_registrar_client_new(http, "http://127.0.0.1:8890", versions, NULL);
	g_assert(client != NULL);

	for (guint i = 0; i < G_N_ELEMENTS(statuses); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) blob = NULL;
		gboolean ok;

		fuzz.status = statuses[i];
		ok = kl_registrar_client_negotiate(client, NULL, &error);
		kl_fuzz_check_message(error);
		if (ok) {
			const gchar *v = kl_registrar_client_get_version(client);
			g_assert(v != NULL);
			g_assert(g_str_has_prefix(v, "2.") || g_strcmp0(v, "3.0") == 0);
		}
		g_clear_error(&error);

		blob = kl_registrar_client_register(
		    client, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000", body, NULL, &error);
		kl_fuzz_check_message(error);
		g_assert(blob == NULL || fuzz.status == 200);
		g_assert(fuzz.status != 403 || kl_registrar_client_get_version(client) == NULL ||
			 g_error_matches(error, KL_ERROR, KL_ERROR_AUTH));
		g_clear_error(&error);

		ok = kl_registrar_client_activate(
		    client, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "00ff", NULL, &error);
		kl_fuzz_check_message(error);
		g_assert(!ok || fuzz.status == 200);
		g_assert(fuzz.status != 429 || kl_registrar_client_get_retry_after_ms(client) >= 0);
	}
	return 0;
}
