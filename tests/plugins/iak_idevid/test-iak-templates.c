/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * iak_idevid without a TPM: template bytes against known answers, template
 * selection (names, manual algorithms, detection from certificates), the
 * certificate/public-key comparison and the password syntax.
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <tss2/tss2_mu.h>

#include "kl-iak-idevid-plugin.h"
#include "kl-iak-idevid.h"

static gchar *
marshal_template_hex(const gchar *name, KlIakIdevidKeyKind kind)
{
	KlIakIdevidTemplate t;
	TPM2B_PUBLIC pub;
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	g_autoptr(GError) error = NULL;
	GString *hex = g_string_new(NULL);

	g_assert_true(kl_iak_idevid_template_from_name(name, &t, &error));
	g_assert_no_error(error);
	kl_iak_idevid_template_build(&t, kind, &pub);
	g_assert_cmpint(
	    Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, buf, sizeof(buf), &off), ==, 0);
	for (size_t i = 0; i < off; i++)
		g_string_append_printf(hex, "%02x", buf[i]);
	return g_string_free(hex, FALSE);
}

#define IAK_POL_256    "5437182326e414fca797d5f174615a1641f61255797c3a2b22c21d120b2d1e07"
#define IDEVID_POL_256 "ad6b3a2284fd698a0710bf5cc1b9bdf15e2532e3f601fa4b93a6a8fa8de579ea"
#define IAK_POL_384                                                                                \
	"129d94ebf84556652c6eef43bbb757512ac87e52be7b349ca6ce4d826f749fcf672f51716c5cbb605f313bf3" \
	"45aab312"
#define IDEVID_POL_384                                                                             \
	"4db1aa836d0b5615df6ee53a40ef70c61c217f4303d44695925972bc927006cfa5cbdf6dc18c4dbe329b2f15" \
	"42c3dd33"

/*
 * Known answers: H-1 as produced by the Keylime provisioning script
 * (tpm2_createprimary -G rsa2048:rsapss-sha256:null / rsa2048:null:null with
 * the TCG attributes, policy and unique), H-2/H-3 in the layout of the TCG
 * tables (ECDSA with the template hash, unique x = y = "IAK" / "IDEVID").
 */
static void
test_template_known_answers(void)
{
	struct {
		const gchar *name;
		KlIakIdevidKeyKind kind;
		const gchar *hex;
	} cases[] = {
		{ "H-1",
		  KL_IAK_IDEVID_KEY_IAK,
		  "0001000b000500f20020" IAK_POL_256 "00100016000b08000000000000"
		  "0349414b" },
		{ "H-1",
		  KL_IAK_IDEVID_KEY_IDEVID,
		  "0001000b000400f20020" IDEVID_POL_256 "0010001008000000000000"
		  "06494445564944" },
		{ "H-2",
		  KL_IAK_IDEVID_KEY_IAK,
		  "0023000b000500f20020" IAK_POL_256 "00100018000b00030010"
		  "000349414b000349414b" },
		{ "H-2",
		  KL_IAK_IDEVID_KEY_IDEVID,
		  "0023000b000400f20020" IDEVID_POL_256 "00100018000b00030010"
		  "00064944455649440006494445564944" },
		{ "H-3",
		  KL_IAK_IDEVID_KEY_IAK,
		  "0023000c000500f20030" IAK_POL_384 "00100018000c00040010"
		  "000349414b000349414b" },
		{ "H-3",
		  KL_IAK_IDEVID_KEY_IDEVID,
		  "0023000c000400f20030" IDEVID_POL_384 "00100018000c00040010"
		  "00064944455649440006494445564944" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *hex = marshal_template_hex(cases[i].name, cases[i].kind);
		g_test_message("%s %s", cases[i].name, cases[i].kind == 0 ? "IAK" : "IDevID");
		g_assert_cmpstr(hex, ==, cases[i].hex);
	}
}

static void
test_template_h4_h5(void)
{
	KlIakIdevidTemplate t;
	TPM2B_PUBLIC pub;
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_iak_idevid_template_from_name("h-4", &t, &error));
	kl_iak_idevid_template_build(&t, KL_IAK_IDEVID_KEY_IAK, &pub);
	g_assert_cmpint(pub.publicArea.nameAlg, ==, TPM2_ALG_SHA512);
	g_assert_cmpint(pub.publicArea.parameters.eccDetail.curveID, ==, TPM2_ECC_NIST_P521);
	g_assert_cmpint(pub.publicArea.authPolicy.size, ==, 64);
	g_assert_true(pub.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);

	g_assert_true(kl_iak_idevid_template_from_name("H-5", &t, &error));
	kl_iak_idevid_template_build(&t, KL_IAK_IDEVID_KEY_IDEVID, &pub);
	g_assert_cmpint(pub.publicArea.nameAlg, ==, TPM2_ALG_SM3_256);
	g_assert_cmpint(pub.publicArea.parameters.eccDetail.curveID, ==, TPM2_ECC_SM2_P256);
	g_assert_false(pub.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);

	g_assert_false(kl_iak_idevid_template_from_name("H-9", &t, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "H-9"));
}

