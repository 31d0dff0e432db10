/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Internal: KlTpm is one front end (kl-tpm.c) over two back ends, the real
 * TPM through ESYS (kl-tpm-esys.c) and the --avoid-tpm software stand-in
 * (kl-tpm-software.c). Back ends fill the cached facts at open time.
 */
#pragma once

#include "kl-tpm-private.h"

G_BEGIN_DECLS

typedef struct _KlTpmBackend KlTpmBackend;

struct _KlTpm {
	const KlTpmBackend *backend;
	gpointer backend_data;

	/* filled by the back end's open(), read-only afterwards */
	GBytes *ak_public; /* marshalled TPM2B_PUBLIC */
	TPMT_PUBLIC ak_area;
	GBytes *ak_name;
	TPMI_ALG_SIG_SCHEME ak_scheme;
	TPMI_ALG_HASH ak_hash;
	ESYS_TR ak_handle; /* ESYS_TR_NONE for software */
	GBytes *ek_public; /* marshalled TPM2B_PUBLIC */
	GBytes *ek_cert;   /* DER or NULL */
	gchar *ek_hash;	   /* filled by kl-tpm.c from ek_public */
	gchar *description;
	GArray *pcr_banks;	   /* KlTpmPcrBank */
	GArray *hash_algorithms;   /* guint16 */
	GArray *signature_schemes; /* guint16 */

	/*
	 * health, written by the worker thread, read by the agent's watchdog on the
	 * main thread (atomics); monotonic seconds + 1, 0 = not set
	 */
	gint busy_since_s;     /* a TPM command is in progress since */
	gpointer busy_what;    /* (const gchar *) its name, a static string */
	gint unusable_since_s; /* the TPM connection is lost and could not be restored since */
	gpointer unusable_why; /* (const gchar *) why, a static string */
};

/* the TPM response code of @rc without handle/parameter numbers; 0 for software-stack codes */
TSS2_RC
kl_tpm_rc_base(TSS2_RC rc);
/* TRUE when @rc says the TPM connection is gone (TCTI failure, broken ESYS context, TPM reset) */
gboolean
kl_tpm_rc_is_connection_lost(TSS2_RC rc);
/* what an operator should do about @rc (static), or NULL */
const gchar *
kl_tpm_rc_advice(TSS2_RC rc);

/* monotonic seconds + 1 (never 0) */
gint
kl_tpm_now_s(void);
/*
 * the back end reports that the TPM is unusable (@reason, a static string:
 * KL_TPM_UNUSABLE_CONNECTION, KL_TPM_UNUSABLE_LOCKOUT) or works again (NULL)
 */
#define KL_TPM_UNUSABLE_CONNECTION "the connection is lost and reconnecting fails"
#define KL_TPM_UNUSABLE_LOCKOUT                                                                    \
	"it is in dictionary-attack lockout: tpm2_dictionarylockout --clear-lockout with the "     \
	"lockout password ends it, or wait for TPM2_PT_LOCKOUT_RECOVERY"
void
kl_tpm_set_unusable(KlTpm *tpm, const gchar *reason);

/* open() releases everything it acquired when it fails; close() is then not called */
struct _KlTpmBackend {
	const gchar *name;
	gboolean (*open)(KlTpm *tpm, const KlTpmOptions *options, GError **error);
	void (*close)(KlTpm *tpm);
	ESYS_CONTEXT *(*get_esys)(KlTpm *tpm);
	gboolean (*quote)(KlTpm *tpm,
			  TPMI_ALG_HASH bank,
			  guint32 pcr_mask,
			  TPMI_ALG_SIG_SCHEME scheme,
			  TPMI_ALG_HASH hash,
			  GBytes *qualifying_data,
			  GBytes **attest,
			  GBytes **signature,
			  GError **error);
	gboolean (*pcr_read)(
	    KlTpm *tpm, TPMI_ALG_HASH bank, guint32 pcr_mask, GPtrArray **values, GError **error);
	gboolean (*certify_ak)(KlTpm *tpm,
			       ESYS_TR signer,
			       const gchar *signer_auth,
			       TPMI_ALG_SIG_SCHEME scheme,
			       TPMI_ALG_HASH hash,
			       GBytes *qualifying_data,
			       GBytes **attest,
			       GBytes **signature,
			       GError **error);
	gboolean (*activate_credential)(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error);
};

extern const KlTpmBackend kl_tpm_esys_backend;
extern const KlTpmBackend kl_tpm_software_backend;

/*
 * Shared helper: splits a registrar blob (0xBADCC0DE, version 1,
 * TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET) with bounds checks.
 */
gboolean
kl_tpm_split_credential_blob(GBytes *blob,
			     TPM2B_ID_OBJECT *id_object,
			     TPM2B_ENCRYPTED_SECRET *secret,
			     GError **error);

/*
 * Shared helpers for the back ends (kl-tpm.c).
 */

