/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A JSON request body that is written as it is sent (KL_PRIVATE: the agent
 * only). The document is a JsonObject tree, written as
 * kl_json_object_to_string() writes it, byte for byte; but a large string is
 * not copied into the text: it is escaped from where it lives (a plugin's own
 * buffer given with kl_plugin_context_attach_string(), or the tree's node)
 * while the transport reads the body. So a log of 100 MB is in memory once,
 * not three times (the plugin's read, the tree, the serialised body).
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* strings of the tree at least this long are written from the tree's node */
#define KL_JSON_BODY_IN_PLACE_MIN (16 * 1024)

typedef struct _KlJsonBody KlJsonBody;

KlJsonBody *
kl_json_body_new(void);
void
kl_json_body_free(KlJsonBody *body);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlJsonBody, kl_json_body_free)

/*
 * @node, a member value or array element of the tree given to
 * kl_json_body_set_root() later (its own value is ignored, e.g. null), is
 * written as the JSON string holding @text (UTF-8; a NUL byte is written as
 * "\u0000"). The body keeps a reference to @text until it is freed.
 */
void
kl_json_body_attach(KlJsonBody *body, JsonNode *node, GBytes *text);

/* the document (a reference is kept): lays out the body once; then it can be read */
void
kl_json_body_set_root(KlJsonBody *body, JsonObject *root);

/* the body's length in bytes (0 before kl_json_body_set_root()) */
guint64
kl_json_body_get_size(KlJsonBody *body);

/* copies the next at most @len bytes of the body to @buf; 0 at the end */
gsize
kl_json_body_read(KlJsonBody *body, gchar *buf, gsize len);

/* the next read starts at byte @offset; FALSE when @offset is beyond the end */
gboolean
kl_json_body_seek(KlJsonBody *body, guint64 offset);

/* the whole body as one NUL-terminated string (tests and test transports; transfer full) */
gchar *
kl_json_body_to_string(KlJsonBody *body, gsize *len);

G_END_DECLS