static void
test_template_manual(void)
{
	struct {
		const gchar *asym, *hash, *expect;
	} ok[] = {
		{ "rsa", "sha256", "H-1" },
		{ "ecc", "sha256", "H-2" },
		{ "ECC", "sha384", "H-3" },
		{ "ecc", "sha512", "H-4" },
		{ "ecc", "sm3_256", "H-5" },
		{ "ecc384", "sha384", "H-3" },
		{ "rsa", "sha384", "rsa-3072/sha384 (manual)" },
		{ "ecc256", "sha384", "ecc NIST P-256/sha384 (manual)" },
	};
	KlIakIdevidTemplate t;

	for (guint i = 0; i < G_N_ELEMENTS(ok); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *desc = NULL;
		g_assert_true(kl_iak_idevid_template_from_algs(ok[i].asym, ok[i].hash, &t, &error));
		g_assert_no_error(error);
		desc = kl_iak_idevid_template_describe(&t);
		g_assert_cmpstr(desc, ==, ok[i].expect);
	}
	{
		g_autoptr(GError) error = NULL;
		g_assert_false(kl_iak_idevid_template_from_algs("dsa", "sha256", &t, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, "iak_idevid_asymmetric_alg"));
	}
	{
		g_autoptr(GError) error = NULL;
		g_assert_false(kl_iak_idevid_template_from_algs("rsa", "md5", &t, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message, "iak_idevid_name_alg"));
	}
}

/* a self-signed certificate for a fresh software key; returns the certificate */
static gnutls_x509_crt_t
make_cert(gnutls_pk_algorithm_t alg, unsigned int bits, gnutls_x509_privkey_t *key_out)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	guint8 serial[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	time_t now = time(NULL);

	g_assert_cmpint(gnutls_x509_privkey_init(&key), ==, 0);
	g_assert_cmpint(gnutls_x509_privkey_generate(key, alg, bits, 0), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_init(&crt), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_version(crt, 3), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_activation_time(crt, now - 60), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_expiration_time(crt, now + 3600), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_dn(crt, "CN=test", NULL), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_set_key(crt, key), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_sign2(crt,
					      crt,
					      key,
					      alg == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_DIG_UNKNOWN
									     : GNUTLS_DIG_SHA384,
					      0),
			==,
			0);
	if (key_out != NULL)
		*key_out = key;
	else
		gnutls_x509_privkey_deinit(key);
	return crt;
}

