/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-http.h"
#include "kl-log.h"

/*
 * Keep memory bounded whatever the peer sends: registrar and verifier answers
 * are a few kB, so 16 MiB is generous. A larger Content-Length is refused
 * before any of the body is read.
 */
#define KL_HTTP_MAX_BODY_MIB 16
#define KL_HTTP_MAX_BODY     (KL_HTTP_MAX_BODY_MIB * 1024 * 1024)
#define KL_HTTP_MAX_HEADERS  (64 * 1024)
/* X-Request-ID, Accept, Content-Type, Authorization */
#define KL_HTTP_MAX_REQUEST_HEADERS 4
#define KL_HTTP_AUTH_PREFIX	    "Authorization: Bearer "
#define KL_HTTP_REQUEST_ID_PREFIX   "X-Request-ID: "
#define KL_HTTP_CONTENT_TYPE_PREFIX "Content-Type: "
/* a flowing tail_only answer (an echo of the evidence) may take this long in all */
#define KL_HTTP_TAIL_MAX_MS (10 * 60 * 1000)

typedef struct {
	const KlHttpBodyReader *reader; /* (nullable) the request body */
	GByteArray *body;
	/* the headers the agent reads, of the last response (after 1xx): the first of each */
	gchar *content_type;
	gchar *location;
	gchar *retry_after;
	gsize header_bytes;
	GCancellable *cancellable;
	gboolean too_large;
	gboolean tail_only; /* keep the last KL_HTTP_TAIL_BYTES of any answer */
	gboolean truncated;
	guint64 total;
	/*
	 * tail_only answers may be long (the verifier echoes the evidence): the
	 * answer must start within answer_us of the request, then keep flowing
	 * (no pause longer than stall_us, the same: a busy verifier may pause mid-answer), however
	 * long it takes in all
	 */
	gint64 started_us;
	gint64 answer_us;
	gint64 stall_us;
	gint64 progress_us;
	curl_off_t received;
	gboolean stalled;
} KlHttpTransfer;

struct _KlHttp {
	gchar *name;
	gchar *ca_file;
	gboolean accept_invalid_certs;
	gboolean accept_invalid_hostnames;
	guint timeout_ms;
	gchar *ca_option;
	gchar *address_option;
	guint wait_ms;		 /* how long answers are waited for (>= timeout_ms) */
	gboolean wait_warned;	 /* the WARNING about a raised wait was logged */
	guint fast_answers;	 /* quick answers in a row while the wait is raised */
	gboolean closed_by_peer; /* the last request: sent, then the connection was cut */
	CURL *curl;
	GMutex mutex; /* the easy handle is used by one request at a time */
	/*
	 * libcurl state kept between requests (under the mutex): the options that
	 * hold for every request are set once, the callbacks' data is @transfer
	 */
	gboolean curl_ready;
	KlHttpTransfer transfer;
	GByteArray *spare_body; /* the last answer's array, emptied (its data stolen): reused */
	char errbuf[CURL_ERROR_SIZE];
	CURLU *url_base;      /* the last URL's scheme and authority, parsed once... */
	gchar *url_base_text; /* ...from this "scheme://authority" */
	/* the proxy environment as libcurl reads it, read once: http, https, no_proxy */
	gchar *proxy[2];
	gchar *no_proxy;
	gint proxy_scheme; /* the scheme whose proxy is set: 0 http, 1 https, -1 libcurl's own */
	gchar *token_origin;
	/* "Authorization: Bearer <token>", built once; @token points into it */
	gchar *auth_line;
	const gchar *token;
	gchar *accept_line;	  /* "Accept: ...", built once */
	gchar *content_type_line; /* "Content-Type: ..." of the last request that had a body */
	gchar *origin_prefix;	  /* "scheme://authority" of the last URL... */
	gchar *origin;		  /* ...and its origin (kl_http_url_origin()) */
	KlHttpTransportFunc transport;
	gpointer transport_data;
};

KlHttpResponse *
kl_http_response_new(guint status, const gchar *body)
{
	KlHttpResponse *response = g_new0(KlHttpResponse, 1);

	response->status = status;
	response->retry_after_s = -1;
	/* kept NUL-terminated (outside the GBytes size) for kl_http_response_get_body() */
	response->body =
	    g_bytes_new_take(g_strdup(body != NULL ? body : ""), body != NULL ? strlen(body) : 0);
	return response;
}

void
kl_http_response_free(KlHttpResponse *response)
{
	if (response == NULL)
		return;
	g_free(response->content_type);
	g_free(response->location);
	g_free(response->request_id);
	if (response->body != NULL)
		g_bytes_unref(response->body);
	g_free(response);
}

const gchar *
kl_http_response_get_body(KlHttpResponse *response, gsize *len)
{
	gsize size = 0;
	const gchar *data = g_bytes_get_data(response->body, &size);

	if (len != NULL)
		*len = size;
	return data != NULL ? data : "";
}

/*
 * The proxy libcurl would take from the environment for a URL of @scheme
 * ("http", "https"): <scheme>_proxy, its upper-case form except HTTP_PROXY,
 * then all_proxy and ALL_PROXY; "" for none (transfer full)
 */
static gchar *
kl_http_env_proxy(const gchar *scheme)
{
	g_autofree gchar *name = g_strconcat(scheme, "_proxy", NULL);
	const gchar *value = g_getenv(name);

	if (value == NULL && g_strcmp0(name, "http_proxy") != 0) {
		g_autofree gchar *upper = g_ascii_strup(name, -1);
		value = g_getenv(upper);
	}
	if (value == NULL)
		value = g_getenv("all_proxy");
	if (value == NULL)
		value = g_getenv("ALL_PROXY");
	return g_strdup(value != NULL ? value : "");
}

static gpointer
kl_http_global_init_cb(gpointer data)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	return GINT_TO_POINTER(rc == CURLE_OK ? 1 : 2);
}

