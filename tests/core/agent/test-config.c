/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-cli.h"
#include "kl-config.h"

typedef struct {
	gchar *root;
	gchar *usr;   /* stands for /usr/etc/keylime */
	gchar *etc;   /* stands for /etc/keylime */
	gchar **envp; /* a fake environment */
	KlConfig *cfg;
} KlConfigFixture;

static gchar *
kl_test_write(KlConfigFixture *fx, const gchar *dir, const gchar *rel, const gchar *contents)
{
	gchar *path = g_build_filename(dir, rel, NULL);
	g_autofree gchar *parent = g_path_get_dirname(path);

	g_assert_cmpint(g_mkdir_with_parents(parent, 0700), ==, 0);
	g_assert_true(g_file_set_contents(path, contents, -1, NULL));
	return path;
}

static void
kl_test_put(KlConfigFixture *fx, const gchar *dir, const gchar *rel, const gchar *contents)
{
	g_free(kl_test_write(fx, dir, rel, contents));
}

static gboolean
kl_test_load_data(KlConfig *cfg, const gchar *text, const gchar *name, GError **error)
{
	return kl_config_load_data(cfg, text, strlen(text), name, error);
}

static void
kl_test_rm_rf(const gchar *path)
{
	g_autoptr(GDir) dir = NULL;
	const gchar *name;

	if (!g_file_test(path, G_FILE_TEST_IS_DIR) || g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
		g_remove(path);
		return;
	}
	dir = g_dir_open(path, 0, NULL);
	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree gchar *child = g_build_filename(path, name, NULL);
		kl_test_rm_rf(child);
	}
	g_rmdir(path);
}

static void
kl_config_fixture_setup(KlConfigFixture *fx, gconstpointer data)
{
	fx->root = g_dir_make_tmp("kl-config-XXXXXX", NULL);
	g_assert_nonnull(fx->root);
	fx->usr = g_build_filename(fx->root, "usr-etc-keylime", NULL);
	fx->etc = g_build_filename(fx->root, "etc-keylime", NULL);
	g_mkdir(fx->usr, 0700);
	g_mkdir(fx->etc, 0700);
	fx->envp = g_new0(gchar *, 1);
	fx->cfg = kl_config_new();
}

static void
kl_config_fixture_teardown(KlConfigFixture *fx, gconstpointer data)
{
	kl_config_free(fx->cfg);
	kl_test_rm_rf(fx->root);
	g_free(fx->root);
	g_free(fx->usr);
	g_free(fx->etc);
	g_strfreev(fx->envp);
}

static void
kl_test_setenv(KlConfigFixture *fx, const gchar *var, const gchar *value)
{
	fx->envp = g_environ_setenv(fx->envp, var, value, TRUE);
}

static void
kl_test_load_ok(KlConfigFixture *fx)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_no_error(error);
}

/* the origin of @key is "@path:@line" */
static void
kl_test_assert_origin(KlConfigFixture *fx, const gchar *key, const gchar *path, guint line)
{
	g_autofree gchar *want = g_strdup_printf("%s:%u", path, line);
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, key), ==, want);
	g_assert_cmpint(kl_config_get_source(fx->cfg, key), ==, KL_CONFIG_SOURCE_FILE);
}

static void
kl_config_defaults_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) reg_versions = NULL;
	g_auto(GStrv) disabled = NULL;

	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "uuid"), ==, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "verifier_url"), ==, "https://localhost:8881");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "127.0.0.1");
	g_assert_cmpint(kl_config_get_int(fx->cfg, "registrar_port"), ==, 8890);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "registrar_tls_port"), ==, 8891);
	g_assert_false(kl_config_get_bool(fx->cfg, "registrar_tls_enabled"));
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "contact_ip"), ==, "127.0.0.1");
	g_assert_cmpint(kl_config_get_int(fx->cfg, "contact_port"), ==, 9002);
	g_assert_false(kl_config_get_bool(fx->cfg, "tls_accept_invalid_certs"));
	g_assert_false(kl_config_get_bool(fx->cfg, "tls_accept_invalid_hostnames"));
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "tpm_encryption_alg"), ==, "rsa");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "tpm_hash_alg"), ==, "sha256");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "tpm_signing_alg"), ==, "rsassa");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "ek_handle"), ==, "generate");
	g_assert_false(kl_config_get_bool(fx->cfg, "enable_iak_idevid"));
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "iak_idevid_template"), ==, "detect");
	g_assert_cmpint(kl_config_get_int(fx->cfg, "attestation_interval_seconds"), ==, 60);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "exponential_backoff_initial_delay"), ==, 10000);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "exponential_backoff_max_retries"), ==, 5);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "exponential_backoff_max_delay"), ==, 300000);
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "certification_keys_server_identifier"), ==, "ak");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uefi_logs_evidence_version"), ==, "2.1");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "verifier_api_version"), ==, "3.0");
	g_assert_cmpint(kl_config_get_int(fx->cfg, "request_timeout"), ==, 5000);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "log_level"), ==, "info");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "plugin_dir"), ==, KL_PLUGINDIR);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "tcti"), ==, "");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "run_as"), ==, geteuid() == 0 ? "keylime:tss" : "");
	reg_versions = kl_config_get_strv(fx->cfg, "registrar_api_versions");
	g_assert_cmpstrv(reg_versions, ((const gchar *const[]){ "default", NULL }));
	disabled = kl_config_get_strv(fx->cfg, "disabled_plugins");
	g_assert_cmpuint(g_strv_length(disabled), ==, 0);
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, "uuid"), ==, "default");
	g_assert_cmpint(kl_config_get_source(fx->cfg, "uuid"), ==, KL_CONFIG_SOURCE_DEFAULT);

	/* no files at all is fine; finalize resolves the "default" paths */
	kl_test_load_ok(fx);
	g_assert_true(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "keylime_dir"), ==, "/var/lib/keylime");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "verifier_tls_ca_cert"),
			==,
			"/var/lib/keylime/cv_ca/cacert.crt");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_tls_ca_cert"),
			==,
			"/var/lib/keylime/cv_ca/cacert.crt");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "agent_data_path"),
			==,
			"/var/lib/keylime/agent_data.json");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "iak_cert"), ==, "/var/lib/keylime/iak-cert.crt");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "idevid_cert"), ==, "/var/lib/keylime/idevid-cert.crt");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "ima_ml_path"),
			==,
			"/sys/kernel/security/ima/ascii_runtime_measurements");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "measuredboot_ml_path"),
			==,
			"/sys/kernel/security/tpm0/binary_bios_measurements");
}

