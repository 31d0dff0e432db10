/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Privilege dropping to the `run_as` user and group.
 *
 * Unlike a fixed-size getgrouplist() buffer, the supplementary group list is
 * grown to whatever size the user database reports, so a user in many groups
 * keeps all of them and setgroups() never reads past the array.
 */
#include "config.h"

/* getresuid(), getresgid() */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
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

/* first guess for getgrouplist(); grown as needed */
#define KL_PRIV_GROUPS_INITIAL 16
/* bounds for the retry loops: the databases can change between two calls */
#define KL_PRIV_GROUPS_MAX_ATTEMPTS 16
#define KL_PRIV_GROUPS_HARD_MAX	    (1 << 20)
#define KL_PRIV_DB_BUFFER_INITIAL   1024
#define KL_PRIV_DB_BUFFER_MAX	    (16 * 1024 * 1024)

#define KL_PRIV_USER_HINT                                                                          \
	"create it (e.g. useradd --system --no-create-home --shell /usr/sbin/nologin %s) and add " \
	"it to group 'tss' for /dev/tpmrm0 access, or set run_as to an existing \"user:group\""

typedef struct {
	uid_t uid;
	gid_t gid;
	gchar *user_name;  /* NULL: a numeric id without a database entry */
	gchar *group_name; /* NULL: a numeric id without a database entry */
} KlRunAs;

static void
kl_run_as_clear(KlRunAs *ra)
{
	g_clear_pointer(&ra->user_name, g_free);
	g_clear_pointer(&ra->group_name, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KlRunAs, kl_run_as_clear)

/* errors of get*_r() that mean "no such entry" (getpwnam_r(3)) */
static gboolean
kl_priv_errno_is_not_found(int rc)
{
	return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM;
}

static gsize
kl_priv_db_buffer_size(int sysconf_name)
{
	long n = sysconf(sysconf_name);

	return n > 0 && n < KL_PRIV_DB_BUFFER_MAX ? (gsize)n : KL_PRIV_DB_BUFFER_INITIAL;
}

/* one get{pw,gr}{nam,uid,gid}_r() call into @buf; returns its error number */
typedef int (*KlPrivDbFunc)(gpointer data, gchar *buf, gsize size, gboolean *found);

/*
 * Runs @func with a growing buffer until the database answers: TRUE with
 * *found, or FALSE with the error number in *rc. EINTR is retried, ERANGE
 * doubles the buffer (up to KL_PRIV_DB_BUFFER_MAX).
 */
static gboolean
kl_priv_db_query(int sysconf_name, KlPrivDbFunc func, gpointer data, gboolean *found, int *rc)
{
	gsize size = kl_priv_db_buffer_size(sysconf_name);

	for (;;) {
		g_autofree gchar *buf = g_malloc(size);

		*found = FALSE;
		*rc = func(data, buf, size, found);
		if (*rc == EINTR)
			continue;
		if (*rc == ERANGE && size < KL_PRIV_DB_BUFFER_MAX) {
			size *= 2;
			continue;
		}
		if (*rc == 0 && *found)
			return TRUE;
		if (kl_priv_errno_is_not_found(*rc)) {
			*found = FALSE;
			return TRUE;
		}
		return FALSE;
	}
}

typedef struct {
	const gchar *name;
	uid_t uid;
	gid_t gid;
	gchar *found_name;
} KlPrivDbQuery;

static int
kl_priv_getpw_cb(gpointer data, gchar *buf, gsize size, gboolean *found)
{
	KlPrivDbQuery *q = data;
	struct passwd pwd;
	struct passwd *result = NULL;
	int rc;

	if (q->name != NULL)
		rc = getpwnam_r(q->name, &pwd, buf, size, &result);
	else
		rc = getpwuid_r(q->uid, &pwd, buf, size, &result);
	if (rc == 0 && result != NULL) {
		*found = TRUE;
		q->uid = pwd.pw_uid;
		q->gid = pwd.pw_gid;
		q->found_name = g_strdup(pwd.pw_name);
	}
	return rc;
}

static int
kl_priv_getgr_cb(gpointer data, gchar *buf, gsize size, gboolean *found)
{
	KlPrivDbQuery *q = data;
	struct group grp;
	struct group *result = NULL;
	int rc;

	if (q->name != NULL)
		rc = getgrnam_r(q->name, &grp, buf, size, &result);
	else
		rc = getgrgid_r(q->gid, &grp, buf, size, &result);
	if (rc == 0 && result != NULL) {
		*found = TRUE;
		q->gid = grp.gr_gid;
		q->found_name = g_strdup(grp.gr_name);
	}
	return rc;
}

/*
 * Looks up a user by name (@name != NULL) or by @uid. *found tells whether it
 * exists; FALSE only if the database itself failed.
 */
static gboolean
kl_priv_lookup_user(const gchar *name,
		    uid_t uid,
		    gboolean *found,
		    uid_t *out_uid,
		    gid_t *out_gid,
		    gchar **out_name,
		    GError **error)
{
	KlPrivDbQuery q = { .name = name, .uid = uid };
	int rc = 0;

	if (!kl_priv_db_query(_SC_GETPW_R_SIZE_MAX, kl_priv_getpw_cb, &q, found, &rc)) {
		if (name != NULL)
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Looking up user '%s' failed: %s; check the user database "
				    "(/etc/passwd, /etc/nsswitch.conf)",
				    name,
				    g_strerror(rc));
		else
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Looking up user id %u failed: %s; check the user database "
				    "(/etc/passwd, /etc/nsswitch.conf)",
				    (guint)uid,
				    g_strerror(rc));
		return FALSE;
	}
	if (*found) {
		if (out_uid != NULL)
			*out_uid = q.uid;
		if (out_gid != NULL)
			*out_gid = q.gid;
		if (out_name != NULL)
			*out_name = g_steal_pointer(&q.found_name);
	}
	g_free(q.found_name);
	return TRUE;
}

