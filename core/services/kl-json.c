/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
/* AVX2 where the CPU has it (chosen at run time), SSE2 (x86-64's baseline) otherwise */
#define KL_JSON_AVX2 1
#include <immintrin.h>
#endif

#include "keylime-agent/kl-error.h"
#include "keylime-agent/kl-json.h"
#include "kl-json-doc.h"
#include "kl-json-private.h"

/*
 * json-glib's plain getters cannot tell a missing member from one of the wrong
 * type (and emit criticals on a missing one), so every read of untrusted JSON
 * goes through these checked accessors.
 */

static const gchar *
kl_json_node_type_name(JsonNode *node)
{
	switch (json_node_get_node_type(node)) {
	case JSON_NODE_OBJECT:
		return "an object";
	case JSON_NODE_ARRAY:
		return "an array";
	case JSON_NODE_NULL:
		return "null";
	case JSON_NODE_VALUE:
		break;
	default:
		return "an unknown node";
	}
	switch (json_node_get_value_type(node)) {
	case G_TYPE_STRING:
		return "a string";
	case G_TYPE_INT64:
		return "an integer";
	case G_TYPE_DOUBLE:
		return "a number with a fraction or exponent";
	case G_TYPE_BOOLEAN:
		return "a boolean";
	default:
		return "an unknown value";
	}
}

/* the member @key, or NULL + KL_ERROR_INVALID_DATA when it is missing */
static JsonNode *
kl_json_object_get_member_node(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);

	if (node == NULL) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "member \"%s\" is missing", key);
		return NULL;
	}
	return node;
}

static void
kl_json_set_type_error(GError **error, const gchar *key, const gchar *expected, JsonNode *node)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_INVALID_DATA,
		    "member \"%s\" must be %s, not %s",
		    key,
		    expected,
		    kl_json_node_type_name(node));
}

static gboolean
kl_json_node_holds_value_type(JsonNode *node, GType type)
{
	return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == type;
}

const gchar *
kl_json_object_get_string(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	node = kl_json_object_get_member_node(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!kl_json_node_holds_value_type(node, G_TYPE_STRING)) {
		kl_json_set_type_error(error, key, "a string", node);
		return NULL;
	}
	return json_node_get_string(node);
}

gboolean
kl_json_object_get_int(JsonObject *obj, const gchar *key, gint64 *out, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	node = kl_json_object_get_member_node(obj, key, error);
	if (node == NULL)
		return FALSE;
	/* json-glib keeps JSON integers as gint64 and anything with '.'/'e' as double */
	if (!kl_json_node_holds_value_type(node, G_TYPE_INT64)) {
		kl_json_set_type_error(error, key, "an integer", node);
		return FALSE;
	}
	if (out != NULL)
		*out = json_node_get_int(node);
	return TRUE;
}

gboolean
kl_json_object_get_bool(JsonObject *obj, const gchar *key, gboolean *out, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	node = kl_json_object_get_member_node(obj, key, error);
	if (node == NULL)
		return FALSE;
	if (!kl_json_node_holds_value_type(node, G_TYPE_BOOLEAN)) {
		kl_json_set_type_error(error, key, "a boolean", node);
		return FALSE;
	}
	if (out != NULL)
		*out = json_node_get_boolean(node);
	return TRUE;
}

JsonObject *
kl_json_object_get_object(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	node = kl_json_object_get_member_node(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(node)) {
		kl_json_set_type_error(error, key, "an object", node);
		return NULL;
	}
	return json_node_get_object(node);
}

JsonArray *
kl_json_object_get_array(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	node = kl_json_object_get_member_node(obj, key, error);
	if (node == NULL)
		return NULL;
	if (!JSON_NODE_HOLDS_ARRAY(node)) {
		kl_json_set_type_error(error, key, "an array", node);
		return NULL;
	}
	return json_node_get_array(node);
}

