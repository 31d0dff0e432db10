/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Log writer: journald when stderr is connected to the journal
 * (JOURNAL_STREAM), otherwise one line per message on stderr.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-log.h"
#include "kl-string-put.h"

/* most verbose level printed; GLib levels grow in verbosity with their value */
static gint kl_log_threshold = G_LOG_LEVEL_INFO;
static gboolean kl_log_installed = FALSE;
static gboolean kl_log_use_journald = FALSE;
/*
 * G_MESSAGES_DEBUG, read when the level is set (or at the first message):
 * the environment does not change while the agent runs, and scanning it at
 * every message costs more than the message. Interned: never freed, so a
 * thread that read the old value keeps a valid string.
 */
static const gchar *kl_log_debug_domains;
static gint kl_log_debug_domains_read;

static void
kl_log_read_debug_env(void)
{
	const gchar *env = g_getenv("G_MESSAGES_DEBUG");

	g_atomic_pointer_set(&kl_log_debug_domains,
			     env != NULL && env[0] != '\0' ? g_intern_string(env) : NULL);
	g_atomic_int_set(&kl_log_debug_domains_read, TRUE);
}

static gboolean
kl_log_parse_level(const gchar *level, gint *threshold, GError **error)
{
	if (level == NULL || g_ascii_strcasecmp(level, "info") == 0) {
		*threshold = G_LOG_LEVEL_INFO;
	} else if (g_ascii_strcasecmp(level, "debug") == 0 ||
		   g_ascii_strcasecmp(level, "trace") == 0) {
		*threshold = G_LOG_LEVEL_DEBUG;
	} else if (g_ascii_strcasecmp(level, "warning") == 0 ||
		   g_ascii_strcasecmp(level, "warn") == 0) {
		*threshold = G_LOG_LEVEL_WARNING;
	} else if (g_ascii_strcasecmp(level, "error") == 0) {
		*threshold = G_LOG_LEVEL_CRITICAL;
	} else {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "unknown log level '%s'; expected error, warning, info or debug",
			    level);
		return FALSE;
	}
	return TRUE;
}

/* G_MESSAGES_DEBUG=all or a list of domains, as with GLib's own writer */
static gboolean
kl_log_debug_env_allows(const gchar *domain)
{
	const gchar *env;
	gsize domain_len;

	if (G_UNLIKELY(!g_atomic_int_get(&kl_log_debug_domains_read)))
		kl_log_read_debug_env();
	env = g_atomic_pointer_get(&kl_log_debug_domains);
	if (env == NULL)
		return FALSE;
	domain_len = domain != NULL ? strlen(domain) : 0;
	/* the words between spaces and commas, without copying them */
	for (const gchar *p = env; *p != '\0';) {
		gsize n = strcspn(p, " ,");

		if ((n == 3 && strncmp(p, "all", 3) == 0) ||
		    (domain != NULL && n == domain_len && strncmp(p, domain, n) == 0))
			return TRUE;
		p += n;
		if (*p != '\0')
			p++;
	}
	return FALSE;
}

gboolean
kl_log_is_enabled(GLogLevelFlags level, const gchar *domain)
{
	gint l = level & G_LOG_LEVEL_MASK;
	gint threshold = g_atomic_int_get(&kl_log_threshold);

	/* errors and criticals are always shown */
	if (l <= G_LOG_LEVEL_CRITICAL || (l & KL_LOG_LEVEL_FATAL) != 0)
		return TRUE;
	if (l == G_LOG_LEVEL_DEBUG) {
		/* the debug level enables the agent's own domains, not the libraries' */
		if (threshold >= G_LOG_LEVEL_DEBUG && domain != NULL &&
		    g_str_has_prefix(domain, "kl-"))
			return TRUE;
		return kl_log_debug_env_allows(domain);
	}
	if (l <= threshold)
		return TRUE;
	return kl_log_debug_env_allows(domain);
}

static const gchar *
kl_log_level_to_string(GLogLevelFlags level)
{
	switch (level & G_LOG_LEVEL_MASK) {
	case G_LOG_LEVEL_ERROR:
	case KL_LOG_LEVEL_FATAL:
		return "ERROR";
	case G_LOG_LEVEL_CRITICAL:
		return "CRITICAL";
	case G_LOG_LEVEL_WARNING:
		return "WARNING";
	case G_LOG_LEVEL_MESSAGE:
	case G_LOG_LEVEL_INFO:
		return "INFO";
	case G_LOG_LEVEL_DEBUG:
	default:
		return "DEBUG";
	}
}

/* @value as @width decimal digits, leading zeros */
static gchar *
kl_log_put_digits(gchar *p, guint value, guint width)
{
	for (guint i = width; i > 0; i--) {
		p[i - 1] = (gchar)('0' + value % 10);
		value /= 10;
	}
	return p + width;
}

