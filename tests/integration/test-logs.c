/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * IMA and UEFI evidence end to end: synthetic logs (tests/peers/kl_logtool.py)
 * whose events are extended into the swtpm PCRs, a verifier policy with IMA +
 * measured boot + PCR 15, passing cycles, incremental IMA offsets as the log
 * grows, and a tampered IMA line that must fail.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "kl-test-peers.h"

#include "kl-test-skip.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0c001"

static KlTestPeers *peers;
static KlTestAgent *agent;
static gchar *ima_path;
static gchar *uefi_path;
static gchar *metrics_path;

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

/* runs kl_logtool.py and returns its stdout */
static gchar *
logtool(GError **error, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	const gchar *arg;
	va_list ap;

	g_ptr_array_add(argv, g_strdup("/usr/bin/python3"));
	g_ptr_array_add(argv, kl_test_peers_script("kl_logtool.py"));
	va_start(ap, error);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, g_strdup(arg));
	va_end(ap);
	g_ptr_array_add(argv, NULL);
	proc = g_subprocess_newv((const gchar *const *)argv->pdata,
				 G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
				 error);
	if (proc == NULL || !g_subprocess_communicate_utf8(proc, NULL, NULL, &out, &err, error))
		return NULL;
	if (g_subprocess_get_exit_status(proc) != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "kl_logtool.py: %s", err);
		return NULL;
	}
	return g_steal_pointer(&out);
}

static void
extend_lines(const gchar *specs)
{
	g_auto(GStrv) lines = g_strsplit(specs, "\n", -1);

	for (guint i = 0; lines[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		if (lines[i][0] == '\0')
			continue;
		kl_test_run(&error, "tpm2_pcrextend", lines[i], NULL);
		g_assert_no_error(error);
	}
}

static JsonObject *
last_attestation(JsonObject *a)
{
	JsonArray *atts = json_object_get_array_member(a, "attestations");
	guint n = json_array_get_length(atts);
	g_assert_cmpuint(n, >, 0);
	return json_array_get_object_element(atts, n - 1);
}

static void
test_cycles(void)
{
	g_autoptr(JsonObject) a = NULL;
	JsonArray *types;

	assert_wait("passes", 2, 40);
	g_assert_cmpint(vint("fails"), ==, 0);
	a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	types = json_object_get_array_member(last_attestation(a), "evidence_types");
	g_assert_cmpuint(json_array_get_length(types), ==, 3);
	g_assert_cmpstr(json_array_get_string_element(types, 0), ==, "tpm_quote");
	g_assert_cmpstr(json_array_get_string_element(types, 1), ==, "uefi_log");
	g_assert_cmpstr(json_array_get_string_element(types, 2), ==, "ima_log");
	/* the info line says what the ima_log plugin reported it sent: the whole log first
	 * (boot_aggregate + 5) */
	if (!kl_test_agent_log_contains(
		agent, "submitted: tpm_quote, uefi_log, ima_log (6 new entries)")) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
}

static gint64
next_offset(void)
{
	g_autoptr(JsonObject) a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	JsonNode *st = json_object_get_member(a, "ima_state");

	if (st == NULL || JSON_NODE_HOLDS_NULL(st))
		return -1;
	return json_object_get_int_member(json_node_get_object(st), "next_offset");
}

/* a counter of the agent's metrics file, -1 when absent */
static gint64
metric(const gchar *name)
{
	g_autofree gchar *text = NULL;
	g_autofree gchar *needle = g_strdup_printf("\n%s ", name);
	const gchar *found;

	if (!g_file_get_contents(metrics_path, &text, NULL, NULL))
		return -1;
	found = strstr(text, needle);
	if (found == NULL)
		return -1;
	return g_ascii_strtoll(found + strlen(needle), NULL, 10);
}

static void
test_ima_grows(void)
{
	g_autoptr(GError) error = NULL;
	gint64 off0 = next_offset();
	gint64 deadline;

	g_assert_cmpint(off0, ==, 6); /* boot_aggregate + 5 files */
	for (guint i = 0; i < 3; i++) {
		g_autofree gchar *path = g_strdup_printf("/usr/bin/new-%u", i);
		g_autofree gchar *spec = logtool(&error, "append-ima", ima_path, path, "new", NULL);
		g_assert_no_error(error);
		extend_lines(spec);
	}
	deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
	while (next_offset() < off0 + 3 && g_get_monotonic_time() < deadline)
		g_usleep(200000);
	g_assert_cmpint(next_offset(), ==, off0 + 3);
	g_assert_cmpint(vint("fails"), ==, 0);
	/*
	 * the agent counts the entries the ima_log plugin reported it sent in
	 * accepted attestations: at least every entry the verifier has (an entry
	 * sent before its PCR extension is sent again, and counted again)
	 */
	deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
	while (metric("keylime_agent_ima_entries_sent_total") < off0 + 3 &&
	       g_get_monotonic_time() < deadline)
		g_usleep(200000);
	g_assert_cmpint(metric("keylime_agent_ima_entries_sent_total"), >=, off0 + 3);
}

static void
test_ima_allowlist(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	g_autoptr(JsonObject) a = NULL;
	g_autofree gchar *allow = NULL;
	g_autofree gchar *body = NULL;
	g_autofree gchar *spec = NULL;
	gint64 fails = vint("fails");
	gint64 passes;
	glong status = 0;

	/* every file measured so far is allowed: attestations keep passing */
	allow = logtool(&error, "allowlist", "--ima", ima_path, NULL);
	g_assert_no_error(error);
	body = g_strdup_printf("{\"agent_id\":\"%s\",\"ima_allowlist\":%s}", AGENT_ID, allow);
	reply = kl_test_peers_verifier_call(peers, "POST", "/_test/policy", body, &status, &error);
	g_assert_no_error(error);
	g_assert_cmpint(status, ==, 200);
	passes = vint("passes");
	assert_wait("passes", passes + 1, 20);
	/* a new, correctly measured file that the allowlist does not know fails */
	spec = logtool(&error, "append-ima", ima_path, "/usr/bin/unknown", "not allowed", NULL);
	g_assert_no_error(error);
	extend_lines(spec);
	assert_wait("fails", fails + 1, 30);
	a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	g_assert_nonnull(
	    strstr(json_object_get_string_member(a, "last_failure_reason"), "allowlist"));
	/* the agent re-sends from the last passed offset; dropping the allowlist passes again */
	g_clear_pointer(&reply, json_node_unref);
	g_free(body);
	body = g_strdup_printf("{\"agent_id\":\"%s\",\"ima_allowlist\":null}", AGENT_ID);
	reply = kl_test_peers_verifier_call(peers, "POST", "/_test/policy", body, &status, &error);
	g_assert_no_error(error);
	passes = vint("passes");
	assert_wait("passes", passes + 1, 30);
}

/* POST /_test/settings on the verifier */
static void
verifier_settings(const gchar *json)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	glong code = 0;

	reply = kl_test_peers_verifier_call(peers, "POST", "/_test/settings", json, &code, &error);
	g_assert_no_error(error);
	g_assert_cmpint(code, ==, 200);
}

