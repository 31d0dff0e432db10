/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Integration-test harness: Python test peers + the agent binary, all
 * stopped by pid with bounded waits.
 */
#include "config.h"

#include "kl-test-peers.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define KL_TEST_PYTHON "/usr/bin/python3"

typedef struct {
	GSubprocess *proc;
	gchar *state_file;
	gchar *log_file;
	JsonObject *state;
} KlTestPeer;

struct _KlTestPeers {
	gchar *dir;
	KlTestPeer registrar;
	KlTestPeer verifier;
	guint n_agents;
	KlTestAgent *watched; /* the last started agent: waits stop when it has exited */
};

struct _KlTestAgent {
	KlTestPeers *peers;
	gchar *dir;
	gchar *keylime_dir;
	gchar *conf_path;
	gchar *log_path;
	GHashTable *options; /* key -> TOML value text */
	GPtrArray *option_order;
	GSubprocess *proc;
	gboolean own_keylime_dir;
};

/* ------------------------------------------------------------------ process waits */

/* children die with the test program, even when an assertion aborts it */
static void
kl_test_child_setup(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

typedef struct {
	gboolean done;
} KlWaitData;

static void
kl_test_wait_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KlWaitData *data = user_data;
	g_autoptr(GError) error = NULL;

	(void)g_subprocess_wait_finish(G_SUBPROCESS(source), res, &error);
	data->done = TRUE;
}

static gboolean
kl_test_timeout_cb(gpointer user_data)
{
	gboolean *expired = user_data;
	*expired = TRUE;
	return G_SOURCE_REMOVE;
}

/* TRUE when the process exited within @timeout_s */
static gboolean
kl_test_wait_proc(GSubprocess *proc, gdouble timeout_s)
{
	g_autoptr(GMainContext) ctx = g_main_context_new();
	g_autoptr(GCancellable) cancel = g_cancellable_new();
	g_autoptr(GSource) timeout = NULL;
	KlWaitData data = { FALSE };
	gboolean expired = FALSE;

	g_main_context_push_thread_default(ctx);
	g_subprocess_wait_async(proc, cancel, kl_test_wait_cb, &data);
	timeout = g_timeout_source_new((guint)(timeout_s * 1000));
	g_source_set_callback(timeout, kl_test_timeout_cb, &expired, NULL);
	g_source_attach(timeout, ctx);
	while (!data.done && !expired)
		g_main_context_iteration(ctx, TRUE);
	if (!data.done) {
		g_cancellable_cancel(cancel);
		while (!data.done)
			g_main_context_iteration(ctx, TRUE);
	}
	g_source_destroy(timeout);
	g_main_context_pop_thread_default(ctx);
	return g_subprocess_get_if_exited(proc) || g_subprocess_get_if_signaled(proc);
}

static gint
kl_test_exit_status(GSubprocess *proc)
{
	if (g_subprocess_get_if_exited(proc))
		return g_subprocess_get_exit_status(proc);
	if (g_subprocess_get_if_signaled(proc))
		return 128 + g_subprocess_get_term_sig(proc);
	return -1;
}

static gint
kl_test_stop_proc(GSubprocess *proc, gint signum, gdouble timeout_s)
{
	if (proc == NULL)
		return -1;
	if (g_subprocess_get_identifier(proc) != NULL) {
		g_subprocess_send_signal(proc, signum);
		if (!kl_test_wait_proc(proc, timeout_s)) {
			g_test_message("pid %s did not stop within %.0f s after signal %d: SIGKILL",
				       g_subprocess_get_identifier(proc),
				       timeout_s,
				       signum);
			g_subprocess_force_exit(proc);
			kl_test_wait_proc(proc, 10);
			return -1;
		}
	}
	return kl_test_exit_status(proc);
}

/* ------------------------------------------------------------------ HTTP */

static size_t
kl_test_curl_write(char *ptr, size_t size, size_t nmemb, void *user_data)
{
	g_string_append_len(user_data, ptr, (gssize)(size * nmemb));
	return size * nmemb;
}

