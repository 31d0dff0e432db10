/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Skipping in tests. A test skips when something it needs is missing (root,
 * openssl, swtpm, a plugin left out of the build). CI provides all of that and
 * sets KL_TEST_NO_SKIP=1: there, a skip would hide a test that never ran, so it
 * fails instead.
 */
#pragma once

#include <glib.h>
#include <stdio.h>

/* inside a test case */
static inline void
kl_test_skip(const gchar *reason)
{
	if (g_getenv("KL_TEST_NO_SKIP") != NULL) {
		g_test_message("KL_TEST_NO_SKIP is set, so this is a failure: %s", reason);
		g_test_fail();
		return;
	}
	g_test_skip(reason);
}

/* in main(), after g_test_init() and before any test is added: returns main()'s status */
static inline int
kl_test_skip_all(const gchar *reason)
{
	if (g_getenv("KL_TEST_NO_SKIP") != NULL) {
		printf("1..1\nnot ok 1 - %s (KL_TEST_NO_SKIP is set: not skipped)\n", reason);
		fflush(stdout);
		return 1;
	}
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
	return 0;
}
