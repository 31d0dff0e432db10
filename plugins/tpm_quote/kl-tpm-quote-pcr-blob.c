/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-pcr-blob.h"

#define KL_PCR_BLOB_SLOTS	  16
#define KL_PCR_BLOB_SLOT_SIZE	  8
#define KL_PCR_BLOB_DIGESTS	  8
#define KL_PCR_BLOB_DIGEST_BUFFER 64

static void
kl_tpm_quote_put_u16(guint8 *p, guint16 v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void
kl_tpm_quote_put_u32(guint8 *p, guint32 v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static guint16
kl_tpm_quote_get_u16(const guint8 *p)
{
	return (guint16)(p[0] | (p[1] << 8));
}

static guint32
kl_tpm_quote_get_u32(const guint8 *p)
{
	return (guint32)p[0] | ((guint32)p[1] << 8) | ((guint32)p[2] << 16) | ((guint32)p[3] << 24);
}

GBytes *
kl_tpm_quote_pcr_blob_encode(TPMI_ALG_HASH bank,
			     guint32 pcr_mask,
			     GPtrArray *values,
			     GError **error)
{
	guint count = (guint)__builtin_popcount(pcr_mask);
	guint n;
	gsize size;
	guint8 *blob;
	guint8 *p;

	if (pcr_mask == 0 || (pcr_mask & ~0xffffffu) != 0 || values == NULL ||
	    values->len != count) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: %u values for selection 0x%06x",
			    values != NULL ? values->len : 0,
			    pcr_mask);
		return NULL;
	}
	n = (count + KL_PCR_BLOB_DIGESTS - 1) / KL_PCR_BLOB_DIGESTS;
	size = KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE + (gsize)n * KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE;
	blob = g_malloc0(size);

	/* TPML_PCR_SELECTION with one used slot */
	kl_tpm_quote_put_u32(blob, 1);
	p = blob + 4;
	kl_tpm_quote_put_u16(p, bank);
	p[2] = 3;
	p[3] = pcr_mask & 0xff;
	p[4] = (pcr_mask >> 8) & 0xff;
	p[5] = (pcr_mask >> 16) & 0xff;
	/* p[6] (pcrSelect[3]) and p[7] (padding) stay zero, as do the other 15 slots */
	p = blob + 4 + KL_PCR_BLOB_SLOTS * KL_PCR_BLOB_SLOT_SIZE;
	kl_tpm_quote_put_u32(p, n);
	p += 4;

	for (guint d = 0; d < n; d++) {
		guint first = d * KL_PCR_BLOB_DIGESTS;
		guint in_this = MIN(KL_PCR_BLOB_DIGESTS, count - first);
		guint8 *digest = p + (gsize)d * KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE;
		kl_tpm_quote_put_u32(digest, in_this);
		for (guint i = 0; i < in_this; i++) {
			GBytes *v = g_ptr_array_index(values, first + i);
			gsize len = 0;
			const guint8 *data = g_bytes_get_data(v, &len);
			guint8 *slot = digest + 4 + (gsize)i * (2 + KL_PCR_BLOB_DIGEST_BUFFER);
			if (len == 0 || len > KL_PCR_BLOB_DIGEST_BUFFER) {
				g_free(blob);
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "PCR blob: bad digest size %" G_GSIZE_FORMAT,
					    len);
				return NULL;
			}
			kl_tpm_quote_put_u16(slot, (guint16)len);
			memcpy(slot + 2, data, len);
		}
	}
	return g_bytes_new_take(blob, size);
}

gboolean
kl_tpm_quote_pcr_blob_decode(
    GBytes *blob, TPMI_ALG_HASH *bank, guint32 *pcr_mask, GPtrArray **values, GError **error)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(blob, &len);
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	guint32 mask = 0;
	TPMI_ALG_HASH hash = TPM2_ALG_NULL;
	guint used = 0;
	guint32 n;
	const guint8 *p;

	if (len < KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE ||
	    (len - KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE) % KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: bad size %" G_GSIZE_FORMAT,
			    len);
		return FALSE;
	}
	if (kl_tpm_quote_get_u32(data) != 1) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: selection count %u (expected 1)",
			    kl_tpm_quote_get_u32(data));
		return FALSE;
	}
	for (guint s = 0; s < KL_PCR_BLOB_SLOTS; s++) {
		p = data + 4 + s * KL_PCR_BLOB_SLOT_SIZE;
		if (p[2] == 0)
			continue;
		if (p[2] != 3) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "PCR blob: sizeofSelect %u (expected 0 or 3)",
				    p[2]);
			return FALSE;
		}
		if (used++ == 0) {
			hash = kl_tpm_quote_get_u16(p);
			mask = (guint32)p[3] | ((guint32)p[4] << 8) | ((guint32)p[5] << 16);
		}
	}
	if (used != 1 || mask == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: %u used selections (expected 1)",
			    used);
		return FALSE;
	}
	p = data + 4 + KL_PCR_BLOB_SLOTS * KL_PCR_BLOB_SLOT_SIZE;
	n = kl_tpm_quote_get_u32(p);
	p += 4;
	if ((gsize)n !=
	    (len - KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE) / KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: %u digest lists announced, %" G_GSIZE_FORMAT " present",
			    n,
			    (len - KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE) /
				KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE);
		return FALSE;
	}
	for (guint d = 0; d < n; d++) {
		const guint8 *digest = p + (gsize)d * KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE;
		for (guint i = 0; i < KL_PCR_BLOB_DIGESTS; i++) {
			const guint8 *slot =
			    digest + 4 + (gsize)i * (2 + KL_PCR_BLOB_DIGEST_BUFFER);
			guint16 sz = kl_tpm_quote_get_u16(slot);
			if (sz == 0)
				continue;
			if (sz > KL_PCR_BLOB_DIGEST_BUFFER) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "PCR blob: digest size %u",
					    sz);
				return FALSE;
			}
			g_ptr_array_add(out, g_bytes_new(slot + 2, sz));
		}
	}
	if (out->len != (guint)__builtin_popcount(mask)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "PCR blob: %u values for %d selected PCRs",
			    out->len,
			    __builtin_popcount(mask));
		return FALSE;
	}
	*bank = hash;
	*pcr_mask = mask;
	*values = g_steal_pointer(&out);
	return TRUE;
}
