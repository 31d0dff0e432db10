/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent against the test registrar + verifier on swtpm: passing cycles
 * with a PCR policy, recovery from every verifier fault the protocol allows
 * (401, 403, 404, 429 + Retry-After, 500, malformed JSON, a hanging server,
 * session errors), a wrong policy, --once and SIGTERM.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0a001"

static KlTestPeers *peers;
static KlTestAgent *agent;
static gchar *pcr15;

static gint64
vint(const gchar *member)
{
	return kl_test_peers_verifier_int(peers, AGENT_ID, member);
}

static void
assert_wait(const gchar *member, gint64 min, gdouble timeout_s)
{
	if (!kl_test_peers_wait_verifier_int(peers, AGENT_ID, member, min, timeout_s)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
}

static void
add_faults(const gchar *json)
{
	g_autoptr(GError) error = NULL;
	kl_test_peers_add_faults(peers, json, &error);
	g_assert_no_error(error);
}

static void
set_policy(const gchar *pcr15_value)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	g_autofree gchar *body = g_strdup_printf(
	    "{\"agent_id\":\"%s\",\"tpm_policy\":{\"15\":[\"%s\"]}}", AGENT_ID, pcr15_value);
	glong status = 0;

	reply = kl_test_peers_verifier_call(peers, "POST", "/_test/policy", body, &status, &error);
	g_assert_no_error(error);
	g_assert_cmpint(status, ==, 200);
}

/* the agent keeps running and the next passes arrive after a fault was served */
static void
assert_recovers(const gchar *faults, gint64 *faults_before_out)
{
	gint64 passes = vint("passes");
	gint64 served = vint("faults_served");

	add_faults(faults);
	assert_wait("faults_served", served + 1, 30);
	assert_wait("passes", passes + 2, 40);
	g_assert_true(kl_test_agent_is_running(agent));
	if (faults_before_out != NULL)
		*faults_before_out = served;
}

static void
test_cycles(void)
{
	gint64 sessions;

	assert_wait("passes", 3, 40);
	g_assert_cmpint(vint("fails"), ==, 0);
	/*
	 * one PoP session serves all cycles: the token is reused, not renewed per
	 * cycle. Counted at the PoP: a session created just before enrollment is
	 * not counted in sessions_created, but its PoP passes after it.
	 */
	sessions = vint("pop_pass");
	g_assert_cmpint(sessions, >=, 1);
	g_assert_cmpint(sessions, <=, 2);
	g_assert_cmpint(vint("pop_fail"), ==, 0);
	g_assert_cmpint(vint("rate_limited"), ==, 0);
}

static void
test_fault_401(void)
{
	gint64 sessions = vint("sessions_created");

	/* the fault also invalidates the token: only a new PoP session gets the agent going */
	assert_recovers("{\"phase1\":[401]}", NULL);
	g_assert_cmpint(vint("sessions_created"), >, sessions);
	g_assert_cmpint(vint("pop_pass"), >, sessions - 1);
}

static void
test_fault_phase2_401(void)
{
	gint64 sessions = vint("sessions_created");

	assert_recovers("{\"phase2\":[401]}", NULL);
	g_assert_cmpint(vint("sessions_created"), >, sessions);
}

static void
test_fault_403(void)
{
	assert_recovers("{\"phase1\":[403]}", NULL);
}

static void
test_fault_404(void)
{
	assert_recovers("{\"phase1\":[404]}", NULL);
}

static void
test_fault_phase2_403(void)
{
	assert_recovers("{\"phase2\":[403]}", NULL);
}

static gdouble
json_double(JsonObject *obj, const gchar *member)
{
	JsonNode *n = json_object_get_member(obj, member);
	g_assert_nonnull(n);
	return json_node_get_double(n);
}

