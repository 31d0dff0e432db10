/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the parsers of verifier answers (phase-1 201, session
 * answers, 202 meta, JSON:API errors).
 */
#include "config.h"

#include <stdint.h>

#include "kl-fuzz.h"
#include "kl-verifier-client.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
