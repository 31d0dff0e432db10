/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * TPM front-end helpers that need no TPM: algorithm names, the EK hash,
 * the credential blob parser, agent_data.json and the agent id modes.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <tss2/tss2_mu.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-data.h"
#include "kl-agent-id.h"
#include "kl-tpm-backend.h"

static GBytes *
kl_test_read_data(const gchar *name)
{
	g_autofree gchar *path = g_test_build_filename(G_TEST_DIST, "data", "tpm", name, NULL);
	gchar *contents = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;

	g_assert_true(g_file_get_contents(path, &contents, &len, &error));
	g_assert_no_error(error);
	return g_bytes_new_take(contents, len);
}

static void
test_alg_names(void)
{
	g_assert_cmpstr(kl_tpm_alg_to_name(TPM2_ALG_SHA256), ==, "sha256");
	g_assert_cmpstr(kl_tpm_alg_to_name(TPM2_ALG_SM3_256), ==, "sm3_256");
	g_assert_cmpstr(kl_tpm_alg_to_name(TPM2_ALG_RSASSA), ==, "rsassa");
	g_assert_cmpstr(kl_tpm_alg_to_name(TPM2_ALG_ECSCHNORR), ==, "ecschnorr");
	g_assert_cmpstr(kl_tpm_alg_to_name(TPM2_ALG_ECC), ==, "ecc");
	g_assert_null(kl_tpm_alg_to_name(TPM2_ALG_AES));
	g_assert_cmpuint(kl_tpm_alg_from_name("sha384"), ==, TPM2_ALG_SHA384);
	g_assert_cmpuint(kl_tpm_alg_from_name("rsapss"), ==, TPM2_ALG_RSAPSS);
	g_assert_cmpuint(kl_tpm_alg_from_name("sm2"), ==, TPM2_ALG_SM2);
	g_assert_cmpuint(kl_tpm_alg_from_name("rsa"), ==, TPM2_ALG_RSA);
	g_assert_cmpuint(kl_tpm_alg_from_name("md5"), ==, TPM2_ALG_ERROR);
	g_assert_cmpuint(kl_tpm_alg_from_name(NULL), ==, TPM2_ALG_ERROR);
	g_assert_cmpuint(kl_tpm_hash_size(TPM2_ALG_SHA1), ==, 20);
	g_assert_cmpuint(kl_tpm_hash_size(TPM2_ALG_SHA256), ==, 32);
	g_assert_cmpuint(kl_tpm_hash_size(TPM2_ALG_SHA384), ==, 48);
	g_assert_cmpuint(kl_tpm_hash_size(TPM2_ALG_SHA512), ==, 64);
	g_assert_cmpuint(kl_tpm_hash_size(TPM2_ALG_RSASSA), ==, 0);
}

static void
test_error_from_rc(void)
{
	g_autoptr(GError) error = kl_tpm_error_from_rc(TPM2_RC_HANDLE | TPM2_RC_1, "Esys_Quote");
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
	g_assert_true(g_str_has_prefix(error->message, "Esys_Quote: "));
	g_assert_nonnull(strstr(error->message, "handle"));
}

/*
 * TPM response codes carry the operator's cure: full object/session memory
 * and DA lockout say that the AK is fine (never "delete the AK"); a lost
 * connection is recognised (the agent reconnects); busy codes are transient
 */
