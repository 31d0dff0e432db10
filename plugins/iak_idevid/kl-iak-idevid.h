/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * IAK/IDevID device identity (private to the iak_idevid plugin; linked by its
 * tests through the static library).
 *
 * The keys follow the TCG "TPM 2.0 Keys for Device Identity and Attestation"
 * templates H-1 ... H-5: primary keys in the endorsement hierarchy, the IAK a
 * restricted signing key, the IDevID an unrestricted signing key, unique =
 * "IAK" / "IDEVID", authPolicy from the specification's policy table.
 */
#pragma once

#include <gnutls/x509.h>
#include <keylime-agent/keylime-agent-plugin.h>

G_BEGIN_DECLS

typedef enum {
	KL_IAK_IDEVID_KEY_IAK,
	KL_IAK_IDEVID_KEY_IDEVID,
} KlIakIdevidKeyKind;

/**
 * KlIakIdevidTemplate:
 * @name: "H-1" ... "H-5", or NULL for a manual combination outside the TCG set
 * @type: TPM2_ALG_RSA or TPM2_ALG_ECC
 * @name_alg: the template's nameAlg (also its signing hash)
 * @key_bits: RSA modulus size
 * @curve: ECC curve (TPM2_ECC_NIST_P256, ...)
 */
typedef struct {
	const gchar *name;
	TPMI_ALG_PUBLIC type;
	TPMI_ALG_HASH name_alg;
	TPMI_RSA_KEY_BITS key_bits;
	TPMI_ECC_CURVE curve;
} KlIakIdevidTemplate;

