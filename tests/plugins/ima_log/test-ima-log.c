/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * ima_log: the incremental reader and the plugin callbacks.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gmodule.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-ima-log-parser.h"
#include "kl-ima-log-plugin.h"
#include "kl-ima-log-synth.h"
#include "kl-plugin-context-private.h"
#include "kl-test-attachments.h"

#include "kl-test-skip.h"

typedef struct {
	gchar *dir;
	gchar *path;
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	fx->dir = g_dir_make_tmp("kl-ima-log-XXXXXX", &error);
	g_assert_no_error(error);
	fx->path = g_build_filename(fx->dir, "ascii_runtime_measurements", NULL);
}

static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
	g_autoptr(GDir) dir = g_dir_open(fx->dir, 0, NULL);
	const gchar *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree gchar *p = g_build_filename(fx->dir, name, NULL);
		g_unlink(p);
	}
	g_rmdir(fx->dir);
	g_free(fx->path);
	g_free(fx->dir);
}

static void
write_file(const gchar *path, const gchar *text, gssize len)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, text, len, &error);
	g_assert_no_error(error);
}

/* appends in place (same inode), as the kernel does */
static void
append_file(const gchar *path, const gchar *text, gsize len)
{
	FILE *f = fopen(path, "ab");

	g_assert_nonnull(f);
	g_assert_cmpuint(fwrite(text, 1, len, f), ==, len);
	g_assert_cmpint(fclose(f), ==, 0);
}

static GString *
synth(guint64 first, guint64 n)
{
	GString *s = g_string_new(NULL);

	kl_ima_log_synth_lines(s, first, n);
	return s;
}

/* checks the data object against lines [first, first + n) of the synthetic log */
/* the `data` object the plugin sends: {"entries": the text, "entry_count": n} */
static JsonObject *
collect_data(KlImaLog *log, guint64 offset, guint64 max, GError **error)
{
	guint64 n = 0;
	g_autoptr(GBytes) text = kl_ima_log_collect_text(log, offset, max, &n, NULL, error);
	g_autofree gchar *str = NULL;
	JsonObject *data;

	if (text == NULL)
		return NULL;
	str = g_strndup(g_bytes_get_data(text, NULL), g_bytes_get_size(text));
	data = json_object_new();
	json_object_set_string_member(data, "entries", str);
	json_object_set_int_member(data, "entry_count", (gint64)n);
	return data;
}

static void
assert_data_lines(JsonObject *data, guint64 first, guint64 n)
{
	g_autoptr(GString) expected = synth(first, n);

	g_assert_nonnull(data);
	g_assert_cmpstr(json_object_get_string_member(data, "entries"), ==, expected->str);
	g_assert_cmpint(json_object_get_int_member(data, "entry_count"), ==, (gint64)n);
}

static JsonObject *
collect(KlImaLog *log, guint64 offset, guint64 max)
{
	g_autoptr(GError) error = NULL;
	JsonObject *data;

	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_no_error(error);
	data = collect_data(log, offset, max, &error);
	g_assert_no_error(error);
	return data;
}

static void
test_line_validation(void)
{
	const struct {
		const gchar *line;
		gboolean valid;
	} cases[] = {
		{ "10 0adefe76 ima-ng sha256:00 boot_aggregate", TRUE },
		{ "10 0adefe76 ima-sig sha256:00 /usr/bin/x ", TRUE },
		{ "10 0adefe76 ima-buf sha256:00 name 0a0b", TRUE },
		{ "10 0adefe76 ima 0000 /init", TRUE },
		{ "10 0adefe76 ima-ng sha256:00", FALSE },
		{ "10 0adefe76 ima-ng", FALSE },
		{ "x0 0adefe76 ima-ng sha256:00 /a", FALSE },
		{ " 0adefe76 ima-ng sha256:00 /a", FALSE },
		{ "10 zz ima-ng sha256:00 /a", FALSE },
		{ "10  ima-ng sha256:00 /a", FALSE },
		{ "10 0adefe76  sha256:00 /a", FALSE },
		{ "", FALSE },
		{ "garbage", FALSE },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_assert_cmpint(kl_ima_log_line_is_valid(cases[i].line, strlen(cases[i].line)),
				==,
				cases[i].valid);
	}
	/* an embedded NUL would truncate the JSON string */
	g_assert_false(kl_ima_log_line_is_valid("10 0a ima-ng sha256:00 /a\0b", 27));
	/* bytes that are not UTF-8 cannot travel in JSON; UTF-8 file names can */
	g_assert_false(kl_ima_log_line_is_valid("10 0a ima-ng sha256:00 /tmp/\xff\xfe", 30));
	g_assert_true(kl_ima_log_line_is_valid("10 0a ima-ng sha256:00 /tmp/caf\xc3\xa9", 33));
}

