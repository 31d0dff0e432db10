/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * What an operator sees of a running agent: `--status` (text and JSON, exit
 * status) and the metrics file, through registration, the wait for
 * enrollment, steady attestation, a verifier outage (the verifier is
 * stopped) and the recovery (started again on the same port, with its
 * enrollments).
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0f001"

static KlTestPeers *peers;
static KlTestAgent *agent;
static gchar *persist;
static gchar *status_path;
static gchar *metrics_path;
static guint16 verifier_port;

static JsonObject *
parse_object(const gchar *text)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;

	if (!json_parser_load_from_data(parser, text, -1, NULL))
		return NULL;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
		return NULL;
	return json_object_ref(json_node_get_object(root));
}

static void
configure(KlTestAgent *a)
{
	kl_test_agent_set_string(a, "metrics_file", metrics_path);
}

/* runs `keylime_push_model_agent --status [--json]` with the agent's configuration */
static gint
run_status(gboolean json, gchar **out)
{
	g_autoptr(KlTestAgent) probe =
	    kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	g_autoptr(GError) error = NULL;
	gint status;

	configure(probe);
	kl_test_agent_start(probe, &error, "--status", json ? "--json" : NULL, NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(probe, 30);
	*out = kl_test_agent_get_log(probe);
	g_test_message("--status%s: exit %d\n%s", json ? " --json" : "", status, *out);
	return status;
}

static JsonObject *
run_status_json(gint *exit_status)
{
	g_autofree gchar *out = NULL;
	const gchar *start;
	JsonObject *root;

	*exit_status = run_status(TRUE, &out);
	start = strchr(out, '{');
	g_assert_nonnull(start);
	root = parse_object(start);
	g_assert_nonnull(root);
	return root;
}

static JsonObject *
read_status_file(void)
{
	g_autofree gchar *text = NULL;

	if (!g_file_get_contents(status_path, &text, NULL, NULL))
		return NULL;
	return parse_object(text);
}

static const gchar *
member_str(JsonObject *o, const gchar *name)
{
	JsonNode *n = o != NULL ? json_object_get_member(o, name) : NULL;

	if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}

/* waits until the status file says @state (and, if set, the last error's @cause) */
static void
wait_state(const gchar *state, const gchar *cause, gdouble timeout_s)
{
	gint64 end = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

	while (g_get_monotonic_time() < end) {
		g_autoptr(JsonObject) root = read_status_file();
		JsonNode *err = root != NULL ? json_object_get_member(root, "last_error") : NULL;
		if (g_strcmp0(member_str(root, "state"), state) == 0 &&
		    (cause == NULL ||
		     (err != NULL && JSON_NODE_HOLDS_OBJECT(err) &&
		      g_strcmp0(member_str(json_node_get_object(err), "cause"), cause) == 0)))
			return;
		g_usleep(100 * 1000);
	}
	kl_test_agent_dump_log(agent);
	g_error("the status file did not reach state %s (cause %s)", state, cause ? cause : "any");
}

/* the value of one sample in the metrics file, -1 when absent */
static gdouble
metric(const gchar *sample)
{
	g_autofree gchar *text = NULL;
	g_autofree gchar *needle = g_strdup_printf("\n%s ", sample);
	const gchar *p;

	if (!g_file_get_contents(metrics_path, &text, NULL, NULL))
		return -1;
	p = strstr(text, needle);
	if (p == NULL)
		return -1;
	return g_ascii_strtod(p + strlen(needle), NULL);
}

static void
wait_verifier(const gchar *member, gint64 min, gdouble timeout_s)
{
	if (!kl_test_peers_wait_verifier_int(peers, AGENT_ID, member, min, timeout_s)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
}

static void
start_verifier(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *port = g_strdup_printf("%u", verifier_port);

	kl_test_peers_start_verifier(
	    peers, &error, "--quote-interval", "2", "--persist", persist, "--port", port, NULL);
	g_assert_no_error(error);
}

static void
test_registration(void)
{
	g_autofree gchar *out = NULL;
	g_autoptr(JsonObject) root = NULL;

	/* the splay (a random wait within the 2 s interval) comes first */
	g_assert_true(kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 1, 30));
	g_assert_true(kl_test_agent_log_contains(agent, "first contact in "));
	g_assert_true(kl_test_agent_log_contains(agent, "splay_percent = 100"));
	/* the agent writes its state once it has the registrar's answer */
	for (guint i = 0; i < 100; i++) {
		g_clear_pointer(&root, json_object_unref);
		root = read_status_file();
		if (root != NULL && json_object_get_boolean_member(root, "registered"))
			break;
		g_usleep(100 * 1000);
	}
	g_assert_nonnull(root);
	g_assert_true(json_object_get_boolean_member(root, "registered"));
	g_assert_cmpint(run_status(FALSE, &out), ==, 1);
	g_assert_nonnull(strstr(out, "agent " AGENT_ID ": not attesting yet ("));
	g_assert_nonnull(strstr(out, "  registered: yes\n"));
	g_assert_nonnull(strstr(out, "  last attestation: none\n"));
	g_assert_nonnull(strstr(out, "NOT ATTESTING ON SCHEDULE\n"));
}

static void
test_enrollment_wait(void)
{
	g_autofree gchar *out = NULL;

	wait_state("waiting_for_enrollment", "not_enrolled", 30);
	g_assert_cmpint(run_status(FALSE, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": not attesting yet (waiting_for_enrollment)\n"));
	g_assert_nonnull(strstr(out,
				"  state: waiting_for_enrollment - waiting for enrollment, "
				"retry in "));
	g_assert_nonnull(strstr(out, "  registered: yes\n"));
	g_assert_nonnull(strstr(out, "  enrolled: no\n"));
	g_assert_nonnull(strstr(out,
				"cause not_enrolled: agent " AGENT_ID
				" is not enrolled at the verifier: enroll it with "
				"keylime_tenant -c add --push-model -u " AGENT_ID "\n"));
	g_assert_cmpfloat(metric("keylime_agent_registered"), ==, 1);
	g_assert_cmpfloat(metric("keylime_agent_enrolled"), ==, 0);
	g_assert_cmpfloat(metric("keylime_agent_attesting_on_schedule"), ==, 0);
	g_assert_cmpfloat(metric("keylime_agent_attestations_submitted_total"), ==, 0);
	g_assert_cmpfloat(
	    metric("keylime_agent_failures_total{stage=\"attestation\",cause=\"not_enrolled\"}"),
	    >=,
	    1);
}

static void
test_steady(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) root = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *pcr0 = NULL;
	g_autofree gchar *policy = NULL;
	gint status = -1;
	JsonArray *types;
	gboolean quote = FALSE;

	pcr0 = kl_test_pcr_read(0, &error);
	g_assert_no_error(error);
	policy = g_strdup_printf("{\"tpm_policy\":{\"0\":[\"%s\"]}}", pcr0);
	kl_test_peers_enroll(peers, AGENT_ID, policy, &error);
	g_assert_no_error(error);
	wait_verifier("passes", 3, 60);
	wait_state("attesting", NULL, 10);

	g_assert_cmpint(run_status(FALSE, &out), ==, 0);
	g_assert_nonnull(strstr(out, "agent " AGENT_ID ": attesting on schedule\n"));
	g_assert_nonnull(strstr(out, "  enrolled: yes\n"));
	g_assert_nonnull(strstr(out, "  last attestation: #"));
	g_assert_nonnull(strstr(out, "  next contact: "));
	g_assert_true(g_str_has_suffix(out, "\nOK\n"));

	root = run_status_json(&status);
	g_assert_cmpint(status, ==, 0);
	g_assert_true(json_object_get_boolean_member(root, "on_schedule"));
	g_assert_true(json_object_get_boolean_member(root, "running"));
	g_assert_cmpstr(member_str(root, "agent_id"), ==, AGENT_ID);
	g_assert_cmpstr(member_str(root, "version"), ==, PACKAGE_VERSION);
	g_assert_cmpint(json_object_get_int_member(root, "attestations"), >=, 3);
	g_assert_cmpint(json_object_get_int_member(root, "interval_seconds"), ==, 2);
	types = json_object_get_array_member(root, "evidence_types");
	for (guint i = 0; i < json_array_get_length(types); i++)
		quote |= g_strcmp0(json_array_get_string_element(types, i), "tpm_quote") == 0;
	g_assert_true(quote);

	g_assert_cmpfloat(metric("keylime_agent_attestations_submitted_total"), >=, 3);
	g_assert_cmpfloat(metric("keylime_agent_attesting_on_schedule"), ==, 1);
	g_assert_cmpfloat(metric("keylime_agent_enrolled"), ==, 1);
	g_assert_cmpfloat(metric("keylime_agent_sessions_total"), >=, 1);
	g_assert_cmpfloat(metric("keylime_agent_cycle_duration_seconds_count"), >=, 3);
	g_assert_cmpfloat(metric("keylime_agent_cycle_duration_seconds_sum"), >, 0);
	/* a real TPM quote (swtpm) takes time */
	g_assert_cmpfloat(metric("keylime_agent_tpm_duration_seconds_sum"), >, 0);
	g_assert_cmpfloat(metric("keylime_agent_backoff_consecutive_failures"), ==, 0);
	g_assert_cmpfloat(metric("keylime_agent_attestation_interval_seconds"), ==, 2);
}

