/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * HTTP(S) transport for one peer (registrar or verifier): libcurl with one
 * reused easy handle (keep-alive), server-only TLS against one CA file, a
 * fresh X-Request-ID per request and a bearer token that is attached only to
 * requests for the origin it was issued for. Requests are synchronous and run
 * on the agent's worker thread; a GCancellable aborts a transfer in progress.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct _KlHttp KlHttp;

typedef struct {
	const gchar *name;	       /* peer name for messages: "registrar", "verifier" */
	const gchar *ca_file;	       /* exclusive trust anchor for https; NULL = system store */
	gboolean accept_invalid_certs; /* tls_accept_invalid_certs / --insecure */
	gboolean accept_invalid_hostnames; /* tls_accept_invalid_hostnames */
	guint timeout_ms;		   /* request_timeout; 0 = none */
	/* for the hints in error messages: the options naming the CA file and the address */
	const gchar *ca_option;	     /* (nullable) "verifier_tls_ca_cert" */
	const gchar *address_option; /* (nullable) "verifier_url" */
	/* (nullable) the Accept header's value; NULL: KL_HTTP_ACCEPT_ANY */
	const gchar *accept;
} KlHttpOptions;

/* the answers the agent reads: the registrar's JSON and the verifier's JSON:API */
#define KL_HTTP_ACCEPT_ANY "application/json, application/vnd.api+json"
/* the length of the X-Request-ID sent with every request (hex digits) */
#define KL_HTTP_REQUEST_ID_LEN 12

/* a request body read while it is sent */
typedef struct {
	/* copies the next at most @len bytes of the body to @buf; 0 at the end */
	gsize (*read)(gpointer data, gchar *buf, gsize len);
	/* the next read starts at @offset (to send the body again); FALSE when it cannot */
	gboolean (*seek)(gpointer data, guint64 offset);
	gpointer data;
} KlHttpBodyReader;

typedef struct {
	const gchar *method;	   /* GET, POST, PUT, PATCH */
	const gchar *url;	   /* absolute */
	const gchar *content_type; /* (nullable) */
	const gchar *body;	   /* (nullable) not copied: must live until the call returns */
	gsize body_len;
	/*
	 * (nullable) instead of @body: the @body_len bytes are read while they
	 * are sent, so a large body never has to be in memory whole (a test
	 * transport gets it whole)
	 */
	const KlHttpBodyReader *body_reader;
	gboolean authorize; /* attach the bearer token if the URL has its origin */
	/*
	 * the caller needs only the status and the end of the answer (the
	 * verifier's 202 to the evidence echoes the evidence, `meta` comes last):
	 * an answer of any size is read, only its last KL_HTTP_TAIL_BYTES are
	 * kept and the response says it was truncated
	 */
	gboolean tail_only;
	/* added to request_timeout for this request (a large upload the peer must store) */
	guint extra_timeout_ms;
} KlHttpRequest;

/* what a tail_only request keeps of a long answer */
#define KL_HTTP_TAIL_BYTES (64 * 1024)

typedef struct {
	guint status;
	gchar *content_type;  /* (nullable) */
	gchar *location;      /* (nullable) */
	gint64 retry_after_s; /* seconds; -1 when absent or unparsable */
	GBytes *body;	      /* never NULL (maybe empty); a NUL follows the data */
	gboolean truncated;   /* tail_only: @body is the end of a longer answer */
	guint64 body_total;   /* the answer's full length */
	gchar *request_id;    /* the X-Request-ID that was sent */
} KlHttpResponse;

/* a response whose body is a copy of @body (NUL-terminated); for transports and tests */
KlHttpResponse *
kl_http_response_new(guint status, const gchar *body);
void
kl_http_response_free(KlHttpResponse *response);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlHttpResponse, kl_http_response_free)
/* the body as a NUL-terminated string (transfer none) and its length */
const gchar *
kl_http_response_get_body(KlHttpResponse *response, gsize *len);

/**
 * KlHttpTransportFunc:
 * @method: request method
 * @url: absolute URL
 * @headers: "Name: value" lines, final (including Authorization and X-Request-ID)
 * @body: (nullable): request body, @body_len bytes
 *
 * Replaces libcurl (unit tests). Returns a response or NULL with an error.
 */
typedef KlHttpResponse *(*KlHttpTransportFunc)(const gchar *method,
					       const gchar *url,
					       const gchar *const *headers,
					       const gchar *body,
					       gsize body_len,
					       gpointer user_data,
					       GCancellable *cancellable,
					       GError **error);

