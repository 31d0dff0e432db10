/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Self-healing on a swtpm without resource manager, against the test
 * registrar + verifier: the swtpm restarted under a running agent (the agent
 * reconnects and attests on), a swtpm that stops answering (a warning, then
 * exit status 4 after tpm_timeout), a swtpm that stays away (exit status 4
 * after tpm_timeout), and agents killed with SIGKILL at start-up and in steady
 * state (the leftovers are freed and the next start passes with the same AK).
 * With KL_HEAL_CASE=da-lockout (a swtpm of its own): the TPM in
 * dictionary-attack lockout under a running agent.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0b001"
#define ZERO_PCR "0000000000000000000000000000000000000000000000000000000000000000"

static KlTestPeers *peers;
static KlTestAgent *agent;
static GPid swtpm_pid;	   /* the swtpm run-with-swtpm.sh started, then ours */
static GSubprocess *swtpm; /* the swtpm this test started (after a restart) */

static gint64
vint(const gchar *member)
{
	return kl_test_peers_verifier_int(peers, AGENT_ID, member);
}

#define assert_wait kl_test_agent_assert_verifier_int

static gboolean
swtpm_answers(void)
{
	return kl_test_run(NULL, "tpm2_getcap", "properties-fixed", NULL);
}

static void
swtpm_kill(void)
{
	/*
	 * an orderly stop (TPM2_Shutdown, as a service manager's restart does): a
	 * TPM that loses power without it reports clockInfo.safe = 0 for a while,
	 * which the verifier rightly refuses
	 */
	(void)kl_test_run(NULL, "tpm2_shutdown", "-c", NULL);
	if (swtpm != NULL) {
		g_subprocess_send_signal(swtpm, SIGTERM);
		g_assert_true(g_subprocess_wait(swtpm, NULL, NULL));
		g_clear_object(&swtpm);
	} else {
		g_assert_cmpint(kill(swtpm_pid, SIGTERM), ==, 0);
		/* not our child: wait until it is gone */
		for (guint i = 0; i < 100 && kill(swtpm_pid, 0) == 0; i++)
			g_usleep(50 * 1000);
	}
	swtpm_pid = 0;
}

/* a new swtpm on the same ports with the same state: a TPM power cycle */
static void
swtpm_start(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *state = g_strdup_printf("dir=%s", g_getenv("KL_TEST_SWTPM_STATE"));
	g_autofree gchar *server =
	    g_strdup_printf("type=tcp,port=%s,bindaddr=127.0.0.1", g_getenv("KL_TEST_SWTPM_PORT"));
	g_autofree gchar *ctrl = g_strdup_printf("type=tcp,port=%s,bindaddr=127.0.0.1",
						 g_getenv("KL_TEST_SWTPM_CTRL_PORT"));

	for (guint attempt = 0; attempt < 50; attempt++) {
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_MERGE);
		g_autofree gchar *log =
		    g_build_filename(g_getenv("KL_TEST_SWTPM_STATE"), "restarted.log", NULL);
		g_subprocess_launcher_set_stdout_file_path(launcher, log);
		swtpm = g_subprocess_launcher_spawn(launcher,
						    &error,
						    "swtpm",
						    "socket",
						    "--tpm2",
						    "--tpmstate",
						    state,
						    "--server",
						    server,
						    "--ctrl",
						    ctrl,
						    "--flags",
						    "not-need-init,startup-clear",
						    NULL);
		g_assert_no_error(error);
		for (guint i = 0; i < 20; i++) {
			if (swtpm_answers()) {
				g_autofree gchar *pidfile = g_build_filename(
				    g_getenv("KL_TEST_SWTPM_STATE"), "restarted.pid", NULL);
				const gchar *id = g_subprocess_get_identifier(swtpm);
				swtpm_pid = (GPid)g_ascii_strtoll(id, NULL, 10);
				g_assert_true(g_file_set_contents(pidfile, id, -1, NULL));
				return;
			}
			if (g_subprocess_get_identifier(swtpm) == NULL)
				break; /* exited: the port is still taken */
			g_usleep(100 * 1000);
		}
		g_subprocess_force_exit(swtpm);
		g_subprocess_wait(swtpm, NULL, NULL);
		g_clear_object(&swtpm);
		if (attempt == 49) {
			g_autofree gchar *text = NULL;
			if (g_file_get_contents(log, &text, NULL, NULL))
				g_test_message("swtpm: %s", text);
		}
		g_usleep(200 * 1000);
	}
	g_assert_not_reached();
}

