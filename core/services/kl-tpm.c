/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The TPM front end: picks the back end (ESYS or the --avoid-tpm software
 * stand-in), caches the identity facts, and implements what both back ends
 * share: algorithm names, the EK hash, the key parameters and the credential
 * blob parser. agent_data.json is kl-agent-data.c, the agent id modes
 * kl-agent-id.c, atomic file writes kl-atomic-file.c.
 */
#include "config.h"

#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "keylime-agent/kl-error.h"
#include "kl-tpm-backend.h"

#define KL_TPM_CRED_MAGIC   0xBADCC0DEu
#define KL_TPM_CRED_VERSION 1u

/* ------------------------------------------------------------------ */
/* algorithms                                                           */

typedef struct {
	TPM2_ALG_ID alg;
	const gchar *name;
	const gchar *rust_name; /* serde name in agent_data.json, NULL if none */
} KlTpmAlgName;

static const KlTpmAlgName kl_tpm_alg_names[] = {
	{ TPM2_ALG_SHA1, "sha1", "Sha1" },
	{ TPM2_ALG_SHA256, "sha256", "Sha256" },
	{ TPM2_ALG_SHA384, "sha384", "Sha384" },
	{ TPM2_ALG_SHA512, "sha512", "Sha512" },
	{ TPM2_ALG_SM3_256, "sm3_256", "Sm3_256" },
	{ TPM2_ALG_RSASSA, "rsassa", "RsaSsa" },
	{ TPM2_ALG_RSAPSS, "rsapss", "RsaPss" },
	{ TPM2_ALG_ECDSA, "ecdsa", "EcDsa" },
	{ TPM2_ALG_ECSCHNORR, "ecschnorr", "EcSchnorr" },
	{ TPM2_ALG_SM2, "sm2", NULL },
	{ TPM2_ALG_RSA, "rsa", NULL },
	{ TPM2_ALG_ECC, "ecc", NULL },
};

const gchar *
kl_tpm_alg_to_name(TPM2_ALG_ID alg)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_alg_names); i++) {
		if (kl_tpm_alg_names[i].alg == alg)
			return kl_tpm_alg_names[i].name;
	}
	return NULL;
}

TPM2_ALG_ID
kl_tpm_alg_from_name(const gchar *name)
{
	if (name == NULL)
		return TPM2_ALG_ERROR;
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_alg_names); i++) {
		if (g_ascii_strcasecmp(kl_tpm_alg_names[i].name, name) == 0)
			return kl_tpm_alg_names[i].alg;
	}
	return TPM2_ALG_ERROR;
}

const gchar *
kl_tpm_alg_to_rust_name(TPM2_ALG_ID alg)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_alg_names); i++) {
		if (kl_tpm_alg_names[i].alg == alg)
			return kl_tpm_alg_names[i].rust_name;
	}
	return NULL;
}

TPM2_ALG_ID
kl_tpm_alg_from_rust_name(const gchar *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_alg_names); i++) {
		if (kl_tpm_alg_names[i].rust_name != NULL &&
		    g_strcmp0(kl_tpm_alg_names[i].rust_name, name) == 0)
			return kl_tpm_alg_names[i].alg;
	}
	return TPM2_ALG_ERROR;
}

gsize
kl_tpm_hash_size(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return 20;
	case TPM2_ALG_SHA256:
	case TPM2_ALG_SM3_256:
		return 32;
	case TPM2_ALG_SHA384:
		return 48;
	case TPM2_ALG_SHA512:
		return 64;
	default:
		return 0;
	}
}

static gboolean
kl_tpm_hash_to_checksum_type(TPMI_ALG_HASH alg, GChecksumType *out)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		*out = G_CHECKSUM_SHA1;
		return TRUE;
	case TPM2_ALG_SHA256:
		*out = G_CHECKSUM_SHA256;
		return TRUE;
	case TPM2_ALG_SHA384:
		*out = G_CHECKSUM_SHA384;
		return TRUE;
	case TPM2_ALG_SHA512:
		*out = G_CHECKSUM_SHA512;
		return TRUE;
	default:
		return FALSE;
	}
}