static gchar *
kl_test_http(const gchar *method,
	     const gchar *url,
	     const gchar *ca,
	     const gchar *body,
	     glong *status,
	     GError **error)
{
	g_autoptr(GString) out = g_string_new(NULL);
	struct curl_slist *hdrs = NULL;
	CURL *curl = curl_easy_init();
	CURLcode rc;

	if (curl == NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "curl_easy_init failed");
		return NULL;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kl_test_curl_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	if (ca != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	}
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK && status != NULL)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(curl);
	if (rc != CURLE_OK) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    "%s %s: %s",
			    method,
			    url,
			    curl_easy_strerror(rc));
		return NULL;
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

static JsonNode *
kl_test_call(const gchar *base,
	     const gchar *ca,
	     const gchar *method,
	     const gchar *path,
	     const gchar *body,
	     glong *status,
	     GError **error)
{
	g_autofree gchar *url = g_strconcat(base, path, NULL);
	g_autofree gchar *text = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	glong code = 0;

	text = kl_test_http(method, url, ca, body, &code, error);
	if (text == NULL)
		return NULL;
	if (status != NULL)
		*status = code;
	if (!json_parser_load_from_data(parser, text, -1, error))
		return NULL;
	if (json_parser_get_root(parser) == NULL) {
		g_set_error(
		    error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s: empty reply", method, url);
		return NULL;
	}
	return json_node_copy(json_parser_get_root(parser));
}

/* ------------------------------------------------------------------ peers */

KlTestPeers *
kl_test_peers_new(void)
{
	KlTestPeers *peers = g_new0(KlTestPeers, 1);
	g_autoptr(GError) error = NULL;
	static gsize curl_once = 0;

	if (g_once_init_enter(&curl_once)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&curl_once, 1);
	}
	peers->dir = g_dir_make_tmp("kl-int-XXXXXX", &error);
	g_assert_no_error(error);
	return peers;
}

static void
kl_test_peer_clear(KlTestPeer *peer)
{
	if (peer->proc != NULL) {
		kl_test_stop_proc(peer->proc, SIGTERM, 10);
		g_clear_object(&peer->proc);
	}
	g_clear_pointer(&peer->state, json_object_unref);
	g_clear_pointer(&peer->state_file, g_free);
	g_clear_pointer(&peer->log_file, g_free);
}

static void
kl_test_rm_rf(const gchar *path)
{
	g_autoptr(GFile) file = g_file_new_for_path(path);
	g_autoptr(GFileEnumerator) en = NULL;
	GFileInfo *info;

	en = g_file_enumerate_children(file,
				       G_FILE_ATTRIBUTE_STANDARD_NAME
				       "," G_FILE_ATTRIBUTE_STANDARD_TYPE,
				       G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
				       NULL,
				       NULL);
	while (en != NULL && (info = g_file_enumerator_next_file(en, NULL, NULL)) != NULL) {
		g_autofree gchar *child = g_build_filename(path, g_file_info_get_name(info), NULL);
		if (g_file_info_get_file_type(info) == G_FILE_TYPE_DIRECTORY)
			kl_test_rm_rf(child);
		else
			g_unlink(child);
		g_object_unref(info);
	}
	g_rmdir(path);
}

void
kl_test_peers_free(KlTestPeers *peers)
{
	if (peers == NULL)
		return;
	kl_test_peer_clear(&peers->registrar);
	kl_test_peer_clear(&peers->verifier);
	if (g_getenv("KL_TEST_KEEP") == NULL)
		kl_test_rm_rf(peers->dir);
	else
		g_test_message("kept %s", peers->dir);
	g_free(peers->dir);
	g_free(peers);
}

const gchar *
kl_test_peers_get_dir(KlTestPeers *peers)
{
	return peers->dir;
}

gchar *
kl_test_peers_script(const gchar *name)
{
	return g_test_build_filename(G_TEST_DIST, "peers", name, NULL);
}

static gchar *
kl_test_peer_log_tail(KlTestPeer *peer)
{
	g_autofree gchar *text = NULL;
	gsize len = 0;

	if (peer->log_file == NULL || !g_file_get_contents(peer->log_file, &text, &len, NULL))
		return g_strdup("");
	if (len > 4000)
		return g_strdup(text + len - 4000);
	return g_steal_pointer(&text);
}