/*
 * The template hash is checked eight bytes at a time: a byte that is not a
 * hexadecimal digit is found at any position of a word, whatever its value.
 */
static void
test_line_validation_hash(void)
{
	const gchar hex[] = "0123456789abcdefABCDEF0123456789abcdef0123456789ABCDEFabcdef0123";
	const guint8 bad[] = { '/', ':', '@', 'G', '`', 'g', 'x', ' ' - 1, 0x7f, 0x80, 0xc3, 0xff };

	for (gsize n = 1; n <= 64; n++) {
		g_autofree gchar *line =
		    g_strdup_printf("10 %.*s ima-ng sha256:00 /a", (int)n, hex);

		g_assert_true(kl_ima_log_line_is_valid(line, strlen(line)));
		/* every position of the hash, every kind of wrong byte */
		for (gsize i = 0; i < n; i++) {
			for (gsize b = 0; b < G_N_ELEMENTS(bad); b++) {
				g_autofree gchar *broken = g_strdup(line);

				broken[3 + i] = (gchar)bad[b];
				g_assert_false(kl_ima_log_line_is_valid(broken, strlen(broken)));
			}
		}
	}
	/* a NUL or a high byte anywhere in a long line, at every offset of a word */
	for (gsize i = 40; i < 200; i++) {
		g_autoptr(GString) line = g_string_new("10 ");

		g_string_append_len(line, hex, 40);
		g_string_append(line, " ima-ng sha256:");
		g_string_append_len(line, hex, 64);
		g_string_append(line, " /usr/lib/");
		while (line->len < 220)
			g_string_append_c(line, 'x');
		line->str[i] = '\0';
		g_assert_false(kl_ima_log_line_is_valid(line->str, line->len));
		line->str[i] = (gchar)0xff;
		g_assert_false(kl_ima_log_line_is_valid(line->str, line->len));
		if (i > 140) {
			line->str[i] = (gchar)0xc3;
			line->str[i + 1] = (gchar)0xa9;
			g_assert_true(kl_ima_log_line_is_valid(line->str, line->len));
		}
	}
}

/* the generated fixture with real template hashes */
static void
test_fixture(void)
{
	g_autofree gchar *path =
	    g_test_build_filename(G_TEST_DIST, "data", "ima", "ima-ng-small.txt", NULL);
	g_autofree gchar *sidecar =
	    g_test_build_filename(G_TEST_DIST, "data", "ima", "ima-ng-small.json", NULL);
	g_autofree gchar *text = NULL;
	g_autoptr(KlImaLog) log = kl_ima_log_new(path);
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GError) error = NULL;
	JsonObject *expected;

	g_assert_true(g_file_get_contents(path, &text, NULL, &error));
	g_assert_true(json_parser_load_from_file(parser, sidecar, &error));
	expected = json_node_get_object(json_parser_get_root(parser));

	data = collect(log, 0, 0);
	g_assert_cmpuint(kl_ima_log_get_entry_count(log),
			 ==,
			 json_object_get_int_member(expected, "entry_count"));
	g_assert_cmpstr(json_object_get_string_member(data, "entries"), ==, text);
	g_assert_cmpint(json_object_get_int_member(data, "entry_count"),
			==,
			json_object_get_int_member(expected, "entry_count"));
	g_assert_true(g_str_has_prefix(text, "10 "));
	g_assert_nonnull(strstr(text, " boot_aggregate\n"));
}

