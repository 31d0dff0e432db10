/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Incremental reader of the IMA ASCII runtime measurement list.
 *
 * Cost model. securityfs files are seq_files: their size is reported as 0 and
 * a seek to an arbitrary offset makes the kernel format every record before it
 * again, whereas reading on from the current position only formats the new
 * records. So the reader keeps one fd whose position normally stays at the end
 * of what it has seen, and reads on from there at every refresh. The text read
 * by a refresh is kept (up to a limit) until the next collect, because the
 * verifier normally asks for exactly the lines from the end of the previous
 * collect: those are then served without any seek. Any other starting offset
 * is served from the sparse index: seek to the byte offset of entry
 * (offset / STRIDE) * STRIDE, read to the known end, skip < STRIDE lines.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-ima-log-parser.h"

#define KL_IMA_LOG_CHUNK (128 * 1024)
/* a read goes into the room the buffer has when there is at least this much */
#define KL_IMA_LOG_MIN_READ (16 * 1024)
#define KL_IMA_LOG_TAIL_MAX 64
/* a collect leaves an empty cache; give back a large allocation at that point */
#define KL_IMA_LOG_CACHE_KEEP_ALLOC (256 * 1024)

struct _KlImaLog {
	gchar *path;
	int fd;
	dev_t dev;
	ino_t ino;
	gboolean is_regular;
	gboolean have_boot_time;
	gint64 boot_time;

	guint64 pos;   /* file position of fd as far as we know; G_MAXUINT64: unknown */
	guint64 count; /* complete lines */
	guint64 end;   /* byte offset just after the last complete line */
	GArray *index; /* guint64: byte offset of entry i * STRIDE */

	/* the last bytes before @end, to notice a rewritten regular file */
	guint8 tail[KL_IMA_LOG_TAIL_MAX];
	gsize tail_len;

	/* text of entries [cache_first, count) == bytes [cache_start, end); NULL: inactive */
	GString *cache;
	guint64 cache_first;
	guint64 cache_start;
	gsize cache_max;

	guint64 bytes_read;
	guint reset_count;
};

KlImaLog *
kl_ima_log_new(const gchar *path)
{
	KlImaLog *self = g_new0(KlImaLog, 1);

	g_return_val_if_fail(path != NULL, NULL);
	self->path = g_strdup(path);
	self->fd = -1;
	self->pos = G_MAXUINT64;
	self->index = g_array_new(FALSE, FALSE, sizeof(guint64));
	self->cache = g_string_sized_new(KL_IMA_LOG_MIN_READ);
	self->cache_max = KL_IMA_LOG_CACHE_MAX_DEFAULT;
	return self;
}

void
kl_ima_log_free(KlImaLog *self)
{
	if (self == NULL)
		return;
	if (self->fd >= 0)
		close(self->fd);
	g_array_unref(self->index);
	if (self->cache != NULL)
		g_string_free(self->cache, TRUE);
	g_free(self->path);
	g_free(self);
}

guint64
kl_ima_log_get_entry_count(KlImaLog *self)
{
	return self->count;
}

guint64
kl_ima_log_get_bytes_read(KlImaLog *self)
{
	return self->bytes_read;
}

guint
kl_ima_log_get_reset_count(KlImaLog *self)
{
	return self->reset_count;
}

void
kl_ima_log_set_cache_limit(KlImaLog *self, gsize limit)
{
	self->cache_max = limit;
}

#define KL_IMA_LOG_ONES	 G_GUINT64_CONSTANT(0x0101010101010101)
#define KL_IMA_LOG_HIGHS G_GUINT64_CONSTANT(0x8080808080808080)

