/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Plugin loader: acceptance, every rejection, start-up outcomes, runners.
 * Each test copies the modules it needs from tests/fixture-plugins into a fresh
 * temporary directory (mode 0644, owned by the current user).
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-plugin-loader.h"
#include "kl-test-skip.h"
#include "kl-verifier-client.h"

typedef struct {
	gchar *dir;
	gchar *dir2;
	gchar *marker;
	gchar *shutdown_marker;
	KlConfig *config;
	KlPluginLoader *loader;
} KlLoaderFixture;

static void
kl_test_rm_rf(const gchar *path)
{
	g_autoptr(GDir) dir = NULL;
	const gchar *name;

	if (path == NULL)
		return;
	dir = g_dir_open(path, 0, NULL);
	if (dir != NULL) {
		while ((name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);

			if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
			    !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
				kl_test_rm_rf(child);
			else
				g_unlink(child);
		}
	}
	g_rmdir(path);
}

/* copies tests/fixture-plugins module @module into @dir as @as.so with @mode */
static gchar *
kl_test_install(const gchar *dir, const gchar *module, const gchar *as, mode_t mode)
{
	g_autofree gchar *src_name = g_strconcat(module, ".so", NULL);
	g_autofree gchar *dst_name = g_strconcat(as != NULL ? as : module, ".so", NULL);
	g_autofree gchar *src = g_build_filename(KL_TEST_MODULE_DIR, src_name, NULL);
	g_autofree gchar *dst = g_build_filename(dir, dst_name, NULL);
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error = NULL;
	gsize len = 0;

	g_assert_true(g_file_get_contents(src, &contents, &len, &error));
	g_assert_no_error(error);
	g_assert_true(g_file_set_contents(dst, contents, (gssize)len, &error));
	g_assert_no_error(error);
	g_assert_cmpint(chmod(dst, mode), ==, 0);
	return g_steal_pointer(&dst);
}

static void
kl_loader_fixture_setup(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir2 = NULL;
	KlPluginServices services = { 0 };

	fx->dir = g_dir_make_tmp("kl-loader-XXXXXX", &error);
	g_assert_no_error(error);
	g_assert_cmpint(chmod(fx->dir, 0755), ==, 0);
	dir2 = g_build_filename(fx->dir, "second", NULL);
	g_assert_cmpint(g_mkdir(dir2, 0755), ==, 0);
	fx->dir2 = g_steal_pointer(&dir2);
	fx->marker = g_build_filename(fx->dir, "opened.marker", NULL);
	fx->shutdown_marker = g_build_filename(fx->dir, "shutdown.marker", NULL);
	g_setenv("KL_TEST_DUMMY_MARKER", fx->marker, TRUE);
	g_setenv("KL_TEST_DUMMY_SHUTDOWN_MARKER", fx->shutdown_marker, TRUE);

	fx->config = kl_config_new();
	services.config = fx->config;
	services.tpm = NULL;
	services.agent_id = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
	services.data_dir = fx->dir;
	services.boot_time = 1700000000;
	fx->loader = kl_plugin_loader_new(&services);
}

static void
kl_loader_fixture_teardown(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_clear_pointer(&fx->loader, kl_plugin_loader_free);
	g_clear_pointer(&fx->config, kl_config_free);
	g_unsetenv("KL_TEST_DUMMY_MARKER");
	g_unsetenv("KL_TEST_DUMMY_SHUTDOWN_MARKER");
	kl_test_rm_rf(fx->dir);
	g_free(fx->dir);
	g_free(fx->dir2);
	g_free(fx->marker);
	g_free(fx->shutdown_marker);
}

static void
kl_test_load(KlLoaderFixture *fx, const gchar *dir, gchar **disabled)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_plugin_loader_load_dir(fx->loader, dir, disabled, &error));
	g_assert_no_error(error);
}

/* the plugin recorded for file @name (any state) */
static KlPlugin *
kl_test_find(KlLoaderFixture *fx, const gchar *name)
{
	GPtrArray *plugins = kl_plugin_loader_get_plugins(fx->loader);
	KlPlugin *found = NULL;

	for (guint i = 0; i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);

		if (g_strcmp0(kl_plugin_get_name(plugin), name) == 0) {
			g_assert_null(found);
			found = plugin;
		}
	}
	g_assert_nonnull(found);
	return found;
}

/* installs one module, expects one rejection line, checks state and reason */
static void
kl_test_expect_rejected(KlLoaderFixture *fx,
			const gchar *module,
			mode_t mode,
			const gchar *log_pattern,
			const gchar *reason_fragment)
{
	g_autofree gchar *path = kl_test_install(fx->dir, module, NULL, mode);
	g_autofree gchar *pattern = g_strdup_printf("plugin %s rejected: %s", path, log_pattern);
	KlPlugin *plugin;

	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, pattern);
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();

	plugin = kl_test_find(fx, module);
	g_assert_cmpint(kl_plugin_get_state(plugin), ==, KL_PLUGIN_STATE_REJECTED);
	g_assert_nonnull(strstr(kl_plugin_get_state_reason(plugin), reason_fragment));
	g_assert_cmpstr(kl_plugin_get_path(plugin), ==, path);
	g_assert_null(kl_plugin_get_context(plugin));
	g_assert_null(kl_plugin_loader_lookup(fx->loader, module));
}

