/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The --avoid-tpm software stand-in. It behaves like a TPM as far as the
 * registrar and the verifier can observe: an RSA-2048 EK in the shape of the
 * TCG default EK template (L-1), an RSA-2048 restricted signing AK under it,
 * TPM2_Quote, TPM2_Certify and TPM2_ActivateCredential computed with the same
 * math a TPM uses, and 24 SHA-256 PCRs. It proves nothing about the machine:
 * the keys live in a file.
 *
 * State (all under the `keylime_dir` given as KlTpmOptions.state_dir):
 *
 *   software_tpm.json  (written by the agent, mode 0600, atomically)
 *     { "version": 1,
 *       "ek_private_key": "<PEM PKCS#8 RSA-2048 key>",
 *       "ak_private_key": "<PEM PKCS#8 RSA-2048 key>" }
 *     Created on first use. Delete it to get a new identity (the registrar
 *     then answers 403 until the old agent record is deleted).
 *
 *   software_pcrs.json  (optional, written by tests or demos, read only)
 *     { "sha256": { "<PCR index 0..23>": "<64 hex digits>", ... } }
 *     e.g. { "sha256": { "0": "3d45...", "10": "a1b2..." } }
 *     PCRs not listed are all zeros. It is read again on every PCR read and
 *     quote, so rewriting it simulates extends while the agent runs. Only the
 *     sha256 bank exists.
 *
 * Crypto: GnuTLS for key generation, persistence, hashing, HMAC and RSASSA
 * signatures; nettle/hogweed (GnuTLS's own crypto back end) for the raw RSA
 * private operation behind RSA-OAEP and for AES-128 in CFB mode, which the
 * GnuTLS API of Debian 12 does not offer.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <gmp.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-glib/json-glib.h>
#include <nettle/aes.h>
#include <nettle/bignum.h>
#include <nettle/cfb.h>
#include <nettle/memops.h>
#include <nettle/rsa.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "keylime-agent/kl-error.h"
#include "kl-tpm-backend.h"

#define KL_SOFT_STATE_FILE    "software_tpm.json"
#define KL_SOFT_PCRS_FILE     "software_pcrs.json"
#define KL_SOFT_STATE_VERSION 1
#define KL_SOFT_PCR_COUNT     24
#define KL_SOFT_PCR_MASK_ALL  0x00ffffffu
#define KL_SOFT_RSA_BITS      2048
#define KL_SOFT_RSA_BYTES     (KL_SOFT_RSA_BITS / 8)
#define KL_SOFT_DIGEST_SIZE   32 /* SHA-256 */
#define KL_SOFT_NAME_SIZE     (2 + KL_SOFT_DIGEST_SIZE)
#define KL_SOFT_AES_BITS      128
/* "firmware" version reported in attestations: 1.0 of the stand-in */
#define KL_SOFT_FIRMWARE_VERSION G_GUINT64_CONSTANT(0x0001000000000000)
#define KL_SOFT_DESCRIPTION	 "software TPM stand-in (INSECURE: --avoid-tpm)"

/* TPM2_PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the TCG default EK templates */
static const guint8 kl_soft_ek_policy[KL_SOFT_DIGEST_SIZE] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
	0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
	0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

typedef struct {
	/* EK: the GnuTLS key plus its nettle form for the raw RSA operation */
	gnutls_x509_privkey_t ek_key;
	struct rsa_public_key ek_rsa_pub;
	struct rsa_private_key ek_rsa_priv;
	gboolean ek_rsa_ready;
	TPMT_PUBLIC ek_area;
	guint8 ek_qualified_name[KL_SOFT_NAME_SIZE];

	/* AK */
	gnutls_privkey_t ak_key;
	TPMT_PUBLIC ak_area;
	guint8 ak_name[KL_SOFT_NAME_SIZE];
	guint8 ak_qualified_name[KL_SOFT_NAME_SIZE];

	/* PCRs of the only bank (SHA-256) */
	guint8 pcrs[KL_SOFT_PCR_COUNT][KL_SOFT_DIGEST_SIZE];
	gchar *pcrs_path; /* NULL without a state directory */

	guint64 last_clock;
} KlTpmSoft;

static void
kl_tpm_soft_free(KlTpmSoft *soft)
{
	if (soft == NULL)
		return;
	if (soft->ek_key != NULL)
		gnutls_x509_privkey_deinit(soft->ek_key);
	if (soft->ek_rsa_ready) {
		rsa_public_key_clear(&soft->ek_rsa_pub);
		rsa_private_key_clear(&soft->ek_rsa_priv);
	}
	if (soft->ak_key != NULL)
		gnutls_privkey_deinit(soft->ak_key);
	g_free(soft->pcrs_path);
	memset(soft, 0, sizeof(*soft));
	g_free(soft);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTpmSoft, kl_tpm_soft_free)

/* ---- small helpers ---------------------------------------------------------------------- */

static void
kl_soft_set_rc_error(GError **error, TSS2_RC rc, const gchar *what)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_INTERNAL,
		    "software TPM: %s failed: %s",
		    what,
		    Tss2_RC_Decode(rc));
}

static void
kl_soft_datum_free(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		gnutls_memset(d->data, 0, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

static gboolean
kl_soft_sha256(const void *data, gsize len, guint8 out[KL_SOFT_DIGEST_SIZE], GError **error)
{
	int ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out);
	if (ret < 0) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "SHA-256 failed: %s", gnutls_strerror(ret));
		return FALSE;
	}
	return TRUE;
}

/* name = nameAlg (SHA-256) || SHA-256(marshalled TPMT_PUBLIC) */
static gboolean
kl_soft_compute_name(const TPMT_PUBLIC *area, guint8 name[KL_SOFT_NAME_SIZE], GError **error)
{
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Marshal(area, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		kl_soft_set_rc_error(error, rc, "marshalling a public area");
		return FALSE;
	}
	name[0] = TPM2_ALG_SHA256 >> 8;
	name[1] = TPM2_ALG_SHA256 & 0xff;
	return kl_soft_sha256(buf, off, name + 2, error);
}

/* qualified name = nameAlg || H(parent qualified name || name) */
static gboolean
kl_soft_compute_qualified_name(const guint8 *parent_qn,
			       gsize parent_qn_len,
			       const guint8 name[KL_SOFT_NAME_SIZE],
			       guint8 out[KL_SOFT_NAME_SIZE],
			       GError **error)
{
	guint8 buf[KL_SOFT_NAME_SIZE * 2];
	g_assert(parent_qn_len <= KL_SOFT_NAME_SIZE);
	memcpy(buf, parent_qn, parent_qn_len);
	memcpy(buf + parent_qn_len, name, KL_SOFT_NAME_SIZE);
	out[0] = TPM2_ALG_SHA256 >> 8;
	out[1] = TPM2_ALG_SHA256 & 0xff;
	return kl_soft_sha256(buf, parent_qn_len + KL_SOFT_NAME_SIZE, out + 2, error);
}

