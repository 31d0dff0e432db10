/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * End-to-end cycle benchmark: the real agent binary with --avoid-tpm against
 * the project's test registrar and verifier (tests/peers), enrolled with a
 * PCR policy and an IMA policy, on a synthetic ima-ng log that grows by N
 * lines after every accepted attestation. The software TPM's PCR 10 is kept
 * equal to the replay of the log (software_pcrs.json), so every cycle is
 * verified for real and the verifier asks only for the new lines.
 *
 * Prints, at cycles 10, 100, 300, 1000... (and at the end): the agent's CPU
 * time per cycle since the previous checkpoint (utime + stime from
 * /proc/<pid>/stat), its VmRSS, the log size, the number of lines the
 * verifier has verified so far (its next starting_offset) and its pass and
 * fail counts.
 *
 *   kl-bench-cycle [--cycles 300] [--lines 100] [--initial 10000] [--interval 1]
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kl-test-peers.h"

#define AGENT_ID "b3c8e0a2-6f1d-4c55-9a8e-0d1c2b3a4f50"

typedef struct {
	gchar *ima_path;
	gchar *pcrs_path;
	guint64 entries;
	guint8 pcr10[32];
} KlBenchLog;

/* one real ima-ng line: template hash sha1, file hash sha256, PCR 10 extended with sha256 */
static void
kl_bench_ima_line(KlBenchLog *log, GString *out, guint64 i)
{
	g_autofree gchar *path = g_strdup_printf("/usr/lib/kl-bench/file-%08" G_GUINT64_FORMAT, i);
	g_autofree gchar *content = g_strdup_printf("content of bench file %" G_GUINT64_FORMAT, i);
	g_autoptr(GByteArray) data = g_byte_array_new();
	g_autoptr(GChecksum) sum = NULL;
	guint8 file_hash[32];
	guint8 digest[32];
	gsize len = sizeof(file_hash);
	guint32 n;
	gchar *th;

	sum = g_checksum_new(G_CHECKSUM_SHA256);
	g_checksum_update(sum, (const guchar *)content, -1);
	g_checksum_get_digest(sum, file_hash, &len);

	/* ima-ng template data: d-ng ("sha256:\0" + digest), n-ng (path + NUL) */
	n = GUINT32_TO_LE(7 + 1 + 32);
	g_byte_array_append(data, (const guint8 *)&n, 4);
	g_byte_array_append(data, (const guint8 *)"sha256:", 8); /* with the NUL */
	g_byte_array_append(data, file_hash, 32);
	n = GUINT32_TO_LE((guint32)strlen(path) + 1);
	g_byte_array_append(data, (const guint8 *)&n, 4);
	g_byte_array_append(data, (const guint8 *)path, (guint)strlen(path) + 1);

	th = g_compute_checksum_for_data(G_CHECKSUM_SHA1, data->data, data->len);
	g_string_append_printf(out, "10 %s ima-ng sha256:", th);
	g_free(th);
	for (guint k = 0; k < 32; k++)
		g_string_append_printf(out, "%02x", file_hash[k]);
	g_string_append_printf(out, " %s\n", path);

	/* PCR 10 = SHA-256(PCR 10 || SHA-256(template data)) */
	g_checksum_reset(sum);
	g_checksum_update(sum, data->data, data->len);
	len = sizeof(digest);
	g_checksum_get_digest(sum, digest, &len);
	g_checksum_reset(sum);
	g_checksum_update(sum, log->pcr10, 32);
	g_checksum_update(sum, digest, 32);
	len = sizeof(log->pcr10);
	g_checksum_get_digest(sum, log->pcr10, &len);
}

/* appends @n lines to the log, then moves the software TPM's PCR 10 along */
static void
kl_bench_grow(KlBenchLog *log, guint64 n)
{
	g_autoptr(GString) text = g_string_new(NULL);
	g_autoptr(GString) pcrs = g_string_new("{\"sha256\": {\"10\": \"");
	g_autoptr(GError) error = NULL;
	FILE *f;

	for (guint64 i = 0; i < n; i++)
		kl_bench_ima_line(log, text, log->entries + i);
	f = fopen(log->ima_path, "ab");
	g_assert_nonnull(f);
	g_assert_cmpuint(fwrite(text->str, 1, text->len, f), ==, text->len);
	g_assert_cmpint(fclose(f), ==, 0);
	log->entries += n;
	for (guint k = 0; k < 32; k++)
		g_string_append_printf(pcrs, "%02x", log->pcr10[k]);
	g_string_append(pcrs, "\"}}\n");
	/* atomic rename: the agent never reads half a file */
	g_file_set_contents(log->pcrs_path, pcrs->str, -1, &error);
	g_assert_no_error(error);
}

