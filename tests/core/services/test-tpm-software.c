/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The --avoid-tpm software TPM: keys persist, quotes and certifications verify
 * like a TPM's, and TPM2_ActivateCredential accepts what tpm2_makecredential
 * (the tool the registrar uses) produces.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <tss2/tss2_mu.h>

#include "keylime-agent/kl-error.h"
#include "kl-test-skip.h"
#include "kl-tpm-backend.h"

#define INSECURE_WARNING                                                                           \
	"INSECURE: running with a software TPM stand-in (--avoid-tpm); the attestation proves "    \
	"nothing about this machine"

static const guint8 ek_policy[32] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
	0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
	0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct {
	gchar *dir;
	KlTpm *tpm;
} Fixture;

static KlTpm *
soft_open_with(const KlTpmOptions *options, GError **error)
{
	KlTpm *tpm = g_new0(KlTpm, 1);

	/* as the front end (kl_tpm_new) prepares it */
	tpm->backend = &kl_tpm_software_backend;
	tpm->ak_handle = ESYS_TR_NONE;
	tpm->pcr_banks = g_array_new(FALSE, TRUE, sizeof(KlTpmPcrBank));
	tpm->hash_algorithms = g_array_new(FALSE, TRUE, sizeof(guint16));
	tpm->signature_schemes = g_array_new(FALSE, TRUE, sizeof(guint16));
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, INSECURE_WARNING);
	if (!kl_tpm_software_backend.open(tpm, options, error)) {
		g_test_assert_expected_messages();
		/* a failed open() leaves nothing behind but what the front end made */
		g_assert_null(tpm->backend_data);
		g_assert_null(tpm->ak_public);
		g_assert_null(tpm->ek_public);
		g_assert_cmpuint(tpm->pcr_banks->len, ==, 0);
		g_array_unref(tpm->pcr_banks);
		g_array_unref(tpm->hash_algorithms);
		g_array_unref(tpm->signature_schemes);
		g_free(tpm);
		return NULL;
	}
	g_test_assert_expected_messages();
	return tpm;
}

static KlTpm *
soft_open(const gchar *dir, GError **error)
{
	KlTpmOptions options = { .software = TRUE, .state_dir = dir };
	return soft_open_with(&options, error);
}

/* what the front end's kl_tpm_free does for a back end */
static void
soft_close(KlTpm *tpm)
{
	if (tpm == NULL)
		return;
	tpm->backend->close(tpm);
	g_assert_null(tpm->backend_data);
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

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	f->dir = g_dir_make_tmp("kl-tpm-software-XXXXXX", &error);
	g_assert_no_error(error);
	f->tpm = soft_open(f->dir, &error);
	g_assert_no_error(error);
	g_assert_nonnull(f->tpm);
}

static void
remove_tree(const gchar *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const gchar *name;

	if (d == NULL)
		return;
	while ((name = g_dir_read_name(d)) != NULL) {
		g_autofree gchar *path = g_build_filename(dir, name, NULL);
		g_unlink(path);
	}
	g_rmdir(dir);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	soft_close(f->tpm);
	remove_tree(f->dir);
	g_free(f->dir);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static GBytes *
sha256(const void *data, gsize len)
{
	guint8 out[32];
	g_assert_cmpint(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out), ==, 0);
	return g_bytes_new(out, sizeof(out));
}

static void
assert_bytes_equal(GBytes *a, const void *b, gsize b_len)
{
	gsize a_len = 0;
	const guint8 *a_data = g_bytes_get_data(a, &a_len);
	g_assert_cmpmem(a_data, a_len, b, b_len);
}

static TPM2B_PUBLIC
unmarshal_public(GBytes *bytes)
{
	TPM2B_PUBLIC pub = { 0 };
	size_t off = 0;
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(bytes, &len);

	g_assert_cmpint(Tss2_MU_TPM2B_PUBLIC_Unmarshal(data, len, &off, &pub), ==, TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, len);
	return pub;
}

static GBytes *
name_of(const TPMT_PUBLIC *area)
{
	guint8 buf[sizeof(TPMT_PUBLIC)];
	guint8 name[34] = { 0x00, 0x0b };
	size_t off = 0;
	g_autoptr(GBytes) digest = NULL;

	g_assert_cmpint(
	    Tss2_MU_TPMT_PUBLIC_Marshal(area, buf, sizeof(buf), &off), ==, TSS2_RC_SUCCESS);
	digest = sha256(buf, off);
	memcpy(name + 2, g_bytes_get_data(digest, NULL), 32);
	return g_bytes_new(name, sizeof(name));
}

static TPMS_ATTEST
unmarshal_attest(GBytes *bytes)
{
	TPMS_ATTEST a = { 0 };
	size_t off = 0;
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(bytes, &len);

	g_assert_cmpint(Tss2_MU_TPMS_ATTEST_Unmarshal(data, len, &off, &a), ==, TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, len);
	return a;
}

