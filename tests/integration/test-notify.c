/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The service manager protocol, as systemd would see it: the test owns the
 * NOTIFY_SOCKET and sets WATCHDOG_USEC, runs the agent against the test
 * registrar and verifier on swtpm, and checks that READY=1 comes once the
 * agent is registered (before enrollment), that STATUS= lines tell the state,
 * that WATCHDOG=1 arrives while the agent works and stops while a TPM call
 * hangs (swtpm stopped with SIGSTOP), that it resumes when the TPM answers
 * again, and that STOPPING=1 comes with SIGTERM.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kl-test-peers.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0a0a1"
/*
 * the agent feeds the watchdog every WATCHDOG_USEC / 2 = 3 s; a step may run
 * for max(WATCHDOG_USEC, 4 request timeouts) = 6 s (wide: ASan builds on a
 * loaded machine)
 */
#define WATCHDOG_USEC 6000000

typedef struct {
	gint64 at; /* monotonic µs of arrival */
	gchar *text;
} Message;

static KlTestPeers *peers;
static KlTestAgent *agent;
static int notify_fd = -1;
static GPtrArray *messages; /* Message* */

static void
message_free(Message *m)
{
	g_free(m->text);
	g_free(m);
}

/* receives what arrives within @timeout_s */
static void
drain(gdouble timeout_s)
{
	gint64 end = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

	for (;;) {
		gint64 left = end - g_get_monotonic_time();
		struct pollfd pfd = { .fd = notify_fd, .events = POLLIN };
		char buf[4096];
		ssize_t n;
		int r;

		if (left <= 0)
			return;
		r = poll(&pfd, 1, (int)MAX(left / 1000, 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			Message *m = g_new0(Message, 1);
			m->at = g_get_monotonic_time();
			m->text = g_strndup(buf, (gsize)n);
			g_ptr_array_add(messages, m);
			if (g_test_verbose())
				g_printerr("notify: %s\n", m->text);
		}
	}
}

/* index of the first message from @from on that has the line @line (or starts with it) */
static gint
find_line(guint from, const gchar *line, gboolean prefix)
{
	for (guint i = from; i < messages->len; i++) {
		Message *m = g_ptr_array_index(messages, i);
		g_auto(GStrv) lines = g_strsplit(m->text, "\n", -1);

		for (guint j = 0; lines[j] != NULL; j++) {
			if (prefix ? g_str_has_prefix(lines[j], line)
				   : g_strcmp0(lines[j], line) == 0)
				return (gint)i;
		}
	}
	return -1;
}

/* waits up to @timeout_s for a message with @line; its index */
static gint
wait_line(guint from, const gchar *line, gboolean prefix, gdouble timeout_s)
{
	gint64 end = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);
	gint i;

	while ((i = find_line(from, line, prefix)) < 0 && g_get_monotonic_time() < end)
		drain(0.2);
	if (i < 0) {
		kl_test_agent_dump_log(agent);
		for (guint k = 0; k < messages->len; k++)
			g_printerr("notify %u: %s\n",
				   k,
				   ((Message *)g_ptr_array_index(messages, k))->text);
	}
	return i;
}

static gint64
rint_(const gchar *member)
{
	return kl_test_peers_registrar_int(peers, AGENT_ID, member);
}

/* the largest gap between WATCHDOG=1 messages in [from, to) and the window ends */
static gint64
largest_watchdog_gap(guint from, gint64 start_us, gint64 end_us)
{
	gint64 last = start_us;
	gint64 gap = 0;

	for (guint i = from; i < messages->len; i++) {
		Message *m = g_ptr_array_index(messages, i);
		if (m->at > end_us)
			break;
		if (strstr(m->text, "WATCHDOG=1") == NULL)
			continue;
		gap = MAX(gap, m->at - last);
		last = m->at;
	}
	return MAX(gap, end_us - last);
}

