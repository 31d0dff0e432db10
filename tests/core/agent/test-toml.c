/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-toml.h"

static KlTomlDocument *
kl_test_parse_ok(const gchar *text)
{
	g_autoptr(GError) error = NULL;
	KlTomlDocument *doc = kl_toml_parse(text, strlen(text), "t.toml", &error);

	g_assert_no_error(error);
	g_assert_nonnull(doc);
	return doc;
}

static const KlTomlValue *
kl_test_get(KlTomlDocument *doc, const gchar *table, const gchar *key)
{
	KlTomlTable *t = kl_toml_document_get_table(doc, table);

	g_assert_nonnull(t);
	return kl_toml_table_get(t, key);
}

static void
kl_test_assert_string(KlTomlDocument *doc, const gchar *table, const gchar *key, const gchar *want)
{
	const KlTomlValue *v = kl_test_get(doc, table, key);

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, KL_TOML_TYPE_STRING);
	g_assert_cmpstr(v->text, ==, want);
}

static void
kl_test_assert_int(KlTomlDocument *doc, const gchar *table, const gchar *key, gint64 want)
{
	const KlTomlValue *v = kl_test_get(doc, table, key);

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, KL_TOML_TYPE_INTEGER);
	g_assert_cmpint(v->integer, ==, want);
}

static void
kl_toml_basic_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok("# leading comment\n"
							 "\n"
							 "[agent]  # trailing comment\n"
							 "uuid = \"abc\"\n"
							 "registrar_port = 8890\n"
							 "enabled = true\n"
							 "disabled=false\n"
							 "\t\"quoted key\" = 'literal \\n'\n"
							 "'lit-key' = 1\n"
							 "empty = \"\"\n"
							 "\n"
							 "[ima_log]\n"
							 "x = -3\n");
	const KlTomlValue *v;
	KlTomlTable *agent = kl_toml_document_get_table(doc, "agent");

	g_assert_cmpuint(doc->tables->len, ==, 2);
	g_assert_nonnull(agent);
	g_assert_cmpuint(agent->line, ==, 3);
	g_assert_cmpuint(agent->keys->len, ==, 7);
	g_assert_cmpstr(g_ptr_array_index(agent->keys, 0), ==, "uuid");
	g_assert_cmpstr(g_ptr_array_index(agent->keys, 4), ==, "quoted key");
	kl_test_assert_string(doc, "agent", "uuid", "abc");
	kl_test_assert_int(doc, "agent", "registrar_port", 8890);
	v = kl_test_get(doc, "agent", "enabled");
	g_assert_cmpint(v->type, ==, KL_TOML_TYPE_BOOLEAN);
	g_assert_true(v->boolean);
	g_assert_cmpuint(v->line, ==, 6);
	g_assert_cmpuint(v->column, ==, 11);
	v = kl_test_get(doc, "agent", "disabled");
	g_assert_false(v->boolean);
	g_assert_cmpstr(v->text, ==, "false");
	/* literal strings keep backslashes */
	kl_test_assert_string(doc, "agent", "quoted key", "literal \\n");
	kl_test_assert_int(doc, "agent", "lit-key", 1);
	kl_test_assert_string(doc, "agent", "empty", "");
	kl_test_assert_int(doc, "ima_log", "x", -3);
	g_assert_null(kl_toml_document_get_table(doc, "missing"));
	g_assert_null(kl_toml_table_get(agent, "missing"));
}

static void
kl_toml_strings_test(void)
{
	g_autoptr(KlTomlDocument) doc =
	    kl_test_parse_ok("[s]\n"
			     "esc = \"a\\tb\\nc\\\\d\\\"e\\rf\\bg\\fh\"\n"
			     "uni = \"\\u00e9\\U0001F600\"\n"
			     "utf8 = \"grüße\"\n"
			     "ml = \"\"\"\n"
			     "line1\n"
			     "line2\"\"\"\n"
			     "cont = \"\"\"one \\\n"
			     "      two \\\n"
			     "\n"
			     "   three\"\"\"\n"
			     "quotes = \"\"\"say \"hi\"\"\"\"\n"
			     "mll = '''\n"
			     "C:\\path\\n\n"
			     "'''\n"
			     "mlq = '''it''s'''\n"
			     "tab = \"a\tb\"\n");

	kl_test_assert_string(doc, "s", "esc", "a\tb\nc\\d\"e\rf\bg\fh");
	kl_test_assert_string(doc, "s", "uni", "\xc3\xa9\xf0\x9f\x98\x80");
	kl_test_assert_string(doc, "s", "utf8", "grüße");
	kl_test_assert_string(doc, "s", "ml", "line1\nline2");
	kl_test_assert_string(doc, "s", "cont", "one two three");
	kl_test_assert_string(doc, "s", "quotes", "say \"hi\"");
	kl_test_assert_string(doc, "s", "mll", "C:\\path\\n\n");
	kl_test_assert_string(doc, "s", "mlq", "it''s");
	kl_test_assert_string(doc, "s", "tab", "a\tb");
	/* the line numbers after multi-line strings stay right */
	g_assert_cmpuint(kl_test_get(doc, "s", "tab")->line, ==, 17);
}