KlHttp *
kl_http_new(const KlHttpOptions *options, GError **error)
{
	static GOnce once = G_ONCE_INIT;
	g_autoptr(KlHttp) http = g_new0(KlHttp, 1);

	g_mutex_init(&http->mutex);
	http->name = g_strdup(options->name != NULL ? options->name : "peer");
	http->ca_file = g_strdup(options->ca_file);
	http->accept_invalid_certs = options->accept_invalid_certs;
	http->accept_invalid_hostnames = options->accept_invalid_hostnames;
	http->timeout_ms = options->timeout_ms;
	http->wait_ms = options->timeout_ms;
	http->ca_option = g_strdup(options->ca_option);
	http->address_option = g_strdup(options->address_option);
	http->accept_line = g_strconcat(
	    "Accept: ", options->accept != NULL ? options->accept : KL_HTTP_ACCEPT_ANY, NULL);
	/*
	 * the proxy environment is read once, as libcurl reads it: the same
	 * proxy for the process's life, without looking it up at every request
	 */
	http->proxy[0] = kl_http_env_proxy("http");
	http->proxy[1] = kl_http_env_proxy("https");
	http->no_proxy = g_strdup(g_getenv("no_proxy") != NULL	 ? g_getenv("no_proxy")
				  : g_getenv("NO_PROXY") != NULL ? g_getenv("NO_PROXY")
								 : "");
	http->proxy_scheme = -1;

	if (GPOINTER_TO_INT(g_once(&once, kl_http_global_init_cb, NULL)) != 1) {
		g_set_error_literal(
		    error,
		    KL_ERROR,
		    KL_ERROR_INTERNAL,
		    "libcurl initialisation failed (out of memory or broken TLS library)");
		return NULL;
	}
	http->curl = curl_easy_init();
	if (http->curl == NULL) {
		g_set_error_literal(error,
				    KL_ERROR,
				    KL_ERROR_INTERNAL,
				    "cannot create a libcurl handle (out of memory)");
		return NULL;
	}
	return g_steal_pointer(&http);
}

void
kl_http_free(KlHttp *http)
{
	if (http == NULL)
		return;
	if (http->curl != NULL)
		curl_easy_cleanup(http->curl);
	if (http->url_base != NULL)
		curl_url_cleanup(http->url_base);
	g_free(http->url_base_text);
	g_free(http->proxy[0]);
	g_free(http->proxy[1]);
	g_free(http->no_proxy);
	g_free(http->name);
	g_free(http->ca_file);
	g_free(http->ca_option);
	g_free(http->address_option);
	g_free(http->token_origin);
	g_free(http->origin_prefix);
	g_free(http->origin);
	g_free(http->accept_line);
	g_free(http->content_type_line);
	if (http->spare_body != NULL)
		g_byte_array_unref(http->spare_body);
	if (http->auth_line != NULL) {
		memset(http->auth_line, 0, strlen(http->auth_line));
		g_free(http->auth_line);
	}
	g_mutex_clear(&http->mutex);
	g_free(http);
}

void
kl_http_set_transport(KlHttp *http, KlHttpTransportFunc func, gpointer user_data)
{
	http->transport = func;
	http->transport_data = user_data;
}

void
kl_http_set_bearer_token(KlHttp *http, const gchar *origin_url, const gchar *token)
{
	g_mutex_lock(&http->mutex);
	if (http->auth_line != NULL) {
		memset(http->auth_line, 0, strlen(http->auth_line));
		g_clear_pointer(&http->auth_line, g_free);
	}
	http->token = NULL;
	g_clear_pointer(&http->token_origin, g_free);
	if (token != NULL && origin_url != NULL) {
		http->token_origin = kl_http_url_origin(origin_url);
		if (http->token_origin != NULL) {
			/* the header line is built once, wiped when the token goes */
			http->auth_line = g_strconcat(KL_HTTP_AUTH_PREFIX, token, NULL);
			http->token = http->auth_line + strlen(KL_HTTP_AUTH_PREFIX);
		}
	}
	g_mutex_unlock(&http->mutex);
}

gboolean
kl_http_has_bearer_token(KlHttp *http)
{
	gboolean ret;

	g_mutex_lock(&http->mutex);
	ret = http->token != NULL;
	g_mutex_unlock(&http->mutex);
	return ret;
}

gchar *
kl_http_fingerprint(const gchar *secret)
{
	g_autofree gchar *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, secret, -1);
	return g_strndup(sum, 12);
}

gchar *
kl_http_url_origin(const gchar *url)
{
	g_autoptr(GUri) uri = NULL;
	g_autofree gchar *scheme = NULL;
	g_autofree gchar *host = NULL;
	gint port;

	if (url == NULL)
		return NULL;
	uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
	if (uri == NULL || g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0')
		return NULL;
	scheme = g_ascii_strdown(g_uri_get_scheme(uri), -1);
	if (g_strcmp0(scheme, "http") != 0 && g_strcmp0(scheme, "https") != 0)
		return NULL;
	host = g_ascii_strdown(g_uri_get_host(uri), -1);
	port = g_uri_get_port(uri);
	if (port < 0)
		port = g_strcmp0(scheme, "https") == 0 ? 443 : 80;
	if (strchr(host, ':') != NULL)
		return g_strdup_printf("%s://[%s]:%d", scheme, host, port);
	return g_strdup_printf("%s://%s:%d", scheme, host, port);
}

gchar *
kl_http_resolve_location(const gchar *base_url, const gchar *location, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *resolved = NULL;
	g_autofree gchar *base_origin = NULL;
	g_autofree gchar *origin = NULL;

	if (location == NULL || location[0] == '\0') {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_INVALID_DATA, "empty Location");
		return NULL;
	}
	for (const gchar *p = location; *p != '\0'; p++) {
		if ((guchar)*p < 0x20 || *p == 0x7f || *p == ' ' || *p == '\\') {
			g_set_error_literal(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "Location contains control characters or spaces");
			return NULL;
		}
	}
	/* "//host/path" is a network-path reference: another origin in disguise */
	if (g_str_has_prefix(location, "//")) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "Location '%s' points to another host; not followed",
			    location);
		return NULL;
	}
	resolved = g_uri_resolve_relative(base_url, location, G_URI_FLAGS_NONE, &error_local);
	if (resolved == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "invalid Location '%s': %s",
			    location,
			    error_local->message);
		return NULL;
	}
	base_origin = kl_http_url_origin(base_url);
	origin = kl_http_url_origin(resolved);
	if (base_origin == NULL || origin == NULL || g_strcmp0(base_origin, origin) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "Location '%s' points to another origin than %s; not followed",
			    location,
			    base_origin != NULL ? base_origin : base_url);
		return NULL;
	}
	return g_steal_pointer(&resolved);
}

