/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the incremental IMA reader. The input is split at its first
 * byte's position: the first part is the log at the first refresh, the rest
 * is appended before the second; collects at offsets derived from the input.
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif

#include <glib/gstdio.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-ima-log-parser.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
kl_fuzz_ima_cycle(KlImaLog *log, guint64 offset_seed)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) text = NULL;
	guint64 count;
	guint64 n = 0;

	if (!kl_ima_log_refresh(log, 1, NULL, &error))
		return;
	count = kl_ima_log_get_entry_count(log);
	text = kl_ima_log_collect_text(
	    log, offset_seed % (count + 2), offset_seed % 3, &n, NULL, &error);
	if (text != NULL) {
		gsize len = 0;
		const gchar *entries = g_bytes_get_data(text, &len);
		guint64 nl = 0;

		for (gsize i = 0; i < len; i++)
			nl += entries[i] == '\n';
		g_assert_cmpuint(nl, ==, n);
		g_assert_true(len == 0 || entries[len - 1] == '\n');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree gchar *path = NULL;
	g_autoptr(KlImaLog) log = NULL;
	size_t split;
	int fd;

	if (size == 0)
		return 0;
	fd = memfd_create("kl-fuzz-ima", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	split = data[0] % (size + 1);
	path = g_strdup_printf("/proc/self/fd/%d", fd);
	log = kl_ima_log_new(path);
	kl_ima_log_set_cache_limit(log, data[0] & 1 ? 0 : 4096);
	if (write(fd, data, split) == (ssize_t)split) {
		kl_fuzz_ima_cycle(log, split);
		if (write(fd, data + split, size - split) == (ssize_t)(size - split))
			kl_fuzz_ima_cycle(log, size);
		kl_fuzz_ima_cycle(log, size / 2);
	}
	g_clear_pointer(&log, kl_ima_log_free);
	close(fd);
	return 0;
}
