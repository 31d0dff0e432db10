/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * ima_log evidence plugin: the IMA runtime measurement list, sent
 * incrementally from the verifier's starting_offset.
 */
#include "config.h"

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-ima-log-parser.h"
#include "kl-ima-log-plugin.h"

#define KL_IMA_LOG_FORMAT "text/plain"

typedef struct {
	KlImaLog *log;
	/* the last capabilities (sealed) and the entry count they announce */
	JsonObject *caps;
	guint64 caps_count;
	/* the members that never change, sealed: shared by every capabilities object */
	JsonNode *yes;
	JsonNode *formats;
	/*
	 * the last data object (sealed: {"entries":null,"entry_count":n}, the
	 * entries attached) and its summary: the same while n is, cycle after
	 * cycle when the log grows at a steady pace or not at all
	 */
	JsonObject *data;
	guint64 data_count;
	gchar *summary;
} KlImaLogPlugin;

static void
kl_ima_log_plugin_free(KlImaLogPlugin *self)
{
	kl_ima_log_free(self->log);
	g_clear_pointer(&self->caps, json_object_unref);
	g_clear_pointer(&self->yes, json_node_unref);
	g_clear_pointer(&self->formats, json_node_unref);
	g_clear_pointer(&self->data, json_object_unref);
	g_free(self->summary);
	g_free(self);
}

gboolean
kl_ima_log_plugin_startup(KlPluginContext *ctx, GError **error)
{
	const gchar *path = kl_plugin_context_get_config(ctx, "ima_ml_path");
	g_autoptr(KlImaLog) log = NULL;
	KlImaLogPlugin *self;

	/* the agent's option table gives the default (an empty value means it too) */
	if (path == NULL || path[0] == '\0') {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_CONFIG, "ima_log: ima_ml_path is not set");
		return FALSE;
	}
	log = kl_ima_log_new(path);
	/* the first full read: later cycles only read what was appended */
	if (!kl_ima_log_refresh(log, kl_plugin_context_get_boot_time(ctx), NULL, error))
		return FALSE;
	g_debug("IMA measurement list %s: %" G_GUINT64_FORMAT " entries",
		path,
		kl_ima_log_get_entry_count(log));
	self = g_new0(KlImaLogPlugin, 1);
	self->log = g_steal_pointer(&log);
	self->yes = json_node_init_boolean(json_node_alloc(), TRUE);
	json_node_seal(self->yes);
	{
		g_autoptr(JsonArray) formats = json_array_new();

		json_array_add_string_element(formats, KL_IMA_LOG_FORMAT);
		self->formats = json_node_init_array(json_node_alloc(), formats);
		json_node_seal(self->formats);
	}
	kl_plugin_context_set_data(ctx, self, (GDestroyNotify)kl_ima_log_plugin_free);
	return TRUE;
}

void
kl_ima_log_plugin_shutdown(KlPluginContext *ctx)
{
	/* the reader is freed by the context's destroy notify */
}

static KlImaLogPlugin *
kl_ima_log_plugin_get(KlPluginContext *ctx, GError **error)
{
	KlImaLogPlugin *self = kl_plugin_context_get_data(ctx);

	if (self == NULL) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "the ima_log plugin was not started");
	}
	return self;
}

JsonObject *
kl_ima_log_plugin_get_capabilities(KlPluginContext *ctx, GError **error)
{
	KlImaLogPlugin *self = kl_ima_log_plugin_get(ctx, error);
	g_autoptr(JsonObject) caps = NULL;
	guint64 count;

	if (self == NULL)
		return NULL;
	if (!kl_ima_log_refresh(self->log, kl_plugin_context_get_boot_time(ctx), NULL, error))
		return NULL;
	/* no new entries: the same sealed object (the core then reuses its entry's text) */
	count = kl_ima_log_get_entry_count(self->log);
	if (self->caps != NULL && self->caps_count == count)
		return json_object_ref(self->caps);
	caps = json_object_new();
	json_object_set_int_member(caps, "entry_count", (gint64)count);
	json_object_set_member(caps, "supports_partial_access", json_node_ref(self->yes));
	json_object_set_member(caps, "appendable", json_node_ref(self->yes));
	json_object_set_member(caps, "formats", json_node_ref(self->formats));
	json_object_seal(caps);
	g_clear_pointer(&self->caps, json_object_unref);
	self->caps = json_object_ref(caps);
	self->caps_count = count;
	return g_steal_pointer(&caps);
}