static GBytes *
kl_soft_marshal_tpm2b_public(const TPMT_PUBLIC *area, GError **error)
{
	TPM2B_PUBLIC pub = { .size = 0, .publicArea = *area };
	guint8 buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		kl_soft_set_rc_error(error, rc, "marshalling a TPM2B_PUBLIC");
		return NULL;
	}
	return g_bytes_new(buf, off);
}

/* copies a big-endian unsigned integer into out[len], left-padded; FALSE if it is longer */
static gboolean
kl_soft_copy_uint(const gnutls_datum_t *d, guint8 *out, gsize len)
{
	gsize skip = 0;
	while (skip < d->size && d->data[skip] == 0)
		skip++;
	if (d->size - skip > len)
		return FALSE;
	memset(out, 0, len - (d->size - skip));
	memcpy(out + len - (d->size - skip), d->data + skip, d->size - skip);
	return TRUE;
}

static void
kl_soft_random(void *ctx, size_t length, uint8_t *dst)
{
	/* only blinding values for the RSA private operation */
	if (gnutls_rnd(GNUTLS_RND_NONCE, dst, length) < 0) {
		/* blinding with a fixed value is still correct, just not blinded as well */
		memset(dst, 0x5a, length);
	}
}

/* ---- state file --------------------------------------------------------------------------- */

static const gchar *
kl_soft_json_string(JsonObject *obj, const gchar *key, const gchar *path, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: member \"%s\" is missing or not a string; the file is corrupt: "
			    "delete it to create a new software TPM identity",
			    path,
			    key);
		return NULL;
	}
	return json_node_get_string(node);
}

static JsonObject *
kl_soft_parse_file(const gchar *path, GError **error)
{
	g_autofree gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) local = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;

	if (!g_file_get_contents(path, &data, &len, &local)) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_IO, "cannot read %s: %s", path, local->message);
		return NULL;
	}
	if (!json_parser_load_from_data(parser, data, (gssize)len, &local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s is not valid JSON: %s",
			    path,
			    local->message);
		return NULL;
	}
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s does not contain a JSON object",
			    path);
		return NULL;
	}
	return json_object_ref(json_node_get_object(root));
}

static gnutls_x509_privkey_t
kl_soft_import_key(const gchar *pem, const gchar *what, const gchar *path, GError **error)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned int)strlen(pem) };
	unsigned int bits = 0;
	int ret;

	ret = gnutls_x509_privkey_init(&key);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot allocate a key: %s",
			    gnutls_strerror(ret));
		return NULL;
	}
	ret = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		gnutls_x509_privkey_deinit(key);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: the %s private key cannot be read (%s); delete the file to "
			    "create a new software TPM identity",
			    path,
			    what,
			    gnutls_strerror(ret));
		return NULL;
	}
	if (gnutls_x509_privkey_get_pk_algorithm2(key, &bits) != GNUTLS_PK_RSA ||
	    bits != KL_SOFT_RSA_BITS) {
		gnutls_x509_privkey_deinit(key);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: the %s key is not an RSA-2048 key; delete the file to create a "
			    "new software TPM identity",
			    path,
			    what);
		return NULL;
	}
	return key;
}

static gnutls_x509_privkey_t
kl_soft_generate_key(GError **error)
{
	gnutls_x509_privkey_t key = NULL;
	int ret = gnutls_x509_privkey_init(&key);
	if (ret >= 0)
		ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_RSA, KL_SOFT_RSA_BITS, 0);
	if (ret < 0) {
		if (key != NULL)
			gnutls_x509_privkey_deinit(key);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot generate an RSA-2048 key for the software TPM: %s",
			    gnutls_strerror(ret));
		return NULL;
	}
	return key;
}

static gchar *
kl_soft_export_key(gnutls_x509_privkey_t key, GError **error)
{
	gnutls_datum_t out = { NULL, 0 };
	gchar *pem;
	int ret = gnutls_x509_privkey_export2_pkcs8(
	    key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &out);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot export a software TPM key: %s",
			    gnutls_strerror(ret));
		return NULL;
	}
	pem = g_strndup((const gchar *)out.data, out.size);
	kl_soft_datum_free(&out);
	return pem;
}

static gboolean
kl_soft_save_state(const gchar *path,
		   gnutls_x509_privkey_t ek,
		   gnutls_x509_privkey_t ak,
		   GError **error)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree gchar *ek_pem = NULL;
	g_autofree gchar *ak_pem = NULL;
	g_autofree gchar *text = NULL;
	g_autoptr(GError) local = NULL;
	gsize len = 0;
	gboolean ok;

	ek_pem = kl_soft_export_key(ek, error);
	if (ek_pem == NULL)
		return FALSE;
	ak_pem = kl_soft_export_key(ak, error);
	if (ak_pem == NULL)
		return FALSE;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "version");
	json_builder_add_int_value(b, KL_SOFT_STATE_VERSION);
	json_builder_set_member_name(b, "ek_private_key");
	json_builder_add_string_value(b, ek_pem);
	json_builder_set_member_name(b, "ak_private_key");
	json_builder_add_string_value(b, ak_pem);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	text = json_generator_to_data(gen, &len);

	/* temporary file + fsync + rename, created 0600 */
	ok = g_file_set_contents_full(path,
				      text,
				      (gssize)len,
				      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
				      0600,
				      &local);
	explicit_bzero(text, len);
	explicit_bzero(ek_pem, strlen(ek_pem));
	explicit_bzero(ak_pem, strlen(ak_pem));
	if (!ok) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot write the software TPM state %s: %s; check that the "
			    "directory is writable by the agent",
			    path,
			    local->message);
		return FALSE;
	}
	return TRUE;
}

