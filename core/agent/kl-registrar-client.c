/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-backoff.h"
#include "kl-registrar-client.h"

struct _KlRegistrarClient {
	KlHttp *http;
	gchar *url;
	GStrv enabled; /* oldest first */
	gchar *version;
	gint64 retry_after_ms;
};

/* the registrar API versions this agent speaks by default ("default") */
static const gchar *const kl_registrar_default_versions[] = { "2.1", "2.2", "2.3", "2.4",
							      "2.5", "2.6", NULL };

static gboolean
kl_registrar_version_parse(const gchar *text, guint *major, guint *minor)
{
	guint64 a = 0;
	guint64 b = 0;
	g_auto(GStrv) parts = NULL;

	if (text == NULL)
		return FALSE;
	if (text[0] == 'v' || text[0] == 'V')
		text++;
	parts = g_strsplit(text, ".", -1);
	if (g_strv_length(parts) != 2 ||
	    !g_ascii_string_to_unsigned(parts[0], 10, 0, 99, &a, NULL) ||
	    !g_ascii_string_to_unsigned(parts[1], 10, 0, 99, &b, NULL))
		return FALSE;
	*major = (guint)a;
	*minor = (guint)b;
	return TRUE;
}

static gint
kl_registrar_version_cmp(const gchar *a, const gchar *b)
{
	guint amaj = 0, amin = 0, bmaj = 0, bmin = 0;

	if (!kl_registrar_version_parse(a, &amaj, &amin))
		return -1;
	if (!kl_registrar_version_parse(b, &bmaj, &bmin))
		return 1;
	if (amaj != bmaj)
		return amaj < bmaj ? -1 : 1;
	if (amin != bmin)
		return amin < bmin ? -1 : 1;
	return 0;
}

static gint
kl_registrar_version_cmp_cb(gconstpointer a, gconstpointer b)
{
	return kl_registrar_version_cmp(*(const gchar *const *)a, *(const gchar *const *)b);
}

static void
kl_registrar_add_version(GPtrArray *versions, const gchar *version)
{
	for (guint i = 0; i < versions->len; i++)
		if (kl_registrar_version_cmp(g_ptr_array_index(versions, i), version) == 0)
			return;
	g_ptr_array_add(versions, g_strdup(version));
}

GStrv
kl_registrar_parse_versions(const gchar *const *option, GError **error)
{
	g_autoptr(GPtrArray) versions = g_ptr_array_new_with_free_func(g_free);

	for (guint i = 0; option != NULL && option[i] != NULL; i++) {
		g_auto(GStrv) items = g_strsplit(option[i], ",", -1);
		for (guint j = 0; items[j] != NULL; j++) {
			const gchar *item = g_strstrip(items[j]);
			guint major = 0, minor = 0;

			if (item[0] == '\0')
				continue;
			if (g_ascii_strcasecmp(item, "default") == 0) {
				for (guint k = 0; kl_registrar_default_versions[k] != NULL; k++)
					kl_registrar_add_version(versions,
								 kl_registrar_default_versions[k]);
			} else if (g_ascii_strcasecmp(item, "latest") == 0) {
				for (guint k = 0; kl_registrar_default_versions[k] != NULL; k++)
					kl_registrar_add_version(versions,
								 kl_registrar_default_versions[k]);
				kl_registrar_add_version(versions, "3.0");
			} else if (kl_registrar_version_parse(item, &major, &minor) &&
				   ((major == 2 && minor >= 1) || (major == 3 && minor == 0))) {
				g_autofree gchar *norm = g_strdup_printf("%u.%u", major, minor);
				kl_registrar_add_version(versions, norm);
			} else {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_CONFIG,
					    "registrar_api_versions: '%s' is not a registrar API "
					    "version this agent speaks (2.1 and later 2.x, 3.0, "
					    "\"default\" or \"latest\")",
					    item);
				return NULL;
			}
		}
	}
	if (versions->len == 0) {
		for (guint k = 0; kl_registrar_default_versions[k] != NULL; k++)
			kl_registrar_add_version(versions, kl_registrar_default_versions[k]);
	}
	g_ptr_array_sort(versions, kl_registrar_version_cmp_cb);
	g_ptr_array_add(versions, NULL);
	return (GStrv)g_ptr_array_free(g_steal_pointer(&versions), FALSE);
}

static gboolean
kl_registrar_version_in(const gchar *version, const gchar *const *list)
{
	for (guint i = 0; list != NULL && list[i] != NULL; i++)
		if (kl_registrar_version_cmp(list[i], version) == 0)
			return TRUE;
	return FALSE;
}

static gboolean
kl_registrar_version_is_v2(const gchar *version)
{
	guint major = 0, minor = 0;
	return kl_registrar_version_parse(version, &major, &minor) && major == 2;
}

