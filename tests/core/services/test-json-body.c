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
#include "kl-json-private.h"
#include "kl-plugin-context-private.h"

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

/* @obj written from the tree */
static void
check_document(JsonObject *obj)
{
	g_autofree gchar *want = kl_json_object_to_string(obj, NULL);
	g_autoptr(KlJsonBody) plain = kl_json_body_new();

	kl_json_body_set_root(plain, obj);
	assert_body(plain, want);
}

static void
attachment_free(KlPluginAttachment *attachment)
{
	g_free(attachment->member);
	g_bytes_unref(attachment->text);
	g_free(attachment);
}

static void
add_attachment(GPtrArray *attachments, const gchar *member, GBytes *text)
{
	KlPluginAttachment *attachment = g_new0(KlPluginAttachment, 1);

	attachment->member = g_strdup(member);
	attachment->text = g_bytes_ref(text);
	g_ptr_array_add(attachments, attachment);
}

/*
 * @obj with strings attached by member name (every other member of @obj, of
 * any type, and two it does not have): the text of @obj after
 * json_object_set_string_member() of each, and @obj unchanged
 */
static void
check_attached_members(JsonObject *obj)
{
	g_autofree gchar *before = kl_json_object_to_string(obj, NULL);
	g_autoptr(JsonObject) set = json_object_new();
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autofree gchar *want = NULL;
	g_autofree gchar *after = NULL;
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *member;
	guint i = 0;

	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member))
		json_object_set_member(set, name, json_node_copy(member));
	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member)) {
		g_autofree gchar *text = g_strdup_printf("%s: \"attached\"\t\xc3\xa9\x01", name);
		g_autoptr(GBytes) bytes = g_bytes_new(text, strlen(text));

		if (i++ % 2 != 0)
			continue;
		json_object_set_string_member(set, name, text);
		add_attachment(attachments, name, bytes);
	}
	for (guint k = 0; k < 2; k++) {
		const gchar *extra = k == 0 ? "extra \"member\"\n" : "";
		const gchar *text = k == 0 ? "" : "second\\extra";
		g_autoptr(GBytes) bytes = g_bytes_new(text, strlen(text));

		if (json_object_has_member(obj, extra))
			continue;
		json_object_set_string_member(set, extra, text);
		add_attachment(attachments, extra, bytes);
	}
	want = kl_json_object_to_string(set, NULL);

	kl_json_body_append_raw(body, "[");
	kl_json_body_append_object_attached(body, obj, attachments);
	kl_json_body_append_raw(body, ",");
	kl_json_body_append_object_attached(body, obj, NULL);
	kl_json_body_append_raw(body, "]");
	kl_json_body_finish(body);
	{
		g_autofree gchar *both = g_strconcat("[", want, ",", before, "]", NULL);

		assert_body(body, both);
	}
	after = kl_json_object_to_string(obj, NULL);
	g_assert_cmpstr(after, ==, before);
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
			check_attached_members(obj);
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
		JsonObject *data = json_object_new();
		JsonObject *data2 = json_object_new();
		g_autoptr(KlJsonBody) tree = kl_json_body_new();
		g_autoptr(KlJsonBody) attached = kl_json_body_new();
		g_autofree gchar *want = NULL;
		g_autoptr(GPtrArray) attachments =
		    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);

		/* the evidence as a tree with the text copied in */
		json_object_set_string_member(data, "entries", log->str);
		json_object_set_int_member(data, "entry_count", 3);
		json_object_set_object_member(tree_doc, "data", data);
		json_object_set_string_member(tree_doc, "after", "x");
		want = kl_json_object_to_string(tree_doc, NULL);
		kl_json_body_set_root(tree, tree_doc);
		assert_body(tree, want);

		/* the same with the text attached to the data object's placeholder */
		json_object_set_null_member(data2, "entries");
		json_object_set_int_member(data2, "entry_count", 3);
		add_attachment(attachments, "entries", bytes);
		kl_json_body_append_raw(attached, "{\"data\":");
		kl_json_body_append_object_attached(attached, data2, attachments);
		kl_json_body_append_raw(attached, ",\"after\":\"x\"}");
		kl_json_body_finish(attached);
		assert_body(attached, want);
		json_object_unref(data2);
	}
}

