/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The tpm_quote plugin against swtpm (run-with-swtpm.sh) or, with
 * KL_TEST_SOFTWARE=1, against the --avoid-tpm software TPM: capabilities, and
 * evidence checked the way the Keylime verifier checks it (signature with the
 * AK, nonce, pcrDigest over the PCR values in subject_data).
 */
#include "config.h"

#include <dlfcn.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <tss2/tss2_mu.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-plugin-context-private.h"
#include "kl-tpm-private.h"
#include "kl-tpm-quote-pcr-blob.h"
#include "kl-tpm-quote-private.h"

#include "kl-test-skip.h"

typedef struct {
	gchar *dir;
	KlTpm *tpm;
	KlTpmQuoteCache *cache; /* as the plugin keeps it between cycles */
} KlTestFixture;

static void
kl_test_rmtree(const gchar *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const gchar *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree gchar *p = g_build_filename(dir, name, NULL);
		g_unlink(p);
	}
	g_rmdir(dir);
}

static void
fixture_setup(KlTestFixture *fx, gconstpointer data)
{
	const gchar *const *algs = data;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *agent_data = NULL;
	KlTpmOptions o = { 0 };

	fx->dir = g_dir_make_tmp("kl-tpm-quote-XXXXXX", &error);
	g_assert_no_error(error);
	agent_data = g_build_filename(fx->dir, "agent_data.json", NULL);
	o.tcti = g_getenv("KL_TEST_TCTI");
	o.software = g_getenv("KL_TEST_SOFTWARE") != NULL;
	o.agent_data_path = agent_data;
	o.state_dir = fx->dir;
	if (algs != NULL) {
		o.encryption_alg = algs[0];
		o.signing_alg = algs[1];
	}
	fx->tpm = kl_tpm_new(&o, &error);
	g_assert_no_error(error);
	fx->cache = kl_tpm_quote_cache_new();
}

static void
fixture_teardown(KlTestFixture *fx, gconstpointer data)
{
	kl_tpm_quote_cache_free(fx->cache);
	kl_tpm_free(fx->tpm);
	kl_test_rmtree(fx->dir);
	g_free(fx->dir);
}

static const gchar *const kl_test_ecc[] = { "ecc", "ecdsa" };

static JsonObject *
kl_test_params(const gchar *json)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	JsonObject *obj;

	g_assert_true(json_parser_load_from_data(parser, json, -1, &error));
	g_assert_no_error(error);
	obj = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
	json_object_seal(obj);
	return obj;
}

static gchar *
kl_test_challenge(guint8 nonce[16])
{
	for (guint i = 0; i < 16; i++)
		nonce[i] = (guint8)g_random_int();
	return g_base64_encode(nonce, 16);
}

static GBytes *
kl_test_b64_member(JsonObject *data, const gchar *key)
{
	const gchar *text = json_object_get_string_member(data, key);
	guchar *raw;
	gsize len = 0;
	g_assert_nonnull(text);
	raw = g_base64_decode(text, &len);
	return g_bytes_new_take(raw, len);
}

