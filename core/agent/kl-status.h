/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent's state snapshot: the one place that knows whether the agent is
 * registered, enrolled and attesting on schedule, what failed last and why,
 * and the counters of its work. The state machine feeds it events; from the
 * snapshot it renders
 *
 *   - the status file (JSON) that `--status` reads,
 *   - the Prometheus textfile (metrics_file) for node_exporter,
 *   - a one-line summary (systemd STATUS=, logs).
 *
 * Every event rewrites the files atomically (temporary file + rename) and
 * then runs the listeners. Main thread only. Every event function accepts a
 * NULL KlStatus and does nothing, so code that runs without one needs no checks.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* the format of the status file ("format" member) */
#define KL_STATUS_FORMAT 1
/*
 * --status: the agent is on schedule while its last accepted attestation is
 * at most this many intervals (plus KL_STATUS_GRACE_S) old: one late or
 * missed attestation is tolerated; the verifier marks an agent TIMEOUT
 * after 5 intervals.
 */
#define KL_STATUS_ON_SCHEDULE_INTERVALS 2
#define KL_STATUS_GRACE_S		30
/*
 * --status --alive: the agent is stuck when its next step (attestation or
 * retry) is overdue by more than this: every step ends within a few request
 * timeouts and then rewrites the status file.
 */
#define KL_STATUS_STUCK_S 120

typedef enum {
	KL_STATUS_STATE_STARTING,		/* waiting for the first contact (splay) */
	KL_STATUS_STATE_REGISTERING,		/* registering, or retrying registration */
	KL_STATUS_STATE_WAITING_FOR_ENROLLMENT, /* the verifier does not know the agent */
	KL_STATUS_STATE_ATTESTING,		/* the last attestation was accepted */
	KL_STATUS_STATE_RETRYING,		/* an attestation failed, a retry is scheduled */
	KL_STATUS_STATE_STOPPED,
} KlStatusState;

typedef enum {
	KL_STATUS_STAGE_REGISTRATION, /* registrar: version, register, activate */
	KL_STATUS_STAGE_ATTESTATION,  /* verifier: session, capabilities, evidence */
	KL_STATUS_N_STAGES,
} KlStatusStage;

/* why a step failed; a small fixed set (metric label values) */
typedef enum {
	KL_STATUS_CAUSE_UNREACHABLE,  /* connect, TLS or timeout: no answer */
	KL_STATUS_CAUSE_RATE_LIMITED, /* HTTP 429 */
	KL_STATUS_CAUSE_SERVER_ERROR, /* HTTP 5xx */
	KL_STATUS_CAUSE_UNAUTHORIZED, /* HTTP 401/403, proof of possession refused */
	KL_STATUS_CAUSE_NOT_ENROLLED, /* the verifier does not know the agent */
	KL_STATUS_CAUSE_REJECTED,     /* another 4xx: the request or evidence was refused */
	KL_STATUS_CAUSE_BAD_RESPONSE, /* a malformed answer */
	KL_STATUS_CAUSE_EVIDENCE,     /* collecting evidence failed (TPM, plugin) */
	KL_STATUS_CAUSE_OTHER,
	KL_STATUS_N_CAUSES,
} KlStatusCause;

const gchar *
kl_status_state_to_string(KlStatusState state);
const gchar *
kl_status_stage_to_string(KlStatusStage stage);
const gchar *
kl_status_cause_to_string(KlStatusCause cause);

/*
 * The cause of a failed step from its error: KL_ERROR_NETWORK/TIMED_OUT are
 * "unreachable", KL_ERROR_HTTP is classified by the "HTTP NNN" in its message,
 * KL_ERROR_AUTH is "unauthorized", KL_ERROR_INVALID_DATA "bad_response", a
 * TPM error "evidence". @not_enrolled wins over everything.
 */
KlStatusCause
kl_status_classify(const GError *error, gboolean not_enrolled);

/* TRUE for causes that mean the peer is down or overloaded (an outage) */
gboolean
kl_status_cause_is_outage(KlStatusCause cause);

/* what one accepted attestation cost and carried */
typedef struct {
	guint64 number;	      /* attestations accepted so far, this one included */
	const gchar *summary; /* "tpm_quote, ima_log (3 new entries) in 84 ms" (nullable) */
	gdouble duration_s;   /* phase 1 start to the 202, session included */
	gdouble tpm_s;	      /* time in TPM commands (quote, certify) */
	guint64 ima_entries;  /* IMA entries sent */
	gint64 interval_s;    /* the verifier's seconds_to_next_attestation */
	gint64 next_us;	      /* wall clock of the next contact (µs) */
} KlStatusCycle;

