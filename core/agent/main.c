/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * keylime_push_model_agent, the composition root: command line,
 * configuration, TPM, agent id, plugins, then --check (kl-check.c) or the
 * attestation state machine (kl-agent.c, fed by kl-agent-source.c) on the
 * GLib main loop.
 *
 * Exit statuses (see kl-agent.h): 0 clean stop / --once accepted / --check
 * fine, 1 internal error or --check found problems, 2 usage, 3 configuration,
 * 4 TPM, 5 registrar identity conflict (403), 6 no active evidence plugin,
 * 7 --once or --json-file not accepted.
 */
#include "config.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-id.h"
#include "kl-agent-source.h"
#include "kl-agent.h"
#include "kl-check.h"
#include "kl-cli.h"
#include "kl-config.h"
#include "kl-http.h"
#include "kl-log.h"
#include "kl-main-setup.h"
#include "kl-plugin-loader.h"
#include "kl-privileges.h"
#include "kl-registrar-client.h"
#include "kl-status.h"
#include "kl-systemd.h"
#include "kl-tpm-private.h"
#include "kl-verifier-client.h"
#include "kl-watchdog.h"

/* ---- main loop ---- */

typedef struct {
	GMainLoop *loop;
	KlAgent *agent;
	KlSystemd *systemd; /* nullable */
	gint exit_status;
} KlMainState;

static gboolean
kl_main_stop_cb(gpointer user_data)
{
	KlMainState *state = user_data;

	g_info("stopping");
	kl_systemd_stopping(state->systemd);
	kl_agent_stop(state->agent);
	return G_SOURCE_CONTINUE;
}

/* the TPM watchdog looks while a step (where TPM commands run) is in flight */
static gboolean
kl_main_watchdog_active_cb(gpointer user_data)
{
	KlMainState *state = user_data;

	return kl_agent_is_step_running(state->agent);
}

