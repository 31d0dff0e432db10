/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * kl-verifier-client: request bodies, the parsing of real verifier answers
 * (tests/data/verifier, copied from protocol.md) and what each exchange makes
 * of the verifier's statuses (KlVerifierResult).
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-json-doc.h"
#include "kl-verifier-client.h"

static gchar *
fixture(const gchar *name, gsize *len)
{
	g_autofree gchar *path = g_test_build_filename(G_TEST_DIST, "data", "verifier", name, NULL);
	gchar *contents = NULL;

	g_assert_true(g_file_get_contents(path, &contents, len, NULL));
	return contents;
}

static void
test_parse_session_challenge(void)
{
	gsize len = 0;
	g_autofree gchar *body = fixture("session-challenge-200.json", &len);
	g_autofree gchar *id = NULL;
	g_autoptr(GBytes) challenge = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *b64 = NULL;

	g_assert_true(kl_verifier_parse_session_challenge(body, len, &id, &challenge, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(id, ==, "0024f423-c785-4683-9c2b-3ff2b27e3631");
	/* the raw 16 bytes, not the base64 text */
	g_assert_cmpuint(g_bytes_get_size(challenge), ==, 16);
	b64 = g_base64_encode(g_bytes_get_data(challenge, NULL), 16);
	g_assert_cmpstr(b64, ==, "oSmogmX7btMOs/+IVw3EFw==");
}

static void
test_parse_session_challenge_bad(void)
{
	const gchar *bodies[] = {
		"",
		"[]",
		"{\"data\":{\"id\":\"x\",\"attributes\":{}}}",
		"{\"data\":{\"id\":\"x\",\"attributes\":{\"authentication_requested\":[]}}}",
		"{\"data\":{\"id\":\"x\",\"attributes\":{\"authentication_requested\":[{"
		"\"authentication_type\":\"tpm_pop\",\"chosen_parameters\":{\"challenge\":\"*"
		"notb64*\"}}]}}}",
		"{\"data\":{\"id\":7,\"attributes\":{\"authentication_requested\":[]}}}",
	};

	for (guint i = 0; i < G_N_ELEMENTS(bodies); i++) {
		g_autofree gchar *id = NULL;
		g_autoptr(GBytes) challenge = NULL;
		g_autoptr(GError) error = NULL;
		g_assert_false(kl_verifier_parse_session_challenge(
		    bodies[i], strlen(bodies[i]), &id, &challenge, &error));
		g_assert_nonnull(error);
		g_assert_null(id);
	}
}

static void
test_parse_session_result(void)
{
	gsize len = 0;
	g_autofree gchar *pass = fixture("session-pass-200.json", &len);
	g_autofree gchar *fail = NULL;
	g_autoptr(GError) error = NULL;
	KlVerifierSession session;

	g_assert_true(kl_verifier_parse_session_result(pass, len, &session, &error));
	g_assert_true(session.pass);
	g_assert_cmpstr(
	    session.token,
	    ==,
	    "0024f423-c785-4683-9c2b-3ff2b27e3631.yZa6oMA61ywSLUArUbaaMQ8lbSjY_oXGKeKrKgYIyPY");
	/* 2026-11-23T14:35:11.708067+00:00 */
	g_assert_cmpint(session.token_expires_at, ==, G_GINT64_CONSTANT(1795444511));
	kl_verifier_session_clear(&session);
	g_assert_null(session.token);

	/* not enrolled: 200 with evaluation fail and a null expiry */
	fail = fixture("session-fail-200.json", &len);
	g_assert_true(kl_verifier_parse_session_result(fail, len, &session, &error));
	g_assert_no_error(error);
	g_assert_false(session.pass);
	g_assert_cmpstr(session.evaluation, ==, "fail");
	g_assert_null(session.token);
	g_assert_cmpint(session.token_expires_at, ==, 0);
	kl_verifier_session_clear(&session);

	/* a token that would break the HTTP header is refused */
	{
		const gchar *evil = "{\"data\":{\"attributes\":{\"evaluation\":\"pass\","
				    "\"token\":\"abc\\r\\nX: y\"}}}";
		g_assert_false(
		    kl_verifier_parse_session_result(evil, strlen(evil), &session, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_null(session.token);
	}
}

#define REQ(items, i) ((KlEvidenceRequest *)g_ptr_array_index((items), (i)))

static void
test_parse_evidence_requested(void)
{
	gsize len = 0;
	g_autofree gchar *body = fixture("attestation-201.json", &len);
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) items = kl_verifier_parse_evidence_requested(body, len, &error);
	JsonObject *params;
	JsonObject *subjects;
	gint64 offset = -1;

	g_assert_no_error(error);
	g_assert_nonnull(items);
	g_assert_cmpuint(items->len, ==, 3);
	g_assert_cmpstr(REQ(items, 0)->evidence_type, ==, "tpm_quote");
	g_assert_cmpstr(REQ(items, 0)->evidence_class, ==, "certification");
	g_assert_cmpstr(REQ(items, 1)->evidence_type, ==, "uefi_log");
	g_assert_cmpstr(REQ(items, 2)->evidence_type, ==, "ima_log");
	params = REQ(items, 0)->chosen_parameters;
	g_assert_cmpstr(json_object_get_string_member(params, "hash_algorithm"), ==, "sha256");
	subjects = json_object_get_object_member(params, "selected_subjects");
	g_assert_cmpint(
	    json_array_get_int_element(json_object_get_array_member(subjects, "sha256"), 0),
	    ==,
	    10);
	params = REQ(items, 2)->chosen_parameters;
	g_assert_true(kl_json_object_get_int(params, "starting_offset", &offset, &error));
	g_assert_cmpint(offset, ==, 0);
	/* read-only for plugins */
	g_assert_true(json_object_is_immutable(params));
	g_assert_true(json_object_is_immutable(REQ(items, 0)->chosen_parameters));
	/* parsed, not yet resolved to a plugin */
	g_assert_null(REQ(items, 0)->plugin);
	/* as the debug log names them */
	{
		g_autofree gchar *types = kl_evidence_requests_describe(items);
		g_autoptr(GPtrArray) none = g_ptr_array_new();
		g_autofree gchar *no_types = kl_evidence_requests_describe(none);
		g_autofree gchar *null_types = kl_evidence_requests_describe(NULL);

		g_assert_cmpstr(types, ==, "tpm_quote, uefi_log, ima_log");
		g_assert_cmpstr(no_types, ==, "");
		g_assert_cmpstr(null_types, ==, "");
		g_ptr_array_set_size(items, 1);
		g_clear_pointer(&types, g_free);
		types = kl_evidence_requests_describe(items);
		g_assert_cmpstr(types, ==, "tpm_quote");
	}
}

/* replaces the first @from in @text by @to */
G_GNUC_NO_INLINE static gchar *
replace_once(const gchar *text, const gchar *from, const gchar *to)
{
	GString *out = g_string_new(text);
	const gchar *at = strstr(text, from);
	gsize pos;

	g_assert_nonnull(at);
	pos = (gsize)(at - text);
	g_string_erase(out, (gssize)pos, (gssize)strlen(from));
	g_string_insert(out, (gssize)pos, to);
	return g_string_free(out, FALSE);
}

/*
 * The agent keeps the parameters of the previous answer: byte-identical
 * chosen_parameters are the same sealed object, a new challenge rebuilds only
 * that member, a new starting_offset is never served from the memo.
 */
static void
test_parse_evidence_requested_memo(void)
{
	gsize len = 0;
	g_autofree gchar *body = fixture("attestation-201.json", &len);
	g_autofree gchar *next = NULL;
	g_autofree gchar *later = NULL;
	g_autoptr(GPtrArray) memos =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_json_object_memo_free);
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) a = NULL;
	g_autoptr(GPtrArray) b = NULL;
	g_autoptr(GPtrArray) c = NULL;
	JsonObject *pa;
	JsonObject *pb;

	a = kl_verifier_parse_evidence_requested_memo(body, len, memos, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(memos->len, ==, 3);

	/* the next cycle: another challenge and starting_offset, the rest as it was */
	next = replace_once(body, "DWeAjqPTWOsZNYDrrn28bQ==", "AAAAAAAAAAAAAAAAAAAAAA==");
	later = replace_once(next, "\"starting_offset\": 0", "\"starting_offset\": 7");
	b = kl_verifier_parse_evidence_requested_memo(later, strlen(later), memos, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(b->len, ==, 3);

	/* uefi_log: the same object */
	g_assert_true(REQ(a, 1)->chosen_parameters == REQ(b, 1)->chosen_parameters);
	/* tpm_quote: the new challenge, the key's node shared */
	pa = REQ(a, 0)->chosen_parameters;
	pb = REQ(b, 0)->chosen_parameters;
	g_assert_true(pa != pb);
	g_assert_true(json_object_is_immutable(pb));
	g_assert_cmpstr(
	    json_object_get_string_member(pa, "challenge"), ==, "DWeAjqPTWOsZNYDrrn28bQ==");
	g_assert_cmpstr(
	    json_object_get_string_member(pb, "challenge"), ==, "AAAAAAAAAAAAAAAAAAAAAA==");
	g_assert_true(json_object_get_member(pa, "certification_key") ==
		      json_object_get_member(pb, "certification_key"));
	/* ima_log: the new offset */
	g_assert_true(REQ(a, 2)->chosen_parameters != REQ(b, 2)->chosen_parameters);
	g_assert_cmpint(
	    json_object_get_int_member(REQ(b, 2)->chosen_parameters, "starting_offset"), ==, 7);
	g_assert_cmpint(
	    json_object_get_int_member(REQ(a, 2)->chosen_parameters, "starting_offset"), ==, 0);

	/* items in another order: each gets its own parameters, never another's */
	{
		const gchar *swapped =
		    "{\"data\":{\"attributes\":{\"evidence_requested\":["
		    "{\"evidence_class\":\"log\",\"evidence_type\":\"ima_log\","
		    "\"chosen_parameters\":{\"starting_offset\":9,\"format\":\"text/plain\"}},"
		    "{\"evidence_class\":\"log\",\"evidence_type\":\"uefi_log\","
		    "\"chosen_parameters\":{\"format\":\"application/octet-stream\"}}]}}}";

		c = kl_verifier_parse_evidence_requested_memo(
		    swapped, strlen(swapped), memos, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(REQ(c, 0)->evidence_type, ==, "ima_log");
		g_assert_cmpint(
		    json_object_get_int_member(REQ(c, 0)->chosen_parameters, "starting_offset"),
		    ==,
		    9);
		g_assert_false(json_object_has_member(REQ(c, 0)->chosen_parameters, "challenge"));
		g_assert_cmpstr(
		    json_object_get_string_member(REQ(c, 1)->chosen_parameters, "format"),
		    ==,
		    "application/octet-stream");
		g_assert_false(
		    json_object_has_member(REQ(c, 1)->chosen_parameters, "starting_offset"));
	}
}

static void
test_parse_evidence_requested_bad(void)
{
	const gchar *bodies[] = {
		"{",
		"{\"data\":{}}",
		"{\"data\":{\"attributes\":{\"evidence_requested\":{}}}}",
		"{\"data\":{\"attributes\":{\"evidence_requested\":[1]}}}",
		"{\"data\":{\"attributes\":{\"evidence_requested\":[{\"evidence_class\":\"log\"}]}}"
		"}",
		"{\"data\":{\"attributes\":{\"evidence_requested\":[{\"evidence_class\":\"log\","
		"\"evidence_type\":\"ima_log\",\"chosen_parameters\":[]}]}}}",
	};

	for (guint i = 0; i < G_N_ELEMENTS(bodies); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) items =
		    kl_verifier_parse_evidence_requested(bodies[i], strlen(bodies[i]), &error);
		g_assert_null(items);
		g_assert_nonnull(error);
	}
	/* no chosen_parameters: an empty object for the plugin */
	{
		const gchar *ok = "{\"data\":{\"attributes\":{\"evidence_requested\":[{"
				  "\"evidence_class\":\"log\",\"evidence_type\":\"uefi_log\"}]}}}";
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) items =
		    kl_verifier_parse_evidence_requested(ok, strlen(ok), &error);
		g_assert_no_error(error);
		g_assert_cmpuint(items->len, ==, 1);
		g_assert_cmpuint(json_object_get_size(REQ(items, 0)->chosen_parameters), ==, 0);
		g_assert_true(json_object_is_immutable(REQ(items, 0)->chosen_parameters));
	}
}

static void
test_parse_evidence_requested_many(void)
{
	const gchar *item =
	    "{\"evidence_class\":\"certification\",\"evidence_type\":\"tpm_quote\"}";
	const guint counts[] = { 32, 33, 100000 };

	/* every item costs a TPM command: a verifier cannot make one attestation endless */
	for (guint c = 0; c < G_N_ELEMENTS(counts); c++) {
		g_autoptr(GString) body =
		    g_string_new("{\"data\":{\"attributes\":{\"evidence_requested\":[");
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) items = NULL;

		for (guint i = 0; i < counts[c]; i++)
			g_string_append_printf(body, "%s%s", i > 0 ? "," : "", item);
		g_string_append(body, "]}}}");
		items = kl_verifier_parse_evidence_requested(body->str, body->len, &error);
		if (counts[c] <= 32) {
			g_assert_no_error(error);
			g_assert_cmpuint(items->len, ==, counts[c]);
		} else {
			g_assert_null(items);
			g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
			g_assert_nonnull(strstr(error->message, "at most 32"));
		}
	}
}

static void
test_parse_seconds_to_next(void)
{
	gsize len = 0;
	g_autofree gchar *body = fixture("attestation-202.json", &len);
	gint64 seconds = -1;

	g_assert_true(kl_verifier_parse_seconds_to_next(body, len, &seconds));
	g_assert_cmpint(seconds, ==, 2);
	{
		const gchar *frac = "{\"meta\":{\"seconds_to_next_attestation\":2.6}}";
		g_assert_true(kl_verifier_parse_seconds_to_next(frac, strlen(frac), &seconds));
	}
	g_assert_cmpint(seconds, ==, 3);
	g_assert_false(kl_verifier_parse_seconds_to_next("{}", 2, &seconds));
	{
		const gchar *str = "{\"meta\":{\"seconds_to_next_attestation\":\"2\"}}";
		g_assert_false(kl_verifier_parse_seconds_to_next(str, strlen(str), &seconds));
	}
	g_assert_false(kl_verifier_parse_seconds_to_next("", 0, &seconds));
}

static void
test_describe_errors(void)
{
	gsize len = 0;
	g_autofree gchar *e422 = fixture("errors-422.json", &len);
	g_autofree gchar *text = kl_verifier_describe_errors(e422, len);
	g_autofree gchar *e401 = NULL;
	g_autofree gchar *text401 = NULL;

	g_assert_cmpstr(text,
			==,
			"Attribute 'evidence' must contain at least the PCRs requested "
			"(invalid_resource_data)");
	e401 = fixture("errors-401.json", &len);
	text401 = kl_verifier_describe_errors(e401, len);
	g_assert_cmpstr(text401, ==, "Authentication token expired");
	/* empty bodies (framework errors) */
	g_assert_null(kl_verifier_describe_errors("", 0));
	g_assert_null(kl_verifier_describe_errors("<html>", 6));
}

static void
test_build_bodies(void)
{
	g_autoptr(GPtrArray) entries =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_evidence_entry_free);
	g_autoptr(GPtrArray) supported =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_autoptr(GBytes) attest = g_bytes_new_static("ATTEST", 6);
	g_autoptr(GBytes) sig = g_bytes_new_static("SIG", 3);
	g_autofree gchar *session = NULL;
	g_autofree gchar *proof = NULL;
	g_autofree gchar *caps = NULL;
	g_autofree gchar *evidence = NULL;
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	JsonObject *entry = json_object_new();
	JsonObject *data = json_object_new();
	gsize len = 0;

	session = kl_verifier_build_session_request("agent-1", &len);
	g_assert_cmpstr(session,
			==,
			"{\"data\":{\"type\":\"session\",\"attributes\":{\"agent_id\":\"agent-1\","
			"\"authentication_supported\":[{\"authentication_class\":\"pop\","
			"\"authentication_type\":\"tpm_pop\"}]}}}");
	g_assert_cmpuint(len, ==, strlen(session));
	proof = kl_verifier_build_session_proof("sid", "agent-1", attest, sig, &len);
	g_assert_nonnull(strstr(proof, "\"id\":\"sid\""));
	g_assert_nonnull(strstr(proof, "\"message\":\"QVRURVNU\""));
	g_assert_nonnull(strstr(proof, "\"signature\":\"U0lH\""));

	json_object_set_string_member(data, "entries", "10 abc ima-ng sha256:00 /bin/x\n");
	g_ptr_array_add(entries, kl_evidence_entry_new_for("log", "ima_log", data));
	kl_verifier_build_evidence(entries, body);
	/* the entries stay with the caller (kl_verifier_client_submit_evidence() drops them) */
	g_assert_cmpuint(entries->len, ==, 1);
	evidence = kl_json_body_to_string(body, &len);
	g_assert_cmpuint(len, ==, strlen(evidence));
	g_assert_cmpstr(
	    evidence,
	    ==,
	    "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_collected\":"
	    "[{\"evidence_class\":\"log\",\"evidence_type\":\"ima_log\",\"data\":"
	    "{\"entries\":\"10 abc ima-ng sha256:00 /bin/x\\n\"}}]}}}");
	json_object_set_string_member(entry, "evidence_class", "log");
	json_object_set_string_member(entry, "evidence_type", "ima_log");
	json_object_set_object_member(entry, "capabilities", json_object_new());
	g_ptr_array_add(supported, entry);
	caps = kl_verifier_build_capabilities(supported, "2026-11-23T10:00:00Z", &len);
	g_assert_nonnull(strstr(caps, "\"evidence_supported\":[{"));
	g_assert_nonnull(strstr(caps, "\"system_info\":{\"boot_time\":\"2026-11-23T10:00:00Z\"}"));
}

