/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "kl-json-body.h"
#include "kl-json-doc.h"
#include "kl-json-private.h"
#include "kl-plugin-context-private.h"

/*
 * The body is a list of segments: the document's small parts, written once
 * into @text by the compact writer (small strings escaped into it as they are
 * written), and between them the contents of the large strings: sent as they
 * are when they need no escape, escaped while they are read otherwise. The
 * quotes around a large string belong to the small parts. Every byte of a
 * string is scanned once per body (twice only for a large string with
 * escapes: once to size the body, once while it is read), and not at all for
 * an attached text the cache knows from the previous body.
 */
typedef enum {
	KL_JSON_SEGMENT_TEXT,	/* a small part, in body->text */
	KL_JSON_SEGMENT_RAW,	/* the contents of a string that needs no escape: sent as it is */
	KL_JSON_SEGMENT_ESCAPE, /* the contents of a string: escaped as they are read */
} KlJsonSegmentKind;

typedef struct {
	const gchar *data; /* the source bytes (set when the layout is done) */
	gsize text_offset; /* a small part: where it starts in body->text */
	gsize len;	   /* source bytes */
	guint64 size;	   /* bytes written: len, or len plus the escapes */
	KlJsonSegmentKind kind;
} KlJsonSegment;

/*
 * What the cache knows of an attached text: pinned (a reference is held, so
 * it is the same object, whose bytes never change: its escaped size holds), or
 * only seen (no reference: its address may be another object's by now, so it
 * proves nothing; seen again at the same place with the same bytes' address
 * and length, it is pinned). A text seen once is not kept alive: most are a
 * log's new lines, sent once.
 */
typedef struct {
	GBytes *pinned;
	gconstpointer bytes;
	gconstpointer data;
	gsize len;
	guint64 size;
} KlJsonCacheEntry;

struct _KlJsonBodyCache {
	GArray *entries; /* KlJsonCacheEntry: the attached texts of the last body */
	GArray *next;	 /* those of the body being laid out */
	guint64 hits;
	guint64 pins;
	gsize text_size; /* the small parts of the last body: the next one's first allocation */
	GString *spare;	 /* the text of the last body sent, for the next one */
};

struct _KlJsonBody {
	GPtrArray *objects; /* the documents written (references) */
	GPtrArray *texts;   /* GBytes: the attachments of kl_json_body_append_object_attached() */
	KlJsonBodyCache *cache; /* not owned */
	GString *text;		/* the small parts */
	gsize text_flushed;	/* the end of the last small part in @text */
	GArray *segments;	/* KlJsonSegment */
	guint64 size;
	gboolean laid_out;

	/* the read position */
	guint seg;
	gsize pos;	/* in the segment's source */
	gchar carry[6]; /* the rest of an escape that did not fit into the last read */
	guint carry_len;
	guint carry_pos;
};

static void
kl_json_cache_entry_clear(KlJsonCacheEntry *entry)
{
	g_clear_pointer(&entry->pinned, g_bytes_unref);
}

KlJsonBodyCache *
kl_json_body_cache_new(void)
{
	KlJsonBodyCache *cache = g_new0(KlJsonBodyCache, 1);

	cache->entries = g_array_new(FALSE, TRUE, sizeof(KlJsonCacheEntry));
	g_array_set_clear_func(cache->entries, (GDestroyNotify)kl_json_cache_entry_clear);
	cache->next = g_array_new(FALSE, TRUE, sizeof(KlJsonCacheEntry));
	g_array_set_clear_func(cache->next, (GDestroyNotify)kl_json_cache_entry_clear);
	return cache;
}

void
kl_json_body_cache_free(KlJsonBodyCache *cache)
{
	if (cache == NULL)
		return;
	g_array_unref(cache->entries);
	g_array_unref(cache->next);
	if (cache->spare != NULL)
		g_string_free(cache->spare, TRUE);
	g_free(cache);
}

guint64
kl_json_body_cache_get_hits(KlJsonBodyCache *cache)
{
	g_return_val_if_fail(cache != NULL, 0);
	return cache->hits;
}

