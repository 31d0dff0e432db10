/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Registration with IAK/IDevID (enable_iak_idevid): the test registrar checks
 * that both certificates chain to its --tpm-cert-store, hold iak_tpm/idevid_tpm,
 * and that iak_attest/iak_sign is a TPM2_Certify of the AK by the IAK over
 * SHA-256(agent id). A registrar that does not trust the CA refuses it.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "kl-test-peers.h"

#include "kl-test-skip.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0d001"

static gchar *dir;
static gchar *iak_cert;
static gchar *idevid_cert;
static gchar *ca_cert;

static void
run_py(const gchar *script, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *arg;
	va_list ap;

	g_ptr_array_add(argv, g_strdup("/usr/bin/python3"));
	g_ptr_array_add(argv, kl_test_peers_script(script));
	va_start(ap, script);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, g_strdup(arg));
	va_end(ap);
	g_ptr_array_add(argv, NULL);
	proc =
	    g_subprocess_newv((const gchar *const *)argv->pdata, G_SUBPROCESS_FLAGS_NONE, &error);
	g_assert_no_error(error);
	g_subprocess_wait_check(proc, NULL, &error);
	g_assert_no_error(error);
}

/* a primary signing key in the endorsement hierarchy, persisted at @handle, public key as PEM */
static gchar *
make_key(const gchar *name, const gchar *alg, const gchar *attrs, const gchar *handle)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ctx = g_strdup_printf("%s/%s.ctx", dir, name);
	gchar *pem = g_strdup_printf("%s/%s.pub.pem", dir, name);

	kl_test_run(&error,
		    "tpm2_createprimary",
		    "-C",
		    "e",
		    "-G",
		    alg,
		    "-g",
		    "sha256",
		    "-a",
		    attrs,
		    "-c",
		    ctx,
		    NULL);
	g_assert_no_error(error);
	kl_test_run(&error, "tpm2_evictcontrol", "-C", "o", "-c", ctx, handle, NULL);
	g_assert_no_error(error);
	kl_test_run(&error, "tpm2_flushcontext", "-t", NULL);
	g_assert_no_error(error);
	kl_test_run(&error, "tpm2_readpublic", "-c", handle, "-f", "pem", "-o", pem, NULL);
	g_assert_no_error(error);
	return pem;
}

static KlTestAgent *
start_agent(KlTestPeers *peers)
{
	g_autoptr(GError) error = NULL;
	KlTestAgent *agent = kl_test_agent_new(peers, AGENT_ID, NULL);

	kl_test_agent_set_string(agent, "verifier_url", "https://127.0.0.1:1");
	kl_test_agent_set(agent, "enable_iak_idevid", "true");
	kl_test_agent_set_string(agent, "iak_handle", "0x81020001");
	kl_test_agent_set_string(agent, "idevid_handle", "0x81020002");
	kl_test_agent_set_string(agent, "iak_cert", iak_cert);
	kl_test_agent_set_string(agent, "idevid_cert", idevid_cert);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	return agent;
}

static void
test_trusted(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestPeers) peers = kl_test_peers_new();
	g_autoptr(KlTestAgent) agent = NULL;

	kl_test_peers_start_registrar(peers, 0, FALSE, &error, "--tpm-cert-store", ca_cert, NULL);
	g_assert_no_error(error);
	agent = start_agent(peers);
	if (!kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 1, 40)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	/* the registrar verified the chain, the keys and TPM2_Certify(AK) by the IAK */
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "iak_verified"), ==, 1);
	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 15), ==, 0);
}

static void
test_untrusted(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestPeers) peers = kl_test_peers_new();
	g_autoptr(KlTestAgent) agent = NULL;
	g_autofree gchar *other = g_build_filename(dir, "other-ca", NULL);
	g_autofree gchar *other_ca = g_build_filename(other, "ca.crt", NULL);
	g_autoptr(JsonObject) rec = NULL;

	run_py("kl_certtool.py", "ca", other, NULL);
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, "--tpm-cert-store", other_ca, NULL);
	g_assert_no_error(error);
	agent = start_agent(peers);
	g_assert_true(
	    kl_test_peers_wait_registrar_int(peers, AGENT_ID, "rejected_registrations", 1, 40));
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "activations"), <=, 0);
	rec = kl_test_peers_registrar_agent(peers, AGENT_ID);
	g_assert_nonnull(strstr(json_object_get_string_member(rec, "last_error"), "trust store"));
	kl_test_agent_stop(agent, SIGTERM, 15);
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *iak_pem = NULL;
	g_autofree gchar *idevid_pem = NULL;
	g_autofree gchar *cadir = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);
	if (!kl_test_have_plugin("iak_idevid")) {
		return kl_test_skip_all("the iak_idevid plugin is not built");
	}
	dir = g_dir_make_tmp("kl-int-iak-XXXXXX", &error);
	g_assert_no_error(error);
	iak_pem = make_key("iak",
			   "rsa2048:rsapss-sha256:null",
			   "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
			   "0x81020001");
	idevid_pem = make_key("idevid",
			      "rsa2048:null:null",
			      "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
			      "0x81020002");
	cadir = g_build_filename(dir, "ca", NULL);
	ca_cert = g_build_filename(cadir, "ca.crt", NULL);
	iak_cert = g_build_filename(dir, "iak.pem", NULL);
	idevid_cert = g_build_filename(dir, "idevid.der", NULL);
	run_py("kl_certtool.py", "ca", cadir, NULL);
	run_py("kl_certtool.py", "issue", cadir, iak_pem, iak_cert, "test IAK", NULL);
	run_py("kl_certtool.py", "issue", cadir, idevid_pem, idevid_cert, "test IDevID", NULL);

	g_test_add_func("/iak-registration/trusted", test_trusted);
	g_test_add_func("/iak-registration/untrusted-ca", test_untrusted);
	ret = g_test_run();

	if (g_getenv("KL_TEST_KEEP") == NULL) {
		/* tmp files only: the key contexts, PEMs and certificates */
		const gchar *files[] = { "iak.ctx",	    "idevid.ctx", "iak.pub.pem",
					 "idevid.pub.pem",  "iak.pem",	  "idevid.der",
					 "ca/ca.crt",	    "ca/ca.key",  "other-ca/ca.crt",
					 "other-ca/ca.key", "ca",	  "other-ca" };
		for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
			g_autofree gchar *p = g_build_filename(dir, files[i], NULL);
			g_remove(p);
		}
		g_rmdir(dir);
	}
	g_free(dir);
	g_free(iak_cert);
	g_free(idevid_cert);
	g_free(ca_cert);
	return ret;
}
