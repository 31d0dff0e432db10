/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Replay driver for libFuzzer targets: runs LLVMFuzzerTestOneInput() on every
 * file of the corpus directories (or files) given on the command line and
 * reports TAP. Linked into every fuzz target when -Dfuzzing=false, so the
 * checked-in corpus is a regression test in every build (under ASan/UBSan in CI).
 */
#include "config.h"

#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gint
kl_fuzz_compare_cb(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

static void
kl_fuzz_collect(const gchar *path, GPtrArray *files)
{
	g_autoptr(GDir) dir = NULL;
	const gchar *name;

	if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
		g_ptr_array_add(files, g_strdup(path));
		return;
	}
	dir = g_dir_open(path, 0, NULL);
	if (dir == NULL)
		return;
	while ((name = g_dir_read_name(dir)) != NULL) {
		g_autofree gchar *child = g_build_filename(path, name, NULL);
		kl_fuzz_collect(child, files);
	}
}

int
main(int argc, char **argv)
{
	g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);

	for (int i = 1; i < argc; i++)
		kl_fuzz_collect(argv[i], files);
	g_ptr_array_sort(files, kl_fuzz_compare_cb);

	if (files->len == 0) {
		printf("1..0 # SKIP empty corpus\n");
		return 0;
	}
	printf("1..%u\n", files->len);
	for (guint i = 0; i < files->len; i++) {
		const gchar *path = g_ptr_array_index(files, i);
		g_autofree gchar *data = NULL;
		gsize len = 0;
		g_autoptr(GError) error = NULL;

		if (!g_file_get_contents(path, &data, &len, &error)) {
			printf("not ok %u - %s: %s\n", i + 1, path, error->message);
			continue;
		}
		/* a crash or sanitizer report aborts the whole run: the test fails */
		LLVMFuzzerTestOneInput((const uint8_t *)data, len);
		printf("ok %u - %s\n", i + 1, path);
		fflush(stdout);
	}
	return 0;
}