static inline gboolean
kl_ima_log_is_hex(gchar c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Sixteen bytes as two 64-bit lanes (a GCC/clang vector extension: SIMD where
 * there is a unit, plain 64-bit operations elsewhere).
 */
typedef guint64 KlImaLogVec __attribute__((vector_size(16)));

/*
 * The high bit of each byte of @w that is not a hexadecimal digit: @w is
 * masked to 7 bits so that the sums never carry between bytes, a byte with
 * its high bit set is not a digit. For a guint64 or a KlImaLogVec.
 */
#define KL_IMA_LOG_NONHEX(T, w)                                                                    \
	({                                                                                         \
		const T x_ = (w) & ~KL_IMA_LOG_HIGHS;                                              \
		const T l_ = x_ | (KL_IMA_LOG_ONES * 0x20);                                        \
		const T digit_ = (x_ + KL_IMA_LOG_ONES * (0x80 - '0')) &                           \
				 ~(x_ + KL_IMA_LOG_ONES * (0x80 - '9' - 1));                       \
		const T alpha_ = (l_ + KL_IMA_LOG_ONES * (0x80 - 'a')) &                           \
				 ~(l_ + KL_IMA_LOG_ONES * (0x80 - 'f' - 1));                       \
		(~(digit_ | alpha_) | (w)) & KL_IMA_LOG_HIGHS;                                     \
	})

static inline guint64
kl_ima_log_nonhex(guint64 w)
{
	return KL_IMA_LOG_NONHEX(guint64, w);
}

/* the end of the run of hexadecimal digits from @p */
static inline const gchar *
kl_ima_log_skip_hex(const gchar *p, const gchar *e)
{
	while (e - p >= 16) {
		KlImaLogVec v;
		KlImaLogVec bad;

		memcpy(&v, p, 16);
		bad = KL_IMA_LOG_NONHEX(KlImaLogVec, v);
		if ((bad[0] | bad[1]) != 0)
			break;
		p += 16;
	}
	while (e - p >= 8) {
		guint64 w;

		memcpy(&w, p, 8);
		if (kl_ima_log_nonhex(w) != 0)
			break;
		p += 8;
	}
	while (p < e && kl_ima_log_is_hex(*p))
		p++;
	return p;
}

/*
 * TRUE when @len bytes hold neither a NUL nor a byte >= 0x80: sixteen bytes
 * at a time over a whole read, so that the lines of the common all-ASCII log
 * need no check of their own (the vector type is a GCC/clang extension that
 * compiles to plain 64-bit operations where there is no SIMD unit).
 */
static gboolean
kl_ima_log_is_plain_ascii(const gchar *text, gsize len)
{
	const KlImaLogVec ones = { KL_IMA_LOG_ONES, KL_IMA_LOG_ONES };
	KlImaLogVec acc = { 0, 0 };
	guint64 tail = 0;
	gsize i = 0;

	for (; i + 32 <= len; i += 32) {
		KlImaLogVec a;
		KlImaLogVec b;

		memcpy(&a, text + i, 16);
		memcpy(&b, text + i + 16, 16);
		/* a zero byte borrows into its high bit; a high byte has it anyway */
		acc |= a | ((a - ones) & ~a) | b | ((b - ones) & ~b);
	}
	for (; i + 8 <= len; i += 8) {
		guint64 w;

		memcpy(&w, text + i, 8);
		tail |= w | ((w - KL_IMA_LOG_ONES) & ~w);
	}
	for (; i < len; i++) {
		guint8 c = (guint8)text[i];
		tail |= c == 0 ? 0x80 : c;
	}
	return ((acc[0] | acc[1] | tail) & KL_IMA_LOG_HIGHS) == 0;
}

/*
 * The lines travel in a JSON string: a NUL byte would cut it, and bytes that
 * are not UTF-8 (a file name is printed as the kernel got it) would make the
 * request body invalid JSON.
 */
static gboolean
kl_ima_log_line_is_text(const gchar *line, gsize len)
{
	if (len == 0)
		return FALSE;
	if (kl_ima_log_is_plain_ascii(line, len))
		return TRUE;
	return memchr(line, '\0', len) == NULL && g_utf8_validate_len(line, len, NULL);
}

/* the fields of a line known to be text: "PCR template-hash template-name data..." */
static gboolean
kl_ima_log_line_has_fields(const gchar *line, gsize len)
{
	const gchar *p = line;
	const gchar *e = line + len;
	const gchar *sp;

	/* PCR */
	while (p < e && g_ascii_isdigit(*p))
		p++;
	if (p == line || p == e || *p != ' ')
		return FALSE;
	/* template hash */
	sp = ++p;
	p = kl_ima_log_skip_hex(p, e);
	if (p == sp || p == e || *p != ' ')
		return FALSE;
	/* template name (short: no call), then the template data: at least two more fields */
	sp = ++p;
	while (p < e && *p != ' ')
		p++;
	if (p == e || p == sp)
		return FALSE;
	if (memchr(p + 1, ' ', e - (p + 1)) == NULL)
		return FALSE;
	return TRUE;
}

gboolean
kl_ima_log_line_is_valid(const gchar *line, gsize len)
{
	return kl_ima_log_line_is_text(line, len) && kl_ima_log_line_has_fields(line, len);
}

/* forget everything learned from the file; keep the fd */
static void
kl_ima_log_reset_index(KlImaLog *self)
{
	self->count = 0;
	self->end = 0;
	g_array_set_size(self->index, 0);
	self->tail_len = 0;
	if (self->cache == NULL)
		self->cache = g_string_sized_new(KL_IMA_LOG_MIN_READ);
	g_string_truncate(self->cache, 0);
	self->cache_first = 0;
	self->cache_start = 0;
	self->reset_count++;
}

static gboolean
kl_ima_log_open(KlImaLog *self, GError **error)
{
	struct stat st;
	int fd;

	/* nothing learned from a previous file may be served, even if this open fails */
	if (self->fd >= 0) {
		close(self->fd);
		self->fd = -1;
	}
	kl_ima_log_reset_index(self);
	do
		fd = open(self->path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int errsv = errno;
		if (errsv == ENOENT || errsv == ENOTDIR || errsv == EACCES || errsv == EPERM) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_SUPPORTED,
				    "IMA measurement list %s cannot be opened (%s): IMA is not "
				    "enabled, securityfs is not mounted or the agent lacks the "
				    "permission; set ima_ml_path if the list lives elsewhere",
				    self->path,
				    g_strerror(errsv));
		} else {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_IO,
				    "cannot open the IMA measurement list %s: %s",
				    self->path,
				    g_strerror(errsv));
		}
		return FALSE;
	}
	if (fstat(fd, &st) != 0) {
		int errsv = errno;
		close(fd);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot stat the IMA measurement list %s: %s",
			    self->path,
			    g_strerror(errsv));
		return FALSE;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "IMA measurement list %s is a directory; set ima_ml_path to the "
			    "ascii_runtime_measurements file",
			    self->path);
		return FALSE;
	}
	self->fd = fd;
	self->dev = st.st_dev;
	self->ino = st.st_ino;
	self->is_regular = S_ISREG(st.st_mode);
	self->pos = 0;
	return TRUE;
}

