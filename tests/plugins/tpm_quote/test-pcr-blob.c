/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The subject_data PCR blob against blobs written by tpm2-tools
 * (`tpm2_quote -F serialized -o`), which is what Keylime's parser expects.
 */
#include "config.h"

#include <string.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-pcr-blob.h"

static GBytes *
kl_test_golden(const gchar *name)
{
	g_autofree gchar *path = g_test_build_filename(G_TEST_DIST, "data", "quote", name, NULL);
	gchar *contents = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;
	g_assert_true(g_file_get_contents(path, &contents, &len, &error));
	return g_bytes_new_take(contents, len);
}

static GBytes *
kl_test_value(guint8 seed, gsize len)
{
	guint8 v[64];
	for (gsize i = 0; i < len; i++)
		v[i] = (guint8)(seed + i);
	return g_bytes_new(v, len);
}

/* one PCR: 136 + 532 = 668 bytes, every offset as Keylime reads it */
static void
test_one_pcr_layout(void)
{
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) blob = NULL;
	const guint8 *b;
	gsize len = 0;

	g_ptr_array_add(values, kl_test_value(1, 32));
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA256, 1u << 10, values, &error);
	g_assert_no_error(error);
	b = g_bytes_get_data(blob, &len);
	g_assert_cmpuint(len, ==, 668);
	/* TPML_PCR_SELECTION.count */
	g_assert_cmpmem(b, 4, "\x01\x00\x00\x00", 4);
	/* slot 0: hash 0x000b LE, sizeofSelect 3, pcrSelect {00 04 00 00}, pad */
	g_assert_cmpmem(b + 4, 8, "\x0b\x00\x03\x00\x04\x00\x00\x00", 8);
	/* slots 1..15 unused */
	for (gsize i = 12; i < 132; i++)
		g_assert_cmpuint(b[i], ==, 0);
	/* one TPML_DIGEST, holding one digest */
	g_assert_cmpmem(b + 132, 4, "\x01\x00\x00\x00", 4);
	g_assert_cmpmem(b + 136, 4, "\x01\x00\x00\x00", 4);
	g_assert_cmpmem(b + 140, 2, "\x20\x00", 2);
	for (gsize i = 0; i < 32; i++)
		g_assert_cmpuint(b[142 + i], ==, 1 + i);
	for (gsize i = 142 + 32; i < len; i++)
		g_assert_cmpuint(b[i], ==, 0);
}

/* 15 PCRs: two TPML_DIGEST (8 + 7), 136 + 2 * 532 = 1200 bytes */
static void
test_fifteen_pcrs_layout(void)
{
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) blob = NULL;
	guint32 mask = 0xffff & ~(1u << 10);
	const guint8 *b;
	gsize len = 0;

	for (guint i = 0; i < 15; i++)
		g_ptr_array_add(values, kl_test_value((guint8)(i * 16), 48));
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA384, mask, values, &error);
	g_assert_no_error(error);
	b = g_bytes_get_data(blob, &len);
	g_assert_cmpuint(len, ==, 1200);
	g_assert_cmpmem(b + 4, 8, "\x0c\x00\x03\xff\xfb\x00\x00\x00", 8);
	g_assert_cmpmem(b + 132, 4, "\x02\x00\x00\x00", 4);
	/* first list: 8 digests; second: 7 and one empty slot */
	g_assert_cmpmem(b + 136, 4, "\x08\x00\x00\x00", 4);
	g_assert_cmpmem(b + 136 + 532, 4, "\x07\x00\x00\x00", 4);
	/* 8th value (index 7) is the last slot of the first list */
	g_assert_cmpmem(b + 136 + 4 + 7 * 66, 2, "\x30\x00", 2);
	g_assert_cmpuint(b[136 + 4 + 7 * 66 + 2], ==, 7 * 16);
	/* 9th value (index 8) starts the second list */
	g_assert_cmpmem(b + 136 + 532 + 4, 2, "\x30\x00", 2);
	g_assert_cmpuint(b[136 + 532 + 4 + 2], ==, 8 * 16);
	/* unused 8th slot of the second list */
	g_assert_cmpmem(b + 136 + 532 + 4 + 7 * 66, 2, "\x00\x00", 2);
}