static void
test_protocol(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *pcr15 = NULL;
	g_autofree gchar *policy = NULL;
	const gchar *swtpm_pid_text = g_getenv("KL_TEST_SWTPM_PID");
	pid_t swtpm_pid;
	gint ready;
	gint64 t0;
	gint64 wedged_at;
	guint mark;
	gint status;

	g_assert_nonnull(swtpm_pid_text);
	swtpm_pid = (pid_t)g_ascii_strtoll(swtpm_pid_text, NULL, 10);
	g_assert_cmpint(swtpm_pid, >, 1);

	/* READY=1 once registered and activated, before enrollment at the verifier */
	ready = wait_line(0, "READY=1", FALSE, 60);
	g_assert_cmpint(ready, >=, 0);
	g_assert_cmpint(rint_("activations"), >=, 1);
	g_assert_cmpint(kl_test_peers_verifier_int(peers, AGENT_ID, "passes"), <=, 0);
	/* not enrolled yet: the status says so */
	g_assert_cmpint(wait_line(0, "STATUS=waiting for enrollment, retry in ", TRUE, 30), >=, 0);

	pcr15 = kl_test_pcr_read(15, &error);
	g_assert_no_error(error);
	policy = g_strdup_printf("{\"tpm_policy\":{\"15\":[\"%s\"]}}", pcr15);
	kl_test_peers_enroll(peers, AGENT_ID, policy, &error);
	g_assert_no_error(error);
	if (!kl_test_peers_wait_verifier_int(peers, AGENT_ID, "passes", 3, 60)) {
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	/* "attestation 1 submitted 0 s ago, next in 1 s" */
	g_assert_cmpint(wait_line(0, "STATUS=attestation 1 submitted ", TRUE, 10), >=, 0);

	/* working: WATCHDOG=1 about every 3 s */
	mark = messages->len;
	t0 = g_get_monotonic_time();
	drain(10);
	g_assert_cmpint(largest_watchdog_gap(mark, t0, g_get_monotonic_time()), <, 4500000);
	g_assert_cmpint(kl_test_peers_verifier_int(peers, AGENT_ID, "fails"), ==, 0);

	/* a hung TPM: the next TPM command never returns; the watchdog must starve */
	g_assert_cmpint(kill(swtpm_pid, SIGSTOP), ==, 0);
	wedged_at = g_get_monotonic_time();
	mark = messages->len;
	drain(22);
	g_assert_true(kl_test_agent_is_running(agent));
	/*
	 * a step hangs within a few seconds (one attestation a second) and, once
	 * it has run for the step limit (6 s), no ping for longer than
	 * WATCHDOG_USEC: systemd would kill the agent here
	 */
	if (largest_watchdog_gap(mark, wedged_at, g_get_monotonic_time()) <=
	    WATCHDOG_USEC + G_USEC_PER_SEC) {
		kill(swtpm_pid, SIGCONT);
		kl_test_agent_dump_log(agent);
		g_assert_not_reached();
	}
	/* and none at all in the last 7 s */
	for (guint k = mark; k < messages->len; k++) {
		Message *m = g_ptr_array_index(messages, k);
		if (m->at > g_get_monotonic_time() - 7 * G_USEC_PER_SEC)
			g_assert_null(strstr(m->text, "WATCHDOG=1"));
	}
	g_assert_true(kl_test_agent_log_contains(agent, "the systemd watchdog is no longer fed"));

	/* the TPM answers again: the step ends and the pings come back */
	g_assert_cmpint(kill(swtpm_pid, SIGCONT), ==, 0);
	mark = messages->len;
	g_assert_cmpint(wait_line(mark, "WATCHDOG=1", FALSE, 30), >=, 0);

	/* SIGTERM: STOPPING=1, exit status 0 */
	mark = messages->len;
	status = kl_test_agent_stop(agent, SIGTERM, 20);
	drain(0.5);
	g_assert_cmpint(find_line(mark, "STOPPING=1", FALSE), >=, 0);
	g_assert_true(g_spawn_check_wait_status(status, NULL));
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = NULL;
	g_autofree gchar *path = NULL;
	g_autofree gchar *usec = g_strdup_printf("%d", WATCHDOG_USEC);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int ret;

	g_test_init(&argc, &argv, NULL);
	messages = g_ptr_array_new_with_free_func((GDestroyNotify)message_free);

	dir = g_dir_make_tmp("kl-notify-XXXXXX", &error);
	g_assert_no_error(error);
	path = g_build_filename(dir, "notify", NULL);
	g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
	strcpy(addr.sun_path, path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(notify_fd, >=, 0);
	g_assert_cmpint(bind(notify_fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
	/* what systemd gives a Type=notify service with WatchdogSec=6 */
	g_setenv("NOTIFY_SOCKET", path, TRUE);
	g_setenv("WATCHDOG_USEC", usec, TRUE);

	peers = kl_test_peers_new();
	kl_test_peers_start_registrar(peers, 0, FALSE, &error, NULL);
	g_assert_no_error(error);
	kl_test_peers_start_verifier(peers, &error, "--quote-interval", "1", NULL);
	g_assert_no_error(error);

	agent = kl_test_agent_new(peers, AGENT_ID, NULL);
	/* a step may run for max(WATCHDOG_USEC, 4 request timeouts) = 6 s */
	kl_test_agent_set_int(agent, "request_timeout", 1000);
	kl_test_agent_set_int(agent, "exponential_backoff_initial_delay", 1000);
	kl_test_agent_set_int(agent, "exponential_backoff_max_delay", 2000);
	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	g_unsetenv("NOTIFY_SOCKET");
	g_unsetenv("WATCHDOG_USEC");

	g_test_add_func("/notify/protocol", test_protocol);
	ret = g_test_run();

	kl_test_agent_free(agent);
	kl_test_peers_free(peers);
	close(notify_fd);
	g_unlink(path);
	g_rmdir(dir);
	g_ptr_array_unref(messages);
	return ret;
}
