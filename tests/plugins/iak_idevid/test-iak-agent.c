/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent binary with the iak_idevid plugin against the test registrar
 * (tests/peers), which checks the fields server-side: both certificates chain
 * to its --tpm-cert-store, iak_tpm/idevid_tpm hold the certificates' keys, and
 * iak_attest/iak_sign are a TPM2_Certify of the registered AK by the IAK over
 * SHA-256(agent id). With the plugin disabled, registration is the plain one;
 * with enable_iak_idevid = true and an IAK/IDevID that cannot be used, the
 * agent refuses to start (exit status 3) rather than register without them.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include <tss2/tss2_tctildr.h>

#include "kl-iak-test-util.h"
#include "kl-test-peers.h"

#include "kl-test-skip.h"

static KlTestPeers *peers;
static gchar *iak_cert;
static gchar *idevid_cert;
static gchar *other_cert;

static void
wait_activation(KlTestAgent *agent, const gchar *id)
{
	if (!kl_test_peers_wait_registrar_int(peers, id, "activations", 1, 40)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
}

static gboolean
registrar_has(const gchar *id, const gchar *member)
{
	g_autoptr(JsonObject) obj = kl_test_peers_registrar_agent(peers, id);

	g_assert_nonnull(obj);
	return json_object_has_member(obj, member) && !json_object_get_null_member(obj, member);
}

static KlTestAgent *
agent_new(const gchar *id, gboolean enable, const gchar *iak, const gchar *idevid)
{
	KlTestAgent *agent = kl_test_agent_new(peers, id, NULL);

	kl_test_agent_set(agent, "enable_iak_idevid", enable ? "true" : "false");
	kl_test_agent_set_string(agent, "iak_cert", iak);
	kl_test_agent_set_string(agent, "idevid_cert", idevid);
	return agent;
}

static void
test_registered_with_iak(void)
{
	const gchar *id = "d432fbb3-d2f1-4a97-9ef7-75bd81c0a001";
	g_autoptr(KlTestAgent) agent = agent_new(id, TRUE, iak_cert, idevid_cert);
	g_autoptr(GError) error = NULL;

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_activation(agent, id);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, id, "iak_verified"), ==, 1);
	g_assert_true(registrar_has(id, "iak_tpm"));
	g_assert_true(registrar_has(id, "idevid_cert"));
	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 15), ==, 0);
}

static void
test_disabled(void)
{
	const gchar *id = "d432fbb3-d2f1-4a97-9ef7-75bd81c0a002";
	g_autoptr(KlTestAgent) agent = agent_new(id, FALSE, iak_cert, idevid_cert);
	g_autoptr(GError) error = NULL;

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_activation(agent, id);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, id, "iak_verified"), ==, 0);
	g_assert_false(registrar_has(id, "iak_tpm"));
	g_assert_false(registrar_has(id, "idevid_tpm"));
	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 15), ==, 0);
}

/*
 * a certificate for another key: enable_iak_idevid = true cannot be honoured,
 * so the agent stops at start-up with a configuration error naming the problem
 * and never registers; --check reports it
 */
static void
test_mismatch_fatal(void)
{
	const gchar *id = "d432fbb3-d2f1-4a97-9ef7-75bd81c0a003";
	g_autoptr(KlTestAgent) agent = agent_new(id, TRUE, other_cert, idevid_cert);
	g_autoptr(KlTestAgent) check = agent_new(id, TRUE, other_cert, idevid_cert);
	g_autoptr(JsonObject) record = NULL;
	g_autoptr(GError) error = NULL;
	gint status;

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(agent, 30);
	if (status != 3 ||
	    !kl_test_agent_log_contains(
		agent, "IAK public key does not match iak_cert (template H-1 tried)") ||
	    !kl_test_agent_log_contains(
		agent, "enable_iak_idevid = true, but the iak_idevid plugin is not active")) {
		kl_test_agent_dump_log(agent);
		g_assert_cmpint(status, ==, 3);
		g_assert_not_reached();
	}
	/* nothing reached the registrar */
	record = kl_test_peers_registrar_agent(peers, id);
	g_assert_null(record);

	kl_test_agent_start(check, &error, "--check", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(check, 30);
	if (status != 1 ||
	    !kl_test_agent_log_contains(check,
					"PROBLEM: enable_iak_idevid = true, but the iak_idevid "
					"plugin is not active")) {
		kl_test_agent_dump_log(check);
		g_assert_cmpint(status, ==, 1);
		g_assert_not_reached();
	}
}

/* provisions H-1 IAK/IDevID, then lets go of the TPM for the agent */
static void
provision(const gchar *dir, KlIakTestCa *ca)
{
	TSS2_TCTI_CONTEXT *tcti = NULL;
	ESYS_CONTEXT *esys = NULL;
	TPM2B_PUBLIC iak, idevid;
	ESYS_TR h;

	g_assert_cmpint(Tss2_TctiLdr_Initialize(g_getenv("KL_TEST_TCTI"), &tcti), ==, 0);
	g_assert_cmpint(Esys_Initialize(&esys, tcti, NULL), ==, 0);
	h = kl_iak_test_provision_key(esys, KL_IAK_TEST_TMPL_H1_IAK, NULL, &iak);
	g_assert_cmpint(Esys_FlushContext(esys, h), ==, 0);
	h = kl_iak_test_provision_key(esys, KL_IAK_TEST_TMPL_H1_IDEVID, NULL, &idevid);
	g_assert_cmpint(Esys_FlushContext(esys, h), ==, 0);
	Esys_Finalize(&esys);
	Tss2_TctiLdr_Finalize(&tcti);

	iak_cert = kl_iak_test_issue_cert_for_tpm(ca, &iak, dir, "iak", TRUE);
	idevid_cert = kl_iak_test_issue_cert_for_tpm(ca, &idevid, dir, "idevid", FALSE);
	other_cert = kl_iak_test_issue_cert_for_other_key(ca, dir, "other");
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ca_path = NULL;
	KlIakTestCa ca;
	int rc;

	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_TCTI") == NULL || !kl_test_have_plugin("iak_idevid")) {
		return kl_test_skip_all(
		    "needs swtpm (run-with-swtpm.sh) and the iak_idevid module");
	}
	peers = kl_test_peers_new();
	kl_iak_test_ca_init(&ca);
	provision(kl_test_peers_get_dir(peers), &ca);
	ca_path = kl_iak_test_ca_write(&ca, kl_test_peers_get_dir(peers));
	kl_iak_test_ca_clear(&ca);
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, "--tpm-cert-store", ca_path, NULL);
	g_assert_no_error(error);

	g_test_add_func("/iak-agent/registered-with-iak", test_registered_with_iak);
	g_test_add_func("/iak-agent/disabled", test_disabled);
	g_test_add_func("/iak-agent/mismatch-fatal", test_mismatch_fatal);
	rc = g_test_run();

	kl_test_peers_free(peers);
	g_free(iak_cert);
	g_free(idevid_cert);
	g_free(other_cert);
	return rc;
}
