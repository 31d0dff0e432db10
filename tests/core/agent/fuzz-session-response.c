/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the verifier's session answers (POST /sessions: the PoP
 * challenge; PATCH /sessions/{id}: evaluation and bearer token). Beyond not
 * crashing: a challenge is 1..64 bytes; "pass" comes with a token that can
 * travel in an HTTP header; the token never appears in an error message
 * (error messages end up in the log).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "kl-verifier-client.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the "token" string member of data.attributes, if the input has one */
static gchar *
kl_fuzz_find_token(const gchar *text, gsize size)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;
	JsonObject *o;

	if (!json_parser_load_from_data(parser, text, (gssize)size, NULL))
		return NULL;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
		return NULL;
	o = json_node_get_object(root);
	if (!json_object_has_member(o, "data") ||
	    !JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "data")))
		return NULL;
	o = json_object_get_object_member(o, "data");
	if (!json_object_has_member(o, "attributes") ||
	    !JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "attributes")))
		return NULL;
	o = json_object_get_object_member(o, "attributes");
	if (!json_object_has_member(o, "token") ||
	    json_node_get_value_type(json_object_get_member(o, "token")) != G_TYPE_STRING)
		return NULL;
	return g_strdup(json_object_get_string_member(o, "token"));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree gchar *text = g_strndup((const gchar *)data, size);
	g_autofree gchar *session_id = NULL;
	g_autofree gchar *token = NULL;
	g_autoptr(GBytes) challenge = NULL;
	g_autoptr(GError) error = NULL;
	KlVerifierSession session;

	if (kl_verifier_parse_session_challenge(
		(const gchar *)data, size, &session_id, &challenge, &error)) {
		g_assert(session_id != NULL);
		g_assert(g_bytes_get_size(challenge) >= 1 && g_bytes_get_size(challenge) <= 64);
	} else {
		g_assert(error != NULL);
	}
	g_clear_error(&error);

	token = size == strlen(text) ? kl_fuzz_find_token(text, size) : NULL;
	if (kl_verifier_parse_session_result((const gchar *)data, size, &session, &error)) {
		if (session.pass) {
			g_assert(session.token != NULL && session.token[0] != '\0');
			g_assert(g_strcmp0(session.evaluation, "pass") == 0);
			for (const gchar *p = session.token; *p != '\0'; p++)
				g_assert((guchar)*p > 0x20 && (guchar)*p < 0x7f);
		} else {
			g_assert(session.token == NULL);
		}
		g_assert(session.token_expires_at >= 0);
		kl_verifier_session_clear(&session);
		g_assert(session.token == NULL && session.evaluation == NULL);
	} else {
		g_assert(error != NULL);
		g_assert(session.token == NULL);
		/* a token long enough to be recognisable must not leak into the message */
		if (token != NULL && strlen(token) >= 8)
			g_assert(strstr(error->message, token) == NULL);
	}
	return 0;
}
