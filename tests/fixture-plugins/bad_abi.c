/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin built for an incompatible ABI major (99): must be rejected.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_bad_abi_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_bad_abi_collect(KlPluginContext *ctx,
		   JsonObject *chosen_parameters,
		   GCancellable *cancellable,
		   GError **error)
{
	return json_object_new();
}

KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info(void);

KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info(void)
{
	static const KlPluginInfo info = {
		.abi_major = 99,
		.abi_minor = 0,
		.name = "bad_abi",
		.evidence_class = "log",
		.version = "1.0",
		.description = "plugin with a foreign ABI major",
		.get_capabilities = kl_bad_abi_get_capabilities,
		.collect = kl_bad_abi_collect,
	};
	return &info;
}
