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

/* TRUE for the --avoid-tpm software stand-in */
gboolean
kl_tpm_is_software(KlTpm *tpm);

/* the ESYS context, or NULL for the software stand-in; (transfer none) */
ESYS_CONTEXT *
kl_tpm_get_esys(KlTpm *tpm);

/* ESYS handle of the loaded AK (ESYS_TR_NONE for the software stand-in) */
ESYS_TR
kl_tpm_get_ak_handle(KlTpm *tpm);

/* the AK as registered: marshalled TPM2B_PUBLIC (the registrar's `aik_tpm`); (transfer none) */
GBytes *
kl_tpm_get_ak_public(KlTpm *tpm);

/* the AK's TPMT_PUBLIC; (transfer none) */
const TPMT_PUBLIC *
kl_tpm_get_ak_public_area(KlTpm *tpm);

/* the AK's name: nameAlg || H(TPMT_PUBLIC); (transfer none) */
GBytes *
kl_tpm_get_ak_name(KlTpm *tpm);

/* the AK's signing scheme (TPM2_ALG_RSASSA, ...) and its hash (TPM2_ALG_SHA256, ...) */
TPMI_ALG_SIG_SCHEME
kl_tpm_get_ak_sign_scheme(KlTpm *tpm);
TPMI_ALG_HASH
kl_tpm_get_ak_hash_alg(KlTpm *tpm);

/* allocated PCR banks, read once at start-up; array of KlTpmPcrBank (transfer none) */
GArray *
kl_tpm_get_pcr_banks(KlTpm *tpm);

/* hash algorithms the TPM implements, read once at start-up; array of TPMI_ALG_HASH (guint16) */
GArray *
kl_tpm_get_hash_algorithms(KlTpm *tpm);

/* signing schemes the TPM implements, read once at start-up; array of TPMI_ALG_SIG_SCHEME (guint16)
 */
GArray *
kl_tpm_get_signature_schemes(KlTpm *tpm);

/**
 * kl_tpm_quote:
 * @bank: PCR bank to quote
 * @pcr_mask: PCRs to quote (bit i = PCR i)
 * @scheme: signature scheme (must be usable with the AK)
 * @hash: signature hash
 * @qualifying_data: raw nonce (e.g. the 16 decoded challenge bytes)
 * @attest: (out) (transfer full): marshalled TPMS_ATTEST (no TPM2B size prefix)
 * @signature: (out) (transfer full): marshalled TPMT_SIGNATURE
 *
 * TPM2_Quote with the AK.
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
 * @values: (out) (transfer full): one GBytes per selected PCR, ascending PCR order
 *
 * Reads the selected PCRs of one bank (several TPM2_PCR_Read calls if needed).
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
 * @signer: key that signs; ESYS_TR_NONE = the AK itself (proof of possession)
 * @signer_auth: (nullable): password of @signer
 * @scheme: TPM2_ALG_NULL to use the signer's own scheme
 * @qualifying_data: extraData for the attestation
 * @attest: (out) (transfer full): marshalled TPMS_ATTEST
 * @signature: (out) (transfer full): marshalled TPMT_SIGNATURE
 *
 * TPM2_Certify of the AK.
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

/* protocol names: "sha256", "rsassa", "rsa", "ecc", ...; NULL if unknown */
const gchar *
kl_tpm_alg_to_name(TPM2_ALG_ID alg);
/* TPM2_ALG_ERROR if unknown */
TPM2_ALG_ID
kl_tpm_alg_from_name(const gchar *name);
/* digest size of a hash algorithm, 0 if unknown */
gsize
kl_tpm_hash_size(TPMI_ALG_HASH alg);

/* a KL_ERROR_TPM error "<what>: <decoded rc>" */
GError *
kl_tpm_error_from_rc(TSS2_RC rc, const gchar *what);

G_END_DECLS
