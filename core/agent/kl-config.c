/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Agent configuration: option table, layered loading, validation and the
 * keylime_dir-relative path resolution of the Keylime agent.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-config.h"
#include "kl-toml.h"

#define KL_CONFIG_ENV_PREFIX "KEYLIME_AGENT_"

/* relative to / */
#define KL_DEFAULT_IMA_ML_PATH	     "sys/kernel/security/ima/ascii_runtime_measurements"
#define KL_DEFAULT_MEASUREDBOOT_PATH "sys/kernel/security/tpm0/binary_bios_measurements"
#define KL_DEFAULT_CA_CERT	     "cv_ca/cacert.crt"
#define KL_DEFAULT_AGENT_DATA	     "agent_data.json"
#define KL_DEFAULT_IAK_CERT	     "iak-cert.crt"
#define KL_DEFAULT_IDEVID_CERT	     "idevid-cert.crt"
#define KL_DEFAULT_STATUS_FILE	     "agent_status.json"
#define KL_DEFAULT_METRICS_FILE	     "/var/lib/prometheus/node-exporter/keylime_agent.prom"

typedef enum {
	KL_OPT_STRING,
	KL_OPT_PATH, /* a string; "default" and relative values are resolved by finalize */
	KL_OPT_INT,
	KL_OPT_BOOL,
	KL_OPT_LIST,
} KlOptType;

typedef gboolean (*KlOptValidateFunc)(const gchar *value, gchar **normalized, GError **error);

typedef struct {
	const gchar *name;
	KlOptType type;
	const gchar *def; /* NULL: computed in kl_config_new() */
	gint64 min;
	gint64 max;
	const gchar *const *choices; /* allowed values of a string option */
	KlOptValidateFunc validate;  /* extra check / normalisation */
	gboolean secret;
	gboolean empty_is_default; /* "" means the default (read by plugins) */
} KlOption;

typedef struct {
	gchar *text; /* canonical string form (lists joined with ",") */
	gint64 integer;
	gboolean boolean;
	gchar **strv;
	KlConfigSource source;
	gchar *origin;
} KlConfigEntry;

struct _KlConfig {
	KlConfigEntry *entries; /* one per kl_options[] */
	GHashTable *tables;	/* table -> (key -> string) for kl_config_lookup() */
	GHashTable *origins;	/* "table\nkey" -> "file:line" of the tables' keys */
};

/* ---- validators ---- */

/* what the agent can make (core/kl-tpm.c), with Keylime's aliases rsa and ecc */
static const gchar *const kl_choices_enc_alg[] = { "rsa",    "rsa2048", "rsa3072", "rsa4096", "ecc",
						   "ecc256", "ecc384",	"ecc521",  NULL };
static const gchar *const kl_choices_hash_alg[] = { "sha1", "sha256", "sha384", "sha512", NULL };
static const gchar *const kl_choices_sign_alg[] = {
	"rsassa", "rsapss", "ecdsa", "ecschnorr", NULL
};

static gboolean
kl_config_validate_url(const gchar *value, gchar **normalized, GError **error)
{
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GError) error_local = NULL;
	const gchar *scheme;
	gsize len;

	uri = g_uri_parse(value, G_URI_FLAGS_NONE, &error_local);
	if (uri == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' is not a URL (%s); expected https://HOST[:PORT]",
			    value,
			    error_local->message);
		return FALSE;
	}
	scheme = g_uri_get_scheme(uri);
	if (g_strcmp0(scheme, "https") != 0 && g_strcmp0(scheme, "http") != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' has the scheme '%s'; expected https://HOST[:PORT]",
			    value,
			    scheme);
		return FALSE;
	}
	if (g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' has no host name; expected https://HOST[:PORT]",
			    value);
		return FALSE;
	}
	if (g_uri_get_query(uri) != NULL || g_uri_get_fragment(uri) != NULL ||
	    g_uri_get_userinfo(uri) != NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' must not contain user information, a query or a fragment",
			    value);
		return FALSE;
	}
	/* the API paths are appended to the base URL */
	len = strlen(value);
	while (len > 0 && value[len - 1] == '/')
		len--;
	*normalized = g_strndup(value, len);
	return TRUE;
}

static gboolean
kl_config_validate_log_level(const gchar *value, gchar **normalized, GError **error)
{
	g_autofree gchar *lower = g_ascii_strdown(value, -1);

	if (g_strcmp0(lower, "warn") == 0) {
		*normalized = g_strdup("warning");
		return TRUE;
	}
	if (g_strcmp0(lower, "trace") == 0) {
		*normalized = g_strdup("debug");
		return TRUE;
	}
	if (g_strcmp0(lower, "error") == 0 || g_strcmp0(lower, "warning") == 0 ||
	    g_strcmp0(lower, "info") == 0 || g_strcmp0(lower, "debug") == 0) {
		*normalized = g_steal_pointer(&lower);
		return TRUE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "unknown log level '%s'; expected error, warning, info or debug",
		    value);
	return FALSE;
}

/* "MAJOR.MINOR" with decimal numbers */
static gboolean
kl_config_is_version(const gchar *s)
{
	const gchar *dot = strchr(s, '.');

	if (dot == NULL || dot == s || dot[1] == '\0')
		return FALSE;
	for (const gchar *q = s; *q != '\0'; q++) {
		if (q != dot && !g_ascii_isdigit(*q))
			return FALSE;
	}
	return TRUE;
}

static gboolean
kl_config_validate_api_version(const gchar *value, gchar **normalized, GError **error)
{
	const gchar *v = value;

	if (v[0] == 'v' || v[0] == 'V')
		v++;
	if (v[0] != '\0' && strspn(v, "0123456789") == strlen(v)) {
		*normalized = g_strdup_printf("%s.0", v);
		return TRUE;
	}
	if (kl_config_is_version(v)) {
		*normalized = g_strdup(v);
		return TRUE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "'%s' is not an API version; expected e.g. 3.0 (also accepted: v3.0, 3)",
		    value);
	return FALSE;
}

static gboolean
kl_config_validate_not_empty(const gchar *value, gchar **normalized, GError **error)
{
	if (value[0] == '\0') {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_CONFIG, "must not be empty");
		return FALSE;
	}
	*normalized = g_strdup(value);
	return TRUE;
}