/* loads the keys from @path, or creates and saves them when @path does not exist */
static gboolean
kl_soft_load_or_create_keys(const gchar *path,
			    gnutls_x509_privkey_t *ek_out,
			    gnutls_x509_privkey_t *ak_out,
			    GError **error)
{
	gnutls_x509_privkey_t ek = NULL;
	gnutls_x509_privkey_t ak = NULL;

	if (path != NULL && g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_autoptr(JsonObject) obj = kl_soft_parse_file(path, error);
		JsonNode *version;
		const gchar *ek_pem;
		const gchar *ak_pem;

		if (obj == NULL)
			return FALSE;
		version = json_object_get_member(obj, "version");
		if (version == NULL || !JSON_NODE_HOLDS_VALUE(version) ||
		    json_node_get_value_type(version) != G_TYPE_INT64 ||
		    json_node_get_int(version) != KL_SOFT_STATE_VERSION) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s: unknown or missing \"version\" (expected %d); delete the "
				    "file to create a new software TPM identity",
				    path,
				    KL_SOFT_STATE_VERSION);
			return FALSE;
		}
		ek_pem = kl_soft_json_string(obj, "ek_private_key", path, error);
		if (ek_pem == NULL)
			return FALSE;
		ak_pem = kl_soft_json_string(obj, "ak_private_key", path, error);
		if (ak_pem == NULL)
			return FALSE;
		ek = kl_soft_import_key(ek_pem, "EK", path, error);
		if (ek == NULL)
			return FALSE;
		ak = kl_soft_import_key(ak_pem, "AK", path, error);
		if (ak == NULL) {
			gnutls_x509_privkey_deinit(ek);
			return FALSE;
		}
		g_debug("software TPM: loaded EK and AK from %s", path);
	} else {
		ek = kl_soft_generate_key(error);
		if (ek == NULL)
			return FALSE;
		ak = kl_soft_generate_key(error);
		if (ak == NULL) {
			gnutls_x509_privkey_deinit(ek);
			return FALSE;
		}
		if (path != NULL) {
			if (!kl_soft_save_state(path, ek, ak, error)) {
				gnutls_x509_privkey_deinit(ek);
				gnutls_x509_privkey_deinit(ak);
				return FALSE;
			}
			g_message("software TPM: created a new EK and AK in %s", path);
		} else {
			g_message("software TPM: no state directory, the EK and AK are "
				  "ephemeral");
		}
	}
	*ek_out = ek;
	*ak_out = ak;
	return TRUE;
}

/* ---- key material → TPM structures -------------------------------------------------------- */

typedef struct {
	gnutls_datum_t m, e, d, p, q, u, e1, e2;
} KlSoftRsaRaw;

static void
kl_soft_rsa_raw_clear(KlSoftRsaRaw *r)
{
	kl_soft_datum_free(&r->m);
	kl_soft_datum_free(&r->e);
	kl_soft_datum_free(&r->d);
	kl_soft_datum_free(&r->p);
	kl_soft_datum_free(&r->q);
	kl_soft_datum_free(&r->u);
	kl_soft_datum_free(&r->e1);
	kl_soft_datum_free(&r->e2);
}

static gboolean
kl_soft_rsa_export(gnutls_x509_privkey_t key, KlSoftRsaRaw *r, GError **error)
{
	static const guint8 e65537[] = { 0x01, 0x00, 0x01 };
	guint8 e[8];
	int ret = gnutls_x509_privkey_export_rsa_raw2(
	    key, &r->m, &r->e, &r->d, &r->p, &r->q, &r->u, &r->e1, &r->e2);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot read the software TPM RSA key: %s",
			    gnutls_strerror(ret));
		return FALSE;
	}
	/* TPM RSA keys here use the default exponent (exponent 0 in the public area) */
	if (!kl_soft_copy_uint(&r->e, e, sizeof(e)) ||
	    memcmp(e + sizeof(e) - sizeof(e65537), e65537, sizeof(e65537)) != 0 ||
	    memcmp(e, "\0\0\0\0\0", sizeof(e) - sizeof(e65537)) != 0) {
		kl_soft_rsa_raw_clear(r);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the software TPM RSA key does not use the exponent 65537; delete "
			    "the state file to create a new identity");
		return FALSE;
	}
	return TRUE;
}

static gboolean
kl_soft_fill_modulus(const KlSoftRsaRaw *r, TPM2B_PUBLIC_KEY_RSA *unique, GError **error)
{
	if (!kl_soft_copy_uint(&r->m, unique->buffer, KL_SOFT_RSA_BYTES)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the software TPM RSA modulus is longer than 2048 bits");
		return FALSE;
	}
	unique->size = KL_SOFT_RSA_BYTES;
	return TRUE;
}

/* TCG EK Credential Profile, default RSA-2048 EK template (L-1) */
static void
kl_soft_ek_template(TPMT_PUBLIC *area)
{
	memset(area, 0, sizeof(*area));
	area->type = TPM2_ALG_RSA;
	area->nameAlg = TPM2_ALG_SHA256;
	area->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
				 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	area->authPolicy.size = sizeof(kl_soft_ek_policy);
	memcpy(area->authPolicy.buffer, kl_soft_ek_policy, sizeof(kl_soft_ek_policy));
	area->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
	area->parameters.rsaDetail.symmetric.keyBits.aes = KL_SOFT_AES_BITS;
	area->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	area->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
	area->parameters.rsaDetail.keyBits = KL_SOFT_RSA_BITS;
	area->parameters.rsaDetail.exponent = 0;
}

/* the AK as the agent creates it: restricted RSASSA-SHA256 signing key */
static void
kl_soft_ak_template(TPMT_PUBLIC *area)
{
	memset(area, 0, sizeof(*area));
	area->type = TPM2_ALG_RSA;
	area->nameAlg = TPM2_ALG_SHA256;
	area->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
				 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	area->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
	area->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
	area->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
	area->parameters.rsaDetail.keyBits = KL_SOFT_RSA_BITS;
	area->parameters.rsaDetail.exponent = 0;
}

static void
kl_soft_mpz_from_datum(mpz_t x, const gnutls_datum_t *d)
{
	nettle_mpz_set_str_256_u(x, d->size, d->data);
}

/* the EK as a nettle key; CRT parameters are recomputed from p, q, d */
static gboolean
kl_soft_setup_ek_rsa(KlTpmSoft *soft, const KlSoftRsaRaw *r, GError **error)
{
	mpz_t t;

	rsa_public_key_init(&soft->ek_rsa_pub);
	rsa_private_key_init(&soft->ek_rsa_priv);
	soft->ek_rsa_ready = TRUE;

	kl_soft_mpz_from_datum(soft->ek_rsa_pub.n, &r->m);
	kl_soft_mpz_from_datum(soft->ek_rsa_pub.e, &r->e);
	kl_soft_mpz_from_datum(soft->ek_rsa_priv.d, &r->d);
	kl_soft_mpz_from_datum(soft->ek_rsa_priv.p, &r->p);
	kl_soft_mpz_from_datum(soft->ek_rsa_priv.q, &r->q);

	mpz_init(t);
	mpz_sub_ui(t, soft->ek_rsa_priv.p, 1);
	mpz_fdiv_r(soft->ek_rsa_priv.a, soft->ek_rsa_priv.d, t);
	mpz_sub_ui(t, soft->ek_rsa_priv.q, 1);
	mpz_fdiv_r(soft->ek_rsa_priv.b, soft->ek_rsa_priv.d, t);
	mpz_clear(t);
	if (mpz_invert(soft->ek_rsa_priv.c, soft->ek_rsa_priv.q, soft->ek_rsa_priv.p) == 0 ||
	    !rsa_public_key_prepare(&soft->ek_rsa_pub) ||
	    !rsa_private_key_prepare(&soft->ek_rsa_priv) ||
	    soft->ek_rsa_pub.size != KL_SOFT_RSA_BYTES) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the software TPM EK is not a usable RSA-2048 key; delete the state "
			    "file to create a new identity");
		return FALSE;
	}
	return TRUE;
}