static void
test_fault_429(void)
{
	g_autoptr(JsonObject) a = NULL;
	gint64 created = vint("phase1_created");
	JsonArray *faults;
	JsonArray *atts;
	gdouble fault_t;
	gdouble next_t = 0;

	assert_recovers("{\"phase1\":[{\"status\":429,\"retry_after\":3}]}", NULL);
	/*
	 * the passes counted by assert_recovers() may predate the fault when the
	 * machine is slow: wait for the attestation that follows the 429
	 */
	for (guint tries = 0; tries < 100 && next_t == 0; tries++) {
		if (tries > 0)
			g_usleep(100 * 1000);
		g_clear_pointer(&a, json_object_unref);
		a = kl_test_peers_verifier_agent(peers, AGENT_ID);
		g_assert_nonnull(a);
		faults = json_object_get_array_member(a, "fault_times");
		fault_t = json_double(
		    json_array_get_object_element(faults, json_array_get_length(faults) - 1), "t");
		atts = json_object_get_array_member(a, "attestations");
		for (guint i = (guint)created; i < json_array_get_length(atts); i++) {
			JsonObject *at = json_array_get_object_element(atts, i);
			gdouble t = json_double(at, "capabilities_received_at");
			if (t > fault_t) {
				next_t = t;
				break;
			}
		}
	}
	g_assert_cmpfloat(next_t, >, 0);
	g_test_message("next attestation %.2f s after the 429 (Retry-After 3)", next_t - fault_t);
	/* honoured: not before Retry-After, and not a long generic backoff either */
	g_assert_cmpfloat(next_t - fault_t, >=, 2.9);
	g_assert_cmpfloat(next_t - fault_t, <=, 8.0);
}

static void
test_fault_500(void)
{
	assert_recovers("{\"phase1\":[500, 500]}", NULL);
}

static void
test_fault_phase2_500(void)
{
	assert_recovers("{\"phase2\":[500]}", NULL);
}

static void
test_fault_malformed(void)
{
	assert_recovers("{\"phase1\":[\"malformed\"]}", NULL);
}

static void
test_fault_phase2_malformed(void)
{
	assert_recovers("{\"phase2\":[\"malformed\"]}", NULL);
}

static void
test_fault_hang(void)
{
	gint64 t0 = g_get_monotonic_time();

	/* request_timeout is 4 s: the agent gives up on the silent server and tries again */
	assert_recovers("{\"phase1\":[{\"hang\":25}]}", NULL);
	g_assert_cmpint((g_get_monotonic_time() - t0) / G_USEC_PER_SEC, <, 25);
}

/*
 * the verifier asks for an evidence type no active plugin provides: the agent
 * sends nothing for that attestation (no "error" body), says why, and the next
 * attestation passes
 */
static void
test_unknown_type_requested(void)
{
	g_autoptr(JsonObject) a = NULL;
	JsonArray *atts;
	gboolean found = FALSE;

	assert_recovers("{\"phase1\":[\"extra_type\"]}", NULL);
	if (!kl_test_agent_log_contains(agent,
					"the verifier requested evidence type 'kl_unknown_log', "
					"which no active plugin provides")) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	atts = json_object_get_array_member(a, "attestations");
	for (guint i = 0; i < json_array_get_length(atts); i++) {
		JsonObject *at = json_array_get_object_element(atts, i);
		JsonArray *types = json_object_get_array_member(at, "evidence_types");

		for (guint j = 0; j < json_array_get_length(types); j++) {
			const gchar *type = json_array_get_string_element(types, j);

			if (g_strcmp0(type, "kl_unknown_log") != 0)
				continue;
			/* never answered: no PATCH reached the verifier for it */
			g_assert_cmpstr(
			    json_object_get_string_member(at, "stage"), ==, "awaiting_evidence");
			found = TRUE;
		}
	}
	g_assert_true(found);
}

static void
test_fault_session(void)
{
	gint64 sessions = vint("pop_pass");

	/* session creation fails (5xx, then rate limited), then the agent must get a token again */
	add_faults(
	    "{\"phase1\":[401], \"session\":[500, {\"status\":429,\"retry_after\":1}, 503]}");
	assert_wait("pop_pass", sessions + 1, 40);
	assert_wait("passes", vint("passes") + 1, 30);
	g_assert_true(kl_test_agent_is_running(agent));
}

