/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keylime-agent/kl-json.h"
#include "kl-evidence-entry.h"
#include "kl-json-body.h"
#include "kl-json-doc.h"

gchar *
kl_evidence_entry_head_new(const gchar *evidence_class, const gchar *evidence_type)
{
	g_autoptr(GString) text = g_string_sized_new(64);

	g_return_val_if_fail(evidence_class != NULL && evidence_type != NULL, NULL);

	/* the members in the order kl_plugin_run_collect()'s object has them */
	g_string_append(text, "{\"evidence_class\":");
	kl_json_append_string(text, evidence_class);
	g_string_append(text, ",\"evidence_type\":");
	kl_json_append_string(text, evidence_type);
	g_string_append(text, ",\"data\":");
	return g_ref_string_new_len(text->str, (gssize)text->len);
}

KlEvidenceEntry *
kl_evidence_entry_new(const gchar *head, JsonObject *data)
{
	KlEvidenceEntry *entry;

	g_return_val_if_fail(head != NULL && data != NULL, NULL);

	entry = g_new(KlEvidenceEntry, 1);
	entry->head = g_ref_string_acquire((gchar *)head);
	entry->data = data;
	entry->attachments = NULL;
	return entry;
}

KlEvidenceEntry *
kl_evidence_entry_new_for(const gchar *evidence_class, const gchar *evidence_type, JsonObject *data)
{
	gchar *head = kl_evidence_entry_head_new(evidence_class, evidence_type);
	KlEvidenceEntry *entry = kl_evidence_entry_new(head, data);

	g_ref_string_release(head);
	return entry;
}

void
kl_evidence_entry_free(KlEvidenceEntry *entry)
{
	if (entry == NULL)
		return;
	g_ref_string_release(entry->head);
	json_object_unref(entry->data);
	if (entry->attachments != NULL)
		g_ptr_array_unref(entry->attachments);
	g_free(entry);
}

gchar *
kl_evidence_entry_to_string(KlEvidenceEntry *entry)
{
	g_autoptr(KlJsonBody) body = NULL;

	g_return_val_if_fail(entry != NULL, NULL);

	/* as kl_verifier_build_evidence() writes it */
	body = kl_json_body_new();
	kl_json_body_append_raw(body, entry->head);
	kl_json_body_append_object_attached(body, entry->data, entry->attachments);
	kl_json_body_append_raw(body, "}");
	kl_json_body_finish(body);
	return kl_json_body_to_string(body, NULL);
}
