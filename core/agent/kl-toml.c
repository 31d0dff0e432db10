/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A small strict TOML parser (see kl-toml.h for what is supported).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-toml.h"

/* deeper nesting than this is certainly not a configuration file */
#define KL_TOML_MAX_DEPTH 32

typedef struct {
	const gchar *filename;
	const gchar *p;
	const gchar *end;
	const gchar *line_start;
	guint line;
	KlTomlDocument *doc;
	KlTomlTable *table; /* current table; NULL before the first header */
} KlTomlParser;

static void
kl_toml_value_free(gpointer data)
{
	KlTomlValue *value = data;

	if (value == NULL)
		return;
	g_free(value->text);
	if (value->array != NULL)
		g_ptr_array_unref(value->array);
	g_free(value);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTomlValue, kl_toml_value_free)

static void
kl_toml_table_free(gpointer data)
{
	KlTomlTable *table = data;

	g_free(table->name);
	g_ptr_array_unref(table->keys);
	g_hash_table_unref(table->values);
	g_free(table);
}

void
kl_toml_document_free(KlTomlDocument *doc)
{
	if (doc == NULL)
		return;
	g_hash_table_unref(doc->by_name);
	g_ptr_array_unref(doc->tables);
	g_free(doc->filename);
	g_free(doc);
}

KlTomlTable *
kl_toml_document_get_table(KlTomlDocument *doc, const gchar *name)
{
	g_return_val_if_fail(doc != NULL, NULL);
	g_return_val_if_fail(name != NULL, NULL);
	return g_hash_table_lookup(doc->by_name, name);
}

const KlTomlValue *
kl_toml_table_get(KlTomlTable *table, const gchar *key)
{
	g_return_val_if_fail(table != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);
	return g_hash_table_lookup(table->values, key);
}

const gchar *
kl_toml_type_to_string(KlTomlType type)
{
	switch (type) {
	case KL_TOML_TYPE_STRING:
		return "string";
	case KL_TOML_TYPE_INTEGER:
		return "integer";
	case KL_TOML_TYPE_FLOAT:
		return "float";
	case KL_TOML_TYPE_BOOLEAN:
		return "boolean";
	case KL_TOML_TYPE_ARRAY:
		return "array";
	default:
		return "unknown";
	}
}

gchar *
kl_toml_value_to_string(const KlTomlValue *value)
{
	g_autoptr(GString) str = NULL;

	g_return_val_if_fail(value != NULL, NULL);
	if (value->type != KL_TOML_TYPE_ARRAY)
		return g_strdup(value->text);
	str = g_string_new(NULL);
	for (guint i = 0; i < value->array->len; i++) {
		g_autofree gchar *item =
		    kl_toml_value_to_string(g_ptr_array_index(value->array, i));
		if (i > 0)
			g_string_append_c(str, ',');
		g_string_append(str, item);
	}
	return g_string_free(g_steal_pointer(&str), FALSE);
}

/* ---- errors and position ---- */

static guint
kl_toml_column_at(KlTomlParser *P, const gchar *pos)
{
	/* characters, not bytes, so the column matches what an editor shows */
	return (guint)g_utf8_pointer_to_offset(P->line_start, pos) + 1;
}

static gboolean
kl_toml_fail_at(KlTomlParser *P, guint line, guint column, GError **error, const gchar *fmt, ...)
    G_GNUC_PRINTF(5, 6);

static gboolean
kl_toml_fail_at(KlTomlParser *P, guint line, guint column, GError **error, const gchar *fmt, ...)
{
	va_list args;
	g_autofree gchar *msg = NULL;

	va_start(args, fmt);
	msg = g_strdup_vprintf(fmt, args);
	va_end(args);
	g_set_error(
	    error, KL_ERROR, KL_ERROR_CONFIG, "%s:%u:%u: %s", P->filename, line, column, msg);
	return FALSE;
}

#define kl_toml_fail(P, error, ...)                                                                \
	kl_toml_fail_at((P), (P)->line, kl_toml_column_at((P), (P)->p), (error), __VA_ARGS__)

