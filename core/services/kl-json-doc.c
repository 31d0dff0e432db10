/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-json-doc.h"

#define KL_JSON_DOC_ONES  G_GUINT64_CONSTANT(0x0101010101010101)
#define KL_JSON_DOC_HIGHS G_GUINT64_CONSTANT(0x8080808080808080)
/* non-zero when a byte of @x is below @n (n <= 128; exact as a yes/no answer) */
#define KL_JSON_DOC_HAS_LESS(x, n) (((x)-KL_JSON_DOC_ONES * (n)) & ~(x)&KL_JSON_DOC_HIGHS)
#define KL_JSON_DOC_HAS_ZERO(x)	   KL_JSON_DOC_HAS_LESS(x, 1)

/* documents nested deeper than this are refused */
#define KL_JSON_DOC_MAX_DEPTH 128

typedef struct {
	guint8 type;	 /* KlJsonDocType */
	guint32 offset;	 /* string: its decoded text in doc->text (raw start + 1); else raw start */
	guint32 raw_end; /* the byte after the value's raw text in the input */
	guint32 count;	 /* array: elements; object: members */
	guint32 end;	 /* the index after this value's tokens */
	union {
		gint64 i;
		gdouble d;
		gboolean b;
	} v;
} KlJsonToken;

/*
 * An object's tokens are its members in order, each a key (a string token)
 * followed by the tokens of its value; an array's tokens are its elements.
 */
struct _KlJsonDoc {
	gchar *text; /* a copy of the input: strings are decoded in place */
	gsize len;
	KlJsonToken *tokens;
	guint n_tokens;
	guint allocated;
};

typedef struct {
	KlJsonDoc *doc;
	gchar *p; /* the next byte */
	gchar *end;
	guint depth;
	GError **error;
} KlJsonReader;

static gboolean
kl_json_doc_fail(KlJsonReader *r, const gchar *what, const gchar *at)
{
	g_set_error(r->error,
		    KL_ERROR,
		    KL_ERROR_INVALID_DATA,
		    "invalid JSON: %s at offset %" G_GSIZE_FORMAT,
		    what,
		    (gsize)(at - r->doc->text));
	return FALSE;
}

static inline __attribute__((always_inline)) guint
kl_json_doc_add(KlJsonReader *r, KlJsonDocType type, const gchar *raw_start, const gchar *raw_end)
{
	KlJsonDoc *doc = r->doc;
	KlJsonToken *token;

	if (doc->n_tokens == doc->allocated) {
		doc->allocated = doc->allocated * 2;
		doc->tokens = g_renew(KlJsonToken, doc->tokens, doc->allocated);
	}
	token = &doc->tokens[doc->n_tokens];
	token->type = (guint8)type;
	token->offset = (guint32)(raw_start - doc->text);
	token->raw_end = (guint32)(raw_end - doc->text);
	token->count = 0;
	token->end = doc->n_tokens + 1;
	token->v.i = 0;
	return doc->n_tokens++;
}

