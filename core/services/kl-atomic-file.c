/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Atomic writes of small files (agent_data.json, the generated agent id):
 * temporary file, fsync, rename, fsync of the directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "keylime-agent/kl-error.h"
#include "kl-atomic-file.h"

static gboolean
kl_tpm_write_all(int fd, const gchar *data, gsize len)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

gboolean
kl_tpm_write_file_atomic(const gchar *path, const gchar *data, gsize len, int mode, GError **error)
{
	g_autofree gchar *dir = g_path_get_dirname(path);
	g_autofree gchar *tmp = g_strdup_printf("%s.XXXXXX", path);
	gboolean ok;
	int saved;
	int fd;
	int dfd;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
	if (fd < 0) {
		saved = errno;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot create a temporary file next to %s: %s; check that the "
			    "directory exists and is writable by the agent",
			    path,
			    g_strerror(saved));
		return FALSE;
	}
	/* the mode must not depend on the umask */
	ok = fchmod(fd, mode) == 0 && kl_tpm_write_all(fd, data, len) && fsync(fd) == 0;
	saved = errno;
	if (close(fd) != 0 && ok) {
		ok = FALSE;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = FALSE;
		saved = errno;
	}
	if (!ok) {
		(void)g_unlink(tmp);
		g_set_error(
		    error, KL_ERROR, KL_ERROR_IO, "cannot write %s: %s", path, g_strerror(saved));
		return FALSE;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return TRUE;
}
