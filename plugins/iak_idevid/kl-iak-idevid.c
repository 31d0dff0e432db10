/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * IAK/IDevID: templates, certificates, keys.
 */
#include "config.h"

#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "kl-esys-autoptr.h"
#include "kl-iak-idevid.h"

/*
 * authPolicy digests of the TCG templates (policy table of "TPM 2.0 Keys for
 * Device Identity and Attestation"), for the IAK ("attestation") and the
 * IDevID ("signing"). The SM3 templates use the SHA-256 values, as the
 * Keylime reference implementation does.
 */
static const guint8 kl_iak_policy_sha256[32] = {
	0x54, 0x37, 0x18, 0x23, 0x26, 0xe4, 0x14, 0xfc, 0xa7, 0x97, 0xd5,
	0xf1, 0x74, 0x61, 0x5a, 0x16, 0x41, 0xf6, 0x12, 0x55, 0x79, 0x7c,
	0x3a, 0x2b, 0x22, 0xc2, 0x1d, 0x12, 0x0b, 0x2d, 0x1e, 0x07,
};
static const guint8 kl_iak_policy_sha384[48] = {
	0x12, 0x9d, 0x94, 0xeb, 0xf8, 0x45, 0x56, 0x65, 0x2c, 0x6e, 0xef, 0x43,
	0xbb, 0xb7, 0x57, 0x51, 0x2a, 0xc8, 0x7e, 0x52, 0xbe, 0x7b, 0x34, 0x9c,
	0xa6, 0xce, 0x4d, 0x82, 0x6f, 0x74, 0x9f, 0xcf, 0x67, 0x2f, 0x51, 0x71,
	0x6c, 0x5c, 0xbb, 0x60, 0x5f, 0x31, 0x3b, 0xf3, 0x45, 0xaa, 0xb3, 0x12,
};
static const guint8 kl_iak_policy_sha512[64] = {
	0x80, 0x60, 0xd1, 0xfb, 0x31, 0x71, 0x6a, 0x29, 0xe4, 0x8a, 0x6e, 0x5f, 0xec,
	0xe0, 0x88, 0xbc, 0xfc, 0x1b, 0x27, 0x8f, 0xc1, 0x62, 0x25, 0x5e, 0x81, 0xc3,
	0xec, 0xa3, 0x54, 0x4c, 0xd4, 0x4a, 0xf9, 0x44, 0x10, 0xc3, 0x71, 0x5d, 0x56,
	0x1c, 0xcc, 0xd9, 0xe3, 0x9a, 0x6c, 0xb2, 0x64, 0x6d, 0x43, 0x53, 0x5b, 0xb5,
	0x4e, 0xa8, 0x87, 0x10, 0xde, 0xb5, 0xf7, 0x83, 0x6b, 0xd9, 0xb5, 0x86,
};
static const guint8 kl_idevid_policy_sha256[32] = {
	0xad, 0x6b, 0x3a, 0x22, 0x84, 0xfd, 0x69, 0x8a, 0x07, 0x10, 0xbf,
	0x5c, 0xc1, 0xb9, 0xbd, 0xf1, 0x5e, 0x25, 0x32, 0xe3, 0xf6, 0x01,
	0xfa, 0x4b, 0x93, 0xa6, 0xa8, 0xfa, 0x8d, 0xe5, 0x79, 0xea,
};
static const guint8 kl_idevid_policy_sha384[48] = {
	0x4d, 0xb1, 0xaa, 0x83, 0x6d, 0x0b, 0x56, 0x15, 0xdf, 0x6e, 0xe5, 0x3a,
	0x40, 0xef, 0x70, 0xc6, 0x1c, 0x21, 0x7f, 0x43, 0x03, 0xd4, 0x46, 0x95,
	0x92, 0x59, 0x72, 0xbc, 0x92, 0x70, 0x06, 0xcf, 0xa5, 0xcb, 0xdf, 0x6d,
	0xc1, 0x8c, 0x4d, 0xbe, 0x32, 0x9b, 0x2f, 0x15, 0x42, 0xc3, 0xdd, 0x33,
};
static const guint8 kl_idevid_policy_sha512[64] = {
	0x7d, 0xd7, 0x50, 0x0f, 0xd6, 0xc1, 0xb9, 0x4f, 0x97, 0xa6, 0xaf, 0x91, 0x0d,
	0xa1, 0x47, 0x30, 0x1e, 0xf2, 0x8f, 0x66, 0x2f, 0xee, 0x06, 0xf2, 0x25, 0xa4,
	0xcc, 0xad, 0xda, 0x3b, 0x4e, 0x6b, 0x38, 0xe6, 0x6b, 0x2f, 0x3a, 0xd5, 0xde,
	0xe1, 0xa0, 0x50, 0x3c, 0xd2, 0xda, 0xed, 0xb1, 0xe6, 0x8c, 0xfe, 0x4f, 0x84,
	0xb0, 0x3a, 0x8c, 0xd2, 0x2b, 0xb6, 0xa9, 0x76, 0xf0, 0x71, 0xa7, 0x2f,
};

/* the TCG template set */
static const KlIakIdevidTemplate kl_iak_idevid_templates[] = {
	{ "H-1", TPM2_ALG_RSA, TPM2_ALG_SHA256, 2048, TPM2_ECC_NONE },
	{ "H-2", TPM2_ALG_ECC, TPM2_ALG_SHA256, 0, TPM2_ECC_NIST_P256 },
	{ "H-3", TPM2_ALG_ECC, TPM2_ALG_SHA384, 0, TPM2_ECC_NIST_P384 },
	{ "H-4", TPM2_ALG_ECC, TPM2_ALG_SHA512, 0, TPM2_ECC_NIST_P521 },
	{ "H-5", TPM2_ALG_ECC, TPM2_ALG_SM3_256, 0, TPM2_ECC_SM2_P256 },
};

/* OID of the SM2 curve (GM/T 0006), which GnuTLS does not know */
#define KL_IAK_IDEVID_OID_SM2 "1.2.156.10197.1.301"