static gboolean
kl_toml_eof(KlTomlParser *P)
{
	return P->p >= P->end;
}

static gchar
kl_toml_peek(KlTomlParser *P, gsize ahead)
{
	if (P->p + ahead >= P->end)
		return '\0';
	return P->p[ahead];
}

static gboolean
kl_toml_at_newline(KlTomlParser *P)
{
	return kl_toml_peek(P, 0) == '\n' ||
	       (kl_toml_peek(P, 0) == '\r' && kl_toml_peek(P, 1) == '\n');
}

/* consumes LF or CRLF and advances the line counter */
static void
kl_toml_consume_newline(KlTomlParser *P)
{
	if (*P->p == '\r')
		P->p++;
	P->p++;
	P->line++;
	P->line_start = P->p;
}

static void
kl_toml_skip_ws(KlTomlParser *P)
{
	while (!kl_toml_eof(P) && (*P->p == ' ' || *P->p == '\t'))
		P->p++;
}

static gboolean
kl_toml_is_control(guchar c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static gboolean
kl_toml_control_error(KlTomlParser *P, const gchar *where, GError **error)
{
	if (*P->p == '\r')
		return kl_toml_fail(P, error, "carriage return not followed by a line feed");
	return kl_toml_fail(
	    P, error, "control character U+%04X is not allowed in %s", (guint)(guchar)*P->p, where);
}

/* "# ..." up to (not including) the line end */
static gboolean
kl_toml_skip_comment(KlTomlParser *P, GError **error)
{
	if (kl_toml_eof(P) || *P->p != '#')
		return TRUE;
	while (!kl_toml_eof(P) && !kl_toml_at_newline(P)) {
		if (kl_toml_is_control((guchar)*P->p))
			return kl_toml_control_error(P, "a comment", error);
		P->p++;
	}
	return TRUE;
}

/* after a statement: only blanks and a comment may follow on the line */
static gboolean
kl_toml_expect_line_end(KlTomlParser *P, const gchar *after, GError **error)
{
	kl_toml_skip_ws(P);
	if (!kl_toml_skip_comment(P, error))
		return FALSE;
	if (kl_toml_eof(P))
		return TRUE;
	if (kl_toml_at_newline(P)) {
		kl_toml_consume_newline(P);
		return TRUE;
	}
	if (*P->p == '\r')
		return kl_toml_fail(P, error, "carriage return not followed by a line feed");
	return kl_toml_fail(P,
			    error,
			    "unexpected '%c' after %s; expected the end of the line",
			    g_ascii_isprint(*P->p) ? *P->p : '?',
			    after);
}

/* blanks, comments and line ends (inside arrays) */
static gboolean
kl_toml_skip_ws_nl(KlTomlParser *P, GError **error)
{
	for (;;) {
		kl_toml_skip_ws(P);
		if (!kl_toml_skip_comment(P, error))
			return FALSE;
		if (kl_toml_eof(P) || !kl_toml_at_newline(P))
			return TRUE;
		kl_toml_consume_newline(P);
	}
}

/* ---- strings ---- */

static gint
kl_toml_hex_value(gchar c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* at the backslash; appends the decoded escape */
static gboolean
kl_toml_parse_escape(KlTomlParser *P, GString *out, GError **error)
{
	const gchar *start = P->p;
	gchar c = kl_toml_peek(P, 1);
	guint ndigits = 0;
	gunichar uc = 0;

	switch (c) {
	case 'b':
		g_string_append_c(out, '\b');
		break;
	case 't':
		g_string_append_c(out, '\t');
		break;
	case 'n':
		g_string_append_c(out, '\n');
		break;
	case 'f':
		g_string_append_c(out, '\f');
		break;
	case 'r':
		g_string_append_c(out, '\r');
		break;
	case '"':
		g_string_append_c(out, '"');
		break;
	case '\\':
		g_string_append_c(out, '\\');
		break;
	case 'u':
		ndigits = 4;
		break;
	case 'U':
		ndigits = 8;
		break;
	default:
		P->p++;
		if (kl_toml_eof(P) || kl_toml_at_newline(P))
			return kl_toml_fail(P, error, "unterminated escape sequence in string");
		return kl_toml_fail(P,
				    error,
				    "invalid escape sequence '\\%c' in string (use '\\\\' for a "
				    "backslash, or a 'literal string')",
				    g_ascii_isprint(c) ? c : '?');
	}
	P->p += 2;
	if (ndigits == 0)
		return TRUE;
	for (guint i = 0; i < ndigits; i++) {
		gint v = kl_toml_hex_value(kl_toml_peek(P, 0));
		if (v < 0)
			return kl_toml_fail(
			    P, error, "escape '\\%c' needs %u hexadecimal digits", c, ndigits);
		uc = (uc << 4) | (gunichar)v;
		P->p++;
	}
	if (uc > 0x10FFFF || (uc >= 0xD800 && uc <= 0xDFFF)) {
		P->p = start;
		return kl_toml_fail(
		    P, error, "escape '\\%c' is not a Unicode scalar value (U+%04X)", c, uc);
	}
	g_string_append_unichar(out, uc);
	return TRUE;
}

/* at the opening quote of a single-line basic or literal string */
static gboolean
kl_toml_parse_simple_string(KlTomlParser *P, gchar **out, GError **error)
{
	gchar quote = *P->p;
	g_autoptr(GString) str = g_string_new(NULL);

	P->p++;
	for (;;) {
		if (kl_toml_eof(P) || kl_toml_at_newline(P))
			return kl_toml_fail(
			    P,
			    error,
			    "unterminated string: missing closing %c before the end "
			    "of the line",
			    quote);
		if (*P->p == quote) {
			P->p++;
			break;
		}
		if (quote == '"' && *P->p == '\\') {
			if (!kl_toml_parse_escape(P, str, error))
				return FALSE;
			continue;
		}
		if (kl_toml_is_control((guchar)*P->p))
			return kl_toml_control_error(P, "a string", error);
		g_string_append_c(str, *P->p);
		P->p++;
	}
	*out = g_string_free(g_steal_pointer(&str), FALSE);
	return TRUE;
}

/* at the first of three opening quotes */
static gboolean
kl_toml_parse_multiline_string(KlTomlParser *P, gchar **out, GError **error)
{
	gchar quote = *P->p;
	guint open_line = P->line;
	guint open_column = kl_toml_column_at(P, P->p);
	g_autoptr(GString) str = g_string_new(NULL);

	P->p += 3;
	/* a line end right after the opening delimiter is trimmed */
	if (kl_toml_at_newline(P))
		kl_toml_consume_newline(P);
	for (;;) {
		if (kl_toml_eof(P))
			return kl_toml_fail_at(
			    P,
			    open_line,
			    open_column,
			    error,
			    "unterminated multi-line string: missing closing %c%c%c",
			    quote,
			    quote,
			    quote);
		if (*P->p == quote && kl_toml_peek(P, 1) == quote && kl_toml_peek(P, 2) == quote) {
			guint n = 3;
			while (kl_toml_peek(P, n) == quote)
				n++;
			if (n > 5)
				return kl_toml_fail(
				    P, error, "too many quotes at the end of a multi-line string");
			/* up to two quotes may precede the closing delimiter */
			for (guint i = 0; i < n - 3; i++)
				g_string_append_c(str, quote);
			P->p += n;
			break;
		}
		if (kl_toml_at_newline(P)) {
			kl_toml_consume_newline(P);
			g_string_append_c(str, '\n');
			continue;
		}
		if (quote == '"' && *P->p == '\\') {
			/* line-ending backslash: drop the line end and following blanks */
			const gchar *q = P->p + 1;
			while (q < P->end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < P->end &&
			    (*q == '\n' || (*q == '\r' && q + 1 < P->end && q[1] == '\n'))) {
				P->p = q;
				for (;;) {
					kl_toml_skip_ws(P);
					if (kl_toml_eof(P) || !kl_toml_at_newline(P))
						break;
					kl_toml_consume_newline(P);
				}
				continue;
			}
			if (!kl_toml_parse_escape(P, str, error))
				return FALSE;
			continue;
		}
		if (kl_toml_is_control((guchar)*P->p))
			return kl_toml_control_error(P, "a string", error);
		g_string_append_c(str, *P->p);
		P->p++;
	}
	*out = g_string_free(g_steal_pointer(&str), FALSE);
	return TRUE;
}

/* ---- keys ---- */

static gboolean
kl_toml_is_bare_key_char(gchar c)
{
	return g_ascii_isalnum(c) || c == '_' || c == '-';
}

static gboolean
kl_toml_parse_key(KlTomlParser *P, gchar **out, GError **error)
{
	const gchar *start = P->p;

	if (kl_toml_eof(P) || kl_toml_at_newline(P))
		return kl_toml_fail(P, error, "expected a key name");
	if (*P->p == '"' || *P->p == '\'') {
		if (kl_toml_peek(P, 1) == *P->p && kl_toml_peek(P, 2) == *P->p)
			return kl_toml_fail(P, error, "a key cannot be a multi-line string");
		return kl_toml_parse_simple_string(P, out, error);
	}
	while (!kl_toml_eof(P) && kl_toml_is_bare_key_char(*P->p))
		P->p++;
	if (P->p == start)
		return kl_toml_fail(P,
				    error,
				    "invalid character '%c' in a key; bare keys may contain only "
				    "A-Z a-z 0-9 _ -, quote other keys",
				    g_ascii_isprint(*P->p) ? *P->p : '?');
	*out = g_strndup(start, P->p - start);
	return TRUE;
}

/* ---- numbers, booleans ---- */

/* digits of @base with single '_' only between digits */
static gboolean
kl_toml_check_digits(const gchar *s, gsize len, guint base)
{
	if (len == 0)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		gchar c = s[i];
		if (c == '_') {
			if (i == 0 || i + 1 == len || s[i + 1] == '_')
				return FALSE;
			continue;
		}
		if (kl_toml_hex_value(c) < 0 || (guint)kl_toml_hex_value(c) >= base)
			return FALSE;
	}
	return TRUE;
}

static gchar *
kl_toml_strip_underscores(const gchar *s, gsize len)
{
	GString *str = g_string_sized_new(len);

	for (gsize i = 0; i < len; i++) {
		if (s[i] != '_')
			g_string_append_c(str, s[i]);
	}
	return g_string_free(str, FALSE);
}

static gboolean
kl_toml_parse_number(KlTomlParser *P, KlTomlValue *value, GError **error)
{
	const gchar *start = P->p;
	const gchar *s;
	g_autofree gchar *tok = NULL;
	gsize len;
	guint line = P->line;
	guint column = kl_toml_column_at(P, P->p);

	while (!kl_toml_eof(P) && (g_ascii_isalnum(*P->p) || *P->p == '_' || *P->p == '+' ||
				   *P->p == '-' || *P->p == '.' || *P->p == ':'))
		P->p++;
	len = P->p - start;
	tok = g_strndup(start, len);

	if (strchr(tok, ':') != NULL ||
	    (len >= 10 && g_ascii_isdigit(tok[0]) && g_ascii_isdigit(tok[3]) && tok[4] == '-'))
		return kl_toml_fail_at(
		    P, line, column, error, "dates and times are not supported; quote the value");

	/* inf and nan */
	s = tok + ((tok[0] == '+' || tok[0] == '-') ? 1 : 0);
	if (g_strcmp0(s, "inf") == 0 || g_strcmp0(s, "nan") == 0) {
		value->type = KL_TOML_TYPE_FLOAT;
		value->number = g_strcmp0(s, "nan") == 0 ? (gdouble)NAN
							 : (tok[0] == '-' ? -INFINITY : INFINITY);
		value->text = g_steal_pointer(&tok);
		return TRUE;
	}

	/* 0x, 0o, 0b */
	if (len > 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'o' || tok[1] == 'b')) {
		guint base = tok[1] == 'x' ? 16 : (tok[1] == 'o' ? 8 : 2);
		g_autofree gchar *digits = NULL;
		guint64 v = 0;

		if (!kl_toml_check_digits(tok + 2, len - 2, base))
			return kl_toml_fail_at(
			    P, line, column, error, "invalid base-%u integer '%s'", base, tok);
		digits = kl_toml_strip_underscores(tok + 2, len - 2);
		if (!g_ascii_string_to_unsigned(digits, base, 0, G_MAXINT64, &v, NULL))
			return kl_toml_fail_at(P,
					       line,
					       column,
					       error,
					       "integer '%s' is out of range (64-bit signed)",
					       tok);
		value->type = KL_TOML_TYPE_INTEGER;
		value->integer = (gint64)v;
		value->text = g_strdup_printf("%" G_GINT64_FORMAT, value->integer);
		return TRUE;
	}

	{
		/* [sign] int [. frac] [e [sign] exp] */
		const gchar *q = s;
		const gchar *int_start = q;
		gsize int_len;
		gboolean is_float = FALSE;
		g_autofree gchar *clean = NULL;

		while (*q != '\0' && (g_ascii_isdigit(*q) || *q == '_'))
			q++;
		int_len = q - int_start;
		if (!kl_toml_check_digits(int_start, int_len, 10))
			goto bad;
		if (int_len > 1 && int_start[0] == '0')
			return kl_toml_fail_at(P,
					       line,
					       column,
					       error,
					       "leading zeros are not allowed in '%s' (use 0o for "
					       "octal)",
					       tok);
		if (*q == '.') {
			const gchar *f = ++q;
			while (*q != '\0' && (g_ascii_isdigit(*q) || *q == '_'))
				q++;
			if (!kl_toml_check_digits(f, q - f, 10))
				goto bad;
			is_float = TRUE;
		}
		if (*q == 'e' || *q == 'E') {
			const gchar *e = ++q;
			if (*q == '+' || *q == '-')
				e = ++q;
			while (*q != '\0' && (g_ascii_isdigit(*q) || *q == '_'))
				q++;
			if (!kl_toml_check_digits(e, q - e, 10))
				goto bad;
			is_float = TRUE;
		}
		if (*q != '\0')
			goto bad;
		clean = kl_toml_strip_underscores(tok, len);
		if (is_float) {
			value->type = KL_TOML_TYPE_FLOAT;
			value->number = g_ascii_strtod(clean, NULL);
			value->text = g_steal_pointer(&clean);
			return TRUE;
		}
		if (!g_ascii_string_to_signed(
			clean, 10, G_MININT64, G_MAXINT64, &value->integer, NULL))
			return kl_toml_fail_at(P,
					       line,
					       column,
					       error,
					       "integer '%s' is out of range (64-bit signed)",
					       tok);
		value->type = KL_TOML_TYPE_INTEGER;
		value->text = g_strdup_printf("%" G_GINT64_FORMAT, value->integer);
		return TRUE;
	}
bad:
	return kl_toml_fail_at(
	    P,
	    line,
	    column,
	    error,
	    "invalid value '%s': not a number, boolean, string or array (strings "
	    "need quotes)",
	    tok);
}

