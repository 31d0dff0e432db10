/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "kl-json-body.h"
#include "kl-json-private.h"

/*
 * The body is a list of segments: the document's small parts, written once
 * into @text by the compact writer, and between them the contents of the
 * large strings, escaped while they are read. The quotes around a large
 * string belong to the small parts.
 */
typedef struct {
	const gchar *data; /* the source bytes (set when the layout is done) */
	gsize text_offset; /* a small part: where it starts in body->text */
	gsize len;	   /* source bytes */
	guint64 size;	   /* bytes written: len, or len plus the escapes */
	gboolean escape;   /* the contents of a string: escaped as they are read */
} KlJsonSegment;

struct _KlJsonBody {
	JsonObject *root;
	GHashTable *attached; /* JsonNode * -> GBytes * */
	GString *text;	      /* the small parts */
	gsize text_flushed;   /* the end of the last small part in @text */
	GArray *segments;     /* KlJsonSegment */
	guint64 size;

	/* the read position */
	guint seg;
	gsize pos;	/* in the segment's source */
	gchar carry[6]; /* the rest of an escape that did not fit into the last read */
	guint carry_len;
	guint carry_pos;
};

KlJsonBody *
kl_json_body_new(void)
{
	KlJsonBody *body = g_new0(KlJsonBody, 1);

	body->attached = g_hash_table_new_full(
	    g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)g_bytes_unref);
	body->segments = g_array_new(FALSE, TRUE, sizeof(KlJsonSegment));
	return body;
}

void
kl_json_body_free(KlJsonBody *body)
{
	if (body == NULL)
		return;
	if (body->root != NULL)
		json_object_unref(body->root);
	g_hash_table_unref(body->attached);
	if (body->text != NULL)
		g_string_free(body->text, TRUE);
	g_array_unref(body->segments);
	g_free(body);
}

void
kl_json_body_attach(KlJsonBody *body, JsonNode *node, GBytes *text)
{
	g_return_if_fail(body != NULL && node != NULL && text != NULL);
	g_return_if_fail(body->root == NULL);

	g_hash_table_replace(body->attached, node, g_bytes_ref(text));
}

/* the small part written since the previous one */
static void
kl_json_body_flush_text(KlJsonBody *body, GString *out)
{
	KlJsonSegment seg = { 0 };

	if (out->len == body->text_flushed)
		return;
	seg.text_offset = body->text_flushed;
	seg.len = out->len - body->text_flushed;
	seg.size = seg.len;
	g_array_append_val(body->segments, seg);
	body->text_flushed = out->len;
}

static guint64
kl_json_body_escaped_size(const gchar *data, gsize len)
{
	guint64 size = len;
	gsize i = 0;

	for (;;) {
		i += kl_json_escape_span(data + i, len - i);
		if (i >= len)
			return size;
		size += kl_json_escaped_len[(guchar)data[i]] - 1u;
		i++;
	}
}

static gboolean
kl_json_body_write_hook(GString *out, JsonNode *node, gpointer user_data)
{
	KlJsonBody *body = user_data;
	GBytes *text = g_hash_table_lookup(body->attached, node);
	KlJsonSegment seg = { .escape = TRUE };

	if (text != NULL) {
		seg.data = g_bytes_get_data(text, &seg.len);
	} else if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING) {
		seg.data = json_node_get_string(node);
		seg.len = seg.data != NULL ? strlen(seg.data) : 0;
		if (seg.len < KL_JSON_BODY_IN_PLACE_MIN)
			return FALSE;
	} else {
		return FALSE;
	}
	g_string_append_c(out, '"');
	kl_json_body_flush_text(body, out);
	if (seg.len > 0) {
		seg.size = kl_json_body_escaped_size(seg.data, seg.len);
		g_array_append_val(body->segments, seg);
	}
	g_string_append_c(out, '"');
	return TRUE;
}

