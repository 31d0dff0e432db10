/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin whose descriptor name differs from its file name: must be rejected.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_wrong_name_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_wrong_name_collect(KlPluginContext *ctx,
		      JsonObject *chosen_parameters,
		      GCancellable *cancellable,
		      GError **error)
{
	return json_object_new();
}

KL_PLUGIN_DEFINE("right_name",
		 "log",
		 "1.0",
		 "plugin whose name does not match its file",
		 NULL,
		 NULL,
		 kl_wrong_name_get_capabilities,
		 kl_wrong_name_collect,
		 NULL)
