/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The state snapshot (kl-status): failure causes, the one-line summary, and
 * what --status prints and exits with for each state, with a fake clock.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-status.h"

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c00003"
/* 2026-11-23T14:33:00Z */
#define T0 G_GINT64_CONSTANT(1795444380)

static gint64 fake_now_us = T0 * G_USEC_PER_SEC;
static gchar *self_path; /* this program, run again as the --status child */

static gint64
fake_clock(gpointer user_data)
{
	return fake_now_us;
}

static void
test_classify(void)
{
	struct {
		gint code;
		const gchar *message;
		KlStatusCause cause;
	} cases[] = {
		{ KL_ERROR_NETWORK, "cannot connect to 127.0.0.1:1", KL_STATUS_CAUSE_UNREACHABLE },
		{ KL_ERROR_TIMED_OUT, "no answer within 5000 ms", KL_STATUS_CAUSE_UNREACHABLE },
		{ KL_ERROR_HTTP,
		  "offering capabilities: the verifier answered HTTP 429",
		  KL_STATUS_CAUSE_RATE_LIMITED },
		{ KL_ERROR_HTTP,
		  "offering capabilities: the verifier answered HTTP 503: busy",
		  KL_STATUS_CAUSE_SERVER_ERROR },
		{ KL_ERROR_HTTP, "registrar: HTTP 500 \"x\"", KL_STATUS_CAUSE_SERVER_ERROR },
		{ KL_ERROR_HTTP,
		  "submitting evidence: the verifier answered HTTP 401",
		  KL_STATUS_CAUSE_UNAUTHORIZED },
		{ KL_ERROR_HTTP,
		  "submitting evidence: the verifier answered HTTP 422: bad order",
		  KL_STATUS_CAUSE_REJECTED },
		{ KL_ERROR_HTTP, "HTTP 4000 is not a status", KL_STATUS_CAUSE_REJECTED },
		{ KL_ERROR_AUTH, "proof of possession refused", KL_STATUS_CAUSE_UNAUTHORIZED },
		{ KL_ERROR_INVALID_DATA, "truncated JSON", KL_STATUS_CAUSE_BAD_RESPONSE },
		{ KL_ERROR_TPM, "TPM2_Quote failed", KL_STATUS_CAUSE_EVIDENCE },
		{ KL_ERROR_INTERNAL, "?", KL_STATUS_CAUSE_OTHER },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error =
		    g_error_new_literal(KL_ERROR, cases[i].code, cases[i].message);
		g_assert_cmpstr(kl_status_cause_to_string(kl_status_classify(error, FALSE)),
				==,
				kl_status_cause_to_string(cases[i].cause));
		/* "not enrolled" wins */
		g_assert_cmpint(kl_status_classify(error, TRUE), ==, KL_STATUS_CAUSE_NOT_ENROLLED);
	}
	g_assert_cmpint(kl_status_classify(NULL, FALSE), ==, KL_STATUS_CAUSE_OTHER);
	g_assert_true(kl_status_cause_is_outage(KL_STATUS_CAUSE_UNREACHABLE));
	g_assert_true(kl_status_cause_is_outage(KL_STATUS_CAUSE_SERVER_ERROR));
	g_assert_true(kl_status_cause_is_outage(KL_STATUS_CAUSE_RATE_LIMITED));
	g_assert_false(kl_status_cause_is_outage(KL_STATUS_CAUSE_NOT_ENROLLED));
	g_assert_false(kl_status_cause_is_outage(KL_STATUS_CAUSE_REJECTED));
}

typedef struct {
	gchar *dir;
	gchar *path;
	KlStatus *status;
} StatusFixture;

static void
status_setup(StatusFixture *sf, gconstpointer data)
{
	sf->dir = g_dir_make_tmp("kl-status-XXXXXX", NULL);
	sf->path = g_build_filename(sf->dir, "agent_status.json", NULL);
	fake_now_us = T0 * G_USEC_PER_SEC;
	sf->status = kl_status_new(AGENT_ID, "1.2.3");
	kl_status_set_clock(sf->status, fake_clock, NULL);
	kl_status_set_interval(sf->status, 60);
	kl_status_set_files(sf->status, sf->path, NULL);
}