/* ---- values ---- */

static KlTomlValue *
kl_toml_parse_value(KlTomlParser *P, guint depth, GError **error);

static gboolean
kl_toml_parse_array(KlTomlParser *P, KlTomlValue *value, guint depth, GError **error)
{
	guint open_line = P->line;
	guint open_column = kl_toml_column_at(P, P->p);

	if (depth >= KL_TOML_MAX_DEPTH)
		return kl_toml_fail(P, error, "arrays nested more than %u deep", KL_TOML_MAX_DEPTH);
	value->type = KL_TOML_TYPE_ARRAY;
	value->array = g_ptr_array_new_with_free_func(kl_toml_value_free);
	P->p++;
	for (;;) {
		KlTomlValue *item;

		if (!kl_toml_skip_ws_nl(P, error))
			return FALSE;
		if (kl_toml_eof(P))
			return kl_toml_fail_at(
			    P, open_line, open_column, error, "unterminated array: missing ']'");
		if (*P->p == ']') {
			P->p++;
			return TRUE;
		}
		item = kl_toml_parse_value(P, depth + 1, error);
		if (item == NULL)
			return FALSE;
		g_ptr_array_add(value->array, item);
		if (!kl_toml_skip_ws_nl(P, error))
			return FALSE;
		if (kl_toml_eof(P))
			return kl_toml_fail_at(
			    P, open_line, open_column, error, "unterminated array: missing ']'");
		if (*P->p == ',') {
			P->p++;
			continue;
		}
		if (*P->p == ']') {
			P->p++;
			return TRUE;
		}
		return kl_toml_fail(P,
				    error,
				    "expected ',' or ']' in array, found '%c'",
				    g_ascii_isprint(*P->p) ? *P->p : '?');
	}
}