/* every starting offset around the index stride, from the index and from the cache */
static void
test_offsets(Fixture *fx, gconstpointer user_data)
{
	const guint64 n = 3 * KL_IMA_LOG_INDEX_STRIDE + 5;
	const guint64 offsets[] = { 0, 1, 63, 64, 65, 127, 128, 129, n - 1, n };
	g_autoptr(GString) text = synth(0, n);

	write_file(fx->path, text->str, text->len);
	for (guint i = 0; i < G_N_ELEMENTS(offsets); i++) {
		for (guint cached = 0; cached < 2; cached++) {
			g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
			g_autoptr(JsonObject) data = NULL;

			if (!cached)
				kl_ima_log_set_cache_limit(log, 0);
			data = collect(log, offsets[i], 0);
			assert_data_lines(data, offsets[i], n - offsets[i]);
			/* the same offset again, now always from the index */
			g_clear_pointer(&data, json_object_unref);
			data = collect(log, offsets[i], 0);
			assert_data_lines(data, offsets[i], n - offsets[i]);
		}
	}
}

static void
test_offset_beyond_end(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) text = synth(0, 10);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GError) error = NULL;

	write_file(fx->path, text->str, text->len);
	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
	data = collect_data(log, 11, 0, &error);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_null(data);
	g_assert_nonnull(strstr(error->message, "starting_offset 11"));
	g_assert_nonnull(strstr(error->message, "10 entries"));
	/* = count: nothing to send, not an error */
	g_clear_error(&error);
	data = collect_data(log, 10, 0, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(json_object_get_string_member(data, "entries"), ==, "");
	g_assert_cmpint(json_object_get_int_member(data, "entry_count"), ==, 0);
}

static void
test_max_entries(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) text = synth(0, 100);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) d1 = NULL;
	g_autoptr(JsonObject) d2 = NULL;
	g_autoptr(JsonObject) d3 = NULL;

	write_file(fx->path, text->str, text->len);
	d1 = collect(log, 10, 5);
	assert_data_lines(d1, 10, 5);
	d2 = collect(log, 90, 50);
	assert_data_lines(d2, 90, 10);
	d3 = collect(log, 0, 100);
	assert_data_lines(d3, 0, 100);
}

/* the verifier's cycle: count in phase 1, lines from the previous end in phase 2 */
static void
test_growth(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 100);
	g_autoptr(GString) t1 = synth(100, 50);
	g_autoptr(GString) t2 = synth(150, 7);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(GError) error = NULL;
	JsonObject *data;

	write_file(fx->path, t0->str, t0->len);
	data = collect(log, 0, 0);
	assert_data_lines(data, 0, 100);
	json_object_unref(data);

	/* phase 1 sees 150, then 7 more arrive before phase 2: 57 lines are sent */
	append_file(fx->path, t1->str, t1->len);
	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 150);
	append_file(fx->path, t2->str, t2->len);
	data = collect(log, 100, 0);
	assert_data_lines(data, 100, 57);
	json_object_unref(data);

	/* a failed attestation: the verifier asks again from an older offset */
	data = collect(log, 20, 0);
	assert_data_lines(data, 20, 137);
	json_object_unref(data);

	/* no growth: nothing new from the end */
	data = collect(log, 157, 0);
	assert_data_lines(data, 157, 0);
	json_object_unref(data);
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 1); /* the first open */
}

