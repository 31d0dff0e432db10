/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent's state snapshot, the status file, the metrics file and the
 * one-line summary (see kl-status.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-json-doc.h"
#include "kl-status.h"
#include "kl-string-put.h"

typedef struct {
	KlStatusListener func;
	gpointer data;
} KlStatusListenerEntry;

typedef struct {
	gchar *path;
	gchar *tmp;	   /* "<path>.tmp-XXXXXX": g_mkstemp_full() fills in the Xs */
	const gchar *what; /* "status file", "metrics file" */
	gboolean failing;  /* the last write failed (warned once) */
} KlStatusOutput;

struct _KlStatus {
	KlStatusSnapshot snap;
	KlStatusOutput status_file;
	KlStatusOutput metrics_file;
	KlStatusClockFunc clock;
	gpointer clock_data;
	GArray *listeners; /* KlStatusListenerEntry */
	gint64 configured_interval_s;
	GString *json; /* the status file's text, its buffer kept between writes */
	GString *line; /* the summary line of the status file, its buffer kept */
	/*
	 * The parts of the status file that change only with rare events, kept
	 * rendered: the text from "{" to "pid" (fixed at kl_status_new()), the
	 * "registered", "enrolled" and "evidence_types" members (kept with the
	 * values they show), the "last_error" member (kept with failure_gen).
	 */
	GString *json_head;
	GString *json_middle;
	gboolean middle_registered;
	gint middle_enrolled;
	guint64 middle_types_gen;
	GString *json_error;
	guint64 error_gen;
	guint64 types_gen;   /* bumped when evidence_types changes */
	guint64 failure_gen; /* bumped by every kl_status_failure() */
};

/* ---- names ---- */

static const gchar *const kl_status_state_names[] = {
	[KL_STATUS_STATE_STARTING] = "starting",
	[KL_STATUS_STATE_REGISTERING] = "registering",
	[KL_STATUS_STATE_WAITING_FOR_ENROLLMENT] = "waiting_for_enrollment",
	[KL_STATUS_STATE_ATTESTING] = "attesting",
	[KL_STATUS_STATE_RETRYING] = "retrying",
	[KL_STATUS_STATE_STOPPED] = "stopped",
};

static const gchar *const kl_status_stage_names[] = {
	[KL_STATUS_STAGE_REGISTRATION] = "registration",
	[KL_STATUS_STAGE_ATTESTATION] = "attestation",
};

static const gchar *const kl_status_cause_names[] = {
	[KL_STATUS_CAUSE_UNREACHABLE] = "unreachable",
	[KL_STATUS_CAUSE_RATE_LIMITED] = "rate_limited",
	[KL_STATUS_CAUSE_SERVER_ERROR] = "server_error",
	[KL_STATUS_CAUSE_UNAUTHORIZED] = "unauthorized",
	[KL_STATUS_CAUSE_NOT_ENROLLED] = "not_enrolled",
	[KL_STATUS_CAUSE_REJECTED] = "rejected",
	[KL_STATUS_CAUSE_BAD_RESPONSE] = "bad_response",
	[KL_STATUS_CAUSE_EVIDENCE] = "evidence",
	[KL_STATUS_CAUSE_OTHER] = "other",
};

const gchar *
kl_status_state_to_string(KlStatusState state)
{
	if ((guint)state >= G_N_ELEMENTS(kl_status_state_names))
		return "unknown";
	return kl_status_state_names[state];
}

const gchar *
kl_status_stage_to_string(KlStatusStage stage)
{
	if ((guint)stage >= G_N_ELEMENTS(kl_status_stage_names))
		return "unknown";
	return kl_status_stage_names[stage];
}

const gchar *
kl_status_cause_to_string(KlStatusCause cause)
{
	if ((guint)cause >= G_N_ELEMENTS(kl_status_cause_names))
		return "other";
	return kl_status_cause_names[cause];
}

/* the first "HTTP NNN" in @message, or 0 */
static guint
kl_status_http_status(const gchar *message)
{
	const gchar *p = message;

	while (p != NULL && (p = strstr(p, "HTTP ")) != NULL) {
		p += 5;
		if (g_ascii_isdigit(p[0]) && g_ascii_isdigit(p[1]) && g_ascii_isdigit(p[2]) &&
		    !g_ascii_isdigit(p[3]))
			return (guint)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
	}
	return 0;
}

KlStatusCause
kl_status_classify(const GError *error, gboolean not_enrolled)
{
	guint http;

	if (not_enrolled)
		return KL_STATUS_CAUSE_NOT_ENROLLED;
	if (error == NULL || error->domain != KL_ERROR)
		return KL_STATUS_CAUSE_OTHER;
	switch (error->code) {
	case KL_ERROR_NETWORK:
	case KL_ERROR_TIMED_OUT:
		return KL_STATUS_CAUSE_UNREACHABLE;
	case KL_ERROR_AUTH:
		return KL_STATUS_CAUSE_UNAUTHORIZED;
	case KL_ERROR_INVALID_DATA:
		return KL_STATUS_CAUSE_BAD_RESPONSE;
	case KL_ERROR_TPM:
	case KL_ERROR_NOT_SUPPORTED:
	case KL_ERROR_INVALID_PARAMETERS:
		return KL_STATUS_CAUSE_EVIDENCE;
	case KL_ERROR_NOT_FOUND:
		return KL_STATUS_CAUSE_REJECTED;
	case KL_ERROR_HTTP:
		http = kl_status_http_status(error->message);
		if (http == 429)
			return KL_STATUS_CAUSE_RATE_LIMITED;
		if (http == 401 || http == 403)
			return KL_STATUS_CAUSE_UNAUTHORIZED;
		if (http >= 500 && http <= 599)
			return KL_STATUS_CAUSE_SERVER_ERROR;
		return KL_STATUS_CAUSE_REJECTED;
	default:
		return KL_STATUS_CAUSE_OTHER;
	}
}

gboolean
kl_status_cause_is_outage(KlStatusCause cause)
{
	return cause == KL_STATUS_CAUSE_UNREACHABLE || cause == KL_STATUS_CAUSE_SERVER_ERROR ||
	       cause == KL_STATUS_CAUSE_RATE_LIMITED;
}

/* ---- the snapshot ---- */

static gint64
kl_status_now_us(KlStatus *status)
{
	return status->clock != NULL ? status->clock(status->clock_data) : g_get_real_time();
}

KlStatus *
kl_status_new(const gchar *agent_id, const gchar *version)
{
	KlStatus *status = g_new0(KlStatus, 1);

	status->snap.agent_id = g_strdup(agent_id != NULL ? agent_id : "");
	status->snap.version = g_strdup(version != NULL ? version : PACKAGE_VERSION);
	status->snap.pid = (gint64)getpid();
	status->snap.started = g_get_real_time() / G_USEC_PER_SEC;
	status->snap.state = KL_STATUS_STATE_STARTING;
	status->snap.enrolled = -1;
	status->snap.evidence_types = g_new0(gchar *, 1);
	status->status_file.what = "status file";
	status->metrics_file.what = "metrics file";
	status->listeners = g_array_new(FALSE, FALSE, sizeof(KlStatusListenerEntry));
	return status;
}

static void
kl_status_string_free(GString *str)
{
	if (str != NULL)
		g_string_free(str, TRUE);
}

void
kl_status_free(KlStatus *status)
{
	if (status == NULL)
		return;
	g_free(status->snap.agent_id);
	g_free(status->snap.version);
	g_strfreev(status->snap.evidence_types);
	g_free(status->snap.last_summary);
	g_free(status->snap.last_error_message);
	g_free(status->status_file.path);
	g_free(status->status_file.tmp);
	g_free(status->metrics_file.path);
	g_free(status->metrics_file.tmp);
	g_array_unref(status->listeners);
	kl_status_string_free(status->json);
	kl_status_string_free(status->line);
	kl_status_string_free(status->json_head);
	kl_status_string_free(status->json_middle);
	kl_status_string_free(status->json_error);
	g_free(status);
}

static void
kl_status_output_set_path(KlStatusOutput *out, const gchar *path)
{
	g_free(out->path);
	g_free(out->tmp);
	out->path = path != NULL && path[0] != '\0' ? g_strdup(path) : NULL;
	out->tmp = out->path != NULL ? g_strconcat(out->path, ".tmp-XXXXXX", NULL) : NULL;
	out->failing = FALSE;
}

void
kl_status_set_files(KlStatus *status, const gchar *status_file, const gchar *metrics_file)
{
	kl_status_output_set_path(&status->status_file, status_file);
	kl_status_output_set_path(&status->metrics_file, metrics_file);
}

void
kl_status_set_clock(KlStatus *status, KlStatusClockFunc func, gpointer user_data)
{
	status->clock = func;
	status->clock_data = user_data;
	status->snap.started = kl_status_now_us(status) / G_USEC_PER_SEC;
}

void
kl_status_add_listener(KlStatus *status, KlStatusListener func, gpointer user_data)
{
	KlStatusListenerEntry entry = { func, user_data };

	g_array_append_val(status->listeners, entry);
}

void
kl_status_remove_listener(KlStatus *status, KlStatusListener func, gpointer user_data)
{
	if (status == NULL)
		return;
	for (guint i = status->listeners->len; i > 0; i--) {
		KlStatusListenerEntry *entry =
		    &g_array_index(status->listeners, KlStatusListenerEntry, i - 1);
		if (entry->func == func && entry->data == user_data)
			g_array_remove_index(status->listeners, i - 1);
	}
}

void
kl_status_set_interval(KlStatus *status, gint64 interval_s)
{
	if (status == NULL)
		return;
	status->configured_interval_s = MAX(interval_s, 1);
	if (status->snap.interval_s <= 0)
		status->snap.interval_s = status->configured_interval_s;
}

const KlStatusSnapshot *
kl_status_get_snapshot(KlStatus *status)
{
	return &status->snap;
}

/* the time after which --status no longer calls the agent on schedule, 0 = not attesting */
static gint64
kl_status_deadline(KlStatus *status)
{
	const KlStatusSnapshot *s = &status->snap;

	if (s->last_success == 0 || s->state == KL_STATUS_STATE_STOPPED ||
	    s->state == KL_STATUS_STATE_WAITING_FOR_ENROLLMENT)
		return 0;
	return s->last_success + KL_STATUS_ON_SCHEDULE_INTERVALS * MAX(s->interval_s, 1) +
	       KL_STATUS_GRACE_S;
}

/* ---- atomic file writing ---- */

/* @out->tmp is the template, "<path>.tmp-XXXXXX", made again for every write */
static gboolean
kl_status_write_atomic(KlStatusOutput *out, const gchar *contents, GError **error)
{
	const gchar *path = out->path;
	gchar *tmp = out->tmp;
	gsize len = strlen(contents);
	gsize done = 0;
	int saved;
	int fd;

	memcpy(tmp + strlen(tmp) - 6, "XXXXXX", 6);
	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		saved = errno;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot create a file next to %s: %s",
			    path,
			    g_strerror(saved));
		return FALSE;
	}
	while (done < len) {
		ssize_t n = write(fd, contents + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : ENOSPC;
			close(fd);
			g_unlink(tmp);
			g_set_error(
			    error, KL_ERROR, KL_ERROR_IO, "writing %s: %s", tmp, g_strerror(saved));
			return FALSE;
		}
		done += (gsize)n;
	}
	/* readable by the probe and by node_exporter, whatever the umask */
	if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
		saved = errno;
		g_unlink(tmp);
		g_set_error(error, KL_ERROR, KL_ERROR_IO, "writing %s: %s", tmp, g_strerror(saved));
		return FALSE;
	}
	if (g_rename(tmp, path) != 0) {
		saved = errno;
		g_unlink(tmp);
		g_set_error(
		    error, KL_ERROR, KL_ERROR_IO, "cannot replace %s: %s", path, g_strerror(saved));
		return FALSE;
	}
	return TRUE;
}