static void
kl_config_known_keys_test(void)
{
	const gchar *const *keys = kl_config_get_known_keys();
	g_autoptr(KlConfig) cfg = kl_config_new();
	guint n = 0;

	for (; keys[n] != NULL; n++) {
		if (n > 0)
			g_assert_cmpint(strcmp(keys[n - 1], keys[n]), <, 0);
		/* every option has a value and an origin */
		g_assert_nonnull(kl_config_get_string(cfg, keys[n]));
		g_assert_cmpstr(kl_config_get_origin(cfg, keys[n]), ==, "default");
	}
	g_assert_cmpuint(n, ==, 52);
	g_assert_true(g_strv_contains(keys, "tcti"));
	g_assert_true(g_strv_contains(keys, "registrar_api_versions"));
	/* pull-model options are accepted but are not options of this agent */
	g_assert_false(g_strv_contains(keys, "server_key"));
	g_assert_true(kl_config_is_secret("tpm_ownerpassword"));
	g_assert_true(kl_config_is_secret("iak_password"));
	g_assert_false(kl_config_is_secret("uuid"));
}

/* layer 1: /usr/etc/keylime/agent.conf beats the defaults */
static void
kl_config_layer_usr_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autofree gchar *path =
	    kl_test_write(fx, fx->usr, "agent.conf", "[agent]\n\nregistrar_ip = \"10.0.0.1\"\n");

	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.1");
	kl_test_assert_origin(fx, "registrar_ip", path, 3);
}

/* layer 2: /usr/etc/keylime/agent.conf.d beats /usr/etc/keylime/agent.conf */
static void
kl_config_layer_usr_dropin_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autofree gchar *a =
	    kl_test_write(fx,
			  fx->usr,
			  "agent.conf",
			  "[agent]\nregistrar_ip = \"10.0.0.1\"\nregistrar_port = 1\n");
	g_autofree gchar *b = kl_test_write(
	    fx, fx->usr, "agent.conf.d/10-x.conf", "[agent]\nregistrar_ip = \"10.0.0.2\"\n");

	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.2");
	kl_test_assert_origin(fx, "registrar_ip", b, 2);
	/* what the drop-in does not set stays from the main file */
	g_assert_cmpint(kl_config_get_int(fx->cfg, "registrar_port"), ==, 1);
	kl_test_assert_origin(fx, "registrar_port", a, 3);
}

/* layer 3: /etc/keylime/agent.conf beats /usr/etc/keylime/agent.conf.d */
static void
kl_config_layer_etc_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(
	    fx, fx->usr, "agent.conf.d/99-x.conf", "[agent]\nregistrar_ip = \"10.0.0.2\"\n");
	g_autofree gchar *b =
	    kl_test_write(fx, fx->etc, "agent.conf", "[agent]\nregistrar_ip = \"10.0.0.3\"\n");

	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.3");
	kl_test_assert_origin(fx, "registrar_ip", b, 2);
}

/* layer 4: /etc/keylime/agent.conf.d beats /etc/keylime/agent.conf */
static void
kl_config_layer_etc_dropin_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(fx, fx->etc, "agent.conf", "[agent]\nregistrar_ip = \"10.0.0.3\"\n");
	g_autofree gchar *b = kl_test_write(
	    fx, fx->etc, "agent.conf.d/00-x.conf", "[agent]\n# c\nregistrar_ip = \"10.0.0.4\"\n");

	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.4");
	kl_test_assert_origin(fx, "registrar_ip", b, 3);
}

/* drop-ins: lexicographic order, only regular *.conf files */
static void
kl_config_dropin_order_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(
	    fx, fx->etc, "agent.conf.d/10-a.conf", "[agent]\nuuid = \"a\"\ncontact_port = 10\n");
	g_autofree gchar *c =
	    kl_test_write(fx, fx->etc, "agent.conf.d/9-c.conf", "[agent]\nuuid = \"c\"\n");
	g_autofree gchar *b = kl_test_write(
	    fx, fx->etc, "agent.conf.d/20-b.conf", "[agent]\nuuid = \"b\"\ncontact_port = 20\n");
	kl_test_put(fx, fx->etc, "agent.conf.d/99-d.conf.rpmsave", "[agent]\nuuid = \"d\"\n");
	kl_test_put(fx, fx->etc, "agent.conf.d/.99-e.conf", "[agent]\nuuid = \"e\"\n");
	kl_test_put(fx, fx->etc, "agent.conf.d/99-dir.conf/x", "garbage");

	kl_test_load_ok(fx);
	/* "10-a" < "20-b" < "9-c": 9-c is read last */
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uuid"), ==, "c");
	kl_test_assert_origin(fx, "uuid", c, 2);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "contact_port"), ==, 20);
	kl_test_assert_origin(fx, "contact_port", b, 3);
}

