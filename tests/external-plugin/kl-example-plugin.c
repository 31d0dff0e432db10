/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Example evidence plugin, built out of tree. It offers a "log" evidence of
 * type "example": the lines of a text file (the config key "example_log",
 * default /etc/os-release), sliced with the verifier's "starting_offset" and
 * "entry_count".
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

typedef struct {
	gchar *path;
} KlExampleState;

static void
kl_example_state_free(gpointer data)
{
	KlExampleState *state = data;

	g_free(state->path);
	g_free(state);
}

static gboolean
kl_example_startup(KlPluginContext *ctx, GError **error)
{
	const gchar *path = kl_plugin_context_get_config(ctx, "example_log");
	KlExampleState *state;

	if (path == NULL)
		path = "/etc/os-release";
	/* no file, no evidence: the agent leaves the plugin out with one info line */
	if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "%s does not exist; set example_log in [example] of agent.conf",
			    path);
		return FALSE;
	}
	state = g_new0(KlExampleState, 1);
	state->path = g_strdup(path);
	kl_plugin_context_set_data(ctx, state, kl_example_state_free);
	return TRUE;
}

static JsonObject *
kl_example_get_capabilities(KlPluginContext *ctx, GError **error)
{
	JsonObject *caps = json_object_new();
	JsonArray *formats = json_array_new();

	json_array_add_string_element(formats, "text/plain");
	json_object_set_array_member(caps, "formats", formats);
	json_object_set_boolean_member(caps, "supports_partial_access", TRUE);
	return caps;
}

static JsonObject *
kl_example_collect(KlPluginContext *ctx,
		   JsonObject *chosen_parameters,
		   GCancellable *cancellable,
		   GError **error)
{
	KlExampleState *state = kl_plugin_context_get_data(ctx);
	g_autofree gchar *contents = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GString) out = g_string_new(NULL);
	JsonObject *data;
	gint64 offset = 0;
	gint64 count = -1;
	gint64 returned = 0;
	guint n;

	/* parameters come from the verifier: read them only with the checked getters */
	if (!kl_json_object_get_optional_int(
		chosen_parameters, "starting_offset", 0, &offset, error))
		return NULL;
	if (!kl_json_object_get_optional_int(chosen_parameters, "entry_count", -1, &count, error))
		return NULL;
	if (offset < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "starting_offset must not be negative");
		return NULL;
	}
	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return NULL;
	if (!g_file_get_contents(state->path, &contents, NULL, error)) {
		g_prefix_error(error, "cannot read %s: ", state->path);
		return NULL;
	}
	lines = g_strsplit(contents, "\n", -1);
	n = g_strv_length(lines);
	/* a trailing newline leaves one empty element that is not an entry */
	if (n > 0 && lines[n - 1][0] == '\0')
		n--;
	for (gint64 i = offset; i < (gint64)n && (count < 0 || i < offset + count); i++) {
		g_string_append_printf(out, "%s\n", lines[i]);
		returned++;
	}

	data = json_object_new();
	json_object_set_string_member(data, "format", "text/plain");
	json_object_set_int_member(data, "starting_offset", offset);
	json_object_set_int_member(data, "entry_count", returned);
	json_object_set_int_member(data, "total_entries", (gint64)n);
	json_object_set_string_member(data, "entries", out->str);
	return data;
}

KL_PLUGIN_DEFINE("example",
		 "log",
		 KL_EXAMPLE_VERSION,
		 "example out-of-tree evidence plugin",
		 kl_example_startup,
		 NULL,
		 kl_example_get_capabilities,
		 kl_example_collect,
		 NULL)
