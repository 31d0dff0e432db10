/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * KlTpm against swtpm (run through tests/integration/run-with-swtpm.sh).
 * tpm2-tools are used as an independent second implementation: they make
 * EKs, AKs and credential blobs the agent must accept.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-glib/json-glib.h>
#include <tss2/tss2_mu.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-id.h"
#include "kl-test-skip.h"
#include "kl-tpm-backend.h"

typedef struct {
	gchar *dir;
	gchar *agent_data;
} KlTestFixture;

static void
kl_test_rmtree(const gchar *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const gchar *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree gchar *p = g_build_filename(dir, name, NULL);
		if (g_file_test(p, G_FILE_TEST_IS_DIR))
			kl_test_rmtree(p);
		else
			g_unlink(p);
	}
	g_rmdir(dir);
}

static void
fixture_setup(KlTestFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	fx->dir = g_dir_make_tmp("kl-tpm-int-XXXXXX", &error);
	g_assert_no_error(error);
	fx->agent_data = g_build_filename(fx->dir, "agent_data.json", NULL);
}

static void
fixture_teardown(KlTestFixture *fx, gconstpointer data)
{
	kl_test_rmtree(fx->dir);
	g_free(fx->dir);
	g_free(fx->agent_data);
}

static KlTpmOptions
kl_test_options(KlTestFixture *fx)
{
	KlTpmOptions o = { 0 };
	o.tcti = g_getenv("KL_TEST_TCTI");
	o.agent_data_path = fx->agent_data;
	o.state_dir = fx->dir;
	return o;
}

static KlTpm *
kl_test_tpm_new(const KlTpmOptions *o)
{
	g_autoptr(GError) error = NULL;
	KlTpm *tpm = kl_tpm_new(o, &error);
	g_assert_no_error(error);
	g_assert_nonnull(tpm);
	return tpm;
}

/* runs a tpm2-tools command (argv NULL-terminated) in @dir */
static void
kl_test_run(const gchar *dir, const gchar *const *argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	gint status = 0;
	g_autofree gchar *cmd = g_strjoinv(" ", (gchar **)argv);

	g_test_message("running: %s", cmd);
	g_assert_true(g_spawn_sync(dir,
				   (gchar **)argv,
				   NULL,
				   G_SPAWN_SEARCH_PATH,
				   NULL,
				   NULL,
				   &out,
				   &err,
				   &status,
				   &error));
	g_assert_no_error(error);
	if (!g_spawn_check_wait_status(status, NULL))
		g_error("%s failed: %s", cmd, err);
}

/* tpm2-tools leave transient objects behind when there is no resource manager */
static void
kl_test_flush_transient(const gchar *dir)
{
	const gchar *argv[] = { "tpm2_flushcontext", "-t", NULL };
	kl_test_run(dir, argv);
}

static GBytes *
kl_test_read(const gchar *dir, const gchar *name)
{
	g_autofree gchar *path = g_build_filename(dir, name, NULL);
	gchar *contents = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;
	g_assert_true(g_file_get_contents(path, &contents, &len, &error));
	return g_bytes_new_take(contents, len);
}

static void
kl_test_write(const gchar *dir, const gchar *name, GBytes *data)
{
	g_autofree gchar *path = g_build_filename(dir, name, NULL);
	g_autoptr(GError) error = NULL;
	g_assert_true(g_file_set_contents(
	    path, g_bytes_get_data(data, NULL), (gssize)g_bytes_get_size(data), &error));
}

/* number of transient objects loaded in the TPM, through a second context */
static guint
kl_test_count_transient(void)
{
	const gchar *argv[] = { "tpm2_getcap", "handles-transient", NULL };
	g_autofree gchar *out = NULL;
	gint status = 0;
	guint n = 0;
	g_assert_true(g_spawn_sync(NULL,
				   (gchar **)argv,
				   NULL,
				   G_SPAWN_SEARCH_PATH,
				   NULL,
				   NULL,
				   &out,
				   NULL,
				   &status,
				   NULL));
	for (const gchar *p = out; p != NULL && (p = strstr(p, "0x80")) != NULL; p++)
		n++;
	return n;
}

static gboolean
kl_test_has_bank(KlTpm *tpm, TPMI_ALG_HASH hash, guint32 *mask)
{
	GArray *banks = kl_tpm_get_pcr_banks(tpm);
	for (guint i = 0; i < banks->len; i++) {
		KlTpmPcrBank *b = &g_array_index(banks, KlTpmPcrBank, i);
		if (b->hash == hash) {
			*mask = b->pcr_mask;
			return TRUE;
		}
	}
	return FALSE;
}

static gboolean
kl_test_has_alg(GArray *algs, guint16 alg)
{
	for (guint i = 0; i < algs->len; i++) {
		if (g_array_index(algs, guint16, i) == alg)
			return TRUE;
	}
	return FALSE;
}

/* ------------------------------------------------------------------ */

static void
kl_test_open_body(void)
{
	KlTestFixture fx;
	KlTpmOptions o;
	g_autoptr(KlTpm) tpm = NULL;
	g_autofree gchar *ek_hash = NULL;
	g_autoptr(GError) error = NULL;
	guint32 mask = 0;

	fixture_setup(&fx, NULL);
	o = kl_test_options(&fx);
	tpm = kl_test_tpm_new(&o);
	g_assert_false(kl_tpm_is_software(tpm));
	g_assert_nonnull(kl_tpm_get_esys(tpm));
	g_assert_cmpuint(kl_tpm_get_ak_handle(tpm), !=, ESYS_TR_NONE);
	/* RSA-2048 AK: 2 + 280 bytes, name = nameAlg + SHA-256 */
	g_assert_cmpuint(g_bytes_get_size(kl_tpm_get_ak_public(tpm)), ==, 282);
	g_assert_cmpuint(g_bytes_get_size(kl_tpm_get_ak_name(tpm)), ==, 34);
	g_assert_cmpuint(kl_tpm_get_ak_sign_scheme(tpm), ==, TPM2_ALG_RSASSA);
	g_assert_cmpuint(kl_tpm_get_ak_hash_alg(tpm), ==, TPM2_ALG_SHA256);
	g_assert_cmpuint(kl_tpm_get_ak_public_area(tpm)->type, ==, TPM2_ALG_RSA);
	g_assert_true(kl_tpm_get_ak_public_area(tpm)->objectAttributes & TPMA_OBJECT_RESTRICTED);
	g_assert_true(kl_test_has_bank(tpm, TPM2_ALG_SHA256, &mask));
	g_assert_cmphex(mask, ==, 0xffffff);
	g_assert_true(kl_test_has_alg(kl_tpm_get_hash_algorithms(tpm), TPM2_ALG_SHA256));
	g_assert_true(kl_test_has_alg(kl_tpm_get_signature_schemes(tpm), TPM2_ALG_RSASSA));
	g_assert_false(kl_test_has_alg(kl_tpm_get_signature_schemes(tpm), TPM2_ALG_SHA256));
	g_test_message("TPM: %s", kl_tpm_get_description(tpm));
	g_assert_nonnull(strstr(kl_tpm_get_description(tpm), "TCTI"));
	/* the EK: RSA-2048 from template L-1 (2 + 314 bytes) */
	g_assert_cmpuint(g_bytes_get_size(kl_tpm_get_ek_public(tpm)), ==, 316);
	ek_hash = kl_tpm_compute_ek_hash(kl_tpm_get_ek_public(tpm), &error);
	g_assert_no_error(error);
	g_assert_cmpstr(kl_tpm_get_ek_hash(tpm), ==, ek_hash);
	g_assert_cmpuint(strlen(ek_hash), ==, 64);
	if (g_getenv("KL_TEST_SWTPM_LOCALCA") == NULL)
		g_assert_null(kl_tpm_get_ek_cert(tpm));
	/* only the AK stays loaded */
	g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	g_clear_pointer(&tpm, kl_tpm_free);
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
	fixture_teardown(&fx, NULL);
}