/* as kl_priv_lookup_user(), for groups */
static gboolean
kl_priv_lookup_group(
    const gchar *name, gid_t gid, gboolean *found, gid_t *out_gid, gchar **out_name, GError **error)
{
	KlPrivDbQuery q = { .name = name, .gid = gid };
	int rc = 0;

	if (!kl_priv_db_query(_SC_GETGR_R_SIZE_MAX, kl_priv_getgr_cb, &q, found, &rc)) {
		if (name != NULL)
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Looking up group '%s' failed: %s; check the group database "
				    "(/etc/group, /etc/nsswitch.conf)",
				    name,
				    g_strerror(rc));
		else
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Looking up group id %u failed: %s; check the group database "
				    "(/etc/group, /etc/nsswitch.conf)",
				    (guint)gid,
				    g_strerror(rc));
		return FALSE;
	}
	if (*found) {
		if (out_gid != NULL)
			*out_gid = q.gid;
		if (out_name != NULL)
			*out_name = g_steal_pointer(&q.found_name);
	}
	g_free(q.found_name);
	return TRUE;
}

/* a numeric id: digits only, below (id_t) -1 */
static gboolean
kl_priv_parse_id(const gchar *s, guint32 *id)
{
	guint64 v = 0;

	for (const gchar *p = s; *p != '\0'; p++) {
		if (!g_ascii_isdigit(*p))
			return FALSE;
	}
	if (!g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT32 - 1, &v, NULL))
		return FALSE;
	*id = (guint32)v;
	return TRUE;
}