static gboolean
kl_toml_match_word(KlTomlParser *P, const gchar *word)
{
	gsize n = strlen(word);

	if ((gsize)(P->end - P->p) < n || strncmp(P->p, word, n) != 0)
		return FALSE;
	/* "trueish" is not a boolean */
	if (P->p + n < P->end && kl_toml_is_bare_key_char(P->p[n]))
		return FALSE;
	return TRUE;
}

static KlTomlValue *
kl_toml_parse_value(KlTomlParser *P, guint depth, GError **error)
{
	g_autoptr(KlTomlValue) value = g_new0(KlTomlValue, 1);
	gchar c;

	value->line = P->line;
	value->column = kl_toml_column_at(P, P->p);
	if (kl_toml_eof(P) || kl_toml_at_newline(P) || *P->p == '#') {
		kl_toml_fail(P, error, "missing value");
		return NULL;
	}
	c = *P->p;
	if (c == '"' || c == '\'') {
		gboolean ok;
		value->type = KL_TOML_TYPE_STRING;
		if (kl_toml_peek(P, 1) == c && kl_toml_peek(P, 2) == c)
			ok = kl_toml_parse_multiline_string(P, &value->text, error);
		else
			ok = kl_toml_parse_simple_string(P, &value->text, error);
		if (!ok)
			return NULL;
	} else if (c == '[') {
		if (!kl_toml_parse_array(P, value, depth, error))
			return NULL;
	} else if (c == '{') {
		kl_toml_fail(P,
			     error,
			     "inline tables are not supported; write the keys under a "
			     "[table] header instead");
		return NULL;
	} else if (kl_toml_match_word(P, "true")) {
		value->type = KL_TOML_TYPE_BOOLEAN;
		value->boolean = TRUE;
		value->text = g_strdup("true");
		P->p += 4;
	} else if (kl_toml_match_word(P, "false")) {
		value->type = KL_TOML_TYPE_BOOLEAN;
		value->text = g_strdup("false");
		P->p += 5;
	} else if (g_ascii_isdigit(c) || c == '+' || c == '-' || c == 'i' || c == 'n') {
		if (!kl_toml_parse_number(P, value, error))
			return NULL;
	} else {
		const gchar *q = P->p;
		while (q < P->end && kl_toml_is_bare_key_char(*q))
			q++;
		if (q > P->p)
			kl_toml_fail(P,
				     error,
				     "invalid value '%.*s': strings need quotes",
				     (int)MIN(q - P->p, 64),
				     P->p);
		else
			kl_toml_fail(P,
				     error,
				     "invalid value starting with '%c'",
				     g_ascii_isprint(c) ? c : '?');
		return NULL;
	}
	return g_steal_pointer(&value);
}

