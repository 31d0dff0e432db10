/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Recovery from the faults of the peers, against the test registrar + verifier
 * on swtpm; KL_RECOVERY_CASE picks one set (each a meson test of its own):
 *
 *   sessions  a verifier whose tokens live 10 s, with Keylime's session rate
 *             limits (15 per agent and 50 per address a minute, then 429 and a
 *             growing block): over a minute, no 429 and no missed attestation
 *   outages   the verifier killed and restarted after 30 s, the verifier hung
 *             (SIGSTOP) for 30 s, the registrar 30 s late, with the shipped
 *             backoff (1 s initial, 300 s maximum): the agent recovers at its
 *             next retry after the peer is back, and during an attestation
 *             outage no retry waits longer than the attestation cap
 *   answers   a verifier that answers phase 1 later than request_timeout (the
 *             agent waits longer and attests, one WARNING naming
 *             request_timeout), a 50 MiB echo of the evidence (accepted), an
 *             upload refused for size (one ERROR, the longest backoff), a
 *             verifier certificate from another CA and a port without TLS
 *             (each its own message)
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0c001"

static KlTestPeers *peers;
static KlTestAgent *agent;
static gchar *persist;
static guint16 verifier_port;

static gint64
vint(const gchar *member)
{
	return kl_test_peers_verifier_int(peers, AGENT_ID, member);
}

#define assert_wait kl_test_agent_assert_verifier_int

static void
start_verifier(const gchar *first_arg, ...)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *port = g_strdup_printf("%u", verifier_port);
	g_autoptr(GPtrArray) extra = g_ptr_array_new();
	va_list ap;

	va_start(ap, first_arg);
	for (const gchar *a = first_arg; a != NULL; a = va_arg(ap, const gchar *))
		g_ptr_array_add(extra, (gpointer)a);
	va_end(ap);
	while (extra->len < 4)
		g_ptr_array_add(extra, NULL);
	kl_test_peers_start_verifier(peers,
				     &error,
				     "--quote-interval",
				     "2",
				     "--persist",
				     persist,
				     "--port",
				     port,
				     g_ptr_array_index(extra, 0),
				     g_ptr_array_index(extra, 1),
				     g_ptr_array_index(extra, 2),
				     g_ptr_array_index(extra, 3),
				     NULL);
	g_assert_no_error(error);
	if (verifier_port == 0) {
		g_autofree gchar *url = g_strdup(kl_test_peers_verifier_url(peers));
		verifier_port = (guint16)g_ascii_strtoull(strrchr(url, ':') + 1, NULL, 10);
	}
}

static void
settings(const gchar *json)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	glong status = 0;

	reply =
	    kl_test_peers_verifier_call(peers, "POST", "/_test/settings", json, &status, &error);
	g_assert_no_error(error);
	g_assert_cmpint(status, ==, 200);
}

/* the verifier's evidence_received_at of each accepted attestation (seconds, wall clock) */
static GArray *
evidence_times(void)
{
	g_autoptr(JsonObject) a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	JsonArray *list = json_object_get_array_member(a, "attestations");
	GArray *times = g_array_new(FALSE, FALSE, sizeof(gdouble));

	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonObject *at = json_array_get_object_element(list, i);
		gdouble t;
		if (!json_object_has_member(at, "evidence_received_at") ||
		    g_strcmp0(json_object_get_string_member_with_default(at, "evaluation", ""),
			      "pass") != 0)
			continue;
		t = json_object_get_double_member(at, "evidence_received_at");
		g_array_append_val(times, t);
	}
	return times;
}

/* ------------------------------------------------------------------ the agent's retries */

typedef struct {
	gdouble at_s;	 /* wall clock of the log line */
	gdouble delay_s; /* the announced wait */
} Retry;

static gdouble
line_time(const gchar *line)
{
	g_autofree gchar *stamp = g_strndup(line, 24);
	g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(stamp, NULL);

	return dt != NULL ? (gdouble)g_date_time_to_unix(dt) + g_date_time_get_microsecond(dt) / 1e6
			  : -1;
}

