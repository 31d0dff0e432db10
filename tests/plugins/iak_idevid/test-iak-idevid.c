/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * iak_idevid against a TPM (swtpm): IAK and IDevID are provisioned the way a
 * manufacturer does it (CreatePrimary from the TCG templates, here given as
 * raw bytes independent of the plugin's template code, certificates from a
 * test CA), then the plugin runs through its descriptor with a real
 * KlPluginContext and KlTpm, and the registration fields are checked as a
 * registrar would: iak_attest verifies with the IAK, extraData =
 * SHA-256(agent id), the certified name is the AK's.
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <tss2/tss2_mu.h>

#include "kl-iak-idevid.h"
#include "kl-iak-test-util.h"
#include "kl-plugin-context-private.h"
#include "kl-tpm-private.h"

#include "kl-test-skip.h"

const KlPluginInfo *
kl_plugin_get_info(void);

#define AGENT_ID "d432fbb3-d2f1-4a97-9ef7-75bd81c00000"

#define PERSISTENT_IAK 0x81000100

/* everything a test case needs, shared by all cases (one swtpm per program) */
typedef struct {
	KlTpm *tpm;
	gchar *dir;
	KlIakTestCa ca;
	/* provisioned keys */
	TPM2B_PUBLIC h1_iak, h1_idevid, h2_iak, h2_idevid, h3_iak, h3_idevid;
	gchar *h1_iak_cert, *h1_idevid_cert, *h2_iak_cert, *h2_idevid_cert;
	gchar *h3_iak_cert, *h3_idevid_cert;
	gchar *other_cert; /* for a software key */
} Fixture;

static Fixture fx;

/* ---- provisioning ---- */

static ESYS_TR
provision_key(const gchar *template_hex, const gchar *auth, TPM2B_PUBLIC *out)
{
	return kl_iak_test_provision_key(kl_tpm_get_esys(fx.tpm), template_hex, auth, out);
}

static void
flush(ESYS_TR handle)
{
	g_assert_cmpint(Esys_FlushContext(kl_tpm_get_esys(fx.tpm), handle), ==, TSS2_RC_SUCCESS);
}

static gchar *
issue_cert_for_tpm(const TPM2B_PUBLIC *pub, const gchar *cn, gboolean pem)
{
	return kl_iak_test_issue_cert_for_tpm(&fx.ca, pub, fx.dir, cn, pem);
}

/* ---- running the plugin ---- */

static const gchar *
config_lookup_cb(gpointer user_data, const gchar *table, const gchar *key)
{
	return g_hash_table_lookup(user_data, key);
}

static GHashTable *
config_new(const gchar *iak_cert, const gchar *idevid_cert)
{
	GHashTable *cfg = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

	g_hash_table_insert(cfg, g_strdup("enable_iak_idevid"), g_strdup("true"));
	g_hash_table_insert(cfg, g_strdup("iak_idevid_template"), g_strdup("detect"));
	g_hash_table_insert(cfg, g_strdup("iak_idevid_asymmetric_alg"), g_strdup("rsa"));
	g_hash_table_insert(cfg, g_strdup("iak_idevid_name_alg"), g_strdup("sha256"));
	g_hash_table_insert(cfg, g_strdup("iak_handle"), g_strdup(""));
	g_hash_table_insert(cfg, g_strdup("iak_password"), g_strdup(""));
	g_hash_table_insert(cfg, g_strdup("idevid_handle"), g_strdup(""));
	g_hash_table_insert(cfg, g_strdup("idevid_password"), g_strdup(""));
	g_hash_table_insert(cfg, g_strdup("iak_cert"), g_strdup(iak_cert));
	g_hash_table_insert(cfg, g_strdup("idevid_cert"), g_strdup(idevid_cert));
	return cfg;
}

static void
config_set(GHashTable *cfg, const gchar *key, const gchar *value)
{
	g_hash_table_insert(cfg, g_strdup(key), g_strdup(value));
}

static KlPluginContext *
context_new(GHashTable *cfg, KlTpm *tpm)
{
	return kl_plugin_context_new("iak_idevid", config_lookup_cb, cfg, AGENT_ID, fx.dir, 0, tpm);
}