static void
test_rc_advice(void)
{
	const TSS2_RC memory[] = { TPM2_RC_OBJECT_MEMORY, TPM2_RC_SESSION_MEMORY };
	g_autoptr(GError) lockout = kl_tpm_error_from_rc(TPM2_RC_LOCKOUT, "Esys_Quote");
	g_autoptr(GError) retry = kl_tpm_error_from_rc(TPM2_RC_RETRY, "Esys_Quote");
	g_autoptr(GError) io = kl_tpm_error_from_rc(0xa000a, "Esys_Quote");

	for (guint i = 0; i < G_N_ELEMENTS(memory); i++) {
		g_autoptr(GError) e = kl_tpm_error_from_rc(memory[i], "Esys_Load(AK)");
		g_assert_nonnull(strstr(e->message, "memory for loaded keys or sessions is full"));
		g_assert_nonnull(strstr(e->message, "tpm2_flushcontext"));
		g_assert_nonnull(strstr(e->message, "do not delete them"));
	}
	g_assert_nonnull(strstr(lockout->message, "dictionary-attack lockout"));
	g_assert_nonnull(strstr(lockout->message, "tpm2_dictionarylockout"));
	g_assert_nonnull(strstr(lockout->message, "do not delete them"));
	g_assert_nonnull(strstr(retry->message, "transient"));
	g_assert_true(kl_tpm_rc_is_connection_lost(0xa000a)); /* TCTI I/O error */
	g_assert_true(kl_tpm_rc_is_connection_lost(0x70007)); /* ESYS bad sequence */
	g_assert_true(kl_tpm_rc_is_connection_lost(TPM2_RC_INITIALIZE));
	g_assert_false(kl_tpm_rc_is_connection_lost(TPM2_RC_LOCKOUT));
	g_assert_nonnull(strstr(io->message, "reconnects"));
	/* format-one codes lose their handle/parameter number */
	g_assert_cmphex(
	    kl_tpm_rc_base(TPM2_RC_INTEGRITY | TPM2_RC_P | TPM2_RC_2), ==, TPM2_RC_INTEGRITY);
	g_assert_cmphex(kl_tpm_rc_base(0xa000a), ==, 0);
}

/* the EK hash equals SHA-256 of the PEM that OpenSSL (tpm2-tools) writes */
static void
test_ek_hash(gconstpointer data)
{
	const gchar *alg = data;
	g_autofree gchar *pub_name = g_strdup_printf("ek-%s.tpm2b", alg);
	g_autofree gchar *pem_name = g_strdup_printf("ek-%s.pem", alg);
	g_autoptr(GBytes) pub = kl_test_read_data(pub_name);
	g_autoptr(GBytes) pem = kl_test_read_data(pem_name);
	g_autofree gchar *expected = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, pem);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *hash = kl_tpm_compute_ek_hash(pub, &error);

	g_assert_no_error(error);
	g_assert_cmpstr(hash, ==, expected);
}

