/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Command line of keylime_push_model_agent (GOption, strict).
 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-cli.h"

/* flags that set one config option as they are */
typedef struct {
	const gchar *flag;
	const gchar *key;
	gboolean is_path; /* relative to the working directory, not to keylime_dir */
} KlCliOptionMap;

static const KlCliOptionMap kl_cli_option_map[] = {
	{ "--verifier-url", "verifier_url", FALSE },
	{ "-v", "verifier_url", FALSE },
	{ "--agent-identifier", "uuid", FALSE },
	{ "--attestation-interval-seconds", "attestation_interval_seconds", FALSE },
	{ "--ca-certificate", "verifier_tls_ca_cert", TRUE },
	{ "--api-version", "verifier_api_version", FALSE },
	{ "--timeout", "request_timeout", FALSE },
	{ "--log-level", "log_level", FALSE },
	{ "--plugin-dir", "plugin_dir", TRUE },
	{ "--tcti", "tcti", FALSE },
};

static void
kl_cli_override_free(gpointer data)
{
	KlCliOverride *o = data;

	g_free(o->key);
	g_free(o->value);
	g_free(o->flag);
	g_free(o);
}

KlCli *
kl_cli_new(void)
{
	KlCli *cli = g_new0(KlCli, 1);

	cli->overrides = g_ptr_array_new_with_free_func(kl_cli_override_free);
	return cli;
}

void
kl_cli_free(KlCli *cli)
{
	if (cli == NULL)
		return;
	g_free(cli->config_file);
	g_free(cli->json_file);
	g_free(cli->message_type);
	g_free(cli->method);
	g_free(cli->attestation_index);
	g_free(cli->session_index);
	g_ptr_array_unref(cli->overrides);
	g_free(cli);
}

static gboolean
kl_cli_bad_value(GError **error, const gchar *flag, const gchar *fmt, ...) G_GNUC_PRINTF(3, 4);

static gboolean
kl_cli_bad_value(GError **error, const gchar *flag, const gchar *fmt, ...)
{
	va_list args;
	g_autofree gchar *msg = NULL;

	va_start(args, fmt);
	msg = g_strdup_vprintf(fmt, args);
	va_end(args);
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: %s", flag, msg);
	return FALSE;
}

/* checks @value with the config validator of @key, then records it */
static gboolean
kl_cli_add_override(
    KlCli *cli, const gchar *flag, const gchar *key, const gchar *value, GError **error)
{
	g_autoptr(KlConfig) scratch = kl_config_new();
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *origin = g_strdup_printf("command line (%s)", flag);
	KlCliOverride *o;

	if (!kl_config_set(scratch, key, value, KL_CONFIG_SOURCE_CLI, origin, &error_local)) {
		g_set_error_literal(
		    error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, error_local->message);
		return FALSE;
	}
	o = g_new0(KlCliOverride, 1);
	o->key = g_strdup(key);
	o->value = g_strdup(value);
	o->flag = g_strdup(flag);
	g_ptr_array_add(cli->overrides, o);
	return TRUE;
}

static gboolean
kl_cli_parse_bool(const gchar *value, gboolean *out)
{
	if (value == NULL) {
		*out = TRUE;
		return TRUE;
	}
	if (g_ascii_strcasecmp(value, "true") == 0 || g_ascii_strcasecmp(value, "yes") == 0 ||
	    g_strcmp0(value, "1") == 0) {
		*out = TRUE;
		return TRUE;
	}
	if (g_ascii_strcasecmp(value, "false") == 0 || g_ascii_strcasecmp(value, "no") == 0 ||
	    g_strcmp0(value, "0") == 0) {
		*out = FALSE;
		return TRUE;
	}
	return FALSE;
}

