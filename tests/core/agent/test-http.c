/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * kl-http: origins, Location handling, Retry-After, the bearer token's scope,
 * and libcurl against a small HTTP/1.1 server on 127.0.0.1.
 */
#include "config.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-http.h"

#include "kl-test-skip.h"

static void
test_origin(void)
{
	const struct {
		const gchar *url;
		const gchar *origin;
	} cases[] = {
		{ "https://Verifier.Example:8881/v3.0/x", "https://verifier.example:8881" },
		{ "https://verifier.example/x", "https://verifier.example:443" },
		{ "http://127.0.0.1/x", "http://127.0.0.1:80" },
		{ "https://[::1]:8881/", "https://[::1]:8881" },
		{ "/relative/path", NULL },
		{ "ftp://host/x", NULL },
		{ "not a url", NULL },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *origin = kl_http_url_origin(cases[i].url);
		g_assert_cmpstr(origin, ==, cases[i].origin);
	}
}

static void
test_resolve_location(void)
{
	const gchar *base = "https://127.0.0.1:8881";
	const struct {
		const gchar *location;
		const gchar *resolved; /* NULL: rejected */
	} cases[] = {
		{ "/v3.0/agents/a/attestations/1",
		  "https://127.0.0.1:8881/v3.0/agents/a/attestations/1" },
		{ "/3/agents/a/attestations/0",
		  "https://127.0.0.1:8881/3/agents/a/attestations/0" },
		{ "https://127.0.0.1:8881/v3/agents/a/attestations/2",
		  "https://127.0.0.1:8881/v3/agents/a/attestations/2" },
		{ "https://evil.example:8881/v3/agents/a/attestations/2", NULL },
		{ "https://127.0.0.1:9999/v3/agents/a/attestations/2", NULL },
		{ "http://127.0.0.1:8881/v3/agents/a/attestations/2", NULL },
		{ "//evil.example/v3/agents/a/attestations/2", NULL },
		{ "/v3/agents/a\r\nX-Injected: 1", NULL },
		{ "", NULL },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *resolved =
		    kl_http_resolve_location(base, cases[i].location, &error);
		g_assert_cmpstr(resolved, ==, cases[i].resolved);
		if (cases[i].resolved == NULL)
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		else
			g_assert_no_error(error);
	}
}

static void
test_retry_after(void)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
	g_assert_cmpint(kl_http_parse_retry_after("120", 0), ==, 120);
	g_assert_cmpint(kl_http_parse_retry_after(" 0 ", 0), ==, 0);
	g_assert_cmpint(
	    kl_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30), ==, 30);
	g_assert_cmpint(
	    kl_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 30), ==, 0);
	g_assert_cmpint(kl_http_parse_retry_after("soon", 0), ==, -1);
	g_assert_cmpint(kl_http_parse_retry_after("-5", 0), ==, -1);
	g_assert_cmpint(kl_http_parse_retry_after("", 0), ==, -1);
	g_assert_cmpint(kl_http_parse_retry_after(NULL, 0), ==, -1);
	g_assert_cmpint(kl_http_parse_retry_after("99999999999999999999999", 0), ==, G_MAXINT64);
}

static void
test_fingerprint(void)
{
	g_autofree gchar *fp = kl_http_fingerprint("secret-token");

	g_assert_cmpuint(strlen(fp), ==, 12);
	g_assert_null(strstr(fp, "secret"));
}

/* ---- the token's scope, through the transport hook ---- */

typedef struct {
	gchar *authorization;
	gchar *request_id;
	gchar *content_type;
	gchar *accept;
} Seen;

static KlHttpResponse *
record_transport(const gchar *method,
		 const gchar *url,
		 const gchar *const *headers,
		 const gchar *body,
		 gsize body_len,
		 gpointer user_data,
		 GCancellable *cancellable,
		 GError **error)
{
	Seen *seen = user_data;

	g_clear_pointer(&seen->authorization, g_free);
	g_clear_pointer(&seen->request_id, g_free);
	g_clear_pointer(&seen->content_type, g_free);
	g_clear_pointer(&seen->accept, g_free);
	for (guint i = 0; headers[i] != NULL; i++) {
		if (g_str_has_prefix(headers[i], "Accept: "))
			seen->accept = g_strdup(headers[i] + 8);
		if (g_str_has_prefix(headers[i], "Authorization: "))
			seen->authorization = g_strdup(headers[i] + 15);
		if (g_str_has_prefix(headers[i], "X-Request-ID: "))
			seen->request_id = g_strdup(headers[i] + 14);
		if (g_str_has_prefix(headers[i], "Content-Type: "))
			seen->content_type = g_strdup(headers[i] + 14);
	}
	return kl_http_response_new(200, "{}");
}

static void
send_to(KlHttp *http, const gchar *url, gboolean authorize)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	KlHttpRequest request = {
		.method = "POST",
		.url = url,
		.content_type = "application/vnd.api+json",
		.body = "{}",
		.body_len = 2,
		.authorize = authorize,
	};

	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(response->status, ==, 200);
	g_assert_cmpuint(strlen(response->request_id), ==, KL_HTTP_REQUEST_ID_LEN);
	g_assert_cmpuint(
	    strspn(response->request_id, "0123456789abcdef"), ==, KL_HTTP_REQUEST_ID_LEN);
}

static void
seen_clear(Seen *seen)
{
	g_free(seen->authorization);
	g_free(seen->request_id);
	g_free(seen->content_type);
	g_free(seen->accept);
	memset(seen, 0, sizeof *seen);
}

