/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-cli.h"
#include "kl-config.h"

/* parses a NULL-terminated list of arguments (without argv[0]) */
static KlCli *
kl_test_parse(GError **error, ...)
{
	g_autoptr(KlCli) cli = kl_cli_new();
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
	g_auto(GStrv) argv = NULL;
	const gchar *arg;
	va_list args;
	int argc;

	g_strv_builder_add(builder, "keylime_push_model_agent");
	va_start(args, error);
	while ((arg = va_arg(args, const gchar *)) != NULL)
		g_strv_builder_add(builder, arg);
	va_end(args);
	argv = g_strv_builder_end(builder);
	argc = g_strv_length(argv);
	if (!kl_cli_parse(cli, &argc, &argv, error))
		return NULL;
	return g_steal_pointer(&cli);
}

/* applies @cli to a fresh config */
static KlConfig *
kl_test_apply(KlCli *cli)
{
	g_autoptr(KlConfig) cfg = kl_config_new();
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_cli_apply(cli, cfg, &error));
	g_assert_no_error(error);
	return g_steal_pointer(&cfg);
}

static void
kl_cli_no_args_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli = kl_test_parse(&error, NULL);
	g_autoptr(KlConfig) cfg = NULL;

	g_assert_no_error(error);
	g_assert_nonnull(cli);
	g_assert_false(cli->once);
	g_assert_false(cli->check);
	g_assert_false(cli->version);
	g_assert_false(cli->avoid_tpm);
	g_assert_null(cli->config_file);
	g_assert_null(cli->json_file);
	g_assert_cmpuint(cli->overrides->len, ==, 0);
	cfg = kl_test_apply(cli);
	g_assert_cmpstr(kl_config_get_origin(cfg, "verifier_url"), ==, "default");
}

static void
kl_cli_unknown_flag_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli =
	    kl_test_parse(&error, "--verifier-url", "https://v:1", "--bogus", NULL);
	g_autoptr(KlCli) cli2 = NULL;
	g_autoptr(KlCli) cli3 = NULL;

	g_assert_null(cli);
	g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION);
	g_assert_nonnull(strstr(error->message, "--bogus"));
	g_clear_error(&error);

	/* positional arguments are not silently ignored either */
	cli2 = kl_test_parse(&error, "--once", "stray", NULL);
	g_assert_null(cli2);
	g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "'stray'"));
	g_clear_error(&error);

	/* a flag without its value */
	cli3 = kl_test_parse(&error, "--timeout", NULL);
	g_assert_null(cli3);
	g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
}

typedef struct {
	const gchar *flag;
	const gchar *value;
	const gchar *key;
	const gchar *expected;
} KlCliMapCase;

