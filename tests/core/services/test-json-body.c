/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * KlJsonBody: the evidence body written while it is sent must be, byte for
 * byte, what kl_json_object_to_string() writes for the same tree, whatever
 * the reads' sizes, wherever it is rewound to, with the large strings taken
 * from the tree or attached from another buffer.
 */
#include "config.h"

#include <string.h>

#include <keylime-agent/keylime-agent-plugin.h>

#include "kl-json-body.h"
#include "kl-test-json-strings.h"

/* reads the whole body in pieces of @chunk bytes */
static gchar *
read_all(KlJsonBody *body, gsize chunk, gsize *len)
{
	GString *out = g_string_new(NULL);
	gchar *buf = g_malloc(chunk);
	gsize n;

	g_assert_true(kl_json_body_seek(body, 0));
	while ((n = kl_json_body_read(body, buf, chunk)) > 0)
		g_string_append_len(out, buf, n);
	g_free(buf);
	*len = out->len;
	return g_string_free(out, FALSE);
}

/* every way of reading @body gives @want */
static void
assert_body(KlJsonBody *body, const gchar *want)
{
	const gsize chunks[] = { 1, 2, 5, 6, 7, 64, 4096, 65536 };
	gsize want_len = strlen(want);
	g_autofree gchar *whole = NULL;
	gsize len = 0;

	g_assert_cmpuint(kl_json_body_get_size(body), ==, want_len);
	whole = kl_json_body_to_string(body, &len);
	g_assert_cmpuint(len, ==, want_len);
	g_assert_cmpstr(whole, ==, want);
	for (guint i = 0; i < G_N_ELEMENTS(chunks); i++) {
		g_autofree gchar *text = read_all(body, chunks[i], &len);

		g_assert_cmpuint(len, ==, want_len);
		g_assert_true(memcmp(text, want, len) == 0);
	}
	/* rewound anywhere (libcurl sends it again): the rest from there */
	for (guint64 offset = 0; offset <= want_len; offset += 1 + want_len / 37) {
		gchar buf[97];
		gsize got = 0;
		gsize n;

		g_assert_true(kl_json_body_seek(body, offset));
		while ((n = kl_json_body_read(body, buf, sizeof(buf))) > 0) {
			g_assert_cmpuint(offset + got + n, <=, want_len);
			g_assert_true(memcmp(buf, want + offset + got, n) == 0);
			got += n;
		}
		g_assert_cmpuint(offset + got, ==, want_len);
	}
	g_assert_false(kl_json_body_seek(body, want_len + 1));
}

/* @obj written from the tree, then with every string attached from its own buffer */
static void
check_document(JsonObject *obj)
{
	g_autofree gchar *want = kl_json_object_to_string(obj, NULL);
	g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), obj);
	g_autoptr(GPtrArray) strings = g_ptr_array_new();
	g_autoptr(KlJsonBody) plain = kl_json_body_new();
	g_autoptr(KlJsonBody) attached = kl_json_body_new();

	kl_json_body_set_root(plain, obj);
	assert_body(plain, want);

	kl_test_json_string_nodes(root, strings);
	for (guint i = 0; i < strings->len; i++) {
		const gchar *s = json_node_get_string(g_ptr_array_index(strings, i));
		g_autoptr(GBytes) text = g_bytes_new(s, strlen(s));

		kl_json_body_attach(attached, g_ptr_array_index(strings, i), text);
	}
	kl_json_body_set_root(attached, obj);
	assert_body(attached, want);
}