static void
test_outage(void)
{
	g_autofree gchar *out = NULL;
	gint64 end;
	gint status = 0;

	kl_test_peers_stop_verifier(peers);
	wait_state("retrying", "unreachable", 30);
	/* one missed attestation is tolerated */
	g_assert_cmpint(run_status(FALSE, &out), ==, 0);
	g_assert_nonnull(strstr(out, "  state: retrying - verifier unreachable, retry in "));
	g_assert_nonnull(strstr(out, ", attestation, cause unreachable: "));
	g_assert_cmpfloat(
	    metric("keylime_agent_failures_total{stage=\"attestation\",cause=\"unreachable\"}"),
	    >=,
	    1);
	g_assert_cmpfloat(metric("keylime_agent_backoff_consecutive_failures"), >=, 1);
	g_assert_cmpfloat(metric("keylime_agent_backoff_delay_seconds"), >, 0);
	g_assert_true(kl_test_agent_is_running(agent));

	/* two intervals (4 s) and 30 s after the last accepted attestation: not on schedule */
	end = g_get_monotonic_time() + 70 * G_USEC_PER_SEC;
	while (g_get_monotonic_time() < end) {
		g_clear_pointer(&out, g_free);
		status = run_status(FALSE, &out);
		if (status != 0)
			break;
		g_usleep(2 * G_USEC_PER_SEC);
	}
	g_assert_cmpint(status, ==, 1);
	g_assert_nonnull(strstr(out, ": no attestation accepted for "));
	g_assert_true(g_str_has_suffix(out, "NOT ATTESTING ON SCHEDULE\n"));
	/* the metrics file follows at the next retry (written at every failure) */
	end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
	while (metric("keylime_agent_attesting_on_schedule") != 0 && g_get_monotonic_time() < end)
		g_usleep(200 * 1000);
	g_assert_cmpfloat(metric("keylime_agent_attesting_on_schedule"), ==, 0);
	g_assert_true(kl_test_agent_is_running(agent));
}