/* a plain start prints nothing (no TSS error spam for the absent EK certificate) */
static void
test_open(void)
{
	if (g_test_subprocess()) {
		kl_test_open_body();
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr("");
}

static void
kl_test_ek_cert_body(void)
{
	KlTestFixture fx;
	KlTpmOptions o;
	g_autoptr(KlTpm) tpm = NULL;
	GBytes *cert;
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t key = NULL;
	gnutls_datum_t der;
	gnutls_datum_t pem = { NULL, 0 };
	g_autofree gchar *ek_pem = NULL;
	TPMT_PUBLIC ek;
	g_autoptr(GError) error = NULL;

	fixture_setup(&fx, NULL);
	o = kl_test_options(&fx);
	tpm = kl_test_tpm_new(&o);
	cert = kl_tpm_get_ek_cert(tpm);
	if (g_getenv("KL_TEST_SWTPM_LOCALCA") == NULL) {
		g_assert_null(cert);
		fixture_teardown(&fx, NULL);
		return;
	}
	g_assert_nonnull(cert);
	/* DER, and it certifies exactly the EK we register */
	der.data = (unsigned char *)g_bytes_get_data(cert, NULL);
	der.size = g_bytes_get_size(cert);
	g_assert_cmpint(gnutls_x509_crt_init(&crt), ==, 0);
	g_assert_cmpint(gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER), ==, 0);
	g_assert_cmpint(gnutls_pubkey_init(&key), ==, 0);
	g_assert_cmpint(gnutls_pubkey_import_x509(key, crt, 0), ==, 0);
	g_assert_cmpint(gnutls_pubkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), ==, 0);
	g_assert_true(kl_tpm_unmarshal_public(kl_tpm_get_ek_public(tpm), &ek, &error));
	ek_pem = kl_tpm_public_to_pem(&ek, &error);
	g_assert_no_error(error);
	g_assert_cmpmem(pem.data, pem.size, ek_pem, strlen(ek_pem));
	gnutls_free(pem.data);
	gnutls_pubkey_deinit(key);
	gnutls_x509_crt_deinit(crt);
	fixture_teardown(&fx, NULL);
}

