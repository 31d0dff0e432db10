/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * TCG measured boot event log parser, bounds-checked everywhere.
 *
 * TCG_PCR_EVENT (SHA-1 format, the first event of every log):
 *   u32 pcrIndex, u32 eventType, u8 digest[20], u32 eventSize, u8 event[]
 * TCG_EfiSpecIdEvent (its event data in a crypto-agile log):
 *   "Spec ID Event03\0", u32 platformClass, u8 minor, u8 major, u8 errata,
 *   u8 uintnSize, u32 numberOfAlgorithms, {u16 algorithmId, u16 digestSize}[],
 *   u8 vendorInfoSize, u8 vendorInfo[]
 * TCG_PCR_EVENT2 (every further event of a crypto-agile log):
 *   u32 pcrIndex, u32 eventType, u32 count, {u16 hashAlg, u8 digest[size]}[],
 *   u32 eventSize, u8 event[]
 * All integers little-endian.
 */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-uefi-log-parser.h"

#define KL_UEFI_LOG_SPEC_ID_SIGNATURE "Spec ID Event03"
#define KL_UEFI_LOG_SHA1_SIZE	      20

typedef struct {
	const guint8 *data;
	gsize len;
	gsize off;
} KlUefiLogReader;

static gboolean
kl_uefi_log_need(KlUefiLogReader *r, gsize n, gsize event_off, const gchar *what, GError **error)
{
	if (r->len - r->off >= n)
		return TRUE;
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_INVALID_DATA,
		    "measured boot log truncated at offset %" G_GSIZE_FORMAT
		    " (event at offset %" G_GSIZE_FORMAT "): %s needs %" G_GSIZE_FORMAT
		    " bytes, %" G_GSIZE_FORMAT " left",
		    r->off,
		    event_off,
		    what,
		    n,
		    r->len - r->off);
	return FALSE;
}

static guint32
kl_uefi_log_u32(KlUefiLogReader *r)
{
	const guint8 *p = r->data + r->off;
	r->off += 4;
	return (guint32)p[0] | ((guint32)p[1] << 8) | ((guint32)p[2] << 16) | ((guint32)p[3] << 24);
}

static guint16
kl_uefi_log_u16(KlUefiLogReader *r)
{
	const guint8 *p = r->data + r->off;
	r->off += 2;
	return (guint16)(p[0] | (p[1] << 8));
}

/* TCG_PCR_EVENT: header (28 bytes), digest, event data */
static gboolean
kl_uefi_log_read_event1(KlUefiLogReader *r, KlUefiLogEvent *ev, GError **error)
{
	ev->offset = r->off;
	if (!kl_uefi_log_need(r, 32, ev->offset, "a TCG_PCR_EVENT header", error))
		return FALSE;
	ev->pcr = kl_uefi_log_u32(r);
	ev->type = kl_uefi_log_u32(r);
	ev->n_digests = 1;
	ev->digests[0].alg = KL_UEFI_LOG_TPM_ALG_SHA1;
	ev->digests[0].size = KL_UEFI_LOG_SHA1_SIZE;
	ev->digests[0].digest = r->data + r->off;
	r->off += KL_UEFI_LOG_SHA1_SIZE;
	ev->data_size = kl_uefi_log_u32(r);
	if (!kl_uefi_log_need(r, ev->data_size, ev->offset, "the event data", error))
		return FALSE;
	ev->data = r->data + r->off;
	r->off += ev->data_size;
	return TRUE;
}

