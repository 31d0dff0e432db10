/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The strict reader's raw spans, the document a thread keeps for its next
 * parse, and the object memo that reuses what the previous document held byte
 * for byte (and builds everything else).
 */
#include "config.h"

#include <string.h>

#include <keylime-agent/keylime-agent-plugin.h>

#include "kl-json-doc.h"

static KlJsonDoc *
kl_test_doc(const gchar *text)
{
	g_autoptr(GError) error = NULL;
	KlJsonDoc *doc = kl_json_doc_parse(text, strlen(text), &error);

	g_assert_no_error(error);
	g_assert_nonnull(doc);
	return doc;
}

static gchar *
kl_test_raw(KlJsonDoc *doc, guint index, const gchar *input)
{
	gsize start = 0;
	gsize len = 0;

	g_assert_true(kl_json_doc_get_raw(doc, index, &start, &len));
	return g_strndup(input + start, len);
}

/* the raw text of every kind of value, escapes and spaces as they were */
static void
kl_test_raw_spans(void)
{
	const gchar *text = " { \"s\" : \"a\\u0062\\n\" , \"i\":-17, \"d\" :1.5e3,\"t\":true,"
			    "\"f\":false ,\"n\":null,\"a\":[ 1, {\"x\":[]} ],\"o\":{ } } ";
	g_autoptr(KlJsonDoc) doc = kl_test_doc(text);
	const struct {
		const gchar *key;
		const gchar *raw;
	} cases[] = {
		{ "s", "\"a\\u0062\\n\"" },
		{ "i", "-17" },
		{ "d", "1.5e3" },
		{ "t", "true" },
		{ "f", "false" },
		{ "n", "null" },
		{ "a", "[ 1, {\"x\":[]} ]" },
		{ "o", "{ }" },
	};
	g_autofree gchar *root = kl_test_raw(doc, 0, text);
	g_autofree gchar *trimmed = g_strstrip(g_strdup(text));
	gsize start = 0;
	gsize len = 0;

	g_assert_cmpstr(root, ==, trimmed);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint member = kl_json_doc_get_member(doc, 0, cases[i].key);
		g_autofree gchar *raw = kl_test_raw(doc, member, text);

		g_assert_cmpstr(raw, ==, cases[i].raw);
	}
	/* the decoded string is unchanged by it */
	g_assert_cmpstr(
	    kl_json_doc_get_string(doc, kl_json_doc_get_member(doc, 0, "s")), ==, "ab\n");
	g_assert_false(kl_json_doc_get_raw(doc, KL_JSON_DOC_ABSENT, &start, &len));
}

static void
kl_test_refused(const gchar *text, const gchar *message)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlJsonDoc) doc = kl_json_doc_parse(text, strlen(text), &error);

	g_assert_null(doc);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_cmpstr(error->message, ==, message);
}

/*
 * A freed document's memory serves the next parse of the thread: what the
 * previous text left there beyond the new one's end is never read as input.
 */