static inline void
kl_json_doc_skip_space(KlJsonReader *r)
{
	/* one comparison for the common case: a byte above ' ' */
	while (r->p < r->end && (guchar)*r->p <= ' ' &&
	       (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

/* the code unit of the "\uXXXX" escape at @p ('\\' at @p), or -1 */
static gint
kl_json_doc_unicode_escape(KlJsonReader *r, const gchar *p)
{
	gint cp = 0;

	if (r->end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	for (gint j = 2; j < 6; j++) {
		gint v = g_ascii_xdigit_value(p[j]);

		if (v < 0)
			return -1;
		cp = cp * 16 + v;
	}
	return cp;
}

/* a string at r->p ('"'): decoded in place, NUL-terminated */
static inline __attribute__((always_inline)) gboolean
kl_json_doc_read_string(KlJsonReader *r)
{
	gchar *start = ++r->p;
	gchar *out;
	gchar *p = start;
	gboolean high = FALSE;

	/* the common case, eight bytes at a time: no quote, escape, control or high byte */
	while (r->end - p >= 8) {
		guint64 x;
		guint64 special;

		memcpy(&x, p, 8);
		special = KL_JSON_DOC_HAS_LESS(x, 0x20) |
			  KL_JSON_DOC_HAS_ZERO(x ^ (KL_JSON_DOC_ONES * '"')) |
			  KL_JSON_DOC_HAS_ZERO(x ^ (KL_JSON_DOC_ONES * '\\')) |
			  (x & KL_JSON_DOC_HIGHS);
		if (special != 0) {
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
			/*
			 * the lowest flagged byte is a special one (a false positive
			 * can only sit above a true one): go straight to it
			 */
			p += __builtin_ctzll(special) / 8;
#endif
			break;
		}
		p += 8;
	}
	while (p < r->end && *p != '"' && *p != '\\' && (guchar)*p >= 0x20) {
		if ((guchar)*p >= 0x80)
			high = TRUE;
		p++;
	}
	out = p;
	while (p < r->end) {
		guchar c = (guchar)*p;
		gint cp;

		if (c == '"')
			break;
		if (c < 0x20)
			return kl_json_doc_fail(r, "control character in a string", p);
		if (c >= 0x80)
			high = TRUE;
		if (c != '\\') {
			*out++ = *p++;
			continue;
		}
		if (p + 1 >= r->end)
			return kl_json_doc_fail(r, "unterminated escape", p);
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
			*out++ = p[1];
			p += 2;
			continue;
		case 'b':
			*out++ = '\b';
			p += 2;
			continue;
		case 'f':
			*out++ = '\f';
			p += 2;
			continue;
		case 'n':
			*out++ = '\n';
			p += 2;
			continue;
		case 'r':
			*out++ = '\r';
			p += 2;
			continue;
		case 't':
			*out++ = '\t';
			p += 2;
			continue;
		default:
			break;
		}
		cp = kl_json_doc_unicode_escape(r, p);
		if (cp < 0)
			return kl_json_doc_fail(r, "invalid escape", p);
		if (cp == 0)
			return kl_json_doc_fail(r, "\\u0000 in a string", p);
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return kl_json_doc_fail(r, "lone low surrogate", p);
		if (cp >= 0xd800 && cp <= 0xdbff) {
			gint low = kl_json_doc_unicode_escape(r, p + 6);

			if (low < 0xdc00 || low > 0xdfff)
				return kl_json_doc_fail(r, "lone high surrogate", p);
			cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
			p += 6;
		}
		p += 6;
		/* at most 4 bytes for at least 6 read: never overtakes the input */
		out += g_unichar_to_utf8((gunichar)cp, out);
	}
	if (p >= r->end)
		return kl_json_doc_fail(r, "unterminated string", start - 1);
	/*
	 * the bytes outside strings are ASCII or refused by the grammar; the
	 * decoded text is checked (escapes always decode to whole characters, so
	 * it is valid exactly when the raw text is)
	 */
	if (high && !g_utf8_validate_len(start, (gsize)(out - start), NULL)) {
		g_set_error_literal(r->error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "invalid JSON: the document is not valid UTF-8");
		return FALSE;
	}
	*out = '\0'; /* over the closing quote at the latest */
	r->p = p + 1;
	kl_json_doc_add(r, KL_JSON_DOC_STRING, start, r->p);
	return TRUE;
}

static gboolean
kl_json_doc_is_delimiter(KlJsonReader *r, const gchar *p)
{
	return p >= r->end || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ',' ||
	       *p == ']' || *p == '}';
}

/* a number: JSON grammar, integers within gint64 (as json-glib: gint64 or double) */
static gboolean
kl_json_doc_read_number(KlJsonReader *r)
{
	gchar *start = r->p;
	gchar *p = start;
	gboolean integer = TRUE;
	gboolean negative = FALSE;
	guint index;

	if (p < r->end && *p == '-') {
		negative = TRUE;
		p++;
	}
	if (p < r->end && *p == '0') {
		p++;
	} else if (p < r->end && *p >= '1' && *p <= '9') {
		while (p < r->end && g_ascii_isdigit(*p))
			p++;
	} else {
		return kl_json_doc_fail(r, "malformed number", start);
	}
	if (p < r->end && *p == '.') {
		integer = FALSE;
		p++;
		if (p >= r->end || !g_ascii_isdigit(*p))
			return kl_json_doc_fail(r, "malformed number", start);
		while (p < r->end && g_ascii_isdigit(*p))
			p++;
	}
	if (p < r->end && (*p == 'e' || *p == 'E')) {
		integer = FALSE;
		p++;
		if (p < r->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= r->end || !g_ascii_isdigit(*p))
			return kl_json_doc_fail(r, "malformed number", start);
		while (p < r->end && g_ascii_isdigit(*p))
			p++;
	}
	if (!kl_json_doc_is_delimiter(r, p))
		return kl_json_doc_fail(r, "malformed number", start);
	if (integer) {
		/* json-glib would silently turn an overflowing integer into garbage */
		guint64 u = 0;
		guint64 limit = negative ? (guint64)G_MAXINT64 + 1 : (guint64)G_MAXINT64;

		for (const gchar *q = negative ? start + 1 : start; q < p; q++) {
			guint d = (guint)(*q - '0');

			if (u > (limit - d) / 10)
				return kl_json_doc_fail(r, "integer out of range", start);
			u = u * 10 + d;
		}
		index = kl_json_doc_add(r, KL_JSON_DOC_INT, start, p);
		r->doc->tokens[index].v.i = negative ? (gint64)(0 - u) : (gint64)u;
	} else {
		gchar buf[64];
		g_autofree gchar *copy = NULL;
		const gchar *text;
		gdouble d;

		if ((gsize)(p - start) < sizeof(buf)) {
			memcpy(buf, start, (gsize)(p - start));
			buf[p - start] = '\0';
			text = buf;
		} else {
			copy = g_strndup(start, (gsize)(p - start));
			text = copy;
		}
		d = g_ascii_strtod(text, NULL);
		if (!isfinite(d))
			return kl_json_doc_fail(r, "number out of range", start);
		index = kl_json_doc_add(r, KL_JSON_DOC_DOUBLE, start, p);
		r->doc->tokens[index].v.d = d;
	}
	r->p = p;
	return TRUE;
}

static gboolean
kl_json_doc_read_word(KlJsonReader *r, const gchar *word, KlJsonDocType type, gboolean value)
{
	gsize n = strlen(word);
	guint index;

	if ((gsize)(r->end - r->p) < n || memcmp(r->p, word, n) != 0 ||
	    !kl_json_doc_is_delimiter(r, r->p + n))
		return kl_json_doc_fail(r, "unexpected word", r->p);
	index = kl_json_doc_add(r, type, r->p, r->p + n);
	r->doc->tokens[index].v.b = value;
	r->p += n;
	return TRUE;
}

static gboolean
kl_json_doc_read_value(KlJsonReader *r);

static gboolean
kl_json_doc_read_container(KlJsonReader *r, gboolean object)
{
	gchar close = object ? '}' : ']';
	guint index;
	guint count = 0;

	if (++r->depth > KL_JSON_DOC_MAX_DEPTH) {
		g_set_error(r->error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "invalid JSON: nested deeper than %d levels",
			    KL_JSON_DOC_MAX_DEPTH);
		return FALSE;
	}
	index = kl_json_doc_add(r, object ? KL_JSON_DOC_OBJECT : KL_JSON_DOC_ARRAY, r->p, r->p);
	r->p++;
	kl_json_doc_skip_space(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
	} else {
		for (;;) {
			if (object) {
				if (r->p >= r->end || *r->p != '"')
					return kl_json_doc_fail(r, "expected a member name", r->p);
				if (!kl_json_doc_read_string(r))
					return FALSE;
				kl_json_doc_skip_space(r);
				if (r->p >= r->end || *r->p != ':')
					return kl_json_doc_fail(r, "expected ':'", r->p);
				r->p++;
				kl_json_doc_skip_space(r);
			}
			if (!kl_json_doc_read_value(r))
				return FALSE;
			count++;
			kl_json_doc_skip_space(r);
			if (r->p < r->end && *r->p == ',') {
				r->p++;
				kl_json_doc_skip_space(r);
				continue;
			}
			if (r->p < r->end && *r->p == close) {
				r->p++;
				break;
			}
			return kl_json_doc_fail(
			    r, object ? "expected ',' or '}'" : "expected ',' or ']'", r->p);
		}
	}
	r->depth--;
	r->doc->tokens[index].count = count;
	r->doc->tokens[index].end = r->doc->n_tokens;
	r->doc->tokens[index].raw_end = (guint32)(r->p - r->doc->text);
	return TRUE;
}

static gboolean
kl_json_doc_read_value(KlJsonReader *r)
{
	if (r->p >= r->end)
		return kl_json_doc_fail(r, "unexpected end", r->p);
	switch (*r->p) {
	case '{':
		return kl_json_doc_read_container(r, TRUE);
	case '[':
		return kl_json_doc_read_container(r, FALSE);
	case '"':
		return kl_json_doc_read_string(r);
	case 't':
		return kl_json_doc_read_word(r, "true", KL_JSON_DOC_BOOLEAN, TRUE);
	case 'f':
		return kl_json_doc_read_word(r, "false", KL_JSON_DOC_BOOLEAN, FALSE);
	case 'n':
		return kl_json_doc_read_word(r, "null", KL_JSON_DOC_NULL, FALSE);
	default:
		if (*r->p == '-' || g_ascii_isdigit(*r->p))
			return kl_json_doc_read_number(r);
		return kl_json_doc_fail(r, "unexpected character", r->p);
	}
}

void
kl_json_doc_free(KlJsonDoc *doc)
{
	if (doc == NULL)
		return;
	g_free(doc->text);
	g_free(doc->tokens);
	g_free(doc);
}

KlJsonDoc *
kl_json_doc_parse(const gchar *data, gsize len, GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	KlJsonReader r = { 0 };

	g_return_val_if_fail(data != NULL || len == 0, NULL);

	/* tokens address the text with 32 bits */
	if (len >= G_MAXUINT32) {
		g_set_error_literal(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "invalid JSON: the document is too large");
		return NULL;
	}
	doc = g_new0(KlJsonDoc, 1);
	doc->len = len;
	doc->text = g_malloc(len + 1);
	if (len > 0)
		memcpy(doc->text, data, len);
	doc->text[len] = '\0';
	doc->allocated = (guint)MIN(len / 8 + 16, 4096);
	doc->tokens = g_new(KlJsonToken, doc->allocated);

	r.doc = doc;
	r.p = doc->text;
	r.end = doc->text + len;
	r.error = error;
	kl_json_doc_skip_space(&r);
	if (r.p >= r.end) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "invalid JSON: the document is empty");
		return NULL;
	}
	if (!kl_json_doc_read_value(&r))
		return NULL;
	kl_json_doc_skip_space(&r);
	if (r.p < r.end) {
		kl_json_doc_fail(&r, "unexpected data after the document", r.p);
		return NULL;
	}
	if (doc->tokens[0].type != KL_JSON_DOC_OBJECT) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "invalid JSON: the document must be an object, not %s",
			    kl_json_doc_type_name(doc, 0));
		return NULL;
	}
	return g_steal_pointer(&doc);
}

