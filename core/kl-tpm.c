/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The TPM front end: picks the back end (ESYS or the --avoid-tpm software
 * stand-in), caches the identity facts, and implements what both back ends
 * share: algorithm names, the EK hash, the credential blob parser, the
 * agent_data.json file (Rust agent format) and the agent id modes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <json-glib/json-glib.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "keylime-agent/kl-error.h"
#include "kl-tpm-backend.h"

#define KL_TPM_CRED_MAGIC   0xBADCC0DEu
#define KL_TPM_CRED_VERSION 1u
#define KL_TPM_AGENT_ID_MAX 80

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

static const gchar *
kl_tpm_alg_to_rust_name(TPM2_ALG_ID alg)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kl_tpm_alg_names); i++) {
		if (kl_tpm_alg_names[i].alg == alg)
			return kl_tpm_alg_names[i].rust_name;
	}
	return NULL;
}

static TPM2_ALG_ID
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

GError *
kl_tpm_error_from_rc(TSS2_RC rc, const gchar *what)
{
	return g_error_new(KL_ERROR,
			   KL_ERROR_TPM,
			   "%s: %s (0x%x)",
			   what != NULL ? what : "TPM command",
			   Tss2_RC_Decode(rc),
			   (guint)rc);
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
/* files                                                                */

static gboolean
kl_tpm_write_all(int fd, const gchar *data, gsize len)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

gboolean
kl_tpm_write_file_atomic(const gchar *path, const gchar *data, gsize len, int mode, GError **error)
{
	g_autofree gchar *dir = g_path_get_dirname(path);
	g_autofree gchar *tmp = g_strdup_printf("%s.XXXXXX", path);
	gboolean ok;
	int saved;
	int fd;
	int dfd;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
	if (fd < 0) {
		saved = errno;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot create a temporary file next to %s: %s; check that the "
			    "directory exists and is writable by the agent",
			    path,
			    g_strerror(saved));
		return FALSE;
	}
	/* the mode must not depend on the umask */
	ok = fchmod(fd, mode) == 0 && kl_tpm_write_all(fd, data, len) && fsync(fd) == 0;
	saved = errno;
	if (close(fd) != 0 && ok) {
		ok = FALSE;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = FALSE;
		saved = errno;
	}
	if (!ok) {
		(void)g_unlink(tmp);
		g_set_error(
		    error, KL_ERROR, KL_ERROR_IO, "cannot write %s: %s", path, g_strerror(saved));
		return FALSE;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return TRUE;
}

static void
kl_tpm_json_append_bytes(GString *s, const gchar *key, const guint8 *data, gsize len, gboolean last)
{
	/* serde_json's to_writer_pretty layout: two-space indent, one value per line */
	g_string_append_printf(s, "  \"%s\": [", key);
	if (len == 0) {
		g_string_append(s, "]");
	} else {
		for (gsize i = 0; i < len; i++)
			g_string_append_printf(s, "%s\n    %u", i == 0 ? "" : ",", data[i]);
		g_string_append(s, "\n  ]");
	}
	g_string_append(s, last ? "\n" : ",\n");
}

gboolean
kl_tpm_agent_data_store(const gchar *path,
			const TPMT_PUBLIC *ak_public,
			const TPM2B_PRIVATE *ak_private,
			const gchar *ek_hash,
			GError **error)
{
	g_autoptr(GString) s = g_string_new("{\n");
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	TPMI_ALG_HASH hash;
	TPMI_ALG_SIG_SCHEME scheme;
	const gchar *hash_name;
	const gchar *scheme_name;
	TSS2_RC rc;

	if (ak_public->type == TPM2_ALG_RSA) {
		scheme = ak_public->parameters.rsaDetail.scheme.scheme;
		hash = ak_public->parameters.rsaDetail.scheme.details.anySig.hashAlg;
	} else {
		scheme = ak_public->parameters.eccDetail.scheme.scheme;
		hash = ak_public->parameters.eccDetail.scheme.details.anySig.hashAlg;
	}
	hash_name = kl_tpm_alg_to_rust_name(hash);
	scheme_name = kl_tpm_alg_to_rust_name(scheme);
	if (hash_name == NULL || scheme_name == NULL || kl_tpm_hash_size(hash) == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "cannot record an AK with scheme 0x%04x / hash 0x%04x in %s",
			    scheme,
			    hash,
			    path);
		return FALSE;
	}
	rc = Tss2_MU_TPMT_PUBLIC_Marshal(ak_public, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Tss2_MU_TPMT_PUBLIC_Marshal"));
		return FALSE;
	}
	g_string_append_printf(s, "  \"ak_hash_alg\": \"%s\",\n", hash_name);
	g_string_append_printf(s, "  \"ak_sign_alg\": \"%s\",\n", scheme_name);
	kl_tpm_json_append_bytes(s, "ak_public", buf, off, FALSE);
	kl_tpm_json_append_bytes(s, "ak_private", ak_private->buffer, ak_private->size, FALSE);
	kl_tpm_json_append_bytes(s, "ek_hash", (const guint8 *)ek_hash, strlen(ek_hash), TRUE);
	g_string_append(s, "}");
	return kl_tpm_write_file_atomic(path, s->str, s->len, 0600, error);
}