gboolean
kl_json_object_get_optional_int(
    JsonObject *obj, const gchar *key, gint64 default_value, gint64 *out, GError **error)
{
	JsonNode *node;

	g_return_val_if_fail(obj != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	/* one lookup: the checks of kl_json_object_get_int() on the node found */
	node = json_object_get_member(obj, key);
	if (node == NULL || JSON_NODE_HOLDS_NULL(node)) {
		if (out != NULL)
			*out = default_value;
		return TRUE;
	}
	if (!kl_json_node_holds_value_type(node, G_TYPE_INT64)) {
		kl_json_set_type_error(error, key, "an integer", node);
		return FALSE;
	}
	if (out != NULL)
		*out = json_node_get_int(node);
	return TRUE;
}

gboolean
kl_json_object_get_optional_string(JsonObject *obj,
				   const gchar *key,
				   const gchar **out,
				   GError **error)
{
	JsonNode *node;
	const gchar *value;

	g_return_val_if_fail(obj != NULL, FALSE);
	g_return_val_if_fail(key != NULL, FALSE);

	/* one lookup: the checks of kl_json_object_get_string() on the node found */
	node = json_object_get_member(obj, key);
	if (node == NULL || JSON_NODE_HOLDS_NULL(node)) {
		if (out != NULL)
			*out = NULL;
		return TRUE;
	}
	if (!kl_json_node_holds_value_type(node, G_TYPE_STRING)) {
		kl_json_set_type_error(error, key, "a string", node);
		return FALSE;
	}
	value = json_node_get_string(node);
	if (out != NULL)
		*out = value;
	return TRUE;
}

GBytes *
kl_json_object_get_base64(JsonObject *obj, const gchar *key, GError **error)
{
	const gchar *text;
	GBytes *bytes;

	g_return_val_if_fail(obj != NULL, NULL);
	g_return_val_if_fail(key != NULL, NULL);

	text = kl_json_object_get_string(obj, key, error);
	if (text == NULL)
		return NULL;
	bytes = kl_base64_decode_strict(text, error);
	if (bytes == NULL) {
		g_prefix_error(error, "member \"%s\": ", key);
		return NULL;
	}
	return bytes;
}

/* value of a base64 alphabet character, or -1 */
static inline gint
kl_base64_value(gchar c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

GBytes *
kl_base64_decode_strict(const gchar *text, GError **error)
{
	gsize len;
	gsize pad = 0;
	g_autofree guint8 *out = NULL;
	gsize out_len = 0;

	g_return_val_if_fail(text != NULL, NULL);

	len = strlen(text);
	if (len % 4 != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "invalid base64: length %" G_GSIZE_FORMAT " is not a multiple of 4",
			    len);
		return NULL;
	}
	if (len > 0 && text[len - 1] == '=')
		pad++;
	if (len > 1 && text[len - 2] == '=')
		pad++;

	/* the decoded bytes are written straight into the buffer the GBytes takes */
	out = g_malloc(len / 4 * 3 + 1);
	for (gsize i = 0; i < len; i += 4) {
		gint v[4];
		guint8 b[3];
		gsize n = 4;

		if (i + 4 == len)
			n = 4 - pad;
		for (gsize j = 0; j < 4; j++) {
			if (j >= n) {
				v[j] = 0;
				continue;
			}
			v[j] = kl_base64_value(text[i + j]);
			if (v[j] < 0) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "invalid base64: unexpected character 0x%02x at offset "
					    "%" G_GSIZE_FORMAT,
					    (guint)(guchar)text[i + j],
					    i + j);
				return NULL;
			}
		}
		b[0] = (guint8)((v[0] << 2) | (v[1] >> 4));
		b[1] = (guint8)(((v[1] & 0xf) << 4) | (v[2] >> 2));
		b[2] = (guint8)(((v[2] & 0x3) << 6) | v[3]);
		/* canonical encoding only: the bits dropped by the padding must be zero */
		if ((n == 2 && (v[1] & 0xf) != 0) || (n == 3 && (v[2] & 0x3) != 0)) {
			g_set_error_literal(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "invalid base64: non-zero bits before the padding");
			return NULL;
		}
		memcpy(out + out_len, b, n - 1);
		out_len += n - 1;
	}
	return g_bytes_new_take(g_steal_pointer(&out), out_len);
}