/* every "retrying in X" of the agent's log, in order */
static GArray *
retries(KlTestAgent *a)
{
	g_autofree gchar *log = kl_test_agent_get_log(a);
	g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
	g_autoptr(GRegex) re =
	    g_regex_new("retrying in ([0-9.]+) (ms|s|min)", G_REGEX_OPTIMIZE, 0, NULL);
	GArray *out = g_array_new(FALSE, FALSE, sizeof(Retry));

	for (guint i = 0; lines[i] != NULL; i++) {
		g_autoptr(GMatchInfo) m = NULL;
		Retry r;

		if (!g_regex_match(re, lines[i], 0, &m))
			continue;
		{
			g_autofree gchar *num = g_match_info_fetch(m, 1);
			g_autofree gchar *unit = g_match_info_fetch(m, 2);
			r.delay_s = g_ascii_strtod(num, NULL);
			if (g_strcmp0(unit, "ms") == 0)
				r.delay_s /= 1000;
			else if (g_strcmp0(unit, "min") == 0)
				r.delay_s *= 60;
		}
		r.at_s = line_time(lines[i]);
		if (r.at_s > 0)
			g_array_append_val(out, r);
	}
	return out;
}

/*
 * "Recovery within one backoff step": the first attempt the agent makes after
 * the peer is back (at @back_s) succeeds (@ok_s, within slack_s of the time
 * it was scheduled for), or the attempt in flight when it came back does.
 * During the outage no retry waited longer than @cap_s (0: no check).
 */
static void
assert_one_step(KlTestAgent *a, gdouble down_s, gdouble back_s, gdouble ok_s, gdouble cap_s)
{
	g_autoptr(GArray) r = retries(a);
	gdouble next = -1;
	gdouble longest = 0;
	guint during = 0;
	const gdouble slack_s = 6;

	for (guint i = 0; i < r->len; i++) {
		Retry *x = &g_array_index(r, Retry, i);
		gdouble due = x->at_s + x->delay_s;
		if (x->at_s < down_s - 0.5)
			continue;
		during++;
		longest = MAX(longest, x->delay_s);
		/* the first attempt that starts after the peer is back */
		if (due >= back_s && next < 0)
			next = due;
	}
	/* no retry due after the peer came back: the attempt in flight got through */
	if (next < 0)
		next = back_s;
	g_test_message("outage: %u retries, longest wait %.1f s; back at +%.1f s, attempt due "
		       "at +%.1f s, success at +%.1f s",
		       during,
		       longest,
		       back_s - down_s,
		       next - down_s,
		       ok_s - down_s);
	if (during == 0 || ok_s > next + slack_s || (cap_s > 0 && longest > cap_s)) {
		kl_test_agent_dump_log(a);
		g_assert_cmpuint(during, >, 0);
		g_assert_cmpfloat(ok_s, <=, next + slack_s);
		g_assert_cmpfloat(longest, <=, cap_s);
	}
}

static gdouble
now_s(void)
{
	return (gdouble)g_get_real_time() / 1e6;
}

/* the wall time of the first accepted attestation after @after_s, waiting up to @timeout_s */
static gdouble
first_pass_after(KlTestAgent *a, gdouble after_s, gdouble timeout_s)
{
	gint64 end = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

	while (g_get_monotonic_time() < end) {
		g_autoptr(GArray) t = evidence_times();
		for (guint i = 0; i < t->len; i++)
			if (g_array_index(t, gdouble, i) > after_s)
				return g_array_index(t, gdouble, i);
		g_usleep(200 * 1000);
	}
	kl_test_agent_dump_log(a);
	g_error("no accepted attestation within %.0f s", timeout_s);
	return -1;
}

/* ------------------------------------------------------------------ sessions */

/*
 * Tokens of 10 s and Keylime's session rate limits, over a minute of 2 s
 * attestations: the agent renews its token in time (a quarter of the lifetime
 * before expiry) and never faster than the limit allows, so no 429, and no
 * attestation is missed (no gap longer than one interval beyond the schedule).
 */