/* ---- PCRs --------------------------------------------------------------------------------- */

static gboolean
kl_soft_load_pcrs(KlTpmSoft *soft, GError **error)
{
	g_autoptr(JsonObject) root = NULL;
	guint8 pcrs[KL_SOFT_PCR_COUNT][KL_SOFT_DIGEST_SIZE];
	JsonObjectIter iter;
	const gchar *member;
	JsonNode *node;

	memset(pcrs, 0, sizeof(pcrs));
	if (soft->pcrs_path == NULL || !g_file_test(soft->pcrs_path, G_FILE_TEST_EXISTS)) {
		memcpy(soft->pcrs, pcrs, sizeof(pcrs));
		return TRUE;
	}
	root = kl_soft_parse_file(soft->pcrs_path, error);
	if (root == NULL)
		return FALSE;

	json_object_iter_init(&iter, root);
	while (json_object_iter_next(&iter, &member, &node)) {
		JsonObjectIter bank_iter;
		const gchar *index_text;
		JsonNode *value;

		if (g_strcmp0(member, "sha256") != 0 || !JSON_NODE_HOLDS_OBJECT(node)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s: unexpected member \"%s\"; the software TPM has only a "
				    "\"sha256\" bank, given as an object {\"<pcr>\": \"<hex>\"}",
				    soft->pcrs_path,
				    member);
			return FALSE;
		}
		json_object_iter_init(&bank_iter, json_node_get_object(node));
		while (json_object_iter_next(&bank_iter, &index_text, &value)) {
			guint64 index = 0;
			const gchar *hex;
			gsize i;

			if (!g_ascii_string_to_unsigned(
				index_text, 10, 0, KL_SOFT_PCR_COUNT - 1, &index, NULL)) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "%s: \"%s\" is not a PCR index between 0 and 23",
					    soft->pcrs_path,
					    index_text);
				return FALSE;
			}
			hex = (JSON_NODE_HOLDS_VALUE(value) &&
			       json_node_get_value_type(value) == G_TYPE_STRING)
				  ? json_node_get_string(value)
				  : NULL;
			if (hex == NULL || strlen(hex) != KL_SOFT_DIGEST_SIZE * 2) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "%s: PCR %s must be a string of 64 hex digits",
					    soft->pcrs_path,
					    index_text);
				return FALSE;
			}
			for (i = 0; i < KL_SOFT_DIGEST_SIZE; i++) {
				gint hi = g_ascii_xdigit_value(hex[2 * i]);
				gint lo = g_ascii_xdigit_value(hex[2 * i + 1]);
				if (hi < 0 || lo < 0) {
					g_set_error(error,
						    KL_ERROR,
						    KL_ERROR_INVALID_DATA,
						    "%s: PCR %s must be a string of 64 hex digits",
						    soft->pcrs_path,
						    index_text);
					return FALSE;
				}
				pcrs[index][i] = (guint8)(hi << 4 | lo);
			}
		}
	}
	memcpy(soft->pcrs, pcrs, sizeof(pcrs));
	return TRUE;
}

static gboolean
kl_soft_check_pcr_args(TPMI_ALG_HASH bank, guint32 pcr_mask, GError **error)
{
	if (bank != TPM2_ALG_SHA256) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "PCR bank 0x%04x is not allocated; the software TPM has only the "
			    "sha256 bank (0x000b)",
			    bank);
		return FALSE;
	}
	if ((pcr_mask & ~KL_SOFT_PCR_MASK_ALL) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "PCR selection 0x%08x names PCRs above 23",
			    pcr_mask);
		return FALSE;
	}
	return TRUE;
}

/* ---- signing ------------------------------------------------------------------------------ */

static guint64
kl_soft_next_clock(KlTpmSoft *soft)
{
	/* milliseconds, strictly increasing within the process and across restarts */
	guint64 now = (guint64)(g_get_real_time() / 1000);
	if (now <= soft->last_clock)
		now = soft->last_clock + 1;
	soft->last_clock = now;
	return now;
}

static void
kl_soft_attest_header(KlTpmSoft *soft, TPMS_ATTEST *attest, TPM2_ST type, GBytes *qualifying_data)
{
	memset(attest, 0, sizeof(*attest));
	attest->magic = TPM2_GENERATED_VALUE;
	attest->type = type;
	/* the signer (the AK) is identified by its qualified name */
	attest->qualifiedSigner.size = KL_SOFT_NAME_SIZE;
	memcpy(attest->qualifiedSigner.name, soft->ak_qualified_name, KL_SOFT_NAME_SIZE);
	if (qualifying_data != NULL) {
		gsize len = 0;
		const guint8 *data = g_bytes_get_data(qualifying_data, &len);
		attest->extraData.size = (UINT16)len;
		if (len > 0)
			memcpy(attest->extraData.buffer, data, len);
	}
	attest->clockInfo.clock = kl_soft_next_clock(soft);
	attest->clockInfo.resetCount = 0;
	attest->clockInfo.restartCount = 0;
	attest->clockInfo.safe = TPM2_YES;
	attest->firmwareVersion = KL_SOFT_FIRMWARE_VERSION;
}

static gboolean
kl_soft_check_qualifying_data(GBytes *qualifying_data, GError **error)
{
	if (qualifying_data != NULL && g_bytes_get_size(qualifying_data) > sizeof(TPMU_HA)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "qualifying data of %" G_GSIZE_FORMAT " bytes is longer than the "
			    "%" G_GSIZE_FORMAT " bytes a TPM accepts",
			    g_bytes_get_size(qualifying_data),
			    sizeof(TPMU_HA));
		return FALSE;
	}
	return TRUE;
}

