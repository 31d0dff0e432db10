/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * uefi_log: the event log parser (against the generated logs and their
 * sidecar files) and the plugin callbacks.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-plugin-context-private.h"
#include "kl-test-attachments.h"
#include "kl-uefi-log-parser.h"
#include "kl-uefi-log-plugin.h"

static gchar *
data_path(const gchar *name)
{
	return g_test_build_filename(G_TEST_DIST, "data", "uefi", name, NULL);
}

static GBytes *
load_log(const gchar *name)
{
	g_autofree gchar *path = data_path(name);
	g_autoptr(GError) error = NULL;
	gchar *data = NULL;
	gsize len = 0;

	g_assert_true(g_file_get_contents(path, &data, &len, &error));
	g_assert_no_error(error);
	return g_bytes_new_take(data, len);
}

static JsonObject *
load_sidecar(const gchar *name)
{
	g_autofree gchar *path = data_path(name);
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;

	g_assert_true(json_parser_load_from_file(parser, path, &error));
	return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static guint16
alg_id(const gchar *name)
{
	if (g_strcmp0(name, "sha1") == 0)
		return KL_UEFI_LOG_TPM_ALG_SHA1;
	if (g_strcmp0(name, "sha256") == 0)
		return KL_UEFI_LOG_TPM_ALG_SHA256;
	g_assert_not_reached();
	return 0;
}

/* event count, format, algorithms and the replayed PCRs equal the sidecar */
static void
check_log(gconstpointer user_data)
{
	const gchar *name = user_data;
	g_autofree gchar *bin = g_strdup_printf("%s.bin", name);
	g_autofree gchar *json = g_strdup_printf("%s.json", name);
	g_autoptr(GBytes) blob = load_log(bin);
	g_autoptr(JsonObject) expected = load_sidecar(json);
	g_autoptr(GError) error = NULL;
	KlUefiLogInfo info;
	JsonArray *algs = json_object_get_array_member(expected, "algorithms");
	JsonObject *pcrs = json_object_get_object_member(expected, "pcrs");
	gsize len;
	const guint8 *data = g_bytes_get_data(blob, &len);

	g_assert_true(kl_uefi_log_parse(data, len, &info, NULL, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(info.event_count, ==, json_object_get_int_member(expected, "event_count"));
	g_assert_cmpint(
	    info.format,
	    ==,
	    g_strcmp0(json_object_get_string_member(expected, "format"), "crypto-agile") == 0
		? KL_UEFI_LOG_FORMAT_CRYPTO_AGILE
		: KL_UEFI_LOG_FORMAT_LEGACY_SHA1);
	g_assert_cmpuint(info.n_algs, ==, json_array_get_length(algs));
	for (guint i = 0; i < info.n_algs; i++) {
		const gchar *alg = json_array_get_string_element(algs, i);
		JsonObject *bank = json_object_get_object_member(pcrs, alg);
		guint8 values[24][KL_UEFI_LOG_MAX_DIGEST];
		gsize size = 0;

		g_assert_cmpuint(info.algs[i].alg, ==, alg_id(alg));
		g_assert_true(kl_uefi_log_replay(data, len, alg_id(alg), values, &size, &error));
		g_assert_no_error(error);
		for (guint pcr = 0; pcr < 8; pcr++) {
			g_autofree gchar *key = g_strdup_printf("%u", pcr);
			g_autoptr(GString) hex = g_string_new(NULL);

			for (gsize k = 0; k < size; k++)
				g_string_append_printf(hex, "%02x", values[pcr][k]);
			g_assert_cmpstr(hex->str, ==, json_object_get_string_member(bank, key));
		}
	}
	/* a bank the log does not have */
	{
		guint8 values[24][KL_UEFI_LOG_MAX_DIGEST];
		g_assert_false(kl_uefi_log_replay(
		    data, len, KL_UEFI_LOG_TPM_ALG_SHA512, values, NULL, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	}
}

static gboolean
collect_offsets_cb(const KlUefiLogEvent *ev, gpointer user_data)
{
	GArray *offsets = user_data;

	g_array_append_val(offsets, ev->offset);
	return TRUE;
}

/* every prefix of the log that does not end on an event boundary is rejected, with the offset */
static void
test_truncated(gconstpointer user_data)
{
	const gchar *name = user_data;
	g_autoptr(GBytes) blob = load_log(name);
	g_autoptr(GArray) offsets = g_array_new(FALSE, FALSE, sizeof(gsize));
	g_autoptr(GError) error = NULL;
	KlUefiLogInfo info;
	gsize len;
	const guint8 *data = g_bytes_get_data(blob, &len);
	guint boundary = 1;

	g_assert_true(kl_uefi_log_parse(data, len, &info, collect_offsets_cb, offsets, &error));
	g_assert_cmpuint(offsets->len, ==, info.event_count);
	g_array_append_val(offsets, len);

	for (gsize cut = 0; cut < len; cut++) {
		/* a fresh copy of exactly @cut bytes, so ASan sees any overread */
		g_autofree guint8 *copy = g_memdup2(data, cut);
		gboolean ok;

		if (cut > g_array_index(offsets, gsize, boundary))
			boundary++;
		ok = kl_uefi_log_parse(copy, cut, &info, NULL, NULL, &error);
		if (cut != 0 && cut == g_array_index(offsets, gsize, boundary)) {
			/* a shorter but complete log */
			g_assert_no_error(error);
			g_assert_true(ok);
			g_assert_cmpuint(info.event_count, ==, boundary);
		} else {
			g_assert_false(ok);
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
			if (cut > 0)
				g_assert_nonnull(strstr(error->message, "offset"));
			g_clear_error(&error);
		}
	}
}

static void
put_u32(guint8 *p, guint32 v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

static void
expect_malformed(const guint8 *data, gsize len, const gchar *needle)
{
	g_autoptr(GError) error = NULL;
	KlUefiLogInfo info;

	g_assert_false(kl_uefi_log_parse(data, len, &info, NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	if (strstr(error->message, needle) == NULL)
		g_error("\"%s\" not in \"%s\"", needle, error->message);
}

static void
test_malformed(void)
{
	g_autoptr(GBytes) blob = load_log("uefi-agile.bin");
	gsize len;
	const guint8 *orig = g_bytes_get_data(blob, &len);
	g_autofree guint8 *d = g_memdup2(orig, len);
	guint32 spec_size = orig[28] | (orig[29] << 8);
	gsize ev1 = 32 + spec_size;
	g_autofree gchar *ev1_str = g_strdup_printf("offset %" G_GSIZE_FORMAT, ev1);

	/* event 1 claims more digests than the header declares */
	put_u32(d + ev1 + 8, 5);
	expect_malformed(d, len, ev1_str);
	memcpy(d, orig, len);
	/* an algorithm the header does not declare */
	d[ev1 + 12] = 0x99;
	expect_malformed(d, len, "0x0099");
	expect_malformed(d, len, ev1_str);
	memcpy(d, orig, len);
	/* event data running past the end */
	put_u32(d + ev1 + 12 + 2 + 20 + 2 + 32, 0xfffffff0u);
	expect_malformed(d, len, ev1_str);
	memcpy(d, orig, len);
	/* no algorithms in the Spec ID header */
	put_u32(d + 32 + 24, 0);
	expect_malformed(d, len, "offset 0");
	memcpy(d, orig, len);
	/* absurd digest size */
	d[32 + 28 + 2] = 0xff;
	expect_malformed(d, len, "digest size");
	memcpy(d, orig, len);
	/* an algorithm declared twice */
	d[32 + 28 + 4] = d[32 + 28];
	d[32 + 28 + 5] = d[32 + 28 + 1];
	expect_malformed(d, len, "declared twice");
	memcpy(d, orig, len);
	/* empty */
	expect_malformed(d, 0, "empty");
}

/* ---- the plugin callbacks ---- */

static const gchar *
config_lookup_cb(gpointer user_data, const gchar *table, const gchar *key)
{
	GHashTable *cfg = user_data;
	const gchar *value;

	if (table != NULL)
		return NULL;
	value = g_hash_table_lookup(cfg, key);
	/* the agent's default (its option table) */
	if (value == NULL && g_strcmp0(key, "uefi_logs_evidence_version") == 0)
		return "2.1";
	return value;
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
test_plugin(void)
{
	g_autoptr(GHashTable) cfg = g_hash_table_new(g_str_hash, g_str_equal);
	g_autofree gchar *path = data_path("uefi-agile.bin");
	g_autoptr(GBytes) blob = load_log("uefi-agile.bin");
	g_autoptr(JsonObject) expected = load_sidecar("uefi-agile.json");
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(JsonObject) p = NULL;
	g_autofree gchar *caps_json = NULL;
	g_autofree gchar *want = NULL;
	g_autofree guint8 *decoded = NULL;
	gsize decoded_len = 0;
	KlPluginContext *ctx;

	g_hash_table_insert(cfg, (gpointer) "measuredboot_ml_path", path);
	ctx = kl_plugin_context_new(
	    "uefi_log", config_lookup_cb, cfg, "agent", "/nonexistent", 1000, NULL);
	g_assert_true(kl_uefi_log_plugin_startup(ctx, &error));
	g_assert_no_error(error);

	caps = kl_uefi_log_plugin_get_capabilities(ctx, &error);
	g_assert_no_error(error);
	caps_json = kl_json_object_to_string(caps, NULL);
	want = g_strdup_printf("{\"evidence_version\":\"2.1\",\"entry_count\":%" G_GINT64_FORMAT
			       ",\"supports_partial_access\":false,\"appendable\":false,"
			       "\"formats\":[\"application/octet-stream\"]}",
			       json_object_get_int_member(expected, "event_count"));
	g_assert_cmpstr(caps_json, ==, want);

	/* the configured evidence version, read at start-up */
	g_hash_table_insert(cfg, (gpointer) "uefi_logs_evidence_version", (gpointer) "1.0");
	{
		KlPluginContext *other = kl_plugin_context_new(
		    "uefi_log", config_lookup_cb, cfg, "agent", "/nonexistent", 1000, NULL);
		g_autoptr(JsonObject) other_caps = NULL;

		g_assert_true(kl_uefi_log_plugin_startup(other, &error));
		other_caps = kl_uefi_log_plugin_get_capabilities(other, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(
		    json_object_get_string_member(other_caps, "evidence_version"), ==, "1.0");
		kl_uefi_log_plugin_shutdown(other);
		kl_plugin_context_free(other);
	}
	/* an empty version: no capabilities, the cause named */
	g_hash_table_insert(cfg, (gpointer) "uefi_logs_evidence_version", (gpointer) "");
	{
		KlPluginContext *other = kl_plugin_context_new(
		    "uefi_log", config_lookup_cb, cfg, "agent", "/nonexistent", 1000, NULL);

		g_assert_true(kl_uefi_log_plugin_startup(other, &error));
		g_assert_null(kl_uefi_log_plugin_get_capabilities(other, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, "uefi_logs_evidence_version"));
		g_clear_error(&error);
		kl_uefi_log_plugin_shutdown(other);
		kl_plugin_context_free(other);
	}

	p = params("{\"format\":\"application/octet-stream\"}");
	data = kl_test_sent_data(ctx, kl_uefi_log_plugin_collect(ctx, p, NULL, &error));
	g_assert_no_error(error);
	decoded = g_base64_decode(json_object_get_string_member(data, "entries"), &decoded_len);
	g_assert_cmpmem(decoded, decoded_len, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob));
	g_clear_pointer(&p, json_object_unref);
	/* the data object itself is the plugin's, sealed, empty, the same every time */
	{
		g_autoptr(JsonObject) one = kl_uefi_log_plugin_collect(ctx, NULL, NULL, &error);
		g_autoptr(JsonObject) two = NULL;

		g_assert_no_error(error);
		g_ptr_array_unref(kl_plugin_context_take_attachments(ctx));
		two = kl_uefi_log_plugin_collect(ctx, NULL, NULL, &error);
		g_assert_no_error(error);
		g_ptr_array_unref(kl_plugin_context_take_attachments(ctx));
		g_assert_true(one == two);
		g_assert_true(json_object_is_immutable(one));
		g_assert_cmpuint(json_object_get_size(one), ==, 0);
	}

	p = params("{\"format\":\"text/plain\"}");
	g_assert_null(kl_uefi_log_plugin_collect(ctx, p, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_clear_pointer(&p, json_object_unref);

	kl_uefi_log_plugin_shutdown(ctx);
	kl_plugin_context_free(ctx);
}

/* the entries a collect serves, decoded */
static GBytes *
collect_entries(KlPluginContext *ctx)
{
	g_autoptr(JsonObject) p = params("{\"format\":\"application/octet-stream\"}");
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) data =
	    kl_test_sent_data(ctx, kl_uefi_log_plugin_collect(ctx, p, NULL, &error));
	guint8 *decoded;
	gsize len = 0;

	g_assert_no_error(error);
	decoded = g_base64_decode(json_object_get_string_member(data, "entries"), &len);
	return g_bytes_new_take(decoded, len);
}

static void
test_plugin_reboot_rereads(void)
{
	g_autoptr(GHashTable) cfg = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GBytes) first = load_log("uefi-agile.bin");
	g_autoptr(GBytes) second = load_log("uefi-legacy-sha1.bin");
	g_autoptr(JsonObject) second_info = load_sidecar("uefi-legacy-sha1.json");
	g_autofree gchar *dir = g_dir_make_tmp("kl-uefi-log-XXXXXX", NULL);
	g_autofree gchar *path = g_build_filename(dir, "binary_bios_measurements", NULL);
	g_autoptr(GBytes) served = NULL;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(GError) error = NULL;
	KlPluginContext *ctx;

	g_assert_nonnull(dir);
	g_assert_true(g_file_set_contents(
	    path, g_bytes_get_data(first, NULL), (gssize)g_bytes_get_size(first), NULL));
	g_hash_table_insert(cfg, (gpointer) "measuredboot_ml_path", path);
	ctx = kl_plugin_context_new(
	    "uefi_log", config_lookup_cb, cfg, "a", "/nonexistent", 1000, NULL);
	g_assert_true(kl_uefi_log_plugin_startup(ctx, &error));
	g_assert_no_error(error);
	served = collect_entries(ctx);
	g_assert_true(g_bytes_equal(served, first));

	/* a new log, same boot: the log of this boot, read once, is served */
	g_assert_true(g_file_set_contents(
	    path, g_bytes_get_data(second, NULL), (gssize)g_bytes_get_size(second), NULL));
	g_clear_pointer(&served, g_bytes_unref);
	served = collect_entries(ctx);
	g_assert_true(g_bytes_equal(served, first));

	/*
	 * rebooted: the agent starts again with the new boot time (it reads it
	 * once); the new log is read, offered and served
	 */
	kl_uefi_log_plugin_shutdown(ctx);
	kl_plugin_context_free(ctx);
	ctx = kl_plugin_context_new(
	    "uefi_log", config_lookup_cb, cfg, "a", "/nonexistent", 2000, NULL);
	g_assert_true(kl_uefi_log_plugin_startup(ctx, &error));
	g_assert_no_error(error);
	caps = kl_uefi_log_plugin_get_capabilities(ctx, &error);
	g_assert_no_error(error);
	g_assert_cmpint(json_object_get_int_member(caps, "entry_count"),
			==,
			json_object_get_int_member(second_info, "event_count"));
	g_clear_pointer(&served, g_bytes_unref);
	served = collect_entries(ctx);
	g_assert_true(g_bytes_equal(served, second));

	kl_uefi_log_plugin_shutdown(ctx);
	kl_plugin_context_free(ctx);
	g_unlink(path);
	g_rmdir(dir);
}

static void
test_plugin_startup_errors(void)
{
	g_autoptr(GHashTable) cfg = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) blob = load_log("uefi-agile.bin");
	g_autofree gchar *dir = g_dir_make_tmp("kl-uefi-log-XXXXXX", NULL);
	g_autofree gchar *missing = g_build_filename(dir, "missing", NULL);
	g_autofree gchar *truncated = g_build_filename(dir, "truncated", NULL);
	KlPluginContext *ctx;

	g_assert_nonnull(dir);
	g_assert_true(g_file_set_contents(
	    truncated, g_bytes_get_data(blob, NULL), (gssize)g_bytes_get_size(blob) - 3, NULL));

	ctx =
	    kl_plugin_context_new("uefi_log", config_lookup_cb, cfg, "a", "/nonexistent", 1, NULL);
	g_hash_table_insert(cfg, (gpointer) "measuredboot_ml_path", missing);
	g_assert_false(kl_uefi_log_plugin_startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);

	g_hash_table_insert(cfg, (gpointer) "measuredboot_ml_path", truncated);
	g_assert_false(kl_uefi_log_plugin_startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, "offset"));
	g_assert_nonnull(strstr(error->message, truncated));
	g_assert_null(kl_plugin_context_get_data(ctx));
	kl_plugin_context_free(ctx);

	g_unlink(truncated);
	g_rmdir(dir);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_data_func("/uefi-log/crypto-agile", "uefi-agile", check_log);
	g_test_add_data_func("/uefi-log/crypto-agile-sha1-only", "uefi-agile-sha1", check_log);
	g_test_add_data_func("/uefi-log/legacy-sha1", "uefi-legacy-sha1", check_log);
	g_test_add_data_func("/uefi-log/truncated/crypto-agile", "uefi-agile.bin", test_truncated);
	g_test_add_data_func(
	    "/uefi-log/truncated/legacy-sha1", "uefi-legacy-sha1.bin", test_truncated);
	g_test_add_func("/uefi-log/malformed", test_malformed);
	g_test_add_func("/uefi-log/plugin/callbacks", test_plugin);
	g_test_add_func("/uefi-log/plugin/startup-errors", test_plugin_startup_errors);
	g_test_add_func("/uefi-log/plugin/reboot-rereads", test_plugin_reboot_rereads);
	return g_test_run();
}
