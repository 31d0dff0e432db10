/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin whose evidence does not exist on this host (startup NOT_SUPPORTED).
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static gboolean
kl_not_available_startup(KlPluginContext *ctx, GError **error)
{
	g_set_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED, "no test evidence on this host");
	return FALSE;
}

static JsonObject *
kl_not_available_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_not_available_collect(KlPluginContext *ctx,
			 JsonObject *chosen_parameters,
			 GCancellable *cancellable,
			 GError **error)
{
	return json_object_new();
}

KL_PLUGIN_DEFINE("not_available",
		 "log",
		 "1.0",
		 "plugin whose evidence is absent",
		 kl_not_available_startup,
		 NULL,
		 kl_not_available_get_capabilities,
		 kl_not_available_collect,
		 NULL)
