/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * keylime_push_model_agent: command line, configuration, TPM, plugins, then
 * the attestation state machine on the GLib main loop.
 *
 * Exit statuses (see kl-agent.h): 0 clean stop / --once accepted / --check
 * fine, 1 internal error or --check found problems, 2 usage, 3 configuration,
 * 4 TPM, 5 registrar identity conflict (403), 6 no active evidence plugin,
 * 7 --once or --json-file not accepted.
 */
#include "config.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent.h"
#include "kl-cli.h"
#include "kl-config.h"
#include "kl-http.h"
#include "kl-log.h"
#include "kl-plugin-loader.h"
#include "kl-privileges.h"
#include "kl-registrar-client.h"
#include "kl-tpm-private.h"
#include "kl-verifier-client.h"

/* ---- configuration access that tolerates options this build does not know ---- */

static gboolean
kl_main_known(const gchar *key)
{
	const gchar *const *keys = kl_config_get_known_keys();

	for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
		if (g_strcmp0(keys[i], key) == 0)
			return TRUE;
	return FALSE;
}

static const gchar *
kl_main_str(KlConfig *cfg, const gchar *key, const gchar *fallback)
{
	const gchar *value;

	if (!kl_main_known(key))
		return fallback;
	value = kl_config_get_string(cfg, key);
	return value != NULL ? value : fallback;
}

static gint64
kl_main_int(KlConfig *cfg, const gchar *key, gint64 fallback)
{
	return kl_main_known(key) ? kl_config_get_int(cfg, key) : fallback;
}

static gboolean
kl_main_bool(KlConfig *cfg, const gchar *key, gboolean fallback)
{
	return kl_main_known(key) ? kl_config_get_bool(cfg, key) : fallback;
}

static GStrv
kl_main_strv(KlConfig *cfg, const gchar *key)
{
	return kl_main_known(key) ? kl_config_get_strv(cfg, key) : NULL;
}

static const gchar *
kl_main_nonempty(const gchar *value)
{
	return value != NULL && value[0] != '\0' ? value : NULL;
}

/* ---- the agent's view of the TPM and the plugins ---- */

typedef struct {
	KlTpm *tpm;
	KlPluginLoader *loader;
} KlMainSource;

static GBytes *
kl_main_get_ek_public(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ek_public(self->tpm);
}

static GBytes *
kl_main_get_ek_cert(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ek_cert(self->tpm);
}

static GBytes *
kl_main_get_ak_public(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ak_public(self->tpm);
}

static gboolean
kl_main_activate_credential(gpointer data, GBytes *blob, GBytes **secret, GError **error)
{
	KlMainSource *self = data;
	return kl_tpm_activate_credential(self->tpm, blob, secret, error);
}

static gboolean
kl_main_certify_ak(
    gpointer data, GBytes *challenge, GBytes **attest, GBytes **signature, GError **error)
{
	KlMainSource *self = data;
	return kl_tpm_certify_ak(self->tpm,
				 ESYS_TR_NONE,
				 NULL,
				 TPM2_ALG_NULL,
				 kl_tpm_get_ak_hash_alg(self->tpm),
				 challenge,
				 attest,
				 signature,
				 error);
}

static gboolean
kl_main_contribute_registration(gpointer data, JsonObject *body, GError **error)
{
	KlMainSource *self = data;
	GPtrArray *plugins = kl_plugin_loader_get_plugins(self->loader);

	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);

		if (kl_plugin_get_state(plugin) != KL_PLUGIN_STATE_ACTIVE)
			continue;
		if (!kl_plugin_run_contribute_registration(plugin, body, error)) {
			g_prefix_error(error,
				       "the %s plugin could not add its fields: ",
				       kl_plugin_get_name(plugin));
			return FALSE;
		}
	}
	return TRUE;
}

static GPtrArray *
kl_main_get_capabilities(gpointer data, GError **error)
{
	KlMainSource *self = data;
	GPtrArray *plugins = kl_plugin_loader_get_plugins(self->loader);
	g_autoptr(GPtrArray) entries =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);

	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);
		g_autoptr(GError) error_local = NULL;
		JsonObject *entry;

		if (kl_plugin_get_state(plugin) != KL_PLUGIN_STATE_ACTIVE)
			continue;
		entry = kl_plugin_run_get_capabilities(plugin, &error_local);
		if (entry == NULL) {
			if (g_error_matches(error_local, KL_ERROR, KL_ERROR_NOT_SUPPORTED))
				g_debug("%s; not offered in this cycle", error_local->message);
			else
				g_warning("%s; not offered in this cycle", error_local->message);
			continue;
		}
		g_ptr_array_add(entries, entry);
	}
	return g_steal_pointer(&entries);
}

