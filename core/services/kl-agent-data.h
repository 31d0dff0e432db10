/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * agent_data.json (kl-agent-data.c): the AK, in the Rust agent's format.
 */
#pragma once

#include "kl-tpm-backend.h"

G_BEGIN_DECLS

/*
 * agent_data.json in the Rust agent's format. load: FALSE + KL_ERROR_NOT_FOUND
 * when the file does not exist; a corrupt file or one made for another
 * hash/scheme/EK is an error naming the file and the recovery.
 * @ak_public: (out): marshalled TPMT_PUBLIC; @ak_private: (out): TPM2B_PRIVATE buffer
 */
gboolean
kl_tpm_agent_data_load(const gchar *path,
		       const KlTpmKeyParams *params,
		       const gchar *ek_hash,
		       TPMT_PUBLIC *ak_public,
		       TPM2B_PRIVATE *ak_private,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* atomic write (temp file, fsync, rename, fsync dir), mode 0600 */
gboolean
kl_tpm_agent_data_store(const gchar *path,
			const TPMT_PUBLIC *ak_public,
			const TPM2B_PRIVATE *ak_private,
			const gchar *ek_hash,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