static void
test_partial_line(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 10);
	g_autoptr(GString) t1 = synth(10, 1);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	JsonObject *data;
	gsize half = t1->len / 2;

	write_file(fx->path, t0->str, t0->len);
	append_file(fx->path, t1->str, half);
	data = collect(log, 0, 0);
	assert_data_lines(data, 0, 10);
	json_object_unref(data);
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 10);

	/* the line is completed: counted now, and sent whole */
	append_file(fx->path, t1->str + half, t1->len - half);
	data = collect(log, 10, 0);
	assert_data_lines(data, 10, 1);
	json_object_unref(data);
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 11);
}

static void
test_shrink(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 100);
	g_autoptr(GString) t1 = synth(500, 30);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(JsonObject) d0 = NULL;
	FILE *f;

	write_file(fx->path, t0->str, t0->len);
	d0 = collect(log, 0, 0);
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 1);
	/* truncated and rewritten in place: same inode, shorter */
	f = fopen(fx->path, "r+b");
	g_assert_nonnull(f);
	g_assert_cmpint(ftruncate(fileno(f), 0), ==, 0);
	g_assert_cmpuint(fwrite(t1->str, 1, t1->len, f), ==, t1->len);
	fclose(f);

	/* the kernel's list never shrinks within a boot: possible tampering, a WARNING */
	g_test_expect_message("kl-ima_log",
			      G_LOG_LEVEL_WARNING,
			      "the IMA measurement list *rewritten or shortened within one boot "
			      "(possible tampering)*");
	data = collect(log, 0, 0);
	g_test_assert_expected_messages();
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 2);
	assert_data_lines(data, 500, 30);
}

/* rewritten in place with text of the same length: the bytes before the end differ */
static void
test_rewrite_same_size(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 100);
	g_autoptr(GString) t1 = synth(0, 100);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(JsonObject) d0 = NULL;
	FILE *f;

	write_file(fx->path, t0->str, t0->len);
	d0 = collect(log, 0, 0);
	/* the last line's file name changes, same length */
	t1->str[t1->len - 2] = t1->str[t1->len - 2] == '9' ? '8' : '9';
	f = fopen(fx->path, "r+b");
	g_assert_nonnull(f);
	g_assert_cmpuint(fwrite(t1->str, 1, t1->len, f), ==, t1->len);
	fclose(f);

	g_test_expect_message("kl-ima_log",
			      G_LOG_LEVEL_WARNING,
			      "the IMA measurement list *rewritten or shortened within one boot*");
	data = collect(log, 0, 0);
	g_test_assert_expected_messages();
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 2);
	g_assert_cmpstr(json_object_get_string_member(data, "entries"), ==, t1->str);
}

/* a new file under the name (other inode), longer than the old one */
static void
test_replace(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 50);
	g_autoptr(GString) t1 = synth(1000, 80);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(JsonObject) d0 = NULL;
	g_autofree gchar *tmp = g_build_filename(fx->dir, "new", NULL);

	write_file(fx->path, t0->str, t0->len);
	d0 = collect(log, 0, 0);
	write_file(tmp, t1->str, t1->len);
	g_assert_cmpint(g_rename(tmp, fx->path), ==, 0);

	data = collect(log, 0, 0);
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 2);
	assert_data_lines(data, 1000, 80);
}

static void
test_boot_time(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) t0 = synth(0, 50);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GError) error = NULL;

	write_file(fx->path, t0->str, t0->len);
	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 1);
	g_assert_true(kl_ima_log_refresh(log, 2000, NULL, &error));
	g_assert_cmpuint(kl_ima_log_get_reset_count(log), ==, 2);
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 50);
	data = collect_data(log, 0, 0, &error);
	g_assert_no_error(error);
	assert_data_lines(data, 0, 50);
}

