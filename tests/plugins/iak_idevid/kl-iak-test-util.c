/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Provisioning helpers of the iak tests.
 */
#include "config.h"

#include <string.h>

#include <tss2/tss2_mu.h>

#include "kl-iak-test-util.h"

GBytes *
kl_iak_test_hex_decode(const gchar *hex)
{
	gsize n = strlen(hex) / 2;
	guint8 *buf = g_malloc(n);

	for (gsize i = 0; i < n; i++)
		buf[i] =
		    (g_ascii_xdigit_value(hex[2 * i]) << 4) | g_ascii_xdigit_value(hex[2 * i + 1]);
	return g_bytes_new_take(buf, n);
}

ESYS_TR
kl_iak_test_provision_key(ESYS_CONTEXT *esys,
			  const gchar *template_hex,
			  const gchar *auth,
			  TPM2B_PUBLIC *out)
{
	g_autoptr(GBytes) raw = kl_iak_test_hex_decode(template_hex);
	TPM2B_PUBLIC in = { 0 };
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	size_t off = 0;

	g_assert_cmpint(
	    Tss2_MU_TPMT_PUBLIC_Unmarshal(
		g_bytes_get_data(raw, NULL), g_bytes_get_size(raw), &off, &in.publicArea),
	    ==,
	    0);
	g_assert_cmpuint(off, ==, g_bytes_get_size(raw));
	if (auth != NULL) {
		sens.sensitive.userAuth.size = strlen(auth);
		memcpy(sens.sensitive.userAuth.buffer, auth, strlen(auth));
	}
	g_assert_cmpint(Esys_CreatePrimary(esys,
					   ESYS_TR_RH_ENDORSEMENT,
					   ESYS_TR_PASSWORD,
					   ESYS_TR_NONE,
					   ESYS_TR_NONE,
					   &sens,
					   &in,
					   &outside,
					   &pcrs,
					   &handle,
					   &pub,
					   NULL,
					   NULL,
					   NULL),
			==,
			TSS2_RC_SUCCESS);
	*out = *pub;
	Esys_Free(pub);
	return handle;
}

gnutls_pubkey_t
kl_iak_test_pubkey_from_tpm(const TPMT_PUBLIC *pub)
{
	gnutls_pubkey_t pk;

	g_assert_cmpint(gnutls_pubkey_init(&pk), ==, 0);
	if (pub->type == TPM2_ALG_RSA) {
		guint8 e[3] = { 0x01, 0x00, 0x01 };
		gnutls_datum_t m = { (unsigned char *)pub->unique.rsa.buffer,
				     pub->unique.rsa.size };
		gnutls_datum_t ed = { e, sizeof(e) };
		g_assert_cmpint(pub->parameters.rsaDetail.exponent, ==, 0);
		g_assert_cmpint(gnutls_pubkey_import_rsa_raw(pk, &m, &ed), ==, 0);
	} else {
		gnutls_datum_t x = { (unsigned char *)pub->unique.ecc.x.buffer,
				     pub->unique.ecc.x.size };
		gnutls_datum_t y = { (unsigned char *)pub->unique.ecc.y.buffer,
				     pub->unique.ecc.y.size };
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_SECP256R1;
		if (pub->parameters.eccDetail.curveID == TPM2_ECC_NIST_P384)
			curve = GNUTLS_ECC_CURVE_SECP384R1;
		else
			g_assert_cmpint(pub->parameters.eccDetail.curveID, ==, TPM2_ECC_NIST_P256);
		g_assert_cmpint(gnutls_pubkey_import_ecc_raw(pk, curve, &x, &y), ==, 0);
	}
	return pk;
}

void
kl_iak_test_ca_init(KlIakTestCa *ca)
{
	time_t now = time(NULL);
	guint8 serial[1] = { 1 };

	memset(ca, 0, sizeof(*ca));
	g_assert_cmpint(gnutls_x509_privkey_init(&ca->key), ==, 0);
	g_assert_cmpint(
	    gnutls_x509_privkey_generate(
		ca->key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1), 0),
	    ==,
	    0);
	g_assert_cmpint(gnutls_x509_crt_init(&ca->crt), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_version(ca->crt, 3), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_serial(ca->crt, serial, sizeof(serial)), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_activation_time(ca->crt, now - 60), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_expiration_time(ca->crt, now + 86400), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_dn(ca->crt, "CN=Test IAK/IDevID CA", NULL), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1), ==, 0);
	g_assert_cmpint(
	    gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
	    ==,
	    0);
	g_assert_cmpint(gnutls_x509_crt_set_key(ca->crt, ca->key), ==, 0);
	g_assert_cmpint(
	    gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA384, 0), ==, 0);
}