static void
kl_test_accept_dummy(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = kl_test_install(fx->dir, "dummy", NULL, 0644);
	g_autofree gchar *marker = NULL;
	KlPlugin *plugin;
	KlPluginContext *ctx;

	/* files that are not *.so are ignored */
	g_assert_true(g_file_set_contents(fx->shutdown_marker, "", 0, NULL));
	kl_test_load(fx, fx->dir, NULL);

	g_assert_cmpuint(kl_plugin_loader_get_plugins(fx->loader)->len, ==, 1);
	plugin = kl_plugin_loader_lookup(fx->loader, "dummy");
	g_assert_nonnull(plugin);
	g_assert_cmpint(kl_plugin_get_state(plugin), ==, KL_PLUGIN_STATE_ACTIVE);
	g_assert_null(kl_plugin_get_state_reason(plugin));
	g_assert_cmpstr(kl_plugin_get_name(plugin), ==, "dummy");
	g_assert_cmpstr(kl_plugin_get_path(plugin), ==, path);
	g_assert_cmpstr(kl_plugin_get_evidence_class(plugin), ==, "log");
	g_assert_cmpstr(kl_plugin_get_version(plugin), ==, "1.0");
	g_assert_cmpstr(kl_plugin_get_description(plugin), ==, "well-behaved test plugin");

	/* the context carries the services */
	ctx = kl_plugin_get_context(plugin);
	g_assert_nonnull(ctx);
	g_assert_cmpstr(kl_plugin_context_get_name(ctx), ==, "dummy");
	g_assert_cmpstr(kl_plugin_context_get_data_dir(ctx), ==, fx->dir);
	g_assert_cmpstr(
	    kl_plugin_context_get_agent_id(ctx), ==, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
	g_assert_cmpint(kl_plugin_context_get_boot_time(ctx), ==, 1700000000);
	g_assert_null(kl_plugin_context_get_tpm(ctx));
	/* startup ran: it stored its state */
	g_assert_nonnull(kl_plugin_context_get_data(ctx));

	/* the module's constructor ran (the control for the disabled test) */
	g_assert_true(g_file_get_contents(fx->marker, &marker, NULL, NULL));
	g_assert_cmpstr(marker, ==, "opened\n");

	g_assert_null(kl_plugin_loader_lookup(fx->loader, "ima_log"));
}

static void
kl_test_missing_dir(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *missing = g_build_filename(fx->dir, "does-not-exist", NULL);
	g_autoptr(GError) error = NULL;

	g_assert_false(kl_plugin_loader_load_dir(fx->loader, missing, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_assert_nonnull(strstr(error->message, missing));
}

static void
kl_test_sorted_order(KlLoaderFixture *fx, gconstpointer user_data)
{
	GPtrArray *plugins;

	g_free(kl_test_install(fx->dir, "not_available", NULL, 0644));
	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	g_free(kl_test_install(fx->dir, "no_error_set", NULL, 0644));
	g_test_expect_message(
	    "kl-core", G_LOG_LEVEL_INFO, "plugin not_available is not available*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();

	plugins = kl_plugin_loader_get_plugins(fx->loader);
	g_assert_cmpuint(plugins->len, ==, 3);
	g_assert_cmpstr(kl_plugin_get_name(g_ptr_array_index(plugins, 0)), ==, "dummy");
	g_assert_cmpstr(kl_plugin_get_name(g_ptr_array_index(plugins, 1)), ==, "no_error_set");
	g_assert_cmpstr(kl_plugin_get_name(g_ptr_array_index(plugins, 2)), ==, "not_available");
}

static void
kl_test_bad_abi(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *abi =
	    g_strdup_printf("built for plugin ABI 99.0, the agent supports %d.%d*",
			    KL_PLUGIN_ABI_MAJOR,
			    KL_PLUGIN_ABI_MINOR);

	kl_test_expect_rejected(fx, "bad_abi", 0644, abi, "ABI 99.0");
	g_assert_null(kl_plugin_get_version(kl_test_find(fx, "bad_abi")));
}

/* a plugin built against the previous minor's headers loads and collects */
static void
kl_test_older_minor(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(KlEvidenceRequest) request = kl_evidence_request_new("log", "older_minor", NULL);
	g_auto(KlEvidenceReport) report = { 0 };
	g_autoptr(KlEvidenceEntry) entry = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *text = NULL;

	g_free(kl_test_install(fx->dir, "older_minor", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	g_assert_cmpint(
	    kl_plugin_get_state(kl_test_find(fx, "older_minor")), ==, KL_PLUGIN_STATE_ACTIVE);
	g_assert_nonnull(kl_plugin_loader_resolve(fx->loader, request, &error));
	g_assert_no_error(error);
	entry = kl_plugin_run_request(request, NULL, &report, NULL, &error);
	g_assert_no_error(error);
	text = kl_evidence_entry_to_string(entry);
	g_assert_cmpstr(text,
			==,
			"{\"evidence_class\":\"log\",\"evidence_type\":\"older_minor\",\"data\":"
			"{\"from\":\"older_minor\"}}");
	g_assert_null(report.summary);
	g_assert_cmpuint(report.entry_count, ==, 0);
}

static void
kl_test_newer_minor(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *abi = g_strdup_printf("*ABI %d.%d, newer than the agent's %d.%d*",
						KL_PLUGIN_ABI_MAJOR,
						KL_PLUGIN_ABI_MINOR + 1,
						KL_PLUGIN_ABI_MAJOR,
						KL_PLUGIN_ABI_MINOR);

	kl_test_expect_rejected(fx, "newer_minor", 0644, abi, "newer than the agent");
}

static void
kl_test_missing_symbol(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx,
				"missing_symbol",
				0644,
				"does not export kl_plugin_get_info()*",
				"kl_plugin_get_info");
}

static void
kl_test_undefined_ref(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx,
				"undefined_ref",
				0644,
				"cannot be loaded: *kl_test_undefined_symbol*",
				"kl_test_undefined_symbol");
}

static void
kl_test_wrong_name(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx,
				"wrong_name",
				0644,
				"the descriptor names the plugin \"right_name\", but the file is "
				"wrong_name.so*",
				"right_name");
	g_assert_null(kl_plugin_loader_lookup(fx->loader, "right_name"));
}

/* a rejected file is never opened: the dummy's constructor must not run */
static void
kl_test_assert_not_opened(KlLoaderFixture *fx)
{
	g_assert_false(g_file_test(fx->marker, G_FILE_TEST_EXISTS));
}

static void
kl_test_group_writable(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx,
				"dummy",
				0664,
				"writable by group or others (mode 0664)*",
				"writable by group or others");
	kl_test_assert_not_opened(fx);
}

static void
kl_test_world_writable(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx,
				"dummy",
				0646,
				"writable by group or others (mode 0646)*",
				"writable by group or others");
	kl_test_assert_not_opened(fx);
}

static void
kl_test_setuid(KlLoaderFixture *fx, gconstpointer user_data)
{
	kl_test_expect_rejected(fx, "dummy", 04644, "setuid or setgid (mode 4644)*", "setuid");
	kl_test_assert_not_opened(fx);
}

static void
kl_test_setgid(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = kl_test_install(fx->dir, "dummy", NULL, 02644);
	struct stat st;

	/* an unprivileged user may not keep setgid for a group it is not in */
	g_assert_cmpint(stat(path, &st), ==, 0);
	if ((st.st_mode & S_ISGID) == 0) {
		kl_test_skip("cannot create a setgid file here");
		return;
	}
	g_test_expect_message(
	    "kl-core", G_LOG_LEVEL_WARNING, "*dummy.so rejected: setuid or setgid*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();
	g_assert_cmpint(
	    kl_plugin_get_state(kl_test_find(fx, "dummy")), ==, KL_PLUGIN_STATE_REJECTED);
	kl_test_assert_not_opened(fx);
}

static void
kl_test_foreign_owner(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = NULL;

	if (geteuid() != 0) {
		kl_test_skip("changing a file's owner needs root");
		return;
	}
	path = kl_test_install(fx->dir, "dummy", NULL, 0644);
	g_assert_cmpint(chown(path, 1, 1), ==, 0);
	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "*dummy.so rejected: owned by uid 1, neither root nor*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();
	g_assert_cmpint(
	    kl_plugin_get_state(kl_test_find(fx, "dummy")), ==, KL_PLUGIN_STATE_REJECTED);
	kl_test_assert_not_opened(fx);
}

static void
kl_test_not_regular(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = g_build_filename(fx->dir, "fake.so", NULL);

	g_assert_cmpint(g_mkdir(path, 0755), ==, 0);
	g_test_expect_message(
	    "kl-core", G_LOG_LEVEL_WARNING, "*fake.so rejected: not a regular file*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();
	g_assert_cmpint(
	    kl_plugin_get_state(kl_test_find(fx, "fake")), ==, KL_PLUGIN_STATE_REJECTED);
}

/* a symlink is followed: what counts is the file it points to */
static void
kl_test_symlink(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *target = kl_test_install(fx->dir2, "dummy", NULL, 0644);
	g_autofree gchar *link = g_build_filename(fx->dir, "dummy.so", NULL);

	g_assert_cmpint(symlink(target, link), ==, 0);
	kl_test_load(fx, fx->dir, NULL);
	g_assert_cmpint(kl_plugin_get_state(kl_test_find(fx, "dummy")), ==, KL_PLUGIN_STATE_ACTIVE);

	/* but a group-writable target is refused through the link as well */
	g_assert_cmpint(chmod(target, 0664), ==, 0);
	g_clear_pointer(&fx->loader, kl_plugin_loader_free);
	fx->loader = kl_plugin_loader_new(NULL);
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*dummy.so rejected: writable*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();
}

static void
kl_test_duplicate(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *first = kl_test_install(fx->dir, "dummy", NULL, 0644);
	g_autofree gchar *second = kl_test_install(fx->dir2, "dup_dummy", "dummy", 0644);
	g_autofree gchar *pattern = g_strdup_printf(
	    "plugin %s rejected: evidence type \"dummy\" is already provided by %s*",
	    second,
	    first);
	GPtrArray *plugins;
	KlPlugin *plugin;

	kl_test_load(fx, fx->dir, NULL);
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, pattern);
	kl_test_load(fx, fx->dir2, NULL);
	g_test_assert_expected_messages();

	plugins = kl_plugin_loader_get_plugins(fx->loader);
	g_assert_cmpuint(plugins->len, ==, 2);
	g_assert_cmpint(
	    kl_plugin_get_state(g_ptr_array_index(plugins, 0)), ==, KL_PLUGIN_STATE_ACTIVE);
	g_assert_cmpint(
	    kl_plugin_get_state(g_ptr_array_index(plugins, 1)), ==, KL_PLUGIN_STATE_REJECTED);
	/* the first one keeps the evidence type */
	plugin = kl_plugin_loader_lookup(fx->loader, "dummy");
	g_assert_cmpstr(kl_plugin_get_path(plugin), ==, first);
	g_assert_cmpstr(kl_plugin_get_version(plugin), ==, "1.0");
}

static void
kl_test_fails_startup(KlLoaderFixture *fx, gconstpointer user_data)
{
	KlPlugin *plugin;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = NULL;

	g_free(kl_test_install(fx->dir, "fails_startup", NULL, 0644));
	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	g_test_expect_message(
	    "kl-core",
	    G_LOG_LEVEL_WARNING,
	    "plugin fails_startup failed to start and is left out: fails_startup: "
	    "cannot read /nonexistent/evidence*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();

	plugin = kl_test_find(fx, "fails_startup");
	g_assert_cmpint(kl_plugin_get_state(plugin), ==, KL_PLUGIN_STATE_FAILED);
	g_assert_cmpstr(
	    kl_plugin_get_state_reason(plugin),
	    ==,
	    "fails_startup: cannot read /nonexistent/evidence: No such file or directory");
	g_assert_null(kl_plugin_loader_lookup(fx->loader, "fails_startup"));
	/* the agent goes on: the next plugin is active */
	g_assert_nonnull(kl_plugin_loader_lookup(fx->loader, "dummy"));

	/* runners refuse a plugin that is not active */
	caps = kl_plugin_run_get_capabilities(plugin, &error);
	g_assert_null(caps);
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_nonnull(strstr(error->message, "fails_startup: the plugin is failed"));

	/* shutdown is for started plugins only */
	g_clear_pointer(&fx->loader, kl_plugin_loader_free);
	{
		g_autofree gchar *text = NULL;

		g_assert_true(g_file_get_contents(fx->shutdown_marker, &text, NULL, NULL));
		g_assert_cmpstr(text, ==, "shutdown dummy\n");
	}
}

static void
kl_test_not_available(KlLoaderFixture *fx, gconstpointer user_data)
{
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "not_available", NULL, 0644));
	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_INFO,
			      "plugin not_available is not available on this host: not_available: "
			      "no test evidence on this host");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();

	plugin = kl_test_find(fx, "not_available");
	g_assert_cmpint(kl_plugin_get_state(plugin), ==, KL_PLUGIN_STATE_UNAVAILABLE);
	g_assert_cmpstr(
	    kl_plugin_get_state_reason(plugin), ==, "not_available: no test evidence on this host");
	g_assert_null(kl_plugin_loader_lookup(fx->loader, "not_available"));
}