/* decoding a tpm2-tools blob and encoding it again gives the same bytes */
static void
test_golden(gconstpointer data)
{
	const gchar *name = data;
	g_autoptr(GBytes) golden = kl_test_golden(name);
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GBytes) again = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank = 0;
	guint32 mask = 0;

	g_assert_true(kl_tpm_quote_pcr_blob_decode(golden, &bank, &mask, &values, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(values->len, ==, (guint)__builtin_popcount(mask));
	again = kl_tpm_quote_pcr_blob_encode(bank, mask, values, &error);
	g_assert_no_error(error);
	g_assert_cmpmem(g_bytes_get_data(again, NULL),
			g_bytes_get_size(again),
			g_bytes_get_data(golden, NULL),
			g_bytes_get_size(golden));
}

static void
test_golden_values(void)
{
	g_autoptr(GBytes) golden = kl_test_golden("pcrs-sha256-10.bin");
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank = 0;
	guint32 mask = 0;
	const guint8 expected[4] = { 0x45, 0xbd, 0x7f, 0xcc };

	g_assert_true(kl_tpm_quote_pcr_blob_decode(golden, &bank, &mask, &values, &error));
	g_assert_cmpuint(bank, ==, TPM2_ALG_SHA256);
	g_assert_cmphex(mask, ==, 1u << 10);
	g_assert_cmpuint(g_bytes_get_size(g_ptr_array_index(values, 0)), ==, 32);
	g_assert_cmpmem(g_bytes_get_data(g_ptr_array_index(values, 0), NULL), 4, expected, 4);
}

static void
test_encode_errors(void)
{
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) blob = NULL;

	g_ptr_array_add(values, kl_test_value(0, 32));
	/* two PCRs selected, one value */
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA256, 0x3, values, &error);
	g_assert_null(blob);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	/* PCR 24 */
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA256, 1u << 24, values, &error);
	g_assert_null(blob);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	/* empty selection */
	g_ptr_array_set_size(values, 0);
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA256, 0, values, &error);
	g_assert_null(blob);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_clear_error(&error);
	/* a value larger than TPMU_HA */
	g_ptr_array_add(values, g_bytes_new_take(g_malloc0(65), 65));
	blob = kl_tpm_quote_pcr_blob_encode(TPM2_ALG_SHA256, 1, values, &error);
	g_assert_null(blob);
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
}

static void
kl_test_decode_rejects(const guint8 *data, gsize len, const gchar *what)
{
	g_autoptr(GBytes) blob = g_bytes_new(data, len);
	g_autoptr(GPtrArray) values = NULL;
	g_autoptr(GError) error = NULL;
	TPMI_ALG_HASH bank;
	guint32 mask;

	g_test_message("rejecting: %s", what);
	g_assert_false(kl_tpm_quote_pcr_blob_decode(blob, &bank, &mask, &values, &error));
	g_assert_error(error, KL_ERROR, KL_ERROR_INVALID_DATA);
	g_assert_null(values);
}

static void
test_decode_errors(void)
{
	g_autoptr(GBytes) golden = kl_test_golden("pcrs-sha256-10.bin");
	gsize len = 0;
	const guint8 *g = g_bytes_get_data(golden, &len);
	g_autofree guint8 *b = g_malloc(len + 1);

	memcpy(b, g, len);
	kl_test_decode_rejects(b, len - 1, "truncated");
	b[len] = 0;
	kl_test_decode_rejects(b, len + 1, "trailing byte");
	b[6] = 2;
	kl_test_decode_rejects(b, len, "sizeofSelect 2");
	memcpy(b, g, len);
	b[0] = 2;
	kl_test_decode_rejects(b, len, "two selections");
	memcpy(b, g, len);
	b[132] = 2;
	kl_test_decode_rejects(b, len, "digest count beyond the data");
	memcpy(b, g, len);
	b[140] = 0x41;
	kl_test_decode_rejects(b, len, "digest larger than 64 bytes");
	memcpy(b, g, len);
	b[8] = 0x0c;
	kl_test_decode_rejects(b, len, "two PCRs selected, one value");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/tpm-quote/pcr-blob/one-pcr", test_one_pcr_layout);
	g_test_add_func("/tpm-quote/pcr-blob/fifteen-pcrs", test_fifteen_pcrs_layout);
	g_test_add_data_func(
	    "/tpm-quote/pcr-blob/golden/sha256-10", "pcrs-sha256-10.bin", test_golden);
	g_test_add_data_func(
	    "/tpm-quote/pcr-blob/golden/sha256-mb15", "pcrs-sha256-mb15.bin", test_golden);
	g_test_add_data_func(
	    "/tpm-quote/pcr-blob/golden/sha1-0-10", "pcrs-sha1-0-10.bin", test_golden);
	g_test_add_func("/tpm-quote/pcr-blob/golden-values", test_golden_values);
	g_test_add_func("/tpm-quote/pcr-blob/encode-errors", test_encode_errors);
	g_test_add_func("/tpm-quote/pcr-blob/decode-errors", test_decode_errors);
	return g_test_run();
}