static void
kl_iak_idevid_template_set_name(KlIakIdevidTemplate *tmpl)
{
	tmpl->name = NULL;
	for (guint i = 0; i < G_N_ELEMENTS(kl_iak_idevid_templates); i++) {
		const KlIakIdevidTemplate *t = &kl_iak_idevid_templates[i];
		if (t->type != tmpl->type || t->name_alg != tmpl->name_alg)
			continue;
		if (t->type == TPM2_ALG_RSA && t->key_bits != tmpl->key_bits)
			continue;
		if (t->type == TPM2_ALG_ECC && t->curve != tmpl->curve)
			continue;
		tmpl->name = t->name;
		return;
	}
}

gboolean
kl_iak_idevid_template_from_name(const gchar *name, KlIakIdevidTemplate *out, GError **error)
{
	for (guint i = 0; i < G_N_ELEMENTS(kl_iak_idevid_templates); i++) {
		if (g_ascii_strcasecmp(name, kl_iak_idevid_templates[i].name) == 0) {
			*out = kl_iak_idevid_templates[i];
			return TRUE;
		}
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "iak_idevid_template: unknown template \"%s\"; use detect, manual or one of "
		    "H-1, H-2, H-3, H-4, H-5",
		    name);
	return FALSE;
}

gboolean
kl_iak_idevid_template_from_algs(const gchar *asym_alg,
				 const gchar *name_alg,
				 KlIakIdevidTemplate *out,
				 GError **error)
{
	KlIakIdevidTemplate t = { 0 };
	g_autofree gchar *asym = g_ascii_strdown(asym_alg != NULL ? asym_alg : "", -1);
	g_autofree gchar *hash = g_ascii_strdown(name_alg != NULL ? name_alg : "", -1);

	g_strstrip(asym);
	g_strstrip(hash);
	if (g_str_equal(hash, "sha256"))
		t.name_alg = TPM2_ALG_SHA256;
	else if (g_str_equal(hash, "sha384"))
		t.name_alg = TPM2_ALG_SHA384;
	else if (g_str_equal(hash, "sha512"))
		t.name_alg = TPM2_ALG_SHA512;
	else if (g_str_equal(hash, "sm3_256") || g_str_equal(hash, "sm3"))
		t.name_alg = TPM2_ALG_SM3_256;
	else {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "iak_idevid_name_alg: unsupported hash \"%s\"; use sha256, sha384, sha512 "
		    "or sm3_256",
		    hash);
		return FALSE;
	}

	if (g_str_has_prefix(asym, "rsa")) {
		t.type = TPM2_ALG_RSA;
		if (g_str_equal(asym, "rsa")) {
			t.key_bits = t.name_alg == TPM2_ALG_SHA384   ? 3072
				     : t.name_alg == TPM2_ALG_SHA512 ? 4096
								     : 2048;
		} else if (g_str_equal(asym, "rsa2048")) {
			t.key_bits = 2048;
		} else if (g_str_equal(asym, "rsa3072")) {
			t.key_bits = 3072;
		} else if (g_str_equal(asym, "rsa4096")) {
			t.key_bits = 4096;
		}
	} else if (g_str_has_prefix(asym, "ecc")) {
		t.type = TPM2_ALG_ECC;
		if (g_str_equal(asym, "ecc")) {
			t.curve = t.name_alg == TPM2_ALG_SHA384	   ? TPM2_ECC_NIST_P384
				  : t.name_alg == TPM2_ALG_SHA512  ? TPM2_ECC_NIST_P521
				  : t.name_alg == TPM2_ALG_SM3_256 ? TPM2_ECC_SM2_P256
								   : TPM2_ECC_NIST_P256;
		} else if (g_str_equal(asym, "ecc256")) {
			t.curve = TPM2_ECC_NIST_P256;
		} else if (g_str_equal(asym, "ecc384")) {
			t.curve = TPM2_ECC_NIST_P384;
		} else if (g_str_equal(asym, "ecc521")) {
			t.curve = TPM2_ECC_NIST_P521;
		} else if (g_str_equal(asym, "ecc_sm2")) {
			t.curve = TPM2_ECC_SM2_P256;
		}
	}
	if (t.type == 0 || (t.type == TPM2_ALG_RSA && t.key_bits == 0) ||
	    (t.type == TPM2_ALG_ECC && t.curve == TPM2_ECC_NONE)) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "iak_idevid_asymmetric_alg: unsupported algorithm \"%s\"; use rsa, ecc, "
		    "rsa2048, rsa3072, rsa4096, ecc256, ecc384, ecc521 or ecc_sm2",
		    asym);
		return FALSE;
	}
	kl_iak_idevid_template_set_name(&t);
	*out = t;
	return TRUE;
}

static const gchar *
kl_iak_idevid_hash_name(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA256:
		return "sha256";
	case TPM2_ALG_SHA384:
		return "sha384";
	case TPM2_ALG_SHA512:
		return "sha512";
	case TPM2_ALG_SM3_256:
		return "sm3_256";
	default:
		return "unknown";
	}
}

static const gchar *
kl_iak_idevid_curve_name(TPMI_ECC_CURVE curve)
{
	switch (curve) {
	case TPM2_ECC_NIST_P192:
		return "NIST P-192";
	case TPM2_ECC_NIST_P224:
		return "NIST P-224";
	case TPM2_ECC_NIST_P256:
		return "NIST P-256";
	case TPM2_ECC_NIST_P384:
		return "NIST P-384";
	case TPM2_ECC_NIST_P521:
		return "NIST P-521";
	case TPM2_ECC_SM2_P256:
		return "SM2";
	default:
		return "unknown curve";
	}
}

gchar *
kl_iak_idevid_template_describe(const KlIakIdevidTemplate *tmpl)
{
	if (tmpl->name != NULL)
		return g_strdup(tmpl->name);
	if (tmpl->type == TPM2_ALG_RSA)
		return g_strdup_printf("rsa-%u/%s (manual)",
				       (guint)tmpl->key_bits,
				       kl_iak_idevid_hash_name(tmpl->name_alg));
	return g_strdup_printf("ecc %s/%s (manual)",
			       kl_iak_idevid_curve_name(tmpl->curve),
			       kl_iak_idevid_hash_name(tmpl->name_alg));
}