static void
status_teardown(StatusFixture *sf, gconstpointer data)
{
	kl_status_free(sf->status);
	g_unlink(sf->path);
	g_rmdir(sf->dir);
	g_free(sf->path);
	g_free(sf->dir);
}

static void
accept_one(KlStatus *status, guint64 number, gint64 next_in_s)
{
	const gchar *types[] = { "tpm_quote", "ima_log", NULL };
	KlStatusCycle cycle = {
		.number = number,
		.summary = "tpm_quote, ima_log (3 new entries) in 84 ms; next in 60 s",
		.duration_s = 0.084,
		.tpm_s = 0.05,
		.ima_entries = 3,
		.interval_s = 60,
		.next_us = fake_now_us + next_in_s * G_USEC_PER_SEC,
	};

	kl_status_registered(status);
	kl_status_session_created(status);
	kl_status_set_evidence_types(status, types);
	kl_status_attestation_accepted(status, &cycle);
}

/* runs --status in a child (it prints to stdout); returns the exit status */
static gint
run_status_mode(const gchar *path, const gchar *mode, gint64 now_s, gchar **out)
{
	const gchar *prog = self_path;
	g_autofree gchar *now = g_strdup_printf("%" G_GINT64_FORMAT, now_s);
	const gchar *argv[] = { prog, "--status-command", path, now, mode, NULL };
	g_autoptr(GError) error = NULL;
	gint wait_status = 0;

	g_assert_true(g_spawn_sync(NULL,
				   (gchar **)argv,
				   NULL,
				   G_SPAWN_DEFAULT,
				   NULL,
				   NULL,
				   out,
				   NULL,
				   &wait_status,
				   &error));
	g_assert_no_error(error);
	g_test_message("%s", *out);
	g_assert_true(WIFEXITED(wait_status));
	return WEXITSTATUS(wait_status);
}

static gint
run_status_command(const gchar *path, gboolean json, gint64 now_s, gchar **out)
{
	return run_status_mode(path, json ? "json" : "text", now_s, out);
}

/* the status file is json-glib's pretty text of the same document */
static void
assert_json_format(KlStatus *status)
{
	g_autofree gchar *text = kl_status_to_json(status);
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *reference = NULL;
	g_autofree gchar *with_newline = NULL;

	g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
	g_assert_no_error(error);
	json_generator_set_root(generator, json_parser_get_root(parser));
	json_generator_set_pretty(generator, TRUE);
	reference = json_generator_to_data(generator, NULL);
	with_newline = g_strconcat(reference, "\n", NULL);
	g_assert_cmpstr(text, ==, with_newline);
}

static void
test_lines(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *line = NULL;
	g_autoptr(GError) refused = g_error_new_literal(
	    KL_ERROR, KL_ERROR_NETWORK, "cannot connect to the verifier: connection refused");

	kl_status_starting(sf->status, fake_now_us + 23 * G_USEC_PER_SEC);
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "starting, first contact in 23 s");
	g_clear_pointer(&line, g_free);

	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_REGISTRATION,
			  kl_status_classify(refused, FALSE),
			  refused->message,
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "registrar unreachable, retry in 10 s");
	g_clear_pointer(&line, g_free);

	kl_status_registered(sf->status);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_NOT_ENROLLED,
			  "not enrolled",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "waiting for enrollment, retry in 10 s");
	g_clear_pointer(&line, g_free);

	accept_one(sf->status, 1234, 60);
	fake_now_us += 3 * G_USEC_PER_SEC;
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "attestation 1234 submitted 3 s ago, next in 57 s");
	g_clear_pointer(&line, g_free);

	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_UNREACHABLE,
			  refused->message,
			  2,
			  fake_now_us + 40 * G_USEC_PER_SEC);
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "verifier unreachable, retry in 40 s");
	g_assert_cmpint(kl_status_get_snapshot(sf->status)->retry_delay_ms, ==, 40000);
	g_assert_cmpuint(kl_status_get_snapshot(sf->status)->consecutive_failures, ==, 2);
	g_clear_pointer(&line, g_free);

	kl_status_stopped(sf->status);
	assert_json_format(sf->status);
	line = kl_status_format_line(sf->status);
	g_assert_cmpstr(line, ==, "stopped");
}