static guint
count_transient(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *out = NULL;
	guint n = 0;

	g_assert_true(
	    g_spawn_command_line_sync("tpm2_getcap handles-transient", &out, NULL, NULL, &error));
	g_assert_no_error(error);
	for (const gchar *p = out; (p = strstr(p, "0x80")) != NULL; p++)
		n++;
	return n;
}

static gchar *
agent_data(KlTestAgent *a)
{
	g_autofree gchar *path =
	    g_build_filename(kl_test_agent_get_keylime_dir(a), "agent_data.json", NULL);
	gchar *contents = NULL;

	g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
	return contents;
}

/* swtpm killed and started again under a running agent: it reconnects by itself */
static void
test_swtpm_restart(void)
{
	gint64 passes;

	assert_wait(agent, "passes", 2, 60);
	swtpm_kill();
	/* the agent notices at its next TPM command; the TPM is away for ~3 s */
	g_usleep(3 * G_USEC_PER_SEC);
	swtpm_start();
	passes = vint("passes");
	assert_wait(agent, "passes", passes + 3, 60);
	g_assert_true(kl_test_agent_is_running(agent));
	if (!kl_test_agent_log_contains(agent, "reconnected to the TPM")) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	if (vint("fails") != 0) {
		g_autoptr(JsonObject) a = kl_test_peers_verifier_agent(peers, AGENT_ID);
		g_test_message("failure: %s",
			       json_object_get_string_member(a, "last_failure_reason"));
	}
	g_assert_cmpint(vint("fails"), ==, 0);
}

/* a swtpm that stops answering: a warning, then exit status 4 after tpm_timeout */
static void
test_swtpm_stall(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) a = NULL;
	gint status;

	a = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_stop(agent, SIGTERM, 10);
	kl_test_agent_set_int(a, "tpm_timeout", 6);
	kl_test_agent_start(a, &error, NULL);
	g_assert_no_error(error);
	assert_wait(a, "passes", vint("passes") + 2, 60);
	g_assert_cmpint(kill(swtpm_pid, SIGSTOP), ==, 0);
	status = kl_test_agent_wait(a, 30);
	g_assert_cmpint(kill(swtpm_pid, SIGCONT), ==, 0);
	if (status != 4 ||
	    !kl_test_agent_log_contains(a,
					"WARNING kl-core: the TPM has not "
					"answered") ||
	    !kl_test_agent_log_contains(a, "ERROR kl-core: the TPM has not answered")) {
		kl_test_agent_dump_log(a);
		g_assert_cmpint(status, ==, 4);
		g_assert_not_reached();
	}
}

/* a swtpm that stays away: the agent retries, then exits with status 4 after tpm_timeout */
static void
test_swtpm_gone(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) a = NULL;
	gint status;

	a = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_set_int(a, "tpm_timeout", 6);
	kl_test_agent_start(a, &error, NULL);
	g_assert_no_error(error);
	assert_wait(a, "passes", vint("passes") + 2, 60);
	swtpm_kill();
	status = kl_test_agent_wait(a, 60);
	swtpm_start();
	if (status != 4 || !kl_test_agent_log_contains(a,
						       "ERROR kl-core: the TPM has been "
						       "unusable")) {
		kl_test_agent_dump_log(a);
		g_assert_cmpint(status, ==, 4);
		g_assert_not_reached();
	}
}

/*
 * SIGKILL at start-up and in steady state, three times, on a TPM without
 * resource manager: each kill leaves the AK (and maybe the EK or a session)
 * loaded in the swtpm's three slots. Every next start frees them and passes
 * with the same AK.
 */