/* the verifier's check (keylime tpm_util.checkquote), with GnuTLS */
static void
kl_test_check_evidence(KlTpm *tpm,
		       JsonObject *data,
		       const guint8 nonce[16],
		       guint32 expected_mask,
		       gsize expected_blob_size)
{
	g_autoptr(GBytes) message = kl_test_b64_member(data, "message");
	g_autoptr(GBytes) signature = kl_test_b64_member(data, "signature");
	g_autoptr(GBytes) subject = kl_test_b64_member(data, "subject_data");
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	const TPMT_PUBLIC *ak = kl_tpm_get_ak_public_area(tpm);
	TPMI_ALG_HASH bank = 0;
	guint32 mask = 0;
	TPMS_ATTEST a;
	TPMT_SIGNATURE s;
	size_t off = 0;
	guint8 digest[32];
	gsize dlen = sizeof(digest);
	gnutls_pubkey_t key = NULL;
	gnutls_datum_t msg_d = { (unsigned char *)g_bytes_get_data(message, NULL),
				 g_bytes_get_size(message) };
	gnutls_datum_t sig_d = { NULL, 0 };
	gnutls_sign_algorithm_t algo;
	gboolean free_sig = FALSE;

	g_assert_cmpuint(json_object_get_size(data), ==, 3);

	/* message: TPMS_ATTEST of a quote over the nonce */
	g_assert_cmpint(
	    Tss2_MU_TPMS_ATTEST_Unmarshal(msg_d.data, msg_d.size, &off, &a), ==, TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, msg_d.size);
	g_assert_cmphex(a.magic, ==, 0xff544347);
	g_assert_cmphex(a.type, ==, TPM2_ST_ATTEST_QUOTE);
	g_assert_cmpmem(a.extraData.buffer, a.extraData.size, nonce, 16);

	/* subject_data: the blob; its bank is the signature hash, its values hash to pcrDigest */
	g_assert_cmpuint(g_bytes_get_size(subject), ==, expected_blob_size);
	g_assert_true(kl_tpm_quote_pcr_blob_decode(subject, &bank, &mask, &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(bank, ==, TPM2_ALG_SHA256);
	g_assert_cmphex(mask, ==, expected_mask);
	for (guint i = 0; i < values->len; i++) {
		GBytes *v = g_ptr_array_index(values, i);
		g_checksum_update(sum, g_bytes_get_data(v, NULL), g_bytes_get_size(v));
	}
	g_checksum_get_digest(sum, digest, &dlen);
	g_assert_cmpmem(
	    a.attested.quote.pcrDigest.buffer, a.attested.quote.pcrDigest.size, digest, dlen);

	/* signature: TPMT_SIGNATURE by the AK over H(message) */
	off = 0;
	g_assert_cmpint(
	    Tss2_MU_TPMT_SIGNATURE_Unmarshal(
		g_bytes_get_data(signature, NULL), g_bytes_get_size(signature), &off, &s),
	    ==,
	    TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, g_bytes_get_size(signature));
	g_assert_cmpint(gnutls_pubkey_init(&key), ==, 0);
	if (ak->type == TPM2_ALG_RSA) {
		guint8 e[] = { 0x01, 0x00, 0x01 };
		gnutls_datum_t m_d = { (unsigned char *)ak->unique.rsa.buffer,
				       ak->unique.rsa.size };
		gnutls_datum_t e_d = { e, sizeof(e) };
		g_assert_cmpint(gnutls_pubkey_import_rsa_raw(key, &m_d, &e_d), ==, 0);
		g_assert_cmphex(s.sigAlg, ==, TPM2_ALG_RSASSA);
		g_assert_cmphex(s.signature.rsassa.hash, ==, TPM2_ALG_SHA256);
		sig_d.data = s.signature.rsassa.sig.buffer;
		sig_d.size = s.signature.rsassa.sig.size;
		algo = GNUTLS_SIGN_RSA_SHA256;
	} else {
		gnutls_datum_t x = { (unsigned char *)ak->unique.ecc.x.buffer,
				     ak->unique.ecc.x.size };
		gnutls_datum_t y = { (unsigned char *)ak->unique.ecc.y.buffer,
				     ak->unique.ecc.y.size };
		gnutls_datum_t r = { s.signature.ecdsa.signatureR.buffer,
				     s.signature.ecdsa.signatureR.size };
		gnutls_datum_t ss = { s.signature.ecdsa.signatureS.buffer,
				      s.signature.ecdsa.signatureS.size };
		g_assert_cmpint(
		    gnutls_pubkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_SECP256R1, &x, &y), ==, 0);
		g_assert_cmphex(s.sigAlg, ==, TPM2_ALG_ECDSA);
		g_assert_cmpint(gnutls_encode_rs_value(&sig_d, &r, &ss), ==, 0);
		free_sig = TRUE;
		algo = GNUTLS_SIGN_ECDSA_SHA256;
	}
	g_assert_cmpint(gnutls_pubkey_verify_data2(key, algo, 0, &msg_d, &sig_d), >=, 0);
	if (free_sig)
		gnutls_free(sig_d.data);
	gnutls_pubkey_deinit(key);
}

static JsonObject *
kl_test_collect_ok(KlTestFixture *fx, const gchar *scheme, const gchar *pcrs, guint8 nonce[16])
{
	g_autofree gchar *challenge = kl_test_challenge(nonce);
	g_autofree gchar *json = g_strdup_printf(
	    "{\"challenge\": \"%s\", \"signature_scheme\": \"%s\", \"hash_algorithm\": \"sha256\","
	    " \"selected_subjects\": {\"sha256\": %s, \"sha1\": null},"
	    " \"certification_key\": {\"key_class\": \"asymmetric\", \"server_identifier\": "
	    "\"ak\"}}",
	    challenge,
	    scheme,
	    pcrs);
	g_autoptr(JsonObject) params = kl_test_params(json);
	g_autoptr(GError) error = NULL;
	JsonObject *data = kl_tpm_quote_collect_with_tpm(fx->tpm, fx->cache, params, NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(data);
	return data;
}

static void
test_capabilities(KlTestFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = kl_tpm_quote_build_capabilities(fx->tpm, "my-ak", &error);
	g_autoptr(JsonObject) caps_default = NULL;
	GBytes *ak_public = kl_tpm_get_ak_public(fx->tpm);
	g_autofree gchar *public_b64 =
	    g_base64_encode(g_bytes_get_data(ak_public, NULL), g_bytes_get_size(ak_public));
	JsonArray *hashes;
	JsonArray *sha256;
	JsonArray *keys;
	JsonArray *schemes;
	JsonObject *key;
	gboolean has_sha256 = FALSE;

	g_assert_no_error(error);
	g_assert_cmpstr(json_object_get_string_member(caps, "component_version"), ==, "2.0");
	hashes = json_object_get_array_member(caps, "hash_algorithms");
	for (guint i = 0; i < json_array_get_length(hashes); i++) {
		const gchar *h = json_array_get_string_element(hashes, i);
		/* every offered hash has its bank in available_subjects, and vice versa */
		g_assert_true(json_object_has_member(
		    json_object_get_object_member(caps, "available_subjects"), h));
		if (g_strcmp0(h, "sha256") == 0)
			has_sha256 = TRUE;
	}
	g_assert_true(has_sha256);
	g_assert_cmpuint(
	    json_object_get_size(json_object_get_object_member(caps, "available_subjects")),
	    ==,
	    json_array_get_length(hashes));
	sha256 = json_object_get_array_member(
	    json_object_get_object_member(caps, "available_subjects"), "sha256");
	g_assert_cmpuint(json_array_get_length(sha256), ==, 24);
	for (guint i = 0; i < 24; i++)
		g_assert_cmpint(json_array_get_int_element(sha256, i), ==, i);
	/* the TPM's schemes for RSA keys only: an RSA AK cannot sign with ECDSA */
	schemes = json_object_get_array_member(caps, "signature_schemes");
	g_assert_cmpuint(json_array_get_length(schemes), ==, 2);
	g_assert_cmpstr(json_array_get_string_element(schemes, 0), ==, "rsassa");
	g_assert_cmpstr(json_array_get_string_element(schemes, 1), ==, "rsapss");
	keys = json_object_get_array_member(caps, "certification_keys");
	g_assert_cmpuint(json_array_get_length(keys), ==, 1);
	key = json_array_get_object_element(keys, 0);
	g_assert_cmpstr(json_object_get_string_member(key, "key_class"), ==, "asymmetric");
	g_assert_cmpstr(json_object_get_string_member(key, "key_algorithm"), ==, "rsa");
	g_assert_cmpint(json_object_get_int_member(key, "key_size"), ==, 2048);
	g_assert_cmpstr(json_object_get_string_member(key, "server_identifier"), ==, "my-ak");
	g_assert_cmpstr(json_object_get_string_member(key, "public"), ==, public_b64);
	g_assert_cmpuint(
	    json_array_get_length(json_object_get_array_member(key, "allowable_hash_algorithms")),
	    ==,
	    1);
	g_assert_cmpstr(json_array_get_string_element(
			    json_object_get_array_member(key, "allowable_hash_algorithms"), 0),
			==,
			"sha256");
	g_assert_cmpstr(json_array_get_string_element(
			    json_object_get_array_member(key, "allowable_signature_schemes"), 0),
			==,
			"rsassa");

	caps_default = kl_tpm_quote_build_capabilities(fx->tpm, NULL, &error);
	key = json_array_get_object_element(
	    json_object_get_array_member(caps_default, "certification_keys"), 0);
	g_assert_cmpstr(json_object_get_string_member(key, "server_identifier"), ==, "ak");
}

static void
test_capabilities_ecc(KlTestFixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = kl_tpm_quote_build_capabilities(fx->tpm, NULL, &error);
	JsonObject *key;
	JsonArray *schemes;

	g_assert_no_error(error);
	key = json_array_get_object_element(
	    json_object_get_array_member(caps, "certification_keys"), 0);
	g_assert_cmpstr(json_object_get_string_member(key, "key_algorithm"), ==, "ecc");
	g_assert_cmpint(json_object_get_int_member(key, "key_size"), ==, 256);
	schemes = json_object_get_array_member(caps, "signature_schemes");
	for (guint i = 0; i < json_array_get_length(schemes); i++)
		g_assert_false(g_str_has_prefix(json_array_get_string_element(schemes, i), "rsa"));
	g_assert_cmpstr(json_array_get_string_element(schemes, 0), ==, "ecdsa");
	g_assert_cmpstr(json_array_get_string_element(
			    json_object_get_array_member(key, "allowable_signature_schemes"), 0),
			==,
			"ecdsa");
}

/* gives PCR 10 a non-zero value */
/*
 * PCR @pcr changes: extended with @seed (swtpm), or set to a value made of
 * @seed (the software TPM, where every PCR not set is zero)
 */
static void
kl_test_extend_pcr(KlTestFixture *fx, guint pcr, guint seed)
{
	g_autofree gchar *arg = g_strdup_printf("%u:sha256=%064x", pcr, seed);
	const gchar *extend[] = { "tpm2_pcrextend", arg, NULL };
	g_autoptr(GError) error = NULL;
	gint status = 0;

	if (kl_tpm_is_software(fx->tpm)) {
		g_autofree gchar *path = g_build_filename(fx->dir, "software_pcrs.json", NULL);
		g_autofree gchar *json =
		    g_strdup_printf("{\"sha256\": {\"%u\": \"%064x\"}}", pcr, seed);
		g_assert_true(g_file_set_contents(path, json, -1, &error));
		return;
	}
	g_assert_true(g_spawn_sync(NULL,
				   (gchar **)extend,
				   NULL,
				   G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
				   NULL,
				   NULL,
				   NULL,
				   NULL,
				   &status,
				   &error));
	g_assert_no_error(error);
	g_assert_true(g_spawn_check_wait_status(status, NULL));
}

static void
kl_test_extend_pcr10(KlTestFixture *fx)
{
	kl_test_extend_pcr(fx, 10, 0x1234);
}

static void
test_collect_one_pcr(KlTestFixture *fx, gconstpointer user_data)
{
	g_autoptr(GPtrArray) pcr16_before = NULL;
	g_autoptr(GPtrArray) pcr16_after = NULL;
	g_autoptr(GPtrArray) pcr10 = NULL;
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GBytes) subject = NULL;
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank;
	guint32 mask;
	guint8 nonce[16];
	const guint8 zeros[32] = { 0 };

	kl_test_extend_pcr10(fx);
	g_assert_true(kl_tpm_pcr_read(fx->tpm, TPM2_ALG_SHA256, 1u << 16, &pcr16_before, &error));

	data = kl_test_collect_ok(fx, "rsassa", "[10]", nonce);
	kl_test_check_evidence(fx->tpm, data, nonce, 1u << 10, 668);

	/* the blob carries the current PCR 10 */
	subject = kl_test_b64_member(data, "subject_data");
	g_assert_true(kl_tpm_quote_pcr_blob_decode(subject, &bank, &mask, &values, &error));
	g_assert_true(kl_tpm_pcr_read(fx->tpm, TPM2_ALG_SHA256, 1u << 10, &pcr10, &error));
	g_assert_true(g_bytes_equal(g_ptr_array_index(values, 0), g_ptr_array_index(pcr10, 0)));
	g_assert_cmpint(
	    memcmp(g_bytes_get_data(g_ptr_array_index(values, 0), NULL), zeros, 32), !=, 0);

	/* PCR 16 is neither quoted nor touched */
	g_assert_true(kl_tpm_pcr_read(fx->tpm, TPM2_ALG_SHA256, 1u << 16, &pcr16_after, &error));
	g_assert_true(
	    g_bytes_equal(g_ptr_array_index(pcr16_before, 0), g_ptr_array_index(pcr16_after, 0)));
}

typedef struct {
	KlTestFixture *fx;
	guint calls;
	guint changes; /* change PCR 10 after this many quotes (G_MAXUINT: always) */
} KlTestRace;

/* between TPM2_Quote and TPM2_PCR_Read: PCR 10 changes, as if measured just then */
static void
kl_test_race_hook(guint attempt, gpointer user_data)
{
	KlTestRace *race = user_data;
	g_autoptr(GError) error = NULL;

	g_assert_cmpuint(attempt, ==, ++race->calls);
	if (race->calls > race->changes)
		return;
	if (kl_tpm_is_software(race->fx->tpm)) {
		g_autofree gchar *path =
		    g_build_filename(race->fx->dir, "software_pcrs.json", NULL);
		g_autofree gchar *json =
		    g_strdup_printf("{\"sha256\": {\"10\": \"%064x\"}}", race->calls);

		g_assert_true(g_file_set_contents(path, json, -1, &error));
		return;
	}
	kl_test_extend_pcr(race->fx, 10, race->calls);
}

static void
test_collect_pcrs_changed_retried(KlTestFixture *fx, gconstpointer user_data)
{
	KlTestRace race = { fx, 0, 2 };
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GBytes) subject = NULL;
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GPtrArray) pcr10 = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank;
	guint32 mask;
	guint8 nonce[16];

	/* without a cache: every quote is followed by a read of all its PCRs */
	g_clear_pointer(&fx->cache, kl_tpm_quote_cache_free);
	kl_tpm_quote_set_test_hook(kl_test_race_hook, &race);
	data = kl_test_collect_ok(fx, "rsassa", "[10]", nonce);
	kl_tpm_quote_set_test_hook(NULL, NULL);
	/* two quotes did not match the PCRs read after them; the third did */
	g_assert_cmpuint(race.calls, ==, 3);
	kl_test_check_evidence(fx->tpm, data, nonce, 1u << 10, 668);
	subject = kl_test_b64_member(data, "subject_data");
	g_assert_true(kl_tpm_quote_pcr_blob_decode(subject, &bank, &mask, &values, &error));
	g_assert_true(kl_tpm_pcr_read(fx->tpm, TPM2_ALG_SHA256, 1u << 10, &pcr10, &error));
	g_assert_no_error(error);
	g_assert_true(g_bytes_equal(g_ptr_array_index(values, 0), g_ptr_array_index(pcr10, 0)));
}

