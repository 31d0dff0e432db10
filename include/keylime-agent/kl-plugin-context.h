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

/**
 * kl_plugin_context_get_name:
 * @ctx: the plugin's context
 *
 * Returns: the plugin's name (== its evidence_type)
 *
 * Since: 1.0
 */
const gchar *
kl_plugin_context_get_name(KlPluginContext *ctx);

/**
 * kl_plugin_context_get_config:
 * @ctx: the plugin's context
 * @key: a configuration key
 *
 * The plugin's view of the configuration. A key is looked up first in the
 * plugin's own table (`[<plugin name>]` in agent.conf), then in `[agent]`.
 * Values of the known `[agent]` options are already resolved (defaults,
 * "default" keyword, paths relative to keylime_dir).
 *
 * Returns: (nullable): the value, or %NULL when the key is unset and has no
 *   default
 *
 * Since: 1.0
 */
const gchar *
kl_plugin_context_get_config(KlPluginContext *ctx, const gchar *key);
/**
 * kl_plugin_context_get_config_bool:
 * @ctx: the plugin's context
 * @key: a configuration key
 * @default_value: the value when @key is unset
 * @out: (out): the value
 * @error: a #GError
 *
 * kl_plugin_context_get_config() as a boolean (true/false, yes/no, on/off, 1/0).
 *
 * Returns: %TRUE when @out was set; %FALSE with %KL_ERROR_CONFIG naming the key
 *   when the value is not a boolean
 *
 * Since: 1.0
 */
gboolean
kl_plugin_context_get_config_bool(
    KlPluginContext *ctx, const gchar *key, gboolean default_value, gboolean *out, GError **error);
/**
 * kl_plugin_context_get_config_int:
 * @ctx: the plugin's context
 * @key: a configuration key
 * @default_value: the value when @key is unset
 * @out: (out): the value
 * @error: a #GError
 *
 * kl_plugin_context_get_config() as an integer.
 *
 * Returns: %TRUE when @out was set; %FALSE with %KL_ERROR_CONFIG naming the key
 *   when the value is not an integer
 *
 * Since: 1.0
 */
gboolean
kl_plugin_context_get_config_int(
    KlPluginContext *ctx, const gchar *key, gint64 default_value, gint64 *out, GError **error);

/**
 * kl_plugin_context_get_agent_id:
 * @ctx: the plugin's context
 *
 * Returns: the agent identifier used with the registrar and the verifier
 *
 * Since: 1.0
 */
const gchar *
kl_plugin_context_get_agent_id(KlPluginContext *ctx);

/**
 * kl_plugin_context_get_data_dir:
 * @ctx: the plugin's context
 *
 * Returns: the agent's persistent work directory (keylime_dir); plugins keep
 *   their files here
 *
 * Since: 1.0
 */
const gchar *
kl_plugin_context_get_data_dir(KlPluginContext *ctx);

/**
 * kl_plugin_context_get_boot_time:
 * @ctx: the plugin's context
 *
 * Returns: the boot time of this host (seconds since the epoch, /proc/stat
 *   btime), read once when the agent starts
 *
 * Since: 1.0
 */
gint64
kl_plugin_context_get_boot_time(KlPluginContext *ctx);

/**
 * kl_plugin_context_get_tpm:
 * @ctx: the plugin's context
 *
 * Returns: (transfer none) (nullable): the core's TPM (kl-plugin-tpm.h), or
 *   %NULL when the agent runs without one
 *
 * Since: 1.0
 */
KlTpm *
kl_plugin_context_get_tpm(KlPluginContext *ctx);

/**
 * kl_plugin_context_set_data:
 * @ctx: the plugin's context
 * @data: (nullable): the plugin's state
 * @destroy: (nullable): frees @data, after shutdown() or when replaced
 *
 * Keeps the plugin's state between callbacks.
 *
 * Since: 1.0
 */
void
kl_plugin_context_set_data(KlPluginContext *ctx, gpointer data, GDestroyNotify destroy);
/**
 * kl_plugin_context_get_data:
 * @ctx: the plugin's context
 *
 * Returns: (transfer none) (nullable): what kl_plugin_context_set_data() stored
 *
 * Since: 1.0
 */
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

/**
 * kl_plugin_context_set_entry_count:
 * @ctx: the plugin's context
 * @count: how many log entries this collect() sends
 *
 * Called from collect() by a plugin whose evidence is a log: the agent counts
 * the entries of accepted attestations by evidence type (for `ima_log`, the
 * status file's `ima_entries` and the `keylime_agent_ima_entries_sent_total`
 * metric). The core never reads a plugin's data to find this out; a plugin
 * that does not call it reports no entries. Cleared before every collect().
 *
 * Since: 1.2
 */
void
kl_plugin_context_set_entry_count(KlPluginContext *ctx, guint64 count);

G_END_DECLS
