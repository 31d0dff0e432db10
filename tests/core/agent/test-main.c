/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent binary (software TPM, built plugins) against a local fake
 * registrar: exit statuses, --check, signals, and the command-line flags and
 * options that only the whole program wires up (--registrar-url, --timeout,
 * --log-level, registrar_api_versions, contact_ip/contact_port,
 * disabled_plugins, KEYLIME_DIR, TCTI).
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "kl-config.h"
#include "kl-test-skip.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c0e001"

/* ---- a registrar that answers /version and refuses the registration (403) ---- */

typedef struct {
	GSocketListener *listener;
	GCancellable *cancellable;
	GThread *thread;
	guint16 port;
	gint posts;
	gboolean hang;	     /* read requests, never answer */
	GMutex lock;	     /* protects the two below */
	gchar *post_request; /* request line of the last registration */
	gchar *post_body;    /* its body */
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
			if (reg->hang)
				continue;
			if (g_str_has_prefix(request, "GET /version ")) {
				status = 200;
				answer = "{\"code\":200,\"status\":\"Success\",\"results\":{"
					 "\"current_version\":\"2.6\",\"supported_versions\":"
					 "[\"2.5\",\"2.6\"]}}";
			} else if (g_str_has_prefix(request, "POST /v2.") &&
				   strstr(request, "/agents/" AGENT_ID " ") != NULL) {
				g_mutex_lock(&reg->lock);
				g_free(reg->post_request);
				reg->post_request = g_strdup(request);
				g_free(reg->post_body);
				reg->post_body = g_strdup(body);
				g_mutex_unlock(&reg->lock);
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
registrar_start_full(gboolean hang)
{
	Registrar *reg = g_new0(Registrar, 1);
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(lo, 0);
	g_autoptr(GSocketAddress) effective = NULL;
	g_autoptr(GError) error = NULL;

	reg->hang = hang;
	g_mutex_init(&reg->lock);
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

static Registrar *
registrar_start(void)
{
	return registrar_start_full(FALSE);
}

/* the last registration the agent sent: its request line and its JSON body */
static void
registrar_last_post(Registrar *reg, gchar **request, JsonObject **body)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;

	g_mutex_lock(&reg->lock);
	*request = g_strdup(reg->post_request);
	if (reg->post_body != NULL)
		json_parser_load_from_data(parser, reg->post_body, -1, &error);
	g_mutex_unlock(&reg->lock);
	g_assert_nonnull(*request);
	g_assert_no_error(error);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
	*body = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void
registrar_stop(Registrar *reg)
{
	g_cancellable_cancel(reg->cancellable);
	g_socket_listener_close(reg->listener);
	g_thread_join(reg->thread);
	g_object_unref(reg->listener);
	g_object_unref(reg->cancellable);
	g_mutex_clear(&reg->lock);
	g_free(reg->post_request);
	g_free(reg->post_body);
	g_free(reg);
}

/* ---- running the agent ---- */

typedef struct {
	gchar *dir;
	gchar *conf;
} Setup;

/* the software TPM stand-in (--avoid-tpm) is left out of a trimmed build */
static gboolean
have_software_tpm(void)
{
	if (KL_HAVE_SOFTWARE_TPM)
		return TRUE;
	kl_test_skip("the software TPM stand-in is not built (-Dsoftware_tpm=disabled)");
	return FALSE;
}

/*
 * the tpm_quote plugin and the software TPM are not built in a trimmed
 * (-Dauto_features=disabled) build
 */
static gboolean
have_plugin(void)
{
	g_autofree gchar *path =
	    g_build_filename(g_getenv("KL_TEST_PLUGINDIR"), "tpm_quote.so", NULL);

	if (!have_software_tpm())
		return FALSE;

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
			       /* the first contact at once: these tests time it */
			       "splay_percent = 0\n"
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

/* @env: NULL or "NAME=VALUE" pairs set in the agent's environment */
static GSubprocess *
agent_spawn_va(GError **error, const gchar *const *env, va_list args)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	const gchar *arg;

	g_ptr_array_add(argv, (gpointer)g_getenv("KL_TEST_AGENT"));
	while ((arg = va_arg(args, const gchar *)) != NULL)
		g_ptr_array_add(argv, (gpointer)arg);
	g_ptr_array_add(argv, NULL);
	g_subprocess_launcher_unsetenv(launcher, "KEYLIME_AGENT_CONFIG");
	g_subprocess_launcher_unsetenv(launcher, "KEYLIME_DIR");
	g_subprocess_launcher_unsetenv(launcher, "TCTI");
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) kv = g_strsplit(env[i], "=", 2);
		g_subprocess_launcher_setenv(launcher, kv[0], kv[1], TRUE);
	}
	return g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, error);
}

