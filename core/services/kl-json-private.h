/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The compact JSON writer's internals, shared by kl-json.c and kl-json-body.c
 * (not exported).
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* called for every member value and array element: TRUE when it wrote @node to @out itself */
typedef gboolean (*KlJsonWriteHook)(GString *out, JsonNode *node, gpointer user_data);

/* appends @obj to @out as kl_json_object_to_string() writes it */
void
kl_json_write_object_hooked(GString *out,
			    JsonObject *obj,
			    KlJsonWriteHook hook,
			    gpointer hook_data);

/* appends @node (an object, array, value or null) to @out as the writer writes a member's value */
void
kl_json_write_node_hooked(GString *out, JsonNode *node, KlJsonWriteHook hook, gpointer hook_data);

/* the length of each byte inside a JSON string as the writer writes it: 1, 2 or 6 */
extern const guint8 kl_json_escaped_len[256];

/* the offset of the first byte of @str[0..@len) that JSON must escape, or @len (16 bytes at a time)
 */
gsize
kl_json_escape_span(const gchar *str, gsize len);

/* appends @str[0..@len) to @out as it goes inside a JSON string (no quotes; a NUL byte is "\u0000")
 */
void
kl_json_append_escaped(GString *out, const gchar *str, gsize len);

/*
 * the scans use AVX2 when the CPU has it and @enable (tests: both ways);
 * returns whether they do
 */
gboolean
kl_json_escape_use_avx2(gboolean enable);

/* writes byte @c as it goes inside a JSON string to @out (room for 6); returns its length */
guint
kl_json_escape_byte(guchar c, gchar *out);

G_END_DECLS
