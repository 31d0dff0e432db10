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

G_END_DECLS