static void
test_session_lifetime(void)
{
	g_autoptr(GArray) t = NULL;
	gint64 sessions0 = vint("sessions_created");
	gdouble start = now_s();
	gdouble longest = 0;
	guint n = 0;

	g_usleep(62 * G_USEC_PER_SEC);
	t = evidence_times();
	for (guint i = 1; i < t->len; i++) {
		gdouble prev = g_array_index(t, gdouble, i - 1);
		gdouble cur = g_array_index(t, gdouble, i);
		if (prev < start)
			continue;
		n++;
		longest = MAX(longest, cur - prev);
	}
	g_test_message("%u attestations in 62 s, longest gap %.2f s, %" G_GINT64_FORMAT
		       " sessions, %" G_GINT64_FORMAT " refused (429)",
		       n,
		       longest,
		       vint("sessions_created") - sessions0,
		       vint("sessions_rate_limited"));
	if (vint("sessions_rate_limited") != 0 || vint("rate_limited") != 0 || longest > 4.0 ||
	    n < 20 || vint("sessions_created") - sessions0 < 4) {
		kl_test_agent_dump_log(agent);
		g_assert_cmpint(vint("sessions_rate_limited"), ==, 0);
		g_assert_cmpint(vint("rate_limited"), ==, 0);
		/* the interval is 2 s: one interval late at most */
		g_assert_cmpfloat(longest, <=, 4.0);
		g_assert_cmpuint(n, >=, 20);
		/* tokens of 10 s really were renewed */
		g_assert_cmpint(vint("sessions_created") - sessions0, >=, 4);
	}
	g_assert_true(kl_test_agent_is_running(agent));
}

/* ------------------------------------------------------------------ outages */

/* the attestation cap with a 2 s verifier interval: 4 intervals (kl-agent.c) */
#define ATTEST_CAP_S 8.0

static void
test_verifier_killed(void)
{
	gdouble down;
	gdouble back;
	gdouble ok;

	assert_wait(agent, "passes", vint("passes") + 1, 30);
	down = now_s();
	kl_test_peers_signal_verifier(peers, SIGKILL);
	kl_test_peers_stop_verifier(peers);
	g_usleep(30 * G_USEC_PER_SEC);
	start_verifier(NULL);
	back = now_s();
	ok = first_pass_after(agent, back, 60);
	assert_one_step(agent, down, back, ok, ATTEST_CAP_S);
}

static void
test_verifier_hung(void)
{
	gdouble down;
	gdouble back;
	gdouble ok;

	assert_wait(agent, "passes", vint("passes") + 1, 30);
	down = now_s();
	kl_test_peers_signal_verifier(peers, SIGSTOP);
	g_usleep(30 * G_USEC_PER_SEC);
	kl_test_peers_signal_verifier(peers, SIGCONT);
	back = now_s();
	ok = first_pass_after(agent, back, 60);
	assert_one_step(agent, down, back, ok, ATTEST_CAP_S);
}

static void
test_registrar_late(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) late = NULL;
	guint16 port = kl_test_free_port();
	gdouble down = now_s();
	gdouble back;
	gdouble ok = -1;
	gint64 activations;

	kl_test_agent_stop(agent, SIGTERM, 20);
	kl_test_peers_stop_registrar(peers);
	late = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_set_int(late, "registrar_port", port);
	kl_test_agent_set_int(late, "exponential_backoff_initial_delay", 1000);
	kl_test_agent_set_int(late, "exponential_backoff_max_delay", 10000);
	kl_test_agent_set_int(late, "exponential_backoff_max_retries", 5);
	kl_test_agent_start(late, &error, NULL);
	g_assert_no_error(error);
	g_usleep(30 * G_USEC_PER_SEC);
	g_assert_true(kl_test_agent_is_running(late));
	kl_test_peers_start_registrar(peers, port, FALSE, &error, NULL);
	g_assert_no_error(error);
	back = now_s();
	if (!kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 1, 40)) {
		kl_test_agent_dump_log(late);
		g_assert_not_reached();
	}
	activations = kl_test_peers_registrar_int(peers, AGENT_ID, "activations");
	g_assert_cmpint(activations, ==, 1);
	{
		/* the wall time of the agent's "registered and activated" line */
		g_autofree gchar *log = kl_test_agent_get_log(late);
		g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
		for (guint i = 0; lines[i] != NULL && ok < 0; i++)
			if (strstr(lines[i], "registered and activated") != NULL)
				ok = line_time(lines[i]);
	}
	g_assert_cmpfloat(ok, >, 0);
	assert_one_step(late, down, back, ok, 0);
	/* and it attests */
	(void)first_pass_after(late, back, 60);
	kl_test_agent_stop(late, SIGTERM, 20);
}

/* ------------------------------------------------------------------ answers */

