/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Services the core offers to a plugin. The context is owned by the core.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _KlPluginContext KlPluginContext;
typedef struct _KlTpm KlTpm;

/* the plugin's name (== evidence_type) */
const gchar *
kl_plugin_context_get_name(KlPluginContext *ctx);

/*
 * Configuration view. A key is looked up first in the plugin's own table
 * (`[<plugin name>]` in agent.conf), then in `[agent]`. Values of the known
 * `[agent]` options are already resolved (defaults, "default" keyword, paths
 * relative to keylime_dir). NULL when the key is unset and has no default.
 */
const gchar *
kl_plugin_context_get_config(KlPluginContext *ctx, const gchar *key);
/* FALSE + KL_ERROR_CONFIG when the value is not a boolean / integer */
gboolean
kl_plugin_context_get_config_bool(
    KlPluginContext *ctx, const gchar *key, gboolean default_value, gboolean *out, GError **error);
gboolean
kl_plugin_context_get_config_int(
    KlPluginContext *ctx, const gchar *key, gint64 default_value, gint64 *out, GError **error);

/* the agent identifier used with the registrar and the verifier */
const gchar *
kl_plugin_context_get_agent_id(KlPluginContext *ctx);

/* the agent's persistent work directory (keylime_dir); plugins keep files here */
const gchar *
kl_plugin_context_get_data_dir(KlPluginContext *ctx);

/* boot time of this host (seconds since the epoch, /proc/stat btime) */
gint64
kl_plugin_context_get_boot_time(KlPluginContext *ctx);

/* the core's TPM, or NULL when the agent runs without one; (transfer none) */
KlTpm *
kl_plugin_context_get_tpm(KlPluginContext *ctx);

/* per-plugin state; @destroy runs at shutdown or when replaced */
void
kl_plugin_context_set_data(KlPluginContext *ctx, gpointer data, GDestroyNotify destroy);
gpointer
kl_plugin_context_get_data(KlPluginContext *ctx);

/**
 * kl_plugin_context_set_summary:
 * @ctx: the plugin's context
 * @summary: (nullable): a few words on what this collect() sends, e.g.
 *   "3 new entries"
 *
 * Called from collect(): the agent puts @summary after the evidence type in
 * its one info line per cycle ("ima_log (3 new entries)"). The core never
 * reads a plugin's data to find this out; a plugin that does not call it is
 * named alone. Cleared before every collect().
 *
 * Since: 1.1
 */
void
kl_plugin_context_set_summary(KlPluginContext *ctx, const gchar *summary);

G_END_DECLS
