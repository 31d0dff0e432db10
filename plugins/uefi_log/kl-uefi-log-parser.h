/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Parser of the TCG measured boot event log
 * (/sys/kernel/security/tpm0/binary_bios_measurements): the crypto-agile
 * format of the TCG PC Client Platform Firmware Profile (a TCG_PCR_EVENT with
 * the "Spec ID Event03" header, then TCG_PCR_EVENT2 records) and the legacy
 * SHA-1 format (TCG_PCR_EVENT records only). Every field is bounds-checked.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KL_UEFI_LOG_MAX_ALGS	   16
#define KL_UEFI_LOG_MAX_DIGEST	   64
#define KL_UEFI_LOG_EV_NO_ACTION   0x00000003u
#define KL_UEFI_LOG_TPM_ALG_SHA1   0x0004u
#define KL_UEFI_LOG_TPM_ALG_SHA256 0x000Bu
#define KL_UEFI_LOG_TPM_ALG_SHA384 0x000Cu
#define KL_UEFI_LOG_TPM_ALG_SHA512 0x000Du

typedef enum {
	KL_UEFI_LOG_FORMAT_CRYPTO_AGILE,
	KL_UEFI_LOG_FORMAT_LEGACY_SHA1,
} KlUefiLogFormat;

typedef struct {
	guint16 alg;
	guint16 size;
} KlUefiLogAlg;

typedef struct {
	gsize offset; /* of the event in the log */
	guint index;  /* 0 = the first event (the Spec ID header in crypto-agile logs) */
	guint32 pcr;
	guint32 type;
	guint n_digests;
	struct {
		guint16 alg;
		guint16 size;
		const guint8 *digest;
	} digests[KL_UEFI_LOG_MAX_ALGS];
	guint32 data_size;
	const guint8 *data;
} KlUefiLogEvent;

typedef struct {
	KlUefiLogFormat format;
	guint event_count; /* all events, the header event included */
	guint n_algs;	   /* digest algorithms of the header (legacy: SHA-1) */
	KlUefiLogAlg algs[KL_UEFI_LOG_MAX_ALGS];
} KlUefiLogInfo;

/* return FALSE to stop the walk (the parse then fails with G_IO_ERROR_CANCELLED) */
typedef gboolean (*KlUefiLogEventFunc)(const KlUefiLogEvent *event, gpointer user_data);

/*
 * Walks the whole log, calling @func (nullable) for every event, and fills
 * @info. KL_ERROR_INVALID_DATA naming the byte offset when the log is
 * truncated or malformed.
 */
gboolean
kl_uefi_log_parse(const guint8 *data,
		  gsize len,
		  KlUefiLogInfo *info,
		  KlUefiLogEventFunc func,
		  gpointer user_data,
		  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Replays the measured events (not EV_NO_ACTION) of one bank into PCRs 0-23.
 * @pcrs receives 24 values of the bank's digest size; FALSE when the log has
 * no digests of @alg or @alg is not SHA-1/256/384/512.
 */
gboolean
kl_uefi_log_replay(const guint8 *data,
		   gsize len,
		   guint16 alg,
		   guint8 pcrs[24][KL_UEFI_LOG_MAX_DIGEST],
		   gsize *digest_size,
		   GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
