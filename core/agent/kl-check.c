/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * keylime_push_model_agent --check: every effective setting and where it was
 * set, the TPM, the agent id, the plugins and the peers, each with what is
 * wrong and how to fix it.
 */
#include "config.h"

#include <stdio.h>

#include "kl-agent.h"
#include "kl-check.h"
#include "kl-main-setup.h"
#include "kl-privileges.h"
#include "kl-tpm-private.h"
#include "kl-verifier-client.h"

/* the file exists and the run_as user (the agent after start-up) can read it */
static gboolean
kl_main_check_file(const gchar *what, const gchar *path, const gchar *run_as)
{
	g_autoptr(GError) error = NULL;

	if (path == NULL || path[0] == '\0') {
		printf("  %s: not set\n", what);
		return FALSE;
	}
	if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
		printf("  %s: %s: PROBLEM: the file does not exist\n", what, path);
		return FALSE;
	}
	if (!kl_privileges_check_readable_by(path, run_as, &error)) {
		printf("  %s: %s: PROBLEM: %s\n", what, path, error->message);
		return FALSE;
	}
	printf("  %s: %s: ok\n", what, path);
	return TRUE;
}

gint
kl_main_check(KlConfig *cfg,
	      KlTpm *tpm,
	      const GError *tpm_error,
	      const gchar *agent_id,
	      KlPluginLoader *loader,
	      const GError *loader_error)
{
	gboolean ok = TRUE;
	gboolean insecure = kl_config_get_bool(cfg, "tls_accept_invalid_certs");
	const gchar *verifier_url = kl_config_get_string(cfg, "verifier_url");
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
		       kl_plugin_state_to_string(kl_plugin_get_state(plugin)),
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
	verifier = kl_verifier_client_new(NULL,
					  verifier_url,
					  kl_config_get_string(cfg, "verifier_api_version"),
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
				       kl_config_get_string(cfg, "verifier_tls_ca_cert"),
				       kl_config_get_string(cfg, "run_as"))) {
		ok = FALSE;
	}
	printf("  registrar: %s\n", registrar_url);
	if (kl_config_get_bool(cfg, "registrar_tls_enabled") && !insecure &&
	    !kl_main_check_file("registrar CA",
				kl_config_get_string(cfg, "registrar_tls_ca_cert"),
				kl_config_get_string(cfg, "run_as")))
		ok = FALSE;

	printf("\n%s\n", ok ? "OK" : "PROBLEMS FOUND");
	return ok ? KL_EXIT_OK : KL_EXIT_FAILURE;
}
