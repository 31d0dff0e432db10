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

/*
 * strings of the tree at least this long are written from the tree's node;
 * shorter attached texts with escapes are escaped into the body's own text
 */
#define KL_JSON_BODY_IN_PLACE_MIN (64 * 1024)

/* attached texts at least this long are remembered by a KlJsonBodyCache */
#define KL_JSON_BODY_CACHE_MIN 1024

typedef struct _KlJsonBody KlJsonBody;

/*
 * What the bodies laid out one after the other (one at a time) learned of
 * their attached texts: an attached GBytes that comes back body after body
 * (a plugin's cached log, e.g. the UEFI log's base64) is not scanned again.
 * It keeps a reference to such a text, taken the second time it comes back
 * (until then it only remembers where it was: a log's new lines, sent once,
 * are never kept alive) and dropped by the first body without it.
 */
typedef struct _KlJsonBodyCache KlJsonBodyCache;

KlJsonBodyCache *
kl_json_body_cache_new(void);
void
kl_json_body_cache_free(KlJsonBodyCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlJsonBodyCache, kl_json_body_cache_free)

/* how many attached texts were not scanned because the cache knew them (tests) */
guint64
kl_json_body_cache_get_hits(KlJsonBodyCache *cache);

/* how many attached texts the cache holds a reference to (tests) */
guint
kl_json_body_cache_get_pinned(KlJsonBodyCache *cache);

KlJsonBody *
kl_json_body_new(void);
void
kl_json_body_free(KlJsonBody *body);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlJsonBody, kl_json_body_free)

/* @body's layout uses and updates @cache (not owned; NULL: none); before anything is written */
void
kl_json_body_set_cache(KlJsonBody *body, KlJsonBodyCache *cache);

/* the document (a reference is kept): lays out the body once; then it can be read */
void
kl_json_body_set_root(KlJsonBody *body, JsonObject *root);

/*
 * Or the document in pieces: JSON text written as it is (@json: valid JSON
 * once all pieces are there), objects written as kl_json_body_set_root() does
 * (a reference is kept), then kl_json_body_finish() lays out the body.
 */
void
kl_json_body_append_raw(KlJsonBody *body, const gchar *json);
void
kl_json_body_append_object(KlJsonBody *body, JsonObject *obj);
void
kl_json_body_finish(KlJsonBody *body);

/*
 * @obj written as kl_json_body_append_object() does, with the strings of
 * @attachments (KlPluginAttachment*, nullable) as its members: one that @obj
 * has is written in its place, the others after @obj's own members, in their
 * order; the text is that of @obj after json_object_set_string_member() of
 * each, and @obj is not changed. The body keeps a reference to each text (and
 * to @obj) until it is freed.
 */
void
kl_json_body_append_object_attached(KlJsonBody *body, JsonObject *obj, GPtrArray *attachments);

/* the body's length in bytes (0 before kl_json_body_set_root()) */
guint64
kl_json_body_get_size(KlJsonBody *body);

/* copies the next at most @len bytes of the body to @buf; 0 at the end */
gsize
kl_json_body_read(KlJsonBody *body, gchar *buf, gsize len);

/* the next read starts at byte @offset; FALSE when @offset is beyond the end */
gboolean
kl_json_body_seek(KlJsonBody *body, guint64 offset);

/*
 * @body was sent and is not read again (it reads as empty): its text goes back
 * to its cache for the next body (no new allocation cycle after cycle)
 */
void
kl_json_body_release(KlJsonBody *body);

/* the whole body as one NUL-terminated string (tests and test transports; transfer full) */
gchar *
kl_json_body_to_string(KlJsonBody *body, gsize *len);

G_END_DECLS
