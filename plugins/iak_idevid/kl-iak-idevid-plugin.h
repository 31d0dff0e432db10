/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The iak_idevid plugin's callbacks (for its tests; the module exports only
 * kl_plugin_get_info).
 */
#pragma once

#include <keylime-agent/keylime-agent-plugin.h>

G_BEGIN_DECLS

gboolean
kl_iak_idevid_plugin_startup(KlPluginContext *ctx, GError **error);
void
kl_iak_idevid_plugin_shutdown(KlPluginContext *ctx);
JsonObject *
kl_iak_idevid_plugin_get_capabilities(KlPluginContext *ctx, GError **error);
JsonObject *
kl_iak_idevid_plugin_collect(KlPluginContext *ctx,
			     JsonObject *chosen_parameters,
			     GCancellable *cancellable,
			     GError **error);
gboolean
kl_iak_idevid_plugin_contribute_registration(KlPluginContext *ctx,
					     JsonObject *registration_body,
					     GError **error);

G_END_DECLS