/* "user", "user:group" or "" (no privilege drop) */
static gboolean
kl_config_validate_run_as(const gchar *value, gchar **normalized, GError **error)
{
	const gchar *colon = strchr(value, ':');

	if (value[0] != '\0' &&
	    (value[0] == ':' || (colon != NULL && (colon[1] == '\0' || strchr(colon + 1, ':'))) ||
	     strpbrk(value, " \t/") != NULL)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' is not USER or USER:GROUP (e.g. keylime:tss)",
			    value);
		return FALSE;
	}
	*normalized = g_strdup(value);
	return TRUE;
}

/* a TPM handle in hexadecimal (0x81000000), or "" */
static gboolean
kl_config_validate_handle(const gchar *value, gchar **normalized, GError **error)
{
	const gchar *hex = value;
	guint64 v = 0;

	if (g_str_has_prefix(hex, "0x") || g_str_has_prefix(hex, "0X"))
		hex += 2;
	if (value[0] == '\0' ||
	    (hex[0] != '\0' && strspn(hex, "0123456789abcdefABCDEF") == strlen(hex) &&
	     g_ascii_string_to_unsigned(hex, 16, 0, G_MAXUINT32, &v, NULL))) {
		*normalized = g_strdup(value);
		return TRUE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "'%s' is not a TPM handle; expected a hexadecimal handle such as 0x81010001, "
		    "or \"\"",
		    value);
	return FALSE;
}

/* ek_handle: "generate" (or "") creates the EK, or a persistent handle */
static gboolean
kl_config_validate_ek_handle(const gchar *value, gchar **normalized, GError **error)
{
	const gchar *hex = value;
	guint64 v = 0;

	if (g_strcmp0(value, "generate") == 0) {
		*normalized = g_strdup(value);
		return TRUE;
	}
	if (g_str_has_prefix(hex, "0x") || g_str_has_prefix(hex, "0X"))
		hex += 2;
	/* only the persistent range: an NV index or a transient handle is not an EK */
	if (value[0] != '\0' && (!g_ascii_string_to_unsigned(hex, 16, 0, G_MAXUINT32, &v, NULL) ||
				 v < 0x81000000u || v > 0x81FFFFFFu)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' is not a persistent TPM handle; expected \"generate\" or a "
			    "handle from 0x81000000 to 0x81ffffff such as 0x81010001",
			    value);
		return FALSE;
	}
	if (!kl_config_validate_handle(value, normalized, NULL)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' is not a TPM handle; expected \"generate\" or a persistent "
			    "handle such as 0x81010001",
			    value);
		return FALSE;
	}
	return TRUE;
}

/* one entry of registrar_api_versions / api_versions */
static gboolean
kl_config_validate_version_item(const gchar *value, gchar **normalized, GError **error)
{
	if (g_strcmp0(value, "default") == 0 || g_strcmp0(value, "latest") == 0 ||
	    kl_config_is_version(value)) {
		*normalized = g_strdup(value);
		return TRUE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "'%s' is not an API version; expected \"default\", \"latest\" or versions "
		    "such as \"2.1, 2.2\"",
		    value);
	return FALSE;
}

/* ---- the option table (sorted by name) ---- */

static const KlOption kl_options[] = {
	{ "agent_data_path", KL_OPT_PATH, "default" },
	{ "api_versions", KL_OPT_LIST, "default", .validate = kl_config_validate_version_item },
	{ "attestation_interval_seconds", KL_OPT_INT, "60", 1, 7 * 24 * 3600 },
	{ "certification_keys_server_identifier", KL_OPT_STRING, "ak", .empty_is_default = TRUE },
	{ "contact_ip", KL_OPT_STRING, "127.0.0.1" },
	{ "contact_port", KL_OPT_INT, "9002", 1, 65535 },
	{ "disabled_plugins", KL_OPT_LIST, "" },
	{ "ek_handle", KL_OPT_STRING, "generate", .validate = kl_config_validate_ek_handle },
	{ "enable_iak_idevid", KL_OPT_BOOL, "false" },
	{ "exponential_backoff_initial_delay", KL_OPT_INT, "10000", 0, G_MAXINT32 },
	{ "exponential_backoff_max_delay", KL_OPT_INT, "300000", 0, G_MAXINT32 },
	{ "exponential_backoff_max_retries", KL_OPT_INT, "5", 0, 1000 },
	{ "iak_cert", KL_OPT_PATH, "default" },
	{ "iak_handle", KL_OPT_STRING, "", .validate = kl_config_validate_handle },
	{ "iak_idevid_asymmetric_alg", KL_OPT_STRING, "rsa" },
	{ "iak_idevid_name_alg", KL_OPT_STRING, "sha256" },
	{ "iak_idevid_template", KL_OPT_STRING, "detect" },
	{ "iak_password", KL_OPT_STRING, "", .secret = TRUE },
	{ "idevid_cert", KL_OPT_PATH, "default" },
	{ "idevid_handle", KL_OPT_STRING, "", .validate = kl_config_validate_handle },
	{ "idevid_password", KL_OPT_STRING, "", .secret = TRUE },
	{ "ima_ml_path", KL_OPT_PATH, "default", .empty_is_default = TRUE },
	{ "jitter_percent", KL_OPT_INT, "10", 0, 50 },
	{ "keylime_dir",
	  KL_OPT_STRING,
	  KL_DEFAULT_KEYLIME_DIR,
	  .validate = kl_config_validate_not_empty },
	{ "log_level", KL_OPT_STRING, "info", .validate = kl_config_validate_log_level },
	{ "measuredboot_ml_path", KL_OPT_PATH, "default", .empty_is_default = TRUE },
	{ "metrics_file", KL_OPT_PATH, "" },
	{ "plugin_dir", KL_OPT_STRING, KL_PLUGINDIR, .validate = kl_config_validate_not_empty },
	{ "registrar_api_versions",
	  KL_OPT_LIST,
	  "default",
	  .validate = kl_config_validate_version_item },
	{ "registrar_ip", KL_OPT_STRING, "127.0.0.1", .validate = kl_config_validate_not_empty },
	{ "registrar_port", KL_OPT_INT, "8890", 1, 65535 },
	{ "registrar_tls_ca_cert", KL_OPT_PATH, "default" },
	{ "registrar_tls_enabled", KL_OPT_BOOL, "false" },
	{ "registrar_tls_port", KL_OPT_INT, "8891", 1, 65535 },
	{ "request_timeout", KL_OPT_INT, "5000", 1, 3600 * 1000 },
	{ "run_as", KL_OPT_STRING, NULL, .validate = kl_config_validate_run_as },
	{ "splay_percent", KL_OPT_INT, "100", 0, 100 },
	{ "status_file", KL_OPT_PATH, "default" },
	{ "tcti", KL_OPT_STRING, "" },
	{ "tls_accept_invalid_certs", KL_OPT_BOOL, "false" },
	{ "tls_accept_invalid_hostnames", KL_OPT_BOOL, "false" },
	{ "tpm_encryption_alg", KL_OPT_STRING, "rsa", .choices = kl_choices_enc_alg },
	{ "tpm_hash_alg", KL_OPT_STRING, "sha256", .choices = kl_choices_hash_alg },
	{ "tpm_ownerpassword", KL_OPT_STRING, "", .secret = TRUE },
	{ "tpm_signing_alg", KL_OPT_STRING, "rsassa", .choices = kl_choices_sign_alg },
	{ "tpm_timeout", KL_OPT_INT, "120", 5, 24 * 3600 },
	{ "uefi_logs_evidence_version", KL_OPT_STRING, "2.1", .empty_is_default = TRUE },
	{ "uuid",
	  KL_OPT_STRING,
	  "d432fbb3-d2f1-4a97-9ef7-75bd81c00000",
	  .validate = kl_config_validate_not_empty },
	{ "verifier_api_version",
	  KL_OPT_STRING,
	  "3.0",
	  .validate = kl_config_validate_api_version },
	{ "verifier_tls_ca_cert", KL_OPT_PATH, "default" },
	{ "verifier_url",
	  KL_OPT_STRING,
	  "https://localhost:8881",
	  .validate = kl_config_validate_url },
	{ "version", KL_OPT_STRING, "2.5" },
};