JsonObject *
kl_json_parse_object(const gchar *data, gssize len, GError **error)
{
	g_autoptr(KlJsonDoc) doc = NULL;
	g_autoptr(JsonNode) root = NULL;

	g_return_val_if_fail(data != NULL || len == 0, NULL);

	/*
	 * json-glib's own parser is lenient (single-quoted strings, comments, raw
	 * control characters, lone surrogates and \u0000 in strings) and slow; the
	 * strict reader of kl-json-doc.c builds the same tree
	 */
	doc = kl_json_doc_parse(data, len < 0 ? strlen(data) : (gsize)len, error);
	if (doc == NULL)
		return NULL;
	root = kl_json_doc_to_node(doc, 0);
	return json_object_ref(json_node_get_object(root));
}

/*
 * A compact JSON writer for the trees the agent sends: the same text as
 * json-glib's generator (members in insertion order, no spaces, the same
 * escapes), without its per-character string handling, which made the
 * evidence body the most expensive part of a steady cycle. A hook may write
 * any value itself (kl-json-body.c streams large strings from where they are).
 */
typedef struct {
	GString *out;
	KlJsonWriteHook hook;
	gpointer hook_data;
} KlJsonWriter;

/* how the writer writes each byte inside a string: 1 = as it is, 2 = "\n", 6 = "\u001f" */
const guint8 kl_json_escaped_len[256] = {
	[0x00 ... 0x07] = 6, ['\b'] = 2, ['\t'] = 2,	      ['\n'] = 2,
	[0x0b] = 6,	     ['\f'] = 2, ['\r'] = 2,	      [0x0e ... 0x1f] = 6,
	[0x20 ... 0x21] = 1, ['"'] = 2,	 [0x23 ... 0x5b] = 1, ['\\'] = 2,
	[0x5d ... 0x7e] = 1, [0x7f] = 6, [0x80 ... 0xff] = 1,
};

static inline guint
kl_json_escape_byte_inline(guchar c, gchar *out)
{
	static const gchar hex[] = "0123456789abcdef";
	gchar named = 0;

	switch (c) {
	case '"':
		named = '"';
		break;
	case '\\':
		named = '\\';
		break;
	case '\b':
		named = 'b';
		break;
	case '\f':
		named = 'f';
		break;
	case '\n':
		named = 'n';
		break;
	case '\r':
		named = 'r';
		break;
	case '\t':
		named = 't';
		break;
	default:
		break;
	}
	if (kl_json_escaped_len[c] == 1) {
		out[0] = (gchar)c;
		return 1;
	}
	out[0] = '\\';
	if (named != 0) {
		out[1] = named;
		return 2;
	}
	out[1] = 'u';
	out[2] = '0';
	out[3] = '0';
	out[4] = hex[c >> 4];
	out[5] = hex[c & 0x0f];
	return 6;
}

guint
kl_json_escape_byte(guchar c, gchar *out)
{
	return kl_json_escape_byte_inline(c, out);
}

static void
kl_json_write_node(KlJsonWriter *w, JsonNode *node);

#define KL_JSON_ONES  G_GUINT64_CONSTANT(0x0101010101010101)
#define KL_JSON_HIGHS G_GUINT64_CONSTANT(0x8080808080808080)

/* non-zero when a byte of @x is below @n (n <= 128; exact as a yes/no answer) */
#define KL_JSON_HAS_LESS(x, n) (((x)-KL_JSON_ONES * (n)) & ~(x)&KL_JSON_HIGHS)
#define KL_JSON_HAS_ZERO(x)    KL_JSON_HAS_LESS(x, 1)

/* the first byte of @x (little-endian order of @str) that needs an escape, or 8 */
static inline guint
kl_json_escape_span8(const gchar *str)
{
	guint64 x;

	memcpy(&x, str, 8);
	if ((KL_JSON_HAS_LESS(x, 0x20) | KL_JSON_HAS_ZERO(x ^ (KL_JSON_ONES * '"')) |
	     KL_JSON_HAS_ZERO(x ^ (KL_JSON_ONES * '\\')) |
	     KL_JSON_HAS_ZERO(x ^ (KL_JSON_ONES * 0x7f))) == 0)
		return 8;
	for (guint i = 0; i < 8; i++) {
		if (kl_json_escaped_len[(guchar)str[i]] != 1)
			return i;
	}
	return 8;
}