/* reads a JSON array of byte values (0..255) */
static gboolean
kl_tpm_agent_data_get_bytes(
    JsonObject *obj, const gchar *key, guint8 *out, gsize max, gsize *out_len, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	JsonArray *arr;
	guint n;

	if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not an array", key);
		return FALSE;
	}
	arr = json_node_get_array(node);
	n = json_array_get_length(arr);
	if (n > max) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is too long", key);
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		JsonNode *el = json_array_get_element(arr, i);
		gint64 v;
		if (!JSON_NODE_HOLDS_VALUE(el) || json_node_get_value_type(el) != G_TYPE_INT64) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "'%s'[%u] is not an integer",
				    key,
				    i);
			return FALSE;
		}
		v = json_node_get_int(el);
		if (v < 0 || v > 255) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "'%s'[%u] is not a byte value",
				    key,
				    i);
			return FALSE;
		}
		out[i] = (guint8)v;
	}
	*out_len = n;
	return TRUE;
}

static const gchar *
kl_tpm_agent_data_get_string(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not a string", key);
		return NULL;
	}
	return json_node_get_string(node);
}

static gboolean
kl_tpm_agent_data_parse(const gchar *contents,
			gsize len,
			TPMI_ALG_HASH *hash,
			TPMI_ALG_SIG_SCHEME *scheme,
			TPMT_PUBLIC *ak_public,
			TPM2B_PRIVATE *ak_private,
			gchar **ek_hash,
			GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;
	JsonObject *obj;
	const gchar *s;
	guint8 buf[sizeof(TPMT_PUBLIC)];
	guint8 ekh[129];
	gsize n = 0;
	size_t off = 0;
	TSS2_RC rc;

	if (!json_parser_load_from_data(parser, contents, (gssize)len, error))
		return FALSE;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "not a JSON object");
		return FALSE;
	}
	obj = json_node_get_object(root);

	s = kl_tpm_agent_data_get_string(obj, "ak_hash_alg", error);
	if (s == NULL)
		return FALSE;
	*hash = kl_tpm_alg_from_rust_name(s);
	if (kl_tpm_hash_size(*hash) == 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "unknown ak_hash_alg '%s'", s);
		return FALSE;
	}
	s = kl_tpm_agent_data_get_string(obj, "ak_sign_alg", error);
	if (s == NULL)
		return FALSE;
	*scheme = kl_tpm_alg_from_rust_name(s);
	if (*scheme == TPM2_ALG_ERROR || kl_tpm_hash_size(*scheme) != 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "unknown ak_sign_alg '%s'", s);
		return FALSE;
	}

	if (!kl_tpm_agent_data_get_bytes(obj, "ak_public", buf, sizeof(buf), &n, error))
		return FALSE;
	memset(ak_public, 0, sizeof(*ak_public));
	rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(buf, n, &off, ak_public);
	if (rc != TSS2_RC_SUCCESS || off != n) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "'ak_public' is not a marshalled TPMT_PUBLIC");
		return FALSE;
	}
	memset(ak_private, 0, sizeof(*ak_private));
	if (!kl_tpm_agent_data_get_bytes(
		obj, "ak_private", ak_private->buffer, sizeof(ak_private->buffer), &n, error))
		return FALSE;
	if (n == 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'ak_private' is empty");
		return FALSE;
	}
	ak_private->size = (UINT16)n;
	if (!kl_tpm_agent_data_get_bytes(obj, "ek_hash", ekh, sizeof(ekh) - 1, &n, error))
		return FALSE;
	ekh[n] = '\0';
	*ek_hash = g_strndup((const gchar *)ekh, n);
	return TRUE;
}