/* "user:group" -> ids and names; run_as must not be empty */
static gboolean
kl_priv_resolve(const gchar *run_as, KlRunAs *ra, GError **error)
{
	g_autofree gchar *copy = g_strstrip(g_strdup(run_as));
	g_auto(GStrv) parts = g_strsplit(copy, ":", -1);
	const gchar *user;
	const gchar *group;
	gboolean found = FALSE;
	guint32 id = 0;

	if (g_strv_length(parts) != 2 || g_strstrip(parts[0])[0] == '\0' ||
	    g_strstrip(parts[1])[0] == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Invalid run_as \"%s\": expected \"user:group\" (names or numeric ids, "
			    "e.g. \"keylime:tss\"), or \"\" to keep the current user",
			    run_as);
		return FALSE;
	}
	user = parts[0];
	group = parts[1];

	/* a user name first (as chown does), then a numeric id */
	if (!kl_priv_lookup_user(user, 0, &found, &ra->uid, NULL, &ra->user_name, error))
		return FALSE;
	if (!found) {
		if (!kl_priv_parse_id(user, &id)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "User '%s' of run_as \"%s\" does not exist: " KL_PRIV_USER_HINT,
				    user,
				    run_as,
				    user);
			return FALSE;
		}
		ra->uid = (uid_t)id;
		if (!kl_priv_lookup_user(NULL, ra->uid, &found, NULL, NULL, &ra->user_name, error))
			return FALSE;
	}

	if (!kl_priv_lookup_group(group, 0, &found, &ra->gid, &ra->group_name, error))
		return FALSE;
	if (!found) {
		if (!kl_priv_parse_id(group, &id)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Group '%s' of run_as \"%s\" does not exist: create it "
				    "(groupadd --system %s) or set run_as to an existing "
				    "\"user:group\" (the group should be able to use the TPM, "
				    "normally 'tss')",
				    group,
				    run_as,
				    group);
			return FALSE;
		}
		ra->gid = (gid_t)id;
		if (!kl_priv_lookup_group(NULL, ra->gid, &found, NULL, &ra->group_name, error))
			return FALSE;
	}
	return TRUE;
}

static gboolean
kl_priv_run_as_is_empty(const gchar *run_as)
{
	if (run_as == NULL)
		return TRUE;
	for (const gchar *p = run_as; *p != '\0'; p++) {
		if (!g_ascii_isspace(*p))
			return FALSE;
	}
	return TRUE;
}

gboolean
kl_privileges_parse_run_as(const gchar *run_as, uid_t *uid, gid_t *gid, GError **error)
{
	g_auto(KlRunAs) ra = { 0 };

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (kl_priv_run_as_is_empty(run_as)) {
		if (uid != NULL)
			*uid = (uid_t)-1;
		if (gid != NULL)
			*gid = (gid_t)-1;
		return TRUE;
	}
	if (!kl_priv_resolve(run_as, &ra, error))
		return FALSE;
	if (uid != NULL)
		*uid = ra.uid;
	if (gid != NULL)
		*gid = ra.gid;
	return TRUE;
}

/*
 * The supplementary groups of @user with @gid included, in a buffer grown to
 * the size getgrouplist() asks for (no fixed limit).
 */
static gid_t *
kl_priv_get_group_list(const gchar *user, gid_t gid, gint *n_groups, GError **error)
{
	g_autofree gid_t *groups = NULL;
	gint size = KL_PRIV_GROUPS_INITIAL;

	for (guint attempt = 0; attempt < KL_PRIV_GROUPS_MAX_ATTEMPTS; attempt++) {
		int n = size;

		groups = g_renew(gid_t, groups, size);
		if (getgrouplist(user, gid, groups, &n) >= 0) {
			*n_groups = n;
			return g_steal_pointer(&groups);
		}
		/* n is the number needed now; the database may have grown meanwhile */
		if (n > size)
			size = n;
		else
			size *= 2;
		if (size > KL_PRIV_GROUPS_HARD_MAX)
			break;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "Cannot list the groups of user '%s' (more than %d, or the group database "
		    "keeps changing); reduce the user's group memberships",
		    user,
		    size);
	return NULL;
}

/* the permitted capabilities must be gone after the uid change */
static gboolean
kl_priv_has_capabilities(void)
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &header, data) != 0)
		return FALSE; /* cannot tell; the setuid(0) check still applies */
	for (guint i = 0; i < G_N_ELEMENTS(data); i++) {
		if (data[i].permitted != 0 || data[i].effective != 0)
			return TRUE;
	}
	return FALSE;
}

/*
 * Not root, but with capabilities (the systemd unit grants CAP_DAC_READ_SEARCH
 * to open the event logs): clear the ambient set, then the permitted and
 * effective sets. Open file descriptors stay usable.
 */