guint
kl_json_body_cache_get_pinned(KlJsonBodyCache *cache)
{
	guint n = 0;

	g_return_val_if_fail(cache != NULL, 0);
	for (guint i = 0; i < cache->entries->len; i++)
		n += g_array_index(cache->entries, KlJsonCacheEntry, i).pinned != NULL;
	return n;
}

/* the escaped size of @text when the cache holds it (pinned), else -1 */
static gint64
kl_json_cache_lookup(KlJsonBodyCache *cache, GBytes *text)
{
	for (guint i = 0; i < cache->next->len; i++) {
		const KlJsonCacheEntry *entry = &g_array_index(cache->next, KlJsonCacheEntry, i);

		/* attached twice to this body */
		if (entry->pinned == text) {
			cache->hits++;
			return (gint64)entry->size;
		}
	}
	for (guint i = 0; i < cache->entries->len; i++) {
		KlJsonCacheEntry *entry = &g_array_index(cache->entries, KlJsonCacheEntry, i);

		if (entry->pinned == text) {
			KlJsonCacheEntry keep = *entry;

			/* carried over to the next generation: the reference moves */
			entry->pinned = NULL;
			entry->bytes = NULL;
			g_array_append_val(cache->next, keep);
			cache->hits++;
			return (gint64)keep.size;
		}
	}
	return -1;
}

/* @text was laid out with @size bytes: seen, or pinned when it was seen like this before */
static void
kl_json_cache_record(
    KlJsonBodyCache *cache, GBytes *text, const gchar *data, gsize len, guint64 size)
{
	KlJsonCacheEntry entry = {
		.bytes = text,
		.data = data,
		.len = len,
		.size = size,
	};

	if (len < KL_JSON_BODY_CACHE_MIN)
		return;
	for (guint i = 0; i < cache->next->len; i++) {
		/* attached twice to this body: recorded once */
		if (g_array_index(cache->next, KlJsonCacheEntry, i).bytes == text)
			return;
	}
	for (guint i = 0; i < cache->entries->len; i++) {
		const KlJsonCacheEntry *seen = &g_array_index(cache->entries, KlJsonCacheEntry, i);

		if (seen->pinned == NULL && seen->bytes == text && seen->data == data &&
		    seen->len == len) {
			entry.pinned = g_bytes_ref(text);
			cache->pins++;
			break;
		}
	}
	g_array_append_val(cache->next, entry);
}

/* the layout is done: what this body attached is what the cache knows */
static void
kl_json_cache_rotate(KlJsonBodyCache *cache)
{
	GArray *old = cache->entries;

	cache->entries = cache->next;
	g_array_set_size(old, 0);
	cache->next = old;
}

KlJsonBody *
kl_json_body_new(void)
{
	KlJsonBody *body = g_new0(KlJsonBody, 1);

	body->objects = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	body->segments = g_array_new(FALSE, TRUE, sizeof(KlJsonSegment));
	return body;
}

void
kl_json_body_free(KlJsonBody *body)
{
	if (body == NULL)
		return;
	g_ptr_array_unref(body->objects);
	if (body->texts != NULL)
		g_ptr_array_unref(body->texts);
	if (body->text != NULL)
		g_string_free(body->text, TRUE);
	g_array_unref(body->segments);
	g_free(body);
}

void
kl_json_body_set_cache(KlJsonBody *body, KlJsonBodyCache *cache)
{
	g_return_if_fail(body != NULL);
	g_return_if_fail(!body->laid_out && body->text == NULL);

	body->cache = cache;
	if (cache == NULL)
		return;
	/* what an unfinished layout left */
	g_array_set_size(cache->next, 0);
	/* the last body's text, or one as large */
	if (cache->spare != NULL) {
		body->text = g_steal_pointer(&cache->spare);
		g_string_truncate(body->text, 0);
	} else if (cache->text_size > 0) {
		body->text = g_string_sized_new(cache->text_size);
	}
}

/* the small parts, allocated when the first is written */
static GString *
kl_json_body_get_text(KlJsonBody *body)
{
	if (body->text == NULL)
		body->text = g_string_sized_new(4096);
	return body->text;
}

