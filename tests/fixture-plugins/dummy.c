/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A well-behaved test plugin. Capabilities {"answer": 42}; collect echoes the
 * "echo" parameter back as data and reports the "summary" parameter as what it
 * sent. An "attach" parameter is attached (kl_plugin_context_attach_string())
 * as the first member "text" (a placeholder) and as a new member "tail"; with
 * "fail" too, the collect fails after attaching. With "keep", the first such
 * collect's data is kept, sealed, and every later one with "keep" returns it
 * again (as a plugin whose data did not change does). With KL_TEST_DUMMY_MARKER
 * set, its constructor creates that file (proof that the module was opened); with
 * KL_TEST_DUMMY_SHUTDOWN_MARKER set, shutdown appends a line to that file.
 */
#include "config.h"

#include <string.h>

#include <keylime-agent/keylime-agent-plugin.h>

typedef struct {
	guint collects;
	JsonObject *kept; /* sealed */
} KlDummyState;

static void
kl_dummy_state_free(KlDummyState *state)
{
	if (state->kept != NULL)
		json_object_unref(state->kept);
	g_free(state);
}

__attribute__((constructor)) static void
kl_dummy_constructor(void)
{
	const gchar *marker = g_getenv("KL_TEST_DUMMY_MARKER");

	if (marker != NULL)
		(void)g_file_set_contents(marker, "opened\n", -1, NULL);
}

static gboolean
kl_dummy_startup(KlPluginContext *ctx, GError **error)
{
	kl_plugin_context_set_data(
	    ctx, g_new0(KlDummyState, 1), (GDestroyNotify)kl_dummy_state_free);
	return TRUE;
}

static void
kl_dummy_shutdown(KlPluginContext *ctx)
{
	const gchar *marker = g_getenv("KL_TEST_DUMMY_SHUTDOWN_MARKER");
	g_autofree gchar *old = NULL;
	g_autofree gchar *text = NULL;

	if (marker == NULL)
		return;
	if (!g_file_get_contents(marker, &old, NULL, NULL))
		old = g_strdup("");
	text = g_strconcat(old, "shutdown ", kl_plugin_context_get_name(ctx), "\n", NULL);
	(void)g_file_set_contents(marker, text, -1, NULL);
}

static JsonObject *
kl_dummy_get_capabilities(KlPluginContext *ctx, GError **error)
{
	JsonObject *caps = json_object_new();

	json_object_set_int_member(caps, "answer", 42);
	return caps;
}

static JsonObject *
kl_dummy_collect(KlPluginContext *ctx,
		 JsonObject *chosen_parameters,
		 GCancellable *cancellable,
		 GError **error)
{
	KlDummyState *state = kl_plugin_context_get_data(ctx);
	g_autoptr(JsonObject) data = json_object_new();
	const gchar *echo = NULL;
	gboolean flag = FALSE;

	if (!kl_json_object_get_optional_string(chosen_parameters, "echo", &echo, error))
		return NULL;
	if (json_object_has_member(chosen_parameters, "attach")) {
		const gchar *text = kl_json_object_get_string(chosen_parameters, "attach", error);
		g_autoptr(GBytes) bytes = NULL;

		if (text == NULL)
			return NULL;
		bytes = g_bytes_new(text, strlen(text));
		json_object_set_null_member(data, "text");
		kl_plugin_context_attach_string(ctx, "text", bytes);
		kl_plugin_context_attach_string(ctx, "tail", bytes);
	}
	if (json_object_has_member(chosen_parameters, "fail")) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS, "parameter \"fail\" was given");
		return NULL;
	}
	if (json_object_has_member(chosen_parameters, "modify")) {
		if (!kl_json_object_get_bool(chosen_parameters, "modify", &flag, error))
			return NULL;
		/* misbehaves on purpose: the core must have handed over a copy */
		if (flag) {
			json_object_set_string_member(chosen_parameters, "injected", "yes");
			if (json_object_has_member(chosen_parameters, "n")) {
				JsonObject *n =
				    kl_json_object_get_object(chosen_parameters, "n", error);

				if (n == NULL)
					return NULL;
				json_object_set_string_member(n, "injected", "yes");
			}
		}
	}
	if (json_object_has_member(chosen_parameters, "summary")) {
		const gchar *summary = NULL;

		if (!kl_json_object_get_optional_string(
			chosen_parameters, "summary", &summary, error))
			return NULL;
		/* what the agent's info line says this collect sent */
		kl_plugin_context_set_summary(ctx, summary);
	}
	if (json_object_has_member(chosen_parameters, "entries")) {
		gint64 entries = 0;

		if (!kl_json_object_get_optional_int(
			chosen_parameters, "entries", 0, &entries, error))
			return NULL;
		/* the log entries this collect sent (ABI 1.2), for the agent's figures */
		kl_plugin_context_set_entry_count(ctx, (guint64)MAX(entries, 0));
	}
	state->collects++;
	json_object_set_string_member(data, "echo", echo != NULL ? echo : "");
	json_object_set_boolean_member(data, "sealed", json_object_is_immutable(chosen_parameters));
	json_object_set_int_member(data, "collects", state->collects);
	if (json_object_has_member(chosen_parameters, "keep")) {
		if (state->kept == NULL) {
			state->kept = g_steal_pointer(&data);
			json_object_seal(state->kept);
		}
		return json_object_ref(state->kept);
	}
	return g_steal_pointer(&data);
}

static gboolean
kl_dummy_contribute_registration(KlPluginContext *ctx, JsonObject *body, GError **error)
{
	json_object_set_string_member(body, "dummy_contribution", "present");
	return TRUE;
}

KL_PLUGIN_DEFINE("dummy",
		 "log",
		 "1.0",
		 "well-behaved test plugin",
		 kl_dummy_startup,
		 kl_dummy_shutdown,
		 kl_dummy_get_capabilities,
		 kl_dummy_collect,
		 kl_dummy_contribute_registration)