static void
test_ek_cert(void)
{
	if (g_test_subprocess()) {
		kl_test_ek_cert_body();
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr("");
}

static void
kl_test_write_text(const gchar *dir, const gchar *name, const gchar *text)
{
	g_autoptr(GBytes) b = g_bytes_new(text, strlen(text));
	kl_test_write(dir, name, b);
}

/* puts @der into NV index 0x01c00002 like a manufacturer would (owner-defined here) */
static void
kl_test_nv_store_cert(const gchar *dir, const gchar *file)
{
	g_autofree gchar *path = g_build_filename(dir, file, NULL);
	g_autofree gchar *size = NULL;
	GStatBuf st;
	const gchar *undefine[] = {
		"sh", "-c", "tpm2_nvundefine 0x01c00002 -C o 2>/dev/null; true", NULL
	};
	const gchar *define[] = { "tpm2_nvdefine",
				  "0x01c00002",
				  "-C",
				  "o",
				  "-s",
				  NULL,
				  "-a",
				  "ownerwrite|ownerread|authread|no_da",
				  NULL };
	const gchar *write[] = { "tpm2_nvwrite", "0x01c00002", "-C", "o", "-i", file, NULL };

	g_assert_cmpint(g_stat(path, &st), ==, 0);
	size = g_strdup_printf("%u", (guint)st.st_size);
	define[5] = size;
	kl_test_run(dir, undefine);
	kl_test_run(dir, define);
	kl_test_run(dir, write);
}

/* an EK certificate larger than one NV read, and one for another key */
static void
test_ek_cert_nv(KlTestFixture *fx, gconstpointer data)
{
	const gchar *ca_key[] = { "certtool", "--generate-privkey", "--key-type", "rsa", "--bits",
				  "4096",     "--outfile",	    "ca.key",	  NULL };
	const gchar *ca_crt[] = { "certtool",
				  "--generate-self-signed",
				  "--load-privkey",
				  "ca.key",
				  "--template",
				  "ca.tmpl",
				  "--outfile",
				  "ca.crt",
				  NULL };
	const gchar *ek_crt[] = { "certtool",
				  "--generate-certificate",
				  "--load-pubkey",
				  "ek.pem",
				  "--load-ca-privkey",
				  "ca.key",
				  "--load-ca-certificate",
				  "ca.crt",
				  "--template",
				  "ek.tmpl",
				  "--outder",
				  "--outfile",
				  "ek.der",
				  NULL };
	const gchar *other_key[] = {
		"certtool", "--generate-privkey", "--key-type", "rsa", "--bits",
		"2048",	    "--outfile",	  "other.key",	NULL
	};
	const gchar *other_crt[] = { "certtool",
				     "--generate-certificate",
				     "--load-privkey",
				     "other.key",
				     "--load-ca-privkey",
				     "ca.key",
				     "--load-ca-certificate",
				     "ca.crt",
				     "--template",
				     "ek.tmpl",
				     "--outder",
				     "--outfile",
				     "other.der",
				     NULL };
	const gchar *undefine[] = { "tpm2_nvundefine", "0x01c00002", "-C", "o", NULL };
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(GBytes) der = NULL;
	g_autofree gchar *ek_pem = NULL;
	g_autofree gchar *cn = g_strnfill(200, 'e');
	g_autofree gchar *tmpl = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *certtool = g_find_program_in_path("certtool");
	TPMT_PUBLIC ek;

	if (certtool == NULL) {
		kl_test_skip("certtool (gnutls-bin) not installed");
		return;
	}
	tpm = kl_test_tpm_new(&o);
	g_assert_true(kl_tpm_unmarshal_public(kl_tpm_get_ek_public(tpm), &ek, &error));
	ek_pem = kl_tpm_public_to_pem(&ek, &error);
	g_assert_no_error(error);
	g_clear_pointer(&tpm, kl_tpm_free);

	kl_test_write_text(fx->dir, "ek.pem", ek_pem);
	kl_test_write_text(fx->dir,
			   "ca.tmpl",
			   "cn = \"Test EK CA\"\nca\ncert_signing_key\nexpiration_days = 30\n");
	tmpl = g_strdup_printf("cn = \"%s\"\nexpiration_days = 30\nencryption_key\n", cn);
	kl_test_write_text(fx->dir, "ek.tmpl", tmpl);
	kl_test_run(fx->dir, ca_key);
	kl_test_run(fx->dir, ca_crt);
	kl_test_run(fx->dir, ek_crt);
	der = kl_test_read(fx->dir, "ek.der");
	/* more than one TPM2_NV_Read (1024 bytes on swtpm) */
	g_assert_cmpuint(g_bytes_get_size(der), >, 1024);
	kl_test_nv_store_cert(fx->dir, "ek.der");

	tpm = kl_test_tpm_new(&o);
	g_assert_nonnull(kl_tpm_get_ek_cert(tpm));
	g_assert_true(g_bytes_equal(kl_tpm_get_ek_cert(tpm), der));
	g_clear_pointer(&tpm, kl_tpm_free);

	/* a certificate of another key is not sent (the registrar would refuse it) */
	kl_test_run(fx->dir, other_key);
	kl_test_run(fx->dir, other_crt);
	kl_test_nv_store_cert(fx->dir, "other.der");
	g_test_expect_message("kl-core", G_LOG_LEVEL_WARNING, "*EK certificate*another key*");
	tpm = kl_test_tpm_new(&o);
	g_test_assert_expected_messages();
	g_assert_null(kl_tpm_get_ek_cert(tpm));
	g_clear_pointer(&tpm, kl_tpm_free);
	kl_test_run(fx->dir, undefine);
}

static void
test_ak_persist(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	g_autoptr(GBytes) ak1 = g_bytes_ref(kl_tpm_get_ak_public(tpm));
	g_autoptr(GBytes) file1 = NULL;
	g_autoptr(GBytes) file2 = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	JsonObject *obj;
	struct stat st;

	g_assert_cmpint(g_stat(fx->agent_data, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
	file1 = kl_test_read(fx->dir, "agent_data.json");
	g_assert_true(json_parser_load_from_data(
	    parser, g_bytes_get_data(file1, NULL), (gssize)g_bytes_get_size(file1), &error));
	obj = json_node_get_object(json_parser_get_root(parser));
	g_assert_cmpstr(json_object_get_string_member(obj, "ak_hash_alg"), ==, "Sha256");
	g_assert_cmpstr(json_object_get_string_member(obj, "ak_sign_alg"), ==, "RsaSsa");
	/* ak_public is TPMT_PUBLIC: the TPM2B_PUBLIC minus its size prefix */
	g_assert_cmpuint(json_array_get_length(json_object_get_array_member(obj, "ak_public")),
			 ==,
			 g_bytes_get_size(ak1) - 2);
	g_assert_cmpuint(
	    json_array_get_length(json_object_get_array_member(obj, "ek_hash")), ==, 64);
	g_clear_pointer(&tpm, kl_tpm_free);

	/* second start: the same AK, the file is not rewritten */
	tpm = kl_test_tpm_new(&o);
	g_assert_cmpmem(g_bytes_get_data(kl_tpm_get_ak_public(tpm), NULL),
			g_bytes_get_size(kl_tpm_get_ak_public(tpm)),
			g_bytes_get_data(ak1, NULL),
			g_bytes_get_size(ak1));
	file2 = kl_test_read(fx->dir, "agent_data.json");
	g_assert_true(g_bytes_equal(file1, file2));
	g_clear_pointer(&tpm, kl_tpm_free);

	/* without agent_data_path a new AK every time */
	o.agent_data_path = "";
	tpm = kl_test_tpm_new(&o);
	g_assert_false(g_bytes_equal(kl_tpm_get_ak_public(tpm), ak1));
}

/* an AK made by tpm2-tools and saved in the Rust agent's format is loaded */
static void
test_ak_rust_file(KlTestFixture *fx, gconstpointer data)
{
	const gchar *createek[] = { "tpm2_createek", "-c", "ek.ctx", "-G",
				    "rsa",	     "-u", "ek.tss", NULL };
	const gchar *createak[] = { "tpm2_createak", "-C", "ek.ctx",  "-c", "ak.ctx", "-G",
				    "rsa",	     "-g", "sha256",  "-s", "rsassa", "-u",
				    "ak.pub",	     "-r", "ak.priv", NULL };
	g_autoptr(GBytes) ek = NULL;
	g_autoptr(GBytes) ak_pub = NULL;
	g_autoptr(GBytes) ak_priv = NULL;
	g_autofree gchar *ek_hash = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTpm) tpm = NULL;
	KlTpmOptions o = kl_test_options(fx);
	const guint8 *p;
	gsize len;

	kl_test_run(fx->dir, createek);
	kl_test_flush_transient(fx->dir);
	kl_test_run(fx->dir, createak);
	kl_test_flush_transient(fx->dir);
	ek = kl_test_read(fx->dir, "ek.tss");
	ak_pub = kl_test_read(fx->dir, "ak.pub");
	ak_priv = kl_test_read(fx->dir, "ak.priv");
	ek_hash = kl_tpm_compute_ek_hash(ek, &error);
	g_assert_no_error(error);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "ak_hash_alg");
	json_builder_add_string_value(b, "Sha256");
	json_builder_set_member_name(b, "ak_sign_alg");
	json_builder_add_string_value(b, "RsaSsa");
	json_builder_set_member_name(b, "ak_public");
	json_builder_begin_array(b);
	p = g_bytes_get_data(ak_pub, &len);
	for (gsize i = 2; i < len; i++)
		json_builder_add_int_value(b, p[i]);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "ak_private");
	json_builder_begin_array(b);
	p = g_bytes_get_data(ak_priv, &len);
	for (gsize i = 2; i < len; i++)
		json_builder_add_int_value(b, p[i]);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "ek_hash");
	json_builder_begin_array(b);
	for (gsize i = 0; ek_hash[i] != '\0'; i++)
		json_builder_add_int_value(b, (guchar)ek_hash[i]);
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	g_assert_true(json_generator_to_file(gen, fx->agent_data, &error));

	tpm = kl_test_tpm_new(&o);
	g_assert_true(g_bytes_equal(kl_tpm_get_ak_public(tpm), ak_pub));
	g_assert_cmpstr(kl_tpm_get_ek_hash(tpm), ==, ek_hash);
}