static void
kl_test_kept_stale_text(void)
{
	const struct {
		const gchar *before;
		const gchar *text; /* a prefix of @before, cut where @before went on */
		const gchar *message;
	} cases[] = {
		{ "{\"a\":\"xyz\"}",
		  "{\"a\":\"xy",
		  "invalid JSON: unterminated string at offset 5" },
		{ "{\"a\":\"0123456789abcdefghijklmnop\"}",
		  "{\"a\":\"0123456789abcdefghij",
		  "invalid JSON: unterminated string at offset 5" },
		{ "{\"a\":\"x\\u0041\"}",
		  "{\"a\":\"x\\u00",
		  "invalid JSON: invalid escape at offset 7" },
		{ "{\"a\":true}", "{\"a\":tru", "invalid JSON: unexpected word at offset 5" },
		{ "{\"a\":null}", "{\"a\":nul", "invalid JSON: unexpected word at offset 5" },
		{ "{\"a\":12345}", "{\"a\":12", "invalid JSON: expected ',' or '}' at offset 7" },
		{ "{\"a\":[1,2]}", "{\"a\":[1,", "invalid JSON: unexpected end at offset 8" },
		{ "{\"a\":1}  ", "{\"a\":1", "invalid JSON: expected ',' or '}' at offset 6" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		KlJsonDoc *doc = kl_test_doc(cases[i].before);

		kl_json_doc_free(doc);
		kl_test_refused(cases[i].text, cases[i].message);
	}
}

/* a smaller document after a larger one holds only its own tokens */
static void
kl_test_kept_smaller(void)
{
	g_autoptr(GString) big = g_string_new("{\"a\":[");
	g_autoptr(KlJsonDoc) doc = NULL;
	KlJsonDoc *first;
	guint z;

	for (guint i = 0; i < 300; i++)
		g_string_append_printf(big, "%s%u", i > 0 ? "," : "", i);
	g_string_append(big,
			"],\"b\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"c\":{\"d\":true}}");
	first = kl_test_doc(big->str);
	g_assert_cmpuint(
	    kl_json_doc_get_length(first, kl_json_doc_get_member(first, 0, "a")), ==, 300);
	kl_json_doc_free(first);

	doc = kl_test_doc("{\"z\":\"y\"}");
	g_assert_cmpuint(kl_json_doc_get_length(doc, 0), ==, 1);
	g_assert_cmpuint(kl_json_doc_get_member(doc, 0, "a"), ==, KL_JSON_DOC_ABSENT);
	g_assert_cmpuint(kl_json_doc_get_member(doc, 0, "b"), ==, KL_JSON_DOC_ABSENT);
	z = kl_json_doc_get_member(doc, 0, "z");
	g_assert_cmpstr(kl_json_doc_get_string(doc, z), ==, "y");
	/* no token beyond its own three */
	g_assert_cmpint(kl_json_doc_get_type(doc, 3), ==, KL_JSON_DOC_NONE);
	g_assert_cmpuint(kl_json_doc_next(doc, 0), ==, 3);
}

/* documents alive at the same time never share memory */
static void
kl_test_kept_alive(void)
{
	KlJsonDoc *a = kl_test_doc("{\"k\":\"first document\"}");
	KlJsonDoc *b;
	KlJsonDoc *c;
	KlJsonDoc *d;

	kl_json_doc_free(a);
	b = kl_test_doc("{\"k\":\"second document\"}");
	c = kl_test_doc("{\"k\":\"third document\"}");
	/* the third document's string is not written over the second's */
	{
		const gchar *sb = kl_json_doc_get_string(b, kl_json_doc_get_member(b, 0, "k"));
		const gchar *sc = kl_json_doc_get_string(c, kl_json_doc_get_member(c, 0, "k"));

		g_assert_true(sb + strlen(sb) < sc || sc + strlen(sc) < sb);
	}
	kl_json_doc_free(c);
	d = kl_test_doc("{\"k\":\"fourth document\"}");
	g_assert_cmpstr(
	    kl_json_doc_get_string(b, kl_json_doc_get_member(b, 0, "k")), ==, "second document");
	g_assert_cmpstr(
	    kl_json_doc_get_string(d, kl_json_doc_get_member(d, 0, "k")), ==, "fourth document");
	kl_json_doc_free(b);
	kl_json_doc_free(d);
}

/* documents too large to keep (text, tokens), between small ones */
static void
kl_test_kept_large(void)
{
	g_autoptr(GString) text = g_string_new("{\"s\":\"");
	g_autoptr(GString) many = g_string_new("{\"n\":[");
	KlJsonDoc *doc;

	for (guint i = 0; i < 40000; i++)
		g_string_append_c(text, (gchar)('a' + i % 26));
	g_string_append(text, "\"}");
	for (guint i = 0; i < 3000; i++)
		g_string_append_printf(many, "%s%u", i > 0 ? "," : "", i % 10);
	g_string_append(many, "]}");

	for (guint round = 0; round < 2; round++) {
		doc = kl_test_doc(text->str);
		g_assert_cmpuint(strlen(kl_json_doc_get_string(doc, 2)), ==, 40000);
		kl_json_doc_free(doc);
		doc = kl_test_doc("{\"x\":1}");
		g_assert_cmpint(kl_json_doc_get_int(doc, 2), ==, 1);
		kl_json_doc_free(doc);
		doc = kl_test_doc(many->str);
		g_assert_cmpuint(kl_json_doc_get_length(doc, 2), ==, 3000);
		g_assert_cmpint(kl_json_doc_get_int(doc, 3000 + 2), ==, 2999 % 10);
		kl_json_doc_free(doc);
	}
}

static gpointer
kl_test_kept_thread(gpointer data)
{
	KlJsonDoc *doc = kl_test_doc(data);

	g_assert_cmpuint(kl_json_doc_get_length(doc, 0), ==, 1);
	kl_json_doc_free(doc);
	return NULL;
}

/* the document a thread keeps goes with the thread (LeakSanitizer checks it) */
static void
kl_test_kept_thread_exit(void)
{
	for (guint i = 0; i < 4; i++) {
		GThread *thread =
		    g_thread_new("kl-test-json", kl_test_kept_thread, (gpointer) "{\"t\":[1,2]}");

		g_thread_join(thread);
	}
}

static gchar *
kl_test_text(JsonObject *obj)
{
	return kl_json_object_to_string(obj, NULL);
}

/* builds the object at member "p" of @text with @memo */
static JsonObject *
kl_test_build(KlJsonObjectMemo *memo, const gchar *text)
{
	g_autoptr(KlJsonDoc) doc = kl_test_doc(text);
	guint p = kl_json_doc_get_member(doc, 0, "p");
	JsonObject *obj;

	g_assert_cmpint(kl_json_doc_get_type(doc, p), ==, KL_JSON_DOC_OBJECT);
	obj = kl_json_object_memo_build(memo, doc, p, text);
	g_assert_nonnull(obj);
	g_assert_true(json_object_is_immutable(obj));
	/* whatever was reused, it is what a fresh build gives */
	{
		g_autoptr(JsonObject) fresh = kl_json_object_memo_build(NULL, doc, p, text);
		g_autofree gchar *a = kl_test_text(obj);
		g_autofree gchar *b = kl_test_text(fresh);

		g_assert_cmpstr(a, ==, b);
		g_assert_true(json_object_equal(obj, fresh));
	}
	return obj;
}

static void
kl_test_memo_same_text(void)
{
	g_autoptr(KlJsonObjectMemo) memo = kl_json_object_memo_new();
	g_autoptr(JsonObject) a = kl_test_build(
	    memo, "{\"x\":1,\"p\":{\"format\":\"application/octet-stream\",\"k\":{\"a\":[1,2]}}}");
	/* the same text elsewhere in another document: the same sealed object */
	g_autoptr(JsonObject) b = kl_test_build(
	    memo,
	    "{\"other\":[true,false],\"p\":{\"format\":\"application/octet-stream\",\"k\":{\"a\":"
	    "[1,2]}}}");

	g_assert_true(a == b);
}

static void
kl_test_memo_changed_member(void)
{
	g_autoptr(KlJsonObjectMemo) memo = kl_json_object_memo_new();
	g_autoptr(JsonObject) a =
	    kl_test_build(memo,
			  "{\"p\":{\"challenge\":\"AAAA\",\"subjects\":{\"sha256\":[0,1,2]},"
			  "\"key\":{\"public\":\"ARgAAQ\"}}}");
	g_autoptr(JsonObject) b =
	    kl_test_build(memo,
			  "{\"p\":{\"challenge\":\"BBBB\",\"subjects\":{\"sha256\":[0,1,2]},"
			  "\"key\":{\"public\":\"ARgAAQ\"}}}");
	g_autoptr(JsonObject) c = NULL;

	/* a new object with the new challenge; the unchanged members are the same nodes */
	g_assert_true(a != b);
	g_assert_cmpstr(json_object_get_string_member(a, "challenge"), ==, "AAAA");
	g_assert_cmpstr(json_object_get_string_member(b, "challenge"), ==, "BBBB");
	g_assert_true(json_object_get_member(a, "subjects") ==
		      json_object_get_member(b, "subjects"));
	g_assert_true(json_object_get_member(a, "key") == json_object_get_member(b, "key"));

	/* a change deep inside a member: that member is built again */
	c = kl_test_build(memo,
			  "{\"p\":{\"challenge\":\"BBBB\",\"subjects\":{\"sha256\":[0,1,3]},"
			  "\"key\":{\"public\":\"ARgAAQ\"}}}");
	g_assert_true(json_object_get_member(b, "subjects") !=
		      json_object_get_member(c, "subjects"));
	g_assert_true(json_object_get_member(b, "key") == json_object_get_member(c, "key"));
	g_assert_true(json_object_get_member(b, "challenge") ==
		      json_object_get_member(c, "challenge"));
	g_assert_cmpint(
	    json_array_get_int_element(json_object_get_array_member(
					   json_object_get_object_member(c, "subjects"), "sha256"),
				       2),
	    ==,
	    3);
}

/* what must not be reused: every difference in the text is honoured */
static void
kl_test_memo_not_reused(void)
{
	const gchar *seq[] = {
		"{\"p\":{\"starting_offset\":100,\"format\":\"text/plain\"}}",
		/* same length, other value */
		"{\"p\":{\"starting_offset\":200,\"format\":\"text/plain\"}}",
		/* members in the other order: positions hold other values */
		"{\"p\":{\"format\":\"text/plain\",\"starting_offset\":200}}",
		/* a member less, a member more */
		"{\"p\":{\"format\":\"text/plain\"}}",
		"{\"p\":{\"format\":\"text/plain\",\"starting_offset\":300,\"entry_count\":5}}",
		/* the same value spelled otherwise: an escape, a space */
		"{\"p\":{\"format\":\"text\\/plain\",\"starting_offset\":300,\"entry_count\":5}}",
		"{\"p\":{\"format\":\"text/plain\", \"starting_offset\":300,\"entry_count\":5}}",
		/* a member twice: the last one counts */
		"{\"p\":{\"format\":\"text/plain\",\"format\":\"x\",\"starting_offset\":300}}",
		/* types change */
		"{\"p\":{\"format\":null,\"format\":\"x\",\"starting_offset\":\"300\"}}",
		"{\"p\":{\"format\":null,\"format\":[\"x\"],\"starting_offset\":3.0e2}}",
		"{\"p\":{}}",
		"{\"p\":{\"starting_offset\":100,\"format\":\"text/plain\"}}",
	};
	g_autoptr(KlJsonObjectMemo) memo = kl_json_object_memo_new();
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) previous = NULL;

	for (guint i = 0; i < G_N_ELEMENTS(seq); i++) {
		JsonObject *obj = kl_test_build(memo, seq[i]);

		/* each text differs from the one before: never the previous object */
		g_assert_true(obj != previous);
		if (first == NULL)
			first = json_object_ref(obj);
		g_clear_pointer(&previous, json_object_unref);
		previous = obj;
	}
	/* the first text again after others: equal, built anew (the memo holds the last) */
	g_assert_true(previous != first);
	g_assert_true(json_object_equal(previous, first));
	g_assert_cmpint(json_object_get_int_member(previous, "starting_offset"), ==, 100);
}

