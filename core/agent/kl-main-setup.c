/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Start-up pieces shared by the composition root (main.c) and --check
 * (kl-check.c): the registrar URL, the HTTP clients, the plugin directory,
 * the active plugins.
 */
#include "config.h"

#include <string.h>

#include "kl-main-setup.h"
#include "kl-tpm-private.h"

const gchar *
kl_main_nonempty(const gchar *value)
{
	return value != NULL && value[0] != '\0' ? value : NULL;
}

/* ---- start-up pieces ---- */

gchar *
kl_main_registrar_url(KlConfig *cfg)
{
	const gchar *ip = kl_config_get_string(cfg, "registrar_ip");
	gboolean tls = kl_config_get_bool(cfg, "registrar_tls_enabled");
	gint64 port = tls ? kl_config_get_int(cfg, "registrar_tls_port")
			  : kl_config_get_int(cfg, "registrar_port");
	gboolean v6 = strchr(ip, ':') != NULL && ip[0] != '[';

	return g_strdup_printf("%s://%s%s%s:%" G_GINT64_FORMAT,
			       tls ? "https" : "http",
			       v6 ? "[" : "",
			       ip,
			       v6 ? "]" : "",
			       port);
}

KlHttp *
kl_main_http_new(KlConfig *cfg, const gchar *name, const gchar *ca_file, GError **error)
{
	KlHttpOptions options = {
		.name = name,
		.ca_file = kl_main_nonempty(ca_file),
		.accept_invalid_certs = kl_config_get_bool(cfg, "tls_accept_invalid_certs"),
		.accept_invalid_hostnames = kl_config_get_bool(cfg, "tls_accept_invalid_hostnames"),
		.timeout_ms = (guint)CLAMP(kl_config_get_int(cfg, "request_timeout"), 0, G_MAXINT),
		.ca_option = g_strcmp0(name, "registrar") == 0 ? "registrar_tls_ca_cert"
							       : "verifier_tls_ca_cert",
		.address_option = g_strcmp0(name, "registrar") == 0
				      ? "registrar_ip and registrar_port"
				      : "verifier_url",
		/*
		 * what each peer answers: the registrar JSON, the verifier JSON:API
		 * (as the Rust agent asks); one value, short (libcurl formats every
		 * header byte)
		 */
		.accept = g_strcmp0(name, "registrar") == 0 ? "application/json"
							    : "application/vnd.api+json",
	};
	return kl_http_new(&options, error);
}

guint
kl_main_count_active(KlPluginLoader *loader)
{
	GPtrArray *plugins = loader != NULL ? kl_plugin_loader_get_plugins(loader) : NULL;
	guint n = 0;

	for (guint i = 0; plugins != NULL && i < plugins->len; i++)
		if (kl_plugin_get_state(g_ptr_array_index(plugins, i)) == KL_PLUGIN_STATE_ACTIVE)
			n++;
	return n;
}

/* plugin_dir: --plugin-dir, KEYLIME_AGENT_PLUGIN_DIR or the file; else the installed one */
const gchar *
kl_main_plugin_dir(KlConfig *cfg)
{
	const gchar *dir = kl_main_nonempty(kl_config_get_string(cfg, "plugin_dir"));

	return dir != NULL ? dir : KL_PLUGINDIR;
}

/*
 * enable_iak_idevid = true asks for a registration with the IAK/IDevID: an
 * agent that cannot provide them must not register without them, as if the
 * operator had not asked. Returns the problem, or NULL. With --avoid-tpm
 * there is no IAK to speak of, and the plugin says that it is ignored.
 */
gchar *
kl_main_iak_problem(KlConfig *cfg, KlTpm *tpm, KlPluginLoader *loader)
{
	GPtrArray *plugins = loader != NULL ? kl_plugin_loader_get_plugins(loader) : NULL;
	const gchar *reason = NULL;

	if (!kl_config_get_bool(cfg, "enable_iak_idevid") ||
	    (tpm != NULL && kl_tpm_is_software(tpm)))
		return NULL;
	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);

		if (g_strcmp0(kl_plugin_get_name(plugin), "iak_idevid") != 0)
			continue;
		if (kl_plugin_get_state(plugin) == KL_PLUGIN_STATE_ACTIVE)
			return NULL;
		reason = kl_plugin_get_state_reason(plugin);
		if (reason == NULL)
			reason = kl_plugin_state_to_string(kl_plugin_get_state(plugin));
		break;
	}
	return g_strdup_printf(
	    "enable_iak_idevid = true, but the iak_idevid plugin is not active (%s); the agent "
	    "does not register without the IAK/IDevID it was asked for: fix the IAK/IDevID "
	    "settings (iak_cert, idevid_cert, iak_handle, idevid_handle, iak_idevid_template) "
	    "or set enable_iak_idevid = false",
	    reason != NULL ? reason : "no iak_idevid plugin in the plugin directory");
}
