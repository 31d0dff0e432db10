/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent's view of the TPM and the plugins: the KlAgentSource the state
 * machine (kl-agent.c) calls for the identity, the credential activation, the
 * proof of possession, the registration fields, the evidence offer and the
 * collection of each requested item.
 */
#include "config.h"

#include "keylime-agent/kl-error.h"
#include "kl-agent-source.h"
#include "kl-tpm-private.h"

static GBytes *
kl_main_get_ek_public(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ek_public(self->tpm);
}

static GBytes *
kl_main_get_ek_cert(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ek_cert(self->tpm);
}

static GBytes *
kl_main_get_ak_public(gpointer data)
{
	KlMainSource *self = data;
	return kl_tpm_get_ak_public(self->tpm);
}

static gboolean
kl_main_activate_credential(gpointer data, GBytes *blob, GBytes **secret, GError **error)
{
	KlMainSource *self = data;
	return kl_tpm_activate_credential(self->tpm, blob, secret, error);
}

static gboolean
kl_main_certify_ak(
    gpointer data, GBytes *challenge, GBytes **attest, GBytes **signature, GError **error)
{
	KlMainSource *self = data;
	return kl_tpm_certify_ak(self->tpm,
				 ESYS_TR_NONE,
				 NULL,
				 TPM2_ALG_NULL,
				 kl_tpm_get_ak_hash_alg(self->tpm),
				 challenge,
				 attest,
				 signature,
				 error);
}

static gboolean
kl_main_contribute_registration(gpointer data, JsonObject *body, GError **error)
{
	KlMainSource *self = data;
	GPtrArray *plugins = kl_plugin_loader_get_plugins(self->loader);

	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);

		if (kl_plugin_get_state(plugin) != KL_PLUGIN_STATE_ACTIVE)
			continue;
		if (!kl_plugin_run_contribute_registration(plugin, body, error)) {
			g_prefix_error(error,
				       "the %s plugin could not add its fields: ",
				       kl_plugin_get_name(plugin));
			return FALSE;
		}
	}
	return TRUE;
}

static GPtrArray *
kl_main_get_capabilities(gpointer data, GError **error)
{
	KlMainSource *self = data;
	GPtrArray *plugins = kl_plugin_loader_get_plugins(self->loader);
	/* room for one entry per plugin from the start */
	g_autoptr(GPtrArray) entries = g_ptr_array_new_full(plugins != NULL ? plugins->len : 0,
							    (GDestroyNotify)json_object_unref);

	for (guint i = 0; plugins != NULL && i < plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(plugins, i);
		g_autoptr(GError) error_local = NULL;
		JsonObject *entry;

		if (kl_plugin_get_state(plugin) != KL_PLUGIN_STATE_ACTIVE)
			continue;
		entry = kl_plugin_run_get_capabilities(plugin, &error_local);
		if (entry == NULL) {
			if (g_error_matches(error_local, KL_ERROR, KL_ERROR_NOT_SUPPORTED))
				g_debug("%s; not offered in this cycle", error_local->message);
			else
				g_warning("%s; not offered in this cycle", error_local->message);
			continue;
		}
		g_ptr_array_add(entries, entry);
	}
	return g_steal_pointer(&entries);
}

/* the loader resolves each request once, to the plugin that owns its type */
static gboolean
kl_main_resolve(gpointer data, KlEvidenceRequest *request, GError **error)
{
	KlMainSource *self = data;
	return kl_plugin_loader_resolve(self->loader, request, error) != NULL;
}

static KlEvidenceEntry *
kl_main_collect(gpointer data,
		KlEvidenceRequest *request,
		GCancellable *cancellable,
		KlEvidenceReport *report,
		KlJsonBody *body,
		GError **error)
{
	return kl_plugin_run_request(request, cancellable, report, body, error);
}

const KlAgentSource kl_main_source_funcs = {
	.get_ek_public = kl_main_get_ek_public,
	.get_ek_cert = kl_main_get_ek_cert,
	.get_ak_public = kl_main_get_ak_public,
	.activate_credential = kl_main_activate_credential,
	.certify_ak = kl_main_certify_ak,
	.contribute_registration = kl_main_contribute_registration,
	.get_capabilities = kl_main_get_capabilities,
	.resolve = kl_main_resolve,
	.collect = kl_main_collect,
};
