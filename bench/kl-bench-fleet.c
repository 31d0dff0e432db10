/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fleet benchmark: N agents (the real binary with --avoid-tpm, each with its
 * own keylime_dir and software TPM) against the project's test registrar and
 * verifier (tests/peers). It
 *
 *   1. provisions the fleet: each agent registers once (--once) and is enrolled;
 *   2. starts all N agents at once (a fleet reboot or rollout) and measures the
 *      verifier's first contact from each agent, per second;
 *   3. measures how the steady-state requests spread over one interval;
 *   4. stops the verifier for a while (an outage), starts it again on the same
 *      port with its enrollments, and measures the first contacts after it;
 *   5. measures the steady-state spread again, and the agents' CPU and RSS.
 *
 * The first-contact figures are compared with the goal (peak per second at
 * most 2x the mean over the splay window) and with what an ideal uniform
 * random spread of N contacts over the same window gives (simulated), since
 * N independent agents cannot do better than that without talking to each
 * other.
 *
 *   kl-bench-fleet [--agents 200] [--interval 60] [--outage 90] [--splay 100] [--jitter 10]
 */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kl-test-peers.h"

typedef struct {
	gchar *id;
	gchar *keylime_dir;
	KlTestAgent *agent;
	gint pid;
	guint64 ticks0;
} KlBenchNode;

static KlTestPeers *peers;
static gchar *persist;
static guint16 verifier_port;
static gint n_agents = 200;
static gint interval = 60;
static gint outage = -1;
static gint splay = 100;
static gint jitter = 10;

static gdouble
kl_bench_now(void)
{
	return (gdouble)g_get_real_time() / 1e6;
}

static gboolean
kl_bench_start_verifier(GError **error)
{
	g_autofree gchar *port = g_strdup_printf("%u", verifier_port);
	g_autofree gchar *quote = g_strdup_printf("%d", interval);

	return kl_test_peers_start_verifier(peers,
					    error,
					    "--quote-interval",
					    quote,
					    "--persist",
					    persist,
					    "--port",
					    port,
					    "--session-rate-limit",
					    "1000",
					    "--session-rate-limit-ip",
					    "1000000",
					    NULL);
}

static KlTestAgent *
kl_bench_agent_new(KlBenchNode *node)
{
	KlTestAgent *agent = kl_test_agent_new(peers, node->id, node->keylime_dir);

	/* the agent's own defaults, except the interval the benchmark is run with */
	kl_test_agent_set_int(agent, "attestation_interval_seconds", interval);
	kl_test_agent_set_int(agent, "splay_percent", splay);
	kl_test_agent_set_int(agent, "jitter_percent", jitter);
	kl_test_agent_set_int(agent, "exponential_backoff_initial_delay", 10000);
	kl_test_agent_set_int(agent, "exponential_backoff_max_delay", 300000);
	kl_test_agent_set_int(agent, "request_timeout", 5000);
	kl_test_agent_set(agent, "disabled_plugins", "[\"uefi_log\", \"iak_idevid\", \"ima_log\"]");
	return agent;
}

/* utime + stime in clock ticks, 0 when the process is gone */
static guint64
kl_bench_cpu_ticks(gint pid)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%d/stat", pid);
	g_autofree gchar *text = NULL;
	g_auto(GStrv) fields = NULL;
	const gchar *p;

	if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL))
		return 0;
	p = strrchr(text, ')');
	if (p == NULL)
		return 0;
	fields = g_strsplit(p + 2, " ", 0);
	if (g_strv_length(fields) < 13)
		return 0;
	return g_ascii_strtoull(fields[11], NULL, 10) + g_ascii_strtoull(fields[12], NULL, 10);
}

static gint64
kl_bench_rss_kb(gint pid)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%d/status", pid);
	g_autofree gchar *text = NULL;
	const gchar *p;

	if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL))
		return -1;
	p = strstr(text, "VmRSS:");
	return p != NULL ? g_ascii_strtoll(p + 6, NULL, 10) : -1;
}

