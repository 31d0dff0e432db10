/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * One key type / hash / signing scheme / PCR bank combination, end to end, on
 * a swtpm made with the profile under test (run-with-swtpm.sh with
 * KL_SWTPM_PCR_BANKS and KL_SWTPM_SETUP_ARGS): the agent registers (the test
 * registrar makes the credential for this EK, the agent activates it), proves
 * possession of the AK (the test verifier checks the certify signature) and
 * passes attestations with a PCR policy in the expected bank (signature,
 * nonce, PCR digest checked); restarted, it loads agent_data.json and keeps
 * the same AK. A key type the TPM cannot make stops the agent at start-up
 * with an error naming what the TPM offers.
 *
 * Parameters (environment):
 *   KL_ALGS_ENC, KL_ALGS_HASH, KL_ALGS_SIGN  tpm_encryption_alg/hash_alg/signing_alg
 *   KL_ALGS_EK        the EK the registrar must see, e.g. "rsa3072"
 *   KL_ALGS_EKCERT    1 when the swtpm holds a certificate for that EK
 *   KL_ALGS_BANK      the PCR bank the verifier must choose (default KL_ALGS_HASH)
 *   KL_ALGS_OFFERS    when set: the agent must refuse to start and list these
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "kl-test-peers.h"
#include "kl-test-skip.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0e001"

static KlTestPeers *peers;
static gchar *keylime_dir;
static gchar *first_aik;

static const gchar *
param(const gchar *name, const gchar *fallback)
{
	const gchar *v = g_getenv(name);
	return v != NULL && *v != '\0' ? v : fallback;
}

static KlTestAgent *
new_agent(const gchar *dir)
{
	KlTestAgent *agent = kl_test_agent_new(peers, AGENT_ID, dir);

	kl_test_agent_set_string(agent, "tpm_encryption_alg", param("KL_ALGS_ENC", "rsa"));
	kl_test_agent_set_string(agent, "tpm_hash_alg", param("KL_ALGS_HASH", "sha256"));
	kl_test_agent_set_string(agent, "tpm_signing_alg", param("KL_ALGS_SIGN", "rsassa"));
	return agent;
}

static gchar *
registrar_str(const gchar *member)
{
	g_autoptr(JsonObject) obj = kl_test_peers_registrar_agent(peers, AGENT_ID);
	if (obj == NULL || !json_object_has_member(obj, member) ||
	    json_object_get_null_member(obj, member))
		return NULL;
	return g_strdup(json_object_get_string_member(obj, member));
}

static void
wait_or_dump(KlTestAgent *agent, gboolean ok)
{
	if (!ok)
		kl_test_agent_dump_log(agent);
	g_assert_true(ok);
}

/* the hash algorithm the verifier chose for the last attestation */
static gchar *
last_chosen_bank(void)
{
	g_autoptr(JsonObject) a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	JsonArray *ats;
	JsonObject *at;
	JsonArray *req;

	g_assert_nonnull(a);
	ats = json_object_get_array_member(a, "attestations");
	g_assert_cmpuint(json_array_get_length(ats), >, 0);
	at = json_array_get_object_element(ats, json_array_get_length(ats) - 1);
	req = json_object_get_array_member(at, "evidence_requested");
	for (guint i = 0; i < json_array_get_length(req); i++) {
		JsonObject *r = json_array_get_object_element(req, i);
		if (g_strcmp0(json_object_get_string_member(r, "evidence_type"), "tpm_quote") == 0)
			return g_strdup(json_object_get_string_member(
			    json_object_get_object_member(r, "chosen_parameters"),
			    "hash_algorithm"));
	}
	return NULL;
}