/*
 * Phase 1 answered 3 s late with request_timeout 2 s (a verifier evaluating a
 * large runtime policy): the first attempt times out, the next waits longer and
 * gets the answer, one WARNING names request_timeout and a value that works, and
 * the later cycles pass without timeouts.
 */
static void
test_slow_phase1(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) a = NULL;
	g_autofree gchar *log = NULL;
	gint64 passes;
	guint timeouts = 0;

	kl_test_agent_stop(agent, SIGTERM, 20);
	a = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_set_int(a, "request_timeout", 2000);
	settings("{\"phase1_delay\":3}");
	passes = vint("passes");
	kl_test_agent_start(a, &error, NULL);
	g_assert_no_error(error);
	assert_wait(a, "passes", passes + 3, 90);
	settings("{\"phase1_delay\":0}");
	log = kl_test_agent_get_log(a);
	for (const gchar *p = log; (p = strstr(p, "took the request but did not answer")) != NULL;
	     p++)
		timeouts++;
	g_test_message("%u timed-out phase 1 attempts", timeouts);
	if (timeouts < 1 || timeouts > 2 ||
	    !kl_test_agent_log_contains(a,
					"WARNING kl-core: the verifier answered POST "
					"https://127.0.0.1:") ||
	    !kl_test_agent_log_contains(a, "set request_timeout to ")) {
		kl_test_agent_dump_log(a);
		g_assert_cmpuint(timeouts, >=, 1);
		g_assert_cmpuint(timeouts, <=, 2);
		g_assert_not_reached();
	}
	kl_test_agent_stop(a, SIGTERM, 20);
}

/* the verifier echoes 50 MiB of evidence in its 202: an accepted submission */
static void
test_echo_50mb(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) once = NULL;
	gint status;

	settings("{\"echo_mb\":50}");
	once = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(once, &error, "--once", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(once, 90);
	settings("{\"echo_mb\":0}");
	if (status != 0 || !kl_test_agent_log_contains(once, "attestation 1 submitted"))
		kl_test_agent_dump_log(once);
	g_assert_cmpint(status, ==, 0);
}

/* evidence refused for its size (413): one ERROR naming max_upload_size, then the longest wait */
static void
test_upload_refused(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) a = NULL;
	g_autoptr(GArray) r = NULL;
	g_autofree gchar *log = NULL;
	guint errors = 0;
	gint64 served = vint("faults_served");

	a = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_set_int(a, "exponential_backoff_max_delay", 20000);
	kl_test_peers_add_faults(peers, "{\"phase2\":[413,413]}", &error);
	g_assert_no_error(error);
	kl_test_agent_start(a, &error, NULL);
	g_assert_no_error(error);
	assert_wait(a, "faults_served", served + 1, 30);
	/* the agent waits the longest backoff (20 s) instead of sending again at once */
	g_usleep(4 * G_USEC_PER_SEC);
	g_assert_cmpint(vint("faults_served"), ==, served + 1);
	log = kl_test_agent_get_log(a);
	for (const gchar *p = log; (p = strstr(p, "ERROR kl-core: ")) != NULL; p++)
		errors++;
	r = retries(a);
	if (errors != 1 || !kl_test_agent_log_contains(a, "max_upload_size") || r->len == 0 ||
	    g_array_index(r, Retry, r->len - 1).delay_s < 20) {
		kl_test_agent_dump_log(a);
		g_assert_cmpuint(errors, ==, 1);
		g_assert_cmpuint(r->len, >, 0);
		g_assert_cmpfloat(g_array_index(r, Retry, r->len - 1).delay_s, >=, 20);
		g_assert_not_reached();
	}
	kl_test_agent_stop(a, SIGTERM, 20);
	kl_test_peers_add_faults(peers, "{}", &error);
	{
		g_autoptr(JsonNode) reply = NULL;
		glong code = 0;
		reply = kl_test_peers_verifier_call(
		    peers, "POST", "/_test/faults/clear", "{}", &code, &error);
		g_assert_no_error(error);
	}
}

