/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Registration with the Keylime registrar (protocol.md §2): API version
 * choice, POST of the identity, activation with the auth_tag.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "kl-http.h"

G_BEGIN_DECLS

typedef struct _KlRegistrarClient KlRegistrarClient;

/**
 * kl_registrar_client_new:
 * @http: (transfer none): the registrar's transport (must outlive the client)
 * @base_url: "http://ip:port" or "https://ip:tls_port"
 * @api_versions: the registrar_api_versions option: ["default"], ["latest"]
 *   or a list such as ["2.5", "2.6"]
 *
 * Fails with KL_ERROR_CONFIG when @api_versions enables no usable version.
 */
KlRegistrarClient *
kl_registrar_client_new(KlHttp *http,
			const gchar *base_url,
			const gchar *const *api_versions,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;
void
kl_registrar_client_free(KlRegistrarClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlRegistrarClient, kl_registrar_client_free)

const gchar *
kl_registrar_client_get_url(KlRegistrarClient *client);
/* the chosen version ("2.6"), NULL before kl_registrar_client_negotiate() */
const gchar *
kl_registrar_client_get_version(KlRegistrarClient *client);

/*
 * GET /version and choose: 3.0 only if enabled, offered and GET /v3.0/ answers
 * 200; else the registrar's current version if enabled, else the newest
 * enabled 2.x it supports. When /version does not answer usefully, the newest
 * enabled 2.x is used. Fails only on transport errors.
 */
gboolean
kl_registrar_client_negotiate(KlRegistrarClient *client,
			      GCancellable *cancellable,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * POST the registration @body (ek_tpm, aik_tpm, ...) and return the decoded
 * credential blob. 403 = the registrar knows this agent id with another
 * identity: KL_ERROR_AUTH; other failures KL_ERROR_HTTP / _NETWORK / _INVALID_DATA.
 */
GBytes *
kl_registrar_client_register(KlRegistrarClient *client,
			     const gchar *agent_id,
			     JsonObject *body,
			     GCancellable *cancellable,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* PUT {"auth_tag"}. 400 = the registrar deleted the record: KL_ERROR_NOT_FOUND */
gboolean
kl_registrar_client_activate(KlRegistrarClient *client,
			     const gchar *agent_id,
			     const gchar *auth_tag,
			     GCancellable *cancellable,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* the Retry-After (ms, clamped) of the last answer when it was a 429/503, else -1 */
gint64
kl_registrar_client_get_retry_after_ms(KlRegistrarClient *client);

/* lower-case hex HMAC-SHA384(key = base64(@secret) as ASCII, msg = @agent_id) */
gchar *
kl_registrar_compute_auth_tag(GBytes *secret, const gchar *agent_id);

/* the registration body: ek_tpm, aik_tpm, ekcert (when given), ip, port (when given) */
JsonObject *
kl_registrar_build_body(GBytes *ek_public,
			GBytes *ak_public,
			GBytes *ek_cert,
			const gchar *contact_ip,
			gint64 contact_port);

/*
 * The version choice itself (pure): @enabled from kl_registrar_parse_versions(),
 * @current / @supported from GET /version (NULL when unknown), @v3_usable: the
 * GET /v3.0/ probe answered 200. Returns NULL when nothing fits.
 */
gchar *
kl_registrar_choose_version(const gchar *const *enabled,
			    const gchar *current,
			    const gchar *const *supported,
			    gboolean v3_usable);
/* the enabled versions, oldest first, for a registrar_api_versions value */
GStrv
kl_registrar_parse_versions(const gchar *const *option, GError **error);

G_END_DECLS