static inline KlJsonToken *
kl_json_doc_token(KlJsonDoc *doc, guint index)
{
	return index < doc->n_tokens ? &doc->tokens[index] : NULL;
}

KlJsonDocType
kl_json_doc_get_type(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	return token != NULL ? (KlJsonDocType)token->type : KL_JSON_DOC_NONE;
}

const gchar *
kl_json_doc_type_name(KlJsonDoc *doc, guint index)
{
	switch (kl_json_doc_get_type(doc, index)) {
	case KL_JSON_DOC_OBJECT:
		return "an object";
	case KL_JSON_DOC_ARRAY:
		return "an array";
	case KL_JSON_DOC_STRING:
		return "a string";
	case KL_JSON_DOC_INT:
		return "an integer";
	case KL_JSON_DOC_DOUBLE:
		return "a number with a fraction or exponent";
	case KL_JSON_DOC_BOOLEAN:
		return "a boolean";
	case KL_JSON_DOC_NULL:
		return "null";
	case KL_JSON_DOC_NONE:
	default:
		return "missing";
	}
}

guint
kl_json_doc_get_member(KlJsonDoc *doc, guint object, const gchar *key)
{
	KlJsonToken *token = kl_json_doc_token(doc, object);
	guint found = KL_JSON_DOC_ABSENT;
	guint k;

	if (token == NULL || token->type != KL_JSON_DOC_OBJECT)
		return KL_JSON_DOC_ABSENT;
	k = object + 1;
	for (guint n = 0; n < token->count; n++) {
		/* the last one counts, as in json-glib */
		if (strcmp(doc->text + doc->tokens[k].offset, key) == 0)
			found = k + 1;
		k = doc->tokens[k + 1].end;
	}
	return found;
}