static gboolean
kl_test_peer_start(
    KlTestPeers *peers, KlTestPeer *peer, const gchar *name, GPtrArray *argv, GError **error)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	gint64 deadline;

	kl_test_peer_clear(peer);
	peer->state_file = g_strdup_printf("%s/%s.state.json", peers->dir, name);
	peer->log_file = g_strdup_printf("%s/%s.log", peers->dir, name);
	/* a peer started again: its state file appears once it listens, not before */
	g_unlink(peer->state_file);
	g_ptr_array_add(argv, g_strdup("--state-file"));
	g_ptr_array_add(argv, g_strdup(peer->state_file));
	g_ptr_array_add(argv, g_strdup("--cert-dir"));
	g_ptr_array_add(argv, g_strdup(peers->dir));
	g_ptr_array_add(argv, NULL);
	/* a restarted peer: wait for its own state file, not the last one's */
	(void)g_unlink(peer->state_file);

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_subprocess_launcher_set_child_setup(launcher, kl_test_child_setup, NULL, NULL);
	g_subprocess_launcher_set_stdout_file_path(launcher, peer->log_file);
	g_subprocess_launcher_unsetenv(launcher, "PYTHONPATH");
	g_subprocess_launcher_unsetenv(launcher, "PYTHONHOME");
	peer->proc =
	    g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, error);
	if (peer->proc == NULL)
		return FALSE;

	deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
	while (!g_file_test(peer->state_file, G_FILE_TEST_EXISTS)) {
		if (g_get_monotonic_time() > deadline ||
		    g_subprocess_get_identifier(peer->proc) == NULL) {
			g_autofree gchar *tail = kl_test_peer_log_tail(peer);
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_FAILED,
				    "test %s did not start: %s",
				    name,
				    tail);
			return FALSE;
		}
		g_usleep(50000);
	}
	if (!json_parser_load_from_file(parser, peer->state_file, error))
		return FALSE;
	peer->state = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
	return TRUE;
}

gboolean
kl_test_peers_start_registrar(KlTestPeers *peers, guint16 port, gboolean tls, GError **error, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	va_list ap;
	const gchar *arg;

	g_ptr_array_add(argv, g_strdup(KL_TEST_PYTHON));
	g_ptr_array_add(argv, kl_test_peers_script("kl_test_registrar.py"));
	g_ptr_array_add(argv, g_strdup("--port"));
	g_ptr_array_add(argv, g_strdup_printf("%u", port));
	if (tls)
		g_ptr_array_add(argv, g_strdup("--tls"));
	va_start(ap, error);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, g_strdup(arg));
	va_end(ap);
	return kl_test_peer_start(peers, &peers->registrar, "registrar", argv, error);
}

void
kl_test_peers_stop_registrar(KlTestPeers *peers)
{
	kl_test_peer_clear(&peers->registrar);
}

static gint64
kl_test_state_int(KlTestPeer *peer, const gchar *member)
{
	if (peer->state == NULL || !json_object_has_member(peer->state, member))
		return 0;
	return json_object_get_int_member(peer->state, member);
}

static const gchar *
kl_test_state_str(KlTestPeer *peer, const gchar *member)
{
	if (peer->state == NULL || !json_object_has_member(peer->state, member))
		return NULL;
	return json_object_get_string_member(peer->state, member);
}

guint16
kl_test_peers_registrar_port(KlTestPeers *peers)
{
	return (guint16)kl_test_state_int(&peers->registrar, "port");
}

guint16
kl_test_peers_registrar_tls_port(KlTestPeers *peers)
{
	return (guint16)kl_test_state_int(&peers->registrar, "tls_port");
}

const gchar *
kl_test_peers_registrar_ca(KlTestPeers *peers)
{
	return kl_test_state_str(&peers->registrar, "ca_cert");
}

gboolean
kl_test_peers_start_verifier(KlTestPeers *peers, GError **error, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	va_list ap;
	const gchar *arg;

	g_ptr_array_add(argv, g_strdup(KL_TEST_PYTHON));
	g_ptr_array_add(argv, kl_test_peers_script("kl_test_verifier.py"));
	if (kl_test_state_str(&peers->registrar, "url") != NULL) {
		g_ptr_array_add(argv, g_strdup("--registrar-url"));
		g_ptr_array_add(argv, g_strdup(kl_test_state_str(&peers->registrar, "url")));
	}
	va_start(ap, error);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, g_strdup(arg));
	va_end(ap);
	return kl_test_peer_start(peers, &peers->verifier, "verifier", argv, error);
}