gint64
kl_http_parse_retry_after(const gchar *value, gint64 now_s)
{
	g_autofree gchar *copy = NULL;
	guint64 seconds = 0;
	time_t when;

	if (value == NULL)
		return -1;
	copy = g_strstrip(g_strdup(value));
	if (copy[0] == '\0')
		return -1;
	if (g_ascii_isdigit(copy[0])) {
		if (!g_ascii_string_to_unsigned(copy, 10, 0, G_MAXINT64, &seconds, NULL))
			return strlen(copy) > 18 && strspn(copy, "0123456789") == strlen(copy)
				   ? G_MAXINT64
				   : -1;
		return (gint64)seconds;
	}
	when = curl_getdate(copy, NULL);
	if (when == (time_t)-1)
		return -1;
	if ((gint64)when <= now_s)
		return 0;
	return (gint64)when - now_s;
}

/* ---- libcurl transport ---- */

static size_t
kl_http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	KlHttpTransfer *transfer = userdata;
	gsize len = size * nmemb;

	transfer->total += len;
	if (transfer->tail_only) {
		g_byte_array_append(transfer->body, (const guint8 *)ptr, len);
		/* bounded memory: drop the front once twice the tail has piled up */
		if (transfer->body->len > 2 * KL_HTTP_TAIL_BYTES) {
			g_byte_array_remove_range(
			    transfer->body, 0, transfer->body->len - KL_HTTP_TAIL_BYTES);
			transfer->truncated = TRUE;
		}
		return len;
	}
	if (transfer->body->len + len > KL_HTTP_MAX_BODY) {
		transfer->too_large = TRUE;
		return 0;
	}
	g_byte_array_append(transfer->body, (const guint8 *)ptr, len);
	return len;
}

static size_t
kl_http_read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	KlHttpTransfer *transfer = userdata;

	if (g_cancellable_is_cancelled(transfer->cancellable))
		return CURL_READFUNC_ABORT;
	return transfer->reader->read(transfer->reader->data, buffer, size * nitems);
}

/* libcurl rewinds the body to send it again (e.g. on a kept-alive connection the peer closed) */
static int
kl_http_seek_cb(void *userdata, curl_off_t offset, int origin)
{
	KlHttpTransfer *transfer = userdata;

	if (origin != SEEK_SET || offset < 0 || transfer->reader->seek == NULL)
		return CURL_SEEKFUNC_CANTSEEK;
	return transfer->reader->seek(transfer->reader->data, (guint64)offset) ? CURL_SEEKFUNC_OK
									       : CURL_SEEKFUNC_FAIL;
}

/*
 * Whether the @len bytes at @p are @lower (lower case letters, digits, '-' or
 * '/'), ASCII case-insensitively: inline, for every header line of every answer
 */
static inline gboolean
kl_http_ascii_caseeq(const gchar *p, const gchar *lower, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		guchar c = (guchar)p[i];

		if (c >= 'A' && c <= 'Z')
			c = (guchar)(c + ('a' - 'A'));
		if (c != (guchar)lower[i])
			return FALSE;
	}
	return TRUE;
}

/* the value of header @name (lower case) in the line @p..@end if it is that header, else NULL */
static gchar *
kl_http_header_value(const gchar *p, const gchar *end, const gchar *name, gsize name_len)
{
	/* the line ends at a NUL byte, if it has one */
	end = p + strnlen(p, (gsize)(end - p));
	if ((gsize)(end - p) <= name_len || p[name_len] != ':' ||
	    !kl_http_ascii_caseeq(p, name, name_len))
		return NULL;
	p += name_len + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && g_ascii_isspace(end[-1]))
		end--;
	return g_strndup(p, (gsize)(end - p));
}

static size_t
kl_http_header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	KlHttpTransfer *transfer = userdata;
	gsize len = size * nitems;
	const gchar *p = buffer;
	/* a NUL byte stops the scans below (and ends a value, kl_http_header_value()) */
	const gchar *end = buffer + len;
	gchar **slot = NULL;
	gchar *value = NULL;

	transfer->header_bytes += len;
	if (transfer->header_bytes > KL_HTTP_MAX_HEADERS) {
		transfer->too_large = TRUE;
		return 0;
	}
	/* a new status line: headers of an interim (1xx) response are dropped */
	if (len >= 5 && kl_http_ascii_caseeq(buffer, "http/", 5)) {
		g_clear_pointer(&transfer->content_type, g_free);
		g_clear_pointer(&transfer->location, g_free);
		g_clear_pointer(&transfer->retry_after, g_free);
		return len;
	}
	/* only the headers the agent reads are kept, the first of each */
	while (p < end && g_ascii_isspace(*p))
		p++;
	switch (p < end ? *p | 0x20 : 0) {
	case 'c':
		slot = &transfer->content_type;
		if (*slot == NULL)
			value = kl_http_header_value(p, end, "content-type", 12);
		break;
	case 'l':
		slot = &transfer->location;
		if (*slot == NULL)
			value = kl_http_header_value(p, end, "location", 8);
		break;
	case 'r':
		slot = &transfer->retry_after;
		if (*slot == NULL)
			value = kl_http_header_value(p, end, "retry-after", 11);
		break;
	default:
		break;
	}
	if (value != NULL)
		*slot = value;
	return len;
}