void
kl_iak_test_ca_clear(KlIakTestCa *ca)
{
	if (ca->crt != NULL)
		gnutls_x509_crt_deinit(ca->crt);
	if (ca->key != NULL)
		gnutls_x509_privkey_deinit(ca->key);
	memset(ca, 0, sizeof(*ca));
}

static gchar *
kl_iak_test_write_crt(gnutls_x509_crt_t crt, const gchar *dir, const gchar *cn, gboolean pem)
{
	g_autofree gchar *name = g_strdup_printf("%s.%s", cn, pem ? "pem" : "der");
	gchar *path = g_build_filename(dir, name, NULL);
	gnutls_datum_t out;

	g_assert_cmpint(
	    gnutls_x509_crt_export2(crt, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, &out),
	    ==,
	    0);
	g_assert_true(g_file_set_contents(path, (const gchar *)out.data, out.size, NULL));
	gnutls_free(out.data);
	return path;
}

gchar *
kl_iak_test_ca_write(KlIakTestCa *ca, const gchar *dir)
{
	return kl_iak_test_write_crt(ca->crt, dir, "iak-idevid-ca", TRUE);
}

gchar *
kl_iak_test_issue_cert(
    KlIakTestCa *ca, gnutls_pubkey_t pk, const gchar *dir, const gchar *cn, gboolean pem)
{
	gnutls_x509_crt_t crt;
	gnutls_privkey_t ca_priv;
	guint8 serial[4] = { 0, 0, 1, ++ca->serial };
	time_t now = time(NULL);
	g_autofree gchar *dn = g_strdup_printf("CN=%s,O=keylime-agent-c tests", cn);
	gchar *path;

	g_assert_cmpint(gnutls_x509_crt_init(&crt), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_version(crt, 3), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_activation_time(crt, now - 60), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_expiration_time(crt, now + 86400), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_dn(crt, dn, NULL), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_pubkey(crt, pk), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), ==, 0);
	g_assert_cmpint(gnutls_privkey_init(&ca_priv), ==, 0);
	g_assert_cmpint(gnutls_privkey_import_x509(ca_priv, ca->key, 0), ==, 0);
	g_assert_cmpint(
	    gnutls_x509_crt_privkey_sign(crt, ca->crt, ca_priv, GNUTLS_DIG_SHA384, 0), ==, 0);
	path = kl_iak_test_write_crt(crt, dir, cn, pem);
	gnutls_privkey_deinit(ca_priv);
	gnutls_x509_crt_deinit(crt);
	return path;
}

gchar *
kl_iak_test_issue_cert_for_tpm(
    KlIakTestCa *ca, const TPM2B_PUBLIC *pub, const gchar *dir, const gchar *cn, gboolean pem)
{
	gnutls_pubkey_t pk = kl_iak_test_pubkey_from_tpm(&pub->publicArea);
	gchar *path = kl_iak_test_issue_cert(ca, pk, dir, cn, pem);

	gnutls_pubkey_deinit(pk);
	return path;
}

gchar *
kl_iak_test_issue_cert_for_other_key(KlIakTestCa *ca, const gchar *dir, const gchar *cn)
{
	gnutls_x509_privkey_t k;
	gnutls_privkey_t p;
	gnutls_pubkey_t pk;
	gchar *path;

	g_assert_cmpint(gnutls_x509_privkey_init(&k), ==, 0);
	g_assert_cmpint(gnutls_x509_privkey_generate(k, GNUTLS_PK_RSA, 2048, 0), ==, 0);
	g_assert_cmpint(gnutls_privkey_init(&p), ==, 0);
	g_assert_cmpint(gnutls_privkey_import_x509(p, k, 0), ==, 0);
	g_assert_cmpint(gnutls_pubkey_init(&pk), ==, 0);
	g_assert_cmpint(gnutls_pubkey_import_privkey(pk, p, 0, 0), ==, 0);
	path = kl_iak_test_issue_cert(ca, pk, dir, cn, TRUE);
	gnutls_pubkey_deinit(pk);
	gnutls_privkey_deinit(p);
	gnutls_x509_privkey_deinit(k);
	return path;
}