static gboolean
kl_ima_log_seek(KlImaLog *self, guint64 offset, GError **error)
{
	if (self->pos == offset)
		return TRUE;
	if (lseek(self->fd, (off_t)offset, SEEK_SET) == (off_t)-1) {
		int errsv = errno;
		self->pos = G_MAXUINT64;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot seek to byte %" G_GUINT64_FORMAT
			    " of the IMA measurement list %s: %s",
			    offset,
			    self->path,
			    g_strerror(errsv));
		return FALSE;
	}
	self->pos = offset;
	return TRUE;
}

/* one read() at the current position; 0 at EOF, -1 on error */
static gssize
kl_ima_log_read(KlImaLog *self, gchar *buf, gsize len, GError **error)
{
	gssize n;

	do
		n = read(self->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int errsv = errno;
		self->pos = G_MAXUINT64;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the IMA measurement list %s: %s",
			    self->path,
			    g_strerror(errsv));
		return -1;
	}
	self->pos += (guint64)n;
	self->bytes_read += (guint64)n;
	return n;
}

/* TRUE when what we know of the file may no longer be true */
static gboolean
kl_ima_log_changed(KlImaLog *self, gboolean *replaced, GError **error)
{
	struct stat st;

	*replaced = FALSE;
	/* another file under the name (log rotated, reboot, test replaced it) */
	if (stat(self->path, &st) == 0 && (st.st_dev != self->dev || st.st_ino != self->ino)) {
		*replaced = TRUE;
		return TRUE;
	}
	/*
	 * only regular files can be checked by size and content without cost;
	 * the kernel's list can only change by a reboot (boot time check)
	 */
	if (!self->is_regular || self->end == 0)
		return FALSE;
	if (fstat(self->fd, &st) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot stat the IMA measurement list %s: %s",
			    self->path,
			    g_strerror(errno));
		return FALSE;
	}
	if ((guint64)st.st_size < self->end)
		return TRUE;
	if (self->tail_len > 0) {
		guint8 buf[KL_IMA_LOG_TAIL_MAX];
		gssize n;

		do
			n = pread(
			    self->fd, buf, self->tail_len, (off_t)(self->end - self->tail_len));
		while (n < 0 && errno == EINTR);
		if (n > 0)
			self->bytes_read += (guint64)n;
		if (n != (gssize)self->tail_len || memcmp(buf, self->tail, self->tail_len) != 0)
			return TRUE;
	}
	return FALSE;
}