gboolean
kl_tpm_agent_data_load(const gchar *path,
		       const KlTpmKeyParams *params,
		       const gchar *ek_hash,
		       TPMT_PUBLIC *ak_public,
		       TPM2B_PRIVATE *ak_private,
		       GError **error)
{
	g_autofree gchar *contents = NULL;
	g_autofree gchar *file_ek_hash = NULL;
	g_autoptr(GError) error_local = NULL;
	gsize len = 0;
	TPMI_ALG_HASH hash = TPM2_ALG_ERROR;
	TPMI_ALG_SIG_SCHEME scheme = TPM2_ALG_ERROR;
	const gchar *file_type;
	const gchar *want_type;

	if (!g_file_get_contents(path, &contents, &len, &error_local)) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_set_error(error, KL_ERROR, KL_ERROR_NOT_FOUND, "%s does not exist", path);
			return FALSE;
		}
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the AK file %s: %s",
			    path,
			    error_local->message);
		return FALSE;
	}
	if (!kl_tpm_agent_data_parse(contents,
				     len,
				     &hash,
				     &scheme,
				     ak_public,
				     ak_private,
				     &file_ek_hash,
				     &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the AK file %s is corrupt (%s); to start over with a new AK, delete "
			    "it and the agent's record at the registrar",
			    path,
			    error_local->message);
		return FALSE;
	}
	file_type =
	    ak_public->type == TPM2_ALG_RSA
		? kl_tpm_key_type_name(
		      TPM2_ALG_RSA, ak_public->parameters.rsaDetail.keyBits, TPM2_ECC_NONE)
		: kl_tpm_key_type_name(ak_public->type, 0, ak_public->parameters.eccDetail.curveID);
	want_type = kl_tpm_key_type_name(params->type, params->key_bits, params->curve);
	if (hash != params->hash || scheme != params->scheme || file_type == NULL ||
	    g_strcmp0(file_type, want_type) != 0) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "the AK in %s (%s %s %s) does not match tpm_encryption_alg/tpm_hash_alg/"
		    "tpm_signing_alg (%s %s %s); restore the previous settings, or delete "
		    "the file and the agent's record at the registrar to create a new AK",
		    path,
		    file_type ?: kl_tpm_alg_to_name(ak_public->type) ?: "?",
		    kl_tpm_alg_to_name(hash) ?: "?",
		    kl_tpm_alg_to_name(scheme) ?: "?",
		    want_type ?: "?",
		    kl_tpm_alg_to_name(params->hash),
		    kl_tpm_alg_to_name(params->scheme));
		return FALSE;
	}
	if (g_strcmp0(file_ek_hash, ek_hash) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "the AK in %s was made under another EK (EK hash %s, this TPM: %s); "
			    "check ek_handle/tpm_encryption_alg, or delete the file and the "
			    "agent's record at the registrar to create a new AK",
			    path,
			    file_ek_hash,
			    ek_hash);
		return FALSE;
	}
	return TRUE;
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

	backend = options->software ? &kl_tpm_software_backend : &kl_tpm_esys_backend;

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
	return tpm->backend->quote(
	    tpm, bank, pcr_mask, scheme, hash, qualifying_data, attest, signature, error);
}

gboolean
kl_tpm_pcr_read(
    KlTpm *tpm, TPMI_ALG_HASH bank, guint32 pcr_mask, GPtrArray **values, GError **error)
{
	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(values != NULL, FALSE);
	if (!kl_tpm_check_pcr_args(bank, pcr_mask, error))
		return FALSE;
	return tpm->backend->pcr_read(tpm, bank, pcr_mask, values, error);
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
	return tpm->backend->certify_ak(
	    tpm, signer, signer_auth, scheme, hash, qualifying_data, attest, signature, error);
}