/*
 * The agent process: its cwd is the agent's directory and its command line
 * names the agent binary (also when KL_TEST_AGENT is a wrapper that execs
 * valgrind or another tool around it).
 */
static gint
kl_bench_find_pid(const gchar *agent_dir, const gchar *exe)
{
	g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
	g_autofree gchar *base = g_path_get_basename(exe);
	const gchar *name;

	while (proc != NULL && (name = g_dir_read_name(proc)) != NULL) {
		g_autofree gchar *cwd_link = NULL;
		g_autofree gchar *cmd_path = NULL;
		g_autofree gchar *cwd = NULL;
		g_autofree gchar *cmdline = NULL;
		gsize len = 0;

		if (!g_ascii_isdigit(name[0]))
			continue;
		cwd_link = g_strdup_printf("/proc/%s/cwd", name);
		cmd_path = g_strdup_printf("/proc/%s/cmdline", name);
		cwd = g_file_read_link(cwd_link, NULL);
		if (cwd == NULL || g_strcmp0(cwd, agent_dir) != 0 ||
		    !g_file_get_contents(cmd_path, &cmdline, &len, NULL))
			continue;
		for (gsize i = 0; i < len; i++)
			if (cmdline[i] == '\0')
				cmdline[i] = ' ';
		if (strstr(cmdline, "keylime_push_model_agent") != NULL ||
		    strstr(cmdline, base) != NULL)
			return atoi(name);
	}
	return -1;
}

/* utime + stime in clock ticks */
static gboolean
kl_bench_cpu_ticks(gint pid, guint64 *ticks)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%d/stat", pid);
	g_autofree gchar *text = NULL;
	g_auto(GStrv) fields = NULL;
	const gchar *p;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return FALSE;
	/* fields after "(comm)": state is field 3, utime 14, stime 15 */
	p = strrchr(text, ')');
	if (p == NULL)
		return FALSE;
	fields = g_strsplit(p + 2, " ", -1);
	if (g_strv_length(fields) < 13)
		return FALSE;
	*ticks = g_ascii_strtoull(fields[11], NULL, 10) + g_ascii_strtoull(fields[12], NULL, 10);
	return TRUE;
}

static glong
kl_bench_rss_kb(gint pid)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%d/status", pid);
	g_autofree gchar *text = NULL;
	const gchar *p;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return -1;
	p = strstr(text, "\nVmRSS:");
	if (p == NULL)
		return -1;
	return (glong)g_ascii_strtoll(p + 7, NULL, 10);
}

/* the verifier's next IMA starting_offset (lines it has already verified) */
static gint64
kl_bench_next_offset(KlTestPeers *peers)
{
	g_autoptr(JsonObject) a = kl_test_peers_verifier_agent(peers, AGENT_ID);
	JsonNode *st = a != NULL ? json_object_get_member(a, "ima_state") : NULL;

	if (st == NULL || !JSON_NODE_HOLDS_OBJECT(st) ||
	    !json_object_has_member(json_node_get_object(st), "next_offset"))
		return -1;
	return json_object_get_int_member(json_node_get_object(st), "next_offset");
}