KlHttp *
kl_http_new(const KlHttpOptions *options, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void
kl_http_free(KlHttp *http);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlHttp, kl_http_free)

/* use @func instead of libcurl */
void
kl_http_set_transport(KlHttp *http, KlHttpTransportFunc func, gpointer user_data);

/*
 * The bearer token to send on authorized requests to @origin_url's origin
 * (scheme, host, port). NULL @token clears it. The token is never logged.
 */
void
kl_http_set_bearer_token(KlHttp *http, const gchar *origin_url, const gchar *token);
gboolean
kl_http_has_bearer_token(KlHttp *http);

/*
 * Sends a request. Returns a response for every HTTP status, NULL with
 * KL_ERROR_NETWORK (transport/TLS), KL_ERROR_TIMED_OUT or G_IO_ERROR_CANCELLED.
 */
KlHttpResponse *
kl_http_send(KlHttp *http, const KlHttpRequest *request, GCancellable *cancellable, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/*
 * How long the peer may take to answer. It starts at request_timeout; after a
 * request the peer took but did not answer in time it doubles (at most
 * KL_HTTP_WAIT_MAX_FACTOR times request_timeout), so that a peer that is slow
 * for good (a verifier evaluating a large policy) is waited for at the next
 * attempt instead of timed out forever. A slow answer keeps it at least twice
 * that answer's time; KL_HTTP_WAIT_DECAY_ANSWERS quick answers (within
 * request_timeout) in a row halve it, down to request_timeout. The connection
 * timeout stays request_timeout.
 */
#define KL_HTTP_WAIT_MAX_FACTOR	   8
#define KL_HTTP_WAIT_DECAY_ANSWERS 8
guint
kl_http_get_wait_ms(KlHttp *http);

/*
 * TRUE when the last request through libcurl was sent (at least in part) and
 * the peer then cut the connection without an answer (reset, closed, no TLS
 * close_notify): what a peer that refuses a large body before reading it does
 */
gboolean
kl_http_get_closed_by_peer(KlHttp *http);

/* what went wrong with a transfer, for kl_http_failure_to_error() */
typedef struct {
	const gchar *peer;	     /* "verifier" */
	const gchar *method;	     /* "POST" */
	const gchar *url;	     /* the request's URL */
	const gchar *ca_file;	     /* (nullable) NULL: the system store */
	const gchar *ca_option;	     /* (nullable) the option naming the CA file */
	const gchar *ca_problem;     /* (nullable) why the CA file cannot be used, if it cannot */
	const gchar *address_option; /* (nullable) the option naming the peer's address */
	gint curl_code;		     /* CURLcode */
	const gchar *detail;	     /* libcurl's error text */
	guint tls_verify_status;     /* gnutls_certificate_status_t of the peer's certificate */
	gboolean request_sent;	     /* connected (TLS up) and the request went out */
	guint timeout_ms;	     /* how long the answer was waited for */
	guint next_wait_ms;	     /* request_sent timeouts: the wait at the next attempt */
} KlHttpFailure;

/*
 * One message per cause, naming the cause and the fix: a CA that did not
 * issue the peer's certificate, a CA file that cannot be used, a host name
 * the certificate does not name, an expired certificate, a port that does not
 * speak TLS, a connection reset, a refused connection, a host name that does
 * not resolve, no connection in time, a request taken but not answered in
 * time. KL_ERROR_TIMED_OUT for timeouts, KL_ERROR_AUTH for TLS trust,
 * KL_ERROR_NETWORK otherwise.
 */
GError *
kl_http_failure_to_error(const KlHttpFailure *failure);

/*
 * Why the CA file @path cannot be used by this process (cannot be read, holds
 * no PEM certificate), or NULL when it can. (transfer full)
 */
gchar *
kl_http_ca_file_problem(const gchar *path);

/* "scheme://host:port" (lower case, default port filled in), or NULL if @url is not absolute */
gchar *
kl_http_url_origin(const gchar *url);

/*
 * Resolves a Location value against @base_url. Only relative references and
 * absolute URLs with the same origin are accepted (the bearer token must not
 * leave the verifier); anything else is KL_ERROR_INVALID_DATA. (transfer full)
 */
gchar *
kl_http_resolve_location(const gchar *base_url,
			 const gchar *location,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Retry-After: delay-seconds or an HTTP-date (relative to @now_s); -1 if unparsable */
gint64
kl_http_parse_retry_after(const gchar *value, gint64 now_s);

/* a short SHA-256 fingerprint of a secret for debug logs (transfer full) */
gchar *
kl_http_fingerprint(const gchar *secret);

G_END_DECLS