static void
test_collect_pcrs_keep_changing(KlTestFixture *fx, gconstpointer user_data)
{
	KlTestRace race = { fx, 0, G_MAXUINT };
	g_autofree gchar *challenge = NULL;
	g_autofree gchar *json = NULL;
	g_autoptr(JsonObject) params = NULL;
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(GError) error = NULL;
	guint8 nonce[16];

	challenge = kl_test_challenge(nonce);
	json = g_strdup_printf("{\"challenge\": \"%s\", \"signature_scheme\": \"rsassa\", "
			       "\"hash_algorithm\": \"sha256\", \"selected_subjects\": "
			       "{\"sha256\": [10]}, \"certification_key\": {\"key_class\": "
			       "\"asymmetric\", \"server_identifier\": \"ak\"}}",
			       challenge);
	params = kl_test_params(json);
	/*
	 * without a cache (with one, the values read after a quote are those the
	 * next quote sees: the hook would have to change them twice per attempt)
	 */
	kl_tpm_quote_set_test_hook(kl_test_race_hook, &race);
	data = kl_tpm_quote_collect_with_tpm(fx->tpm, NULL, params, NULL, &error);
	kl_tpm_quote_set_test_hook(NULL, NULL);
	g_assert_null(data);
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
	g_assert_nonnull(
	    strstr(error->message, "kept changing between TPM2_Quote and TPM2_PCR_Read"));
	g_assert_nonnull(strstr(error->message, "the next attestation will try again"));
	g_assert_cmpuint(race.calls, ==, KL_TPM_QUOTE_MAX_ATTEMPTS);
}

