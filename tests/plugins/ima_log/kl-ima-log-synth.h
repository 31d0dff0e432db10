/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fast synthetic ima-ng lines for the ima_log tests and benchmark (the
 * digests are pseudo-random, not real template hashes: the reader only
 * checks the line shape). tests/tools/gen-logs.py writes logs with real hashes.
 */
#pragma once

#include <glib.h>
#include <stdio.h>

static inline guint64
kl_ima_log_synth_mix(guint64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* appends line @i ("10 <sha1> ima-ng sha256:<sha256> /usr/lib/kl-synth/<i>\n") */
static inline void
kl_ima_log_synth_line(GString *out, guint64 i)
{
	static const gchar hex[] = "0123456789abcdef";
	gchar line[256];
	gchar *p = line;
	guint64 r = kl_ima_log_synth_mix(i);

	*p++ = '1';
	*p++ = '0';
	*p++ = ' ';
	for (guint k = 0; k < 40; k++) {
		if (k % 16 == 0)
			r = kl_ima_log_synth_mix(r);
		*p++ = hex[(r >> ((k % 16) * 4)) & 0xf];
	}
	p += g_snprintf(p, 32, " ima-ng sha256:");
	for (guint k = 0; k < 64; k++) {
		if (k % 16 == 0)
			r = kl_ima_log_synth_mix(r);
		*p++ = hex[(r >> ((k % 16) * 4)) & 0xf];
	}
	p += g_snprintf(p, 64, " /usr/lib/kl-synth/%08" G_GUINT64_FORMAT "\n", i);
	g_string_append_len(out, line, p - line);
}

/* appends lines [@first, @first + @n) */
static inline void
kl_ima_log_synth_lines(GString *out, guint64 first, guint64 n)
{
	for (guint64 i = first; i < first + n; i++)
		kl_ima_log_synth_line(out, i);
}