/* a CA that did not issue the verifier's certificate, and a port without TLS: distinct causes */
static void
test_tls_causes(void)
{
	const struct {
		const gchar *option;
		const gchar *value;
		const gchar *says;
	} cases[] = {
		/* the registrar's CA: a real CA, not the verifier's */
		{ "verifier_tls_ca_cert", NULL, "certificate was not issued by a CA in " },
		/* the registrar's plain HTTP port */
		{ "verifier_url", NULL, "does not speak TLS" },
	};
	g_autofree gchar *other_ca = NULL;
	g_autofree gchar *plain_url = NULL;

	{
		/* a CA of its own, like a wrong cacert.crt */
		g_autoptr(GError) error = NULL;
		g_autofree gchar *dir =
		    g_build_filename(kl_test_peers_get_dir(peers), "other", NULL);
		g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
		other_ca = g_build_filename(dir, "ca.crt", NULL);
		g_assert_true(kl_test_run(&error,
					  "openssl",
					  "req",
					  "-x509",
					  "-newkey",
					  "ec",
					  "-pkeyopt",
					  "ec_paramgen_curve:P-256",
					  "-nodes",
					  "-keyout",
					  "/dev/null",
					  "-out",
					  other_ca,
					  "-subj",
					  "/CN=another CA",
					  "-days",
					  "2",
					  NULL));
		g_assert_no_error(error);
	}
	plain_url = g_strdup_printf("https://127.0.0.1:%u", kl_test_peers_registrar_port(peers));
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(KlTestAgent) once =
		    kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
		gint status;

		kl_test_agent_set_int(once, "exponential_backoff_max_retries", 0);
		kl_test_agent_set_string(once, cases[i].option, i == 0 ? other_ca : plain_url);
		kl_test_agent_start(once, &error, "--once", NULL);
		g_assert_no_error(error);
		status = kl_test_agent_wait(once, 60);
		if (status != 7 || !kl_test_agent_log_contains(once, cases[i].says) ||
		    !kl_test_agent_log_contains(once, cases[i].option)) {
			kl_test_agent_dump_log(once);
			g_assert_cmpint(status, ==, 7);
			g_assert_not_reached();
		}
		if (i == 0)
			g_assert_true(kl_test_agent_log_contains(once, other_ca));
	}
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	const gchar *which = g_getenv("KL_RECOVERY_CASE");
	int ret;

	g_test_init(&argc, &argv, NULL);
	if (which == NULL) {
		g_print("Bail out! set KL_RECOVERY_CASE (sessions, outages, answers)\n");
		return 1;
	}
	peers = kl_test_peers_new();
	persist = g_build_filename(kl_test_peers_get_dir(peers), "enrollments.jsonl", NULL);
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	if (g_strcmp0(which, "sessions") == 0)
		start_verifier("--session-lifetime", "10", NULL);
	else
		start_verifier(NULL);

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	if (g_strcmp0(which, "outages") == 0) {
		/* the shipped backoff, not the harness's short one */
		kl_test_agent_set_int(agent, "exponential_backoff_initial_delay", 1000);
		kl_test_agent_set_int(agent, "exponential_backoff_max_delay", 300000);
		kl_test_agent_set_int(agent, "exponential_backoff_max_retries", 5);
	}
	/* PCR 15: nobody extends it here */
	if (!kl_test_agent_start_enrolled(
		agent,
		AGENT_ID,
		"{\"tpm_policy\":{\"15\":[\"0000000000000000000000000000000000000000"
		"000000000000000000000000\"]}}")) {
		kl_test_agent_free(agent);
		kl_test_peers_free(peers);
		return 1;
	}
	assert_wait(agent, "passes", 1, 60);

	if (g_strcmp0(which, "sessions") == 0) {
		g_test_add_func("/recovery/session-lifetime-10s-rate-limits",
				test_session_lifetime);
	} else if (g_strcmp0(which, "outages") == 0) {
		g_test_add_func("/recovery/verifier-killed-30s", test_verifier_killed);
		g_test_add_func("/recovery/verifier-hung-30s", test_verifier_hung);
		g_test_add_func("/recovery/registrar-late-30s", test_registrar_late);
	} else {
		g_test_add_func("/recovery/slow-phase1", test_slow_phase1);
		g_test_add_func("/recovery/echo-50mb", test_echo_50mb);
		g_test_add_func("/recovery/upload-refused-413", test_upload_refused);
		g_test_add_func("/recovery/tls-causes", test_tls_causes);
	}
	ret = g_test_run();

	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	g_free(persist);
	return ret;
}
