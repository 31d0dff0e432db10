/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The phase-1 body (evidence_supported + system_info), written from the text
 * of each plugin's entry: an entry the plugin did not change since the last
 * round (the same sealed object, see KlPluginInfo.get_capabilities) is not
 * written again. The text is that of kl_verifier_build_capabilities().
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _KlCapabilitiesBody KlCapabilitiesBody;

KlCapabilitiesBody *
kl_capabilities_body_new(void);
void
kl_capabilities_body_free(KlCapabilitiesBody *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlCapabilitiesBody, kl_capabilities_body_free)

/* @evidence_supported: JsonObject* entries; (transfer full) the body */
gchar *
kl_capabilities_body_build(KlCapabilitiesBody *self,
			   GPtrArray *evidence_supported,
			   const gchar *boot_time,
			   gsize *len);

G_END_DECLS