static void
kl_toml_numbers_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok("[n]\n"
							 "a = 1_000_000\n"
							 "b = +17\n"
							 "c = -0\n"
							 "hex = 0xDEAD_beef\n"
							 "oct = 0o755\n"
							 "bin = 0b1101\n"
							 "max = 9223372036854775807\n"
							 "min = -9223372036854775808\n"
							 "f1 = 3.14\n"
							 "f2 = -1e3\n"
							 "f3 = 6.626_070e-34\n"
							 "f4 = inf\n"
							 "f5 = -inf\n"
							 "f6 = nan\n"
							 "ver = 2.5\n");
	const KlTomlValue *v;

	kl_test_assert_int(doc, "n", "a", 1000000);
	g_assert_cmpstr(kl_test_get(doc, "n", "a")->text, ==, "1000000");
	kl_test_assert_int(doc, "n", "b", 17);
	kl_test_assert_int(doc, "n", "c", 0);
	kl_test_assert_int(doc, "n", "hex", 0xDEADBEEF);
	kl_test_assert_int(doc, "n", "oct", 0755);
	kl_test_assert_int(doc, "n", "bin", 13);
	kl_test_assert_int(doc, "n", "max", G_MAXINT64);
	kl_test_assert_int(doc, "n", "min", G_MININT64);
	v = kl_test_get(doc, "n", "f1");
	g_assert_cmpint(v->type, ==, KL_TOML_TYPE_FLOAT);
	g_assert_cmpfloat_with_epsilon(v->number, 3.14, 1e-12);
	g_assert_cmpfloat_with_epsilon(kl_test_get(doc, "n", "f2")->number, -1000.0, 1e-9);
	g_assert_cmpfloat_with_epsilon(kl_test_get(doc, "n", "f3")->number, 6.62607e-34, 1e-40);
	g_assert_true(isinf(kl_test_get(doc, "n", "f4")->number));
	g_assert_cmpfloat(kl_test_get(doc, "n", "f5")->number, <, 0);
	g_assert_true(isnan(kl_test_get(doc, "n", "f6")->number));
	/* the literal is kept, so "2.5" is not turned into 2.5000000001 */
	g_assert_cmpstr(kl_test_get(doc, "n", "ver")->text, ==, "2.5");
}

static void
kl_toml_arrays_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok("[a]\n"
							 "empty = []\n"
							 "one = [ \"x\" ]\n"
							 "multi = [\n"
							 "  \"2.1\", # comment\n"
							 "  '2.2',\n"
							 "\n"
							 "  3,\n"
							 "]\n"
							 "nested = [[1, 2], [\"a\"], []]\n"
							 "after = 1\n");
	const KlTomlValue *v;
	g_autofree gchar *joined = NULL;

	v = kl_test_get(doc, "a", "empty");
	g_assert_cmpint(v->type, ==, KL_TOML_TYPE_ARRAY);
	g_assert_cmpuint(v->array->len, ==, 0);
	v = kl_test_get(doc, "a", "multi");
	g_assert_cmpuint(v->array->len, ==, 3);
	joined = kl_toml_value_to_string(v);
	g_assert_cmpstr(joined, ==, "2.1,2.2,3");
	g_assert_cmpuint(((KlTomlValue *)g_ptr_array_index(v->array, 1))->line, ==, 6);
	v = kl_test_get(doc, "a", "nested");
	g_assert_cmpuint(v->array->len, ==, 3);
	g_assert_cmpuint(((KlTomlValue *)g_ptr_array_index(v->array, 0))->array->len, ==, 2);
	kl_test_assert_int(doc, "a", "after", 1);
	g_assert_cmpuint(kl_test_get(doc, "a", "after")->line, ==, 11);
}

static void
kl_toml_tables_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok("[a.b]\n"
							 "x = 1\n"
							 "[ a . \"c d\" ]\n"
							 "y = 2\n"
							 "[a]\n"
							 "z = 3\n"
							 "[\"\"]\n");

	kl_test_assert_int(doc, "a.b", "x", 1);
	kl_test_assert_int(doc, "a.c d", "y", 2);
	kl_test_assert_int(doc, "a", "z", 3);
	g_assert_nonnull(kl_toml_document_get_table(doc, ""));
}