static void
kl_test_expect_open_error(const KlTpmOptions *o, gint code, const gchar *needle)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTpm) tpm = kl_tpm_new(o, &error);
	g_assert_null(tpm);
	g_assert_error(error, KL_ERROR, code);
	g_test_message("%s", error->message);
	if (needle != NULL)
		g_assert_nonnull(strstr(error->message, needle));
	/* a failed open leaves nothing loaded */
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
}

static void
test_ak_file_errors(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	g_autoptr(GBytes) original = NULL;
	g_autoptr(GBytes) after = NULL;
	g_clear_pointer(&tpm, kl_tpm_free);
	original = kl_test_read(fx->dir, "agent_data.json");

	/* another hash or key type: a clear error, the file stays as it is */
	o.hash_alg = "sha384";
	kl_test_expect_open_error(&o, KL_ERROR_CONFIG, fx->agent_data);
	o.hash_alg = NULL;
	o.encryption_alg = "ecc";
	o.signing_alg = "ecdsa";
	kl_test_expect_open_error(&o, KL_ERROR_CONFIG, fx->agent_data);
	after = kl_test_read(fx->dir, "agent_data.json");
	g_assert_true(g_bytes_equal(original, after));

	/* corrupt */
	o.encryption_alg = NULL;
	o.signing_alg = NULL;
	g_assert_true(g_file_set_contents(fx->agent_data, "{\"ak_hash_alg\": 1", -1, NULL));
	kl_test_expect_open_error(&o, KL_ERROR_INVALID_DATA, fx->agent_data);

	/* unknown algorithm in the configuration */
	o.signing_alg = "ecdsa";
	kl_test_expect_open_error(&o, KL_ERROR_CONFIG, "tpm_signing_alg");
}

/* a new endorsement seed (new EK) never leads to a silent new AK */
static void
test_ek_changed(KlTestFixture *fx, gconstpointer data)
{
	const gchar *changeeps[] = { "tpm2_changeeps", NULL };
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	g_autoptr(GBytes) original = kl_test_read(fx->dir, "agent_data.json");
	g_autoptr(GBytes) after = NULL;

	g_clear_pointer(&tpm, kl_tpm_free);
	kl_test_run(fx->dir, changeeps);
	kl_test_expect_open_error(&o, KL_ERROR_CONFIG, "another EK");
	after = kl_test_read(fx->dir, "agent_data.json");
	g_assert_true(g_bytes_equal(original, after));
}

static void
test_ek_persistent(KlTestFixture *fx, gconstpointer data)
{
	const gchar *createek[] = { "tpm2_createek", "-c", "0x81010001", "-G",
				    "rsa",	     "-u", "ekp.tss",	 NULL };
	const gchar *evict[] = { "tpm2_evictcontrol", "-C", "o", "-c", "0x81010001", NULL };
	g_autoptr(GBytes) ekp = NULL;
	g_autoptr(GBytes) ek_template = NULL;
	g_autoptr(GBytes) secret = NULL;
	g_autoptr(KlTpm) tpm = NULL;
	KlTpmOptions o = kl_test_options(fx);
	g_autofree gchar *data_template = g_build_filename(fx->dir, "template.json", NULL);

	kl_test_run(fx->dir, createek);
	kl_test_flush_transient(fx->dir);
	ekp = kl_test_read(fx->dir, "ekp.tss");

	o.agent_data_path = data_template;
	tpm = kl_test_tpm_new(&o);
	ek_template = g_bytes_ref(kl_tpm_get_ek_public(tpm));
	g_clear_pointer(&tpm, kl_tpm_free);

	o.agent_data_path = fx->agent_data;
	o.ek_handle = "0x81010001";
	tpm = kl_test_tpm_new(&o);
	g_assert_true(g_bytes_equal(kl_tpm_get_ek_public(tpm), ekp));
	/* same key as the one from the standard template */
	g_assert_true(g_bytes_equal(kl_tpm_get_ek_public(tpm), ek_template));
	g_clear_pointer(&tpm, kl_tpm_free);

	o.ek_handle = "0x81010002";
	kl_test_expect_open_error(&o, KL_ERROR_NOT_FOUND, "0x81010002");
	o.ek_handle = "0x01c00002";
	kl_test_expect_open_error(&o, KL_ERROR_CONFIG, "ek_handle");
	kl_test_run(fx->dir, evict);
}

/* tpm2_makecredential -T none: the registrar's blob, made without a TPM */
static GBytes *
kl_test_make_credential(KlTestFixture *fx, KlTpm *tpm, GBytes *name, GBytes **secret)
{
	g_autofree gchar *name_hex = NULL;
	g_autoptr(GString) hex = g_string_new(NULL);
	const guint8 *p;
	gsize len;
	const gchar *argv[] = { "tpm2_makecredential",
				"-T",
				"none",
				"-u",
				"ek.tss",
				"-s",
				"secret",
				"-n",
				NULL,
				"-o",
				"blob",
				NULL };
	g_autofree gchar *value = g_strdup_printf(
	    "%08x%08x%08x%08x", g_random_int(), g_random_int(), g_random_int(), g_random_int());

	p = g_bytes_get_data(name, &len);
	for (gsize i = 0; i < len; i++)
		g_string_append_printf(hex, "%02x", p[i]);
	name_hex = g_string_free(g_steal_pointer(&hex), FALSE);
	argv[8] = name_hex;
	*secret = g_bytes_new(value, 32);
	kl_test_write(fx->dir, "secret", *secret);
	kl_test_write(fx->dir, "ek.tss", kl_tpm_get_ek_public(tpm));
	kl_test_run(fx->dir, argv);
	return kl_test_read(fx->dir, "blob");
}