static void
kl_cli_flag_map_test(void)
{
	g_autofree gchar *cwd = g_get_current_dir();
	g_autofree gchar *abs_ca = g_build_filename(cwd, "ca.pem", NULL);
	g_autofree gchar *abs_plugins = g_build_filename(cwd, "plugins", NULL);
	const KlCliMapCase cases[] = {
		{ "--verifier-url",
		  "https://verifier.example:8881",
		  "verifier_url",
		  "https://verifier.example:8881" },
		{ "-v", "https://v2.example:1", "verifier_url", "https://v2.example:1" },
		{ "--agent-identifier", "my-agent", "uuid", "my-agent" },
		{ "--attestation-interval-seconds", "15", "attestation_interval_seconds", "15" },
		{ "--ca-certificate",
		  "/etc/pki/ca.pem",
		  "verifier_tls_ca_cert",
		  "/etc/pki/ca.pem" },
		/* relative paths on the command line are relative to the working directory */
		{ "--ca-certificate", "ca.pem", "verifier_tls_ca_cert", abs_ca },
		{ "--api-version", "v3.0", "verifier_api_version", "3.0" },
		{ "--api-version", "3", "verifier_api_version", "3.0" },
		{ "--api-version", "3.0", "verifier_api_version", "3.0" },
		{ "--timeout", "1234", "request_timeout", "1234" },
		{ "--log-level", "debug", "log_level", "debug" },
		{ "--plugin-dir", "plugins", "plugin_dir", abs_plugins },
		{ "--tcti", "swtpm:port=2321", "tcti", "swtpm:port=2321" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *joined = g_strdup_printf("%s=%s", cases[i].flag, cases[i].value);
		g_autoptr(KlCli) cli = kl_test_parse(&error, cases[i].flag, cases[i].value, NULL);
		g_autoptr(KlCli) cli2 = NULL;
		g_autoptr(KlConfig) cfg = NULL;
		g_autoptr(KlConfig) cfg2 = NULL;
		g_autofree gchar *origin = NULL;

		g_assert_no_error(error);
		cfg = kl_test_apply(cli);
		g_assert_cmpstr(kl_config_get_string(cfg, cases[i].key), ==, cases[i].expected);
		g_assert_cmpint(kl_config_get_source(cfg, cases[i].key), ==, KL_CONFIG_SOURCE_CLI);
		origin = g_strdup_printf("command line (%s)",
					 g_strcmp0(cases[i].flag, "-v") == 0 ? "--verifier-url"
									     : cases[i].flag);
		g_assert_cmpstr(kl_config_get_origin(cfg, cases[i].key), ==, origin);
		if (cases[i].flag[1] != '-')
			continue;
		/* --flag=value works the same */
		cli2 = kl_test_parse(&error, joined, NULL);
		g_assert_no_error(error);
		cfg2 = kl_test_apply(cli2);
		g_assert_cmpstr(kl_config_get_string(cfg2, cases[i].key), ==, cases[i].expected);
	}
}

static void
kl_cli_bad_values_test(void)
{
	const gchar *cases[][2] = {
		{ "--timeout", "abc" },
		{ "--timeout", "0" },
		{ "--attestation-interval-seconds", "-5" },
		{ "--api-version", "latest" },
		{ "--log-level", "loud" },
		{ "--verifier-url", "ftp://v" },
		{ "-v", "not a url" },
		{ "--agent-identifier", "" },
		{ "--registrar-url", "ftp://r:1" },
		{ "--registrar-url", "http://r:1/path" },
		{ "--registrar-url", "r:1" },
		{ "--registrar-url", "http://:1" },
		{ "--insecure=maybe", NULL },
		{ "--avoid-tpm=2", NULL },
		{ "--message-type", "bogus" },
		{ "--method", "GET" },
		{ "--attestation-index", "first" },
		{ "--session-index", "a/b" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlCli) cli =
		    kl_test_parse(&error, cases[i][0], cases[i][1], "-j", "x.json", NULL);

		if (cli != NULL)
			g_error("%s %s was accepted", cases[i][0], cases[i][1]);
		g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
	}
}

static void
kl_cli_bad_value_message_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli = kl_test_parse(&error, "--timeout", "soon", NULL);

	g_assert_null(cli);
	g_assert_cmpstr(error->message,
			==,
			"command line (--timeout): option 'request_timeout': expected an integer, "
			"got \"soon\"");
}

static void
kl_cli_registrar_url_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli =
	    kl_test_parse(&error, "--registrar-url", "http://registrar.example:9000", NULL);
	g_autoptr(KlCli) cli2 = NULL;
	g_autoptr(KlCli) cli3 = NULL;
	g_autoptr(KlConfig) cfg = NULL;
	g_autoptr(KlConfig) cfg2 = NULL;
	g_autoptr(KlConfig) cfg3 = NULL;

	g_assert_no_error(error);
	cfg = kl_test_apply(cli);
	g_assert_cmpstr(kl_config_get_string(cfg, "registrar_ip"), ==, "registrar.example");
	g_assert_cmpint(kl_config_get_int(cfg, "registrar_port"), ==, 9000);
	g_assert_false(kl_config_get_bool(cfg, "registrar_tls_enabled"));
	g_assert_cmpint(kl_config_get_int(cfg, "registrar_tls_port"), ==, 8891);

	cli2 = kl_test_parse(&error, "--registrar-url=https://[fd00::1]:9443/", NULL);
	g_assert_no_error(error);
	cfg2 = kl_test_apply(cli2);
	g_assert_cmpstr(kl_config_get_string(cfg2, "registrar_ip"), ==, "fd00::1");
	g_assert_true(kl_config_get_bool(cfg2, "registrar_tls_enabled"));
	g_assert_cmpint(kl_config_get_int(cfg2, "registrar_tls_port"), ==, 9443);
	g_assert_cmpint(kl_config_get_int(cfg2, "registrar_port"), ==, 8890);
	g_assert_cmpstr(kl_config_get_origin(cfg2, "registrar_tls_enabled"),
			==,
			"command line (--registrar-url)");

	/* no port: the configured one stays */
	cli3 = kl_test_parse(&error, "--registrar-url", "https://10.1.1.1", NULL);
	g_assert_no_error(error);
	cfg3 = kl_test_apply(cli3);
	g_assert_cmpstr(kl_config_get_string(cfg3, "registrar_ip"), ==, "10.1.1.1");
	g_assert_cmpint(kl_config_get_int(cfg3, "registrar_tls_port"), ==, 8891);
	g_assert_true(kl_config_get_bool(cfg3, "registrar_tls_enabled"));
}

