/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The tpm_quote plugin's work, callable without a plugin context (tests).
 */
#pragma once

#include "keylime-agent/keylime-agent-plugin.h"

G_BEGIN_DECLS

/* attempts when the PCRs change between TPM2_Quote and TPM2_PCR_Read */
#define KL_TPM_QUOTE_MAX_ATTEMPTS 5

/*
 * The `capabilities` object, from the TPM's cached facts (no TPM command).
 * Fails with KL_ERROR_CONFIG when the AK's hash has no allocated PCR bank.
 */
JsonObject *
kl_tpm_quote_build_capabilities(KlTpm *tpm,
				const gchar *server_identifier,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* the PCRs a quote may select (0..23) */
#define KL_TPM_QUOTE_PCRS 24

/*
 * The PCR values of the last cycles (of one bank), with their digest and the
 * PCR blob: what lets a steady cycle skip TPM2_PCR_Read. One per plugin
 * instance; not thread-safe (collect runs one at a time).
 */
typedef struct _KlTpmQuoteCache KlTpmQuoteCache;

KlTpmQuoteCache *
kl_tpm_quote_cache_new(void);
void
kl_tpm_quote_cache_free(KlTpmQuoteCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTpmQuoteCache, kl_tpm_quote_cache_free)

/*
 * Validates @chosen_parameters (KL_ERROR_INVALID_PARAMETERS), quotes the
 * selected PCRs and returns the `data` object {message, signature,
 * subject_data}, whose PCR values hash to the quote's pcrDigest (else the
 * quote is taken again, up to KL_TPM_QUOTE_MAX_ATTEMPTS times).
 * @cache (nullable): the values of earlier cycles; after the quote only the
 * PCR groups (8 PCRs per TPM2_PCR_Read) needed for the values to hash to the
 * quote's pcrDigest are read, the most recently changed group first. NULL:
 * all selected PCRs are read after every quote.
 */
JsonObject *
kl_tpm_quote_collect_with_tpm(KlTpm *tpm,
			      KlTpmQuoteCache *cache,
			      JsonObject *chosen_parameters,
			      GCancellable *cancellable,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;

#ifdef KL_TPM_QUOTE_TESTING
/*
 * Only in the test build of the plugin code (kl_tpm_quote_test_lib, never in
 * the module): @hook runs in kl_tpm_quote_collect_with_tpm() after each
 * TPM2_Quote, before any TPM2_PCR_Read (attempt counts from 1), so that a test
 * can change the PCRs in between. NULL removes it. Not thread-safe.
 */
typedef void (*KlTpmQuoteTestHook)(guint attempt, gpointer user_data);
void
kl_tpm_quote_set_test_hook(KlTpmQuoteTestHook hook, gpointer user_data);
#endif

G_END_DECLS