/* the PCR values the quote covers, read now, against those in the evidence's blob */
static void
kl_test_blob_is_current(KlTestFixture *fx, JsonObject *data, guint32 mask)
{
	g_autoptr(GBytes) subject = kl_test_b64_member(data, "subject_data");
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GPtrArray) now = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank;
	guint32 blob_mask;

	g_assert_true(kl_tpm_quote_pcr_blob_decode(subject, &bank, &blob_mask, &values, &error));
	g_assert_cmphex(blob_mask, ==, mask);
	g_assert_true(kl_tpm_pcr_read(fx->tpm, TPM2_ALG_SHA256, mask, &now, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, now->len);
	for (guint i = 0; i < values->len; i++)
		g_assert_true(
		    g_bytes_equal(g_ptr_array_index(values, i), g_ptr_array_index(now, i)));
}

#define KL_TEST_16 "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"

/*
 * The cache kept between cycles follows the PCRs: a PCR extended between two
 * cycles (in the group read first, then in the other group, then in both) is
 * sent with its new value, and the evidence passes the verifier's checks
 */
static void
test_collect_cache_follows_pcrs(KlTestFixture *fx, gconstpointer user_data)
{
	static const guint changes[][2] = {
		{ G_MAXUINT, G_MAXUINT }, /* the first cycle reads everything */
		{ G_MAXUINT, G_MAXUINT }, /* nothing changed */
		{ 10, G_MAXUINT },	  /* the IMA PCR */
		{ 10, G_MAXUINT },	  /* again */
		{ 2, G_MAXUINT },	  /* the other group: read after 8..15 did not match */
		{ G_MAXUINT, G_MAXUINT }, { 15, 3 }, /* both groups */
		{ 0, G_MAXUINT },		     /* the first PCR of the selection */
	};
	g_autoptr(GBytes) previous = NULL;

	for (guint cycle = 0; cycle < G_N_ELEMENTS(changes); cycle++) {
		g_autoptr(JsonObject) data = NULL;
		g_autoptr(GBytes) subject = NULL;
		guint8 nonce[16];

		g_test_message("cycle %u", cycle);
		for (guint i = 0; i < 2; i++) {
			if (changes[cycle][i] != G_MAXUINT)
				kl_test_extend_pcr(fx, changes[cycle][i], 0x100 * cycle + i + 1);
		}
		data = kl_test_collect_ok(fx, "rsassa", KL_TEST_16, nonce);
		kl_test_check_evidence(fx->tpm, data, nonce, 0xffff, 1200);
		kl_test_blob_is_current(fx, data, 0xffff);
		subject = kl_test_b64_member(data, "subject_data");
		if (previous != NULL) {
			gboolean changed = changes[cycle][0] != G_MAXUINT;
			g_assert_cmpint(!g_bytes_equal(previous, subject), ==, changed);
		}
		g_clear_pointer(&previous, g_bytes_unref);
		previous = g_steal_pointer(&subject);
	}
	/* another selection, a subset, then the whole again: still the current values */
	for (guint round = 0; round < 3; round++) {
		guint32 mask = round == 1 ? (1u << 10) | (1u << 2) : 0xffff;
		g_autoptr(JsonObject) data = NULL;
		guint8 nonce[16];

		if (round > 0)
			kl_test_extend_pcr(fx, 10, 0x9000 + round);
		data = kl_test_collect_ok(fx, "rsassa", round == 1 ? "[2, 10]" : KL_TEST_16, nonce);
		kl_test_check_evidence(fx->tpm, data, nonce, mask, round == 1 ? 668 : 1200);
		kl_test_blob_is_current(fx, data, mask);
	}
}

