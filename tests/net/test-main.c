/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent binary (software TPM, built plugins) against a local fake
 * registrar: exit statuses, --check, signals.
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../kl-test-skip.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0e001"

/* ---- a registrar that answers /version and refuses the registration (403) ---- */

typedef struct {
	GSocketListener *listener;
	GCancellable *cancellable;
	GThread *thread;
	guint16 port;
	gint posts;
} Registrar;

static gpointer
registrar_thread(gpointer data)
{
	Registrar *reg = data;

	for (;;) {
		g_autoptr(GSocketConnection) conn =
		    g_socket_listener_accept(reg->listener, NULL, reg->cancellable, NULL);
		g_autoptr(GDataInputStream) in = NULL;
		GOutputStream *out;

		if (conn == NULL)
			return NULL;
		in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
		out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
		for (;;) {
			g_autofree gchar *request = NULL;
			g_autofree gchar *reply = NULL;
			g_autofree gchar *body = NULL;
			gchar *line;
			gsize length = 0;
			const gchar *answer;
			guint status;

			request = g_data_input_stream_read_line(in, NULL, reg->cancellable, NULL);
			if (request == NULL)
				break;
			while ((line = g_data_input_stream_read_line(
				    in, NULL, reg->cancellable, NULL)) != NULL) {
				g_strchomp(line);
				if (g_ascii_strncasecmp(line, "Content-Length:", 15) == 0)
					length = (gsize)g_ascii_strtoull(line + 15, NULL, 10);
				if (line[0] == '\0') {
					g_free(line);
					break;
				}
				g_free(line);
			}
			body = g_malloc0(length + 1);
			if (length > 0 &&
			    !g_input_stream_read_all(
				G_INPUT_STREAM(in), body, length, NULL, reg->cancellable, NULL))
				break;
			if (g_str_has_prefix(request, "GET /version ")) {
				status = 200;
				answer = "{\"code\":200,\"status\":\"Success\",\"results\":{"
					 "\"current_version\":\"2.6\",\"supported_versions\":"
					 "[\"2.6\"]}}";
			} else if (g_str_has_prefix(request, "POST /v2.6/agents/" AGENT_ID " ")) {
				g_atomic_int_inc(&reg->posts);
				status = 403;
				answer = "{\"code\":403,\"status\":\"Forbidden\",\"results\":{}}";
			} else {
				status = 404;
				answer = "{}";
			}
			reply =
			    g_strdup_printf("HTTP/1.1 %u X\r\nContent-Type: application/json\r\n"
					    "Content-Length: %zu\r\n\r\n%s",
					    status,
					    strlen(answer),
					    answer);
			if (!g_output_stream_write_all(
				out, reply, strlen(reply), NULL, reg->cancellable, NULL))
				break;
		}
	}
}

static Registrar *
registrar_start(void)
{
	Registrar *reg = g_new0(Registrar, 1);
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(lo, 0);
	g_autoptr(GSocketAddress) effective = NULL;
	g_autoptr(GError) error = NULL;

	reg->cancellable = g_cancellable_new();
	reg->listener = g_socket_listener_new();
	g_socket_listener_add_address(reg->listener,
				      address,
				      G_SOCKET_TYPE_STREAM,
				      G_SOCKET_PROTOCOL_TCP,
				      NULL,
				      &effective,
				      &error);
	g_assert_no_error(error);
	reg->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
	reg->thread = g_thread_new("registrar", registrar_thread, reg);
	return reg;
}

static void
registrar_stop(Registrar *reg)
{
	g_cancellable_cancel(reg->cancellable);
	g_socket_listener_close(reg->listener);
	g_thread_join(reg->thread);
	g_object_unref(reg->listener);
	g_object_unref(reg->cancellable);
	g_free(reg);
}

/* ---- running the agent ---- */

typedef struct {
	gchar *dir;
	gchar *conf;
} Setup;

