/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Replay driver for libFuzzer targets: runs LLVMFuzzerTestOneInput() on every
 * file of the corpus directories (or files) given on the command line and
 * reports TAP. Linked into every fuzz target when -Dfuzzing=false, so the
 * checked-in corpus is a regression test in every build (under ASan/UBSan in CI).
 * A file named bad-* must be rejected and valid-* accepted (kl-fuzz.h); an
 * empty corpus tests nothing, so it is a skip (a failure under KL_TEST_NO_SKIP).
 */
#include "config.h"

#include <glib.h>
#include <stdint.h>
#include <stdio.h>

#include "kl-fuzz.h"
#include "kl-test-skip.h"

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
	int status = 0;

	for (int i = 1; i < argc; i++)
		kl_fuzz_collect(argv[i], files);
	g_ptr_array_sort(files, kl_fuzz_compare_cb);

	if (files->len == 0)
		return kl_test_skip_all("empty corpus: nothing to replay");
	printf("1..%u\n", files->len);
	for (guint i = 0; i < files->len; i++) {
		const gchar *path = g_ptr_array_index(files, i);
		g_autofree gchar *name = g_path_get_basename(path);
		gint promise = g_str_has_prefix(name, "bad-")	  ? 0
			       : g_str_has_prefix(name, "valid-") ? 1
								  : -1;
		g_autofree gchar *data = NULL;
		gsize len = 0;
		g_autoptr(GError) error = NULL;

		if (!g_file_get_contents(path, &data, &len, &error)) {
			printf("not ok %u - %s: %s\n", i + 1, path, error->message);
			status = 1;
			continue;
		}
		/* a crash or sanitizer report aborts the whole run: the test fails */
		kl_fuzz_verdict = -1;
		LLVMFuzzerTestOneInput((const uint8_t *)data, len);
		if (promise >= 0 && kl_fuzz_verdict != promise) {
			printf("not ok %u - %s: the name promises it is %s, but the target %s\n",
			       i + 1,
			       path,
			       promise ? "accepted" : "rejected",
			       kl_fuzz_verdict < 0 ? "does not report a verdict (kl_fuzz_report)"
			       : kl_fuzz_verdict   ? "accepted it"
						   : "rejected it");
			status = 1;
		} else {
			printf("ok %u - %s\n", i + 1, path);
		}
		fflush(stdout);
	}
	return status;
}