static GSubprocess *
agent_spawn(GError **error, ...)
{
	GSubprocess *proc;
	va_list args;

	va_start(args, error);
	proc = agent_spawn_va(error, NULL, args);
	va_end(args);
	return proc;
}

static GSubprocess *
agent_spawn_env(GError **error, const gchar *const *env, ...)
{
	GSubprocess *proc;
	va_list args;

	va_start(args, env);
	proc = agent_spawn_va(error, env, args);
	va_end(args);
	return proc;
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

/*
 * A boolean option takes a TOML boolean, or true/false from the environment:
 * the string "yes" (which once turned certificate checks off) or even "true" in
 * quotes is a configuration error naming the file and line (exit status 3).
 */
static void
test_boolean_options_strict(void)
{
	const gchar *const *keys = kl_config_get_known_keys();
	guint booleans = 0;

	for (guint i = 0; keys[i] != NULL; i++) {
		const gchar *key = keys[i];
		const gchar *strings[] = { "yes", "true", "1", "off" };
		g_autofree gchar *var = NULL;

		if (!kl_config_is_boolean(key))
			continue;
		booleans++;
		for (guint j = 0; j < G_N_ELEMENTS(strings); j++) {
			Setup s;
			g_autoptr(GError) error = NULL;
			g_autoptr(GSubprocess) proc = NULL;
			g_autofree gchar *extra = g_strdup_printf(
			    "exponential_backoff_max_retries = 1\n%s = \"%s\"\n", key, strings[j]);
			g_autofree gchar *where = NULL;
			g_autofree gchar *out = NULL;
			g_autofree gchar *err = NULL;

			setup_new(&s, 1, extra);
			{
				/* the line of the option in the file setup_new wrote */
				g_autofree gchar *text = NULL;
				g_auto(GStrv) lines = NULL;
				g_autofree gchar *prefix = g_strdup_printf("%s = ", key);
				guint line = 0;
				g_assert_true(g_file_get_contents(s.conf, &text, NULL, NULL));
				lines = g_strsplit(text, "\n", -1);
				for (guint n = 0; lines[n] != NULL; n++)
					if (g_str_has_prefix(lines[n], prefix))
						line = n + 1;
				g_assert_cmpuint(line, >, 0);
				where = g_strdup_printf("%s:%u", s.conf, line);
			}
			proc =
			    agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--once", NULL);
			g_assert_no_error(error);
			g_assert_cmpint(agent_finish(proc, &out, &err), ==, 3);
			g_assert_nonnull(strstr(err, where));
			g_assert_nonnull(strstr(err, key));
			g_assert_nonnull(strstr(err, "ERROR"));
			setup_clear(&s);
		}
		/* the environment: true and false only */
		var = g_ascii_strup(key, -1);
		{
			Setup s;
			g_autoptr(GError) error = NULL;
			g_autoptr(GSubprocess) proc = NULL;
			g_autofree gchar *env_var = g_strdup_printf("KEYLIME_AGENT_%s=yes", var);
			const gchar *env[] = { env_var, NULL };
			g_autofree gchar *out = NULL;
			g_autofree gchar *err = NULL;

			setup_new(&s, 1, NULL);
			proc = agent_spawn_env(
			    &error, env, "--config", s.conf, "--avoid-tpm", "--once", NULL);
			g_assert_no_error(error);
			g_assert_cmpint(agent_finish(proc, &out, &err), ==, 3);
			g_assert_nonnull(strstr(err, var));
			setup_clear(&s);
		}
	}
	/* enable_iak_idevid, registrar_tls_enabled, tls_accept_invalid_certs/_hostnames */
	g_assert_cmpuint(booleans, >=, 4);
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
	/* every option, also those only plugins read; never a secret */
	g_assert_true(g_regex_match_simple(
	    "\\n  uefi_logs_evidence_version += \"2\\.1\"  # default\\n", out, 0, 0));
	g_assert_true(g_regex_match_simple("\\n  tpm_ownerpassword += \\(set\\)  # ", out, 0, 0));
	g_assert_null(strstr(out, "sekrit"));
	g_assert_null(strstr(err, "sekrit"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* KEYLIME_AGENT_<OPTION> applies on top of --config */
	g_setenv("KEYLIME_AGENT_CONTACT_PORT", "4242", TRUE);
	insecure = agent_spawn(&error,
			       "--config",
			       s.conf,
			       "--avoid-tpm",
			       "--check",
			       "--insecure",
			       "--api-version",
			       "3.1",
			       NULL);
	g_unsetenv("KEYLIME_AGENT_CONTACT_PORT");
	g_assert_cmpint(agent_finish(insecure, &out, &err), ==, 0);
	g_assert_nonnull(strstr(out, "4242"));
	/* the URL the evidence goes to, with the configured API version */
	g_assert_nonnull(
	    strstr(out, "attestations: https://127.0.0.1:1/v3.1/agents/" AGENT_ID "/attestations"));
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
	g_autoptr(GSubprocess) debug = NULL;
	g_autofree gchar *json = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;

	/* nothing listens on port 1: two attempts (max_retries = 1), then exit 7 */
	setup_new(&s, 1, NULL);
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--once", NULL);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 7);
	g_assert_nonnull(strstr(err, "giving up after 2 attempts"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* --json-file is a one-shot as well: it does not retry forever either */
	json = g_build_filename(s.dir, "body.json", NULL);
	g_assert_true(g_file_set_contents(json, "{}", -1, NULL));
	debug = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--json-file", json, NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(debug, &out, &err), ==, 7);
	g_assert_nonnull(strstr(err, "giving up after 2 attempts (--json-file)"));
	setup_clear(&s);
}

/*
 * A listening TCP socket on 127.0.0.1 with a port chosen by the kernel
 * (@port); accept() gives up after 60 s.
 */
static GSocket *
listen_loopback(guint16 *port)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(GSocket) sock = NULL;

	sock =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error(error);
	g_assert_true(g_socket_bind(sock, addr, TRUE, &error));
	g_assert_no_error(error);
	g_assert_true(g_socket_listen(sock, &error));
	g_assert_no_error(error);
	bound = g_socket_get_local_address(sock, &error);
	g_assert_no_error(error);
	*port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
	g_socket_set_timeout(sock, 60);
	return g_steal_pointer(&sock);
}

static void
test_sigterm_and_sighup(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GSocket) listener = NULL;
	g_autoptr(GSocket) conn = NULL;
	guint16 port = 0;
	gint64 start = g_get_monotonic_time();

	if (!have_plugin())
		return;

	/*
	 * Retrying forever against an absent registrar. Its first connection to
	 * the registrar port (no splay: at once) proves that the agent reached its
	 * main loop, with the signal handlers in place (a fixed sleep raced with a
	 * slow start-up); then the port is closed again.
	 */
	listener = listen_loopback(&port);
	setup_new(&s, port, "exponential_backoff_max_retries = 5\n");
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	conn = g_socket_accept(listener, NULL, &error);
	g_assert_no_error(error);
	g_clear_object(&conn);
	g_clear_object(&listener);
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
	g_autofree gchar *empty = NULL;

	if (!have_software_tpm())
		return;
	empty = g_dir_make_tmp("kl-noplugins-XXXXXX", NULL);
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

/*
 * A verifier CA file the run_as user cannot read: the agent reads it at every
 * connection after dropping root, so this is a configuration error at start
 * (exit 3) naming the file and the user, and a PROBLEM in --check (run as
 * root), not a TLS failure retried forever.
 */
static void
test_ca_unreadable_by_run_as(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GSubprocess) check = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GSubprocess) check2 = NULL;
	g_autofree gchar *cadir = NULL;
	g_autofree gchar *ca = NULL;
	g_autofree gchar *extra = NULL;

	if (!have_plugin())
		return;
	if (geteuid() != 0) {
		kl_test_skip("dropping privileges needs root");
		return;
	}
	cadir = g_dir_make_tmp("kl-ca-XXXXXX", NULL);
	g_assert_nonnull(cadir);
	g_assert_cmpint(g_chmod(cadir, 0755), ==, 0);
	ca = g_build_filename(cadir, "ca.pem", NULL);
	g_assert_true(g_file_set_contents(ca, "-----BEGIN CERTIFICATE-----\n", -1, NULL));
	g_assert_cmpint(g_chmod(ca, 0600), ==, 0);
	extra = g_strdup_printf("exponential_backoff_max_retries = 1\n"
				"run_as = \"nobody:nogroup\"\n"
				"verifier_tls_ca_cert = \"%s\"\n",
				ca);
	setup_new(&s, 1, extra);

	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--once", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 3);
	g_assert_nonnull(strstr(err, "ERROR"));
	g_assert_nonnull(strstr(err, ca));
	g_assert_nonnull(strstr(err, "cannot be read by user nobody"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	check = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--check", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(check, &out, &err), ==, 1);
	g_assert_nonnull(strstr(out, "PROBLEM: "));
	g_assert_nonnull(strstr(out, "cannot be read by user nobody"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* readable by its group: fine */
	g_assert_cmpint(g_chmod(ca, 0644), ==, 0);
	check2 = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--check", NULL);
	g_assert_no_error(error);
	(void)agent_finish(check2, &out, &err);
	g_assert_null(strstr(out, "cannot be read by user"));
	g_assert_cmpint(g_unlink(ca), ==, 0);
	g_assert_cmpint(g_rmdir(cadir), ==, 0);
	setup_clear(&s);
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
	g_autoptr(GSocket) listener = NULL;
	g_autoptr(GSocket) conn = NULL;
	guint16 port = 0;
	gint64 uid = -1;

	if (!have_plugin())
		return;
	if (geteuid() != 0) {
		kl_test_skip("dropping privileges needs root");
		return;
	}

	/* an operator-set run_as that cannot work is a configuration error */
	setup_new(
	    &s, 1, "exponential_backoff_max_retries = 5\nrun_as = \"kl-no-such-user:nogroup\"\n");
	bad = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(bad, &out, &err), ==, 3);
	g_assert_nonnull(strstr(err, "kl-no-such-user"));
	setup_clear(&s);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/*
	 * the agent really runs as nobody once the TPM and the plugins are open;
	 * its first connection to the registrar port says it is in its main loop
	 */
	listener = listen_loopback(&port);
	setup_new(&s, port, "exponential_backoff_max_retries = 5\nrun_as = \"nobody:nogroup\"\n");
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	pid = g_strdup(g_subprocess_get_identifier(proc));
	conn = g_socket_accept(listener, NULL, &error);
	g_assert_no_error(error);
	g_clear_object(&conn);
	g_clear_object(&listener);
	uid = proc_uid(pid);
	g_subprocess_send_signal(proc, SIGTERM);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 0);
	g_assert_cmpint(uid, ==, 65534);
	g_assert_nonnull(strstr(err, "running as nobody:nogroup"));
	setup_clear(&s);
}

/*
 * --registrar-url replaces registrar_ip/registrar_port; contact_ip and
 * contact_port are what the registrar is told; registrar_api_versions limits
 * the API versions the agent speaks.
 */
static void
test_registrar_url_contact_versions(void)
{
	Registrar *reg = NULL;
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GSubprocess) limited = NULL;
	g_autoptr(GSubprocess) none = NULL;
	g_autoptr(JsonObject) body = NULL;
	g_autofree gchar *request = NULL;
	g_autofree gchar *url = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	if (!have_plugin())
		return;
	reg = registrar_start();
	url = g_strdup_printf("http://127.0.0.1:%u", reg->port);

	/* registrar_port points nowhere: only --registrar-url leads to the registrar */
	setup_new(&s,
		  1,
		  "exponential_backoff_max_retries = 1\n"
		  "contact_ip = \"192.0.2.7\"\n"
		  "contact_port = 4711\n");
	proc = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--registrar-url", url, NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 5);
	registrar_last_post(reg, &request, &body);
	/* by default the registrar's current version */
	g_assert_true(g_str_has_prefix(request, "POST /v2.6/agents/" AGENT_ID " "));
	g_assert_cmpstr(json_object_get_string_member(body, "ip"), ==, "192.0.2.7");
	g_assert_cmpint(json_object_get_int_member(body, "port"), ==, 4711);
	setup_clear(&s);
	g_clear_pointer(&request, g_free);
	g_clear_pointer(&body, json_object_unref);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* only 2.5 enabled: the agent registers through /v2.5; --agent-identifier beats
	 * every other source of the agent id */
	setup_new(&s,
		  reg->port,
		  "exponential_backoff_max_retries = 1\nregistrar_api_versions = \"2.5\"\n");
	{
		const gchar *env[] = { "KEYLIME_AGENT_UUID=d432fbb3-d2f1-4a97-9ef7-75bd81c0e0ff",
				       NULL };
		limited = agent_spawn_env(&error,
					  env,
					  "--config",
					  s.conf,
					  "--avoid-tpm",
					  "--once",
					  "--agent-identifier",
					  AGENT_ID,
					  NULL);
	}
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(limited, &out, &err), ==, 5);
	registrar_last_post(reg, &request, &body);
	g_assert_true(g_str_has_prefix(request, "POST /v2.5/agents/" AGENT_ID " "));
	g_assert_cmpint(g_atomic_int_get(&reg->posts), ==, 2);
	setup_clear(&s);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* no version in common: never registered, and the message names the option */
	setup_new(&s,
		  reg->port,
		  "exponential_backoff_max_retries = 1\nregistrar_api_versions = [\"2.1\"]\n");
	none = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--once", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(none, &out, &err), ==, 7);
	g_assert_nonnull(strstr(err, "registrar_api_versions"));
	g_assert_cmpint(g_atomic_int_get(&reg->posts), ==, 2);
	setup_clear(&s);
	registrar_stop(reg);
}

/* --timeout (request_timeout) bounds each request to a registrar that never answers */
static void
test_timeout_flag(void)
{
	Registrar *reg = NULL;
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	const gchar *env[] = { "KEYLIME_AGENT_REQUEST_TIMEOUT=10000", NULL };
	gint64 start;

	if (!have_plugin())
		return;
	reg = registrar_start_full(TRUE);
	/* the environment says 10 s (over the file's 2 s): two attempts would take 20 s */
	setup_new(&s, reg->port, NULL);
	start = g_get_monotonic_time();
	proc = agent_spawn_env(
	    &error, env, "--config", s.conf, "--avoid-tpm", "--once", "--timeout", "300", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 7);
	g_assert_nonnull(strstr(err, "within 300 ms"));
	g_assert_nonnull(strstr(err, "giving up after 2 attempts"));
	g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
	setup_clear(&s);
	registrar_stop(reg);
}

/* --log-level: error hides the start-up line, debug shows each request */
static void
test_log_level_flag(void)
{
	Registrar *reg = NULL;
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) quiet = NULL;
	g_autoptr(GSubprocess) verbose = NULL;
	g_autoptr(GSubprocess) plain = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *version_line = NULL;

	if (!have_plugin())
		return;
	reg = registrar_start();
	version_line = g_strdup_printf("GET http://127.0.0.1:%u/version -> 200", reg->port);
	setup_new(&s, reg->port, NULL);

	plain = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_cmpint(agent_finish(plain, &out, &err), ==, 5);
	g_assert_nonnull(strstr(err, "evidence plugin(s), registrar"));
	g_assert_null(strstr(err, version_line));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	quiet =
	    agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--log-level", "error", NULL);
	g_assert_cmpint(agent_finish(quiet, &out, &err), ==, 5);
	g_assert_null(strstr(err, "evidence plugin(s), registrar"));
	g_assert_null(strstr(err, version_line));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	verbose =
	    agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--log-level", "debug", NULL);
	g_assert_cmpint(agent_finish(verbose, &out, &err), ==, 5);
	g_assert_nonnull(strstr(err, version_line));
	setup_clear(&s);
	registrar_stop(reg);
}

/* disabled_plugins: the plugin is not used, and --check says why */
static void
test_disabled_plugins(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) check = NULL;
	g_autoptr(GSubprocess) run = NULL;
	g_autoptr(GDir) dir = NULL;
	g_autoptr(GString) all = g_string_new(NULL);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *extra = NULL;
	const gchar *name;

	if (!have_plugin())
		return;
	setup_new(&s, 1, "disabled_plugins = [\"tpm_quote\"]\n");
	check =
	    agent_spawn(&error, "--config", s.conf, "--avoid-tpm", "--check", "--insecure", NULL);
	g_assert_no_error(error);
	agent_finish(check, &out, &err);
	g_assert_true(g_regex_match_simple("tpm_quote +disabled", out, 0, 0));
	g_assert_null(strstr(out, "tpm_quote    active"));
	setup_clear(&s);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* every built plugin disabled: nothing to attest, exit status 6 */
	dir = g_dir_open(g_getenv("KL_TEST_PLUGINDIR"), 0, &error);
	g_assert_no_error(error);
	while ((name = g_dir_read_name(dir)) != NULL) {
		if (!g_str_has_suffix(name, ".so"))
			continue;
		g_string_append_printf(
		    all, "%s\"%.*s\"", all->len > 0 ? ", " : "", (int)(strlen(name) - 3), name);
	}
	extra = g_strdup_printf("exponential_backoff_max_retries = 1\ndisabled_plugins = [%s]\n",
				all->str);
	setup_new(&s, 1, extra);
	run = agent_spawn(&error, "--config", s.conf, "--avoid-tpm", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(run, &out, &err), ==, 6);
	g_assert_nonnull(strstr(err, "no evidence plugin is active"));
	setup_clear(&s);
}