static int
kl_http_xferinfo_cb(
    void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	KlHttpTransfer *transfer = clientp;
	gint64 now;

	if (g_cancellable_is_cancelled(transfer->cancellable))
		return 1;
	if (!transfer->tail_only || transfer->answer_us == 0)
		return 0;
	now = g_get_monotonic_time();
	if (dlnow > transfer->received) {
		transfer->received = dlnow;
		transfer->progress_us = now;
	}
	if (transfer->received == 0 ? now - transfer->started_us > transfer->answer_us
				    : now - transfer->progress_us > transfer->stall_us) {
		transfer->stalled = TRUE;
		return 1;
	}
	return 0;
}

gboolean
kl_http_get_closed_by_peer(KlHttp *http)
{
	return http->closed_by_peer;
}

guint
kl_http_get_wait_ms(KlHttp *http)
{
	guint wait;

	g_mutex_lock(&http->mutex);
	wait = http->wait_ms;
	g_mutex_unlock(&http->mutex);
	return wait;
}

static guint
kl_http_wait_max(KlHttp *http)
{
	return (guint)MIN((guint64)http->timeout_ms * KL_HTTP_WAIT_MAX_FACTOR, G_MAXINT);
}

/* an answer came after @elapsed_ms: the wait follows it (see kl_http_get_wait_ms) */
static void
kl_http_wait_answered(KlHttp *http, const gchar *method, const gchar *url, guint64 elapsed_ms)
{
	guint64 wait;

	if (http->timeout_ms == 0 || http->wait_ms <= http->timeout_ms)
		return;
	if (elapsed_ms > http->timeout_ms) {
		/* a slow answer: the wait never shrinks on one, and covers twice its time */
		http->fast_answers = 0;
		wait = MAX((guint64)http->wait_ms, 2 * elapsed_ms);
		http->wait_ms = (guint)MIN(wait, kl_http_wait_max(http));
		if (!http->wait_warned)
			/* once per episode: the operator learns the value that works */
			g_warning("the %s answered %s %s after %.1f s, later than request_timeout "
				  "(%u ms) allows: its answers are now waited for up to %u ms; set "
				  "request_timeout to %" G_GUINT64_FORMAT " or more to spare the "
				  "timed-out attempts",
				  http->name,
				  method,
				  url,
				  (gdouble)elapsed_ms / 1000,
				  http->timeout_ms,
				  http->wait_ms,
				  (elapsed_ms / 1000 + 2) * 1000);
		http->wait_warned = TRUE;
		return;
	}
	/*
	 * quick answers halve the wait only after KL_HTTP_WAIT_DECAY_ANSWERS of
	 * them in a row: the quick answers to other requests (the evidence, a
	 * session) must not undo the wait a slow one (phase 1) needs at every cycle
	 */
	if (++http->fast_answers < KL_HTTP_WAIT_DECAY_ANSWERS)
		return;
	http->fast_answers = 0;
	http->wait_ms = MAX(http->wait_ms / 2, http->timeout_ms);
	if (http->wait_ms == http->timeout_ms) {
		g_message("the %s answers within request_timeout (%u ms) again",
			  http->name,
			  http->timeout_ms);
		http->wait_warned = FALSE;
	}
}

gchar *
kl_http_ca_file_problem(const gchar *path)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *text = NULL;
	struct passwd *pw;
	gsize len = 0;

	if (path == NULL || path[0] == '\0')
		return NULL;
	if (!g_file_get_contents(path, &text, &len, &error)) {
		pw = getpwuid(geteuid());
		return g_strdup_printf("it cannot be read by user %s (%s)",
				       pw != NULL ? pw->pw_name : "?",
				       error->message);
	}
	if (g_strstr_len(text, (gssize)len, "-----BEGIN CERTIFICATE-----") == NULL)
		return g_strdup("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
	return NULL;
}

static gboolean
kl_http_detail_has(const gchar *detail, const gchar *const *needles)
{
	for (guint i = 0; detail != NULL && needles[i] != NULL; i++)
		if (strstr(detail, needles[i]) != NULL)
			return TRUE;
	return FALSE;
}