/* "H-1" ... "H-5" (case-insensitive) */
gboolean
kl_iak_idevid_template_from_name(const gchar *name,
				 KlIakIdevidTemplate *out,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * Manual selection: @asym_alg "rsa" | "ecc" (or a sized form: rsa2048,
 * rsa3072, rsa4096, ecc256, ecc384, ecc521, ecc_sm2), @name_alg "sha256" |
 * "sha384" | "sha512" | "sm3_256". Unsized forms take the size the hash implies
 * (sha256: RSA-2048 / P-256, sha384: RSA-3072 / P-384, sha512: RSA-4096 / P-521,
 * sm3_256: SM2).
 */
gboolean
kl_iak_idevid_template_from_algs(const gchar *asym_alg,
				 const gchar *name_alg,
				 KlIakIdevidTemplate *out,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * Detection from the certificate's public key: RSA-2048 → H-1, P-256 → H-2,
 * P-384 → H-3, P-521 → H-4, SM2 → H-5 (other RSA sizes: the manual
 * RSA-3072/SHA-384 and RSA-4096/SHA-512 forms). @what names the option for
 * messages ("iak_cert").
 */
gboolean
kl_iak_idevid_template_detect(gnutls_x509_crt_t crt,
			      const gchar *what,
			      KlIakIdevidTemplate *out,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* "H-1", or e.g. "rsa-3072/sha384 (manual)"; (transfer full) */
gchar *
kl_iak_idevid_template_describe(const KlIakIdevidTemplate *tmpl);
/* the TPM2B_PUBLIC to give TPM2_CreatePrimary */
void
kl_iak_idevid_template_build(const KlIakIdevidTemplate *tmpl,
			     KlIakIdevidKeyKind kind,
			     TPM2B_PUBLIC *out);

/*
 * Certificates. Loads PEM or DER; a missing file is KL_ERROR_NOT_FOUND naming
 * @path and the option @key. (transfer full)
 */
gnutls_x509_crt_t
kl_iak_idevid_cert_load(const gchar *path,
			const gchar *key,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *
kl_iak_idevid_cert_get_der(gnutls_x509_crt_t crt, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * TRUE when @pub holds the same public key as @crt (RSA modulus and exponent,
 * ECC curve and point). FALSE + KL_ERROR_AUTH with a description of both keys.
 */
gboolean
kl_iak_idevid_cert_match_public(gnutls_x509_crt_t crt,
				const TPMT_PUBLIC *pub,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* A key on the TPM: a transient primary (flushed on release) or a persistent one */
typedef struct {
	ESYS_TR handle;
	gboolean transient;
	TPM2B_PUBLIC public;
} KlIakIdevidKey;

/*
 * TPM2_CreatePrimary(ENDORSEMENT) from the template; @endorsement_password
 * (nullable) is set as the hierarchy's auth value first
 */
gboolean
kl_iak_idevid_key_create(ESYS_CONTEXT *esys,
			 const gchar *endorsement_password,
			 const KlIakIdevidTemplate *tmpl,
			 KlIakIdevidKeyKind kind,
			 KlIakIdevidKey *out,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* a persistent key "0x81..."; @password may carry a "hex:" prefix; @what names the option */
gboolean
kl_iak_idevid_key_from_handle(ESYS_CONTEXT *esys,
			      const gchar *handle,
			      const gchar *password,
			      const gchar *what,
			      KlIakIdevidKey *out,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* flushes a transient key, closes the ESYS handle of a persistent one */
void
kl_iak_idevid_key_release(ESYS_CONTEXT *esys, KlIakIdevidKey *key);

/* decoded password ("hex:..." → bytes); FALSE + KL_ERROR_CONFIG on bad hex or length */
gboolean
kl_iak_idevid_parse_auth(const gchar *password, const gchar *what, TPM2B_AUTH *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* marshalled TPM2B_PUBLIC; (transfer full) */
GBytes *
kl_iak_idevid_marshal_public(const TPM2B_PUBLIC *pub, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * KlIakIdevidOptions:
 *
 * The plugin's configuration, as resolved by the core.
 */
typedef struct {
	const gchar *template_mode; /* "detect" | "default" | "" | "manual" | "H-1".."H-5" */
	const gchar *asym_alg;	    /* iak_idevid_asymmetric_alg (manual) */
	const gchar *name_alg;	    /* iak_idevid_name_alg (manual) */
	const gchar *iak_handle;    /* "" = regenerate from the template */
	const gchar *iak_password;
	const gchar *idevid_handle;
	const gchar *idevid_password;
	const gchar *iak_cert; /* paths */
	const gchar *idevid_cert;
	const gchar *endorsement_password; /* tpm_ownerpassword; NULL/"" = keep the ESYS auth */
} KlIakIdevidOptions;

typedef struct _KlIakIdevid KlIakIdevid;

/*
 * Loads both certificates, obtains IAK and IDevID (persistent handles or
 * regenerated), checks each public key against its certificate and releases
 * the keys again. The result remembers what registration needs.
 */
KlIakIdevid *
kl_iak_idevid_new(ESYS_CONTEXT *esys,
		  const KlIakIdevidOptions *options,
		  GError **error) G_GNUC_WARN_UNUSED_RESULT;
void
kl_iak_idevid_free(KlIakIdevid *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlIakIdevid, kl_iak_idevid_free)

const KlIakIdevidTemplate *
kl_iak_idevid_get_iak_template(KlIakIdevid *self);
const KlIakIdevidTemplate *
kl_iak_idevid_get_idevid_template(KlIakIdevid *self);
/* marshalled TPM2B_PUBLIC; (transfer none) */
GBytes *
kl_iak_idevid_get_iak_public(KlIakIdevid *self);
GBytes *
kl_iak_idevid_get_idevid_public(KlIakIdevid *self);
/* DER; (transfer none) */
GBytes *
kl_iak_idevid_get_iak_cert(KlIakIdevid *self);
GBytes *
kl_iak_idevid_get_idevid_cert(KlIakIdevid *self);
/* the IAK password (for the certify call); may be "" */
const gchar *
kl_iak_idevid_get_iak_password(KlIakIdevid *self);

/*
 * Makes the IAK available again for a TPM2_Certify (re-creates it from the
 * template or opens the persistent handle) and checks that it is still the key
 * of the certificate. Release with kl_iak_idevid_key_release().
 */
gboolean
kl_iak_idevid_load_iak(KlIakIdevid *self, ESYS_CONTEXT *esys, KlIakIdevidKey *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* SHA-256 of the agent id (UTF-8): the qualifyingData of the IAK certification */
GBytes *
kl_iak_idevid_qualifying_data(const gchar *agent_id);

/*
 * Adds iak_tpm, idevid_tpm, iak_cert, idevid_cert, iak_attest, iak_sign
 * (base64) to the registration body.
 */
void
kl_iak_idevid_fill_registration(KlIakIdevid *self,
				JsonObject *body,
				GBytes *attest,
				GBytes *signature);

G_END_DECLS
