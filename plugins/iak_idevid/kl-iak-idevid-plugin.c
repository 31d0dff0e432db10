/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * iak_idevid: registers the TPM's IAK and IDevID with the registrar and binds
 * the AK to the IAK (TPM2_Certify of the AK by the IAK, qualifyingData =
 * SHA-256(agent id)). It offers no evidence to the verifier.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

#include "kl-iak-idevid-plugin.h"
#include "kl-iak-idevid.h"

gboolean
kl_iak_idevid_plugin_startup(KlPluginContext *ctx, GError **error)
{
	gboolean enabled = FALSE;
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);
	ESYS_CONTEXT *esys = tpm != NULL ? kl_tpm_get_esys(tpm) : NULL;
	KlIakIdevidOptions options = { 0 };
	KlIakIdevid *self;

	if (!kl_plugin_context_get_config_bool(ctx, "enable_iak_idevid", FALSE, &enabled, error))
		return FALSE;
	if (!enabled) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "IAK/IDevID disabled (enable_iak_idevid = false)");
		return FALSE;
	}
	if (esys == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "IAK/IDevID need a hardware TPM; the agent runs without one "
			    "(--avoid-tpm), so enable_iak_idevid is ignored");
		return FALSE;
	}

	options.template_mode = kl_plugin_context_get_config(ctx, "iak_idevid_template");
	options.asym_alg = kl_plugin_context_get_config(ctx, "iak_idevid_asymmetric_alg");
	options.name_alg = kl_plugin_context_get_config(ctx, "iak_idevid_name_alg");
	options.iak_handle = kl_plugin_context_get_config(ctx, "iak_handle");
	options.iak_password = kl_plugin_context_get_config(ctx, "iak_password");
	options.idevid_handle = kl_plugin_context_get_config(ctx, "idevid_handle");
	options.idevid_password = kl_plugin_context_get_config(ctx, "idevid_password");
	options.iak_cert = kl_plugin_context_get_config(ctx, "iak_cert");
	options.idevid_cert = kl_plugin_context_get_config(ctx, "idevid_cert");
	options.endorsement_password = kl_plugin_context_get_config(ctx, "tpm_ownerpassword");
	if (options.asym_alg == NULL)
		options.asym_alg = "rsa";
	if (options.name_alg == NULL)
		options.name_alg = "sha256";

	self = kl_iak_idevid_new(esys, &options, error);
	if (self == NULL)
		return FALSE;
	{
		g_autofree gchar *iak_desc =
		    kl_iak_idevid_template_describe(kl_iak_idevid_get_iak_template(self));
		g_autofree gchar *idevid_desc =
		    kl_iak_idevid_template_describe(kl_iak_idevid_get_idevid_template(self));
		g_info("IAK (template %s) and IDevID (template %s) match their certificates",
		       iak_desc,
		       idevid_desc);
	}
	kl_plugin_context_set_data(ctx, self, (GDestroyNotify)kl_iak_idevid_free);
	return TRUE;
}

void
kl_iak_idevid_plugin_shutdown(KlPluginContext *ctx)
{
	kl_plugin_context_set_data(ctx, NULL, NULL);
}

JsonObject *
kl_iak_idevid_plugin_get_capabilities(KlPluginContext *ctx, GError **error)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "iak_idevid offers no evidence; it contributes to registration only");
	return NULL;
}

JsonObject *
kl_iak_idevid_plugin_collect(KlPluginContext *ctx,
			     JsonObject *chosen_parameters,
			     GCancellable *cancellable,
			     GError **error)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "iak_idevid offers no evidence; it contributes to registration only");
	return NULL;
}

gboolean
kl_iak_idevid_plugin_contribute_registration(KlPluginContext *ctx,
					     JsonObject *registration_body,
					     GError **error)
{
	KlIakIdevid *self = kl_plugin_context_get_data(ctx);
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);
	ESYS_CONTEXT *esys = tpm != NULL ? kl_tpm_get_esys(tpm) : NULL;
	const gchar *agent_id = kl_plugin_context_get_agent_id(ctx);
	KlIakIdevidKey iak = { ESYS_TR_NONE, FALSE, { 0 } };
	g_autoptr(GBytes) qualifying = NULL;
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) signature = NULL;
	gboolean ok;

	/* not started (disabled, no TPM): registration stays as it is */
	if (self == NULL || esys == NULL)
		return TRUE;
	if (agent_id == NULL || agent_id[0] == '\0') {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "no agent id to certify the AK for");
		return FALSE;
	}
	if (!kl_iak_idevid_load_iak(self, esys, &iak, error))
		return FALSE;
	qualifying = kl_iak_idevid_qualifying_data(agent_id);
	/* the IAK's auth value (decoded from "hex:" when needed) is already set on its handle */
	ok = kl_tpm_certify_ak(tpm,
			       iak.handle,
			       NULL,
			       TPM2_ALG_NULL,
			       kl_iak_idevid_get_iak_template(self)->name_alg,
			       qualifying,
			       &attest,
			       &signature,
			       error);
	kl_iak_idevid_key_release(esys, &iak);
	if (!ok)
		return FALSE;
	kl_iak_idevid_fill_registration(self, registration_body, attest, signature);
	return TRUE;
}

/* [agent] options of the agent (their defaults are in its option table), secrets included */
static const KlPluginConfigKey kl_iak_idevid_config_keys[] = {
	{ "enable_iak_idevid", NULL },
	{ "iak_idevid_template", NULL },
	{ "iak_idevid_asymmetric_alg", NULL },
	{ "iak_idevid_name_alg", NULL },
	{ "iak_handle", NULL },
	{ "iak_password", NULL },
	{ "idevid_handle", NULL },
	{ "idevid_password", NULL },
	{ "iak_cert", NULL },
	{ "idevid_cert", NULL },
	{ "tpm_ownerpassword", NULL },
	{ NULL },
};

KL_PLUGIN_DEFINE_WITH_CONFIG("iak_idevid",
			     "certification",
			     PACKAGE_VERSION,
			     "IAK/IDevID identity for registration (TCG device identity templates)",
			     kl_iak_idevid_config_keys,
			     kl_iak_idevid_plugin_startup,
			     kl_iak_idevid_plugin_shutdown,
			     kl_iak_idevid_plugin_get_capabilities,
			     kl_iak_idevid_plugin_collect,
			     kl_iak_idevid_plugin_contribute_registration)