void
kl_test_peers_stop_verifier(KlTestPeers *peers)
{
	kl_test_peer_clear(&peers->verifier);
}

void
kl_test_peers_signal_verifier(KlTestPeers *peers, gint signum)
{
	g_assert_nonnull(peers->verifier.proc);
	g_subprocess_send_signal(peers->verifier.proc, signum);
}

const gchar *
kl_test_peers_verifier_url(KlTestPeers *peers)
{
	return kl_test_state_str(&peers->verifier, "url");
}

const gchar *
kl_test_peers_verifier_ca(KlTestPeers *peers)
{
	return kl_test_state_str(&peers->verifier, "ca_cert");
}

JsonNode *
kl_test_peers_verifier_call(KlTestPeers *peers,
			    const gchar *method,
			    const gchar *path,
			    const gchar *body,
			    glong *status,
			    GError **error)
{
	if (kl_test_peers_verifier_url(peers) == NULL) {
		g_set_error(
		    error, G_IO_ERROR, G_IO_ERROR_FAILED, "the test verifier is not running");
		return NULL;
	}
	return kl_test_call(kl_test_peers_verifier_url(peers),
			    kl_test_peers_verifier_ca(peers),
			    method,
			    path,
			    body,
			    status,
			    error);
}

JsonNode *
kl_test_peers_registrar_call(KlTestPeers *peers,
			     const gchar *method,
			     const gchar *path,
			     const gchar *body,
			     glong *status,
			     GError **error)
{
	if (kl_test_state_str(&peers->registrar, "url") == NULL) {
		g_set_error(
		    error, G_IO_ERROR, G_IO_ERROR_FAILED, "the test registrar is not running");
		return NULL;
	}
	return kl_test_call(
	    kl_test_state_str(&peers->registrar, "url"), NULL, method, path, body, status, error);
}

static gboolean
kl_test_expect_200(JsonNode *reply, glong status, const gchar *what, GError **error)
{
	if (reply == NULL)
		return FALSE;
	if (status != 200) {
		g_autofree gchar *text = json_to_string(reply, FALSE);
		g_set_error(
		    error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: HTTP %ld %s", what, status, text);
		return FALSE;
	}
	return TRUE;
}

gboolean
kl_test_peers_enroll(KlTestPeers *peers,
		     const gchar *agent_id,
		     const gchar *policy_json,
		     GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(JsonNode) reply = NULL;
	g_autoptr(JsonObject) obj = NULL;
	g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
	g_autofree gchar *body = NULL;
	glong status = 0;

	if (policy_json != NULL) {
		if (!json_parser_load_from_data(parser, policy_json, -1, error))
			return FALSE;
		obj = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
	} else {
		obj = json_object_new();
	}
	json_object_set_string_member(obj, "agent_id", agent_id);
	json_node_set_object(node, obj);
	body = json_to_string(node, FALSE);
	reply = kl_test_peers_verifier_call(peers, "POST", "/_test/enroll", body, &status, error);
	return kl_test_expect_200(reply, status, "enroll", error);
}

gboolean
kl_test_peers_add_faults(KlTestPeers *peers, const gchar *faults_json, GError **error)
{
	g_autoptr(JsonNode) reply = NULL;
	glong status = 0;

	reply = kl_test_peers_verifier_call(
	    peers, "POST", "/_test/faults", faults_json, &status, error);
	return kl_test_expect_200(reply, status, "faults", error);
}

static JsonObject *
kl_test_agent_object(JsonNode *reply, glong status)
{
	if (reply == NULL || status != 200 || !JSON_NODE_HOLDS_OBJECT(reply))
		return NULL;
	return json_object_ref(json_node_get_object(reply));
}

JsonObject *
kl_test_peers_verifier_agent(KlTestPeers *peers, const gchar *agent_id)
{
	g_autofree gchar *path = g_strdup_printf("/_test/agents/%s", agent_id);
	g_autoptr(JsonNode) reply = NULL;
	glong status = 0;

	reply = kl_test_peers_verifier_call(peers, "GET", path, NULL, &status, NULL);
	return kl_test_agent_object(reply, status);
}

JsonObject *
kl_test_peers_registrar_agent(KlTestPeers *peers, const gchar *agent_id)
{
	g_autofree gchar *path = g_strdup_printf("/_test/agents/%s", agent_id);
	g_autoptr(JsonNode) reply = NULL;
	glong status = 0;

	reply = kl_test_peers_registrar_call(peers, "GET", path, NULL, &status, NULL);
	return kl_test_agent_object(reply, status);
}

static gint64
kl_test_member_int(JsonObject *obj, const gchar *member)
{
	JsonNode *node;

	if (obj == NULL || !json_object_has_member(obj, member))
		return -1;
	node = json_object_get_member(obj, member);
	if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_INT64)
		return json_node_get_int(node);
	if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_BOOLEAN)
		return json_node_get_boolean(node) ? 1 : 0;
	return -1;
}

