/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Incremental reader of the IMA ASCII runtime measurement list
 * (/sys/kernel/security/ima/ascii_runtime_measurements).
 *
 * The file stays open; an index of one byte offset every
 * KL_IMA_LOG_INDEX_STRIDE entries and the byte offset of the end of the last
 * complete line are kept, so each refresh reads only the bytes appended since
 * the previous one, and any starting offset is served by seeking to the
 * nearest indexed entry (never by rescanning from byte 0).
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* one indexed byte offset every this many entries (8 bytes per 64 entries) */
#define KL_IMA_LOG_INDEX_STRIDE 64

/* default limit of the text kept between a refresh and the next collect */
#define KL_IMA_LOG_CACHE_MAX_DEFAULT (4 * 1024 * 1024)

typedef struct _KlImaLog KlImaLog;

/* creates a reader for @path; nothing is opened until the first refresh */
KlImaLog *
kl_ima_log_new(const gchar *path) G_GNUC_WARN_UNUSED_RESULT;
void
kl_ima_log_free(KlImaLog *self);

/*
 * Opens the log if needed and learns the lines appended since the previous
 * call. The index is reset when @boot_time differs from the previous call, the
 * file was replaced (other inode), became shorter than the known end, or the
 * bytes before the known end changed (regular files). A partial last line
 * (without "\n") is not counted until it is complete.
 *
 * Errors: KL_ERROR_NOT_SUPPORTED when the file does not exist or cannot be
 * read, KL_ERROR_IO on a read error, KL_ERROR_INVALID_DATA (with the line
 * number) for a malformed line, G_IO_ERROR_CANCELLED.
 */
gboolean
kl_ima_log_refresh(KlImaLog *self, gint64 boot_time, GCancellable *cancellable, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* number of complete lines known after the last refresh */
guint64
kl_ima_log_get_entry_count(KlImaLog *self);

/*
 * The text of the ima_log evidence's "entries": the lines [@starting_offset,
 * end), each ending in "\n", at most @max_entries of them (0: no limit); their
 * number in @entry_count. The bytes are the reader's own buffer (the lines
 * learned by the last refresh, or one read of the requested range), handed
 * over without a copy. Call kl_ima_log_refresh() first.
 * KL_ERROR_INVALID_PARAMETERS when @starting_offset is beyond the end.
 * (transfer full)
 */
GBytes *
kl_ima_log_collect_text(KlImaLog *self,
			guint64 starting_offset,
			guint64 max_entries,
			guint64 *entry_count,
			GCancellable *cancellable,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* bytes returned by read()/pread() on the log since creation (cost accounting) */
guint64
kl_ima_log_get_bytes_read(KlImaLog *self);

/* number of times the index was thrown away (log replaced, shrunk, reboot) */
guint
kl_ima_log_get_reset_count(KlImaLog *self);

/* limit of the text kept between a refresh and the next collect (0: keep none) */
void
kl_ima_log_set_cache_limit(KlImaLog *self, gsize limit);

/*
 * Checks one line (without its "\n"): at least five space-separated fields
 * "PCR template-hash template-name ...", a decimal PCR, a hexadecimal template
 * hash, no NUL byte, valid UTF-8 (the lines are sent in a JSON string).
 */
gboolean
kl_ima_log_line_is_valid(const gchar *line, gsize len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlImaLog, kl_ima_log_free)

G_END_DECLS