static void
kl_status_output(KlStatusOutput *out, const gchar *contents)
{
	g_autoptr(GError) error = NULL;

	if (out->path == NULL)
		return;
	if (!kl_status_write_atomic(out, contents, &error)) {
		if (!out->failing)
			g_warning("%s; the %s is not updated until this is fixed (the agent "
				  "goes on attesting): check that the directory exists and is "
				  "writable by the agent's user",
				  error->message,
				  out->what);
		else
			g_debug("%s", error->message);
		out->failing = TRUE;
		return;
	}
	if (out->failing)
		g_message("the %s %s is written again", out->what, out->path);
	out->failing = FALSE;
}

static void
kl_status_json_build(KlStatus *status, GString *out);

void
kl_status_write(KlStatus *status)
{
	if (status == NULL)
		return;
	if (status->status_file.path != NULL) {
		if (status->json == NULL)
			status->json = g_string_sized_new(1024);
		g_string_truncate(status->json, 0);
		kl_status_json_build(status, status->json);
		kl_status_output(&status->status_file, status->json->str);
	}
	if (status->metrics_file.path != NULL) {
		g_autofree gchar *metrics = kl_status_to_metrics(status);
		kl_status_output(&status->metrics_file, metrics);
	}
}

static void
kl_status_commit(KlStatus *status)
{
	status->snap.updated = kl_status_now_us(status) / G_USEC_PER_SEC;
	kl_status_write(status);
	for (guint i = 0; i < status->listeners->len; i++) {
		KlStatusListenerEntry *entry =
		    &g_array_index(status->listeners, KlStatusListenerEntry, i);
		entry->func(status, entry->data);
	}
}

