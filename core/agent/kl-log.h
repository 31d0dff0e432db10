/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Logging through GLib structured logging: journald when started by systemd
 * (JOURNAL_STREAM), otherwise one line per message on stderr.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * A fatal condition (the agent exits, or cannot do its job until a person
 * acts): logged as ERROR, journald priority 3. GLib's own ERROR level aborts
 * and its CRITICAL level is for programming errors (fatal in the tests), so
 * this is a user-defined level.
 */
#define KL_LOG_LEVEL_FATAL ((GLogLevelFlags)(1 << G_LOG_LEVEL_USER_SHIFT))
#define kl_error(...)	   g_log(G_LOG_DOMAIN, KL_LOG_LEVEL_FATAL, __VA_ARGS__)

/*
 * installs the writer; @level: "error", "warning", "info" (default), "debug".
 * G_MESSAGES_DEBUG ("all" or a list of domains) shows the debug messages of
 * those domains too; it is read here and by kl_log_set_level(), not at every
 * message.
 */
gboolean
kl_log_init(const gchar *level, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* changes the level at run time (and reads G_MESSAGES_DEBUG again) */
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