/* TRUE + a filled body, or FALSE + @error from startup */
static gboolean
run_plugin(GHashTable *cfg, JsonObject *body, GError **error)
{
	const KlPluginInfo *info = kl_plugin_get_info();
	KlPluginContext *ctx = context_new(cfg, fx.tpm);
	gboolean ok;

	ok = info->startup(ctx, error);
	if (ok) {
		g_autoptr(GError) error_local = NULL;
		g_assert_true(info->contribute_registration(ctx, body, &error_local));
		g_assert_no_error(error_local);
		/* registration is repeated after a 400: the second round must work too */
		g_assert_true(info->contribute_registration(ctx, body, &error_local));
		g_assert_no_error(error_local);
		info->shutdown(ctx);
	}
	kl_plugin_context_free(ctx);
	return ok;
}

static GBytes *
member_b64(JsonObject *body, const gchar *key)
{
	const gchar *text;
	gsize len = 0;
	guchar *data;

	g_assert_true(json_object_has_member(body, key));
	text = json_object_get_string_member(body, key);
	g_assert_nonnull(text);
	data = g_base64_decode(text, &len);
	g_assert_cmpuint(len, >, 0);
	return g_bytes_new_take(data, len);
}

static GBytes *
file_der(const gchar *path)
{
	g_autoptr(GError) error = NULL;
	gnutls_x509_crt_t crt = kl_iak_idevid_cert_load(path, "test", &error);
	GBytes *der;

	g_assert_no_error(error);
	der = kl_iak_idevid_cert_get_der(crt, &error);
	g_assert_no_error(error);
	gnutls_x509_crt_deinit(crt);
	return der;
}