static void
kl_test_activate(KlTestFixture *fx, const gchar *enc, const gchar *sign, const gchar *ek_handle)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(GError) error = NULL;

	o.encryption_alg = enc;
	o.signing_alg = sign;
	o.ek_handle = ek_handle;
	tpm = kl_test_tpm_new(&o);
	/* several rounds: the EK is re-created each time, nothing leaks */
	for (guint round = 0; round < 3; round++) {
		g_autoptr(GBytes) secret = NULL;
		g_autoptr(GBytes) blob =
		    kl_test_make_credential(fx, tpm, kl_tpm_get_ak_name(tpm), &secret);
		g_autoptr(GBytes) out = NULL;
		g_assert_true(kl_tpm_activate_credential(tpm, blob, &out, &error));
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(out, secret));
		g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	}
	/* a blob for another object name does not activate */
	{
		g_autoptr(GBytes) secret = NULL;
		guint8 other[34] = { 0x00, 0x0b, 1, 2, 3 };
		g_autoptr(GBytes) other_name = g_bytes_new(other, sizeof(other));
		g_autoptr(GBytes) blob = kl_test_make_credential(fx, tpm, other_name, &secret);
		g_autoptr(GBytes) out = NULL;
		g_assert_false(kl_tpm_activate_credential(tpm, blob, &out, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
		g_assert_null(out);
		g_clear_error(&error);
		g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	}
	/* a truncated blob is refused before the TPM is asked */
	{
		guint8 junk[] = { 0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1, 0, 4, 1, 2 };
		g_autoptr(GBytes) blob = g_bytes_new(junk, sizeof(junk));
		g_autoptr(GBytes) out = NULL;
		g_assert_false(kl_tpm_activate_credential(tpm, blob, &out, &error));
		g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	}
}

static void
test_activate_rsa(KlTestFixture *fx, gconstpointer data)
{
	kl_test_activate(fx, NULL, NULL, NULL);
}

static void
test_activate_ecc(KlTestFixture *fx, gconstpointer data)
{
	kl_test_activate(fx, "ecc", "ecdsa", NULL);
}

static void
test_activate_persistent(KlTestFixture *fx, gconstpointer data)
{
	const gchar *createek[] = { "tpm2_createek", "-c", "0x81010003", "-G", "rsa", NULL };
	const gchar *evict[] = { "tpm2_evictcontrol", "-C", "o", "-c", "0x81010003", NULL };
	kl_test_run(fx->dir, createek);
	kl_test_flush_transient(fx->dir);
	kl_test_activate(fx, NULL, NULL, "0x81010003");
	kl_test_run(fx->dir, evict);
}

/*
 * The TPM commands with code @cc in a pcapng file of tpm2-tss's pcap TCTI
 * (raw IPv4/IPv6 + TCP; commands go to port 2321)
 */
static guint
kl_test_pcap_count(const gchar *path, guint32 cc)
{
	g_autofree guint8 *data = NULL;
	gsize len = 0;
	gsize off = 0;
	guint n = 0;

	g_assert_true(g_file_get_contents(path, (gchar **)&data, &len, NULL));
	while (off + 12 <= len) {
		guint32 type = GUINT32_FROM_LE(*(guint32 *)(data + off));
		guint32 blen = GUINT32_FROM_LE(*(guint32 *)(data + off + 4));

		g_assert_cmpuint(blen, >=, 12);
		g_assert_cmpuint(off + blen, <=, len);
		if (type == 6) {
			const guint8 *pkt = data + off + 28;
			guint ip = (pkt[0] >> 4) == 6 ? 40 : (guint)(pkt[0] & 0x0f) * 4;
			const guint8 *tcp = pkt + ip;
			const guint8 *cmd = tcp + (tcp[12] >> 4) * 4;

			if ((((guint)tcp[2] << 8) | tcp[3]) == 2321 &&
			    (((guint32)cmd[6] << 24) | ((guint32)cmd[7] << 16) |
			     ((guint32)cmd[8] << 8) | cmd[9]) == cc)
				n++;
		}
		off += blen;
	}
	return n;
}

/*
 * The EK is created once per start: ActivateCredential (at every
 * registration) loads the EK of start-up again from its saved context
 * instead of creating it again from the template (an RSA key generation).
 */
static void
test_ek_created_once(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autofree gchar *pcap = g_build_filename(fx->dir, "tpm.pcap", NULL);
	g_autofree gchar *tcti = g_strconcat("pcap:", o.tcti, NULL);
	KlTpm *tpm;

	o.tcti = tcti;
	g_setenv("TCTI_PCAP_FILE", pcap, TRUE);
	tpm = kl_test_tpm_new(&o);
	for (guint round = 0; round < 3; round++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) secret = NULL;
		g_autoptr(GBytes) blob =
		    kl_test_make_credential(fx, tpm, kl_tpm_get_ak_name(tpm), &secret);
		g_autoptr(GBytes) out = NULL;

		g_assert_true(kl_tpm_activate_credential(tpm, blob, &out, &error));
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(out, secret));
		g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	}
	kl_tpm_free(tpm);
	g_unsetenv("TCTI_PCAP_FILE");
	g_assert_cmpuint(kl_test_pcap_count(pcap, TPM2_CC_CreatePrimary), ==, 1);
	g_assert_cmpuint(kl_test_pcap_count(pcap, TPM2_CC_ActivateCredential), >=, 3);
	g_assert_cmpuint(kl_test_pcap_count(pcap, TPM2_CC_ContextLoad), >=, 3);
}

static GBytes *
kl_test_hash_values(TPMI_ALG_HASH hash, GPtrArray *values)
{
	GChecksumType t = hash == TPM2_ALG_SHA1	    ? G_CHECKSUM_SHA1
			  : hash == TPM2_ALG_SHA384 ? G_CHECKSUM_SHA384
			  : hash == TPM2_ALG_SHA512 ? G_CHECKSUM_SHA512
						    : G_CHECKSUM_SHA256;
	g_autoptr(GChecksum) sum = g_checksum_new(t);
	guint8 out[64];
	gsize len = sizeof(out);
	for (guint i = 0; i < values->len; i++) {
		GBytes *v = g_ptr_array_index(values, i);
		g_checksum_update(sum, g_bytes_get_data(v, NULL), g_bytes_get_size(v));
	}
	g_checksum_get_digest(sum, out, &len);
	return g_bytes_new(out, len);
}