#if defined(__SSE2__)
/* one bit per byte of the 16 at @str that needs an escape: a control character, '"', '\\', DEL */
static inline guint
kl_json_escape_mask16(const gchar *str)
{
	const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)str);
	const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
	const __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
	const __m128i backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
	const __m128i del = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f));

	return (guint)_mm_movemask_epi8(
	    _mm_or_si128(_mm_or_si128(ctl, quote), _mm_or_si128(backslash, del)));
}
#endif

#if defined(KL_JSON_AVX2)
static gint kl_json_avx2_state = -1; /* -1: the CPU not asked yet */

static inline gboolean
kl_json_avx2(void)
{
	gint state = g_atomic_int_get(&kl_json_avx2_state);

	if (G_UNLIKELY(state < 0)) {
		__builtin_cpu_init();
		state = __builtin_cpu_supports("avx2") ? 1 : 0;
		g_atomic_int_set(&kl_json_avx2_state, state);
	}
	return state == 1;
}

/* one bit per byte of the 32 in @x that needs an escape */
__attribute__((target("avx2"))) static inline guint
kl_json_escape_mask32(__m256i x)
{
	const __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x1f)), x);
	const __m256i quote = _mm256_cmpeq_epi8(x, _mm256_set1_epi8('"'));
	const __m256i backslash = _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\\'));
	const __m256i del = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(0x7f));

	return (guint)_mm256_movemask_epi8(
	    _mm256_or_si256(_mm256_or_si256(ctl, quote), _mm256_or_si256(backslash, del)));
}

/* kl_json_escape_span() for @len >= 32 */
__attribute__((target("avx2"))) static gsize
kl_json_escape_span_avx2(const gchar *str, gsize len)
{
	gsize i = 0;
	guint mask;

	for (; i + 32 <= len; i += 32) {
		mask = kl_json_escape_mask32(
		    _mm256_loadu_si256((const __m256i *)(const void *)(str + i)));
		if (mask != 0)
			return i + (gsize)__builtin_ctz(mask);
	}
	if (i == len)
		return len;
	/* the last block overlaps the one before */
	mask = kl_json_escape_mask32(
		   _mm256_loadu_si256((const __m256i *)(const void *)(str + len - 32))) >>
	       (32 - (len - i));
	return mask != 0 ? i + (gsize)__builtin_ctz(mask) : len;
}
#endif

gboolean
kl_json_escape_use_avx2(gboolean enable)
{
#if defined(KL_JSON_AVX2)
	gint state;

	__builtin_cpu_init();
	state = enable && __builtin_cpu_supports("avx2") ? 1 : 0;
	g_atomic_int_set(&kl_json_avx2_state, state);
	return state == 1;
#else
	return FALSE;
#endif
}

gsize
kl_json_escape_span(const gchar *str, gsize len)
{
	gsize i = 0;

#if defined(KL_JSON_AVX2)
	if (len >= 64 && kl_json_avx2())
		return kl_json_escape_span_avx2(str, len);
#endif

#if defined(__SSE2__)
	/* 32 then 16 bytes at a time; the last (partial) block overlaps the one before */
	if (len >= 16) {
		guint mask;

		for (; i + 32 <= len; i += 32) {
			guint lo = kl_json_escape_mask16(str + i);
			guint hi = kl_json_escape_mask16(str + i + 16);

			if ((lo | hi) != 0)
				return i + (gsize)__builtin_ctz(lo | (hi << 16));
		}
		if (i + 16 <= len) {
			mask = kl_json_escape_mask16(str + i);
			if (mask != 0)
				return i + (gsize)__builtin_ctz(mask);
			i += 16;
		}
		if (i == len)
			return len;
		mask = kl_json_escape_mask16(str + len - 16) >> (16 - (len - i));
		return mask != 0 ? i + (gsize)__builtin_ctz(mask) : len;
	}
#endif
	/* eight bytes at a time: any control character, '"', '\\' or DEL */
	for (; i + 8 <= len; i += 8) {
		guint n = kl_json_escape_span8(str + i);

		if (n < 8)
			return i + n;
	}
	for (; i < len; i++) {
		if (kl_json_escaped_len[(guchar)str[i]] != 1)
			return i;
	}
	return len;
}