static void
kl_iak_idevid_template_policy(TPMI_ALG_HASH name_alg, KlIakIdevidKeyKind kind, TPM2B_DIGEST *out)
{
	const guint8 *p;
	gsize len;

	switch (name_alg) {
	case TPM2_ALG_SHA384:
		p = kind == KL_IAK_IDEVID_KEY_IAK ? kl_iak_policy_sha384 : kl_idevid_policy_sha384;
		len = 48;
		break;
	case TPM2_ALG_SHA512:
		p = kind == KL_IAK_IDEVID_KEY_IAK ? kl_iak_policy_sha512 : kl_idevid_policy_sha512;
		len = 64;
		break;
	default:
		p = kind == KL_IAK_IDEVID_KEY_IAK ? kl_iak_policy_sha256 : kl_idevid_policy_sha256;
		len = 32;
		break;
	}
	out->size = len;
	memcpy(out->buffer, p, len);
}

void
kl_iak_idevid_template_build(const KlIakIdevidTemplate *tmpl,
			     KlIakIdevidKeyKind kind,
			     TPM2B_PUBLIC *out)
{
	TPMT_PUBLIC *p = &out->publicArea;
	const gchar *unique = kind == KL_IAK_IDEVID_KEY_IAK ? "IAK" : "IDEVID";
	gsize unique_len = strlen(unique);

	memset(out, 0, sizeof(*out));
	p->type = tmpl->type;
	p->nameAlg = tmpl->name_alg;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
			      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
			      TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_SIGN_ENCRYPT;
	if (kind == KL_IAK_IDEVID_KEY_IAK)
		p->objectAttributes |= TPMA_OBJECT_RESTRICTED;
	kl_iak_idevid_template_policy(tmpl->name_alg, kind, &p->authPolicy);

	if (tmpl->type == TPM2_ALG_RSA) {
		TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;
		r->symmetric.algorithm = TPM2_ALG_NULL;
		/* the IAK signs with RSASSA-PSS; the IDevID leaves the scheme to the caller */
		if (kind == KL_IAK_IDEVID_KEY_IAK) {
			r->scheme.scheme = TPM2_ALG_RSAPSS;
			r->scheme.details.rsapss.hashAlg = tmpl->name_alg;
		} else {
			r->scheme.scheme = TPM2_ALG_NULL;
		}
		r->keyBits = tmpl->key_bits;
		r->exponent = 0;
		p->unique.rsa.size = unique_len;
		memcpy(p->unique.rsa.buffer, unique, unique_len);
	} else {
		TPMS_ECC_PARMS *e = &p->parameters.eccDetail;
		e->symmetric.algorithm = TPM2_ALG_NULL;
		e->scheme.scheme = TPM2_ALG_ECDSA;
		e->scheme.details.ecdsa.hashAlg = tmpl->name_alg;
		e->curveID = tmpl->curve;
		e->kdf.scheme = TPM2_ALG_NULL;
		p->unique.ecc.x.size = unique_len;
		memcpy(p->unique.ecc.x.buffer, unique, unique_len);
		p->unique.ecc.y.size = unique_len;
		memcpy(p->unique.ecc.y.buffer, unique, unique_len);
	}
}

/* ---- certificates ---- */

static void
kl_iak_idevid_crt_free(gnutls_x509_crt_t crt)
{
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
}

static void
kl_iak_idevid_pubkey_free(gnutls_pubkey_t key)
{
	if (key != NULL)
		gnutls_pubkey_deinit(key);
}

typedef gnutls_pubkey_t KlIakGnutlsPubkey;
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(KlIakGnutlsPubkey, kl_iak_idevid_pubkey_free, NULL)

gnutls_x509_crt_t
kl_iak_idevid_cert_load(const gchar *path, const gchar *key, GError **error)
{
	g_autofree gchar *contents = NULL;
	gsize len = 0;
	g_autoptr(GError) error_local = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t datum;
	gnutls_x509_crt_fmt_t fmt;
	int rc;

	if (path == NULL || path[0] == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s is not set; set it to the certificate file (PEM or DER) or set "
			    "enable_iak_idevid = false",
			    key);
		return NULL;
	}
	if (!g_file_get_contents(path, &contents, &len, &error_local)) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_FOUND,
				    "%s: the certificate file %s does not exist; set %s to the "
				    "certificate (PEM or DER) or set enable_iak_idevid = false",
				    key,
				    path,
				    key);
		} else {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_IO,
				    "%s: cannot read the certificate: %s; check the file and its "
				    "permissions",
				    key,
				    error_local->message);
		}
		return NULL;
	}
	datum.data = (unsigned char *)contents;
	datum.size = len;
	fmt = g_strstr_len(contents, len, "-----BEGIN") != NULL ? GNUTLS_X509_FMT_PEM
								: GNUTLS_X509_FMT_DER;
	rc = gnutls_x509_crt_init(&crt);
	if (rc >= 0)
		rc = gnutls_x509_crt_import(crt, &datum, fmt);
	if (rc < 0) {
		kl_iak_idevid_crt_free(crt);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: %s is not an X.509 certificate (%s): %s; give a PEM or DER "
			    "certificate",
			    key,
			    path,
			    fmt == GNUTLS_X509_FMT_PEM ? "PEM" : "DER",
			    gnutls_strerror(rc));
		return NULL;
	}
	return crt;
}

GBytes *
kl_iak_idevid_cert_get_der(gnutls_x509_crt_t crt, GError **error)
{
	gnutls_datum_t out = { NULL, 0 };
	GBytes *der;
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &out);

	if (rc < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "cannot encode the certificate as DER: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	der = g_bytes_new(out.data, out.size);
	gnutls_free(out.data);
	return der;
}

/*
 * Minimal DER walk to the SubjectPublicKeyInfo, for the SM2 curve that GnuTLS
 * cannot import. Returns the curve OID (as DER content) and the EC point.
 */
static gboolean
kl_iak_idevid_der_next(
    const guint8 **p, const guint8 *end, guint8 *tag, const guint8 **val, gsize *len)
{
	gsize l;

	if (end - *p < 2)
		return FALSE;
	*tag = (*p)[0];
	l = (*p)[1];
	*p += 2;
	if (l & 0x80) {
		guint n = l & 0x7f;
		if (n == 0 || n > 4 || (gsize)(end - *p) < n)
			return FALSE;
		l = 0;
		for (guint i = 0; i < n; i++)
			l = (l << 8) | (*p)[i];
		*p += n;
	}
	if ((gsize)(end - *p) < l)
		return FALSE;
	*val = *p;
	*len = l;
	*p += l;
	return TRUE;
}