static void
test_attest(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = new_agent(NULL);
	const gchar *bank = param("KL_ALGS_BANK", param("KL_ALGS_HASH", "sha256"));
	g_autofree gchar *digest = NULL;
	g_autofree gchar *ext = NULL;
	g_autofree gchar *pcr15 = NULL;
	g_autofree gchar *policy = NULL;
	g_autofree gchar *ek_key = NULL;
	g_autofree gchar *aik_key = NULL;
	g_autofree gchar *aik_hash = NULL;
	g_autofree gchar *aik_scheme = NULL;
	g_autofree gchar *chosen = NULL;
	GChecksumType ctype = g_str_equal(bank, "sha384")   ? G_CHECKSUM_SHA384
			      : g_str_equal(bank, "sha512") ? G_CHECKSUM_SHA512
			      : g_str_equal(bank, "sha1")   ? G_CHECKSUM_SHA1
							    : G_CHECKSUM_SHA256;

	/* a PCR the policy pins, in the bank under test: PCR 15 = extend(0, H("algs")) */
	digest = g_compute_checksum_for_string(ctype, "algs", -1);
	ext = g_strdup_printf("15:%s=%s", bank, digest);
	kl_test_run(&error, "tpm2_pcrextend", ext, NULL);
	g_assert_no_error(error);
	pcr15 = kl_test_pcr_read_bank(bank, 15, &error);
	g_assert_no_error(error);

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_or_dump(agent,
		     kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 1, 60));
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "failed_activations"), ==, 0);
	g_assert_cmpint(
	    kl_test_peers_registrar_int(peers, AGENT_ID, "aik_restricted_signing"), ==, 1);

	/* the EK of the TCG profile for this key type, with its certificate when there is one */
	ek_key = registrar_str("ek_key");
	g_assert_cmpstr(ek_key, ==, param("KL_ALGS_EK", "rsa2048"));
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "had_ekcert"),
			==,
			g_strcmp0(param("KL_ALGS_EKCERT", "0"), "1") == 0 ? 1 : 0);
	/* the AK of the configured type, hash and scheme */
	aik_key = registrar_str("aik_key");
	aik_hash = registrar_str("aik_hash");
	aik_scheme = registrar_str("aik_scheme");
	g_assert_cmpstr(aik_key, ==, param("KL_ALGS_EK", "rsa2048"));
	g_assert_cmpstr(aik_hash, ==, param("KL_ALGS_HASH", "sha256"));
	g_assert_cmpstr(aik_scheme, ==, param("KL_ALGS_SIGN", "rsassa"));
	first_aik = registrar_str("aik_tpm");
	keylime_dir = g_strdup(kl_test_agent_get_keylime_dir(agent));

	policy = g_strdup_printf("{\"tpm_policy\":{\"15\":[\"%s\"]},"
				 "\"accept_tpm_signing_algs\":[\"%s\"],"
				 "\"accept_tpm_hash_algs\":[\"sha512\",\"sha384\",\"sha256\"]}",
				 pcr15,
				 param("KL_ALGS_SIGN", "rsassa"));
	kl_test_peers_enroll(peers, AGENT_ID, policy, &error);
	g_assert_no_error(error);
	wait_or_dump(agent, kl_test_peers_wait_verifier_int(peers, AGENT_ID, "passes", 2, 60));
	g_assert_cmpint(kl_test_peers_verifier_int(peers, AGENT_ID, "fails"), ==, 0);
	g_assert_cmpint(kl_test_peers_verifier_int(peers, AGENT_ID, "pop_fail"), ==, 0);
	chosen = last_chosen_bank();
	g_assert_cmpstr(chosen, ==, bank);
	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 15), ==, 0);
}

static void
test_restart(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = NULL;
	g_autofree gchar *aik = NULL;
	gint64 passes = kl_test_peers_verifier_int(peers, AGENT_ID, "passes");

	g_assert_nonnull(keylime_dir);
	agent = new_agent(keylime_dir);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_or_dump(agent,
		     kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 2, 60));
	/* the AK came from agent_data.json: the same key, so the registrar accepts it */
	aik = registrar_str("aik_tpm");
	g_assert_cmpstr(aik, ==, first_aik);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "forbidden"), ==, 0);
	wait_or_dump(agent,
		     kl_test_peers_wait_verifier_int(peers, AGENT_ID, "passes", passes + 1, 60));
	g_assert_cmpint(kl_test_peers_verifier_int(peers, AGENT_ID, "fails"), ==, 0);
	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 15), ==, 0);
}

static void
test_unsupported(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = new_agent(NULL);
	g_autofree gchar *offers = g_strdup_printf("it offers: %s", param("KL_ALGS_OFFERS", ""));
	gint status;

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(agent, 30);
	if (status != 4 || !kl_test_agent_log_contains(agent, offers))
		kl_test_agent_dump_log(agent);
	/* exit status 4: TPM unusable as configured; nothing was registered */
	g_assert_cmpint(status, ==, 4);
	g_assert_true(kl_test_agent_log_contains(agent, offers));
	g_assert_true(kl_test_agent_log_contains(agent, "set tpm_encryption_alg to one of them"));
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "registrations"), <=, 0);
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_ALGS_OFFERS") == NULL && !kl_test_have_plugin("tpm_quote"))
		return kl_test_skip_all("the tpm_quote plugin is not built");

	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, "--quote-interval", "1", NULL);
	g_assert_no_error(error);

	if (g_getenv("KL_ALGS_OFFERS") != NULL) {
		g_test_add_func("/algs/unsupported", test_unsupported);
	} else {
		g_test_add_func("/algs/attest", test_attest);
		g_test_add_func("/algs/restart-loads-agent-data", test_restart);
	}
	ret = g_test_run();

	kl_test_peers_free(peers);
	g_free(keylime_dir);
	g_free(first_aik);
	return ret;
}