static gboolean
kl_cli_option_cb(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
	KlCli *cli = data;

	for (guint i = 0; i < G_N_ELEMENTS(kl_cli_option_map); i++) {
		const KlCliOptionMap *m = &kl_cli_option_map[i];
		g_autofree gchar *abs = NULL;

		if (g_strcmp0(option_name, m->flag) != 0)
			continue;
		if (m->is_path && value[0] != '\0' && g_strcmp0(value, "default") != 0)
			abs = g_canonicalize_filename(value, NULL);
		return kl_cli_add_override(cli,
					   m->flag[1] == '-' ? m->flag : "--verifier-url",
					   m->key,
					   abs != NULL ? abs : value,
					   error);
	}
	g_set_error(
	    error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unhandled option %s", option_name);
	return FALSE;
}

static gboolean
kl_cli_registrar_url_cb(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
	KlCli *cli = data;
	const gchar *flag = "--registrar-url";
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *port = NULL;
	const gchar *scheme;
	const gchar *host;
	const gchar *path;
	gboolean tls;

	uri = g_uri_parse(value, G_URI_FLAGS_NONE, &error_local);
	if (uri == NULL)
		return kl_cli_bad_value(error,
					flag,
					"'%s' is not a URL (%s); expected http://HOST:PORT or "
					"https://HOST:PORT",
					value,
					error_local->message);
	scheme = g_uri_get_scheme(uri);
	host = g_uri_get_host(uri);
	path = g_uri_get_path(uri);
	if (g_strcmp0(scheme, "http") != 0 && g_strcmp0(scheme, "https") != 0)
		return kl_cli_bad_value(
		    error,
		    flag,
		    "unsupported scheme '%s' in '%s'; expected http://HOST:PORT "
		    "or https://HOST:PORT",
		    scheme,
		    value);
	if (host == NULL || host[0] == '\0')
		return kl_cli_bad_value(error, flag, "'%s' has no host name", value);
	if ((path != NULL && path[0] != '\0' && g_strcmp0(path, "/") != 0) ||
	    g_uri_get_query(uri) != NULL || g_uri_get_fragment(uri) != NULL ||
	    g_uri_get_userinfo(uri) != NULL)
		return kl_cli_bad_value(error,
					flag,
					"'%s' must be only http(s)://HOST:PORT, without a path or "
					"query",
					value);
	tls = g_strcmp0(scheme, "https") == 0;
	if (!kl_cli_add_override(cli, flag, "registrar_ip", host, error))
		return FALSE;
	if (!kl_cli_add_override(cli, flag, "registrar_tls_enabled", tls ? "true" : "false", error))
		return FALSE;
	/* without a port, the configured registrar_port / registrar_tls_port stays */
	if (g_uri_get_port(uri) < 0)
		return TRUE;
	port = g_strdup_printf("%d", g_uri_get_port(uri));
	return kl_cli_add_override(
	    cli, flag, tls ? "registrar_tls_port" : "registrar_port", port, error);
}

static gboolean
kl_cli_insecure_cb(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
	KlCli *cli = data;
	gboolean on = FALSE;

	if (!kl_cli_parse_bool(value, &on))
		return kl_cli_bad_value(
		    error, "--insecure", "expected true or false, got '%s'", value);
	if (!kl_cli_add_override(
		cli, "--insecure", "tls_accept_invalid_certs", on ? "true" : "false", error))
		return FALSE;
	return kl_cli_add_override(
	    cli, "--insecure", "tls_accept_invalid_hostnames", on ? "true" : "false", error);
}

static gboolean
kl_cli_avoid_tpm_cb(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
	KlCli *cli = data;

	if (!kl_cli_parse_bool(value, &cli->avoid_tpm))
		return kl_cli_bad_value(
		    error, "--avoid-tpm", "expected true or false, got '%s'", value);
	return TRUE;
}

static gboolean
kl_cli_message_cb(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
	KlCli *cli = data;

	if (g_strcmp0(option_name, "--message-type") == 0) {
		g_autofree gchar *lower = g_ascii_strdown(value, -1);
		if (g_strcmp0(lower, "attestation") != 0 && g_strcmp0(lower, "evidence") != 0 &&
		    g_strcmp0(lower, "session") != 0)
			return kl_cli_bad_value(error,
						option_name,
						"unknown message type '%s'; expected attestation, "
						"evidence or session",
						value);
		g_free(cli->message_type);
		cli->message_type = g_steal_pointer(&lower);
	} else if (g_strcmp0(option_name, "--method") == 0) {
		g_autofree gchar *upper = g_ascii_strup(value, -1);
		if (g_strcmp0(upper, "POST") != 0 && g_strcmp0(upper, "PATCH") != 0)
			return kl_cli_bad_value(error,
						option_name,
						"unsupported method '%s'; expected POST or PATCH",
						value);
		g_free(cli->method);
		cli->method = g_steal_pointer(&upper);
	} else if (g_strcmp0(option_name, "--attestation-index") == 0) {
		if (g_strcmp0(value, "latest") != 0 &&
		    (value[0] == '\0' || strspn(value, "0123456789") != strlen(value)))
			return kl_cli_bad_value(
			    error,
			    option_name,
			    "'%s' is not an attestation index; expected a number "
			    "or 'latest'",
			    value);
		g_free(cli->attestation_index);
		cli->attestation_index = g_strdup(value);
	} else if (g_strcmp0(option_name, "--session-index") == 0) {
		if (value[0] == '\0' || strpbrk(value, "/?#") != NULL)
			return kl_cli_bad_value(
			    error, option_name, "'%s' is not a session index", value);
		g_free(cli->session_index);
		cli->session_index = g_strdup(value);
	} else if (g_strcmp0(option_name, "--json-file") == 0 ||
		   g_strcmp0(option_name, "-j") == 0) {
		if (value[0] == '\0')
			return kl_cli_bad_value(error, "--json-file", "the file name is empty");
		g_free(cli->json_file);
		cli->json_file = g_canonicalize_filename(value, NULL);
	}
	return TRUE;
}

static GOptionContext *
kl_cli_build_context(KlCli *cli)
{
	/* clang-format off */
	GOptionEntry entries[] = {
	    {"verifier-url", 'v', 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Base URL of the verifier, e.g. https://verifier.example:8881 "
	     "(config: verifier_url)", "URL"},
	    {"registrar-url", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_registrar_url_cb,
	     "Registrar address: http://HOST:PORT sets registrar_ip and registrar_port; "
	     "https://HOST:PORT also turns on registrar_tls_enabled and sets registrar_tls_port. "
	     "Without a port the configured one is kept", "URL"},
	    {"agent-identifier", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Agent ID used with both the registrar and the verifier; also \"generate\" or "
	     "\"hash_ek\" (config: uuid)", "ID"},
	    {"attestation-interval-seconds", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Seconds between attestations when the verifier does not say; also caps the "
	     "retry delay while attesting (config: attestation_interval_seconds)", "SECONDS"},
	    {"ca-certificate", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "PEM file of the CA that signed the verifier's TLS certificate "
	     "(config: verifier_tls_ca_cert)", "FILE"},
	    {"api-version", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Verifier push API version in the attestation URLs, e.g. 3.0 (v3.0 and 3 are "
	     "accepted too; sessions stay on /v3.0; config: verifier_api_version)", "VERSION"},
	    {"timeout", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Timeout of each HTTP request to the verifier and registrar, in milliseconds "
	     "(config: request_timeout)", "MS"},
	    {"insecure", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, kl_cli_insecure_cb,
	     "Do not verify TLS certificates and host names, and allow plain http:// verifier "
	     "URLs. For testing only (config: tls_accept_invalid_certs and "
	     "tls_accept_invalid_hostnames)", "[true|false]"},
	    {"avoid-tpm", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, kl_cli_avoid_tpm_cb,
	     "Use a software stand-in instead of the TPM. The evidence proves nothing: "
	     "for testing only", "[true|false]"},
	    {"json-file", 'j', 0, G_OPTION_ARG_CALLBACK, kl_cli_message_cb,
	     "Debugging: send the JSON body in FILE once as the message chosen by "
	     "--message-type and --method, print the answer and exit", "FILE"},
	    {"message-type", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_message_cb,
	     "Debugging, with --json-file: attestation (default; evidence is the same) or "
	     "session", "TYPE"},
	    {"method", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_message_cb,
	     "Debugging, with --json-file: POST (default) or PATCH", "METHOD"},
	    {"attestation-index", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_message_cb,
	     "Debugging, with --json-file: attestation to PATCH, a number or latest "
	     "(default)", "INDEX"},
	    {"session-index", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_message_cb,
	     "Debugging, with --json-file: session ID to PATCH", "INDEX"},
	    {"config", 0, 0, G_OPTION_ARG_FILENAME, &cli->config_file,
	     "Read only this configuration file instead of /usr/etc/keylime/agent.conf, "
	     "/etc/keylime/agent.conf and their agent.conf.d directories", "FILE"},
	    {"once", 0, 0, G_OPTION_ARG_NONE, &cli->once,
	     "Run one attestation and exit: status 0 means the verifier took the evidence "
	     "(HTTP 202); its verdict (pass/fail) is not visible to agents, ask the verifier "
	     "(keylime_tenant -c cvstatus)",
	     NULL},
	    {"check", 0, 0, G_OPTION_ARG_NONE, &cli->check,
	     "Check the configuration, the TPM and the plugins, print each effective option "
	     "with where it was set, and exit", NULL},
	    {"status", 0, 0, G_OPTION_ARG_NONE, &cli->status,
	     "Print the state of the running agent from its status file (config: "
	     "status_file) and exit: status 0 only while it attests on schedule "
	     "(for liveness probes), 1 otherwise", NULL},
	    {"json", 0, 0, G_OPTION_ARG_NONE, &cli->json,
	     "With --status: print the state as JSON", NULL},
	    {"alive", 0, 0, G_OPTION_ARG_NONE, &cli->alive,
	     "With --status: exit 0 while the agent runs and is not stuck, also while it "
	     "waits for enrollment or retries during an outage (for liveness probes)", NULL},
	    {"log-level", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Log level: error, warning, info (default) or debug (config: log_level)", "LEVEL"},
	    {"plugin-dir", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "Load evidence plugins from DIR instead of " KL_PLUGINDIR
	     " (for developers; config: plugin_dir)", "DIR"},
	    {"tcti", 0, 0, G_OPTION_ARG_CALLBACK, kl_cli_option_cb,
	     "TPM connection, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321 "
	     "(config: tcti; default: $TCTI, else the kernel resource manager)", "TCTI"},
	    {"version", 'V', 0, G_OPTION_ARG_NONE, &cli->version,
	     "Print the version and exit", NULL},
	    {NULL},
	};
	/* clang-format on */
	GOptionContext *context = g_option_context_new(NULL);
	GOptionGroup *group = g_option_group_new(NULL, NULL, NULL, cli, NULL);

	g_option_group_add_entries(group, entries);
	g_option_context_set_main_group(context, group);
	g_option_context_set_summary(
	    context,
	    "Keylime push-model agent: registers this machine's TPM with a "
	    "Keylime registrar and sends attestation evidence to a Keylime "
	    "verifier.");
	g_option_context_set_description(
	    context,
	    "Options are read, later ones winning, from: built-in defaults, "
	    "/usr/etc/keylime/agent.conf and agent.conf.d/*.conf, /etc/keylime/agent.conf and "
	    "agent.conf.d/*.conf (or only the file in $KEYLIME_AGENT_CONFIG or --config), the "
	    "environment variables KEYLIME_AGENT_<OPTION>, and this command line. KEYLIME_DIR "
	    "overrides keylime_dir. Use --check to see the effective values.");
	return context;
}

gchar *
kl_cli_get_help(void)
{
	g_autoptr(KlCli) cli = kl_cli_new();
	GOptionContext *context = NULL;
	gchar *help;

	if (g_get_prgname() == NULL)
		g_set_prgname("keylime_push_model_agent");
	context = kl_cli_build_context(cli);
	help = g_option_context_get_help(context, TRUE, NULL);

	g_option_context_free(context);
	return help;
}

/* "--insecure true" (the form the Keylime agent takes) -> "--insecure=true" */
static gchar **
kl_cli_join_bool_values(int argc, char **argv)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

	for (int i = 0; i < argc; i++) {
		gboolean is_bool_flag =
		    g_strcmp0(argv[i], "--insecure") == 0 || g_strcmp0(argv[i], "--avoid-tpm") == 0;
		if (g_strcmp0(argv[i], "--") == 0) {
			for (; i < argc; i++)
				g_strv_builder_add(builder, argv[i]);
			break;
		}
		if (is_bool_flag && i + 1 < argc &&
		    (g_ascii_strcasecmp(argv[i + 1], "true") == 0 ||
		     g_ascii_strcasecmp(argv[i + 1], "false") == 0)) {
			g_autofree gchar *joined = g_strdup_printf("%s=%s", argv[i], argv[i + 1]);
			g_strv_builder_add(builder, joined);
			i++;
			continue;
		}
		g_strv_builder_add(builder, argv[i]);
	}
	return g_strv_builder_end(builder);
}

gboolean
kl_cli_parse(KlCli *cli, int *argc, char ***argv, GError **error)
{
	GOptionContext *context;
	g_auto(GStrv) args = NULL;
	gboolean ok;

	g_return_val_if_fail(cli != NULL, FALSE);
	g_return_val_if_fail(argc != NULL && argv != NULL, FALSE);

	args = kl_cli_join_bool_values(*argc, *argv);
	context = kl_cli_build_context(cli);
	ok = g_option_context_parse_strv(context, &args, error);
	g_option_context_free(context);
	if (!ok)
		return FALSE;
	if (args[0] != NULL && args[1] != NULL) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_FAILED,
			    "unexpected argument '%s'; the agent takes only options (see --help)",
			    args[1]);
		return FALSE;
	}
	if (cli->config_file != NULL && !g_path_is_absolute(cli->config_file)) {
		gchar *abs = g_canonicalize_filename(cli->config_file, NULL);
		g_free(cli->config_file);
		cli->config_file = abs;
	}
	if ((cli->json || cli->alive) && !cli->status) {
		g_set_error_literal(error,
				    G_OPTION_ERROR,
				    G_OPTION_ERROR_FAILED,
				    cli->json ? "--json needs --status" : "--alive needs --status");
		return FALSE;
	}
	if ((cli->message_type != NULL || cli->method != NULL || cli->attestation_index != NULL ||
	     cli->session_index != NULL) &&
	    cli->json_file == NULL) {
		g_set_error_literal(error,
				    G_OPTION_ERROR,
				    G_OPTION_ERROR_FAILED,
				    "--message-type, --method, --attestation-index and "
				    "--session-index need --json-file");
		return FALSE;
	}
	return TRUE;
}

gboolean
kl_cli_apply(KlCli *cli, KlConfig *cfg, GError **error)
{
	g_return_val_if_fail(cli != NULL, FALSE);
	g_return_val_if_fail(cfg != NULL, FALSE);

	for (guint i = 0; i < cli->overrides->len; i++) {
		KlCliOverride *o = g_ptr_array_index(cli->overrides, i);
		g_autofree gchar *origin = g_strdup_printf("command line (%s)", o->flag);

		if (!kl_config_set(cfg, o->key, o->value, KL_CONFIG_SOURCE_CLI, origin, error))
			return FALSE;
	}
	return TRUE;
}