/* the AK signs with its own scheme only (restricted key); NULL means "the key's scheme" */
static gboolean
kl_soft_check_scheme(KlTpm *tpm, TPMI_ALG_SIG_SCHEME scheme, TPMI_ALG_HASH hash, GError **error)
{
	if (scheme == TPM2_ALG_NULL)
		return TRUE;
	if (scheme != tpm->ak_scheme || hash != tpm->ak_hash) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "the AK signs only with rsassa/sha256 (0x0014/0x000b), not "
			    "0x%04x/0x%04x",
			    scheme,
			    hash);
		return FALSE;
	}
	return TRUE;
}

/* marshals @attest and signs SHA-256(attest) with the AK, RSASSA-PKCS1-v1_5 */
static gboolean
kl_soft_sign_attest(KlTpmSoft *soft,
		    const TPMS_ATTEST *attest,
		    GBytes **attest_out,
		    GBytes **signature_out,
		    GError **error)
{
	guint8 buf[sizeof(TPMS_ATTEST)];
	guint8 digest[KL_SOFT_DIGEST_SIZE];
	guint8 sig_buf[sizeof(TPMT_SIGNATURE)];
	gnutls_datum_t digest_d = { digest, sizeof(digest) };
	gnutls_datum_t sig = { NULL, 0 };
	TPMT_SIGNATURE tsig;
	size_t off = 0;
	size_t sig_off = 0;
	TSS2_RC rc;
	int ret;

	rc = Tss2_MU_TPMS_ATTEST_Marshal(attest, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		kl_soft_set_rc_error(error, rc, "marshalling a TPMS_ATTEST");
		return FALSE;
	}
	if (!kl_soft_sha256(buf, off, digest, error))
		return FALSE;
	ret = gnutls_privkey_sign_hash2(soft->ak_key, GNUTLS_SIGN_RSA_SHA256, 0, &digest_d, &sig);
	if (ret < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "the software TPM could not sign with the AK: %s",
			    gnutls_strerror(ret));
		return FALSE;
	}
	memset(&tsig, 0, sizeof(tsig));
	tsig.sigAlg = TPM2_ALG_RSASSA;
	tsig.signature.rsassa.hash = TPM2_ALG_SHA256;
	if (!kl_soft_copy_uint(&sig, tsig.signature.rsassa.sig.buffer, KL_SOFT_RSA_BYTES)) {
		kl_soft_datum_free(&sig);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "the AK signature is longer than the modulus");
		return FALSE;
	}
	kl_soft_datum_free(&sig);
	tsig.signature.rsassa.sig.size = KL_SOFT_RSA_BYTES;
	rc = Tss2_MU_TPMT_SIGNATURE_Marshal(&tsig, sig_buf, sizeof(sig_buf), &sig_off);
	if (rc != TSS2_RC_SUCCESS) {
		kl_soft_set_rc_error(error, rc, "marshalling a TPMT_SIGNATURE");
		return FALSE;
	}
	*attest_out = g_bytes_new(buf, off);
	*signature_out = g_bytes_new(sig_buf, sig_off);
	return TRUE;
}

/* ---- credential activation --------------------------------------------------------------- */

/* SP 800-108 counter-mode KDF with HMAC-SHA-256, as TPM 2.0 Part 1 §11.4.10.2 */
static gboolean
kl_soft_kdfa(const guint8 *key,
	     gsize key_len,
	     const gchar *label,
	     const guint8 *context_u,
	     gsize context_u_len,
	     guint32 bits,
	     guint8 *out,
	     GError **error)
{
	gsize out_len = (bits + 7) / 8;
	gsize done = 0;
	guint32 counter = 0;

	while (done < out_len) {
		gnutls_hmac_hd_t h = NULL;
		guint8 block[KL_SOFT_DIGEST_SIZE];
		guint8 be[4];
		gsize n;
		int ret;

		counter++;
		ret = gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key, key_len);
		if (ret < 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INTERNAL,
				    "HMAC failed: %s",
				    gnutls_strerror(ret));
			return FALSE;
		}
		be[0] = counter >> 24;
		be[1] = counter >> 16;
		be[2] = counter >> 8;
		be[3] = counter;
		gnutls_hmac(h, be, 4);
		/* the label includes its terminating NUL */
		gnutls_hmac(h, label, strlen(label) + 1);
		if (context_u_len > 0)
			gnutls_hmac(h, context_u, context_u_len);
		be[0] = bits >> 24;
		be[1] = bits >> 16;
		be[2] = bits >> 8;
		be[3] = bits;
		gnutls_hmac(h, be, 4);
		gnutls_hmac_deinit(h, block);
		n = MIN(sizeof(block), out_len - done);
		memcpy(out + done, block, n);
		gnutls_memset(block, 0, sizeof(block));
		done += n;
	}
	return TRUE;
}

/* MGF1 with SHA-256 (RFC 8017 B.2.1); XORs the mask into @data */
static gboolean
kl_soft_mgf1_xor(const guint8 *seed, gsize seed_len, guint8 *data, gsize len, GError **error)
{
	guint8 buf[KL_SOFT_RSA_BYTES + 4];
	guint8 mask[KL_SOFT_DIGEST_SIZE];
	guint32 counter = 0;
	gsize done = 0;

	g_assert(seed_len <= KL_SOFT_RSA_BYTES);
	memcpy(buf, seed, seed_len);
	while (done < len) {
		gsize i;
		gsize n;

		buf[seed_len] = counter >> 24;
		buf[seed_len + 1] = counter >> 16;
		buf[seed_len + 2] = counter >> 8;
		buf[seed_len + 3] = counter;
		if (!kl_soft_sha256(buf, seed_len + 4, mask, error))
			return FALSE;
		n = MIN(sizeof(mask), len - done);
		for (i = 0; i < n; i++)
			data[done + i] ^= mask[i];
		done += n;
		counter++;
	}
	gnutls_memset(mask, 0, sizeof(mask));
	gnutls_memset(buf, 0, sizeof(buf));
	return TRUE;
}

/*
 * RSA-OAEP-SHA256 decryption with the EK (label "IDENTITY\0"). The decoding
 * runs over the whole block without early exits and reports one error for
 * every kind of bad padding.
 */
