/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: arbitrary bytes through kl_json_parse_object() and every
 * checked getter, recursively over the members of the parsed document; the
 * agent's writer against json-glib's generator, and the body written while it
 * is sent (KlJsonBody, every string member attached) against the writer.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include <keylime-agent/keylime-agent-plugin.h>

#include "kl-fuzz.h"
#include "kl-json-body.h"
#include "kl-json-doc.h"
#include "kl-plugin-context-private.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
kl_fuzz_json_walk(JsonObject *obj, guint depth);

/* json-glib 1.6's generator writes some doubles as invalid JSON ("1e+308.0") */
static gboolean kl_fuzz_json_has_double = FALSE;

static void
kl_fuzz_json_note_doubles(JsonNode *node)
{
	if (node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
	    json_node_get_value_type(node) == G_TYPE_DOUBLE)
		kl_fuzz_json_has_double = TRUE;
}

static void
kl_fuzz_json_member(JsonObject *obj, const gchar *key, guint depth)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) bytes = NULL;
	const gchar *s = NULL;
	gint64 i = 0;
	gboolean b = FALSE;
	JsonObject *child;
	JsonArray *array;

	kl_fuzz_json_note_doubles(json_object_get_member(obj, key));
	/* each getter either succeeds without an error or fails with one */
	s = kl_json_object_get_string(obj, key, &error);
	g_assert_true((s != NULL) == (error == NULL));
	g_clear_error(&error);
	if (kl_json_object_get_int(obj, key, &i, &error))
		g_assert_no_error(error);
	else
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	if (kl_json_object_get_bool(obj, key, &b, &error))
		g_assert_no_error(error);
	g_clear_error(&error);
	if (!kl_json_object_get_optional_int(obj, key, 0, &i, &error))
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	if (!kl_json_object_get_optional_string(obj, key, &s, &error))
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	bytes = kl_json_object_get_base64(obj, key, &error);
	g_assert_true((bytes != NULL) == (error == NULL));
	g_clear_error(&error);

	array = kl_json_object_get_array(obj, key, &error);
	g_clear_error(&error);
	if (array != NULL) {
		for (guint n = 0; n < json_array_get_length(array); n++) {
			JsonNode *node = json_array_get_element(array, n);

			kl_fuzz_json_note_doubles(node);
			if (JSON_NODE_HOLDS_OBJECT(node))
				kl_fuzz_json_walk(json_node_get_object(node), depth + 1);
		}
	}
	child = kl_json_object_get_object(obj, key, &error);
	g_clear_error(&error);
	if (child != NULL)
		kl_fuzz_json_walk(child, depth + 1);
}

static void
kl_fuzz_json_walk(JsonObject *obj, guint depth)
{
	g_autoptr(GList) members = NULL;

	if (depth > 200)
		return;
	members = json_object_get_members(obj);
	for (GList *l = members; l != NULL; l = l->next)
		kl_fuzz_json_member(obj, l->data, depth);
	/* and a member that is never there */
	kl_fuzz_json_member(obj, "kl-fuzz-absent-member", depth);
}

static void
kl_fuzz_json_attachment_free(KlPluginAttachment *attachment)
{
	g_free(attachment->member);
	g_bytes_unref(attachment->text);
	g_free(attachment);
}

/* read in pieces of @chunk bytes, the body is @text: three bodies in a row, one cache */
static void
kl_fuzz_json_check_body(JsonObject *obj, const gchar *text, gsize chunk)
{
	g_autoptr(KlJsonBodyCache) cache = kl_json_body_cache_new();
	g_autofree gchar *buf = g_malloc(chunk);
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_fuzz_json_attachment_free);
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *member;

	/* every string member attached from a buffer of its own, the same buffers body after body
	 */
	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member)) {
		KlPluginAttachment *attachment;
		const gchar *s;

		if (!JSON_NODE_HOLDS_VALUE(member) ||
		    json_node_get_value_type(member) != G_TYPE_STRING)
			continue;
		s = json_node_get_string(member);
		attachment = g_new0(KlPluginAttachment, 1);
		attachment->member = g_strdup(name);
		attachment->text = g_bytes_new(s, strlen(s));
		g_ptr_array_add(attachments, attachment);
	}
	for (guint round = 0; round < 3; round++) {
		g_autoptr(KlJsonBody) body = kl_json_body_new();
		g_autoptr(GString) out = g_string_new(NULL);
		gsize n;

		kl_json_body_set_cache(body, cache);
		kl_json_body_append_object_attached(body, obj, attachments);
		kl_json_body_finish(body);
		g_assert_cmpuint(kl_json_body_get_size(body), ==, strlen(text));
		while ((n = kl_json_body_read(body, buf, chunk)) > 0)
			g_string_append_len(out, buf, n);
		g_assert_cmpstr(out->str, ==, text);
	}
}