static void
kl_cli_bool_forms_test(void)
{
	const struct {
		const gchar *a;
		const gchar *b;
		gboolean expected;
	} cases[] = {
		{ "--insecure", NULL, TRUE },	     { "--insecure=true", NULL, TRUE },
		{ "--insecure=false", NULL, FALSE }, { "--insecure", "true", TRUE },
		{ "--insecure", "false", FALSE },    { "--insecure", "FALSE", FALSE },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlCli) cli = kl_test_parse(&error, cases[i].a, cases[i].b, NULL);
		g_autoptr(KlConfig) cfg = NULL;
		g_autofree gchar *avoid =
		    g_strdup_printf("--avoid-tpm%s", cases[i].a + strlen("--insecure"));
		g_autoptr(KlCli) cli2 = kl_test_parse(&error, avoid, cases[i].b, NULL);

		g_assert_no_error(error);
		g_assert_nonnull(cli);
		cfg = kl_test_apply(cli);
		g_assert_cmpint(
		    kl_config_get_bool(cfg, "tls_accept_invalid_certs"), ==, cases[i].expected);
		g_assert_cmpint(
		    kl_config_get_bool(cfg, "tls_accept_invalid_hostnames"), ==, cases[i].expected);
		g_assert_nonnull(cli2);
		g_assert_cmpint(cli2->avoid_tpm, ==, cases[i].expected);
		g_assert_cmpuint(cli2->overrides->len, ==, 0);
	}
}

/* an optional value never swallows the next flag */
static void
kl_cli_bool_then_flag_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli = kl_test_parse(&error, "--insecure", "--avoid-tpm", "--once", NULL);
	g_autoptr(KlConfig) cfg = NULL;

	g_assert_no_error(error);
	g_assert_true(cli->avoid_tpm);
	g_assert_true(cli->once);
	cfg = kl_test_apply(cli);
	g_assert_true(kl_config_get_bool(cfg, "tls_accept_invalid_certs"));
}

static void
kl_cli_insecure_http_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli =
	    kl_test_parse(&error, "-v", "http://127.0.0.1:8881", "--insecure", NULL);
	g_autoptr(KlConfig) cfg = NULL;
	g_autoptr(KlCli) cli2 = kl_test_parse(&error, "-v", "http://127.0.0.1:8881", NULL);
	g_autoptr(KlConfig) cfg2 = NULL;

	g_assert_no_error(error);
	cfg = kl_test_apply(cli);
	g_assert_true(kl_config_finalize(cfg, NULL, &error));
	g_assert_no_error(error);
	cfg2 = kl_test_apply(cli2);
	g_assert_false(kl_config_finalize(cfg2, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_true(
	    g_str_has_prefix(error->message, "command line (--verifier-url): verifier_url"));
}

static void
kl_cli_switches_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cwd = g_get_current_dir();
	g_autofree gchar *abs_conf = g_build_filename(cwd, "my.conf", NULL);
	g_autofree gchar *abs_json = g_build_filename(cwd, "body.json", NULL);
	g_autoptr(KlCli) cli = kl_test_parse(&error,
					     "--once",
					     "--check",
					     "-V",
					     "--config",
					     "my.conf",
					     "-j",
					     "body.json",
					     "--message-type",
					     "Evidence",
					     "--method",
					     "patch",
					     "--attestation-index",
					     "latest",
					     "--session-index",
					     "17",
					     NULL);
	g_autoptr(KlCli) cli2 = NULL;

	g_assert_no_error(error);
	g_assert_true(cli->once);
	g_assert_true(cli->check);
	g_assert_true(cli->version);
	g_assert_cmpstr(cli->config_file, ==, abs_conf);
	g_assert_cmpstr(cli->json_file, ==, abs_json);
	g_assert_cmpstr(cli->message_type, ==, "evidence");
	g_assert_cmpstr(cli->method, ==, "PATCH");
	g_assert_cmpstr(cli->attestation_index, ==, "latest");
	g_assert_cmpstr(cli->session_index, ==, "17");
	g_assert_cmpuint(cli->overrides->len, ==, 0);

	/* the message flags only make sense with --json-file */
	cli2 = kl_test_parse(&error, "--method", "POST", NULL);
	g_assert_null(cli2);
	g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "need --json-file"));
}