/*
 * Options of the Keylime pull agent (agent.conf is shared between both): they
 * are accepted and ignored, so an existing configuration keeps working.
 */
static const gchar *const kl_pull_only_keys[] = {
	"allow_payload_revocation_actions",
	"dec_payload_file",
	"enable_agent_mtls",
	"enable_insecure_payload",
	"enable_revocation_notifications",
	"enc_keyname",
	"exponential_backoff",
	"extract_payload_zip",
	"ip",
	"max_retries",
	"measure_payload_pcr",
	"payload_key",
	"payload_key_password",
	"payload_script",
	"port",
	"retry_interval",
	"revocation_actions",
	"revocation_actions_dir",
	"revocation_cert",
	"revocation_notification_ip",
	"revocation_notification_port",
	"secure_size",
	"server_cert",
	"server_key",
	"server_key_password",
	"tls_dir",
	"tpm_data_path",
	"trusted_client_ca",
	NULL,
};

static const KlOption *
kl_config_find_option(const gchar *key, guint *idx)
{
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++) {
		if (g_strcmp0(kl_options[i].name, key) == 0) {
			if (idx != NULL)
				*idx = i;
			return &kl_options[i];
		}
	}
	return NULL;
}

static gboolean
kl_config_is_pull_only(const gchar *key)
{
	return g_strv_contains(kl_pull_only_keys, key);
}

static guint
kl_config_edit_distance(const gchar *a, const gchar *b)
{
	gsize la = strlen(a);
	gsize lb = strlen(b);
	g_autofree guint *row = g_new(guint, lb + 1);

	for (gsize j = 0; j <= lb; j++)
		row[j] = j;
	for (gsize i = 1; i <= la; i++) {
		guint diag = row[0];
		row[0] = i;
		for (gsize j = 1; j <= lb; j++) {
			guint up = row[j];
			guint best = MIN(row[j] + 1, row[j - 1] + 1);
			row[j] = MIN(best, diag + (a[i - 1] == b[j - 1] ? 0 : 1));
			diag = up;
		}
	}
	return row[lb];
}

/* the candidate closest to a misspelt @key (at most @max_dist edits), or NULL */
static const gchar *
kl_config_suggest_among(const gchar *key, const gchar *const *candidates, guint max_dist)
{
	const gchar *best = NULL;
	guint best_dist = G_MAXUINT;

	if (strlen(key) > 64)
		return NULL;
	for (guint i = 0; candidates != NULL && candidates[i] != NULL; i++) {
		guint d = kl_config_edit_distance(key, candidates[i]);
		if (d < best_dist) {
			best_dist = d;
			best = candidates[i];
		}
	}
	return best_dist <= max_dist ? best : NULL;
}

/* the known option closest to a misspelt @key, or NULL */
static const gchar *
kl_config_suggest(const gchar *key)
{
	return kl_config_suggest_among(key, kl_config_get_known_keys(), 3);
}

const gchar *const *
kl_config_get_known_keys(void)
{
	static const gchar *keys[G_N_ELEMENTS(kl_options) + 1];

	/* the table is sorted, the test suite checks it */
	if (keys[0] == NULL) {
		for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++)
			keys[i] = kl_options[i].name;
	}
	return keys;
}

gboolean
kl_config_is_boolean(const gchar *key)
{
	const KlOption *opt = kl_config_find_option(key, NULL);
	return opt != NULL && opt->type == KL_OPT_BOOL;
}

gboolean
kl_config_is_secret(const gchar *key)
{
	const KlOption *opt = kl_config_find_option(key, NULL);
	return opt != NULL && opt->secret;
}

/* ---- value conversion ---- */

/*
 * A boolean from the environment or the command line: true or false, nothing
 * else. "yes", "1" or "on" are refused: a string that merely looks like a
 * boolean must never turn a security check off by accident.
 */
static gboolean
kl_config_parse_bool(const gchar *value, gboolean *out)
{
	g_autofree gchar *trimmed = g_strstrip(g_strdup(value));

	if (g_ascii_strcasecmp(trimmed, "true") == 0) {
		*out = TRUE;
		return TRUE;
	}
	if (g_ascii_strcasecmp(trimmed, "false") == 0) {
		*out = FALSE;
		return TRUE;
	}
	return FALSE;
}

/*
 * A list given as a string: "a, b, c", or the Python-style "['a', 'b']" that
 * Keylime's own templates write; empty items are dropped.
 */
