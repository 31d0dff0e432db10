/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Dropping root privileges to the `run_as` user and group, and checking that
 * the unprivileged user can still use the directories it needs.
 *
 * Order in the agent: parse the command line and the configuration as
 * whoever started the agent (kl_privileges_parse_run_as() there, so that an
 * unknown user or group is reported before anything is touched), open the
 * TPM and start the plugins (the IMA and UEFI logs need root), then
 * kl_privileges_drop(), then kl_privileges_check_dir_writable(keylime_dir),
 * then every file write under keylime_dir and all networking. Open file
 * descriptors (the TPM device, the logs) stay usable across the drop.
 */
#pragma once

#include <sys/types.h>

#include <glib.h>

G_BEGIN_DECLS

/**
 * kl_privileges_parse_run_as:
 * @run_as: "user:group"; each part a name or a numeric id. "" or %NULL: no drop.
 * @uid: (out) (optional): the user id, (uid_t) -1 for ""
 * @gid: (out) (optional): the group id, (gid_t) -1 for ""
 *
 * Names are looked up in the user and group databases (a part that is not a
 * known name but all digits is taken as a numeric id). An unknown user or
 * group, a missing part or more than two parts give a %KL_ERROR_CONFIG error
 * naming the value.
 */
gboolean
kl_privileges_parse_run_as(const gchar *run_as, uid_t *uid, gid_t *gid, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_privileges_check_readable_by:
 * @path: a file the agent reads after dropping privileges (a CA file)
 * @run_as: the `run_as` option ("" or not root: the current user)
 *
 * Checks from the permission bits (owner, group, supplementary groups of the
 * user, others; search permission on every parent directory) that the
 * @run_as user can read @path. Root with an unusable default run_as counts as
 * root. ACLs are not evaluated. The error names the file, the user and the fix.
 */
gboolean
kl_privileges_check_readable_by(const gchar *path,
				const gchar *run_as,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_privileges_drop:
 * @run_as: the `run_as` option
 *
 * Not root (effective uid != 0): @run_as is ignored (debug message); any
 * capabilities the process was started with (the systemd unit grants
 * CAP_DAC_READ_SEARCH for the event logs) are dropped, TRUE.
 * Root with an empty @run_as: one warning that the agent keeps running as
 * root, TRUE. Root otherwise: the user and group must exist; the supplementary
 * groups become the user's groups (getgrouplist() with @run_as's group, no
 * limit on their number), then setgid() and setuid(). Afterwards the real,
 * effective and saved ids are verified, and setuid(0) must fail.
 *
 * On failure (%KL_ERROR_CONFIG, with a hint for the operator) the process may
 * be left partly dropped: the caller must exit.
 */
gboolean
kl_privileges_drop(const gchar *run_as, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_privileges_check_dir_writable:
 * @path: a directory, normally keylime_dir
 *
 * Checks as the current (effective) user that @path exists, is a directory,
 * and that files can be created in it. The error names the path and the fix
 * (mkdir, chown, chmod): %KL_ERROR_NOT_FOUND if it does not exist,
 * %KL_ERROR_CONFIG otherwise.
 */
gboolean
kl_privileges_check_dir_writable(const gchar *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