static gboolean
kl_priv_drop_capabilities(GError **error)
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int errsv;

	if (!kl_priv_has_capabilities())
		return TRUE;
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &header, data) != 0) {
		errsv = errno;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "cannot drop the capabilities the agent was started with (%s); allow "
			    "the capset system call (systemd: SystemCallFilter=capset)",
			    g_strerror(errsv));
		return FALSE;
	}
	g_debug("capabilities dropped after start-up");
	return TRUE;
}

static gboolean
kl_priv_verify(const KlRunAs *ra, gint n_groups, GError **error)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	int saved_errno;

	if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Cannot read the process ids after dropping privileges: %s",
			    g_strerror(errno));
		return FALSE;
	}
	if (ruid != ra->uid || euid != ra->uid || suid != ra->uid) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Dropping privileges to user '%s' left uid %u, euid %u, saved uid %u "
			    "(expected %u)",
			    ra->user_name,
			    (guint)ruid,
			    (guint)euid,
			    (guint)suid,
			    (guint)ra->uid);
		return FALSE;
	}
	if (rgid != ra->gid || egid != ra->gid || sgid != ra->gid) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Dropping privileges to group '%s' left gid %u, egid %u, saved gid %u "
			    "(expected %u)",
			    ra->group_name,
			    (guint)rgid,
			    (guint)egid,
			    (guint)sgid,
			    (guint)ra->gid);
		return FALSE;
	}
	if (getgroups(0, NULL) != n_groups) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Dropping privileges: the process has %d supplementary groups, "
			    "expected the %d groups of user '%s'",
			    getgroups(0, NULL),
			    n_groups,
			    ra->user_name);
		return FALSE;
	}
	/* root must be out of reach now */
	errno = 0;
	if (setuid(0) == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "After dropping privileges to user '%s', setuid(0) still succeeds; "
			    "the agent refuses to continue",
			    ra->user_name);
		return FALSE;
	}
	saved_errno = errno;
	if (saved_errno != EPERM) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "After dropping privileges to user '%s', setuid(0) failed with an "
			    "unexpected error (%s) instead of EPERM",
			    ra->user_name,
			    g_strerror(saved_errno));
		return FALSE;
	}
	if (ra->gid != 0 && setgid(0) == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "After dropping privileges to group '%s', setgid(0) still succeeds; "
			    "the agent refuses to continue",
			    ra->group_name);
		return FALSE;
	}
	if (kl_priv_has_capabilities()) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "After dropping privileges to user '%s', the process still holds "
			    "capabilities; check for file capabilities or securebits set on the "
			    "agent",
			    ra->user_name);
		return FALSE;
	}
	return TRUE;
}