GError *
kl_http_failure_to_error(const KlHttpFailure *f)
{
	static const gchar *const not_tls[] = {
		"unexpected TLS packet", "TLS packet with unexpected length",
		"wrong version number",	 "unknown protocol",
		"record layer",		 NULL
	};
	static const gchar *const reset[] = { "reset by peer",
					      "non-properly terminated",
					      "Connection reset",
					      "Broken pipe",
					      "Empty reply",
					      "Connection died",
					      NULL };
	const gchar *peer = f->peer != NULL ? f->peer : "peer";
	const gchar *detail = f->detail != NULL ? f->detail : "";
	const gchar *address = f->address_option != NULL ? f->address_option : "its address";
	const gchar *ca_option = f->ca_option != NULL ? f->ca_option : "the CA option";
	const gchar *ca_file = f->ca_file != NULL ? f->ca_file : "(the system store)";
	g_autofree gchar *origin = kl_http_url_origin(f->url);
	const gchar *where = origin != NULL ? origin : f->url;

	switch (f->curl_code) {
	case CURLE_OPERATION_TIMEDOUT:
		if (f->request_sent)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_TIMED_OUT,
			    "%s %s: the %s took the request but did not answer within %u ms (%s): "
			    "it is busy or stuck (a verifier evaluating a large policy can take "
			    "many seconds); the next attempt waits up to %u ms (request_timeout "
			    "sets the first wait)",
			    f->method,
			    f->url,
			    peer,
			    f->timeout_ms,
			    detail,
			    f->next_wait_ms);
		{
			/* libcurl says so when TCP connected but no TLS handshake followed */
			g_autofree gchar *why =
			    strstr(detail, "SSL connection timeout") != NULL
				? g_strdup_printf(
				      "TCP connected but no TLS handshake followed: the "
				      "%s is overloaded, or %s names a port that does "
				      "not serve TLS",
				      peer,
				      address)
				: g_strdup_printf("the host is down, unreachable or overloaded, "
						  "or a firewall drops the packets; check %s and "
						  "the network (request_timeout sets the wait)",
						  address);
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_TIMED_OUT,
			    "%s %s: no connection to the %s at %s within %u ms (%s): %s",
			    f->method,
			    f->url,
			    peer,
			    where,
			    f->timeout_ms,
			    detail,
			    why);
		}
	case CURLE_SSL_CACERT_BADFILE:
		return g_error_new(KL_ERROR,
				   KL_ERROR_AUTH,
				   "%s %s: the CA file %s cannot be used: %s; fix %s or the file "
				   "(path, permissions, PEM contents)",
				   f->method,
				   f->url,
				   ca_file,
				   f->ca_problem != NULL ? f->ca_problem : detail,
				   ca_option);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ISSUER_ERROR:
		if (f->ca_problem != NULL)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s %s: the CA file %s cannot be used: %s; fix %s or the "
			    "file (path, permissions, PEM contents)",
			    f->method,
			    f->url,
			    ca_file,
			    f->ca_problem,
			    ca_option);
		if (strstr(detail, "does not match target host name") != NULL ||
		    strstr(detail, "no alternative certificate subject name") != NULL)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s %s: the %s's certificate does not name the host of the URL (%s): "
			    "use in %s the name or address the certificate was issued for, or "
			    "reissue the certificate with this one",
			    f->method,
			    f->url,
			    peer,
			    detail,
			    address);
		if ((f->tls_verify_status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)) != 0)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s %s: the %s's certificate (or its CA's) has expired or "
			    "is not valid yet (%s): renew it, or check this machine's "
			    "clock",
			    f->method,
			    f->url,
			    peer,
			    detail);
		if ((f->tls_verify_status & GNUTLS_CERT_REVOKED) != 0)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s %s: the %s's certificate is revoked (%s): the %s needs "
			    "a new certificate",
			    f->method,
			    f->url,
			    peer,
			    detail,
			    peer);
		if ((f->tls_verify_status & GNUTLS_CERT_INSECURE_ALGORITHM) != 0)
			return g_error_new(KL_ERROR,
					   KL_ERROR_AUTH,
					   "%s %s: the %s's certificate is signed with an insecure "
					   "algorithm (%s): reissue it with SHA-256 or better",
					   f->method,
					   f->url,
					   peer,
					   detail);
		return g_error_new(
		    KL_ERROR,
		    KL_ERROR_AUTH,
		    "%s %s: the %s's certificate was not issued by a CA in %s (%s): "
		    "set %s to the CA that issued the %s's certificate (for Keylime, "
		    "its cacert.crt)",
		    f->method,
		    f->url,
		    peer,
		    ca_file,
		    detail,
		    ca_option,
		    peer);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		if (kl_http_detail_has(detail, not_tls))
			return g_error_new(KL_ERROR,
					   KL_ERROR_NETWORK,
					   "%s %s: %s does not speak TLS (%s): check that %s names "
					   "the %s's HTTPS port",
					   f->method,
					   f->url,
					   where,
					   detail,
					   address,
					   peer);
		if (kl_http_detail_has(detail, reset) || f->curl_code != CURLE_SSL_CONNECT_ERROR)
			return g_error_new(
			    KL_ERROR,
			    KL_ERROR_NETWORK,
			    "%s %s: the %s closed the connection %s(%s): it may be restarting, "
			    "something between (proxy, firewall, load balancer) cuts it, or %s "
			    "names a port that does not serve the %s; the agent tries again",
			    f->method,
			    f->url,
			    peer,
			    f->request_sent ? "" : "before the TLS handshake ended ",
			    detail,
			    address,
			    peer);
		return g_error_new(KL_ERROR,
				   KL_ERROR_AUTH,
				   "%s %s: the TLS handshake with the %s failed (%s): check that "
				   "%s names the %s's HTTPS port and that it accepts TLS 1.2 or "
				   "1.3",
				   f->method,
				   f->url,
				   peer,
				   detail,
				   address,
				   peer);
	case CURLE_COULDNT_CONNECT:
		return g_error_new(KL_ERROR,
				   KL_ERROR_NETWORK,
				   "%s %s: nothing accepts connections at %s (%s): check that the "
				   "%s runs and listens there (%s)",
				   f->method,
				   f->url,
				   where,
				   detail,
				   peer,
				   address);
	case CURLE_COULDNT_RESOLVE_HOST:
		return g_error_new(KL_ERROR,
				   KL_ERROR_NETWORK,
				   "%s %s: the %s's host name does not resolve (%s): check %s and "
				   "the resolver (DNS, /etc/hosts)",
				   f->method,
				   f->url,
				   peer,
				   detail,
				   address);
	default:
		return g_error_new(KL_ERROR,
				   KL_ERROR_NETWORK,
				   "%s %s: cannot reach the %s (%s); check %s and that it runs",
				   f->method,
				   f->url,
				   peer,
				   detail,
				   address);
	}
}