/* the status file as json-glib renders the snapshot (pretty), built here independently */
static gchar *
reference_json(KlStatus *status)
{
	const KlStatusSnapshot *s = kl_status_get_snapshot(status);
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree gchar *line = kl_status_format_line(status);
	g_autofree gchar *text = NULL;
	gboolean on_schedule = s->last_success != 0 && s->state != KL_STATUS_STATE_STOPPED &&
			       s->state != KL_STATUS_STATE_WAITING_FOR_ENROLLMENT;

#define TIME(name, t)                                                                              \
	do {                                                                                       \
		json_builder_set_member_name(b, name);                                             \
		if ((t) > 0)                                                                       \
			json_builder_add_int_value(b, (t));                                        \
		else                                                                               \
			json_builder_add_null_value(b);                                            \
	} while (0)
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "format");
	json_builder_add_int_value(b, KL_STATUS_FORMAT);
	json_builder_set_member_name(b, "agent_id");
	json_builder_add_string_value(b, s->agent_id);
	json_builder_set_member_name(b, "version");
	json_builder_add_string_value(b, s->version);
	json_builder_set_member_name(b, "pid");
	json_builder_add_int_value(b, s->pid);
	TIME("started", s->started);
	TIME("updated", s->updated);
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, kl_status_state_to_string(s->state));
	json_builder_set_member_name(b, "summary");
	json_builder_add_string_value(b, line);
	json_builder_set_member_name(b, "registered");
	json_builder_add_boolean_value(b, s->registered);
	json_builder_set_member_name(b, "enrolled");
	if (s->enrolled < 0)
		json_builder_add_null_value(b);
	else
		json_builder_add_boolean_value(b, s->enrolled > 0);
	json_builder_set_member_name(b, "evidence_types");
	json_builder_begin_array(b);
	for (guint i = 0; s->evidence_types[i] != NULL; i++)
		json_builder_add_string_value(b, s->evidence_types[i]);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "interval_seconds");
	json_builder_add_int_value(b, s->interval_s);
	json_builder_set_member_name(b, "attestations");
	json_builder_add_int_value(b, (gint64)s->attestations);
	json_builder_set_member_name(b, "last_attestation");
	if (s->last_success > 0) {
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "number");
		json_builder_add_int_value(b, (gint64)s->attestations);
		json_builder_set_member_name(b, "time");
		json_builder_add_int_value(b, s->last_success);
		json_builder_set_member_name(b, "summary");
		json_builder_add_string_value(b, s->last_summary != NULL ? s->last_summary : "");
		json_builder_end_object(b);
	} else {
		json_builder_add_null_value(b);
	}
	TIME("next_contact", s->next_contact);
	TIME("on_schedule_until",
	     on_schedule
		 ? s->last_success + KL_STATUS_ON_SCHEDULE_INTERVALS * MAX(s->interval_s, 1) +
		       KL_STATUS_GRACE_S
		 : 0);
	json_builder_set_member_name(b, "consecutive_failures");
	json_builder_add_int_value(b, s->consecutive_failures);
	json_builder_set_member_name(b, "last_error");
	if (s->last_error_time > 0) {
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "time");
		json_builder_add_int_value(b, s->last_error_time);
		json_builder_set_member_name(b, "stage");
		json_builder_add_string_value(b, kl_status_stage_to_string(s->last_error_stage));
		json_builder_set_member_name(b, "cause");
		json_builder_add_string_value(b, kl_status_cause_to_string(s->last_error_cause));
		json_builder_set_member_name(b, "message");
		json_builder_add_string_value(b, s->last_error_message);
		json_builder_end_object(b);
	} else {
		json_builder_add_null_value(b);
	}
	json_builder_end_object(b);
#undef TIME
	root = json_builder_get_root(b);
	json_generator_set_root(generator, root);
	json_generator_set_pretty(generator, TRUE);
	text = json_generator_to_data(generator, NULL);
	return g_strconcat(text, "\n", NULL);
}

/* the status file on disk is the snapshot, byte for byte */
static void
assert_file_is_snapshot(StatusFixture *sf)
{
	g_autofree gchar *want = reference_json(sf->status);
	g_autofree gchar *text = NULL;
	g_autofree gchar *again = NULL;

	g_assert_true(g_file_get_contents(sf->path, &text, NULL, NULL));
	g_assert_cmpstr(text, ==, want);
	/* and what kl_status_to_json() renders */
	again = kl_status_to_json(sf->status);
	g_assert_cmpstr(again, ==, want);
}