static gboolean
kl_soft_ek_decrypt_oaep(KlTpmSoft *soft,
			const guint8 *in,
			gsize in_len,
			const gchar *label,
			guint8 *out,
			gsize out_size,
			gsize *out_len,
			GError **error)
{
	const gsize k = KL_SOFT_RSA_BYTES;
	const gsize hlen = KL_SOFT_DIGEST_SIZE;
	guint8 em[KL_SOFT_RSA_BYTES];
	guint8 lhash[KL_SOFT_DIGEST_SIZE];
	guint8 *seed = em + 1;
	guint8 *db = em + 1 + hlen;
	const gsize db_len = k - hlen - 1;
	guint bad = 0;
	guint found = 0;
	gsize msg_start = 0;
	gsize i;
	mpz_t c, m;
	int ok;

	if (in_len != k) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the encrypted secret has %" G_GSIZE_FORMAT " bytes, the EK needs "
			    "%" G_GSIZE_FORMAT "; the blob was not made for this EK",
			    in_len,
			    k);
		return FALSE;
	}
	mpz_init(c);
	mpz_init(m);
	nettle_mpz_set_str_256_u(c, in_len, in);
	ok = mpz_cmp(c, soft->ek_rsa_pub.n) < 0 &&
	     rsa_compute_root_tr(&soft->ek_rsa_pub, &soft->ek_rsa_priv, NULL, kl_soft_random, m, c);
	if (ok)
		nettle_mpz_get_str_256(k, em, m);
	mpz_clear(c);
	mpz_clear(m);
	if (!ok) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the encrypted secret cannot be decrypted with the EK; the blob was "
			    "not made for this EK");
		return FALSE;
	}

	if (!kl_soft_sha256(label, strlen(label) + 1, lhash, error) ||
	    !kl_soft_mgf1_xor(db, db_len, seed, hlen, error) ||
	    !kl_soft_mgf1_xor(seed, hlen, db, db_len, error)) {
		gnutls_memset(em, 0, sizeof(em));
		return FALSE;
	}
	bad |= em[0];
	bad |= !memeql_sec(db, lhash, hlen);
	/* PS (zeros) then 0x01; scan everything */
	for (i = hlen; i < db_len; i++) {
		guint is_one = (db[i] == 0x01);
		guint is_zero = (db[i] == 0x00);
		guint first = is_one & !found;
		msg_start |= (gsize)(-(gssize)first) & (i + 1);
		bad |= !found & !is_one & !is_zero;
		found |= is_one;
	}
	bad |= !found;
	if (bad || db_len - msg_start > out_size) {
		gnutls_memset(em, 0, sizeof(em));
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the encrypted secret does not decrypt with the EK (bad OAEP "
			    "padding); the blob was not made for this EK");
		return FALSE;
	}
	*out_len = db_len - msg_start;
	memcpy(out, db + msg_start, *out_len);
	gnutls_memset(em, 0, sizeof(em));
	return TRUE;
}

/* ---- back end operations ------------------------------------------------------------------ */

static gboolean
kl_soft_option_is(const gchar *value, const gchar *const *accepted)
{
	if (value == NULL || value[0] == '\0')
		return TRUE;
	for (; *accepted != NULL; accepted++) {
		if (g_ascii_strcasecmp(value, *accepted) == 0)
			return TRUE;
	}
	return FALSE;
}

/* the stand-in has one AK type: RSA-2048, SHA-256, RSASSA (the defaults) */
static gboolean
kl_soft_check_options(const KlTpmOptions *options, GError **error)
{
	static const gchar *const enc[] = { "rsa", "rsa2048", NULL };
	static const gchar *const hash[] = { "sha256", NULL };
	static const gchar *const sign[] = { "rsassa", NULL };

	if (options == NULL)
		return TRUE;
	if (!kl_soft_option_is(options->encryption_alg, enc) ||
	    !kl_soft_option_is(options->hash_alg, hash) ||
	    !kl_soft_option_is(options->signing_alg, sign)) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "the software TPM stand-in (--avoid-tpm) supports only "
		    "tpm_encryption_alg=rsa, tpm_hash_alg=sha256 and tpm_signing_alg=rsassa, "
		    "not %s/%s/%s; change the configuration or use a real TPM",
		    options->encryption_alg != NULL ? options->encryption_alg : "rsa",
		    options->hash_alg != NULL ? options->hash_alg : "sha256",
		    options->signing_alg != NULL ? options->signing_alg : "rsassa");
		return FALSE;
	}
	return TRUE;
}