/*
 * json-glib's generator's text of @node, but for U+001F, which json-glib 1.6
 * writes unescaped (invalid JSON; the agent writes "\u001f"): a raw 0x1f in
 * its output can only be that character of a string
 */
static gchar *
json_glib_text(JsonNode *node)
{
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autofree gchar *generated = NULL;
	g_auto(GStrv) parts = NULL;

	json_generator_set_root(generator, node);
	generated = json_generator_to_data(generator, NULL);
	parts = g_strsplit(generated, "\x1f", -1);
	return g_strjoinv("\\u001f", parts);
}

/*
 * The evidence body is written from each entry's head (its envelope's text,
 * made once) and its data: the same bytes as json-glib's generator writes for
 * the whole document as one tree, escapes in the class and type included.
 */
static void
test_build_evidence_as_json_glib(void)
{
	static const struct {
		const gchar *evidence_class;
		const gchar *evidence_type;
	} envelopes[] = {
		{ "certification", "tpm_quote" },
		{ "log", "ima_log" },
		{ "log", "uefi_log" },
		{ "lo\"g", "back\\slash/sl" },
		{ "\x01\x1f\b\f\n\r\t", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91" },
		{ "", "\x7f<>&'" },
	};
	g_autoptr(GPtrArray) entries =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_evidence_entry_free);
	g_autoptr(JsonArray) collected = json_array_new();
	g_autoptr(JsonObject) root = json_object_new();
	JsonObject *doc_data = json_object_new();
	JsonObject *attributes = json_object_new();
	g_autoptr(JsonNode) root_node = NULL;
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autofree gchar *theirs = NULL;
	g_autofree gchar *ours = NULL;
	gchar *head;

	for (guint i = 0; i < G_N_ELEMENTS(envelopes); i++) {
		JsonObject *data = json_object_new();
		JsonObject *nested = json_object_new();
		JsonArray *list = json_array_new();
		JsonObject *tree_entry = json_object_new();
		g_autoptr(JsonNode) one_node = NULL;
		g_autofree gchar *one_text = NULL;
		g_autofree gchar *text = NULL;

		json_object_set_string_member(data, "message", "/1QYAC\"x\\\n");
		json_object_set_int_member(data, "entry_count", -(gint64)i * 1000003);
		json_object_set_boolean_member(nested, "partial", i % 2 == 0);
		json_object_set_null_member(nested, "none");
		json_array_add_string_element(list, envelopes[i].evidence_type);
		json_array_add_int_element(list, (gint64)i);
		json_object_set_array_member(nested, "list", list);
		json_object_set_object_member(data, "nested", nested);
		json_object_set_string_member(
		    tree_entry, "evidence_class", envelopes[i].evidence_class);
		json_object_set_string_member(
		    tree_entry, "evidence_type", envelopes[i].evidence_type);
		json_object_set_object_member(tree_entry, "data", json_object_ref(data));
		json_array_add_object_element(collected, tree_entry);
		/* one head shared by two entries (a plugin's), or one made for the entry */
		if (i % 2 == 0) {
			head = kl_evidence_entry_head_new(envelopes[i].evidence_class,
							  envelopes[i].evidence_type);
			g_ptr_array_add(entries, kl_evidence_entry_new(head, data));
			g_ref_string_release(head);
		} else {
			g_ptr_array_add(entries,
					kl_evidence_entry_new_for(envelopes[i].evidence_class,
								  envelopes[i].evidence_type,
								  data));
		}
		/* one entry alone: the same text as json-glib writes for its tree */
		one_node = json_node_init_object(json_node_alloc(), tree_entry);
		one_text = json_glib_text(one_node);
		text = kl_evidence_entry_to_string(g_ptr_array_index(entries, i));
		g_assert_cmpstr(text, ==, one_text);
	}
	json_object_set_string_member(doc_data, "type", "attestation");
	json_object_set_array_member(attributes, "evidence_collected", json_array_ref(collected));
	json_object_set_object_member(doc_data, "attributes", attributes);
	json_object_set_object_member(root, "data", doc_data);
	root_node = json_node_init_object(json_node_alloc(), root);
	theirs = json_glib_text(root_node);

	kl_verifier_build_evidence(entries, body);
	ours = kl_json_body_to_string(body, NULL);
	g_assert_cmpstr(ours, ==, theirs);
	g_assert_cmpuint(kl_json_body_get_size(body), ==, strlen(theirs));
}

