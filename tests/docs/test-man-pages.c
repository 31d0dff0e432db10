/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The man pages cannot drift from the code: every configuration option the
 * agent knows (kl_config_get_known_keys()) has an entry in
 * keylime_push_model_agent.conf(5), every command-line flag of --help has an
 * entry in keylime_push_model_agent(8), and every exit status of kl-agent.h is
 * described there.
 */
#include "config.h"

#include <string.h>

#include "kl-agent.h"
#include "kl-cli.h"
#include "kl-config.h"

static gchar *
read_page(const gchar *name)
{
	g_autofree gchar *path = g_build_filename(KL_MAN_SRCDIR, name, NULL);
	g_autoptr(GError) error = NULL;
	gchar *text = NULL;

	g_assert_true(g_file_get_contents(path, &text, NULL, &error));
	g_assert_no_error(error);
	return text;
}

static void
test_config_options(void)
{
	g_autofree gchar *page = read_page("keylime_push_model_agent.conf.5.scd");
	const gchar *const *keys = kl_config_get_known_keys();
	guint missing = 0;

	g_assert_nonnull(keys);
	g_assert_nonnull(keys[0]);
	for (guint i = 0; keys[i] != NULL; i++) {
		/* an entry: "*name* (type, default ...)" at the start of a line */
		g_autofree gchar *entry = g_strdup_printf("\n*%s* (", keys[i]);
		g_autofree gchar *listed = g_strdup_printf("*%s*", keys[i]);

		if (strstr(page, entry) != NULL)
			continue;
		/* options of the pull agent are listed together, accepted and ignored */
		if (strstr(page, "# PULL-MODEL OPTIONS") != NULL &&
		    strstr(strstr(page, "# PULL-MODEL OPTIONS"), listed) != NULL)
			continue;
		g_printerr("configuration option %s is not documented in "
			   "docs/man/keylime_push_model_agent.conf.5.scd\n",
			   keys[i]);
		missing++;
	}
	g_assert_cmpuint(missing, ==, 0);
}

static void
test_cli_flags(void)
{
	g_autofree gchar *page = read_page("keylime_push_model_agent.8.scd");
	g_autofree gchar *help = kl_cli_get_help();
	g_autoptr(GRegex) re =
	    g_regex_new("^\\s+(?:-(\\w), )?--([a-z][a-z0-9-]*)", G_REGEX_MULTILINE, 0, NULL);
	g_autoptr(GMatchInfo) match = NULL;
	guint flags = 0;
	guint missing = 0;

	g_assert_nonnull(help);
	g_regex_match(re, help, 0, &match);
	while (g_match_info_matches(match)) {
		g_autofree gchar *shortf = g_match_info_fetch(match, 1);
		g_autofree gchar *longf = g_match_info_fetch(match, 2);
		/* an entry: a line that starts with "*--flag*" or "*-f*, *--flag*" */
		g_autofree gchar *entry = g_strdup_printf("\n*--%s*", longf);
		g_autofree gchar *short_entry =
		    shortf != NULL && shortf[0] != '\0'
			? g_strdup_printf("\n*-%s*, *--%s*", shortf, longf)
			: NULL;

		flags++;
		if (short_entry != NULL ? strstr(page, short_entry) == NULL
					: strstr(page, entry) == NULL) {
			g_printerr("flag --%s%s%s has no entry in "
				   "docs/man/keylime_push_model_agent.8.scd\n",
				   longf,
				   short_entry != NULL ? " / -" : "",
				   short_entry != NULL ? shortf : "");
			missing++;
		}
		g_match_info_next(match, NULL);
	}
	/* the help text was understood: the agent has more than a dozen flags */
	g_assert_cmpuint(flags, >, 12);
	g_assert_cmpuint(missing, ==, 0);
}

static void
test_exit_statuses(void)
{
	g_autofree gchar *page = read_page("keylime_push_model_agent.8.scd");
	const gint statuses[] = {
		KL_EXIT_OK,	    KL_EXIT_FAILURE,	  KL_EXIT_USAGE,
		KL_EXIT_CONFIG,	    KL_EXIT_TPM,	  KL_EXIT_REGISTRAR_IDENTITY,
		KL_EXIT_NO_PLUGINS, KL_EXIT_NOT_ACCEPTED,
	};
	const gchar *section = strstr(page, "# EXIT STATUS");

	g_assert_nonnull(section);
	for (guint i = 0; i < G_N_ELEMENTS(statuses); i++) {
		g_autofree gchar *entry = g_strdup_printf("\n*%d*\n", statuses[i]);
		g_assert_nonnull(strstr(section, entry));
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/man-pages/config-options", test_config_options);
	g_test_add_func("/man-pages/cli-flags", test_cli_flags);
	g_test_add_func("/man-pages/exit-statuses", test_exit_statuses);
	return g_test_run();
}