static gboolean
kl_ima_log_plugin_parse_params(JsonObject *params,
			       guint64 *starting_offset,
			       guint64 *max_entries,
			       GError **error)
{
	g_autoptr(GError) error_local = NULL;
	const gchar *format = NULL;
	gint64 offset = 0;
	gint64 max = 0;

	if (params == NULL)
		return TRUE;
	if (!kl_json_object_get_optional_int(params, "starting_offset", 0, &offset, &error_local) ||
	    !kl_json_object_get_optional_string(params, "format", &format, &error_local) ||
	    !kl_json_object_get_optional_int(params, "entry_count", 0, &max, &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "unusable ima_log chosen_parameters: %s",
			    error_local->message);
		return FALSE;
	}
	if (offset < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "ima_log starting_offset %" G_GINT64_FORMAT " is negative",
			    offset);
		return FALSE;
	}
	if (format != NULL && g_strcmp0(format, KL_IMA_LOG_FORMAT) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "ima_log format \"%s\" is not supported: only \"" KL_IMA_LOG_FORMAT
			    "\" is offered",
			    format);
		return FALSE;
	}
	if (max < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "ima_log entry_count %" G_GINT64_FORMAT " is negative",
			    max);
		return FALSE;
	}
	*starting_offset = (guint64)offset;
	*max_entries = (guint64)max;
	return TRUE;
}

JsonObject *
kl_ima_log_plugin_collect(KlPluginContext *ctx,
			  JsonObject *chosen_parameters,
			  GCancellable *cancellable,
			  GError **error)
{
	KlImaLogPlugin *self = kl_ima_log_plugin_get(ctx, error);
	KlImaLog *log = self != NULL ? self->log : NULL;
	guint64 starting_offset = 0;
	guint64 max_entries = 0;
	guint64 n = 0;
	g_autoptr(GBytes) text = NULL;

	if (log == NULL)
		return NULL;
	if (!kl_ima_log_plugin_parse_params(
		chosen_parameters, &starting_offset, &max_entries, error))
		return NULL;
	/* read after phase 1: the count can only have grown since it was announced */
	if (!kl_ima_log_refresh(log, kl_plugin_context_get_boot_time(ctx), cancellable, error))
		return NULL;
	/* never the whole log without a word: it is what the verifier asked, but it costs */
	if (chosen_parameters == NULL ||
	    !json_object_has_member(chosen_parameters, "starting_offset") ||
	    JSON_NODE_HOLDS_NULL(json_object_get_member(chosen_parameters, "starting_offset")))
		g_message("the verifier's ima_log request has no starting_offset: sending the IMA "
			  "measurement list from its first entry (%" G_GUINT64_FORMAT " entries)",
			  kl_ima_log_get_entry_count(log));
	text = kl_ima_log_collect_text(log, starting_offset, max_entries, &n, cancellable, error);
	if (text == NULL)
		return NULL;
	if (self->data == NULL || self->data_count != n) {
		g_clear_pointer(&self->data, json_object_unref);
		g_free(self->summary);
		/* "entries" first, in its place: its text is attached below */
		self->data = json_object_new();
		json_object_set_null_member(self->data, "entries");
		json_object_set_int_member(self->data, "entry_count", (gint64)n);
		json_object_seal(self->data);
		self->data_count = n;
		self->summary =
		    g_strdup_printf("%" G_GUINT64_FORMAT " new entr%s", n, n == 1 ? "y" : "ies");
	}
	/* "entries" is sent from the reader's buffer: the log is not copied again */
	kl_plugin_context_attach_string(ctx, "entries", text);
	kl_plugin_context_set_summary(ctx, self->summary);
	kl_plugin_context_set_entry_count(ctx, n);
	return json_object_ref(self->data);
}

static const KlPluginConfigKey kl_ima_log_config_keys[] = {
	{ "ima_ml_path", NULL },
	{ NULL },
};

KL_PLUGIN_DEFINE_WITH_CONFIG("ima_log",
			     "log",
			     PACKAGE_VERSION,
			     "IMA runtime measurement list (incremental)",
			     kl_ima_log_config_keys,
			     kl_ima_log_plugin_startup,
			     kl_ima_log_plugin_shutdown,
			     kl_ima_log_plugin_get_capabilities,
			     kl_ima_log_plugin_collect,
			     NULL)