/* verifies @sig (marshalled TPMT_SIGNATURE) over @msg with the AK (GnuTLS) */
static void
kl_test_verify_signature(KlTpm *tpm, GBytes *msg, GBytes *sig)
{
	TPMT_SIGNATURE s;
	size_t off = 0;
	gnutls_pubkey_t key = NULL;
	g_autofree gchar *pem = NULL;
	gnutls_datum_t pem_d;
	gnutls_datum_t data = { (unsigned char *)g_bytes_get_data(msg, NULL),
				g_bytes_get_size(msg) };
	gnutls_datum_t sig_d = { NULL, 0 };
	gnutls_sign_algorithm_t algo;
	g_autoptr(GError) error = NULL;
	gboolean ecc = FALSE;
	int ret;

	g_assert_cmpint(Tss2_MU_TPMT_SIGNATURE_Unmarshal(
			    g_bytes_get_data(sig, NULL), g_bytes_get_size(sig), &off, &s),
			==,
			TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, g_bytes_get_size(sig));
	pem = kl_tpm_public_to_pem(kl_tpm_get_ak_public_area(tpm), &error);
	g_assert_no_error(error);
	pem_d.data = (unsigned char *)pem;
	pem_d.size = strlen(pem);
	g_assert_cmpint(gnutls_pubkey_init(&key), ==, 0);
	g_assert_cmpint(gnutls_pubkey_import(key, &pem_d, GNUTLS_X509_FMT_PEM), ==, 0);
	if (s.sigAlg == TPM2_ALG_RSASSA) {
		g_assert_cmpuint(s.signature.rsassa.hash, ==, TPM2_ALG_SHA256);
		sig_d.data = s.signature.rsassa.sig.buffer;
		sig_d.size = s.signature.rsassa.sig.size;
		algo = GNUTLS_SIGN_RSA_SHA256;
	} else {
		gnutls_datum_t r = { s.signature.ecdsa.signatureR.buffer,
				     s.signature.ecdsa.signatureR.size };
		gnutls_datum_t ss = { s.signature.ecdsa.signatureS.buffer,
				      s.signature.ecdsa.signatureS.size };
		g_assert_cmpuint(s.sigAlg, ==, TPM2_ALG_ECDSA);
		g_assert_cmpint(gnutls_encode_rs_value(&sig_d, &r, &ss), ==, 0);
		algo = GNUTLS_SIGN_ECDSA_SHA256;
		ecc = TRUE;
	}
	ret = gnutls_pubkey_verify_data2(key, algo, 0, &data, &sig_d);
	g_assert_cmpint(ret, >=, 0);
	/* and a flipped bit fails */
	{
		g_autofree guint8 *copy = g_memdup2(data.data, data.size);
		gnutls_datum_t bad = { copy, data.size };
		copy[data.size - 1] ^= 1;
		g_assert_cmpint(gnutls_pubkey_verify_data2(key, algo, 0, &bad, &sig_d), <, 0);
	}
	if (ecc)
		gnutls_free(sig_d.data);
	gnutls_pubkey_deinit(key);
}

static void
kl_test_quote(KlTestFixture *fx, const gchar *enc, const gchar *sign)
{
	const gchar *extend[] = {
		"tpm2_pcrextend",
		"10:sha256=a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
		NULL
	};
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(GPtrArray) all = NULL;
	g_autoptr(GPtrArray) sel_values = NULL;
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) sig = NULL;
	g_autoptr(GBytes) digest = NULL;
	g_autoptr(GError) error = NULL;
	guint8 nonce_raw[16];
	g_autoptr(GBytes) nonce = NULL;
	guint8 zeros[32] = { 0 };
	guint32 mask = (1u << 0) | (1u << 10) | (1u << 23);
	TPMS_ATTEST a;
	size_t off = 0;

	for (guint i = 0; i < sizeof(nonce_raw); i++)
		nonce_raw[i] = (guint8)g_random_int();
	nonce = g_bytes_new(nonce_raw, sizeof(nonce_raw));
	kl_test_run(fx->dir, extend);
	o.encryption_alg = enc;
	o.signing_alg = sign;
	tpm = kl_test_tpm_new(&o);

	/* all 24 PCRs: several TPM2_PCR_Read calls */
	g_assert_true(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA256, 0xffffff, &all, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(all->len, ==, 24);
	g_assert_cmpmem(g_bytes_get_data(g_ptr_array_index(all, 0), NULL), 32, zeros, 32);
	g_assert_cmpint(
	    memcmp(g_bytes_get_data(g_ptr_array_index(all, 10), NULL), zeros, 32), !=, 0);
	/* sha1 bank too */
	{
		g_autoptr(GPtrArray) sha1 = NULL;
		guint32 m = 0;
		if (kl_test_has_bank(tpm, TPM2_ALG_SHA1, &m)) {
			g_assert_true(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA1, 0x000401, &sha1, &error));
			g_assert_cmpuint(sha1->len, ==, 2);
			g_assert_cmpuint(g_bytes_get_size(g_ptr_array_index(sha1, 0)), ==, 20);
		}
	}

	g_assert_true(kl_tpm_quote(tpm,
				   TPM2_ALG_SHA256,
				   mask,
				   kl_tpm_get_ak_sign_scheme(tpm),
				   TPM2_ALG_SHA256,
				   nonce,
				   &attest,
				   &sig,
				   &error));
	g_assert_no_error(error);
	g_assert_true(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA256, mask, &sel_values, &error));
	g_assert_cmpuint(sel_values->len, ==, 3);
	g_assert_true(g_bytes_equal(g_ptr_array_index(sel_values, 1), g_ptr_array_index(all, 10)));

	g_assert_cmpint(Tss2_MU_TPMS_ATTEST_Unmarshal(
			    g_bytes_get_data(attest, NULL), g_bytes_get_size(attest), &off, &a),
			==,
			TSS2_RC_SUCCESS);
	g_assert_cmpuint(off, ==, g_bytes_get_size(attest));
	g_assert_cmphex(a.magic, ==, TPM2_GENERATED_VALUE);
	g_assert_cmphex(a.type, ==, TPM2_ST_ATTEST_QUOTE);
	g_assert_cmpmem(a.extraData.buffer, a.extraData.size, nonce_raw, sizeof(nonce_raw));
	g_assert_cmpuint(a.attested.quote.pcrSelect.count, ==, 1);
	g_assert_cmphex(a.attested.quote.pcrSelect.pcrSelections[0].hash, ==, TPM2_ALG_SHA256);
	g_assert_cmphex(a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[0], ==, 0x01);
	g_assert_cmphex(a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[1], ==, 0x04);
	g_assert_cmphex(a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[2], ==, 0x80);
	digest = kl_test_hash_values(TPM2_ALG_SHA256, sel_values);
	g_assert_cmpmem(a.attested.quote.pcrDigest.buffer,
			a.attested.quote.pcrDigest.size,
			g_bytes_get_data(digest, NULL),
			g_bytes_get_size(digest));
	kl_test_verify_signature(tpm, attest, sig);

	/* out-of-range selections are refused before the TPM is asked */
	g_clear_pointer(&sel_values, g_ptr_array_unref);
	g_assert_false(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA256, 1u << 24, &sel_values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_clear_error(&error);
	g_assert_false(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA256, 0, &sel_values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS);
	g_assert_cmpuint(kl_test_count_transient(), ==, 1);
}