/* checks the six fields the way the registrar does (Tpm.verify_aik_with_iak) */
static void
check_registration(JsonObject *body,
		   const TPM2B_PUBLIC *iak,
		   const TPM2B_PUBLIC *idevid,
		   const gchar *iak_cert,
		   const gchar *idevid_cert)
{
	g_autoptr(GBytes) iak_tpm = member_b64(body, "iak_tpm");
	g_autoptr(GBytes) idevid_tpm = member_b64(body, "idevid_tpm");
	g_autoptr(GBytes) iak_der = member_b64(body, "iak_cert");
	g_autoptr(GBytes) idevid_der = member_b64(body, "idevid_cert");
	g_autoptr(GBytes) attest = member_b64(body, "iak_attest");
	g_autoptr(GBytes) sig = member_b64(body, "iak_sign");
	g_autoptr(GBytes) want_iak_der = file_der(iak_cert);
	g_autoptr(GBytes) want_idevid_der = file_der(idevid_cert);
	g_autoptr(GBytes) want_extra = kl_iak_idevid_qualifying_data(AGENT_ID);
	GBytes *ak_name = kl_tpm_get_ak_name(fx.tpm);
	TPM2B_PUBLIC got_iak = { 0 }, got_idevid = { 0 };
	TPMS_ATTEST a = { 0 };
	TPMT_SIGNATURE s = { 0 };
	size_t off = 0;
	gnutls_pubkey_t pk;
	gnutls_datum_t data, sigd = { NULL, 0 };
	gnutls_sign_algorithm_t salg;
	int rc;

	/* iak_tpm / idevid_tpm: exactly one marshalled TPM2B_PUBLIC each */
	g_assert_cmpint(
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(
		g_bytes_get_data(iak_tpm, NULL), g_bytes_get_size(iak_tpm), &off, &got_iak),
	    ==,
	    0);
	g_assert_cmpuint(off, ==, g_bytes_get_size(iak_tpm));
	g_assert_cmpmem(&got_iak.publicArea.unique,
			sizeof(got_iak.publicArea.unique),
			&iak->publicArea.unique,
			sizeof(iak->publicArea.unique));
	g_assert_true(got_iak.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);
	off = 0;
	g_assert_cmpint(Tss2_MU_TPM2B_PUBLIC_Unmarshal(g_bytes_get_data(idevid_tpm, NULL),
						       g_bytes_get_size(idevid_tpm),
						       &off,
						       &got_idevid),
			==,
			0);
	g_assert_cmpuint(off, ==, g_bytes_get_size(idevid_tpm));
	g_assert_cmpmem(&got_idevid.publicArea.unique,
			sizeof(got_idevid.publicArea.unique),
			&idevid->publicArea.unique,
			sizeof(idevid->publicArea.unique));
	g_assert_false(got_idevid.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);

	/* certificates: base64 DER of the configured files (PEM or DER on disk) */
	g_assert_true(g_bytes_equal(iak_der, want_iak_der));
	g_assert_true(g_bytes_equal(idevid_der, want_idevid_der));

	/* iak_attest: TPMS_ATTEST of TPM2_Certify(AK) with extraData = SHA-256(agent id) */
	off = 0;
	g_assert_cmpint(Tss2_MU_TPMS_ATTEST_Unmarshal(
			    g_bytes_get_data(attest, NULL), g_bytes_get_size(attest), &off, &a),
			==,
			0);
	g_assert_cmpuint(off, ==, g_bytes_get_size(attest));
	g_assert_cmphex(a.magic, ==, TPM2_GENERATED_VALUE);
	g_assert_cmphex(a.type, ==, TPM2_ST_ATTEST_CERTIFY);
	g_assert_cmpmem(a.extraData.buffer,
			a.extraData.size,
			g_bytes_get_data(want_extra, NULL),
			g_bytes_get_size(want_extra));
	g_assert_cmpmem(a.attested.certify.name.name,
			a.attested.certify.name.size,
			g_bytes_get_data(ak_name, NULL),
			g_bytes_get_size(ak_name));

	/* iak_sign: a TPMT_SIGNATURE over iak_attest that verifies with iak_tpm's key */
	off = 0;
	g_assert_cmpint(Tss2_MU_TPMT_SIGNATURE_Unmarshal(
			    g_bytes_get_data(sig, NULL), g_bytes_get_size(sig), &off, &s),
			==,
			0);
	g_assert_cmpuint(off, ==, g_bytes_get_size(sig));
	pk = kl_iak_test_pubkey_from_tpm(&got_iak.publicArea);
	data.data = (unsigned char *)g_bytes_get_data(attest, NULL);
	data.size = g_bytes_get_size(attest);
	if (s.sigAlg == TPM2_ALG_RSAPSS) {
		g_assert_cmpint(s.signature.rsapss.hash, ==, TPM2_ALG_SHA256);
		sigd.data = s.signature.rsapss.sig.buffer;
		sigd.size = s.signature.rsapss.sig.size;
		salg = GNUTLS_SIGN_RSA_PSS_RSAE_SHA256;
		rc = gnutls_pubkey_verify_data2(pk, salg, 0, &data, &sigd);
		sigd.data = NULL;
	} else {
		gnutls_datum_t r, sv;
		g_assert_cmpint(s.sigAlg, ==, TPM2_ALG_ECDSA);
		/* the IAK signs with its template's hash */
		g_assert_cmpint(s.signature.ecdsa.hash, ==, got_iak.publicArea.nameAlg);
		r.data = s.signature.ecdsa.signatureR.buffer;
		r.size = s.signature.ecdsa.signatureR.size;
		sv.data = s.signature.ecdsa.signatureS.buffer;
		sv.size = s.signature.ecdsa.signatureS.size;
		g_assert_cmpint(gnutls_encode_rs_value(&sigd, &r, &sv), ==, 0);
		salg = s.signature.ecdsa.hash == TPM2_ALG_SHA384 ? GNUTLS_SIGN_ECDSA_SHA384
								 : GNUTLS_SIGN_ECDSA_SHA256;
		rc = gnutls_pubkey_verify_data2(pk, salg, 0, &data, &sigd);
	}
	g_assert_cmpint(rc, >=, 0);

	/* one flipped byte of the attestation: the signature no longer verifies */
	{
		g_autofree guint8 *copy = g_memdup2(data.data, data.size);
		gnutls_datum_t bad = { copy, data.size };
		copy[data.size - 1] ^= 1;
		if (sigd.data == NULL) {
			gnutls_datum_t ps = { s.signature.rsapss.sig.buffer,
					      s.signature.rsapss.sig.size };
			g_assert_cmpint(gnutls_pubkey_verify_data2(pk, salg, 0, &bad, &ps), <, 0);
		} else {
			g_assert_cmpint(gnutls_pubkey_verify_data2(pk, salg, 0, &bad, &sigd), <, 0);
		}
	}
	gnutls_free(sigd.data);
	gnutls_pubkey_deinit(pk);
}