gboolean
kl_privileges_drop(const gchar *run_as, GError **error)
{
	g_auto(KlRunAs) ra = { 0 };
	g_autofree gid_t *groups = NULL;
	gint n_groups = 0;
	long ngroups_max;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (geteuid() != 0) {
		if (!kl_priv_run_as_is_empty(run_as))
			g_debug("Not running as root (uid %u): run_as \"%s\" is ignored",
				(guint)geteuid(),
				run_as);
		return kl_priv_drop_capabilities(error);
	}
	if (kl_priv_run_as_is_empty(run_as)) {
		g_warning("run_as is empty: the agent keeps running as root with all privileges; "
			  "set run_as (e.g. \"keylime:tss\") to drop them after start-up");
		return TRUE;
	}

	/* both must exist before anything changes */
	if (!kl_priv_resolve(run_as, &ra, error))
		return FALSE;
	if (ra.user_name == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "User id %u of run_as \"%s\" has no entry in the user database, so its "
			    "groups cannot be found: create the user (useradd --system) or set "
			    "run_as to an existing \"user:group\"",
			    (guint)ra.uid,
			    run_as);
		return FALSE;
	}
	if (ra.group_name == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Group id %u of run_as \"%s\" has no entry in the group database: "
			    "create the group or set run_as to an existing \"user:group\"",
			    (guint)ra.gid,
			    run_as);
		return FALSE;
	}
	if (ra.uid == 0) {
		g_warning("run_as \"%s\" names the root user: the agent keeps running as root "
			  "with all privileges; set run_as to an unprivileged user (e.g. "
			  "\"keylime:tss\")",
			  run_as);
		return TRUE;
	}

	groups = kl_priv_get_group_list(ra.user_name, ra.gid, &n_groups, error);
	if (groups == NULL)
		return FALSE;
	ngroups_max = sysconf(_SC_NGROUPS_MAX);
	if (ngroups_max > 0 && n_groups > ngroups_max) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "User '%s' belongs to %d groups, more than the kernel allows (%ld); "
			    "remove the user from groups it does not need",
			    ra.user_name,
			    n_groups,
			    ngroups_max);
		return FALSE;
	}

	if (setgroups((size_t)n_groups, groups) != 0) {
		int e = errno;

		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Cannot set the %d supplementary groups of user '%s': %s; the agent "
			    "needs CAP_SETGID for run_as (start it as root, and do not restrict "
			    "its capabilities below CAP_SETUID and CAP_SETGID)",
			    n_groups,
			    ra.user_name,
			    g_strerror(e));
		return FALSE;
	}
	if (setgid(ra.gid) != 0) {
		int e = errno;

		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Cannot switch to group '%s' (%u): %s; the agent needs CAP_SETGID for "
			    "run_as",
			    ra.group_name,
			    (guint)ra.gid,
			    g_strerror(e));
		return FALSE;
	}
	/* capabilities must not survive the uid change */
	(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (setuid(ra.uid) != 0) {
		int e = errno;

		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Cannot switch to user '%s' (%u): %s; the agent needs CAP_SETUID for "
			    "run_as%s",
			    ra.user_name,
			    (guint)ra.uid,
			    g_strerror(e),
			    e == EAGAIN ? " (and the user has reached its process limit, "
					  "RLIMIT_NPROC)"
					: "");
		return FALSE;
	}
	if (!kl_priv_verify(&ra, n_groups, error))
		return FALSE;

	g_info("Dropped privileges to user '%s' (%u), group '%s' (%u), %d supplementary groups",
	       ra.user_name,
	       (guint)ra.uid,
	       ra.group_name,
	       (guint)ra.gid,
	       n_groups);
	return TRUE;
}

/* "name" of the effective user and group, for hints; numeric if unknown */
static gchar *
kl_priv_current_owner(void)
{
	g_autofree gchar *user = NULL;
	g_autofree gchar *group = NULL;
	gboolean found = FALSE;

	if (!kl_priv_lookup_user(NULL, geteuid(), &found, NULL, NULL, &user, NULL) || !found)
		user = g_strdup_printf("%u", (guint)geteuid());
	if (!kl_priv_lookup_group(NULL, getegid(), &found, NULL, &group, NULL) || !found)
		group = g_strdup_printf("%u", (guint)getegid());
	return g_strdup_printf("%s:%s", user, group);
}

gboolean
kl_privileges_check_dir_writable(const gchar *path, GError **error)
{
	g_autofree gchar *owner = NULL;
	g_autofree gchar *probe = NULL;
	GStatBuf st;
	int fd;
	int e;

	g_return_val_if_fail(path != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	owner = kl_priv_current_owner();
	if (g_stat(path, &st) != 0) {
		e = errno;
		if (e == ENOENT)
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_FOUND,
				    "Directory '%s' does not exist; create it for the agent's "
				    "user: mkdir -p %s && chown %s %s && chmod 0700 %s",
				    path,
				    path,
				    owner,
				    path,
				    path);
		else
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Cannot access directory '%s' as %s: %s; every parent "
				    "directory must be searchable by that user (chmod o+x or a "
				    "fitting owner)",
				    path,
				    owner,
				    g_strerror(e));
		return FALSE;
	}
	if (!S_ISDIR(st.st_mode)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "'%s' is not a directory; remove it and create a directory for the "
			    "agent's user: mkdir -p %s && chown %s %s && chmod 0700 %s",
			    path,
			    path,
			    owner,
			    path,
			    path);
		return FALSE;
	}

	/* try it: permission bits, ACLs, read-only mounts and LSMs all count */
	probe = g_build_filename(path, ".kl-write-check-XXXXXX", NULL);
	fd = g_mkstemp_full(probe, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		if (e == EROFS)
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Directory '%s' is on a read-only file system; make it "
				    "writable (with systemd ProtectSystem=, add "
				    "ReadWritePaths=%s)",
				    path,
				    path);
		else
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "Directory '%s' is not writable by %s (%s); fix it with: "
				    "chown %s %s && chmod 0700 %s",
				    path,
				    owner,
				    g_strerror(e),
				    owner,
				    path,
				    path);
		return FALSE;
	}
	g_close(fd, NULL);
	if (g_unlink(probe) != 0) {
		e = errno;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "Cannot remove the test file '%s' in directory '%s' as %s: %s; check "
			    "the directory's permissions (sticky bit, ownership)",
			    probe,
			    path,
			    owner,
			    g_strerror(e));
		return FALSE;
	}
	return TRUE;
}