/* "2024-05-01T12:34:56.789Z " (UTC, milliseconds) */
static void
kl_log_append_timestamp(GString *line)
{
	gint64 now = g_get_real_time();
	time_t seconds = (time_t)(now / G_USEC_PER_SEC);
	guint ms = (guint)(now % G_USEC_PER_SEC) / 1000;
	struct tm tm;
	gchar buf[32];
	gchar *p = buf;

	if (now < 0 || gmtime_r(&seconds, &tm) == NULL || tm.tm_year + 1900 > 9999) {
		g_string_append(line, "1970-01-01T00:00:00.000Z ");
		return;
	}
	p = kl_log_put_digits(p, (guint)(tm.tm_year + 1900), 4);
	*p++ = '-';
	p = kl_log_put_digits(p, (guint)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = kl_log_put_digits(p, (guint)tm.tm_mday, 2);
	*p++ = 'T';
	p = kl_log_put_digits(p, (guint)tm.tm_hour, 2);
	*p++ = ':';
	p = kl_log_put_digits(p, (guint)tm.tm_min, 2);
	*p++ = ':';
	p = kl_log_put_digits(p, (guint)tm.tm_sec, 2);
	*p++ = '.';
	p = kl_log_put_digits(p, ms, 3);
	*p++ = 'Z';
	*p++ = ' ';
	kl_string_put(line, buf, (gsize)(p - buf));
}

/* @message (@len bytes, -1: NUL-terminated) on one line: peers' data cannot forge log lines */
static void
kl_log_append_message(GString *line, const gchar *message, gssize len)
{
	const gchar *p = message != NULL ? message : "";
	const gchar *end = len >= 0 && message != NULL ? p + len : p + strlen(p);

	while (p < end) {
		const gchar *run = p;

		while (p < end && ((guchar)*p >= 0x20 || *p == '\t'))
			p++;
		kl_string_put(line, run, (gsize)(p - run));
		if (p >= end)
			break;
		if (*p == '\0')
			break;
		if (*p == '\n')
			g_string_append(line, "\\n");
		else if (*p == '\r')
			g_string_append(line, "\\r");
		else
			g_string_append_printf(line, "\\x%02x", (guint)(guchar)*p);
		p++;
	}
}

static void
kl_log_append_line(GString *line,
		   GLogLevelFlags level,
		   const gchar *domain,
		   const gchar *message,
		   gssize message_len,
		   gboolean timestamp)
{
	const gchar *level_name = kl_log_level_to_string(level);

	if (domain == NULL)
		domain = "default";
	if (timestamp)
		kl_log_append_timestamp(line);
	kl_string_put(line, level_name, strlen(level_name));
	kl_string_put(line, " ", 1);
	kl_string_put(line, domain, strlen(domain));
	kl_string_put(line, ": ", 2);
	kl_log_append_message(line, message, message_len);
	kl_string_put(line, "\n", 1);
}

gchar *
kl_log_format_line(GLogLevelFlags level,
		   const gchar *domain,
		   const gchar *message,
		   gboolean timestamp)
{
	GString *line = g_string_sized_new(128);

	kl_log_append_line(line, level, domain, message, -1, timestamp);
	return g_string_free(line, FALSE);
}

static GLogWriterOutput
kl_log_writer_cb(GLogLevelFlags log_level,
		 const GLogField *fields,
		 gsize n_fields,
		 gpointer user_data)
{
	const gchar *domain = NULL;
	const gchar *message = NULL;
	gssize message_len = -1;
	GString *line;

	for (gsize i = 0; i < n_fields; i++) {
		const gchar *key = fields[i].key;

		/* the first letter first: most fields are neither */
		if (key == NULL)
			continue;
		if (key[0] == 'G' && strcmp(key, "GLIB_DOMAIN") == 0) {
			domain = fields[i].value;
		} else if (key[0] == 'M' && message == NULL && strcmp(key, "MESSAGE") == 0) {
			message = fields[i].value;
			message_len = fields[i].length;
		}
	}
	if (!kl_log_is_enabled(log_level, domain))
		return G_LOG_WRITER_HANDLED;
	if (kl_log_use_journald) {
		/* GLib does not know the priority of kl_error(): an error (3) */
		g_autofree GLogField *copy = g_memdup2(fields, n_fields * sizeof(GLogField));
		for (gsize i = 0; i < n_fields; i++)
			if ((log_level & KL_LOG_LEVEL_FATAL) != 0 &&
			    g_strcmp0(copy[i].key, "PRIORITY") == 0) {
				copy[i].value = "3";
				copy[i].length = -1;
			}
		if (g_log_writer_journald(log_level, copy, n_fields, user_data) ==
		    G_LOG_WRITER_HANDLED)
			return G_LOG_WRITER_HANDLED;
	}
	line = g_string_sized_new(256);
	kl_log_append_line(line, log_level, domain, message, message_len, TRUE);
	fwrite(line->str, 1, line->len, stderr);
	g_string_free(line, TRUE);
	fflush(stderr);
	return G_LOG_WRITER_HANDLED;
}

gboolean
kl_log_set_level(const gchar *level, GError **error)
{
	gint threshold = 0;

	if (!kl_log_parse_level(level, &threshold, error))
		return FALSE;
	g_atomic_int_set(&kl_log_threshold, threshold);
	kl_log_read_debug_env();
	return TRUE;
}

gboolean
kl_log_init(const gchar *level, GError **error)
{
	if (!kl_log_set_level(level, error))
		return FALSE;
	/* GLib allows one writer per process */
	if (!kl_log_installed) {
		kl_log_use_journald = g_log_writer_is_journald(fileno(stderr));
		g_log_set_writer_func(kl_log_writer_cb, NULL, NULL);
		kl_log_installed = TRUE;
	}
	return TRUE;
}