static gboolean
kl_bench_is_checkpoint(guint64 cycle, guint64 last)
{
	static const guint64 marks[] = { 10, 30, 100, 300, 1000, 3000, 10000 };

	if (cycle == last)
		return TRUE;
	for (guint i = 0; i < G_N_ELEMENTS(marks); i++)
		if (cycle == marks[i])
			return TRUE;
	return FALSE;
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GOptionContext) octx = g_option_context_new("- agent cycle benchmark");
	gint cycles = 300;
	gint lines = 100;
	gint initial = 10000;
	gint timeout_s = 30;
	gdouble interval = 1;
	GOptionEntry entries[] = {
		{ "cycles",
		  'c',
		  0,
		  G_OPTION_ARG_INT,
		  &cycles,
		  "accepted attestations to run",
		  "N" },
		{ "lines", 'l', 0, G_OPTION_ARG_INT, &lines, "IMA lines appended per cycle", "N" },
		{ "initial", 'i', 0, G_OPTION_ARG_INT, &initial, "IMA lines at start", "N" },
		{ "interval",
		  0,
		  0,
		  G_OPTION_ARG_DOUBLE,
		  &interval,
		  "verifier quote interval (s)",
		  "S" },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "max seconds per cycle", "S" },
		{ NULL },
	};
	gchar *fake_argv[] = { argv[0], NULL };
	gchar **fake = fake_argv;
	gint fake_argc = 1;
	g_autofree gchar *interval_text = NULL;
	g_autofree gchar *agent_dir = NULL;
	g_autofree gchar *policy = NULL;
	KlTestPeers *peers;
	KlTestAgent *agent;
	KlBenchLog log = { 0 };
	guint64 last_ticks = 0;
	guint64 last_cycle = 0;
	guint64 first_ticks = 0;
	glong rss_first = -1;
	glong rss_last = -1;
	gdouble cpu_first = -1;
	gdouble cpu_last = -1;
	gint64 passes = 0;
	gint64 t0;
	glong hz = sysconf(_SC_CLK_TCK);
	gint pid = -1;
	gint status;
	gint ret = 0;

	g_option_context_add_main_entries(octx, entries, NULL);
	if (!g_option_context_parse(octx, &argc, &argv, &error)) {
		g_printerr("%s\n", error->message);
		return 2;
	}
	if (cycles < 1 || lines < 0 || initial < 0 || interval <= 0) {
		g_printerr("--cycles must be >= 1, --lines and --initial >= 0, --interval > 0\n");
		return 2;
	}
	/* the integration harness finds its peers and the agent through these */
	g_setenv("G_TEST_SRCDIR", KL_BENCH_TESTS_SRCDIR, FALSE);
	g_setenv("KL_TEST_AGENT", KL_BENCH_AGENT, FALSE);
	g_setenv("KL_TEST_PLUGINDIR", KL_BENCH_PLUGINDIR, FALSE);
	g_unsetenv("KL_TEST_TCTI");
	g_test_init(&fake_argc, &fake, NULL);

	peers = kl_test_peers_new();
	interval_text = g_strdup_printf("%g", interval);
	if (!kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL) ||
	    !kl_test_peers_start_verifier(peers, &error, "--quote-interval", interval_text, NULL)) {
		g_printerr("cannot start the test peers: %s\n", error->message);
		kl_test_peers_free(peers);
		return 1;
	}

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	log.ima_path = g_build_filename(kl_test_peers_get_dir(peers), "ima.log", NULL);
	log.pcrs_path =
	    g_build_filename(kl_test_agent_get_keylime_dir(agent), "software_pcrs.json", NULL);
	g_file_set_contents(log.ima_path, "", 0, &error);
	g_assert_no_error(error);
	kl_bench_grow(&log, (guint64)initial + 1);
	kl_test_agent_set_string(agent, "ima_ml_path", log.ima_path);
	kl_test_agent_set(agent, "disabled_plugins", "[\"uefi_log\", \"iak_idevid\"]");
	kl_test_agent_set_int(agent, "attestation_interval_seconds", (gint64)MAX(interval, 1));
	/* the first cycle sends the whole log, which the Python verifier replays */
	kl_test_agent_set_int(agent, "request_timeout", 120000);
	if (!kl_test_agent_start(agent, &error, "--avoid-tpm", NULL)) {
		g_printerr("cannot start the agent: %s\n", error->message);
		ret = 1;
		goto out;
	}
	if (!kl_test_peers_wait_registrar_int(peers, AGENT_ID, "activations", 1, 60)) {
		kl_test_agent_dump_log(agent);
		g_printerr("the agent did not register\n");
		ret = 1;
		goto out;
	}
	/* PCR policy: PCR 0 of the software TPM is all zeros; IMA replay of PCR 10 */
	policy = g_strdup_printf("{\"tpm_policy\": {\"0\": [\"%064d\"]}, \"ima\": true}", 0);
	if (!kl_test_peers_enroll(peers, AGENT_ID, policy, &error)) {
		g_printerr("enrollment failed: %s\n", error->message);
		ret = 1;
		goto out;
	}
	agent_dir = g_path_get_dirname(kl_test_agent_get_keylime_dir(agent));
	pid = kl_bench_find_pid(agent_dir, g_getenv("KL_TEST_AGENT"));
	if (pid < 0) {
		g_printerr("cannot find the agent's pid\n");
		ret = 1;
		goto out;
	}

	printf("kl-bench-cycle: agent pid %d, --avoid-tpm, quote interval %s s, %d initial IMA "
	       "lines, +%d per cycle, %d cycles\n\n",
	       pid,
	       interval_text,
	       initial,
	       lines,
	       cycles);
	printf("%7s %10s %12s %14s %10s %8s %6s\n",
	       "cycle",
	       "IMA lines",
	       "verified",
	       "CPU ms/cycle",
	       "VmRSS kB",
	       "passes",
	       "fails");
	fflush(stdout);

	t0 = g_get_monotonic_time();
	while (passes < cycles) {
		gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
		gint64 now_passes;

		/* wait for the next accepted attestation */
		do {
			now_passes = kl_test_peers_verifier_int(peers, AGENT_ID, "passes");
			if (now_passes > passes)
				break;
			g_usleep(20000);
		} while (g_get_monotonic_time() < deadline && kl_test_agent_is_running(agent));
		if (now_passes <= passes) {
			kl_test_agent_dump_log(agent);
			g_printerr(
			    "no accepted attestation within %d s after cycle %" G_GINT64_FORMAT
			    " (fails: %" G_GINT64_FORMAT ")\n",
			    timeout_s,
			    passes,
			    kl_test_peers_verifier_int(peers, AGENT_ID, "fails"));
			ret = 1;
			goto out;
		}
		/* the agent sleeps until the next cycle: grow the log and PCR 10 now */
		kl_bench_grow(&log, (guint64)lines);
		for (gint64 c = passes + 1; c <= now_passes; c++) {
			guint64 ticks = 0;
			glong rss;

			if (!kl_bench_is_checkpoint((guint64)c, (guint64)cycles) && c != 1)
				continue;
			if (!kl_bench_cpu_ticks(pid, &ticks)) {
				g_printerr("the agent (pid %d) is gone\n", pid);
				ret = 1;
				goto out;
			}
			rss = kl_bench_rss_kb(pid);
			if (c == 1) {
				/* start of the steady state: registration and first cycle excluded
				 */
				first_ticks = ticks;
				last_ticks = ticks;
				last_cycle = 1;
				rss_first = rss;
				continue;
			}
			{
				gdouble ms = (gdouble)(ticks - last_ticks) * 1000.0 / (gdouble)hz /
					     (gdouble)(c - (gint64)last_cycle);
				printf("%7" G_GINT64_FORMAT " %10" G_GUINT64_FORMAT
				       " %12" G_GINT64_FORMAT " %14.2f %10ld %8" G_GINT64_FORMAT
				       " %6" G_GINT64_FORMAT "\n",
				       c,
				       log.entries,
				       kl_bench_next_offset(peers),
				       ms,
				       rss,
				       c,
				       kl_test_peers_verifier_int(peers, AGENT_ID, "fails"));
				fflush(stdout);
				if (cpu_first < 0)
					cpu_first = ms;
				cpu_last = ms;
			}
			last_ticks = ticks;
			last_cycle = (guint64)c;
			rss_last = rss;
		}
		passes = now_passes;
	}
	printf("\n%" G_GINT64_FORMAT " accepted attestations in %.0f s; verifier: %" G_GINT64_FORMAT
	       " passes, %" G_GINT64_FORMAT " fails; IMA log %" G_GUINT64_FORMAT " lines\n",
	       passes,
	       (gdouble)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC,
	       kl_test_peers_verifier_int(peers, AGENT_ID, "passes"),
	       kl_test_peers_verifier_int(peers, AGENT_ID, "fails"),
	       log.entries);
	if (cycles > 1 && last_cycle > 1)
		printf("mean CPU per cycle (cycles 2..%" G_GUINT64_FORMAT "): %.2f ms; first "
		       "checkpoint %.2f ms, last %.2f ms; VmRSS %ld kB after cycle 1, %ld kB at "
		       "the end (%+ld kB)\n",
		       last_cycle,
		       (gdouble)(last_ticks - first_ticks) * 1000.0 / (gdouble)hz /
			   (gdouble)(last_cycle - 1),
		       cpu_first,
		       cpu_last,
		       rss_first,
		       rss_last,
		       rss_last - rss_first);
	if (kl_test_peers_verifier_int(peers, AGENT_ID, "fails") != 0)
		ret = 1;

out:
	status = kl_test_agent_stop(agent, SIGTERM, 15);
	if (status != 0) {
		g_printerr("the agent exited with status %d\n", status);
		ret = 1;
	}
	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	g_free(log.ima_path);
	g_free(log.pcrs_path);
	return ret;
}
