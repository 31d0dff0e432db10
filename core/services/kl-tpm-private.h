/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Core-only TPM operations (identity, registration). Exported from
 * libkeylime-agent-plugin in the KL_PRIVATE version node: not for plugins.
 */
#pragma once

#include <glib.h>

#include "keylime-agent/kl-plugin-tpm.h"

G_BEGIN_DECLS

typedef struct {
	gboolean software;	      /* --avoid-tpm: software stand-in, insecure */
	const gchar *tcti;	      /* NULL: $TCTI, else device:/dev/tpmrm0, else /dev/tpm0 */
	const gchar *ek_handle;	      /* "" / "generate" or a persistent handle "0x81010001" */
	const gchar *owner_password;  /* tpm_ownerpassword (endorsement/owner auth) */
	const gchar *encryption_alg;  /* tpm_encryption_alg: rsa, rsa2048, ecc, ecc256, ... */
	const gchar *hash_alg;	      /* tpm_hash_alg: sha256, ... */
	const gchar *signing_alg;     /* tpm_signing_alg: rsassa, ... */
	const gchar *agent_data_path; /* agent_data.json path; "" = do not persist */
	const gchar *state_dir;	      /* keylime_dir: software TPM state lives here */
} KlTpmOptions;

/*
 * Opens the TPM (TCTI loader), reads the static facts (banks, algorithms,
 * schemes), creates or loads the EK, reads the EK certificate from NV when
 * present, and loads the AK from agent_data.json or creates and persists it.
 * A corrupt agent_data.json is an error naming the file and the recovery; it is
 * never silently replaced.
 */
KlTpm *
kl_tpm_new(const KlTpmOptions *options, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void
kl_tpm_free(KlTpm *tpm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTpm, kl_tpm_free)

/* marshalled TPM2B_PUBLIC of the EK (`ek_tpm`); (transfer none) */
GBytes *
kl_tpm_get_ek_public(KlTpm *tpm);
/* DER EK certificate from NV, or NULL when the TPM has none; (transfer none) */
GBytes *
kl_tpm_get_ek_cert(KlTpm *tpm);
/* lower-case hex SHA-256 of the EK public key (PEM), as the Rust agent's hash_ek */
const gchar *
kl_tpm_get_ek_hash(KlTpm *tpm);
/* a short description for --check: manufacturer, firmware, TCTI or "software" */
const gchar *
kl_tpm_get_description(KlTpm *tpm);

/**
 * kl_tpm_activate_credential:
 * @blob: the decoded registrar `blob` (tpm2-tools file: 0xBADCC0DE, version 1,
 *   TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET)
 * @secret: (out) (transfer full): the recovered credential
 *
 * TPM2_ActivateCredential(AK, EK with PolicySecret(ENDORSEMENT)). Bad blobs
 * give KL_ERROR_INVALID_DATA.
 */
gboolean
kl_tpm_activate_credential(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/*
 * TPM health for the agent's watchdog, callable from any thread. Returns the
 * name of the TPM command in progress ("TPM2_Quote") and sets @busy_s to the
 * seconds it has been running, or returns NULL when the TPM is idle.
 */
const gchar *
kl_tpm_get_busy(KlTpm *tpm, guint *busy_s);
/*
 * seconds since the TPM became unusable (its connection lost and not
 * restored, or in dictionary-attack lockout); 0 = usable. @reason (nullable)
 * gets why, a static string.
 */
guint
kl_tpm_get_unusable_s(KlTpm *tpm, const gchar **reason);

G_END_DECLS
