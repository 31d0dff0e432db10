/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Appending the short pieces of a log line or a status rendering (private to
 * the agent).
 */
#pragma once

#include <string.h>

#include <glib.h>

G_BEGIN_DECLS

/* g_string_append_len() without its checks, for short pieces */
static inline void
kl_string_put(GString *out, const gchar *text, gsize len)
{
	if (out->len + len >= out->allocated_len) {
		g_string_append_len(out, text, (gssize)len);
		return;
	}
	memcpy(out->str + out->len, text, len);
	out->len += len;
	out->str[out->len] = '\0';
}

G_END_DECLS