/* ---- events ---- */

void
kl_status_starting(KlStatus *status, gint64 first_contact_us)
{
	if (status == NULL)
		return;
	status->snap.state = KL_STATUS_STATE_STARTING;
	status->snap.next_contact = first_contact_us / G_USEC_PER_SEC;
	kl_status_commit(status);
}

void
kl_status_registered(KlStatus *status)
{
	if (status == NULL)
		return;
	status->snap.registered = TRUE;
	status->snap.consecutive_failures = 0;
	status->snap.retry_delay_ms = 0;
	if (status->snap.state == KL_STATUS_STATE_STARTING ||
	    status->snap.state == KL_STATUS_STATE_REGISTERING)
		status->snap.state = status->snap.last_success != 0 ? KL_STATUS_STATE_ATTESTING
								    : KL_STATUS_STATE_REGISTERING;
	kl_status_commit(status);
}

void
kl_status_set_evidence_types(KlStatus *status, const gchar *const *types)
{
	if (status == NULL || types == NULL)
		return;
	if (g_strv_equal((const gchar *const *)status->snap.evidence_types, types))
		return;
	g_strfreev(status->snap.evidence_types);
	status->snap.evidence_types = g_strdupv((gchar **)types);
	status->types_gen++;
}

void
kl_status_session_created(KlStatus *status)
{
	if (status == NULL)
		return;
	status->snap.sessions++;
	status->snap.enrolled = 1;
}

void
kl_status_attestation_accepted(KlStatus *status, const KlStatusCycle *cycle)
{
	KlStatusSnapshot *s;

	if (status == NULL)
		return;
	s = &status->snap;
	s->state = KL_STATUS_STATE_ATTESTING;
	s->registered = TRUE;
	s->enrolled = 1;
	s->attestations = cycle->number;
	s->last_success = kl_status_now_us(status) / G_USEC_PER_SEC;
	g_free(s->last_summary);
	s->last_summary = g_strdup(cycle->summary);
	if (cycle->interval_s > 0)
		s->interval_s = cycle->interval_s;
	s->next_contact = cycle->next_us / G_USEC_PER_SEC;
	s->consecutive_failures = 0;
	s->retry_delay_ms = 0;
	s->cycles++;
	s->cycle_seconds_sum += cycle->duration_s;
	s->tpm_seconds_sum += cycle->tpm_s;
	s->last_cycle_seconds = cycle->duration_s;
	s->last_tpm_seconds = cycle->tpm_s;
	s->ima_entries += cycle->ima_entries;
	kl_status_commit(status);
}

void
kl_status_failure(KlStatus *status,
		  KlStatusStage stage,
		  KlStatusCause cause,
		  const gchar *message,
		  guint consecutive,
		  gint64 retry_at_us)
{
	KlStatusSnapshot *s;
	gint64 now_us;

	if (status == NULL)
		return;
	s = &status->snap;
	now_us = kl_status_now_us(status);
	if ((guint)stage >= KL_STATUS_N_STAGES)
		stage = KL_STATUS_STAGE_ATTESTATION;
	if ((guint)cause >= KL_STATUS_N_CAUSES)
		cause = KL_STATUS_CAUSE_OTHER;
	s->failures[stage][cause]++;
	status->failure_gen++;
	s->last_error_time = now_us / G_USEC_PER_SEC;
	s->last_error_stage = stage;
	s->last_error_cause = cause;
	g_free(s->last_error_message);
	s->last_error_message = g_strdup(message != NULL ? message : "");
	s->consecutive_failures = consecutive;
	s->retry_delay_ms = MAX(retry_at_us - now_us, 0) / 1000;
	s->next_contact = retry_at_us / G_USEC_PER_SEC;
	if (cause == KL_STATUS_CAUSE_NOT_ENROLLED) {
		s->enrolled = 0;
		s->state = KL_STATUS_STATE_WAITING_FOR_ENROLLMENT;
	} else if (stage == KL_STATUS_STAGE_REGISTRATION) {
		s->state = KL_STATUS_STATE_REGISTERING;
	} else {
		s->state = KL_STATUS_STATE_RETRYING;
	}
	kl_status_commit(status);
}

void
kl_status_stopped(KlStatus *status)
{
	if (status == NULL)
		return;
	status->snap.state = KL_STATUS_STATE_STOPPED;
	status->snap.next_contact = 0;
	kl_status_commit(status);
}

/* ---- renderings ---- */

/* a string literal */
#define kl_status_put_literal(out, literal) kl_string_put((out), "" literal, sizeof(literal) - 1)

/* "12 s", "5 min", "3 h" */
static void
kl_status_append_span(GString *out, gint64 seconds)
{
	if (seconds < 120) {
		kl_string_put_uint(out, (guint64)MAX(seconds, 0));
		kl_status_put_literal(out, " s");
	} else if (seconds < 7200) {
		kl_string_put_uint(out, (guint64)(seconds / 60));
		kl_status_put_literal(out, " min");
	} else {
		kl_string_put_uint(out, (guint64)(seconds / 3600));
		kl_status_put_literal(out, " h");
	}
}