static void
test_recovery(void)
{
	g_autofree gchar *out = NULL;
	gdouble before = metric("keylime_agent_attestations_submitted_total");
	gdouble sessions = metric("keylime_agent_sessions_total");

	/* the verifier is back on the same port, with the agent still enrolled */
	start_verifier();
	wait_verifier("passes", 2, 60);
	wait_state("attesting", NULL, 10);
	g_assert_cmpint(run_status(FALSE, &out), ==, 0);
	g_assert_nonnull(strstr(out, ": attesting on schedule\n"));
	g_assert_cmpfloat(metric("keylime_agent_attestations_submitted_total"), >, before);
	/* the restarted verifier forgot the session: a new one */
	g_assert_cmpfloat(metric("keylime_agent_sessions_total"), >, sessions);
	g_assert_cmpfloat(metric("keylime_agent_backoff_consecutive_failures"), ==, 0);
	g_assert_cmpfloat(metric("keylime_agent_attesting_on_schedule"), ==, 1);
}

static void
test_stop(void)
{
	g_autofree gchar *out = NULL;

	g_assert_cmpint(kl_test_agent_stop(agent, SIGTERM, 20), ==, 0);
	g_assert_cmpint(run_status(FALSE, &out), ==, 1);
	/* stopped: its last state, and not on schedule */
	g_assert_nonnull(strstr(out, "NOT ATTESTING ON SCHEDULE\n"));
	{
		g_autoptr(JsonObject) root = read_status_file();
		g_assert_cmpstr(member_str(root, "state"), ==, "stopped");
	}
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);

	peers = kl_test_peers_new();
	persist = g_build_filename(kl_test_peers_get_dir(peers), "enrollments.jsonl", NULL);
	verifier_port = kl_test_free_port();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	start_verifier();

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	status_path =
	    g_build_filename(kl_test_agent_get_keylime_dir(agent), "agent_status.json", NULL);
	metrics_path =
	    g_build_filename(kl_test_agent_get_keylime_dir(agent), "keylime_agent.prom", NULL);
	configure(agent);
	kl_test_agent_set_int(agent, "splay_percent", 100);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);

	g_test_add_func("/fleet/status-registration", test_registration);
	g_test_add_func("/fleet/status-enrollment-wait", test_enrollment_wait);
	g_test_add_func("/fleet/status-steady", test_steady);
	g_test_add_func("/fleet/status-outage", test_outage);
	g_test_add_func("/fleet/status-recovery", test_recovery);
	g_test_add_func("/fleet/status-stop", test_stop);
	ret = g_test_run();

	if (ret != 0)
		kl_test_agent_dump_log(agent);
	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	g_free(persist);
	g_free(status_path);
	g_free(metrics_path);
	return ret;
}