/* KEYLIME_AGENT_CONFIG replaces all four file layers */
static void
kl_config_single_file_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(fx, fx->usr, "agent.conf", "[agent]\ncontact_port = 1\n");
	kl_test_put(fx, fx->etc, "agent.conf", "[agent]\nregistrar_port = 2\n");
	kl_test_put(fx, fx->etc, "agent.conf.d/x.conf", "[agent]\nuuid = \"x\"\n");
	g_autofree gchar *single =
	    kl_test_write(fx, fx->root, "single.conf", "[agent]\nuuid = \"single\"\n");

	kl_test_setenv(fx, "KEYLIME_AGENT_CONFIG", single);
	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uuid"), ==, "single");
	kl_test_assert_origin(fx, "uuid", single, 2);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "contact_port"), ==, 9002);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "registrar_port"), ==, 8890);
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, "registrar_port"), ==, "default");
}

static void
kl_config_single_file_missing_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *missing = g_build_filename(fx->root, "nope.conf", NULL);
	kl_test_put(fx, fx->etc, "agent.conf", "[agent]\n");

	kl_test_setenv(fx, "KEYLIME_AGENT_CONFIG", missing);
	g_assert_false(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_assert_nonnull(strstr(error->message, "KEYLIME_AGENT_CONFIG"));
	g_assert_nonnull(strstr(error->message, missing));
}

/* layer 5: KEYLIME_AGENT_<OPTION> beats every file */
static void
kl_config_layer_env_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(fx,
		    fx->etc,
		    "agent.conf.d/x.conf",
		    "[agent]\nregistrar_ip = \"10.0.0.4\"\nregistrar_tls_enabled = false\n");
	g_auto(GStrv) versions = NULL;

	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_IP", "10.0.0.5");
	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_TLS_ENABLED", "true");
	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_API_VERSIONS", "2.1, 2.2");
	/* pull-model options are accepted silently */
	kl_test_setenv(fx, "KEYLIME_AGENT_SERVER_KEY", "x");
	kl_test_setenv(fx, "UNRELATED", "1");
	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.5");
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, "registrar_ip"),
			==,
			"environment (KEYLIME_AGENT_REGISTRAR_IP)");
	g_assert_cmpint(kl_config_get_source(fx->cfg, "registrar_ip"), ==, KL_CONFIG_SOURCE_ENV);
	g_assert_true(kl_config_get_bool(fx->cfg, "registrar_tls_enabled"));
	versions = kl_config_get_strv(fx->cfg, "registrar_api_versions");
	g_assert_cmpstrv(versions, ((const gchar *const[]){ "2.1", "2.2", NULL }));
}

static void
kl_config_env_errors_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_PROT", "1");
	g_test_expect_message(
	    "kl-core",
	    G_LOG_LEVEL_WARNING,
	    "environment variable KEYLIME_AGENT_REGISTRAR_PROT does not name a known "
	    "option and is ignored; did you mean KEYLIME_AGENT_REGISTRAR_PORT?");
	kl_test_load_ok(fx);
	g_test_assert_expected_messages();

	fx->envp = g_environ_unsetenv(fx->envp, "KEYLIME_AGENT_REGISTRAR_PROT");
	kl_test_setenv(fx, "KEYLIME_AGENT_CONTACT_PORT", "99999");
	g_assert_false(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_cmpstr(
	    error->message,
	    ==,
	    "environment (KEYLIME_AGENT_CONTACT_PORT): option 'contact_port': 99999 is out of "
	    "range; expected an integer from 1 to 65535");
}

/* layer 6: the command line beats the environment */
static void
kl_config_layer_cli_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(KlCli) cli = kl_cli_new();
	g_autoptr(GError) error = NULL;
	const gchar *args[] = {
		"agent", "--registrar-url", "http://10.0.0.6:7000", "--timeout", "250", NULL
	};
	g_auto(GStrv) argv = g_strdupv((gchar **)args);
	int argc = g_strv_length(argv);
	kl_test_put(fx, fx->etc, "agent.conf", "[agent]\nrequest_timeout = 100\n");

	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_IP", "10.0.0.5");
	kl_test_setenv(fx, "KEYLIME_AGENT_REGISTRAR_PORT", "6000");
	g_assert_true(kl_cli_parse(cli, &argc, &argv, &error));
	g_assert_no_error(error);
	kl_test_load_ok(fx);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "request_timeout"), ==, 100);
	g_assert_true(kl_cli_apply(cli, fx->cfg, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "registrar_ip"), ==, "10.0.0.6");
	g_assert_cmpint(kl_config_get_int(fx->cfg, "registrar_port"), ==, 7000);
	g_assert_cmpint(kl_config_get_int(fx->cfg, "request_timeout"), ==, 250);
	g_assert_cmpstr(
	    kl_config_get_origin(fx->cfg, "registrar_port"), ==, "command line (--registrar-url)");
	g_assert_cmpstr(
	    kl_config_get_origin(fx->cfg, "request_timeout"), ==, "command line (--timeout)");
	g_assert_cmpint(kl_config_get_source(fx->cfg, "request_timeout"), ==, KL_CONFIG_SOURCE_CLI);
}