/* the agent's pid, from its own status file */
static gint
kl_bench_pid(KlBenchNode *node)
{
	g_autofree gchar *path = g_build_filename(node->keylime_dir, "agent_status.json", NULL);
	g_autofree gchar *text = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;

	if (!g_file_get_contents(path, &text, NULL, NULL) ||
	    !json_parser_load_from_data(parser, text, -1, NULL))
		return -1;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
		return -1;
	return (gint)json_object_get_int_member_with_default(json_node_get_object(root), "pid", -1);
}

/* [time, agent_id, kind] of every agent request the running verifier saw */
static JsonArray *
kl_bench_contacts(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	glong status = 0;

	reply = kl_test_peers_verifier_call(peers, "GET", "/_test/contacts", NULL, &status, &error);
	if (reply == NULL || status != 200 || !JSON_NODE_HOLDS_OBJECT(reply)) {
		g_printerr("GET /_test/contacts failed: %s\n",
			   error ? error->message : "bad reply");
		return NULL;
	}
	return json_array_ref(
	    json_object_get_array_member(json_node_get_object(reply), "contacts"));
}

/* each agent's first contact at or after @since (seconds after @since), sorted */
static GArray *
kl_bench_first_contacts(JsonArray *contacts, gdouble since)
{
	g_autoptr(GHashTable) first =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	GArray *times = g_array_new(FALSE, FALSE, sizeof(gdouble));
	GHashTableIter iter;
	gpointer value;

	for (guint i = 0; contacts != NULL && i < json_array_get_length(contacts); i++) {
		JsonArray *c = json_array_get_array_element(contacts, i);
		gdouble t = json_array_get_double_element(c, 0);
		const gchar *id = json_array_get_string_element(c, 1);
		gdouble *seen;

		if (t < since || id == NULL)
			continue;
		seen = g_hash_table_lookup(first, id);
		if (seen == NULL) {
			seen = g_new(gdouble, 1);
			*seen = t;
			g_hash_table_insert(first, g_strdup(id), seen);
		} else if (t < *seen) {
			*seen = t;
		}
	}
	g_hash_table_iter_init(&iter, first);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		gdouble d = *(gdouble *)value - since;
		g_array_append_val(times, d);
	}
	return times;
}

