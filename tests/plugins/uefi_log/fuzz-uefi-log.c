/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target: the TCG measured boot event log parser and the PCR replay.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-uefi-log-parser.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so that any overread is caught by ASan */
	g_autofree guint8 *copy = g_memdup2(data, size);
	guint8 pcrs[24][KL_UEFI_LOG_MAX_DIGEST];
	KlUefiLogInfo info;
	GError *error = NULL;

	if (kl_uefi_log_parse(copy, size, &info, NULL, NULL, &error)) {
		g_assert_cmpuint(info.event_count, >=, 1);
		g_assert_cmpuint(info.n_algs, >=, 1);
		for (guint i = 0; i < info.n_algs; i++) {
			if (!kl_uefi_log_replay(copy, size, info.algs[i].alg, pcrs, NULL, &error))
				g_clear_error(&error);
		}
	} else {
		g_assert_nonnull(error);
		g_clear_error(&error);
	}
	return 0;
}
