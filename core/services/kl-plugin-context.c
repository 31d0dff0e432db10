/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keylime-agent/kl-error.h"
#include "kl-plugin-context-private.h"

struct _KlPluginContext {
	gchar *name;
	KlPluginConfigLookupFunc lookup;
	gpointer lookup_data;
	gchar *agent_id;
	gchar *data_dir;
	gint64 boot_time;
	KlTpm *tpm;
	gpointer data;
	GDestroyNotify data_destroy;
	gchar *summary;
	guint64 entry_count;
};

KlPluginContext *
kl_plugin_context_new(const gchar *name,
		      KlPluginConfigLookupFunc lookup,
		      gpointer lookup_data,
		      const gchar *agent_id,
		      const gchar *data_dir,
		      gint64 boot_time,
		      KlTpm *tpm)
{
	KlPluginContext *ctx;

	g_return_val_if_fail(name != NULL, NULL);

	ctx = g_new0(KlPluginContext, 1);
	ctx->name = g_strdup(name);
	ctx->lookup = lookup;
	ctx->lookup_data = lookup_data;
	ctx->agent_id = g_strdup(agent_id);
	ctx->data_dir = g_strdup(data_dir);
	ctx->boot_time = boot_time;
	ctx->tpm = tpm;
	return ctx;
}

void
kl_plugin_context_free(KlPluginContext *ctx)
{
	if (ctx == NULL)
		return;
	kl_plugin_context_set_data(ctx, NULL, NULL);
	g_free(ctx->name);
	g_free(ctx->agent_id);
	g_free(ctx->data_dir);
	g_free(ctx->summary);
	g_free(ctx);
}

const gchar *
kl_plugin_context_get_name(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return ctx->name;
}

const gchar *
kl_plugin_context_get_config(KlPluginContext *ctx, const gchar *key)
{
	const gchar *value;

	g_return_val_if_fail(ctx != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	if (ctx->lookup == NULL)
		return NULL;
	/* the plugin's own table wins over [agent] */
	value = ctx->lookup(ctx->lookup_data, ctx->name, key);
	if (value != NULL)
		return value;
	return ctx->lookup(ctx->lookup_data, NULL, key);
}

gboolean
kl_plugin_context_get_config_bool(
    KlPluginContext *ctx, const gchar *key, gboolean default_value, gboolean *out, GError **error)
{
	const gchar *value;
	gboolean result;

	g_return_val_if_fail(ctx != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	value = kl_plugin_context_get_config(ctx, key);
	if (value == NULL) {
		result = default_value;
	} else if (g_ascii_strcasecmp(value, "true") == 0) {
		result = TRUE;
	} else if (g_ascii_strcasecmp(value, "false") == 0) {
		result = FALSE;
	} else {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "configuration key \"%s\" of plugin %s must be true or false, not "
			    "\"%s\"; fix it in [%s] or [agent] of agent.conf",
			    key,
			    ctx->name,
			    value,
			    ctx->name);
		return FALSE;
	}
	if (out != NULL)
		*out = result;
	return TRUE;
}

gboolean
kl_plugin_context_get_config_int(
    KlPluginContext *ctx, const gchar *key, gint64 default_value, gint64 *out, GError **error)
{
	const gchar *value;
	gint64 result = default_value;

	g_return_val_if_fail(ctx != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	value = kl_plugin_context_get_config(ctx, key);
	if (value != NULL) {
		g_autoptr(GError) error_local = NULL;

		if (!g_ascii_string_to_signed(
			value, 10, G_MININT64, G_MAXINT64, &result, &error_local)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "configuration key \"%s\" of plugin %s must be an integer, "
				    "not \"%s\" (%s); fix it in [%s] or [agent] of agent.conf",
				    key,
				    ctx->name,
				    value,
				    error_local->message,
				    ctx->name);
			return FALSE;
		}
	}
	if (out != NULL)
		*out = result;
	return TRUE;
}

const gchar *
kl_plugin_context_get_agent_id(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return ctx->agent_id;
}

const gchar *
kl_plugin_context_get_data_dir(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return ctx->data_dir;
}

gint64
kl_plugin_context_get_boot_time(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, 0);
	return ctx->boot_time;
}

KlTpm *
kl_plugin_context_get_tpm(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return ctx->tpm;
}

void
kl_plugin_context_set_data(KlPluginContext *ctx, gpointer data, GDestroyNotify destroy)
{
	gpointer old_data;
	GDestroyNotify old_destroy;

	g_return_if_fail(ctx != NULL);

	old_data = ctx->data;
	old_destroy = ctx->data_destroy;
	ctx->data = data;
	ctx->data_destroy = destroy;
	/* run the old notify last, so it may look at the context safely */
	if (old_destroy != NULL && old_data != NULL && old_data != data)
		old_destroy(old_data);
}

gpointer
kl_plugin_context_get_data(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return ctx->data;
}

void
kl_plugin_context_set_summary(KlPluginContext *ctx, const gchar *summary)
{
	g_return_if_fail(ctx != NULL);
	g_free(ctx->summary);
	ctx->summary = g_strdup(summary);
}

gchar *
kl_plugin_context_take_summary(KlPluginContext *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	return g_steal_pointer(&ctx->summary);
}

void
kl_plugin_context_set_entry_count(KlPluginContext *ctx, guint64 count)
{
	g_return_if_fail(ctx != NULL);
	ctx->entry_count = count;
}

guint64
kl_plugin_context_take_entry_count(KlPluginContext *ctx)
{
	guint64 count;

	g_return_val_if_fail(ctx != NULL, 0);
	count = ctx->entry_count;
	ctx->entry_count = 0;
	return count;
}