/* ---- test cases ---- */

static void
test_h1_registration(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	json_object_set_string_member(body, "aik_tpm", "unchanged");
	g_assert_true(run_plugin(cfg, body, &error));
	g_assert_no_error(error);
	check_registration(body, &fx.h1_iak, &fx.h1_idevid, fx.h1_iak_cert, fx.h1_idevid_cert);
	g_assert_cmpstr(json_object_get_string_member(body, "aik_tpm"), ==, "unchanged");
	g_assert_cmpuint(json_object_get_size(body), ==, 7);
}

static void
test_h2_registration(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h2_iak_cert, fx.h2_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	g_assert_true(run_plugin(cfg, body, &error));
	g_assert_no_error(error);
	check_registration(body, &fx.h2_iak, &fx.h2_idevid, fx.h2_iak_cert, fx.h2_idevid_cert);
}

static void
test_h3_registration(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h3_iak_cert, fx.h3_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	g_assert_true(run_plugin(cfg, body, &error));
	g_assert_no_error(error);
	check_registration(body, &fx.h3_iak, &fx.h3_idevid, fx.h3_iak_cert, fx.h3_idevid_cert);
}

/* the endorsement hierarchy has a password: tpm_ownerpassword opens it */
static void
test_endorsement_password(void)
{
	ESYS_CONTEXT *esys = kl_tpm_get_esys(fx.tpm);
	TPM2B_AUTH pw = { .size = 5, .buffer = "eh-pw" };
	TPM2B_AUTH empty = { 0 };
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	g_assert_cmpint(
	    Esys_HierarchyChangeAuth(
		esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &pw),
	    ==,
	    TSS2_RC_SUCCESS);
	/* forget the new value on the ESYS side, as a fresh agent would */
	g_assert_cmpint(Esys_TR_SetAuth(esys, ESYS_TR_RH_ENDORSEMENT, &empty), ==, TSS2_RC_SUCCESS);

	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
	g_assert_nonnull(strstr(error->message, "tpm_ownerpassword"));
	g_clear_error(&error);

	config_set(cfg, "tpm_ownerpassword", "eh-pw");
	g_assert_true(run_plugin(cfg, body, &error));
	g_assert_no_error(error);
	check_registration(body, &fx.h1_iak, &fx.h1_idevid, fx.h1_iak_cert, fx.h1_idevid_cert);

	g_assert_cmpint(Esys_TR_SetAuth(esys, ESYS_TR_RH_ENDORSEMENT, &pw), ==, TSS2_RC_SUCCESS);
	g_assert_cmpint(
	    Esys_HierarchyChangeAuth(
		esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &empty),
	    ==,
	    TSS2_RC_SUCCESS);
}

/* detect picks each template from its certificate; explicit names and manual work too */
static void
test_template_selection(void)
{
	struct {
		const gchar *iak, *idevid, *mode, *asym, *hash, *want_iak, *want_idevid;
	} cases[] = {
		{ fx.h1_iak_cert, fx.h1_idevid_cert, "detect", NULL, NULL, "H-1", "H-1" },
		{ fx.h2_iak_cert, fx.h2_idevid_cert, "default", NULL, NULL, "H-2", "H-2" },
		{ fx.h1_iak_cert, fx.h2_idevid_cert, "", NULL, NULL, "H-1", "H-2" },
		{ fx.h2_iak_cert, fx.h2_idevid_cert, "H-2", NULL, NULL, "H-2", "H-2" },
		{ fx.h1_iak_cert, fx.h1_idevid_cert, "manual", "rsa", "sha256", "H-1", "H-1" },
		{ fx.h2_iak_cert, fx.h2_idevid_cert, "manual", "ecc", "sha256", "H-2", "H-2" },
		{ fx.h3_iak_cert, fx.h3_idevid_cert, "detect", NULL, NULL, "H-3", "H-3" },
		{ fx.h3_iak_cert, fx.h3_idevid_cert, "manual", "ecc", "sha384", "H-3", "H-3" },
	};
	ESYS_CONTEXT *esys = kl_tpm_get_esys(fx.tpm);

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		KlIakIdevidOptions o = {
			.template_mode = cases[i].mode,
			.asym_alg = cases[i].asym,
			.name_alg = cases[i].hash,
			.iak_cert = cases[i].iak,
			.idevid_cert = cases[i].idevid,
		};
		g_autoptr(GError) error = NULL;
		g_autoptr(KlIakIdevid) id = kl_iak_idevid_new(esys, &o, &error);

		g_test_message("case %u: %s", i, cases[i].mode);
		g_assert_no_error(error);
		g_assert_nonnull(id);
		g_assert_cmpstr(kl_iak_idevid_get_iak_template(id)->name, ==, cases[i].want_iak);
		g_assert_cmpstr(
		    kl_iak_idevid_get_idevid_template(id)->name, ==, cases[i].want_idevid);
	}
}

