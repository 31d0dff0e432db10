/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A small strict TOML parser for the agent configuration files.
 *
 * Supported: [table] headers (dotted, bare or quoted names), key = value with
 * bare or quoted keys, basic/literal/multi-line strings, integers (decimal with
 * '_' separators, 0x/0o/0b), floats, booleans, arrays (nested, multi-line,
 * trailing comma), comments, LF and CRLF line ends.
 *
 * Rejected with an error naming file, line and column: inline tables, arrays
 * of tables, dotted keys, dates and times, duplicate keys and tables, keys
 * outside a table, and anything that is not valid TOML.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	KL_TOML_TYPE_STRING,
	KL_TOML_TYPE_INTEGER,
	KL_TOML_TYPE_FLOAT,
	KL_TOML_TYPE_BOOLEAN,
	KL_TOML_TYPE_ARRAY,
} KlTomlType;

typedef struct _KlTomlValue KlTomlValue;

struct _KlTomlValue {
	KlTomlType type;
	guint line; /* 1-based position of the value in the file */
	guint column;
	/*
	 * for STRING the decoded string; for INTEGER, FLOAT and BOOLEAN the
	 * literal as written (underscores removed); NULL for ARRAY
	 */
	gchar *text;
	gint64 integer;
	gdouble number;
	gboolean boolean;
	GPtrArray *array; /* element-type KlTomlValue */
};

typedef struct {
	gchar *name;	    /* "agent", "a.b" for [a.b] */
	guint line;	    /* line of the [header] */
	GPtrArray *keys;    /* key names in file order */
	GHashTable *values; /* key -> KlTomlValue */
} KlTomlTable;

typedef struct {
	gchar *filename;
	GPtrArray *tables;   /* KlTomlTable, in file order */
	GHashTable *by_name; /* name -> KlTomlTable (owned by tables) */
} KlTomlDocument;

/*
 * Parses @data (@len bytes, need not be NUL-terminated). @filename is used in
 * error messages only ("FILE:LINE:COLUMN: what"). Errors are KL_ERROR_CONFIG.
 */
KlTomlDocument *
kl_toml_parse(const gchar *data, gsize len, const gchar *filename, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* reads and parses a file; a missing file is KL_ERROR_NOT_FOUND */
KlTomlDocument *
kl_toml_parse_file(const gchar *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;

void
kl_toml_document_free(KlTomlDocument *doc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTomlDocument, kl_toml_document_free)

/* (nullable) (transfer none) */
KlTomlTable *
kl_toml_document_get_table(KlTomlDocument *doc, const gchar *name);

/* (nullable) (transfer none) */
const KlTomlValue *
kl_toml_table_get(KlTomlTable *table, const gchar *key);

/* "string", "integer", ... for messages */
const gchar *
kl_toml_type_to_string(KlTomlType type);

/*
 * The value as one string: strings as they are, numbers and booleans as
 * written, arrays as their elements joined with ",". (transfer full)
 */
gchar *
kl_toml_value_to_string(const KlTomlValue *value);

G_END_DECLS