static void
test_ek_hash_bad(void)
{
	g_autoptr(GBytes) pub = kl_test_read_data("ek-rsa.tpm2b");
	g_autoptr(GBytes) truncated = g_bytes_new_from_bytes(pub, 0, g_bytes_get_size(pub) - 1);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *hash = kl_tpm_compute_ek_hash(truncated, &error);

	g_assert_null(hash);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

/* blob: magic, version, TPM2B_ID_OBJECT (n bytes), TPM2B_ENCRYPTED_SECRET (m bytes) */
static GByteArray *
kl_test_blob(guint32 magic, guint32 version, guint16 n, guint16 m)
{
	GByteArray *b = g_byte_array_new();
	guint8 hdr[8] = { magic >> 24,	 magic >> 16,	magic >> 8,   magic,
			  version >> 24, version >> 16, version >> 8, version };
	guint8 sz[2];

	g_byte_array_append(b, hdr, sizeof(hdr));
	sz[0] = n >> 8;
	sz[1] = n & 0xff;
	g_byte_array_append(b, sz, 2);
	for (guint i = 0; i < n; i++) {
		guint8 v = (guint8)(i + 1);
		g_byte_array_append(b, &v, 1);
	}
	sz[0] = m >> 8;
	sz[1] = m & 0xff;
	g_byte_array_append(b, sz, 2);
	for (guint i = 0; i < m; i++) {
		guint8 v = (guint8)(0xff - i);
		g_byte_array_append(b, &v, 1);
	}
	return b;
}

static void
test_split_blob_ok(void)
{
	g_autoptr(GByteArray) b = kl_test_blob(0xBADCC0DE, 1, 68, 256);
	g_autoptr(GBytes) blob = g_bytes_new(b->data, b->len);
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET sec;
	g_autoptr(GError) error = NULL;

	g_assert_cmpuint(b->len, ==, 336);
	g_assert_true(kl_tpm_split_credential_blob(blob, &id, &sec, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(id.size, ==, 68);
	g_assert_cmpuint(id.credential[0], ==, 1);
	g_assert_cmpuint(id.credential[67], ==, 68);
	g_assert_cmpuint(sec.size, ==, 256);
	g_assert_cmpuint(sec.secret[0], ==, 0xff);
	g_assert_cmpuint(sec.secret[255], ==, 0);
}

static void
kl_test_blob_rejected(GByteArray *b, const gchar *what)
{
	g_autoptr(GBytes) blob = g_bytes_new(b->data, b->len);
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET sec;
	g_autoptr(GError) error = NULL;

	g_test_message("rejecting: %s", what);
	g_assert_false(kl_tpm_split_credential_blob(blob, &id, &sec, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

static void
test_split_blob_bad(void)
{
	g_autoptr(GByteArray) good = kl_test_blob(0xBADCC0DE, 1, 68, 256);
	g_autoptr(GByteArray) magic = kl_test_blob(0xBADCC0DF, 1, 68, 256);
	g_autoptr(GByteArray) version = kl_test_blob(0xBADCC0DE, 2, 68, 256);
	g_autoptr(GByteArray) empty_id = kl_test_blob(0xBADCC0DE, 1, 0, 256);
	g_autoptr(GByteArray) empty_secret = kl_test_blob(0xBADCC0DE, 1, 68, 0);
	g_autoptr(GByteArray) huge_id = kl_test_blob(0xBADCC0DE, 1, sizeof(TPMS_ID_OBJECT) + 1, 16);
	g_autoptr(GByteArray) huge_secret =
	    kl_test_blob(0xBADCC0DE, 1, 68, sizeof(TPMU_ENCRYPTED_SECRET) + 1);
	g_autoptr(GBytes) null_blob = NULL;
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET sec;
	g_autoptr(GError) error = NULL;

	kl_test_blob_rejected(magic, "bad magic");
	kl_test_blob_rejected(version, "bad version");
	kl_test_blob_rejected(empty_id, "empty id object");
	kl_test_blob_rejected(empty_secret, "empty secret");
	kl_test_blob_rejected(huge_id, "id object larger than TPMS_ID_OBJECT");
	kl_test_blob_rejected(huge_secret, "secret larger than TPMU_ENCRYPTED_SECRET");

	/* every truncation, and one trailing byte */
	for (guint len = 0; len < good->len; len++) {
		g_autoptr(GByteArray) t = g_byte_array_new();
		g_byte_array_append(t, good->data, len);
		kl_test_blob_rejected(t, "truncated");
	}
	{
		guint8 extra = 0;
		g_autoptr(GByteArray) t = g_byte_array_new();
		g_byte_array_append(t, good->data, good->len);
		g_byte_array_append(t, &extra, 1);
		kl_test_blob_rejected(t, "trailing byte");
	}
	/* the id object size claims more than the blob holds */
	{
		g_autoptr(GByteArray) t = g_byte_array_new();
		g_byte_array_append(t, good->data, good->len);
		t->data[8] = 0x01;
		t->data[9] = 0x50;
		kl_test_blob_rejected(t, "id object size beyond the end");
	}
	g_assert_false(kl_tpm_split_credential_blob(null_blob, &id, &sec, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

static void
test_key_params(void)
{
	KlTpmOptions o = { 0 };
	KlTpmKeyParams p;
	g_autoptr(GError) error = NULL;

	g_assert_true(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(p.type, ==, TPM2_ALG_RSA);
	g_assert_cmpuint(p.key_bits, ==, 2048);
	g_assert_cmpuint(p.hash, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(p.scheme, ==, TPM2_ALG_RSASSA);

	o.encryption_alg = "ecc";
	o.signing_alg = "ecdsa";
	o.hash_alg = "sha384";
	g_assert_true(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_cmpuint(p.type, ==, TPM2_ALG_ECC);
	g_assert_cmpuint(p.curve, ==, TPM2_ECC_NIST_P256);
	g_assert_cmpuint(p.hash, ==, TPM2_ALG_SHA384);
	g_assert_cmpuint(p.scheme, ==, TPM2_ALG_ECDSA);

	o.signing_alg = "rsassa";
	g_assert_false(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);

	o.encryption_alg = "rsa1024";
	g_assert_false(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_assert_nonnull(strstr(error->message, "rsa3072"));
	g_clear_error(&error);

	/* every name Keylime knows, and the aliases as Keylime normalises them */
	{
		static const struct {
			const gchar *enc;
			const gchar *sign;
			TPMI_ALG_PUBLIC type;
			guint16 bits;
			TPMI_ECC_CURVE curve;
			const gchar *canonical;
		} cases[] = {
			{ "rsa", "rsassa", TPM2_ALG_RSA, 2048, 0, "rsa2048" },
			{ "rsa2048", "rsapss", TPM2_ALG_RSA, 2048, 0, "rsa2048" },
			{ "rsa3072", "rsassa", TPM2_ALG_RSA, 3072, 0, "rsa3072" },
			{ "rsa4096", "rsapss", TPM2_ALG_RSA, 4096, 0, "rsa4096" },
			{ "ecc", "ecdsa", TPM2_ALG_ECC, 0, TPM2_ECC_NIST_P256, "ecc256" },
			{ "ecc256", "ecdsa", TPM2_ALG_ECC, 0, TPM2_ECC_NIST_P256, "ecc256" },
			{ "ecc384", "ecdsa", TPM2_ALG_ECC, 0, TPM2_ECC_NIST_P384, "ecc384" },
			{ "ecc521", "ecdsa", TPM2_ALG_ECC, 0, TPM2_ECC_NIST_P521, "ecc521" },
		};
		for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
			o.encryption_alg = cases[i].enc;
			o.signing_alg = cases[i].sign;
			o.hash_alg = "sha384";
			g_assert_true(kl_tpm_key_params_from_options(&o, &p, &error));
			g_assert_no_error(error);
			g_assert_cmpuint(p.type, ==, cases[i].type);
			if (p.type == TPM2_ALG_RSA)
				g_assert_cmpuint(p.key_bits, ==, cases[i].bits);
			else
				g_assert_cmpuint(p.curve, ==, cases[i].curve);
			g_assert_cmpstr(kl_tpm_key_type_name(p.type, p.key_bits, p.curve),
					==,
					cases[i].canonical);
		}
	}
	o.encryption_alg = "ecc_sm2";
	o.signing_alg = "ecdsa";
	g_assert_false(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);

	o.encryption_alg = "rsa";
	o.hash_alg = "md5";
	g_assert_false(kl_tpm_key_params_from_options(&o, &p, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
}

/* the TCG EK Credential Profile templates: which ones fit, and their shape */
static void
test_ek_profiles(void)
{
	static const struct {
		const gchar *enc;
		const gchar *first;
		const gchar *second;
		TPMI_ALG_HASH name_alg;
		guint16 policy_len;
		guint16 sym_bits;
		guint32 cert_index;
	} cases[] = {
		{ "rsa2048", "L-1", "H-1", TPM2_ALG_SHA256, 32, 128, 0x01C00002 },
		{ "ecc256", "L-2", "H-2", TPM2_ALG_SHA256, 32, 128, 0x01C0000A },
		{ "ecc384", "H-3", NULL, TPM2_ALG_SHA384, 48, 256, 0x01C00016 },
		{ "ecc521", "H-4", NULL, TPM2_ALG_SHA512, 64, 256, 0x01C00018 },
		{ "rsa3072", "H-6", NULL, TPM2_ALG_SHA384, 48, 256, 0x01C0001C },
		{ "rsa4096", "H-7", NULL, TPM2_ALG_SHA384, 48, 256, 0x01C0001E },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		KlTpmKeyParams params = { 0 };
		const KlTpmEkProfile *profiles[4];
		TPMT_PUBLIC t;
		guint n;

		g_assert_true(kl_tpm_key_params_parse_type(cases[i].enc, &params));
		n = kl_tpm_ek_profiles_for(&params, profiles, G_N_ELEMENTS(profiles));
		g_assert_cmpuint(n, ==, cases[i].second != NULL ? 2 : 1);
		g_assert_cmpstr(profiles[0]->name, ==, cases[i].first);
		if (cases[i].second != NULL) {
			g_assert_cmpstr(profiles[1]->name, ==, cases[i].second);
			g_assert_true(profiles[1]->high_range);
		}
		g_assert_cmphex(profiles[0]->cert_index, ==, cases[i].cert_index);

		kl_tpm_ek_profile_template(profiles[0], &t);
		g_assert_cmpuint(t.type, ==, params.type);
		g_assert_cmpuint(t.nameAlg, ==, cases[i].name_alg);
		g_assert_cmpuint(t.authPolicy.size, ==, cases[i].policy_len);
		g_assert_true(t.objectAttributes & TPMA_OBJECT_RESTRICTED);
		g_assert_true(t.objectAttributes & TPMA_OBJECT_DECRYPT);
		g_assert_true(t.objectAttributes & TPMA_OBJECT_ADMINWITHPOLICY);
		g_assert_false(t.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT);
		/* the high range lets a password session use the EK; the low range needs the policy
		 */
		g_assert_cmpint(
		    !!(t.objectAttributes & TPMA_OBJECT_USERWITHAUTH), ==, profiles[0]->high_range);
		if (t.type == TPM2_ALG_RSA) {
			g_assert_cmpuint(t.parameters.rsaDetail.keyBits, ==, params.key_bits);
			g_assert_cmpuint(
			    t.parameters.rsaDetail.symmetric.keyBits.aes, ==, cases[i].sym_bits);
			g_assert_cmpuint(t.unique.rsa.size,
					 ==,
					 profiles[0]->high_range ? 0 : params.key_bits / 8);
		} else {
			g_assert_cmpuint(t.parameters.eccDetail.curveID, ==, params.curve);
			g_assert_cmpuint(
			    t.parameters.eccDetail.symmetric.keyBits.aes, ==, cases[i].sym_bits);
			g_assert_cmpuint(t.unique.ecc.x.size, ==, profiles[0]->high_range ? 0 : 32);
		}
	}
}

static void
test_ek_apply_nv(void)
{
	KlTpmKeyParams params = { 0 };
	const KlTpmEkProfile *profiles[4];
	TPMT_PUBLIC t;
	TPMT_PUBLIC other;
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	g_autoptr(GBytes) nonce = g_bytes_new_static("\x01\x02\x03", 3);
	g_autoptr(GBytes) tmpl = NULL;
	g_autoptr(GBytes) junk = g_bytes_new_static("\x00\x01", 2);
	g_autoptr(GError) error = NULL;

	/* L-1 with a nonce: the nonce, then zeros, 256 bytes */
	g_assert_true(kl_tpm_key_params_parse_type("rsa", &params));
	g_assert_cmpuint(kl_tpm_ek_profiles_for(&params, profiles, 4), ==, 2);
	kl_tpm_ek_profile_template(profiles[0], &t);
	g_assert_true(kl_tpm_ek_apply_nv(&t, NULL, nonce, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(t.unique.rsa.size, ==, 256);
	g_assert_cmpmem(t.unique.rsa.buffer, 3, "\x01\x02\x03", 3);
	g_assert_cmpuint(t.unique.rsa.buffer[3], ==, 0);

	/* a template in NV replaces the default (here: H-1 given for L-1) */
	kl_tpm_ek_profile_template(profiles[1], &other);
	g_assert_cmpuint(Tss2_MU_TPMT_PUBLIC_Marshal(&other, buf, sizeof(buf), &off), ==, 0);
	tmpl = g_bytes_new(buf, off);
	kl_tpm_ek_profile_template(profiles[0], &t);
	g_assert_true(kl_tpm_ek_apply_nv(&t, tmpl, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpmem(
	    &t.authPolicy, sizeof(t.authPolicy), &other.authPolicy, sizeof(other.authPolicy));
	g_assert_true(t.objectAttributes & TPMA_OBJECT_USERWITHAUTH);

	/* L-2 with a nonce: x = nonce + zeros, y = zeros */
	g_assert_true(kl_tpm_key_params_parse_type("ecc", &params));
	g_assert_cmpuint(kl_tpm_ek_profiles_for(&params, profiles, 4), ==, 2);
	kl_tpm_ek_profile_template(profiles[0], &t);
	g_assert_true(kl_tpm_ek_apply_nv(&t, NULL, nonce, &error));
	g_assert_cmpuint(t.unique.ecc.x.size, ==, 32);
	g_assert_cmpuint(t.unique.ecc.y.size, ==, 32);
	g_assert_cmpmem(t.unique.ecc.x.buffer, 3, "\x01\x02\x03", 3);

	/* garbage in NV, or a template of another key type, is an error */
	g_assert_false(kl_tpm_ek_apply_nv(&t, junk, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
	g_clear_error(&error);
	g_assert_false(kl_tpm_ek_apply_nv(&t, tmpl, NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
}

static gchar *
kl_test_tmpdir(void)
{
	g_autoptr(GError) error = NULL;
	gchar *dir = g_dir_make_tmp("kl-tpm-unit-XXXXXX", &error);
	g_assert_no_error(error);
	return dir;
}

static void
kl_test_rmdir(const gchar *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const gchar *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree gchar *p = g_build_filename(dir, name, NULL);
		g_unlink(p);
	}
	g_rmdir(dir);
}

static const gchar *
kl_test_sample_ek_hash(void)
{
	return "6479dd5bdc044f6ad458072d3db47302934bf04aa91742acfbd4ebabf46f2d98";
}

/* the sample was written in serde_json's pretty format from a tpm2-tools AK */
static void
test_agent_data_rust_sample(void)
{
	g_autofree gchar *path =
	    g_test_build_filename(G_TEST_DIST, "data", "tpm", "agent_data_rust.json", NULL);
	g_autoptr(GBytes) original = kl_test_read_data("agent_data_rust.json");
	g_autofree gchar *dir = kl_test_tmpdir();
	g_autofree gchar *copy = g_build_filename(dir, "agent_data.json", NULL);
	g_autofree gchar *written = NULL;
	gsize written_len = 0;
	KlTpmOptions o = { 0 };
	KlTpmKeyParams params;
	TPMT_PUBLIC pub;
	TPM2B_PRIVATE priv;
	g_autoptr(GError) error = NULL;
	struct stat st;

	g_assert_true(kl_tpm_key_params_from_options(&o, &params, &error));
	g_assert_true(
	    kl_tpm_agent_data_load(path, &params, kl_test_sample_ek_hash(), &pub, &priv, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(pub.type, ==, TPM2_ALG_RSA);
	g_assert_cmpuint(pub.nameAlg, ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(pub.parameters.rsaDetail.scheme.scheme, ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(pub.unique.rsa.size, ==, 256);
	g_assert_cmpuint(priv.size, ==, 222);

	/* writing it back gives the same bytes: the Rust agent can read our file */
	g_assert_true(kl_tpm_agent_data_store(copy, &pub, &priv, kl_test_sample_ek_hash(), &error));
	g_assert_no_error(error);
	g_assert_true(g_file_get_contents(copy, &written, &written_len, &error));
	g_assert_cmpmem(
	    written, written_len, g_bytes_get_data(original, NULL), g_bytes_get_size(original));
	g_assert_cmpint(g_stat(copy, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
	kl_test_rmdir(dir);
}

static void
kl_test_agent_data_expect(const gchar *contents,
			  const gchar *hash_alg,
			  const gchar *ek_hash,
			  gint code,
			  const gchar *needle)
{
	g_autofree gchar *dir = kl_test_tmpdir();
	g_autofree gchar *path = g_build_filename(dir, "agent_data.json", NULL);
	KlTpmOptions o = { .hash_alg = hash_alg };
	KlTpmKeyParams params;
	TPMT_PUBLIC pub;
	TPM2B_PRIVATE priv;
	g_autoptr(GError) error = NULL;

	if (contents != NULL)
		g_assert_true(g_file_set_contents(path, contents, -1, NULL));
	g_assert_true(kl_tpm_key_params_from_options(&o, &params, &error));
	g_assert_false(kl_tpm_agent_data_load(path, &params, ek_hash, &pub, &priv, &error));
	g_assert_error(error, KL_ERROR, code);
	g_test_message("%s", error->message);
	if (code != KL_ERROR_NOT_FOUND) {
		/* the message names the file and the way out */
		g_assert_nonnull(strstr(error->message, path));
		g_assert_nonnull(strstr(error->message, "registrar"));
	}
	if (needle != NULL)
		g_assert_nonnull(strstr(error->message, needle));
	kl_test_rmdir(dir);
}

static gchar *
kl_test_replace_once(const gchar *text, const gchar *from, const gchar *to)
{
	const gchar *at = strstr(text, from);
	g_assert_nonnull(at);
	return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static void
test_agent_data_errors(void)
{
	g_autoptr(GBytes) sample = kl_test_read_data("agent_data_rust.json");
	g_autofree gchar *text =
	    g_strndup(g_bytes_get_data(sample, NULL), g_bytes_get_size(sample));
	g_autofree gchar *truncated = g_strndup(text, strlen(text) / 2);
	g_autofree gchar *bad_byte =
	    kl_test_replace_once(text, "\"ak_public\": [\n    0,", "\"ak_public\": [\n    256,");
	g_autofree gchar *bad_alg = kl_test_replace_once(text, "\"Sha256\"", "\"Md5\"");

	/* missing file: NOT_FOUND, the caller creates a new AK */
	kl_test_agent_data_expect(NULL, NULL, kl_test_sample_ek_hash(), KL_ERROR_NOT_FOUND, NULL);
	/* corrupt */
	kl_test_agent_data_expect(
	    truncated, NULL, kl_test_sample_ek_hash(), KL_ERROR_INVALID_DATA, "corrupt");
	kl_test_agent_data_expect(
	    "[]", NULL, kl_test_sample_ek_hash(), KL_ERROR_INVALID_DATA, NULL);
	kl_test_agent_data_expect("{\"ak_hash_alg\": \"Sha256\"}",
				  NULL,
				  kl_test_sample_ek_hash(),
				  KL_ERROR_INVALID_DATA,
				  NULL);
	kl_test_agent_data_expect(
	    bad_byte, NULL, kl_test_sample_ek_hash(), KL_ERROR_INVALID_DATA, "ak_public");
	kl_test_agent_data_expect(
	    bad_alg, NULL, kl_test_sample_ek_hash(), KL_ERROR_INVALID_DATA, "ak_hash_alg");
	/* made for another configuration or another EK: never silently replaced */
	kl_test_agent_data_expect(text, "sha384", kl_test_sample_ek_hash(), KL_ERROR_CONFIG, NULL);
	kl_test_agent_data_expect(
	    text,
	    NULL,
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    KL_ERROR_CONFIG,
	    "another EK");
}

static void
test_agent_id_literal(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *id =
	    kl_tpm_resolve_agent_id(NULL, "D432FBB3-D2F1-4A97-9EF7-75BD81C00000", NULL, &error);
	g_autofree gchar *bad = NULL;

	g_assert_no_error(error);
	g_assert_cmpstr(id, ==, "D432FBB3-D2F1-4A97-9EF7-75BD81C00000");
	bad = kl_tpm_resolve_agent_id(NULL, "not-a-uuid", NULL, &error);
	g_assert_null(bad);
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	g_assert_null(kl_tpm_resolve_agent_id(NULL, "", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	g_clear_error(&error);
	/* hash_ek without a TPM */
	g_assert_null(kl_tpm_resolve_agent_id(NULL, "hash_ek", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
}

static void
test_agent_id_generate(void)
{
	g_autofree gchar *dir = kl_test_tmpdir();
	g_autofree gchar *path = g_build_filename(dir, "agent_uuid", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_tpm_resolve_agent_id(NULL, "generate", dir, &error);
	g_autofree gchar *b = NULL;
	g_autofree gchar *c = NULL;
	struct stat st;

	g_assert_no_error(error);
	g_assert_true(g_uuid_string_is_valid(a));
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
	/* reused */
	b = kl_tpm_resolve_agent_id(NULL, "generate", dir, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(a, ==, b);
	/* a corrupt file is an error, not a new identity */
	g_assert_true(g_file_set_contents(path, "garbage\n", -1, NULL));
	c = kl_tpm_resolve_agent_id(NULL, "generate", dir, &error);
	g_assert_null(c);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, path));
	g_clear_error(&error);
	g_assert_null(kl_tpm_resolve_agent_id(NULL, "generate", NULL, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	kl_test_rmdir(dir);
}

static void
test_agent_id_hostname(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *id = kl_tpm_resolve_agent_id(NULL, "hostname", NULL, &error);

	if (kl_tpm_agent_id_is_valid(g_get_host_name())) {
		g_assert_no_error(error);
		g_assert_cmpstr(id, ==, g_get_host_name());
	} else {
		g_assert_error(error, KL_ERROR, KL_ERROR_CONFIG);
	}
	g_assert_true(kl_tpm_agent_id_is_valid("host-1.example_org"));
	g_assert_false(kl_tpm_agent_id_is_valid("host name"));
	g_assert_false(kl_tpm_agent_id_is_valid("a/b"));
	g_assert_false(kl_tpm_agent_id_is_valid(""));
	{
		g_autofree gchar *long_id = g_strnfill(81, 'a');
		g_autofree gchar *max_id = g_strnfill(80, 'a');
		g_assert_false(kl_tpm_agent_id_is_valid(long_id));
		g_assert_true(kl_tpm_agent_id_is_valid(max_id));
	}
}

static void
test_agent_id_dmi(void)
{
	g_autofree gchar *dir = kl_test_tmpdir();
	g_autofree gchar *path = g_build_filename(dir, "product_uuid", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *id = NULL;
	g_autofree gchar *missing = NULL;

	g_assert_true(
	    g_file_set_contents(path, "4C4C4544-0042-3510-8052-B4C04F384E32\n", -1, NULL));
	id = kl_tpm_read_dmi_uuid(path, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(id, ==, "4c4c4544-0042-3510-8052-b4c04f384e32");
	g_assert_true(g_file_set_contents(path, "Not Settable\n", -1, NULL));
	g_assert_null(kl_tpm_read_dmi_uuid(path, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	g_unlink(path);
	missing = kl_tpm_read_dmi_uuid(path, &error);
	g_assert_null(missing);
	g_assert_error(error, KL_ERROR, KL_ERROR_NOT_FOUND);
	g_assert_nonnull(strstr(error->message, path));
	kl_test_rmdir(dir);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/tpm/alg-names", test_alg_names);
	g_test_add_func("/tpm/error-from-rc", test_error_from_rc);
	g_test_add_func("/tpm/rc-advice", test_rc_advice);
	g_test_add_data_func("/tpm/ek-hash/rsa", "rsa", test_ek_hash);
	g_test_add_data_func("/tpm/ek-hash/ecc", "ecc", test_ek_hash);
	g_test_add_func("/tpm/ek-hash/bad", test_ek_hash_bad);
	g_test_add_func("/tpm/credential-blob/ok", test_split_blob_ok);
	g_test_add_func("/tpm/credential-blob/bad", test_split_blob_bad);
	g_test_add_func("/tpm/key-params", test_key_params);
	g_test_add_func("/tpm/ek-profiles", test_ek_profiles);
	g_test_add_func("/tpm/ek-apply-nv", test_ek_apply_nv);
	g_test_add_func("/tpm/agent-data/rust-sample", test_agent_data_rust_sample);
	g_test_add_func("/tpm/agent-data/errors", test_agent_data_errors);
	g_test_add_func("/tpm/agent-id/literal", test_agent_id_literal);
	g_test_add_func("/tpm/agent-id/generate", test_agent_id_generate);
	g_test_add_func("/tpm/agent-id/hostname", test_agent_id_hostname);
	g_test_add_func("/tpm/agent-id/dmidecode", test_agent_id_dmi);
	return g_test_run();
}
