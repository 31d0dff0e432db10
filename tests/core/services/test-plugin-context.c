/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Plugin context: config view (plugin table first, then [agent]), typed
 * config values, per-plugin data.
 */
#include "config.h"

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-plugin-context-private.h"

/* "table.key" -> value; table NULL is "agent" */
static const gchar *
kl_test_lookup_cb(gpointer user_data, const gchar *table, const gchar *key)
{
	GHashTable *values = user_data;
	g_autofree gchar *k = g_strconcat(table != NULL ? table : "agent", ".", key, NULL);

	return g_hash_table_lookup(values, k);
}

static KlPluginContext *
kl_test_context_new(GHashTable *values)
{
	return kl_plugin_context_new(
	    "ima_log", kl_test_lookup_cb, values, "agent-1", "/var/lib/keylime", 1234, NULL);
}

static GHashTable *
kl_test_values_new(void)
{
	GHashTable *values = g_hash_table_new(g_str_hash, g_str_equal);

	g_hash_table_insert(values, "ima_log.path", "/plugin/table");
	g_hash_table_insert(values, "agent.path", "/agent/table");
	g_hash_table_insert(values, "agent.only_agent", "from-agent");
	g_hash_table_insert(values, "ima_log.yes", "true");
	g_hash_table_insert(values, "ima_log.no", "FALSE");
	g_hash_table_insert(values, "ima_log.maybe", "yes");
	g_hash_table_insert(values, "ima_log.n", "-42");
	g_hash_table_insert(values, "ima_log.big", "99999999999999999999");
	g_hash_table_insert(values, "agent.notint", "12abc");
	g_hash_table_insert(values, "other_plugin.secret", "not for ima_log");
	return values;
}

static void
kl_test_config_lookup(void)
{
	g_autoptr(GHashTable) values = kl_test_values_new();
	KlPluginContext *ctx = kl_test_context_new(values);

	g_assert_cmpstr(kl_plugin_context_get_name(ctx), ==, "ima_log");
	/* the plugin's table wins, [agent] is the fallback */
	g_assert_cmpstr(kl_plugin_context_get_config(ctx, "path"), ==, "/plugin/table");
	g_assert_cmpstr(kl_plugin_context_get_config(ctx, "only_agent"), ==, "from-agent");
	g_assert_null(kl_plugin_context_get_config(ctx, "unset"));
	/* other plugins' tables are not visible */
	g_assert_null(kl_plugin_context_get_config(ctx, "secret"));

	g_assert_cmpstr(kl_plugin_context_get_agent_id(ctx), ==, "agent-1");
	g_assert_cmpstr(kl_plugin_context_get_data_dir(ctx), ==, "/var/lib/keylime");
	g_assert_cmpint(kl_plugin_context_get_boot_time(ctx), ==, 1234);
	g_assert_null(kl_plugin_context_get_tpm(ctx));
	kl_plugin_context_free(ctx);

	/* no lookup function: nothing is configured */
	ctx = kl_plugin_context_new("x", NULL, NULL, NULL, NULL, 0, NULL);
	g_assert_null(kl_plugin_context_get_config(ctx, "path"));
	kl_plugin_context_free(ctx);
}

static void
kl_test_config_bool(void)
{
	g_autoptr(GHashTable) values = kl_test_values_new();
	KlPluginContext *ctx = kl_test_context_new(values);
	g_autoptr(GError) error = NULL;
	gboolean v = FALSE;

	g_assert_true(kl_plugin_context_get_config_bool(ctx, "yes", FALSE, &v, &error));
	g_assert_true(v);
	g_assert_true(kl_plugin_context_get_config_bool(ctx, "no", TRUE, &v, &error));
	g_assert_false(v);
	g_assert_true(kl_plugin_context_get_config_bool(ctx, "unset", TRUE, &v, &error));
	g_assert_true(v);
	g_assert_no_error(error);

	v = TRUE;
	g_assert_false(kl_plugin_context_get_config_bool(ctx, "maybe", FALSE, &v, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "\"maybe\""));
	g_assert_nonnull(strstr(error->message, "\"yes\""));
	g_assert_true(v);
	kl_plugin_context_free(ctx);
}

static void
kl_test_config_int(void)
{
	g_autoptr(GHashTable) values = kl_test_values_new();
	KlPluginContext *ctx = kl_test_context_new(values);
	g_autoptr(GError) error = NULL;
	gint64 v = 0;

	g_assert_true(kl_plugin_context_get_config_int(ctx, "n", 0, &v, &error));
	g_assert_cmpint(v, ==, -42);
	g_assert_true(kl_plugin_context_get_config_int(ctx, "unset", 5, &v, &error));
	g_assert_cmpint(v, ==, 5);
	g_assert_no_error(error);

	g_assert_false(kl_plugin_context_get_config_int(ctx, "notint", 0, &v, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "\"notint\""));
	g_clear_error(&error);
	g_assert_false(kl_plugin_context_get_config_int(ctx, "big", 0, &v, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "\"big\""));
	g_assert_cmpint(v, ==, 5);
	kl_plugin_context_free(ctx);
}

static guint kl_test_destroyed;

static void
kl_test_destroy_cb(gpointer data)
{
	kl_test_destroyed += GPOINTER_TO_UINT(data);
}

static void
kl_test_data(void)
{
	KlPluginContext *ctx = kl_plugin_context_new("x", NULL, NULL, NULL, NULL, 0, NULL);

	kl_test_destroyed = 0;
	g_assert_null(kl_plugin_context_get_data(ctx));
	kl_plugin_context_set_data(ctx, GUINT_TO_POINTER(1), kl_test_destroy_cb);
	g_assert_true(kl_plugin_context_get_data(ctx) == GUINT_TO_POINTER(1));
	/* replacing runs the old notify */
	kl_plugin_context_set_data(ctx, GUINT_TO_POINTER(10), kl_test_destroy_cb);
	g_assert_cmpuint(kl_test_destroyed, ==, 1);
	/* freeing the context runs the current one */
	kl_plugin_context_free(ctx);
	g_assert_cmpuint(kl_test_destroyed, ==, 11);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/plugin-context/config-lookup", kl_test_config_lookup);
	g_test_add_func("/plugin-context/config-bool", kl_test_config_bool);
	g_test_add_func("/plugin-context/config-int", kl_test_config_int);
	g_test_add_func("/plugin-context/data", kl_test_data);
	return g_test_run();
}
