/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The EK as the TCG EK Credential Profile for TPM Family 2.0 defines it: the
 * default templates of the low range (L-1 RSA-2048, L-2 NIST P-256, with a
 * nonce and a template that the manufacturer may keep in NV) and of the high
 * range (H-1 RSA-2048, H-2 P-256, H-3 P-384, H-4 P-521, H-6 RSA-3072,
 * H-7 RSA-4096), with the NV indices of their certificates. A template built
 * here gives the same key as the one the manufacturer certified.
 */
#include "config.h"

#include <string.h>

#include <tss2/tss2_mu.h>

#include "keylime-agent/kl-error.h"
#include "kl-tpm-backend.h"

/* PolicyA: TPM2_PolicySecret(TPM_RH_ENDORSEMENT), SHA-256 (low range) */
static const guint8 kl_tpm_ek_policy_a_sha256[32] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
	0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
	0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
};

/* PolicyB: TPM2_PolicyOR(PolicyA, PolicyC) in the nameAlg of the template (high range) */
static const guint8 kl_tpm_ek_policy_b_sha256[32] = {
	0xCA, 0x3D, 0x0A, 0x99, 0xA2, 0xB9, 0x39, 0x06, 0xF7, 0xA3, 0x34,
	0x24, 0x14, 0xEF, 0xCF, 0xB3, 0xA3, 0x85, 0xD4, 0x4C, 0xD1, 0xFD,
	0x45, 0x90, 0x89, 0xD1, 0x9B, 0x50, 0x71, 0xC0, 0xB7, 0xA0,
};
static const guint8 kl_tpm_ek_policy_b_sha384[48] = {
	0xB2, 0x6E, 0x7D, 0x28, 0xD1, 0x1A, 0x50, 0xBC, 0x53, 0xD8, 0x82, 0xBC,
	0xF5, 0xFD, 0x3A, 0x1A, 0x07, 0x41, 0x48, 0xBB, 0x35, 0xD3, 0xB4, 0xE4,
	0xCB, 0x1C, 0x0A, 0xD9, 0xBD, 0xE4, 0x19, 0xCA, 0xCB, 0x47, 0xBA, 0x09,
	0x69, 0x96, 0x46, 0x15, 0x0F, 0x9F, 0xC0, 0x00, 0xF3, 0xF8, 0x0E, 0x12,
};
static const guint8 kl_tpm_ek_policy_b_sha512[64] = {
	0xB8, 0x22, 0x1C, 0xA6, 0x9E, 0x85, 0x50, 0xA4, 0x91, 0x4D, 0xE3, 0xFA, 0xA6,
	0xA1, 0x8C, 0x07, 0x2C, 0xC0, 0x12, 0x08, 0x07, 0x3A, 0x92, 0x8D, 0x5D, 0x66,
	0xD5, 0x9E, 0xF7, 0x9E, 0x49, 0xA4, 0x29, 0xC4, 0x1A, 0x6B, 0x26, 0x95, 0x71,
	0xD5, 0x7E, 0xDB, 0x25, 0xFB, 0xDB, 0x18, 0x38, 0x42, 0x56, 0x08, 0xB4, 0x13,
	0xCD, 0x61, 0x6A, 0x5F, 0x6D, 0xB5, 0xB6, 0x07, 0x1A, 0xF9, 0x9B, 0xEA,
};

/* low range: certificate, nonce, template; high range: certificate, template (index + 1) */
static const KlTpmEkProfile kl_tpm_ek_profiles[] = {
	{ "L-1",
	  TPM2_ALG_RSA,
	  2048,
	  TPM2_ECC_NONE,
	  TPM2_ALG_SHA256,
	  128,
	  FALSE,
	  0x01C00002,
	  0x01C00003,
	  0x01C00004 },
	{ "L-2",
	  TPM2_ALG_ECC,
	  0,
	  TPM2_ECC_NIST_P256,
	  TPM2_ALG_SHA256,
	  128,
	  FALSE,
	  0x01C0000A,
	  0x01C0000B,
	  0x01C0000C },
	{ "H-1",
	  TPM2_ALG_RSA,
	  2048,
	  TPM2_ECC_NONE,
	  TPM2_ALG_SHA256,
	  128,
	  TRUE,
	  0x01C00012,
	  0,
	  0x01C00013 },
	{ "H-2",
	  TPM2_ALG_ECC,
	  0,
	  TPM2_ECC_NIST_P256,
	  TPM2_ALG_SHA256,
	  128,
	  TRUE,
	  0x01C00014,
	  0,
	  0x01C00015 },
	{ "H-3",
	  TPM2_ALG_ECC,
	  0,
	  TPM2_ECC_NIST_P384,
	  TPM2_ALG_SHA384,
	  256,
	  TRUE,
	  0x01C00016,
	  0,
	  0x01C00017 },
	{ "H-4",
	  TPM2_ALG_ECC,
	  0,
	  TPM2_ECC_NIST_P521,
	  TPM2_ALG_SHA512,
	  256,
	  TRUE,
	  0x01C00018,
	  0,
	  0x01C00019 },
	{ "H-6",
	  TPM2_ALG_RSA,
	  3072,
	  TPM2_ECC_NONE,
	  TPM2_ALG_SHA384,
	  256,
	  TRUE,
	  0x01C0001C,
	  0,
	  0x01C0001D },
	{ "H-7",
	  TPM2_ALG_RSA,
	  4096,
	  TPM2_ECC_NONE,
	  TPM2_ALG_SHA384,
	  256,
	  TRUE,
	  0x01C0001E,
	  0,
	  0x01C0001F },
};