static gboolean
kl_soft_open(KlTpm *tpm, const KlTpmOptions *options, GError **error)
{
	g_autoptr(KlTpmSoft) soft = g_new0(KlTpmSoft, 1);
	g_autofree gchar *state_path = NULL;
	g_autoptr(GBytes) ek_public = NULL;
	g_autoptr(GBytes) ak_public = NULL;
	gnutls_x509_privkey_t ak_x509 = NULL;
	KlSoftRsaRaw ek_raw = { 0 };
	KlSoftRsaRaw ak_raw = { 0 };
	guint8 ek_name[KL_SOFT_NAME_SIZE];
	guint8 hierarchy[4];
	int ret;
	gboolean ok;

	g_warning("INSECURE: running with a software TPM stand-in (--avoid-tpm); the attestation "
		  "proves nothing about this machine");

	if (!kl_soft_check_options(options, error))
		return FALSE;
	if (options != NULL && options->state_dir != NULL && options->state_dir[0] != '\0') {
		if (g_mkdir_with_parents(options->state_dir, 0700) != 0) {
			int saved = errno;
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_IO,
				    "cannot create the directory %s for the software TPM state: "
				    "%s; set keylime_dir to a writable directory",
				    options->state_dir,
				    g_strerror(saved));
			return FALSE;
		}
		state_path = g_build_filename(options->state_dir, KL_SOFT_STATE_FILE, NULL);
		soft->pcrs_path = g_build_filename(options->state_dir, KL_SOFT_PCRS_FILE, NULL);
	}

	if (!kl_soft_load_or_create_keys(state_path, &soft->ek_key, &ak_x509, error))
		return FALSE;

	ret = gnutls_privkey_init(&soft->ak_key);
	if (ret >= 0)
		ret = gnutls_privkey_import_x509(
		    soft->ak_key, ak_x509, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (ret < 0) {
		gnutls_x509_privkey_deinit(ak_x509);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot use the software TPM AK: %s",
			    gnutls_strerror(ret));
		return FALSE;
	}

	/* EK */
	ok = kl_soft_rsa_export(soft->ek_key, &ek_raw, error);
	if (ok) {
		kl_soft_ek_template(&soft->ek_area);
		ok = kl_soft_fill_modulus(&ek_raw, &soft->ek_area.unique.rsa, error) &&
		     kl_soft_setup_ek_rsa(soft, &ek_raw, error);
		kl_soft_rsa_raw_clear(&ek_raw);
	}
	if (!ok)
		return FALSE;

	/* AK */
	ok = kl_soft_rsa_export(ak_x509, &ak_raw, error);
	if (ok) {
		kl_soft_ak_template(&soft->ak_area);
		ok = kl_soft_fill_modulus(&ak_raw, &soft->ak_area.unique.rsa, error);
		kl_soft_rsa_raw_clear(&ak_raw);
	}
	if (!ok)
		return FALSE;

	/* names: EK primary in the endorsement hierarchy, AK its child */
	hierarchy[0] = (TPM2_RH_ENDORSEMENT >> 24) & 0xff;
	hierarchy[1] = (TPM2_RH_ENDORSEMENT >> 16) & 0xff;
	hierarchy[2] = (TPM2_RH_ENDORSEMENT >> 8) & 0xff;
	hierarchy[3] = TPM2_RH_ENDORSEMENT & 0xff;
	if (!kl_soft_compute_name(&soft->ek_area, ek_name, error) ||
	    !kl_soft_compute_qualified_name(
		hierarchy, sizeof(hierarchy), ek_name, soft->ek_qualified_name, error) ||
	    !kl_soft_compute_name(&soft->ak_area, soft->ak_name, error) ||
	    !kl_soft_compute_qualified_name(soft->ek_qualified_name,
					    KL_SOFT_NAME_SIZE,
					    soft->ak_name,
					    soft->ak_qualified_name,
					    error))
		return FALSE;

	ek_public = kl_soft_marshal_tpm2b_public(&soft->ek_area, error);
	if (ek_public == NULL)
		return FALSE;
	ak_public = kl_soft_marshal_tpm2b_public(&soft->ak_area, error);
	if (ak_public == NULL)
		return FALSE;

	if (!kl_soft_load_pcrs(soft, error))
		return FALSE;

	/* all checks passed: fill the cached facts (the front end may have made the arrays) */
	{
		const KlTpmPcrBank bank = { TPM2_ALG_SHA256, KL_SOFT_PCR_MASK_ALL };
		const guint16 hashes[] = {
			TPM2_ALG_SHA1, TPM2_ALG_SHA256, TPM2_ALG_SHA384, TPM2_ALG_SHA512
		};
		const guint16 schemes[] = { TPM2_ALG_RSASSA, TPM2_ALG_RSAPSS };

		if (tpm->pcr_banks == NULL)
			tpm->pcr_banks = g_array_new(FALSE, FALSE, sizeof(KlTpmPcrBank));
		if (tpm->hash_algorithms == NULL)
			tpm->hash_algorithms = g_array_new(FALSE, FALSE, sizeof(guint16));
		if (tpm->signature_schemes == NULL)
			tpm->signature_schemes = g_array_new(FALSE, FALSE, sizeof(guint16));
		g_array_set_size(tpm->pcr_banks, 0);
		g_array_set_size(tpm->hash_algorithms, 0);
		g_array_set_size(tpm->signature_schemes, 0);
		g_array_append_val(tpm->pcr_banks, bank);
		g_array_append_vals(tpm->hash_algorithms, hashes, G_N_ELEMENTS(hashes));
		g_array_append_vals(tpm->signature_schemes, schemes, G_N_ELEMENTS(schemes));
	}

	tpm->ak_public = g_steal_pointer(&ak_public);
	tpm->ak_area = soft->ak_area;
	tpm->ak_name = g_bytes_new(soft->ak_name, KL_SOFT_NAME_SIZE);
	tpm->ak_scheme = TPM2_ALG_RSASSA;
	tpm->ak_hash = TPM2_ALG_SHA256;
	tpm->ak_handle = ESYS_TR_NONE;
	tpm->ek_public = g_steal_pointer(&ek_public);
	g_clear_pointer(&tpm->ek_cert, g_bytes_unref);
	g_free(tpm->description);
	tpm->description = g_strdup(KL_SOFT_DESCRIPTION);
	tpm->backend_data = g_steal_pointer(&soft);
	return TRUE;
}

static void
kl_soft_close(KlTpm *tpm)
{
	KlTpmSoft *soft = tpm->backend_data;
	tpm->backend_data = NULL;
	kl_tpm_soft_free(soft);
}

static ESYS_CONTEXT *
kl_soft_get_esys(KlTpm *tpm)
{
	return NULL;
}

static gboolean
kl_soft_pcr_read(
    KlTpm *tpm, TPMI_ALG_HASH bank, guint32 pcr_mask, GPtrArray **values, GError **error)
{
	KlTpmSoft *soft = tpm->backend_data;
	g_autoptr(GPtrArray) out = NULL;
	guint i;

	if (!kl_soft_check_pcr_args(bank, pcr_mask, error) || !kl_soft_load_pcrs(soft, error))
		return FALSE;
	out = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (i = 0; i < KL_SOFT_PCR_COUNT; i++) {
		if (pcr_mask & (1u << i))
			g_ptr_array_add(out, g_bytes_new(soft->pcrs[i], KL_SOFT_DIGEST_SIZE));
	}
	*values = g_steal_pointer(&out);
	return TRUE;
}

static gboolean
kl_soft_quote(KlTpm *tpm,
	      TPMI_ALG_HASH bank,
	      guint32 pcr_mask,
	      TPMI_ALG_SIG_SCHEME scheme,
	      TPMI_ALG_HASH hash,
	      GBytes *qualifying_data,
	      GBytes **attest,
	      GBytes **signature,
	      GError **error)
{
	KlTpmSoft *soft = tpm->backend_data;
	guint8 concat[KL_SOFT_PCR_COUNT * KL_SOFT_DIGEST_SIZE];
	gsize concat_len = 0;
	TPMS_ATTEST a;
	TPMS_PCR_SELECTION *sel;
	guint i;

	if (!kl_soft_check_scheme(tpm, scheme, hash, error) ||
	    !kl_soft_check_pcr_args(bank, pcr_mask, error) ||
	    !kl_soft_check_qualifying_data(qualifying_data, error) ||
	    !kl_soft_load_pcrs(soft, error))
		return FALSE;

	kl_soft_attest_header(soft, &a, TPM2_ST_ATTEST_QUOTE, qualifying_data);
	a.attested.quote.pcrSelect.count = 1;
	sel = &a.attested.quote.pcrSelect.pcrSelections[0];
	sel->hash = bank;
	sel->sizeofSelect = 3;
	sel->pcrSelect[0] = pcr_mask & 0xff;
	sel->pcrSelect[1] = (pcr_mask >> 8) & 0xff;
	sel->pcrSelect[2] = (pcr_mask >> 16) & 0xff;
	for (i = 0; i < KL_SOFT_PCR_COUNT; i++) {
		if (pcr_mask & (1u << i)) {
			memcpy(concat + concat_len, soft->pcrs[i], KL_SOFT_DIGEST_SIZE);
			concat_len += KL_SOFT_DIGEST_SIZE;
		}
	}
	a.attested.quote.pcrDigest.size = KL_SOFT_DIGEST_SIZE;
	if (!kl_soft_sha256(concat, concat_len, a.attested.quote.pcrDigest.buffer, error))
		return FALSE;
	return kl_soft_sign_attest(soft, &a, attest, signature, error);
}