/*
 * With a cache: PCR 10 extended between two cycles and again right after the
 * next quote. The values read after that quote do not hash to its digest; the
 * quote is taken again and matches them without another read.
 */
static void
test_collect_cache_pcrs_changed_retried(KlTestFixture *fx, gconstpointer user_data)
{
	KlTestRace race = { fx, 0, 1 };
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) data = NULL;
	guint8 nonce[16];

	first = kl_test_collect_ok(fx, "rsassa", KL_TEST_16, nonce);
	kl_test_check_evidence(fx->tpm, first, nonce, 0xffff, 1200);
	kl_test_extend_pcr(fx, 10, 0x4242);
	kl_tpm_quote_set_test_hook(kl_test_race_hook, &race);
	data = kl_test_collect_ok(fx, "rsassa", KL_TEST_16, nonce);
	kl_tpm_quote_set_test_hook(NULL, NULL);
	g_assert_cmpuint(race.calls, ==, 2);
	kl_test_check_evidence(fx->tpm, data, nonce, 0xffff, 1200);
	kl_test_blob_is_current(fx, data, 0xffff);
}

static void
test_collect_measured_boot(KlTestFixture *fx, gconstpointer user_data)
{
	guint8 nonce[16];
	g_autoptr(JsonObject) data =
	    kl_test_collect_ok(fx, "rsassa", "[0,1,2,3,4,5,6,7,8,9,11,12,13,14,15]", nonce);
	kl_test_check_evidence(fx->tpm, data, nonce, 0xffff & ~(1u << 10), 1200);
}

