/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "keylime-agent/kl-error.h"
#include "kl-json-doc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KL_JSON_DOC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KL_JSON_DOC_ASAN 1
#endif
#if defined(KL_JSON_DOC_ASAN)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size)	((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

#if !defined(__SSE2__)
#define KL_JSON_DOC_ONES  G_GUINT64_CONSTANT(0x0101010101010101)
#define KL_JSON_DOC_HIGHS G_GUINT64_CONSTANT(0x8080808080808080)
/* non-zero when a byte of @x is below @n (n <= 128; exact as a yes/no answer) */
#define KL_JSON_DOC_HAS_LESS(x, n) (((x)-KL_JSON_DOC_ONES * (n)) & ~(x)&KL_JSON_DOC_HIGHS)
#define KL_JSON_DOC_HAS_ZERO(x)	   KL_JSON_DOC_HAS_LESS(x, 1)
#endif

/* documents nested deeper than this are refused */
#define KL_JSON_DOC_MAX_DEPTH 128

/*
 * The copy of the input ends with a NUL and as many more zero bytes: every
 * scan stops at that NUL (the grammar has no place for one, and a string
 * stops at any control character), so the reader tests for the end only
 * where it stopped, and a 16-byte load at any byte of the text stays inside
 * the allocation.
 */
#define KL_JSON_DOC_PAD 16

typedef struct {
	guint8 type;	 /* KlJsonDocType */
	guint32 offset;	 /* string: its decoded text in doc->text (raw start + 1); else raw start */
	guint32 raw_end; /* the byte after the value's raw text in the input */
	guint32 count;	 /* array: elements; object: members; string: decoded bytes */
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
	gchar *text; /* a copy of the input, in the same allocation: strings are decoded in place */
	gsize len;
	gsize capacity; /* of the text's room */
	KlJsonToken *tokens;
	guint n_tokens;
	guint allocated;
};

/*
 * The agent reads its answers one after the other, each freed before the
 * next: one freed document per thread serves the next parse, so that a
 * steady cycle's answers cost no allocation. Only a small one is kept (the
 * memory of a large answer returns), and every document gets room for
 * KL_JSON_DOC_ROOM bytes at least, so that the one kept fits the next answer.
 */
#define KL_JSON_DOC_ROOM	(4096 - sizeof(KlJsonDoc))
#define KL_JSON_DOC_KEPT_ROOM	(16 * 1024)
#define KL_JSON_DOC_KEPT_TOKENS 1024

/* a kept document's text and tokens are out of bounds (to AddressSanitizer) until reused */
static void
kl_json_doc_poison(KlJsonDoc *doc, gboolean poison)
{
	if (poison) {
		ASAN_POISON_MEMORY_REGION(doc->text, doc->capacity);
		ASAN_POISON_MEMORY_REGION(doc->tokens, doc->allocated * sizeof(KlJsonToken));
	} else {
		ASAN_UNPOISON_MEMORY_REGION(doc->text, doc->capacity);
		ASAN_UNPOISON_MEMORY_REGION(doc->tokens, doc->allocated * sizeof(KlJsonToken));
	}
}

static void
kl_json_doc_release(KlJsonDoc *doc)
{
	kl_json_doc_poison(doc, FALSE);
	g_free(doc->tokens);
	g_free(doc); /* and the text */
}

static GPrivate kl_json_doc_kept = G_PRIVATE_INIT((GDestroyNotify)kl_json_doc_release);

