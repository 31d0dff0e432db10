/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The TPM as the core shares it with plugins. The core owns the TPM context,
 * the EK and the attestation key (AK); plugins borrow them. All calls must be
 * made from plugin callbacks (which the core serialises), never concurrently.
 *
 * With `--avoid-tpm` the KlTpm is a software stand-in: every function below
 * works, except kl_tpm_get_esys() which returns NULL.
 */
#pragma once

#include <glib.h>
#include <tss2/tss2_esys.h>

#include "kl-plugin-context.h"

G_BEGIN_DECLS

/**
 * KlTpmPcrBank:
 * @hash: the bank's hash algorithm (TPM2_ALG_SHA256, ...)
 * @pcr_mask: bit i set = PCR i is allocated in this bank (PCRs 0..23)
 *
 * Since: 1.0
 */
typedef struct {
	TPMI_ALG_HASH hash;
	guint32 pcr_mask;
} KlTpmPcrBank;

/**
 * kl_tpm_is_software:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: %TRUE for the `--avoid-tpm` software stand-in, which proves nothing
 *
 * Since: 1.0
 */
gboolean
kl_tpm_is_software(KlTpm *tpm);

/**
 * kl_tpm_get_esys:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * The core's ESYS context, for TPM commands this API does not wrap. A plugin
 * must flush every object it loads: a TPM without a resource manager has
 * only three object slots, one of them the AK.
 *
 * Returns: (transfer none) (nullable): the context, or %NULL for the software
 *   stand-in
 *
 * Since: 1.0
 */
ESYS_CONTEXT *
kl_tpm_get_esys(KlTpm *tpm);

/**
 * kl_tpm_get_ak_handle:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: the ESYS handle of the loaded AK (%ESYS_TR_NONE for the software
 *   stand-in)
 *
 * Since: 1.0
 */
ESYS_TR
kl_tpm_get_ak_handle(KlTpm *tpm);

/**
 * kl_tpm_get_ak_public:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none): the AK as registered: its marshalled TPM2B_PUBLIC
 *   (the registrar's `aik_tpm`)
 *
 * Since: 1.0
 */
GBytes *
kl_tpm_get_ak_public(KlTpm *tpm);

/**
 * kl_tpm_get_ak_public_area:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none): the AK's TPMT_PUBLIC
 *
 * Since: 1.0
 */
const TPMT_PUBLIC *
kl_tpm_get_ak_public_area(KlTpm *tpm);

/**
 * kl_tpm_get_ak_name:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none): the AK's name: nameAlg || H(TPMT_PUBLIC)
 *
 * Since: 1.0
 */
GBytes *
kl_tpm_get_ak_name(KlTpm *tpm);

/**
 * kl_tpm_get_ak_sign_scheme:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: the AK's signing scheme (%TPM2_ALG_RSASSA, ...)
 *
 * Since: 1.0
 */
TPMI_ALG_SIG_SCHEME
kl_tpm_get_ak_sign_scheme(KlTpm *tpm);

/**
 * kl_tpm_get_ak_hash_alg:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: the hash of the AK's signing scheme (%TPM2_ALG_SHA256, ...)
 *
 * Since: 1.0
 */
TPMI_ALG_HASH
kl_tpm_get_ak_hash_alg(KlTpm *tpm);

/**
 * kl_tpm_get_pcr_banks:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none) (element-type KlTpmPcrBank): the allocated PCR
 *   banks, read once at start-up
 *
 * Since: 1.0
 */
GArray *
kl_tpm_get_pcr_banks(KlTpm *tpm);

/**
 * kl_tpm_get_hash_algorithms:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none) (element-type guint16): the hash algorithms the TPM
 *   implements (TPMI_ALG_HASH), read once at start-up
 *
 * Since: 1.0
 */
GArray *
kl_tpm_get_hash_algorithms(KlTpm *tpm);