/*
 * The TPM's own response code without the handle/parameter/session number of
 * format-one codes; 0 for codes of the software stack (TCTI, ESYS, ...).
 */
TSS2_RC
kl_tpm_rc_base(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return 0;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

/* TRUE when @rc says the TPM connection is gone (TCTI failure, a broken ESYS context) */
gboolean
kl_tpm_rc_is_connection_lost(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
	TSS2_RC base = rc & 0xffff;

	if (layer == TSS2_TCTI_RC_LAYER)
		return TRUE;
	if (layer == TSS2_ESAPI_RC_LAYER || layer == TSS2_SYS_RC_LAYER)
		return base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_BAD_SEQUENCE ||
		       base == TSS2_BASE_RC_NO_CONNECTION ||
		       base == TSS2_BASE_RC_MALFORMED_RESPONSE;
	/* a TPM that was reset under the agent and not started again */
	return rc == TPM2_RC_INITIALIZE;
}

/* what an operator should do about @rc, or NULL when the code speaks for itself */
const gchar *
kl_tpm_rc_advice(TSS2_RC rc)
{
	if (kl_tpm_rc_is_connection_lost(rc))
		return "the connection to the TPM was lost (TPM, simulator or resource manager "
		       "restarted, or an I/O error); the agent reconnects and loads the AK again";
	switch (kl_tpm_rc_base(rc)) {
	case TPM2_RC_OBJECT_MEMORY:
	case TPM2_RC_SESSION_MEMORY:
	case TPM2_RC_MEMORY:
	case TPM2_RC_OBJECT_HANDLES:
	case TPM2_RC_SESSION_HANDLES:
		return "the TPM's memory for loaded keys or sessions is full: on a TPM without "
		       "resource manager, another program or a killed agent left them loaded. "
		       "Use the resource manager (tcti = \"device:/dev/tpmrm0\"), or free them "
		       "with "
		       "tpm2_flushcontext -t and tpm2_flushcontext -s. The AK and agent_data.json "
		       "are "
		       "fine: do not delete them";
	case TPM2_RC_LOCKOUT:
		return "the TPM is in dictionary-attack lockout after too many wrong passwords "
		       "(check tpm_ownerpassword): wait until the lockout ends (tpm2_getcap "
		       "properties-variable shows TPM2_PT_LOCKOUT_COUNTER and "
		       "TPM2_PT_LOCKOUT_INTERVAL) or clear it with tpm2_dictionarylockout "
		       "--clear-lockout and the lockout password. The AK and agent_data.json are "
		       "fine: do not delete them";
	case TPM2_RC_RETRY:
	case TPM2_RC_YIELDED:
	case TPM2_RC_TESTING:
	case TPM2_RC_NV_RATE:
	case TPM2_RC_NV_UNAVAILABLE:
	case TPM2_RC_CONTEXT_GAP:
		return "the TPM is busy (self-test, another command or NV rate limit): a "
		       "transient condition, the agent tries again";
	case TPM2_RC_FAILURE:
		return "the TPM is in failure mode: it accepts no commands until the machine is "
		       "restarted";
	case TPM2_RC_AUTH_FAIL:
	case TPM2_RC_BAD_AUTH:
		return "wrong authorization value (check tpm_ownerpassword); repeated failures put "
		       "the TPM into dictionary-attack lockout";
	default:
		return NULL;
	}
}

GError *
kl_tpm_error_from_rc(TSS2_RC rc, const gchar *what)
{
	const gchar *advice = kl_tpm_rc_advice(rc);

	return g_error_new(KL_ERROR,
			   KL_ERROR_TPM,
			   "%s: %s (0x%x)%s%s",
			   what != NULL ? what : "TPM command",
			   Tss2_RC_Decode(rc),
			   (guint)rc,
			   advice != NULL ? ": " : "",
			   advice != NULL ? advice : "");
}

/* ------------------------------------------------------------------ */
/* public keys                                                          */

GBytes *
kl_tpm_marshal_public(const TPMT_PUBLIC *pub, GError **error)
{
	TPM2B_PUBLIC tpm2b = { .size = 0, .publicArea = *pub };
	guint8 buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&tpm2b, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Tss2_MU_TPM2B_PUBLIC_Marshal"));
		return NULL;
	}
	return g_bytes_new(buf, off);
}

