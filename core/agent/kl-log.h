/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Logging through GLib structured logging: journald when started by systemd
 * (JOURNAL_STREAM), otherwise one line per message on stderr.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* installs the writer; @level: "error", "warning", "info" (default), "debug" */
gboolean
kl_log_init(const gchar *level, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* changes the level at run time */
gboolean
kl_log_set_level(const gchar *level, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* whether a message of @level from @domain is printed at the current level */
gboolean
kl_log_is_enabled(GLogLevelFlags level, const gchar *domain);

/*
 * One stderr line: "[TIMESTAMP ]LEVEL domain: message\n"; line breaks and
 * control characters in @message are escaped. (transfer full)
 */
gchar *
kl_log_format_line(GLogLevelFlags level,
		   const gchar *domain,
		   const gchar *message,
		   gboolean timestamp);

G_END_DECLS