static gchar *
kl_status_format_span(gint64 seconds)
{
	GString *out = g_string_sized_new(16);

	kl_status_append_span(out, seconds);
	return g_string_free(out, FALSE);
}

static const gchar *
kl_status_cause_phrase(KlStatusCause cause)
{
	switch (cause) {
	case KL_STATUS_CAUSE_UNREACHABLE:
		return "unreachable";
	case KL_STATUS_CAUSE_RATE_LIMITED:
		return "rate-limiting the agent";
	case KL_STATUS_CAUSE_SERVER_ERROR:
		return "failing (server error)";
	case KL_STATUS_CAUSE_UNAUTHORIZED:
		return "refusing the agent's credentials";
	case KL_STATUS_CAUSE_NOT_ENROLLED:
		return "not knowing the agent";
	case KL_STATUS_CAUSE_REJECTED:
		return "rejecting the request";
	case KL_STATUS_CAUSE_BAD_RESPONSE:
		return "answering malformed data";
	default:
		return "failing";
	}
}

/* kl_status_format_line(), appended to @out */
static void
kl_status_append_line(KlStatus *status, GString *out)
{
	const KlStatusSnapshot *s = &status->snap;
	gint64 now = kl_status_now_us(status) / G_USEC_PER_SEC;
	gint64 next = s->next_contact - now;
	const gchar *peer =
	    s->last_error_stage == KL_STATUS_STAGE_REGISTRATION ? "registrar" : "verifier";

	switch (s->state) {
	case KL_STATUS_STATE_STARTING:
		kl_status_put_literal(out, "starting, first contact in ");
		kl_status_append_span(out, next);
		return;
	case KL_STATUS_STATE_REGISTERING:
		if (s->consecutive_failures == 0) {
			kl_status_put_literal(out, "registering");
			return;
		}
		if (s->last_error_cause == KL_STATUS_CAUSE_EVIDENCE ||
		    s->last_error_cause == KL_STATUS_CAUSE_OTHER) {
			kl_status_put_literal(out, "registration failed");
		} else {
			kl_status_put_literal(out, "registrar ");
			g_string_append(out, kl_status_cause_phrase(s->last_error_cause));
		}
		break;
	case KL_STATUS_STATE_WAITING_FOR_ENROLLMENT:
		kl_status_put_literal(out, "waiting for enrollment");
		break;
	case KL_STATUS_STATE_ATTESTING:
		if (s->last_success == 0) {
			kl_status_put_literal(out, "registered, starting attestation");
			return;
		}
		kl_status_put_literal(out, "attestation ");
		kl_string_put_uint(out, s->attestations);
		kl_status_put_literal(out, " submitted ");
		kl_status_append_span(out, now - s->last_success);
		kl_status_put_literal(out, " ago, next in ");
		kl_status_append_span(out, next);
		return;
	case KL_STATUS_STATE_RETRYING:
		if (s->last_error_cause == KL_STATUS_CAUSE_EVIDENCE) {
			kl_status_put_literal(out, "collecting evidence failed");
		} else if (s->last_error_cause == KL_STATUS_CAUSE_OTHER) {
			kl_status_put_literal(out, "attestation failed");
		} else {
			g_string_append(out, peer);
			g_string_append_c(out, ' ');
			g_string_append(out, kl_status_cause_phrase(s->last_error_cause));
		}
		break;
	case KL_STATUS_STATE_STOPPED:
	default:
		kl_status_put_literal(out, "stopped");
		return;
	}
	kl_status_put_literal(out, ", retry in ");
	kl_status_append_span(out, next);
}

gchar *
kl_status_format_line(KlStatus *status)
{
	GString *out = g_string_sized_new(64);

	kl_status_append_line(status, out);
	return g_string_free(out, FALSE);
}

/*
 * The status file, written directly (it is written after every attestation):
 * the text of json-glib's pretty generator (two-space indent, "name" : value)
 */
typedef struct {
	GString *out;
	guint level;
	gboolean first[8]; /* nothing written yet at that level */
} KlStatusJson;

static inline void
kl_status_json_put(KlStatusJson *w, const gchar *text, gsize len)
{
	kl_string_put(w->out, text, len);
}

static void
kl_status_json_indent(KlStatusJson *w)
{
	static const gchar spaces[] = "                ";

	kl_status_json_put(w, spaces, MIN(2 * w->level, sizeof spaces - 1));
}

/* @name is one of this file's member names: plain ASCII, nothing to escape */
static void
kl_status_json_next(KlStatusJson *w, const gchar *name)
{
	if (w->first[w->level])
		kl_status_json_put(w, "\n", 1);
	else
		kl_status_json_put(w, ",\n", 2);
	w->first[w->level] = FALSE;
	kl_status_json_indent(w);
	if (name != NULL) {
		kl_status_json_put(w, "\"", 1);
		kl_status_json_put(w, name, strlen(name));
		kl_status_json_put(w, "\" : ", 4);
	}
}

static void
kl_status_json_open(KlStatusJson *w, gchar bracket)
{
	g_string_append_c(w->out, bracket);
	w->level++;
	w->first[w->level] = TRUE;
}

static void
kl_status_json_close(KlStatusJson *w, gchar bracket)
{
	gboolean empty = w->first[w->level];

	w->level--;
	if (!empty) {
		g_string_append_c(w->out, '\n');
		kl_status_json_indent(w);
	}
	g_string_append_c(w->out, bracket);
}

static void
kl_status_json_int(KlStatusJson *w, const gchar *name, gint64 value)
{
	kl_status_json_next(w, name);
	kl_json_append_int(w->out, value);
}

static void
kl_status_json_string(KlStatusJson *w, const gchar *name, const gchar *value)
{
	kl_status_json_next(w, name);
	kl_json_append_string(w->out, value);
}

static void
kl_status_json_literal(KlStatusJson *w, const gchar *name, const gchar *literal)
{
	kl_status_json_next(w, name);
	kl_status_json_put(w, literal, strlen(literal));
}

