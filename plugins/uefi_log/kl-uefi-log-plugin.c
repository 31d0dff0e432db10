/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * uefi_log evidence plugin: the measured boot event log, read once per boot,
 * checked, and sent whole as base64.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-uefi-log-parser.h"
#include "kl-uefi-log-plugin.h"

#define KL_UEFI_LOG_FORMAT   "application/octet-stream"
#define KL_UEFI_LOG_MAX_SIZE (64 * 1024 * 1024)

typedef struct {
	gchar *path;
	gint64 boot_time;
	guint event_count;
	GBytes *base64;	  /* only the encoded log is kept: every collect sends it, uncopied */
	gchar *version;	  /* uefi_logs_evidence_version, read at start-up (NULL: not set) */
	JsonObject *caps; /* sealed: the same while the log is */
	JsonObject *data; /* sealed, empty: "entries" is attached at every collect */
} KlUefiLogState;

static void
kl_uefi_log_state_free(KlUefiLogState *st)
{
	if (st == NULL)
		return;
	g_free(st->path);
	if (st->base64 != NULL)
		g_bytes_unref(st->base64);
	g_free(st->version);
	g_clear_pointer(&st->caps, json_object_unref);
	g_clear_pointer(&st->data, json_object_unref);
	g_free(st);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlUefiLogState, kl_uefi_log_state_free)

/* securityfs reports size 0: read until EOF instead of trusting st_size */
static GBytes *
kl_uefi_log_read_file(const gchar *path, GError **error)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	int fd;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int errsv = errno;
		g_set_error(
		    error,
		    KL_ERROR,
		    (errsv == ENOENT || errsv == ENOTDIR || errsv == EACCES || errsv == EPERM)
			? KL_ERROR_NOT_SUPPORTED
			: KL_ERROR_IO,
		    "measured boot log %s cannot be opened (%s): the firmware provides no "
		    "TPM event log, securityfs is not mounted or the agent lacks the "
		    "permission; set measuredboot_ml_path if the log lives elsewhere",
		    path,
		    g_strerror(errsv));
		return NULL;
	}
	for (;;) {
		guint old_len = buf->len;
		gssize n;

		if (old_len >= KL_UEFI_LOG_MAX_SIZE) {
			close(fd);
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "measured boot log %s is larger than %d MiB; this is not a TPM "
				    "event log",
				    path,
				    KL_UEFI_LOG_MAX_SIZE / (1024 * 1024));
			return NULL;
		}
		g_byte_array_set_size(buf, old_len + 65536);
		do
			n = read(fd, buf->data + old_len, 65536);
		while (n < 0 && errno == EINTR);
		g_byte_array_set_size(buf, old_len + (guint)MAX(n, 0));
		if (n < 0) {
			int errsv = errno;
			close(fd);
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_IO,
				    "cannot read the measured boot log %s: %s",
				    path,
				    g_strerror(errsv));
			return NULL;
		}
		if (n == 0)
			break;
	}
	close(fd);
	return g_byte_array_free_to_bytes(g_steal_pointer(&buf));
}

static KlUefiLogState *
kl_uefi_log_load(const gchar *path, gint64 boot_time, GError **error)
{
	g_autoptr(KlUefiLogState) st = g_new0(KlUefiLogState, 1);
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GError) error_local = NULL;
	KlUefiLogInfo info;
	gsize len = 0;
	const guint8 *data;

	blob = kl_uefi_log_read_file(path, error);
	if (blob == NULL)
		return NULL;
	data = g_bytes_get_data(blob, &len);
	if (len == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "measured boot log %s is empty: the firmware recorded no events",
			    path);
		return NULL;
	}
	if (!kl_uefi_log_parse(data, len, &info, NULL, NULL, &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: %s; the uefi_log evidence is not offered",
			    path,
			    error_local->message);
		return NULL;
	}
	g_debug("measured boot log %s: %u events, %s format, %" G_GSIZE_FORMAT " bytes",
		path,
		info.event_count,
		info.format == KL_UEFI_LOG_FORMAT_CRYPTO_AGILE ? "crypto-agile" : "legacy SHA-1",
		len);
	st->path = g_strdup(path);
	st->boot_time = boot_time;
	st->event_count = info.event_count;
	{
		gchar *text = g_base64_encode(data, len);

		st->base64 = g_bytes_new_take(text, strlen(text));
	}
	return g_steal_pointer(&st);
}

