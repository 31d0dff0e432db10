/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Atomic writes of small files (kl-atomic-file.c).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* atomic write of a small file (temp + fsync + rename + fsync dir) with @mode */
gboolean
kl_tpm_write_file_atomic(const gchar *path, const gchar *data, gsize len, int mode, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
