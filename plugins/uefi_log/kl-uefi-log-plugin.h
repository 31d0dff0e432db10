/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The uefi_log plugin callbacks, visible to the unit tests that compile the
 * plugin source (the module itself exports only kl_plugin_get_info).
 */
#pragma once

#include "keylime-agent/keylime-agent-plugin.h"

G_BEGIN_DECLS

gboolean
kl_uefi_log_plugin_startup(KlPluginContext *ctx, GError **error);
void
kl_uefi_log_plugin_shutdown(KlPluginContext *ctx);
JsonObject *
kl_uefi_log_plugin_get_capabilities(KlPluginContext *ctx, GError **error);
JsonObject *
kl_uefi_log_plugin_collect(KlPluginContext *ctx,
			   JsonObject *chosen_parameters,
			   GCancellable *cancellable,
			   GError **error);

G_END_DECLS