void
kl_json_body_release(KlJsonBody *body)
{
	g_return_if_fail(body != NULL);

	/* nothing is read any more */
	g_array_set_size(body->segments, 0);
	body->size = 0;
	kl_json_body_seek(body, 0);
	if (body->cache == NULL || body->text == NULL || body->cache->spare != NULL)
		return;
	/* a large one goes: the next body is likely smaller */
	if (body->text->allocated_len > KL_JSON_BODY_IN_PLACE_MIN * 4)
		return;
	body->cache->spare = g_steal_pointer(&body->text);
}

/* the small part written since the previous one */
static void
kl_json_body_flush_text(KlJsonBody *body, GString *out)
{
	KlJsonSegment seg = { .kind = KL_JSON_SEGMENT_TEXT };

	if (out->len == body->text_flushed)
		return;
	seg.text_offset = body->text_flushed;
	seg.len = out->len - body->text_flushed;
	seg.size = seg.len;
	g_array_append_val(body->segments, seg);
	body->text_flushed = out->len;
}

/* the escaped size of @data[0..@len), whose first @clean bytes need no escape */
static guint64
kl_json_body_escaped_size(const gchar *data, gsize len, gsize clean)
{
	guint64 size = len;
	gsize i = clean;

	for (;;) {
		if (i >= len)
			return size;
		size += kl_json_escaped_len[(guchar)data[i]] - 1u;
		i++;
		i += kl_json_escape_span(data + i, len - i);
	}
}

/*
 * writes the string @data[0..@len) (the quotes around it are already in or go
 * into @out): a small one with escapes into the text, else a segment of its
 * own; returns the escaped size (@known: the cache's, or -1)
 */
static guint64
kl_json_body_add_string(KlJsonBody *body, GString *out, const gchar *data, gsize len, gint64 known)
{
	KlJsonSegment seg = { .data = data, .len = len };
	gsize clean;

	if (len == 0)
		return 0;
	if (known >= 0) {
		seg.size = (guint64)known;
	} else {
		clean = kl_json_escape_span(data, len);
		if (clean == len) {
			seg.size = len;
		} else if (len < KL_JSON_BODY_IN_PLACE_MIN) {
			gsize before = out->len;

			/* escaped into the small parts as it is scanned */
			kl_json_append_escaped(out, data, len);
			return out->len - before;
		} else {
			seg.size = kl_json_body_escaped_size(data, len, clean);
		}
	}
	seg.kind = seg.size == len ? KL_JSON_SEGMENT_RAW : KL_JSON_SEGMENT_ESCAPE;
	kl_json_body_flush_text(body, out);
	g_array_append_val(body->segments, seg);
	return seg.size;
}

/* writes the attached @text as a JSON string (its quotes included) */
static void
kl_json_body_write_attached(KlJsonBody *body, GString *out, GBytes *text)
{
	gsize len = 0;
	const gchar *data = g_bytes_get_data(text, &len);
	gint64 known = body->cache != NULL ? kl_json_cache_lookup(body->cache, text) : -1;
	guint64 size;

	g_string_append_c(out, '"');
	size = kl_json_body_add_string(body, out, data, len, known);
	g_string_append_c(out, '"');
	if (body->cache != NULL && known < 0)
		kl_json_cache_record(body->cache, text, data, len, size);
}

static gboolean
kl_json_body_write_hook(GString *out, JsonNode *node, gpointer user_data)
{
	KlJsonBody *body = user_data;
	const gchar *data;
	gsize len;

	if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING)
		return FALSE;
	data = json_node_get_string(node);
	len = data != NULL ? strlen(data) : 0;
	if (len < KL_JSON_BODY_IN_PLACE_MIN)
		return FALSE;
	g_string_append_c(out, '"');
	kl_json_body_add_string(body, out, data, len, -1);
	g_string_append_c(out, '"');
	return TRUE;
}

void
kl_json_body_append_raw(KlJsonBody *body, const gchar *json)
{
	g_return_if_fail(body != NULL && json != NULL);
	g_return_if_fail(!body->laid_out);

	g_string_append(kl_json_body_get_text(body), json);
}