static void
test_malformed(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GString) text = synth(0, 2);
	g_autoptr(GString) more = synth(2, 3);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(GError) error = NULL;

	g_string_append(text, "10 not-hex ima-ng sha256:00 /x\n");
	write_file(fx->path, text->str, text->len);
	append_file(fx->path, more->str, more->len);
	g_assert_false(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, "line 3 "));
	/* the lines before it are known; the bad one keeps failing */
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 2);
	g_clear_error(&error);
	g_assert_false(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

/*
 * A read with one non-ASCII line is checked line by line: the UTF-8 line
 * passes, a NUL or a byte that is not UTF-8 is named by its line number,
 * wherever it sits in the read.
 */
static void
test_malformed_text(Fixture *fx, gconstpointer user_data)
{
	const gchar *const inserts[] = { "\xc3\xa9", "\xff", "" };

	for (guint k = 0; k < G_N_ELEMENTS(inserts); k++) {
		for (guint bad = 0; bad < 70; bad += 23) {
			g_autoptr(GString) text = synth(0, bad);
			g_autoptr(GString) more = synth(bad + 1, 69 - bad);
			g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
			g_autoptr(GError) error = NULL;
			g_autofree gchar *where = NULL;
			gboolean nul = inserts[k][0] == '\0';

			g_string_append(text, "10 0adefe76 ima-ng sha256:00 /caf");
			if (nul)
				g_string_append_c(text, '\0');
			else
				g_string_append(text, inserts[k]);
			g_string_append(text, "e\n");
			g_string_append_len(text, more->str, (gssize)more->len);
			write_file(fx->path, text->str, (gssize)text->len);
			if (k == 0) {
				g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error));
				g_assert_no_error(error);
				g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, 70);
				continue;
			}
			g_assert_false(kl_ima_log_refresh(log, 1000, NULL, &error));
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
			where = g_strdup_printf("line %u ", bad + 1);
			g_assert_nonnull(strstr(error->message, where));
			g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, bad);
		}
	}
}

