/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A second module claiming the evidence type "dummy" (installed as dummy.so in
 * a second plugin directory, it must be rejected as a duplicate).
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_dup_dummy_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_dup_dummy_collect(KlPluginContext *ctx,
		     JsonObject *chosen_parameters,
		     GCancellable *cancellable,
		     GError **error)
{
	return json_object_new();
}

KL_PLUGIN_DEFINE("dummy",
		 "certification",
		 "dup",
		 "duplicate of the dummy test plugin",
		 NULL,
		 NULL,
		 kl_dup_dummy_get_capabilities,
		 kl_dup_dummy_collect,
		 NULL)
