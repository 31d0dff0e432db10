/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The tpm_quote plugin descriptor and callbacks (the work is in kl-tpm-quote.c).
 */
#include "config.h"

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-private.h"

/*
 * The capabilities depend only on facts that do not change while the agent
 * runs (the TPM's banks and schemes, the AK, the configuration): built once,
 * sealed, and handed out again while the AK is the same one
 */
typedef struct {
	JsonObject *caps; /* sealed */
	GBytes *ak_public;
	KlTpmQuoteCache *pcrs; /* the PCR values of the last cycles (collect only) */
} KlTpmQuotePlugin;

static void
kl_tpm_quote_plugin_free(gpointer data)
{
	KlTpmQuotePlugin *self = data;

	g_clear_pointer(&self->caps, json_object_unref);
	g_clear_pointer(&self->ak_public, g_bytes_unref);
	g_clear_pointer(&self->pcrs, kl_tpm_quote_cache_free);
	g_free(self);
}

static JsonObject *
kl_tpm_quote_plugin_caps(KlPluginContext *ctx, KlTpm *tpm, GError **error)
{
	KlTpmQuotePlugin *self = kl_plugin_context_get_data(ctx);
	GBytes *ak_public = kl_tpm_get_ak_public(tpm);
	JsonObject *caps;

	if (self != NULL && self->caps != NULL && ak_public != NULL && self->ak_public != NULL &&
	    g_bytes_equal(ak_public, self->ak_public))
		return json_object_ref(self->caps);
	caps = kl_tpm_quote_build_capabilities(
	    tpm, kl_plugin_context_get_config(ctx, "certification_keys_server_identifier"), error);
	if (caps == NULL)
		return NULL;
	json_object_seal(caps);
	if (self == NULL) {
		self = g_new0(KlTpmQuotePlugin, 1);
		kl_plugin_context_set_data(ctx, self, kl_tpm_quote_plugin_free);
	}
	g_clear_pointer(&self->caps, json_object_unref);
	g_clear_pointer(&self->ak_public, g_bytes_unref);
	self->caps = json_object_ref(caps);
	self->ak_public = ak_public != NULL ? g_bytes_ref(ak_public) : NULL;
	return caps;
}

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
	caps = kl_tpm_quote_plugin_caps(ctx, tpm, error);
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
	return kl_tpm_quote_plugin_caps(ctx, tpm, error);
}

static JsonObject *
kl_tpm_quote_collect(KlPluginContext *ctx,
		     JsonObject *chosen_parameters,
		     GCancellable *cancellable,
		     GError **error)
{
	KlTpm *tpm = kl_plugin_context_get_tpm(ctx);
	KlTpmQuotePlugin *self = kl_plugin_context_get_data(ctx);

	if (tpm == NULL) {
		g_set_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED, "no TPM");
		return NULL;
	}
	if (self == NULL) {
		self = g_new0(KlTpmQuotePlugin, 1);
		kl_plugin_context_set_data(ctx, self, kl_tpm_quote_plugin_free);
	}
	if (self->pcrs == NULL)
		self->pcrs = kl_tpm_quote_cache_new();
	return kl_tpm_quote_collect_with_tpm(
	    tpm, self->pcrs, chosen_parameters, cancellable, error);
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