void
kl_json_body_set_root(KlJsonBody *body, JsonObject *root)
{
	g_return_if_fail(body != NULL && root != NULL);
	g_return_if_fail(body->root == NULL);

	body->root = json_object_ref(root);
	body->text = g_string_sized_new(4096);
	kl_json_write_object_hooked(body->text, root, kl_json_body_write_hook, body);
	kl_json_body_flush_text(body, body->text);
	/* @text no longer moves: point the small parts at it */
	for (guint i = 0; i < body->segments->len; i++) {
		KlJsonSegment *seg = &g_array_index(body->segments, KlJsonSegment, i);

		if (!seg->escape)
			seg->data = body->text->str + seg->text_offset;
		body->size += seg->size;
	}
	kl_json_body_seek(body, 0);
}

guint64
kl_json_body_get_size(KlJsonBody *body)
{
	g_return_val_if_fail(body != NULL, 0);
	return body->size;
}

/* copies escaped bytes of @seg from body->pos to @buf (at most @room); returns the count */
static gsize
kl_json_body_read_escaped(KlJsonBody *body, const KlJsonSegment *seg, gchar *buf, gsize room)
{
	const gchar *src = seg->data;
	gsize n = 0;

	while (n < room && body->pos < seg->len) {
		gsize limit = MIN(room - n, seg->len - body->pos);
		gsize run = kl_json_escape_span(src + body->pos, limit);
		gchar esc[6];
		guint e;
		gsize fit;

		memcpy(buf + n, src + body->pos, run);
		n += run;
		body->pos += run;
		if (run == limit)
			continue;
		e = kl_json_escape_byte((guchar)src[body->pos++], esc);
		fit = MIN((gsize)e, room - n);
		memcpy(buf + n, esc, fit);
		n += fit;
		if (fit < e) {
			/* the rest goes first into the next read */
			memcpy(body->carry, esc + fit, e - fit);
			body->carry_len = (guint)(e - fit);
			body->carry_pos = 0;
		}
	}
	return n;
}

gsize
kl_json_body_read(KlJsonBody *body, gchar *buf, gsize len)
{
	gsize n = 0;

	g_return_val_if_fail(body != NULL, 0);

	while (n < len) {
		const KlJsonSegment *seg;

		if (body->carry_pos < body->carry_len) {
			gsize k = MIN((gsize)(body->carry_len - body->carry_pos), len - n);

			memcpy(buf + n, body->carry + body->carry_pos, k);
			body->carry_pos += (guint)k;
			n += k;
			continue;
		}
		if (body->seg >= body->segments->len)
			break;
		seg = &g_array_index(body->segments, KlJsonSegment, body->seg);
		if (seg->escape) {
			n += kl_json_body_read_escaped(body, seg, buf + n, len - n);
		} else {
			gsize k = MIN(seg->len - body->pos, len - n);

			memcpy(buf + n, seg->data + body->pos, k);
			body->pos += k;
			n += k;
		}
		if (body->pos == seg->len) {
			body->seg++;
			body->pos = 0;
		}
	}
	return n;
}

gboolean
kl_json_body_seek(KlJsonBody *body, guint64 offset)
{
	guint64 skipped = 0;

	g_return_val_if_fail(body != NULL, FALSE);

	if (offset > body->size)
		return FALSE;
	body->seg = 0;
	body->pos = 0;
	body->carry_len = 0;
	body->carry_pos = 0;
	/* whole segments first, then the bytes into the one holding @offset */
	while (body->seg < body->segments->len) {
		const KlJsonSegment *seg = &g_array_index(body->segments, KlJsonSegment, body->seg);

		if (skipped + seg->size > offset)
			break;
		skipped += seg->size;
		body->seg++;
	}
	while (skipped < offset) {
		gchar scratch[4096];
		gsize n =
		    kl_json_body_read(body, scratch, (gsize)MIN(offset - skipped, sizeof(scratch)));

		if (n == 0)
			return FALSE;
		skipped += n;
	}
	return TRUE;
}

gchar *
kl_json_body_to_string(KlJsonBody *body, gsize *len)
{
	gchar *text;
	gsize n;

	g_return_val_if_fail(body != NULL, NULL);

	text = g_malloc((gsize)body->size + 1);
	kl_json_body_seek(body, 0);
	n = kl_json_body_read(body, text, (gsize)body->size);
	g_warn_if_fail(n == body->size);
	text[n] = '\0';
	kl_json_body_seek(body, 0);
	if (len != NULL)
		*len = n;
	return text;
}