/* @value in decimal */
static void
kl_status_put_int(GString *out, gint64 value)
{
	if (value < 0) {
		kl_status_put_literal(out, "-");
		kl_string_put_uint(out, (guint64)0 - (guint64)value);
		return;
	}
	kl_string_put_uint(out, (guint64)value);
}

static void
kl_status_put_time(GString *out, gint64 t)
{
	if (t > 0)
		kl_status_put_int(out, t);
	else
		kl_status_put_literal(out, "null");
}

/* what comes before the value of a member of the top object after the first */
#define KL_STATUS_MEMBER(name) ",\n  \"" name "\" : "

/* a writer at the top object's level, after its first member, appending to @out */
static KlStatusJson
kl_status_json_segment(GString *out)
{
	KlStatusJson w = { .out = out, .level = 1 };

	g_string_truncate(out, 0);
	return w;
}

/* "{" to the "pid" member: the same for the life of @status */
static const GString *
kl_status_json_head(KlStatus *status)
{
	const KlStatusSnapshot *s = &status->snap;
	KlStatusJson w;

	if (status->json_head != NULL)
		return status->json_head;
	status->json_head = g_string_sized_new(256);
	w = kl_status_json_segment(status->json_head);
	w.level = 0;
	kl_status_json_open(&w, '{');
	kl_status_json_int(&w, "format", KL_STATUS_FORMAT);
	kl_status_json_string(&w, "agent_id", s->agent_id);
	kl_status_json_string(&w, "version", s->version);
	kl_status_json_int(&w, "pid", s->pid);
	return status->json_head;
}

/* the "registered", "enrolled" and "evidence_types" members */
static const GString *
kl_status_json_middle(KlStatus *status)
{
	const KlStatusSnapshot *s = &status->snap;
	KlStatusJson w;

	if (status->json_middle != NULL && status->middle_registered == s->registered &&
	    status->middle_enrolled == s->enrolled && status->middle_types_gen == status->types_gen)
		return status->json_middle;
	if (status->json_middle == NULL)
		status->json_middle = g_string_sized_new(256);
	status->middle_registered = s->registered;
	status->middle_enrolled = s->enrolled;
	status->middle_types_gen = status->types_gen;
	w = kl_status_json_segment(status->json_middle);
	kl_status_json_literal(&w, "registered", s->registered ? "true" : "false");
	kl_status_json_literal(&w,
			       "enrolled",
			       s->enrolled < 0	 ? "null"
			       : s->enrolled > 0 ? "true"
						 : "false");
	kl_status_json_next(&w, "evidence_types");
	kl_status_json_open(&w, '[');
	for (guint i = 0; s->evidence_types != NULL && s->evidence_types[i] != NULL; i++)
		kl_status_json_string(&w, NULL, s->evidence_types[i]);
	kl_status_json_close(&w, ']');
	return status->json_middle;
}

/* the "last_error" member: changes only with kl_status_failure() */
static const GString *
kl_status_json_error(KlStatus *status)
{
	const KlStatusSnapshot *s = &status->snap;
	KlStatusJson w;

	if (status->json_error != NULL && status->error_gen == status->failure_gen)
		return status->json_error;
	if (status->json_error == NULL)
		status->json_error = g_string_sized_new(256);
	status->error_gen = status->failure_gen;
	w = kl_status_json_segment(status->json_error);
	if (s->last_error_time > 0) {
		kl_status_json_next(&w, "last_error");
		kl_status_json_open(&w, '{');
		kl_status_json_int(&w, "time", s->last_error_time);
		kl_status_json_string(&w, "stage", kl_status_stage_to_string(s->last_error_stage));
		kl_status_json_string(&w, "cause", kl_status_cause_to_string(s->last_error_cause));
		kl_status_json_string(
		    &w, "message", s->last_error_message != NULL ? s->last_error_message : "");
		kl_status_json_close(&w, '}');
	} else {
		kl_status_json_literal(&w, "last_error", "null");
	}
	return status->json_error;
}

static void
kl_status_put_gstring(GString *out, const GString *str)
{
	kl_string_put(out, str->str, str->len);
}

/*
 * The status file's text, appended to @out. It is written after every
 * attestation: the members that change with each one are written here, the
 * others are kept rendered (kl_status_json_head(), _middle(), _error()).
 */
static void
kl_status_json_build(KlStatus *status, GString *out)
{
	const KlStatusSnapshot *s = &status->snap;

	if (status->line == NULL)
		status->line = g_string_sized_new(128);
	g_string_truncate(status->line, 0);
	kl_status_append_line(status, status->line);

	kl_status_put_gstring(out, kl_status_json_head(status));
	kl_status_put_literal(out, KL_STATUS_MEMBER("started"));
	kl_status_put_time(out, s->started);
	kl_status_put_literal(out, KL_STATUS_MEMBER("updated"));
	kl_status_put_time(out, s->updated);
	/* the names of states are plain ASCII: nothing to escape */
	kl_status_put_literal(out, KL_STATUS_MEMBER("state") "\"");
	kl_string_put(
	    out, kl_status_state_to_string(s->state), strlen(kl_status_state_to_string(s->state)));
	kl_status_put_literal(out, "\"" KL_STATUS_MEMBER("summary"));
	kl_json_append_string(out, status->line->str);
	kl_status_put_gstring(out, kl_status_json_middle(status));
	kl_status_put_literal(out, KL_STATUS_MEMBER("interval_seconds"));
	kl_status_put_int(out, s->interval_s);
	kl_status_put_literal(out, KL_STATUS_MEMBER("attestations"));
	kl_status_put_int(out, (gint64)s->attestations);
	if (s->last_success > 0) {
		kl_status_put_literal(out,
				      KL_STATUS_MEMBER("last_attestation") "{\n    \"number\" : ");
		kl_status_put_int(out, (gint64)s->attestations);
		kl_status_put_literal(out, ",\n    \"time\" : ");
		kl_status_put_int(out, s->last_success);
		kl_status_put_literal(out, ",\n    \"summary\" : ");
		kl_json_append_string(out, s->last_summary != NULL ? s->last_summary : "");
		kl_status_put_literal(out, "\n  }");
	} else {
		kl_status_put_literal(out, KL_STATUS_MEMBER("last_attestation") "null");
	}
	kl_status_put_literal(out, KL_STATUS_MEMBER("next_contact"));
	kl_status_put_time(out, s->next_contact);
	kl_status_put_literal(out, KL_STATUS_MEMBER("on_schedule_until"));
	kl_status_put_time(out, kl_status_deadline(status));
	kl_status_put_literal(out, KL_STATUS_MEMBER("consecutive_failures"));
	kl_status_put_int(out, s->consecutive_failures);
	kl_status_put_gstring(out, kl_status_json_error(status));
	kl_status_put_literal(out, "\n}\n");
}

