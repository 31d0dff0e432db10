/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * For tests that call a plugin's collect() directly: the `data` object as the
 * agent sends it, with the strings the plugin attached
 * (kl_plugin_context_attach_string()) put in their place.
 */
#pragma once

#include <json-glib/json-glib.h>

#include "kl-plugin-context-private.h"

/*
 * takes @data (nullable: a failed collect) and returns it completed; a sealed
 * object (the plugin's own, handed out again) is not changed: a completed
 * copy is returned, as the agent does
 */
static inline JsonObject *
kl_test_sent_data(KlPluginContext *ctx, JsonObject *data)
{
	GPtrArray *attachments = kl_plugin_context_take_attachments(ctx);

	if (data != NULL && json_object_is_immutable(data)) {
		JsonObject *copy = json_object_new();
		JsonObjectIter iter;
		const gchar *name;
		JsonNode *member;

		json_object_iter_init_ordered(&iter, data);
		while (json_object_iter_next_ordered(&iter, &name, &member))
			json_object_set_member(copy, name, json_node_copy(member));
		json_object_unref(data);
		data = copy;
	}

	for (guint i = 0; data != NULL && attachments != NULL && i < attachments->len; i++) {
		KlPluginAttachment *attachment = g_ptr_array_index(attachments, i);
		gchar *text = g_strndup(g_bytes_get_data(attachment->text, NULL),
					g_bytes_get_size(attachment->text));

		json_object_set_string_member(data, attachment->member, text);
		g_free(text);
	}
	if (attachments != NULL)
		g_ptr_array_unref(attachments);
	return data;
}