/* remember the last bytes before @end: @text holds the bytes just before it */
static void
kl_ima_log_set_tail(KlImaLog *self, const gchar *text, gsize text_len)
{
	gsize n = MIN(text_len, (gsize)KL_IMA_LOG_TAIL_MAX);

	memcpy(self->tail, text + text_len - n, n);
	self->tail_len = n;
}

/* the last "\n" of @len bytes at @text, or NULL */
static const gchar *
kl_ima_log_last_newline(const gchar *text, gsize len)
{
	for (const gchar *p = text + len; p > text; p--) {
		if (p[-1] == '\n')
			return p - 1;
	}
	return NULL;
}

/* the state of one refresh: text read from the fd and not yet dropped */
typedef struct {
	GString *buf;	   /* the cache, or a scratch buffer */
	guint64 buf_start; /* file offset of buf->str[0] */
	gsize scan;	   /* start of the first incomplete line in buf */
	gboolean caching;  /* buf is self->cache */
} KlImaLogReadState;

/* reads from the current position to EOF, counting and indexing complete lines */
static gboolean
kl_ima_log_read_tail(KlImaLog *self,
		     KlImaLogReadState *st,
		     GCancellable *cancellable,
		     GError **error)
{
	GString *buf = st->buf;
	gsize searched = st->scan; /* bytes of buf already searched for "\n" */

	for (;;) {
		gsize old_len = buf->len;
		gsize want;
		gssize n;
		const gchar *nl;
		const gchar *last_nl;
		gboolean plain;

		if (g_cancellable_set_error_if_cancelled(cancellable, error))
			return FALSE;
		/* the room there is (no realloc), or a chunk more */
		want = buf->allocated_len - old_len - 1;
		if (want < KL_IMA_LOG_MIN_READ)
			want = KL_IMA_LOG_CHUNK;
		g_string_set_size(buf, old_len + want);
		n = kl_ima_log_read(self, buf->str + old_len, want, error);
		g_string_truncate(buf, old_len + (gsize)MAX(n, 0));
		if (n < 0)
			return FALSE;
		if (n == 0)
			return TRUE;

		/*
		 * complete lines in the new bytes: one pass over all of them for NUL
		 * and non-ASCII bytes (an ASCII line is text), then each line's fields
		 */
		last_nl = kl_ima_log_last_newline(buf->str + old_len, (gsize)n);
		plain = last_nl != NULL &&
			kl_ima_log_is_plain_ascii(buf->str + st->scan,
						  (gsize)(last_nl - (buf->str + st->scan)));
		while ((nl = memchr(buf->str + searched, '\n', buf->len - searched)) != NULL) {
			gsize line_end = (gsize)(nl - buf->str);
			const gchar *line = buf->str + st->scan;
			gsize line_len = line_end - st->scan;

			if (line_len == 0 || (!plain && !kl_ima_log_line_is_text(line, line_len)) ||
			    !kl_ima_log_line_has_fields(line, line_len)) {
				g_set_error(
				    error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "line %" G_GUINT64_FORMAT
				    " of the IMA measurement list %s is malformed (expected "
				    "\"PCR template-hash template-name data...\"); the log "
				    "cannot be sent until it is fixed",
				    self->count + 1,
				    self->path);
				return FALSE;
			}
			if (self->count % KL_IMA_LOG_INDEX_STRIDE == 0) {
				guint64 off = st->buf_start + st->scan;
				g_array_append_val(self->index, off);
			}
			self->count++;
			st->scan = line_end + 1;
			searched = st->scan;
		}
		searched = buf->len;
		self->end = st->buf_start + st->scan;
		if (st->scan > 0)
			kl_ima_log_set_tail(self, buf->str, st->scan);

		if (st->caching && buf->len > self->cache_max) {
			/* too much text for the cache: go on with it as a scratch buffer */
			st->caching = FALSE;
			self->cache = NULL;
		}
		if (!st->caching && st->scan > 0) {
			/* keep only the incomplete line */
			g_string_erase(buf, 0, (gssize)st->scan);
			st->buf_start += st->scan;
			searched -= st->scan;
			st->scan = 0;
		}
	}
}