/* replaces the IMA log with @text through a rename, as a new file */
static void
replace_ima_log(const gchar *text, gssize len)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *copy = g_strconcat(ima_path, ".new", NULL);

	g_file_set_contents(copy, text, len, &error);
	g_assert_no_error(error);
	g_assert_cmpint(g_rename(copy, ima_path), ==, 0);
}

/*
 * evidence over the verifier's max_upload_size: Keylime's web server answers
 * a bare 400 before it reads the body and closes the connection. The agent
 * names the cause and the setting once, sends nothing accepted, and carries
 * on when the log fits again.
 */
static void
test_upload_refused_400(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *text = NULL;
	g_autofree gchar *extra = NULL;
	g_autofree gchar *extra_path = g_strconcat(ima_path, ".extra", NULL);
	g_autoptr(GString) big = NULL;
	gsize len = 0;
	gint64 passes;
	gint64 fails = vint("fails");
	gint64 deadline;
	const gchar *nl;

	g_file_get_contents(ima_path, &text, &len, &error);
	g_assert_no_error(error);
	/* about 1.6 MiB of new lines (never extended: they are never accepted) */
	g_free(logtool(&error, "gen-ima", extra_path, "--count", "12000", NULL));
	g_assert_no_error(error);
	g_file_get_contents(extra_path, &extra, NULL, &error);
	g_assert_no_error(error);
	nl = strchr(extra, '\n'); /* without its boot_aggregate */
	g_assert_nonnull(nl);
	big = g_string_new_len(text, len);
	g_string_append(big, nl + 1);

	verifier_settings("{\"max_upload_mb\":1}");
	passes = vint("passes");
	replace_ima_log(big->str, big->len);
	deadline = g_get_monotonic_time() + 40 * G_USEC_PER_SEC;
	while (!kl_test_agent_log_contains(agent, "max_upload_size") &&
	       g_get_monotonic_time() < deadline)
		g_usleep(200000);
	if (!kl_test_agent_log_contains(agent, "max_upload_size")) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	g_assert_cmpint(vint("passes"), <=, passes + 1); /* one may have been under way */
	g_assert_cmpint(vint("fails"), ==, fails);

	/* the log fits again: attestations pass again */
	verifier_settings("{\"max_upload_mb\":100}");
	replace_ima_log(text, len);
	passes = vint("passes");
	assert_wait("passes", passes + 1, 60);
	g_assert_cmpint(vint("fails"), ==, fails);
	g_assert_true(kl_test_agent_is_running(agent));
	g_unlink(extra_path);
}