gchar *
kl_status_to_json(KlStatus *status)
{
	GString *out = g_string_sized_new(1024);

	kl_status_json_build(status, out);
	return g_string_free(out, FALSE);
}

static void
kl_status_metric_head(GString *out, const gchar *name, const gchar *type, const gchar *help)
{
	g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* a double in Prometheus text format */
static void
kl_status_append_double(GString *out, gdouble value)
{
	gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

	g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.6g", value));
}

static void
kl_status_metric_label_escape(GString *out, const gchar *value)
{
	for (const gchar *p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			g_string_append_c(out, '\\');
		if (*p == '\n') {
			g_string_append(out, "\\n");
			continue;
		}
		g_string_append_c(out, *p);
	}
}

gchar *
kl_status_to_metrics(KlStatus *status)
{
	const KlStatusSnapshot *s = &status->snap;
	GString *out = g_string_new(NULL);
	gint64 now = kl_status_now_us(status) / G_USEC_PER_SEC;
	gint64 deadline = kl_status_deadline(status);

	kl_status_metric_head(
	    out, "keylime_agent_build_info", "gauge", "Version of the agent (always 1).");
	g_string_append(out, "keylime_agent_build_info{version=\"");
	kl_status_metric_label_escape(out, s->version);
	g_string_append(out, "\"} 1\n");

	kl_status_metric_head(out,
			      "keylime_agent_start_time_seconds",
			      "gauge",
			      "Start time of the agent process since the Unix epoch.");
	g_string_append_printf(
	    out, "keylime_agent_start_time_seconds %" G_GINT64_FORMAT "\n", s->started);

	kl_status_metric_head(out,
			      "keylime_agent_registered",
			      "gauge",
			      "1 once the agent registered with the registrar since it started.");
	g_string_append_printf(out, "keylime_agent_registered %d\n", s->registered ? 1 : 0);

	kl_status_metric_head(out,
			      "keylime_agent_enrolled",
			      "gauge",
			      "1 when the verifier knows the agent, 0 when it said it does not "
			      "(enroll it), absent until the verifier answered.");
	if (s->enrolled >= 0)
		g_string_append_printf(out, "keylime_agent_enrolled %d\n", s->enrolled);

	kl_status_metric_head(out,
			      "keylime_agent_attesting_on_schedule",
			      "gauge",
			      "1 while the agent attests on schedule (--status exits 0).");
	g_string_append_printf(out,
			       "keylime_agent_attesting_on_schedule %d\n",
			       deadline > 0 && now <= deadline ? 1 : 0);

	kl_status_metric_head(out,
			      "keylime_agent_attestations_submitted_total",
			      "counter",
			      "Attestations the verifier accepted (HTTP 202).");
	g_string_append_printf(out,
			       "keylime_agent_attestations_submitted_total %" G_GUINT64_FORMAT "\n",
			       s->attestations);

	kl_status_metric_head(out,
			      "keylime_agent_failures_total",
			      "counter",
			      "Failed steps by stage (registration, attestation) and cause.");
	for (guint stage = 0; stage < KL_STATUS_N_STAGES; stage++)
		for (guint cause = 0; cause < KL_STATUS_N_CAUSES; cause++)
			g_string_append_printf(out,
					       "keylime_agent_failures_total{stage=\"%s\",cause="
					       "\"%s\"} %" G_GUINT64_FORMAT "\n",
					       kl_status_stage_to_string(stage),
					       kl_status_cause_to_string(cause),
					       s->failures[stage][cause]);

	kl_status_metric_head(out,
			      "keylime_agent_last_success_timestamp_seconds",
			      "gauge",
			      "Time of the last accepted attestation since the Unix epoch (0: "
			      "none yet).");
	g_string_append_printf(out,
			       "keylime_agent_last_success_timestamp_seconds %" G_GINT64_FORMAT
			       "\n",
			       s->last_success);

	kl_status_metric_head(out,
			      "keylime_agent_next_contact_timestamp_seconds",
			      "gauge",
			      "Time of the next scheduled contact (attestation or retry) since the "
			      "Unix epoch (0: none).");
	g_string_append_printf(out,
			       "keylime_agent_next_contact_timestamp_seconds %" G_GINT64_FORMAT
			       "\n",
			       s->next_contact);

	kl_status_metric_head(out,
			      "keylime_agent_attestation_interval_seconds",
			      "gauge",
			      "The interval between attestations the verifier asks for (the "
			      "configured one until it names one).");
	g_string_append_printf(out,
			       "keylime_agent_attestation_interval_seconds %" G_GINT64_FORMAT "\n",
			       s->interval_s);

	kl_status_metric_head(out,
			      "keylime_agent_cycle_duration_seconds",
			      "summary",
			      "Duration of accepted attestation cycles, from offering capabilities "
			      "to the verifier's acceptance (session creation included).");
	g_string_append(out, "keylime_agent_cycle_duration_seconds_sum ");
	kl_status_append_double(out, s->cycle_seconds_sum);
	g_string_append_printf(
	    out, "\nkeylime_agent_cycle_duration_seconds_count %" G_GUINT64_FORMAT "\n", s->cycles);

	kl_status_metric_head(out,
			      "keylime_agent_tpm_duration_seconds",
			      "summary",
			      "Time spent in TPM commands (quote, certify) per accepted cycle.");
	g_string_append(out, "keylime_agent_tpm_duration_seconds_sum ");
	kl_status_append_double(out, s->tpm_seconds_sum);
	g_string_append_printf(
	    out, "\nkeylime_agent_tpm_duration_seconds_count %" G_GUINT64_FORMAT "\n", s->cycles);

	kl_status_metric_head(out,
			      "keylime_agent_last_cycle_duration_seconds",
			      "gauge",
			      "Duration of the last accepted attestation cycle.");
	g_string_append(out, "keylime_agent_last_cycle_duration_seconds ");
	kl_status_append_double(out, s->last_cycle_seconds);
	g_string_append_c(out, '\n');

	kl_status_metric_head(out,
			      "keylime_agent_last_cycle_tpm_seconds",
			      "gauge",
			      "Time spent in TPM commands in the last accepted cycle.");
	g_string_append(out, "keylime_agent_last_cycle_tpm_seconds ");
	kl_status_append_double(out, s->last_tpm_seconds);
	g_string_append_c(out, '\n');

	kl_status_metric_head(out,
			      "keylime_agent_ima_entries_sent_total",
			      "counter",
			      "IMA log entries sent in accepted attestations.");
	g_string_append_printf(
	    out, "keylime_agent_ima_entries_sent_total %" G_GUINT64_FORMAT "\n", s->ima_entries);

	kl_status_metric_head(out,
			      "keylime_agent_sessions_total",
			      "counter",
			      "Sessions (bearer tokens) established with the verifier: the first "
			      "one and every renewal.");
	g_string_append_printf(
	    out, "keylime_agent_sessions_total %" G_GUINT64_FORMAT "\n", s->sessions);

	kl_status_metric_head(out,
			      "keylime_agent_backoff_consecutive_failures",
			      "gauge",
			      "Failed steps in a row (0 when the last step succeeded).");
	g_string_append_printf(
	    out, "keylime_agent_backoff_consecutive_failures %u\n", s->consecutive_failures);

	kl_status_metric_head(out,
			      "keylime_agent_backoff_delay_seconds",
			      "gauge",
			      "The delay before the current retry (0 when not retrying).");
	g_string_append(out, "keylime_agent_backoff_delay_seconds ");
	kl_status_append_double(out, (gdouble)s->retry_delay_ms / 1000.0);
	g_string_append_c(out, '\n');
	return g_string_free(out, FALSE);
}

/* ---- --status ---- */

static gchar *
kl_status_format_time(gint64 t)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);

	return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S UTC") : g_strdup("?");
}

