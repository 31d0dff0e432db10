/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Checked JSON getters: every type mismatch, missing members, optional
 * variants, strict base64, document parsing.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_test_parse(const gchar *text)
{
	g_autoptr(GError) error = NULL;
	JsonObject *obj = kl_json_parse_object(text, -1, &error);

	g_assert_no_error(error);
	g_assert_nonnull(obj);
	return obj;
}

static const gchar *kl_test_doc = "{"
				  "\"s\":\"text\","
				  "\"i\":-17,"
				  "\"big\":9007199254740993,"
				  "\"d\":1.5,"
				  "\"e\":1e3,"
				  "\"t\":true,"
				  "\"f\":false,"
				  "\"n\":null,"
				  "\"o\":{\"k\":1},"
				  "\"a\":[1,2],"
				  "\"si\":\"12\","
				  "\"b64\":\"aGVsbG8=\","
				  "\"badb64\":\"aGVsbG8\""
				  "}";

/* every member of kl_test_doc that is not of the wanted kind */
static void
kl_test_all_mismatches(const gchar *const *good,
		       gboolean (*get)(JsonObject *, const gchar *, GError **))
{
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	const gchar *members[] = { "s", "i", "big", "d", "e", "t", "f", "n", "o", "a", "si", NULL };

	for (guint i = 0; members[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *prefix = g_strdup_printf("member \"%s\" must be ", members[i]);
		gboolean ok = get(obj, members[i], &error);

		if (g_strv_contains(good, members[i])) {
			g_assert_no_error(error);
			g_assert_true(ok);
			continue;
		}
		g_assert_false(ok);
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		/* the message names the member */
		g_assert_true(g_str_has_prefix(error->message, prefix));
	}
	/* a missing member is an error naming it */
	{
		g_autoptr(GError) error = NULL;

		g_assert_false(get(obj, "absent", &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_cmpstr(error->message, ==, "member \"absent\" is missing");
	}
}

static gboolean
kl_test_get_string_cb(JsonObject *obj, const gchar *key, GError **error)
{
	return kl_json_object_get_string(obj, key, error) != NULL;
}

static gboolean
kl_test_get_int_cb(JsonObject *obj, const gchar *key, GError **error)
{
	gint64 v = 0;

	return kl_json_object_get_int(obj, key, &v, error);
}

static gboolean
kl_test_get_bool_cb(JsonObject *obj, const gchar *key, GError **error)
{
	gboolean v = FALSE;

	return kl_json_object_get_bool(obj, key, &v, error);
}

static gboolean
kl_test_get_object_cb(JsonObject *obj, const gchar *key, GError **error)
{
	return kl_json_object_get_object(obj, key, error) != NULL;
}

static gboolean
kl_test_get_array_cb(JsonObject *obj, const gchar *key, GError **error)
{
	return kl_json_object_get_array(obj, key, error) != NULL;
}

static void
kl_test_string(void)
{
	const gchar *good[] = { "s", "si", NULL };
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;

	kl_test_all_mismatches(good, kl_test_get_string_cb);
	g_assert_cmpstr(kl_json_object_get_string(obj, "s", &error), ==, "text");
	g_assert_no_error(error);
}

static void
kl_test_int(void)
{
	const gchar *good[] = { "i", "big", NULL };
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;
	gint64 v = 0;

	kl_test_all_mismatches(good, kl_test_get_int_cb);
	g_assert_true(kl_json_object_get_int(obj, "i", &v, &error));
	g_assert_cmpint(v, ==, -17);
	/* above 2^53: kept exactly, not through a double */
	g_assert_true(kl_json_object_get_int(obj, "big", &v, &error));
	g_assert_cmpint(v, ==, G_GINT64_CONSTANT(9007199254740993));

	/* doubles and strings are not integers, and the message says what was found */
	g_assert_false(kl_json_object_get_int(obj, "d", &v, &error));
	g_assert_cmpstr(
	    error->message,
	    ==,
	    "member \"d\" must be an integer, not a number with a fraction or exponent");
	g_clear_error(&error);
	g_assert_false(kl_json_object_get_int(obj, "si", &v, &error));
	g_assert_cmpstr(error->message, ==, "member \"si\" must be an integer, not a string");
}

static void
kl_test_bool(void)
{
	const gchar *good[] = { "t", "f", NULL };
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;
	gboolean v = FALSE;

	kl_test_all_mismatches(good, kl_test_get_bool_cb);
	g_assert_true(kl_json_object_get_bool(obj, "t", &v, &error));
	g_assert_true(v);
	g_assert_true(kl_json_object_get_bool(obj, "f", &v, &error));
	g_assert_false(v);
}

static void
kl_test_object_array(void)
{
	const gchar *good_o[] = { "o", NULL };
	const gchar *good_a[] = { "a", NULL };
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;
	JsonObject *o;
	JsonArray *a;

	kl_test_all_mismatches(good_o, kl_test_get_object_cb);
	kl_test_all_mismatches(good_a, kl_test_get_array_cb);
	o = kl_json_object_get_object(obj, "o", &error);
	g_assert_true(json_object_has_member(o, "k"));
	a = kl_json_object_get_array(obj, "a", &error);
	g_assert_cmpuint(json_array_get_length(a), ==, 2);
	/* null is not an object */
	g_assert_null(kl_json_object_get_object(obj, "n", &error));
	g_assert_cmpstr(error->message, ==, "member \"n\" must be an object, not null");
}

static void
kl_test_optional(void)
{
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;
	const gchar *s = "unchanged";
	gint64 v = 0;

	/* missing and null give the default */
	g_assert_true(kl_json_object_get_optional_int(obj, "absent", 7, &v, &error));
	g_assert_cmpint(v, ==, 7);
	g_assert_true(kl_json_object_get_optional_int(obj, "n", 8, &v, &error));
	g_assert_cmpint(v, ==, 8);
	g_assert_true(kl_json_object_get_optional_int(obj, "i", 8, &v, &error));
	g_assert_cmpint(v, ==, -17);
	g_assert_no_error(error);
	/* present with the wrong type is an error */
	g_assert_false(kl_json_object_get_optional_int(obj, "d", 8, &v, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	g_assert_false(kl_json_object_get_optional_int(obj, "s", 8, &v, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);

	g_assert_true(kl_json_object_get_optional_string(obj, "absent", &s, &error));
	g_assert_null(s);
	s = "unchanged";
	g_assert_true(kl_json_object_get_optional_string(obj, "n", &s, &error));
	g_assert_null(s);
	g_assert_true(kl_json_object_get_optional_string(obj, "s", &s, &error));
	g_assert_cmpstr(s, ==, "text");
	g_assert_no_error(error);
	g_assert_false(kl_json_object_get_optional_string(obj, "i", &s, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_cmpstr(error->message, ==, "member \"i\" must be a string, not an integer");
}

static void
kl_test_base64_member(void)
{
	g_autoptr(JsonObject) obj = kl_test_parse(kl_test_doc);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) bytes = NULL;

	bytes = kl_json_object_get_base64(obj, "b64", &error);
	g_assert_no_error(error);
	g_assert_cmpmem(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes), "hello", 5);

	g_assert_null(kl_json_object_get_base64(obj, "badb64", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_true(g_str_has_prefix(error->message, "member \"badb64\": invalid base64"));
	g_clear_error(&error);
	g_assert_null(kl_json_object_get_base64(obj, "i", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	g_assert_null(kl_json_object_get_base64(obj, "absent", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

static void
kl_test_base64_strict(void)
{
	struct {
		const gchar *text;
		const gchar *decoded; /* NULL: must be rejected */
		gsize len;
	} cases[] = {
		{ "", "", 0 },
		{ "Zg==", "f", 1 },
		{ "Zm8=", "fo", 2 },
		{ "Zm9v", "foo", 3 },
		{ "Zm9vYg==", "foob", 4 },
		{ "AP8=", "\x00\xff", 2 },
		{ "+/+/", "\xfb\xff\xbf", 3 },
		{ "Zm9", NULL, 0 },	      /* length */
		{ "Zg=", NULL, 0 },	      /* length */
		{ "Zg", NULL, 0 },	      /* missing padding */
		{ "Z===", NULL, 0 },	      /* too much padding */
		{ "====", NULL, 0 },	      /* only padding */
		{ "Zg==Zg==", NULL, 0 },      /* padding in the middle */
		{ "Zm=v", NULL, 0 },	      /* padding in the middle of a quantum */
		{ "Zm9v\n", NULL, 0 },	      /* whitespace */
		{ "Zm 9v", NULL, 0 },	      /* whitespace */
		{ "Zm9-", NULL, 0 },	      /* url-safe alphabet */
		{ "Zm9_", NULL, 0 },	      /* url-safe alphabet */
		{ "Zh==", NULL, 0 },	      /* non-zero bits before the padding */
		{ "Zm9=", NULL, 0 },	      /* non-zero bits before the padding */
		{ "Zm9v\xc3\xa9=", NULL, 0 }, /* non-ASCII */
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) bytes = kl_base64_decode_strict(cases[i].text, &error);

		if (cases[i].decoded == NULL) {
			if (bytes != NULL)
				g_test_message("\"%s\" was accepted", cases[i].text);
			g_assert_null(bytes);
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
			g_assert_true(g_str_has_prefix(error->message, "invalid base64: "));
			continue;
		}
		g_assert_no_error(error);
		g_assert_nonnull(bytes);
		g_assert_cmpmem(g_bytes_get_data(bytes, NULL),
				g_bytes_get_size(bytes),
				cases[i].decoded,
				cases[i].len);
	}
}

static void
kl_test_parse_object(void)
{
	const gchar *bad[] = {
		"",
		"   ",
		"[]",
		"[{\"a\":1}]",
		"\"string\"",
		"42",
		"null",
		"true",
		"{",
		"{\"a\":}",
		"{\"a\":1} trailing",
		"{'a':1}",
		"{\"a\":1 /* comment */}",
		"{\"a\":1} // comment",
		"{\"a\":NaN}",
		"{\"a\":0x10}",
		"{\"a\":\"raw\nnewline\"}",
		"{\"a\":\"\\x41\"}",
		"{\"a\":\"\\u12\"}",
		"{\"a\":\"\\u0000\"}",
		"{\"\\u0000\":1}",
		"{\"a\":\"\\ud83d\"}",
		"{\"a\":\"\\ud83du\\de00\"}",
		"{\"a\":\"\\ude00\"}",
		"{\"a\":\"\\ud83d\\u0041\"}",
		"{\"a\":\"\\",
		"{\"a\":12345678901234567890123}",
		"{\"a\":9223372036854775808}",
		"{\"a\":-9223372036854775809}",
		"{\"a\":1e400}",
		"{\"a\":-1e400}",
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":.5}",
		"{\"a\":+1}",
		"{\"a\":1e}",
		"{\"a\":-}",
		"{\"a\":tru}",
		"{\"a\":nul}",
		"{\"a\":True}",
		"{\"a\":truex}",
		"{\"a\":1x}",
		"{\"a\":1\"b\"}",
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) obj = NULL;
	g_autofree gchar *deep = NULL;
	g_autofree gchar *text = NULL;
	GString *nest = g_string_new("{\"a\":");

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(JsonObject) o = kl_json_parse_object(bad[i], -1, &error);

		if (o != NULL)
			g_test_message("\"%s\" was accepted", bad[i]);
		g_assert_null(o);
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_true(g_str_has_prefix(error->message, "invalid JSON: "));
		g_clear_error(&error);
	}
	/* not an object: the message says what it was */
	g_assert_null(kl_json_parse_object("[1]", -1, &error));
	g_assert_cmpstr(
	    error->message, ==, "invalid JSON: the document must be an object, not an array");
	g_clear_error(&error);

	/* explicit length: bytes after it are ignored, embedded NULs refused */
	obj = kl_json_parse_object("{\"a\":1}garbage", 7, &error);
	g_assert_no_error(error);
	g_assert_true(json_object_has_member(obj, "a"));
	g_assert_null(kl_json_parse_object("{\"a\":1}\0", 8, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	g_assert_null(kl_json_parse_object("{\"a\":\"\xff\"}", -1, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);

	/* pathological nesting is refused before the recursive parser sees it */
	for (guint i = 0; i < 10000; i++)
		g_string_append_c(nest, '[');
	deep = g_string_free(nest, FALSE);
	g_assert_null(kl_json_parse_object(deep, -1, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, "nested deeper"));
	g_clear_error(&error);
	/* brackets inside strings do not count */
	{
		GString *s = g_string_new("{\"a\":\"");

		for (guint i = 0; i < 1000; i++)
			g_string_append_c(s, '[');
		g_string_append(s, "\\\"\"}");
		g_clear_pointer(&obj, json_object_unref);
		obj = kl_json_parse_object(s->str, -1, &error);
		g_assert_no_error(error);
		g_string_free(s, TRUE);
	}

	/* the extremes of gint64 and tiny numbers are fine */
	g_clear_pointer(&obj, json_object_unref);
	obj = kl_json_parse_object("{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
				   "\"tiny\":1e-400,\"z\":-0,\"f\":-0.5E+2,\"t\":true,\"n\":null}",
				   -1,
				   &error);
	g_assert_no_error(error);
	{
		gint64 v = 0;

		g_assert_true(kl_json_object_get_int(obj, "max", &v, &error));
		g_assert_cmpint(v, ==, G_MAXINT64);
		g_assert_true(kl_json_object_get_int(obj, "min", &v, &error));
		g_assert_cmpint(v, ==, G_MININT64);
	}

	/* escapes that are well-formed decode to valid UTF-8 */
	g_clear_pointer(&obj, json_object_unref);
	obj = kl_json_parse_object("{\"a\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\"}", -1, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(
	    kl_json_object_get_string(obj, "a", &error), ==, "\xc3\xa9\xf0\x9f\x98\x80\n\"/");

	/* round trip through the compact serializer */
	g_clear_pointer(&obj, json_object_unref);
	obj = kl_json_parse_object("{ \"b\" : [ 1 , \"x\" ], \"a\" : { } }", -1, &error);
	g_assert_no_error(error);
	text = kl_json_object_to_string(obj, NULL);
	g_assert_cmpstr(text, ==, "{\"b\":[1,\"x\"],\"a\":{}}");
}

static void
kl_test_error_quark(void)
{
	g_assert_cmpstr(g_quark_to_string(KL_ERROR), ==, "kl-error-quark");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/json/error-quark", kl_test_error_quark);
	g_test_add_func("/json/get-string", kl_test_string);
	g_test_add_func("/json/get-int", kl_test_int);
	g_test_add_func("/json/get-bool", kl_test_bool);
	g_test_add_func("/json/get-object-array", kl_test_object_array);
	g_test_add_func("/json/optional", kl_test_optional);
	g_test_add_func("/json/base64-member", kl_test_base64_member);
	g_test_add_func("/json/base64-strict", kl_test_base64_strict);
	g_test_add_func("/json/parse-object", kl_test_parse_object);
	return g_test_run();
}