static void
test_token_expired(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	g_autofree gchar *body = g_strdup_printf("{\"agent_id\":\"%s\"}", AGENT_ID);
	gint64 sessions = vint("pop_pass");
	gint64 unauthorized = vint("unauthorized");
	glong status = 0;

	/* the session lifetime ran out: every call answers 401 until a new PoP */
	reply = kl_test_peers_verifier_call(
	    peers, "POST", "/_test/expire_token", body, &status, &error);
	g_assert_no_error(error);
	g_assert_cmpint(status, ==, 200);
	assert_wait("unauthorized", unauthorized + 1, 20);
	assert_wait("pop_pass", sessions + 1, 30);
	assert_wait("passes", vint("passes") + 1, 30);
}

static void
test_wrong_policy(void)
{
	gint64 fails = vint("fails");
	gint64 created;
	g_autoptr(JsonObject) a = NULL;
	const gchar *reason;

	set_policy("0000000000000000000000000000000000000000000000000000000000000000");
	assert_wait("fails", fails + 2, 30);
	a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	reason = json_object_get_string_member(a, "last_failure_reason");
	g_assert_nonnull(strstr(reason, "PCR 15"));
	/* push agents keep attesting after a failed verdict */
	created = vint("phase1_created");
	assert_wait("phase1_created", created + 1, 20);
	g_assert_true(kl_test_agent_is_running(agent));
	set_policy(pcr15);
	assert_wait("passes", vint("passes") + 1, 30);
}

static void
test_sigterm(void)
{
	gint status = kl_test_agent_stop(agent, SIGTERM, 15);
	if (status != 0)
		kl_test_agent_dump_log(agent);
	g_assert_cmpint(status, ==, 0);
}

static void
test_once(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) once = NULL;
	gint64 passes = vint("passes");
	gint status;

	/* same keylime_dir: same AK, so no new enrollment is needed */
	once = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(once, &error, "--once", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(once, 45);
	if (status != 0)
		kl_test_agent_dump_log(once);
	g_assert_cmpint(status, ==, 0);
	assert_wait("passes", passes + 1, 30);
}

/*
 * The verifier, its CA and the API version given only on the command line
 * (the file points elsewhere); --api-version really is the version in the
 * attestation URLs; --attestation-interval-seconds is the fallback interval.
 */