/* ---- statements ---- */

static gboolean
kl_toml_parse_table_header(KlTomlParser *P, GError **error)
{
	guint line = P->line;
	guint column = kl_toml_column_at(P, P->p);
	g_autoptr(GString) name = g_string_new(NULL);
	KlTomlTable *table;

	P->p++;
	if (kl_toml_peek(P, 0) == '[')
		return kl_toml_fail(P, error, "arrays of tables ([[name]]) are not supported");
	for (;;) {
		g_autofree gchar *part = NULL;

		kl_toml_skip_ws(P);
		if (!kl_toml_parse_key(P, &part, error))
			return FALSE;
		if (name->len > 0)
			g_string_append_c(name, '.');
		g_string_append(name, part);
		kl_toml_skip_ws(P);
		if (kl_toml_peek(P, 0) == '.') {
			P->p++;
			continue;
		}
		if (kl_toml_peek(P, 0) == ']') {
			P->p++;
			break;
		}
		if (kl_toml_eof(P) || kl_toml_at_newline(P))
			return kl_toml_fail(P, error, "unterminated table header: missing ']'");
		return kl_toml_fail(P,
				    error,
				    "unexpected '%c' in table header",
				    g_ascii_isprint(*P->p) ? *P->p : '?');
	}

	table = g_hash_table_lookup(P->doc->by_name, name->str);
	if (table != NULL)
		return kl_toml_fail_at(P,
				       line,
				       column,
				       error,
				       "duplicate table [%s] (first defined on line %u)",
				       name->str,
				       table->line);
	/* [a.b] conflicts with a key b = ... in [a] */
	for (gsize i = 0; i < name->len; i++) {
		g_autofree gchar *parent = NULL;
		KlTomlTable *ptable;
		const gchar *child;
		const KlTomlValue *v;

		if (name->str[i] != '.')
			continue;
		parent = g_strndup(name->str, i);
		ptable = g_hash_table_lookup(P->doc->by_name, parent);
		if (ptable == NULL)
			continue;
		child = name->str + i + 1;
		{
			g_autofree gchar *first = g_strdup(child);
			gchar *dot = strchr(first, '.');
			if (dot != NULL)
				*dot = '\0';
			v = g_hash_table_lookup(ptable->values, first);
			if (v != NULL)
				return kl_toml_fail_at(P,
						       line,
						       column,
						       error,
						       "table [%s] conflicts with key '%s' of [%s] "
						       "on line %u",
						       name->str,
						       first,
						       parent,
						       v->line);
		}
	}

	table = g_new0(KlTomlTable, 1);
	table->name = g_strdup(name->str);
	table->line = line;
	table->keys = g_ptr_array_new_with_free_func(g_free);
	table->values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, kl_toml_value_free);
	g_ptr_array_add(P->doc->tables, table);
	g_hash_table_insert(P->doc->by_name, table->name, table);
	P->table = table;
	return kl_toml_expect_line_end(P, "the table header", error);
}