gint64
kl_test_peers_verifier_int(KlTestPeers *peers, const gchar *agent_id, const gchar *member)
{
	g_autoptr(JsonObject) obj = kl_test_peers_verifier_agent(peers, agent_id);
	return kl_test_member_int(obj, member);
}

gint64
kl_test_peers_registrar_int(KlTestPeers *peers, const gchar *agent_id, const gchar *member)
{
	g_autoptr(JsonObject) obj = kl_test_peers_registrar_agent(peers, agent_id);
	return kl_test_member_int(obj, member);
}

static void
kl_test_peer_dump_log(KlTestPeer *peer, const gchar *name)
{
	g_autofree gchar *tail = kl_test_peer_log_tail(peer);
	g_auto(GStrv) lines = g_strsplit(tail, "\n", -1);
	guint n = g_strv_length(lines);

	for (guint i = n > 25 ? n - 25 : 0; i < n; i++) {
		if (lines[i][0] != '\0')
			g_test_message("%s: %s", name, lines[i]);
	}
}

/* FALSE (and a message) when the watched agent is no longer running */
static gboolean
kl_test_watched_alive(KlTestPeers *peers)
{
	KlTestAgent *agent = peers->watched;

	if (agent == NULL || agent->proc == NULL ||
	    g_subprocess_get_identifier(agent->proc) != NULL)
		return TRUE;
	g_test_message("the agent exited early with status %d", kl_test_exit_status(agent->proc));
	kl_test_agent_dump_log(agent);
	return FALSE;
}

typedef gint64 (*KlTestPeerIntFunc)(KlTestPeers *peers, const gchar *agent_id, const gchar *member);

/* polls a peer's integer member until it reaches @min; dumps the peer's log on a timeout */
static gboolean
kl_test_peers_wait_int(KlTestPeers *peers,
		       KlTestPeer *peer,
		       const gchar *name,
		       KlTestPeerIntFunc get,
		       const gchar *agent_id,
		       const gchar *member,
		       gint64 min,
		       gdouble timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);
	gint64 v = -1;

	do {
		v = get(peers, agent_id, member);
		if (v >= min)
			return TRUE;
		if (!kl_test_watched_alive(peers))
			break;
		g_usleep(100000);
	} while (g_get_monotonic_time() < deadline);
	kl_test_peer_dump_log(peer, name);
	g_test_message("%s: %s of %s is %" G_GINT64_FORMAT ", wanted >= %" G_GINT64_FORMAT
		       " within %.0f s",
		       name,
		       member,
		       agent_id,
		       v,
		       min,
		       timeout_s);
	return FALSE;
}

gboolean
kl_test_peers_wait_verifier_int(
    KlTestPeers *peers, const gchar *agent_id, const gchar *member, gint64 min, gdouble timeout_s)
{
	return kl_test_peers_wait_int(peers,
				      &peers->verifier,
				      "verifier",
				      kl_test_peers_verifier_int,
				      agent_id,
				      member,
				      min,
				      timeout_s);
}

gboolean
kl_test_peers_wait_registrar_int(
    KlTestPeers *peers, const gchar *agent_id, const gchar *member, gint64 min, gdouble timeout_s)
{
	return kl_test_peers_wait_int(peers,
				      &peers->registrar,
				      "registrar",
				      kl_test_peers_registrar_int,
				      agent_id,
				      member,
				      min,
				      timeout_s);
}

/* ------------------------------------------------------------------ agent */