/* the header lines kept between requests follow what changes: Accept, Content-Type, token */
static void
test_request_headers(void)
{
	KlHttpOptions options = { .name = "registrar" };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autoptr(KlHttp) verifier = NULL;
	g_autoptr(GHashTable) ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	Seen seen = { 0 };
	KlHttpRequest request = {
		.method = "POST",
		.url = "https://registrar.example:8891/v2.1/agents/a",
		.content_type = "application/json",
		.body = "{}",
		.body_len = 2,
	};
	KlHttpResponse *response;

	g_assert_no_error(error);
	kl_http_set_transport(http, record_transport, &seen);
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	kl_http_response_free(response);
	/* no Accept asked for: both answer types */
	g_assert_cmpstr(seen.accept, ==, "application/json, application/vnd.api+json");
	g_assert_cmpstr(seen.content_type, ==, "application/json");

	/* another content type: the kept line follows */
	request.content_type = "text/plain";
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	kl_http_response_free(response);
	g_assert_cmpstr(seen.content_type, ==, "text/plain");
	/* no body, no Content-Type */
	request.method = "GET";
	request.content_type = NULL;
	request.body = NULL;
	request.body_len = 0;
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	kl_http_response_free(response);
	g_assert_null(seen.content_type);

	/* a new token replaces the old one in the header */
	request.authorize = TRUE;
	kl_http_set_bearer_token(http, "https://registrar.example:8891", "first");
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	kl_http_response_free(response);
	g_assert_cmpstr(seen.authorization, ==, "Bearer first");
	kl_http_set_bearer_token(http, "https://registrar.example:8891", "second");
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_no_error(error);
	kl_http_response_free(response);
	g_assert_cmpstr(seen.authorization, ==, "Bearer second");

	/* the Accept asked for, and request ids that do not repeat */
	options.accept = "application/vnd.api+json";
	verifier = kl_http_new(&options, &error);
	g_assert_no_error(error);
	kl_http_set_transport(verifier, record_transport, &seen);
	for (guint i = 0; i < 200; i++) {
		response = kl_http_send(verifier, &request, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(seen.accept, ==, "application/vnd.api+json");
		g_assert_cmpstr(seen.request_id, ==, response->request_id);
		g_assert_true(g_hash_table_add(ids, g_strdup(seen.request_id)));
		kl_http_response_free(response);
	}
	seen_clear(&seen);
}

static void
test_token_scope(void)
{
	KlHttpOptions options = { .name = "verifier" };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	Seen seen = { 0 };
	g_autofree gchar *first_id = NULL;

	g_assert_no_error(error);
	kl_http_set_transport(http, record_transport, &seen);
	kl_http_set_bearer_token(http, "https://verifier.example:8881", "tok.secret");
	g_assert_true(kl_http_has_bearer_token(http));

	send_to(http, "https://verifier.example:8881/v3.0/agents/a/attestations", TRUE);
	g_assert_cmpstr(seen.authorization, ==, "Bearer tok.secret");
	g_assert_cmpstr(seen.content_type, ==, "application/vnd.api+json");
	first_id = g_strdup(seen.request_id);

	/* not asked for */
	send_to(http, "https://verifier.example:8881/v3.0/sessions", FALSE);
	g_assert_null(seen.authorization);
	g_assert_cmpstr(seen.request_id, !=, first_id);

	/* other host, other port, other scheme: never */
	send_to(http, "https://evil.example:8881/v3.0/agents/a/attestations", TRUE);
	g_assert_null(seen.authorization);
	send_to(http, "https://verifier.example:8882/v3.0/agents/a/attestations", TRUE);
	g_assert_null(seen.authorization);
	send_to(http, "http://verifier.example:8881/v3.0/agents/a/attestations", TRUE);
	g_assert_null(seen.authorization);

	kl_http_set_bearer_token(http, NULL, NULL);
	g_assert_false(kl_http_has_bearer_token(http));
	send_to(http, "https://verifier.example:8881/v3.0/agents/a/attestations", TRUE);
	g_assert_null(seen.authorization);

	seen_clear(&seen);
}

/* ---- libcurl against a local server ---- */

typedef struct {
	GSocketListener *listener;
	GCancellable *cancellable;
	GThread *thread;
	guint16 port;
	gint connections;
	GMutex lock;
	GPtrArray *requests; /* request line + body */
	gboolean silent;     /* accept but never answer */
	gint delay_ms;	     /* answer this late (atomic) */
	const gchar *head;   /* status line and headers of the answer, NULL: a 429 (atomic) */
} Server;

static gchar *
server_read_request(GDataInputStream *in, GCancellable *cancellable, gsize *content_length)
{
	GString *head = g_string_new(NULL);
	gchar *line;

	*content_length = 0;
	while ((line = g_data_input_stream_read_line(in, NULL, cancellable, NULL)) != NULL) {
		g_strchomp(line);
		if (line[0] == '\0') {
			g_free(line);
			return g_string_free(head, FALSE);
		}
		if (g_ascii_strncasecmp(line, "Content-Length:", 15) == 0)
			*content_length = (gsize)g_ascii_strtoull(line + 15, NULL, 10);
		g_string_append_printf(head, "%s\n", line);
		g_free(line);
	}
	g_string_free(head, TRUE);
	return NULL;
}

static gpointer
server_thread(gpointer data)
{
	Server *server = data;

	for (;;) {
		g_autoptr(GSocketConnection) conn =
		    g_socket_listener_accept(server->listener, NULL, server->cancellable, NULL);
		g_autoptr(GDataInputStream) in = NULL;
		GOutputStream *out;

		if (conn == NULL)
			return NULL;
		g_atomic_int_inc(&server->connections);
		in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
		out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
		for (;;) {
			gsize length = 0;
			g_autofree gchar *head =
			    server_read_request(in, server->cancellable, &length);
			g_autofree gchar *body = NULL;
			g_autofree gchar *reply = NULL;
			const gchar *answer = "{\"ok\":true}";

			if (head == NULL)
				break;
			body = g_malloc0(length + 1);
			if (length > 0 &&
			    !g_input_stream_read_all(
				G_INPUT_STREAM(in), body, length, NULL, server->cancellable, NULL))
				break;
			g_mutex_lock(&server->lock);
			g_ptr_array_add(server->requests, g_strdup_printf("%s\n%s", head, body));
			g_mutex_unlock(&server->lock);
			if (g_atomic_int_get(&server->delay_ms) > 0)
				g_usleep((gulong)g_atomic_int_get(&server->delay_ms) * 1000);
			if (server->silent) {
				g_cancellable_set_error_if_cancelled(server->cancellable, NULL);
				while (!g_cancellable_is_cancelled(server->cancellable))
					g_usleep(10000);
				return NULL;
			}
			if (g_atomic_pointer_get(&server->head) != NULL)
				reply = g_strdup_printf(
				    "%sContent-Length: %zu\r\n\r\n%s",
				    (const gchar *)g_atomic_pointer_get(&server->head),
				    strlen(answer),
				    answer);
			else
				reply = g_strdup_printf(
				    "HTTP/1.1 429 Too Many Requests\r\n"
				    "Content-Type: application/json; charset=UTF-8\r\n"
				    "Location: /v3.0/agents/a/attestations/7\r\n"
				    "Retry-After: 12\r\n"
				    "Content-Length: %zu\r\n"
				    "\r\n%s",
				    strlen(answer),
				    answer);
			if (!g_output_stream_write_all(
				out, reply, strlen(reply), NULL, server->cancellable, NULL))
				break;
		}
	}
}

static Server *
server_start(gboolean silent)
{
	Server *server = g_new0(Server, 1);
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) effective = NULL;

	g_mutex_init(&server->lock);
	server->requests = g_ptr_array_new_with_free_func(g_free);
	server->silent = silent;
	server->cancellable = g_cancellable_new();
	server->listener = g_socket_listener_new();
	g_socket_listener_add_address(server->listener,
				      address,
				      G_SOCKET_TYPE_STREAM,
				      G_SOCKET_PROTOCOL_TCP,
				      NULL,
				      &effective,
				      &error);
	g_assert_no_error(error);
	server->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
	server->thread = g_thread_new("http-server", server_thread, server);
	return server;
}

