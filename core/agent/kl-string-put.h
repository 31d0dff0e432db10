/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Appending the short pieces of a log line or a status rendering, and
 * numbers in decimal without printf (private to the agent).
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

/* @value in decimal, two digits at a time, ending at @end (20 bytes of room before it): its first
 * digit */
static inline gchar *
kl_string_uint_digits(gchar *end, guint64 value)
{
	static const gchar pairs[] = "00010203040506070809101112131415161718192021222324"
				     "25262728293031323334353637383940414243444546474849"
				     "50515253545556575859606162636465666768697071727374"
				     "75767778798081828384858687888990919293949596979899";
	gchar *p = end;

	while (value >= 100) {
		guint i = (guint)(value % 100) * 2;

		value /= 100;
		p -= 2;
		p[0] = pairs[i];
		p[1] = pairs[i + 1];
	}
	if (value >= 10) {
		p -= 2;
		p[0] = pairs[value * 2];
		p[1] = pairs[value * 2 + 1];
	} else {
		*--p = (gchar)('0' + value);
	}
	return p;
}

/* @value in decimal */
static inline void
kl_string_put_uint(GString *out, guint64 value)
{
	gchar buf[20];
	gchar *p = kl_string_uint_digits(buf + sizeof buf, value);

	kl_string_put(out, p, (gsize)(buf + sizeof buf - p));
}

G_END_DECLS
