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

/*
 * Validates @chosen_parameters (KL_ERROR_INVALID_PARAMETERS), quotes and reads
 * the selected PCRs, and returns the `data` object {message, signature,
 * subject_data}.
 */
JsonObject *
kl_tpm_quote_collect_with_tpm(KlTpm *tpm,
			      JsonObject *chosen_parameters,
			      GCancellable *cancellable,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;

#ifdef KL_TPM_QUOTE_TESTING
/*
 * Only in the test build of the plugin code (kl_tpm_quote_test_lib, never in
 * the module): @hook runs in kl_tpm_quote_collect_with_tpm() after each
 * TPM2_Quote, before the TPM2_PCR_Read (attempt counts from 1), so that a test
 * can change the PCRs in between. NULL removes it. Not thread-safe.
 */
typedef void (*KlTpmQuoteTestHook)(guint attempt, gpointer user_data);
void
kl_tpm_quote_set_test_hook(KlTpmQuoteTestHook hook, gpointer user_data);
#endif

G_END_DECLS