static void
kl_toml_crlf_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok(
	    "\xEF\xBB\xBF# bom\r\n[agent]\r\nx = \"a\"\r\nml = \"\"\"\r\nb\r\nc\"\"\"\r\n"
	    "y = [\r\n 1,\r\n]\r\nz = 2");

	kl_test_assert_string(doc, "agent", "x", "a");
	kl_test_assert_string(doc, "agent", "ml", "b\nc");
	kl_test_assert_int(doc, "agent", "z", 2);
	g_assert_cmpuint(kl_test_get(doc, "agent", "z")->line, ==, 10);
}

static void
kl_toml_empty_test(void)
{
	g_autoptr(KlTomlDocument) doc = kl_test_parse_ok("");
	g_autoptr(KlTomlDocument) doc2 = kl_test_parse_ok("\n\n   # only a comment");

	g_assert_cmpuint(doc->tables->len, ==, 0);
	g_assert_cmpuint(doc2->tables->len, ==, 0);
}

typedef struct {
	const gchar *input;
	const gchar *position; /* "t.toml:LINE:COL:" */
	const gchar *what;     /* part of the message */
} KlTomlErrorCase;

static void
kl_toml_errors_test(void)
{
	const KlTomlErrorCase cases[] = {
		{ "[agent]\na = 1\nb = 2\na = 3\n",
		  "t.toml:4:1:",
		  "duplicate key 'a' in [agent] (first set on line 2)" },
		{ "[agent]\n[x]\n[agent]\n",
		  "t.toml:3:1:",
		  "duplicate table [agent] (first defined on line 1)" },
		{ "a = 1\n", "t.toml:1:1:", "outside of any table" },
		{ "[t]\nx = { a = 1 }\n", "t.toml:2:5:", "inline tables are not supported" },
		{ "[[t]]\n", "t.toml:1:2:", "arrays of tables" },
		{ "[t]\na.b = 1\n", "t.toml:2:2:", "dotted keys are not supported" },
		{ "[t]\nx = \"abc\n", "t.toml:2:9:", "unterminated string" },
		{ "[t]\nx = 'abc\n", "t.toml:2:9:", "unterminated string" },
		{ "[t]\nx = \"a\\qb\"\n", "t.toml:2:8:", "invalid escape sequence '\\q'" },
		{ "[t]\nx = \"\\uD800\"\n", "t.toml:2:6:", "not a Unicode scalar value" },
		{ "[t]\nx = \"\\u12\"\n", "t.toml:2:10:", "needs 4 hexadecimal digits" },
		{ "[t]\nx = 0123\n", "t.toml:2:5:", "leading zeros" },
		{ "[t]\nx = 1__000\n", "t.toml:2:5:", "invalid value '1__000'" },
		{ "[t]\nx = 1_\n", "t.toml:2:5:", "invalid value '1_'" },
		{ "[t]\nx = 9223372036854775808\n", "t.toml:2:5:", "out of range" },
		{ "[t]\nx = 0xZZ\n", "t.toml:2:5:", "invalid base-16 integer" },
		{ "[t]\nx = 1.\n", "t.toml:2:5:", "invalid value '1.'" },
		{ "[t]\nx = 1979-05-27\n", "t.toml:2:5:", "dates and times are not supported" },
		{ "[t]\nx = 07:32:00\n", "t.toml:2:5:", "dates and times are not supported" },
		{ "[t]\nx = hello\n", "t.toml:2:5:", "strings need quotes" },
		{ "[t]\nx = \n", "t.toml:2:5:", "missing value" },
		{ "[t]\nx = # c\n", "t.toml:2:5:", "missing value" },
		{ "[t]\nx 1\n", "t.toml:2:3:", "expected '=' after key 'x'" },
		{ "[t]\nx\n", "t.toml:2:2:", "expected '=' after key 'x'" },
		{ "[t]\n= 1\n", "t.toml:2:1:", "missing key name" },
		{ "[t]\nx = 1 2\n", "t.toml:2:7:", "unexpected '2' after the value" },
		{ "[t]\nx = \"a\" \"b\"\n", "t.toml:2:9:", "after the value" },
		{ "[t] x = 1\n", "t.toml:1:5:", "after the table header" },
		{ "[t]\nx = [1, 2\ny = 3\n", "t.toml:3:1:", "expected ',' or ']'" },
		{ "[t]\nx = [1,\n2,\n", "t.toml:2:5:", "unterminated array" },
		{ "[t]\nx = [1 2]\n", "t.toml:2:8:", "expected ',' or ']'" },
		{ "[t]\nx = [,]\n", "t.toml:2:6:", "invalid value starting with ','" },
		{ "[t]\nx = 1\r\ny = 2\r", "t.toml:3:6:", "carriage return" },
		{ "[t]\rx = 1\n", "t.toml:1:4:", "carriage return" },
		{ "[t]\nx = \"a\x01\"\n", "t.toml:2:7:", "control character U+0001" },
		{ "[t]\n# bell \x07\n",
		  "t.toml:2:8:",
		  "control character U+0007 is not allowed in a comment" },
		{ "[t]\nx = \"\xff\"\n", "t.toml:2:6:", "invalid UTF-8" },
		{ "[t]\n\n  x", "t.toml:3:4:", "expected '=' after key 'x'" },
		{ "[a]\nb = 1\n[a.b]\n", "t.toml:3:1:", "conflicts with key 'b' of [a] on line 2" },
		{ "[a.b.c]\n[a]\nb = 1\n", "t.toml:3:1:", "conflicts with the table [a.b]" },
		{ "[t\n", "t.toml:1:3:", "unterminated table header" },
		{ "[t]]\n", "t.toml:1:4:", "after the table header" },
		{ "[]\n", "t.toml:1:2:", "invalid character ']' in a key" },
		{ "[t]\nk$y = 1\n", "t.toml:2:2:", "expected '=' after key 'k'" },
		{ "[t]\nx = \"\"\"abc\n\n", "t.toml:2:5:", "unterminated multi-line string" },
		{ "[t]\nx = \"\"\"a\"\"\"\"\"\"\n", "t.toml:2:9:", "too many quotes" },
		{ "[t]\nx = truthy\n", "t.toml:2:5:", "strings need quotes" },
		{ "[t]\n\"\"\"k\"\"\" = 1\n",
		  "t.toml:2:1:",
		  "a key cannot be a multi-line string" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlTomlDocument) doc =
		    kl_toml_parse(cases[i].input, strlen(cases[i].input), "t.toml", &error);

		if (doc != NULL)
			g_error("case %u parsed but should fail: %s", i, cases[i].input);
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		if (!g_str_has_prefix(error->message, cases[i].position) ||
		    strstr(error->message, cases[i].what) == NULL)
			g_error("case %u: got \"%s\", want \"%s ...%s...\"",
				i,
				error->message,
				cases[i].position,
				cases[i].what);
	}
}