/* the user may read (@want = R_OK) or search (X_OK) @st */
static gboolean
kl_privileges_may(const struct stat *st, uid_t uid, const gid_t *groups, int ngroups, int want)
{
	mode_t user = want == R_OK ? S_IRUSR : S_IXUSR;
	mode_t group = want == R_OK ? S_IRGRP : S_IXGRP;
	mode_t other = want == R_OK ? S_IROTH : S_IXOTH;

	if (uid == 0)
		return want == R_OK || (st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0 ||
		       S_ISDIR(st->st_mode);
	if (st->st_uid == uid)
		return (st->st_mode & user) != 0;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == st->st_gid)
			return (st->st_mode & group) != 0;
	return (st->st_mode & other) != 0;
}

gboolean
kl_privileges_check_readable_by(const gchar *path, const gchar *run_as, GError **error)
{
	g_autofree gchar *abs = NULL;
	g_autofree gid_t *groups = NULL;
	g_autofree gchar *user = NULL;
	struct passwd *pw;
	struct stat st;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int ngroups = 0;

	if (path == NULL || path[0] == '\0')
		return TRUE;
	if (uid == 0 && run_as != NULL && run_as[0] != '\0' &&
	    !kl_privileges_parse_run_as(run_as, &uid, &gid, NULL)) {
		uid = 0; /* the default run_as does not exist: the agent stays root */
		gid = 0;
	}
	pw = getpwuid(uid);
	user = pw != NULL ? g_strdup(pw->pw_name) : g_strdup_printf("%u", (guint)uid);
	if (pw != NULL) {
		ngroups = 64;
		groups = g_new(gid_t, ngroups);
		if (getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0) {
			groups = g_renew(gid_t, groups, ngroups);
			if (getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0)
				ngroups = 0;
		}
	} else {
		ngroups = 1;
		groups = g_new(gid_t, 1);
		groups[0] = gid;
	}
	abs = g_canonicalize_filename(path, NULL);
	if (stat(abs, &st) != 0)
		return TRUE; /* a missing file is reported where it is used */
	if (!kl_privileges_may(&st, uid, groups, ngroups, R_OK)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s cannot be read by user %s (mode %04o, owner %u, group %u): make it "
			    "readable by that user or one of its groups (chgrp/chmod), or change "
			    "run_as",
			    abs,
			    user,
			    (guint)(st.st_mode & 07777),
			    (guint)st.st_uid,
			    (guint)st.st_gid);
		return FALSE;
	}
	for (gchar *dir = g_path_get_dirname(abs);;) {
		gboolean ok =
		    stat(dir, &st) != 0 || kl_privileges_may(&st, uid, groups, ngroups, X_OK);
		if (!ok) {
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s cannot be read by user %s: the directory %s is closed to it "
			    "(mode %04o): open it (chmod o+x or a group), or change run_as",
			    abs,
			    user,
			    dir,
			    (guint)(st.st_mode & 07777));
			g_free(dir);
			return FALSE;
		}
		if (g_strcmp0(dir, "/") == 0 || g_strcmp0(dir, ".") == 0) {
			g_free(dir);
			break;
		}
		{
			gchar *parent = g_path_get_dirname(dir);
			g_free(dir);
			dir = parent;
		}
	}
	return TRUE;
}