static void
kl_cli_status_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli = kl_test_parse(&error, "--status", "--json", "--alive", NULL);
	g_autoptr(KlCli) bad = NULL;

	g_assert_no_error(error);
	g_assert_true(cli->status);
	g_assert_true(cli->json);
	g_assert_true(cli->alive);
	/* --json and --alive only qualify --status */
	bad = kl_test_parse(&error, "--json", NULL);
	g_assert_null(bad);
	g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "--json needs --status"));
	g_clear_error(&error);
	bad = kl_test_parse(&error, "--alive", NULL);
	g_assert_null(bad);
	g_assert_nonnull(strstr(error->message, "--alive needs --status"));
}

static void
kl_cli_last_wins_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlCli) cli = kl_test_parse(&error, "--timeout", "1", "--timeout", "2", NULL);
	g_autoptr(KlConfig) cfg = NULL;

	g_assert_no_error(error);
	cfg = kl_test_apply(cli);
	g_assert_cmpint(kl_config_get_int(cfg, "request_timeout"), ==, 2);
}

static void
kl_cli_help_test(void)
{
	g_autofree gchar *help = kl_cli_get_help();
	const gchar *flags[] = { "--verifier-url",
				 "--registrar-url",
				 "--agent-identifier",
				 "--attestation-interval-seconds",
				 "--ca-certificate",
				 "--api-version",
				 "--timeout",
				 "--insecure",
				 "--avoid-tpm",
				 "--json-file",
				 "--message-type",
				 "--method",
				 "--attestation-index",
				 "--session-index",
				 "--config",
				 "--once",
				 "--check",
				 "--log-level",
				 "--version",
				 "-V",
				 "-v",
				 "-j" };

	for (guint i = 0; i < G_N_ELEMENTS(flags); i++) {
		if (strstr(help, flags[i]) == NULL)
			g_error("%s is not in the help text:\n%s", flags[i], help);
	}
	g_assert_nonnull(strstr(help, "KEYLIME_AGENT_<OPTION>"));
}

static void
kl_cli_help_exits_test(void)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlCli) cli = kl_test_parse(&error, "--help", NULL);

		/* not reached: --help exits */
		g_assert_null(cli);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*Usage:*--registrar-url=URL*");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cli/no-args", kl_cli_no_args_test);
	g_test_add_func("/cli/unknown-flag", kl_cli_unknown_flag_test);
	g_test_add_func("/cli/flag-map", kl_cli_flag_map_test);
	g_test_add_func("/cli/bad-values", kl_cli_bad_values_test);
	g_test_add_func("/cli/bad-value-message", kl_cli_bad_value_message_test);
	g_test_add_func("/cli/registrar-url", kl_cli_registrar_url_test);
	g_test_add_func("/cli/bool-forms", kl_cli_bool_forms_test);
	g_test_add_func("/cli/insecure-http", kl_cli_insecure_http_test);
	g_test_add_func("/cli/bool-then-flag", kl_cli_bool_then_flag_test);
	g_test_add_func("/cli/switches", kl_cli_switches_test);
	g_test_add_func("/cli/status", kl_cli_status_test);
	g_test_add_func("/cli/last-wins", kl_cli_last_wins_test);
	g_test_add_func("/cli/help", kl_cli_help_test);
	g_test_add_func("/cli/help-exits", kl_cli_help_exits_test);
	return g_test_run();
}