static void
kl_toml_deep_nesting_test(void)
{
	g_autoptr(GString) str = g_string_new("[t]\nx = ");
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTomlDocument) doc = NULL;

	for (guint i = 0; i < 10000; i++)
		g_string_append_c(str, '[');
	doc = kl_toml_parse(str->str, str->len, "t.toml", &error);
	g_assert_null(doc);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "nested more than"));
}

static void
kl_toml_not_nul_terminated_test(void)
{
	/* the parser must honour the length, not look for a NUL */
	const gchar buf[] = { '[', 't', ']', '\n', 'x', '=', '1', '2', '3' };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTomlDocument) doc = kl_toml_parse(buf, 7, "t.toml", &error);

	g_assert_no_error(error);
	kl_test_assert_int(doc, "t", "x", 1);
}

static void
kl_toml_nul_test(void)
{
	const gchar buf[] = "[t]\nx = 1\0\n";
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTomlDocument) doc = kl_toml_parse(buf, sizeof(buf) - 1, "t.toml", &error);

	g_assert_null(doc);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_cmpstr(error->message, ==, "t.toml:2:6: NUL byte (this is not a text file)");
}

static void
kl_toml_file_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("kl-toml-XXXXXX", NULL);
	g_autofree gchar *path = g_build_filename(dir, "x.conf", NULL);
	g_autofree gchar *missing = g_build_filename(dir, "missing.conf", NULL);
	g_autoptr(KlTomlDocument) doc = NULL;
	g_autoptr(KlTomlDocument) doc2 = NULL;

	g_assert_true(g_file_set_contents(path, "[a]\nb = 'c'\nd = ]\n", -1, NULL));
	doc = kl_toml_parse_file(path, &error);
	g_assert_null(doc);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	/* the error names the file */
	g_assert_true(g_str_has_prefix(error->message, path));
	g_assert_nonnull(strstr(error->message, ":3:5:"));
	g_clear_error(&error);

	doc2 = kl_toml_parse_file(missing, &error);
	g_assert_null(doc2);
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_remove(path);
	g_rmdir(dir);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/toml/basic", kl_toml_basic_test);
	g_test_add_func("/toml/strings", kl_toml_strings_test);
	g_test_add_func("/toml/numbers", kl_toml_numbers_test);
	g_test_add_func("/toml/arrays", kl_toml_arrays_test);
	g_test_add_func("/toml/tables", kl_toml_tables_test);
	g_test_add_func("/toml/crlf", kl_toml_crlf_test);
	g_test_add_func("/toml/empty", kl_toml_empty_test);
	g_test_add_func("/toml/errors", kl_toml_errors_test);
	g_test_add_func("/toml/deep-nesting", kl_toml_deep_nesting_test);
	g_test_add_func("/toml/length", kl_toml_not_nul_terminated_test);
	g_test_add_func("/toml/file", kl_toml_file_test);
	g_test_add_func("/toml/nul", kl_toml_nul_test);
	return g_test_run();
}