/* the options that hold for every request of this handle: set once */
static void
kl_http_curl_setup(KlHttp *http)
{
	CURL *curl = http->curl;
	KlHttpTransfer *transfer = &http->transfer;

	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, http->errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kl_http_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, transfer);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, kl_http_header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, transfer);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, kl_http_xferinfo_cb);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, transfer);
	/* used only by requests with a body reader (CURLOPT_POSTFIELDS NULL) */
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, kl_http_read_cb);
	curl_easy_setopt(curl, CURLOPT_READDATA, transfer);
	curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, kl_http_seek_cb);
	curl_easy_setopt(curl, CURLOPT_SEEKDATA, transfer);
	if (http->timeout_ms > 0)
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)http->timeout_ms);
	/* server-only TLS: the CA file is the only trust anchor, never a client cert */
	if (http->ca_file != NULL && http->ca_file[0] != '\0') {
		curl_easy_setopt(curl, CURLOPT_CAINFO, http->ca_file);
		curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, http->accept_invalid_certs ? 0L : 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, http->accept_invalid_hostnames ? 0L : 2L);
	http->curl_ready = TRUE;
}

/* the characters of a plain path: letters, digits and "/-._~!$&'()*+,;=:@" */
static const guint8 kl_http_path_chars[256] = {
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['/'] = 1, ['-'] = 1, ['.'] = 1,
	['_'] = 1,	   ['~'] = 1,	      ['!'] = 1,	 ['$'] = 1, ['&'] = 1, ['\''] = 1,
	['('] = 1,	   [')'] = 1,	      ['*'] = 1,	 ['+'] = 1, [','] = 1, [';'] = 1,
	['='] = 1,	   [':'] = 1,	      ['@'] = 1,
};

/*
 * A path libcurl's URL parser keeps as it is: no dot segments, no percent
 * escapes, no query or fragment, nothing to encode
 */
static gboolean
kl_http_plain_path(const gchar *path)
{
	if (path[0] != '/' || strstr(path, "/.") != NULL)
		return FALSE;
	for (const gchar *p = path; *p != '\0'; p++)
		if (!kl_http_path_chars[(guchar)*p])
			return FALSE;
	return TRUE;
}

/*
 * The URL of the request. libcurl parses a URL set with CURLOPT_URL at every
 * request and prints it back; requests go to one peer, so its scheme and
 * authority are parsed once (CURLOPT_CURLU) and only a plain path is set per
 * request. Anything else is left to libcurl's parser, as before.
 */