static void
server_stop(Server *server)
{
	g_cancellable_cancel(server->cancellable);
	g_socket_listener_close(server->listener);
	g_thread_join(server->thread);
	g_object_unref(server->listener);
	g_object_unref(server->cancellable);
	g_ptr_array_unref(server->requests);
	g_mutex_clear(&server->lock);
	g_free(server);
}

static void
test_curl_keepalive_and_headers(void)
{
	Server *server = server_start(FALSE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 5000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autofree gchar *url =
	    g_strdup_printf("http://127.0.0.1:%u/v3.0/agents/a/attestations", server->port);
	const gchar *methods[] = { "POST", "PATCH", "GET" };

	g_assert_no_error(error);
	kl_http_set_bearer_token(http, url, "tok.secret");
	for (guint i = 0; i < G_N_ELEMENTS(methods); i++) {
		g_autoptr(KlHttpResponse) response = NULL;
		KlHttpRequest request = {
			.method = methods[i],
			.url = url,
			.content_type = "application/vnd.api+json",
			.body = g_strcmp0(methods[i], "GET") == 0 ? NULL : "{\"data\":1}",
			.body_len = g_strcmp0(methods[i], "GET") == 0 ? 0 : 10,
			.authorize = TRUE,
		};
		gsize len = 0;

		response = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(response->status, ==, 429);
		g_assert_cmpint(response->retry_after_s, ==, 12);
		g_assert_cmpstr(response->location, ==, "/v3.0/agents/a/attestations/7");
		g_assert_cmpstr(response->content_type, ==, "application/json; charset=UTF-8");
		g_assert_cmpstr(kl_http_response_get_body(response, &len), ==, "{\"ok\":true}");
		g_assert_cmpuint(len, ==, 11);
	}
	/* one connection for all three requests */
	g_assert_cmpint(g_atomic_int_get(&server->connections), ==, 1);
	g_mutex_lock(&server->lock);
	g_assert_cmpuint(server->requests->len, ==, 3);
	g_assert_true(g_str_has_prefix(g_ptr_array_index(server->requests, 0),
				       "POST /v3.0/agents/a/attestations HTTP/1.1\n"));
	g_assert_true(g_str_has_prefix(g_ptr_array_index(server->requests, 1),
				       "PATCH /v3.0/agents/a/attestations HTTP/1.1\n"));
	g_assert_true(g_str_has_suffix(g_ptr_array_index(server->requests, 1), "\n{\"data\":1}"));
	g_assert_nonnull(
	    strstr(g_ptr_array_index(server->requests, 1), "Authorization: Bearer tok.secret\n"));
	g_assert_nonnull(strstr(g_ptr_array_index(server->requests, 1),
				"Content-Type: application/vnd.api+json\n"));
	g_assert_nonnull(strstr(g_ptr_array_index(server->requests, 1), "X-Request-ID: "));
	g_mutex_unlock(&server->lock);
	server_stop(server);
}

/* the answer headers the agent reads, however the peer writes them */
static void
test_curl_answer_headers(void)
{
	static const struct {
		const gchar *head;
		guint status;
		const gchar *content_type;
		const gchar *location;
		gint64 retry_after_s;
	} cases[] = {
		/* names in any case, no space or tabs after the colon, trailing spaces */
		{ "HTTP/1.1 429 Too Many Requests\r\ncontent-type:application/json\r\n"
		  "LOCATION: \t/v3.0/x/1  \r\nretry-AFTER: 7\r\n",
		  429,
		  "application/json",
		  "/v3.0/x/1",
		  7 },
		/* the first of each is kept */
		{ "HTTP/1.1 201 Created\r\nLocation: /first\r\nLocation: /second\r\n"
		  "Content-Type: a/b\r\nContent-Type: c/d\r\nRetry-After: 3\r\nRetry-After: 4\r\n",
		  201,
		  "a/b",
		  "/first",
		  3 },
		/* look-alike names are not these headers */
		{ "HTTP/1.1 200 OK\r\nContent-Typo: x/y\r\nLocations: /no\r\nRetry-After-Ms: 5\r\n"
		  "Content-Length-X: 1\r\nContent-Type: text/plain\r\nLocation:\r\n",
		  200,
		  "text/plain",
		  "",
		  -1 },
		/* an interim answer's headers are dropped */
		{ "HTTP/1.1 100 Continue\r\nLocation: /interim\r\nRetry-After: 9\r\n\r\n"
		  "HTTP/1.1 202 Accepted\r\nLocation: /final\r\n",
		  202,
		  NULL,
		  "/final",
		  -1 },
		/* none of them */
		{ "HTTP/1.1 200 OK\r\nServer: test\r\nconnection: keep-alive\r\n",
		  200,
		  NULL,
		  NULL,
		  -1 },
	};
	Server *server = server_start(FALSE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 5000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autofree gchar *url =
	    g_strdup_printf("http://127.0.0.1:%u/v3.0/agents/a/attestations", server->port);

	g_assert_no_error(error);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(KlHttpResponse) response = NULL;
		KlHttpRequest request = { .method = "GET", .url = url };
		gsize len = 0;

		g_atomic_pointer_set(&server->head, cases[i].head);
		response = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(response->status, ==, cases[i].status);
		g_assert_cmpstr(response->content_type, ==, cases[i].content_type);
		g_assert_cmpstr(response->location, ==, cases[i].location);
		g_assert_cmpint(response->retry_after_s, ==, cases[i].retry_after_s);
		g_assert_cmpstr(kl_http_response_get_body(response, &len), ==, "{\"ok\":true}");
	}
	server_stop(server);
}

static void
test_curl_timeout(void)
{
	Server *server = server_start(TRUE);
	KlHttpOptions options = { .name = "registrar", .timeout_ms = 300 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autofree gchar *url = g_strdup_printf("http://127.0.0.1:%u/version", server->port);
	KlHttpRequest request = { .method = "GET", .url = url };
	g_autoptr(KlHttpResponse) response = NULL;
	gint64 start = g_get_monotonic_time();

	response = kl_http_send(http, &request, NULL, &error);
	g_assert_null(response);
	g_assert_error(error, KL_ERROR, KL_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(error->message, "request_timeout"));
	g_assert_cmpint(g_get_monotonic_time() - start, <, 3 * G_USEC_PER_SEC);
	server_stop(server);
}

static gboolean
cancel_cb(gpointer data)
{
	g_cancellable_cancel(G_CANCELLABLE(data));
	return G_SOURCE_REMOVE;
}

static gpointer
cancel_thread(gpointer data)
{
	g_usleep(200000);
	cancel_cb(data);
	return NULL;
}

static void
test_curl_cancel(void)
{
	Server *server = server_start(TRUE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 30000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autofree gchar *url = g_strdup_printf("http://127.0.0.1:%u/x", server->port);
	KlHttpRequest request = { .method = "GET", .url = url };
	g_autoptr(KlHttpResponse) response = NULL;
	gint64 start = g_get_monotonic_time();
	GThread *thread = g_thread_new("cancel", cancel_thread, cancellable);

	response = kl_http_send(http, &request, cancellable, &error);
	g_thread_join(thread);
	g_assert_null(response);
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
	server_stop(server);
}

static void
test_curl_refused(void)
{
	KlHttpOptions options = { .name = "registrar", .timeout_ms = 2000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	/* port 1 on loopback: nothing listens */
	KlHttpRequest request = { .method = "GET", .url = "http://127.0.0.1:1/version" };
	g_autoptr(KlHttpResponse) response = kl_http_send(http, &request, NULL, &error);

	g_assert_null(response);
	g_assert_error(error, KL_ERROR, KL_ERROR_NETWORK);
	g_assert_nonnull(strstr(error->message, "registrar"));
}

/*
 * A peer that takes requests but answers later than request_timeout: the
 * first attempt times out ("took the request"), the next waits twice as long
 * and gets the answer, with one WARNING naming request_timeout and a value
 * that works; fast answers bring the wait back to request_timeout.
 */
static void
test_curl_wait_adapts(void)
{
	Server *server = server_start(FALSE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 400 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autofree gchar *url = g_strdup_printf("http://127.0.0.1:%u/v3.0/x", server->port);
	KlHttpRequest request = { .method = "POST", .url = url, .body = "{}", .body_len = 2 };

	g_atomic_int_set(&server->delay_ms, 600);
	{
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_null(r);
		g_assert_error(error, KL_ERROR, KL_ERROR_TIMED_OUT);
		g_assert_nonnull(strstr(error->message,
					"took the request but did not answer within "
					"400 ms"));
		g_assert_nonnull(strstr(error->message, "the next attempt waits up to 800 ms"));
		g_clear_error(&error);
	}
	/* the one-connection-at-a-time server is still answering the abandoned request */
	g_usleep(400 * 1000);
	g_assert_cmpuint(kl_http_get_wait_ms(http), ==, 800);
	g_test_expect_message(
	    "kl-core",
	    G_LOG_LEVEL_WARNING,
	    "the verifier answered POST * after 0.* s, later than request_timeout "
	    "(400 ms) allows: its answers are now waited for up to 1??? ms; set "
	    "request_timeout to 2000 or more*");
	{
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(r->status, ==, 429);
	}
	g_test_assert_expected_messages();
	/* twice what the answer took (~600 ms), within 8 x request_timeout */
	g_assert_cmpuint(kl_http_get_wait_ms(http), >=, 1200);
	g_assert_cmpuint(kl_http_get_wait_ms(http), <=, 3200);
	{
		/* slow again: waited for, and no second WARNING */
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
	}
	/*
	 * quick answers: the wait halves after every KL_HTTP_WAIT_DECAY_ANSWERS
	 * of them in a row, down to request_timeout; a slow one in between keeps it
	 */
	g_atomic_int_set(&server->delay_ms, 0);
	for (guint i = 0; i < KL_HTTP_WAIT_DECAY_ANSWERS - 1; i++) {
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
	}
	g_assert_cmpuint(kl_http_get_wait_ms(http), >=, 1200);
	g_atomic_int_set(&server->delay_ms, 600);
	{
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
	}
	g_atomic_int_set(&server->delay_ms, 0);
	for (guint i = 0; i < KL_HTTP_WAIT_DECAY_ANSWERS - 1; i++) {
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
	}
	g_assert_cmpuint(kl_http_get_wait_ms(http), >=, 1200);
	g_test_expect_message(
	    "kl-core", G_LOG_LEVEL_MESSAGE, "the verifier answers within request_timeout*again");
	for (guint i = 0; i < 3 * KL_HTTP_WAIT_DECAY_ANSWERS; i++) {
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
	}
	g_test_assert_expected_messages();
	g_assert_cmpuint(kl_http_get_wait_ms(http), ==, 400);
	/* and a slow answer times out at request_timeout again */
	g_atomic_int_set(&server->delay_ms, 600);
	{
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);
		g_assert_error(error, KL_ERROR, KL_ERROR_TIMED_OUT);
		g_assert_nonnull(strstr(error->message, "within 400 ms"));
		g_clear_error(&error);
	}
	server_stop(server);
}

/* each transport failure names its cause and its fix, distinctly */
static void
test_failure_messages(void)
{
	const struct {
		KlHttpFailure f;
		gint code;
		const gchar *says;
	} cases[] = {
		{ { .curl_code = 60,
		    .detail = "server certificate verification failed. CAfile: /etc/k/other.crt",
		    .tls_verify_status = 0x42 },
		  KL_ERROR_AUTH,
		  "certificate was not issued by a CA in /etc/k/ca.crt (server certificate "
		  "verification failed. CAfile: /etc/k/other.crt): set verifier_tls_ca_cert to the "
		  "CA that issued" },
		{ { .curl_code = 60,
		    .detail = "server certificate verification failed",
		    .tls_verify_status = 0x42,
		    .ca_problem = "it holds no PEM certificate" },
		  KL_ERROR_AUTH,
		  "the CA file /etc/k/ca.crt cannot be used: it holds no PEM certificate; fix "
		  "verifier_tls_ca_cert" },
		{ { .curl_code = 77,
		    .detail = "",
		    .ca_problem = "it cannot be read by user keylime" },
		  KL_ERROR_AUTH,
		  "the CA file /etc/k/ca.crt cannot be used: it cannot be read by user keylime" },
		{ { .curl_code = 60,
		    .detail = "SSL: certificate subject name (s) does not match target host name "
			      "'localhost'" },
		  KL_ERROR_AUTH,
		  "certificate does not name the host of the URL" },
		{ { .curl_code = 60, .detail = "expired", .tls_verify_status = 0x402 },
		  KL_ERROR_AUTH,
		  "has expired or is not valid yet" },
		{ { .curl_code = 35,
		    .detail = "gnutls_handshake() failed: An unexpected TLS packet was received." },
		  KL_ERROR_NETWORK,
		  "https://127.0.0.1:8881 does not speak TLS" },
		{ { .curl_code = 35, .detail = "Recv failure: Connection reset by peer" },
		  KL_ERROR_NETWORK,
		  "closed the connection before the TLS handshake ended" },
		{ { .curl_code = 56,
		    .detail = "Recv failure: Connection reset by peer",
		    .request_sent = TRUE },
		  KL_ERROR_NETWORK,
		  "the verifier closed the connection (Recv failure" },
		{ { .curl_code = 7, .detail = "Failed to connect to 127.0.0.1 port 8881" },
		  KL_ERROR_NETWORK,
		  "nothing accepts connections at https://127.0.0.1:8881" },
		{ { .curl_code = 6, .detail = "Could not resolve host: v.invalid" },
		  KL_ERROR_NETWORK,
		  "host name does not resolve" },
		{ { .curl_code = 28, .detail = "Connection timed out after 5000 milliseconds" },
		  KL_ERROR_TIMED_OUT,
		  "no connection to the verifier at https://127.0.0.1:8881 within 5000 ms" },
		{ { .curl_code = 28,
		    .detail = "Operation timed out after 5000 milliseconds with 0 bytes received",
		    .request_sent = TRUE,
		    .next_wait_ms = 10000 },
		  KL_ERROR_TIMED_OUT,
		  "took the request but did not answer within 5000 ms" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		KlHttpFailure f = cases[i].f;
		g_autoptr(GError) error = NULL;

		f.peer = "verifier";
		f.method = "POST";
		f.url = "https://127.0.0.1:8881/v3.0/sessions";
		f.ca_file = "/etc/k/ca.crt";
		f.ca_option = "verifier_tls_ca_cert";
		f.address_option = "verifier_url";
		f.timeout_ms = 5000;
		error = kl_http_failure_to_error(&f);
		g_test_message("%s", error->message);
		g_assert_error(error, KL_ERROR, cases[i].code);
		g_assert_nonnull(strstr(error->message, cases[i].says));
		/* no other case's cause */
		for (guint j = 0; j < G_N_ELEMENTS(cases); j++)
			if (j != i && g_strcmp0(cases[j].says, cases[i].says) != 0 &&
			    strstr(cases[i].says, cases[j].says) == NULL)
				g_assert_null(strstr(error->message, cases[j].says));
	}
}

/* a CA file this process cannot use: unreadable, missing, or without a certificate */
static void
test_ca_file_problem(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-ca-XXXXXX", NULL);
	g_autofree gchar *garbage = g_build_filename(dir, "garbage.pem", NULL);
	g_autofree gchar *good = g_build_filename(dir, "good.pem", NULL);
	g_autofree gchar *missing = g_build_filename(dir, "missing.pem", NULL);
	g_autofree gchar *p1 = NULL;
	g_autofree gchar *p2 = NULL;
	g_autofree gchar *p3 = NULL;

	g_assert_true(g_file_set_contents(garbage, "not a certificate\n", -1, NULL));
	g_assert_true(g_file_set_contents(
	    good, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", -1, NULL));
	p1 = kl_http_ca_file_problem(garbage);
	g_assert_nonnull(strstr(p1, "holds no PEM certificate"));
	p2 = kl_http_ca_file_problem(missing);
	g_assert_nonnull(strstr(p2, "cannot be read by user "));
	g_assert_nonnull(strstr(p2, missing));
	p3 = kl_http_ca_file_problem(good);
	g_assert_null(p3);
	g_assert_null(kl_http_ca_file_problem(NULL));
	g_assert_cmpint(g_unlink(garbage), ==, 0);
	g_assert_cmpint(g_unlink(good), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* a listening socket on 127.0.0.1 that never accepts (the kernel completes TCP handshakes) */
static int
listen_loopback(guint16 *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
	g_assert_cmpint(listen(fd, 8), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&addr, &len), ==, 0);
	*port = ntohs(addr.sin_port);
	return fd;
}

/*
 * the peer's transport failures seen through libcurl: refused, no TLS handshake
 * (reset and plain HTTP: /http/failure-messages with libcurl's texts, and the
 * integration tests)
 */
static void
test_curl_transport_causes(void)
{
	KlHttpOptions options = { .name = "verifier",
				  .timeout_ms = 600,
				  .address_option = "verifier_url" };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	guint16 mute_port = 0;
	int mute = listen_loopback(&mute_port);
	const struct {
		gchar *url;
		gint code;
		const gchar *says;
	} cases[] = {
		{ g_strdup("https://127.0.0.1:1/v3.0/sessions"),
		  KL_ERROR_NETWORK,
		  "nothing accepts connections at https://127.0.0.1:1" },
		/* the kernel completes the TCP handshake; nobody answers the TLS hello */
		{ g_strdup_printf("https://127.0.0.1:%u/v3.0/sessions", mute_port),
		  KL_ERROR_TIMED_OUT,
		  "no connection to the verifier at https://127.0.0.1:" },
	};

	g_assert_no_error(error);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		KlHttpRequest request = { .method = "GET", .url = cases[i].url };
		g_autoptr(KlHttpResponse) r = kl_http_send(http, &request, NULL, &error);

		g_assert_null(r);
		g_test_message("%s", error->message);
		g_assert_error(error, KL_ERROR, cases[i].code);
		g_assert_nonnull(strstr(error->message, cases[i].says));
		g_assert_nonnull(strstr(error->message, "verifier_url"));
		g_clear_error(&error);
		g_free(cases[i].url);
	}
	close(mute);
}

/* ---- TLS: the CA file is the only anchor, insecure switches, host names ---- */

static gboolean
run_openssl(const gchar *dir, GError **error, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
	g_autoptr(GSubprocess) proc = NULL;
	va_list args;
	const gchar *arg;

	g_ptr_array_add(argv, (gpointer) "openssl");
	va_start(args, error);
	while ((arg = va_arg(args, const gchar *)) != NULL)
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(args);
	g_ptr_array_add(argv, NULL);
	g_subprocess_launcher_set_cwd(launcher, dir);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, error);
	return proc != NULL && g_subprocess_wait_check(proc, NULL, error);
}

static guint16
free_port(void)
{
	g_autoptr(GSocket) sock =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_assert_true(g_socket_bind(sock, addr, TRUE, NULL));
	bound = g_socket_get_local_address(sock, NULL);
	return g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
}

static gboolean
wait_port(guint16 port)
{
	for (guint i = 0; i < 100; i++) {
		g_autoptr(GSocketClient) client = g_socket_client_new();
		g_autoptr(GSocketConnection) conn =
		    g_socket_client_connect_to_host(client, "127.0.0.1", port, NULL, NULL);
		if (conn != NULL)
			return TRUE;
		g_usleep(50000);
	}
	return FALSE;
}

static KlHttpResponse *
tls_get(const gchar *url,
	const gchar *ca_file,
	gboolean invalid_certs,
	gboolean invalid_hostnames,
	GError **error)
{
	KlHttpOptions options = {
		.name = "verifier",
		.ca_file = ca_file,
		.accept_invalid_certs = invalid_certs,
		.accept_invalid_hostnames = invalid_hostnames,
		.timeout_ms = 5000,
		.ca_option = "verifier_tls_ca_cert",
		.address_option = "verifier_url",
	};
	g_autoptr(KlHttp) http = kl_http_new(&options, error);
	KlHttpRequest request = { .method = "GET", .url = url };

	return kl_http_send(http, &request, NULL, error);
}

static void
test_curl_tls(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-tls-XXXXXX", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) server = NULL;
	g_autofree gchar *ca = g_build_filename(dir, "ca.crt", NULL);
	g_autofree gchar *other = g_build_filename(dir, "other.crt", NULL);
	g_autofree gchar *ext = g_build_filename(dir, "ext.cnf", NULL);
	g_autofree gchar *accept = NULL;
	g_autofree gchar *url_ip = NULL;
	g_autofree gchar *url_name = NULL;
	g_autofree gchar *cmd = NULL;
	g_autofree gchar *openssl = g_find_program_in_path("openssl");
	guint16 port;

	if (openssl == NULL) {
		kl_test_skip("openssl not found");
		return;
	}
	g_assert_true(g_file_set_contents(ext, "subjectAltName=IP:127.0.0.1\n", -1, NULL));
	g_assert_true(run_openssl(dir,
				  &error,
				  "req",
				  "-x509",
				  "-newkey",
				  "rsa:2048",
				  "-nodes",
				  "-keyout",
				  "ca.key",
				  "-out",
				  "ca.crt",
				  "-subj",
				  "/CN=kl test CA",
				  "-days",
				  "2",
				  NULL));
	g_assert_no_error(error);
	g_assert_true(run_openssl(dir,
				  &error,
				  "req",
				  "-x509",
				  "-newkey",
				  "rsa:2048",
				  "-nodes",
				  "-keyout",
				  "other.key",
				  "-out",
				  "other.crt",
				  "-subj",
				  "/CN=kl other CA",
				  "-days",
				  "2",
				  NULL));
	g_assert_true(run_openssl(dir,
				  &error,
				  "req",
				  "-newkey",
				  "rsa:2048",
				  "-nodes",
				  "-keyout",
				  "srv.key",
				  "-out",
				  "srv.csr",
				  "-subj",
				  "/CN=kl server",
				  NULL));
	g_assert_true(run_openssl(dir,
				  &error,
				  "x509",
				  "-req",
				  "-in",
				  "srv.csr",
				  "-CA",
				  "ca.crt",
				  "-CAkey",
				  "ca.key",
				  "-CAcreateserial",
				  "-out",
				  "srv.crt",
				  "-days",
				  "2",
				  "-extfile",
				  "ext.cnf",
				  NULL));
	g_assert_no_error(error);

	port = free_port();
	accept = g_strdup_printf("127.0.0.1:%u", port);
	{
		g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
		    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE |
		    G_SUBPROCESS_FLAGS_STDIN_PIPE);
		g_subprocess_launcher_set_cwd(launcher, dir);
		server = g_subprocess_launcher_spawn(launcher,
						     &error,
						     "openssl",
						     "s_server",
						     "-accept",
						     accept,
						     "-cert",
						     "srv.crt",
						     "-key",
						     "srv.key",
						     "-www",
						     "-quiet",
						     NULL);
	}
	g_assert_no_error(error);
	g_assert_true(wait_port(port));
	url_ip = g_strdup_printf("https://127.0.0.1:%u/", port);
	url_name = g_strdup_printf("https://localhost:%u/", port);

	{
		/* the right CA */
		g_autoptr(KlHttpResponse) r = tls_get(url_ip, ca, FALSE, FALSE, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(r->status, ==, 200);
	}
	{
		/* a CA that did not issue the certificate: the system store is not consulted */
		g_autoptr(KlHttpResponse) r = tls_get(url_ip, other, FALSE, FALSE, &error);
		g_autofree gchar *says =
		    g_strdup_printf("certificate was not issued by a CA in %s", other);
		g_assert_null(r);
		g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
		g_assert_nonnull(strstr(error->message, says));
		g_assert_nonnull(strstr(error->message, "set verifier_tls_ca_cert to the CA"));
		g_clear_error(&error);
	}
	{
		/* a CA file that cannot be read, or holds no certificate: not "not issued by" */
		g_autofree gchar *missing = g_build_filename(dir, "missing.crt", NULL);
		g_autofree gchar *garbage = g_build_filename(dir, "ext.cnf", NULL);
		g_autoptr(KlHttpResponse) r = tls_get(url_ip, missing, FALSE, FALSE, &error);
		g_autoptr(KlHttpResponse) r2 = NULL;
		g_assert_null(r);
		g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
		g_assert_nonnull(
		    strstr(error->message, "cannot be used: it cannot be read by user"));
		g_assert_null(strstr(error->message, "not issued"));
		g_clear_error(&error);
		r2 = tls_get(url_ip, garbage, FALSE, FALSE, &error);
		g_assert_null(r2);
		g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
		g_assert_nonnull(
		    strstr(error->message, "cannot be used: it holds no PEM certificate"));
		g_clear_error(&error);
	}
	{
		/* --insecure */
		g_autoptr(KlHttpResponse) r = tls_get(url_ip, other, TRUE, FALSE, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(r->status, ==, 200);
	}
	{
		/* the certificate names 127.0.0.1, not localhost */
		g_autoptr(KlHttpResponse) r = tls_get(url_name, ca, FALSE, FALSE, &error);
		g_assert_null(r);
		g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
		g_assert_nonnull(strstr(error->message, "does not name the host of the URL"));
		g_clear_error(&error);
	}
	{
		g_autoptr(KlHttpResponse) r = tls_get(url_name, ca, FALSE, TRUE, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(r->status, ==, 200);
	}
	g_subprocess_force_exit(server);
	g_subprocess_wait(server, NULL, NULL);
	cmd = g_strdup_printf("rm -rf '%s'", dir);
	g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
}

/* ---- answers larger than the 16 MiB cap ---- */

typedef struct {
	GSocketListener *listener;
	guint16 port;
	gboolean announce; /* Content-Length: 1 GiB, no body; else chunked, 17 MiB */
	gsize sent;
} BigServer;

static gpointer
big_server_thread(gpointer data)
{
	BigServer *server = data;
	g_autoptr(GSocketConnection) conn =
	    g_socket_listener_accept(server->listener, NULL, NULL, NULL);
	g_autoptr(GDataInputStream) in = NULL;
	g_autofree gchar *chunk = NULL;
	GOutputStream *out;
	gsize length = 0;
	g_autofree gchar *head = NULL;

	if (conn == NULL)
		return NULL;
	in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
	out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
	head = server_read_request(in, NULL, &length);
	if (head == NULL)
		return NULL;
	if (server->announce) {
		const gchar *reply = "HTTP/1.1 200 OK\r\n"
				     "Content-Type: application/json\r\n"
				     "Content-Length: 1073741824\r\n\r\n";
		g_output_stream_write_all(out, reply, strlen(reply), NULL, NULL, NULL);
		/* never sends the body: the client must not wait for it */
		g_usleep(3 * G_USEC_PER_SEC);
		return NULL;
	} else {
		const gchar *reply = "HTTP/1.1 200 OK\r\n"
				     "Content-Type: application/json\r\n"
				     "Transfer-Encoding: chunked\r\n\r\n";
		gsize size = 1024 * 1024;

		g_output_stream_write_all(out, reply, strlen(reply), NULL, NULL, NULL);
		chunk = g_strdup_printf("%zx\r\n%*s\r\n", size, (int)size, "");
		for (guint i = 0; i < 17; i++) {
			if (!g_output_stream_write_all(out, chunk, strlen(chunk), NULL, NULL, NULL))
				break;
			server->sent += size;
		}
	}
	return NULL;
}

static void
check_big_answer(gboolean announce)
{
	BigServer server = { .announce = announce };
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) effective = NULL;
	KlHttpOptions options = { .name = "registrar", .timeout_ms = 10000 };
	g_autoptr(KlHttp) http = NULL;
	g_autoptr(KlHttpResponse) response = NULL;
	g_autofree gchar *url = NULL;
	KlHttpRequest request = { .method = "GET" };
	gint64 start;
	GThread *thread;

	server.listener = g_socket_listener_new();
	g_socket_listener_add_address(server.listener,
				      address,
				      G_SOCKET_TYPE_STREAM,
				      G_SOCKET_PROTOCOL_TCP,
				      NULL,
				      &effective,
				      &error);
	g_assert_no_error(error);
	server.port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
	thread = g_thread_new("big-server", big_server_thread, &server);
	http = kl_http_new(&options, &error);
	g_assert_no_error(error);
	url = g_strdup_printf("http://127.0.0.1:%u/version", server.port);
	request.url = url;
	start = g_get_monotonic_time();
	response = kl_http_send(http, &request, NULL, &error);
	g_assert_null(response);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, "too large"));
	g_assert_nonnull(strstr(error->message, "16 MiB"));
	/* refused at once, not after the request timeout */
	g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
	g_clear_pointer(&http, kl_http_free); /* closes the connection */
	g_thread_join(thread);
	g_socket_listener_close(server.listener);
	g_object_unref(server.listener);
}

static void
test_curl_body_limit(void)
{
	/* a Content-Length over the cap is refused before the body is read */
	check_big_answer(TRUE);
	/* a chunked answer that grows past the cap is cut off */
	check_big_answer(FALSE);
}

/* a body of @len bytes of a pattern, produced while it is read */
typedef struct {
	gsize len;
	gsize pos;
	guint reads;
	guint seeks;
} PatternBody;

static gchar
pattern_byte(gsize i)
{
	return (gchar)('a' + (i * 7 + i / 251) % 26);
}

static gsize
pattern_read(gpointer data, gchar *buf, gsize len)
{
	PatternBody *body = data;
	gsize n = MIN(len, body->len - body->pos);

	for (gsize i = 0; i < n; i++)
		buf[i] = pattern_byte(body->pos + i);
	body->pos += n;
	body->reads++;
	return n;
}

static gboolean
pattern_seek(gpointer data, guint64 offset)
{
	PatternBody *body = data;

	if (offset > body->len)
		return FALSE;
	body->pos = (gsize)offset;
	body->seeks++;
	return TRUE;
}

/* a body read while it is sent arrives whole, with its Content-Length, on a kept-alive connection
 */
static void
test_curl_streamed_body(void)
{
	Server *server = server_start(FALSE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 5000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autofree gchar *url =
	    g_strdup_printf("http://127.0.0.1:%u/v3.0/agents/a/attestations/7", server->port);
	PatternBody body = { .len = 700 * 1024 + 3 };
	KlHttpBodyReader reader = { pattern_read, pattern_seek, &body };

	g_assert_no_error(error);
	for (guint i = 0; i < 2; i++) {
		g_autoptr(KlHttpResponse) response = NULL;
		KlHttpRequest request = {
			.method = "PATCH",
			.url = url,
			.content_type = "application/vnd.api+json",
			.body_reader = &reader,
			.body_len = body.len,
			.tail_only = TRUE,
		};
		const gchar *received;
		g_autofree gchar *content_length = NULL;

		response = kl_http_send(http, &request, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(response->status, ==, 429);
		g_assert_cmpuint(body.pos, ==, body.len);
		/* libcurl asked for it in pieces, not all at once */
		g_assert_cmpuint(body.reads, >, 2);
		g_mutex_lock(&server->lock);
		g_assert_cmpuint(server->requests->len, ==, i + 1);
		received = g_ptr_array_index(server->requests, i);
		g_assert_true(g_str_has_prefix(received, "PATCH /v3.0/agents/a/attestations/7 "));
		content_length = g_strdup_printf("Content-Length: %zu\n", body.len);
		g_assert_nonnull(strstr(received, content_length));
		g_assert_null(strstr(received, "chunked"));
		received = strstr(received, "\n\n") + 2;
		g_assert_cmpuint(strlen(received), ==, body.len);
		for (gsize k = 0; k < body.len; k++)
			if (received[k] != pattern_byte(k))
				g_assert_cmpuint(k, ==, body.len);
		g_mutex_unlock(&server->lock);
		body.reads = 0;
	}
	g_assert_cmpint(g_atomic_int_get(&server->connections), ==, 1);
	server_stop(server);
}

/* the last request @server received: its request line and headers, then its body */
static gchar *
server_last_request(Server *server)
{
	gchar *last;

	g_mutex_lock(&server->lock);
	g_assert_cmpuint(server->requests->len, >, 0);
	last = g_strdup(g_ptr_array_index(server->requests, server->requests->len - 1));
	g_mutex_unlock(&server->lock);
	return last;
}

/*
 * The handle keeps its options and the parsed scheme and authority of the
 * last URL between requests: every request still goes where its own URL
 * says, with its own method, query and body, nothing left from the last one
 */
static void
test_curl_handle_state(void)
{
	Server *a = server_start(FALSE);
	Server *b = server_start(FALSE);
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 5000 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	PatternBody streamed = { .len = 3000 };
	KlHttpBodyReader reader = { pattern_read, pattern_seek, &streamed };
	const struct {
		Server *server;
		const gchar *method;
		const gchar *path;
		const gchar *body; /* NULL: none; "stream": the body reader */
		const gchar *line; /* what the server received */
	} steps[] = {
		{ a,
		  "PATCH",
		  "/v3/agents/x/attestations/1",
		  "{\"p\":1}",
		  "PATCH /v3/agents/x/attestations/1" },
		{ a,
		  "POST",
		  "/v3/agents/x/attestations?from=2",
		  "{\"q\":2}",
		  "POST /v3/agents/x/attestations?from=2" },
		/* the query of the last URL does not stay */
		{ a, "POST", "/v3/agents/x/attestations", "{}", "POST /v3/agents/x/attestations" },
		/* another authority: parsed again */
		{ b, "GET", "/v3/agents/x", NULL, "GET /v3/agents/x" },
		{ b,
		  "PATCH",
		  "/v3/agents/x/attestations/3",
		  "stream",
		  "PATCH /v3/agents/x/attestations/3" },
		/* and back */
		{ a, "POST", "/v3/sessions", "{\"s\":1}", "POST /v3/sessions" },
		/* dot segments and escapes: libcurl's own parser, as for any URL */
		{ a, "GET", "/v3/a/./b/../c%2Fd", NULL, "GET /v3/a/c%2Fd" },
		{ a, "GET", "/v3/agents/x", NULL, "GET /v3/agents/x" },
	};

	g_assert_no_error(error);
	for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
		g_autofree gchar *url =
		    g_strdup_printf("http://127.0.0.1:%u%s", steps[i].server->port, steps[i].path);
		gboolean stream = g_strcmp0(steps[i].body, "stream") == 0;
		KlHttpRequest request = {
			.method = steps[i].method,
			.url = url,
			.body = stream ? NULL : steps[i].body,
			.body_len = stream		    ? streamed.len
				    : steps[i].body != NULL ? strlen(steps[i].body)
							    : 0,
			.body_reader = stream ? &reader : NULL,
		};
		g_autoptr(KlHttpResponse) response = kl_http_send(http, &request, NULL, &error);
		g_autofree gchar *received = NULL;
		g_autofree gchar *line = g_strconcat(steps[i].line, " HTTP/1.1\n", NULL);
		const gchar *body;

		g_assert_no_error(error);
		g_assert_cmpuint(response->status, ==, 429);
		received = server_last_request(steps[i].server);
		g_assert_true(g_str_has_prefix(received, line));
		body = strstr(received, "\n\n") + 2;
		if (stream)
			g_assert_cmpuint(strlen(body), ==, streamed.len);
		else
			g_assert_cmpstr(body, ==, steps[i].body != NULL ? steps[i].body : "");
		if (steps[i].body == NULL)
			g_assert_null(strstr(received, "Content-Length"));
	}
	/* one connection to each server: kept alive across the changes */
	g_assert_cmpint(g_atomic_int_get(&a->connections), <=, 2);
	server_stop(a);
	server_stop(b);
}

/*
 * The proxy environment is read once, when the handle is made, as libcurl
 * reads it (http_proxy, no_proxy): later changes do not apply
 */
static void
test_curl_proxy_environment(void)
{
	Server *proxy = server_start(FALSE);
	Server *direct = server_start(FALSE);
	KlHttpOptions options = { .name = "registrar", .timeout_ms = 5000 };
	g_autoptr(GError) error = NULL;
	g_autofree gchar *proxy_url = g_strdup_printf("http://127.0.0.1:%u", proxy->port);
	g_autofree gchar *direct_url =
	    g_strdup_printf("http://127.0.0.1:%u/v3/agents/x", direct->port);
	g_autoptr(KlHttp) http = NULL;
	g_autoptr(KlHttp) excluded = NULL;
	g_autoptr(KlHttp) plain = NULL;
	g_autofree gchar *received = NULL;

	g_setenv("http_proxy", proxy_url, TRUE);
	g_unsetenv("no_proxy");
	g_unsetenv("NO_PROXY");
	http = kl_http_new(&options, &error);
	g_assert_no_error(error);
	g_setenv("no_proxy", "127.0.0.1", TRUE);
	excluded = kl_http_new(&options, &error);
	g_assert_no_error(error);
	g_unsetenv("http_proxy");
	g_unsetenv("no_proxy");
	plain = kl_http_new(&options, &error);
	g_assert_no_error(error);

	/* through the proxy, though the environment has changed since */
	for (guint i = 0; i < 2; i++) {
		KlHttpRequest request = { .method = "GET",
					  .url = "http://kl-test.invalid/v3/agents/x" };
		g_autoptr(KlHttpResponse) response = kl_http_send(http, &request, NULL, &error);

		g_assert_no_error(error);
		g_assert_cmpuint(response->status, ==, 429);
		g_clear_pointer(&received, g_free);
		received = server_last_request(proxy);
		g_assert_true(g_str_has_prefix(
		    received, "GET http://kl-test.invalid/v3/agents/x HTTP/1.1\n"));
	}
	/* no_proxy names the host: direct */
	{
		KlHttpRequest request = { .method = "GET", .url = direct_url };
		g_autoptr(KlHttpResponse) response = kl_http_send(excluded, &request, NULL, &error);

		g_assert_no_error(error);
		g_clear_pointer(&received, g_free);
		received = server_last_request(direct);
		g_assert_true(g_str_has_prefix(received, "GET /v3/agents/x HTTP/1.1\n"));
	}
	/* no proxy in the environment: direct (the server serves one connection at a time) */
	g_clear_pointer(&excluded, kl_http_free);
	{
		KlHttpRequest request = { .method = "GET", .url = direct_url };
		g_autoptr(KlHttpResponse) response = kl_http_send(plain, &request, NULL, &error);

		g_assert_no_error(error);
		g_mutex_lock(&direct->lock);
		g_assert_cmpuint(direct->requests->len, ==, 2);
		g_mutex_unlock(&direct->lock);
	}
	g_mutex_lock(&proxy->lock);
	g_assert_cmpuint(proxy->requests->len, ==, 2);
	g_mutex_unlock(&proxy->lock);
	server_stop(proxy);
	server_stop(direct);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/http/origin", test_origin);
	g_test_add_func("/http/resolve-location", test_resolve_location);
	g_test_add_func("/http/retry-after", test_retry_after);
	g_test_add_func("/http/curl-answer-headers", test_curl_answer_headers);
	g_test_add_func("/http/fingerprint", test_fingerprint);
	g_test_add_func("/http/token-scope", test_token_scope);
	g_test_add_func("/http/request-headers", test_request_headers);
	g_test_add_func("/http/curl-keepalive-headers", test_curl_keepalive_and_headers);
	g_test_add_func("/http/curl-timeout", test_curl_timeout);
	g_test_add_func("/http/curl-cancel", test_curl_cancel);
	g_test_add_func("/http/curl-refused", test_curl_refused);
	g_test_add_func("/http/curl-wait-adapts", test_curl_wait_adapts);
	g_test_add_func("/http/failure-messages", test_failure_messages);
	g_test_add_func("/http/ca-file-problem", test_ca_file_problem);
	g_test_add_func("/http/curl-transport-causes", test_curl_transport_causes);
	g_test_add_func("/http/curl-tls", test_curl_tls);
	g_test_add_func("/http/curl-body-limit", test_curl_body_limit);
	g_test_add_func("/http/curl-streamed-body", test_curl_streamed_body);
	g_test_add_func("/http/curl-handle-state", test_curl_handle_state);
	g_test_add_func("/http/curl-proxy-environment", test_curl_proxy_environment);
	return g_test_run();
}