static gboolean
kl_uefi_log_read_event2(KlUefiLogReader *r,
			const KlUefiLogInfo *info,
			KlUefiLogEvent *ev,
			GError **error)
{
	guint32 count;

	ev->offset = r->off;
	if (!kl_uefi_log_need(r, 12, ev->offset, "a TCG_PCR_EVENT2 header", error))
		return FALSE;
	ev->pcr = kl_uefi_log_u32(r);
	ev->type = kl_uefi_log_u32(r);
	count = kl_uefi_log_u32(r);
	if (count > info->n_algs) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "malformed measured boot log: event at offset %" G_GSIZE_FORMAT
			    " has %u digests but the log header declares %u algorithms",
			    ev->offset,
			    count,
			    info->n_algs);
		return FALSE;
	}
	ev->n_digests = count;
	for (guint i = 0; i < count; i++) {
		guint16 alg;
		guint j;

		if (!kl_uefi_log_need(r, 2, ev->offset, "a digest algorithm", error))
			return FALSE;
		alg = kl_uefi_log_u16(r);
		for (j = 0; j < info->n_algs; j++) {
			if (info->algs[j].alg == alg)
				break;
		}
		if (j == info->n_algs) {
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "malformed measured boot log: event at offset %" G_GSIZE_FORMAT
			    " has a digest of algorithm 0x%04x that the log header does not "
			    "declare (at offset %" G_GSIZE_FORMAT ")",
			    ev->offset,
			    alg,
			    r->off - 2);
			return FALSE;
		}
		if (!kl_uefi_log_need(r, info->algs[j].size, ev->offset, "a digest", error))
			return FALSE;
		ev->digests[i].alg = alg;
		ev->digests[i].size = info->algs[j].size;
		ev->digests[i].digest = r->data + r->off;
		r->off += info->algs[j].size;
	}
	if (!kl_uefi_log_need(r, 4, ev->offset, "the event size", error))
		return FALSE;
	ev->data_size = kl_uefi_log_u32(r);
	if (!kl_uefi_log_need(r, ev->data_size, ev->offset, "the event data", error))
		return FALSE;
	ev->data = r->data + r->off;
	r->off += ev->data_size;
	return TRUE;
}

/* the Spec ID Event03 header: digest algorithms and sizes */
static gboolean
kl_uefi_log_parse_spec_id(const KlUefiLogEvent *ev, KlUefiLogInfo *info, GError **error)
{
	KlUefiLogReader r = { .data = ev->data, .len = ev->data_size, .off = 0 };
	gsize base = ev->offset + 32;
	guint32 n_algs;
	guint8 vendor_size;

	/* signature[16], platformClass, 4 version bytes, numberOfAlgorithms */
	if (r.len < 28) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_INVALID_DATA,
		    "malformed measured boot log: the Spec ID event at offset %" G_GSIZE_FORMAT
		    " is too short (%u bytes)",
		    ev->offset,
		    ev->data_size);
		return FALSE;
	}
	r.off = 24;
	n_algs = kl_uefi_log_u32(&r);
	if (n_algs == 0 || n_algs > KL_UEFI_LOG_MAX_ALGS || r.len - r.off < (gsize)n_algs * 4 + 1) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_INVALID_DATA,
		    "malformed measured boot log: the Spec ID event at offset %" G_GSIZE_FORMAT
		    " declares %u digest algorithms (1-%u fitting in the event expected)",
		    ev->offset,
		    n_algs,
		    KL_UEFI_LOG_MAX_ALGS);
		return FALSE;
	}
	info->n_algs = n_algs;
	for (guint i = 0; i < n_algs; i++) {
		info->algs[i].alg = kl_uefi_log_u16(&r);
		info->algs[i].size = kl_uefi_log_u16(&r);
		if (info->algs[i].size == 0 || info->algs[i].size > KL_UEFI_LOG_MAX_DIGEST) {
			g_set_error(
			    error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "malformed measured boot log: digest size %u of algorithm 0x%04x "
			    "at offset %" G_GSIZE_FORMAT " is not plausible",
			    info->algs[i].size,
			    info->algs[i].alg,
			    base + r.off - 2);
			return FALSE;
		}
		for (guint j = 0; j < i; j++) {
			if (info->algs[j].alg == info->algs[i].alg) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_INVALID_DATA,
					    "malformed measured boot log: algorithm 0x%04x is "
					    "declared twice at offset %" G_GSIZE_FORMAT,
					    info->algs[i].alg,
					    base + r.off - 4);
				return FALSE;
			}
		}
	}
	vendor_size = r.data[r.off++];
	if (r.len - r.off < vendor_size) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "malformed measured boot log: vendor information of %u bytes at offset "
			    "%" G_GSIZE_FORMAT " runs past the Spec ID event",
			    vendor_size,
			    base + r.off);
		return FALSE;
	}
	return TRUE;
}

static gboolean
kl_uefi_log_is_spec_id03(const KlUefiLogEvent *ev)
{
	return ev->type == KL_UEFI_LOG_EV_NO_ACTION && ev->data_size >= 16 &&
	       memcmp(ev->data, KL_UEFI_LOG_SPEC_ID_SIGNATURE, 16) == 0;
}