static gboolean
kl_status_process_alive(gint64 pid)
{
	if (pid <= 0 || pid > G_MAXINT)
		return FALSE;
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* an integer member, or 0 when absent or null */
static gint64
kl_status_get_time(JsonObject *root, const gchar *name)
{
	JsonNode *node = json_object_get_member(root, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_INT64)
		return 0;
	return json_node_get_int(node);
}

static const gchar *
kl_status_get_str(JsonObject *root, const gchar *name)
{
	JsonNode *node = json_object_get_member(root, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

/*
 * alive? The process runs, is not stopping, and its next step is not overdue
 * by more than KL_STATUS_STUCK_S: waiting for enrollment or backing off during
 * an outage is alive; a hung agent is not.
 */
static gboolean
kl_status_evaluate_alive(JsonObject *root, gint64 now, gboolean *running, gchar **reason)
{
	const gchar *state = kl_status_get_str(root, "state");
	gint64 next = kl_status_get_time(root, "next_contact");

	*running = kl_status_process_alive(kl_status_get_time(root, "pid"));
	if (!*running) {
		*reason = g_strdup_printf("the agent is not running (process %" G_GINT64_FORMAT
					  " is gone)",
					  kl_status_get_time(root, "pid"));
		return FALSE;
	}
	if (g_strcmp0(state, "stopped") == 0) {
		*reason = g_strdup("the agent is stopping");
		return FALSE;
	}
	if (next > 0 && now > next + KL_STATUS_STUCK_S) {
		g_autofree gchar *late = kl_status_format_span(now - next);
		*reason = g_strdup_printf("the agent is stuck: its next step is %s overdue (%s)",
					  late,
					  state != NULL ? state : "?");
		return FALSE;
	}
	*reason = g_strdup_printf("alive (%s)", state != NULL ? state : "?");
	return TRUE;
}

/* on schedule? @reason: why not, or what is fine (transfer full) */
static gboolean
kl_status_evaluate(JsonObject *root, gint64 now, gboolean *running, gchar **reason)
{
	const gchar *state = kl_status_get_str(root, "state");
	gint64 deadline = kl_status_get_time(root, "on_schedule_until");
	gint64 last = 0;
	JsonNode *node;

	*running = kl_status_process_alive(kl_status_get_time(root, "pid"));
	node = json_object_get_member(root, "last_attestation");
	if (node != NULL && JSON_NODE_HOLDS_OBJECT(node))
		last = kl_status_get_time(json_node_get_object(node), "time");
	if (!*running) {
		*reason = g_strdup_printf("the agent is not running (process %" G_GINT64_FORMAT
					  " is gone)",
					  kl_status_get_time(root, "pid"));
		return FALSE;
	}
	if (g_strcmp0(state, "stopped") == 0) {
		*reason = g_strdup("the agent is stopping");
		return FALSE;
	}
	if (last == 0 || deadline == 0) {
		*reason = g_strdup_printf("not attesting yet (%s)", state != NULL ? state : "?");
		return FALSE;
	}
	if (now > deadline) {
		g_autofree gchar *ago = kl_status_format_span(now - last);
		*reason = g_strdup_printf(
		    "no attestation accepted for %s (%s)", ago, state != NULL ? state : "?");
		return FALSE;
	}
	*reason = g_strdup("attesting on schedule");
	return TRUE;
}

static void
kl_status_print_text(JsonObject *root,
		     gint64 now,
		     gboolean ok,
		     gboolean alive,
		     gboolean running,
		     const gchar *reason)
{
	const gchar *summary = kl_status_get_str(root, "summary");
	const gchar *agent_id = kl_status_get_str(root, "agent_id");
	const gchar *version = kl_status_get_str(root, "version");
	gint64 next = kl_status_get_time(root, "next_contact");
	gint64 updated = kl_status_get_time(root, "updated");
	JsonNode *node;

	printf("keylime_push_model_agent %s, agent %s: %s\n",
	       version != NULL ? version : "?",
	       agent_id != NULL ? agent_id : "?",
	       reason);
	printf("  state: %s%s%s\n",
	       kl_status_get_str(root, "state") != NULL ? kl_status_get_str(root, "state") : "?",
	       summary != NULL && running ? " - " : "",
	       summary != NULL && running ? summary : "");
	printf("  process: %" G_GINT64_FORMAT " (%s)\n",
	       kl_status_get_time(root, "pid"),
	       running ? "running" : "not running");
	node = json_object_get_member(root, "registered");
	printf("  registered: %s\n",
	       node != NULL && JSON_NODE_HOLDS_VALUE(node) && json_node_get_boolean(node) ? "yes"
											  : "no");
	node = json_object_get_member(root, "enrolled");
	printf("  enrolled: %s\n",
	       node == NULL || JSON_NODE_HOLDS_NULL(node) ? "unknown"
	       : json_node_get_boolean(node)		  ? "yes"
							  : "no");
	node = json_object_get_member(root, "last_attestation");
	if (node != NULL && JSON_NODE_HOLDS_OBJECT(node)) {
		JsonObject *last = json_node_get_object(node);
		gint64 t = kl_status_get_time(last, "time");
		g_autofree gchar *when = kl_status_format_time(t);
		g_autofree gchar *ago = kl_status_format_span(now - t);
		const gchar *what = kl_status_get_str(last, "summary");
		printf("  last attestation: #%" G_GINT64_FORMAT " at %s (%s ago)%s%s\n",
		       kl_status_get_time(last, "number"),
		       when,
		       ago,
		       what != NULL && what[0] != '\0' ? ": " : "",
		       what != NULL ? what : "");
	} else {
		printf("  last attestation: none\n");
	}
	if (next > 0 && running) {
		g_autofree gchar *when = kl_status_format_time(next);
		g_autofree gchar *in = kl_status_format_span(next - now);
		printf("  next contact: %s (%s%s)\n", when, next >= now ? "in " : "due ", in);
	}
	node = json_object_get_member(root, "last_error");
	if (node != NULL && JSON_NODE_HOLDS_OBJECT(node)) {
		JsonObject *err = json_node_get_object(node);
		g_autofree gchar *when = kl_status_format_time(kl_status_get_time(err, "time"));
		printf(
		    "  last error: %s, %s, cause %s: %s\n",
		    when,
		    kl_status_get_str(err, "stage") != NULL ? kl_status_get_str(err, "stage") : "?",
		    kl_status_get_str(err, "cause") != NULL ? kl_status_get_str(err, "cause") : "?",
		    kl_status_get_str(err, "message") != NULL ? kl_status_get_str(err, "message")
							      : "");
	} else {
		printf("  last error: none\n");
	}
	node = json_object_get_member(root, "evidence_types");
	printf("  evidence types:");
	if (node != NULL && JSON_NODE_HOLDS_ARRAY(node) &&
	    json_array_get_length(json_node_get_array(node)) > 0) {
		JsonArray *types = json_node_get_array(node);
		for (guint i = 0; i < json_array_get_length(types); i++) {
			JsonNode *item = json_array_get_element(types, i);
			printf("%s %s",
			       i > 0 ? "," : "",
			       JSON_NODE_HOLDS_VALUE(item) &&
				       json_node_get_value_type(item) == G_TYPE_STRING
				   ? json_node_get_string(item)
				   : "?");
		}
		printf("\n");
	} else {
		printf(" none offered yet\n");
	}
	if (updated > 0) {
		g_autofree gchar *when = kl_status_format_time(updated);
		printf("  status written: %s\n", when);
	}
	printf("%s\n", ok ? "OK" : alive ? "NOT ALIVE" : "NOT ATTESTING ON SCHEDULE");
}

gint
kl_status_command(const gchar *path, gboolean json, gboolean alive, gint64 now_us)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) root = NULL;
	g_autofree gchar *contents = NULL;
	g_autofree gchar *reason = NULL;
	gint64 now = now_us / G_USEC_PER_SEC;
	gboolean running = FALSE;
	gboolean ok;
	gsize len = 0;

	if (path == NULL || path[0] == '\0') {
		g_autofree gchar *msg = g_strdup(
		    "status_file is empty: this agent keeps no status file; set status_file");
		if (json)
			printf("{\"%s\": false, \"reason\": \"%s\"}\n",
			       alive ? "alive" : "on_schedule",
			       msg);
		else
			printf("%s\n%s\n", msg, alive ? "NOT ALIVE" : "NOT ATTESTING ON SCHEDULE");
		return 1;
	}
	if (!g_file_get_contents(path, &contents, &len, &error) ||
	    (root = kl_json_parse_object(contents, (gssize)len, &error)) == NULL) {
		g_autofree gchar *msg = g_strdup_printf(
		    "cannot read the status file %s (%s): the agent is not running, or it runs "
		    "with another status_file",
		    path,
		    error->message);
		if (json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			g_autoptr(JsonNode) node = NULL;
			g_autofree gchar *text = NULL;
			json_builder_begin_object(b);
			json_builder_set_member_name(b, alive ? "alive" : "on_schedule");
			json_builder_add_boolean_value(b, FALSE);
			json_builder_set_member_name(b, "running");
			json_builder_add_boolean_value(b, FALSE);
			json_builder_set_member_name(b, "reason");
			json_builder_add_string_value(b, msg);
			json_builder_end_object(b);
			node = json_builder_get_root(b);
			text = json_to_string(node, TRUE);
			printf("%s\n", text);
		} else {
			printf("%s\n%s\n", msg, alive ? "NOT ALIVE" : "NOT ATTESTING ON SCHEDULE");
		}
		return 1;
	}
	ok = alive ? kl_status_evaluate_alive(root, now, &running, &reason)
		   : kl_status_evaluate(root, now, &running, &reason);
	if (json) {
		g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
		g_autofree gchar *text = NULL;
		json_object_set_boolean_member(root, alive ? "alive" : "on_schedule", ok);
		json_object_set_boolean_member(root, "running", running);
		json_object_set_string_member(root, "reason", reason);
		json_node_set_object(node, root);
		text = json_to_string(node, TRUE);
		printf("%s\n", text);
	} else {
		kl_status_print_text(root, now, ok, alive, running, reason);
	}
	return ok ? 0 : 1;
}