/* the TPM watchdog: the TPM stayed unusable for tpm_timeout */
static void
kl_main_watchdog_stop_cb(gint exit_status, gpointer user_data)
{
	KlMainState *state = user_data;

	kl_agent_abort(state->agent, exit_status);
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
/*
 * The files the agent keeps in keylime_dir (the AK in agent_data.json, a
 * generated agent_uuid) are made by root on a first start as root: hand them
 * to run_as, so that the same agent started unprivileged (the systemd unit
 * runs as keylime:tss) can use them. Only files owned by root, never through
 * a symbolic link.
 */
static void
kl_main_give_files(KlConfig *cfg, const gchar *run_as)
{
	g_autofree gchar *uuid_path = NULL;
	const gchar *paths[2];
	uid_t uid;
	gid_t gid;

	if (!kl_privileges_parse_run_as(run_as, &uid, &gid, NULL) || uid == (uid_t)-1)
		return;
	uuid_path = g_build_filename(kl_config_get_string(cfg, "keylime_dir"), "agent_uuid", NULL);
	paths[0] = kl_config_get_string(cfg, "agent_data_path");
	paths[1] = uuid_path;
	for (guint i = 0; i < G_N_ELEMENTS(paths); i++) {
		GStatBuf st;

		if (paths[i] == NULL || paths[i][0] == '\0' || g_lstat(paths[i], &st) != 0 ||
		    !S_ISREG(st.st_mode) || st.st_uid != 0)
			continue;
		if (lchown(paths[i], uid, gid == (gid_t)-1 ? st.st_gid : gid) != 0)
			g_warning(
			    "cannot give %s to run_as %s: %s", paths[i], run_as, g_strerror(errno));
	}
}

static gboolean
kl_main_drop_privileges(KlConfig *cfg, GError **error)
{
	const gchar *run_as = kl_config_get_string(cfg, "run_as");
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
	kl_main_give_files(cfg, run_as);
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
	g_autoptr(KlWatchdog) watchdog = NULL;
	g_autoptr(KlStatus) status = NULL;
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
	log_level = kl_main_nonempty(kl_config_get_string(cfg, "log_level"));
	if (log_level != NULL && !kl_log_set_level(log_level, &error)) {
		kl_error("log_level: %s", error->message);
		return KL_EXIT_CONFIG;
	}
	keylime_dir = kl_config_get_string(cfg, "keylime_dir");
	/* --status reads what the running agent wrote: no TPM, no network */
	if (cli->status)
		return kl_status_command(kl_config_get_string(cfg, "status_file"),
					 cli->json,
					 cli->alive,
					 g_get_real_time());
	api_versions = kl_config_get_strv(cfg, "registrar_api_versions");
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
	tpm_options.tcti = kl_main_nonempty(kl_config_get_string(cfg, "tcti"));
	tpm_options.ek_handle = kl_config_get_string(cfg, "ek_handle");
	tpm_options.owner_password = kl_config_get_string(cfg, "tpm_ownerpassword");
	tpm_options.encryption_alg = kl_config_get_string(cfg, "tpm_encryption_alg");
	tpm_options.hash_alg = kl_config_get_string(cfg, "tpm_hash_alg");
	tpm_options.signing_alg = kl_config_get_string(cfg, "tpm_signing_alg");
	tpm_options.agent_data_path = kl_config_get_string(cfg, "agent_data_path");
	tpm_options.state_dir = keylime_dir;
	/* a uuid that can never be used is a configuration error, found before the TPM is touched
	 */
	{
		const gchar *uuid = kl_config_get_string(cfg, "uuid");
		const gchar *const modes[] = {
			"generate", "hash_ek", "hostname", "dmidecode", NULL
		};
		if (!cli->check && !g_strv_contains(modes, uuid) && !g_uuid_string_is_valid(uuid)) {
			kl_error("%s: uuid '%s' is neither a UUID nor one of generate, hash_ek, "
				 "hostname, dmidecode",
				 kl_config_get_origin(cfg, "uuid"),
				 uuid);
			return KL_EXIT_CONFIG;
		}
	}
	/* with --avoid-tpm the TPM layer itself logs the INSECURE warning */
	tpm = kl_tpm_new(&tpm_options, &tpm_error);
	if (tpm == NULL && !cli->check) {
		kl_error("%s", tpm_error->message);
		return KL_EXIT_TPM;
	}
	if (tpm != NULL) {
		agent_id = kl_tpm_resolve_agent_id(
		    tpm, kl_config_get_string(cfg, "uuid"), keylime_dir, &tpm_error);
		if (agent_id == NULL && !cli->check) {
			kl_error("%s", tpm_error->message);
			return g_error_matches(tpm_error, KL_ERROR, KL_ERROR_CONFIG)
				   ? KL_EXIT_CONFIG
				   : KL_EXIT_TPM;
		}
	}

	/* plugins */
	services.config = cfg;
	services.tpm = tpm;
	services.agent_id = agent_id != NULL ? agent_id : "";
	services.data_dir = keylime_dir;
	services.boot_time = boot_time;
	loader = kl_plugin_loader_new(&services);
	disabled = kl_config_get_strv(cfg, "disabled_plugins");
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

	/*
	 * the CA files are read at every connection, after privileges are dropped:
	 * one the run_as user cannot read is a configuration error now, not a TLS
	 * failure retried forever
	 */
	{
		const gchar *run_as = kl_config_get_string(cfg, "run_as");
		const gchar *cas[] = {
			kl_config_get_bool(cfg, "tls_accept_invalid_certs")
			    ? NULL
			    : kl_config_get_string(cfg, "verifier_tls_ca_cert"),
			kl_config_get_bool(cfg, "registrar_tls_enabled") &&
				!kl_config_get_bool(cfg, "tls_accept_invalid_certs")
			    ? kl_config_get_string(cfg, "registrar_tls_ca_cert")
			    : NULL,
		};
		for (guint i = 0; i < G_N_ELEMENTS(cas); i++) {
			if (!kl_privileges_check_readable_by(cas[i], run_as, &error)) {
				kl_error("%s: %s",
					 i == 0 ? "verifier_tls_ca_cert" : "registrar_tls_ca_cert",
					 error->message);
				return KL_EXIT_CONFIG;
			}
		}
	}
	/* everything that needs root is open: drop privileges before any networking */
	if (!kl_main_drop_privileges(cfg, &error)) {
		kl_error("run_as: %s", error->message);
		return KL_EXIT_CONFIG;
	}

	/* peers */
	if (kl_config_get_bool(cfg, "tls_accept_invalid_certs"))
		g_warning("INSECURE: tls_accept_invalid_certs (--insecure): server certificates "
			  "are not verified");
	if (kl_config_get_bool(cfg, "tls_accept_invalid_hostnames"))
		g_warning("INSECURE: tls_accept_invalid_hostnames: server host names are not "
			  "verified");
	registrar_url = kl_main_registrar_url(cfg);
	registrar_http = kl_main_http_new(cfg,
					  "registrar",
					  kl_config_get_bool(cfg, "registrar_tls_enabled")
					      ? kl_config_get_string(cfg, "registrar_tls_ca_cert")
					      : NULL,
					  &error);
	verifier_http =
	    registrar_http != NULL
		? kl_main_http_new(
		      cfg, "verifier", kl_config_get_string(cfg, "verifier_tls_ca_cert"), &error)
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
	verifier = kl_verifier_client_new(verifier_http,
					  kl_config_get_string(cfg, "verifier_url"),
					  kl_config_get_string(cfg, "verifier_api_version"),
					  agent_id,
					  kl_config_get_bool(cfg, "tls_accept_invalid_certs"),
					  &error);
	if (verifier == NULL) {
		kl_error("%s", error->message);
		return KL_EXIT_CONFIG;
	}

	/* the state machine */
	source.tpm = tpm;
	source.loader = loader;
	options.agent_id = agent_id;
	options.contact_ip = kl_config_get_string(cfg, "contact_ip");
	options.contact_port = kl_config_get_int(cfg, "contact_port");
	options.boot_time = boot_time;
	options.backoff_initial_ms =
	    (guint64)MAX(kl_config_get_int(cfg, "exponential_backoff_initial_delay"), 1);
	options.backoff_max_ms =
	    (guint64)MAX(kl_config_get_int(cfg, "exponential_backoff_max_delay"), 1);
	options.backoff_max_retries = kl_config_get_int(cfg, "exponential_backoff_max_retries");
	options.attestation_interval_s = kl_config_get_int(cfg, "attestation_interval_seconds");
	/* --json-file is a one-shot too: it gives up after the configured retries */
	options.once = cli->once || cli->json_file != NULL;
	options.splay_percent = (guint)CLAMP(kl_config_get_int(cfg, "splay_percent"), 0, 100);
	options.jitter_percent = (guint)CLAMP(kl_config_get_int(cfg, "jitter_percent"), 0, 50);
	options.json_file = cli->json_file;
	options.message_type = cli->message_type;
	options.method = cli->method;
	options.attestation_index = cli->attestation_index;
	options.session_index = cli->session_index;
	agent = kl_agent_new(&options, &kl_main_source_funcs, &source, registrar, verifier);
	/* the state snapshot: status file (--status), metrics file, one-line summary */
	status = kl_status_new(agent_id, PACKAGE_VERSION);
	kl_status_set_files(status,
			    options.once ? NULL : kl_config_get_string(cfg, "status_file"),
			    options.once ? NULL : kl_config_get_string(cfg, "metrics_file"));
	kl_agent_set_status(agent, status);

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
	/* sd_notify: READY=1 once registered, STATUS=, WATCHDOG=1, STOPPING=1 */
	state.systemd = kl_systemd_new(agent, status, kl_config_get_int(cfg, "request_timeout"));
	kl_agent_start(agent, kl_main_done_cb, &state);
	watchdog = kl_watchdog_new(
	    tpm, (guint)kl_config_get_int(cfg, "tpm_timeout"), kl_main_watchdog_stop_cb, &state);
	/* TPM commands run only in the agent's steps */
	kl_watchdog_set_active_func(watchdog, kl_main_watchdog_active_cb, &state);
	g_main_loop_run(loop);
	g_clear_pointer(&watchdog, kl_watchdog_free);
	g_clear_pointer(&state.systemd, kl_systemd_free);
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
#if defined(__GLIBC__)
	/*
	 * The agent runs for months: memory it used once (a first cycle that
	 * sends the whole IMA log) must go back to the system. One arena for
	 * both threads, so that malloc_trim() reaches what the worker freed, and
	 * a fixed mmap threshold, so that large buffers are unmapped when freed
	 * instead of raising the threshold and staying in the heap.
	 */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
	return kl_main_run(argc, argv);
}
