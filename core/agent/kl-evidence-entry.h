/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * One item of evidence_collected as it is sent:
 * {"evidence_class":<class>,"evidence_type":<type>,"data":<data>}. The text
 * before the data (the head) never changes for a plugin: it is written once
 * (kl_evidence_entry_head_new()) and shared by every entry of that plugin, so
 * a cycle builds no envelope object and the body writes the head as it is,
 * then the plugin's data object, then "}".
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
	/* a GRefString: `{"evidence_class":"log","evidence_type":"ima_log","data":` */
	gchar *head;
	JsonObject *data;
	/*
	 * (nullable) the strings the plugin attached (KlPluginAttachment*,
	 * kl_plugin_context_attach_string()): members of @data written by the
	 * body from the plugin's buffers (kl_json_body_append_object_attached())
	 */
	GPtrArray *attachments;
} KlEvidenceEntry;

/* the head of the entries of @evidence_class / @evidence_type, escaped (a GRefString) */
gchar *
kl_evidence_entry_head_new(const gchar *evidence_class, const gchar *evidence_type);

/* @head: a GRefString (a reference is taken); @data: (transfer full) */
KlEvidenceEntry *
kl_evidence_entry_new(const gchar *head, JsonObject *data);

/* an entry with a head of its own (tests, tools); @data: (transfer full) */
KlEvidenceEntry *
kl_evidence_entry_new_for(const gchar *evidence_class,
			  const gchar *evidence_type,
			  JsonObject *data);

void
kl_evidence_entry_free(KlEvidenceEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlEvidenceEntry, kl_evidence_entry_free)

/* the entry's text as it is sent, attached strings included (tests, tools; transfer full) */
gchar *
kl_evidence_entry_to_string(KlEvidenceEntry *entry);

G_END_DECLS