KlTestAgent *
kl_test_agent_new(KlTestPeers *peers, const gchar *uuid, const gchar *keylime_dir)
{
	KlTestAgent *agent = g_new0(KlTestAgent, 1);
	const gchar *tcti = g_getenv("KL_TEST_TCTI");
	const gchar *plugindir = g_getenv("KL_TEST_PLUGINDIR");

	agent->peers = peers;
	agent->dir = g_strdup_printf("%s/agent%u", peers->dir, ++peers->n_agents);
	g_assert_cmpint(g_mkdir_with_parents(agent->dir, 0700), ==, 0);
	if (keylime_dir != NULL) {
		agent->keylime_dir = g_strdup(keylime_dir);
	} else {
		agent->keylime_dir = g_build_filename(agent->dir, "keylime", NULL);
		g_assert_cmpint(g_mkdir_with_parents(agent->keylime_dir, 0700), ==, 0);
	}
	agent->conf_path = g_build_filename(agent->dir, "agent.conf", NULL);
	agent->log_path = g_build_filename(agent->dir, "agent.log", NULL);
	agent->options = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	agent->option_order = g_ptr_array_new_with_free_func(g_free);

	kl_test_agent_set_string(agent, "uuid", uuid);
	kl_test_agent_set_string(agent, "keylime_dir", agent->keylime_dir);
	kl_test_agent_set_string(agent, "registrar_ip", "127.0.0.1");
	if (kl_test_peers_registrar_port(peers) != 0)
		kl_test_agent_set_int(agent, "registrar_port", kl_test_peers_registrar_port(peers));
	if (kl_test_peers_verifier_url(peers) != NULL) {
		kl_test_agent_set_string(agent, "verifier_url", kl_test_peers_verifier_url(peers));
		kl_test_agent_set_string(
		    agent, "verifier_tls_ca_cert", kl_test_peers_verifier_ca(peers));
	}
	if (tcti != NULL)
		kl_test_agent_set_string(agent, "tcti", tcti);
	if (plugindir != NULL)
		kl_test_agent_set_string(agent, "plugin_dir", plugindir);
	kl_test_agent_set_string(agent, "run_as", "");
	kl_test_agent_set_int(agent, "exponential_backoff_initial_delay", 200);
	kl_test_agent_set_int(agent, "exponential_backoff_max_delay", 2000);
	kl_test_agent_set_int(agent, "exponential_backoff_max_retries", 3);
	kl_test_agent_set_int(agent, "attestation_interval_seconds", 2);
	/* one agent: no fleet to spread; tests that check the splay set it */
	kl_test_agent_set_int(agent, "splay_percent", 0);
	kl_test_agent_set_int(agent, "request_timeout", 4000);
	return agent;
}

void
kl_test_agent_free(KlTestAgent *agent)
{
	if (agent == NULL)
		return;
	if (agent->peers->watched == agent)
		agent->peers->watched = NULL;
	if (agent->proc != NULL) {
		kl_test_stop_proc(agent->proc, SIGTERM, 10);
		g_clear_object(&agent->proc);
	}
	g_hash_table_unref(agent->options);
	g_ptr_array_unref(agent->option_order);
	g_free(agent->dir);
	g_free(agent->keylime_dir);
	g_free(agent->conf_path);
	g_free(agent->log_path);
	g_free(agent);
}

const gchar *
kl_test_agent_get_keylime_dir(KlTestAgent *agent)
{
	return agent->keylime_dir;
}

void
kl_test_agent_set(KlTestAgent *agent, const gchar *key, const gchar *toml_value)
{
	if (!g_hash_table_contains(agent->options, key))
		g_ptr_array_add(agent->option_order, g_strdup(key));
	if (toml_value == NULL)
		g_hash_table_remove(agent->options, key);
	else
		g_hash_table_insert(agent->options, g_strdup(key), g_strdup(toml_value));
}

void
kl_test_agent_set_string(KlTestAgent *agent, const gchar *key, const gchar *value)
{
	g_autoptr(GString) s = g_string_new("\"");

	for (const gchar *p = value; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *p);
	}
	g_string_append_c(s, '"');
	kl_test_agent_set(agent, key, s->str);
}

void
kl_test_agent_set_int(KlTestAgent *agent, const gchar *key, gint64 value)
{
	g_autofree gchar *text = g_strdup_printf("%" G_GINT64_FORMAT, value);
	kl_test_agent_set(agent, key, text);
}