gboolean
kl_tpm_unmarshal_public(GBytes *tpm2b_public, TPMT_PUBLIC *out, GError **error)
{
	TPM2B_PUBLIC tpm2b = { 0 };
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(tpm2b_public, &len);
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(data, len, &off, &tpm2b);
	if (rc != TSS2_RC_SUCCESS || off != len) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "malformed TPM2B_PUBLIC (%" G_GSIZE_FORMAT " bytes)",
			    len);
		return FALSE;
	}
	*out = tpm2b.publicArea;
	return TRUE;
}

static gboolean
kl_tpm_ecc_curve_to_gnutls(TPMI_ECC_CURVE curve, gnutls_ecc_curve_t *out)
{
	switch (curve) {
	case TPM2_ECC_NIST_P192:
		*out = GNUTLS_ECC_CURVE_SECP192R1;
		return TRUE;
	case TPM2_ECC_NIST_P224:
		*out = GNUTLS_ECC_CURVE_SECP224R1;
		return TRUE;
	case TPM2_ECC_NIST_P256:
		*out = GNUTLS_ECC_CURVE_SECP256R1;
		return TRUE;
	case TPM2_ECC_NIST_P384:
		*out = GNUTLS_ECC_CURVE_SECP384R1;
		return TRUE;
	case TPM2_ECC_NIST_P521:
		*out = GNUTLS_ECC_CURVE_SECP521R1;
		return TRUE;
	default:
		return FALSE;
	}
}

gchar *
kl_tpm_public_to_pem(const TPMT_PUBLIC *pub, GError **error)
{
	gnutls_pubkey_t key = NULL;
	gnutls_datum_t out = { NULL, 0 };
	int ret;
	gchar *pem;

	ret = gnutls_pubkey_init(&key);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "gnutls_pubkey_init: %s",
			    gnutls_strerror(ret));
		return NULL;
	}
	if (pub->type == TPM2_ALG_RSA) {
		guint32 exponent = pub->parameters.rsaDetail.exponent;
		guint8 e_buf[4];
		gnutls_datum_t m = { (unsigned char *)pub->unique.rsa.buffer,
				     pub->unique.rsa.size };
		gnutls_datum_t e = { e_buf, sizeof(e_buf) };
		if (exponent == 0)
			exponent = 65537;
		e_buf[0] = exponent >> 24;
		e_buf[1] = exponent >> 16;
		e_buf[2] = exponent >> 8;
		e_buf[3] = exponent;
		ret = gnutls_pubkey_import_rsa_raw(key, &m, &e);
	} else if (pub->type == TPM2_ALG_ECC) {
		gnutls_ecc_curve_t curve;
		gnutls_datum_t x = { (unsigned char *)pub->unique.ecc.x.buffer,
				     pub->unique.ecc.x.size };
		gnutls_datum_t y = { (unsigned char *)pub->unique.ecc.y.buffer,
				     pub->unique.ecc.y.size };
		if (!kl_tpm_ecc_curve_to_gnutls(pub->parameters.eccDetail.curveID, &curve)) {
			gnutls_pubkey_deinit(key);
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_SUPPORTED,
				    "ECC curve 0x%04x is not supported",
				    pub->parameters.eccDetail.curveID);
			return NULL;
		}
		ret = gnutls_pubkey_import_ecc_raw(key, curve, &x, &y);
	} else {
		gnutls_pubkey_deinit(key);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "public key type 0x%04x is not supported",
			    pub->type);
		return NULL;
	}
	if (ret >= 0)
		ret = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_PEM, &out);
	gnutls_pubkey_deinit(key);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "cannot convert the TPM public key to PEM: %s",
			    gnutls_strerror(ret));
		return NULL;
	}
	pem = g_strndup((const gchar *)out.data, out.size);
	gnutls_free(out.data);
	return pem;
}