/* the active plugin that provides @item's type in @item's class, or NULL */
static KlPlugin *
kl_main_request_plugin(KlMainSource *self, JsonObject *item, GError **error)
{
	const gchar *evidence_type = json_object_get_string_member(item, "evidence_type");
	const gchar *evidence_class = json_object_get_string_member(item, "evidence_class");
	KlPlugin *plugin = kl_plugin_loader_lookup(self->loader, evidence_type);

	if (plugin == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "the verifier requested evidence type '%s', which no active plugin "
			    "provides",
			    evidence_type);
		return NULL;
	}
	if (g_strcmp0(kl_plugin_get_evidence_class(plugin), evidence_class) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "the verifier requested '%s' as class '%s', but the plugin provides "
			    "class '%s'",
			    evidence_type,
			    evidence_class,
			    kl_plugin_get_evidence_class(plugin));
		return NULL;
	}
	return plugin;
}

static gboolean
kl_main_check_request(gpointer data, JsonObject *item, GError **error)
{
	return kl_main_request_plugin(data, item, error) != NULL;
}

static JsonObject *
kl_main_collect(gpointer data, JsonObject *item, GCancellable *cancellable, GError **error)
{
	KlPlugin *plugin = kl_main_request_plugin(data, item, error);

	if (plugin == NULL)
		return NULL;
	return kl_plugin_run_collect(
	    plugin, json_object_get_object_member(item, "chosen_parameters"), cancellable, error);
}

static const KlAgentSource kl_main_source_funcs = {
	.get_ek_public = kl_main_get_ek_public,
	.get_ek_cert = kl_main_get_ek_cert,
	.get_ak_public = kl_main_get_ak_public,
	.activate_credential = kl_main_activate_credential,
	.certify_ak = kl_main_certify_ak,
	.contribute_registration = kl_main_contribute_registration,
	.get_capabilities = kl_main_get_capabilities,
	.collect = kl_main_collect,
	.check_request = kl_main_check_request,
};

/* ---- start-up pieces ---- */

static gchar *
kl_main_registrar_url(KlConfig *cfg)
{
	const gchar *ip = kl_main_str(cfg, "registrar_ip", "127.0.0.1");
	gboolean tls = kl_main_bool(cfg, "registrar_tls_enabled", FALSE);
	gint64 port = tls ? kl_main_int(cfg, "registrar_tls_port", 8891)
			  : kl_main_int(cfg, "registrar_port", 8890);
	gboolean v6 = strchr(ip, ':') != NULL && ip[0] != '[';

	return g_strdup_printf("%s://%s%s%s:%" G_GINT64_FORMAT,
			       tls ? "https" : "http",
			       v6 ? "[" : "",
			       ip,
			       v6 ? "]" : "",
			       port);
}

static KlHttp *
kl_main_http_new(KlConfig *cfg, const gchar *name, const gchar *ca_file, GError **error)
{
	KlHttpOptions options = {
		.name = name,
		.ca_file = kl_main_nonempty(ca_file),
		.accept_invalid_certs = kl_main_bool(cfg, "tls_accept_invalid_certs", FALSE),
		.accept_invalid_hostnames =
		    kl_main_bool(cfg, "tls_accept_invalid_hostnames", FALSE),
		.timeout_ms = (guint)CLAMP(kl_main_int(cfg, "request_timeout", 5000), 0, G_MAXINT),
	};
	return kl_http_new(&options, error);
}

static const gchar *
kl_main_plugin_state_name(KlPluginState state)
{
	switch (state) {
	case KL_PLUGIN_STATE_ACTIVE:
		return "active";
	case KL_PLUGIN_STATE_DISABLED:
		return "disabled";
	case KL_PLUGIN_STATE_REJECTED:
		return "rejected";
	case KL_PLUGIN_STATE_UNAVAILABLE:
		return "unavailable";
	case KL_PLUGIN_STATE_FAILED:
		return "failed";
	default:
		return "?";
	}
}