void
kl_json_body_append_object(KlJsonBody *body, JsonObject *obj)
{
	g_return_if_fail(body != NULL && obj != NULL);
	g_return_if_fail(!body->laid_out);

	g_ptr_array_add(body->objects, json_object_ref(obj));
	kl_json_write_object_hooked(
	    kl_json_body_get_text(body), obj, kl_json_body_write_hook, body);
}

/* the text attached to member @name, or NULL */
static GBytes *
kl_json_body_attachment_for(GPtrArray *attachments, const gchar *name)
{
	for (guint i = 0; attachments != NULL && i < attachments->len; i++) {
		KlPluginAttachment *attachment = g_ptr_array_index(attachments, i);

		if (strcmp(attachment->member, name) == 0)
			return attachment->text;
	}
	return NULL;
}

void
kl_json_body_append_object_attached(KlJsonBody *body, JsonObject *obj, GPtrArray *attachments)
{
	GString *out;
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *member;
	gboolean first = TRUE;

	g_return_if_fail(body != NULL && obj != NULL);
	g_return_if_fail(!body->laid_out);

	if (attachments == NULL || attachments->len == 0) {
		kl_json_body_append_object(body, obj);
		return;
	}
	out = kl_json_body_get_text(body);
	g_ptr_array_add(body->objects, json_object_ref(obj));
	if (body->texts == NULL)
		body->texts = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	/* held until the body is freed: its segments point into them */
	for (guint i = 0; i < attachments->len; i++) {
		KlPluginAttachment *attachment = g_ptr_array_index(attachments, i);

		g_ptr_array_add(body->texts, g_bytes_ref(attachment->text));
	}
	/* as kl_json_write_object() writes @obj after the members were set */
	g_string_append_c(out, '{');
	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member)) {
		GBytes *text = kl_json_body_attachment_for(attachments, name);

		if (!first)
			g_string_append_c(out, ',');
		first = FALSE;
		kl_json_append_string(out, name);
		g_string_append_c(out, ':');
		if (text != NULL)
			kl_json_body_write_attached(body, out, text);
		else
			kl_json_write_node_hooked(out, member, kl_json_body_write_hook, body);
	}
	for (guint i = 0; i < attachments->len; i++) {
		KlPluginAttachment *attachment = g_ptr_array_index(attachments, i);

		if (json_object_has_member(obj, attachment->member))
			continue;
		if (!first)
			g_string_append_c(out, ',');
		first = FALSE;
		kl_json_append_string(out, attachment->member);
		g_string_append_c(out, ':');
		kl_json_body_write_attached(body, out, attachment->text);
	}
	g_string_append_c(out, '}');
}

void
kl_json_body_finish(KlJsonBody *body)
{
	g_return_if_fail(body != NULL);
	g_return_if_fail(!body->laid_out);

	body->laid_out = TRUE;
	kl_json_body_flush_text(body, kl_json_body_get_text(body));
	if (body->cache != NULL) {
		kl_json_cache_rotate(body->cache);
		body->cache->text_size =
		    MIN(body->text->len + 1024, (gsize)KL_JSON_BODY_IN_PLACE_MIN * 4);
	}
	/* @text no longer moves: point the small parts at it */
	for (guint i = 0; i < body->segments->len; i++) {
		KlJsonSegment *seg = &g_array_index(body->segments, KlJsonSegment, i);

		if (seg->kind == KL_JSON_SEGMENT_TEXT)
			seg->data = body->text->str + seg->text_offset;
		body->size += seg->size;
	}
	kl_json_body_seek(body, 0);
}

void
kl_json_body_set_root(KlJsonBody *body, JsonObject *root)
{
	g_return_if_fail(body != NULL && root != NULL);
	g_return_if_fail(!body->laid_out && body->objects->len == 0);

	kl_json_body_append_object(body, root);
	kl_json_body_finish(body);
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
		if (seg->kind == KL_JSON_SEGMENT_ESCAPE) {
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
	if (skipped < offset && body->seg < body->segments->len) {
		const KlJsonSegment *seg = &g_array_index(body->segments, KlJsonSegment, body->seg);

		/* in a segment written as it is: straight there */
		if (seg->kind != KL_JSON_SEGMENT_ESCAPE) {
			body->pos = (gsize)(offset - skipped);
			return TRUE;
		}
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