gchar *
kl_tpm_compute_ek_hash(GBytes *tpm2b_public, GError **error)
{
	TPMT_PUBLIC pub;
	g_autofree gchar *pem = NULL;

	if (!kl_tpm_unmarshal_public(tpm2b_public, &pub, error)) {
		g_prefix_error(error, "EK public key: ");
		return NULL;
	}
	pem = kl_tpm_public_to_pem(&pub, error);
	if (pem == NULL)
		return NULL;
	return g_compute_checksum_for_string(G_CHECKSUM_SHA256, pem, -1);
}

gboolean
kl_tpm_set_ak_public(KlTpm *tpm, const TPMT_PUBLIC *ak, GError **error)
{
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	GChecksumType ctype;
	g_autoptr(GChecksum) sum = NULL;
	guint8 name[2 + 64];
	gsize dlen = 64;
	TSS2_RC rc;
	GBytes *pub;

	rc = Tss2_MU_TPMT_PUBLIC_Marshal(ak, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Tss2_MU_TPMT_PUBLIC_Marshal"));
		return FALSE;
	}
	if (!kl_tpm_hash_to_checksum_type(ak->nameAlg, &ctype)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "AK name algorithm 0x%04x is not supported",
			    ak->nameAlg);
		return FALSE;
	}
	pub = kl_tpm_marshal_public(ak, error);
	if (pub == NULL)
		return FALSE;
	sum = g_checksum_new(ctype);
	g_checksum_update(sum, buf, off);
	name[0] = ak->nameAlg >> 8;
	name[1] = ak->nameAlg & 0xff;
	g_checksum_get_digest(sum, name + 2, &dlen);

	g_clear_pointer(&tpm->ak_public, g_bytes_unref);
	g_clear_pointer(&tpm->ak_name, g_bytes_unref);
	tpm->ak_public = pub;
	tpm->ak_area = *ak;
	tpm->ak_name = g_bytes_new(name, 2 + dlen);
	if (ak->type == TPM2_ALG_RSA) {
		tpm->ak_scheme = ak->parameters.rsaDetail.scheme.scheme;
		tpm->ak_hash = ak->parameters.rsaDetail.scheme.details.anySig.hashAlg;
	} else if (ak->type == TPM2_ALG_ECC) {
		tpm->ak_scheme = ak->parameters.eccDetail.scheme.scheme;
		tpm->ak_hash = ak->parameters.eccDetail.scheme.details.anySig.hashAlg;
	} else {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "AK key type 0x%04x is not supported",
			    ak->type);
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------------ */
/* key parameters from the configuration                                */

/* the key types of tpm_encryption_alg, with the names Keylime uses */
static const struct {
	const gchar *name;
	TPMI_ALG_PUBLIC type;
	guint16 key_bits;
	TPMI_ECC_CURVE curve;
} kl_tpm_key_types[] = {
	{ "rsa2048", TPM2_ALG_RSA, 2048, TPM2_ECC_NONE },
	{ "rsa3072", TPM2_ALG_RSA, 3072, TPM2_ECC_NONE },
	{ "rsa4096", TPM2_ALG_RSA, 4096, TPM2_ECC_NONE },
	{ "ecc256", TPM2_ALG_ECC, 256, TPM2_ECC_NIST_P256 },
	{ "ecc384", TPM2_ALG_ECC, 384, TPM2_ECC_NIST_P384 },
	{ "ecc521", TPM2_ALG_ECC, 521, TPM2_ECC_NIST_P521 },
};

gboolean
kl_tpm_key_params_parse_type(const gchar *name, KlTpmKeyParams *params)
{
	/* the aliases as Keylime normalises them */
	if (g_strcmp0(name, "rsa") == 0)
		name = "rsa2048";
	else if (g_strcmp0(name, "ecc") == 0 || g_strcmp0(name, "ecc_nist_p256") == 0)
		name = "ecc256";
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_key_types); i++) {
		if (g_strcmp0(kl_tpm_key_types[i].name, name) != 0)
			continue;
		params->type = kl_tpm_key_types[i].type;
		params->key_bits =
		    kl_tpm_key_types[i].type == TPM2_ALG_RSA ? kl_tpm_key_types[i].key_bits : 0;
		params->curve = kl_tpm_key_types[i].curve;
		return TRUE;
	}
	return FALSE;
}