static void
test_collect_all(KlTestFixture *fx, gconstpointer user_data)
{
	guint8 nonce[16];
	g_autoptr(JsonObject) data = kl_test_collect_ok(
	    fx, "rsassa", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23]", nonce);
	kl_test_check_evidence(fx->tpm, data, nonce, 0xffffff, 136 + 3 * 532);
}

static void
test_collect_ecc(KlTestFixture *fx, gconstpointer user_data)
{
	guint8 nonce[16];
	g_autoptr(JsonObject) data = kl_test_collect_ok(fx, "ecdsa", "[10, 15]", nonce);
	kl_test_check_evidence(fx->tpm, data, nonce, (1u << 10) | (1u << 15), 668);
}

static void
kl_test_collect_rejected(KlTestFixture *fx, const gchar *json, const gchar *what)
{
	g_autoptr(JsonObject) params = kl_test_params(json);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) data = NULL;

	g_test_message("rejecting: %s", what);
	data = kl_tpm_quote_collect_with_tpm(fx->tpm, fx->cache, params, NULL, &error);
	g_assert_null(data);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_test_message("  %s", error->message);
}

#define KL_TEST_CH "\"challenge\": \"DWeAjqPTWOsZNYDrrn28bQ==\""

static void
test_collect_bad_params(KlTestFixture *fx, gconstpointer user_data)
{
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha1\", \"selected_subjects\": {\"sha1\": [10]}}",
	    "hash is not the AK's");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"ecdsa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10]}}",
	    "ECC scheme for an RSA AK");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [24]}}",
	    "PCR 24");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [-1]}}",
	    "PCR -1");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": 10}}",
	    "not a list");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [\"10\"]}}",
	    "string PCR");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10.0]}}",
	    "float PCR");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": []}}",
	    "empty list");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": null}}",
	    "null for the quoted bank");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha1\": [10]}}",
	    "bank missing");
	kl_test_collect_rejected(fx,
				 "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
				 " \"hash_algorithm\": \"sha256\", \"selected_subjects\": [10]}",
				 "selected_subjects is a list");
	kl_test_collect_rejected(
	    fx,
	    "{\"challenge\": \"not base64!\", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10]}}",
	    "bad base64");
	kl_test_collect_rejected(
	    fx,
	    "{\"challenge\": 16, \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10]}}",
	    "challenge not a string");
	kl_test_collect_rejected(
	    fx,
	    "{\"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10]}}",
	    "challenge missing");
	kl_test_collect_rejected(fx,
				 "{" KL_TEST_CH ", \"hash_algorithm\": \"sha256\","
				 " \"selected_subjects\": {\"sha256\": [10]}}",
				 "scheme missing");
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"md5\", \"selected_subjects\": {\"md5\": [10]}}",
	    "unknown hash");
}

static void
test_collect_bad_params_ecc(KlTestFixture *fx, gconstpointer user_data)
{
	kl_test_collect_rejected(
	    fx,
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\","
	    " \"hash_algorithm\": \"sha256\", \"selected_subjects\": {\"sha256\": [10]}}",
	    "RSA scheme for an ECC AK");
}

static void
test_collect_cancelled(KlTestFixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) params = kl_test_params(
	    "{" KL_TEST_CH ", \"signature_scheme\": \"rsassa\", \"hash_algorithm\": \"sha256\","
	    " \"selected_subjects\": {\"sha256\": [10]}}");
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) data = NULL;

	g_cancellable_cancel(cancellable);
	data = kl_tpm_quote_collect_with_tpm(fx->tpm, fx->cache, params, cancellable, &error);
	g_assert_null(data);
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/*
 * TPM command codes in a pcapng file of the pcap TCTI, from byte @from on:
 * enhanced packet blocks carrying IPv4 + TCP + the TPM command (to port 2321)
 * or response. Commands the TPM answered with TPM_RC_RETRY (which the TSS
 * resends by itself) are left out.
 */
static GArray *
kl_test_pcap_commands(const gchar *path, gsize from)
{
	g_autofree gchar *data = NULL;
	gsize len = 0;
	GArray *codes = g_array_new(FALSE, FALSE, sizeof(guint32));
	gsize pos = 0;

	g_assert_true(g_file_get_contents(path, &data, &len, NULL));
	while (pos + 12 <= len) {
		const guint8 *b = (const guint8 *)data + pos;
		guint32 type = b[0] | (b[1] << 8) | (b[2] << 16) | ((guint32)b[3] << 24);
		guint32 blen = b[4] | (b[5] << 8) | (b[6] << 16) | ((guint32)b[7] << 24);
		g_assert_cmpuint(blen, >=, 12);
		g_assert_cmpuint(pos + blen, <=, len);
		if (type == 6 && pos >= from) {
			const guint8 *pkt = b + 28;
			guint ihl = (pkt[0] & 0x0f) * 4;
			const guint8 *tcp = pkt + ihl;
			guint dport = (tcp[2] << 8) | tcp[3];
			const guint8 *payload = tcp + ((tcp[12] >> 4) * 4);
			guint32 code = ((guint32)payload[6] << 24) | (payload[7] << 16) |
				       (payload[8] << 8) | payload[9];
			if (dport == 2321)
				g_array_append_val(codes, code);
			else if (code == TPM2_RC_RETRY && codes->len > 0)
				g_array_set_size(codes, codes->len - 1);
		}
		pos += blen;
	}
	return codes;
}