static gboolean
kl_toml_key_is_subtable(KlTomlParser *P, const gchar *key)
{
	g_autofree gchar *full = g_strdup_printf("%s.%s", P->table->name, key);
	gsize len = strlen(full);

	for (guint i = 0; i < P->doc->tables->len; i++) {
		KlTomlTable *t = g_ptr_array_index(P->doc->tables, i);
		if (strncmp(t->name, full, len) == 0 &&
		    (t->name[len] == '\0' || t->name[len] == '.'))
			return TRUE;
	}
	return FALSE;
}

static gboolean
kl_toml_parse_keyval(KlTomlParser *P, GError **error)
{
	guint line = P->line;
	guint column = kl_toml_column_at(P, P->p);
	g_autofree gchar *key = NULL;
	KlTomlValue *value;
	const KlTomlValue *old;

	if (!kl_toml_parse_key(P, &key, error))
		return FALSE;
	kl_toml_skip_ws(P);
	if (kl_toml_peek(P, 0) == '.')
		return kl_toml_fail(
		    P, error, "dotted keys are not supported; use a [table.name] header");
	if (kl_toml_peek(P, 0) != '=') {
		if (kl_toml_eof(P) || kl_toml_at_newline(P))
			return kl_toml_fail(P, error, "expected '=' after key '%s'", key);
		return kl_toml_fail(P,
				    error,
				    "expected '=' after key '%s', found '%c'",
				    key,
				    g_ascii_isprint(*P->p) ? *P->p : '?');
	}
	P->p++;
	kl_toml_skip_ws(P);
	if (P->table == NULL)
		return kl_toml_fail_at(P,
				       line,
				       column,
				       error,
				       "key '%s' is outside of any table; put it under a header "
				       "such as [agent]",
				       key);
	old = g_hash_table_lookup(P->table->values, key);
	if (old != NULL)
		return kl_toml_fail_at(P,
				       line,
				       column,
				       error,
				       "duplicate key '%s' in [%s] (first set on line %u)",
				       key,
				       P->table->name,
				       old->line);
	if (kl_toml_key_is_subtable(P, key))
		return kl_toml_fail_at(P,
				       line,
				       column,
				       error,
				       "key '%s' conflicts with the table [%s.%s]",
				       key,
				       P->table->name,
				       key);
	value = kl_toml_parse_value(P, 0, error);
	if (value == NULL)
		return FALSE;
	g_ptr_array_add(P->table->keys, g_strdup(key));
	g_hash_table_insert(P->table->values, g_steal_pointer(&key), value);
	return kl_toml_expect_line_end(P, "the value", error);
}