static void
kl_test_disabled(KlLoaderFixture *fx, gconstpointer user_data)
{
	const gchar *disabled[] = { "dummy", "something_else", NULL };
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	g_test_expect_message(
	    "kl-core", G_LOG_LEVEL_INFO, "plugin dummy is listed in disabled_plugins*");
	kl_test_load(fx, fx->dir, (gchar **)disabled);
	g_test_assert_expected_messages();

	plugin = kl_test_find(fx, "dummy");
	g_assert_cmpint(kl_plugin_get_state(plugin), ==, KL_PLUGIN_STATE_DISABLED);
	g_assert_cmpstr(kl_plugin_get_state_reason(plugin), ==, "listed in disabled_plugins");
	g_assert_null(kl_plugin_loader_lookup(fx->loader, "dummy"));
	/* the module was never opened: its constructor did not run */
	kl_test_assert_not_opened(fx);
}

/* a disabled module is not even opened, so a broken one can be switched off */
static void
kl_test_disabled_broken(KlLoaderFixture *fx, gconstpointer user_data)
{
	const gchar *disabled[] = { "undefined_ref", NULL };

	g_free(kl_test_install(fx->dir, "undefined_ref", NULL, 0644));
	kl_test_load(fx, fx->dir, (gchar **)disabled);
	g_assert_cmpint(
	    kl_plugin_get_state(kl_test_find(fx, "undefined_ref")), ==, KL_PLUGIN_STATE_DISABLED);
}