static gchar **
kl_config_split_list(const gchar *value)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
	g_autofree gchar *copy = g_strstrip(g_strdup(value));
	g_auto(GStrv) parts = NULL;
	gsize len = strlen(copy);

	if (len >= 2 && copy[0] == '[' && copy[len - 1] == ']') {
		copy[len - 1] = '\0';
		memmove(copy, copy + 1, len - 1);
	}
	parts = g_strsplit(copy, ",", -1);
	for (guint i = 0; parts[i] != NULL; i++) {
		gchar *item = g_strstrip(parts[i]);
		gsize ilen = strlen(item);

		if (ilen >= 2 && (item[0] == '\'' || item[0] == '"') && item[ilen - 1] == item[0]) {
			item[ilen - 1] = '\0';
			item++;
		}
		if (item[0] != '\0')
			g_strv_builder_add(builder, item);
	}
	return g_strv_builder_end(builder);
}

static void
kl_config_entry_clear(KlConfigEntry *entry)
{
	g_free(entry->text);
	g_strfreev(entry->strv);
	g_free(entry->origin);
	memset(entry, 0, sizeof(*entry));
}

static const gchar *
kl_config_source_to_string(KlConfigSource source)
{
	switch (source) {
	case KL_CONFIG_SOURCE_DEFAULT:
		return "default";
	case KL_CONFIG_SOURCE_FILE:
		return "configuration file";
	case KL_CONFIG_SOURCE_ENV:
		return "environment";
	case KL_CONFIG_SOURCE_CLI:
		return "command line";
	default:
		return "unknown";
	}
}

static const gchar *
kl_config_type_to_string(const KlOption *opt)
{
	switch (opt->type) {
	case KL_OPT_INT:
		return "an integer";
	case KL_OPT_BOOL:
		return "a boolean (true or false)";
	case KL_OPT_LIST:
		return "a list (array or comma-separated string)";
	case KL_OPT_PATH:
		return "a path (string)";
	case KL_OPT_STRING:
	default:
		return "a string";
	}
}

/*
 * Validates and stores an option. A list comes either as @strv (TOML array)
 * or as a string @value. On error the message does not carry the origin yet.
 */
static gboolean
kl_config_store(KlConfig *cfg,
		guint idx,
		const gchar *value,
		gchar *const *strv,
		KlConfigSource source,
		const gchar *origin,
		GError **error)
{
	const KlOption *opt = &kl_options[idx];
	KlConfigEntry entry = { 0 };

	switch (opt->type) {
	case KL_OPT_INT: {
		g_autofree gchar *trimmed = g_strstrip(g_strdup(value));
		gint64 v = 0;
		if (!g_ascii_string_to_signed(trimmed, 10, G_MININT64, G_MAXINT64, &v, NULL)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "expected an integer, got \"%s\"",
				    value);
			return FALSE;
		}
		if (v < opt->min || v > opt->max) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "%" G_GINT64_FORMAT
				    " is out of range; expected an integer from "
				    "%" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
				    v,
				    opt->min,
				    opt->max);
			return FALSE;
		}
		entry.integer = v;
		entry.text = g_strdup_printf("%" G_GINT64_FORMAT, v);
		break;
	}
	case KL_OPT_BOOL:
		if (!kl_config_parse_bool(value, &entry.boolean)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "expected a boolean (true or false), got \"%s\"",
				    value);
			return FALSE;
		}
		entry.text = g_strdup(entry.boolean ? "true" : "false");
		break;
	case KL_OPT_LIST: {
		g_auto(GStrv) items =
		    strv != NULL ? g_strdupv((gchar **)strv) : kl_config_split_list(value);
		for (guint i = 0; items[i] != NULL; i++) {
			g_autofree gchar *norm = NULL;
			if (opt->validate == NULL)
				continue;
			if (!opt->validate(items[i], &norm, error))
				return FALSE;
			g_free(items[i]);
			items[i] = g_steal_pointer(&norm);
		}
		entry.text = g_strjoinv(",", items);
		entry.strv = g_steal_pointer(&items);
		break;
	}
	case KL_OPT_STRING:
	case KL_OPT_PATH:
	default:
		if (opt->choices != NULL) {
			g_autofree gchar *lower = g_ascii_strdown(value, -1);
			if (!g_strv_contains(opt->choices, lower)) {
				g_autofree gchar *list = g_strjoinv(", ", (gchar **)opt->choices);
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_CONFIG,
					    "unsupported value \"%s\"; expected one of: %s",
					    value,
					    list);
				return FALSE;
			}
			entry.text = g_steal_pointer(&lower);
		} else if (opt->validate != NULL) {
			if (!opt->validate(value, &entry.text, error))
				return FALSE;
		} else {
			entry.text = g_strdup(value);
		}
		break;
	}
	entry.source = source;
	entry.origin = g_strdup(origin != NULL ? origin : kl_config_source_to_string(source));
	kl_config_entry_clear(&cfg->entries[idx]);
	cfg->entries[idx] = entry;
	return TRUE;
}

KlConfig *
kl_config_new(void)
{
	KlConfig *cfg = g_new0(KlConfig, 1);

	cfg->entries = g_new0(KlConfigEntry, G_N_ELEMENTS(kl_options));
	cfg->tables = g_hash_table_new_full(
	    g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
	cfg->origins = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++) {
		const gchar *def = kl_options[i].def;
		g_autoptr(GError) error_local = NULL;

		/* like the Keylime agent: root drops to keylime:tss unless told otherwise */
		if (def == NULL)
			def = geteuid() == 0 ? "keylime:tss" : "";
		if (!kl_config_store(
			cfg, i, def, NULL, KL_CONFIG_SOURCE_DEFAULT, NULL, &error_local))
			g_critical("invalid built-in default of %s: %s",
				   kl_options[i].name,
				   error_local->message);
	}
	return cfg;
}

void
kl_config_free(KlConfig *cfg)
{
	if (cfg == NULL)
		return;
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++) {
		/* secrets do not linger in freed memory */
		if (kl_options[i].secret && cfg->entries[i].text != NULL)
			memset(cfg->entries[i].text, 0, strlen(cfg->entries[i].text));
		kl_config_entry_clear(&cfg->entries[i]);
	}
	g_free(cfg->entries);
	g_hash_table_unref(cfg->tables);
	g_hash_table_unref(cfg->origins);
	g_free(cfg);
}

