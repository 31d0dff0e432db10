/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin built for a newer ABI minor than the core: must be rejected.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_newer_minor_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_newer_minor_collect(KlPluginContext *ctx,
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
		.abi_major = KL_PLUGIN_ABI_MAJOR,
		.abi_minor = KL_PLUGIN_ABI_MINOR + 1,
		.name = "newer_minor",
		.evidence_class = "log",
		.version = "1.0",
		.description = "plugin built against a newer ABI minor",
		.get_capabilities = kl_newer_minor_get_capabilities,
		.collect = kl_newer_minor_collect,
	};
	return &info;
}
