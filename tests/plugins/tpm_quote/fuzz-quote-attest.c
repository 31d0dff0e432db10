/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the tpm_quote plugin's narrow TPMS_ATTEST reader, against
 * tpm2-tss's full unmarshaller (it must accept exactly the quotes that
 * Tss2_MU_TPMS_ATTEST_Unmarshal reads whole, with the TPM's magic and one
 * PCR bank, and find the same fields), and its base64 encoder against GLib's.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "kl-fuzz.h"
#include "kl-tpm-quote-attest.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
kl_fuzz_check_b64(const guint8 *data, gsize size)
{
	g_autofree gchar *expected = g_base64_encode(data, size);
	gsize len = KL_TPM_QUOTE_B64_LEN(size);
	g_autofree gchar *out = g_malloc0(len + 1);
	gsize split = size > 0 ? data[0] % (len / 4 + 1) : 0;

	/* in two pieces, the second first: each group is written on its own */
	kl_tpm_quote_b64_encode_groups(data, size, split, len / 4, out);
	kl_tpm_quote_b64_encode_groups(data, size, 0, split, out);
	g_assert_cmpstr(out, ==, expected);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so that any overread is caught by ASan */
	g_autofree guint8 *copy = g_memdup2(data, size);
	KlTpmQuoteAttest q;
	TPMS_ATTEST a;
	size_t off = 0;
	gboolean full;
	gboolean narrow;

	memset(&a, 0, sizeof(a));
	full = Tss2_MU_TPMS_ATTEST_Unmarshal(copy, size, &off, &a) == TSS2_RC_SUCCESS &&
	       off == size && a.magic == TPM2_GENERATED_VALUE && a.type == TPM2_ST_ATTEST_QUOTE &&
	       a.attested.quote.pcrSelect.count == 1;
	narrow = kl_tpm_quote_attest_read(copy, size, &q);
	kl_fuzz_report(narrow);
	g_assert_cmpint(narrow, ==, full);
	if (narrow) {
		const TPMS_PCR_SELECTION *sel = &a.attested.quote.pcrSelect.pcrSelections[0];
		guint32 mask = 0;
		for (guint i = 0; i < sel->sizeofSelect; i++)
			mask |= (guint32)sel->pcrSelect[i] << (8 * i);
		g_assert_cmpuint(q.bank, ==, sel->hash);
		g_assert_cmphex(q.mask, ==, mask);
		g_assert_cmpmem(q.digest,
				q.digest_size,
				a.attested.quote.pcrDigest.buffer,
				a.attested.quote.pcrDigest.size);
		g_assert_cmpmem(q.extra, q.extra_size, a.extraData.buffer, a.extraData.size);
	}
	kl_fuzz_check_b64(copy, size);
	return 0;
}