/* --config: one file, then the environment still applies */
static void
kl_config_load_file_env_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_test_write(
	    fx, fx->root, "x.conf", "[agent]\nuuid = \"file\"\ncontact_ip = \"1.2.3.4\"\n");

	kl_test_setenv(fx, "KEYLIME_AGENT_UUID", "env");
	g_assert_true(kl_config_load_file(fx->cfg, a, &error));
	g_assert_true(kl_config_load_env(fx->cfg, fx->envp, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uuid"), ==, "env");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "contact_ip"), ==, "1.2.3.4");
}

static void
kl_config_paths_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_test_write(fx,
					    fx->etc,
					    "agent.conf",
					    "[agent]\n"
					    "keylime_dir = \"/srv/kl/\"\n"
					    "verifier_tls_ca_cert = \"ca/verifier.crt\"\n"
					    "registrar_tls_ca_cert = \"/etc/pki/reg.crt\"\n"
					    "agent_data_path = \"\"\n"
					    "iak_cert = \"default\"\n"
					    "idevid_cert = \"certs/idevid.pem\"\n"
					    "ima_ml_path = \"run/ima.log\"\n"
					    "measuredboot_ml_path = \"/tmp/mb.bin\"\n"
					    "plugin_dir = \"lib/plugins\"\n");

	kl_test_load_ok(fx);
	g_assert_true(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "keylime_dir"), ==, "/srv/kl");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "verifier_tls_ca_cert"), ==, "/srv/kl/ca/verifier.crt");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "registrar_tls_ca_cert"), ==, "/etc/pki/reg.crt");
	/* empty disables persistence and stays empty */
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "agent_data_path"), ==, "");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "iak_cert"), ==, "/srv/kl/iak-cert.crt");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "idevid_cert"), ==, "/srv/kl/certs/idevid.pem");
	/* the kernel logs are relative to / */
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "ima_ml_path"), ==, "/run/ima.log");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "measuredboot_ml_path"), ==, "/tmp/mb.bin");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "plugin_dir"), ==, "/srv/kl/lib/plugins");
	/* origin stays the line that set the value */
	kl_test_assert_origin(fx, "verifier_tls_ca_cert", a, 3);
	/* kl_config_lookup() sees the resolved value too */
	g_assert_cmpstr(kl_config_lookup(fx->cfg, NULL, "ima_ml_path"), ==, "/run/ima.log");
}

static void
kl_config_keylime_dir_env_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	kl_test_put(fx, fx->etc, "agent.conf", "[agent]\nkeylime_dir = \"/srv/kl\"\n");

	kl_test_setenv(fx, "KEYLIME_DIR", "/opt/keylime");
	kl_test_load_ok(fx);
	g_assert_true(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "keylime_dir"), ==, "/opt/keylime");
	g_assert_cmpstr(
	    kl_config_get_origin(fx->cfg, "keylime_dir"), ==, "environment (KEYLIME_DIR)");
	g_assert_cmpstr(
	    kl_config_get_string(fx->cfg, "agent_data_path"), ==, "/opt/keylime/agent_data.json");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "verifier_tls_ca_cert"),
			==,
			"/opt/keylime/cv_ca/cacert.crt");
	/* keylime_dir need not exist yet */
	g_assert_false(g_file_test("/opt/keylime/agent_data.json", G_FILE_TEST_EXISTS));
}

static void
kl_config_unknown_key_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autofree gchar *a = kl_test_write(fx,
					    fx->etc,
					    "agent.conf",
					    "[agent]\n"
					    "uuid = \"x\"\n"
					    "registrar_prot = 1\n"
					    "server_key = \"default\"\n"
					    "revocation_actions = []\n"
					    "enable_agent_mtls = true\n"
					    "[ima_log]\n"
					    "anything = 1\n");
	g_autofree gchar *pattern =
	    g_strdup_printf("%s:3: unknown option 'registrar_prot' in [agent] is ignored; did you "
			    "mean 'registrar_port'?",
			    a);

	/* exactly one warning: pull-model keys and plugin tables are quiet */
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, pattern);
	kl_test_load_ok(fx);
	g_test_assert_expected_messages();
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uuid"), ==, "x");
}

typedef struct {
	const gchar *line;
	const gchar *message; /* after "FILE:2: " */
} KlBadValueCase;

