/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The tpm_quote plugin descriptor and callbacks (the work is in kl-tpm-quote.c).
 */
#include "config.h"

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-private.h"

static gboolean
kl_tpm_quote_startup(KlPluginContext *ctx, GError **error)
{
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);
	g_autoptr(JsonObject) caps = NULL;

	if (tpm == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "no TPM: TPM quotes are not available");
		return FALSE;
	}
	/* built once from the static facts, so a bad setup shows at start-up */
	caps = kl_tpm_quote_build_capabilities(
	    tpm, kl_plugin_context_get_config(ctx, "certification_keys_server_identifier"), error);
	return caps != NULL;
}

static JsonObject *
kl_tpm_quote_get_capabilities(KlPluginContext *ctx, GError **error)
{
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);

	if (tpm == NULL) {
		g_set_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED, "no TPM");
		return NULL;
	}
	return kl_tpm_quote_build_capabilities(
	    tpm, kl_plugin_context_get_config(ctx, "certification_keys_server_identifier"), error);
}

static JsonObject *
kl_tpm_quote_collect(KlPluginContext *ctx,
		     JsonObject *chosen_parameters,
		     GCancellable *cancellable,
		     GError **error)
{
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);

	if (tpm == NULL) {
		g_set_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED, "no TPM");
		return NULL;
	}
	return kl_tpm_quote_collect_with_tpm(tpm, chosen_parameters, cancellable, error);
}

static const KlPluginConfigKey kl_tpm_quote_config_keys[] = {
	{ "certification_keys_server_identifier", NULL },
	{ NULL },
};

KL_PLUGIN_DEFINE_WITH_CONFIG("tpm_quote",
			     "certification",
			     "1.0",
			     "TPM 2.0 quote of the PCRs the verifier selects, signed by the AK",
			     kl_tpm_quote_config_keys,
			     kl_tpm_quote_startup,
			     NULL,
			     kl_tpm_quote_get_capabilities,
			     kl_tpm_quote_collect,
			     NULL)