static void
kl_http_curl_set_url(KlHttp *http, const gchar *url)
{
	const gchar *sep = strstr(url, "://");
	CURLU *uh = NULL;

	/* the URL text libcurl reports and uses in its messages */
	curl_easy_setopt(http->curl, CURLOPT_URL, url);
	if (sep != NULL) {
		gsize n = strcspn(sep + 3, "/?#") + (gsize)(sep + 3 - url);
		const gchar *path = url + n;

		if (kl_http_plain_path(path)) {
			if (http->url_base_text == NULL || strlen(http->url_base_text) != n ||
			    strncmp(http->url_base_text, url, n) != 0) {
				g_clear_pointer(&http->url_base_text, g_free);
				if (http->url_base == NULL)
					http->url_base = curl_url();
				/* as libcurl parses CURLOPT_URL (the path is plain: no query) */
				if (http->url_base != NULL &&
				    curl_url_set(http->url_base,
						 CURLUPART_URL,
						 url,
						 CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
					CURLUE_OK)
					http->url_base_text = g_strndup(url, n);
			}
			if (http->url_base_text != NULL &&
			    curl_url_set(http->url_base, CURLUPART_PATH, path, 0) == CURLUE_OK)
				uh = http->url_base;
		}
	}
	curl_easy_setopt(http->curl, CURLOPT_CURLU, uh);
}

/* the proxy of the environment for the URL's scheme (read once, see kl_http_new) */
static void
kl_http_curl_set_proxy(KlHttp *http, const gchar *url)
{
	/* stops at the first byte that differs: never reads past the end of @url */
	gint scheme = kl_http_ascii_caseeq(url, "https://", 8)	? 1
		      : kl_http_ascii_caseeq(url, "http://", 7) ? 0
								: -1;

	if (scheme == http->proxy_scheme)
		return;
	http->proxy_scheme = scheme;
	/* NULL: libcurl reads the environment itself */
	curl_easy_setopt(http->curl, CURLOPT_PROXY, scheme >= 0 ? http->proxy[scheme] : NULL);
	curl_easy_setopt(http->curl, CURLOPT_NOPROXY, scheme >= 0 ? http->no_proxy : NULL);
}

static void
kl_http_transfer_clear(KlHttpTransfer *transfer)
{
	if (transfer->body != NULL)
		g_byte_array_unref(transfer->body);
	g_free(transfer->content_type);
	g_free(transfer->location);
	g_free(transfer->retry_after);
	memset(transfer, 0, sizeof *transfer);
}

static KlHttpResponse *
kl_http_curl_send(KlHttp *http,
		  const gchar *method,
		  const gchar *url,
		  const gchar *const *headers,
		  guint n_headers,
		  const gchar *body,
		  gsize body_len,
		  const KlHttpBodyReader *reader,
		  gboolean tail_only,
		  guint extra_timeout_ms,
		  GCancellable *cancellable,
		  GError **error)
{
	CURL *curl = http->curl;
	guint wait_ms = MAX(http->wait_ms, http->timeout_ms);
	guint timeout_ms = http->timeout_ms > 0 ? wait_ms + extra_timeout_ms : 0;
	gint64 started = g_get_monotonic_time();
	/* the header lines, linked in place (libcurl only reads the list) */
	struct curl_slist nodes[KL_HTTP_MAX_REQUEST_HEADERS + 1];
	struct curl_slist *list = NULL;
	const char *errbuf = http->errbuf;
	KlHttpTransfer *t = &http->transfer;
	g_autoptr(KlHttpResponse) response = NULL;
	CURLcode rc;
	long status = 0;

	/* the handle keeps its options and its connection (keep-alive) */
	if (!http->curl_ready)
		kl_http_curl_setup(http);
	kl_http_transfer_clear(t);
	http->errbuf[0] = '\0';
	t->body =
	    http->spare_body != NULL ? g_steal_pointer(&http->spare_body) : g_byte_array_new();
	t->cancellable = cancellable;
	t->tail_only = tail_only;
	t->reader = reader;

	g_assert(n_headers <= KL_HTTP_MAX_REQUEST_HEADERS);
	for (guint i = 0; i < n_headers; i++)
		nodes[i] = (struct curl_slist){ (char *)headers[i], &nodes[i + 1] };
	/* no "Expect: 100-continue" before a large body: one round trip less */
	nodes[n_headers] = (struct curl_slist){ (char *)"Expect:", NULL };
	list = nodes;

	kl_http_curl_set_url(http, url);
	kl_http_curl_set_proxy(http, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(curl,
			 CURLOPT_MAXFILESIZE_LARGE,
			 tail_only ? (curl_off_t)0 : (curl_off_t)KL_HTTP_MAX_BODY);
	if (timeout_ms > 0 && tail_only) {
		/* the wait applies to the start of the answer and to pauses in it */
		t->started_us = started;
		t->answer_us = (gint64)timeout_ms * 1000;
		t->stall_us = t->answer_us;
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)KL_HTTP_TAIL_MAX_MS);
	} else {
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	}

	if (g_strcmp0(method, "GET") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
	} else if (reader != NULL) {
		/* read while it is sent, with a Content-Length (no chunked upload) */
		if (reader->seek != NULL)
			reader->seek(reader->data, 0);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(
		    curl, CURLOPT_CUSTOMREQUEST, g_strcmp0(method, "POST") != 0 ? method : NULL);
	} else {
		/* not copied by libcurl: the body is built once by the caller */
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(
		    curl, CURLOPT_CUSTOMREQUEST, g_strcmp0(method, "POST") != 0 ? method : NULL);
	}

	rc = curl_easy_perform(curl);
	/* nothing of this request stays with the handle */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
	t->reader = NULL;
	t->cancellable = NULL;
	if (rc != CURLE_OK) {
		const gchar *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
		gboolean too_large = t->too_large;

		if (g_cancellable_set_error_if_cancelled(cancellable, error)) {
			kl_http_transfer_clear(t);
			return NULL;
		}
		if (t->stalled) {
			rc = CURLE_OPERATION_TIMEDOUT;
			detail = t->received == 0 ? "no answer" : "the answer stalled";
		}
		if (too_large || rc == CURLE_FILESIZE_EXCEEDED) {
			kl_http_transfer_clear(t);
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s %s: the %s's answer is too large (more than %d MiB of "
				    "body or %d KiB of headers); not read. Check that the URL "
				    "points to the %s",
				    method,
				    url,
				    http->name,
				    KL_HTTP_MAX_BODY_MIB,
				    KL_HTTP_MAX_HEADERS / 1024,
				    http->name);
			return NULL;
		}
		{
			KlHttpFailure failure = {
				.peer = http->name,
				.method = method,
				.url = url,
				.ca_file = http->ca_file,
				.ca_option = http->ca_option,
				.address_option = http->address_option,
				.curl_code = (gint)rc,
				.detail = detail,
				.timeout_ms = timeout_ms,
			};
			g_autofree gchar *ca_problem = NULL;
			curl_off_t pretransfer = 0;
			long verify = 0;

			if (curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) ==
			    CURLE_OK)
				failure.request_sent = pretransfer > 0;
			http->closed_by_peer = failure.request_sent &&
					       (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
						rc == CURLE_GOT_NOTHING);
			if (curl_easy_getinfo(curl, CURLINFO_SSL_VERIFYRESULT, &verify) ==
				CURLE_OK &&
			    verify > 0)
				failure.tls_verify_status = (guint)verify;
			if (rc == CURLE_SSL_CACERT_BADFILE ||
			    rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_ISSUER_ERROR)
				ca_problem = kl_http_ca_file_problem(http->ca_file);
			failure.ca_problem = ca_problem;
			if (rc == CURLE_OPERATION_TIMEDOUT && failure.request_sent &&
			    http->timeout_ms > 0) {
				/* taken but not answered: wait longer at the next attempt */
				http->wait_ms =
				    (guint)MIN((guint64)wait_ms * 2, kl_http_wait_max(http));
			}
			failure.next_wait_ms = MAX(http->wait_ms, http->timeout_ms);
			g_propagate_error(error, kl_http_failure_to_error(&failure));
		}
		kl_http_transfer_clear(t);
		return NULL;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	kl_http_wait_answered(
	    http, method, url, (guint64)(g_get_monotonic_time() - started) / 1000);

	response = g_new0(KlHttpResponse, 1);
	response->status = (guint)status;
	response->retry_after_s = -1;
	response->content_type = g_steal_pointer(&t->content_type);
	response->location = g_steal_pointer(&t->location);
	if (t->retry_after != NULL)
		response->retry_after_s =
		    kl_http_parse_retry_after(t->retry_after, g_get_real_time() / G_USEC_PER_SEC);
	{
		gsize size = 0;
		guint8 nul = 0;
		guint8 *data;

		/* NUL-terminated outside the GBytes size, for kl_http_response_get_body() */
		g_byte_array_append(t->body, &nul, 1);
		data = g_byte_array_steal(t->body, &size);
		response->body = g_bytes_new_take(data, size - 1);
		/* empty now: the next request appends to it */
		http->spare_body = g_steal_pointer(&t->body);
	}
	response->truncated = t->truncated;
	response->body_total = t->total;
	kl_http_transfer_clear(t);
	return g_steal_pointer(&response);
}

/*
 * kl_http_url_origin() of @url, from the last answer when @url has the same
 * "scheme://authority" prefix (requests go to one peer); under http->mutex
 */
static const gchar *
kl_http_origin_of(KlHttp *http, const gchar *url)
{
	const gchar *sep = strstr(url, "://");
	gsize n;

	if (sep == NULL)
		return NULL;
	n = strcspn(sep + 3, "/?#") + (gsize)(sep + 3 - url);
	if (http->origin_prefix != NULL && strlen(http->origin_prefix) == n &&
	    strncmp(http->origin_prefix, url, n) == 0)
		return http->origin;
	g_free(http->origin_prefix);
	g_free(http->origin);
	http->origin_prefix = g_strndup(url, n);
	http->origin = kl_http_url_origin(url);
	return http->origin;
}