static guint
kl_main_count_active(KlPluginLoader *loader)
{
	GPtrArray *plugins = loader != NULL ? kl_plugin_loader_get_plugins(loader) : NULL;
	guint n = 0;

	for (guint i = 0; plugins != NULL && i < plugins->len; i++)
		if (kl_plugin_get_state(g_ptr_array_index(plugins, i)) == KL_PLUGIN_STATE_ACTIVE)
			n++;
	return n;
}

/* plugin_dir: --plugin-dir, KEYLIME_AGENT_PLUGIN_DIR or the file; else the installed one */
static const gchar *
kl_main_plugin_dir(KlConfig *cfg)
{
	const gchar *dir = kl_main_nonempty(kl_main_str(cfg, "plugin_dir", NULL));

	return dir != NULL ? dir : KL_PLUGINDIR;
}

/* ---- --check ---- */

static gboolean
kl_main_check_file(const gchar *what, const gchar *path)
{
	if (path == NULL || path[0] == '\0') {
		printf("  %s: not set\n", what);
		return FALSE;
	}
	if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
		printf("  %s: %s: PROBLEM: the file does not exist\n", what, path);
		return FALSE;
	}
	printf("  %s: %s: ok\n", what, path);
	return TRUE;
}

/*
 * enable_iak_idevid = true asks for a registration with the IAK/IDevID: an
 * agent that cannot provide them must not register without them, as if the
 * operator had not asked. Returns the problem, or NULL. With --avoid-tpm
 * there is no IAK to speak of, and the plugin says that it is ignored.
 */
static gchar *
kl_main_iak_problem(KlConfig *cfg, KlTpm *tpm, KlPluginLoader *loader)
{
	GPtrArray *plugins = loader != NULL ? kl_plugin_loader_get_plugins(loader) : NULL;
	const gchar *reason = NULL;

	if (!kl_main_bool(cfg, "enable_iak_idevid", FALSE) ||
	    (tpm != NULL && kl_tpm_is_software(tpm)))
		return NULL;
	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);

		if (g_strcmp0(kl_plugin_get_name(plugin), "iak_idevid") != 0)
			continue;
		if (kl_plugin_get_state(plugin) == KL_PLUGIN_STATE_ACTIVE)
			return NULL;
		reason = kl_plugin_get_state_reason(plugin);
		if (reason == NULL)
			reason = kl_main_plugin_state_name(kl_plugin_get_state(plugin));
		break;
	}
	return g_strdup_printf(
	    "enable_iak_idevid = true, but the iak_idevid plugin is not active (%s); the agent "
	    "does not register without the IAK/IDevID it was asked for: fix the IAK/IDevID "
	    "settings (iak_cert, idevid_cert, iak_handle, idevid_handle, iak_idevid_template) "
	    "or set enable_iak_idevid = false",
	    reason != NULL ? reason : "no iak_idevid plugin in the plugin directory");
}