static void
test_quote_rsa(KlTestFixture *fx, gconstpointer data)
{
	kl_test_quote(fx, NULL, NULL);
}

static void
test_quote_ecc(KlTestFixture *fx, gconstpointer data)
{
	kl_test_quote(fx, "ecc", "ecdsa");
}

static void
test_certify(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	guint8 nonce_raw[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	g_autoptr(GBytes) nonce = g_bytes_new(nonce_raw, sizeof(nonce_raw));
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) sig = NULL;
	g_autoptr(GError) error = NULL;
	TPMS_ATTEST a;
	size_t off = 0;

	g_assert_true(kl_tpm_certify_ak(
	    tpm, ESYS_TR_NONE, NULL, TPM2_ALG_NULL, TPM2_ALG_NULL, nonce, &attest, &sig, &error));
	g_assert_no_error(error);
	g_assert_cmpint(Tss2_MU_TPMS_ATTEST_Unmarshal(
			    g_bytes_get_data(attest, NULL), g_bytes_get_size(attest), &off, &a),
			==,
			TSS2_RC_SUCCESS);
	g_assert_cmphex(a.type, ==, TPM2_ST_ATTEST_CERTIFY);
	g_assert_cmpmem(a.extraData.buffer, a.extraData.size, nonce_raw, sizeof(nonce_raw));
	g_assert_cmpmem(a.attested.certify.name.name,
			a.attested.certify.name.size,
			g_bytes_get_data(kl_tpm_get_ak_name(tpm), NULL),
			g_bytes_get_size(kl_tpm_get_ak_name(tpm)));
	/* 157-byte TPMS_ATTEST and 262-byte TPMT_SIGNATURE for RSA-2048/SHA-256 */
	g_assert_cmpuint(g_bytes_get_size(attest), ==, 157);
	g_assert_cmpuint(g_bytes_get_size(sig), ==, 262);
	kl_test_verify_signature(tpm, attest, sig);
}

/*
 * The TPM drops the loaded AK under the agent (another program flushes all transient
 * objects, a restarted resource manager, a TPM reset): the next quote and TPM2_Certify
 * load the same AK again and succeed; once the EK changed meanwhile, they fail with an
 * error that tells the operator what to do.
 */
