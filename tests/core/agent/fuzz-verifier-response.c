/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the parsers of verifier answers (phase-1 201, session
 * answers, 202 meta, JSON:API errors).
 */
#include "config.h"

#include <stdint.h>

#include "kl-fuzz.h"
#include "kl-json-doc.h"
#include "kl-verifier-client.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the items parsed with @memos are the items parsed without */
static GPtrArray *
kl_fuzz_parse_memo(const uint8_t *data, size_t size, GPtrArray *memos, GPtrArray *items)
{
	GPtrArray *again =
	    kl_verifier_parse_evidence_requested_memo((const gchar *)data, size, memos, NULL);

	g_assert((again != NULL) == (items != NULL));
	for (guint i = 0; again != NULL && i < again->len; i++) {
		KlEvidenceRequest *a = g_ptr_array_index(items, i);
		KlEvidenceRequest *b = g_ptr_array_index(again, i);

		g_assert(json_object_is_immutable(b->chosen_parameters));
		g_assert(json_object_equal(a->chosen_parameters, b->chosen_parameters));
	}
	return again;
}

/*
 * the memos of earlier inputs, as the agent keeps them from one answer to the
 * next: any input after any other (the replay runs the corpus in order)
 */
static GPtrArray *kl_fuzz_memos;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree gchar *text = g_strndup((const gchar *)data, size);
	g_autoptr(GPtrArray) items = NULL;
	g_autofree gchar *session_id = NULL;
	g_autofree gchar *details = NULL;
	g_autoptr(GBytes) challenge = NULL;
	KlVerifierSession session;
	gint64 seconds = 0;

	items = kl_verifier_parse_evidence_requested((const gchar *)data, size, NULL);
	if (items != NULL) {
		/* what the agent does with each item */
		for (guint i = 0; i < items->len; i++) {
			KlEvidenceRequest *item = g_ptr_array_index(items, i);
			g_assert(item->evidence_type != NULL && item->evidence_class != NULL);
			g_assert(json_object_is_immutable(item->chosen_parameters));
		}
	}
	{
		g_autoptr(GPtrArray) memos =
		    g_ptr_array_new_with_free_func((GDestroyNotify)kl_json_object_memo_free);
		g_autoptr(GPtrArray) first = kl_fuzz_parse_memo(data, size, memos, items);
		g_autoptr(GPtrArray) second = kl_fuzz_parse_memo(data, size, memos, items);
		g_autoptr(GPtrArray) cross = NULL;

		/* the same answer again: the same sealed objects where there were parameters */
		for (guint i = 0; second != NULL && i < second->len; i++) {
			KlEvidenceRequest *a = g_ptr_array_index(first, i);
			KlEvidenceRequest *b = g_ptr_array_index(second, i);

			if (json_object_get_size(a->chosen_parameters) > 0)
				g_assert(a->chosen_parameters == b->chosen_parameters);
		}
		if (kl_fuzz_memos == NULL)
			kl_fuzz_memos = g_ptr_array_new_with_free_func(
			    (GDestroyNotify)kl_json_object_memo_free);
		cross = kl_fuzz_parse_memo(data, size, kl_fuzz_memos, items);
	}
	if (kl_verifier_parse_session_challenge(text, size, &session_id, &challenge, NULL))
		g_assert(g_bytes_get_size(challenge) > 0);
	if (kl_verifier_parse_session_result(text, size, &session, NULL))
		kl_verifier_session_clear(&session);
	(void)kl_verifier_parse_seconds_to_next(text, size, &seconds);
	details = kl_verifier_describe_errors(text, size);
	/* bad-* files hold phase-1 answers that must be refused */
	kl_fuzz_report(items != NULL);
	return 0;
}