static gboolean
kl_soft_certify_ak(KlTpm *tpm,
		   ESYS_TR signer,
		   const gchar *signer_auth,
		   TPMI_ALG_SIG_SCHEME scheme,
		   TPMI_ALG_HASH hash,
		   GBytes *qualifying_data,
		   GBytes **attest,
		   GBytes **signature,
		   GError **error)
{
	KlTpmSoft *soft = tpm->backend_data;
	TPMS_ATTEST a;

	if (signer != ESYS_TR_NONE) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "the software TPM can certify the AK only with the AK itself (no "
			    "IAK or other signing keys exist with --avoid-tpm)");
		return FALSE;
	}
	if (!kl_soft_check_scheme(tpm, scheme, hash, error) ||
	    !kl_soft_check_qualifying_data(qualifying_data, error))
		return FALSE;

	kl_soft_attest_header(soft, &a, TPM2_ST_ATTEST_CERTIFY, qualifying_data);
	a.attested.certify.name.size = KL_SOFT_NAME_SIZE;
	memcpy(a.attested.certify.name.name, soft->ak_name, KL_SOFT_NAME_SIZE);
	a.attested.certify.qualifiedName.size = KL_SOFT_NAME_SIZE;
	memcpy(a.attested.certify.qualifiedName.name, soft->ak_qualified_name, KL_SOFT_NAME_SIZE);
	return kl_soft_sign_attest(soft, &a, attest, signature, error);
}

static gboolean
kl_soft_activate_credential(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error)
{
	KlTpmSoft *soft = tpm->backend_data;
	TPM2B_ID_OBJECT id_object;
	TPM2B_ENCRYPTED_SECRET enc_secret;
	guint8 seed[sizeof(TPMU_HA)];
	gsize seed_len = 0;
	guint8 hmac_key[KL_SOFT_DIGEST_SIZE];
	guint8 hmac[KL_SOFT_DIGEST_SIZE];
	guint8 aes_key[KL_SOFT_AES_BITS / 8];
	guint8 plain[sizeof(id_object.credential)];
	guint8 iv[AES_BLOCK_SIZE];
	struct aes128_ctx aes;
	gnutls_hmac_hd_t h = NULL;
	const guint8 *integrity;
	const guint8 *enc_identity;
	gsize enc_len;
	gsize cred_len;
	gboolean ok = FALSE;
	int ret;

	if (!kl_tpm_split_credential_blob(blob, &id_object, &enc_secret, error))
		return FALSE;

	/* TPMS_ID_OBJECT = TPM2B_DIGEST integrityHMAC || encIdentity */
	if (id_object.size < 2 ||
	    ((gsize)id_object.credential[0] << 8 | id_object.credential[1]) !=
		KL_SOFT_DIGEST_SIZE ||
	    id_object.size < 2 + KL_SOFT_DIGEST_SIZE + 2) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the credential blob's ID object is malformed (expected a 32-byte "
			    "integrity HMAC and an encrypted identity)");
		return FALSE;
	}
	integrity = id_object.credential + 2;
	enc_identity = integrity + KL_SOFT_DIGEST_SIZE;
	enc_len = id_object.size - 2 - KL_SOFT_DIGEST_SIZE;

	if (!kl_soft_ek_decrypt_oaep(soft,
				     enc_secret.secret,
				     enc_secret.size,
				     "IDENTITY",
				     seed,
				     sizeof(seed),
				     &seed_len,
				     error))
		return FALSE;
	if (seed_len == 0) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "the credential blob's seed is empty");
		goto out;
	}

	/* integrity: HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name(AK)) */
	if (!kl_soft_kdfa(
		seed, seed_len, "INTEGRITY", NULL, 0, KL_SOFT_DIGEST_SIZE * 8, hmac_key, error))
		goto out;
	ret = gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, hmac_key, sizeof(hmac_key));
	if (ret < 0) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INTERNAL, "HMAC failed: %s", gnutls_strerror(ret));
		goto out;
	}
	gnutls_hmac(h, enc_identity, enc_len);
	gnutls_hmac(h, soft->ak_name, KL_SOFT_NAME_SIZE);
	gnutls_hmac_deinit(h, hmac);
	if (!memeql_sec(hmac, integrity, KL_SOFT_DIGEST_SIZE)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the credential blob fails its integrity check: it was made for "
			    "another AK or EK, or it was altered; register again to get a new one");
		goto out;
	}

	/* encIdentity: AES-128-CFB(KDFa(seed, "STORAGE", name(AK)), IV 0) of a TPM2B_DIGEST */
	if (!kl_soft_kdfa(seed,
			  seed_len,
			  "STORAGE",
			  soft->ak_name,
			  KL_SOFT_NAME_SIZE,
			  KL_SOFT_AES_BITS,
			  aes_key,
			  error))
		goto out;
	aes128_set_encrypt_key(&aes, aes_key);
	memset(iv, 0, sizeof(iv));
	cfb_decrypt(&aes,
		    (nettle_cipher_func *)aes128_encrypt,
		    AES_BLOCK_SIZE,
		    iv,
		    enc_len,
		    plain,
		    enc_identity);
	cred_len = (gsize)plain[0] << 8 | plain[1];
	if (cred_len != enc_len - 2 || cred_len > sizeof(TPMU_HA)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the decrypted credential has an invalid size");
		goto out;
	}
	*secret = g_bytes_new(plain + 2, cred_len);
	ok = TRUE;
out:
	gnutls_memset(seed, 0, sizeof(seed));
	gnutls_memset(hmac_key, 0, sizeof(hmac_key));
	gnutls_memset(aes_key, 0, sizeof(aes_key));
	gnutls_memset(plain, 0, sizeof(plain));
	gnutls_memset(&aes, 0, sizeof(aes));
	return ok;
}

const KlTpmBackend kl_tpm_software_backend = {
	.name = "software",
	.open = kl_soft_open,
	.close = kl_soft_close,
	.get_esys = kl_soft_get_esys,
	.quote = kl_soft_quote,
	.pcr_read = kl_soft_pcr_read,
	.certify_ak = kl_soft_certify_ak,
	.activate_credential = kl_soft_activate_credential,
};