static void
test_sigkill_leftovers(void)
{
	g_autofree gchar *before = agent_data(agent);
	g_autofree gchar *after = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) once = NULL;
	gint status;

	for (guint round = 0; round < 3; round++) {
		g_autoptr(KlTestAgent) a =
		    kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));

		kl_test_agent_start(a, &error, NULL);
		g_assert_no_error(error);
		if (round == 1) {
			/* during start-up: the TPM is being opened */
			g_usleep(300 * 1000);
		} else {
			assert_wait(a, "passes", vint("passes") + 1, 60);
		}
		g_assert_cmpint(kl_test_agent_stop(a, SIGKILL, 5), ==, 128 + SIGKILL);
		g_test_message(
		    "round %u: %u transient objects left in the TPM", round, count_transient());
	}
	/* at least one AK copy is left behind: the next start must cope with it */
	g_assert_cmpuint(count_transient(), >=, 1);
	once = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(once, &error, "--once", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(once, 60);
	if (status != 0 || !kl_test_agent_log_contains(once, "left loaded in the TPM")) {
		kl_test_agent_dump_log(once);
		g_assert_cmpint(status, ==, 0);
		g_assert_not_reached();
	}
	/* the same AK: agent_data.json unchanged */
	after = agent_data(once);
	g_assert_cmpstr(before, ==, after);
	/* a clean exit frees everything it loaded */
	g_assert_cmpuint(count_transient(), ==, 0);
}

/* an owner-created key with a password, at a persistent handle, for wrong tries */
#define DA_KEY "0x81000100"