static void
test_ima_tampered(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *spec = NULL;
	g_autofree gchar *text = NULL;
	g_autoptr(JsonObject) a = NULL;
	g_autofree gchar *copy = g_strconcat(ima_path, ".new", NULL);
	gint64 fails = vint("fails");
	gchar *last;

	/*
	 * a line whose file hash was changed after measurement: template hash
	 * mismatch. It is appended and changed in a copy that then replaces the
	 * log, so that the agent never reads it unchanged (and sends it once).
	 */
	g_file_get_contents(ima_path, &text, NULL, &error);
	g_assert_no_error(error);
	g_file_set_contents(copy, text, -1, &error);
	g_assert_no_error(error);
	g_clear_pointer(&text, g_free);
	spec = logtool(&error, "append-ima", copy, "/usr/bin/tampered", "original", NULL);
	g_assert_no_error(error);
	g_file_get_contents(copy, &text, NULL, &error);
	g_assert_no_error(error);
	last = g_strrstr(text, "sha256:");
	g_assert_nonnull(last);
	last[7] = last[7] == 'a' ? 'b' : 'a';
	g_file_set_contents(copy, text, -1, &error);
	g_assert_no_error(error);
	g_assert_cmpint(g_rename(copy, ima_path), ==, 0);
	extend_lines(spec);
	assert_wait("fails", fails + 1, 30);
	a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	g_assert_nonnull(strstr(json_object_get_string_member(a, "last_failure_reason"), "IMA"));
	g_assert_true(kl_test_agent_is_running(agent));
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *specs = NULL;
	g_autofree gchar *digest = NULL;
	g_autofree gchar *ext = NULL;
	g_autofree gchar *pcr15 = NULL;
	g_autofree gchar *policy = NULL;
	int ret;

	g_test_init(&argc, &argv, NULL);
	if (!kl_test_have_plugin("ima_log") || !kl_test_have_plugin("uefi_log") ||
	    !kl_test_have_plugin("tpm_quote")) {
		return kl_test_skip_all(
		    "the tpm_quote, ima_log and uefi_log plugins are not all built");
	}
	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, "--quote-interval", "1", NULL);
	g_assert_no_error(error);

	ima_path =
	    g_build_filename(kl_test_peers_get_dir(peers), "ascii_runtime_measurements", NULL);
	uefi_path =
	    g_build_filename(kl_test_peers_get_dir(peers), "binary_bios_measurements", NULL);
	g_free(logtool(&error, "gen-ima", ima_path, "--count", "5", NULL));
	g_assert_no_error(error);
	g_free(logtool(&error, "gen-uefi", uefi_path, NULL));
	g_assert_no_error(error);
	specs = logtool(&error, "extends", "--uefi", uefi_path, "--ima", ima_path, NULL);
	g_assert_no_error(error);
	extend_lines(specs);
	digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, "logs", -1);
	ext = g_strdup_printf("15:sha256=%s", digest);
	kl_test_run(&error, "tpm2_pcrextend", ext, NULL);
	g_assert_no_error(error);
	pcr15 = kl_test_pcr_read(15, &error);
	g_assert_no_error(error);

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	metrics_path = g_build_filename(kl_test_peers_get_dir(peers), "keylime_agent.prom", NULL);
	kl_test_agent_set_string(agent, "metrics_file", metrics_path);
	kl_test_agent_set_string(agent, "ima_ml_path", ima_path);
	kl_test_agent_set_string(agent, "measuredboot_ml_path", uefi_path);
	policy =
	    g_strdup_printf("{\"tpm_policy\":{\"15\":[\"%s\"]},\"ima\":true,\"mb\":true}", pcr15);
	if (!kl_test_agent_start_enrolled(agent, AGENT_ID, policy)) {
		kl_test_agent_free(agent);
		kl_test_peers_free(peers);
		return 1;
	}

	g_test_add_func("/logs/cycles-quote-uefi-ima", test_cycles);
	g_test_add_func("/logs/ima-incremental", test_ima_grows);
	g_test_add_func("/logs/ima-allowlist", test_ima_allowlist);
	g_test_add_func("/logs/upload-refused-400", test_upload_refused_400);
	g_test_add_func("/logs/ima-tampered-line-fails", test_ima_tampered);
	ret = g_test_run();

	if (kl_test_agent_stop(agent, SIGTERM, 15) != 0)
		ret = 1;
	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	g_free(ima_path);
	g_free(uefi_path);
	g_free(metrics_path);
	return ret;
}