/*
 * The status file is rewritten at every event; the parts that change only
 * with rare events (evidence types, registration, enrollment, the last
 * error) follow every change
 */
static void
test_file_follows_snapshot(StatusFixture *sf, gconstpointer data)
{
	const gchar *one_type[] = { "tpm_quote", NULL };
	KlStatusCycle cycle = {
		.number = 7,
		.summary = "a \"quoted\" summary\nwith a newline \\ and \x01",
		.interval_s = 30,
	};

	kl_status_starting(sf->status, fake_now_us + 23 * G_USEC_PER_SEC);
	assert_file_is_snapshot(sf);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_REGISTRATION,
			  KL_STATUS_CAUSE_UNREACHABLE,
			  "cannot connect: refused",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	assert_file_is_snapshot(sf);
	kl_status_registered(sf->status);
	assert_file_is_snapshot(sf);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_NOT_ENROLLED,
			  "not enrolled",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	assert_file_is_snapshot(sf);
	fake_now_us += 2 * G_USEC_PER_SEC;
	accept_one(sf->status, 1234, 60);
	assert_file_is_snapshot(sf);
	fake_now_us += 3 * G_USEC_PER_SEC;
	accept_one(sf->status, 1235, 60);
	assert_file_is_snapshot(sf);
	/* fewer evidence types */
	kl_status_set_evidence_types(sf->status, one_type);
	cycle.next_us = fake_now_us + 30 * G_USEC_PER_SEC;
	kl_status_attestation_accepted(sf->status, &cycle);
	assert_file_is_snapshot(sf);
	/* two failures in the same second: the second message is shown */
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_SERVER_ERROR,
			  "the verifier answered HTTP 500: \"boom\"",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	assert_file_is_snapshot(sf);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_SERVER_ERROR,
			  "the verifier answered HTTP 503",
			  2,
			  fake_now_us + 20 * G_USEC_PER_SEC);
	assert_file_is_snapshot(sf);
	/* an accepted attestation keeps the last error */
	fake_now_us += 200 * G_USEC_PER_SEC;
	cycle.number = 8;
	cycle.interval_s = 90;
	cycle.next_us = fake_now_us + G_GINT64_CONSTANT(7300) * G_USEC_PER_SEC;
	kl_status_attestation_accepted(sf->status, &cycle);
	assert_file_is_snapshot(sf);
	kl_status_stopped(sf->status);
	assert_file_is_snapshot(sf);
}

static void
test_command_on_schedule(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autoptr(JsonObject) root = NULL;

	accept_one(sf->status, 12, 60);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 5, &out), ==, 0);
	g_assert_nonnull(strstr(out, "agent " AGENT_ID ": attesting on schedule\n"));
	g_assert_nonnull(strstr(out, "  registered: yes\n"));
	g_assert_nonnull(strstr(out, "  enrolled: yes\n"));
	g_assert_nonnull(strstr(out,
				"  last attestation: #12 at 2026-11-23 14:33:00 UTC (5 s ago): "
				"tpm_quote, ima_log (3 new entries) in 84 ms; next in 60 s\n"));
	g_assert_nonnull(strstr(out, "  next contact: 2026-11-23 14:34:00 UTC (in 55 s)\n"));
	g_assert_nonnull(strstr(out, "  last error: none\n"));
	g_assert_nonnull(strstr(out, "  evidence types: tpm_quote, ima_log\n"));
	g_assert_true(g_str_has_suffix(out, "\nOK\n"));
	g_clear_pointer(&out, g_free);

	g_assert_cmpint(run_status_command(sf->path, TRUE, T0 + 5, &out), ==, 0);
	root = kl_json_parse_object(out, -1, NULL);
	g_assert_nonnull(root);
	g_assert_true(json_object_get_boolean_member(root, "on_schedule"));
	g_assert_true(json_object_get_boolean_member(root, "running"));
	g_assert_cmpstr(json_object_get_string_member(root, "state"), ==, "attesting");
	g_assert_cmpstr(json_object_get_string_member(root, "agent_id"), ==, AGENT_ID);
	g_assert_cmpint(json_object_get_int_member(root, "attestations"), ==, 12);
	g_assert_cmpint(json_object_get_int_member(root, "next_contact"), ==, T0 + 60);
	/* two intervals and 30 s after the last accepted attestation */
	g_assert_cmpint(json_object_get_int_member(root, "on_schedule_until"), ==, T0 + 150);
}