const gchar *
kl_tpm_key_type_name(TPMI_ALG_PUBLIC type, guint16 key_bits, TPMI_ECC_CURVE curve)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_key_types); i++) {
		if (kl_tpm_key_types[i].type != type)
			continue;
		if (type == TPM2_ALG_RSA ? kl_tpm_key_types[i].key_bits == key_bits
					 : kl_tpm_key_types[i].curve == curve)
			return kl_tpm_key_types[i].name;
	}
	return NULL;
}

gsize
kl_tpm_key_type_count(void)
{
	return G_N_ELEMENTS(kl_tpm_key_types);
}

void
kl_tpm_key_type_nth(gsize n, KlTpmKeyParams *params)
{
	memset(params, 0, sizeof(*params));
	g_return_if_fail(n < G_N_ELEMENTS(kl_tpm_key_types));
	(void)kl_tpm_key_params_parse_type(kl_tpm_key_types[n].name, params);
}

gboolean
kl_tpm_key_params_from_options(const KlTpmOptions *options, KlTpmKeyParams *params, GError **error)
{
	const gchar *enc = options->encryption_alg;
	const gchar *hash = options->hash_alg;
	const gchar *sign = options->signing_alg;

	if (enc == NULL || *enc == '\0')
		enc = "rsa";
	if (hash == NULL || *hash == '\0')
		hash = "sha256";
	if (sign == NULL || *sign == '\0')
		sign = "rsassa";

	memset(params, 0, sizeof(*params));
	if (!kl_tpm_key_params_parse_type(enc, params)) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "tpm_encryption_alg '%s' is not supported; use rsa2048 (or rsa), rsa3072, "
		    "rsa4096, ecc256 (or ecc), ecc384 or ecc521",
		    enc);
		return FALSE;
	}

	params->hash = kl_tpm_alg_from_name(hash);
	if (kl_tpm_hash_size(params->hash) == 0 || params->hash == TPM2_ALG_SM3_256) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "tpm_hash_alg '%s' is not supported; use sha1, sha256, sha384 or sha512",
		    hash);
		return FALSE;
	}

	params->scheme = kl_tpm_alg_from_name(sign);
	switch (params->scheme) {
	case TPM2_ALG_RSASSA:
	case TPM2_ALG_RSAPSS:
		if (params->type == TPM2_ALG_RSA)
			return TRUE;
		break;
	case TPM2_ALG_ECDSA:
	case TPM2_ALG_ECSCHNORR:
		if (params->type == TPM2_ALG_ECC)
			return TRUE;
		break;
	default:
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "tpm_signing_alg '%s' is not supported; use rsassa, rsapss, ecdsa or "
			    "ecschnorr",
			    sign);
		return FALSE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "tpm_signing_alg '%s' does not fit tpm_encryption_alg '%s'; use rsassa/rsapss "
		    "with rsa and ecdsa/ecschnorr with ecc",
		    sign,
		    enc);
	return FALSE;
}

/* ------------------------------------------------------------------ */
/* credential blob                                                      */