/* the serde name of @alg in agent_data.json ("Sha256", "RsaSsa"), or NULL */
const gchar *
kl_tpm_alg_to_rust_name(TPM2_ALG_ID alg);
/* the algorithm of a serde name in agent_data.json, or TPM2_ALG_ERROR */
TPM2_ALG_ID
kl_tpm_alg_from_rust_name(const gchar *name);

/* lower-case hex SHA-256 of the PEM SubjectPublicKeyInfo of a marshalled TPM2B_PUBLIC (hash_ek) */
gchar *
kl_tpm_compute_ek_hash(GBytes *tpm2b_public, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* PEM SubjectPublicKeyInfo of a TPMT_PUBLIC (RSA or ECC NIST curves); (transfer full) */
gchar *
kl_tpm_public_to_pem(const TPMT_PUBLIC *pub, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* marshalled TPM2B_PUBLIC of @pub; (transfer full) */
GBytes *
kl_tpm_marshal_public(const TPMT_PUBLIC *pub, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* unmarshals a whole TPM2B_PUBLIC (no trailing bytes) */
gboolean
kl_tpm_unmarshal_public(GBytes *tpm2b_public,
			TPMT_PUBLIC *out,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* the AK parameters the configuration asks for (tpm_encryption_alg/hash_alg/signing_alg) */
typedef struct {
	TPMI_ALG_PUBLIC type;	    /* TPM2_ALG_RSA or TPM2_ALG_ECC */
	guint16 key_bits;	    /* RSA key size */
	TPMI_ECC_CURVE curve;	    /* ECC curve */
	TPMI_ALG_HASH hash;	    /* AK nameAlg and scheme hash */
	TPMI_ALG_SIG_SCHEME scheme; /* AK signing scheme */
} KlTpmKeyParams;

/* validates and resolves the three options (NULL/"" = rsa, sha256, rsassa) */
gboolean
kl_tpm_key_params_from_options(const KlTpmOptions *options,
			       KlTpmKeyParams *params,
			       GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * tpm_encryption_alg names: rsa2048, rsa3072, rsa4096, ecc256, ecc384, ecc521 and
 * the aliases rsa (rsa2048) and ecc (ecc256). Fills type, key_bits (RSA) and curve (ECC).
 */
gboolean
kl_tpm_key_params_parse_type(const gchar *name, KlTpmKeyParams *params);
/* "rsa3072", "ecc384", ... or NULL */
const gchar *
kl_tpm_key_type_name(TPMI_ALG_PUBLIC type, guint16 key_bits, TPMI_ECC_CURVE curve);
/* the key types above, for listing what a TPM offers */
gsize
kl_tpm_key_type_count(void);
void
kl_tpm_key_type_nth(gsize n, KlTpmKeyParams *params);

/*
 * The TCG EK Credential Profile: the EK templates (low range L-1/L-2, high
 * range H-1..H-4, H-6, H-7) and their NV indices (kl-tpm-ek.c).
 */
typedef struct {
	const gchar *name;	/* "L-1", "H-6", ... */
	TPMI_ALG_PUBLIC type;	/* TPM2_ALG_RSA or TPM2_ALG_ECC */
	guint16 key_bits;	/* RSA */
	TPMI_ECC_CURVE curve;	/* ECC */
	TPMI_ALG_HASH name_alg; /* nameAlg (and hash of the policy) */
	guint16 sym_bits;	/* AES-CFB key size */
	gboolean high_range;	/* userWithAuth set, policy B, empty unique */
	guint32 cert_index;	/* EK certificate */
	guint32 nonce_index;	/* EK nonce (low range only), 0 if none */
	guint32 template_index; /* EK template */
} KlTpmEkProfile;

/*
 * The profiles that fit @params, in the order they are tried: for RSA-2048 and
 * P-256 the low-range template first, then the high-range one; one profile for
 * the others. Returns the count (0 when none fits).
 */
guint
kl_tpm_ek_profiles_for(const KlTpmKeyParams *params, const KlTpmEkProfile **out, guint max);
/* the profile's default template (unique field as the profile says) */
void
kl_tpm_ek_profile_template(const KlTpmEkProfile *profile, TPMT_PUBLIC *out);
/*
 * Applies what the TPM holds in NV: @nv_template (nullable, a marshalled
 * TPMT_PUBLIC) replaces the template; @nv_nonce (nullable, low range) goes
 * into the unique field, zero-padded as the profile says.
 */
gboolean
kl_tpm_ek_apply_nv(TPMT_PUBLIC *tmpl, GBytes *nv_template, GBytes *nv_nonce, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* fills ak_public/ak_area/ak_name/ak_scheme/ak_hash of @tpm from the AK's TPMT_PUBLIC */
gboolean
kl_tpm_set_ak_public(KlTpm *tpm, const TPMT_PUBLIC *ak, GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