static void
test_command_outage(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;

	/* one missed attestation is tolerated */
	accept_one(sf->status, 12, 60);
	fake_now_us += 61 * G_USEC_PER_SEC;
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_UNREACHABLE,
			  "cannot connect to the verifier",
			  1,
			  fake_now_us + 30 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 65, &out), ==, 0);
	g_assert_nonnull(strstr(out, "  state: retrying - verifier unreachable, retry in 30 s\n"));
	g_assert_nonnull(
	    strstr(out,
		   "  last error: 2026-11-23 14:34:01 UTC, attestation, cause unreachable: "
		   "cannot connect to the verifier\n"));
	g_clear_pointer(&out, g_free);
	/* a second one is not: 2 intervals + 30 s */
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 151, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": no attestation accepted for 2 min (retrying)\n"));
	g_assert_true(g_str_has_suffix(out, "\nNOT ATTESTING ON SCHEDULE\n"));
	g_clear_pointer(&out, g_free);
	/* recovered */
	fake_now_us = (T0 + 160) * G_USEC_PER_SEC;
	accept_one(sf->status, 13, 60);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 161, &out), ==, 0);
}

static void
test_command_not_attesting(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;

	/* starting (splay), registering, waiting for enrollment: not on schedule yet */
	kl_status_starting(sf->status, fake_now_us + 20 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 1, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": not attesting yet (starting)\n"));
	g_assert_nonnull(strstr(out, "  registered: no\n"));
	g_assert_nonnull(strstr(out, "  enrolled: unknown\n"));
	g_assert_nonnull(strstr(out, "  last attestation: none\n"));
	g_clear_pointer(&out, g_free);

	kl_status_registered(sf->status);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_NOT_ENROLLED,
			  "agent is not enrolled at the verifier",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 1, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": not attesting yet (waiting_for_enrollment)\n"));
	g_assert_nonnull(strstr(out, "  registered: yes\n"));
	g_assert_nonnull(strstr(out, "  enrolled: no\n"));
	g_clear_pointer(&out, g_free);

	/* the agent was unenrolled after attesting: not on schedule, at once */
	accept_one(sf->status, 1, 60);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_NOT_ENROLLED,
			  "agent is not enrolled at the verifier",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 2, &out), ==, 1);
	g_clear_pointer(&out, g_free);

	/* stopped */
	accept_one(sf->status, 2, 60);
	kl_status_stopped(sf->status);
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 2, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": the agent is stopping\n"));
}

static void
test_command_dead_process(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *json = NULL;
	g_autofree gchar *edited = NULL;
	g_autoptr(GRegex) regex = g_regex_new("\"pid\" : [0-9]+", 0, 0, NULL);
	GPid child = 0;
	const gchar *argv[] = { "/bin/true", NULL };
	gint wait_status = 0;

	/* a pid that existed and is gone: the agent crashed or was killed */
	g_assert_true(g_spawn_async(
	    NULL, (gchar **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &child, NULL));
	g_assert_cmpint(waitpid(child, &wait_status, 0), ==, child);
	accept_one(sf->status, 12, 60);
	g_assert_true(g_file_get_contents(sf->path, &json, NULL, NULL));
	{
		g_autofree gchar *replacement = g_strdup_printf("\"pid\" : %d", (int)child);
		edited = g_regex_replace_literal(regex, json, -1, 0, replacement, 0, NULL);
	}
	g_assert_true(g_file_set_contents(sf->path, edited, -1, NULL));
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0 + 5, &out), ==, 1);
	g_assert_nonnull(strstr(out, ": the agent is not running (process "));
	g_assert_nonnull(strstr(out, "  process: "));
	g_assert_null(strstr(out, "next contact"));
}

