/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Registration of the agent at the test registrar on swtpm: MakeCredential /
 * ActivateCredential / auth_tag, the AK kept across restarts (no 403),
 * uuid = hash_ek and uuid = generate kept across restarts, registrar TLS, a
 * registrar that comes up late, and SIGTERM. Run with KL_SWTPM_SETUP=1
 * (EK certificate in NV) and without (no EK certificate).
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0b001"

static KlTestPeers *peers;
static gchar *first_keylime_dir;
static gchar *first_aik;

static gboolean
manufactured(void)
{
	return g_strcmp0(g_getenv("KL_SWTPM_SETUP"), "1") == 0;
}

static void
wait_activation(KlTestAgent *agent, const gchar *id, gint64 n, gdouble timeout_s)
{
	if (!kl_test_peers_wait_registrar_int(peers, id, "activations", n, timeout_s)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
}

static gchar *
registrar_str(const gchar *id, const gchar *member)
{
	g_autoptr(JsonObject) obj = kl_test_peers_registrar_agent(peers, id);
	if (obj == NULL || !json_object_has_member(obj, member) ||
	    json_object_get_null_member(obj, member))
		return NULL;
	return g_strdup(json_object_get_string_member(obj, member));
}

static void
stop_ok(KlTestAgent *agent)
{
	gint status = kl_test_agent_stop(agent, SIGTERM, 15);
	if (status != 0)
		kl_test_agent_dump_log(agent);
	g_assert_cmpint(status, ==, 0);
}

static void
test_activate(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = kl_test_agent_new(peers, AGENT_ID, NULL);

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_activation(agent, AGENT_ID, 1, 40);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "failed_activations"), ==, 0);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "forbidden"), ==, 0);
	/* the AK is a restricted signing key (otherwise it could sign forged quotes) */
	g_assert_cmpint(
	    kl_test_peers_registrar_int(peers, AGENT_ID, "aik_restricted_signing"), ==, 1);
	/* the EK certificate is sent when the TPM has one in NV */
	g_assert_cmpint(
	    kl_test_peers_registrar_int(peers, AGENT_ID, "had_ekcert"), ==, manufactured() ? 1 : 0);
	g_assert_true(kl_test_agent_is_running(agent));
	first_aik = registrar_str(AGENT_ID, "aik_tpm");
	g_assert_nonnull(first_aik);
	first_keylime_dir = g_strdup(kl_test_agent_get_keylime_dir(agent));
	stop_ok(agent);
}

static void
test_restart_same_ak(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = NULL;
	g_autofree gchar *aik = NULL;

	g_assert_nonnull(first_keylime_dir);
	agent = kl_test_agent_new(peers, AGENT_ID, first_keylime_dir);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_activation(agent, AGENT_ID, 2, 40);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "regcount"), ==, 2);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, AGENT_ID, "forbidden"), ==, 0);
	aik = registrar_str(AGENT_ID, "aik_tpm");
	g_assert_cmpstr(aik, ==, first_aik);
	stop_ok(agent);
}

/* the agent id the registrar saw last that is not one of @known */
static gchar *
new_registrar_id(const gchar *const *known, gdouble timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

	do {
		g_autoptr(JsonNode) reply =
		    kl_test_peers_registrar_call(peers, "GET", "/_test/agents", NULL, NULL, NULL);
		if (reply != NULL) {
			JsonArray *ids =
			    json_object_get_array_member(json_node_get_object(reply), "agents");
			for (guint i = 0; i < json_array_get_length(ids); i++) {
				const gchar *id = json_array_get_string_element(ids, i);
				if (!g_strv_contains(known, id))
					return g_strdup(id);
			}
		}
		g_usleep(100000);
	} while (g_get_monotonic_time() < deadline);
	return NULL;
}

static void
run_id_mode(const gchar *mode, gchar **id_out)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = kl_test_agent_new(peers, mode, NULL);
	g_autoptr(KlTestAgent) again = NULL;
	g_autoptr(JsonNode) list = NULL;
	g_autoptr(GPtrArray) known = g_ptr_array_new_with_free_func(g_free);
	g_autofree gchar *id = NULL;
	JsonArray *ids;

	list = kl_test_peers_registrar_call(peers, "GET", "/_test/agents", NULL, NULL, &error);
	g_assert_no_error(error);
	ids = json_object_get_array_member(json_node_get_object(list), "agents");
	for (guint i = 0; i < json_array_get_length(ids); i++)
		g_ptr_array_add(known, g_strdup(json_array_get_string_element(ids, i)));
	g_ptr_array_add(known, NULL);

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	id = new_registrar_id((const gchar *const *)known->pdata, 40);
	if (id == NULL)
		kl_test_agent_dump_log(agent);
	g_assert_nonnull(id);
	wait_activation(agent, id, 1, 40);
	stop_ok(agent);

	/* restart with the same keylime_dir: the same id registers again */
	again = kl_test_agent_new(peers, mode, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(again, &error, NULL);
	g_assert_no_error(error);
	wait_activation(again, id, 2, 40);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, id, "forbidden"), ==, 0);
	stop_ok(again);
	*id_out = g_steal_pointer(&id);
}