static void
kl_config_bad_value_test(KlConfigFixture *fx, gconstpointer data)
{
	const KlBadValueCase cases[] = {
		{ "registrar_port = \"abc\"",
		  "option 'registrar_port': expected an integer, got \"abc\"" },
		{ "registrar_port = 0",
		  "option 'registrar_port': 0 is out of range; expected an integer from 1 to "
		  "65535" },
		{ "registrar_port = 1.5",
		  "option 'registrar_port': expected an integer, got float" },
		{ "enable_iak_idevid = 1",
		  "option 'enable_iak_idevid': expected a boolean (true or false), got integer" },
		{ "enable_iak_idevid = \"maybe\"",
		  "option 'enable_iak_idevid': expected a boolean, true or false without quotes, "
		  "got the string \"maybe\"" },
		/* "yes" once turned certificate checks off: strings are never booleans */
		{ "tls_accept_invalid_certs = \"yes\"",
		  "option 'tls_accept_invalid_certs': expected a boolean, true or false without "
		  "quotes, got the string \"yes\"" },
		{ "registrar_tls_enabled = 1",
		  "option 'registrar_tls_enabled': expected a boolean (true or false), got "
		  "integer" },
		{ "uuid = true", "option 'uuid': expected a string, got boolean" },
		{ "uuid = [\"a\"]", "option 'uuid': expected a string, got array" },
		{ "ima_ml_path = 3 == 3", NULL },
		{ "disabled_plugins = [[\"a\"]]",
		  "option 'disabled_plugins': expected a list of strings, item 1 is array" },
		{ "tpm_hash_alg = \"md5\"",
		  "option 'tpm_hash_alg': unsupported value \"md5\"; expected one of: sha1, "
		  "sha256, sha384, sha512" },
		{ "tpm_encryption_alg = \"rsa1024\"",
		  "option 'tpm_encryption_alg': unsupported value \"rsa1024\"; expected one of: "
		  "rsa, "
		  "rsa2048, rsa3072, rsa4096, ecc, ecc256, ecc384, ecc521" },
		{ "verifier_url = \"ftp://x\"",
		  "option 'verifier_url': 'ftp://x' has the scheme 'ftp'; expected "
		  "https://HOST[:PORT]" },
		{ "log_level = \"loud\"",
		  "option 'log_level': unknown log level 'loud'; expected error, warning, info or "
		  "debug" },
		{ "registrar_api_versions = \"2.1, two\"",
		  "option 'registrar_api_versions': 'two' is not an API version; expected "
		  "\"default\", \"latest\" or versions such as \"2.1, 2.2\"" },
		{ "verifier_api_version = \"three\"",
		  "option 'verifier_api_version': 'three' is not an API version; expected e.g. 3.0 "
		  "(also accepted: v3.0, 3)" },
		{ "attestation_interval_seconds = 0",
		  "option 'attestation_interval_seconds': 0 is out of range; expected an integer "
		  "from 1 to 604800" },
		{ "keylime_dir = \"\"", "option 'keylime_dir': must not be empty" },
		{ "run_as = \"keylime:\"",
		  "option 'run_as': 'keylime:' is not USER or USER:GROUP (e.g. keylime:tss)" },
		{ "ek_handle = \"persistent\"",
		  "option 'ek_handle': 'persistent' is not a persistent TPM handle; expected "
		  "\"generate\" or a handle from 0x81000000 to 0x81ffffff such as 0x81010001" },
		{ "ek_handle = \"0x01c00002\"",
		  "option 'ek_handle': '0x01c00002' is not a persistent TPM handle; expected "
		  "\"generate\" or a handle from 0x81000000 to 0x81ffffff such as 0x81010001" },
		{ "iak_handle = \"0x1ffffffff\"",
		  "option 'iak_handle': '0x1ffffffff' is not a TPM handle; expected a hexadecimal "
		  "handle such as 0x81010001, or \"\"" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlConfig) cfg = kl_config_new();
		g_autofree gchar *text = g_strdup_printf("[agent]\n%s\n", cases[i].line);
		g_autofree gchar *path = kl_test_write(fx, fx->root, "bad.conf", text);
		g_autofree gchar *want = NULL;

		g_assert_false(kl_config_load_file(cfg, path, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		if (cases[i].message == NULL) {
			/* a syntax error: FILE:LINE:COLUMN */
			want = g_strdup_printf("%s:2:17: ", path);
			g_assert_true(g_str_has_prefix(error->message, want));
			continue;
		}
		want = g_strdup_printf("%s:2: %s", path, cases[i].message);
		g_assert_cmpstr(error->message, ==, want);
	}
}

static void
kl_config_no_agent_table_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_test_write(fx, fx->etc, "agent.conf", "[agnet]\nuuid = \"x\"\n");

	g_assert_false(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_true(g_str_has_prefix(error->message, a));
	g_assert_nonnull(strstr(error->message, "no [agent] table"));
}

static void
kl_config_syntax_error_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_test_write(
	    fx, fx->etc, "agent.conf.d/50-x.conf", "[agent]\nuuid = \"x\"\nuuid = \"y\"\n");
	g_autofree gchar *want =
	    g_strdup_printf("%s:3:1: duplicate key 'uuid' in [agent] (first set on line 2)", a);

	g_assert_false(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_cmpstr(error->message, ==, want);
}

static void
kl_config_lists_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) a = NULL;
	g_auto(GStrv) b = NULL;
	g_auto(GStrv) c = NULL;

	g_assert_true(kl_test_load_data(fx->cfg,
					"[agent]\n"
					"registrar_api_versions = [\"2.1\", '2.3']\n"
					"disabled_plugins = \" iak_idevid ,, uefi_log \"\n"
					"api_versions = \"['3.0', '2.2']\"\n",
					"mem.conf",
					&error));
	g_assert_no_error(error);
	a = kl_config_get_strv(fx->cfg, "registrar_api_versions");
	g_assert_cmpstrv(a, ((const gchar *const[]){ "2.1", "2.3", NULL }));
	b = kl_config_get_strv(fx->cfg, "disabled_plugins");
	g_assert_cmpstrv(b, ((const gchar *const[]){ "iak_idevid", "uefi_log", NULL }));
	/* Keylime's templates write lists in Python syntax */
	c = kl_config_get_strv(fx->cfg, "api_versions");
	g_assert_cmpstrv(c, ((const gchar *const[]){ "3.0", "2.2", NULL }));
	g_assert_cmpstr(
	    kl_config_lookup(fx->cfg, "agent", "disabled_plugins"), ==, "iak_idevid,uefi_log");
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, "disabled_plugins"), ==, "mem.conf:3");
}

