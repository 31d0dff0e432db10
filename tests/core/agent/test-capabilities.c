/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The phase-1 body written from cached entry texts says exactly what
 * kl_verifier_build_capabilities() says, round after round, when entries
 * change, stay (sealed) or are modified in place (not sealed).
 */
#include "config.h"

#include <string.h>

#include "kl-capabilities.h"
#include "kl-verifier-client.h"

static JsonObject *
kl_test_entry(const gchar *type, gint64 count)
{
	JsonObject *entry = json_object_new();
	JsonObject *caps = json_object_new();
	JsonArray *formats = json_array_new();

	json_array_add_string_element(formats, "text/plain");
	json_object_set_int_member(caps, "entry_count", count);
	json_object_set_string_member(caps, "odd \"text\"\n", "\x1f\\");
	json_object_set_array_member(caps, "formats", formats);
	json_object_set_string_member(entry, "evidence_class", "log");
	json_object_set_string_member(entry, "evidence_type", type);
	json_object_set_object_member(entry, "capabilities", caps);
	return entry;
}

static void
kl_test_same_body(KlCapabilitiesBody *body, GPtrArray *entries, const gchar *boot_time)
{
	g_autofree gchar *want = NULL;
	const gchar *got;
	gsize want_len = 0;
	gsize got_len = 0;

	want = kl_verifier_build_capabilities(entries, boot_time, &want_len);
	got = kl_capabilities_body_build(body, entries, boot_time, &got_len);
	g_assert_cmpstr(got, ==, want);
	g_assert_cmpuint(got_len, ==, want_len);
	g_assert_cmpuint(strlen(got), ==, got_len);
}

/* @n rounds of @entries: the last body is sent again (@reused) or written */
static void
kl_test_rounds(
    KlCapabilitiesBody *body, GPtrArray *entries, const gchar *boot_time, guint n, gboolean reused)
{
	guint64 before = kl_capabilities_body_get_reused(body);

	for (guint i = 0; i < n; i++)
		kl_test_same_body(body, entries, boot_time);
	g_assert_cmpuint(kl_capabilities_body_get_reused(body) - before, ==, reused ? n : 0);
}

static void
test_capabilities_body(void)
{
	g_autoptr(KlCapabilitiesBody) body = kl_capabilities_body_new();
	g_autoptr(GPtrArray) entries =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_autoptr(JsonObject) sealed = kl_test_entry("tpm_quote", 1);
	JsonObject *mutable_entry = kl_test_entry("ima_log", 10);

	json_object_seal(sealed);
	g_ptr_array_add(entries, json_object_ref(sealed));
	g_ptr_array_add(entries, mutable_entry);
	kl_test_same_body(body, entries, "2026-01-01T00:00:00Z");
	/* the same objects again: the sealed one is reused, the other written again */
	json_object_set_int_member(
	    json_object_get_object_member(mutable_entry, "capabilities"), "entry_count", 11);
	kl_test_same_body(body, entries, "2026-01-01T00:00:00Z");
	/* another boot time */
	kl_test_same_body(body, entries, "2026-01-02T00:00:00\"Z");
	/* entries in another order, one replaced, one gone, none at all */
	g_ptr_array_remove_index(entries, 0);
	g_ptr_array_add(entries, kl_test_entry("uefi_log", 3));
	g_ptr_array_add(entries, json_object_ref(sealed));
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
	g_ptr_array_remove_index(entries, 1);
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
	/* the same sealed entry twice, then once again */
	g_ptr_array_add(entries, json_object_ref(sealed));
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
	g_ptr_array_remove_index(entries, entries->len - 1);
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
	g_ptr_array_set_size(entries, 0);
	kl_test_same_body(body, entries, "2026-01-02T00:00:00Z");
}

/*
 * The whole body is sent again only while it is the same: every entry the
 * same sealed object in the same place, and the same boot time; any change
 * writes it again.
 */
static void
test_capabilities_body_reused(void)
{
	g_autoptr(KlCapabilitiesBody) body = kl_capabilities_body_new();
	g_autoptr(GPtrArray) entries =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_autoptr(JsonObject) quote = kl_test_entry("tpm_quote", 1);
	g_autoptr(JsonObject) uefi = kl_test_entry("uefi_log", 2);
	g_autoptr(JsonObject) ima = kl_test_entry("ima_log", 3);
	g_autoptr(JsonObject) ima_more = kl_test_entry("ima_log", 4);
	JsonObject *open_entry = kl_test_entry("ima_log", 5);

	json_object_seal(quote);
	json_object_seal(uefi);
	json_object_seal(ima);
	json_object_seal(ima_more);
	g_ptr_array_add(entries, json_object_ref(quote));
	g_ptr_array_add(entries, json_object_ref(uefi));
	g_ptr_array_add(entries, json_object_ref(ima));
	kl_test_rounds(body, entries, "2026-01-01T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-01T00:00:00Z", 3, TRUE);
	/* a plugin's facts changed: a new sealed object */
	g_ptr_array_index(entries, 2) = json_object_ref(ima_more);
	json_object_unref(ima);
	kl_test_rounds(body, entries, "2026-01-01T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-01T00:00:00Z", 1, TRUE);
	/* another boot time */
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, TRUE);
	/* the same entries in another order */
	g_ptr_array_index(entries, 0) = uefi;
	g_ptr_array_index(entries, 1) = quote;
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, TRUE);
	/* an entry gone (its plugin failed this round), then back */
	g_ptr_array_remove_index(entries, 2);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	g_ptr_array_add(entries, json_object_ref(ima_more));
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, TRUE);
	/* an entry that is not sealed may change in place: written every round */
	g_ptr_array_add(entries, open_entry);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	json_object_set_int_member(
	    json_object_get_object_member(open_entry, "capabilities"), "entry_count", 6);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 2, FALSE);
	g_ptr_array_remove_index(entries, entries->len - 1);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, TRUE);
	/* none at all */
	g_ptr_array_set_size(entries, 0);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, FALSE);
	kl_test_rounds(body, entries, "2026-01-02T00:00:00Z", 1, TRUE);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/capabilities/body", test_capabilities_body);
	g_test_add_func("/capabilities/body-reused", test_capabilities_body_reused);
	return g_test_run();
}