static void
test_corpus(void)
{
	const gchar *dirs[] = { "json", "verifier", "session", "registrar" };
	guint documents = 0;

	for (guint d = 0; d < G_N_ELEMENTS(dirs); d++) {
		g_autofree gchar *path =
		    g_test_build_filename(G_TEST_DIST, "fuzz", "corpus", dirs[d], NULL);
		g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
		const gchar *name;

		g_assert_nonnull(dir);
		while ((name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *file = g_build_filename(path, name, NULL);
			g_autofree gchar *contents = NULL;
			g_autoptr(JsonObject) obj = NULL;
			gsize len = 0;

			g_assert_true(g_file_get_contents(file, &contents, &len, NULL));
			obj = kl_json_parse_object(contents, (gssize)len, NULL);
			if (obj == NULL)
				continue;
			check_document(obj);
			documents++;
		}
	}
	g_test_message("%u documents", documents);
	g_assert_cmpuint(documents, >=, 10);
}

/* lines like an IMA log's, with every byte that needs an escape somewhere */
static GString *
synthetic_log(gsize min_len)
{
	GString *text = g_string_new(NULL);

	for (guint i = 0; text->len < min_len; i++) {
		g_string_append_printf(
		    text, "10 %040x ima-ng sha256:%064x /usr/lib/x%u\n", i, i * 7919u, i);
		if (i % 50 == 0)
			g_string_append(
			    text,
			    "10 00 ima-ng sha256:00 /t\"q\\b\tf\x01\x1f\x7f\r\x0c\b \xc3\xa9\n");
	}
	return text;
}

static void
test_large_strings(void)
{
	/* above and below the size at which a tree string is written in place */
	const gsize sizes[] = {
		100, KL_JSON_BODY_IN_PLACE_MIN - 1, KL_JSON_BODY_IN_PLACE_MIN, 300 * 1024
	};

	for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
		g_autoptr(GString) log = synthetic_log(sizes[i]);
		g_autoptr(GBytes) bytes = g_bytes_new(log->str, log->len);
		g_autoptr(JsonObject) tree_doc = json_object_new();
		g_autoptr(JsonObject) attached_doc = json_object_new();
		JsonObject *data = json_object_new();
		JsonObject *data2 = json_object_new();
		g_autoptr(KlJsonBody) tree = kl_json_body_new();
		g_autoptr(KlJsonBody) attached = kl_json_body_new();
		g_autofree gchar *want = NULL;
		JsonNode *placeholder = json_node_new(JSON_NODE_NULL);

		/* the evidence as a tree with the text copied in */
		json_object_set_string_member(data, "entries", log->str);
		json_object_set_int_member(data, "entry_count", 3);
		json_object_set_object_member(tree_doc, "data", data);
		json_object_set_string_member(tree_doc, "after", "x");
		want = kl_json_object_to_string(tree_doc, NULL);
		kl_json_body_set_root(tree, tree_doc);
		assert_body(tree, want);

		/* the same with the text attached to a placeholder */
		json_object_set_member(data2, "entries", placeholder);
		json_object_set_int_member(data2, "entry_count", 3);
		json_object_set_object_member(attached_doc, "data", data2);
		json_object_set_string_member(attached_doc, "after", "x");
		kl_json_body_attach(attached, placeholder, bytes);
		kl_json_body_set_root(attached, attached_doc);
		assert_body(attached, want);
	}
}

static void
test_attached_edge_cases(void)
{
	g_autoptr(JsonObject) doc = json_object_new();
	g_autoptr(JsonArray) array = json_array_new();
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autoptr(GBytes) empty = g_bytes_new("", 0);
	g_autoptr(GBytes) nul = g_bytes_new("a\0b", 3);
	JsonNode *first = json_node_new(JSON_NODE_NULL);
	JsonNode *second = json_node_init_string(json_node_alloc(), "replaced");
	JsonNode *element = json_node_new(JSON_NODE_NULL);

	json_object_set_member(doc, "empty", first);
	json_object_set_member(doc, "nul", second);
	json_array_add_element(array, element);
	json_array_add_int_element(array, 5);
	json_object_set_array_member(doc, "list", json_array_ref(array));
	kl_json_body_attach(body, first, empty);
	kl_json_body_attach(body, second, nul);
	kl_json_body_attach(body, element, nul);
	kl_json_body_set_root(body, doc);
	/* a NUL byte inside an attached text is escaped, never a cut */
	assert_body(body, "{\"empty\":\"\",\"nul\":\"a\\u0000b\",\"list\":[\"a\\u0000b\",5]}");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/json-body/corpus", test_corpus);
	g_test_add_func("/json-body/large-strings", test_large_strings);
	g_test_add_func("/json-body/attached-edge-cases", test_attached_edge_cases);
	return g_test_run();
}