static void
kl_config_tables_test(KlConfigFixture *fx, gconstpointer data)
{
	kl_test_put(
	    fx,
	    fx->etc,
	    "agent.conf",
	    "[agent]\n[ima_log]\nmax_entries = 10\nmode = \"x\"\n[uefi_log.sub]\nk = [1, 2]\n");
	kl_test_put(fx, fx->etc, "agent.conf.d/x.conf", "[agent]\n[ima_log]\nmode = \"y\"\n");

	kl_test_load_ok(fx);
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "ima_log", "max_entries"), ==, "10");
	/* later files override per key */
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "ima_log", "mode"), ==, "y");
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "uefi_log.sub", "k"), ==, "1,2");
	g_assert_null(kl_config_lookup(fx->cfg, "ima_log", "nothing"));
	g_assert_null(kl_config_lookup(fx->cfg, "nothing", "mode"));
	/* [agent] options show through in plugin tables unless set there */
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "ima_log", "ima_ml_path"), ==, "default");
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "nothing", "contact_port"), ==, "9002");
	/* [agent] options through lookup, table NULL or "agent" */
	g_assert_cmpstr(kl_config_lookup(fx->cfg, NULL, "registrar_port"), ==, "8890");
	g_assert_cmpstr(kl_config_lookup(fx->cfg, "agent", "registrar_tls_enabled"), ==, "false");
}

static void
kl_config_normalize_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	const struct {
		const gchar *key;
		const gchar *in;
		const gchar *out;
	} cases[] = {
		{ "verifier_api_version", "v3.0", "3.0" },
		{ "verifier_api_version", "3", "3.0" },
		{ "verifier_api_version", "3.1", "3.1" },
		{ "log_level", "WARN", "warning" },
		{ "log_level", "Debug", "debug" },
		{ "tpm_encryption_alg", "ECC384", "ecc384" },
		{ "verifier_url", "https://v.example:8881/", "https://v.example:8881" },
		{ "verifier_url", "https://[::1]:8881", "https://[::1]:8881" },
		{ "tls_accept_invalid_certs", "TRUE", "true" },
		{ "tls_accept_invalid_certs", "False", "false" },
		{ "request_timeout", " 42 ", "42" },
		{ "version", "2.5", "2.5" },
		{ "ek_handle", "0x81010001", "0x81010001" },
		{ "ek_handle", "81000000", "81000000" },
		{ "ek_handle", "", "" },
		{ "idevid_handle", "0x81020000", "0x81020000" },
		{ "run_as", "keylime", "keylime" },
		{ "run_as", "keylime:tss", "keylime:tss" },
		{ "run_as", "", "" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_assert_true(kl_config_set(
		    fx->cfg, cases[i].key, cases[i].in, KL_CONFIG_SOURCE_CLI, NULL, &error));
		g_assert_no_error(error);
		g_assert_cmpstr(kl_config_get_string(fx->cfg, cases[i].key), ==, cases[i].out);
		g_assert_cmpstr(kl_config_get_origin(fx->cfg, cases[i].key), ==, "command line");
	}
	/* kl_config_set on an unknown key is an error, on a pull-model key a no-op */
	g_assert_false(
	    kl_config_set(fx->cfg, "nonsense", "1", KL_CONFIG_SOURCE_CLI, "here", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_cmpstr(error->message, ==, "here: unknown option 'nonsense'");
	g_clear_error(&error);
	g_assert_true(
	    kl_config_set(fx->cfg, "secure_size", "1m", KL_CONFIG_SOURCE_ENV, NULL, &error));
	g_assert_no_error(error);
	/* a number written without quotes is fine for a string option */
	g_assert_true(
	    kl_test_load_data(fx->cfg, "[agent]\nversion = 2.5\nuuid = 42\n", "m", &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "version"), ==, "2.5");
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "uuid"), ==, "42");
}

static void
kl_config_http_verifier_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlConfig) cfg2 = kl_config_new();

	g_assert_true(kl_test_load_data(
	    fx->cfg, "[agent]\nverifier_url = \"http://v:8881\"\n", "f.conf", &error));
	g_assert_no_error(error);
	g_assert_false(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_true(g_str_has_prefix(error->message,
				       "f.conf:2: verifier_url http://v:8881 uses plain http"));
	g_clear_error(&error);

	/* allowed when certificate checks are off anyway (--insecure) */
	g_assert_true(kl_config_set(
	    cfg2, "verifier_url", "http://v:8881", KL_CONFIG_SOURCE_CLI, NULL, &error));
	g_assert_true(kl_config_set(
	    cfg2, "tls_accept_invalid_certs", "true", KL_CONFIG_SOURCE_CLI, NULL, &error));
	g_assert_true(kl_config_finalize(cfg2, fx->envp, &error));
	g_assert_no_error(error);
}

static void
kl_config_backoff_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_config_set(
	    fx->cfg, "exponential_backoff_max_delay", "5", KL_CONFIG_SOURCE_ENV, "env X", &error));
	g_assert_false(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(
	    strstr(error->message, "exponential_backoff_max_delay (5, env X) is smaller"));
}

static void
kl_config_tcti_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlConfig) cfg2 = kl_config_new();

	kl_test_setenv(fx, "TCTI", "swtpm:port=2321");
	g_assert_true(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_cmpstr(kl_config_get_string(fx->cfg, "tcti"), ==, "swtpm:port=2321");
	g_assert_cmpstr(kl_config_get_origin(fx->cfg, "tcti"), ==, "environment (TCTI)");

	/* the tcti option beats $TCTI */
	g_assert_true(kl_config_set(
	    cfg2, "tcti", "device:/dev/tpmrm0", KL_CONFIG_SOURCE_FILE, "f:1", &error));
	g_assert_true(kl_config_finalize(cfg2, fx->envp, &error));
	g_assert_cmpstr(kl_config_get_string(cfg2, "tcti"), ==, "device:/dev/tpmrm0");
}

