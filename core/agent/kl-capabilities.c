/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-json.h"
#include "kl-capabilities.h"

struct _KlCapabilitiesBody {
	GPtrArray *entries; /* JsonObject*, sealed ones only (NULL otherwise) */
	GPtrArray *texts;   /* gchar*, the text of each entry */
	gchar *boot_time;
	gchar *system_info; /* {"boot_time":"..."} */
	gchar *body;	    /* the last body built */
	gsize body_len;
	guint64 reused; /* rounds that sent the last body again */
};

static void
kl_capabilities_unref_entry(gpointer entry)
{
	if (entry != NULL)
		json_object_unref(entry);
}

KlCapabilitiesBody *
kl_capabilities_body_new(void)
{
	KlCapabilitiesBody *self = g_new0(KlCapabilitiesBody, 1);

	self->entries = g_ptr_array_new_with_free_func(kl_capabilities_unref_entry);
	self->texts = g_ptr_array_new_with_free_func(g_free);
	return self;
}

void
kl_capabilities_body_free(KlCapabilitiesBody *self)
{
	if (self == NULL)
		return;
	g_ptr_array_unref(self->entries);
	g_ptr_array_unref(self->texts);
	g_free(self->boot_time);
	g_free(self->system_info);
	g_free(self->body);
	g_free(self);
}

guint64
kl_capabilities_body_get_reused(KlCapabilitiesBody *self)
{
	g_return_val_if_fail(self != NULL, 0);
	return self->reused;
}

/*
 * the last body is this round's: the same sealed entries (references are
 * held, so no other object can be at their address) in the same order, and
 * the same boot time
 */
static gboolean
kl_capabilities_body_unchanged(KlCapabilitiesBody *self,
			       GPtrArray *evidence_supported,
			       const gchar *boot_time)
{
	if (self->body == NULL || evidence_supported->len != self->entries->len ||
	    g_strcmp0(self->boot_time, boot_time) != 0)
		return FALSE;
	for (guint i = 0; i < evidence_supported->len; i++) {
		JsonObject *entry = g_ptr_array_index(self->entries, i);

		/* NULL: an entry that was not sealed, written again every round */
		if (entry == NULL || entry != g_ptr_array_index(evidence_supported, i))
			return FALSE;
	}
	return TRUE;
}

/* the text of @entry: the last round's when it is the same sealed object */
static gchar *
kl_capabilities_entry_text(KlCapabilitiesBody *self, JsonObject *entry)
{
	for (guint i = 0; i < self->entries->len; i++) {
		if (g_ptr_array_index(self->entries, i) == entry &&
		    g_ptr_array_index(self->texts, i) != NULL) {
			/* taken over, not copied: the old arrays are dropped after this round */
			gchar *text = g_ptr_array_index(self->texts, i);

			g_ptr_array_index(self->texts, i) = NULL;
			return text;
		}
	}
	return kl_json_object_to_string(entry, NULL);
}

const gchar *
kl_capabilities_body_build(KlCapabilitiesBody *self,
			   GPtrArray *evidence_supported,
			   const gchar *boot_time,
			   gsize *len)
{
	g_autoptr(GPtrArray) entries = NULL;
	g_autoptr(GPtrArray) texts = NULL;
	GString *body;
	gsize size = 128;

	if (kl_capabilities_body_unchanged(self, evidence_supported, boot_time)) {
		self->reused++;
		if (len != NULL)
			*len = self->body_len;
		return self->body;
	}
	entries = g_ptr_array_new_with_free_func(kl_capabilities_unref_entry);
	texts = g_ptr_array_new_with_free_func(g_free);

	if (self->system_info == NULL || g_strcmp0(self->boot_time, boot_time) != 0) {
		g_autoptr(JsonObject) system_info = json_object_new();

		json_object_set_string_member(system_info, "boot_time", boot_time);
		g_free(self->system_info);
		g_free(self->boot_time);
		self->system_info = kl_json_object_to_string(system_info, NULL);
		self->boot_time = g_strdup(boot_time);
	}
	for (guint i = 0; i < evidence_supported->len; i++) {
		JsonObject *entry = g_ptr_array_index(evidence_supported, i);
		gchar *text = kl_capabilities_entry_text(self, entry);

		/* only a sealed entry may be taken for the same next time */
		g_ptr_array_add(entries,
				json_object_is_immutable(entry) ? json_object_ref(entry) : NULL);
		g_ptr_array_add(texts, text);
		size += strlen(text) + 1;
	}
	g_ptr_array_unref(self->entries);
	g_ptr_array_unref(self->texts);
	self->entries = g_steal_pointer(&entries);
	self->texts = g_steal_pointer(&texts);

	/* the members in kl_verifier_build_capabilities()'s order */
	body = g_string_sized_new(size + strlen(self->system_info));
	g_string_append(
	    body, "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_supported\":[");
	for (guint i = 0; i < self->texts->len; i++) {
		if (i > 0)
			g_string_append_c(body, ',');
		g_string_append(body, g_ptr_array_index(self->texts, i));
	}
	g_string_append(body, "],\"system_info\":");
	g_string_append(body, self->system_info);
	g_string_append(body, "}}}");
	g_free(self->body);
	self->body_len = body->len;
	self->body = g_string_free(body, FALSE);
	if (len != NULL)
		*len = self->body_len;
	return self->body;
}
