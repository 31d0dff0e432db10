/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Type-checked accessors for untrusted JSON (verifier and registrar answers,
 * chosen_parameters). Never use json_object_get_*_member() on untrusted input:
 * it cannot tell "absent" from "wrong type".
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/*
 * All getters fail with KL_ERROR_INVALID_DATA naming @key when the member is
 * missing or has the wrong type. Returned strings/objects/arrays are owned by
 * @obj (transfer none).
 */
const gchar *
kl_json_object_get_string(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean
kl_json_object_get_int(JsonObject *obj, const gchar *key, gint64 *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
gboolean
kl_json_object_get_bool(JsonObject *obj, const gchar *key, gboolean *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
JsonObject *
kl_json_object_get_object(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;
JsonArray *
kl_json_object_get_array(JsonObject *obj,
			 const gchar *key,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Optional variants: a missing member (or JSON null) yields @default_value and
 * TRUE; a present member of the wrong type is an error.
 */
gboolean
kl_json_object_get_optional_int(JsonObject *obj,
				const gchar *key,
				gint64 default_value,
				gint64 *out,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean
kl_json_object_get_optional_string(JsonObject *obj,
				   const gchar *key,
				   const gchar **out,
				   GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* strict standard base64 (with padding); (transfer full) */
GBytes *
kl_json_object_get_base64(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* strict base64 decoding of a string; rejects non-alphabet bytes and bad padding */
GBytes *
kl_base64_decode_strict(const gchar *text, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* parse a whole document that must be an object; (transfer full) */
JsonObject *
kl_json_parse_object(const gchar *data, gssize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* serialize compactly; (transfer full) */
gchar *
kl_json_object_to_string(JsonObject *obj, gsize *len);

G_END_DECLS