/* the tpm_quote plugin is not built in a trimmed (-Dauto_features=disabled) build */
static gboolean
have_plugin(void)
{
	g_autofree gchar *path =
	    g_build_filename(g_getenv("KL_TEST_PLUGINDIR"), "tpm_quote.so", NULL);

	if (g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	kl_test_skip("the tpm_quote plugin is not built");
	return FALSE;
}

static void
setup_new_full(Setup *s, guint16 registrar_port, const gchar *extra, const gchar *plugin_dir)
{
	g_autofree gchar *kd = NULL;
	g_autofree gchar *text = NULL;

	s->dir = g_dir_make_tmp("kl-main-XXXXXX", NULL);
	kd = g_build_filename(s->dir, "keylime", NULL);
	g_assert_cmpint(g_mkdir(kd, 0700), ==, 0);
	s->conf = g_build_filename(s->dir, "agent.conf", NULL);
	text = g_strdup_printf("[agent]\n"
			       "uuid = \"" AGENT_ID "\"\n"
			       "keylime_dir = \"%s\"\n"
			       "verifier_url = \"https://127.0.0.1:1\"\n"
			       "registrar_ip = \"127.0.0.1\"\n"
			       "registrar_port = %u\n"
			       "tpm_ownerpassword = \"sekrit-owner-pw\"\n"
			       "plugin_dir = \"%s\"\n"
			       "request_timeout = 2000\n"
			       "exponential_backoff_initial_delay = 100\n"
			       "exponential_backoff_max_delay = 200\n"
			       "%s",
			       kd,
			       registrar_port,
			       plugin_dir,
			       extra != NULL ? extra : "exponential_backoff_max_retries = 1\n");
	g_assert_true(g_file_set_contents(s->conf, text, -1, NULL));
}

static void
setup_new(Setup *s, guint16 registrar_port, const gchar *extra)
{
	setup_new_full(s, registrar_port, extra, g_getenv("KL_TEST_PLUGINDIR"));
}

static void
setup_clear(Setup *s)
{
	g_autofree gchar *cmd = g_strdup_printf("rm -rf '%s'", s->dir);
	g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
	g_free(s->dir);
	g_free(s->conf);
}

static GSubprocess *
agent_spawn(GError **error, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	const gchar *arg;
	va_list args;

	g_ptr_array_add(argv, (gpointer)g_getenv("KL_TEST_AGENT"));
	va_start(args, error);
	while ((arg = va_arg(args, const gchar *)) != NULL)
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(args);
	g_ptr_array_add(argv, NULL);
	g_subprocess_launcher_unsetenv(launcher, "KEYLIME_AGENT_CONFIG");
	g_subprocess_launcher_unsetenv(launcher, "KEYLIME_DIR");
	return g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, error);
}

/* waits (bounded) and returns the exit status; -1 on a timeout or a signal */
static gint
agent_finish(GSubprocess *proc, gchar **out, gchar **err)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(g_subprocess_communicate_utf8(proc, NULL, NULL, out, err, &error));
	g_assert_no_error(error);
	if (!g_subprocess_get_if_exited(proc))
		return -1;
	return g_subprocess_get_exit_status(proc);
}

static void
test_usage_and_config_errors(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) bad_flag = agent_spawn(&error, "--no-such-flag", NULL);
	g_autoptr(GSubprocess) bad_conf = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(bad_flag, &out, &err), ==, 2);
	g_assert_nonnull(strstr(err, "--no-such-flag"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	bad_conf = agent_spawn(&error, "--config", "/nonexistent/agent.conf", NULL);
	g_assert_cmpint(agent_finish(bad_conf, &out, &err), ==, 3);
}

static void
test_plain_http_verifier_refused(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;

	setup_new(&s, 1, NULL);
	proc = agent_spawn(&error,
			   "--config",
			   s.conf,
			   "--avoid-tpm",
			   "--once",
			   "--verifier-url",
			   "http://127.0.0.1:1",
			   NULL);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 3);
	g_assert_nonnull(strstr(err, "plain http"));
	setup_clear(&s);
}

static void
test_check_report(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GSubprocess) insecure = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;

	setup_new(&s, 1, NULL);
	/* the verifier CA file is missing: a problem */
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--check", NULL);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 1);
	g_assert_nonnull(strstr(out, "tpm_quote    active"));
	g_assert_nonnull(strstr(out, "agent id: " AGENT_ID));
	g_assert_nonnull(strstr(out, "PROBLEM: the file does not exist"));
	g_assert_nonnull(strstr(out, s.conf)); /* where the options came from */
	g_assert_nonnull(strstr(out, "PROBLEMS FOUND"));
	/* never a secret */
	g_assert_null(strstr(out, "sekrit"));
	g_assert_null(strstr(err, "sekrit"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* KEYLIME_AGENT_<OPTION> applies on top of --config */
	g_setenv("KEYLIME_AGENT_CONTACT_PORT", "4242", TRUE);
	insecure =
	    agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--check", "--insecure", NULL);
	g_unsetenv("KEYLIME_AGENT_CONTACT_PORT");
	g_assert_cmpint(agent_finish(insecure, &out, &err), ==, 0);
	g_assert_nonnull(strstr(out, "4242"));
	g_assert_nonnull(strstr(out, "INSECURE"));
	g_assert_true(g_str_has_suffix(out, "OK\n"));
	setup_clear(&s);
}

static void
test_registrar_403_exit_5(void)
{
	Registrar *reg = NULL;
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;
	reg = registrar_start();

	setup_new(&s, reg->port, NULL);
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 5);
	g_assert_nonnull(strstr(err, "refused agent " AGENT_ID));
	g_assert_cmpint(g_atomic_int_get(&reg->posts), ==, 1);
	setup_clear(&s);
	registrar_stop(reg);
}

