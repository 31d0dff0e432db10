/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <curl/curl.h>
#include <string.h>

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

struct _KlHttp {
	gchar *name;
	gchar *ca_file;
	gboolean accept_invalid_certs;
	gboolean accept_invalid_hostnames;
	guint timeout_ms;
	CURL *curl;
	GMutex mutex; /* the easy handle is used by one request at a time */
	gchar *token_origin;
	gchar *token;
	gchar *origin_prefix; /* "scheme://authority" of the last URL... */
	gchar *origin;	      /* ...and its origin (kl_http_url_origin()) */
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
	g_free(http->name);
	g_free(http->ca_file);
	g_free(http->token_origin);
	g_free(http->origin_prefix);
	g_free(http->origin);
	if (http->token != NULL) {
		memset(http->token, 0, strlen(http->token));
		g_free(http->token);
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
	if (http->token != NULL) {
		memset(http->token, 0, strlen(http->token));
		g_clear_pointer(&http->token, g_free);
	}
	g_clear_pointer(&http->token_origin, g_free);
	if (token != NULL && origin_url != NULL) {
		http->token_origin = kl_http_url_origin(origin_url);
		if (http->token_origin != NULL)
			http->token = g_strdup(token);
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

typedef struct {
	const KlHttpBodyReader *reader; /* (nullable) the request body */
	GByteArray *body;
	GPtrArray *headers; /* of the last response (after 1xx) */
	gsize header_bytes;
	GCancellable *cancellable;
	gboolean too_large;
	gboolean tail_only; /* keep the last KL_HTTP_TAIL_BYTES of any answer */
	gboolean truncated;
	guint64 total;
} KlHttpTransfer;

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

static size_t
kl_http_header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	KlHttpTransfer *transfer = userdata;
	gsize len = size * nitems;

	transfer->header_bytes += len;
	if (transfer->header_bytes > KL_HTTP_MAX_HEADERS) {
		transfer->too_large = TRUE;
		return 0;
	}
	/* a new status line: headers of an interim (1xx) response are dropped */
	if (len >= 5 && g_ascii_strncasecmp(buffer, "HTTP/", 5) == 0)
		g_ptr_array_set_size(transfer->headers, 0);
	else
		g_ptr_array_add(transfer->headers, g_strstrip(g_strndup(buffer, len)));
	return len;
}

static int
kl_http_xferinfo_cb(
    void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	KlHttpTransfer *transfer = clientp;
	return g_cancellable_is_cancelled(transfer->cancellable) ? 1 : 0;
}

static const gchar *
kl_http_find_header(GPtrArray *headers, const gchar *name)
{
	gsize name_len = strlen(name);

	for (guint i = 0; i < headers->len; i++) {
		const gchar *line = g_ptr_array_index(headers, i);
		if (g_ascii_strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
			const gchar *value = line + name_len + 1;
			while (*value == ' ' || *value == '\t')
				value++;
			return value;
		}
	}
	return NULL;
}

static KlHttpResponse *
kl_http_curl_send(KlHttp *http,
		  const gchar *method,
		  const gchar *url,
		  GPtrArray *headers,
		  const gchar *body,
		  gsize body_len,
		  const KlHttpBodyReader *reader,
		  gboolean tail_only,
		  guint extra_timeout_ms,
		  GCancellable *cancellable,
		  GError **error)
{
	CURL *curl = http->curl;
	guint timeout_ms = http->timeout_ms > 0 ? http->timeout_ms + extra_timeout_ms : 0;
	struct curl_slist *list = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	KlHttpTransfer transfer = { 0 };
	g_autoptr(KlHttpResponse) response = NULL;
	CURLcode rc;
	long status = 0;
	const gchar *value;

	curl_easy_reset(curl); /* keeps the connection cache (keep-alive) */
	transfer.body = g_byte_array_new();
	transfer.headers = g_ptr_array_new_with_free_func(g_free);
	transfer.cancellable = cancellable;
	transfer.tail_only = tail_only;
	transfer.reader = reader;

	for (guint i = 0; i < headers->len; i++)
		list = curl_slist_append(list, g_ptr_array_index(headers, i));
	list = curl_slist_append(list, "Expect:");

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kl_http_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, kl_http_header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, kl_http_xferinfo_cb);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
	if (!tail_only)
		curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)KL_HTTP_MAX_BODY);
	if (timeout_ms > 0) {
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)http->timeout_ms);
	}
	/* server-only TLS: the CA file is the only trust anchor, never a client cert */
	if (http->ca_file != NULL && http->ca_file[0] != '\0') {
		curl_easy_setopt(curl, CURLOPT_CAINFO, http->ca_file);
		curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, http->accept_invalid_certs ? 0L : 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, http->accept_invalid_hostnames ? 0L : 2L);

	if (g_strcmp0(method, "GET") == 0) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	} else if (reader != NULL) {
		/* read while it is sent, with a Content-Length (no chunked upload) */
		if (reader->seek != NULL)
			reader->seek(reader->data, 0);
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, kl_http_read_cb);
		curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
		curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, kl_http_seek_cb);
		curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		if (g_strcmp0(method, "POST") != 0)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	} else {
		/* not copied by libcurl: the body is built once by the caller */
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		if (g_strcmp0(method, "POST") != 0)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	}

	rc = curl_easy_perform(curl);
	curl_slist_free_all(list);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	if (rc != CURLE_OK) {
		const gchar *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
		g_byte_array_unref(transfer.body);
		g_ptr_array_unref(transfer.headers);
		if (g_cancellable_set_error_if_cancelled(cancellable, error))
			return NULL;
		if (transfer.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
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
		switch (rc) {
		case CURLE_OPERATION_TIMEDOUT:
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TIMED_OUT,
				    "%s %s: no answer from the %s within %u ms (%s); check that it "
				    "runs and is reachable, or raise request_timeout",
				    method,
				    url,
				    http->name,
				    timeout_ms,
				    detail);
			break;
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_ISSUER_ERROR:
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_AUTH,
				    "%s %s: TLS with the %s failed (%s); check that the CA file %s "
				    "issued the %s's certificate and that the host name matches it",
				    method,
				    url,
				    http->name,
				    detail,
				    http->ca_file != NULL ? http->ca_file : "(system store)",
				    http->name);
			break;
		default:
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_NETWORK,
			    "%s %s: cannot reach the %s (%s); check its address, port and that "
			    "it runs",
			    method,
			    url,
			    http->name,
			    detail);
			break;
		}
		return NULL;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

	response = g_new0(KlHttpResponse, 1);
	response->status = (guint)status;
	response->retry_after_s = -1;
	value = kl_http_find_header(transfer.headers, "Content-Type");
	response->content_type = g_strdup(value);
	value = kl_http_find_header(transfer.headers, "Location");
	response->location = g_strdup(value);
	value = kl_http_find_header(transfer.headers, "Retry-After");
	if (value != NULL)
		response->retry_after_s =
		    kl_http_parse_retry_after(value, g_get_real_time() / G_USEC_PER_SEC);
	g_ptr_array_unref(transfer.headers);
	{
		gsize size = 0;
		guint8 nul = 0;
		guint8 *data;

		/* NUL-terminated outside the GBytes size, for kl_http_response_get_body() */
		g_byte_array_append(transfer.body, &nul, 1);
		data = g_byte_array_steal(transfer.body, &size);
		g_byte_array_unref(transfer.body);
		response->body = g_bytes_new_take(data, size - 1);
	}
	response->truncated = transfer.truncated;
	response->body_total = transfer.total;
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