static void
test_attached_edge_cases(void)
{
	g_autoptr(JsonObject) doc = json_object_new();
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autoptr(GBytes) empty = g_bytes_new("", 0);
	g_autoptr(GBytes) nul = g_bytes_new("a\0b", 3);
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);

	json_object_set_null_member(doc, "empty");
	json_object_set_string_member(doc, "nul", "replaced");
	json_object_set_int_member(doc, "n", 5);
	add_attachment(attachments, "empty", empty);
	add_attachment(attachments, "nul", nul);
	add_attachment(attachments, "again", nul);
	kl_json_body_append_object_attached(body, doc, attachments);
	kl_json_body_finish(body);
	/* a NUL byte inside an attached text is escaped, never a cut */
	assert_body(body, "{\"empty\":\"\",\"nul\":\"a\\u0000b\",\"n\":5,\"again\":\"a\\u0000b\"}");
}

/* the writer's escapes, byte by byte (the reference for the 8/16/32-byte scans) */
static void
reference_escape(GString *out, const guchar *s, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		switch (s[i]) {
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '\b':
			g_string_append(out, "\\b");
			break;
		case '\f':
			g_string_append(out, "\\f");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (s[i] < 0x20 || s[i] == 0x7f)
				g_string_append_printf(out, "\\u%04x", s[i]);
			else
				g_string_append_c(out, (gchar)s[i]);
		}
	}
}

/* {"s":"<@s>"} as the body writes it, attached, against the reference */
static void
check_escaped(const guchar *s, gsize len)
{
	g_autoptr(JsonObject) doc = json_object_new();
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autoptr(GBytes) text = g_bytes_new(s, len);
	g_autoptr(GString) want = g_string_new("{\"s\":\"");
	g_autofree gchar *got = NULL;
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);

	reference_escape(want, s, len);
	g_string_append(want, "\"}");
	add_attachment(attachments, "s", text);
	kl_json_body_append_object_attached(body, doc, attachments);
	kl_json_body_finish(body);
	got = kl_json_body_to_string(body, NULL);
	g_assert_cmpstr(got, ==, want->str);
	/* and from a tree, where the string is a C string */
	if (memchr(s, 0, len) == NULL) {
		g_autoptr(JsonObject) tree = json_object_new();
		g_autofree gchar *c = g_strndup((const gchar *)s, len);
		g_autofree gchar *written = NULL;

		json_object_set_string_member(tree, "s", c);
		written = kl_json_object_to_string(tree, NULL);
		g_assert_cmpstr(written, ==, want->str);
	}
}

static void
test_escape_positions(void)
{
	/* every byte that needs an escape, and the bytes next to them that do not */
	const guchar special[] = { '"', '\\', 0x00, 0x01, '\b', '\n', 0x1f, 0x7f };
	const guchar plain[] = { 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7e, 0x80, 0xc3, 0xff };
	guchar s[100] = { 0 };

	/* lengths across the 8-, 16- and 32-byte blocks, the byte at every place */
	for (gsize len = 0; len <= sizeof(s); len++) {
		for (gsize i = 0; i < len; i++)
			s[i] = plain[i % G_N_ELEMENTS(plain)];
		check_escaped(s, len);
		for (gsize at = 0; at < len; at++) {
			for (guint k = 0; k < G_N_ELEMENTS(special); k++) {
				guchar keep = s[at];

				s[at] = special[k];
				check_escaped(s, len);
				/* and a second one further on */
				if (at + 17 < len) {
					guchar keep2 = s[at + 17];

					s[at + 17] = special[(k + 3) % G_N_ELEMENTS(special)];
					check_escaped(s, len);
					s[at + 17] = keep2;
				}
				s[at] = keep;
			}
		}
	}
}

/* the same with the scans of x86-64's baseline (SSE2), where the CPU has AVX2 */
static void
test_escape_baseline(void)
{
	gboolean avx2 = kl_json_escape_use_avx2(TRUE);

	g_test_message("AVX2 %s", avx2 ? "used" : "not available");
	kl_json_escape_use_avx2(FALSE);
	test_escape_positions();
	test_large_strings();
	kl_json_escape_use_avx2(TRUE);
}

static guint texts_freed;

static void
count_free(gpointer data)
{
	texts_freed++;
	g_free(data);
}