guint
kl_tpm_ek_profiles_for(const KlTpmKeyParams *params, const KlTpmEkProfile **out, guint max)
{
	guint n = 0;

	/* the table lists the low range first */
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_ek_profiles) && n < max; i++) {
		const KlTpmEkProfile *p = &kl_tpm_ek_profiles[i];
		if (p->type != params->type)
			continue;
		if (p->type == TPM2_ALG_RSA ? p->key_bits != params->key_bits
					    : p->curve != params->curve)
			continue;
		out[n++] = p;
	}
	return n;
}

static guint16
kl_tpm_ek_curve_bytes(TPMI_ECC_CURVE curve)
{
	switch (curve) {
	case TPM2_ECC_NIST_P384:
		return 48;
	case TPM2_ECC_NIST_P521:
		return 66;
	default:
		return 32;
	}
}

void
kl_tpm_ek_profile_template(const KlTpmEkProfile *profile, TPMT_PUBLIC *out)
{
	const guint8 *policy;
	gsize policy_len;

	memset(out, 0, sizeof(*out));
	out->type = profile->type;
	out->nameAlg = profile->name_alg;
	out->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
				TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	if (!profile->high_range) {
		policy = kl_tpm_ek_policy_a_sha256;
		policy_len = sizeof(kl_tpm_ek_policy_a_sha256);
	} else {
		out->objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
		switch (profile->name_alg) {
		case TPM2_ALG_SHA384:
			policy = kl_tpm_ek_policy_b_sha384;
			policy_len = sizeof(kl_tpm_ek_policy_b_sha384);
			break;
		case TPM2_ALG_SHA512:
			policy = kl_tpm_ek_policy_b_sha512;
			policy_len = sizeof(kl_tpm_ek_policy_b_sha512);
			break;
		default:
			policy = kl_tpm_ek_policy_b_sha256;
			policy_len = sizeof(kl_tpm_ek_policy_b_sha256);
			break;
		}
	}
	out->authPolicy.size = (UINT16)policy_len;
	memcpy(out->authPolicy.buffer, policy, policy_len);

	if (profile->type == TPM2_ALG_RSA) {
		TPMS_RSA_PARMS *rsa = &out->parameters.rsaDetail;
		rsa->symmetric.algorithm = TPM2_ALG_AES;
		rsa->symmetric.keyBits.aes = profile->sym_bits;
		rsa->symmetric.mode.aes = TPM2_ALG_CFB;
		rsa->scheme.scheme = TPM2_ALG_NULL;
		rsa->keyBits = profile->key_bits;
		rsa->exponent = 0;
		/* low range: a zero-filled modulus-sized unique; high range: empty */
		if (!profile->high_range)
			out->unique.rsa.size = profile->key_bits / 8;
	} else {
		TPMS_ECC_PARMS *ecc = &out->parameters.eccDetail;
		ecc->symmetric.algorithm = TPM2_ALG_AES;
		ecc->symmetric.keyBits.aes = profile->sym_bits;
		ecc->symmetric.mode.aes = TPM2_ALG_CFB;
		ecc->scheme.scheme = TPM2_ALG_NULL;
		ecc->curveID = profile->curve;
		ecc->kdf.scheme = TPM2_ALG_NULL;
		if (!profile->high_range) {
			out->unique.ecc.x.size = kl_tpm_ek_curve_bytes(profile->curve);
			out->unique.ecc.y.size = kl_tpm_ek_curve_bytes(profile->curve);
		}
	}
}

gboolean
kl_tpm_ek_apply_nv(TPMT_PUBLIC *tmpl, GBytes *nv_template, GBytes *nv_nonce, GError **error)
{
	if (nv_template != NULL) {
		gsize len = 0;
		const guint8 *data = g_bytes_get_data(nv_template, &len);
		size_t off = 0;
		TPMT_PUBLIC parsed;
		memset(&parsed, 0, sizeof(parsed));
		if (Tss2_MU_TPMT_PUBLIC_Unmarshal(data, len, &off, &parsed) != TSS2_RC_SUCCESS ||
		    off != len) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "the EK template in NV (%" G_GSIZE_FORMAT
				    " bytes) is not a TPMT_PUBLIC",
				    len);
			return FALSE;
		}
		if (parsed.type != tmpl->type ||
		    (parsed.objectAttributes & TPMA_OBJECT_DECRYPT) == 0 ||
		    (parsed.objectAttributes & TPMA_OBJECT_RESTRICTED) == 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "the EK template in NV is not a restricted decryption %s key",
				    kl_tpm_alg_to_name(tmpl->type));
			return FALSE;
		}
		*tmpl = parsed;
	}
	if (nv_nonce != NULL) {
		gsize len = 0;
		const guint8 *nonce = g_bytes_get_data(nv_nonce, &len);
		gboolean rsa = tmpl->type == TPM2_ALG_RSA;
		/* the nonce fills the start of the unique field, as long as the key */
		guint16 size = rsa ? tmpl->parameters.rsaDetail.keyBits / 8
				   : kl_tpm_ek_curve_bytes(tmpl->parameters.eccDetail.curveID);

		if (len > size || (rsa && size > sizeof(tmpl->unique.rsa.buffer))) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "the EK nonce in NV is too long (%" G_GSIZE_FORMAT " bytes)",
				    len);
			return FALSE;
		}
		if (rsa) {
			memset(&tmpl->unique.rsa, 0, sizeof(tmpl->unique.rsa));
			tmpl->unique.rsa.size = size;
			memcpy(tmpl->unique.rsa.buffer, nonce, len);
		} else {
			memset(&tmpl->unique.ecc, 0, sizeof(tmpl->unique.ecc));
			tmpl->unique.ecc.x.size = size;
			tmpl->unique.ecc.y.size = size;
			memcpy(tmpl->unique.ecc.x.buffer, nonce, len);
		}
	}
	return TRUE;
}