gboolean
kl_config_set(KlConfig *cfg,
	      const gchar *key,
	      const gchar *value,
	      KlConfigSource source,
	      const gchar *origin,
	      GError **error)
{
	guint idx = 0;

	g_return_val_if_fail(cfg != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);
	g_return_val_if_fail(value != NULL, FALSE);

	if (origin == NULL)
		origin = kl_config_source_to_string(source);
	if (kl_config_find_option(key, &idx) == NULL) {
		if (kl_config_is_pull_only(key))
			return TRUE;
		g_set_error(
		    error, KL_ERROR, KL_ERROR_CONFIG, "%s: unknown option '%s'", origin, key);
		return FALSE;
	}
	if (!kl_config_store(cfg, idx, value, NULL, source, origin, error)) {
		g_prefix_error(error, "%s: option '%s': ", origin, key);
		return FALSE;
	}
	return TRUE;
}

/* ---- files ---- */

static GHashTable *
kl_config_get_table(KlConfig *cfg, const gchar *name)
{
	GHashTable *table = g_hash_table_lookup(cfg->tables, name);

	if (table == NULL) {
		table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		g_hash_table_insert(cfg->tables, g_strdup(name), table);
	}
	return table;
}

static gboolean
kl_config_set_from_toml(
    KlConfig *cfg, guint idx, const KlTomlValue *value, const gchar *origin, GError **error)
{
	const KlOption *opt = &kl_options[idx];
	gboolean type_ok;

	/*
	 * numbers may also be written as strings (the value must still be a whole
	 * integer); a boolean must be a TOML boolean: "yes", "false" or 1 in quotes
	 * is an error, never a guess
	 */
	switch (opt->type) {
	case KL_OPT_INT:
		type_ok = value->type == KL_TOML_TYPE_INTEGER || value->type == KL_TOML_TYPE_STRING;
		break;
	case KL_OPT_BOOL:
		type_ok = value->type == KL_TOML_TYPE_BOOLEAN;
		break;
	case KL_OPT_LIST:
		type_ok = value->type != KL_TOML_TYPE_BOOLEAN;
		break;
	case KL_OPT_STRING:
	case KL_OPT_PATH:
	default:
		/* version = 2.5 written without quotes is still a version string */
		type_ok = value->type == KL_TOML_TYPE_STRING ||
			  value->type == KL_TOML_TYPE_INTEGER || value->type == KL_TOML_TYPE_FLOAT;
		break;
	}
	if (!type_ok && opt->type == KL_OPT_BOOL && value->type == KL_TOML_TYPE_STRING) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: option '%s': expected a boolean, true or false without quotes, "
			    "got the string \"%s\"",
			    origin,
			    opt->name,
			    value->text);
		return FALSE;
	}
	if (!type_ok) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: option '%s': expected %s, got %s",
			    origin,
			    opt->name,
			    kl_config_type_to_string(opt),
			    kl_toml_type_to_string(value->type));
		return FALSE;
	}
	if (value->type == KL_TOML_TYPE_ARRAY) {
		g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
		g_auto(GStrv) items = NULL;

		for (guint i = 0; i < value->array->len; i++) {
			const KlTomlValue *item = g_ptr_array_index(value->array, i);
			if (item->type == KL_TOML_TYPE_ARRAY ||
			    item->type == KL_TOML_TYPE_BOOLEAN) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_CONFIG,
					    "%s: option '%s': expected a list of strings, item %u "
					    "is %s",
					    origin,
					    opt->name,
					    i + 1,
					    kl_toml_type_to_string(item->type));
				return FALSE;
			}
			g_strv_builder_add(builder, item->text);
		}
		items = g_strv_builder_end(builder);
		if (!kl_config_store(cfg, idx, NULL, items, KL_CONFIG_SOURCE_FILE, origin, error)) {
			g_prefix_error(error, "%s: option '%s': ", origin, opt->name);
			return FALSE;
		}
		return TRUE;
	}
	if (!kl_config_store(cfg, idx, value->text, NULL, KL_CONFIG_SOURCE_FILE, origin, error)) {
		g_prefix_error(error, "%s: option '%s': ", origin, opt->name);
		return FALSE;
	}
	return TRUE;
}

static gboolean
kl_config_load_document(KlConfig *cfg, KlTomlDocument *doc, GError **error)
{
	const gchar *path = doc->filename;
	KlTomlTable *agent;
	g_autoptr(GPtrArray) pull_only = g_ptr_array_new();

	agent = kl_toml_document_get_table(doc, "agent");
	if (agent == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: no [agent] table; the agent options must follow an [agent] "
			    "header",
			    path);
		return FALSE;
	}
	for (guint t = 0; t < doc->tables->len; t++) {
		KlTomlTable *table = g_ptr_array_index(doc->tables, t);

		for (guint k = 0; k < table->keys->len; k++) {
			const gchar *key = g_ptr_array_index(table->keys, k);
			const KlTomlValue *value = kl_toml_table_get(table, key);
			g_autofree gchar *origin = g_strdup_printf("%s:%u", path, value->line);
			guint idx = 0;

			if (table != agent) {
				g_hash_table_insert(kl_config_get_table(cfg, table->name),
						    g_strdup(key),
						    kl_toml_value_to_string(value));
				g_hash_table_insert(cfg->origins,
						    g_strdup_printf("%s\n%s", table->name, key),
						    g_strdup(origin));
				continue;
			}
			if (kl_config_find_option(key, &idx) != NULL) {
				if (!kl_config_set_from_toml(cfg, idx, value, origin, error))
					return FALSE;
				continue;
			}
			if (kl_config_is_pull_only(key)) {
				g_ptr_array_add(pull_only, (gpointer)key);
				continue;
			}
			/* also visible to kl_config_lookup() for plugins reading [agent] */
			g_hash_table_insert(kl_config_get_table(cfg, "agent"),
					    g_strdup(key),
					    kl_toml_value_to_string(value));
			if (kl_config_suggest(key) != NULL)
				g_warning("%s: unknown option '%s' in [agent] is ignored; did you "
					  "mean '%s'?",
					  origin,
					  key,
					  kl_config_suggest(key));
			else
				g_warning(
				    "%s: unknown option '%s' in [agent] is ignored", origin, key);
		}
	}
	if (pull_only->len > 0) {
		g_autofree gchar *names = NULL;
		g_ptr_array_add(pull_only, NULL);
		names = g_strjoinv(", ", (gchar **)pull_only->pdata);
		g_debug("%s: ignoring options of the pull-model agent: %s", path, names);
	}
	return TRUE;
}