static gboolean
kl_iak_idevid_spki(GBytes *der,
		   const guint8 **curve_oid,
		   gsize *curve_oid_len,
		   const guint8 **point,
		   gsize *point_len)
{
	gsize size;
	const guint8 *p = g_bytes_get_data(der, &size);
	const guint8 *end = p + size;
	const guint8 *v, *tbs_end, *spki_end, *alg_end;
	gsize l;
	guint8 tag;

	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { ... } } */
	if (!kl_iak_idevid_der_next(&p, end, &tag, &v, &l) || tag != 0x30)
		return FALSE;
	p = v;
	end = v + l;
	if (!kl_iak_idevid_der_next(&p, end, &tag, &v, &l) || tag != 0x30)
		return FALSE;
	p = v;
	tbs_end = v + l;
	/* [0] version (optional), serial, signature, issuer, validity, subject */
	if (p < tbs_end && p[0] == 0xa0 && !kl_iak_idevid_der_next(&p, tbs_end, &tag, &v, &l))
		return FALSE;
	for (guint i = 0; i < 5; i++) {
		if (!kl_iak_idevid_der_next(&p, tbs_end, &tag, &v, &l))
			return FALSE;
	}
	/* subjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { oid, params }, BIT STRING } */
	if (!kl_iak_idevid_der_next(&p, tbs_end, &tag, &v, &l) || tag != 0x30)
		return FALSE;
	p = v;
	spki_end = v + l;
	if (!kl_iak_idevid_der_next(&p, spki_end, &tag, &v, &l) || tag != 0x30)
		return FALSE;
	{
		const guint8 *q = v;
		alg_end = v + l;
		if (!kl_iak_idevid_der_next(&q, alg_end, &tag, &v, &l) || tag != 0x06)
			return FALSE;
		if (!kl_iak_idevid_der_next(&q, alg_end, &tag, &v, &l) || tag != 0x06)
			return FALSE;
		*curve_oid = v;
		*curve_oid_len = l;
	}
	if (!kl_iak_idevid_der_next(&p, spki_end, &tag, &v, &l) || tag != 0x03 || l < 1 ||
	    v[0] != 0)
		return FALSE;
	*point = v + 1;
	*point_len = l - 1;
	return TRUE;
}

/* DER content of OID 1.2.156.10197.1.301 */
static const guint8 kl_iak_idevid_sm2_oid_der[] = {
	0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d
};

static gboolean
kl_iak_idevid_cert_is_sm2(gnutls_x509_crt_t crt,
			  const guint8 **point,
			  gsize *point_len,
			  GBytes **der_out)
{
	g_autoptr(GBytes) der = kl_iak_idevid_cert_get_der(crt, NULL);
	const guint8 *oid;
	gsize oid_len;

	if (der == NULL || !kl_iak_idevid_spki(der, &oid, &oid_len, point, point_len))
		return FALSE;
	if (oid_len != sizeof(kl_iak_idevid_sm2_oid_der) ||
	    memcmp(oid, kl_iak_idevid_sm2_oid_der, oid_len) != 0)
		return FALSE;
	*der_out = g_steal_pointer(&der);
	return TRUE;
}

static TPMI_ECC_CURVE
kl_iak_idevid_curve_from_gnutls(gnutls_ecc_curve_t curve)
{
	switch (curve) {
	case GNUTLS_ECC_CURVE_SECP192R1:
		return TPM2_ECC_NIST_P192;
	case GNUTLS_ECC_CURVE_SECP224R1:
		return TPM2_ECC_NIST_P224;
	case GNUTLS_ECC_CURVE_SECP256R1:
		return TPM2_ECC_NIST_P256;
	case GNUTLS_ECC_CURVE_SECP384R1:
		return TPM2_ECC_NIST_P384;
	case GNUTLS_ECC_CURVE_SECP521R1:
		return TPM2_ECC_NIST_P521;
	default:
		return TPM2_ECC_NONE;
	}
}

/* the certificate's key in TPM terms: type, bits/curve, and the raw numbers */
typedef struct {
	TPMI_ALG_PUBLIC type;
	guint bits;
	TPMI_ECC_CURVE curve;
	GBytes *a; /* RSA modulus / ECC x */
	GBytes *b; /* RSA exponent / ECC y */
} KlIakCertKey;

static void
kl_iak_cert_key_clear(KlIakCertKey *k)
{
	g_clear_pointer(&k->a, g_bytes_unref);
	g_clear_pointer(&k->b, g_bytes_unref);
}

static GBytes *
kl_iak_idevid_strip(const guint8 *data, gsize len)
{
	while (len > 0 && data[0] == 0) {
		data++;
		len--;
	}
	return g_bytes_new(data, len);
}

static GBytes *
kl_iak_idevid_datum_take(gnutls_datum_t *d)
{
	GBytes *b = kl_iak_idevid_strip(d->data, d->size);
	gnutls_free(d->data);
	d->data = NULL;
	return b;
}