static void
test_urls(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlVerifierClient) client = kl_verifier_client_new(
	    NULL, "https://v.example:8881/", "3.0", "agent-1", FALSE, &error);
	g_autofree gchar *sessions = NULL;
	g_autofree gchar *session = NULL;
	g_autofree gchar *att = NULL;
	g_autofree gchar *latest = NULL;

	g_assert_no_error(error);
	sessions = kl_verifier_client_sessions_url(client, NULL);
	g_assert_cmpstr(sessions, ==, "https://v.example:8881/v3.0/sessions");
	session = kl_verifier_client_sessions_url(client, "s1");
	g_assert_cmpstr(session, ==, "https://v.example:8881/v3.0/sessions/s1");
	att = kl_verifier_client_attestations_url(client, NULL);
	g_assert_cmpstr(att, ==, "https://v.example:8881/v3.0/agents/agent-1/attestations");
	latest = kl_verifier_client_attestations_url(client, "latest");
	g_assert_cmpstr(
	    latest, ==, "https://v.example:8881/v3.0/agents/agent-1/attestations/latest");
}

static void
test_evidence_url(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlVerifierClient) client =
	    kl_verifier_client_new(NULL, "https://v.example:8881", NULL, "agent-1", FALSE, &error);
	const struct {
		const gchar *location;
		const gchar *url;
	} cases[] = {
		{ "/v3.0/agents/agent-1/attestations/4",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/4" },
		/* the verifier's missing "v" */
		{ "/3/agents/agent-1/attestations/0",
		  "https://v.example:8881/v3/agents/agent-1/attestations/0" },
		{ "/3.0/agents/agent-1/attestations/17",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/17" },
		{ "/3x/agents/agent-1/attestations/0",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/x3/agents/agent-1/attestations/0",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/3/agents/agent-1/attestations/",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/a-Z_9.1",
		  "https://v.example:8881/v3/agents/agent-1/attestations/a-Z_9.1" },
		{ "/v3/agents/agent-1/attestations/2!",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/2/x",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-10/attestations/2",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "https://v.example:8881/v3/agents/agent-1/attestations/2",
		  "https://v.example:8881/v3/agents/agent-1/attestations/2" },
		{ "https://v.example:443/v3/agents/agent-1/attestations/2",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "https://evil.example:8881/v3/agents/agent-1/attestations/2",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		/* another agent's attestation, or something else entirely */
		{ "/v3/agents/agent-2/attestations/2",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/sessions",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/2?x=1",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		/* percent-encoded bytes are never decoded into the URL the agent builds */
		{ "/v3/agents/agent-1/attestations/2%0d%0aX-Injected:%201",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/2%3Fx=1",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/..%2F..%2Fsessions",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		/* an encoded unreserved character is that character (RFC 3986 6.2.2.2) */
		{ "/v3/agents/agent-1/attestations/%32",
		  "https://v.example:8881/v3/agents/agent-1/attestations/2" },
		{ "/v3/agents/agent-1/attestations/latest",
		  "https://v.example:8881/v3/agents/agent-1/attestations/latest" },
		/* dot segments are resolved first; anything odd is not taken as it is */
		{ "/v3/agents/agent-1/./attestations/3",
		  "https://v.example:8881/v3/agents/agent-1/attestations/3" },
		{ "/v3/agents/agent-1/attestations/../../agent-2/attestations/3",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/..",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/3#x",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/3 x",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "/v3/agents/agent-1/attestations/3\\x",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ "//evil.example/v3/agents/agent-1/attestations/3",
		  "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
		{ NULL, "https://v.example:8881/v3.0/agents/agent-1/attestations/latest" },
	};

	g_assert_no_error(error);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *url = kl_verifier_client_evidence_url(client, cases[i].location);
		g_assert_cmpstr(url, ==, cases[i].url);
	}
}

static void
test_scheme_check(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlVerifierClient) plain =
	    kl_verifier_client_new(NULL, "http://v.example:8881", NULL, "a", FALSE, &error);
	g_autoptr(KlVerifierClient) insecure = NULL;

	g_assert_null(plain);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "https"));
	g_clear_error(&error);
	/* allowed with tls_accept_invalid_certs (--insecure) */
	insecure = kl_verifier_client_new(NULL, "http://v.example:8881", NULL, "a", TRUE, &error);
	g_assert_no_error(error);
	g_assert_nonnull(insecure);
	g_assert_null(kl_verifier_client_new(NULL, "", NULL, "a", TRUE, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	g_assert_null(kl_verifier_client_new(NULL, "ftp://x", NULL, "a", TRUE, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
}

static void
test_boot_time(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-net-XXXXXX", NULL);
	g_autofree gchar *path = g_build_filename(dir, "stat", NULL);
	g_autofree gchar *text = NULL;
	g_autoptr(GError) error = NULL;
	gint64 btime = 0;

	g_assert_true(g_file_set_contents(
	    path, "cpu  1 2 3\nintr 5\nbtime 1795428000\nprocesses 9\n", -1, NULL));
	g_assert_true(kl_read_boot_time(path, &btime, &error));
	g_assert_cmpint(btime, ==, G_GINT64_CONSTANT(1795428000));
	text = kl_format_boot_time(btime);
	g_assert_cmpstr(text, ==, "2026-11-23T10:00:00Z");
	g_assert_true(g_file_set_contents(path, "cpu 1\n", -1, NULL));
	g_assert_false(kl_read_boot_time(path, &btime, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_unlink(path);
	g_rmdir(dir);
	/* the real one is readable here */
	g_clear_error(&error);
	g_assert_true(kl_read_boot_time("/proc/stat", &btime, &error));
	g_assert_cmpint(btime, >, 0);
	/* server timestamps */
	g_assert_cmpint(kl_parse_timestamp("2026-11-23T14:35:11.708067+00:00"),
			==,
			G_GINT64_CONSTANT(1795444511));
	g_assert_cmpint(
	    kl_parse_timestamp("2026-11-23T14:35:11Z"), ==, G_GINT64_CONSTANT(1795444511));
	g_assert_cmpint(kl_parse_timestamp("yesterday"), ==, -1);
}

/* ---- typed answers: one scripted verifier answer per exchange ---- */

typedef struct {
	guint status; /* 0: no answer (network error) */
	const gchar *body;
	gint64 retry_after_s;
	gchar *method; /* of the request */
	gsize request_len;
} Scripted;

static KlHttpResponse *
scripted_transport(const gchar *method,
		   const gchar *url,
		   const gchar *const *headers,
		   const gchar *body,
		   gsize body_len,
		   gpointer user_data,
		   GCancellable *cancellable,
		   GError **error)
{
	Scripted *script = user_data;
	KlHttpResponse *response;

	g_free(script->method);
	script->method = g_strdup(method);
	script->request_len = body_len;
	if (script->status == 0) {
		g_set_error_literal(error, KL_ERROR, KL_ERROR_NETWORK, "connection refused");
		return NULL;
	}
	response = kl_http_response_new(script->status, script->body);
	response->retry_after_s = script->retry_after_s;
	return response;
}

typedef enum { SESSION, PROOF, OFFER, SUBMIT } Exchange;

/* @data: the evidence of SUBMIT (NULL: a short one) */
static KlVerifierResult
exchange(Exchange which,
	 guint status,
	 const gchar *body,
	 gint64 retry_after_s,
	 const gchar *data,
	 KlVerifierAnswer *answer)
{
	KlHttpOptions options = { .name = "verifier", .timeout_ms = 1000 };
	Scripted script = { status, body != NULL ? body : "", retry_after_s, NULL, 0 };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlHttp) http = kl_http_new(&options, &error);
	g_autoptr(KlVerifierClient) client = NULL;
	g_autoptr(GPtrArray) supported =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_autoptr(GPtrArray) collected =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_evidence_entry_free);
	g_autoptr(GBytes) attest = g_bytes_new_static("attest", 6);
	g_autoptr(GBytes) signature = g_bytes_new_static("sig", 3);
	g_autoptr(KlJsonBody) evidence_body = kl_json_body_new();
	KlVerifierResult result;
	JsonObject *entry;

	g_assert_no_error(error);
	kl_http_set_transport(http, scripted_transport, &script);
	kl_http_set_bearer_token(http, "https://v.example:8881", "token");
	client =
	    kl_verifier_client_new(http, "https://v.example:8881", NULL, "agent-1", FALSE, &error);
	g_assert_no_error(error);
	switch (which) {
	case SESSION:
		result = kl_verifier_client_create_session(client, NULL, answer);
		break;
	case PROOF:
		result =
		    kl_verifier_client_prove_session(client, "7", attest, signature, NULL, answer);
		break;
	case OFFER:
		entry = json_object_new();
		json_object_set_string_member(entry, "evidence_class", "certification");
		json_object_set_string_member(entry, "evidence_type", "tpm_quote");
		g_ptr_array_add(supported, entry);
		result = kl_verifier_client_offer_capabilities(
		    client, supported, "2026-11-23T10:00:00Z", NULL, answer);
		break;
	default:
		entry = json_object_new();
		json_object_set_string_member(entry, "message", data != NULL ? data : "x");
		g_ptr_array_add(collected,
				kl_evidence_entry_new_for("certification", "tpm_quote", entry));
		result = kl_verifier_client_submit_evidence(
		    client, NULL, collected, evidence_body, NULL, answer);
		/* the entries are gone before the upload */
		g_assert_cmpuint(collected->len, ==, 0);
		g_assert_cmpuint(answer->sent_bytes, ==, script.request_len);
		g_assert_cmpuint(answer->sent_bytes, >, 0);
		break;
	}
	g_assert_cmpint(result, ==, answer->result);
	g_assert_cmpuint(answer->status, ==, status);
	if (result == KL_VERIFIER_OK)
		g_assert_null(answer->error);
	else
		g_assert_nonnull(answer->error);
	g_free(script.method);
	return result;
}

static void
test_answers(void)
{
	gsize len = 0;
	g_autofree gchar *challenge = fixture("session-challenge-200.json", &len);
	g_autofree gchar *pass = fixture("session-pass-200.json", &len);
	g_autofree gchar *fail = fixture("session-fail-200.json", &len);
	g_autofree gchar *requested = fixture("attestation-201.json", &len);
	g_autofree gchar *accepted = fixture("attestation-202.json", &len);
	g_autofree gchar *e422 = fixture("errors-422.json", &len);
	const gchar *none_requested =
	    "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_requested\":[]}}}";
	struct {
		Exchange which;
		guint status;
		const gchar *body;
		gint64 retry_after_s;
		KlVerifierResult result;
		gint64 retry_after_ms;
		const gchar *message; /* a part of the error message */
	} cases[] = {
		{ SESSION, 200, challenge, -1, KL_VERIFIER_OK, -1, NULL },
		{ SESSION, 0, NULL, -1, KL_VERIFIER_FAILED, -1, "connection refused" },
		{ SESSION, 200, "{}", -1, KL_VERIFIER_FAILED, -1, NULL },
		{ SESSION,
		  429,
		  "",
		  7,
		  KL_VERIFIER_FAILED,
		  7000,
		  "creating a session: the verifier answered HTTP 429" },
		{ SESSION, 500, "", 7, KL_VERIFIER_FAILED, -1, "HTTP 500" },
		{ PROOF, 200, pass, -1, KL_VERIFIER_OK, -1, NULL },
		{ PROOF,
		  200,
		  fail,
		  -1,
		  KL_VERIFIER_NOT_ENROLLED,
		  -1,
		  "keylime_tenant -c add --push-model -u agent-1" },
		{ PROOF,
		  401,
		  "",
		  -1,
		  KL_VERIFIER_UNAUTHORIZED,
		  -1,
		  "proof of possession for agent agent-1" },
		{ PROOF, 503, "", 3, KL_VERIFIER_FAILED, 3000, "completing the session" },
		{ OFFER, 201, requested, -1, KL_VERIFIER_OK, -1, NULL },
		{ OFFER, 201, none_requested, -1, KL_VERIFIER_FAILED, -1, "requested no evidence" },
		{ OFFER, 201, "[", -1, KL_VERIFIER_FAILED, -1, NULL },
		{ OFFER,
		  401,
		  "",
		  -1,
		  KL_VERIFIER_UNAUTHORIZED,
		  -1,
		  "offering capabilities: the verifier answered HTTP 401" },
		{ OFFER, 403, "", 9, KL_VERIFIER_FAILED, -1, "HTTP 403" },
		{ OFFER, 404, "", -1, KL_VERIFIER_NOT_ENROLLED, -1, "not enrolled" },
		{ OFFER, 409, "", -1, KL_VERIFIER_CONFLICT, -1, "HTTP 409" },
		{ OFFER, 422, e422, -1, KL_VERIFIER_FAILED, -1, "HTTP 422: " },
		{ OFFER, 429, "", 11, KL_VERIFIER_FAILED, 11000, "HTTP 429" },
		{ SUBMIT, 202, accepted, -1, KL_VERIFIER_OK, -1, NULL },
		{ SUBMIT, 401, "", -1, KL_VERIFIER_UNAUTHORIZED, -1, "submitting evidence" },
		{ SUBMIT,
		  403,
		  "{\"errors\":[{\"detail\":\"old_attestation\"}]}",
		  -1,
		  KL_VERIFIER_ROUND_OVER,
		  -1,
		  "HTTP 403" },
		{ SUBMIT, 403, "challenges_expired", -1, KL_VERIFIER_ROUND_OVER, -1, NULL },
		{ SUBMIT, 403, "evidence_immutable", -1, KL_VERIFIER_ROUND_OVER, -1, NULL },
		{ SUBMIT, 403, "", -1, KL_VERIFIER_FAILED, -1, "HTTP 403" },
		{ SUBMIT, 413, "", -1, KL_VERIFIER_TOO_LARGE, -1, "max_upload_size" },
		/* a small upload: a 400 without a body is not about its size */
		{ SUBMIT, 400, "", -1, KL_VERIFIER_FAILED, -1, "HTTP 400" },
		{ SUBMIT, 503, "", 2, KL_VERIFIER_FAILED, 2000, "HTTP 503" },
		{ SUBMIT, 0, NULL, -1, KL_VERIFIER_FAILED, -1, "connection refused" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_auto(KlVerifierAnswer) answer = { 0 };

		g_test_message("case %u: HTTP %u", i, cases[i].status);
		g_assert_cmpstr(kl_verifier_result_to_string(exchange(cases[i].which,
								      cases[i].status,
								      cases[i].body,
								      cases[i].retry_after_s,
								      NULL,
								      &answer)),
				==,
				kl_verifier_result_to_string(cases[i].result));
		g_assert_cmpint(answer.retry_after_ms, ==, cases[i].retry_after_ms);
		if (cases[i].message != NULL)
			g_assert_nonnull(strstr(answer.error->message, cases[i].message));
		if (answer.result != KL_VERIFIER_OK)
			continue;
		switch (cases[i].which) {
		case SESSION:
			g_assert_cmpstr(
			    answer.session_id, ==, "0024f423-c785-4683-9c2b-3ff2b27e3631");
			g_assert_cmpuint(g_bytes_get_size(answer.challenge), ==, 16);
			break;
		case PROOF:
			g_assert_true(answer.session.pass);
			g_assert_nonnull(answer.session.token);
			break;
		case OFFER:
			g_assert_cmpuint(answer.requested->len, >, 0);
			break;
		case SUBMIT:
			g_assert_cmpint(answer.seconds_to_next, >=, 0);
			break;
		}
	}
}

/* Keylime's web server refuses a body above max_upload_size with a 400 without a body */
static void
test_answer_too_large(void)
{
	g_autofree gchar *data = g_strnfill(2 * 1024 * 1024, 'a');
	g_auto(KlVerifierAnswer) answer = { 0 };

	g_assert_cmpint(exchange(SUBMIT, 400, "", -1, data, &answer), ==, KL_VERIFIER_TOO_LARGE);
	g_assert_nonnull(strstr(answer.error->message, "evidence of 2.0 MiB"));
	g_assert_nonnull(strstr(answer.error->message, "HTTP 400 without a body"));
	/* with a body, the 400 is about something else */
	g_assert_cmpint(
	    exchange(SUBMIT, 400, "{\"errors\":[{\"detail\":\"bad\"}]}", -1, data, &answer),
	    ==,
	    KL_VERIFIER_FAILED);
	g_assert_nonnull(strstr(answer.error->message, "HTTP 400: bad"));
}

static void
test_answer_seconds_to_next(void)
{
	const struct {
		const gchar *body;
		gint64 seconds;
	} cases[] = {
		{ "{\"meta\":{\"seconds_to_next_attestation\":42}}", 42 },
		/* given but negative: the caller's lower bound applies, not its default */
		{ "{\"meta\":{\"seconds_to_next_attestation\":-5}}", 0 },
		{ "{\"meta\":{}}", -1 },
		{ "", -1 },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_auto(KlVerifierAnswer) answer = { 0 };

		g_assert_cmpint(
		    exchange(SUBMIT, 202, cases[i].body, -1, NULL, &answer), ==, KL_VERIFIER_OK);
		g_assert_cmpint(answer.seconds_to_next, ==, cases[i].seconds);
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/verifier/session-challenge", test_parse_session_challenge);
	g_test_add_func("/verifier/session-challenge-bad", test_parse_session_challenge_bad);
	g_test_add_func("/verifier/session-result", test_parse_session_result);
	g_test_add_func("/verifier/evidence-requested", test_parse_evidence_requested);
	g_test_add_func("/verifier/evidence-requested-memo", test_parse_evidence_requested_memo);
	g_test_add_func("/verifier/evidence-requested-bad", test_parse_evidence_requested_bad);
	g_test_add_func("/verifier/evidence-requested-many", test_parse_evidence_requested_many);
	g_test_add_func("/verifier/seconds-to-next", test_parse_seconds_to_next);
	g_test_add_func("/verifier/describe-errors", test_describe_errors);
	g_test_add_func("/verifier/build-bodies", test_build_bodies);
	g_test_add_func("/verifier/build-evidence-as-json-glib", test_build_evidence_as_json_glib);
	g_test_add_func("/verifier/urls", test_urls);
	g_test_add_func("/verifier/evidence-url", test_evidence_url);
	g_test_add_func("/verifier/scheme-check", test_scheme_check);
	g_test_add_func("/verifier/boot-time", test_boot_time);
	g_test_add_func("/verifier/answers", test_answers);
	g_test_add_func("/verifier/answer-too-large", test_answer_too_large);
	g_test_add_func("/verifier/answer-seconds-to-next", test_answer_seconds_to_next);
	return g_test_run();
}