/* KEYLIME_DIR replaces keylime_dir; TCTI is used when tcti is not set */
static void
test_keylime_dir_and_tcti_env(void)
{
	Setup s;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GSubprocess) tpm = NULL;
	g_autoptr(GSubprocess) flag = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *other = NULL;
	g_autofree gchar *env_dir = NULL;
	g_autofree gchar *in_other = NULL;
	g_autofree gchar *in_conf = NULL;
	const gchar *tcti_env[] = { "TCTI=swtpm:host=127.0.0.1,port=1", NULL };

	if (!have_plugin())
		return;
	/* uuid = generate keeps the identifier in <keylime_dir>/agent_uuid */
	setup_new(&s, 1, NULL);
	other = g_build_filename(s.dir, "other", NULL);
	g_assert_cmpint(g_mkdir(other, 0700), ==, 0);
	env_dir = g_strdup_printf("KEYLIME_DIR=%s", other);
	{
		const gchar *env[] = { env_dir, "KEYLIME_AGENT_UUID=generate", NULL };
		proc = agent_spawn_env(
		    &error, env, "--config", s.conf, "--avoid-tpm", "--check", "--insecure", NULL);
	}
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(proc, &out, &err), ==, 0);
	in_other = g_build_filename(other, "agent_uuid", NULL);
	in_conf = g_build_filename(s.dir, "keylime", "agent_uuid", NULL);
	g_assert_true(g_file_test(in_other, G_FILE_TEST_IS_REGULAR));
	g_assert_false(g_file_test(in_conf, G_FILE_TEST_IS_REGULAR));
	g_assert_nonnull(strstr(out, "environment (KEYLIME_DIR)"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* the real TPM layer opens what TCTI names: nothing listens there */
	tpm = agent_spawn_env(&error, tcti_env, "--config", s.conf, "--once", NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(tpm, &out, &err), ==, 4);
	g_assert_nonnull(strstr(err, "port=1"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* --tcti wins over $TCTI */
	flag = agent_spawn_env(&error,
			       tcti_env,
			       "--config",
			       s.conf,
			       "--once",
			       "--tcti",
			       "swtpm:host=127.0.0.1,port=2",
			       NULL);
	g_assert_no_error(error);
	g_assert_cmpint(agent_finish(flag, &out, &err), ==, 4);
	g_assert_nonnull(strstr(err, "port=2"));
	g_assert_null(strstr(err, "port=1"));
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
	g_test_add_func("/main/boolean-options-strict", test_boolean_options_strict);
	g_test_add_func("/main/plain-http-verifier-refused", test_plain_http_verifier_refused);
	g_test_add_func("/main/check-report", test_check_report);
	g_test_add_func("/main/no-plugin-exit-6", test_no_plugin_exit_6);
	g_test_add_func("/main/registrar-403-exit-5", test_registrar_403_exit_5);
	g_test_add_func("/main/once-gives-up-exit-7", test_once_gives_up_exit_7);
	g_test_add_func("/main/sigterm-and-sighup", test_sigterm_and_sighup);
	g_test_add_func("/main/run-as", test_run_as);
	g_test_add_func("/main/ca-unreadable-by-run-as", test_ca_unreadable_by_run_as);
	g_test_add_func("/main/registrar-url-contact-versions",
			test_registrar_url_contact_versions);
	g_test_add_func("/main/timeout-flag", test_timeout_flag);
	g_test_add_func("/main/log-level-flag", test_log_level_flag);
	g_test_add_func("/main/disabled-plugins", test_disabled_plugins);
	g_test_add_func("/main/keylime-dir-and-tcti-env", test_keylime_dir_and_tcti_env);
	return g_test_run();
}