static gboolean
kl_test_agent_write_conf(KlTestAgent *agent, GError **error)
{
	g_autoptr(GString) conf = g_string_new("# written by the integration tests\n[agent]\n");

	for (guint i = 0; i < agent->option_order->len; i++) {
		const gchar *key = g_ptr_array_index(agent->option_order, i);
		const gchar *value = g_hash_table_lookup(agent->options, key);
		if (value != NULL)
			g_string_append_printf(conf, "%s = %s\n", key, value);
	}
	return g_file_set_contents(agent->conf_path, conf->str, -1, error);
}

gboolean
kl_test_agent_start(KlTestAgent *agent, GError **error, ...)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_auto(GStrv) env = g_get_environ();
	const gchar *exe = g_getenv("KL_TEST_AGENT");
	const gchar *arg;
	va_list ap;

	if (exe == NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "KL_TEST_AGENT is not set");
		return FALSE;
	}
	if (agent->proc != NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "agent already started");
		return FALSE;
	}
	if (!kl_test_agent_write_conf(agent, error))
		return FALSE;

	g_ptr_array_add(argv, (gpointer)exe);
	va_start(ap, error);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(ap);
	g_ptr_array_add(argv, NULL);

	/* no KEYLIME_AGENT_* overrides from the caller's environment */
	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix(env[i], "KEYLIME_")) {
			g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
			env = g_environ_unsetenv(env, name);
			i = (guint)-1;
		}
	}
	env = g_environ_setenv(env, "KEYLIME_AGENT_CONFIG", agent->conf_path, TRUE);
	env = g_environ_setenv(env, "KEYLIME_DIR", agent->keylime_dir, TRUE);
	if (g_getenv("KL_TEST_TCTI") != NULL)
		env = g_environ_setenv(env, "TCTI", g_getenv("KL_TEST_TCTI"), TRUE);

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_subprocess_launcher_set_child_setup(launcher, kl_test_child_setup, NULL, NULL);
	g_subprocess_launcher_set_environ(launcher, env);
	g_subprocess_launcher_set_cwd(launcher, agent->dir);
	{
		/* append to the log across restarts */
		gint fd = g_open(agent->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0) {
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(errno),
				    "cannot open %s: %s",
				    agent->log_path,
				    g_strerror(errno));
			return FALSE;
		}
		g_subprocess_launcher_take_stdout_fd(launcher, fd);
	}
	agent->proc =
	    g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, error);
	if (agent->proc != NULL)
		agent->peers->watched = agent;
	return agent->proc != NULL;
}

gboolean
kl_test_agent_start_enrolled(KlTestAgent *agent, const gchar *agent_id, const gchar *policy_json)
{
	g_autoptr(GError) error = NULL;

	kl_test_agent_start(agent, &error, NULL);
	g_assert_no_error(error);
	if (!kl_test_peers_wait_registrar_int(agent->peers, agent_id, "activations", 1, 40)) {
		kl_test_agent_dump_log(agent);
		g_print("Bail out! the agent did not register and activate\n");
		return FALSE;
	}
	kl_test_peers_enroll(agent->peers, agent_id, policy_json, &error);
	g_assert_no_error(error);
	return TRUE;
}

gboolean
kl_test_agent_is_running(KlTestAgent *agent)
{
	return agent->proc != NULL && g_subprocess_get_identifier(agent->proc) != NULL;
}

gint
kl_test_agent_wait(KlTestAgent *agent, gdouble timeout_s)
{
	gint status;

	if (agent->proc == NULL)
		return -1;
	if (!kl_test_wait_proc(agent->proc, timeout_s))
		return -1;
	status = kl_test_exit_status(agent->proc);
	g_clear_object(&agent->proc);
	return status;
}

gint
kl_test_agent_stop(KlTestAgent *agent, gint signum, gdouble timeout_s)
{
	gint status;

	if (agent->proc == NULL)
		return -1;
	status = kl_test_stop_proc(agent->proc, signum, timeout_s);
	g_clear_object(&agent->proc);
	return status;
}

gchar *
kl_test_agent_get_log(KlTestAgent *agent)
{
	gchar *text = NULL;

	if (!g_file_get_contents(agent->log_path, &text, NULL, NULL))
		return g_strdup("");
	return text;
}