/* room in @out's buffer past its end for at least @need bytes and the NUL; the end */
static inline gchar *
kl_json_reserve(GString *out, gsize need)
{
	if (out->allocated_len - out->len <= need) {
		gsize len = out->len;

		g_string_set_size(out, len + need);
		g_string_truncate(out, len);
	}
	return out->str + out->len;
}

/* what may be written past the bytes left: a 32-byte block, an escape */
#define KL_JSON_ESCAPE_SLACK 48

#if defined(KL_JSON_AVX2)
/* kl_json_append_escaped() 32 bytes at a time */
__attribute__((target("avx2"))) static void
kl_json_append_escaped_avx2(GString *out, const gchar *str, gsize len)
{
	gsize i = 0;
	gchar *p = kl_json_reserve(out, len + KL_JSON_ESCAPE_SLACK);
	gchar *end = out->str + out->allocated_len - 1;

	for (;;) {
		gsize n;

		while (i + 32 <= len) {
			const __m256i x =
			    _mm256_loadu_si256((const __m256i *)(const void *)(str + i));
			guint mask = kl_json_escape_mask32(x);

			_mm256_storeu_si256((__m256i *)(void *)p, x);
			if (mask != 0) {
				n = (gsize)__builtin_ctz(mask);
				p += n;
				i += n;
				goto escape;
			}
			p += 32;
			i += 32;
		}
		n = kl_json_escape_span(str + i, len - i);
		memcpy(p, str + i, n);
		p += n;
		i += n;
		if (i >= len)
			break;
	escape:
		if ((gsize)(end - p) < len - i + KL_JSON_ESCAPE_SLACK) {
			out->len = (gsize)(p - out->str);
			p = kl_json_reserve(out, len - i + KL_JSON_ESCAPE_SLACK + (len - i) / 8);
			end = out->str + out->allocated_len - 1;
		}
		p += kl_json_escape_byte_inline((guchar)str[i++], p);
	}
	out->len = (gsize)(p - out->str);
	*p = '\0';
}
#endif

void
kl_json_append_escaped(GString *out, const gchar *str, gsize len)
{
	gsize i = 0;
	gchar *p = kl_json_reserve(out, len + KL_JSON_ESCAPE_SLACK);
	gchar *end = out->str + out->allocated_len - 1;

#if defined(KL_JSON_AVX2)
	if (len >= 64 && kl_json_avx2()) {
		kl_json_append_escaped_avx2(out, str, len);
		return;
	}
#endif

	/*
	 * one pass: blocks without escapes are copied as they are scanned (a
	 * block is stored whole, only its clean bytes count), escapes written in
	 * between; the buffer always has room for the rest as it is plus the slack
	 */
	for (;;) {
		gsize n;

#if defined(__SSE2__)
		while (i + 32 <= len) {
			const __m128i lo =
			    _mm_loadu_si128((const __m128i *)(const void *)(str + i));
			const __m128i hi =
			    _mm_loadu_si128((const __m128i *)(const void *)(str + i + 16));
			guint mask = kl_json_escape_mask16(str + i) |
				     (kl_json_escape_mask16(str + i + 16) << 16);

			_mm_storeu_si128((__m128i *)(void *)p, lo);
			_mm_storeu_si128((__m128i *)(void *)(p + 16), hi);
			if (mask != 0) {
				n = (gsize)__builtin_ctz(mask);
				p += n;
				i += n;
				goto escape;
			}
			p += 32;
			i += 32;
		}
		if (i + 16 <= len) {
			const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(str + i));
			guint mask = kl_json_escape_mask16(str + i);

			_mm_storeu_si128((__m128i *)(void *)p, x);
			if (mask != 0) {
				n = (gsize)__builtin_ctz(mask);
				p += n;
				i += n;
				goto escape;
			}
			p += 16;
			i += 16;
		}
#endif
		n = kl_json_escape_span(str + i, len - i);
		memcpy(p, str + i, n);
		p += n;
		i += n;
		if (i >= len)
			break;
#if defined(__SSE2__)
	escape:
#endif
		if ((gsize)(end - p) < len - i + KL_JSON_ESCAPE_SLACK) {
			out->len = (gsize)(p - out->str);
			p = kl_json_reserve(out, len - i + KL_JSON_ESCAPE_SLACK + (len - i) / 8);
			end = out->str + out->allocated_len - 1;
		}
		p += kl_json_escape_byte_inline((guchar)str[i++], p);
	}
	out->len = (gsize)(p - out->str);
	*p = '\0';
}