KlTomlDocument *
kl_toml_parse(const gchar *data, gsize len, const gchar *filename, GError **error)
{
	g_autoptr(KlTomlDocument) doc = g_new0(KlTomlDocument, 1);
	KlTomlParser P = { 0 };
	const gchar *bad = NULL;

	g_return_val_if_fail(data != NULL || len == 0, NULL);

	doc->filename = g_strdup(filename != NULL ? filename : "<input>");
	doc->tables = g_ptr_array_new_with_free_func(kl_toml_table_free);
	doc->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	P.filename = doc->filename;
	P.p = data != NULL ? data : "";
	P.end = P.p + len;
	P.line_start = P.p;
	P.line = 1;
	P.doc = doc;

	if (!g_utf8_validate_len(P.p, len, &bad)) {
		for (const gchar *q = P.p; q < bad; q++) {
			if (*q == '\n') {
				P.line++;
				P.line_start = q + 1;
			}
		}
		P.p = bad;
		kl_toml_fail_at(&P,
				P.line,
				(guint)(bad - P.line_start) + 1,
				error,
				"%s",
				(bad < P.end && *bad == '\0')
				    ? "NUL byte (this is not a text file)"
				    : "invalid UTF-8 (the file must be UTF-8 encoded)");
		return NULL;
	}
	/* a UTF-8 byte order mark is allowed at the start */
	if (len >= 3 && memcmp(P.p, "\xEF\xBB\xBF", 3) == 0) {
		P.p += 3;
		P.line_start = P.p;
	}

	while (!kl_toml_eof(&P)) {
		kl_toml_skip_ws(&P);
		if (kl_toml_eof(&P))
			break;
		if (*P.p == '#' || kl_toml_at_newline(&P)) {
			if (!kl_toml_expect_line_end(&P, "a comment", error))
				return NULL;
			continue;
		}
		if (*P.p == '[') {
			if (!kl_toml_parse_table_header(&P, error))
				return NULL;
			continue;
		}
		if (*P.p == '=') {
			kl_toml_fail(&P, error, "missing key name before '='");
			return NULL;
		}
		if (*P.p == '\r') {
			kl_toml_fail(&P, error, "carriage return not followed by a line feed");
			return NULL;
		}
		if (!kl_toml_parse_keyval(&P, error))
			return NULL;
	}
	return g_steal_pointer(&doc);
}

KlTomlDocument *
kl_toml_parse_file(const gchar *path, GError **error)
{
	g_autofree gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) error_local = NULL;

	g_return_val_if_fail(path != NULL, NULL);
	if (!g_file_get_contents(path, &data, &len, &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
				? KL_ERROR_NOT_FOUND
				: KL_ERROR_IO,
			    "%s",
			    error_local->message);
		return NULL;
	}
	return kl_toml_parse(data, len, path, error);
}
