/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin whose startup fails with KL_ERROR_IO: must end up FAILED.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static gboolean
kl_fails_startup_startup(KlPluginContext *ctx, GError **error)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_IO,
		    "cannot read /nonexistent/evidence: No such file or directory");
	return FALSE;
}

static void
kl_fails_startup_shutdown(KlPluginContext *ctx)
{
	const gchar *marker = g_getenv("KL_TEST_DUMMY_SHUTDOWN_MARKER");

	/* never called: a plugin that did not start is not shut down */
	if (marker != NULL)
		(void)g_file_set_contents(marker, "shutdown fails_startup\n", -1, NULL);
}

static JsonObject *
kl_fails_startup_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_fails_startup_collect(KlPluginContext *ctx,
			 JsonObject *chosen_parameters,
			 GCancellable *cancellable,
			 GError **error)
{
	return json_object_new();
}

KL_PLUGIN_DEFINE("fails_startup",
		 "log",
		 "1.0",
		 "plugin whose startup fails",
		 kl_fails_startup_startup,
		 kl_fails_startup_shutdown,
		 kl_fails_startup_get_capabilities,
		 kl_fails_startup_collect,
		 NULL)