gboolean
kl_config_load_data(KlConfig *cfg, const gchar *data, gsize len, const gchar *name, GError **error)
{
	g_autoptr(KlTomlDocument) doc = NULL;

	g_return_val_if_fail(cfg != NULL, FALSE);
	doc = kl_toml_parse(data, len, name, error);
	if (doc == NULL)
		return FALSE;
	return kl_config_load_document(cfg, doc, error);
}

gboolean
kl_config_load_file(KlConfig *cfg, const gchar *path, GError **error)
{
	g_autoptr(KlTomlDocument) doc = NULL;

	g_return_val_if_fail(cfg != NULL, FALSE);
	g_return_val_if_fail(path != NULL, FALSE);

	doc = kl_toml_parse_file(path, error);
	if (doc == NULL) {
		if (error != NULL && g_error_matches(*error, KL_ERROR, KL_ERROR_NOT_FOUND))
			g_prefix_error(error, "configuration file %s does not exist: ", path);
		return FALSE;
	}
	return kl_config_load_document(cfg, doc, error);
}

static gint
kl_config_strcmp_cb(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const gchar *const *)a, *(const gchar *const *)b);
}

/* DIR/agent.conf then DIR/agent.conf.d/\*.conf; all optional */
static gboolean
kl_config_load_dir(KlConfig *cfg, const gchar *dir, GError **error)
{
	g_autofree gchar *main_file = g_build_filename(dir, "agent.conf", NULL);
	g_autofree gchar *dropin_dir = g_build_filename(dir, "agent.conf.d", NULL);
	g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GDir) gdir = NULL;
	g_autoptr(GError) error_local = NULL;
	const gchar *name;

	if (g_file_test(main_file, G_FILE_TEST_EXISTS)) {
		if (!kl_config_load_file(cfg, main_file, error))
			return FALSE;
	}
	gdir = g_dir_open(dropin_dir, 0, &error_local);
	if (gdir == NULL) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ||
		    g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOTDIR))
			return TRUE;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the drop-in directory %s: %s",
			    dropin_dir,
			    error_local->message);
		return FALSE;
	}
	while ((name = g_dir_read_name(gdir)) != NULL) {
		g_autofree gchar *path = NULL;

		if (name[0] == '.' || !g_str_has_suffix(name, ".conf"))
			continue;
		path = g_build_filename(dropin_dir, name, NULL);
		if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
			continue;
		g_ptr_array_add(files, g_steal_pointer(&path));
	}
	g_ptr_array_sort(files, kl_config_strcmp_cb);
	for (guint i = 0; i < files->len; i++) {
		if (!kl_config_load_file(cfg, g_ptr_array_index(files, i), error))
			return FALSE;
	}
	return TRUE;
}

gboolean
kl_config_load_env(KlConfig *cfg, gchar **envp, GError **error)
{
	g_return_val_if_fail(cfg != NULL, FALSE);

	for (guint i = 0; envp != NULL && envp[i] != NULL; i++) {
		const gchar *eq = strchr(envp[i], '=');
		g_autofree gchar *var = NULL;
		g_autofree gchar *key = NULL;
		g_autofree gchar *origin = NULL;

		if (eq == NULL || !g_str_has_prefix(envp[i], KL_CONFIG_ENV_PREFIX))
			continue;
		var = g_strndup(envp[i], eq - envp[i]);
		if (g_strcmp0(var, KL_CONFIG_ENV_PREFIX "CONFIG") == 0)
			continue;
		key = g_ascii_strdown(var + strlen(KL_CONFIG_ENV_PREFIX), -1);
		if (kl_config_is_pull_only(key))
			continue;
		if (kl_config_find_option(key, NULL) == NULL) {
			const gchar *hint = kl_config_suggest(key);
			g_autofree gchar *hint_var = hint != NULL ? g_ascii_strup(hint, -1) : NULL;
			if (hint_var != NULL)
				g_warning("environment variable %s does not name a known option "
					  "and is ignored; did you mean %s%s?",
					  var,
					  KL_CONFIG_ENV_PREFIX,
					  hint_var);
			else
				g_warning("environment variable %s does not name a known option "
					  "and is ignored",
					  var);
			continue;
		}
		origin = g_strdup_printf("environment (%s)", var);
		if (!kl_config_set(cfg, key, eq + 1, KL_CONFIG_SOURCE_ENV, origin, error))
			return FALSE;
	}
	return TRUE;
}

gboolean
kl_config_load(
    KlConfig *cfg, const gchar *usr_etc_dir, const gchar *etc_dir, gchar **envp, GError **error)
{
	const gchar *single;

	g_return_val_if_fail(cfg != NULL, FALSE);

	single = g_environ_getenv(envp, KL_CONFIG_ENV_PREFIX "CONFIG");
	if (single != NULL && single[0] != '\0') {
		if (!kl_config_load_file(cfg, single, error)) {
			g_prefix_error(error, "KEYLIME_AGENT_CONFIG: ");
			return FALSE;
		}
	} else {
		if (usr_etc_dir != NULL && !kl_config_load_dir(cfg, usr_etc_dir, error))
			return FALSE;
		if (etc_dir != NULL && !kl_config_load_dir(cfg, etc_dir, error))
			return FALSE;
	}
	return kl_config_load_env(cfg, envp, error);
}

/* ---- finalize ---- */

static void
kl_config_replace_text(KlConfig *cfg, guint idx, gchar *text)
{
	g_free(cfg->entries[idx].text);
	cfg->entries[idx].text = text;
}

/* "default" -> @base/@def; relative -> @base/value; "" stays "" */
static void
kl_config_resolve_path(KlConfig *cfg, const gchar *key, const gchar *base, const gchar *def)
{
	guint idx = 0;
	const gchar *value;

	if (kl_config_find_option(key, &idx) == NULL)
		g_assert_not_reached();
	value = cfg->entries[idx].text;
	if (value[0] == '\0')
		return;
	if (g_strcmp0(value, "default") == 0) {
		kl_config_replace_text(cfg,
				       idx,
				       g_path_is_absolute(def) ? g_strdup(def)
							       : g_build_filename(base, def, NULL));
		return;
	}
	if (!g_path_is_absolute(value))
		kl_config_replace_text(cfg, idx, g_build_filename(base, value, NULL));
}

