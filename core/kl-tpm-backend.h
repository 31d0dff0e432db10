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
	GBytes *ak_public;	  /* marshalled TPM2B_PUBLIC */
	TPMT_PUBLIC ak_area;
	GBytes *ak_name;
	TPMI_ALG_SIG_SCHEME ak_scheme;
	TPMI_ALG_HASH ak_hash;
	ESYS_TR ak_handle;	  /* ESYS_TR_NONE for software */
	GBytes *ek_public;	  /* marshalled TPM2B_PUBLIC */
	GBytes *ek_cert;	  /* DER or NULL */
	gchar *ek_hash;		  /* filled by kl-tpm.c from ek_public */
	gchar *description;
	GArray *pcr_banks;	  /* KlTpmPcrBank */
	GArray *hash_algorithms;  /* guint16 */
	GArray *signature_schemes; /* guint16 */
};

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
	gboolean (*pcr_read)(KlTpm *tpm,
			     TPMI_ALG_HASH bank,
			     guint32 pcr_mask,
			     GPtrArray **values,
			     GError **error);
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

G_END_DECLS
