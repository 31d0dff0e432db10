/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent id (kl-agent-id.c). kl_tpm_resolve_agent_id is exported from
 * libkeylime-agent-plugin in the KL_PRIVATE version node: not for plugins.
 */
#pragma once

#include <glib.h>

#include "keylime-agent/kl-plugin-tpm.h"

G_BEGIN_DECLS

/*
 * Resolves the `uuid` option: a literal UUID, "generate" (random once, then
 * persisted under @state_dir), "hash_ek", "hostname", "dmidecode". (transfer full)
 */
gchar *
kl_tpm_resolve_agent_id(KlTpm *tpm,
			const gchar *uuid_option,
			const gchar *state_dir,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* reads the UUID in a DMI product_uuid file (normally /sys/class/dmi/id/product_uuid) */
gchar *
kl_tpm_read_dmi_uuid(const gchar *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* a Keylime agent id: [A-Za-z0-9_.-]+, at most 80 characters */
gboolean
kl_tpm_agent_id_is_valid(const gchar *id);

G_END_DECLS