static void
kl_json_write_string(GString *out, const gchar *str)
{
	g_string_append_c(out, '"');
	kl_json_append_escaped(out, str, strlen(str));
	g_string_append_c(out, '"');
}

void
kl_json_append_string(GString *out, const gchar *str)
{
	kl_json_write_string(out, str);
}

void
kl_json_append_int(GString *out, gint64 v)
{
	gchar buf[24];
	guint64 u = v < 0 ? (guint64)0 - (guint64)v : (guint64)v;
	gchar *p = buf + sizeof(buf);

	do {
		*--p = (gchar)('0' + (u % 10));
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	g_string_append_len(out, p, buf + sizeof(buf) - p);
}

static void
kl_json_write_value(KlJsonWriter *w, JsonNode *node)
{
	if (w->hook == NULL || !w->hook(w->out, node, w->hook_data))
		kl_json_write_node(w, node);
}

static void
kl_json_write_object(KlJsonWriter *w, JsonObject *obj)
{
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *member;
	gboolean first = TRUE;

	g_string_append_c(w->out, '{');
	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member)) {
		if (!first)
			g_string_append_c(w->out, ',');
		first = FALSE;
		kl_json_write_string(w->out, name);
		g_string_append_c(w->out, ':');
		kl_json_write_value(w, member);
	}
	g_string_append_c(w->out, '}');
}

static void
kl_json_write_node(KlJsonWriter *w, JsonNode *node)
{
	GString *out = w->out;

	switch (json_node_get_node_type(node)) {
	case JSON_NODE_OBJECT:
		kl_json_write_object(w, json_node_get_object(node));
		return;
	case JSON_NODE_ARRAY: {
		JsonArray *array = json_node_get_array(node);
		guint n = json_array_get_length(array);

		g_string_append_c(out, '[');
		for (guint i = 0; i < n; i++) {
			if (i > 0)
				g_string_append_c(out, ',');
			kl_json_write_value(w, json_array_get_element(array, i));
		}
		g_string_append_c(out, ']');
		return;
	}
	case JSON_NODE_NULL:
		g_string_append(out, "null");
		return;
	case JSON_NODE_VALUE:
	default:
		break;
	}
	switch (json_node_get_value_type(node)) {
	case G_TYPE_STRING:
		kl_json_write_string(out, json_node_get_string(node));
		return;
	case G_TYPE_INT64:
		kl_json_append_int(out, json_node_get_int(node));
		return;
	case G_TYPE_BOOLEAN:
		g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
		return;
	case G_TYPE_DOUBLE: {
		gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
		gdouble d = json_node_get_double(node);

		if (!isfinite(d)) {
			/* JSON has no NaN or infinity */
			g_string_append(out, "null");
			return;
		}
		g_ascii_dtostr(buf, sizeof(buf), d);
		g_string_append(out, buf);
		/* a double stays a double when read back */
		if (strpbrk(buf, ".eE") == NULL)
			g_string_append(out, ".0");
		return;
	}
	default:
		g_string_append(out, "null");
		return;
	}
}

void
kl_json_write_object_hooked(GString *out, JsonObject *obj, KlJsonWriteHook hook, gpointer hook_data)
{
	KlJsonWriter w = { out, hook, hook_data };

	kl_json_write_object(&w, obj);
}

void
kl_json_write_node_hooked(GString *out, JsonNode *node, KlJsonWriteHook hook, gpointer hook_data)
{
	KlJsonWriter w = { out, hook, hook_data };

	kl_json_write_value(&w, node);
}

gchar *
kl_json_object_to_string(JsonObject *obj, gsize *len)
{
	GString *out;

	g_return_val_if_fail(obj != NULL, NULL);

	out = g_string_sized_new(256);
	kl_json_write_object_hooked(out, obj, NULL, NULL);
	if (len != NULL)
		*len = out->len;
	return g_string_free(out, FALSE);
}