guint
kl_json_doc_get_length(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);

	if (token == NULL ||
	    (token->type != KL_JSON_DOC_ARRAY && token->type != KL_JSON_DOC_OBJECT))
		return 0;
	return token->count;
}

guint
kl_json_doc_first(KlJsonDoc *doc, guint array)
{
	KlJsonToken *token = kl_json_doc_token(doc, array);

	if (token == NULL || token->type != KL_JSON_DOC_ARRAY || token->count == 0)
		return KL_JSON_DOC_ABSENT;
	return array + 1;
}

guint
kl_json_doc_next(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	return token != NULL ? token->end : KL_JSON_DOC_ABSENT;
}

const gchar *
kl_json_doc_get_string(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);

	if (token == NULL || token->type != KL_JSON_DOC_STRING)
		return NULL;
	return doc->text + token->offset;
}

gint64
kl_json_doc_get_int(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	return token != NULL && token->type == KL_JSON_DOC_INT ? token->v.i : 0;
}

gdouble
kl_json_doc_get_double(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);

	if (token == NULL)
		return 0.0;
	if (token->type == KL_JSON_DOC_DOUBLE)
		return token->v.d;
	if (token->type == KL_JSON_DOC_INT)
		return (gdouble)token->v.i;
	return 0.0;
}