static void
test_once_gives_up_exit_7(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;

	/* nothing listens on port 1: two attempts (max_retries = 1), then exit 7 */
	setup_new(&s, 1, NULL);
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--once", NULL);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 7);
	g_assert_nonnull(strstr(err, "giving up after 2 attempts"));
	setup_clear(&s);
}

static void
test_sigterm_and_sighup(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	gint64 start = g_get_monotonic_time();

	if (!have_plugin())
		return;

	/* retrying forever against an absent registrar */
	setup_new(&s, 1, "exponential_backoff_max_retries = 5\n");
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_usleep(700 * 1000);
	g_subprocess_send_signal(proc, SIGHUP);
	g_usleep(200 * 1000);
	/* still running (the identifier is gone once the child was reaped) */
	g_assert_nonnull(g_subprocess_get_identifier(proc));
	g_subprocess_send_signal(proc, SIGTERM);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 0);
	g_assert_nonnull(strstr(err, "SIGHUP ignored (restart to reload)"));
	g_assert_nonnull(strstr(err, "stopped"));
	g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
	setup_clear(&s);
}

static void
test_no_plugin_exit_6(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *empty = g_dir_make_tmp("kl-noplugins-XXXXXX", NULL);

	setup_new_full(&s, 1, NULL, empty);
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 6);
	g_assert_nonnull(strstr(err, "no evidence plugin is active"));
	g_rmdir(empty);
	setup_clear(&s);
}

/* uid of a running process, from /proc/<pid>/status; -1 if unknown */
static gint64
proc_uid(const gchar *pid)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%s/status", pid);
	g_autofree gchar *text = NULL;
	const gchar *line;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return -1;
	line = strstr(text, "\nUid:");
	if (line == NULL)
		return -1;
	return g_ascii_strtoll(line + 5, NULL, 10);
}

static void
test_run_as(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GSubprocess) bad = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *pid = NULL;
	gint64 uid = -1;

	if (!have_plugin())
		return;
	if (geteuid() != 0) {
		kl_test_skip("dropping privileges needs root");
		return;
	}

	/* an operator-set run_as that cannot work is a configuration error */
	setup_new(&s, 1, "exponential_backoff_max_retries = 5\nrun_as = \"kl-no-such-user:nogroup\"\n");
	bad = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(bad, &out, &err), ==, 3);
	g_assert_nonnull(strstr(err, "kl-no-such-user"));
	setup_clear(&s);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* the agent really runs as nobody once the TPM and the plugins are open */
	setup_new(&s, 1, "exponential_backoff_max_retries = 5\nrun_as = \"nobody:nogroup\"\n");
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	pid = g_strdup(g_subprocess_get_identifier(proc));
	for (guint i = 0; i < 100; i++) {
		uid = proc_uid(pid);
		if (uid > 0)
			break;
		g_usleep(50 * 1000);
	}
	g_subprocess_send_signal(proc, SIGTERM);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 0);
	g_assert_cmpint(uid, ==, 65534);
	g_assert_nonnull(strstr(err, "running as nobody:nogroup"));
	setup_clear(&s);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_AGENT") == NULL || g_getenv("KL_TEST_PLUGINDIR") == NULL) {
		g_printerr("KL_TEST_AGENT / KL_TEST_PLUGINDIR not set\n");
		return 77;
	}
	g_test_add_func("/main/usage-and-config-errors", test_usage_and_config_errors);
	g_test_add_func("/main/plain-http-verifier-refused", test_plain_http_verifier_refused);
	g_test_add_func("/main/check-report", test_check_report);
	g_test_add_func("/main/no-plugin-exit-6", test_no_plugin_exit_6);
	g_test_add_func("/main/registrar-403-exit-5", test_registrar_403_exit_5);
	g_test_add_func("/main/once-gives-up-exit-7", test_once_gives_up_exit_7);
	g_test_add_func("/main/sigterm-and-sighup", test_sigterm_and_sighup);
	g_test_add_func("/main/run-as", test_run_as);
	return g_test_run();
}
