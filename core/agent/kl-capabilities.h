/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The phase-1 body (evidence_supported + system_info), written from the text
 * of each plugin's entry: an entry the plugin did not change since the last
 * round (the same sealed object, see KlPluginInfo.get_capabilities) is not
 * written again, and when none changed, the whole body is the last one. The
 * text is that of kl_verifier_build_capabilities().
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

/*
 * @evidence_supported: JsonObject* entries; the body (transfer none: valid
 * until the next call). When every entry is the same sealed object as in the
 * last round, in the same order, with the same @boot_time, it is the last
 * body, not written again.
 */
const gchar *
kl_capabilities_body_build(KlCapabilitiesBody *self,
			   GPtrArray *evidence_supported,
			   const gchar *boot_time,
			   gsize *len);

/* how many rounds sent the last body again (tests) */
guint64
kl_capabilities_body_get_reused(KlCapabilitiesBody *self);

G_END_DECLS