gboolean
kl_config_finalize(KlConfig *cfg, gchar **envp, GError **error)
{
	const gchar *env_dir;
	const gchar *env_tcti;
	const gchar *keylime_dir;
	guint idx = 0;

	g_return_val_if_fail(cfg != NULL, FALSE);

	env_dir = g_environ_getenv(envp, "KEYLIME_DIR");
	if (env_dir != NULL && env_dir[0] != '\0') {
		if (!kl_config_set(cfg,
				   "keylime_dir",
				   env_dir,
				   KL_CONFIG_SOURCE_ENV,
				   "environment (KEYLIME_DIR)",
				   error))
			return FALSE;
	}
	/* relative keylime_dir: against the working directory, as the Keylime agent does */
	kl_config_find_option("keylime_dir", &idx);
	kl_config_replace_text(cfg, idx, g_canonicalize_filename(cfg->entries[idx].text, NULL));
	keylime_dir = cfg->entries[idx].text;

	/* options whose empty value means their default */
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++) {
		if (kl_options[i].empty_is_default && cfg->entries[i].text[0] == '\0')
			kl_config_replace_text(cfg, i, g_strdup(kl_options[i].def));
	}
	kl_config_resolve_path(cfg, "verifier_tls_ca_cert", keylime_dir, KL_DEFAULT_CA_CERT);
	kl_config_resolve_path(cfg, "registrar_tls_ca_cert", keylime_dir, KL_DEFAULT_CA_CERT);
	kl_config_resolve_path(cfg, "agent_data_path", keylime_dir, KL_DEFAULT_AGENT_DATA);
	kl_config_resolve_path(cfg, "iak_cert", keylime_dir, KL_DEFAULT_IAK_CERT);
	kl_config_resolve_path(cfg, "idevid_cert", keylime_dir, KL_DEFAULT_IDEVID_CERT);
	kl_config_resolve_path(cfg, "status_file", keylime_dir, KL_DEFAULT_STATUS_FILE);
	/* "default": the textfile directory of Debian's prometheus-node-exporter */
	kl_config_resolve_path(cfg, "metrics_file", keylime_dir, KL_DEFAULT_METRICS_FILE);
	/* the kernel logs are relative to / */
	kl_config_resolve_path(cfg, "ima_ml_path", "/", KL_DEFAULT_IMA_ML_PATH);
	kl_config_resolve_path(cfg, "measuredboot_ml_path", "/", KL_DEFAULT_MEASUREDBOOT_PATH);
	/* like the other paths (--plugin-dir is already absolute: the working directory) */
	kl_config_find_option("plugin_dir", &idx);
	if (!g_path_is_absolute(cfg->entries[idx].text))
		kl_config_replace_text(
		    cfg, idx, g_build_filename(keylime_dir, cfg->entries[idx].text, NULL));

	/* an empty tcti means: $TCTI, else the kernel resource manager */
	env_tcti = g_environ_getenv(envp, "TCTI");
	if (kl_config_get_string(cfg, "tcti")[0] == '\0' && env_tcti != NULL &&
	    env_tcti[0] != '\0') {
		if (!kl_config_set(
			cfg, "tcti", env_tcti, KL_CONFIG_SOURCE_ENV, "environment (TCTI)", error))
			return FALSE;
	}

	/* plain http to the verifier would expose the evidence and the session token */
	if (g_str_has_prefix(kl_config_get_string(cfg, "verifier_url"), "http://") &&
	    !kl_config_get_bool(cfg, "tls_accept_invalid_certs")) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: verifier_url %s uses plain http; use an https:// URL (plain "
			    "http is allowed only with --insecure or "
			    "tls_accept_invalid_certs = true, for testing)",
			    kl_config_get_origin(cfg, "verifier_url"),
			    kl_config_get_string(cfg, "verifier_url"));
		return FALSE;
	}
	if (kl_config_get_int(cfg, "exponential_backoff_max_delay") <
	    kl_config_get_int(cfg, "exponential_backoff_initial_delay")) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "exponential_backoff_max_delay (%s, %s) is smaller than "
			    "exponential_backoff_initial_delay (%s, %s)",
			    kl_config_get_string(cfg, "exponential_backoff_max_delay"),
			    kl_config_get_origin(cfg, "exponential_backoff_max_delay"),
			    kl_config_get_string(cfg, "exponential_backoff_initial_delay"),
			    kl_config_get_origin(cfg, "exponential_backoff_initial_delay"));
		return FALSE;
	}
	return TRUE;
}

/* ---- getters ---- */

static KlConfigEntry *
kl_config_get_entry(KlConfig *cfg, const gchar *key, KlOptType type, gboolean any_type)
{
	guint idx = 0;
	const KlOption *opt;

	g_return_val_if_fail(cfg != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);
	opt = kl_config_find_option(key, &idx);
	if (opt == NULL) {
		g_critical("unknown configuration option '%s'", key);
		return NULL;
	}
	if (!any_type && opt->type != type &&
	    !(type == KL_OPT_STRING && opt->type == KL_OPT_PATH)) {
		g_critical(
		    "configuration option '%s' is not %s", key, kl_config_type_to_string(opt));
		return NULL;
	}
	return &cfg->entries[idx];
}

const gchar *
kl_config_get_string(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_STRING, TRUE);
	return entry != NULL ? entry->text : NULL;
}

gint64
kl_config_get_int(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_INT, FALSE);
	return entry != NULL ? entry->integer : 0;
}

gboolean
kl_config_get_bool(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_BOOL, FALSE);
	return entry != NULL ? entry->boolean : FALSE;
}

gchar **
kl_config_get_strv(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_LIST, FALSE);
	return entry != NULL ? g_strdupv(entry->strv) : NULL;
}

const gchar *
kl_config_get_origin(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_STRING, TRUE);
	return entry != NULL ? entry->origin : NULL;
}

KlConfigSource
kl_config_get_source(KlConfig *cfg, const gchar *key)
{
	KlConfigEntry *entry = kl_config_get_entry(cfg, key, KL_OPT_STRING, TRUE);
	return entry != NULL ? entry->source : KL_CONFIG_SOURCE_DEFAULT;
}