/*
 * The object memo: the document's raw span is its text; built twice from the
 * same text, the same object; then the serialised text (other spacing, other
 * escapes) through the same memo gives what a fresh build gives.
 */
static void
kl_fuzz_json_memo(const gchar *data, gsize size, const gchar *text)
{
	g_autoptr(KlJsonDoc) doc = kl_json_doc_parse(data, size, NULL);
	g_autoptr(KlJsonDoc) doc2 = kl_json_doc_parse(text, strlen(text), NULL);
	g_autoptr(KlJsonObjectMemo) memo = kl_json_object_memo_new();
	g_autoptr(JsonObject) a = NULL;
	g_autoptr(JsonObject) b = NULL;
	g_autoptr(JsonObject) c = NULL;
	g_autoptr(JsonObject) fresh = NULL;
	gsize start = 0;
	gsize len = 0;

	g_assert_nonnull(doc);
	g_assert_true(kl_json_doc_get_raw(doc, 0, &start, &len));
	g_assert_true(data[start] == '{' && data[start + len - 1] == '}');
	for (gsize i = 0; i < start; i++)
		g_assert_true(g_ascii_isspace(data[i]));
	for (gsize i = start + len; i < size; i++)
		g_assert_true(g_ascii_isspace(data[i]));
	a = kl_json_object_memo_build(memo, doc, 0, data);
	b = kl_json_object_memo_build(memo, doc, 0, data);
	g_assert_true(a == b);
	g_assert_true(json_object_is_immutable(a));
	if (doc2 == NULL)
		return; /* doubles json-glib writes as invalid JSON */
	c = kl_json_object_memo_build(memo, doc2, 0, text);
	fresh = kl_json_object_memo_build(NULL, doc2, 0, text);
	g_assert_true(json_object_equal(c, fresh));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) obj = NULL;
	g_autofree gchar *text = NULL;
	g_autoptr(GBytes) bytes = NULL;
	g_autofree gchar *str = NULL;

	obj = kl_json_parse_object((const gchar *)data, (gssize)size, &error);
	kl_fuzz_report(obj != NULL);
	if (obj == NULL) {
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	} else {
		g_assert_no_error(error);
		kl_fuzz_json_has_double = FALSE;
		kl_fuzz_json_walk(obj, 0);
		/* what we serialize, we parse back (the agent itself never emits doubles) */
		text = kl_json_object_to_string(obj, NULL);
		kl_fuzz_json_check_body(obj, text, 1 + size % 13);
		kl_fuzz_json_memo((const gchar *)data, size, text);
		if (!kl_fuzz_json_has_double) {
			/* the agent's writer says what json-glib's generator says */
			g_autoptr(JsonGenerator) generator = json_generator_new();
			g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), obj);
			g_autofree gchar *generated = NULL;
			g_auto(GStrv) parts = NULL;
			g_autofree gchar *reference = NULL;

			json_generator_set_root(generator, root);
			generated = json_generator_to_data(generator, NULL);
			/*
			 * but for U+001F, which json-glib 1.6 writes unescaped (invalid
			 * JSON): a raw 0x1f in its output can only be that character of a
			 * string, so escape it there (not the other way round: "\\u001f"
			 * in our text may be an escaped backslash followed by "u001f")
			 */
			parts = g_strsplit(generated, "\x1f", -1);
			reference = g_strjoinv("\\u001f", parts);
			g_assert_cmpstr(text, ==, reference);
		}
		{
			/* json-glib's parser reads the same document into the same tree */
			g_autoptr(JsonParser) parser = json_parser_new();
			g_autoptr(JsonGenerator) generator = json_generator_new();
			g_autoptr(JsonNode) ours = json_node_init_object(json_node_alloc(), obj);
			g_autofree gchar *ours_text = NULL;
			g_autofree gchar *theirs_text = NULL;

			g_assert_true(json_parser_load_from_data(
			    parser, (const gchar *)data, (gssize)size, NULL));
			json_generator_set_root(generator, json_parser_get_root(parser));
			theirs_text = json_generator_to_data(generator, NULL);
			json_generator_set_root(generator, ours);
			ours_text = json_generator_to_data(generator, NULL);
			g_assert_cmpstr(ours_text, ==, theirs_text);
		}
		g_clear_pointer(&obj, json_object_unref);
		obj = kl_json_parse_object(text, -1, &error);
		if (!kl_fuzz_json_has_double) {
			g_assert_no_error(error);
			g_assert_nonnull(obj);
		}
	}
	g_clear_error(&error);

	/* the same bytes as base64 text */
	str = g_strndup((const gchar *)data, size);
	bytes = kl_base64_decode_strict(str, &error);
	if (bytes != NULL) {
		g_autofree gchar *again =
		    g_base64_encode(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));

		/* strict decoding accepts only the canonical encoding */
		g_assert_cmpstr(again, ==, str);
	}
	return 0;
}