gboolean
kl_tpm_activate_credential(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error)
{
	g_return_val_if_fail(tpm != NULL, FALSE);
	g_return_val_if_fail(secret != NULL, FALSE);
	return tpm->backend->activate_credential(tpm, blob, secret, error);
}

/* ------------------------------------------------------------------ */
/* agent id                                                             */

gboolean
kl_tpm_agent_id_is_valid(const gchar *id)
{
	gsize len;

	if (id == NULL)
		return FALSE;
	len = strlen(id);
	if (len == 0 || len > KL_TPM_AGENT_ID_MAX)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isalnum(id[i]) && id[i] != '_' && id[i] != '.' && id[i] != '-')
			return FALSE;
	}
	return TRUE;
}

gchar *
kl_tpm_read_dmi_uuid(const gchar *path, GError **error)
{
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error_local = NULL;

	if (!g_file_get_contents(path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_FOUND,
			    "uuid = dmidecode: cannot read %s (%s); it needs DMI firmware tables "
			    "and is readable by root only: run the agent with the privileges to "
			    "read it, or choose another uuid mode (generate, hash_ek, hostname)",
			    path,
			    error_local->message);
		return NULL;
	}
	g_strstrip(contents);
	if (!g_uuid_string_is_valid(contents)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "uuid = dmidecode: %s does not hold a UUID; choose another uuid mode",
			    path);
		return NULL;
	}
	return g_ascii_strdown(contents, -1);
}

static gchar *
kl_tpm_agent_id_generate(const gchar *state_dir, GError **error)
{
	g_autofree gchar *path = NULL;
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *uuid = NULL;
	g_autofree gchar *line = NULL;

	if (state_dir == NULL || *state_dir == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "uuid = generate needs keylime_dir to keep the generated id");
		return NULL;
	}
	path = g_build_filename(state_dir, "agent_uuid", NULL);
	if (g_file_get_contents(path, &contents, NULL, &error_local)) {
		g_strstrip(contents);
		if (!g_uuid_string_is_valid(contents)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s does not hold a UUID; delete it to generate a new agent id "
				    "(the old id must then be removed from the registrar and the "
				    "verifier)",
				    path);
			return NULL;
		}
		return g_ascii_strdown(contents, -1);
	}
	if (!g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the generated agent id: %s",
			    error_local->message);
		return NULL;
	}
	uuid = g_uuid_string_random();
	line = g_strdup_printf("%s\n", uuid);
	if (!kl_tpm_write_file_atomic(path, line, strlen(line), 0600, error)) {
		g_prefix_error(error, "uuid = generate: ");
		return NULL;
	}
	return g_steal_pointer(&uuid);
}

gchar *
kl_tpm_resolve_agent_id(KlTpm *tpm,
			const gchar *uuid_option,
			const gchar *state_dir,
			GError **error)
{
	if (uuid_option == NULL || *uuid_option == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "uuid is empty; set a UUID or one of generate, hash_ek, hostname, "
			    "dmidecode");
		return NULL;
	}
	if (g_strcmp0(uuid_option, "generate") == 0)
		return kl_tpm_agent_id_generate(state_dir, error);
	if (g_strcmp0(uuid_option, "hash_ek") == 0) {
		if (tpm == NULL || tpm->ek_hash == NULL) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "uuid = hash_ek needs a TPM with an EK");
			return NULL;
		}
		return g_strdup(tpm->ek_hash);
	}
	if (g_strcmp0(uuid_option, "hostname") == 0) {
		const gchar *host = g_get_host_name();
		if (!kl_tpm_agent_id_is_valid(host)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "uuid = hostname: the host name '%s' is not a valid agent id "
				    "(letters, digits, '_', '.', '-', at most %d characters); set "
				    "uuid explicitly",
				    host,
				    KL_TPM_AGENT_ID_MAX);
			return NULL;
		}
		return g_strdup(host);
	}
	if (g_strcmp0(uuid_option, "dmidecode") == 0)
		return kl_tpm_read_dmi_uuid("/sys/class/dmi/id/product_uuid", error);
	/* kept as written: the id is the registrar's primary key */
	if (g_uuid_string_is_valid(uuid_option))
		return g_strdup(uuid_option);
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "uuid '%s' is neither a UUID nor one of generate, hash_ek, hostname, "
		    "dmidecode",
		    uuid_option);
	return NULL;
}