static void
da_key_create(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-da-XXXXXX", NULL);
	g_autofree gchar *pub = g_build_filename(dir, "key.pub", NULL);
	g_autofree gchar *priv = g_build_filename(dir, "key.priv", NULL);
	g_autofree gchar *ctx = g_build_filename(dir, "key.ctx", NULL);
	g_autoptr(GError) error = NULL;

	/* an empty TPM without resource manager: the tools leave their objects at 0x80000000, 1 */
	g_assert_true(kl_test_run(&error, "tpm2_createprimary", "-Q", "-C", "o", NULL));
	g_assert_true(kl_test_run(&error,
				  "tpm2_create",
				  "-Q",
				  "-C",
				  "0x80000000",
				  "-G",
				  "rsa2048:rsassa",
				  "-p",
				  "right",
				  "-u",
				  pub,
				  "-r",
				  priv,
				  NULL));
	g_assert_true(kl_test_run(
	    &error, "tpm2_load", "-Q", "-C", "0x80000000", "-u", pub, "-r", priv, "-c", ctx, NULL));
	g_assert_no_error(error);
	g_assert_true(kl_test_run(
	    &error, "tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x80000001", DA_KEY, NULL));
	g_assert_true(kl_test_run(&error, "tpm2_flushcontext", "-t", NULL));
	g_assert_no_error(error);
	g_assert_cmpint(g_unlink(pub), ==, 0);
	g_assert_cmpint(g_unlink(priv), ==, 0);
	g_assert_cmpint(g_unlink(ctx), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* two wrong passwords with maxTries 2: the TPM is in lockout for 10 minutes */
static void
da_lockout(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-da-XXXXXX", NULL);
	g_autofree gchar *msg = g_build_filename(dir, "msg", NULL);
	g_autofree gchar *sig = g_build_filename(dir, "sig", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *out = NULL;

	g_assert_true(g_file_set_contents(msg, "x", -1, NULL));
	g_assert_true(kl_test_run(&error,
				  "tpm2_dictionarylockout",
				  "-Q",
				  "-s",
				  "-n",
				  "2",
				  "-t",
				  "600",
				  "-l",
				  "600",
				  NULL));
	g_assert_no_error(error);
	for (guint i = 0; i < 2; i++) {
		g_assert_false(kl_test_run(&error,
					   "tpm2_sign",
					   "-c",
					   DA_KEY,
					   "-p",
					   "wrong",
					   "-g",
					   "sha256",
					   "-o",
					   sig,
					   msg,
					   NULL));
		g_clear_error(&error);
	}
	g_assert_true(
	    g_spawn_command_line_sync("tpm2_getcap properties-variable", &out, NULL, NULL, &error));
	g_assert_no_error(error);
	g_assert_nonnull(strstr(out, "inLockout:                 1"));
	(void)g_unlink(msg);
	(void)g_unlink(sig);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/*
 * DA lockout under a running agent: the AK (an object subject to dictionary
 * attack protection) cannot quote; the agent says why and how to end it (not
 * "delete the AK"), and after tpm_timeout exits with status 4; once the
 * lockout is cleared the next start attests with the same AK.
 */
static void
test_da_lockout(void)
{
	g_autofree gchar *before = agent_data(agent);
	g_autofree gchar *after = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTestAgent) again = NULL;
	gint64 t0;
	gint status;

	assert_wait(agent, "passes", 2, 60);
	/* the agent's tpm_timeout is 8 s */
	da_lockout();
	t0 = g_get_monotonic_time();
	status = kl_test_agent_wait(agent, 60);
	if (status != 4 || !kl_test_agent_log_contains(agent, "WARNING kl-core: ") ||
	    !kl_test_agent_log_contains(agent, "dictionary-attack lockout") ||
	    !kl_test_agent_log_contains(agent, "ERROR kl-core: the TPM has been unusable for ") ||
	    !kl_test_agent_log_contains(agent, "s (it is in dictionary-attack lockout") ||
	    kl_test_agent_log_contains(agent, "delete the AK")) {
		kl_test_agent_dump_log(agent);
		g_assert_cmpint(status, ==, 4);
		g_assert_not_reached();
	}
	g_test_message("exit status 4 %.1f s after the lockout",
		       (g_get_monotonic_time() - t0) / 1e6);
	/* the operator clears the lockout: the same AK attests again */
	g_assert_true(kl_test_run(&error, "tpm2_dictionarylockout", "-Q", "-c", NULL));
	g_assert_no_error(error);
	again = kl_test_agent_new(peers, AGENT_ID, kl_test_agent_get_keylime_dir(agent));
	kl_test_agent_start(again, &error, "--once", NULL);
	g_assert_no_error(error);
	status = kl_test_agent_wait(again, 60);
	if (status != 0)
		kl_test_agent_dump_log(again);
	g_assert_cmpint(status, ==, 0);
	after = agent_data(again);
	g_assert_cmpstr(before, ==, after);
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *policy = NULL;
	gboolean da;
	int ret;

	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_SWTPM_PID") == NULL) {
		g_print("Bail out! run through run-with-swtpm.sh (KL_TEST_SWTPM_PID)\n");
		return 1;
	}
	swtpm_pid = (GPid)g_ascii_strtoll(g_getenv("KL_TEST_SWTPM_PID"), NULL, 10);

	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, "--quote-interval", "1", NULL);
	g_assert_no_error(error);

	da = g_strcmp0(g_getenv("KL_HEAL_CASE"), "da-lockout") == 0;
	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	if (da) {
		da_key_create();
		kl_test_agent_set_int(agent, "tpm_timeout", 8);
	}
	/* PCR 15 is zero after every TPM power cycle */
	policy = g_strdup_printf("{\"tpm_policy\":{\"15\":[\"%s\"]}}", ZERO_PCR);
	if (!kl_test_agent_start_enrolled(agent, AGENT_ID, policy)) {
		kl_test_agent_free(agent);
		kl_test_peers_free(peers);
		return 1;
	}

	if (da) {
		g_test_add_func("/heal/da-lockout-exit-4", test_da_lockout);
	} else {
		g_test_add_func("/heal/swtpm-restart", test_swtpm_restart);
		g_test_add_func("/heal/swtpm-stall-exit-4", test_swtpm_stall);
		g_test_add_func("/heal/swtpm-gone-exit-4", test_swtpm_gone);
		g_test_add_func("/heal/sigkill-leftovers", test_sigkill_leftovers);
	}
	ret = g_test_run();

	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	if (swtpm != NULL) {
		g_subprocess_send_signal(swtpm, SIGTERM);
		g_subprocess_wait(swtpm, NULL, NULL);
		g_clear_object(&swtpm);
	}
	return ret;
}
