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

/* takes @data (nullable: a failed collect) and returns it completed */
static inline JsonObject *
kl_test_sent_data(KlPluginContext *ctx, JsonObject *data)
{
	GPtrArray *attachments = kl_plugin_context_take_attachments(ctx);

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
