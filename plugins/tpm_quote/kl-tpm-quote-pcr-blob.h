/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The tpm2-tools "PCR output" blob that Keylime expects as tpm_quote
 * `subject_data` (little-endian, in-memory layout):
 *
 *   u32le  TPML_PCR_SELECTION.count (1)
 *   16 x { u16le hash, u8 sizeofSelect (3), u8 pcrSelect[4], u8 pad }
 *   u32le  n, the number of TPML_DIGEST that follow
 *   n x    { u32le count, 8 x { u16le size, u8 buffer[64] } }   (532 bytes)
 *
 * PCR values in ascending PCR order, at most 8 per TPML_DIGEST: 136 + 532 n bytes.
 */
#pragma once

#include <glib.h>
#include <tss2/tss2_tpm2_types.h>

G_BEGIN_DECLS

#define KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE 136
#define KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE 532

/*
 * @values: one GBytes per PCR set in @pcr_mask, ascending; each at most 64 bytes
 * Returns: (transfer full): the blob, or NULL with KL_ERROR_INVALID_DATA
 */
GBytes *
kl_tpm_quote_pcr_blob_encode(TPMI_ALG_HASH bank,
			     guint32 pcr_mask,
			     GPtrArray *values,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * The inverse, as strict as Keylime's parser (one selection, sizeofSelect 0
 * or 3, no trailing bytes). @values: (out) (transfer full)
 */
gboolean
kl_tpm_quote_pcr_blob_decode(GBytes *blob,
			     TPMI_ALG_HASH *bank,
			     guint32 *pcr_mask,
			     GPtrArray **values,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
