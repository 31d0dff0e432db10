/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin as built against the previous ABI minor's headers (it knows
 * nothing of the newer services): must load and collect.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

static JsonObject *
kl_older_minor_get_capabilities(KlPluginContext *ctx, GError **error)
{
	return json_object_new();
}

static JsonObject *
kl_older_minor_collect(KlPluginContext *ctx,
		       JsonObject *chosen_parameters,
		       GCancellable *cancellable,
		       GError **error)
{
	JsonObject *data = json_object_new();

	json_object_set_string_member(data, "from", "older_minor");
	return data;
}

KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info(void);

KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info(void)
{
	static const KlPluginInfo info = {
		.abi_major = KL_PLUGIN_ABI_MAJOR,
		.abi_minor = KL_PLUGIN_ABI_MINOR - 1,
		.name = "older_minor",
		.evidence_class = "log",
		.version = "1.0",
		.description = "plugin built against the previous ABI minor",
		.get_capabilities = kl_older_minor_get_capabilities,
		.collect = kl_older_minor_collect,
	};
	return &info;
}