gchar *
kl_config_describe(KlConfig *cfg)
{
	GString *str = g_string_new(NULL);
	gsize width = 0;

	g_return_val_if_fail(cfg != NULL, NULL);
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++)
		width = MAX(width, strlen(kl_options[i].name));
	for (guint i = 0; i < G_N_ELEMENTS(kl_options); i++) {
		const KlConfigEntry *entry = &cfg->entries[i];
		g_autofree gchar *value = NULL;

		if (kl_options[i].secret)
			value = g_strdup(entry->text[0] != '\0' ? "(set)" : "(empty)");
		else if (kl_options[i].type == KL_OPT_STRING || kl_options[i].type == KL_OPT_PATH)
			value = g_strdup_printf("\"%s\"", entry->text);
		else if (kl_options[i].type == KL_OPT_LIST) {
			g_autofree gchar *items = g_strjoinv("\", \"", entry->strv);
			value = entry->strv[0] != NULL ? g_strdup_printf("[\"%s\"]", items)
						       : g_strdup("[]");
		} else
			value = g_strdup(entry->text);
		g_string_append_printf(
		    str, "%-*s = %s  # %s\n", (int)width, kl_options[i].name, value, entry->origin);
	}
	return g_string_free(str, FALSE);
}

const gchar *
kl_config_lookup(KlConfig *cfg, const gchar *table, const gchar *key)
{
	GHashTable *values;
	const gchar *value = NULL;
	guint idx = 0;

	g_return_val_if_fail(cfg != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	if (table == NULL)
		table = "agent";
	if (g_strcmp0(table, "agent") != 0) {
		values = g_hash_table_lookup(cfg->tables, table);
		if (values != NULL)
			value = g_hash_table_lookup(values, key);
		if (value != NULL)
			return value;
	}
	/* [agent] options are visible from every table (ima_ml_path for ima_log, ...) */
	if (kl_config_find_option(key, &idx) != NULL)
		return cfg->entries[idx].text;
	if (g_strcmp0(table, "agent") != 0)
		return NULL;
	values = g_hash_table_lookup(cfg->tables, "agent");
	return values != NULL ? g_hash_table_lookup(values, key) : NULL;
}

static const KlPluginConfigKey *
kl_config_find_plugin_key(const KlPluginConfigKey *keys, const gchar *key)
{
	for (guint i = 0; keys != NULL && keys[i].name != NULL; i++)
		if (g_strcmp0(keys[i].name, key) == 0)
			return &keys[i];
	return NULL;
}

const gchar *
kl_config_lookup_plugin(KlConfig *cfg,
			const gchar *plugin,
			const KlPluginConfigKey *keys,
			const gchar *key)
{
	const KlPluginConfigKey *declared = kl_config_find_plugin_key(keys, key);
	GHashTable *values;
	const gchar *value;
	guint idx = 0;

	g_return_val_if_fail(cfg != NULL, NULL);
	g_return_val_if_fail(plugin != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	/* a plugin that declares its keys sees only those and the shared options */
	if (keys != NULL && declared == NULL) {
		if (kl_config_find_option(key, &idx) != NULL && !kl_options[idx].secret)
			return cfg->entries[idx].text;
		return NULL;
	}
	values = g_hash_table_lookup(cfg->tables, plugin);
	value = values != NULL ? g_hash_table_lookup(values, key) : NULL;
	if (value != NULL)
		return value;
	if (kl_config_find_option(key, &idx) != NULL) {
		/* a secret only for a plugin that declared it */
		if (kl_options[idx].secret && declared == NULL)
			return NULL;
		return cfg->entries[idx].text;
	}
	return declared != NULL ? declared->default_value : NULL;
}

void
kl_config_check_plugin_table(KlConfig *cfg, const gchar *plugin, const KlPluginConfigKey *keys)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new();
	g_autoptr(GList) table_keys = NULL;
	g_autofree gchar *list = NULL;
	GHashTable *values;

	g_return_if_fail(cfg != NULL);
	g_return_if_fail(plugin != NULL);

	values = g_hash_table_lookup(cfg->tables, plugin);
	if (keys == NULL || values == NULL)
		return;
	for (guint i = 0; keys[i].name != NULL; i++)
		g_ptr_array_add(names, (gpointer)keys[i].name);
	g_ptr_array_add(names, NULL);
	list = names->len > 1 ? g_strjoinv(", ", (gchar **)names->pdata) : g_strdup("nothing");
	table_keys = g_list_sort(g_hash_table_get_keys(values), (GCompareFunc)g_strcmp0);
	for (GList *l = table_keys; l != NULL; l = l->next) {
		const gchar *key = l->data;
		g_autofree gchar *id = g_strdup_printf("%s\n%s", plugin, key);
		const gchar *origin = g_hash_table_lookup(cfg->origins, id);
		const gchar *hint;

		if (kl_config_find_plugin_key(keys, key) != NULL)
			continue;
		hint = kl_config_suggest_among(key, (const gchar *const *)names->pdata, 3);
		if (hint != NULL)
			g_warning("%s: unknown option '%s' in [%s] is ignored; did you mean '%s'?",
				  origin != NULL ? origin : "configuration",
				  key,
				  plugin,
				  hint);
		else
			g_warning(
			    "%s: unknown option '%s' in [%s] is ignored (the %s plugin reads: "
			    "%s)",
			    origin != NULL ? origin : "configuration",
			    key,
			    plugin,
			    plugin,
			    list);
	}
}

void
kl_config_check_tables(KlConfig *cfg, const gchar *const *plugins)
{
	g_autoptr(GList) tables = NULL;

	g_return_if_fail(cfg != NULL);

	tables = g_list_sort(g_hash_table_get_keys(cfg->tables), (GCompareFunc)g_strcmp0);
	for (GList *l = tables; l != NULL; l = l->next) {
		const gchar *table = l->data;
		const gchar *hint;

		if (g_strcmp0(table, "agent") == 0 ||
		    (plugins != NULL && g_strv_contains(plugins, table)))
			continue;
		/* a plugin that is not installed is no reason to warn: a misspelt one is */
		hint = kl_config_suggest_among(table, plugins, 2);
		if (hint != NULL)
			g_warning(
			    "unknown table [%s] in the configuration is ignored; did you mean "
			    "[%s]?",
			    table,
			    hint);
	}
}