gboolean
kl_uefi_log_parse(const guint8 *data,
		  gsize len,
		  KlUefiLogInfo *info,
		  KlUefiLogEventFunc func,
		  gpointer user_data,
		  GError **error)
{
	KlUefiLogReader r = { .data = data, .len = len, .off = 0 };
	KlUefiLogEvent ev;

	g_return_val_if_fail(info != NULL, FALSE);
	memset(info, 0, sizeof(*info));
	if (len == 0 || data == NULL) {
		g_set_error_literal(
		    error, KL_ERROR, KL_ERROR_INVALID_DATA, "the measured boot log is empty");
		return FALSE;
	}

	memset(&ev, 0, sizeof(ev));
	if (!kl_uefi_log_read_event1(&r, &ev, error))
		return FALSE;
	if (kl_uefi_log_is_spec_id03(&ev)) {
		info->format = KL_UEFI_LOG_FORMAT_CRYPTO_AGILE;
		if (!kl_uefi_log_parse_spec_id(&ev, info, error))
			return FALSE;
	} else {
		info->format = KL_UEFI_LOG_FORMAT_LEGACY_SHA1;
		info->n_algs = 1;
		info->algs[0].alg = KL_UEFI_LOG_TPM_ALG_SHA1;
		info->algs[0].size = KL_UEFI_LOG_SHA1_SIZE;
	}

	for (;;) {
		ev.index = info->event_count++;
		if (func != NULL && !func(&ev, user_data)) {
			g_set_error_literal(error,
					    G_IO_ERROR,
					    G_IO_ERROR_CANCELLED,
					    "measured boot log walk stopped");
			return FALSE;
		}
		if (r.off == r.len)
			return TRUE;
		memset(&ev, 0, sizeof(ev));
		if (info->format == KL_UEFI_LOG_FORMAT_CRYPTO_AGILE) {
			if (!kl_uefi_log_read_event2(&r, info, &ev, error))
				return FALSE;
		} else {
			if (!kl_uefi_log_read_event1(&r, &ev, error))
				return FALSE;
		}
	}
}

typedef struct {
	guint16 alg;
	GChecksumType type;
	gsize size;
	guint8 (*pcrs)[KL_UEFI_LOG_MAX_DIGEST];
	gboolean seen;
} KlUefiLogReplay;

static gboolean
kl_uefi_log_replay_cb(const KlUefiLogEvent *ev, gpointer user_data)
{
	KlUefiLogReplay *rp = user_data;

	if (ev->type == KL_UEFI_LOG_EV_NO_ACTION || ev->pcr >= 24)
		return TRUE;
	for (guint i = 0; i < ev->n_digests; i++) {
		g_autoptr(GChecksum) sum = NULL;
		gsize size = rp->size;

		if (ev->digests[i].alg != rp->alg || ev->digests[i].size != rp->size)
			continue;
		sum = g_checksum_new(rp->type);
		g_checksum_update(sum, rp->pcrs[ev->pcr], rp->size);
		g_checksum_update(sum, ev->digests[i].digest, ev->digests[i].size);
		g_checksum_get_digest(sum, rp->pcrs[ev->pcr], &size);
		rp->seen = TRUE;
	}
	return TRUE;
}

gboolean
kl_uefi_log_replay(const guint8 *data,
		   gsize len,
		   guint16 alg,
		   guint8 pcrs[24][KL_UEFI_LOG_MAX_DIGEST],
		   gsize *digest_size,
		   GError **error)
{
	KlUefiLogReplay rp = { .alg = alg, .pcrs = pcrs };
	KlUefiLogInfo info;

	switch (alg) {
	case KL_UEFI_LOG_TPM_ALG_SHA1:
		rp.type = G_CHECKSUM_SHA1;
		rp.size = 20;
		break;
	case KL_UEFI_LOG_TPM_ALG_SHA256:
		rp.type = G_CHECKSUM_SHA256;
		rp.size = 32;
		break;
	case KL_UEFI_LOG_TPM_ALG_SHA384:
		rp.type = G_CHECKSUM_SHA384;
		rp.size = 48;
		break;
	case KL_UEFI_LOG_TPM_ALG_SHA512:
		rp.type = G_CHECKSUM_SHA512;
		rp.size = 64;
		break;
	default:
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "cannot replay digests of algorithm 0x%04x",
			    alg);
		return FALSE;
	}
	memset(pcrs, 0, 24 * KL_UEFI_LOG_MAX_DIGEST);
	if (!kl_uefi_log_parse(data, len, &info, kl_uefi_log_replay_cb, &rp, error))
		return FALSE;
	if (!rp.seen) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "the measured boot log has no digests of algorithm 0x%04x",
			    alg);
		return FALSE;
	}
	if (digest_size != NULL)
		*digest_size = rp.size;
	return TRUE;
}