gboolean
kl_uefi_log_plugin_startup(KlPluginContext *ctx, GError **error)
{
	const gchar *path = kl_plugin_context_get_config(ctx, "measuredboot_ml_path");
	KlUefiLogState *st;

	/* the agent's option table gives the default (an empty value means it too) */
	if (path == NULL || path[0] == '\0') {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_CONFIG, "uefi_log: measuredboot_ml_path is not set");
		return FALSE;
	}
	st = kl_uefi_log_load(path, kl_plugin_context_get_boot_time(ctx), error);
	if (st == NULL)
		return FALSE;
	/* the configuration does not change while the agent runs: read once */
	st->version = g_strdup(kl_plugin_context_get_config(ctx, "uefi_logs_evidence_version"));
	kl_plugin_context_set_data(ctx, st, (GDestroyNotify)kl_uefi_log_state_free);
	return TRUE;
}

void
kl_uefi_log_plugin_shutdown(KlPluginContext *ctx)
{
	/* the state is freed by the context's destroy notify */
}

/* the cached log of this boot; read again when the boot time changed */
static KlUefiLogState *
kl_uefi_log_plugin_get_state(KlPluginContext *ctx, GError **error)
{
	KlUefiLogState *st = kl_plugin_context_get_data(ctx);
	gint64 boot_time = kl_plugin_context_get_boot_time(ctx);

	if (st == NULL) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "the uefi_log plugin was not started");
		return NULL;
	}
	if (st->boot_time != boot_time) {
		g_autofree gchar *path = g_strdup(st->path);
		g_autofree gchar *version = g_strdup(st->version);

		g_info("the boot time changed: reading the measured boot log %s again", path);
		st = kl_uefi_log_load(path, boot_time, error);
		if (st == NULL)
			return NULL;
		st->version = g_steal_pointer(&version);
		kl_plugin_context_set_data(ctx, st, (GDestroyNotify)kl_uefi_log_state_free);
	}
	return st;
}

JsonObject *
kl_uefi_log_plugin_get_capabilities(KlPluginContext *ctx, GError **error)
{
	KlUefiLogState *st = kl_uefi_log_plugin_get_state(ctx, error);
	const gchar *version;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(JsonArray) formats = NULL;

	if (st == NULL)
		return NULL;
	version = st->version;
	if (version == NULL || version[0] == '\0') {
		g_set_error_literal(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "uefi_log: uefi_logs_evidence_version is not set");
		return NULL;
	}
	if (st->caps != NULL)
		return json_object_ref(st->caps);
	caps = json_object_new();
	json_object_set_string_member(caps, "evidence_version", version);
	json_object_set_int_member(caps, "entry_count", st->event_count);
	json_object_set_boolean_member(caps, "supports_partial_access", FALSE);
	json_object_set_boolean_member(caps, "appendable", FALSE);
	formats = json_array_new();
	json_array_add_string_element(formats, KL_UEFI_LOG_FORMAT);
	json_object_set_array_member(caps, "formats", g_steal_pointer(&formats));
	json_object_seal(caps);
	st->caps = json_object_ref(caps);
	return g_steal_pointer(&caps);
}

JsonObject *
kl_uefi_log_plugin_collect(KlPluginContext *ctx,
			   JsonObject *chosen_parameters,
			   GCancellable *cancellable,
			   GError **error)
{
	KlUefiLogState *st = NULL;
	const gchar *format = NULL;

	if (chosen_parameters != NULL) {
		g_autoptr(GError) error_local = NULL;

		if (!kl_json_object_get_optional_string(
			chosen_parameters, "format", &format, &error_local)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_PARAMETERS,
				    "unusable uefi_log chosen_parameters: %s",
				    error_local->message);
			return NULL;
		}
	}
	if (format != NULL && g_strcmp0(format, KL_UEFI_LOG_FORMAT) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "uefi_log format \"%s\" is not supported: only \"" KL_UEFI_LOG_FORMAT
			    "\" is offered",
			    format);
		return NULL;
	}
	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return NULL;
	st = kl_uefi_log_plugin_get_state(ctx, error);
	if (st == NULL)
		return NULL;
	/* the same sealed object every time: the agent does not change it */
	if (st->data == NULL) {
		st->data = json_object_new();
		json_object_seal(st->data);
	}
	kl_plugin_context_attach_string(ctx, "entries", st->base64);
	return json_object_ref(st->data);
}

static const KlPluginConfigKey kl_uefi_log_config_keys[] = {
	{ "measuredboot_ml_path", NULL },
	{ "uefi_logs_evidence_version", NULL },
	{ NULL },
};

KL_PLUGIN_DEFINE_WITH_CONFIG("uefi_log",
			     "log",
			     PACKAGE_VERSION,
			     "TCG measured boot event log (UEFI)",
			     kl_uefi_log_config_keys,
			     kl_uefi_log_plugin_startup,
			     kl_uefi_log_plugin_shutdown,
			     kl_uefi_log_plugin_get_capabilities,
			     kl_uefi_log_plugin_collect,
			     NULL)