/* the objects handed out stay valid and unchanged when the memo moves on or goes */
static void
kl_test_memo_lifetime(void)
{
	KlJsonObjectMemo *memo = kl_json_object_memo_new();
	g_autoptr(JsonObject) a = kl_test_build(memo, "{\"p\":{\"k\":{\"v\":[1]},\"c\":\"a\"}}");
	g_autoptr(JsonObject) b = kl_test_build(memo, "{\"p\":{\"k\":{\"v\":[1]},\"c\":\"b\"}}");
	g_autoptr(JsonObject) c = kl_test_build(memo, "{\"p\":{\"k\":{\"v\":[2]},\"c\":\"b\"}}");
	g_autofree gchar *ta = NULL;
	g_autofree gchar *tb = NULL;

	kl_json_object_memo_free(memo);
	ta = kl_test_text(a);
	tb = kl_test_text(b);
	g_assert_cmpstr(ta, ==, "{\"k\":{\"v\":[1]},\"c\":\"a\"}");
	g_assert_cmpstr(tb, ==, "{\"k\":{\"v\":[1]},\"c\":\"b\"}");
	g_assert_cmpint(json_object_get_size(c), ==, 2);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/json-doc/raw-spans", kl_test_raw_spans);
	g_test_add_func("/json-doc/kept/stale-text", kl_test_kept_stale_text);
	g_test_add_func("/json-doc/kept/smaller", kl_test_kept_smaller);
	g_test_add_func("/json-doc/kept/alive", kl_test_kept_alive);
	g_test_add_func("/json-doc/kept/large", kl_test_kept_large);
	g_test_add_func("/json-doc/kept/thread-exit", kl_test_kept_thread_exit);
	g_test_add_func("/json-doc/memo/same-text", kl_test_memo_same_text);
	g_test_add_func("/json-doc/memo/changed-member", kl_test_memo_changed_member);
	g_test_add_func("/json-doc/memo/not-reused", kl_test_memo_not_reused);
	g_test_add_func("/json-doc/memo/lifetime", kl_test_memo_lifetime);
	return g_test_run();
}