/*
 * KL_HTTP_REQUEST_ID_LEN hex digits (48 random bits) to @out, NUL-terminated:
 * enough to find one request in the peer's log (the peer keeps only \w
 * characters, at most 36), short because libcurl formats every header byte
 */
static void
kl_http_request_id(gchar *out)
{
	static const gchar hex[] = "0123456789abcdef";
	guint64 r = ((guint64)g_random_int() << 32) | g_random_int();

	for (guint i = 0; i < KL_HTTP_REQUEST_ID_LEN; i++) {
		out[i] = hex[r & 0xf];
		r >>= 4;
	}
	out[KL_HTTP_REQUEST_ID_LEN] = '\0';
}

KlHttpResponse *
kl_http_send(KlHttp *http, const KlHttpRequest *request, GCancellable *cancellable, GError **error)
{
	/* the header lines: the request id is new, the others are built once and kept */
	gchar id_line[sizeof KL_HTTP_REQUEST_ID_PREFIX + KL_HTTP_REQUEST_ID_LEN];
	const gchar *headers[KL_HTTP_MAX_REQUEST_HEADERS + 1];
	guint n_headers = 0;
	const gchar *origin;
	KlHttpResponse *response;
	gint64 started = g_get_monotonic_time();
	gboolean debug = kl_log_is_enabled(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);

	g_return_val_if_fail(request->method != NULL && request->url != NULL, NULL);
	http->closed_by_peer = FALSE;

	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return NULL;

	memcpy(id_line, KL_HTTP_REQUEST_ID_PREFIX, sizeof KL_HTTP_REQUEST_ID_PREFIX - 1);
	kl_http_request_id(id_line + sizeof KL_HTTP_REQUEST_ID_PREFIX - 1);
	headers[n_headers++] = id_line;

	g_mutex_lock(&http->mutex);
	headers[n_headers++] = http->accept_line;
	if (request->content_type != NULL) {
		if (http->content_type_line == NULL ||
		    strcmp(http->content_type_line + strlen(KL_HTTP_CONTENT_TYPE_PREFIX),
			   request->content_type) != 0) {
			g_free(http->content_type_line);
			http->content_type_line =
			    g_strconcat(KL_HTTP_CONTENT_TYPE_PREFIX, request->content_type, NULL);
		}
		headers[n_headers++] = http->content_type_line;
	}
	if (request->authorize && http->token != NULL) {
		origin = kl_http_origin_of(http, request->url);
		if (origin != NULL && g_strcmp0(origin, http->token_origin) == 0) {
			headers[n_headers++] = http->auth_line;
			if (debug) {
				g_autofree gchar *fp = kl_http_fingerprint(http->token);
				g_debug(
				    "%s %s: bearer token %s", request->method, request->url, fp);
			}
		} else {
			g_debug("%s %s: not the token's origin, sent without the bearer token",
				request->method,
				request->url);
		}
	}
	headers[n_headers] = NULL;

	if (http->transport != NULL) {
		const gchar *body = request->body;
		gsize body_len = request->body_len;
		g_autofree gchar *whole = NULL;

		/* a test transport gets the body whole */
		if (request->body_reader != NULL) {
			const KlHttpBodyReader *reader = request->body_reader;
			gsize n = 0;

			whole = g_malloc(request->body_len + 1);
			if (reader->seek != NULL)
				reader->seek(reader->data, 0);
			while (n < request->body_len) {
				gsize k =
				    reader->read(reader->data, whole + n, request->body_len - n);

				if (k == 0)
					break;
				n += k;
			}
			whole[n] = '\0';
			body = whole;
			body_len = n;
		}
		response = http->transport(request->method,
					   request->url,
					   headers,
					   body,
					   body_len,
					   http->transport_data,
					   cancellable,
					   error);
	} else {
		response = kl_http_curl_send(http,
					     request->method,
					     request->url,
					     headers,
					     n_headers,
					     request->body,
					     request->body_len,
					     request->body_reader,
					     request->tail_only,
					     request->extra_timeout_ms,
					     cancellable,
					     error);
	}
	g_mutex_unlock(&http->mutex);

	if (response == NULL)
		return NULL;
	if (response->body == NULL)
		response->body = g_bytes_new_take(g_strdup(""), 0);
	if (http->transport != NULL)
		response->body_total = g_bytes_get_size(response->body);
	if (request->tail_only && g_bytes_get_size(response->body) > 2 * KL_HTTP_TAIL_BYTES) {
		/* a test transport answered in one piece: keep what libcurl would keep */
		gsize size = g_bytes_get_size(response->body);
		const guint8 *data = g_bytes_get_data(response->body, NULL);
		guint8 *tail = g_malloc(KL_HTTP_TAIL_BYTES + 1);
		memcpy(tail, data + size - KL_HTTP_TAIL_BYTES, KL_HTTP_TAIL_BYTES);
		tail[KL_HTTP_TAIL_BYTES] = '\0';
		g_bytes_unref(response->body);
		response->body = g_bytes_new_take(tail, KL_HTTP_TAIL_BYTES);
		response->truncated = TRUE;
	}
	g_free(response->request_id);
	response->request_id = g_strdup(id_line + sizeof KL_HTTP_REQUEST_ID_PREFIX - 1);
	if (debug)
		g_debug("%s %s -> %u (%" G_GSIZE_FORMAT " bytes, %" G_GINT64_FORMAT
			" ms, request %s)",
			request->method,
			request->url,
			response->status,
			g_bytes_get_size(response->body),
			(g_get_monotonic_time() - started) / 1000,
			response->request_id);
	return response;
}