static void
test_wrong_template(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	config_set(cfg, "iak_idevid_template", "manual");
	config_set(cfg, "iak_idevid_asymmetric_alg", "ecc");
	config_set(cfg, "iak_idevid_name_alg", "sha256");
	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_test_message("%s", error->message);
	g_assert_nonnull(
	    strstr(error->message, "IAK public key does not match iak_cert (template H-2 tried)"));
	g_assert_cmpuint(json_object_get_size(body), ==, 0);
	g_clear_error(&error);

	/* an explicit template name is reported the same way */
	config_set(cfg, "iak_idevid_template", "H-2");
	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "(template H-2 tried)"));
}

static void
test_cert_for_other_key(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.other_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_test_message("%s", error->message);
	g_assert_nonnull(
	    strstr(error->message, "IAK public key does not match iak_cert (template H-1 tried)"));
	g_assert_cmpuint(json_object_get_size(body), ==, 0);
	g_clear_error(&error);

	/* and for the IDevID */
	g_hash_table_unref(cfg);
	cfg = config_new(fx.h1_iak_cert, fx.other_cert);
	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_AUTH);
	g_assert_nonnull(strstr(
	    error->message, "IDevID public key does not match idevid_cert (template H-1 tried)"));
}

static void
test_missing_cert(void)
{
	g_autofree gchar *missing = g_build_filename(fx.dir, "no-such-idevid.pem", NULL);
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, missing);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;

	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_test_message("%s", error->message);
	g_assert_nonnull(strstr(error->message, missing));
	g_assert_nonnull(strstr(error->message, "idevid_cert"));
}

