/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * run_as parsing, the privilege drop (really performed in forked children when
 * the tests run as root) and the keylime_dir writability check.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "keylime-agent/kl-error.h"
#include "kl-privileges.h"
#include "kl-test-skip.h"

/* users and groups the many-groups test creates: more than the 32 a fixed buffer holds */
#define N_EXTRA_GROUPS 40

static gboolean
is_root(void)
{
	return geteuid() == 0;
}

/* "nobody:<its primary group>" ("nogroup" on Debian, "nobody" elsewhere) */
static gboolean
nobody_run_as(gchar **run_as, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *gr;

	if (pw == NULL)
		return FALSE;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	gr = getgrgid(pw->pw_gid);
	if (gr == NULL)
		return FALSE;
	*run_as = g_strdup_printf("nobody:%s", gr->gr_name);
	return TRUE;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static void
test_parse_names(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *nobody = NULL;
	uid_t uid = 12345;
	gid_t gid = 12345;
	uid_t nobody_uid;
	gid_t nobody_gid;
	struct passwd *keylime;
	struct group *tss;

	g_assert_true(kl_privileges_parse_run_as("root:root", &uid, &gid, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(uid, ==, 0);
	g_assert_cmpuint(gid, ==, 0);

	/* surrounding blanks are tolerated */
	uid = gid = 12345;
	g_assert_true(kl_privileges_parse_run_as(" root : root ", &uid, &gid, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(uid, ==, 0);
	g_assert_cmpuint(gid, ==, 0);

	if (nobody_run_as(&nobody, &nobody_uid, &nobody_gid)) {
		g_assert_true(kl_privileges_parse_run_as(nobody, &uid, &gid, &error));
		g_assert_no_error(error);
		g_assert_cmpuint(uid, ==, nobody_uid);
		g_assert_cmpuint(gid, ==, nobody_gid);
	}

	/* the packaged default: resolves where it exists, otherwise names what is missing */
	keylime = getpwnam("keylime");
	uid_t keylime_uid = keylime != NULL ? keylime->pw_uid : 0;
	tss = getgrnam("tss");
	gid_t tss_gid = tss != NULL ? tss->gr_gid : 0;
	if (keylime != NULL && tss != NULL) {
		g_assert_true(kl_privileges_parse_run_as("keylime:tss", &uid, &gid, &error));
		g_assert_no_error(error);
		g_assert_cmpuint(uid, ==, keylime_uid);
		g_assert_cmpuint(gid, ==, tss_gid);
	} else {
		g_assert_false(kl_privileges_parse_run_as("keylime:tss", &uid, &gid, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, keylime == NULL ? "'keylime'" : "'tss'"));
		g_clear_error(&error);
	}
}

static void
test_parse_numeric(void)
{
	g_autoptr(GError) error = NULL;
	uid_t uid = 0;
	gid_t gid = 0;

	/* numeric ids need no database entry */
	g_assert_true(kl_privileges_parse_run_as("1000:1000", &uid, &gid, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(uid, ==, 1000);
	g_assert_cmpuint(gid, ==, 1000);

	g_assert_true(kl_privileges_parse_run_as("4000000:0", &uid, &gid, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(uid, ==, 4000000);
	g_assert_cmpuint(gid, ==, 0);

	/* (uid_t) -1 means "unchanged" to the kernel: never a valid id */
	g_assert_false(kl_privileges_parse_run_as("4294967295:0", &uid, &gid, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "4294967295"));
	g_clear_error(&error);

	g_assert_false(kl_privileges_parse_run_as("0:-1", &uid, &gid, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "'-1'"));
	g_clear_error(&error);
}

static void
test_parse_missing_group(void)
{
	static const gchar *const bad[] = { "root", "root:",	      ":root",
					    ":",    "root:root:root", "root: " };

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *quoted = g_strdup_printf("\"%s\"", bad[i]);
		uid_t uid = 7;
		gid_t gid = 7;

		g_assert_false(kl_privileges_parse_run_as(bad[i], &uid, &gid, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, quoted));
		g_assert_nonnull(strstr(error->message, "user:group"));
	}
}

static void
test_parse_unknown(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *user = g_strdup_printf("kl-no-user-%d", (int)getpid());
	g_autofree gchar *group = g_strdup_printf("kl-no-group-%d", (int)getpid());
	g_autofree gchar *run_as = NULL;
	g_autofree gchar *quoted = NULL;

	run_as = g_strdup_printf("%s:root", user);
	quoted = g_strdup_printf("'%s'", user);
	g_assert_false(kl_privileges_parse_run_as(run_as, NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, quoted));
	g_assert_nonnull(strstr(error->message, "does not exist"));
	g_clear_error(&error);

	g_free(run_as);
	g_free(quoted);
	run_as = g_strdup_printf("root:%s", group);
	quoted = g_strdup_printf("'%s'", group);
	g_assert_false(kl_privileges_parse_run_as(run_as, NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, quoted));
	g_assert_nonnull(strstr(error->message, "does not exist"));
	g_clear_error(&error);

	/* digits mixed with letters are a name, not an id */
	g_assert_false(kl_privileges_parse_run_as("12ab:root", NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "'12ab'"));
}

static void
test_parse_empty(void)
{
	static const gchar *const empty[] = { "", "  ", NULL };

	for (guint i = 0; i < G_N_ELEMENTS(empty); i++) {
		g_autoptr(GError) error = NULL;
		uid_t uid = 0;
		gid_t gid = 0;

		g_assert_true(kl_privileges_parse_run_as(empty[i], &uid, &gid, &error));
		g_assert_no_error(error);
		g_assert_cmpuint(uid, ==, (uid_t)-1);
		g_assert_cmpuint(gid, ==, (gid_t)-1);
	}
}

/* ---- dropping ----------------------------------------------------------------------------- */

static void
test_drop_to_nobody(void)
{
	g_autofree gchar *run_as = NULL;
	uid_t uid;
	gid_t gid;

	if (!nobody_run_as(&run_as, &uid, &gid)) {
		kl_test_skip("no user 'nobody' with a primary group");
		return;
	}
	if (!is_root()) {
		g_autoptr(GError) error = NULL;
		uid_t before = getuid();

		/* not root: run_as is ignored, nothing changes */
		g_assert_true(kl_privileges_drop(run_as, &error));
		g_assert_no_error(error);
		g_assert_cmpuint(getuid(), ==, before);
		return;
	}
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		g_autofree gid_t *groups = NULL;
		gint n;
		int e;

		g_assert_cmpint(setgroups(0, NULL), ==, 0);
		g_assert_true(kl_privileges_drop(run_as, &error));
		g_assert_no_error(error);

		g_assert_cmpuint(getuid(), ==, uid);
		g_assert_cmpuint(geteuid(), ==, uid);
		g_assert_cmpuint(getgid(), ==, gid);
		g_assert_cmpuint(getegid(), ==, gid);
		/* the supplementary groups are nobody's, and root's group 0 is gone */
		n = getgroups(0, NULL);
		g_assert_cmpint(n, >=, 1);
		groups = g_new(gid_t, n > 0 ? n : 1);
		g_assert_cmpint(getgroups(n, groups), ==, n);
		for (gint i = 0; i < n; i++)
			g_assert_cmpuint(groups[i], !=, 0);
		{
			gboolean has_primary = FALSE;

			for (gint i = 0; i < n; i++)
				has_primary |= groups[i] == gid;
			g_assert_true(has_primary);
		}
		/* no way back */
		errno = 0;
		g_assert_cmpint(setuid(0), ==, -1);
		e = errno;
		g_assert_cmpint(e, ==, EPERM);
		g_assert_cmpint(setgid(0), ==, -1);
		g_assert_cmpint(seteuid(0), ==, -1);
		g_print("dropped to %u:%u with %d groups\n", (guint)getuid(), (guint)getgid(), n);
		return;
	}
	g_test_trap_subprocess(NULL, 0, 0);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*dropped to*");
}

static void
test_drop_not_root(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *run_as = NULL;
	uid_t uid;
	gid_t gid;

	if (!is_root()) {
		uid_t before = getuid();

		g_assert_true(kl_privileges_drop("root:root", &error));
		g_assert_no_error(error);
		g_assert_cmpuint(getuid(), ==, before);
		/* even an unknown user is not looked up */
		g_assert_true(kl_privileges_drop("kl-no-such-user:kl-no-such-group", &error));
		g_assert_no_error(error);
		return;
	}
	if (!nobody_run_as(&run_as, &uid, &gid)) {
		kl_test_skip("no user 'nobody' with a primary group");
		return;
	}
	if (g_test_subprocess()) {
		/* become an ordinary user first, then ask for root: ignored */
		g_assert_cmpint(setgroups(0, NULL), ==, 0);
		g_assert_cmpint(setgid(gid), ==, 0);
		g_assert_cmpint(setuid(uid), ==, 0);
		g_assert_true(kl_privileges_drop("root:root", &error));
		g_assert_no_error(error);
		g_assert_true(kl_privileges_drop("kl-no-such-user:kl-no-such-group", &error));
		g_assert_no_error(error);
		g_assert_cmpuint(getuid(), ==, uid);
		g_assert_cmpuint(geteuid(), ==, uid);
		g_assert_cmpuint(getgid(), ==, gid);
		g_print("ignored\n");
		return;
	}
	g_test_trap_subprocess(NULL, 0, 0);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*ignored*");
}

static guint32
effective_capabilities(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

	g_assert_cmpint(syscall(SYS_capget, &header, data), ==, 0);
	return data[0].effective | data[0].permitted | data[1].effective | data[1].permitted;
}

/*
 * Started unprivileged with CAP_DAC_READ_SEARCH (what the systemd unit does,
 * to open the event logs): the capability is gone after kl_privileges_drop().
 */
static void
test_drop_capabilities_not_root(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *run_as = NULL;
	uid_t uid;
	gid_t gid;

	if (!is_root()) {
		kl_test_skip("needs root to give an ordinary user a capability");
		return;
	}
	if (!nobody_run_as(&run_as, &uid, &gid)) {
		kl_test_skip("no user 'nobody' with a primary group");
		return;
	}
	if (g_test_subprocess()) {
		struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

		g_assert_cmpint(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), ==, 0);
		g_assert_cmpint(setgroups(0, NULL), ==, 0);
		g_assert_cmpint(setgid(gid), ==, 0);
		g_assert_cmpint(setuid(uid), ==, 0);
		data[0].permitted = data[0].effective = 1u << CAP_DAC_READ_SEARCH;
		g_assert_cmpint(syscall(SYS_capset, &header, data), ==, 0);
		g_assert_cmpuint(effective_capabilities(), ==, 1u << CAP_DAC_READ_SEARCH);

		g_assert_true(kl_privileges_drop("keylime:tss", &error));
		g_assert_no_error(error);
		g_assert_cmpuint(effective_capabilities(), ==, 0);
		g_assert_cmpuint(geteuid(), ==, uid);
		g_print("capabilities dropped\n");
		return;
	}
	g_test_trap_subprocess(NULL, 0, 0);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*capabilities dropped*");
}

static void
test_drop_empty_as_root(void)
{
	g_autoptr(GError) error = NULL;

	if (!is_root()) {
		/* no warning when not root (test warnings are fatal) */
		g_assert_true(kl_privileges_drop("", &error));
		g_assert_no_error(error);
		return;
	}
	if (g_test_subprocess()) {
		g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*keeps running as root*");
		g_assert_true(kl_privileges_drop("", &error));
		g_assert_no_error(error);
		g_test_assert_expected_messages();
		g_assert_cmpuint(getuid(), ==, 0);
		g_assert_cmpuint(geteuid(), ==, 0);
		/* run_as naming root itself: same warning, still root */
		g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*keeps running as root*");
		g_assert_true(kl_privileges_drop("root:root", &error));
		g_assert_no_error(error);
		g_test_assert_expected_messages();
		g_assert_cmpuint(geteuid(), ==, 0);
		g_print("still root\n");
		return;
	}
	g_test_trap_subprocess(NULL, 0, 0);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*still root*");
}

static void
test_drop_unknown_user(void)
{
	if (!is_root()) {
		kl_test_skip("needs root: without it run_as is ignored");
		return;
	}
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *user = g_strdup_printf("kl-no-user-%d", (int)getpid());
		g_autofree gchar *run_as = g_strdup_printf("%s:root", user);
		g_autofree gchar *quoted = g_strdup_printf("'%s'", user);
		gint n_before = getgroups(0, NULL);

		g_assert_false(kl_privileges_drop(run_as, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, quoted));
		g_assert_nonnull(strstr(error->message, "tss"));
		g_clear_error(&error);
		/* nothing was touched */
		g_assert_cmpuint(getuid(), ==, 0);
		g_assert_cmpuint(geteuid(), ==, 0);
		g_assert_cmpint(getgroups(0, NULL), ==, n_before);

		g_assert_false(kl_privileges_drop("root:kl-no-such-group-x", &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, "'kl-no-such-group-x'"));
		g_assert_cmpuint(geteuid(), ==, 0);

		/* a numeric uid without a user entry cannot be dropped to (no groups known) */
		g_clear_error(&error);
		if (getpwuid(3999999) == NULL) {
			g_assert_false(kl_privileges_drop("3999999:0", &error));
			g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
			g_assert_nonnull(strstr(error->message, "3999999"));
			g_assert_cmpuint(geteuid(), ==, 0);
		}
		g_print("refused\n");
		return;
	}
	g_test_trap_subprocess(NULL, 0, 0);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*refused*");
}

/* ---- a user in more groups than a fixed 32-entry buffer holds ------------------------------ */

static gchar *
find_tool(const gchar *name)
{
	gchar *path = g_find_program_in_path(name);

	if (path == NULL) {
		g_autofree gchar *sbin = g_build_filename("/usr/sbin", name, NULL);

		if (g_file_test(sbin, G_FILE_TEST_IS_EXECUTABLE))
			path = g_steal_pointer(&sbin);
	}
	return path;
}

static gboolean
run_tool_once(const gchar *const *argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *err = NULL;
	gint status = 0;

	if (!g_spawn_sync(NULL,
			  (gchar **)argv,
			  NULL,
			  G_SPAWN_STDOUT_TO_DEV_NULL,
			  NULL,
			  NULL,
			  NULL,
			  &err,
			  &status,
			  &error)) {
		g_test_message("%s: %s", argv[0], error->message);
		return FALSE;
	}
	if (!g_spawn_check_wait_status(status, &error)) {
		g_test_message(
		    "%s %s: %s (%s)", argv[0], argv[1], error->message, err != NULL ? err : "");
		return FALSE;
	}
	return TRUE;
}

/* the shadow tools fail while another process holds the passwd/group locks: retry a little */
static gboolean
run_tool(const gchar *const *argv)
{
	for (guint attempt = 0; attempt < 10; attempt++) {
		if (run_tool_once(argv))
			return TRUE;
		g_usleep(200 * G_TIME_SPAN_MILLISECOND);
	}
	return FALSE;
}

static void
test_drop_many_groups(void)
{
	g_autofree gchar *groupadd = NULL;
	g_autofree gchar *groupdel = NULL;
	g_autofree gchar *useradd = NULL;
	g_autofree gchar *userdel = NULL;
	g_autofree gchar *user = NULL;
	g_autofree gchar *run_as = NULL;
	g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) members = g_string_new(NULL);
	gboolean user_created = FALSE;
	gboolean cleaned = TRUE;
	gboolean listed = TRUE; /* the new groups are visible in the group database */
	gboolean ok = TRUE;
	gint pid = (gint)getpid();

	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		g_autofree gid_t *list = NULL;
		const gchar *name = g_getenv("KL_TEST_MANY_GROUPS_RUN_AS");
		const gchar *expect = g_getenv("KL_TEST_MANY_GROUPS_GIDS");
		g_auto(GStrv) expected = NULL;
		gint n;

		g_assert_nonnull(name);
		g_assert_nonnull(expect);
		expected = g_strsplit(expect, ",", -1);
		g_assert_true(kl_privileges_drop(name, &error));
		g_assert_no_error(error);
		g_assert_cmpuint(geteuid(), !=, 0);

		/* every group the user is in, and nothing else */
		n = getgroups(0, NULL);
		g_assert_cmpint(n, ==, (gint)g_strv_length(expected));
		list = g_new(gid_t, n > 0 ? n : 1);
		g_assert_cmpint(getgroups(n, list), ==, n);
		for (guint i = 0; expected[i] != NULL; i++) {
			gid_t want = (gid_t)g_ascii_strtoull(expected[i], NULL, 10);
			gboolean present = FALSE;

			for (gint j = 0; j < n; j++)
				present |= list[j] == want;
			g_assert_true(present);
		}
		g_assert_cmpint(setuid(0), ==, -1);
		g_print("groups=%d\n", n);
		return;
	}

	if (!is_root()) {
		kl_test_skip("needs root to create users and groups");
		return;
	}
	groupadd = find_tool("groupadd");
	groupdel = find_tool("groupdel");
	useradd = find_tool("useradd");
	userdel = find_tool("userdel");
	if (groupadd == NULL || groupdel == NULL || useradd == NULL || userdel == NULL) {
		kl_test_skip("groupadd/useradd/groupdel/userdel not available");
		return;
	}

	/* the first group is the primary one, the others supplementary */
	for (guint i = 0; i < N_EXTRA_GROUPS && ok; i++) {
		gchar *name = g_strdup_printf("kltest-%d-%u", pid, i);
		const gchar *argv[] = { groupadd, name, NULL };

		if (!run_tool(argv)) {
			g_free(name);
			ok = FALSE;
			break;
		}
		g_ptr_array_add(groups, name);
		if (i > 0)
			g_string_append_printf(members, "%s%s", members->len > 0 ? "," : "", name);
	}
	user = g_strdup_printf("kltest-%d-u", pid);
	if (ok) {
		const gchar *argv[] = { useradd,
					"-M",
					"-N",
					"-d",
					"/nonexistent",
					"-s",
					"/usr/sbin/nologin",
					"-g",
					g_ptr_array_index(groups, 0),
					"-G",
					members->str,
					user,
					NULL };

		ok = run_tool(argv);
		user_created = ok;
	}

	if (ok) {
		g_autoptr(GString) gids = g_string_new(NULL);

		for (guint i = 0; i < groups->len; i++) {
			struct group *gr = getgrnam(g_ptr_array_index(groups, i));

			if (gr == NULL) {
				listed = FALSE;
				break;
			}
			g_string_append_printf(gids, "%s%u", i > 0 ? "," : "", (guint)gr->gr_gid);
		}
		if (listed) {
			run_as =
			    g_strdup_printf("%s:%s", user, (gchar *)g_ptr_array_index(groups, 0));
			g_setenv("KL_TEST_MANY_GROUPS_RUN_AS", run_as, TRUE);
			g_setenv("KL_TEST_MANY_GROUPS_GIDS", gids->str, TRUE);
			g_test_trap_subprocess(NULL, 0, 0);
			g_unsetenv("KL_TEST_MANY_GROUPS_RUN_AS");
			g_unsetenv("KL_TEST_MANY_GROUPS_GIDS");
		}
	}

	/* clean up before asserting, so a failure leaves no users or groups behind */
	if (user_created) {
		const gchar *argv[] = { userdel, user, NULL };

		cleaned &= run_tool(argv);
	}
	for (guint i = groups->len; i > 0; i--) {
		const gchar *argv[] = { groupdel, g_ptr_array_index(groups, i - 1), NULL };

		cleaned &= run_tool(argv);
	}
	g_assert_true(cleaned);
	if (groups->len > 0)
		g_assert_null(getgrnam(g_ptr_array_index(groups, 0)));
	g_assert_null(getpwnam(user));

	if (!ok) {
		kl_test_skip("could not create the test users and groups");
		return;
	}
	g_assert_true(listed);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*groups=" G_STRINGIFY(N_EXTRA_GROUPS) "*");
}

/* ---- keylime_dir check -------------------------------------------------------------------- */

static void
rm_rf(const gchar *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const gchar *name;

	if (dir != NULL) {
		g_chmod(path, 0700);
		while ((name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);

			rm_rf(child);
		}
	}
	g_remove(path);
}

static void
assert_dir_empty(const gchar *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);

	g_assert_nonnull(dir);
	g_assert_null(g_dir_read_name(dir));
}

static void
test_dir_writable(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("kltest-priv-XXXXXX", &error);

	g_assert_no_error(error);
	g_assert_true(kl_privileges_check_dir_writable(dir, &error));
	g_assert_no_error(error);
	/* the check leaves nothing behind */
	assert_dir_empty(dir);
	rm_rf(dir);
}

static void
test_dir_missing(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("kltest-priv-XXXXXX", &error);
	g_autofree gchar *missing = g_build_filename(dir, "keylime", NULL);
	g_autofree gchar *file = g_build_filename(dir, "file", NULL);
	g_autofree gchar *quoted = NULL;

	g_assert_no_error(error);
	g_assert_false(kl_privileges_check_dir_writable(missing, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	quoted = g_strdup_printf("'%s'", missing);
	g_assert_nonnull(strstr(error->message, quoted));
	g_assert_nonnull(strstr(error->message, "mkdir -p"));
	g_assert_nonnull(strstr(error->message, "chown"));
	g_clear_error(&error);

	g_assert_true(g_file_set_contents(file, "x", 1, &error));
	g_assert_false(kl_privileges_check_dir_writable(file, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_free(quoted);
	quoted = g_strdup_printf("'%s'", file);
	g_assert_nonnull(strstr(error->message, quoted));
	g_assert_nonnull(strstr(error->message, "not a directory"));
	rm_rf(dir);
}

static void
assert_read_only_rejected(const gchar *ro, const gchar *owner)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *quoted = g_strdup_printf("'%s'", ro);

	g_assert_false(kl_privileges_check_dir_writable(ro, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, quoted));
	g_assert_nonnull(strstr(error->message, "chmod 0700"));
	if (owner != NULL) {
		g_autofree gchar *chown = g_strdup_printf("chown %s %s", owner, ro);

		g_assert_nonnull(strstr(error->message, chown));
	}
	assert_dir_empty(ro);
}

static void
test_dir_read_only(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *run_as = NULL;
	g_autofree gchar *base = NULL;
	g_autofree gchar *ro = NULL;
	g_autofree gchar *rw = NULL;
	uid_t uid;
	gid_t gid;

	if (!is_root()) {
		base = g_dir_make_tmp("kltest-priv-XXXXXX", &error);
		g_assert_no_error(error);
		ro = g_build_filename(base, "ro", NULL);
		g_assert_cmpint(g_mkdir(ro, 0500), ==, 0);
		g_assert_cmpint(g_chmod(ro, 0500), ==, 0);
		if (access(ro, W_OK) == 0) {
			rm_rf(base);
			kl_test_skip("this user can write to a 0500 directory (capabilities)");
			return;
		}
		assert_read_only_rejected(ro, NULL);
		rm_rf(base);
		return;
	}
	if (!nobody_run_as(&run_as, &uid, &gid)) {
		kl_test_skip("no user 'nobody' with a primary group");
		return;
	}
	if (g_test_subprocess()) {
		const gchar *dir = g_getenv("KL_TEST_DIR");

		g_assert_nonnull(dir);
		ro = g_build_filename(dir, "ro", NULL);
		rw = g_build_filename(dir, "rw", NULL);
		/* root bypasses permissions: check as the dropped user */
		g_assert_true(kl_privileges_drop(run_as, &error));
		g_assert_no_error(error);
		g_assert_true(kl_privileges_check_dir_writable(rw, &error));
		g_assert_no_error(error);
		assert_dir_empty(rw);
		assert_read_only_rejected(ro, run_as);
		g_print("checked\n");
		return;
	}

	/* under /tmp, which the dropped user can traverse (TMPDIR might not be) */
	base = g_strdup("/tmp/kltest-priv-XXXXXX");
	g_assert_nonnull(g_mkdtemp_full(base, 0755));
	g_assert_cmpint(g_chmod(base, 0755), ==, 0);
	ro = g_build_filename(base, "ro", NULL);
	rw = g_build_filename(base, "rw", NULL);
	g_assert_cmpint(g_mkdir(ro, 0500), ==, 0);
	g_assert_cmpint(g_mkdir(rw, 0700), ==, 0);
	g_assert_cmpint(chown(ro, uid, gid), ==, 0);
	g_assert_cmpint(chown(rw, uid, gid), ==, 0);
	g_assert_cmpint(g_chmod(ro, 0500), ==, 0);

	g_setenv("KL_TEST_DIR", base, TRUE);
	g_test_trap_subprocess(NULL, 0, 0);
	g_unsetenv("KL_TEST_DIR");
	rm_rf(base);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("*checked*");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/privileges/parse/names", test_parse_names);
	g_test_add_func("/privileges/parse/numeric", test_parse_numeric);
	g_test_add_func("/privileges/parse/missing-group", test_parse_missing_group);
	g_test_add_func("/privileges/parse/unknown", test_parse_unknown);
	g_test_add_func("/privileges/parse/empty", test_parse_empty);
	g_test_add_func("/privileges/drop/to-nobody", test_drop_to_nobody);
	g_test_add_func("/privileges/drop/not-root", test_drop_not_root);
	g_test_add_func("/privileges/drop/capabilities-not-root", test_drop_capabilities_not_root);
	g_test_add_func("/privileges/drop/empty-as-root", test_drop_empty_as_root);
	g_test_add_func("/privileges/drop/unknown-user", test_drop_unknown_user);
	g_test_add_func("/privileges/drop/many-groups", test_drop_many_groups);
	g_test_add_func("/privileges/dir/writable", test_dir_writable);
	g_test_add_func("/privileges/dir/missing", test_dir_missing);
	g_test_add_func("/privileges/dir/read-only", test_dir_read_only);

	return g_test_run();
}