/* 32 hex digits: the server keeps only \w characters, at most 36 */
static gchar *
kl_http_request_id(void)
{
	static const gchar hex[] = "0123456789abcdef";
	gchar *id = g_malloc(33);

	for (guint i = 0; i < 4; i++) {
		guint32 r = g_random_int();

		for (guint j = 0; j < 8; j++) {
			id[i * 8 + j] = hex[r & 0xf];
			r >>= 4;
		}
	}
	id[32] = '\0';
	return id;
}

KlHttpResponse *
kl_http_send(KlHttp *http, const KlHttpRequest *request, GCancellable *cancellable, GError **error)
{
	g_autoptr(GPtrArray) headers = g_ptr_array_new_with_free_func(g_free);
	g_autofree gchar *request_id = NULL;
	const gchar *origin;
	KlHttpResponse *response;
	gint64 started = g_get_monotonic_time();
	gboolean with_token = FALSE;
	gboolean debug = kl_log_is_enabled(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);

	g_return_val_if_fail(request->method != NULL && request->url != NULL, NULL);

	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return NULL;

	request_id = kl_http_request_id();
	g_ptr_array_add(headers, g_strconcat("X-Request-ID: ", request_id, NULL));
	g_ptr_array_add(headers, g_strdup("Accept: application/json, application/vnd.api+json"));
	if (request->content_type != NULL)
		g_ptr_array_add(headers,
				g_strconcat("Content-Type: ", request->content_type, NULL));

	g_mutex_lock(&http->mutex);
	if (request->authorize && http->token != NULL) {
		origin = kl_http_origin_of(http, request->url);
		if (origin != NULL && g_strcmp0(origin, http->token_origin) == 0) {
			g_ptr_array_add(headers,
					g_strconcat("Authorization: Bearer ", http->token, NULL));
			with_token = TRUE;
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
	g_ptr_array_add(headers, NULL);

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
					   (const gchar *const *)headers->pdata,
					   body,
					   body_len,
					   http->transport_data,
					   cancellable,
					   error);
	} else {
		g_ptr_array_set_size(headers, headers->len - 1);
		response = kl_http_curl_send(http,
					     request->method,
					     request->url,
					     headers,
					     request->body,
					     request->body_len,
					     request->body_reader,
					     request->tail_only,
					     request->extra_timeout_ms,
					     cancellable,
					     error);
	}
	/* wipe the header that carried the token */
	if (with_token) {
		for (guint i = 0; i < headers->len; i++) {
			gchar *line = g_ptr_array_index(headers, i);
			if (line != NULL && g_str_has_prefix(line, "Authorization:"))
				memset(line, 0, strlen(line));
		}
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
	response->request_id = g_steal_pointer(&request_id);
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