/**
 * kl_tpm_get_signature_schemes:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 *
 * Returns: (transfer none) (element-type guint16): the signing schemes the TPM
 *   implements (TPMI_ALG_SIG_SCHEME), read once at start-up
 *
 * Since: 1.0
 */
GArray *
kl_tpm_get_signature_schemes(KlTpm *tpm);

/**
 * kl_tpm_quote:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 * @bank: PCR bank to quote
 * @pcr_mask: PCRs to quote (bit i = PCR i)
 * @scheme: signature scheme (must be usable with the AK)
 * @hash: signature hash
 * @qualifying_data: raw nonce (e.g. the 16 decoded challenge bytes)
 * @attest: (out) (transfer full): marshalled TPMS_ATTEST (no TPM2B size prefix)
 * @signature: (out) (transfer full): marshalled TPMT_SIGNATURE
 * @error: a #GError
 *
 * TPM2_Quote with the AK.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
kl_tpm_quote(KlTpm *tpm,
	     TPMI_ALG_HASH bank,
	     guint32 pcr_mask,
	     TPMI_ALG_SIG_SCHEME scheme,
	     TPMI_ALG_HASH hash,
	     GBytes *qualifying_data,
	     GBytes **attest,
	     GBytes **signature,
	     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_tpm_pcr_read:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 * @bank: the PCR bank
 * @pcr_mask: PCRs to read (bit i = PCR i)
 * @values: (out) (transfer full) (element-type GBytes): one value per selected
 *   PCR, ascending PCR order
 * @error: a #GError
 *
 * Reads the selected PCRs of one bank (several TPM2_PCR_Read calls if needed).
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
kl_tpm_pcr_read(KlTpm *tpm,
		TPMI_ALG_HASH bank,
		guint32 pcr_mask,
		GPtrArray **values,
		GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_tpm_certify_ak:
 * @tpm: the TPM from kl_plugin_context_get_tpm()
 * @signer: key that signs; ESYS_TR_NONE = the AK itself (proof of possession)
 * @signer_auth: (nullable): password of @signer
 * @scheme: TPM2_ALG_NULL to use the signer's own scheme
 * @hash: the signature hash
 * @qualifying_data: extraData for the attestation
 * @attest: (out) (transfer full): marshalled TPMS_ATTEST
 * @signature: (out) (transfer full): marshalled TPMT_SIGNATURE
 * @error: a #GError
 *
 * TPM2_Certify of the AK.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
kl_tpm_certify_ak(KlTpm *tpm,
		  ESYS_TR signer,
		  const gchar *signer_auth,
		  TPMI_ALG_SIG_SCHEME scheme,
		  TPMI_ALG_HASH hash,
		  GBytes *qualifying_data,
		  GBytes **attest,
		  GBytes **signature,
		  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_tpm_alg_to_name:
 * @alg: a TPM algorithm
 *
 * Returns: (nullable): the protocol name of @alg ("sha256", "rsassa", "rsa",
 *   "ecc", ...), or %NULL if unknown
 *
 * Since: 1.0
 */
const gchar *
kl_tpm_alg_to_name(TPM2_ALG_ID alg);

/**
 * kl_tpm_alg_from_name:
 * @name: a protocol name ("sha256", ...), case-insensitive
 *
 * Returns: the algorithm, or %TPM2_ALG_ERROR if unknown
 *
 * Since: 1.0
 */
TPM2_ALG_ID
kl_tpm_alg_from_name(const gchar *name);

/**
 * kl_tpm_hash_size:
 * @alg: a hash algorithm
 *
 * Returns: its digest size in bytes, 0 if unknown
 *
 * Since: 1.0
 */
gsize
kl_tpm_hash_size(TPMI_ALG_HASH alg);

/**
 * kl_tpm_error_from_rc:
 * @rc: a TSS2 response code
 * @what: the command or step that failed
 *
 * Returns: (transfer full): a %KL_ERROR_TPM error "<what>: <decoded rc>"
 *
 * Since: 1.0
 */
GError *
kl_tpm_error_from_rc(TSS2_RC rc, const gchar *what);

G_END_DECLS