static void
kl_test_runner_no_error_set(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) result = NULL;
	g_autoptr(JsonObject) body = json_object_new();
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "no_error_set", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	plugin = kl_plugin_loader_lookup(fx->loader, "no_error_set");
	g_assert_nonnull(plugin);

	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "plugin no_error_set: collect failed without setting an error*");
	result = kl_plugin_run_collect(plugin, NULL, NULL, &error);
	g_test_assert_expected_messages();
	g_assert_null(result);
	g_assert_error(error, KL_ERROR, KL_ERROR_INTERNAL);
	g_assert_true(g_str_has_prefix(error->message, "no_error_set: collect failed"));
	g_clear_error(&error);

	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "plugin no_error_set: get_capabilities failed without setting*");
	result = kl_plugin_run_get_capabilities(plugin, &error);
	g_test_assert_expected_messages();
	g_assert_null(result);
	g_assert_error(error, KL_ERROR, KL_ERROR_INTERNAL);
	g_assert_true(g_str_has_prefix(error->message, "no_error_set: get_capabilities"));
	g_clear_error(&error);

	g_test_expect_message("kl-core",
			      G_LOG_LEVEL_WARNING,
			      "plugin no_error_set: contribute_registration failed without*");
	g_assert_false(kl_plugin_run_contribute_registration(plugin, body, &error));
	g_test_assert_expected_messages();
	g_assert_error(error, KL_ERROR, KL_ERROR_INTERNAL);
}