static void
kl_config_unreadable_dropin_dir_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_build_filename(fx->etc, "agent.conf.d", NULL);
	g_autofree gchar *file = g_build_filename(fx->usr, "agent.conf.d", NULL);

	/* a file where the drop-in directory should be is ignored */
	g_assert_true(g_file_set_contents(file, "x", -1, NULL));
	kl_test_load_ok(fx);
	g_clear_pointer(&fx->cfg, kl_config_free);
	fx->cfg = kl_config_new();

	/* a drop-in directory that cannot be read is an error naming it; root reads any
	 * directory, so a symbolic link loop stands in for the unreadable one there */
	if (geteuid() == 0)
		g_assert_cmpint(symlink("agent.conf.d", dir), ==, 0);
	else
		g_assert_cmpint(g_mkdir(dir, 0000), ==, 0);
	g_assert_false(kl_config_load(fx->cfg, fx->usr, fx->etc, fx->envp, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_IO);
	g_assert_nonnull(strstr(error->message, dir));
	if (geteuid() == 0)
		g_unlink(dir);
	else
		g_chmod(dir, 0700);
}

/* data/agent.conf documents every option with its real default */
static void
kl_config_example_file_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *path =
	    g_test_build_filename(G_TEST_DIST, "..", "data", "agent.conf", NULL);
	g_autofree gchar *text = NULL;
	g_autoptr(KlConfig) defaults = kl_config_new();
	g_autoptr(KlConfig) cfg = kl_config_new();
	const gchar *const *keys = kl_config_get_known_keys();

	g_assert_true(g_file_get_contents(path, &text, NULL, &error));
	g_assert_no_error(error);
	g_assert_true(kl_config_load_file(cfg, path, &error));
	g_assert_no_error(error);
	for (guint i = 0; keys[i] != NULL; i++) {
		g_autofree gchar *set = g_strdup_printf("\n%s = ", keys[i]);
		g_autofree gchar *commented = g_strdup_printf("\n#%s = ", keys[i]);

		if (strstr(text, set) == NULL && strstr(text, commented) == NULL)
			g_error("option %s is not documented in %s", keys[i], path);
		g_assert_cmpstr(kl_config_get_string(cfg, keys[i]),
				==,
				kl_config_get_string(defaults, keys[i]));
	}
}

/* an agent.conf written for the Keylime agents loads without a warning */
static void
kl_config_keylime_template_test(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *path =
	    g_test_build_filename(G_TEST_DIST, "data", "config", "keylime-agent.conf", NULL);
	g_autoptr(KlConfig) cfg = kl_config_new();

	g_assert_true(kl_config_load_file(cfg, path, &error));
	g_assert_no_error(error);
	g_assert_true(kl_config_finalize(cfg, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(kl_config_get_string(cfg, "run_as"), ==, "keylime:tss");
	g_assert_cmpstr(
	    kl_config_get_string(cfg, "agent_data_path"), ==, "/var/lib/keylime/agent_data.json");
}

/* @text has a line "@key<blanks>= @rest" */
static void
kl_test_assert_line(const gchar *text, const gchar *want)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	g_autofree gchar *key = g_strndup(want, strchr(want, ' ') - want);

	for (guint i = 0; lines[i] != NULL; i++) {
		g_autofree gchar *squeezed = NULL;
		g_autoptr(GRegex) re = g_regex_new("^(\\S+) +=", 0, 0, NULL);

		if (!g_str_has_prefix(lines[i], key) || lines[i][strlen(key)] != ' ')
			continue;
		squeezed = g_regex_replace(re, lines[i], -1, 0, "\\1 =", 0, NULL);
		g_assert_cmpstr(squeezed, ==, want);
		return;
	}
	g_error("no line for %s in:\n%s", key, text);
}

static void
kl_config_describe_test(KlConfigFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *text = NULL;

	g_assert_true(kl_config_set(
	    fx->cfg, "tpm_ownerpassword", "s3cret", KL_CONFIG_SOURCE_ENV, "env", &error));
	g_assert_true(
	    kl_config_set(fx->cfg, "disabled_plugins", "a,b", KL_CONFIG_SOURCE_CLI, NULL, &error));
	text = kl_config_describe(fx->cfg);
	/* a password never appears */
	g_assert_null(strstr(text, "s3cret"));
	kl_test_assert_line(text, "tpm_ownerpassword = (set)  # env");
	kl_test_assert_line(text, "iak_password = (empty)  # default");
	kl_test_assert_line(text, "registrar_port = 8890  # default");
	kl_test_assert_line(text, "disabled_plugins = [\"a\", \"b\"]  # command line");
	kl_test_assert_line(text, "uuid = \"d432fbb3-d2f1-4a97-9ef7-75bd81c00000\"  # default");
	kl_test_assert_line(text, "registrar_api_versions = [\"default\"]  # default");
	g_assert_cmpuint(g_strv_length((gchar **)kl_config_get_known_keys()), ==, 52);
}

/*
 * What a plugin sees (kl_config_lookup_plugin): its declared keys, from its
 * table, else [agent], else its default; the non-secret [agent] options;
 * never another secret. Typos in its table and in table names are warned
 * about with a "did you mean".
 */
static void
kl_config_plugin_view_test(KlConfigFixture *fx, gconstpointer data)
{
	static const KlPluginConfigKey keys[] = {
		{ "ima_ml_path", NULL },
		{ "tpm_ownerpassword", NULL },
		{ "cache_entries", "4096" },
		{ NULL },
	};
	g_autoptr(GError) error = NULL;

	kl_test_put(fx,
		    fx->etc,
		    "agent.conf",
		    "[agent]\ntpm_ownerpassword = \"owner-secret\"\n"
		    "iak_password = \"iak-secret\"\nima_ml_path = \"\"\n"
		    "[ima_log]\ncache_entires = 10\nfrobnicate = 1\n"
		    "[ima_lgo]\ncache_entries = 10\n"
		    "[unrelated]\nx = 1\n");
	kl_test_load_ok(fx);
	g_assert_true(kl_config_finalize(fx->cfg, fx->envp, &error));
	g_assert_no_error(error);

	/* "" is the default of the table, resolved: the plugin keeps no copy */
	g_assert_cmpstr(kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "ima_ml_path"),
			==,
			"/sys/kernel/security/ima/ascii_runtime_measurements");
	/* a declared secret, a declared default, a shared option */
	g_assert_cmpstr(kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "tpm_ownerpassword"),
			==,
			"owner-secret");
	g_assert_cmpstr(
	    kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "cache_entries"), ==, "4096");
	g_assert_cmpstr(
	    kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "registrar_port"), ==, "8890");
	/* an undeclared secret and an undeclared key of its table: nothing */
	g_assert_null(kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "iak_password"));
	g_assert_null(kl_config_lookup_plugin(fx->cfg, "ima_log", keys, "cache_entires"));
	/* a plugin that declares nothing (ABI 1.0): its table, no secret at all */
	g_assert_cmpstr(kl_config_lookup_plugin(fx->cfg, "ima_log", NULL, "frobnicate"), ==, "1");
	g_assert_null(kl_config_lookup_plugin(fx->cfg, "ima_log", NULL, "tpm_ownerpassword"));
	g_assert_null(kl_config_lookup_plugin(fx->cfg, "ima_log", NULL, "iak_password"));

	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "*agent.conf:6: unknown option 'cache_entires' in [ima_log] is "
			      "ignored; did you mean 'cache_entries'?");
	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "*agent.conf:7: unknown option 'frobnicate' in [ima_log] is ignored "
			      "(the ima_log plugin reads: ima_ml_path, tpm_ownerpassword, "
			      "cache_entries)");
	kl_config_check_plugin_table(fx->cfg, "ima_log", keys);
	g_test_assert_expected_messages();
	/* a plugin without a declaration: nothing to check against */
	kl_config_check_plugin_table(fx->cfg, "ima_log", NULL);

	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "unknown table [ima_lgo] in the configuration is ignored; did you "
			      "mean [ima_log]?");
	kl_config_check_tables(fx->cfg, (const gchar *const[]){ "ima_log", "tpm_quote", NULL });
	g_test_assert_expected_messages();
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* any warning a test does not expect fails it */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);