static gboolean
kl_iak_idevid_cert_key(gnutls_x509_crt_t crt, const gchar *what, KlIakCertKey *out, GError **error)
{
	g_auto(KlIakGnutlsPubkey) pk = NULL;
	unsigned int bits = 0;
	int alg;
	int rc;
	const guint8 *point;
	gsize point_len;
	g_autoptr(GBytes) der = NULL;

	memset(out, 0, sizeof(*out));
	if (kl_iak_idevid_cert_is_sm2(crt, &point, &point_len, &der)) {
		if (point_len != 65 || point[0] != 0x04) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s: the SM2 public key is not an uncompressed 256-bit point",
				    what);
			return FALSE;
		}
		out->type = TPM2_ALG_ECC;
		out->curve = TPM2_ECC_SM2_P256;
		out->bits = 256;
		out->a = kl_iak_idevid_strip(point + 1, 32);
		out->b = kl_iak_idevid_strip(point + 33, 32);
		return TRUE;
	}

	rc = gnutls_pubkey_init(&pk);
	if (rc >= 0)
		rc = gnutls_pubkey_import_x509(pk, crt, 0);
	if (rc < 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "%s: cannot read the certificate's public key: %s",
			    what,
			    gnutls_strerror(rc));
		return FALSE;
	}
	alg = gnutls_pubkey_get_pk_algorithm(pk, &bits);
	if (alg == GNUTLS_PK_RSA || alg == GNUTLS_PK_RSA_PSS) {
		gnutls_datum_t m = { NULL, 0 }, e = { NULL, 0 };
		rc = gnutls_pubkey_export_rsa_raw2(pk, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ);
		if (rc < 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s: cannot read the RSA key: %s",
				    what,
				    gnutls_strerror(rc));
			return FALSE;
		}
		out->type = TPM2_ALG_RSA;
		out->bits = bits;
		out->a = kl_iak_idevid_datum_take(&m);
		out->b = kl_iak_idevid_datum_take(&e);
		return TRUE;
	}
	if (alg == GNUTLS_PK_ECDSA) {
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		gnutls_datum_t x = { NULL, 0 }, y = { NULL, 0 };
		rc = gnutls_pubkey_export_ecc_raw2(pk, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ);
		if (rc < 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s: cannot read the ECC key: %s",
				    what,
				    gnutls_strerror(rc));
			return FALSE;
		}
		out->type = TPM2_ALG_ECC;
		out->bits = bits;
		out->curve = kl_iak_idevid_curve_from_gnutls(curve);
		out->a = kl_iak_idevid_datum_take(&x);
		out->b = kl_iak_idevid_datum_take(&y);
		if (out->curve == TPM2_ECC_NONE) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_SUPPORTED,
				    "%s: the certificate's ECC curve %s is not a TPM curve",
				    what,
				    gnutls_ecc_curve_get_name(curve));
			kl_iak_cert_key_clear(out);
			return FALSE;
		}
		return TRUE;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "%s: the certificate's key algorithm %s has no IAK/IDevID template; the "
		    "templates cover RSA and ECC keys",
		    what,
		    gnutls_pk_algorithm_get_name(alg));
	return FALSE;
}

gboolean
kl_iak_idevid_template_detect(gnutls_x509_crt_t crt,
			      const gchar *what,
			      KlIakIdevidTemplate *out,
			      GError **error)
{
	KlIakCertKey key;
	gboolean ok = TRUE;

	if (!kl_iak_idevid_cert_key(crt, what, &key, error))
		return FALSE;
	memset(out, 0, sizeof(*out));
	out->type = key.type;
	if (key.type == TPM2_ALG_RSA) {
		out->key_bits = key.bits;
		switch (key.bits) {
		case 2048:
			out->name_alg = TPM2_ALG_SHA256;
			break;
		case 3072:
			out->name_alg = TPM2_ALG_SHA384;
			break;
		case 4096:
			out->name_alg = TPM2_ALG_SHA512;
			break;
		default:
			ok = FALSE;
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_SUPPORTED,
				    "%s: no IAK/IDevID template for an RSA-%u key; the templates "
				    "cover RSA-2048 (H-1)",
				    what,
				    key.bits);
		}
	} else {
		out->curve = key.curve;
		switch (key.curve) {
		case TPM2_ECC_NIST_P256:
			out->name_alg = TPM2_ALG_SHA256;
			break;
		case TPM2_ECC_NIST_P384:
			out->name_alg = TPM2_ALG_SHA384;
			break;
		case TPM2_ECC_NIST_P521:
			out->name_alg = TPM2_ALG_SHA512;
			break;
		case TPM2_ECC_SM2_P256:
			out->name_alg = TPM2_ALG_SM3_256;
			break;
		default:
			ok = FALSE;
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_NOT_SUPPORTED,
				    "%s: no IAK/IDevID template for an ECC %s key; the templates "
				    "cover NIST P-256, P-384, P-521 and SM2",
				    what,
				    kl_iak_idevid_curve_name(key.curve));
		}
	}
	kl_iak_cert_key_clear(&key);
	if (ok)
		kl_iak_idevid_template_set_name(out);
	return ok;
}

static gchar *
kl_iak_idevid_describe_tpm_key(const TPMT_PUBLIC *pub)
{
	if (pub->type == TPM2_ALG_RSA)
		return g_strdup_printf("RSA-%u", (guint)pub->parameters.rsaDetail.keyBits);
	if (pub->type == TPM2_ALG_ECC)
		return g_strdup_printf("ECC %s",
				       kl_iak_idevid_curve_name(pub->parameters.eccDetail.curveID));
	return g_strdup_printf("algorithm 0x%04x", pub->type);
}

static gchar *
kl_iak_idevid_describe_cert_key(const KlIakCertKey *k)
{
	if (k->type == TPM2_ALG_RSA)
		return g_strdup_printf("RSA-%u", k->bits);
	return g_strdup_printf("ECC %s", kl_iak_idevid_curve_name(k->curve));
}

static gboolean
kl_iak_idevid_bytes_equal_stripped(GBytes *a, const guint8 *b, gsize b_len)
{
	g_autoptr(GBytes) bs = kl_iak_idevid_strip(b, b_len);
	return g_bytes_equal(a, bs);
}

gboolean
kl_iak_idevid_cert_match_public(gnutls_x509_crt_t crt, const TPMT_PUBLIC *pub, GError **error)
{
	KlIakCertKey key;
	gboolean same = FALSE;
	g_autofree gchar *tpm_desc = kl_iak_idevid_describe_tpm_key(pub);
	g_autofree gchar *cert_desc = NULL;

	if (!kl_iak_idevid_cert_key(crt, "certificate", &key, error))
		return FALSE;
	cert_desc = kl_iak_idevid_describe_cert_key(&key);
	if (key.type == pub->type && key.type == TPM2_ALG_RSA) {
		guint32 e = pub->parameters.rsaDetail.exponent != 0
				? pub->parameters.rsaDetail.exponent
				: 65537;
		guint8 e_be[4] = { e >> 24, e >> 16, e >> 8, e };
		same = kl_iak_idevid_bytes_equal_stripped(
			   key.a, pub->unique.rsa.buffer, pub->unique.rsa.size) &&
		       kl_iak_idevid_bytes_equal_stripped(key.b, e_be, sizeof(e_be));
	} else if (key.type == pub->type && key.type == TPM2_ALG_ECC) {
		same = key.curve == pub->parameters.eccDetail.curveID &&
		       kl_iak_idevid_bytes_equal_stripped(
			   key.a, pub->unique.ecc.x.buffer, pub->unique.ecc.x.size) &&
		       kl_iak_idevid_bytes_equal_stripped(
			   key.b, pub->unique.ecc.y.buffer, pub->unique.ecc.y.size);
	}
	kl_iak_cert_key_clear(&key);
	if (!same) {
		if (g_str_equal(tpm_desc, cert_desc))
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_AUTH,
				    "the certificate holds a different %s key than the TPM",
				    cert_desc);
		else
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_AUTH,
				    "the certificate holds an %s key, the TPM key is %s",
				    cert_desc,
				    tpm_desc);
	}
	return same;
}