static gboolean
kl_ima_log_check(KlImaLog *self, gint64 boot_time, GError **error)
{
	gboolean replaced = FALSE;
	g_autoptr(GError) error_local = NULL;

	if (self->fd < 0)
		return kl_ima_log_open(self, error);
	if (self->have_boot_time && boot_time != self->boot_time) {
		g_info("the boot time changed: reading the IMA measurement list %s again from "
		       "the start",
		       self->path);
		return kl_ima_log_open(self, error);
	}
	if (kl_ima_log_changed(self, &replaced, &error_local)) {
		/*
		 * the kernel's list only grows within one boot: a list that shrank or
		 * changed its past without a reboot was tampered with (or is not the
		 * kernel's); the verifier will see the new content
		 */
		if (replaced)
			g_info("the IMA measurement list %s was replaced: reading it again from "
			       "the start",
			       self->path);
		else
			g_warning("the IMA measurement list %s was rewritten or shortened within "
				  "one boot (possible tampering): reading it again from the start",
				  self->path);
		if (replaced)
			return kl_ima_log_open(self, error);
		kl_ima_log_reset_index(self);
		return TRUE;
	}
	if (error_local != NULL) {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	return TRUE;
}

gboolean
kl_ima_log_refresh(KlImaLog *self, gint64 boot_time, GCancellable *cancellable, GError **error)
{
	KlImaLogReadState st = { 0 };
	gboolean ret;

	g_return_val_if_fail(self != NULL, FALSE);

	if (!kl_ima_log_check(self, boot_time, error))
		return FALSE;
	self->have_boot_time = TRUE;
	self->boot_time = boot_time;
	if (!kl_ima_log_seek(self, self->end, error))
		return FALSE;

	/* append to the cache when it ends where we read on; else use a scratch buffer */
	st.caching = self->cache != NULL && self->cache_start + self->cache->len == self->end &&
		     self->cache->len < self->cache_max;
	if (st.caching) {
		st.buf = self->cache;
		st.scan = st.buf->len;
		st.buf_start = self->cache_start;
	} else {
		st.buf = g_string_sized_new(KL_IMA_LOG_CHUNK);
		st.buf_start = self->end;
	}

	ret = kl_ima_log_read_tail(self, &st, cancellable, error);

	/* an incomplete last line (or a malformed one) is read again next time */
	self->end = st.buf_start + st.scan;
	g_string_truncate(st.buf, st.scan);
	if (!st.caching) {
		g_string_free(st.buf, TRUE);
		if (self->cache == NULL)
			self->cache = g_string_sized_new(KL_IMA_LOG_MIN_READ);
		g_string_truncate(self->cache, 0);
		self->cache_first = self->count;
		self->cache_start = self->end;
	}
	return ret;
}

/* the byte after the @n-th "\n" from @text, or NULL */
static const gchar *
kl_ima_log_skip_lines(const gchar *text, const gchar *text_end, guint64 n)
{
	const gchar *p = text;

	for (guint64 i = 0; i < n; i++) {
		const gchar *nl = memchr(p, '\n', text_end - p);
		if (nl == NULL)
			return NULL;
		p = nl + 1;
	}
	return p;
}

static void
kl_ima_log_cache_restart(KlImaLog *self)
{
	if (self->cache->allocated_len > KL_IMA_LOG_CACHE_KEEP_ALLOC) {
		g_string_free(self->cache, TRUE);
		self->cache = g_string_sized_new(KL_IMA_LOG_MIN_READ);
	}
	g_string_truncate(self->cache, 0);
	self->cache_first = self->count;
	self->cache_start = self->end;
}

/*
 * the lines of @text from byte @start to its end, at most @max_entries of them
 * (0: all) out of @count, and their number; the result keeps @text alive
 */
static GBytes *
kl_ima_log_slice(
    GBytes *text, gsize start, guint64 max_entries, guint64 count, guint64 *entry_count)
{
	gsize size = 0;
	const gchar *data = g_bytes_get_data(text, &size);
	gsize end = size;

	if (max_entries > 0 && count > max_entries) {
		end = (gsize)(kl_ima_log_skip_lines(data + start, data + size, max_entries) - data);
		count = max_entries;
	}
	*entry_count = count;
	return g_bytes_new_from_bytes(text, start, end - start);
}

GBytes *
kl_ima_log_collect_text(KlImaLog *self,
			guint64 starting_offset,
			guint64 max_entries,
			guint64 *entry_count,
			GCancellable *cancellable,
			GError **error)
{
	g_autoptr(GBytes) whole = NULL;
	gchar *buf;
	gsize size;
	gsize got = 0;
	const gchar *start;
	guint64 off;
	guint64 first;
	GBytes *text;

	g_return_val_if_fail(self != NULL, NULL);
	g_return_val_if_fail(entry_count != NULL, NULL);

	if (self->fd < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "the IMA measurement list %s was not read yet",
			    self->path);
		return NULL;
	}
	if (starting_offset > self->count) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "starting_offset %" G_GUINT64_FORMAT
			    " is beyond the end of the IMA measurement list (%" G_GUINT64_FORMAT
			    " entries); the verifier's state belongs to another boot or log",
			    starting_offset,
			    self->count);
		return NULL;
	}

	/* the common case: the lines learned since the previous collect; the cache is handed over
	 */
	if (self->cache != NULL && starting_offset >= self->cache_first &&
	    self->cache_start + self->cache->len == self->end) {
		const gchar *cache_end = self->cache->str + self->cache->len;

		start = kl_ima_log_skip_lines(
		    self->cache->str, cache_end, starting_offset - self->cache_first);
		if (start == NULL) {
			g_set_error_literal(
			    error, KL_ERROR, KL_ERROR_INTERNAL, "the IMA log cache lost lines");
			return NULL;
		}
		off = (guint64)(start - self->cache->str);
		whole = g_string_free_to_bytes(self->cache);
		self->cache = g_string_sized_new(KL_IMA_LOG_MIN_READ);
		kl_ima_log_cache_restart(self);
		return kl_ima_log_slice(
		    whole, (gsize)off, max_entries, self->count - starting_offset, entry_count);
	}

	/* any other offset: from the nearest indexed entry at or before it */
	first = (starting_offset / KL_IMA_LOG_INDEX_STRIDE) * KL_IMA_LOG_INDEX_STRIDE;
	if (first == self->count) {
		/* == end: nothing to send, and nothing indexed there yet */
		off = self->end;
	} else {
		off = g_array_index(self->index, guint64, first / KL_IMA_LOG_INDEX_STRIDE);
	}
	size = (gsize)(self->end - off);
	if (!kl_ima_log_seek(self, off, error))
		return NULL;
	/* the one copy of the text: the evidence is sent from this buffer */
	buf = g_malloc(size + 1);
	whole = g_bytes_new_take(buf, size);
	while (got < size) {
		gsize want = MIN(size - got, (gsize)(16 * 1024 * 1024));
		gssize n;

		if (g_cancellable_set_error_if_cancelled(cancellable, error))
			return NULL;
		n = kl_ima_log_read(self, buf + got, want, error);
		if (n < 0)
			return NULL;
		if (n == 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "the IMA measurement list %s became shorter while it was read; "
				    "it is read again from the start at the next attestation",
				    self->path);
			kl_ima_log_reset_index(self);
			return NULL;
		}
		got += (gsize)n;
	}
	start = kl_ima_log_skip_lines(buf, buf + size, starting_offset - first);
	if (start == NULL || (size > 0 && buf[size - 1] != '\n')) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the IMA measurement list %s changed while it was read; it is read "
			    "again from the start at the next attestation",
			    self->path);
		kl_ima_log_reset_index(self);
		return NULL;
	}
	text = kl_ima_log_slice(
	    whole, (gsize)(start - buf), max_entries, self->count - starting_offset, entry_count);
	kl_ima_log_cache_restart(self);
	return text;
}