static void
test_hash_ek(void)
{
	g_autofree gchar *id = NULL;
	g_autofree gchar *hash = NULL;

	run_id_mode("hash_ek", &id);
	/* hex SHA-256 of the EK public key in PEM, computed by the registrar */
	hash = registrar_str(id, "hash_ek");
	g_assert_cmpstr(id, ==, hash);
}

static void
test_generate(void)
{
	g_autofree gchar *id = NULL;

	run_id_mode("generate", &id);
	g_assert_true(g_uuid_string_is_valid(id));
}

static void
test_registrar_errors(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) agent = NULL;
	g_autoptr(JsonNode) reply = NULL;
	const gchar *id = "d432fbb3-d2f1-4a97-9ef7-75bd81c0b002";
	glong status = 0;

	/* a failing /version, a 500 on registration, then a 400 on activation (the record is
	 * deleted, as after a wrong auth_tag): the agent must register again and get active */
	reply = kl_test_peers_registrar_call(
	    peers,
	    "POST",
	    "/_test/faults",
	    "{\"version\":[500],\"register\":[500],\"activate\":[400]}",
	    &status,
	    &error);
	g_assert_no_error(error);
	g_assert_cmpint(status, ==, 200);
	agent = kl_test_agent_new(peers, id, NULL);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	wait_activation(agent, id, 1, 40);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, id, "failed_activations"), ==, 1);
	g_assert_cmpint(kl_test_peers_registrar_int(peers, id, "registrations"), >=, 2);
	stop_ok(agent);
}

static void
test_registrar_tls(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestPeers) tls = kl_test_peers_new();
	g_autoptr(KlTestAgent) agent = NULL;
	KlTestPeers *saved = peers;

	kl_test_peers_start_registrar(tls, 0, TRUE, &error, NULL);
	g_assert_no_error(error);
	agent = kl_test_agent_new(tls, AGENT_ID, NULL);
	/* only the TLS port answers: the plain port is closed */
	kl_test_agent_set_int(agent, "registrar_port", kl_test_free_port());
	kl_test_agent_set(agent, "registrar_tls_enabled", "true");
	kl_test_agent_set_int(agent, "registrar_tls_port", kl_test_peers_registrar_tls_port(tls));
	kl_test_agent_set_string(agent, "registrar_tls_ca_cert", kl_test_peers_registrar_ca(tls));
	kl_test_agent_set_string(agent, "verifier_url", "https://127.0.0.1:1");
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	peers = tls;
	wait_activation(agent, AGENT_ID, 1, 40);
	peers = saved;
	stop_ok(agent);
}

static void
test_registrar_late(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestPeers) late = kl_test_peers_new();
	g_autoptr(KlTestAgent) agent = NULL;
	KlTestPeers *saved = peers;
	guint16 port = kl_test_free_port();

	agent = kl_test_agent_new(late, AGENT_ID, NULL);
	kl_test_agent_set_int(agent, "registrar_port", port);
	kl_test_agent_set_string(agent, "verifier_url", "https://127.0.0.1:1");
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	/* nobody listens: the agent must keep trying, not exit */
	g_usleep(4 * G_USEC_PER_SEC);
	if (!kl_test_agent_is_running(agent))
		kl_test_agent_dump_log(agent);
	g_assert_true(kl_test_agent_is_running(agent));
	kl_test_peers_start_registrar(late, port, FALSE, &error, NULL);
	g_assert_no_error(error);
	peers = late;
	wait_activation(agent, AGENT_ID, 1, 40);
	peers = saved;
	stop_ok(agent);
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);
	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, NULL);
	g_assert_no_error(error);

	g_test_add_func("/registration/activate", test_activate);
	g_test_add_func("/registration/restart-same-ak", test_restart_same_ak);
	/* the rest does not depend on the EK certificate: run it once, on the manufactured TPM */
	if (manufactured()) {
		g_test_add_func("/registration/hash-ek", test_hash_ek);
		g_test_add_func("/registration/generate", test_generate);
		g_test_add_func("/registration/registrar-errors", test_registrar_errors);
		g_test_add_func("/registration/registrar-tls", test_registrar_tls);
		g_test_add_func("/registration/registrar-late", test_registrar_late);
	}
	ret = g_test_run();

	kl_test_peers_free(peers);
	g_free(first_keylime_dir);
	g_free(first_aik);
	return ret;
}