void
kl_test_agent_assert_verifier_int(KlTestAgent *agent,
				  const gchar *member,
				  gint64 min,
				  gdouble timeout_s)
{
	const gchar *uuid = g_hash_table_lookup(agent->options, "uuid");
	g_autofree gchar *id = NULL;

	/* the option holds TOML text: the UUID in double quotes */
	g_assert_true(uuid != NULL && strlen(uuid) > 2);
	id = g_strndup(uuid + 1, strlen(uuid) - 2);
	if (!kl_test_peers_wait_verifier_int(agent->peers, id, member, min, timeout_s)) {
		kl_test_agent_dump_log(agent);
		g_error("the verifier's %s of %s did not reach %" G_GINT64_FORMAT " in %.0f s",
			member,
			id,
			min,
			timeout_s);
	}
}

gboolean
kl_test_agent_log_contains(KlTestAgent *agent, const gchar *needle)
{
	g_autofree gchar *text = kl_test_agent_get_log(agent);
	return strstr(text, needle) != NULL;
}

void
kl_test_agent_dump_log(KlTestAgent *agent)
{
	g_autofree gchar *text = kl_test_agent_get_log(agent);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	guint n = g_strv_length(lines);

	for (guint i = n > 80 ? n - 80 : 0; i < n; i++) {
		if (lines[i][0] != '\0')
			g_test_message("agent: %s", lines[i]);
	}
}

/* ------------------------------------------------------------------ helpers */

gboolean
kl_test_run(GError **error, const gchar *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *out = NULL;
	const gchar *arg;
	va_list ap;

	g_ptr_array_add(argv, (gpointer)first);
	va_start(ap, first);
	while ((arg = va_arg(ap, const gchar *)) != NULL)
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(ap);
	g_ptr_array_add(argv, NULL);
	proc = g_subprocess_newv((const gchar *const *)argv->pdata,
				 G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE,
				 error);
	if (proc == NULL)
		return FALSE;
	if (!g_subprocess_communicate_utf8(proc, NULL, NULL, &out, NULL, error))
		return FALSE;
	if (!g_subprocess_get_if_exited(proc) || g_subprocess_get_exit_status(proc) != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed: %s", first, out);
		return FALSE;
	}
	return TRUE;
}

gchar *
kl_test_pcr_read(guint pcr, GError **error)
{
	return kl_test_pcr_read_bank("sha256", pcr, error);
}

gchar *
kl_test_pcr_read_bank(const gchar *bank, guint pcr, GError **error)
{
	g_autofree gchar *sel = g_strdup_printf("%s:%u", bank, pcr);
	gsize want = g_checksum_type_get_length(g_str_equal(bank, "sha1")     ? G_CHECKSUM_SHA1
						: g_str_equal(bank, "sha384") ? G_CHECKSUM_SHA384
						: g_str_equal(bank, "sha512") ? G_CHECKSUM_SHA512
									      : G_CHECKSUM_SHA256);
	g_autofree gchar *tmp = NULL;
	g_autofree gchar *data = NULL;
	gsize len = 0;
	gint fd;

	fd = g_file_open_tmp("kl-pcr-XXXXXX", &tmp, error);
	if (fd < 0)
		return NULL;
	close(fd);
	if (!kl_test_run(error, "tpm2_pcrread", sel, "-o", tmp, NULL) ||
	    !g_file_get_contents(tmp, &data, &len, error)) {
		g_unlink(tmp);
		return NULL;
	}
	g_unlink(tmp);
	if (len != want) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "PCR %u: %zu bytes", pcr, len);
		return NULL;
	}
	{
		GString *hex = g_string_new(NULL);
		for (gsize i = 0; i < len; i++)
			g_string_append_printf(hex, "%02x", (guint8)data[i]);
		return g_string_free(hex, FALSE);
	}
}

guint16
kl_test_free_port(void)
{
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);
	guint16 port = 0;
	gint fd = socket(AF_INET, SOCK_STREAM, 0);

	g_assert_cmpint(fd, >=, 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

gboolean
kl_test_have_plugin(const gchar *name)
{
	const gchar *dir = g_getenv("KL_TEST_PLUGINDIR");
	g_autofree gchar *file = NULL;
	g_autofree gchar *path = NULL;

	if (dir == NULL)
		return FALSE;
	file = g_strdup_printf("%s.so", name);
	path = g_build_filename(dir, file, NULL);
	return g_file_test(path, G_FILE_TEST_EXISTS);
}
