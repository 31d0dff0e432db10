/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Start-up pieces shared by the composition root (main.c) and --check
 * (kl-check.c).
 */
#pragma once

#include <glib.h>

#include "kl-config.h"
#include "kl-http.h"
#include "kl-plugin-loader.h"

G_BEGIN_DECLS

/* @value, or NULL when it is NULL or empty */
const gchar *
kl_main_nonempty(const gchar *value);

/* http(s)://registrar_ip:port from registrar_ip, registrar_tls_enabled and the ports */
gchar *
kl_main_registrar_url(KlConfig *cfg);
/* an HTTP client with the TLS and timeout settings of @cfg */
KlHttp *
kl_main_http_new(KlConfig *cfg, const gchar *name, const gchar *ca_file, GError **error);
guint
kl_main_count_active(KlPluginLoader *loader);
/* plugin_dir: --plugin-dir, KEYLIME_AGENT_PLUGIN_DIR or the file; else the installed one */
const gchar *
kl_main_plugin_dir(KlConfig *cfg);
/*
 * enable_iak_idevid = true and no active iak_idevid plugin: the problem and its
 * fix (transfer full), or NULL.
 */
gchar *
kl_main_iak_problem(KlConfig *cfg, KlTpm *tpm, KlPluginLoader *loader);

G_END_DECLS