/* a read-only view of the snapshot (times: Unix seconds, 0 = never/unknown) */
typedef struct {
	gchar *agent_id;
	gchar *version;
	gint64 pid;
	gint64 started;
	gint64 updated;
	KlStatusState state;
	gboolean registered;
	gint enrolled; /* -1 unknown, 0 no, 1 yes */
	gchar **evidence_types;
	gint64 interval_s;
	guint64 attestations;
	gint64 last_success;
	gchar *last_summary;
	gint64 next_contact;
	guint consecutive_failures;
	gint64 retry_delay_ms; /* current backoff delay, 0 when not retrying */
	gint64 last_error_time;
	KlStatusStage last_error_stage;
	KlStatusCause last_error_cause;
	gchar *last_error_message;
	/* counters */
	guint64 failures[KL_STATUS_N_STAGES][KL_STATUS_N_CAUSES];
	guint64 sessions;
	guint64 ima_entries;
	guint64 cycles;
	gdouble cycle_seconds_sum;
	gdouble tpm_seconds_sum;
	gdouble last_cycle_seconds;
	gdouble last_tpm_seconds;
} KlStatusSnapshot;

typedef struct _KlStatus KlStatus;

/* wall clock in microseconds (tests: a fake clock) */
typedef gint64 (*KlStatusClockFunc)(gpointer user_data);
/* runs after every change, once the files are written */
typedef void (*KlStatusListener)(KlStatus *status, gpointer user_data);

KlStatus *
kl_status_new(const gchar *agent_id, const gchar *version);
void
kl_status_free(KlStatus *status);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlStatus, kl_status_free)

/*
 * @status_file, @metrics_file: absolute paths, NULL or "" = not written. A
 * file that cannot be written gives one WARNING (and a message when it
 * works again); the agent goes on.
 */
void
kl_status_set_files(KlStatus *status, const gchar *status_file, const gchar *metrics_file);
void
kl_status_set_clock(KlStatus *status, KlStatusClockFunc func, gpointer user_data);
void
kl_status_add_listener(KlStatus *status, KlStatusListener func, gpointer user_data);
/* removes every registration of @func with @user_data */
void
kl_status_remove_listener(KlStatus *status, KlStatusListener func, gpointer user_data);
/* the configured interval, used until the verifier names one */
void
kl_status_set_interval(KlStatus *status, gint64 interval_s);

/* ---- events (from the state machine) ---- */

/* the agent waits until @first_contact_us before it contacts anyone (splay) */
void
kl_status_starting(KlStatus *status, gint64 first_contact_us);
void
kl_status_registered(KlStatus *status);
/* the evidence types offered in the last capabilities (NULL-terminated) */
void
kl_status_set_evidence_types(KlStatus *status, const gchar *const *types);
/* a session (bearer token) was established with the verifier */
void
kl_status_session_created(KlStatus *status);
void
kl_status_attestation_accepted(KlStatus *status, const KlStatusCycle *cycle);
/* a step failed; @retry_at_us: wall clock of the retry; @consecutive: failures in a row */
void
kl_status_failure(KlStatus *status,
		  KlStatusStage stage,
		  KlStatusCause cause,
		  const gchar *message,
		  guint consecutive,
		  gint64 retry_at_us);
void
kl_status_stopped(KlStatus *status);

/* ---- renderings ---- */

const KlStatusSnapshot *
kl_status_get_snapshot(KlStatus *status);
/*
 * One line for humans (systemd STATUS=): "attestation 12 submitted 3 s ago,
 * next in 57 s", "waiting for enrollment, retry in 10 s", "verifier
 * unreachable, retry in 40 s". (transfer full)
 */
gchar *
kl_status_format_line(KlStatus *status);
/* the status file's JSON (transfer full) */
gchar *
kl_status_to_json(KlStatus *status);
/* the Prometheus text exposition (transfer full) */
gchar *
kl_status_to_metrics(KlStatus *status);
/* writes both files now (the events do this already) */
void
kl_status_write(KlStatus *status);

/* ---- --status ---- */

/*
 * Reads the status file @path and prints it (text, or JSON with @json) to
 * stdout. Returns 0 when the agent is attesting on schedule, 1 otherwise
 * (not running, no status file, starting, waiting for enrollment, failing
 * for too long, stopped). With @alive (a liveness probe): 0 while the
 * process runs and is not stuck (its next step overdue by more than
 * KL_STATUS_STUCK_S), waiting for enrollment or retrying included.
 * @now_us: the wall clock.
 */
gint
kl_status_command(const gchar *path, gboolean json, gboolean alive, gint64 now_us);

G_END_DECLS