gchar *
kl_registrar_choose_version(const gchar *const *enabled,
			    const gchar *current,
			    const gchar *const *supported,
			    gboolean v3_usable)
{
	guint n = enabled != NULL ? g_strv_length((GStrv)enabled) : 0;

	if (v3_usable && kl_registrar_version_in("3.0", enabled) &&
	    (supported == NULL || kl_registrar_version_in("3.0", supported)))
		return g_strdup("3.0");
	if (current != NULL && kl_registrar_version_is_v2(current) &&
	    kl_registrar_version_in(current, enabled)) {
		guint major = 0, minor = 0;
		if (kl_registrar_version_parse(current, &major, &minor))
			return g_strdup_printf("%u.%u", major, minor);
	}
	/* newest enabled 2.x that the registrar supports (or any, if unknown) */
	for (guint i = n; i > 0; i--) {
		const gchar *candidate = enabled[i - 1];
		if (!kl_registrar_version_is_v2(candidate))
			continue;
		if (supported == NULL || kl_registrar_version_in(candidate, supported))
			return g_strdup(candidate);
	}
	return NULL;
}

KlRegistrarClient *
kl_registrar_client_new(KlHttp *http,
			const gchar *base_url,
			const gchar *const *api_versions,
			GError **error)
{
	g_autoptr(KlRegistrarClient) client = g_new0(KlRegistrarClient, 1);
	gsize n;

	client->http = http;
	client->retry_after_ms = -1;
	client->url = g_strdup(base_url);
	n = strlen(client->url);
	while (n > 0 && client->url[n - 1] == '/')
		client->url[--n] = '\0';
	client->enabled = kl_registrar_parse_versions(api_versions, error);
	if (client->enabled == NULL)
		return NULL;
	return g_steal_pointer(&client);
}

void
kl_registrar_client_free(KlRegistrarClient *client)
{
	if (client == NULL)
		return;
	g_free(client->url);
	g_strfreev(client->enabled);
	g_free(client->version);
	g_free(client);
}

const gchar *
kl_registrar_client_get_url(KlRegistrarClient *client)
{
	return client->url;
}

const gchar *
kl_registrar_client_get_version(KlRegistrarClient *client)
{
	return client->version;
}

static KlHttpResponse *
kl_registrar_send(KlRegistrarClient *client,
		  const gchar *method,
		  const gchar *url,
		  JsonObject *body,
		  GCancellable *cancellable,
		  GError **error)
{
	g_autofree gchar *text = NULL;
	gsize len = 0;
	KlHttpRequest request = {
		.method = method,
		.url = url,
	};

	KlHttpResponse *response;

	if (body != NULL) {
		text = kl_json_object_to_string(body, &len);
		request.content_type = "application/json";
		request.body = text;
		request.body_len = len;
	}
	client->retry_after_ms = -1;
	response = kl_http_send(client->http, &request, cancellable, error);
	if (response != NULL)
		client->retry_after_ms =
		    kl_backoff_retry_after_ms(response->status, response->retry_after_s);
	return response;
}

gint64
kl_registrar_client_get_retry_after_ms(KlRegistrarClient *client)
{
	return client->retry_after_ms;
}

/* the registrar's "status" text, for messages (transfer full) */
static gchar *
kl_registrar_describe(KlHttpResponse *response)
{
	g_autoptr(JsonObject) root = NULL;
	const gchar *status = NULL;
	gsize len = 0;
	const gchar *body = kl_http_response_get_body(response, &len);

	if (len > 0 && len < G_MAXSSIZE)
		root = kl_json_parse_object(body, (gssize)len, NULL);
	if (root != NULL && kl_json_object_get_optional_string(root, "status", &status, NULL) &&
	    status != NULL) {
		g_autofree gchar *copy = g_strndup(status, 200);
		for (gchar *p = copy; *p != '\0'; p++)
			if ((guchar)*p < 0x20)
				*p = ' ';
		return g_strdup_printf("HTTP %u \"%s\"", response->status, copy);
	}
	return g_strdup_printf("HTTP %u", response->status);
}