/* a text of @len bytes in a buffer of its own whose release is counted */
static GBytes *
counted_text(gsize len, gboolean escapes, gchar fill)
{
	gchar *buf = g_malloc(len);

	memset(buf, fill, len);
	if (escapes) {
		for (gsize i = 37; i < len; i += 101)
			buf[i] = (i / 101) % 2 == 0 ? '\n' : '"';
	}
	return g_bytes_new_with_free_func(buf, len, count_free, buf);
}

/* {"a":<text>,"n":1} laid out with @cache; checked against the same tree written plainly */
static void
check_cached_body(KlJsonBodyCache *cache, GBytes *text)
{
	g_autoptr(JsonObject) doc = json_object_new();
	g_autoptr(JsonObject) plain = json_object_new();
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autofree gchar *copy = NULL;
	g_autofree gchar *want = NULL;
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);
	gsize len = 0;
	const gchar *data = g_bytes_get_data(text, &len);

	copy = g_strndup(data, len);
	json_object_set_string_member(plain, "a", copy);
	json_object_set_int_member(plain, "n", 1);
	want = kl_json_object_to_string(plain, NULL);

	json_object_set_null_member(doc, "a");
	json_object_set_int_member(doc, "n", 1);
	kl_json_body_set_cache(body, cache);
	add_attachment(attachments, "a", text);
	kl_json_body_append_object_attached(body, doc, attachments);
	kl_json_body_finish(body);
	assert_body(body, want);
	/* sent: it reads as empty, its buffer serves the next body */
	kl_json_body_release(body);
	g_assert_cmpuint(kl_json_body_get_size(body), ==, 0);
	{
		gchar buf[8];

		g_assert_cmpuint(kl_json_body_read(body, buf, sizeof(buf)), ==, 0);
	}
}

static void
test_cache(void)
{
	const gsize sizes[] = { KL_JSON_BODY_CACHE_MIN, 5000, KL_JSON_BODY_IN_PLACE_MIN + 1 };

	for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
		for (guint escapes = 0; escapes < 2; escapes++) {
			g_autoptr(KlJsonBodyCache) cache = kl_json_body_cache_new();
			GBytes *log = counted_text(sizes[s % G_N_ELEMENTS(sizes)], escapes, 'Q');
			GBytes *other = NULL;
			GBytes *alias = NULL;

			texts_freed = 0;
			/* seen once: remembered, not kept */
			check_cached_body(cache, log);
			g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 0);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 0);
			/* back at the same place: kept (a reference), still scanned */
			check_cached_body(cache, log);
			g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 1);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 0);
			/* from now on not scanned: the body is the same */
			check_cached_body(cache, log);
			check_cached_body(cache, log);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 2);
			/*
			 * the same bytes in another GBytes is another text for the
			 * cache (it only knows the objects it holds)
			 */
			alias = g_bytes_new_with_free_func(g_bytes_get_data(log, NULL),
							   sizes[s % G_N_ELEMENTS(sizes)],
							   (GDestroyNotify)g_bytes_unref,
							   g_bytes_ref(log));
			check_cached_body(cache, alias);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 2);
			g_bytes_unref(alias);
			/* it dropped the one it held: seen, kept, then not scanned again */
			g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 0);
			check_cached_body(cache, log);
			check_cached_body(cache, log);
			check_cached_body(cache, log);
			g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 1);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 3);
			/* the plugin lets go of it: the cache keeps it while it may come back */
			g_bytes_unref(log);
			g_assert_cmpuint(texts_freed, ==, 0);

			/*
			 * another text of the same length with the other escapes: its own
			 * size, whatever the cache knew (a stale size would cut or pad it)
			 */
			other = counted_text(sizes[s % G_N_ELEMENTS(sizes)], !escapes, 'Z');
			check_cached_body(cache, other);
			/* the first body without it drops it */
			g_assert_cmpuint(texts_freed, ==, 1);
			check_cached_body(cache, other);
			check_cached_body(cache, other);
			g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 4);
			g_bytes_unref(other);
			g_assert_cmpuint(texts_freed, ==, 1);
			g_clear_pointer(&cache, kl_json_body_cache_free);
			g_assert_cmpuint(texts_freed, ==, 2);
		}
	}
}