static gint
kl_main_check(KlConfig *cfg,
	      KlTpm *tpm,
	      const GError *tpm_error,
	      const gchar *agent_id,
	      KlPluginLoader *loader,
	      const GError *loader_error)
{
	gboolean ok = TRUE;
	gboolean insecure = kl_main_bool(cfg, "tls_accept_invalid_certs", FALSE);
	const gchar *verifier_url = kl_main_str(cfg, "verifier_url", "");
	g_autofree gchar *registrar_url = kl_main_registrar_url(cfg);
	GPtrArray *plugins = loader != NULL ? kl_plugin_loader_get_plugins(loader) : NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlVerifierClient) verifier = NULL;

	printf("keylime_push_model_agent %s: configuration check\n\n", PACKAGE_VERSION);
	/* every option, secrets as "(set)" or "(empty)" */
	printf("Effective settings (# where each was set):\n");
	{
		g_autofree gchar *settings = kl_config_describe(cfg);
		g_auto(GStrv) lines = g_strsplit(settings, "\n", -1);

		for (guint i = 0; lines[i] != NULL; i++)
			if (lines[i][0] != '\0')
				printf("  %s\n", lines[i]);
	}
	printf("\nTPM:\n");
	if (tpm == NULL) {
		printf("  PROBLEM: %s\n", tpm_error != NULL ? tpm_error->message : "not opened");
		ok = FALSE;
	} else {
		const TPMT_PUBLIC *ak = kl_tpm_get_ak_public_area(tpm);
		printf("  reachable: yes (%s)%s\n",
		       kl_tpm_get_description(tpm),
		       kl_tpm_is_software(tpm) ? " INSECURE software stand-in (--avoid-tpm)" : "");
		printf("  EK certificate: %s\n",
		       kl_tpm_get_ek_cert(tpm) != NULL ? "present" : "absent (optional)");
		printf("  EK hash: %s\n", kl_tpm_get_ek_hash(tpm));
		printf("  AK: %s, scheme %s, hash %s\n",
		       ak != NULL && kl_tpm_alg_to_name(ak->type) != NULL
			   ? kl_tpm_alg_to_name(ak->type)
			   : "?",
		       kl_tpm_alg_to_name(kl_tpm_get_ak_sign_scheme(tpm)) != NULL
			   ? kl_tpm_alg_to_name(kl_tpm_get_ak_sign_scheme(tpm))
			   : "?",
		       kl_tpm_alg_to_name(kl_tpm_get_ak_hash_alg(tpm)) != NULL
			   ? kl_tpm_alg_to_name(kl_tpm_get_ak_hash_alg(tpm))
			   : "?");
		if (ak != NULL && (ak->type != TPM2_ALG_RSA ||
				   kl_tpm_get_ak_sign_scheme(tpm) != TPM2_ALG_RSASSA ||
				   kl_tpm_get_ak_hash_alg(tpm) != TPM2_ALG_SHA256)) {
			printf("  PROBLEM: the Keylime verifier only accepts an RSA AK with RSASSA "
			       "and SHA-256 for the proof of possession\n");
			ok = FALSE;
		}
	}
	printf("  agent id: %s\n", agent_id != NULL ? agent_id : "(unresolved)");

	printf("\nPlugins (%s):\n", kl_main_plugin_dir(cfg));
	if (loader_error != NULL) {
		printf("  PROBLEM: %s\n", loader_error->message);
		ok = FALSE;
	}
	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);
		const gchar *reason = kl_plugin_get_state_reason(plugin);
		printf("  %-12s %-12s %s%s%s\n",
		       kl_plugin_get_name(plugin),
		       kl_main_plugin_state_name(kl_plugin_get_state(plugin)),
		       kl_plugin_get_version(plugin) != NULL ? kl_plugin_get_version(plugin) : "",
		       reason != NULL ? ": " : "",
		       reason != NULL ? reason : "");
	}
	if (kl_main_count_active(loader) == 0) {
		printf("  PROBLEM: no evidence plugin is active\n");
		ok = FALSE;
	}
	{
		g_autofree gchar *iak_problem = kl_main_iak_problem(cfg, tpm, loader);
		if (iak_problem != NULL) {
			printf("  PROBLEM: %s\n", iak_problem);
			ok = FALSE;
		}
	}

	printf("\nPeers:\n");
	verifier = kl_verifier_client_new(
	    NULL,
	    verifier_url,
	    kl_main_str(cfg, "verifier_api_version", KL_VERIFIER_API_DEFAULT),
	    agent_id != NULL ? agent_id : "x",
	    insecure,
	    &error);
	if (verifier == NULL) {
		printf("  verifier: PROBLEM: %s\n", error->message);
		ok = FALSE;
	} else {
		g_autofree gchar *attestations =
		    kl_verifier_client_attestations_url(verifier, NULL);
		printf("  verifier: %s%s\n",
		       verifier_url,
		       g_str_has_prefix(verifier_url, "https://") ? "" : " (INSECURE: plain http)");
		printf("  attestations: %s\n", attestations);
	}
	if (insecure) {
		printf("  INSECURE: tls_accept_invalid_certs is set, certificates are not "
		       "verified\n");
	} else if (!kl_main_check_file("verifier CA",
				       kl_main_str(cfg, "verifier_tls_ca_cert", NULL))) {
		ok = FALSE;
	}
	printf("  registrar: %s\n", registrar_url);
	if (kl_main_bool(cfg, "registrar_tls_enabled", FALSE) && !insecure &&
	    !kl_main_check_file("registrar CA", kl_main_str(cfg, "registrar_tls_ca_cert", NULL)))
		ok = FALSE;

	printf("\n%s\n", ok ? "OK" : "PROBLEMS FOUND");
	return ok ? KL_EXIT_OK : KL_EXIT_FAILURE;
}

/* ---- main loop ---- */

typedef struct {
	GMainLoop *loop;
	KlAgent *agent;
	gint exit_status;
} KlMainState;

static gboolean
kl_main_stop_cb(gpointer user_data)
{
	KlMainState *state = user_data;

	g_info("stopping");
	kl_agent_stop(state->agent);
	return G_SOURCE_CONTINUE;
}

