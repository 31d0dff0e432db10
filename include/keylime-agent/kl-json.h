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

/**
 * kl_json_object_get_string:
 * @obj: an untrusted JSON object
 * @key: the member
 * @error: a #GError
 *
 * Returns: (transfer none): the string member @key, or %NULL with
 *   %KL_ERROR_INVALID_DATA naming @key when it is missing or not a string
 *
 * Since: 1.0
 */
const gchar *
kl_json_object_get_string(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/**
 * kl_json_object_get_int:
 * @obj: an untrusted JSON object
 * @key: the member
 * @out: (out): the value
 * @error: a #GError
 *
 * Reads an integer member; a double, a string or an out-of-range number is
 * %KL_ERROR_INVALID_DATA naming @key.
 *
 * Returns: %TRUE when @out was set
 *
 * Since: 1.0
 */
gboolean
kl_json_object_get_int(JsonObject *obj, const gchar *key, gint64 *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
/**
 * kl_json_object_get_bool:
 * @obj: an untrusted JSON object
 * @key: the member
 * @out: (out): the value
 * @error: a #GError
 *
 * Reads a boolean member (JSON true/false only).
 *
 * Returns: %TRUE when @out was set
 *
 * Since: 1.0
 */
gboolean
kl_json_object_get_bool(JsonObject *obj, const gchar *key, gboolean *out, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
/**
 * kl_json_object_get_object:
 * @obj: an untrusted JSON object
 * @key: the member
 * @error: a #GError
 *
 * Returns: (transfer none): the object member @key, or %NULL with
 *   %KL_ERROR_INVALID_DATA when it is missing or not an object
 *
 * Since: 1.0
 */
JsonObject *
kl_json_object_get_object(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/**
 * kl_json_object_get_array:
 * @obj: an untrusted JSON object
 * @key: the member
 * @error: a #GError
 *
 * Returns: (transfer none): the array member @key, or %NULL with
 *   %KL_ERROR_INVALID_DATA when it is missing or not an array
 *
 * Since: 1.0
 */
JsonArray *
kl_json_object_get_array(JsonObject *obj,
			 const gchar *key,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_json_object_get_optional_int:
 * @obj: an untrusted JSON object
 * @key: the member
 * @default_value: the value of a missing member (or JSON null)
 * @out: (out): the value
 * @error: a #GError
 *
 * Like kl_json_object_get_int(), but a missing member is not an error; a
 * present member of the wrong type is.
 *
 * Returns: %TRUE when @out was set
 *
 * Since: 1.0
 */
gboolean
kl_json_object_get_optional_int(JsonObject *obj,
				const gchar *key,
				gint64 default_value,
				gint64 *out,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;
/**
 * kl_json_object_get_optional_string:
 * @obj: an untrusted JSON object
 * @key: the member
 * @out: (out) (transfer none) (nullable): the string, %NULL when the member
 *   is missing or JSON null
 * @error: a #GError
 *
 * Like kl_json_object_get_string(), but a missing member is not an error; a
 * present member of the wrong type is.
 *
 * Returns: %TRUE when @out was set
 *
 * Since: 1.0
 */
gboolean
kl_json_object_get_optional_string(JsonObject *obj,
				   const gchar *key,
				   const gchar **out,
				   GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_json_object_get_base64:
 * @obj: an untrusted JSON object
 * @key: the member
 * @error: a #GError
 *
 * Decodes a string member holding strict standard base64 (with padding).
 *
 * Returns: (transfer full): the decoded bytes, or %NULL with
 *   %KL_ERROR_INVALID_DATA naming @key
 *
 * Since: 1.0
 */
GBytes *
kl_json_object_get_base64(JsonObject *obj,
			  const gchar *key,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_base64_decode_strict:
 * @text: standard base64 with padding
 * @error: a #GError
 *
 * Decodes only the canonical encoding: a byte outside the alphabet, bad
 * padding or non-zero trailing bits is %KL_ERROR_INVALID_DATA.
 *
 * Returns: (transfer full): the decoded bytes, or %NULL
 *
 * Since: 1.0
 */
GBytes *
kl_base64_decode_strict(const gchar *text, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_json_parse_object:
 * @data: the document
 * @len: its length, or -1 when @data is NUL-terminated
 * @error: a #GError
 *
 * Parses a whole document whose root must be an object.
 *
 * Returns: (transfer full): the object, or %NULL with %KL_ERROR_INVALID_DATA
 *
 * Since: 1.0
 */
JsonObject *
kl_json_parse_object(const gchar *data, gssize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/**
 * kl_json_object_to_string:
 * @obj: an object
 * @len: (out) (optional): the length of the result
 *
 * Serializes @obj compactly.
 *
 * Returns: (transfer full): the JSON text
 *
 * Since: 1.0
 */
gchar *
kl_json_object_to_string(JsonObject *obj, gsize *len);

G_END_DECLS