/* ---- keys ---- */

static gchar *
kl_iak_idevid_rc_text(TSS2_RC rc)
{
	return g_strdup(Tss2_RC_Decode(rc));
}

gboolean
kl_iak_idevid_parse_auth(const gchar *password, const gchar *what, TPM2B_AUTH *out, GError **error)
{
	memset(out, 0, sizeof(*out));
	if (password == NULL || password[0] == '\0')
		return TRUE;
	if (g_str_has_prefix(password, "hex:")) {
		const gchar *hex = password + 4;
		gsize n = strlen(hex);
		if (n % 2 != 0 || n / 2 > sizeof(out->buffer)) {
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: \"hex:\" password must have an even number of hex digits, at "
			    "most %zu bytes",
			    what,
			    sizeof(out->buffer));
			return FALSE;
		}
		for (gsize i = 0; i < n / 2; i++) {
			gint hi = g_ascii_xdigit_value(hex[2 * i]);
			gint lo = g_ascii_xdigit_value(hex[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_CONFIG,
					    "%s: \"hex:\" password has a non-hex character",
					    what);
				return FALSE;
			}
			out->buffer[i] = (hi << 4) | lo;
		}
		out->size = n / 2;
		return TRUE;
	}
	if (strlen(password) > sizeof(out->buffer)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "%s: password longer than %zu bytes",
			    what,
			    sizeof(out->buffer));
		return FALSE;
	}
	out->size = strlen(password);
	memcpy(out->buffer, password, out->size);
	return TRUE;
}

gboolean
kl_iak_idevid_key_create(ESYS_CONTEXT *esys,
			 const gchar *endorsement_password,
			 const KlIakIdevidTemplate *tmpl,
			 KlIakIdevidKeyKind kind,
			 KlIakIdevidKey *out,
			 GError **error)
{
	TPM2B_SENSITIVE_CREATE sensitive = { 0 };
	TPM2B_PUBLIC in_public;
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation_pcr = { 0 };
	g_autoptr(TPM2B_PUBLIC) out_public = NULL;
	g_autoptr(TPM2B_CREATION_DATA) creation_data = NULL;
	g_autoptr(TPM2B_DIGEST) creation_hash = NULL;
	g_autoptr(TPMT_TK_CREATION) ticket = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	TSS2_RC rc;

	if (endorsement_password != NULL && endorsement_password[0] != '\0') {
		TPM2B_AUTH auth;
		if (!kl_iak_idevid_parse_auth(
			endorsement_password, "tpm_ownerpassword", &auth, error))
			return FALSE;
		rc = Esys_TR_SetAuth(esys, ESYS_TR_RH_ENDORSEMENT, &auth);
		memset(&auth, 0, sizeof(auth));
		if (rc != TSS2_RC_SUCCESS) {
			g_autofree gchar *text = kl_iak_idevid_rc_text(rc);
			g_set_error(error, KL_ERROR, KL_ERROR_TPM, "Esys_TR_SetAuth: %s", text);
			return FALSE;
		}
	}
	kl_iak_idevid_template_build(tmpl, kind, &in_public);
	rc = Esys_CreatePrimary(esys,
				ESYS_TR_RH_ENDORSEMENT,
				ESYS_TR_PASSWORD,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				&sensitive,
				&in_public,
				&outside,
				&creation_pcr,
				&handle,
				&out_public,
				&creation_data,
				&creation_hash,
				&ticket);
	if (rc != TSS2_RC_SUCCESS) {
		g_autofree gchar *desc = kl_iak_idevid_template_describe(tmpl);
		g_autofree gchar *text = kl_iak_idevid_rc_text(rc);
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_TPM,
		    "Esys_CreatePrimary (%s, template %s): %s; check that the TPM supports "
		    "the template's algorithms and that tpm_ownerpassword is the endorsement "
		    "hierarchy password",
		    kind == KL_IAK_IDEVID_KEY_IAK ? "IAK" : "IDevID",
		    desc,
		    text);
		return FALSE;
	}
	out->handle = handle;
	out->transient = TRUE;
	out->public = *out_public;
	return TRUE;
}

gboolean
kl_iak_idevid_key_from_handle(ESYS_CONTEXT *esys,
			      const gchar *handle,
			      const gchar *password,
			      const gchar *what,
			      KlIakIdevidKey *out,
			      GError **error)
{
	guint64 value = 0;
	gchar *end = NULL;
	const gchar *digits = handle;
	ESYS_TR tr = ESYS_TR_NONE;
	g_autoptr(TPM2B_PUBLIC) pub = NULL;
	TPM2B_AUTH auth;
	TSS2_RC rc;

	if (g_str_has_prefix(digits, "0x") || g_str_has_prefix(digits, "0X"))
		digits += 2;
	value = g_ascii_strtoull(digits, &end, 16);
	if (digits[0] == '\0' || end == NULL || *end != '\0' ||
	    (value >> 24) != TPM2_HT_PERSISTENT) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "%s: \"%s\" is not a persistent TPM handle (0x81000000 ... 0x81ffffff); "
		    "leave it empty to regenerate the key from its template",
		    what,
		    handle);
		return FALSE;
	}
	if (!kl_iak_idevid_parse_auth(password, what, &auth, error))
		return FALSE;
	rc = Esys_TR_FromTPMPublic(
	    esys, (TPM2_HANDLE)value, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
	if (rc != TSS2_RC_SUCCESS) {
		g_autofree gchar *text = kl_iak_idevid_rc_text(rc);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "%s: cannot open the persistent key %s: %s; check that the key exists "
			    "(tpm2_getcap handles-persistent)",
			    what,
			    handle,
			    text);
		return FALSE;
	}
	if (auth.size > 0) {
		rc = Esys_TR_SetAuth(esys, tr, &auth);
		if (rc != TSS2_RC_SUCCESS) {
			g_autofree gchar *text = kl_iak_idevid_rc_text(rc);
			Esys_TR_Close(esys, &tr);
			g_set_error(error, KL_ERROR, KL_ERROR_TPM, "Esys_TR_SetAuth: %s", text);
			return FALSE;
		}
	}
	rc = Esys_ReadPublic(esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		g_autofree gchar *text = kl_iak_idevid_rc_text(rc);
		Esys_TR_Close(esys, &tr);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "%s: Esys_ReadPublic of %s: %s",
			    what,
			    handle,
			    text);
		return FALSE;
	}
	out->handle = tr;
	out->transient = FALSE;
	out->public = *pub;
	return TRUE;
}