static guint32
kl_tpm_read_be32(const guint8 *p)
{
	return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

gboolean
kl_tpm_split_credential_blob(GBytes *blob,
			     TPM2B_ID_OBJECT *id_object,
			     TPM2B_ENCRYPTED_SECRET *secret,
			     GError **error)
{
	gsize len = 0;
	const guint8 *p = blob != NULL ? g_bytes_get_data(blob, &len) : NULL;
	gsize off = 8;
	gsize n;
	gsize m;

	if (p == NULL || len < 8 + 2 + 2) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "credential blob too short (%" G_GSIZE_FORMAT " bytes)",
			    len);
		return FALSE;
	}
	if (kl_tpm_read_be32(p) != KL_TPM_CRED_MAGIC) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "credential blob: bad magic 0x%08x (expected 0xbadcc0de)",
			    kl_tpm_read_be32(p));
		return FALSE;
	}
	if (kl_tpm_read_be32(p + 4) != KL_TPM_CRED_VERSION) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "credential blob: unsupported version %u",
			    kl_tpm_read_be32(p + 4));
		return FALSE;
	}
	n = ((gsize)p[off] << 8) | p[off + 1];
	off += 2;
	if (n == 0 || n > sizeof(id_object->credential) || n > len - off || len - off - n < 2) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "credential blob: bad TPM2B_ID_OBJECT size %" G_GSIZE_FORMAT,
			    n);
		return FALSE;
	}
	memset(id_object, 0, sizeof(*id_object));
	id_object->size = (UINT16)n;
	memcpy(id_object->credential, p + off, n);
	off += n;
	m = ((gsize)p[off] << 8) | p[off + 1];
	off += 2;
	if (m == 0 || m > sizeof(secret->secret) || m != len - off) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "credential blob: bad TPM2B_ENCRYPTED_SECRET size %" G_GSIZE_FORMAT
			    " (%" G_GSIZE_FORMAT " bytes left)",
			    m,
			    len - off);
		return FALSE;
	}
	memset(secret, 0, sizeof(*secret));
	secret->size = (UINT16)m;
	memcpy(secret->secret, p + off, m);
	return TRUE;
}

/* ------------------------------------------------------------------ */
/* the object                                                           */

KlTpm *
kl_tpm_new(const KlTpmOptions *options, GError **error)
{
	g_autoptr(KlTpm) tpm = NULL;
	const KlTpmBackend *backend;

	g_return_val_if_fail(options != NULL, NULL);

#if KL_HAVE_SOFTWARE_TPM
	backend = options->software ? &kl_tpm_software_backend : &kl_tpm_esys_backend;
#else
	if (options->software) {
		g_set_error_literal(
		    error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "--avoid-tpm: this agent was built without the software TPM "
		    "stand-in (-Dsoftware_tpm=disabled); run it with a TPM (--tcti)");
		return NULL;
	}
	backend = &kl_tpm_esys_backend;
#endif

	tpm = g_new0(KlTpm, 1);
	tpm->ak_handle = ESYS_TR_NONE;
	tpm->pcr_banks = g_array_new(FALSE, TRUE, sizeof(KlTpmPcrBank));
	tpm->hash_algorithms = g_array_new(FALSE, TRUE, sizeof(guint16));
	tpm->signature_schemes = g_array_new(FALSE, TRUE, sizeof(guint16));
	tpm->backend = backend;
	if (!backend->open(tpm, options, error)) {
		/* open() cleans up after itself on failure: no close() */
		tpm->backend = NULL;
		return NULL;
	}

	if (tpm->ek_public == NULL || tpm->ak_public == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "the %s TPM back end did not provide the EK and the AK",
			    backend->name);
		return NULL;
	}
	if (tpm->ek_hash == NULL) {
		tpm->ek_hash = kl_tpm_compute_ek_hash(tpm->ek_public, error);
		if (tpm->ek_hash == NULL)
			return NULL;
	}
	if (tpm->description == NULL)
		tpm->description = g_strdup(backend->name);
	return g_steal_pointer(&tpm);
}

void
kl_tpm_free(KlTpm *tpm)
{
	if (tpm == NULL)
		return;
	if (tpm->backend != NULL && tpm->backend->close != NULL)
		tpm->backend->close(tpm);
	g_clear_pointer(&tpm->ak_public, g_bytes_unref);
	g_clear_pointer(&tpm->ak_name, g_bytes_unref);
	g_clear_pointer(&tpm->ek_public, g_bytes_unref);
	g_clear_pointer(&tpm->ek_cert, g_bytes_unref);
	g_clear_pointer(&tpm->ek_hash, g_free);
	g_clear_pointer(&tpm->description, g_free);
	g_clear_pointer(&tpm->pcr_banks, g_array_unref);
	g_clear_pointer(&tpm->hash_algorithms, g_array_unref);
	g_clear_pointer(&tpm->signature_schemes, g_array_unref);
	g_free(tpm);
}

