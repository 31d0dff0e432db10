/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin whose callbacks fail without setting an error (runner guard).
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_no_error_set_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return NULL;
}

static JsonObject *
kl_no_error_set_collect(KlPluginContext *ctx,
			JsonObject *chosen_parameters,
			GCancellable *cancellable,
			GError **error)
{
	return NULL;
}

static gboolean
kl_no_error_set_contribute_registration(KlPluginContext *ctx, JsonObject *body, GError **error)
{
	return FALSE;
}

KL_PLUGIN_DEFINE("no_error_set",
		 "certification",
		 "1.0",
		 "plugin whose callbacks fail silently",
		 NULL,
		 NULL,
		 kl_no_error_set_get_capabilities,
		 kl_no_error_set_collect,
		 kl_no_error_set_contribute_registration)
