/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * kl-load-check: loads plugin directories with the agent's loader and prints
 * one line per plugin: "<name> <STATE> [<reason>]". For each active plugin it
 * also prints its evidence_supported entry. Used by the out-of-tree plugin
 * check and handy for plugin authors.
 *
 *   kl-load-check [--disable NAME]... [--expect-active NAME]...
 *                 [--collect NAME=JSON]... [--no-rejected] [--config FILE] DIR...
 *
 * --config loads an agent.conf (plugin tables included) on top of the defaults.
 * --collect runs the plugin's collect with JSON as chosen_parameters and
 * prints the evidence_collected entry.
 *
 * Exits 1 if a directory cannot be read, an --expect-active plugin is not
 * active, a --collect fails, or with --no-rejected when a module was rejected
 * (bad file, ABI, unresolved symbol, ...).
 */
#include "config.h"

#include <stdio.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-plugin-loader.h"

int
main(int argc, char **argv)
{
	g_auto(GStrv) disabled = NULL;
	g_auto(GStrv) expect_active = NULL;
	g_auto(GStrv) collect = NULL;
	gboolean no_rejected = FALSE;
	g_autofree gchar *config_file = NULL;
	g_autoptr(GOptionContext) octx = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlConfig) config = NULL;
	g_autoptr(KlPluginLoader) loader = NULL;
	g_auto(GStrv) envp = g_get_environ();
	KlPluginServices services = { 0 };
	GPtrArray *plugins;
	int rc = 0;
	const GOptionEntry entries[] = {
		{ "disable",
		  'd',
		  0,
		  G_OPTION_ARG_STRING_ARRAY,
		  &disabled,
		  "Treat plugin NAME as listed in disabled_plugins",
		  "NAME" },
		{ "expect-active",
		  'e',
		  0,
		  G_OPTION_ARG_STRING_ARRAY,
		  &expect_active,
		  "Fail unless plugin NAME ends up active",
		  "NAME" },
		{ "collect",
		  'c',
		  0,
		  G_OPTION_ARG_STRING_ARRAY,
		  &collect,
		  "Run collect of plugin NAME with chosen_parameters JSON",
		  "NAME=JSON" },
		{ "no-rejected",
		  'r',
		  0,
		  G_OPTION_ARG_NONE,
		  &no_rejected,
		  "Fail if any module is rejected",
		  NULL },
		{ "config",
		  0,
		  0,
		  G_OPTION_ARG_FILENAME,
		  &config_file,
		  "Load this agent.conf",
		  "FILE" },
		{ NULL },
	};

	octx = g_option_context_new("DIR... - load agent plugins and print their states");
	g_option_context_add_main_entries(octx, entries, NULL);
	if (!g_option_context_parse(octx, &argc, &argv, &error)) {
		fprintf(stderr, "kl-load-check: %s\n", error->message);
		return 2;
	}
	if (argc < 2) {
		fprintf(stderr, "kl-load-check: give at least one plugin directory\n");
		return 2;
	}

	config = kl_config_new();
	if (config_file != NULL && !kl_config_load_file(config, config_file, &error)) {
		fprintf(stderr, "kl-load-check: %s\n", error->message);
		return 1;
	}
	if (!kl_config_finalize(config, envp, &error)) {
		fprintf(stderr, "kl-load-check: %s\n", error->message);
		return 1;
	}
	services.config = config;
	services.agent_id = "kl-load-check";
	services.data_dir = g_get_tmp_dir();
	services.boot_time = 0;
	loader = kl_plugin_loader_new(&services);
	for (int i = 1; i < argc; i++) {
		if (!kl_plugin_loader_load_dir(loader, argv[i], disabled, &error)) {
			fprintf(stderr, "kl-load-check: %s\n", error->message);
			return 1;
		}
	}

	plugins = kl_plugin_loader_get_plugins(loader);
	for (guint i = 0; i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);
		const gchar *reason = kl_plugin_get_state_reason(plugin);
		g_autofree gchar *state =
		    g_ascii_strup(kl_plugin_state_to_string(kl_plugin_get_state(plugin)), -1);

		if (no_rejected && kl_plugin_get_state(plugin) == KL_PLUGIN_STATE_REJECTED)
			rc = 1;
		printf("%s %s%s%s\n",
		       kl_plugin_get_name(plugin),
		       state,
		       reason != NULL ? " " : "",
		       reason != NULL ? reason : "");
		if (kl_plugin_get_state(plugin) == KL_PLUGIN_STATE_ACTIVE) {
			g_autoptr(GError) error_local = NULL;
			g_autoptr(JsonObject) entry = NULL;
			g_autofree gchar *text = NULL;

			entry = kl_plugin_run_get_capabilities(plugin, &error_local);
			if (entry == NULL) {
				printf("  capabilities: error: %s\n", error_local->message);
				continue;
			}
			text = kl_json_object_to_string(entry, NULL);
			printf("  evidence_supported: %s\n", text);
		}
	}
	for (guint i = 0; expect_active != NULL && expect_active[i] != NULL; i++) {
		KlPlugin *plugin = kl_plugin_loader_lookup(loader, expect_active[i]);

		if (plugin == NULL) {
			fprintf(
			    stderr, "kl-load-check: plugin %s is not active\n", expect_active[i]);
			rc = 1;
		}
	}
	for (guint i = 0; collect != NULL && collect[i] != NULL; i++) {
		g_auto(GStrv) parts = g_strsplit(collect[i], "=", 2);
		g_autoptr(GError) error_local = NULL;
		g_autoptr(JsonObject) params = NULL;
		g_autoptr(JsonObject) entry = NULL;
		g_autofree gchar *text = NULL;
		KlPlugin *plugin;

		if (g_strv_length(parts) != 2) {
			fprintf(stderr, "kl-load-check: --collect wants NAME=JSON\n");
			return 2;
		}
		plugin = kl_plugin_loader_lookup(loader, parts[0]);
		if (plugin == NULL) {
			fprintf(stderr, "kl-load-check: plugin %s is not active\n", parts[0]);
			rc = 1;
			continue;
		}
		params = kl_json_parse_object(parts[1], -1, &error_local);
		if (params != NULL)
			entry = kl_plugin_run_collect(plugin, params, NULL, &error_local);
		if (entry == NULL) {
			fprintf(stderr, "kl-load-check: collect: %s\n", error_local->message);
			rc = 1;
			continue;
		}
		text = kl_json_object_to_string(entry, NULL);
		printf("  evidence_collected: %s\n", text);
	}
	fflush(stdout);
	return rc;
}