static void
test_command_no_file(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autoptr(JsonObject) root = NULL;

	g_assert_cmpint(run_status_command(sf->path, FALSE, T0, &out), ==, 1);
	g_assert_nonnull(strstr(out, "cannot read the status file "));
	g_assert_nonnull(strstr(out,
				"the agent is not running, or it runs with another "
				"status_file"));
	g_clear_pointer(&out, g_free);
	g_assert_cmpint(run_status_command(sf->path, TRUE, T0, &out), ==, 1);
	root = kl_json_parse_object(out, -1, NULL);
	g_assert_nonnull(root);
	g_assert_false(json_object_get_boolean_member(root, "on_schedule"));
	g_clear_pointer(&out, g_free);
	/* garbage in the file */
	g_assert_true(g_file_set_contents(sf->path, "{\"state\": ", -1, NULL));
	g_assert_cmpint(run_status_command(sf->path, FALSE, T0, &out), ==, 1);
	g_assert_nonnull(strstr(out, "cannot read the status file "));
}

static GPtrArray *logged; /* "LEVEL message" */

static void
capture_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING |
		      G_LOG_LEVEL_MESSAGE)) == 0)
		return;
	g_ptr_array_add(logged,
			g_strdup_printf("%s %s",
					(level & G_LOG_LEVEL_WARNING)	? "WARNING"
					: (level & G_LOG_LEVEL_MESSAGE) ? "MESSAGE"
									: "OTHER",
					message));
}

static void
test_command_alive(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autoptr(JsonObject) root = NULL;

	/* waiting for enrollment: not on schedule, but alive */
	kl_status_registered(sf->status);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_NOT_ENROLLED,
			  "agent is not enrolled at the verifier",
			  1,
			  fake_now_us + 10 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_mode(sf->path, "alive", T0 + 1, &out), ==, 0);
	g_assert_nonnull(strstr(out, ": alive (waiting_for_enrollment)\n"));
	g_assert_true(g_str_has_suffix(out, "\nOK\n"));
	g_clear_pointer(&out, g_free);
	/* a long outage: not on schedule, still alive while its retries are on time */
	accept_one(sf->status, 3, 60);
	fake_now_us += 600 * G_USEC_PER_SEC;
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_ATTESTATION,
			  KL_STATUS_CAUSE_UNREACHABLE,
			  "cannot connect",
			  9,
			  fake_now_us + 60 * G_USEC_PER_SEC);
	g_assert_cmpint(run_status_mode(sf->path, "text", T0 + 601, &out), ==, 1);
	g_clear_pointer(&out, g_free);
	g_assert_cmpint(run_status_mode(sf->path, "alive-json", T0 + 601, &out), ==, 0);
	root = kl_json_parse_object(out, -1, NULL);
	g_assert_nonnull(root);
	g_assert_true(json_object_get_boolean_member(root, "alive"));
	g_clear_pointer(&out, g_free);
	/* its next step (T0 + 660) overdue by more than 2 min: stuck */
	g_assert_cmpint(run_status_mode(sf->path, "alive", T0 + 780, &out), ==, 0);
	g_clear_pointer(&out, g_free);
	g_assert_cmpint(run_status_mode(sf->path, "alive", T0 + 781, &out), ==, 1);
	g_assert_nonnull(strstr(out,
				": the agent is stuck: its next step is 2 min overdue "
				"(retrying)\n"));
	g_assert_true(g_str_has_suffix(out, "\nNOT ALIVE\n"));
	g_clear_pointer(&out, g_free);
	/* stopped */
	kl_status_stopped(sf->status);
	g_assert_cmpint(run_status_mode(sf->path, "alive", T0 + 601, &out), ==, 1);
}

static void
test_unwritable_status_file(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *dir = g_build_filename(sf->dir, "sub", NULL);
	g_autofree gchar *path = g_build_filename(dir, "agent_status.json", NULL);

	g_ptr_array_set_size(logged, 0);
	kl_status_set_files(sf->status, path, NULL);
	for (guint i = 1; i <= 5; i++)
		accept_one(sf->status, i, 60);
	/* one warning, not one per write */
	g_assert_cmpuint(logged->len, ==, 1);
	g_assert_true(g_pattern_match_simple(
	    "WARNING cannot create a file next to */sub/agent_status.json: No such file or "
	    "directory; the status file is not updated until this is fixed (the agent goes on "
	    "attesting)*",
	    g_ptr_array_index(logged, 0)));
	/* the directory appears: written again, and said once */
	g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
	accept_one(sf->status, 6, 60);
	accept_one(sf->status, 7, 60);
	g_assert_cmpuint(logged->len, ==, 2);
	g_assert_true(g_pattern_match_simple("MESSAGE the status file */sub/agent_status.json is "
					     "written again",
					     g_ptr_array_index(logged, 1)));
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_unlink(path);
	g_rmdir(dir);
}