static gsize
kl_test_file_size(const gchar *path)
{
	GStatBuf st;
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	return (gsize)st.st_size;
}

/*
 * A steady-state cycle is one TPM2_Quote when the PCRs did not change, and
 * one TPM2_PCR_Read more per group of 8 PCRs that has to be read, the group
 * that changed last first; nothing else
 */
static void
test_steady_state_commands(void)
{
	static const struct {
		guint extend; /* G_MAXUINT: none */
		guint reads;
	} cycles[] = {
		{ G_MAXUINT, 2 }, /* nothing cached: PCRs 0..7 and 8..15 */
		{ G_MAXUINT, 0 }, /* the cached values hash to the quote's digest */
		{ 10, 1 },	  /* 8..15 */
		{ 10, 1 },	  /* 8..15 again */
		{ 2, 2 },	  /* 8..15 first (changed last), no match, then 0..7 */
		{ 3, 1 },	  /* 0..7 is now the one that changed last */
		{ G_MAXUINT, 0 },
	};
	g_autofree gchar *dir = g_dir_make_tmp("kl-tpm-quote-pcap-XXXXXX", NULL);
	g_autofree gchar *pcap = g_build_filename(dir, "tpm.pcap", NULL);
	g_autofree gchar *agent_data = g_build_filename(dir, "agent_data.json", NULL);
	g_autofree gchar *tcti = g_strdup_printf("pcap:%s", g_getenv("KL_TEST_TCTI"));
	g_autoptr(GError) error = NULL;
	KlTestFixture fx = { dir, NULL, kl_tpm_quote_cache_new() };
	KlTpmOptions o = { 0 };
	gsize mark;

	g_setenv("TCTI_PCAP_FILE", pcap, TRUE);
	o.tcti = tcti;
	o.agent_data_path = agent_data;
	o.state_dir = dir;
	fx.tpm = kl_tpm_new(&o, &error);
	g_assert_no_error(error);
	mark = kl_test_file_size(pcap);
	g_assert_cmpuint(mark, >, 0);

	for (guint cycle = 0; cycle < G_N_ELEMENTS(cycles); cycle++) {
		g_autoptr(JsonObject) caps = kl_tpm_quote_build_capabilities(fx.tpm, NULL, &error);
		g_autofree gchar *challenge = NULL;
		g_autofree gchar *json = NULL;
		g_autoptr(JsonObject) params = NULL;
		g_autoptr(JsonObject) data = NULL;
		g_autoptr(GArray) codes = NULL;
		guint8 nonce[16];
		guint quotes = 0;
		guint reads = 0;

		g_assert_no_error(error);
		g_assert_nonnull(caps);
		if (cycles[cycle].extend != G_MAXUINT)
			kl_test_extend_pcr(&fx, cycles[cycle].extend, cycle + 1);
		challenge = kl_test_challenge(nonce);
		json = g_strdup_printf("{\"challenge\": \"%s\", \"signature_scheme\": \"rsassa\","
				       " \"hash_algorithm\": \"sha256\","
				       " \"selected_subjects\": {\"sha256\": " KL_TEST_16 "}}",
				       challenge);
		params = kl_test_params(json);
		data = kl_tpm_quote_collect_with_tpm(fx.tpm, fx.cache, params, NULL, &error);
		g_assert_no_error(error);
		kl_test_check_evidence(fx.tpm, data, nonce, 0xffff, 1200);

		codes = kl_test_pcap_commands(pcap, mark);
		mark = kl_test_file_size(pcap);
		for (guint i = 0; i < codes->len; i++) {
			guint32 cc = g_array_index(codes, guint32, i);
			if (cc == TPM2_CC_Quote)
				quotes++;
			else if (cc == TPM2_CC_PCR_Read)
				reads++;
			else
				g_error("unexpected TPM command 0x%x in a steady-state cycle", cc);
		}
		g_test_message("cycle %u: %u quote, %u PCR reads", cycle, quotes, reads);
		g_assert_cmpuint(quotes, ==, 1);
		g_assert_cmpuint(reads, ==, cycles[cycle].reads);
		/* the check reads the PCRs itself, after the mark */
		kl_test_blob_is_current(&fx, data, 0xffff);
		mark = kl_test_file_size(pcap);
	}
	g_clear_pointer(&fx.tpm, kl_tpm_free);
	kl_tpm_quote_cache_free(fx.cache);
	g_unsetenv("TCTI_PCAP_FILE");
	g_unlink(pcap);
	g_unlink(agent_data);
	g_rmdir(dir);
}