void
kl_iak_idevid_key_release(ESYS_CONTEXT *esys, KlIakIdevidKey *key)
{
	TSS2_RC rc;

	if (key->handle == ESYS_TR_NONE)
		return;
	if (key->transient) {
		rc = Esys_FlushContext(esys, key->handle);
		if (rc != TSS2_RC_SUCCESS)
			g_debug("Esys_FlushContext: %s", Tss2_RC_Decode(rc));
	} else {
		rc = Esys_TR_Close(esys, &key->handle);
		if (rc != TSS2_RC_SUCCESS)
			g_debug("Esys_TR_Close: %s", Tss2_RC_Decode(rc));
	}
	key->handle = ESYS_TR_NONE;
}

GBytes *
kl_iak_idevid_marshal_public(const TPM2B_PUBLIC *pub, GError **error)
{
	guint8 buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off);

	if (rc != TSS2_RC_SUCCESS) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "Tss2_MU_TPM2B_PUBLIC_Marshal: %s",
			    Tss2_RC_Decode(rc));
		return NULL;
	}
	return g_bytes_new(buf, off);
}

/* ---- the device identity ---- */

struct _KlIakIdevid {
	KlIakIdevidTemplate iak_template;
	KlIakIdevidTemplate idevid_template;
	gchar *iak_handle;
	gchar *iak_password;
	gchar *endorsement_password;
	GBytes *iak_public;
	GBytes *idevid_public;
	GBytes *iak_cert_der;
	GBytes *idevid_cert_der;
	gnutls_x509_crt_t iak_cert;
};

void
kl_iak_idevid_free(KlIakIdevid *self)
{
	if (self == NULL)
		return;
	g_free(self->iak_handle);
	if (self->iak_password != NULL)
		memset(self->iak_password, 0, strlen(self->iak_password));
	g_free(self->iak_password);
	if (self->endorsement_password != NULL)
		memset(self->endorsement_password, 0, strlen(self->endorsement_password));
	g_free(self->endorsement_password);
	g_clear_pointer(&self->iak_public, g_bytes_unref);
	g_clear_pointer(&self->idevid_public, g_bytes_unref);
	g_clear_pointer(&self->iak_cert_der, g_bytes_unref);
	g_clear_pointer(&self->idevid_cert_der, g_bytes_unref);
	kl_iak_idevid_crt_free(self->iak_cert);
	g_free(self);
}

static gboolean
kl_iak_idevid_pick_template(const KlIakIdevidOptions *options,
			    gnutls_x509_crt_t crt,
			    const gchar *what,
			    KlIakIdevidTemplate *out,
			    GError **error)
{
	const gchar *mode = options->template_mode != NULL ? options->template_mode : "";

	if (mode[0] == '\0' || g_ascii_strcasecmp(mode, "detect") == 0 ||
	    g_ascii_strcasecmp(mode, "default") == 0)
		return kl_iak_idevid_template_detect(crt, what, out, error);
	if (g_ascii_strcasecmp(mode, "manual") == 0)
		return kl_iak_idevid_template_from_algs(
		    options->asym_alg, options->name_alg, out, error);
	return kl_iak_idevid_template_from_name(mode, out, error);
}

/* obtains one key and checks it against its certificate */
static gboolean
kl_iak_idevid_obtain(ESYS_CONTEXT *esys,
		     const gchar *endorsement_password,
		     KlIakIdevidKeyKind kind,
		     const KlIakIdevidTemplate *tmpl,
		     const gchar *handle,
		     const gchar *password,
		     gnutls_x509_crt_t crt,
		     KlIakIdevidKey *out,
		     GError **error)
{
	const gchar *label = kind == KL_IAK_IDEVID_KEY_IAK ? "IAK" : "IDevID";
	const gchar *cert_key = kind == KL_IAK_IDEVID_KEY_IAK ? "iak_cert" : "idevid_cert";
	const gchar *handle_key = kind == KL_IAK_IDEVID_KEY_IAK ? "iak_handle" : "idevid_handle";
	g_autoptr(GError) error_local = NULL;
	gboolean persistent = handle != NULL && handle[0] != '\0';

	if (persistent) {
		if (!kl_iak_idevid_key_from_handle(esys, handle, password, handle_key, out, error))
			return FALSE;
	} else if (!kl_iak_idevid_key_create(esys, endorsement_password, tmpl, kind, out, error)) {
		return FALSE;
	}
	if (!kl_iak_idevid_cert_match_public(crt, &out->public.publicArea, &error_local)) {
		if (persistent) {
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s public key does not match %s (persistent key %s): %s; check "
			    "%s and %s",
			    label,
			    cert_key,
			    handle,
			    error_local->message,
			    handle_key,
			    cert_key);
		} else {
			g_autofree gchar *desc = kl_iak_idevid_template_describe(tmpl);
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_AUTH,
			    "%s public key does not match %s (template %s tried): %s; check "
			    "iak_idevid_template (detect, manual or H-1 ... H-5) and %s, or "
			    "set %s to the persistent key",
			    label,
			    cert_key,
			    desc,
			    error_local->message,
			    cert_key,
			    handle_key);
		}
		kl_iak_idevid_key_release(esys, out);
		return FALSE;
	}
	return TRUE;
}

