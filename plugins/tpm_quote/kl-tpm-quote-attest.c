/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "kl-tpm-quote-attest.h"

typedef struct {
	const guint8 *p;
	gsize left;
} KlTpmQuoteReader;

static gboolean
kl_tpm_quote_take(KlTpmQuoteReader *r, gsize n, const guint8 **out)
{
	if (r->left < n)
		return FALSE;
	if (out != NULL)
		*out = r->p;
	r->p += n;
	r->left -= n;
	return TRUE;
}

static gboolean
kl_tpm_quote_u16(KlTpmQuoteReader *r, guint16 *v)
{
	const guint8 *p;
	if (!kl_tpm_quote_take(r, 2, &p))
		return FALSE;
	*v = (guint16)((p[0] << 8) | p[1]);
	return TRUE;
}

static gboolean
kl_tpm_quote_u32(KlTpmQuoteReader *r, guint32 *v)
{
	const guint8 *p;
	if (!kl_tpm_quote_take(r, 4, &p))
		return FALSE;
	*v = ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
	return TRUE;
}

/* a TPM2B of at most @max bytes */
static gboolean
kl_tpm_quote_tpm2b(KlTpmQuoteReader *r, gsize max, const guint8 **data, gsize *size)
{
	guint16 n;
	if (!kl_tpm_quote_u16(r, &n) || n > max)
		return FALSE;
	*size = n;
	return kl_tpm_quote_take(r, n, data);
}

gboolean
kl_tpm_quote_attest_read(const guint8 *data, gsize size, KlTpmQuoteAttest *out)
{
	KlTpmQuoteReader r = { data, size };
	const guint8 *skip;
	const guint8 *select;
	gsize skip_size;
	guint32 magic;
	guint16 type;
	guint32 count;
	guint8 sizeof_select;

	if (data == NULL || !kl_tpm_quote_u32(&r, &magic) || magic != TPM2_GENERATED_VALUE ||
	    !kl_tpm_quote_u16(&r, &type) || type != TPM2_ST_ATTEST_QUOTE)
		return FALSE;
	/* qualifiedSigner (TPM2B_NAME), extraData (TPM2B_DATA) */
	if (!kl_tpm_quote_tpm2b(&r, sizeof(TPMU_NAME), &skip, &skip_size) ||
	    !kl_tpm_quote_tpm2b(&r, sizeof(TPMU_HA), &out->extra, &out->extra_size))
		return FALSE;
	/* clockInfo (u64 clock, u32 resetCount, u32 restartCount, u8 safe), u64 firmwareVersion */
	if (!kl_tpm_quote_take(&r, 8 + 4 + 4 + 1 + 8, NULL))
		return FALSE;
	/* TPMS_QUOTE_INFO: TPML_PCR_SELECTION of one bank, TPM2B_DIGEST */
	if (!kl_tpm_quote_u32(&r, &count) || count != 1 || !kl_tpm_quote_u16(&r, &out->bank) ||
	    !kl_tpm_quote_take(&r, 1, &select))
		return FALSE;
	sizeof_select = select[0];
	if (sizeof_select > TPM2_PCR_SELECT_MAX || !kl_tpm_quote_take(&r, sizeof_select, &select))
		return FALSE;
	out->mask = 0;
	for (guint i = 0; i < sizeof_select; i++)
		out->mask |= (guint32)select[i] << (8 * i);
	if (!kl_tpm_quote_tpm2b(&r, sizeof(TPMU_HA), &out->digest, &out->digest_size))
		return FALSE;
	return r.left == 0;
}

static const gchar kl_tpm_quote_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
kl_tpm_quote_b64_encode_groups(const guint8 *in, gsize size, gsize from, gsize to, gchar *out)
{
	const gchar *a = kl_tpm_quote_b64_alphabet;
	gsize full = size / 3;
	gsize g = from;

	for (; g < to && g < full; g++) {
		const guint8 *p = in + 3 * g;
		guint32 v = ((guint32)p[0] << 16) | ((guint32)p[1] << 8) | p[2];
		gchar *o = out + 4 * g;
		o[0] = a[v >> 18];
		o[1] = a[(v >> 12) & 0x3f];
		o[2] = a[(v >> 6) & 0x3f];
		o[3] = a[v & 0x3f];
	}
	if (g < to && g == full && size % 3 != 0) {
		const guint8 *p = in + 3 * g;
		guint32 v = (guint32)p[0] << 16;
		gchar *o = out + 4 * g;
		if (size % 3 == 2)
			v |= (guint32)p[1] << 8;
		o[0] = a[v >> 18];
		o[1] = a[(v >> 12) & 0x3f];
		o[2] = size % 3 == 2 ? a[(v >> 6) & 0x3f] : '=';
		o[3] = '=';
	}
}