static const gchar *
kl_test_lookup(gpointer user_data, const gchar *table, const gchar *key)
{
	if (g_strcmp0(key, "certification_keys_server_identifier") == 0)
		return "ak-from-config";
	return NULL;
}

/* the built module as the core drives it: descriptor, startup, capabilities, collect */
static void
test_plugin_info(KlTestFixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path =
	    g_build_filename(g_getenv("KL_TEST_PLUGINDIR"), "tpm_quote.so", NULL);
	void *module;
	KlPluginGetInfoFunc get_info;
	const KlPluginInfo *info;
	KlPluginContext *ctx;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) caps = NULL;
	g_autoptr(JsonObject) data = NULL;
	g_autoptr(JsonObject) params = NULL;
	g_autofree gchar *challenge = NULL;
	g_autofree gchar *json = NULL;
	guint8 nonce[16];

	module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (module == NULL)
		g_error("cannot load %s: %s", path, dlerror());
	get_info = (KlPluginGetInfoFunc)dlsym(module, KL_PLUGIN_INFO_SYMBOL);
	g_assert_nonnull(get_info);
	info = get_info();
	g_assert_cmpuint(info->abi_major, ==, KL_PLUGIN_ABI_MAJOR);
	g_assert_cmpstr(info->name, ==, "tpm_quote");
	g_assert_cmpstr(info->evidence_class, ==, "certification");
	g_assert_nonnull(info->startup);
	g_assert_nonnull(info->get_capabilities);
	g_assert_nonnull(info->collect);
	/* without a TPM the plugin steps aside */
	ctx = kl_plugin_context_new("tpm_quote", kl_test_lookup, NULL, "agent", fx->dir, 0, NULL);
	g_assert_false(info->startup(ctx, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	kl_plugin_context_free(ctx);

	ctx =
	    kl_plugin_context_new("tpm_quote", kl_test_lookup, NULL, "agent", fx->dir, 0, fx->tpm);
	g_assert_true(info->startup(ctx, &error));
	g_assert_no_error(error);
	caps = info->get_capabilities(ctx, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(json_object_get_string_member(
			    json_array_get_object_element(
				json_object_get_array_member(caps, "certification_keys"), 0),
			    "server_identifier"),
			==,
			"ak-from-config");
	challenge = kl_test_challenge(nonce);
	json = g_strdup_printf("{\"challenge\": \"%s\", \"signature_scheme\": \"rsassa\","
			       " \"hash_algorithm\": \"sha256\","
			       " \"selected_subjects\": {\"sha256\": [0, 10]}}",
			       challenge);
	params = kl_test_params(json);
	data = info->collect(ctx, params, NULL, &error);
	g_assert_no_error(error);
	kl_test_check_evidence(fx->tpm, data, nonce, (1u << 0) | (1u << 10), 668);
	kl_plugin_context_free(ctx);
	dlclose(module);
}

int
main(int argc, char **argv)
{
	gboolean software = g_getenv("KL_TEST_SOFTWARE") != NULL;

	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_TCTI") == NULL && !software) {
		return kl_test_skip_all(
		    "not run through run-with-swtpm.sh, nor with KL_TEST_SOFTWARE=1");
	}
	/* the software TPM warns (rightly) that it is insecure: not a failure here */
	if (software)
		g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
#define ADD(path, fn, algs)                                                                        \
	g_test_add(path, KlTestFixture, algs, fixture_setup, fn, fixture_teardown)
	ADD("/tpm-quote/capabilities/rsa", test_capabilities, NULL);
	if (!software)
		ADD("/tpm-quote/capabilities/ecc", test_capabilities_ecc, kl_test_ecc);
	ADD("/tpm-quote/collect/one-pcr", test_collect_one_pcr, NULL);
	ADD("/tpm-quote/collect/measured-boot", test_collect_measured_boot, NULL);
	ADD("/tpm-quote/collect/all-pcrs", test_collect_all, NULL);
	if (!software)
		ADD("/tpm-quote/collect/ecc", test_collect_ecc, kl_test_ecc);
	ADD("/tpm-quote/collect/pcrs-changed-retried", test_collect_pcrs_changed_retried, NULL);
	ADD("/tpm-quote/collect/pcrs-keep-changing", test_collect_pcrs_keep_changing, NULL);
	ADD("/tpm-quote/collect/cache-follows-pcrs", test_collect_cache_follows_pcrs, NULL);
	ADD("/tpm-quote/collect/cache-pcrs-changed-retried",
	    test_collect_cache_pcrs_changed_retried,
	    NULL);
	ADD("/tpm-quote/collect/bad-params", test_collect_bad_params, NULL);
	if (!software)
		ADD("/tpm-quote/collect/bad-params-ecc", test_collect_bad_params_ecc, kl_test_ecc);
	ADD("/tpm-quote/collect/cancelled", test_collect_cancelled, NULL);
	ADD("/tpm-quote/plugin", test_plugin_info, NULL);
	if (!software)
		g_test_add_func("/tpm-quote/steady-state-commands", test_steady_state_commands);
#undef ADD
	return g_test_run();
}