JsonNode *
kl_json_doc_to_node(KlJsonDoc *doc, guint index)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	JsonNode *node;

	g_return_val_if_fail(token != NULL, NULL);

	switch ((KlJsonDocType)token->type) {
	case KL_JSON_DOC_OBJECT: {
		JsonObject *object = json_object_new();
		guint k = index + 1;

		for (guint n = 0; n < token->count; n++) {
			json_object_set_member(object,
					       doc->text + doc->tokens[k].offset,
					       kl_json_doc_to_node(doc, k + 1));
			k = doc->tokens[k + 1].end;
		}
		node = json_node_new(JSON_NODE_OBJECT);
		json_node_take_object(node, object);
		return node;
	}
	case KL_JSON_DOC_ARRAY: {
		JsonArray *array = json_array_sized_new(token->count);

		for (guint k = index + 1; k < token->end; k = doc->tokens[k].end)
			json_array_add_element(array, kl_json_doc_to_node(doc, k));
		node = json_node_new(JSON_NODE_ARRAY);
		json_node_take_array(node, array);
		return node;
	}
	case KL_JSON_DOC_STRING:
		node = json_node_new(JSON_NODE_VALUE);
		json_node_set_string(node, doc->text + token->offset);
		return node;
	case KL_JSON_DOC_INT:
		node = json_node_new(JSON_NODE_VALUE);
		json_node_set_int(node, token->v.i);
		return node;
	case KL_JSON_DOC_DOUBLE:
		node = json_node_new(JSON_NODE_VALUE);
		json_node_set_double(node, token->v.d);
		return node;
	case KL_JSON_DOC_BOOLEAN:
		node = json_node_new(JSON_NODE_VALUE);
		json_node_set_boolean(node, token->v.b);
		return node;
	case KL_JSON_DOC_NULL:
	case KL_JSON_DOC_NONE:
	default:
		return json_node_new(JSON_NODE_NULL);
	}
}

gboolean
kl_json_doc_get_raw(KlJsonDoc *doc, guint index, gsize *start, gsize *len)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	gsize first;

	if (token == NULL)
		return FALSE;
	/* a string's offset is its decoded text, just after the opening quote */
	first = token->offset - (token->type == KL_JSON_DOC_STRING ? 1 : 0);
	*start = first;
	*len = token->raw_end - first;
	return TRUE;
}

/* ---- object memo ---- */

typedef struct {
	gsize raw_offset; /* of the member's value in memo->raw */
	gsize raw_len;
	JsonNode *node; /* sealed */
} KlJsonMemoMember;

struct _KlJsonObjectMemo {
	gchar *raw; /* the object's raw text */
	gsize raw_len;
	JsonObject *object; /* sealed */
	GArray *members;    /* KlJsonMemoMember, in the order of the text */
};

static void
kl_json_memo_member_clear(KlJsonMemoMember *member)
{
	g_clear_pointer(&member->node, json_node_unref);
}

KlJsonObjectMemo *
kl_json_object_memo_new(void)
{
	KlJsonObjectMemo *memo = g_new0(KlJsonObjectMemo, 1);

	memo->members = g_array_new(FALSE, FALSE, sizeof(KlJsonMemoMember));
	g_array_set_clear_func(memo->members, (GDestroyNotify)kl_json_memo_member_clear);
	return memo;
}

void
kl_json_object_memo_free(KlJsonObjectMemo *memo)
{
	if (memo == NULL)
		return;
	g_free(memo->raw);
	g_clear_pointer(&memo->object, json_object_unref);
	g_array_unref(memo->members);
	g_free(memo);
}

