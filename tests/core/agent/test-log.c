/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-log.h"

static void
kl_log_format_test(void)
{
	g_autofree gchar *a =
	    kl_log_format_line(G_LOG_LEVEL_WARNING, "kl-core", "disk full", FALSE);
	g_autofree gchar *b = kl_log_format_line(G_LOG_LEVEL_MESSAGE, NULL, "x", FALSE);
	g_autofree gchar *c =
	    kl_log_format_line(G_LOG_LEVEL_INFO, "kl-ima_log", "a\nFAKE line\r\x01", FALSE);
	g_autofree gchar *d = kl_log_format_line(G_LOG_LEVEL_DEBUG, "kl-core", "dbg", TRUE);

	g_autofree gchar *e =
	    kl_log_format_line(KL_LOG_LEVEL_FATAL, "kl-core", "bad configuration", FALSE);

	g_assert_cmpstr(a, ==, "WARNING kl-core: disk full\n");
	/* kl_error(): fatal conditions are ERROR, and always shown */
	g_assert_cmpstr(e, ==, "ERROR kl-core: bad configuration\n");
	g_assert_true(kl_log_set_level("error", NULL));
	g_assert_true(kl_log_is_enabled(KL_LOG_LEVEL_FATAL, "kl-core"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_WARNING, "kl-core"));
	g_assert_true(kl_log_set_level("info", NULL));
	g_assert_cmpstr(b, ==, "INFO default: x\n");
	/* a message is always one line */
	g_assert_cmpstr(c, ==, "INFO kl-ima_log: a\\nFAKE line\\r\\x01\n");
	g_assert_true(g_regex_match_simple(
	    "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z DEBUG kl-core: dbg\n$", d, 0, 0));
}

static void
kl_log_levels_test(void)
{
	g_autoptr(GError) error = NULL;

	g_unsetenv("G_MESSAGES_DEBUG");
	g_assert_true(kl_log_set_level("info", &error));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_INFO, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_MESSAGE, "kl-core"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));

	g_assert_true(kl_log_set_level("warning", &error));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_INFO, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_WARNING, "kl-core"));

	g_assert_true(kl_log_set_level("error", &error));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_WARNING, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_CRITICAL, "kl-core"));

	/* debug: every kl-* domain, not the libraries */
	g_assert_true(kl_log_set_level("debug", &error));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-tpm_quote"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "GLib-GIO"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, NULL));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_INFO, "GLib-GIO"));

	/* G_MESSAGES_DEBUG still works for single domains; it is read with the level */
	g_setenv("G_MESSAGES_DEBUG", "kl-ima_log", TRUE);
	g_assert_true(kl_log_set_level("info", &error));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-ima_log"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-ima"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, NULL));
	/* a list of domains, spaces or commas between them */
	g_setenv("G_MESSAGES_DEBUG", "GLib-GIO, kl-core", TRUE);
	g_assert_true(kl_log_set_level("info", &error));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "GLib-GIO"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-ima_log"));
	/* all: every domain, also below a warning level */
	g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
	g_assert_true(kl_log_set_level("warning", &error));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "GLib-GIO"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_INFO, "kl-core"));
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, NULL));
	/* unset: read again with the level, nothing extra shown */
	g_unsetenv("G_MESSAGES_DEBUG");
	g_assert_true(kl_log_set_level("info", &error));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "GLib-GIO"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
	g_setenv("G_MESSAGES_DEBUG", "", TRUE);
	g_assert_true(kl_log_set_level("info", &error));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
	g_unsetenv("G_MESSAGES_DEBUG");
	g_assert_true(kl_log_set_level("info", &error));

	g_assert_false(kl_log_set_level("verbose", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "'verbose'"));
	/* a bad level leaves the level as it was */
	g_assert_true(kl_log_is_enabled(G_LOG_LEVEL_INFO, "kl-core"));
	g_assert_false(kl_log_is_enabled(G_LOG_LEVEL_DEBUG, "kl-core"));
}

static void
kl_log_writer_test(void)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;

		/* g_test_init() makes warnings fatal */
		g_log_set_always_fatal(G_LOG_FATAL_MASK);
		g_unsetenv("JOURNAL_STREAM");
		g_unsetenv("G_MESSAGES_DEBUG");
		if (!kl_log_init("warning", &error))
			g_error("%s", error->message);
		g_info("hidden info");
		g_warning("shown warning %d", 42);
		g_debug("hidden debug");
		if (!kl_log_set_level("debug", &error))
			g_error("%s", error->message);
		g_debug("shown debug\nsecond");
		g_log("GLib-GIO", G_LOG_LEVEL_DEBUG, "library debug");
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr(
	    "*Z WARNING kl-test: shown warning 42\n*Z DEBUG kl-test: shown debug\\nsecond\n");
	g_test_trap_assert_stderr_unmatched("*hidden*");
	g_test_trap_assert_stderr_unmatched("*library debug*");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/log/format", kl_log_format_test);
	g_test_add_func("/log/levels", kl_log_levels_test);
	g_test_add_func("/log/writer", kl_log_writer_test);
	return g_test_run();
}