/* enable_iak_idevid = false: NOT_SUPPORTED, registration untouched */
static void
test_disabled(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;
	const KlPluginInfo *info = kl_plugin_get_info();
	KlPluginContext *ctx;

	g_assert_cmpstr(info->name, ==, "iak_idevid");
	g_assert_cmpstr(info->evidence_class, ==, "certification");
	config_set(cfg, "enable_iak_idevid", "false");
	ctx = context_new(cfg, fx.tpm);
	g_assert_false(info->startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_assert_nonnull(strstr(error->message, "enable_iak_idevid = false"));
	g_clear_error(&error);
	/* never advertised, never collected */
	g_assert_null(info->get_capabilities(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	g_assert_null(info->collect(ctx, NULL, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	g_assert_true(info->contribute_registration(ctx, body, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(json_object_get_size(body), ==, 0);
	kl_plugin_context_free(ctx);
}

/* --avoid-tpm: the software stand-in has no ESYS context, so the plugin stays out */
static void
test_software_tpm(void)
{
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autofree gchar *state = g_build_filename(fx.dir, "soft", NULL);
	KlTpmOptions opts = {
		.software = TRUE,
		.encryption_alg = "rsa",
		.hash_alg = "sha256",
		.signing_alg = "rsassa",
		.agent_data_path = "",
		.state_dir = state,
	};
	g_autoptr(GError) error = NULL;
	const KlPluginInfo *info = kl_plugin_get_info();
	KlTpm *soft;
	KlPluginContext *ctx;

	g_assert_cmpint(g_mkdir_with_parents(state, 0700), ==, 0);
	/* the stand-in announces itself as insecure */
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*INSECURE*");
	soft = kl_tpm_new(&opts, &error);
	g_test_assert_expected_messages();
	g_assert_no_error(error);
	g_assert_null(kl_tpm_get_esys(soft));
	ctx = context_new(cfg, soft);
	g_assert_false(info->startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	kl_plugin_context_free(ctx);
	kl_tpm_free(soft);
}

/* a persistent IAK with a password ("hex:" form) instead of a regenerated one */
static void
test_persistent_iak(void)
{
	ESYS_CONTEXT *esys = kl_tpm_get_esys(fx.tpm);
	TPM2B_PUBLIC pub;
	ESYS_TR t = provision_key(KL_IAK_TEST_TMPL_H1_IAK, "iak-pw", &pub);
	ESYS_TR persistent = ESYS_TR_NONE;
	g_autoptr(GHashTable) cfg = config_new(fx.h1_iak_cert, fx.h1_idevid_cert);
	g_autoptr(JsonObject) body = json_object_new();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *handle = g_strdup_printf("0x%x", PERSISTENT_IAK);

	/* same seed, same template: the password does not change the key */
	g_assert_cmpmem(&pub.publicArea.unique,
			sizeof(pub.publicArea.unique),
			&fx.h1_iak.publicArea.unique,
			sizeof(pub.publicArea.unique));
	g_assert_cmpint(Esys_EvictControl(esys,
					  ESYS_TR_RH_OWNER,
					  t,
					  ESYS_TR_PASSWORD,
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  PERSISTENT_IAK,
					  &persistent),
			==,
			TSS2_RC_SUCCESS);
	flush(t);
	g_assert_cmpint(Esys_TR_Close(esys, &persistent), ==, TSS2_RC_SUCCESS);

	config_set(cfg, "iak_handle", handle);
	config_set(cfg, "iak_password", "hex:69616b2d7077"); /* "iak-pw" */
	g_assert_true(run_plugin(cfg, body, &error));
	g_assert_no_error(error);
	check_registration(body, &fx.h1_iak, &fx.h1_idevid, fx.h1_iak_cert, fx.h1_idevid_cert);

	/* a wrong password fails at certification, with a TPM error */
	{
		const KlPluginInfo *info = kl_plugin_get_info();
		KlPluginContext *ctx;
		g_autoptr(JsonObject) body2 = json_object_new();
		config_set(cfg, "iak_password", "wrong");
		ctx = context_new(cfg, fx.tpm);
		g_assert_true(info->startup(ctx, &error));
		g_assert_no_error(error);
		g_assert_false(info->contribute_registration(ctx, body2, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
		g_clear_error(&error);
		kl_plugin_context_free(ctx);
	}

	/* not a persistent handle */
	config_set(cfg, "iak_handle", "0x80000001");
	g_assert_false(run_plugin(cfg, body, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "iak_handle"));
	g_clear_error(&error);

	/* the plugin closed its own ESYS handle for the key: open it afresh to evict it */
	g_assert_cmpint(
	    Esys_TR_FromTPMPublic(
		esys, PERSISTENT_IAK, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &persistent),
	    ==,
	    TSS2_RC_SUCCESS);
	g_assert_cmpint(Esys_EvictControl(esys,
					  ESYS_TR_RH_OWNER,
					  persistent,
					  ESYS_TR_PASSWORD,
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  PERSISTENT_IAK,
					  &t),
			==,
			TSS2_RC_SUCCESS);
}

/* ---- set-up ---- */

static void
setup(void)
{
	const gchar *tcti = g_getenv("KL_TEST_TCTI");
	g_autofree gchar *state = NULL;
	KlTpmOptions opts = {
		.tcti = tcti,
		.ek_handle = "",
		.owner_password = "",
		.encryption_alg = "rsa",
		.hash_alg = "sha256",
		.signing_alg = "rsassa",
		.agent_data_path = "",
	};
	g_autoptr(GError) error = NULL;
	ESYS_TR h;

	fx.dir = g_dir_make_tmp("kl-iak-XXXXXX", &error);
	g_assert_no_error(error);
	state = g_build_filename(fx.dir, "state", NULL);
	g_assert_cmpint(g_mkdir_with_parents(state, 0700), ==, 0);
	opts.state_dir = state;
	fx.tpm = kl_tpm_new(&opts, &error);
	g_assert_no_error(error);
	g_assert_nonnull(kl_tpm_get_esys(fx.tpm));

	kl_iak_test_ca_init(&fx.ca);
	/* one key at a time, like a provisioning station */
	h = provision_key(KL_IAK_TEST_TMPL_H1_IAK, NULL, &fx.h1_iak);
	flush(h);
	h = provision_key(KL_IAK_TEST_TMPL_H1_IDEVID, NULL, &fx.h1_idevid);
	flush(h);
	h = provision_key(KL_IAK_TEST_TMPL_H2_IAK, NULL, &fx.h2_iak);
	flush(h);
	h = provision_key(KL_IAK_TEST_TMPL_H2_IDEVID, NULL, &fx.h2_idevid);
	flush(h);
	h = provision_key(KL_IAK_TEST_TMPL_H3_IAK, NULL, &fx.h3_iak);
	flush(h);
	h = provision_key(KL_IAK_TEST_TMPL_H3_IDEVID, NULL, &fx.h3_idevid);
	flush(h);
	fx.h1_iak_cert = issue_cert_for_tpm(&fx.h1_iak, "h1-iak", TRUE);
	fx.h1_idevid_cert = issue_cert_for_tpm(&fx.h1_idevid, "h1-idevid", FALSE);
	fx.h2_iak_cert = issue_cert_for_tpm(&fx.h2_iak, "h2-iak", FALSE);
	fx.h2_idevid_cert = issue_cert_for_tpm(&fx.h2_idevid, "h2-idevid", TRUE);
	fx.h3_iak_cert = issue_cert_for_tpm(&fx.h3_iak, "h3-iak", TRUE);
	fx.h3_idevid_cert = issue_cert_for_tpm(&fx.h3_idevid, "h3-idevid", FALSE);
	fx.other_cert = kl_iak_test_issue_cert_for_other_key(&fx.ca, fx.dir, "other");
}

static void
remove_tree(const gchar *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const gchar *name;

	if (d != NULL) {
		while ((name = g_dir_read_name(d)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);
			if (g_file_test(child, G_FILE_TEST_IS_DIR))
				remove_tree(child);
			else
				g_unlink(child);
		}
		g_dir_close(d);
	}
	g_rmdir(path);
}

static void
teardown(void)
{
	kl_tpm_free(fx.tpm);
	kl_iak_test_ca_clear(&fx.ca);
	remove_tree(fx.dir);
	g_free(fx.dir);
	g_free(fx.h1_iak_cert);
	g_free(fx.h1_idevid_cert);
	g_free(fx.h2_iak_cert);
	g_free(fx.h2_idevid_cert);
	g_free(fx.h3_iak_cert);
	g_free(fx.h3_idevid_cert);
	g_free(fx.other_cert);
}

int
main(int argc, char **argv)
{
	int rc;

	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_TCTI") == NULL) {
		return kl_test_skip_all(
		    "no TPM: run through run-with-swtpm.sh (KL_TEST_TCTI unset)");
	}
	setup();
	g_test_add_func("/iak/registration/h1", test_h1_registration);
	g_test_add_func("/iak/registration/h2", test_h2_registration);
	g_test_add_func("/iak/registration/h3", test_h3_registration);
	g_test_add_func("/iak/endorsement-password", test_endorsement_password);
	g_test_add_func("/iak/template-selection", test_template_selection);
	g_test_add_func("/iak/error/wrong-template", test_wrong_template);
	g_test_add_func("/iak/error/cert-for-other-key", test_cert_for_other_key);
	g_test_add_func("/iak/error/missing-cert", test_missing_cert);
	g_test_add_func("/iak/disabled", test_disabled);
	g_test_add_func("/iak/software-tpm", test_software_tpm);
	g_test_add_func("/iak/persistent-iak", test_persistent_iak);
	rc = g_test_run();
	teardown();
	return rc;
}