static void
test_cache_small_and_new_texts(void)
{
	g_autoptr(KlJsonBodyCache) cache = kl_json_body_cache_new();

	texts_freed = 0;
	/* a new text every body (a log's new lines): never kept alive */
	for (guint i = 0; i < 5; i++) {
		GBytes *lines = counted_text(4000 + i, TRUE, 'L');

		check_cached_body(cache, lines);
		g_bytes_unref(lines);
		g_assert_cmpuint(texts_freed, ==, i + 1);
	}
	/* below the minimum: not remembered */
	{
		GBytes *small = counted_text(KL_JSON_BODY_CACHE_MIN - 1, TRUE, 's');

		for (guint i = 0; i < 3; i++)
			check_cached_body(cache, small);
		g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 0);
		g_bytes_unref(small);
		g_assert_cmpuint(texts_freed, ==, 6);
	}
	g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 0);
}

/* one text attached to two members of a body, body after body */
static void
test_cache_twice_in_one_body(void)
{
	g_autoptr(KlJsonBodyCache) cache = kl_json_body_cache_new();
	g_autoptr(GBytes) text = counted_text(3000, TRUE, 'T');
	gsize len = 0;
	const gchar *data = g_bytes_get_data(text, &len);
	g_autofree gchar *copy = g_strndup(data, len);
	g_autoptr(JsonObject) plain = json_object_new();
	g_autofree gchar *want = NULL;

	json_object_set_string_member(plain, "a", copy);
	json_object_set_string_member(plain, "b", copy);
	want = kl_json_object_to_string(plain, NULL);
	for (guint round = 0; round < 4; round++) {
		g_autoptr(JsonObject) doc = json_object_new();
		g_autoptr(KlJsonBody) body = kl_json_body_new();
		g_autoptr(GPtrArray) attachments =
		    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);

		json_object_set_null_member(doc, "a");
		json_object_set_null_member(doc, "b");
		kl_json_body_set_cache(body, cache);
		add_attachment(attachments, "a", text);
		add_attachment(attachments, "b", text);
		kl_json_body_append_object_attached(body, doc, attachments);
		kl_json_body_finish(body);
		assert_body(body, want);
	}
	g_assert_cmpuint(kl_json_body_cache_get_pinned(cache), ==, 1);
	/* round 2 (kept at its first member, known at its second), rounds 3 and 4 (both) */
	g_assert_cmpuint(kl_json_body_cache_get_hits(cache), ==, 5);
}

/* the document in pieces is the document whole */
static void
test_pieces(void)
{
	g_autoptr(JsonObject) a = json_object_new();
	g_autoptr(JsonObject) b = json_object_new();
	g_autoptr(JsonObject) whole = json_object_new();
	g_autoptr(JsonArray) list = json_array_new();
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autoptr(GString) log = synthetic_log(3000);
	g_autoptr(GBytes) text = g_bytes_new(log->str, log->len);
	g_autofree gchar *want = NULL;
	g_autoptr(GPtrArray) attachments =
	    g_ptr_array_new_with_free_func((GDestroyNotify)attachment_free);

	json_object_set_string_member(a, "evidence_type", "x\"y");
	json_object_set_null_member(a, "entries");
	json_object_set_int_member(b, "n", -7);
	add_attachment(attachments, "entries", text);
	kl_json_body_append_raw(body, "{\"data\":[");
	kl_json_body_append_object_attached(body, a, attachments);
	kl_json_body_append_raw(body, ",");
	kl_json_body_append_object(body, b);
	kl_json_body_append_raw(body, "]}");
	kl_json_body_finish(body);

	json_object_set_string_member(a, "entries", log->str);
	json_array_add_object_element(list, json_object_ref(a));
	json_array_add_object_element(list, json_object_ref(b));
	json_object_set_array_member(whole, "data", json_array_ref(list));
	want = kl_json_object_to_string(whole, NULL);
	assert_body(body, want);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/json-body/corpus", test_corpus);
	g_test_add_func("/json-body/large-strings", test_large_strings);
	g_test_add_func("/json-body/attached-edge-cases", test_attached_edge_cases);
	g_test_add_func("/json-body/escape-positions", test_escape_positions);
	g_test_add_func("/json-body/escape-baseline", test_escape_baseline);
	g_test_add_func("/json-body/pieces", test_pieces);
	g_test_add_func("/json-body/cache", test_cache);
	g_test_add_func("/json-body/cache-small-and-new-texts", test_cache_small_and_new_texts);
	g_test_add_func("/json-body/cache-twice-in-one-body", test_cache_twice_in_one_body);
	return g_test_run();
}