static void
test_ak_lost(KlTestFixture *fx, gconstpointer data)
{
	const gchar *changeeps[] = { "tpm2_changeeps", NULL };
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	g_autoptr(GBytes) name = g_bytes_ref(kl_tpm_get_ak_name(tpm));
	guint8 nonce_raw[16] = { 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	g_autoptr(GBytes) nonce = g_bytes_new(nonce_raw, sizeof(nonce_raw));
	g_autoptr(GBytes) attest = NULL;
	g_autoptr(GBytes) sig = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	kl_test_flush_transient(fx->dir);
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
	g_assert_true(kl_tpm_quote(tpm,
				   TPM2_ALG_SHA256,
				   1u << 0,
				   kl_tpm_get_ak_sign_scheme(tpm),
				   TPM2_ALG_SHA256,
				   nonce,
				   &attest,
				   &sig,
				   &error));
	g_assert_no_error(error);
	kl_test_verify_signature(tpm, attest, sig);
	g_assert_true(g_bytes_equal(name, kl_tpm_get_ak_name(tpm)));
	g_assert_cmpuint(kl_test_count_transient(), ==, 1);

	kl_test_flush_transient(fx->dir);
	g_clear_pointer(&attest, g_bytes_unref);
	g_clear_pointer(&sig, g_bytes_unref);
	g_assert_true(kl_tpm_certify_ak(
	    tpm, ESYS_TR_NONE, NULL, TPM2_ALG_NULL, TPM2_ALG_NULL, nonce, &attest, &sig, &error));
	g_assert_no_error(error);
	kl_test_verify_signature(tpm, attest, sig);
	g_assert_cmpuint(kl_test_count_transient(), ==, 1);

	/* a new endorsement seed: the AK cannot come back */
	kl_test_flush_transient(fx->dir);
	kl_test_run(fx->dir, changeeps);
	g_clear_pointer(&attest, g_bytes_unref);
	g_clear_pointer(&sig, g_bytes_unref);
	g_assert_false(kl_tpm_quote(tpm,
				    TPM2_ALG_SHA256,
				    1u << 0,
				    kl_tpm_get_ak_sign_scheme(tpm),
				    TPM2_ALG_SHA256,
				    nonce,
				    &attest,
				    &sig,
				    &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
	g_assert_nonnull(strstr(error->message, "restart the agent"));
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
}

static void
test_agent_id(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *a = kl_tpm_resolve_agent_id(tpm, "hash_ek", fx->dir, &error);
	g_autofree gchar *b = NULL;
	g_autofree gchar *g1 = NULL;
	g_autofree gchar *g2 = NULL;

	g_assert_no_error(error);
	g_assert_cmpstr(a, ==, kl_tpm_get_ek_hash(tpm));
	g_clear_pointer(&tpm, kl_tpm_free);
	/* stable across starts (the EK is deterministic) */
	tpm = kl_test_tpm_new(&o);
	b = kl_tpm_resolve_agent_id(tpm, "hash_ek", fx->dir, &error);
	g_assert_cmpstr(a, ==, b);
	g1 = kl_tpm_resolve_agent_id(tpm, "generate", fx->dir, &error);
	g2 = kl_tpm_resolve_agent_id(tpm, "generate", fx->dir, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(g1, ==, g2);
	g_assert_cmpstr(g1, !=, a);
}

/* many starts in one process: every transient object and session is flushed */
static void
test_no_leaks(KlTestFixture *fx, gconstpointer data)
{
	KlTpmOptions o = kl_test_options(fx);
	for (guint i = 0; i < 6; i++) {
		g_autoptr(KlTpm) tpm = kl_test_tpm_new(&o);
		g_assert_cmpuint(kl_test_count_transient(), ==, 1);
	}
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
}

/* an endorsement hierarchy with a password: tpm_ownerpassword */
static void
test_endorsement_auth(KlTestFixture *fx, gconstpointer data)
{
	const gchar *set[] = { "tpm2_changeauth", "-c", "e", "kl-secret", NULL };
	const gchar *unset[] = { "tpm2_changeauth", "-c", "e", "-p", "kl-secret", NULL };
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(GBytes) secret = NULL;
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) out = NULL;
	g_autoptr(GError) error = NULL;

	if (g_test_subprocess()) {
		/* without the password the EK cannot be created (the TSS logs the failure) */
		tpm = kl_tpm_new(&o, &error);
		g_assert_null(tpm);
		g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
		g_assert_nonnull(strstr(error->message, "tpm_ownerpassword"));
		return;
	}
	kl_test_run(fx->dir, set);
	g_test_trap_subprocess("/tpm-int/endorsement-auth", 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();

	o.owner_password = "kl-secret";
	tpm = kl_test_tpm_new(&o);
	blob = kl_test_make_credential(fx, tpm, kl_tpm_get_ak_name(tpm), &secret);
	g_assert_true(kl_tpm_activate_credential(tpm, blob, &out, &error));
	g_assert_no_error(error);
	g_assert_true(g_bytes_equal(out, secret));
	g_clear_pointer(&tpm, kl_tpm_free);
	kl_test_run(fx->dir, unset);
	g_assert_cmpuint(kl_test_count_transient(), ==, 0);
}

/* a TPM that was reset and waits for TPM2_Startup (swtpm: CMD_INIT on the control port) */
static void
test_needs_startup(KlTestFixture *fx, gconstpointer data)
{
	g_autofree gchar *ctrl =
	    g_strdup_printf("127.0.0.1:%s", g_getenv("KL_TEST_SWTPM_CTRL_PORT"));
	const gchar *init[] = { "swtpm_ioctl", "--tcp", ctrl, "-i", NULL };
	KlTpmOptions o = kl_test_options(fx);
	g_autoptr(KlTpm) tpm = NULL;
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GError) error = NULL;

	if (g_getenv("KL_TEST_SWTPM_CTRL_PORT") == NULL) {
		kl_test_skip("no swtpm control port");
		return;
	}
	kl_test_run(fx->dir, init);
	tpm = kl_test_tpm_new(&o);
	g_assert_true(kl_tpm_pcr_read(tpm, TPM2_ALG_SHA256, 0x1, &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, 1);
}

static void
test_bad_tcti(void)
{
	KlTpmOptions o = { .tcti = "swtpm:host=127.0.0.1,port=1", .agent_data_path = "" };
	g_autoptr(GError) error = NULL;
	g_autoptr(KlTpm) tpm = NULL;

	if (g_test_subprocess()) {
		tpm = kl_tpm_new(&o, &error);
		g_assert_null(tpm);
		g_assert_error(error, KL_ERROR, KL_ERROR_TPM);
		g_assert_nonnull(strstr(error->message, "swtpm:host=127.0.0.1,port=1"));
		return;
	}
	/* the TSS itself may log the connection failure; only the result matters */
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
	g_test_trap_assert_passed();
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	if (g_getenv("KL_TEST_TCTI") == NULL)
		return kl_test_skip_all("not run through run-with-swtpm.sh");
	g_test_add_func("/tpm-int/open", test_open);
	g_test_add_func("/tpm-int/ek-cert", test_ek_cert);
	g_test_add("/tpm-int/ak-persist",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ak_persist,
		   fixture_teardown);
	g_test_add("/tpm-int/ak-rust-file",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ak_rust_file,
		   fixture_teardown);
	g_test_add("/tpm-int/ak-file-errors",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ak_file_errors,
		   fixture_teardown);
	g_test_add("/tpm-int/ek-persistent",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ek_persistent,
		   fixture_teardown);
	g_test_add("/tpm-int/activate/rsa",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_activate_rsa,
		   fixture_teardown);
	g_test_add("/tpm-int/activate/ecc",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_activate_ecc,
		   fixture_teardown);
	g_test_add("/tpm-int/activate/ek-created-once",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ek_created_once,
		   fixture_teardown);
	g_test_add("/tpm-int/activate/persistent-ek",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_activate_persistent,
		   fixture_teardown);
	g_test_add("/tpm-int/quote/rsa",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_quote_rsa,
		   fixture_teardown);
	g_test_add("/tpm-int/quote/ecc",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_quote_ecc,
		   fixture_teardown);
	g_test_add(
	    "/tpm-int/certify", KlTestFixture, NULL, fixture_setup, test_certify, fixture_teardown);
	g_test_add(
	    "/tpm-int/ak-lost", KlTestFixture, NULL, fixture_setup, test_ak_lost, fixture_teardown);
	g_test_add("/tpm-int/agent-id",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_agent_id,
		   fixture_teardown);
	g_test_add("/tpm-int/no-leaks",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_no_leaks,
		   fixture_teardown);
	/* writes its own EK certificates to NV: not for a manufactured TPM */
	if (g_getenv("KL_TEST_SWTPM_LOCALCA") == NULL)
		g_test_add("/tpm-int/ek-cert-nv",
			   KlTestFixture,
			   NULL,
			   fixture_setup,
			   test_ek_cert_nv,
			   fixture_teardown);
	g_test_add("/tpm-int/ek-changed",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_ek_changed,
		   fixture_teardown);
	g_test_add("/tpm-int/endorsement-auth",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_endorsement_auth,
		   fixture_teardown);
	g_test_add("/tpm-int/needs-startup",
		   KlTestFixture,
		   NULL,
		   fixture_setup,
		   test_needs_startup,
		   fixture_teardown);
	g_test_add_func("/tpm-int/bad-tcti", test_bad_tcti);
	return g_test_run();
}