JsonObject *
kl_json_object_memo_build(KlJsonObjectMemo *memo, KlJsonDoc *doc, guint index, const gchar *input)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	g_autoptr(GArray) members = NULL;
	JsonObject *object;
	gsize start = 0;
	gsize len = 0;
	guint k;

	g_return_val_if_fail(token != NULL && token->type == KL_JSON_DOC_OBJECT, NULL);
	g_return_val_if_fail(input != NULL, NULL);

	if (memo == NULL) {
		g_autoptr(JsonNode) node = kl_json_doc_to_node(doc, index);

		object = json_object_ref(json_node_get_object(node));
		json_object_seal(object);
		return object;
	}
	kl_json_doc_get_raw(doc, index, &start, &len);
	if (memo->object != NULL && len == memo->raw_len &&
	    memcmp(input + start, memo->raw, len) == 0)
		return json_object_ref(memo->object);

	/* a member whose text is the one at the same place last time keeps its node */
	object = json_object_new();
	members = g_array_sized_new(FALSE, FALSE, sizeof(KlJsonMemoMember), token->count);
	g_array_set_clear_func(members, (GDestroyNotify)kl_json_memo_member_clear);
	k = index + 1;
	for (guint n = 0; n < token->count; n++) {
		KlJsonMemoMember member = { 0 };
		gsize value_start = 0;

		kl_json_doc_get_raw(doc, k + 1, &value_start, &member.raw_len);
		member.raw_offset = value_start - start;
		if (n < memo->members->len) {
			KlJsonMemoMember *old = &g_array_index(memo->members, KlJsonMemoMember, n);

			if (old->raw_len == member.raw_len && memcmp(memo->raw + old->raw_offset,
								     input + value_start,
								     member.raw_len) == 0)
				member.node = json_node_ref(old->node);
		}
		if (member.node == NULL) {
			member.node = kl_json_doc_to_node(doc, k + 1);
			json_node_seal(member.node);
		}
		json_object_set_member(
		    object, doc->text + doc->tokens[k].offset, json_node_ref(member.node));
		g_array_append_val(members, member);
		k = doc->tokens[k + 1].end;
	}
	json_object_seal(object);

	g_free(memo->raw);
	memo->raw = g_memdup2(input + start, len);
	memo->raw_len = len;
	g_clear_pointer(&memo->object, json_object_unref);
	memo->object = json_object_ref(object);
	g_array_unref(memo->members);
	memo->members = g_steal_pointer(&members);
	return object;
}

/* ---- checked getters ---- */

static guint
kl_json_doc_get_typed_member(KlJsonDoc *doc,
			     guint object,
			     const gchar *key,
			     KlJsonDocType type,
			     const gchar *expected,
			     GError **error)
{
	guint member = kl_json_doc_get_member(doc, object, key);

	if (member == KL_JSON_DOC_ABSENT) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "member \"%s\" is missing", key);
		return KL_JSON_DOC_ABSENT;
	}
	if (kl_json_doc_get_type(doc, member) != type) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "member \"%s\" must be %s, not %s",
			    key,
			    expected,
			    kl_json_doc_type_name(doc, member));
		return KL_JSON_DOC_ABSENT;
	}
	return member;
}

guint
kl_json_doc_get_object_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error)
{
	return kl_json_doc_get_typed_member(
	    doc, object, key, KL_JSON_DOC_OBJECT, "an object", error);
}

guint
kl_json_doc_get_array_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error)
{
	return kl_json_doc_get_typed_member(doc, object, key, KL_JSON_DOC_ARRAY, "an array", error);
}

const gchar *
kl_json_doc_get_string_member(KlJsonDoc *doc, guint object, const gchar *key, GError **error)
{
	guint member =
	    kl_json_doc_get_typed_member(doc, object, key, KL_JSON_DOC_STRING, "a string", error);

	return member != KL_JSON_DOC_ABSENT ? kl_json_doc_get_string(doc, member) : NULL;
}

gboolean
kl_json_doc_get_optional_string_member(
    KlJsonDoc *doc, guint object, const gchar *key, const gchar **out, GError **error)
{
	guint member = kl_json_doc_get_member(doc, object, key);
	const gchar *value;

	if (member == KL_JSON_DOC_ABSENT || kl_json_doc_get_type(doc, member) == KL_JSON_DOC_NULL) {
		if (out != NULL)
			*out = NULL;
		return TRUE;
	}
	value = kl_json_doc_get_string_member(doc, object, key, error);
	if (value == NULL)
		return FALSE;
	if (out != NULL)
		*out = value;
	return TRUE;
}