gboolean
kl_tpm_is_software(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, FALSE);
	return tpm->backend != &kl_tpm_esys_backend;
}

ESYS_CONTEXT *
kl_tpm_get_esys(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	if (tpm->backend->get_esys == NULL)
		return NULL;
	return tpm->backend->get_esys(tpm);
}

ESYS_TR
kl_tpm_get_ak_handle(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, ESYS_TR_NONE);
	return tpm->ak_handle;
}

GBytes *
kl_tpm_get_ak_public(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->ak_public;
}

const TPMT_PUBLIC *
kl_tpm_get_ak_public_area(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return &tpm->ak_area;
}

GBytes *
kl_tpm_get_ak_name(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->ak_name;
}

TPMI_ALG_SIG_SCHEME
kl_tpm_get_ak_sign_scheme(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, TPM2_ALG_NULL);
	return tpm->ak_scheme;
}

TPMI_ALG_HASH
kl_tpm_get_ak_hash_alg(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, TPM2_ALG_NULL);
	return tpm->ak_hash;
}

GArray *
kl_tpm_get_pcr_banks(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->pcr_banks;
}

GArray *
kl_tpm_get_hash_algorithms(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->hash_algorithms;
}

GArray *
kl_tpm_get_signature_schemes(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->signature_schemes;
}

GBytes *
kl_tpm_get_ek_public(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->ek_public;
}

GBytes *
kl_tpm_get_ek_cert(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->ek_cert;
}

const gchar *
kl_tpm_get_ek_hash(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->ek_hash;
}

const gchar *
kl_tpm_get_description(KlTpm *tpm)
{
	g_return_val_if_fail(tpm != NULL, NULL);
	return tpm->description;
}

/* ------------------------------------------------------------------ */
/* health (watchdog)                                                    */

gint
kl_tpm_now_s(void)
{
	return (gint)(g_get_monotonic_time() / G_USEC_PER_SEC) + 1;
}

static void
kl_tpm_busy(KlTpm *tpm, const gchar *what)
{
	if (what != NULL) {
		g_atomic_pointer_set(&tpm->busy_what, (gpointer)what);
		g_atomic_int_set(&tpm->busy_since_s, kl_tpm_now_s());
	} else {
		g_atomic_int_set(&tpm->busy_since_s, 0);
	}
}

void
kl_tpm_set_unusable(KlTpm *tpm, const gchar *reason)
{
	if (reason == NULL) {
		if (g_atomic_int_exchange(&tpm->unusable_since_s, 0) != 0 &&
		    g_atomic_pointer_get(&tpm->unusable_why) == (gpointer)KL_TPM_UNUSABLE_LOCKOUT)
			g_message(
			    "the TPM's dictionary-attack lockout has ended: the AK works again");
		return;
	}
	g_atomic_pointer_set(&tpm->unusable_why, (gpointer)reason);
	(void)g_atomic_int_compare_and_exchange(&tpm->unusable_since_s, 0, kl_tpm_now_s());
}

const gchar *
kl_tpm_get_busy(KlTpm *tpm, guint *busy_s)
{
	gint since;

	g_return_val_if_fail(tpm != NULL, NULL);
	since = g_atomic_int_get(&tpm->busy_since_s);
	if (since == 0)
		return NULL;
	if (busy_s != NULL)
		*busy_s = (guint)MAX(kl_tpm_now_s() - since, 0);
	return g_atomic_pointer_get(&tpm->busy_what);
}

guint
kl_tpm_get_unusable_s(KlTpm *tpm, const gchar **reason)
{
	gint since;

	g_return_val_if_fail(tpm != NULL, 0);
	since = g_atomic_int_get(&tpm->unusable_since_s);
	if (reason != NULL)
		*reason = since == 0 ? NULL : g_atomic_pointer_get(&tpm->unusable_why);
	return since == 0 ? 0 : (guint)MAX(kl_tpm_now_s() - since, 1);
}