static void
test_once_cli_flags(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) once = NULL;
	g_autoptr(KlTestAgent) other = NULL;
	g_autoptr(KlTestAgent) third = NULL;
	gint64 passes = vint("passes");
	gint status;

	once = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_set_string(once, "verifier_url", "https://127.0.0.1:1");
	kl_test_agent_set_string(once, "verifier_tls_ca_cert", "/nonexistent/cacert.crt");
	kl_test_agent_start(once,
			    &error,
			    "--once",
			    "-v",
			    kl_test_peers_verifier_url(peers),
			    "--ca-certificate",
			    kl_test_peers_verifier_ca(peers),
			    "--api-version",
			    "v3.0",
			    NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(once, 45);
	if (status != 0 || vint("passes") < passes + 1)
		kl_test_agent_dump_log(once);
	g_assert_cmpint(status, ==, 0);
	assert_wait("passes", passes + 1, 30);

	/* the test verifier, like Keylime, serves the push API only under /v3 and /v3.0 */
	other = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(
	    other, &error, "--once", "--api-version", "3.1", "--log-level", "debug", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(other, 45);
	if (status != 7)
		kl_test_agent_dump_log(other);
	g_assert_cmpint(status, ==, 7);
	g_assert_true(
	    kl_test_agent_log_contains(other, "/v3.1/agents/" AGENT_ID "/attestations -> 404"));
	/* the proof of possession stays on /v3.0/sessions */
	g_assert_true(kl_test_agent_log_contains(other, "/v3.0/sessions -> 200"));
	g_assert_false(kl_test_agent_log_contains(other, "/v3.0/agents/"));

	/* an answer without meta.seconds_to_next_attestation: the agent falls back to
	 * --attestation-interval-seconds (the file says 2) */
	add_faults("{\"phase2\":[{\"status\":202}]}");
	third = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(third, &error, "--once", "--attestation-interval-seconds", "7", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(third, 45);
	if (status != 0 || !kl_test_agent_log_contains(third, "; next in 7 s"))
		kl_test_agent_dump_log(third);
	g_assert_cmpint(status, ==, 0);
	g_assert_true(kl_test_agent_log_contains(third, "; next in 7 s"));
}

static void
test_once_not_enrolled(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) once = NULL;
	g_autoptr(JsonNode) reply = NULL;
	glong code = 0;
	gint status;

	reply = kl_test_peers_verifier_call(
	    peers, "DELETE", "/_test/agents/" AGENT_ID, NULL, &code, &error);
	g_assert_no_error(error);
	g_assert_cmpint(code, ==, 200);
	once = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(once, &error, "--once", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(once, 50);
	/* gave up (exit status 7), after telling the operator how to enroll the agent */
	if (status != 7 || !kl_test_agent_log_contains(once, "is not enrolled at the verifier"))
		kl_test_agent_dump_log(once);
	g_assert_cmpint(status, ==, 7);
	g_assert_true(kl_test_agent_log_contains(once, "is not enrolled at the verifier"));
	g_assert_true(
	    kl_test_agent_log_contains(once, "keylime_tenant -c add --push-model -u " AGENT_ID));
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *digest = NULL;
	g_autofree gchar *ext = NULL;
	g_autofree gchar *policy = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);

	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, "--quote-interval", "1", NULL);
	g_assert_no_error(error);

	/* a PCR the policy can pin: PCR 15 = extend(0, H("policy")) */
	digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, "policy", -1);
	ext = g_strdup_printf("15:sha256=%s", digest);
	kl_test_run(&error, "tpm2_pcrextend", ext, NULL);
	g_assert_no_error(error);
	pcr15 = kl_test_pcr_read(15, &error);
	g_assert_no_error(error);

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	policy = g_strdup_printf("{\"tpm_policy\":{\"15\":[\"%s\"]}}", pcr15);
	if (!kl_test_agent_start_enrolled(agent, AGENT_ID, policy)) {
		kl_test_agent_free(agent);
		kl_test_peers_free(peers);
		return 1;
	}

	g_test_add_func("/attestation/cycles", test_cycles);
	g_test_add_func("/attestation/fault-phase1-401", test_fault_401);
	g_test_add_func("/attestation/fault-phase2-401", test_fault_phase2_401);
	g_test_add_func("/attestation/fault-phase1-403", test_fault_403);
	g_test_add_func("/attestation/fault-phase1-404", test_fault_404);
	g_test_add_func("/attestation/fault-phase2-403", test_fault_phase2_403);
	g_test_add_func("/attestation/fault-phase1-429-retry-after", test_fault_429);
	g_test_add_func("/attestation/fault-phase1-500", test_fault_500);
	g_test_add_func("/attestation/unknown-type-requested", test_unknown_type_requested);
	g_test_add_func("/attestation/fault-phase2-500", test_fault_phase2_500);
	g_test_add_func("/attestation/fault-phase1-malformed", test_fault_malformed);
	g_test_add_func("/attestation/fault-phase2-malformed", test_fault_phase2_malformed);
	g_test_add_func("/attestation/fault-phase1-hang", test_fault_hang);
	g_test_add_func("/attestation/fault-session-5xx", test_fault_session);
	g_test_add_func("/attestation/token-expired", test_token_expired);
	g_test_add_func("/attestation/wrong-policy", test_wrong_policy);
	g_test_add_func("/attestation/sigterm", test_sigterm);
	g_test_add_func("/attestation/once", test_once);
	g_test_add_func("/attestation/once-cli-flags", test_once_cli_flags);
	g_test_add_func("/attestation/once-not-enrolled", test_once_not_enrolled);
	ret = g_test_run();

	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	g_free(pcr15);
	return ret;
}