/* verifies a TPMT_SIGNATURE over @message with an RSA public area, as the verifier does */
static gboolean
verify_rsassa(const TPMT_PUBLIC *key, GBytes *message, GBytes *signature)
{
	TPMT_SIGNATURE sig = { 0 };
	size_t off = 0;
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(signature, &len);
	static guint8 e[] = { 0x01, 0x00, 0x01 };
	gnutls_datum_t m = { (guint8 *)key->unique.rsa.buffer, key->unique.rsa.size };
	gnutls_datum_t ed = { e, sizeof(e) };
	gnutls_pubkey_t pub = NULL;
	g_autoptr(GBytes) digest = NULL;
	gnutls_datum_t digest_d;
	gnutls_datum_t sig_d;
	int ret;

	g_assert_cmpint(
	    Tss2_MU_TPMT_SIGNATURE_Unmarshal(data, len, &off, &sig), ==, TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, len);
	g_assert_cmpuint(sig.sigAlg, ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(sig.signature.rsassa.hash, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(sig.signature.rsassa.sig.size, ==, 256);
	g_assert_cmpuint(key->parameters.rsaDetail.exponent, ==, 0);

	digest = sha256(g_bytes_get_data(message, NULL), g_bytes_get_size(message));
	digest_d.data = (guint8 *)g_bytes_get_data(digest, NULL);
	digest_d.size = 32;
	sig_d.data = sig.signature.rsassa.sig.buffer;
	sig_d.size = sig.signature.rsassa.sig.size;

	g_assert_cmpint(gnutls_pubkey_init(&pub), ==, 0);
	g_assert_cmpint(gnutls_pubkey_import_rsa_raw(pub, &m, &ed), ==, 0);
	ret = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_SHA256, 0, &digest_d, &sig_d);
	gnutls_pubkey_deinit(pub);
	return ret >= 0;
}

static void
write_pcrs_file(const gchar *dir, const gchar *json)
{
	g_autofree gchar *path = g_build_filename(dir, "software_pcrs.json", NULL);
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, json, -1, &error);
	g_assert_no_error(error);
}

static GBytes *
random_bytes(gsize len)
{
	guint8 *buf = g_malloc(len);
	g_assert_cmpint(gnutls_rnd(GNUTLS_RND_NONCE, buf, len), ==, 0);
	return g_bytes_new_take(buf, len);
}

static gchar *
hex(GBytes *bytes)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(bytes, &len);
	GString *s = g_string_new(NULL);
	gsize i;

	for (i = 0; i < len; i++)
		g_string_append_printf(s, "%02x", data[i]);
	return g_string_free(s, FALSE);
}

/* the same quote through tpm2-tools' own verifier (signature and qualifying data) */
static void
check_quote_with_tpm2_tools(const gchar *dir,
			    GBytes *ak_public,
			    GBytes *attest,
			    GBytes *signature,
			    GBytes *nonce,
			    gboolean expect_ok)
{
	g_autofree gchar *tool = g_find_program_in_path("tpm2_checkquote");
	g_autofree gchar *ak_path = g_build_filename(dir, "ak.pub", NULL);
	g_autofree gchar *msg_path = g_build_filename(dir, "quote.msg", NULL);
	g_autofree gchar *sig_path = g_build_filename(dir, "quote.sig", NULL);
	g_autofree gchar *nonce_hex = hex(nonce);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GError) error = NULL;
	gint status = 0;
	const gchar *argv[] = { tool,	  "-u", ak_path,  "-m", msg_path,  "-s",
				sig_path, "-g", "sha256", "-q", nonce_hex, NULL };

	if (tool == NULL) {
		g_test_message("tpm2_checkquote not installed; cross-check skipped");
		return;
	}
	g_assert_true(g_file_set_contents(
	    ak_path, g_bytes_get_data(ak_public, NULL), (gssize)g_bytes_get_size(ak_public), NULL));
	g_assert_true(g_file_set_contents(
	    msg_path, g_bytes_get_data(attest, NULL), (gssize)g_bytes_get_size(attest), NULL));
	g_assert_true(g_file_set_contents(sig_path,
					  g_bytes_get_data(signature, NULL),
					  (gssize)g_bytes_get_size(signature),
					  NULL));
	g_assert_true(g_spawn_sync(
	    NULL, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error));
	g_assert_no_error(error);
	g_test_message("tpm2_checkquote: %s%s", out, err);
	g_assert_cmpint(g_spawn_check_wait_status(status, NULL), ==, expect_ok);
	g_unlink(ak_path);
	g_unlink(msg_path);
	g_unlink(sig_path);
}