static gboolean
kl_registrar_parse_version_answer(KlHttpResponse *response, gchar **current, GStrv *supported)
{
	g_autoptr(JsonObject) root = NULL;
	g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);
	JsonObject *results;
	JsonArray *array;
	const gchar *value = NULL;
	gsize len = 0;
	const gchar *body = kl_http_response_get_body(response, &len);

	if (response->status != 200 || len >= G_MAXSSIZE)
		return FALSE;
	root = kl_json_parse_object(body, (gssize)len, NULL);
	if (root == NULL)
		return FALSE;
	results = kl_json_object_get_object(root, "results", NULL);
	if (results == NULL)
		return FALSE;
	if (!kl_json_object_get_optional_string(results, "current_version", &value, NULL))
		value = NULL;
	*current = g_strdup(value);
	array = kl_json_object_get_array(results, "supported_versions", NULL);
	if (array != NULL) {
		for (guint i = 0; i < json_array_get_length(array); i++) {
			JsonNode *node = json_array_get_element(array, i);
			guint major = 0, minor = 0;

			/* only well-formed versions: the list ends up in messages */
			if (JSON_NODE_HOLDS_VALUE(node) &&
			    json_node_get_value_type(node) == G_TYPE_STRING &&
			    kl_registrar_version_parse(json_node_get_string(node), &major, &minor))
				g_ptr_array_add(list, g_strdup_printf("%u.%u", major, minor));
		}
		g_ptr_array_add(list, NULL);
		*supported = (GStrv)g_ptr_array_free(g_steal_pointer(&list), FALSE);
	}
	return TRUE;
}

gboolean
kl_registrar_client_negotiate(KlRegistrarClient *client, GCancellable *cancellable, GError **error)
{
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *url = g_strdup_printf("%s/version", client->url);
	g_autofree gchar *current = NULL;
	g_auto(GStrv) supported = NULL;
	g_autofree gchar *chosen = NULL;
	gboolean known;
	gboolean v3_usable = FALSE;

	response = kl_registrar_send(client, "GET", url, NULL, cancellable, error);
	if (response == NULL)
		return FALSE;
	known = kl_registrar_parse_version_answer(response, &current, &supported);
	if (!known)
		g_debug("registrar: GET /version gave HTTP %u without a usable version list; "
			"trying the newest enabled version",
			response->status);

	/* v3.0 only when enabled, offered and actually working (real registrars answer 500) */
	if (kl_registrar_version_in("3.0", (const gchar *const *)client->enabled) &&
	    (supported == NULL ||
	     kl_registrar_version_in("3.0", (const gchar *const *)supported))) {
		g_autoptr(KlHttpResponse) probe = NULL;
		g_autoptr(GError) error_local = NULL;
		g_autofree gchar *probe_url = g_strdup_printf("%s/v3.0/", client->url);

		probe =
		    kl_registrar_send(client, "GET", probe_url, NULL, cancellable, &error_local);
		if (probe == NULL &&
		    g_error_matches(error_local, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return FALSE;
		}
		v3_usable = probe != NULL && probe->status == 200;
		if (!v3_usable)
			g_debug("registrar: GET /v3.0/ did not answer 200; using the v2 API");
	}
	chosen = kl_registrar_choose_version((const gchar *const *)client->enabled,
					     current,
					     (const gchar *const *)supported,
					     v3_usable);
	if (chosen == NULL) {
		g_autofree gchar *ours = g_strjoinv(", ", client->enabled);
		g_autofree gchar *theirs = supported == NULL ? g_strdup("unknown")
					   : supported[0] == NULL
					       ? g_strdup("(none in a known format)")
					       : g_strjoinv(", ", supported);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "the registrar at %s supports API versions %s, none of which is "
			    "enabled here (%s); adjust registrar_api_versions",
			    client->url,
			    theirs,
			    ours);
		return FALSE;
	}
	if (g_strcmp0(client->version, chosen) != 0)
		g_info("registrar %s: using API v%s", client->url, chosen);
	g_free(client->version);
	client->version = g_steal_pointer(&chosen);
	return TRUE;
}

static gboolean
kl_registrar_client_is_v3(KlRegistrarClient *client)
{
	return g_strcmp0(client->version, "3.0") == 0;
}