static void
kl_test_runner_envelope(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(JsonObject) collected = NULL;
	g_autoptr(JsonObject) params = NULL;
	g_autoptr(JsonObject) body = json_object_new();
	g_autofree gchar *text = NULL;
	JsonObject *data;
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	g_free(kl_test_install(fx->dir, "dup_dummy", "other", 0644));
	/* dup_dummy installed as other.so claims "dummy": wrong name */
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*other.so rejected*");
	kl_test_load(fx, fx->dir, NULL);
	g_test_assert_expected_messages();
	plugin = kl_plugin_loader_lookup(fx->loader, "dummy");
	g_assert_nonnull(plugin);

	caps = kl_plugin_run_get_capabilities(plugin, &error);
	g_assert_no_error(error);
	text = kl_json_object_to_string(caps, NULL);
	g_assert_cmpstr(text,
			==,
			"{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			"\"capabilities\":{\"answer\":42}}");

	params = kl_json_parse_object("{\"echo\":\"hello\"}", -1, &error);
	g_assert_no_error(error);
	collected = kl_plugin_run_collect(plugin, params, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(kl_json_object_get_string(collected, "evidence_class", &error), ==, "log");
	g_assert_cmpstr(kl_json_object_get_string(collected, "evidence_type", &error), ==, "dummy");
	data = kl_json_object_get_object(collected, "data", &error);
	g_assert_no_error(error);
	g_assert_cmpstr(kl_json_object_get_string(data, "echo", &error), ==, "hello");
	g_assert_no_error(error);
	g_clear_pointer(&collected, json_object_unref);

	/* NULL parameters become an empty object */
	collected = kl_plugin_run_collect(plugin, NULL, NULL, &error);
	g_assert_no_error(error);
	data = kl_json_object_get_object(collected, "data", &error);
	g_assert_cmpstr(kl_json_object_get_string(data, "echo", &error), ==, "");
	g_clear_pointer(&collected, json_object_unref);

	/* a plugin error keeps its code and gets the plugin's name in front */
	g_clear_pointer(&params, json_object_unref);
	params = kl_json_parse_object("{\"fail\":true}", -1, &error);
	collected = kl_plugin_run_collect(plugin, params, NULL, &error);
	g_assert_null(collected);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_cmpstr(error->message, ==, "dummy: parameter \"fail\" was given");
	g_clear_error(&error);

	/* a cancelled request does not reach the plugin */
	{
		g_autoptr(GCancellable) cancellable = g_cancellable_new();

		g_cancellable_cancel(cancellable);
		collected = kl_plugin_run_collect(plugin, NULL, cancellable, &error);
		g_assert_null(collected);
		g_assert_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
		g_clear_error(&error);
	}

	g_assert_true(kl_plugin_run_contribute_registration(plugin, body, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(
	    kl_json_object_get_string(body, "dummy_contribution", &error), ==, "present");
	g_assert_no_error(error);
}

static void
kl_test_runner_sealed(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) params = NULL;
	g_autoptr(JsonObject) collected = NULL;
	JsonObject *data;
	gboolean sealed = FALSE;
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	plugin = kl_plugin_loader_lookup(fx->loader, "dummy");
	g_assert_nonnull(plugin);

	params = kl_json_parse_object("{\"echo\":\"x\",\"modify\":true}", -1, &error);
	g_assert_no_error(error);
	g_assert_false(json_object_is_immutable(params));

	collected = kl_plugin_run_collect(plugin, params, NULL, &error);
	g_assert_no_error(error);

	/* the plugin's write did not reach the caller's parameters */
	g_assert_false(json_object_has_member(params, "injected"));
	g_assert_false(json_object_is_immutable(params));
	g_assert_cmpuint(json_object_get_size(params), ==, 2);
	data = kl_json_object_get_object(collected, "data", &error);
	g_assert_no_error(error);
	g_assert_true(kl_json_object_get_bool(data, "sealed", &sealed, &error));
	g_assert_true(sealed);
	g_assert_cmpstr(kl_json_object_get_string(data, "echo", &error), ==, "x");

	/* nested members are copies too */
	g_clear_pointer(&params, json_object_unref);
	g_clear_pointer(&collected, json_object_unref);
	params = kl_json_parse_object(
	    "{\"modify\":true,\"echo\":\"y\",\"n\":{\"m\":[1,{\"k\":null}]}}", -1, &error);
	g_assert_no_error(error);
	collected = kl_plugin_run_collect(plugin, params, NULL, &error);
	g_assert_no_error(error);
	{
		g_autofree gchar *text = kl_json_object_to_string(params, NULL);

		g_assert_cmpstr(
		    text, ==, "{\"modify\":true,\"echo\":\"y\",\"n\":{\"m\":[1,{\"k\":null}]}}");
	}
}

/* the typed path: verifier answer -> requests -> resolved once -> the owning plugin */
static void
kl_test_dispatch(KlLoaderFixture *fx, gconstpointer user_data)
{
	const gchar *answer =
	    "{\"data\":{\"attributes\":{\"evidence_requested\":["
	    "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
	    "\"chosen_parameters\":{\"echo\":\"one\",\"summary\":\"3 new lines\",\"entries\":3}},"
	    "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\"},"
	    "{\"evidence_class\":\"certification\",\"evidence_type\":\"dummy\"},"
	    "{\"evidence_class\":\"log\",\"evidence_type\":\"nobody\"}]}}}";
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) requests = NULL;
	g_autoptr(KlEvidenceEntry) entry = NULL;
	g_auto(KlEvidenceReport) report = { 0 };
	g_autofree gchar *text = NULL;
	KlEvidenceRequest *request;
	KlPlugin *plugin;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	requests = kl_verifier_parse_evidence_requested(answer, strlen(answer), &error);
	g_assert_no_error(error);
	g_assert_cmpuint(requests->len, ==, 4);

	/* resolved once, recorded in the request */
	request = g_ptr_array_index(requests, 0);
	plugin = kl_plugin_loader_resolve(fx->loader, request, &error);
	g_assert_no_error(error);
	g_assert_true(plugin == kl_plugin_loader_lookup(fx->loader, "dummy"));
	g_assert_true(request->plugin == plugin);
	entry = kl_plugin_run_request(request, NULL, &report, NULL, &error);
	g_assert_no_error(error);
	text = kl_evidence_entry_to_string(entry);
	g_assert_cmpstr(text,
			==,
			"{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\",\"data\":"
			"{\"echo\":\"one\",\"sealed\":true,\"collects\":1}}");
	/* what the plugin reported, typed: the core does not read the plugin's data */
	g_assert_cmpstr(report.summary, ==, "3 new lines");
	g_assert_cmpuint(report.entry_count, ==, 3);
	g_clear_pointer(&entry, kl_evidence_entry_free);

	/* no chosen_parameters; a plugin that reports nothing leaves no stale report */
	request = g_ptr_array_index(requests, 1);
	g_assert_nonnull(kl_plugin_loader_resolve(fx->loader, request, &error));
	entry = kl_plugin_run_request(request, NULL, &report, NULL, &error);
	g_assert_no_error(error);
	g_assert_null(report.summary);
	g_assert_cmpuint(report.entry_count, ==, 0);
	g_clear_pointer(&entry, kl_evidence_entry_free);

	/* the plugin's type in another class */
	request = g_ptr_array_index(requests, 2);
	g_assert_null(kl_plugin_loader_resolve(fx->loader, request, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_nonnull(strstr(error->message, "as class 'certification'"));
	g_assert_null(request->plugin);
	g_clear_error(&error);
	/* an unresolved request reaches no plugin */
	g_assert_null(kl_plugin_run_request(request, NULL, &report, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INTERNAL);
	g_clear_error(&error);

	/* a type no active plugin provides */
	request = g_ptr_array_index(requests, 3);
	g_assert_null(kl_plugin_loader_resolve(fx->loader, request, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_nonnull(strstr(error->message, "'nobody', which no active plugin provides"));
}

/* the evidence body of one collected entry, as the agent sends it */
static gchar *
kl_test_evidence_body(KlEvidenceEntry *entry, KlJsonBody *body)
{
	g_autoptr(GPtrArray) collected =
	    g_ptr_array_new_with_free_func((GDestroyNotify)kl_evidence_entry_free);
	KlEvidenceEntry *copy = kl_evidence_entry_new(entry->head, json_object_ref(entry->data));

	if (entry->attachments != NULL)
		copy->attachments = g_ptr_array_ref(entry->attachments);
	g_ptr_array_add(collected, copy);
	kl_verifier_build_evidence(collected, body);
	return kl_json_body_to_string(body, NULL);
}

/* attached strings: sent from the plugin's buffer in their place, the same bytes as a copy */
static void
kl_test_attached_strings(KlLoaderFixture *fx, gconstpointer user_data)
{
	const gchar *answer = "{\"data\":{\"attributes\":{\"evidence_requested\":["
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			      "\"chosen_parameters\":{\"echo\":\"e\",\"attach\":"
			      "\"1 \\\"q\\\" \\\\ \\u0001 \\u00e9\\n\"}},"
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			      "\"chosen_parameters\":{\"attach\":\"lost\",\"fail\":true}},"
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\"}]}}}";
	const gchar *head = "{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_"
			    "collected\":[{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			    "\"data\":";
	const gchar *tail = "}]}}}";
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) requests = NULL;
	g_autoptr(KlEvidenceEntry) entry = NULL;
	g_autoptr(KlJsonBody) body = NULL;
	g_autofree gchar *streamed = NULL;
	g_autofree gchar *copied = NULL;
	g_autofree gchar *want = NULL;
	KlEvidenceRequest *request;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	requests = kl_verifier_parse_evidence_requested(answer, strlen(answer), &error);
	g_assert_no_error(error);
	for (guint i = 0; i < requests->len; i++)
		g_assert_nonnull(
		    kl_plugin_loader_resolve(fx->loader, g_ptr_array_index(requests, i), &error));
	request = g_ptr_array_index(requests, 0);

	/* into a body: the data as the plugin made it, the texts written by the body */
	body = kl_json_body_new();
	entry = kl_plugin_run_request(request, NULL, NULL, body, &error);
	g_assert_no_error(error);
	g_assert_true(JSON_NODE_HOLDS_NULL(json_object_get_member(entry->data, "text")));
	g_assert_false(json_object_has_member(entry->data, "tail"));
	g_assert_nonnull(entry->attachments);
	g_assert_cmpuint(entry->attachments->len, ==, 2);
	streamed = kl_test_evidence_body(entry, body);
	want = g_strconcat(head,
			   "{\"text\":\"1 \\\"q\\\" \\\\ \\u0001 \xc3\xa9\\n\",\"echo\":\"e\","
			   "\"sealed\":true,\"collects\":1,"
			   "\"tail\":\"1 \\\"q\\\" \\\\ \\u0001 \xc3\xa9\\n\"}",
			   tail,
			   NULL);
	g_assert_cmpstr(streamed, ==, want);
	g_clear_pointer(&entry, kl_evidence_entry_free);
	g_clear_pointer(&body, kl_json_body_free);

	/* without a body (tools, tests): copied into the entry, the same text */
	entry = kl_plugin_run_request(request, NULL, NULL, NULL, &error);
	g_assert_no_error(error);
	body = kl_json_body_new();
	copied = kl_test_evidence_body(entry, body);
	{
		/* the second collect: "collects":2 */
		gchar *count = strstr(copied, "\"collects\":2,");

		g_assert_nonnull(count);
		count[11] = '1';
		g_assert_cmpstr(copied, ==, want);
	}
	g_clear_pointer(&entry, kl_evidence_entry_free);
	g_clear_pointer(&body, kl_json_body_free);

	/* a failed collect's attachments are not sent with the next one */
	body = kl_json_body_new();
	g_assert_null(
	    kl_plugin_run_request(g_ptr_array_index(requests, 1), NULL, NULL, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	entry = kl_plugin_run_request(g_ptr_array_index(requests, 2), NULL, NULL, body, &error);
	g_assert_no_error(error);
	g_clear_pointer(&streamed, g_free);
	streamed = kl_test_evidence_body(entry, body);
	g_assert_null(strstr(streamed, "lost"));
	g_assert_nonnull(strstr(streamed, "{\"echo\":\"\",\"sealed\":true,\"collects\":3}"));
}

/*
 * a plugin may hand back its own sealed data object, collect after collect:
 * the strings it attaches never go into it (without a body, into a copy)
 */
static void
kl_test_kept_data(KlLoaderFixture *fx, gconstpointer user_data)
{
	const gchar *answer = "{\"data\":{\"attributes\":{\"evidence_requested\":["
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			      "\"chosen_parameters\":{\"keep\":true,\"attach\":\"first\"}},"
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			      "\"chosen_parameters\":{\"keep\":true}},"
			      "{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			      "\"chosen_parameters\":{\"keep\":true,\"attach\":\"third\"}}]}}}";
	const gchar *kept = "{\"text\":null,\"echo\":\"\",\"sealed\":true,\"collects\":1}";
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) requests = NULL;
	g_autoptr(KlEvidenceEntry) first = NULL;
	g_autoptr(KlEvidenceEntry) second = NULL;
	g_autoptr(KlEvidenceEntry) third = NULL;
	g_autoptr(KlJsonBody) body = kl_json_body_new();
	g_autofree gchar *text = NULL;
	g_autofree gchar *want = NULL;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	requests = kl_verifier_parse_evidence_requested(answer, strlen(answer), &error);
	g_assert_no_error(error);
	for (guint i = 0; i < requests->len; i++)
		g_assert_nonnull(
		    kl_plugin_loader_resolve(fx->loader, g_ptr_array_index(requests, i), &error));

	/* without a body: the attached strings in a copy */
	first = kl_plugin_run_request(g_ptr_array_index(requests, 0), NULL, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_false(json_object_is_immutable(first->data));
	text = kl_evidence_entry_to_string(first);
	g_assert_cmpstr(text,
			==,
			"{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\",\"data\":"
			"{\"text\":\"first\",\"echo\":\"\",\"sealed\":true,\"collects\":1,"
			"\"tail\":\"first\"}}");
	/* the plugin's object is as it made it */
	second = kl_plugin_run_request(g_ptr_array_index(requests, 1), NULL, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_true(json_object_is_immutable(second->data));
	g_clear_pointer(&text, g_free);
	text = kl_json_object_to_string(second->data, NULL);
	g_assert_cmpstr(text, ==, kept);

	/* into a body: the plugin's object itself, the strings written by the body */
	third = kl_plugin_run_request(g_ptr_array_index(requests, 2), NULL, NULL, body, &error);
	g_assert_no_error(error);
	g_assert_true(third->data == second->data);
	g_clear_pointer(&text, g_free);
	text = kl_test_evidence_body(third, body);
	want =
	    g_strconcat("{\"data\":{\"type\":\"attestation\",\"attributes\":{\"evidence_"
			"collected\":[{\"evidence_class\":\"log\",\"evidence_type\":\"dummy\","
			"\"data\":{\"text\":\"third\",\"echo\":\"\",\"sealed\":true,\"collects\":1,"
			"\"tail\":\"third\"}}]}}}",
			NULL);
	g_assert_cmpstr(text, ==, want);
	g_clear_pointer(&text, g_free);
	text = kl_json_object_to_string(third->data, NULL);
	g_assert_cmpstr(text, ==, kept);
}

static void
kl_test_shutdown_once(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *text = NULL;

	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	g_assert_false(g_file_test(fx->shutdown_marker, G_FILE_TEST_EXISTS));
	g_clear_pointer(&fx->loader, kl_plugin_loader_free);
	g_assert_true(g_file_get_contents(fx->shutdown_marker, &text, NULL, NULL));
	g_assert_cmpstr(text, ==, "shutdown dummy\n");
}

/* the config view of a plugin: its own table first, then the resolved [agent] */
static void
kl_test_config_view(KlLoaderFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) envp = g_environ_unsetenv(g_get_environ(), "KEYLIME_DIR");
	g_autofree gchar *conf = g_build_filename(fx->dir, "agent.conf", NULL);
	g_autofree gchar *text = g_strdup_printf("[agent]\n"
						 "keylime_dir = \"%s\"\n"
						 "[dummy]\n"
						 "greeting = \"hello\"\n"
						 "count = 3\n"
						 "verbose = true\n"
						 "[other]\n"
						 "secret = \"not for dummy\"\n",
						 fx->dir);
	KlPluginContext *ctx;
	gint64 count = 0;
	gboolean verbose = FALSE;

	g_assert_true(g_file_set_contents(conf, text, -1, &error));
	g_assert_true(kl_config_load_file(fx->config, conf, &error));
	g_assert_no_error(error);
	g_assert_true(kl_config_finalize(fx->config, envp, &error));
	g_assert_no_error(error);
	g_free(kl_test_install(fx->dir, "dummy", NULL, 0644));
	kl_test_load(fx, fx->dir, NULL);
	ctx = kl_plugin_get_context(kl_plugin_loader_lookup(fx->loader, "dummy"));

	g_assert_cmpstr(kl_plugin_context_get_config(ctx, "greeting"), ==, "hello");
	g_assert_true(kl_plugin_context_get_config_int(ctx, "count", 0, &count, &error));
	g_assert_cmpint(count, ==, 3);
	g_assert_true(kl_plugin_context_get_config_bool(ctx, "verbose", FALSE, &verbose, &error));
	g_assert_true(verbose);
	g_assert_no_error(error);
	/* [agent] options come resolved */
	g_assert_cmpstr(kl_plugin_context_get_config(ctx, "keylime_dir"), ==, fx->dir);
	g_assert_cmpstr(kl_plugin_context_get_config(ctx, "keylime_dir"),
			==,
			kl_config_get_string(fx->config, "keylime_dir"));
	/* other plugins' tables are not visible */
	g_assert_null(kl_plugin_context_get_config(ctx, "secret"));
	g_assert_null(kl_plugin_context_get_config(ctx, "no_such_key_anywhere"));
}

static void
kl_test_add(const gchar *path, void (*func)(KlLoaderFixture *, gconstpointer))
{
	g_test_add(
	    path, KlLoaderFixture, NULL, kl_loader_fixture_setup, func, kl_loader_fixture_teardown);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	kl_test_add("/loader/accept", kl_test_accept_dummy);
	kl_test_add("/loader/missing-dir", kl_test_missing_dir);
	kl_test_add("/loader/sorted-order", kl_test_sorted_order);
	kl_test_add("/loader/reject/bad-abi", kl_test_bad_abi);
	kl_test_add("/loader/reject/newer-minor", kl_test_newer_minor);
	kl_test_add("/loader/older-minor", kl_test_older_minor);
	kl_test_add("/loader/reject/missing-symbol", kl_test_missing_symbol);
	kl_test_add("/loader/reject/undefined-reference", kl_test_undefined_ref);
	kl_test_add("/loader/reject/wrong-name", kl_test_wrong_name);
	kl_test_add("/loader/reject/group-writable", kl_test_group_writable);
	kl_test_add("/loader/reject/world-writable", kl_test_world_writable);
	kl_test_add("/loader/reject/setuid", kl_test_setuid);
	kl_test_add("/loader/reject/setgid", kl_test_setgid);
	kl_test_add("/loader/reject/foreign-owner", kl_test_foreign_owner);
	kl_test_add("/loader/reject/not-regular", kl_test_not_regular);
	kl_test_add("/loader/reject/duplicate-type", kl_test_duplicate);
	kl_test_add("/loader/symlink", kl_test_symlink);
	kl_test_add("/loader/startup/fails", kl_test_fails_startup);
	kl_test_add("/loader/startup/not-available", kl_test_not_available);
	kl_test_add("/loader/disabled/not-opened", kl_test_disabled);
	kl_test_add("/loader/disabled/broken-module", kl_test_disabled_broken);
	kl_test_add("/loader/runner/no-error-set", kl_test_runner_no_error_set);
	kl_test_add("/loader/runner/envelope", kl_test_runner_envelope);
	kl_test_add("/loader/runner/sealed-parameters", kl_test_runner_sealed);
	kl_test_add("/loader/dispatch", kl_test_dispatch);
	kl_test_add("/loader/attached-strings", kl_test_attached_strings);
	kl_test_add("/loader/kept-data", kl_test_kept_data);
	kl_test_add("/loader/shutdown-once", kl_test_shutdown_once);
	kl_test_add("/loader/config-view", kl_test_config_view);
	return g_test_run();
}
