/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Weak stand-ins for the kl_json getters the tpm_quote plugin uses, so its
 * tests link while core/kl-json.c is still a stub. The library's definitions
 * take precedence once they exist; then this file can go.
 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"

static JsonNode *
kl_test_member(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	if (node == NULL)
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is missing", key);
	return node;
}

__attribute__((weak)) const gchar *
kl_json_object_get_string(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = kl_test_member(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not a string", key);
		return NULL;
	}
	return json_node_get_string(node);
}

__attribute__((weak)) JsonObject *
kl_json_object_get_object(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = kl_test_member(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(node)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not an object", key);
		return NULL;
	}
	return json_node_get_object(node);
}

__attribute__((weak)) JsonArray *
kl_json_object_get_array(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = kl_test_member(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!JSON_NODE_HOLDS_ARRAY(node)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not an array", key);
		return NULL;
	}
	return json_node_get_array(node);
}

__attribute__((weak)) GBytes *
kl_base64_decode_strict(const gchar *text, GError **error)
{
	static const gchar alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	gsize len = strlen(text);
	gsize pad = 0;
	guchar *data;
	gsize out_len = 0;

	if (len % 4 != 0)
		goto bad;
	for (gsize i = 0; i < len; i++) {
		if (text[i] == '=') {
			if (i < len - 2)
				goto bad;
			pad++;
		} else if (pad > 0 || strchr(alphabet, text[i]) == NULL || text[i] == '\0') {
			goto bad;
		}
	}
	data = g_base64_decode(text, &out_len);
	return g_bytes_new_take(data, out_len);
bad:
	g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "not strict base64");
	return NULL;
}