static gboolean
kl_main_hup_cb(gpointer user_data)
{
	g_message("SIGHUP ignored (restart to reload)");
	return G_SOURCE_CONTINUE;
}

static void
kl_main_done_cb(KlAgent *agent, gint exit_status, gpointer user_data)
{
	KlMainState *state = user_data;

	state->exit_status = exit_status;
	g_main_loop_quit(state->loop);
}

/*
 * Drops root for run_as once everything that needs root is open (TPM device,
 * IMA/UEFI logs, agent_data.json). The built-in default "keylime:tss" is only
 * a proposal: when that user does not exist the agent warns and stays root.
 * A run_as set by the operator must work.
 */
static gboolean
kl_main_drop_privileges(KlConfig *cfg, GError **error)
{
	const gchar *run_as = kl_main_str(cfg, "run_as", "");
	g_autoptr(GError) error_local = NULL;

	if (geteuid() != 0 || run_as == NULL || run_as[0] == '\0')
		return kl_privileges_drop(run_as, error);
	if (kl_config_get_source(cfg, "run_as") == KL_CONFIG_SOURCE_DEFAULT &&
	    !kl_privileges_parse_run_as(run_as, NULL, NULL, &error_local)) {
		g_warning("running as root: the default run_as '%s' is unusable (%s); create "
			  "that user and group or set run_as (\"\" keeps root)",
			  run_as,
			  error_local->message);
		return TRUE;
	}
	if (!kl_privileges_drop(run_as, error))
		return FALSE;
	g_info("running as %s", run_as);
	return TRUE;
}