static void
test_detect(void)
{
	struct {
		gnutls_pk_algorithm_t alg;
		unsigned int bits;
		const gchar *expect;
	} cases[] = {
		{ GNUTLS_PK_RSA, 2048, "H-1" },
		{ GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), "H-2" },
		{ GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1), "H-3" },
		{ GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP521R1), "H-4" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		gnutls_x509_crt_t crt = make_cert(cases[i].alg, cases[i].bits, NULL);
		KlIakIdevidTemplate t;
		g_autoptr(GError) error = NULL;

		/* certificates are signed with SHA-384 on purpose: the key decides */
		g_assert_true(kl_iak_idevid_template_detect(crt, "iak_cert", &t, &error));
		g_assert_no_error(error);
		g_assert_cmpstr(t.name, ==, cases[i].expect);
		gnutls_x509_crt_deinit(crt);
	}
	{
		gnutls_x509_crt_t crt = make_cert(GNUTLS_PK_EDDSA_ED25519, 256, NULL);
		KlIakIdevidTemplate t;
		g_autoptr(GError) error = NULL;
		g_assert_false(kl_iak_idevid_template_detect(crt, "idevid_cert", &t, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
		g_assert_nonnull(strstr(error->message, "idevid_cert"));
		gnutls_x509_crt_deinit(crt);
	}
}

/* the comparison works on the numbers: a TPMT_PUBLIC built from the same key matches */
static void
test_match_public(void)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt =
	    make_cert(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), &key);
	gnutls_x509_crt_t other = make_cert(GNUTLS_PK_RSA, 2048, NULL);
	gnutls_ecc_curve_t curve;
	gnutls_datum_t x, y, k;
	TPMT_PUBLIC pub = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_cmpint(gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &k), ==, 0);
	pub.type = TPM2_ALG_ECC;
	pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	/* GnuTLS may add a leading zero; the TPM gives fixed-size coordinates */
	{
		const guint8 *px = x.data + (x.size > 32 ? x.size - 32 : 0);
		const guint8 *py = y.data + (y.size > 32 ? y.size - 32 : 0);
		gsize lx = MIN(x.size, 32), ly = MIN(y.size, 32);
		memset(pub.unique.ecc.x.buffer, 0, 32);
		memset(pub.unique.ecc.y.buffer, 0, 32);
		memcpy(pub.unique.ecc.x.buffer + 32 - lx, px, lx);
		memcpy(pub.unique.ecc.y.buffer + 32 - ly, py, ly);
		pub.unique.ecc.x.size = pub.unique.ecc.y.size = 32;
	}
	g_assert_true(kl_iak_idevid_cert_match_public(crt, &pub, &error));
	g_assert_no_error(error);

	/* one bit off: no match */
	pub.unique.ecc.y.buffer[31] ^= 1;
	g_assert_false(kl_iak_idevid_cert_match_public(crt, &pub, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "different ECC NIST P-256 key"));
	g_clear_error(&error);

	/* other algorithm */
	g_assert_false(kl_iak_idevid_cert_match_public(other, &pub, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "RSA-2048"));
	g_assert_nonnull(strstr(error->message, "ECC NIST P-256"));

	gnutls_free(x.data);
	gnutls_free(y.data);
	gnutls_free(k.data);
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crt_deinit(other);
}