KlIakIdevid *
kl_iak_idevid_new(ESYS_CONTEXT *esys, const KlIakIdevidOptions *options, GError **error)
{
	g_autoptr(KlIakIdevid) self = g_new0(KlIakIdevid, 1);
	gnutls_x509_crt_t idevid_crt = NULL;
	KlIakIdevidKey iak = { ESYS_TR_NONE, FALSE, { 0 } };
	KlIakIdevidKey idevid = { ESYS_TR_NONE, FALSE, { 0 } };
	gboolean ok = FALSE;

	self->iak_cert = kl_iak_idevid_cert_load(options->iak_cert, "iak_cert", error);
	if (self->iak_cert == NULL)
		return NULL;
	idevid_crt = kl_iak_idevid_cert_load(options->idevid_cert, "idevid_cert", error);
	if (idevid_crt == NULL)
		return NULL;

	if (!kl_iak_idevid_pick_template(
		options, self->iak_cert, "iak_cert", &self->iak_template, error))
		goto out;
	if (!kl_iak_idevid_pick_template(
		options, idevid_crt, "idevid_cert", &self->idevid_template, error))
		goto out;

	self->iak_handle = g_strdup(options->iak_handle != NULL ? options->iak_handle : "");
	g_strstrip(self->iak_handle);
	self->iak_password = g_strdup(options->iak_password != NULL ? options->iak_password : "");
	self->endorsement_password = g_strdup(options->endorsement_password);

	/* one key at a time: without a resource manager the TPM has few object slots */
	if (!kl_iak_idevid_obtain(esys,
				  self->endorsement_password,
				  KL_IAK_IDEVID_KEY_IAK,
				  &self->iak_template,
				  self->iak_handle,
				  self->iak_password,
				  self->iak_cert,
				  &iak,
				  error))
		goto out;
	self->iak_public = kl_iak_idevid_marshal_public(&iak.public, error);
	kl_iak_idevid_key_release(esys, &iak);
	if (self->iak_public == NULL)
		goto out;
	{
		g_autofree gchar *idevid_handle = g_strstrip(
		    g_strdup(options->idevid_handle != NULL ? options->idevid_handle : ""));
		if (!kl_iak_idevid_obtain(esys,
					  self->endorsement_password,
					  KL_IAK_IDEVID_KEY_IDEVID,
					  &self->idevid_template,
					  idevid_handle,
					  options->idevid_password,
					  idevid_crt,
					  &idevid,
					  error))
			goto out;
	}
	self->idevid_public = kl_iak_idevid_marshal_public(&idevid.public, error);
	kl_iak_idevid_key_release(esys, &idevid);
	if (self->idevid_public == NULL)
		goto out;
	self->iak_cert_der = kl_iak_idevid_cert_get_der(self->iak_cert, error);
	if (self->iak_cert_der == NULL)
		goto out;
	self->idevid_cert_der = kl_iak_idevid_cert_get_der(idevid_crt, error);
	if (self->idevid_cert_der == NULL)
		goto out;
	ok = TRUE;
out:
	kl_iak_idevid_key_release(esys, &iak);
	kl_iak_idevid_key_release(esys, &idevid);
	kl_iak_idevid_crt_free(idevid_crt);
	return ok ? g_steal_pointer(&self) : NULL;
}

const KlIakIdevidTemplate *
kl_iak_idevid_get_iak_template(KlIakIdevid *self)
{
	return &self->iak_template;
}

const KlIakIdevidTemplate *
kl_iak_idevid_get_idevid_template(KlIakIdevid *self)
{
	return &self->idevid_template;
}

GBytes *
kl_iak_idevid_get_iak_public(KlIakIdevid *self)
{
	return self->iak_public;
}

GBytes *
kl_iak_idevid_get_idevid_public(KlIakIdevid *self)
{
	return self->idevid_public;
}

GBytes *
kl_iak_idevid_get_iak_cert(KlIakIdevid *self)
{
	return self->iak_cert_der;
}

GBytes *
kl_iak_idevid_get_idevid_cert(KlIakIdevid *self)
{
	return self->idevid_cert_der;
}

const gchar *
kl_iak_idevid_get_iak_password(KlIakIdevid *self)
{
	return self->iak_password;
}

gboolean
kl_iak_idevid_load_iak(KlIakIdevid *self, ESYS_CONTEXT *esys, KlIakIdevidKey *out, GError **error)
{
	g_autoptr(GBytes) pub = NULL;

	out->handle = ESYS_TR_NONE;
	if (!kl_iak_idevid_obtain(esys,
				  self->endorsement_password,
				  KL_IAK_IDEVID_KEY_IAK,
				  &self->iak_template,
				  self->iak_handle,
				  self->iak_password,
				  self->iak_cert,
				  out,
				  error))
		return FALSE;
	pub = kl_iak_idevid_marshal_public(&out->public, error);
	if (pub == NULL) {
		kl_iak_idevid_key_release(esys, out);
		return FALSE;
	}
	if (!g_bytes_equal(pub, self->iak_public)) {
		/* same key, other attributes: the registrar would see a different iak_tpm */
		kl_iak_idevid_key_release(esys, out);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "the IAK changed since start-up; restart the agent");
		return FALSE;
	}
	return TRUE;
}

GBytes *
kl_iak_idevid_qualifying_data(const gchar *agent_id)
{
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize len = sizeof(digest);

	g_checksum_update(sum, (const guchar *)agent_id, strlen(agent_id));
	g_checksum_get_digest(sum, digest, &len);
	return g_bytes_new(digest, len);
}

void
kl_iak_idevid_fill_registration(KlIakIdevid *self,
				JsonObject *body,
				GBytes *attest,
				GBytes *signature)
{
	struct {
		const gchar *key;
		GBytes *value;
	} fields[] = {
		{ "iak_tpm", self->iak_public },    { "idevid_tpm", self->idevid_public },
		{ "iak_cert", self->iak_cert_der }, { "idevid_cert", self->idevid_cert_der },
		{ "iak_attest", attest },	    { "iak_sign", signature },
	};

	for (guint i = 0; i < G_N_ELEMENTS(fields); i++) {
		gsize len = 0;
		const guint8 *data = g_bytes_get_data(fields[i].value, &len);
		g_autofree gchar *b64 = g_base64_encode(data, len);
		json_object_set_string_member(body, fields[i].key, b64);
	}
}