GBytes *
kl_registrar_client_register(KlRegistrarClient *client,
			     const gchar *agent_id,
			     JsonObject *body,
			     GCancellable *cancellable,
			     GError **error)
{
	g_autoptr(KlHttpResponse) response = NULL;
	g_autoptr(JsonObject) root = NULL;
	g_autofree gchar *escaped = g_uri_escape_string(agent_id, NULL, FALSE);
	g_autofree gchar *url = NULL;
	g_autofree gchar *what = NULL;
	GBytes *blob;
	JsonObject *results;
	gsize len = 0;
	const gchar *text;

	if (client->version == NULL) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "registrar API version not negotiated");
		return NULL;
	}
	if (kl_registrar_client_is_v3(client)) {
		url = g_strdup_printf("%s/v3.0/agents/", client->url);
		json_object_set_string_member(body, "agent_id", agent_id);
	} else {
		url = g_strdup_printf("%s/v%s/agents/%s", client->url, client->version, escaped);
	}
	response = kl_registrar_send(client, "POST", url, body, cancellable, error);
	if (response == NULL)
		return NULL;
	what = kl_registrar_describe(response);
	if (response->status == 403) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_AUTH,
		    "the registrar refused agent %s (%s): it is registered there with a "
		    "different EK, EK certificate or AK, i.e. the TPM identity changed. "
		    "Either delete the registrar record (keylime_tenant -c regdelete -u %s) "
		    "and enroll the agent again, or restore the agent_data.json that holds "
		    "the registered AK",
		    agent_id,
		    what,
		    agent_id);
		return NULL;
	}
	if (response->status != 200) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_HTTP,
			    "registration of agent %s at %s failed: %s%s",
			    agent_id,
			    url,
			    what,
			    response->status == 400
				? " (the registrar rejected the data; see its log)"
				: "");
		return NULL;
	}
	text = kl_http_response_get_body(response, &len);
	if (len >= G_MAXSSIZE) {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_INVALID_DATA, "answer too large");
		return NULL;
	}
	root = kl_json_parse_object(text, (gssize)len, error);
	results = root != NULL ? kl_json_object_get_object(root, "results", error) : NULL;
	blob = results != NULL ? kl_json_object_get_base64(results, "blob", error) : NULL;
	if (blob == NULL) {
		g_prefix_error(error, "registrar answer to POST %s: ", url);
		return NULL;
	}
	return blob;
}

gboolean
kl_registrar_client_activate(KlRegistrarClient *client,
			     const gchar *agent_id,
			     const gchar *auth_tag,
			     GCancellable *cancellable,
			     GError **error)
{
	g_autoptr(KlHttpResponse) response = NULL;
	g_autoptr(JsonObject) body = json_object_new();
	g_autofree gchar *escaped = g_uri_escape_string(agent_id, NULL, FALSE);
	g_autofree gchar *url = NULL;
	g_autofree gchar *what = NULL;
	const gchar *method;

	if (client->version == NULL) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "registrar API version not negotiated");
		return FALSE;
	}
	if (kl_registrar_client_is_v3(client)) {
		method = "POST";
		url = g_strdup_printf("%s/v3.0/agents/%s/activate", client->url, escaped);
	} else {
		method = "PUT";
		url = g_strdup_printf("%s/v%s/agents/%s", client->url, client->version, escaped);
	}
	json_object_set_string_member(body, "auth_tag", auth_tag);
	response = kl_registrar_send(client, method, url, body, cancellable, error);
	if (response == NULL)
		return FALSE;
	if (response->status == 200)
		return TRUE;
	what = kl_registrar_describe(response);
	if (response->status == 400) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_FOUND,
			    "activation of agent %s was rejected (%s): the registrar deleted the "
			    "record; registering again",
			    agent_id,
			    what);
		return FALSE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_HTTP,
		    "activation of agent %s at %s failed: %s",
		    agent_id,
		    url,
		    what);
	return FALSE;
}

gchar *
kl_registrar_compute_auth_tag(GBytes *secret, const gchar *agent_id)
{
	guint8 digest[48];
	gsize size = 0;
	gconstpointer data = g_bytes_get_data(secret, &size);
	g_autofree gchar *mackey = g_base64_encode(data, size);
	GString *hex = g_string_sized_new(2 * sizeof(digest));
	int rc;

	rc = gnutls_hmac_fast(
	    GNUTLS_MAC_SHA384, mackey, strlen(mackey), agent_id, strlen(agent_id), digest);
	memset(mackey, 0, strlen(mackey));
	if (rc < 0) {
		g_string_free(hex, TRUE);
		return NULL;
	}
	for (gsize i = 0; i < sizeof(digest); i++)
		g_string_append_printf(hex, "%02x", digest[i]);
	memset(digest, 0, sizeof(digest));
	return g_string_free(hex, FALSE);
}

static void
kl_registrar_set_base64(JsonObject *body, const gchar *key, GBytes *bytes)
{
	gsize size = 0;
	gconstpointer data = g_bytes_get_data(bytes, &size);
	g_autofree gchar *text = g_base64_encode(data, size);

	json_object_set_string_member(body, key, text);
}

JsonObject *
kl_registrar_build_body(GBytes *ek_public,
			GBytes *ak_public,
			GBytes *ek_cert,
			const gchar *contact_ip,
			gint64 contact_port)
{
	JsonObject *body = json_object_new();

	kl_registrar_set_base64(body, "ek_tpm", ek_public);
	kl_registrar_set_base64(body, "aik_tpm", ak_public);
	if (ek_cert != NULL && g_bytes_get_size(ek_cert) > 0)
		kl_registrar_set_base64(body, "ekcert", ek_cert);
	if (contact_ip != NULL && contact_ip[0] != '\0')
		json_object_set_string_member(body, "ip", contact_ip);
	if (contact_port > 0 && contact_port <= 65535)
		json_object_set_int_member(body, "port", contact_port);
	return body;
}