static gboolean
kl_tpm_check_pcr_args(TPMI_ALG_HASH bank, guint32 pcr_mask, GError **error)
{
	if (kl_tpm_hash_size(bank) == 0) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS, "unknown PCR bank 0x%04x", bank);
		return FALSE;
	}
	if (pcr_mask == 0 || (pcr_mask & ~0xffffffu) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "invalid PCR selection 0x%08x (PCRs 0..23, at least one)",
			    pcr_mask);
		return FALSE;
	}
	return TRUE;
}

gboolean
kl_tpm_quote(KlTpm *tpm,
	     TPMI_ALG_HASH bank,
	     guint32 pcr_mask,
	     TPMI_ALG_SIG_SCHEME scheme,
	     TPMI_ALG_HASH hash,
	     GBytes *qualifying_data,
	     GBytes **attest,
	     GBytes **signature,
	     GError **error)
{
	gboolean ok;

	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(attest != NULL && signature != NULL, FALSE);
	if (!kl_tpm_check_pcr_args(bank, pcr_mask, error))
		return FALSE;
	if (qualifying_data != NULL && g_bytes_get_size(qualifying_data) > sizeof(TPMU_HA)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "qualifying data too long (%" G_GSIZE_FORMAT " bytes, at most %u)",
			    g_bytes_get_size(qualifying_data),
			    (guint)sizeof(TPMU_HA));
		return FALSE;
	}
	kl_tpm_busy(tpm, "TPM2_Quote");
	ok = tpm->backend->quote(
	    tpm, bank, pcr_mask, scheme, hash, qualifying_data, attest, signature, error);
	kl_tpm_busy(tpm, NULL);
	if (ok)
		kl_tpm_set_unusable(tpm, NULL); /* e.g. a lockout ended */
	return ok;
}

gboolean
kl_tpm_pcr_read(
    KlTpm *tpm, TPMI_ALG_HASH bank, guint32 pcr_mask, GPtrArray **values, GError **error)
{
	gboolean ok;

	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(values != NULL, FALSE);
	if (!kl_tpm_check_pcr_args(bank, pcr_mask, error))
		return FALSE;
	kl_tpm_busy(tpm, "TPM2_PCR_Read");
	ok = tpm->backend->pcr_read(tpm, bank, pcr_mask, values, error);
	kl_tpm_busy(tpm, NULL);
	return ok;
}

gboolean
kl_tpm_certify_ak(KlTpm *tpm,
		  ESYS_TR signer,
		  const gchar *signer_auth,
		  TPMI_ALG_SIG_SCHEME scheme,
		  TPMI_ALG_HASH hash,
		  GBytes *qualifying_data,
		  GBytes **attest,
		  GBytes **signature,
		  GError **error)
{
	gboolean ok;

	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(attest != NULL && signature != NULL, FALSE);
	if (qualifying_data != NULL && g_bytes_get_size(qualifying_data) > sizeof(TPMU_HA)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "qualifying data too long (%" G_GSIZE_FORMAT " bytes, at most %u)",
			    g_bytes_get_size(qualifying_data),
			    (guint)sizeof(TPMU_HA));
		return FALSE;
	}
	kl_tpm_busy(tpm, "TPM2_Certify");
	ok = tpm->backend->certify_ak(
	    tpm, signer, signer_auth, scheme, hash, qualifying_data, attest, signature, error);
	kl_tpm_busy(tpm, NULL);
	if (ok)
		kl_tpm_set_unusable(tpm, NULL); /* e.g. a lockout ended */
	return ok;
}

gboolean
kl_tpm_activate_credential(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error)
{
	gboolean ok;

	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(secret != NULL, FALSE);
	kl_tpm_busy(tpm, "TPM2_ActivateCredential");
	ok = tpm->backend->activate_credential(tpm, blob, secret, error);
	kl_tpm_busy(tpm, NULL);
	if (ok)
		kl_tpm_set_unusable(tpm, NULL); /* e.g. a lockout ended */
	return ok;
}