#define KL_ADD(path, fn)                                                                           \
	g_test_add(                                                                                \
	    path, KlConfigFixture, NULL, kl_config_fixture_setup, fn, kl_config_fixture_teardown)
	KL_ADD("/config/defaults", kl_config_defaults_test);
	g_test_add_func("/config/known-keys", kl_config_known_keys_test);
	KL_ADD("/config/layer/1-usr-etc", kl_config_layer_usr_test);
	KL_ADD("/config/layer/2-usr-etc-dropin", kl_config_layer_usr_dropin_test);
	KL_ADD("/config/layer/3-etc", kl_config_layer_etc_test);
	KL_ADD("/config/layer/4-etc-dropin", kl_config_layer_etc_dropin_test);
	KL_ADD("/config/layer/5-env", kl_config_layer_env_test);
	KL_ADD("/config/layer/6-cli", kl_config_layer_cli_test);
	KL_ADD("/config/dropin-order", kl_config_dropin_order_test);
	KL_ADD("/config/single-file", kl_config_single_file_test);
	KL_ADD("/config/single-file-missing", kl_config_single_file_missing_test);
	KL_ADD("/config/load-file-then-env", kl_config_load_file_env_test);
	KL_ADD("/config/env-errors", kl_config_env_errors_test);
	KL_ADD("/config/paths", kl_config_paths_test);
	KL_ADD("/config/keylime-dir-env", kl_config_keylime_dir_env_test);
	KL_ADD("/config/unknown-key", kl_config_unknown_key_test);
	KL_ADD("/config/bad-value", kl_config_bad_value_test);
	KL_ADD("/config/no-agent-table", kl_config_no_agent_table_test);
	KL_ADD("/config/syntax-error", kl_config_syntax_error_test);
	KL_ADD("/config/lists", kl_config_lists_test);
	KL_ADD("/config/tables", kl_config_tables_test);
	KL_ADD("/config/plugin-view", kl_config_plugin_view_test);
	KL_ADD("/config/normalize", kl_config_normalize_test);
	KL_ADD("/config/http-verifier", kl_config_http_verifier_test);
	KL_ADD("/config/backoff", kl_config_backoff_test);
	KL_ADD("/config/tcti", kl_config_tcti_test);
	KL_ADD("/config/unreadable-dropin-dir", kl_config_unreadable_dropin_dir_test);
	g_test_add_func("/config/example-file", kl_config_example_file_test);
	KL_ADD("/config/describe", kl_config_describe_test);
	g_test_add_func("/config/keylime-template", kl_config_keylime_template_test);
	return g_test_run();
}