static gint
kl_bench_cmp_double(gconstpointer a, gconstpointer b)
{
	gdouble x = *(const gdouble *)a;
	gdouble y = *(const gdouble *)b;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* a uniformly random one-second bin of @window s (one draw: MIN() would take two) */
static guint
kl_bench_random_bin(GRand *rand, gdouble window, guint bins)
{
	guint b = (guint)(g_rand_double(rand) * window);

	return MIN(b, bins - 1);
}

/*
 * the expected largest one-second count of @n uniform random contacts over
 * @window s, and in @meet the share of draws whose peak is at most 2x the
 * mean. @choices 1: each contact picks its second at random (independent
 * agents); 2: it takes the less busy of two random seconds, which needs the
 * load of every second (coordination the protocol does not offer).
 */
static gdouble
kl_bench_ideal_peak(guint n, gdouble window, guint choices, gdouble *meet)
{
	guint bins = (guint)ceil(window);
	g_autofree guint *count = g_new0(guint, MAX(bins, 1));
	g_autoptr(GRand) rand = g_rand_new_with_seed(12345);
	guint64 sum = 0;
	guint met = 0;
	const guint trials = 20000;

	for (guint t = 0; t < trials; t++) {
		guint peak = 0;
		memset(count, 0, sizeof(guint) * MAX(bins, 1));
		for (guint i = 0; i < n; i++) {
			guint b = kl_bench_random_bin(rand, window, bins);
			for (guint c = 1; c < choices; c++) {
				guint other = kl_bench_random_bin(rand, window, bins);
				if (count[other] < count[b])
					b = other;
			}
			count[b]++;
			peak = MAX(peak, count[b]);
		}
		sum += peak;
		if (peak <= 2.0 * n / window)
			met++;
	}
	*meet = (gdouble)met / trials;
	return (gdouble)sum / trials;
}

/* prints the per-second rate of first contacts; returns peak / mean over @window */
static gdouble
kl_bench_report_first(const gchar *what, GArray *times, gdouble window)
{
	guint bins =
	    times->len > 0 ? (guint)floor(g_array_index(times, gdouble, times->len - 1)) + 1 : 1;
	g_autofree guint *count = g_new0(guint, bins);
	guint peak = 0;
	guint peak5 = 0;
	gdouble mean_window = (gdouble)times->len / window;
	gdouble span;
	gdouble ideal;
	gdouble meet;
	gdouble two;
	gdouble two_meet;

	for (guint i = 0; i < times->len; i++) {
		guint b = MIN((guint)floor(g_array_index(times, gdouble, i)), bins - 1);
		count[b]++;
		peak = MAX(peak, count[b]);
	}
	for (guint b = 0; b + 5 <= bins; b++) {
		guint sum = 0;
		for (guint k = 0; k < 5; k++)
			sum += count[b + k];
		peak5 = MAX(peak5, sum);
	}
	span = times->len > 0 ? g_array_index(times, gdouble, times->len - 1) -
				    g_array_index(times, gdouble, 0)
			      : 0;
	ideal = kl_bench_ideal_peak(times->len, window, 1, &meet);
	two = kl_bench_ideal_peak(times->len, window, 2, &two_meet);
	printf("%s: %u agents made their first verifier contact from %.1f s to %.1f s after it "
	       "(span %.1f s)\n",
	       what,
	       times->len,
	       times->len > 0 ? g_array_index(times, gdouble, 0) : 0.0,
	       times->len > 0 ? g_array_index(times, gdouble, times->len - 1) : 0.0,
	       span);
	printf("  first contacts per second: peak %u, mean %.2f over the %.0f s splay window "
	       "(%.2f over the span): peak/mean %.2f\n",
	       peak,
	       mean_window,
	       window,
	       span > 0 ? (gdouble)times->len / span : 0.0,
	       mean_window > 0 ? peak / mean_window : 0.0);
	printf("  per 5 s: peak %u, mean %.2f: peak/mean %.2f\n",
	       peak5,
	       mean_window * 5,
	       mean_window > 0 ? peak5 / (mean_window * 5) : 0.0);
	printf("  an ideal uniform random spread of %u contacts over %.0f s peaks at %.2f per "
	       "second on average (%.2fx the mean); its peak is at most 2x the mean in %.1f%% of "
	       "draws\n",
	       times->len,
	       window,
	       ideal,
	       mean_window > 0 ? ideal / mean_window : 0.0,
	       100.0 * meet);
	printf("  with coordination the protocol does not offer: slots handed out by the verifier "
	       "peak at %.0f (%.2fx); the less busy of two random seconds (the verifier's load "
	       "known) at %.2f (%.2fx), at most 2x in %.1f%% of draws\n",
	       ceil(times->len / window),
	       mean_window > 0 ? ceil(times->len / window) / mean_window : 0.0,
	       two,
	       mean_window > 0 ? two / mean_window : 0.0,
	       100.0 * two_meet);
	printf("  per second:");
	for (guint b = 0; b < bins; b++)
		printf(" %u", count[b]);
	printf("\n");
	return mean_window > 0 ? peak / mean_window : 0.0;
}

/* phase-1 requests in [@from, @from + interval): how they spread over the interval */
static gdouble
kl_bench_report_steady(const gchar *what, JsonArray *contacts, gdouble from)
{
	g_autoptr(GArray) phases = g_array_new(FALSE, FALSE, sizeof(gdouble));
	g_autofree guint *count = g_new0(guint, (gsize)interval);
	guint peak = 0;
	guint empty = 0;
	gdouble gap = 0;
	gdouble covered;

	for (guint i = 0; contacts != NULL && i < json_array_get_length(contacts); i++) {
		JsonArray *c = json_array_get_array_element(contacts, i);
		gdouble t = json_array_get_double_element(c, 0) - from;
		if (t < 0 || t >= interval ||
		    g_strcmp0(json_array_get_string_element(c, 2), "phase1") != 0)
			continue;
		g_array_append_val(phases, t);
		count[MIN((guint)t, (guint)interval - 1)]++;
		peak = MAX(peak, count[MIN((guint)t, (guint)interval - 1)]);
	}
	g_array_sort(phases, kl_bench_cmp_double);
	for (gint b = 0; b < interval; b++)
		if (count[b] == 0)
			empty++;
	/* the largest circular gap between consecutive requests */
	for (guint i = 0; i < phases->len; i++) {
		gdouble a = g_array_index(phases, gdouble, i);
		gdouble b = i + 1 < phases->len ? g_array_index(phases, gdouble, i + 1)
						: g_array_index(phases, gdouble, 0) + interval;
		gap = MAX(gap, b - a);
	}
	covered = phases->len > 1 ? interval - gap : 0;
	printf("%s: %u attestations in one %d s interval; per second: mean %.2f, peak %u, "
	       "%u empty seconds; largest gap %.1f s: the requests cover %.1f s of the %d s "
	       "(%.0f%%)\n",
	       what,
	       phases->len,
	       interval,
	       (gdouble)phases->len / interval,
	       peak,
	       empty,
	       gap,
	       covered,
	       interval,
	       100.0 * covered / interval);
	return covered / interval;
}

static void
kl_bench_sleep_until(gdouble t)
{
	while (kl_bench_now() < t)
		g_usleep((gulong)MIN((t - kl_bench_now()) * 1e6 + 1000, 1e6));
}

int
main(int argc, char **argv)
{
	GOptionEntry entries[] = {
		{ "agents", 0, 0, G_OPTION_ARG_INT, &n_agents, "Number of agents (200)", "N" },
		{ "interval",
		  0,
		  0,
		  G_OPTION_ARG_INT,
		  &interval,
		  "Attestation interval of the verifier and the agents, s (60)",
		  "S" },
		{ "outage",
		  0,
		  0,
		  G_OPTION_ARG_INT,
		  &outage,
		  "Verifier outage, s (1.5 intervals)",
		  "S" },
		{ "splay",
		  0,
		  0,
		  G_OPTION_ARG_INT,
		  &splay,
		  "splay_percent of the agents (100)",
		  "P" },
		{ "jitter",
		  0,
		  0,
		  G_OPTION_ARG_INT,
		  &jitter,
		  "jitter_percent of the agents (10)",
		  "P" },
		{ NULL },
	};
	g_autoptr(GOptionContext) octx = g_option_context_new("- fleet benchmark");
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonArray) contacts = NULL;
	g_autoptr(GArray) first = NULL;
	g_autofree KlBenchNode *nodes = NULL;
	g_autofree gchar *policy = NULL;
	gchar *fake_argv[] = { argv[0], NULL };
	gchar **fake = fake_argv;
	gint fake_argc = 1;
	gdouble window;
	gdouble t_start, t_started, t_steady, t_down, t_up, t_steady2, t_end;
	gdouble ratio_restart, ratio_outage, cover1, cover2;
	guint64 cpu_ticks = 0;
	gint64 rss_sum = 0, rss_max = 0;
	guint rss_n = 0;
	gint64 attestations = 0;
	gint ret = 0;

	g_option_context_add_main_entries(octx, entries, NULL);
	if (!g_option_context_parse(octx, &argc, &argv, &error)) {
		g_printerr("%s\n", error->message);
		return 2;
	}
	if (outage < 0)
		outage = interval * 3 / 2;
	if (n_agents < 1 || interval < 2 || splay < 0 || splay > 100 || jitter < 0 || jitter > 50) {
		g_printerr("--agents >= 1, --interval >= 2, --splay 0..100, --jitter 0..50\n");
		return 2;
	}
	window = MIN((gdouble)interval * splay / 100.0, 120.0);
	if (window < 1)
		window = 1;
	g_setenv("G_TEST_SRCDIR", KL_BENCH_TESTS_SRCDIR, FALSE);
	g_setenv("KL_TEST_AGENT", KL_BENCH_AGENT, FALSE);
	g_setenv("KL_TEST_PLUGINDIR", KL_BENCH_PLUGINDIR, FALSE);
	g_unsetenv("KL_TEST_TCTI");
	g_test_init(&fake_argc, &fake, NULL);

	printf("kl-bench-fleet: %d agents (--avoid-tpm), interval %d s, splay_percent %d (window "
	       "%.0f s), jitter_percent %d, verifier outage %d s\n\n",
	       n_agents,
	       interval,
	       splay,
	       window,
	       jitter,
	       outage);
	fflush(stdout);

	peers = kl_test_peers_new();
	persist = g_build_filename(kl_test_peers_get_dir(peers), "enrollments.jsonl", NULL);
	verifier_port = kl_test_free_port();
	if (!kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL) ||
	    !kl_bench_start_verifier(&error)) {
		g_printerr("cannot start the test peers: %s\n", error->message);
		kl_test_peers_free(peers);
		return 1;
	}

	/* 1. provisioning: register every agent once (its software TPM is kept), enroll it */
	nodes = g_new0(KlBenchNode, n_agents);
	for (gint i = 0; i < n_agents; i++) {
		g_autofree gchar *dir = NULL;
		nodes[i].id = g_strdup_printf("f1ee7000-0000-4000-8000-%012x", i);
		dir = g_strdup_printf("%s/fleet/%d", kl_test_peers_get_dir(peers), i);
		g_mkdir_with_parents(dir, 0700);
		nodes[i].keylime_dir = g_steal_pointer(&dir);
	}
	for (gint i = 0; i < n_agents; i += 8) {
		KlTestAgent *batch[8] = { NULL };
		for (gint k = 0; k < 8 && i + k < n_agents; k++) {
			batch[k] = kl_bench_agent_new(&nodes[i + k]);
			kl_test_agent_set_int(batch[k], "exponential_backoff_max_retries", 0);
			if (!kl_test_agent_start(batch[k], &error, "--avoid-tpm", "--once", NULL))
				g_error("cannot start agent %d: %s", i + k, error->message);
		}
		for (gint k = 0; k < 8 && i + k < n_agents; k++) {
			/* not enrolled yet: exit status 7 once registered */
			gint status = kl_test_agent_wait(batch[k], 120);
			if (status != 7 || kl_test_peers_registrar_int(
					       peers, nodes[i + k].id, "activations") < 1) {
				kl_test_agent_dump_log(batch[k]);
				g_error(
				    "agent %d did not register (exit status %d)", i + k, status);
			}
			kl_test_agent_free(batch[k]);
		}
	}
	/* PCR policy: PCR 0 of the software TPM is all zeros */
	policy = g_strdup_printf("{\"tpm_policy\": {\"0\": [\"%064d\"]}}", 0);
	for (gint i = 0; i < n_agents; i++)
		if (!kl_test_peers_enroll(peers, nodes[i].id, policy, &error))
			g_error("enrolling agent %d: %s", i, error->message);
	printf("provisioned: %d agents registered and enrolled\n\n", n_agents);
	fflush(stdout);

	/* 2. all agents started at once */
	t_start = kl_bench_now();
	for (gint i = 0; i < n_agents; i++) {
		nodes[i].agent = kl_bench_agent_new(&nodes[i]);
		if (!kl_test_agent_start(nodes[i].agent, &error, "--avoid-tpm", NULL))
			g_error("cannot start agent %d: %s", i, error->message);
	}
	t_started = kl_bench_now();
	printf("mass restart: %d agents started within %.2f s\n", n_agents, t_started - t_start);
	fflush(stdout);
	/* the splay window, then one interval for the last to attest */
	kl_bench_sleep_until(t_start + window + interval + 5);
	for (gint i = 0; i < n_agents; i++) {
		nodes[i].pid = kl_bench_pid(&nodes[i]);
		nodes[i].ticks0 = kl_bench_cpu_ticks(nodes[i].pid);
	}
	contacts = kl_bench_contacts();
	first = kl_bench_first_contacts(contacts, t_start);
	g_array_sort(first, kl_bench_cmp_double);
	ratio_restart = kl_bench_report_first("after the mass restart", first, window);
	if ((gint)first->len != n_agents)
		ret = 1;
	g_clear_pointer(&first, g_array_unref);

	/* 3. steady state, one interval */
	t_steady = kl_bench_now();
	kl_bench_sleep_until(t_steady + interval + 2);
	g_clear_pointer(&contacts, json_array_unref);
	contacts = kl_bench_contacts();
	cover1 = kl_bench_report_steady("steady state", contacts, t_steady);
	printf("\n");
	fflush(stdout);

	/* 4. the verifier goes away and comes back */
	t_down = kl_bench_now();
	kl_test_peers_stop_verifier(peers);
	printf("verifier stopped for %d s\n", outage);
	fflush(stdout);
	kl_bench_sleep_until(t_down + outage);
	if (!kl_bench_start_verifier(&error))
		g_error("cannot start the verifier again: %s", error->message);
	t_up = kl_bench_now();
	/* retries land within the cap of 4 intervals; wait until every agent was back */
	for (;;) {
		g_clear_pointer(&contacts, json_array_unref);
		contacts = kl_bench_contacts();
		first = kl_bench_first_contacts(contacts, t_up);
		if ((gint)first->len >= n_agents || kl_bench_now() > t_up + 4 * interval + 30)
			break;
		g_clear_pointer(&first, g_array_unref);
		g_usleep(2 * G_USEC_PER_SEC);
	}
	g_array_sort(first, kl_bench_cmp_double);
	ratio_outage = kl_bench_report_first("after the verifier outage", first, window);
	if ((gint)first->len != n_agents)
		ret = 1;

	/* 5. steady state again, once every agent attested after the outage */
	t_steady2 =
	    MAX(kl_bench_now(), t_up + g_array_index(first, gdouble, first->len - 1)) + interval;
	g_clear_pointer(&first, g_array_unref);
	kl_bench_sleep_until(t_steady2);
	kl_bench_sleep_until(t_steady2 + interval + 2);
	g_clear_pointer(&contacts, json_array_unref);
	contacts = kl_bench_contacts();
	cover2 = kl_bench_report_steady("steady state after the outage", contacts, t_steady2);
	t_end = kl_bench_now();

	for (gint i = 0; i < n_agents; i++) {
		guint64 ticks = kl_bench_cpu_ticks(nodes[i].pid);
		gint64 rss = kl_bench_rss_kb(nodes[i].pid);
		if (ticks >= nodes[i].ticks0)
			cpu_ticks += ticks - nodes[i].ticks0;
		if (rss > 0) {
			rss_sum += rss;
			rss_max = MAX(rss_max, rss);
			rss_n++;
		}
		attestations += kl_test_peers_verifier_int(peers, nodes[i].id, "passes");
	}
	printf("\nagents: CPU %.1f ms per agent per minute (%.2f %% of one core for all %d), "
	       "over %.0f s of steady state, outage and recovery; VmRSS mean %" G_GINT64_FORMAT
	       " kB, max %" G_GINT64_FORMAT " kB (%u agents running)\n",
	       1000.0 * cpu_ticks / sysconf(_SC_CLK_TCK) / n_agents / ((t_end - t_steady) / 60.0),
	       100.0 * cpu_ticks / sysconf(_SC_CLK_TCK) / (t_end - t_steady),
	       n_agents,
	       t_end - t_steady,
	       rss_n > 0 ? rss_sum / rss_n : 0,
	       rss_max,
	       rss_n);
	printf("verifier after the outage: %" G_GINT64_FORMAT " attestations passed\n",
	       attestations);
	printf("\nGOAL peak per second <= 2x the mean over the splay window: mass restart "
	       "%.2f (%s), outage %.2f (%s)\n",
	       ratio_restart,
	       ratio_restart <= 2.0 ? "met" : "NOT met",
	       ratio_outage,
	       ratio_outage <= 2.0 ? "met" : "NOT met");
	printf("GOAL steady-state requests spread over the whole interval: %.0f%% and %.0f%% of "
	       "it covered (%s)\n",
	       100 * cover1,
	       100 * cover2,
	       cover1 >= 0.9 && cover2 >= 0.9 ? "met" : "NOT met");
	fflush(stdout);

	for (gint i = 0; i < n_agents; i++) {
		kl_test_agent_free(nodes[i].agent);
		g_free(nodes[i].id);
		g_free(nodes[i].keylime_dir);
	}
	kl_test_peers_free(peers);
	g_free(persist);
	return ret;
}
