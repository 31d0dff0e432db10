/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Core-side construction of plugin contexts (KL_PRIVATE symbols).
 */
#pragma once

#include "keylime-agent/kl-plugin-context.h"

G_BEGIN_DECLS

/*
 * Config lookup callback: returns the resolved value of (table, key) or NULL.
 * table == NULL means [agent]. Keeps the services library free of the config code.
 */
typedef const gchar *(*KlPluginConfigLookupFunc)(gpointer user_data,
						 const gchar *table,
						 const gchar *key);

KlPluginContext *
kl_plugin_context_new(const gchar *name,
		      KlPluginConfigLookupFunc lookup,
		      gpointer lookup_data,
		      const gchar *agent_id,
		      const gchar *data_dir,
		      gint64 boot_time,
		      KlTpm *tpm);
void
kl_plugin_context_free(KlPluginContext *ctx); /* runs the data destroy notify */

/* what the plugin reported with kl_plugin_context_set_summary(), and clears it (transfer full) */
gchar *
kl_plugin_context_take_summary(KlPluginContext *ctx);
/* what the plugin reported with kl_plugin_context_set_entry_count(), and clears it */
guint64
kl_plugin_context_take_entry_count(KlPluginContext *ctx);

G_END_DECLS