static void
test_missing(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(GError) error = NULL;

	g_assert_false(kl_ima_log_refresh(log, 1000, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_nonnull(strstr(error->message, fx->path));
}

static void
test_empty(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GString) t0 = synth(0, 3);

	write_file(fx->path, "", 0);
	data = collect(log, 0, 0);
	assert_data_lines(data, 0, 0);
	g_clear_pointer(&data, json_object_unref);
	append_file(fx->path, t0->str, t0->len);
	data = collect(log, 0, 0);
	assert_data_lines(data, 0, 3);
}

/*
 * The cost proof: after appending 100 lines to a 100k-line log, a cycle
 * (refresh for the capabilities, refresh + collect for the evidence) reads
 * only the appended bytes, plus the few bytes that check the old end.
 */
static void
test_cost(Fixture *fx, gconstpointer user_data)
{
	const guint64 n = 100000;
	g_autoptr(GString) t0 = synth(0, n);
	g_autoptr(GString) t1 = synth(n, 100);
	g_autoptr(GString) t2 = synth(n + 100, 100);
	g_autoptr(KlImaLog) log = kl_ima_log_new(fx->path);
	g_autoptr(GError) error = NULL;
	JsonObject *data;
	guint64 before;
	guint64 cost;

	write_file(fx->path, t0->str, t0->len);
	data = collect(log, 0, 0);
	assert_data_lines(data, 0, n);
	json_object_unref(data);
	/* first read: the log once to learn it, once to send it (the index path) */
	g_assert_cmpuint(kl_ima_log_get_bytes_read(log), <=, 2 * t0->len + 64);

	/* one cycle after 100 new lines */
	append_file(fx->path, t1->str, t1->len);
	before = kl_ima_log_get_bytes_read(log);
	g_assert_true(kl_ima_log_refresh(log, 1000, NULL, &error)); /* phase 1 */
	g_assert_cmpuint(kl_ima_log_get_entry_count(log), ==, n + 100);
	data = collect(log, n, 0); /* phase 2 */
	assert_data_lines(data, n, 100);
	json_object_unref(data);
	cost = kl_ima_log_get_bytes_read(log) - before;
	g_test_message("cycle after 100 new lines read %" G_GUINT64_FORMAT
		       " bytes (tail %" G_GSIZE_FORMAT ", log %" G_GSIZE_FORMAT ")",
		       cost,
		       t1->len,
		       t0->len);
	g_assert_cmpuint(cost, <=, t1->len + 2 * 64);

	/* a failed attestation: the verifier goes back to the previous offset */
	append_file(fx->path, t2->str, t2->len);
	before = kl_ima_log_get_bytes_read(log);
	data = collect(log, n, 0);
	assert_data_lines(data, n, 200);
	json_object_unref(data);
	cost = kl_ima_log_get_bytes_read(log) - before;
	/* the new tail, the sent lines and < STRIDE lines before them: not the log */
	g_assert_cmpuint(
	    cost, <=, t2->len + 64 + t1->len + t2->len + KL_IMA_LOG_INDEX_STRIDE * 200);
	g_assert_cmpuint(cost, <, t0->len / 100);
}

/* ---- the plugin callbacks, through a plugin context ---- */

static const gchar *
config_lookup_cb(gpointer user_data, const gchar *table, const gchar *key)
{
	GHashTable *cfg = user_data;

	if (table != NULL)
		return NULL;
	return g_hash_table_lookup(cfg, key);
}

static KlPluginContext *
plugin_context(GHashTable *cfg)
{
	return kl_plugin_context_new(
	    "ima_log", config_lookup_cb, cfg, "agent", "/nonexistent", 1000, NULL);
}

static JsonObject *
params(const gchar *json)
{
	g_autoptr(GError) error = NULL;
	JsonObject *obj = kl_json_parse_object(json, -1, &error);

	g_assert_no_error(error);
	json_object_seal(obj);
	return obj;
}

static void
test_plugin(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GHashTable) cfg = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GString) t0 = synth(0, 21);
	g_autoptr(GString) t1 = synth(21, 4);
	KlPluginContext *ctx;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(JsonObject) p = NULL;
	g_autofree gchar *caps_json = NULL;
	JsonObject *data;

	write_file(fx->path, t0->str, t0->len);
	g_hash_table_insert(cfg, (gpointer) "ima_ml_path", fx->path);
	ctx = plugin_context(cfg);
	g_assert_true(kl_ima_log_plugin_startup(ctx, &error));
	g_assert_no_error(error);

	caps = kl_ima_log_plugin_get_capabilities(ctx, &error);
	g_assert_no_error(error);
	caps_json = kl_json_object_to_string(caps, NULL);
	g_assert_cmpstr(caps_json,
			==,
			"{\"entry_count\":21,\"supports_partial_access\":true,\"appendable\":true,"
			"\"formats\":[\"text/plain\"]}");

	/* no new entry: the same sealed object; a new entry: a new object */
	{
		g_autoptr(JsonObject) again = kl_ima_log_plugin_get_capabilities(ctx, &error);
		g_autoptr(JsonObject) grown = NULL;
		g_autoptr(GString) t2 = synth(21, 1);
		g_autofree gchar *grown_json = NULL;

		g_assert_no_error(error);
		g_assert_true(again == caps);
		g_assert_true(json_object_is_immutable(caps));
		append_file(fx->path, t2->str, t2->len);
		grown = kl_ima_log_plugin_get_capabilities(ctx, &error);
		g_assert_no_error(error);
		g_assert_true(grown != caps);
		grown_json = kl_json_object_to_string(grown, NULL);
		g_assert_nonnull(strstr(grown_json, "\"entry_count\":22,"));
		/* the file is written again from the start: 21 lines once more */
		write_file(fx->path, t0->str, (gssize)t0->len);
		g_clear_pointer(&grown, json_object_unref);
		grown = kl_ima_log_plugin_get_capabilities(ctx, &error);
		g_assert_no_error(error);
		g_clear_pointer(&grown_json, g_free);
		grown_json = kl_json_object_to_string(grown, NULL);
		g_assert_cmpstr(grown_json, ==, caps_json);
	}

	/* lines appended after phase 1 are sent too */
	append_file(fx->path, t1->str, t1->len);
	p = params("{\"starting_offset\":5,\"format\":\"text/plain\"}");
	data = kl_test_sent_data(ctx, kl_ima_log_plugin_collect(ctx, p, NULL, &error));
	g_assert_no_error(error);
	assert_data_lines(data, 5, 20);
	json_object_unref(data);
	g_clear_pointer(&p, json_object_unref);

	/* format missing: starting_offset still honoured (rust-keylime lost it, B10) */
	p = params("{\"starting_offset\":7}");
	data = kl_test_sent_data(ctx, kl_ima_log_plugin_collect(ctx, p, NULL, &error));
	g_assert_no_error(error);
	assert_data_lines(data, 7, 18);
	json_object_unref(data);
	g_clear_pointer(&p, json_object_unref);

	/* starting_offset missing: from 0, said aloud; entry_count honoured as a maximum */
	p = params("{\"entry_count\":3}");
	g_test_expect_message("kl-ima_log",
			      G_LOG_LEVEL_MESSAGE,
			      "*ima_log request has no starting_offset*from its first entry (25 "
			      "entries)*");
	data = kl_test_sent_data(ctx, kl_ima_log_plugin_collect(ctx, p, NULL, &error));
	g_test_assert_expected_messages();
	g_assert_no_error(error);
	assert_data_lines(data, 0, 3);
	json_object_unref(data);
	g_clear_pointer(&p, json_object_unref);

	/*
	 * the data object is the plugin's, sealed, while the count of entries sent
	 * is the same (the entries are attached: the object never holds them)
	 */
	{
		const struct {
			const gchar *params;
			guint64 first;
			guint64 n;
			gboolean same;
		} rounds[] = {
			{ "{\"starting_offset\":20}", 20, 5, FALSE },
			{ "{\"starting_offset\":20}", 20, 5, TRUE },
			{ "{\"starting_offset\":19,\"entry_count\":5}", 19, 5, TRUE },
			{ "{\"starting_offset\":24}", 24, 1, FALSE },
			{ "{\"starting_offset\":25}", 25, 0, FALSE },
			{ "{\"starting_offset\":25}", 25, 0, TRUE },
			{ "{\"starting_offset\":20}", 20, 5, FALSE },
		};
		g_autoptr(JsonObject) last = NULL;

		for (guint i = 0; i < G_N_ELEMENTS(rounds); i++) {
			g_autoptr(JsonObject) raw = NULL;
			g_autoptr(GPtrArray) attachments = NULL;
			g_autoptr(GString) lines = synth(rounds[i].first, rounds[i].n);
			g_autofree gchar *summary = NULL;
			g_autofree gchar *want_summary = NULL;
			g_autofree gchar *raw_json = NULL;
			g_autofree gchar *want_json = NULL;
			KlPluginAttachment *attachment;

			p = params(rounds[i].params);
			raw = kl_ima_log_plugin_collect(ctx, p, NULL, &error);
			g_assert_no_error(error);
			g_assert_true(json_object_is_immutable(raw));
			g_assert_true((raw == last) == rounds[i].same);
			raw_json = kl_json_object_to_string(raw, NULL);
			want_json = g_strdup_printf(
			    "{\"entries\":null,\"entry_count\":%" G_GUINT64_FORMAT "}",
			    rounds[i].n);
			g_assert_cmpstr(raw_json, ==, want_json);
			summary = kl_plugin_context_take_summary(ctx);
			want_summary = g_strdup_printf("%" G_GUINT64_FORMAT " new entr%s",
						       rounds[i].n,
						       rounds[i].n == 1 ? "y" : "ies");
			g_assert_cmpstr(summary, ==, want_summary);
			g_assert_cmpuint(kl_plugin_context_take_entry_count(ctx), ==, rounds[i].n);
			attachments = kl_plugin_context_take_attachments(ctx);
			g_assert_nonnull(attachments);
			g_assert_cmpuint(attachments->len, ==, 1);
			attachment = g_ptr_array_index(attachments, 0);
			g_assert_cmpstr(attachment->member, ==, "entries");
			g_assert_cmpuint(g_bytes_get_size(attachment->text), ==, lines->len);
			g_assert_true(memcmp(g_bytes_get_data(attachment->text, NULL),
					     lines->str,
					     lines->len) == 0);
			g_clear_pointer(&last, json_object_unref);
			last = g_steal_pointer(&raw);
			g_clear_pointer(&p, json_object_unref);
		}
	}

	{
		const gchar *bad[] = {
			"{\"starting_offset\":26}",
			"{\"starting_offset\":-1}",
			"{\"starting_offset\":\"5\"}",
			"{\"format\":\"application/octet-stream\"}",
			"{\"format\":7}",
			"{\"entry_count\":-2}",
		};
		for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
			p = params(bad[i]);
			data =
			    kl_test_sent_data(ctx, kl_ima_log_plugin_collect(ctx, p, NULL, &error));
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
			g_assert_null(data);
			g_clear_error(&error);
			g_clear_pointer(&p, json_object_unref);
		}
	}
	kl_ima_log_plugin_shutdown(ctx);
	kl_plugin_context_free(ctx);
}

