/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The two fields of a quote's TPMS_ATTEST the tpm_quote plugin checks (the
 * PCR selection and pcrDigest), read without unmarshalling the whole
 * structure, and a base64 encoder that can re-encode part of a buffer.
 */
#pragma once

#include <glib.h>
#include <tss2/tss2_tpm2_types.h>

G_BEGIN_DECLS

typedef struct {
	TPMI_ALG_HASH bank;   /* the one PCR selection's bank */
	guint32 mask;	      /* its pcrSelect, bit i = PCR i (sizeofSelect <= 4) */
	const guint8 *digest; /* pcrDigest, inside the buffer that was read */
	gsize digest_size;    /* at most sizeof(TPMU_HA) */
	const guint8 *extra;  /* extraData (the nonce), inside the buffer */
	gsize extra_size;     /* at most sizeof(TPMU_HA) */
} KlTpmQuoteAttest;

/*
 * Reads a marshalled TPMS_ATTEST (big-endian, no TPM2B size prefix) as
 * strictly as Tss2_MU_TPMS_ATTEST_Unmarshal() does, and more: the magic must
 * be TPM_GENERATED_VALUE, the type TPM2_ST_ATTEST_QUOTE, the PCR selection
 * must hold exactly one bank, and nothing may follow the structure.
 * Returns: FALSE when @data is not such a quote (@out is then undefined)
 */
gboolean
kl_tpm_quote_attest_read(const guint8 *data, gsize size, KlTpmQuoteAttest *out);

/* the base64 length of @size bytes, without the terminating NUL */
#define KL_TPM_QUOTE_B64_LEN(size) ((((gsize)(size) + 2) / 3) * 4)

/*
 * Writes the base64 of @in[3 * @from .. 3 * @to) (the last group padded with
 * '=' where @in ends inside it) to @out[4 * @from .. 4 * @to): the groups of
 * three bytes from @from to @to, so that a change of a few bytes can be
 * re-encoded in place. No NUL is written.
 */
void
kl_tpm_quote_b64_encode_groups(const guint8 *in, gsize size, gsize from, gsize to, gchar *out);

G_END_DECLS