static void
test_cert_load(void)
{
	g_autofree gchar *dir = g_dir_make_tmp("kl-iak-XXXXXX", NULL);
	g_autofree gchar *pem_path = g_build_filename(dir, "c.pem", NULL);
	g_autofree gchar *der_path = g_build_filename(dir, "c.der", NULL);
	g_autofree gchar *bad_path = g_build_filename(dir, "bad.pem", NULL);
	g_autofree gchar *missing = g_build_filename(dir, "missing.pem", NULL);
	gnutls_x509_crt_t crt = make_cert(GNUTLS_PK_RSA, 2048, NULL);
	gnutls_datum_t pem, der;
	gnutls_x509_crt_t a, b;
	g_autoptr(GBytes) da = NULL;
	g_autoptr(GBytes) db = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_cmpint(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), ==, 0);
	g_assert_true(g_file_set_contents(pem_path, (gchar *)pem.data, pem.size, NULL));
	g_assert_true(g_file_set_contents(der_path, (gchar *)der.data, der.size, NULL));
	g_assert_true(g_file_set_contents(bad_path, "-----BEGIN CERTIFICATE-----\nxx\n", -1, NULL));

	a = kl_iak_idevid_cert_load(pem_path, "iak_cert", &error);
	g_assert_no_error(error);
	b = kl_iak_idevid_cert_load(der_path, "idevid_cert", &error);
	g_assert_no_error(error);
	da = kl_iak_idevid_cert_get_der(a, &error);
	db = kl_iak_idevid_cert_get_der(b, &error);
	g_assert_true(g_bytes_equal(da, db));
	g_assert_cmpmem(g_bytes_get_data(da, NULL), g_bytes_get_size(da), der.data, der.size);

	g_assert_null(kl_iak_idevid_cert_load(missing, "idevid_cert", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_assert_nonnull(strstr(error->message, missing));
	g_assert_nonnull(strstr(error->message, "idevid_cert"));
	g_clear_error(&error);

	g_assert_null(kl_iak_idevid_cert_load(bad_path, "iak_cert", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, bad_path));
	g_clear_error(&error);

	g_assert_null(kl_iak_idevid_cert_load("", "iak_cert", &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);

	gnutls_x509_crt_deinit(a);
	gnutls_x509_crt_deinit(b);
	gnutls_x509_crt_deinit(crt);
	gnutls_free(pem.data);
	gnutls_free(der.data);
	g_unlink(pem_path);
	g_unlink(der_path);
	g_unlink(bad_path);
	g_rmdir(dir);
}

/*
 * SM2 (H-5): GnuTLS does not know the curve; the plugin reads the point from
 * the certificate itself. The certificate was made with
 * openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2 and
 * openssl req -x509 -sm3; sm2-point.hex is its public point x || y.
 */
static void
test_sm2(void)
{
	g_autofree gchar *cert_path =
	    g_test_build_filename(G_TEST_DIST, "data", "iak", "sm2-cert.pem", NULL);
	g_autofree gchar *point_path =
	    g_test_build_filename(G_TEST_DIST, "data", "iak", "sm2-point.hex", NULL);
	g_autofree gchar *hex = NULL;
	g_autoptr(GError) error = NULL;
	gnutls_x509_crt_t crt;
	KlIakIdevidTemplate t;
	TPMT_PUBLIC pub = { 0 };

	g_assert_true(g_file_get_contents(point_path, &hex, NULL, NULL));
	g_strstrip(hex);
	g_assert_cmpuint(strlen(hex), ==, 128);
	for (guint i = 0; i < 64; i++) {
		guint8 b =
		    (g_ascii_xdigit_value(hex[2 * i]) << 4) | g_ascii_xdigit_value(hex[2 * i + 1]);
		if (i < 32)
			pub.unique.ecc.x.buffer[i] = b;
		else
			pub.unique.ecc.y.buffer[i - 32] = b;
	}
	pub.unique.ecc.x.size = pub.unique.ecc.y.size = 32;
	pub.type = TPM2_ALG_ECC;
	pub.parameters.eccDetail.curveID = TPM2_ECC_SM2_P256;

	crt = kl_iak_idevid_cert_load(cert_path, "iak_cert", &error);
	g_assert_no_error(error);
	g_assert_true(kl_iak_idevid_template_detect(crt, "iak_cert", &t, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(t.name, ==, "H-5");
	g_assert_true(kl_iak_idevid_cert_match_public(crt, &pub, &error));
	g_assert_no_error(error);

	/* a NIST P-256 key with the same numbers is another key */
	pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	g_assert_false(kl_iak_idevid_cert_match_public(crt, &pub, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "ECC SM2"));
	gnutls_x509_crt_deinit(crt);
}

static void
test_parse_auth(void)
{
	TPM2B_AUTH auth;
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_iak_idevid_parse_auth("", "iak_password", &auth, &error));
	g_assert_cmpint(auth.size, ==, 0);
	g_assert_true(kl_iak_idevid_parse_auth("secret", "iak_password", &auth, &error));
	g_assert_cmpmem(auth.buffer, auth.size, "secret", 6);
	g_assert_true(kl_iak_idevid_parse_auth("hex:00ff41", "iak_password", &auth, &error));
	g_assert_cmpmem(auth.buffer, auth.size, "\x00\xff\x41", 3);
	g_assert_false(kl_iak_idevid_parse_auth("hex:0g", "iak_password", &auth, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	g_assert_false(kl_iak_idevid_parse_auth("hex:abc", "idevid_password", &auth, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "idevid_password"));
}

static void
test_qualifying_data(void)
{
	g_autoptr(GBytes) q = kl_iak_idevid_qualifying_data("d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
	g_autofree gchar *hex = g_compute_checksum_for_string(
	    G_CHECKSUM_SHA256, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000", -1);
	GString *got = g_string_new(NULL);
	const guint8 *d = g_bytes_get_data(q, NULL);

	g_assert_cmpuint(g_bytes_get_size(q), ==, 32);
	for (guint i = 0; i < 32; i++)
		g_string_append_printf(got, "%02x", d[i]);
	g_assert_cmpstr(got->str, ==, hex);
	g_string_free(got, TRUE);
}

/* the plugin never advertises evidence */
static void
test_no_evidence(void)
{
	g_autoptr(GError) error = NULL;

	g_assert_null(kl_iak_idevid_plugin_get_capabilities(NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	g_assert_null(kl_iak_idevid_plugin_collect(NULL, NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/iak/template/known-answers", test_template_known_answers);
	g_test_add_func("/iak/template/h4-h5", test_template_h4_h5);
	g_test_add_func("/iak/template/manual", test_template_manual);
	g_test_add_func("/iak/template/detect", test_detect);
	g_test_add_func("/iak/cert/match-public", test_match_public);
	g_test_add_func("/iak/cert/load", test_cert_load);
	g_test_add_func("/iak/cert/sm2", test_sm2);
	g_test_add_func("/iak/parse-auth", test_parse_auth);
	g_test_add_func("/iak/qualifying-data", test_qualifying_data);
	g_test_add_func("/iak/no-evidence", test_no_evidence);
	return g_test_run();
}
