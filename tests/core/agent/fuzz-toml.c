/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the TOML parser and the config layer on top of it.
 */
#include "config.h"

#include <stdint.h>

#include "kl-config.h"
#include "kl-fuzz.h"
#include "kl-toml.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* unknown keys warn: keep the output quiet, criticals still abort */
static GLogWriterOutput
kl_fuzz_quiet_writer_cb(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return g_log_writer_default(level, fields, n, data);
	return G_LOG_WRITER_HANDLED;
}

static void
kl_fuzz_walk(const KlTomlValue *value)
{
	g_autofree gchar *str = kl_toml_value_to_string(value);

	g_assert_nonnull(str);
	if (value->type != KL_TOML_TYPE_ARRAY)
		return;
	for (guint i = 0; i < value->array->len; i++)
		kl_fuzz_walk(g_ptr_array_index(value->array, i));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gboolean init = FALSE;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTomlDocument) doc = NULL;
	g_autoptr(KlConfig) cfg = NULL;

	if (!init) {
		g_log_set_writer_func(kl_fuzz_quiet_writer_cb, NULL, NULL);
		init = TRUE;
	}
	doc = kl_toml_parse((const gchar *)data, size, "fuzz.conf", &error);
	if (doc == NULL) {
		/* every error names the input */
		g_assert_true(g_str_has_prefix(error->message, "fuzz.conf:"));
		kl_fuzz_report(FALSE);
		return 0;
	}
	for (guint t = 0; t < doc->tables->len; t++) {
		KlTomlTable *table = g_ptr_array_index(doc->tables, t);
		for (guint k = 0; k < table->keys->len; k++)
			kl_fuzz_walk(kl_toml_table_get(table, g_ptr_array_index(table->keys, k)));
	}

	cfg = kl_config_new();
	if (kl_config_load_data(cfg, (const gchar *)data, size, "fuzz.conf", &error)) {
		const gchar *const *keys = kl_config_get_known_keys();
		if (kl_config_finalize(cfg, NULL, NULL)) {
			for (guint i = 0; keys[i] != NULL; i++)
				g_assert_nonnull(kl_config_get_string(cfg, keys[i]));
			kl_fuzz_report(TRUE);
			return 0;
		}
	}
	kl_fuzz_report(FALSE);
	return 0;
}