static void
test_metrics_format(StatusFixture *sf, gconstpointer data)
{
	g_autofree gchar *metrics = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GHashTable) helped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	accept_one(sf->status, 7, 60);
	kl_status_failure(sf->status,
			  KL_STATUS_STAGE_REGISTRATION,
			  KL_STATUS_CAUSE_RATE_LIMITED,
			  "429",
			  3,
			  fake_now_us + 2500 * 1000);
	metrics = kl_status_to_metrics(sf->status);
	lines = g_strsplit(metrics, "\n", -1);
	/* every sample has a HELP and TYPE line before it, names are prefixed */
	for (guint i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++) {
		const gchar *line = lines[i];
		g_autofree gchar *name = NULL;
		if (g_str_has_prefix(line, "# HELP ")) {
			g_auto(GStrv) parts = g_strsplit(line + 7, " ", 2);
			g_assert_true(g_str_has_prefix(parts[0], "keylime_agent_"));
			g_hash_table_add(helped, g_strdup(parts[0]));
			continue;
		}
		if (g_str_has_prefix(line, "# TYPE "))
			continue;
		name = g_strndup(line, strcspn(line, "{ "));
		if (g_str_has_suffix(name, "_sum") || g_str_has_suffix(name, "_count"))
			name[strlen(name) - (g_str_has_suffix(name, "_sum") ? 4 : 6)] = '\0';
		g_assert_true(g_hash_table_contains(helped, name));
		/* counters end in _total */
		{
			g_autofree gchar *type = g_strdup_printf("# TYPE %s counter", name);
			if (strstr(metrics, type) != NULL)
				g_assert_true(g_str_has_suffix(name, "_total"));
		}
	}
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_attestations_submitted_total 7\n"));
	g_assert_nonnull(strstr(metrics,
				"\nkeylime_agent_failures_total{stage=\"registration\",cause="
				"\"rate_limited\"} 1\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_backoff_consecutive_failures 3\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_backoff_delay_seconds 2.5\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_cycle_duration_seconds_sum 0.084\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_tpm_duration_seconds_sum 0.05\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_ima_entries_sent_total 3\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_attestation_interval_seconds 60\n"));
	g_assert_nonnull(strstr(metrics, "\nkeylime_agent_attesting_on_schedule 1\n"));
	g_assert_true(g_str_has_suffix(metrics, "\n"));
}

int
main(int argc, char **argv)
{
	/* the child of run_status_command(): test-status --status-command PATH NOW json|text */
	if (argc == 5 && g_strcmp0(argv[1], "--status-command") == 0)
		return kl_status_command(argv[2],
					 g_str_has_suffix(argv[4], "json"),
					 g_str_has_prefix(argv[4], "alive"),
					 g_ascii_strtoll(argv[3], NULL, 10) * G_USEC_PER_SEC);

	self_path = g_canonicalize_filename(argv[0], NULL);
	g_test_init(&argc, &argv, NULL);
	/* the warnings of an unwritable file are expected here, not fatal */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	logged = g_ptr_array_new_with_free_func(g_free);
	g_log_set_handler("kl-core", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL, capture_log, NULL);
	g_test_add_func("/status/classify", test_classify);
#define ADD(path, func) g_test_add(path, StatusFixture, NULL, status_setup, func, status_teardown)
	ADD("/status/lines", test_lines);
	ADD("/status/file-follows-snapshot", test_file_follows_snapshot);
	ADD("/status/command-on-schedule", test_command_on_schedule);
	ADD("/status/command-outage", test_command_outage);
	ADD("/status/command-not-attesting", test_command_not_attesting);
	ADD("/status/command-dead-process", test_command_dead_process);
	ADD("/status/command-no-file", test_command_no_file);
	ADD("/status/command-alive", test_command_alive);
	ADD("/status/unwritable-status-file", test_unwritable_status_file);
	ADD("/status/metrics-format", test_metrics_format);
#undef ADD
	return g_test_run();
}
