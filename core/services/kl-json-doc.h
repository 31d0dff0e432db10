/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A strict JSON document read once into a flat array of tokens, without a
 * tree: the agent reads the few members it needs from the verifier's and the
 * registrar's answers, and builds json-glib nodes only for what it hands on
 * (the chosen_parameters of a plugin). kl_json_parse_object() is built on it.
 *
 * What it accepts is exactly what kl_json_parse_object() accepts: RFC 8259
 * JSON in valid UTF-8 with an object at the root; no NUL (raw or \u0000), no
 * lone surrogates, no control characters in strings, integers within gint64,
 * finite numbers, at most 128 levels of nesting. A member that appears twice
 * counts with its last value.
 *
 * Tokens are addressed by index; 0 is the root object. For the agent binary
 * only (KL_PRIVATE): no stability promise.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _KlJsonDoc KlJsonDoc;

typedef enum {
	KL_JSON_DOC_NONE = 0, /* an absent member */
	KL_JSON_DOC_OBJECT,
	KL_JSON_DOC_ARRAY,
	KL_JSON_DOC_STRING,
	KL_JSON_DOC_INT,
	KL_JSON_DOC_DOUBLE,
	KL_JSON_DOC_BOOLEAN,
	KL_JSON_DOC_NULL,
} KlJsonDocType;

/* index of an absent member */
#define KL_JSON_DOC_ABSENT G_MAXUINT

/* fails with KL_ERROR_INVALID_DATA */
KlJsonDoc *
kl_json_doc_parse(const gchar *data, gsize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* the memory of a small document serves the thread's next parse */
void
kl_json_doc_free(KlJsonDoc *doc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlJsonDoc, kl_json_doc_free)

/* KL_JSON_DOC_NONE for KL_JSON_DOC_ABSENT */
KlJsonDocType
kl_json_doc_get_type(KlJsonDoc *doc, guint index);
/* "an object", "a string", ... as in the getters' errors */
const gchar *
kl_json_doc_type_name(KlJsonDoc *doc, guint index);
/* the value of member @key of object @object (its last one), or KL_JSON_DOC_ABSENT */
guint
kl_json_doc_get_member(KlJsonDoc *doc, guint object, const gchar *key);
/* elements of an array, members of an object, else 0 */
guint
kl_json_doc_get_length(KlJsonDoc *doc, guint index);
/* array: the first element; walk on with kl_json_doc_next() */
guint
kl_json_doc_first(KlJsonDoc *doc, guint array);
/* the value after @index in its array */
guint
kl_json_doc_next(KlJsonDoc *doc, guint index);
/* the decoded string (owned by @doc), or NULL when not a string */
const gchar *
kl_json_doc_get_string(KlJsonDoc *doc, guint index);
gint64
kl_json_doc_get_int(KlJsonDoc *doc, guint index);
gdouble
kl_json_doc_get_double(KlJsonDoc *doc, guint index);
/* a json-glib node of the value (transfer full) */
JsonNode *
kl_json_doc_to_node(KlJsonDoc *doc, guint index);

/*
 * Where the value @index was in the input given to kl_json_doc_parse(): its
 * raw text is input[*start, *start + *len) (strings with their quotes). FALSE
 * for an absent index.
 */
gboolean
kl_json_doc_get_raw(KlJsonDoc *doc, guint index, gsize *start, gsize *len);

/*
 * Remembers the sealed JsonObject built for one object of a document, with
 * the raw text it was built from, so that the same object in the next
 * document costs no building when its text is byte-identical (the verifier
 * asks for the same chosen_parameters cycle after cycle), and only its
 * changed members are built when it is not (a new challenge in a quote's
 * parameters). Raw text fully determines a value, and the objects and the
 * nodes they share are sealed, so what is reused is what would be built.
 */
typedef struct _KlJsonObjectMemo KlJsonObjectMemo;

KlJsonObjectMemo *
kl_json_object_memo_new(void);
void
kl_json_object_memo_free(KlJsonObjectMemo *memo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlJsonObjectMemo, kl_json_object_memo_free)

/*
 * The sealed JsonObject of the object @index of @doc, which was parsed from
 * @input; @memo then remembers it. With @memo NULL the object is built.
 * (transfer full)
 */
JsonObject *
kl_json_object_memo_build(KlJsonObjectMemo *memo, KlJsonDoc *doc, guint index, const gchar *input)
    G_GNUC_WARN_UNUSED_RESULT;

/*
 * Checked member getters with the messages of kl_json_object_get_*():
 * KL_ERROR_INVALID_DATA naming @key when the member is missing or of the
 * wrong type. They return the member's index (KL_JSON_DOC_ABSENT on error).
 */
guint
kl_json_doc_get_object_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error);
guint
kl_json_doc_get_array_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error);
const gchar *
kl_json_doc_get_string_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error);
/* a missing member or JSON null: TRUE with *out = NULL */
gboolean
kl_json_doc_get_optional_string_member(
    KlJsonDoc *doc, guint object, const gchar *key, const gchar **out, GError **error);

/* ---- writing ---- */

/* appends @str as a JSON string (quoted and escaped as kl_json_object_to_string() does) */
void
kl_json_append_string(GString *out, const gchar *str);
/* appends @value in decimal */
void
kl_json_append_int(GString *out, gint64 value);

G_END_DECLS