typedef struct {
	KlJsonDoc *doc;
	const gchar *end; /* the NUL after the text */
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

static __attribute__((noinline)) void
kl_json_doc_grow(KlJsonDoc *doc)
{
	doc->allocated = doc->allocated * 2;
	doc->tokens = g_renew(KlJsonToken, doc->tokens, doc->allocated);
}

/* a new token (its value, v, is the caller's to set) */
static inline __attribute__((always_inline)) KlJsonToken *
kl_json_doc_add(
    KlJsonDoc *doc, KlJsonDocType type, const gchar *raw_start, const gchar *raw_end, guint32 count)
{
	KlJsonToken *token;

	if (G_UNLIKELY(doc->n_tokens == doc->allocated))
		kl_json_doc_grow(doc);
	token = &doc->tokens[doc->n_tokens++];
	token->type = (guint8)type;
	token->offset = (guint32)(raw_start - doc->text);
	token->raw_end = (guint32)(raw_end - doc->text);
	token->count = count;
	token->end = doc->n_tokens;
	return token;
}

/* the first byte at or after @p that is not JSON whitespace (the final NUL stops it) */
static inline __attribute__((always_inline)) gchar *
kl_json_doc_skip_space(gchar *p)
{
	/* one comparison for the common case: a byte above ' ' */
	while ((guchar)*p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
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

/*
 * The rest of a string from @p, its first byte that is not plain ASCII (an
 * escape, a byte >= 0x80, a control byte or the end), decoding escapes in
 * place; @start is its first byte. Returns its closing quote, NULL on error;
 * *@out_end is the end of the decoded text, *@high TRUE when it has a byte
 * >= 0x80.
 */
static __attribute__((noinline)) gchar *
kl_json_doc_read_escaped(KlJsonReader *r, gchar *start, gchar *p, gchar **out_end, gboolean *high)
{
	gchar *out = p;

	for (;;) {
		guchar c = (guchar)*p;
		gint cp;

		if (c == '"')
			break;
		if (c < 0x20) {
			/* the final NUL */
			if (p >= r->end) {
				kl_json_doc_fail(r, "unterminated string", start - 1);
				return NULL;
			}
			kl_json_doc_fail(r, "control character in a string", p);
			return NULL;
		}
		if (c >= 0x80)
			*high = TRUE;
		if (c != '\\') {
			*out++ = *p++;
			continue;
		}
		if (p + 1 >= r->end) {
			kl_json_doc_fail(r, "unterminated escape", p);
			return NULL;
		}
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
		if (cp < 0) {
			kl_json_doc_fail(r, "invalid escape", p);
			return NULL;
		}
		if (cp == 0) {
			kl_json_doc_fail(r, "\\u0000 in a string", p);
			return NULL;
		}
		if (cp >= 0xdc00 && cp <= 0xdfff) {
			kl_json_doc_fail(r, "lone low surrogate", p);
			return NULL;
		}
		if (cp >= 0xd800 && cp <= 0xdbff) {
			gint low = kl_json_doc_unicode_escape(r, p + 6);

			if (low < 0xdc00 || low > 0xdfff) {
				kl_json_doc_fail(r, "lone high surrogate", p);
				return NULL;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
			p += 6;
		}
		p += 6;
		/* at most 4 bytes for at least 6 read: never overtakes the input */
		out += g_unichar_to_utf8((gunichar)cp, out);
	}
	*out_end = out;
	return p;
}

/*
 * A string whose opening quote is at @p: decoded in place, NUL-terminated,
 * added as a token. Returns the byte after its closing quote, NULL on error.
 */
static inline __attribute__((always_inline)) gchar *
kl_json_doc_read_string(KlJsonReader *r, gchar *p)
{
	gchar *start = ++p;
	gchar *out;
	gboolean high = FALSE;

	/* the common case: no escape, no control or high byte before the closing quote */
#if defined(__SSE2__)
	{
		const __m128i quote = _mm_set1_epi8('"');
		const __m128i backslash = _mm_set1_epi8('\\');
		const __m128i space = _mm_set1_epi8(' ');

		for (;;) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
			/* signed: below ' ' is a control byte or one >= 0x80 */
			__m128i special = _mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
			    _mm_cmplt_epi8(x, space));
			guint stop = (guint)_mm_movemask_epi8(special);

			if (stop != 0) {
				p += __builtin_ctz(stop);
				break;
			}
			p += 16;
		}
	}
#else
	for (;;) {
		guint64 x;
		guint64 special;

		memcpy(&x, p, 8);
		special = KL_JSON_DOC_HAS_LESS(x, 0x20) |
			  KL_JSON_DOC_HAS_ZERO(x ^ (KL_JSON_DOC_ONES * '"')) |
			  KL_JSON_DOC_HAS_ZERO(x ^ (KL_JSON_DOC_ONES * '\\')) |
			  (x & KL_JSON_DOC_HIGHS);
		if (special != 0)
			break;
		p += 8;
	}
	while (*p != '"' && *p != '\\' && (guchar)*p >= 0x20 && (guchar)*p < 0x80)
		p++;
#endif
	out = p;
	if (G_UNLIKELY(*p != '"')) {
		/* an escape, a byte >= 0x80, a control byte or the end */
		p = kl_json_doc_read_escaped(r, start, p, &out, &high);
		if (p == NULL)
			return NULL;
	}
	/*
	 * the bytes outside strings are ASCII or refused by the grammar; the
	 * decoded text is checked (escapes always decode to whole characters, so
	 * it is valid exactly when the raw text is)
	 */
	if (G_UNLIKELY(high) && !g_utf8_validate_len(start, (gsize)(out - start), NULL)) {
		g_set_error_literal(r->error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "invalid JSON: the document is not valid UTF-8");
		return NULL;
	}
	*out = '\0'; /* over the closing quote at the latest */
	kl_json_doc_add(r->doc, KL_JSON_DOC_STRING, start, p + 1, (guint32)(out - start));
	return p + 1;
}

static inline gboolean
kl_json_doc_is_delimiter(KlJsonReader *r, const gchar *p)
{
	return p >= r->end || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ',' ||
	       *p == ']' || *p == '}';
}

/*
 * A number at @p: JSON grammar, integers within gint64 (as json-glib: gint64
 * or double). Returns the byte after it, NULL on error.
 */
static gchar *
kl_json_doc_read_number(KlJsonReader *r, gchar *p)
{
	gchar *start = p;
	gchar *digits;
	gboolean integer = TRUE;
	gboolean negative = FALSE;
	KlJsonToken *token;

	if (*p == '-') {
		negative = TRUE;
		p++;
	}
	digits = p;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (g_ascii_isdigit(*p))
			p++;
	} else {
		kl_json_doc_fail(r, "malformed number", start);
		return NULL;
	}
	if (*p == '.') {
		integer = FALSE;
		p++;
		if (!g_ascii_isdigit(*p)) {
			kl_json_doc_fail(r, "malformed number", start);
			return NULL;
		}
		while (g_ascii_isdigit(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		integer = FALSE;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!g_ascii_isdigit(*p)) {
			kl_json_doc_fail(r, "malformed number", start);
			return NULL;
		}
		while (g_ascii_isdigit(*p))
			p++;
	}
	if (!kl_json_doc_is_delimiter(r, p)) {
		kl_json_doc_fail(r, "malformed number", start);
		return NULL;
	}
	if (integer) {
		/* json-glib would silently turn an overflowing integer into garbage */
		guint64 u = 0;

		if (p - digits <= 18) {
			/* below 10^18: no overflow */
			for (const gchar *q = digits; q < p; q++)
				u = u * 10 + (guint)(*q - '0');
		} else {
			guint64 limit = negative ? (guint64)G_MAXINT64 + 1 : (guint64)G_MAXINT64;

			for (const gchar *q = digits; q < p; q++) {
				guint d = (guint)(*q - '0');

				if (u > (limit - d) / 10) {
					kl_json_doc_fail(r, "integer out of range", start);
					return NULL;
				}
				u = u * 10 + d;
			}
		}
		token = kl_json_doc_add(r->doc, KL_JSON_DOC_INT, start, p, 0);
		token->v.i = negative ? (gint64)(0 - u) : (gint64)u;
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
		if (!isfinite(d)) {
			kl_json_doc_fail(r, "number out of range", start);
			return NULL;
		}
		token = kl_json_doc_add(r->doc, KL_JSON_DOC_DOUBLE, start, p, 0);
		token->v.d = d;
	}
	return p;
}

/* true, false or null at @p ("word" of @n bytes); the byte after it, NULL on error */
static gchar *
kl_json_doc_read_word(
    KlJsonReader *r, gchar *p, const gchar *word, gsize n, KlJsonDocType type, gboolean value)
{
	/* the padding after the text keeps the comparison inside the allocation */
	if (memcmp(p, word, n) != 0 || !kl_json_doc_is_delimiter(r, p + n)) {
		kl_json_doc_fail(r, "unexpected word", p);
		return NULL;
	}
	kl_json_doc_add(r->doc, type, p, p + n, 0)->v.b = value;
	return p + n;
}

/*
 * The value at @p (not whitespace) and everything in it, without recursion:
 * @stack holds the tokens of the open arrays and objects. Returns the byte
 * after the value, NULL on error.
 */
static gchar *
kl_json_doc_read(KlJsonReader *r, gchar *p)
{
	KlJsonDoc *doc = r->doc;
	guint stack[KL_JSON_DOC_MAX_DEPTH];
	guint depth = 0;
	guint container;
	gboolean object;

value:
	switch (*p) {
	case '{':
	case '[':
		if (depth == KL_JSON_DOC_MAX_DEPTH) {
			g_set_error(r->error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "invalid JSON: nested deeper than %d levels",
				    KL_JSON_DOC_MAX_DEPTH);
			return NULL;
		}
		object = *p == '{';
		container = doc->n_tokens;
		kl_json_doc_add(doc, object ? KL_JSON_DOC_OBJECT : KL_JSON_DOC_ARRAY, p, p, 0);
		stack[depth++] = container;
		p = kl_json_doc_skip_space(p + 1);
		if (*p == (object ? '}' : ']')) {
			p++;
			goto close;
		}
		if (object)
			goto member;
		goto value;
	case '"':
		p = kl_json_doc_read_string(r, p);
		break;
	case 't':
		p = kl_json_doc_read_word(r, p, "true", 4, KL_JSON_DOC_BOOLEAN, TRUE);
		break;
	case 'f':
		p = kl_json_doc_read_word(r, p, "false", 5, KL_JSON_DOC_BOOLEAN, FALSE);
		break;
	case 'n':
		p = kl_json_doc_read_word(r, p, "null", 4, KL_JSON_DOC_NULL, FALSE);
		break;
	default:
		if (*p == '-' || g_ascii_isdigit(*p)) {
			p = kl_json_doc_read_number(r, p);
			break;
		}
		kl_json_doc_fail(r, p >= r->end ? "unexpected end" : "unexpected character", p);
		return NULL;
	}
	if (p == NULL)
		return NULL;

next:
	/* after a value: the next one in its container, or the container's end */
	if (depth == 0)
		return p;
	container = stack[depth - 1];
	object = doc->tokens[container].type == KL_JSON_DOC_OBJECT;
	doc->tokens[container].count++;
	p = kl_json_doc_skip_space(p);
	if (*p == ',') {
		p = kl_json_doc_skip_space(p + 1);
		if (object)
			goto member;
		goto value;
	}
	if (*p != (object ? '}' : ']')) {
		kl_json_doc_fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'", p);
		return NULL;
	}
	p++;

close:
	container = stack[--depth];
	doc->tokens[container].end = doc->n_tokens;
	doc->tokens[container].raw_end = (guint32)(p - doc->text);
	goto next;

member:
	if (*p != '"') {
		kl_json_doc_fail(r, "expected a member name", p);
		return NULL;
	}
	p = kl_json_doc_read_string(r, p);
	if (p == NULL)
		return NULL;
	p = kl_json_doc_skip_space(p);
	if (*p != ':') {
		kl_json_doc_fail(r, "expected ':'", p);
		return NULL;
	}
	p = kl_json_doc_skip_space(p + 1);
	goto value;
}

void
kl_json_doc_free(KlJsonDoc *doc)
{
	KlJsonDoc *kept;

	if (doc == NULL)
		return;
	kept = g_private_get(&kl_json_doc_kept);
	if (doc->capacity <= KL_JSON_DOC_KEPT_ROOM && doc->allocated <= KL_JSON_DOC_KEPT_TOKENS &&
	    (kept == NULL || kept->capacity < doc->capacity)) {
		/* frees the smaller one kept before */
		kl_json_doc_poison(doc, TRUE);
		g_private_replace(&kl_json_doc_kept, doc);
		return;
	}
	kl_json_doc_release(doc);
}

KlJsonDoc *
kl_json_doc_parse(const gchar *data, gsize len, GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	KlJsonReader r = { 0 };
	gchar *p;

	g_return_val_if_fail(data != NULL || len == 0, NULL);

	/* tokens address the text with 32 bits */
	if (len >= G_MAXUINT32) {
		g_set_error_literal(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "invalid JSON: the document is too large");
		return NULL;
	}
	doc = g_private_get(&kl_json_doc_kept);
	if (doc != NULL && doc->capacity >= len + 1 + KL_JSON_DOC_PAD) {
		g_private_set(&kl_json_doc_kept, NULL);
		kl_json_doc_poison(doc, FALSE);
	} else {
		gsize capacity = MAX(len + 1 + KL_JSON_DOC_PAD, KL_JSON_DOC_ROOM);

		doc = g_malloc(sizeof(KlJsonDoc) + capacity);
		doc->text = (gchar *)(doc + 1);
		doc->capacity = capacity;
		doc->tokens = NULL;
		doc->allocated = 0;
	}
	doc->len = len;
	if (len > 0)
		memcpy(doc->text, data, len);
	memset(doc->text + len, 0, 1 + KL_JSON_DOC_PAD);
	doc->n_tokens = 0;
	if (doc->allocated < MIN(len / 8 + 16, 4096)) {
		g_free(doc->tokens);
		doc->allocated = (guint)MIN(len / 8 + 16, 4096);
		doc->tokens = g_new(KlJsonToken, doc->allocated);
	}

	r.doc = doc;
	r.end = doc->text + len;
	r.error = error;
	p = kl_json_doc_skip_space(doc->text);
	if (p >= r.end) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "invalid JSON: the document is empty");
		return NULL;
	}
	p = kl_json_doc_read(&r, p);
	if (p == NULL)
		return NULL;
	p = kl_json_doc_skip_space(p);
	if (p < r.end) {
		kl_json_doc_fail(&r, "unexpected data after the document", p);
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
	gsize key_len;
	guint k;

	if (token == NULL || token->type != KL_JSON_DOC_OBJECT)
		return KL_JSON_DOC_ABSENT;
	key_len = strlen(key);
	k = object + 1;
	for (guint n = 0; n < token->count; n++) {
		/* a key's count is its decoded length; the last one counts, as in json-glib */
		if (doc->tokens[k].count == key_len &&
		    memcmp(doc->text + doc->tokens[k].offset, key, key_len) == 0)
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
	gsize raw_room;
	JsonObject *object; /* sealed */
	GArray *members;    /* KlJsonMemoMember, in the order of the text */
	GArray *next;	    /* empty: the members of the next object built */
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
	memo->next = g_array_new(FALSE, FALSE, sizeof(KlJsonMemoMember));
	g_array_set_clear_func(memo->next, (GDestroyNotify)kl_json_memo_member_clear);
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
	g_array_unref(memo->next);
	g_free(memo);
}

JsonObject *
kl_json_object_memo_build(KlJsonObjectMemo *memo, KlJsonDoc *doc, guint index, const gchar *input)
{
	KlJsonToken *token = kl_json_doc_token(doc, index);
	GArray *members;
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
	members = memo->next;
	g_array_set_size(members, token->count); /* every element is set below */
	k = index + 1;
	for (guint n = 0; n < token->count; n++) {
		KlJsonMemoMember *member = &g_array_index(members, KlJsonMemoMember, n);
		gsize value_start = 0;

		kl_json_doc_get_raw(doc, k + 1, &value_start, &member->raw_len);
		member->raw_offset = value_start - start;
		member->node = NULL;
		if (n < memo->members->len) {
			KlJsonMemoMember *old = &g_array_index(memo->members, KlJsonMemoMember, n);

			if (old->raw_len == member->raw_len && memcmp(memo->raw + old->raw_offset,
								      input + value_start,
								      member->raw_len) == 0)
				member->node = json_node_ref(old->node);
		}
		if (member->node == NULL) {
			member->node = kl_json_doc_to_node(doc, k + 1);
			json_node_seal(member->node);
		}
		json_object_set_member(
		    object, doc->text + doc->tokens[k].offset, json_node_ref(member->node));
		k = doc->tokens[k + 1].end;
	}
	json_object_seal(object);

	/* the text and the arrays serve again */
	if (len > memo->raw_room) {
		g_free(memo->raw);
		memo->raw = g_malloc(len);
		memo->raw_room = len;
	}
	memcpy(memo->raw, input + start, len);
	memo->raw_len = len;
	g_clear_pointer(&memo->object, json_object_unref);
	memo->object = json_object_ref(object);
	g_array_set_size(memo->members, 0);
	memo->next = memo->members;
	memo->members = members;
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