static gint
kl_main_run(int argc, char **argv)
{
	g_autoptr(KlCli) cli = kl_cli_new();
	g_autoptr(KlConfig) cfg = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) tpm_error = NULL;
	g_autoptr(GError) loader_error = NULL;
	g_auto(GStrv) envp = g_get_environ();
	g_auto(GStrv) disabled = NULL;
	g_auto(GStrv) api_versions = NULL;
	g_autofree gchar *agent_id = NULL;
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(KlPluginLoader) loader = NULL;
	g_autoptr(KlHttp) registrar_http = NULL;
	g_autoptr(KlHttp) verifier_http = NULL;
	g_autoptr(KlRegistrarClient) registrar = NULL;
	g_autoptr(KlVerifierClient) verifier = NULL;
	g_autoptr(KlAgent) agent = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	g_autofree gchar *registrar_url = NULL;
	KlTpmOptions tpm_options = { 0 };
	KlPluginServices services = { 0 };
	KlAgentOptions options = { 0 };
	KlMainSource source = { 0 };
	KlMainState state = { 0 };
	const gchar *keylime_dir;
	const gchar *log_level;
	gint64 boot_time = 0;
	guint sig_term, sig_int, sig_hup;

	if (!kl_cli_parse(cli, &argc, &argv, &error)) {
		fprintf(stderr,
			"keylime_push_model_agent: %s\nTry 'keylime_push_model_agent --help'.\n",
			error->message);
		return KL_EXIT_USAGE;
	}
	if (cli->version) {
		printf("keylime_push_model_agent %s\n", PACKAGE_VERSION);
		return KL_EXIT_OK;
	}
	if (!kl_log_init("info", &error)) {
		fprintf(stderr, "keylime_push_model_agent: %s\n", error->message);
		return KL_EXIT_FAILURE;
	}

	/* configuration: files < environment < command line */
	cfg = kl_config_new();
	if (cli->config_file != NULL) {
		/* --config replaces the file set; KEYLIME_AGENT_<OPTION> still applies on top */
		g_auto(GStrv) env_only =
		    g_environ_unsetenv(g_strdupv(envp), "KEYLIME_AGENT_CONFIG");
		if (!kl_config_load_file(cfg, cli->config_file, &error) ||
		    !kl_config_load(cfg, NULL, NULL, env_only, &error)) {
			kl_error("%s", error->message);
			return KL_EXIT_CONFIG;
		}
	} else if (!kl_config_load(cfg, KL_USR_SYSCONFDIR, KL_SYSCONFDIR, envp, &error)) {
		kl_error("%s", error->message);
		return KL_EXIT_CONFIG;
	}
	if (!kl_cli_apply(cli, cfg, &error) || !kl_config_finalize(cfg, envp, &error)) {
		kl_error("%s", error->message);
		return KL_EXIT_CONFIG;
	}
	log_level = kl_main_nonempty(kl_main_str(cfg, "log_level", NULL));
	if (log_level != NULL && !kl_log_set_level(log_level, &error)) {
		kl_error("log_level: %s", error->message);
		return KL_EXIT_CONFIG;
	}
	keylime_dir = kl_main_str(cfg, "keylime_dir", KL_DEFAULT_KEYLIME_DIR);
	api_versions = kl_main_strv(cfg, "registrar_api_versions");
	{
		g_auto(GStrv) enabled =
		    kl_registrar_parse_versions((const gchar *const *)api_versions, &error);
		if (enabled == NULL) {
			kl_error("%s", error->message);
			return KL_EXIT_CONFIG;
		}
	}
	if (!kl_read_boot_time("/proc/stat", &boot_time, &error)) {
		g_warning("%s; reporting the epoch as boot time", error->message);
		g_clear_error(&error);
	}

	/* TPM */
	tpm_options.software = cli->avoid_tpm;
	tpm_options.tcti = kl_main_nonempty(kl_main_str(cfg, "tcti", NULL));
	tpm_options.ek_handle = kl_main_str(cfg, "ek_handle", "");
	tpm_options.owner_password = kl_main_str(cfg, "tpm_ownerpassword", "");
	tpm_options.encryption_alg = kl_main_str(cfg, "tpm_encryption_alg", "rsa");
	tpm_options.hash_alg = kl_main_str(cfg, "tpm_hash_alg", "sha256");
	tpm_options.signing_alg = kl_main_str(cfg, "tpm_signing_alg", "rsassa");
	tpm_options.agent_data_path = kl_main_str(cfg, "agent_data_path", "");
	tpm_options.state_dir = keylime_dir;
	/* with --avoid-tpm the TPM layer itself logs the INSECURE warning */
	tpm = kl_tpm_new(&tpm_options, &tpm_error);
	if (tpm == NULL && !cli->check) {
		kl_error("%s", tpm_error->message);
		return KL_EXIT_TPM;
	}
	if (tpm != NULL) {
		agent_id = kl_tpm_resolve_agent_id(
		    tpm, kl_main_str(cfg, "uuid", "generate"), keylime_dir, &tpm_error);
		if (agent_id == NULL && !cli->check) {
			kl_error("%s", tpm_error->message);
			return KL_EXIT_TPM;
		}
	}

	/* plugins */
	services.config = cfg;
	services.tpm = tpm;
	services.agent_id = agent_id != NULL ? agent_id : "";
	services.data_dir = keylime_dir;
	services.boot_time = boot_time;
	loader = kl_plugin_loader_new(&services);
	disabled = kl_main_strv(cfg, "disabled_plugins");
	if (g_strcmp0(kl_main_plugin_dir(cfg), KL_PLUGINDIR) != 0)
		g_message("plugins are loaded from %s, not from the installed directory %s",
			  kl_main_plugin_dir(cfg),
			  KL_PLUGINDIR);
	if (!kl_plugin_loader_load_dir(loader, kl_main_plugin_dir(cfg), disabled, &loader_error) &&
	    !cli->check) {
		kl_error("%s", loader_error->message);
		return KL_EXIT_NO_PLUGINS;
	}

	if (cli->check)
		return kl_main_check(cfg, tpm, tpm_error, agent_id, loader, loader_error);

	if (kl_main_count_active(loader) == 0) {
		kl_error("no evidence plugin is active in %s: the agent has nothing to attest; "
			 "check the plugin directory and disabled_plugins (--check shows why "
			 "each plugin is inactive)",
			 kl_main_plugin_dir(cfg));
		return KL_EXIT_NO_PLUGINS;
	}

	{
		g_autofree gchar *iak_problem = kl_main_iak_problem(cfg, tpm, loader);
		if (iak_problem != NULL) {
			kl_error("%s", iak_problem);
			return KL_EXIT_CONFIG;
		}
	}

	/* everything that needs root is open: drop privileges before any networking */
	if (!kl_main_drop_privileges(cfg, &error)) {
		kl_error("run_as: %s", error->message);
		return KL_EXIT_CONFIG;
	}

	/* peers */
	if (kl_main_bool(cfg, "tls_accept_invalid_certs", FALSE))
		g_warning("INSECURE: tls_accept_invalid_certs (--insecure): server certificates "
			  "are not verified");
	if (kl_main_bool(cfg, "tls_accept_invalid_hostnames", FALSE))
		g_warning("INSECURE: tls_accept_invalid_hostnames: server host names are not "
			  "verified");
	registrar_url = kl_main_registrar_url(cfg);
	registrar_http = kl_main_http_new(cfg,
					  "registrar",
					  kl_main_bool(cfg, "registrar_tls_enabled", FALSE)
					      ? kl_main_str(cfg, "registrar_tls_ca_cert", NULL)
					      : NULL,
					  &error);
	verifier_http =
	    registrar_http != NULL
		? kl_main_http_new(
		      cfg, "verifier", kl_main_str(cfg, "verifier_tls_ca_cert", NULL), &error)
		: NULL;
	if (verifier_http == NULL) {
		kl_error("%s", error->message);
		return KL_EXIT_FAILURE;
	}
	registrar = kl_registrar_client_new(
	    registrar_http, registrar_url, (const gchar *const *)api_versions, &error);
	if (registrar == NULL) {
		kl_error("%s", error->message);
		return KL_EXIT_CONFIG;
	}
	verifier = kl_verifier_client_new(
	    verifier_http,
	    kl_main_str(cfg, "verifier_url", ""),
	    kl_main_str(cfg, "verifier_api_version", KL_VERIFIER_API_DEFAULT),
	    agent_id,
	    kl_main_bool(cfg, "tls_accept_invalid_certs", FALSE),
	    &error);
	if (verifier == NULL) {
		kl_error("%s", error->message);
		return KL_EXIT_CONFIG;
	}

	/* the state machine */
	source.tpm = tpm;
	source.loader = loader;
	options.agent_id = agent_id;
	options.contact_ip = kl_main_str(cfg, "contact_ip", NULL);
	options.contact_port = kl_main_int(cfg, "contact_port", 0);
	options.boot_time = boot_time;
	options.backoff_initial_ms =
	    (guint64)MAX(kl_main_int(cfg, "exponential_backoff_initial_delay", 10000), 1);
	options.backoff_max_ms =
	    (guint64)MAX(kl_main_int(cfg, "exponential_backoff_max_delay", 300000), 1);
	options.backoff_max_retries = kl_main_int(cfg, "exponential_backoff_max_retries", 5);
	options.attestation_interval_s = kl_main_int(cfg, "attestation_interval_seconds", 60);
	/* --json-file is a one-shot too: it gives up after the configured retries */
	options.once = cli->once || cli->json_file != NULL;
	options.json_file = cli->json_file;
	options.message_type = cli->message_type;
	options.method = cli->method;
	options.attestation_index = cli->attestation_index;
	options.session_index = cli->session_index;
	agent = kl_agent_new(&options, &kl_main_source_funcs, &source, registrar, verifier);

	g_info("keylime_push_model_agent %s: agent %s, TPM %s, %u evidence plugin(s), "
	       "registrar %s, verifier %s",
	       PACKAGE_VERSION,
	       agent_id,
	       kl_tpm_get_description(tpm),
	       kl_main_count_active(loader),
	       registrar_url,
	       kl_verifier_client_get_url(verifier));

	loop = g_main_loop_new(NULL, FALSE);
	state.loop = loop;
	state.agent = agent;
	state.exit_status = KL_EXIT_FAILURE;
	sig_term = g_unix_signal_add(SIGTERM, kl_main_stop_cb, &state);
	sig_int = g_unix_signal_add(SIGINT, kl_main_stop_cb, &state);
	sig_hup = g_unix_signal_add(SIGHUP, kl_main_hup_cb, &state);
	kl_agent_start(agent, kl_main_done_cb, &state);
	g_main_loop_run(loop);
	g_source_remove(sig_term);
	g_source_remove(sig_int);
	g_source_remove(sig_hup);

	/* the worker is idle now: free in dependency order (plugins before the TPM) */
	g_clear_pointer(&agent, kl_agent_free);
	g_clear_pointer(&verifier, kl_verifier_client_free);
	g_clear_pointer(&registrar, kl_registrar_client_free);
	g_clear_pointer(&loader, kl_plugin_loader_free);
	g_clear_pointer(&tpm, kl_tpm_free);
	if (state.exit_status == KL_EXIT_OK)
		g_info("stopped");
	return state.exit_status;
}

int
main(int argc, char **argv)
{
	return kl_main_run(argc, argv);
}