/* ---- open / persistence ------------------------------------------------------------------- */

static void
test_open_facts(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	TPM2B_PUBLIC ek = unmarshal_public(tpm->ek_public);
	TPM2B_PUBLIC ak = unmarshal_public(tpm->ak_public);
	g_autoptr(GBytes) ak_name = name_of(&ak.publicArea);
	const KlTpmPcrBank *bank;
	const guint8 *raw;

	/* the TCG default RSA EK template (L-1), as tpm2_createek makes it */
	g_assert_cmpuint(ek.publicArea.type, ==, TPM2_ALG_RSA);
	g_assert_cmpuint(ek.publicArea.nameAlg, ==, TPM2_ALG_SHA256);
	g_assert_cmphex(ek.publicArea.objectAttributes, ==, 0x000300b2);
	g_assert_cmpmem(ek.publicArea.authPolicy.buffer,
			ek.publicArea.authPolicy.size,
			ek_policy,
			sizeof(ek_policy));
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.symmetric.algorithm, ==, TPM2_ALG_AES);
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.symmetric.keyBits.aes, ==, 128);
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.symmetric.mode.aes, ==, TPM2_ALG_CFB);
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.scheme.scheme, ==, TPM2_ALG_NULL);
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.keyBits, ==, 2048);
	g_assert_cmpuint(ek.publicArea.parameters.rsaDetail.exponent, ==, 0);
	g_assert_cmpuint(ek.publicArea.unique.rsa.size, ==, 256);
	g_assert_cmphex(ek.publicArea.unique.rsa.buffer[0] & 0x80, ==, 0x80);
	/* the same bytes a registrar sees ("AToAAQALAAMAsgAgg3GXZ0SE...") */
	raw = g_bytes_get_data(tpm->ek_public, NULL);
	g_assert_cmpuint(g_bytes_get_size(tpm->ek_public), ==, 2 + 0x13a);
	g_assert_cmpmem(raw, 12, "\x01\x3a\x00\x01\x00\x0b\x00\x03\x00\xb2\x00\x20", 12);

	/* the AK: restricted RSASSA-SHA256 signing key ("ARgAAQALAAUAcgAAABAAFAALCAA...") */
	g_assert_cmpuint(ak.publicArea.type, ==, TPM2_ALG_RSA);
	g_assert_cmphex(ak.publicArea.objectAttributes, ==, 0x00050072);
	g_assert_cmpuint(ak.publicArea.authPolicy.size, ==, 0);
	g_assert_cmpuint(ak.publicArea.parameters.rsaDetail.symmetric.algorithm, ==, TPM2_ALG_NULL);
	g_assert_cmpuint(ak.publicArea.parameters.rsaDetail.scheme.scheme, ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(
	    ak.publicArea.parameters.rsaDetail.scheme.details.rsassa.hashAlg, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(ak.publicArea.parameters.rsaDetail.keyBits, ==, 2048);
	g_assert_cmpuint(ak.publicArea.unique.rsa.size, ==, 256);
	raw = g_bytes_get_data(tpm->ak_public, NULL);
	g_assert_cmpuint(g_bytes_get_size(tpm->ak_public), ==, 2 + 0x118);
	g_assert_cmpmem(raw,
			20,
			"\x01\x18\x00\x01\x00\x0b\x00\x05\x00\x72\x00\x00\x00\x10\x00\x14\x00\x0b"
			"\x08\x00",
			20);
	g_assert_true(memcmp(&tpm->ak_area, &ak.publicArea, sizeof(TPMT_PUBLIC)) == 0);
	g_assert_true(g_bytes_equal(tpm->ak_name, ak_name));
	g_assert_cmpuint(tpm->ak_scheme, ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(tpm->ak_hash, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(tpm->ak_handle, ==, ESYS_TR_NONE);
	g_assert_false(
	    memcmp(ek.publicArea.unique.rsa.buffer, ak.publicArea.unique.rsa.buffer, 256) == 0);

	g_assert_null(tpm->ek_cert);
	g_assert_cmpstr(tpm->description, ==, "software TPM stand-in (INSECURE: --avoid-tpm)");
	g_assert_null(tpm->backend->get_esys(tpm));
	g_assert_cmpuint(tpm->pcr_banks->len, ==, 1);
	bank = &g_array_index(tpm->pcr_banks, KlTpmPcrBank, 0);
	g_assert_cmpuint(bank->hash, ==, TPM2_ALG_SHA256);
	g_assert_cmphex(bank->pcr_mask, ==, 0xffffff);
	g_assert_cmpuint(tpm->hash_algorithms->len, ==, 4);
	g_assert_cmpuint(g_array_index(tpm->hash_algorithms, guint16, 0), ==, TPM2_ALG_SHA1);
	g_assert_cmpuint(g_array_index(tpm->hash_algorithms, guint16, 1), ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(g_array_index(tpm->hash_algorithms, guint16, 2), ==, TPM2_ALG_SHA384);
	g_assert_cmpuint(g_array_index(tpm->hash_algorithms, guint16, 3), ==, TPM2_ALG_SHA512);
	g_assert_cmpuint(tpm->signature_schemes->len, ==, 2);
	g_assert_cmpuint(g_array_index(tpm->signature_schemes, guint16, 0), ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(g_array_index(tpm->signature_schemes, guint16, 1), ==, TPM2_ALG_RSAPSS);
}

static void
test_open_persists(Fixture *f, gconstpointer data)
{
	g_autofree gchar *path = g_build_filename(f->dir, "software_tpm.json", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *contents = NULL;
	GStatBuf st;
	KlTpm *again;
	g_autofree gchar *other_dir = NULL;
	KlTpm *other;

	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmphex(st.st_mode & 0777, ==, 0600);
	g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
	g_assert_nonnull(strstr(contents, "\"version\" : 1"));
	g_assert_nonnull(strstr(contents, "BEGIN PRIVATE KEY"));

	/* a second open (an agent restart) has the same identity */
	again = soft_open(f->dir, &error);
	g_assert_no_error(error);
	g_assert_true(g_bytes_equal(again->ek_public, f->tpm->ek_public));
	g_assert_true(g_bytes_equal(again->ak_public, f->tpm->ak_public));
	g_assert_true(g_bytes_equal(again->ak_name, f->tpm->ak_name));
	soft_close(again);

	/* another state directory is another machine */
	other_dir = g_dir_make_tmp("kl-tpm-software-XXXXXX", &error);
	g_assert_no_error(error);
	other = soft_open(other_dir, &error);
	g_assert_no_error(error);
	g_assert_false(g_bytes_equal(other->ek_public, f->tpm->ek_public));
	g_assert_false(g_bytes_equal(other->ak_public, f->tpm->ak_public));
	soft_close(other);
	remove_tree(other_dir);
}

static void
test_open_corrupt_state(Fixture *f, gconstpointer data)
{
	g_autofree gchar *path = g_build_filename(f->dir, "software_tpm.json", NULL);
	const gchar *bad[] = {
		"not json",
		"[]",
		"{\"version\": 2, \"ek_private_key\": \"x\", \"ak_private_key\": \"y\"}",
		"{\"version\": 1, \"ek_private_key\": 5, \"ak_private_key\": \"y\"}",
		("{\"version\": 1, \"ek_private_key\": \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n"
		 "-----END PRIVATE KEY-----\\n\", \"ak_private_key\": \"y\"}"),
	};
	gsize i;

	for (i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree gchar *after = NULL;
		KlTpm *tpm;

		g_assert_true(g_file_set_contents(path, bad[i], -1, NULL));
		tpm = soft_open(f->dir, &error);
		g_assert_null(tpm);
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_nonnull(strstr(error->message, path));
		/* never silently replaced: the operator decides */
		g_assert_true(g_file_get_contents(path, &after, NULL, NULL));
		g_assert_cmpstr(after, ==, bad[i]);
	}
}

static void
test_open_unwritable(void)
{
	g_autoptr(GError) error = NULL;
	KlTpm *tpm;

	tpm = soft_open("/proc/kl-no-such-dir/sub", &error);
	g_assert_null(tpm);
	g_assert_error(error, KL_ERROR, KL_ERROR_IO);
}

static void
test_open_options(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("kl-tpm-software-XXXXXX", &error);
	KlTpmOptions defaults = { .software = TRUE,
				  .state_dir = dir,
				  .encryption_alg = "rsa",
				  .hash_alg = "sha256",
				  .signing_alg = "rsassa" };
	KlTpmOptions ecc = { .software = TRUE, .state_dir = dir, .encryption_alg = "ecc" };
	KlTpmOptions sha384 = { .software = TRUE, .state_dir = dir, .hash_alg = "sha384" };
	KlTpmOptions ecdsa = { .software = TRUE, .state_dir = dir, .signing_alg = "ecdsa" };
	g_autofree gchar *state = g_build_filename(dir, "software_tpm.json", NULL);
	KlTpm *tpm;

	g_assert_no_error(error);
	/* only the AK type the stand-in has, so a verifier sees what was configured */
	tpm = soft_open_with(&ecc, &error);
	g_assert_null(tpm);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "tpm_encryption_alg"));
	g_clear_error(&error);
	tpm = soft_open_with(&sha384, &error);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	tpm = soft_open_with(&ecdsa, &error);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	g_assert_false(g_file_test(state, G_FILE_TEST_EXISTS));

	tpm = soft_open_with(&defaults, &error);
	g_assert_no_error(error);
	g_assert_true(g_file_test(state, G_FILE_TEST_EXISTS));
	soft_close(tpm);
	remove_tree(dir);

	/* without a state directory the identity is ephemeral */
	{
		KlTpmOptions none = { .software = TRUE };
		tpm = soft_open_with(&none, &error);
		g_assert_no_error(error);
		g_assert_nonnull(tpm->ek_public);
		soft_close(tpm);
	}
}

/* ---- PCRs and quotes ---------------------------------------------------------------------- */

static void
test_pcr_read(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) values = NULL;
	guint8 zero[32] = { 0 };
	guint8 expected[32];
	guint i;

	g_assert_true(
	    f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA256, 0xffffff, &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, 24);
	for (i = 0; i < 24; i++)
		assert_bytes_equal(values->pdata[i], zero, sizeof(zero));
	g_clear_pointer(&values, g_ptr_array_unref);

	/* a test or demo simulates extends by writing software_pcrs.json */
	write_pcrs_file(f->dir,
			"{\"sha256\": {\"10\": \"00112233445566778899aabbccddeeff"
			"00112233445566778899AABBCCDDEEFF\"}}");
	g_assert_true(f->tpm->backend->pcr_read(
	    f->tpm, TPM2_ALG_SHA256, (1u << 0) | (1u << 10), &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, 2);
	assert_bytes_equal(values->pdata[0], zero, sizeof(zero));
	for (i = 0; i < 32; i++)
		expected[i] = (guint8)((i % 16) * 0x11);
	assert_bytes_equal(values->pdata[1], expected, sizeof(expected));
	g_clear_pointer(&values, g_ptr_array_unref);

	/* errors */
	g_assert_false(f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA1, 1, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_assert_false(
	    f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA256, 1u << 24, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);

	write_pcrs_file(f->dir, "{\"sha256\": {\"24\": \"00\"}}");
	g_assert_false(f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA256, 1, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	write_pcrs_file(f->dir,
			"{\"sha256\": {\"1\": \"zz112233445566778899aabbccddeeff"
			"00112233445566778899aabbccddeeff\"}}");
	g_assert_false(f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA256, 1, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	write_pcrs_file(f->dir, "{\"sha1\": {}}");
	g_assert_false(f->tpm->backend->pcr_read(f->tpm, TPM2_ALG_SHA256, 1, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
}

static void
test_quote(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) nonce = random_bytes(16);
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) signature = NULL;
	g_autoptr(GBytes) attest2 = NULL;
	g_autoptr(GBytes) signature2 = NULL;
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GByteArray) concat = g_byte_array_new();
	g_autoptr(GBytes) pcr_digest = NULL;
	g_autoptr(GBytes) tampered = NULL;
	const guint32 mask = (1u << 0) | (1u << 7) | (1u << 10) | (1u << 23);
	TPMS_ATTEST a;
	TPMS_ATTEST a2;
	guint8 *copy;
	guint i;

	write_pcrs_file(f->dir,
			"{\"sha256\": {"
			"\"0\": \"11111111111111111111111111111111"
			"11111111111111111111111111111111\","
			"\"10\": \"a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
			"a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0\","
			"\"23\": \"ffffffffffffffffffffffffffffffff"
			"ffffffffffffffffffffffffffffffff\""
			"}}");
	g_assert_true(tpm->backend->quote(tpm,
					  TPM2_ALG_SHA256,
					  mask,
					  TPM2_ALG_RSASSA,
					  TPM2_ALG_SHA256,
					  nonce,
					  &attest,
					  &signature,
					  &error));
	g_assert_no_error(error);

	/* the verifier's checks (tpm_util.checkquote) */
	g_assert_true(verify_rsassa(&tpm->ak_area, attest, signature));
	a = unmarshal_attest(attest);
	g_assert_cmphex(a.magic, ==, 0xff544347);
	g_assert_cmphex(a.type, ==, 0x8018);
	g_assert_cmpmem(a.extraData.buffer, a.extraData.size, g_bytes_get_data(nonce, NULL), 16);
	g_assert_cmpuint(a.qualifiedSigner.size, ==, 34);
	g_assert_cmpuint(a.clockInfo.safe, ==, 1);
	g_assert_cmpuint(a.clockInfo.resetCount, ==, 0);
	g_assert_cmpuint(a.clockInfo.restartCount, ==, 0);
	g_assert_cmpuint(a.attested.quote.pcrSelect.count, ==, 1);
	g_assert_cmpuint(a.attested.quote.pcrSelect.pcrSelections[0].hash, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect, ==, 3);
	g_assert_cmpmem(
	    a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect, 3, "\x81\x04\x80", 3);

	/* pcrDigest = SHA-256 of the selected PCR values, as pcr_read returns them */
	g_assert_true(tpm->backend->pcr_read(tpm, TPM2_ALG_SHA256, mask, &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, 4);
	for (i = 0; i < values->len; i++)
		g_byte_array_append(concat, g_bytes_get_data(values->pdata[i], NULL), 32);
	assert_bytes_equal(values->pdata[2],
			   "\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0"
			   "\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0"
			   "\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0",
			   32);
	pcr_digest = sha256(concat->data, concat->len);
	assert_bytes_equal(
	    pcr_digest, a.attested.quote.pcrDigest.buffer, a.attested.quote.pcrDigest.size);

	/* a changed byte breaks the signature */
	copy = g_memdup2(g_bytes_get_data(attest, NULL), g_bytes_get_size(attest));
	copy[g_bytes_get_size(attest) - 1] ^= 0x01;
	tampered = g_bytes_new_take(copy, g_bytes_get_size(attest));
	g_assert_false(verify_rsassa(&tpm->ak_area, tampered, signature));
	check_quote_with_tpm2_tools(f->dir, tpm->ak_public, attest, signature, nonce, TRUE);
	check_quote_with_tpm2_tools(f->dir, tpm->ak_public, tampered, signature, nonce, FALSE);

	/* a changed PCR changes the next quote's digest; the clock moves forward */
	write_pcrs_file(f->dir, "{\"sha256\": {}}");
	g_assert_true(tpm->backend->quote(tpm,
					  TPM2_ALG_SHA256,
					  mask,
					  TPM2_ALG_NULL,
					  TPM2_ALG_NULL,
					  nonce,
					  &attest2,
					  &signature2,
					  &error));
	g_assert_no_error(error);
	g_assert_true(verify_rsassa(&tpm->ak_area, attest2, signature2));
	a2 = unmarshal_attest(attest2);
	g_assert_cmpuint(a2.clockInfo.clock, >, a.clockInfo.clock);
	g_assert_false(
	    memcmp(a2.attested.quote.pcrDigest.buffer, a.attested.quote.pcrDigest.buffer, 32) == 0);
}

static void
test_quote_rejects(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	g_autoptr(GBytes) nonce = random_bytes(16);
	g_autoptr(GBytes) long_nonce = random_bytes(65);
	GBytes *attest = NULL;
	GBytes *signature = NULL;
	g_autoptr(GError) error = NULL;

	/* only the AK's own scheme and hash */
	g_assert_false(tpm->backend->quote(tpm,
					   TPM2_ALG_SHA256,
					   1,
					   TPM2_ALG_RSASSA,
					   TPM2_ALG_SHA384,
					   nonce,
					   &attest,
					   &signature,
					   &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_assert_false(tpm->backend->quote(tpm,
					   TPM2_ALG_SHA256,
					   1,
					   TPM2_ALG_RSAPSS,
					   TPM2_ALG_SHA256,
					   nonce,
					   &attest,
					   &signature,
					   &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_assert_false(tpm->backend->quote(tpm,
					   TPM2_ALG_SHA1,
					   1,
					   TPM2_ALG_RSASSA,
					   TPM2_ALG_SHA256,
					   nonce,
					   &attest,
					   &signature,
					   &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_assert_false(tpm->backend->quote(tpm,
					   TPM2_ALG_SHA256,
					   1,
					   TPM2_ALG_RSASSA,
					   TPM2_ALG_SHA256,
					   long_nonce,
					   &attest,
					   &signature,
					   &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_null(attest);
	g_assert_null(signature);
}

/* ---- certify ------------------------------------------------------------------------------ */

static void
test_certify(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) nonce = random_bytes(16);
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) signature = NULL;
	g_autoptr(GBytes) ek_name = NULL;
	g_autoptr(GBytes) ek_qn_digest = NULL;
	g_autoptr(GBytes) ak_qn_digest = NULL;
	GBytes *none_attest = NULL;
	GBytes *none_signature = NULL;
	TPM2B_PUBLIC ek = unmarshal_public(tpm->ek_public);
	guint8 buf[4 + 34];
	guint8 ak_qn[34] = { 0x00, 0x0b };
	guint8 ek_qn[34] = { 0x00, 0x0b };
	guint8 qn_buf[68];
	TPMS_ATTEST a;

	g_assert_true(tpm->backend->certify_ak(tpm,
					       ESYS_TR_NONE,
					       NULL,
					       TPM2_ALG_NULL,
					       TPM2_ALG_SHA256,
					       nonce,
					       &attest,
					       &signature,
					       &error));
	g_assert_no_error(error);
	g_assert_true(verify_rsassa(&tpm->ak_area, attest, signature));
	/* the observed layout of a TPM's TPM2_Certify of an RSA-2048 AK: 157 bytes */
	g_assert_cmpuint(g_bytes_get_size(attest), ==, 157);
	g_assert_cmpuint(g_bytes_get_size(signature), ==, 262);
	a = unmarshal_attest(attest);
	g_assert_cmphex(a.magic, ==, 0xff544347);
	g_assert_cmphex(a.type, ==, 0x8017);
	g_assert_cmpmem(a.extraData.buffer, a.extraData.size, g_bytes_get_data(nonce, NULL), 16);
	assert_bytes_equal(
	    tpm->ak_name, a.attested.certify.name.name, a.attested.certify.name.size);
	g_assert_cmpuint(a.clockInfo.safe, ==, 1);

	/* qualified name as a TPM computes it for the AK under the EK (endorsement hierarchy) */
	ek_name = name_of(&ek.publicArea);
	memcpy(buf, "\x40\x00\x00\x0b", 4);
	memcpy(buf + 4, g_bytes_get_data(ek_name, NULL), 34);
	ek_qn_digest = sha256(buf, sizeof(buf));
	memcpy(ek_qn + 2, g_bytes_get_data(ek_qn_digest, NULL), 32);
	memcpy(qn_buf, ek_qn, 34);
	memcpy(qn_buf + 34, g_bytes_get_data(tpm->ak_name, NULL), 34);
	ak_qn_digest = sha256(qn_buf, sizeof(qn_buf));
	memcpy(ak_qn + 2, g_bytes_get_data(ak_qn_digest, NULL), 32);
	g_assert_cmpmem(a.attested.certify.qualifiedName.name,
			a.attested.certify.qualifiedName.size,
			ak_qn,
			sizeof(ak_qn));
	g_assert_cmpmem(a.qualifiedSigner.name, a.qualifiedSigner.size, ak_qn, sizeof(ak_qn));

	/* no other signing keys (IAK) exist */
	g_assert_false(tpm->backend->certify_ak(tpm,
						0x81000001,
						NULL,
						TPM2_ALG_NULL,
						TPM2_ALG_SHA256,
						nonce,
						&none_attest,
						&none_signature,
						&error));
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	g_assert_false(tpm->backend->certify_ak(tpm,
						ESYS_TR_NONE,
						NULL,
						TPM2_ALG_RSASSA,
						TPM2_ALG_SHA1,
						nonce,
						&none_attest,
						&none_signature,
						&error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_null(none_attest);
}

/* ---- activate credential ------------------------------------------------------------------ */

/* the registrar's MakeCredential: tpm2_makecredential -T none (offline, no TPM) */
static GBytes *
make_credential(const gchar *dir, GBytes *ek_public, GBytes *name, const gchar *secret)
{
	g_autofree gchar *tool = g_find_program_in_path("tpm2_makecredential");
	g_autofree gchar *ek_path = g_build_filename(dir, "ek.pub", NULL);
	g_autofree gchar *secret_path = g_build_filename(dir, "secret.txt", NULL);
	g_autofree gchar *blob_path = g_build_filename(dir, "blob.bin", NULL);
	g_autofree gchar *name_hex = hex(name);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GError) error = NULL;
	gchar *blob = NULL;
	gsize blob_len = 0;
	gint status = 0;
	const gchar *argv[] = { tool,	     "-T", "none",   "-u", ek_path,   "-s",
				secret_path, "-n", name_hex, "-o", blob_path, NULL };

	if (tool == NULL)
		return NULL;
	g_assert_true(g_file_set_contents(
	    ek_path, g_bytes_get_data(ek_public, NULL), (gssize)g_bytes_get_size(ek_public), NULL));
	g_assert_true(g_file_set_contents(secret_path, secret, -1, NULL));
	g_unlink(blob_path);
	g_assert_true(g_spawn_sync(
	    NULL, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error));
	g_assert_no_error(error);
	g_test_message("tpm2_makecredential: %s%s", out, err);
	g_assert_true(g_spawn_check_wait_status(status, NULL));
	g_assert_true(g_file_get_contents(blob_path, &blob, &blob_len, NULL));
	g_unlink(ek_path);
	g_unlink(secret_path);
	g_unlink(blob_path);
	return g_bytes_new_take(blob, blob_len);
}

static GBytes *
flip_byte(GBytes *bytes, gsize offset)
{
	guint8 *copy = g_memdup2(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
	g_assert_cmpuint(offset, <, g_bytes_get_size(bytes));
	copy[offset] ^= 0x40;
	return g_bytes_new_take(copy, g_bytes_get_size(bytes));
}

static void
test_activate_credential(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	const gchar *credential = "Xq7b2VnK9dLmP3wR8sT1uY6zA4cE0fGh";
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) secret = NULL;
	g_autoptr(GError) error = NULL;
	const guint8 *raw;
	gsize len;

	blob = make_credential(f->dir, tpm->ek_public, tpm->ak_name, credential);
	if (blob == NULL) {
		kl_test_skip("tpm2_makecredential (tpm2-tools) is not installed");
		return;
	}
	/* RSA-2048 EK + SHA-256 AK name: 336 bytes, as from a registrar */
	raw = g_bytes_get_data(blob, &len);
	g_assert_cmpuint(len, ==, 336);
	g_assert_cmpmem(raw, 4, "\xba\xdc\xc0\xde", 4);

	g_assert_true(tpm->backend->activate_credential(tpm, blob, &secret, &error));
	g_assert_no_error(error);
	g_assert_cmpmem(g_bytes_get_data(secret, NULL),
			g_bytes_get_size(secret),
			credential,
			strlen(credential));
}

static void
test_activate_credential_tampered(Fixture *f, gconstpointer data)
{
	KlTpm *tpm = f->tpm;
	const gchar *credential = "0123456789abcdefghijABCDEFGHIJkl";
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) other_name = NULL;
	g_autoptr(GBytes) other_blob = NULL;
	g_autoptr(GBytes) short_blob = NULL;
	/* header 8, TPM2B_ID_OBJECT size 2, integrityHMAC 2+32, encIdentity 34, secret 2+256 */
	const gsize offsets[] = {
		0,	  /* magic */
		7,	  /* version */
		12,	  /* integrity HMAC */
		10 + 34,  /* encIdentity: size field */
		10 + 50,  /* encIdentity: credential */
		80 + 100, /* encrypted secret */
	};
	gsize i;

	blob = make_credential(f->dir, tpm->ek_public, tpm->ak_name, credential);
	if (blob == NULL) {
		kl_test_skip("tpm2_makecredential (tpm2-tools) is not installed");
		return;
	}
	for (i = 0; i < G_N_ELEMENTS(offsets); i++) {
		g_autoptr(GBytes) bad = flip_byte(blob, offsets[i]);
		g_autoptr(GBytes) secret = NULL;
		g_autoptr(GError) error = NULL;

		g_assert_false(tpm->backend->activate_credential(tpm, bad, &secret, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_null(secret);
	}

	/* made for another AK: the integrity check names the problem */
	{
		g_autoptr(GBytes) secret = NULL;
		g_autoptr(GError) error = NULL;
		guint8 name[34];

		memcpy(name, g_bytes_get_data(tpm->ak_name, NULL), sizeof(name));
		name[33] ^= 1;
		other_name = g_bytes_new(name, sizeof(name));
		other_blob = make_credential(f->dir, tpm->ek_public, other_name, credential);
		g_assert_false(tpm->backend->activate_credential(tpm, other_blob, &secret, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
		g_assert_nonnull(strstr(error->message, "integrity"));
	}

	/* truncated */
	{
		g_autoptr(GBytes) secret = NULL;
		g_autoptr(GError) error = NULL;

		short_blob = g_bytes_new_from_bytes(blob, 0, g_bytes_get_size(blob) - 1);
		g_assert_false(tpm->backend->activate_credential(tpm, short_blob, &secret, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	}
}

static void
test_activate_credential_other_ek(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *other_dir = g_dir_make_tmp("kl-tpm-software-XXXXXX", &error);
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) secret = NULL;
	KlTpm *other;

	g_assert_no_error(error);
	other = soft_open(other_dir, &error);
	g_assert_no_error(error);
	/* a blob for the other machine's EK and our AK name */
	blob = make_credential(f->dir, other->ek_public, f->tpm->ak_name, "credential");
	soft_close(other);
	remove_tree(other_dir);
	if (blob == NULL) {
		kl_test_skip("tpm2_makecredential (tpm2-tools) is not installed");
		return;
	}
	g_assert_false(f->tpm->backend->activate_credential(f->tpm, blob, &secret, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD("/tpm-software/open/facts", test_open_facts);
	ADD("/tpm-software/open/persists", test_open_persists);
	ADD("/tpm-software/open/corrupt-state", test_open_corrupt_state);
	g_test_add_func("/tpm-software/open/unwritable", test_open_unwritable);
	g_test_add_func("/tpm-software/open/options", test_open_options);
	ADD("/tpm-software/pcr-read", test_pcr_read);
	ADD("/tpm-software/quote/verifies", test_quote);
	ADD("/tpm-software/quote/rejects", test_quote_rejects);
	ADD("/tpm-software/certify", test_certify);
	ADD("/tpm-software/activate-credential/round-trip", test_activate_credential);
	ADD("/tpm-software/activate-credential/tampered", test_activate_credential_tampered);
	ADD("/tpm-software/activate-credential/other-ek", test_activate_credential_other_ek);
#undef ADD
	return g_test_run();
}