static void
test_plugin_missing(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GHashTable) cfg = g_hash_table_new(g_str_hash, g_str_equal);
	KlPluginContext *ctx;
	g_autoptr(GError) error = NULL;

	g_hash_table_insert(cfg, (gpointer) "ima_ml_path", fx->path);
	ctx = plugin_context(cfg);
	g_assert_false(kl_ima_log_plugin_startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_null(kl_plugin_context_get_data(ctx));
	kl_plugin_context_free(ctx);
}

/* the built module exports the descriptor with the callbacks */
static void
test_module(Fixture *fx, gconstpointer user_data)
{
	const gchar *dir = g_getenv("KL_TEST_PLUGINDIR");
	g_autofree gchar *path = NULL;
	GModule *module = NULL;
	KlPluginGetInfoFunc get_info = NULL;
	const KlPluginInfo *info;

	if (dir == NULL) {
		kl_test_skip("KL_TEST_PLUGINDIR not set");
		return;
	}
	path = g_build_filename(dir, "ima_log.so", NULL);
	module = g_module_open(path, G_MODULE_BIND_LOCAL);
	g_assert_nonnull(module);
	g_assert_true(g_module_symbol(module, KL_PLUGIN_INFO_SYMBOL, (gpointer *)&get_info));
	info = get_info();
	g_assert_cmpstr(info->name, ==, "ima_log");
	g_assert_cmpstr(info->evidence_class, ==, "log");
	g_assert_cmpint(info->abi_major, ==, KL_PLUGIN_ABI_MAJOR);
	g_assert_nonnull(info->startup);
	g_assert_nonnull(info->get_capabilities);
	g_assert_nonnull(info->collect);
	g_assert_null(info->contribute_registration);
	g_module_close(module);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/ima-log/line-validation", test_line_validation);
	g_test_add_func("/ima-log/line-validation-hash", test_line_validation_hash);
	g_test_add_func("/ima-log/fixture", test_fixture);
#define ADD(name, fn)                                                                              \
	g_test_add("/ima-log/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD("offsets", test_offsets);
	ADD("offset-beyond-end", test_offset_beyond_end);
	ADD("max-entries", test_max_entries);
	ADD("growth", test_growth);
	ADD("partial-line", test_partial_line);
	ADD("shrink", test_shrink);
	ADD("rewrite-same-size", test_rewrite_same_size);
	ADD("replace", test_replace);
	ADD("boot-time", test_boot_time);
	ADD("malformed", test_malformed);
	ADD("malformed-text", test_malformed_text);
	ADD("missing", test_missing);
	ADD("empty", test_empty);
	ADD("cost", test_cost);
	ADD("plugin/callbacks", test_plugin);
	ADD("plugin/missing", test_plugin_missing);
	ADD("plugin/module", test_module);
#undef ADD
	return g_test_run();
}
