/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * agent_data.json in the Rust agent's format (serde_json pretty layout): the
 * AK's public and private parts, its algorithms and the EK hash it was made
 * for. Written atomically with mode 0600; a corrupt file or one made for other
 * algorithms or another EK is an error naming the file and the recovery.
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <tss2/tss2_mu.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-data.h"
#include "kl-atomic-file.h"
#include "kl-tpm-backend.h"

static void
kl_tpm_json_append_bytes(GString *s, const gchar *key, const guint8 *data, gsize len, gboolean last)
{
	/* serde_json's to_writer_pretty layout: two-space indent, one value per line */
	g_string_append_printf(s, "  \"%s\": [", key);
	if (len == 0) {
		g_string_append(s, "]");
	} else {
		for (gsize i = 0; i < len; i++)
			g_string_append_printf(s, "%s\n    %u", i == 0 ? "" : ",", data[i]);
		g_string_append(s, "\n  ]");
	}
	g_string_append(s, last ? "\n" : ",\n");
}

gboolean
kl_tpm_agent_data_store(const gchar *path,
			const TPMT_PUBLIC *ak_public,
			const TPM2B_PRIVATE *ak_private,
			const gchar *ek_hash,
			GError **error)
{
	g_autoptr(GString) s = g_string_new("{\n");
	guint8 buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	TPMI_ALG_HASH hash;
	TPMI_ALG_SIG_SCHEME scheme;
	const gchar *hash_name;
	const gchar *scheme_name;
	TSS2_RC rc;

	if (ak_public->type == TPM2_ALG_RSA) {
		scheme = ak_public->parameters.rsaDetail.scheme.scheme;
		hash = ak_public->parameters.rsaDetail.scheme.details.anySig.hashAlg;
	} else {
		scheme = ak_public->parameters.eccDetail.scheme.scheme;
		hash = ak_public->parameters.eccDetail.scheme.details.anySig.hashAlg;
	}
	hash_name = kl_tpm_alg_to_rust_name(hash);
	scheme_name = kl_tpm_alg_to_rust_name(scheme);
	if (hash_name == NULL || scheme_name == NULL || kl_tpm_hash_size(hash) == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "cannot record an AK with scheme 0x%04x / hash 0x%04x in %s",
			    scheme,
			    hash,
			    path);
		return FALSE;
	}
	rc = Tss2_MU_TPMT_PUBLIC_Marshal(ak_public, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Tss2_MU_TPMT_PUBLIC_Marshal"));
		return FALSE;
	}
	g_string_append_printf(s, "  \"ak_hash_alg\": \"%s\",\n", hash_name);
	g_string_append_printf(s, "  \"ak_sign_alg\": \"%s\",\n", scheme_name);
	kl_tpm_json_append_bytes(s, "ak_public", buf, off, FALSE);
	kl_tpm_json_append_bytes(s, "ak_private", ak_private->buffer, ak_private->size, FALSE);
	kl_tpm_json_append_bytes(s, "ek_hash", (const guint8 *)ek_hash, strlen(ek_hash), TRUE);
	g_string_append(s, "}");
	return kl_tpm_write_file_atomic(path, s->str, s->len, 0600, error);
}

/* reads a JSON array of byte values (0..255) */
static gboolean
kl_tpm_agent_data_get_bytes(
    JsonObject *obj, const gchar *key, guint8 *out, gsize max, gsize *out_len, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	JsonArray *arr;
	guint n;

	if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not an array", key);
		return FALSE;
	}
	arr = json_node_get_array(node);
	n = json_array_get_length(arr);
	if (n > max) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is too long", key);
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		JsonNode *el = json_array_get_element(arr, i);
		gint64 v;
		if (!JSON_NODE_HOLDS_VALUE(el) || json_node_get_value_type(el) != G_TYPE_INT64) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "'%s'[%u] is not an integer",
				    key,
				    i);
			return FALSE;
		}
		v = json_node_get_int(el);
		if (v < 0 || v > 255) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "'%s'[%u] is not a byte value",
				    key,
				    i);
			return FALSE;
		}
		out[i] = (guint8)v;
	}
	*out_len = n;
	return TRUE;
}

static const gchar *
kl_tpm_agent_data_get_string(JsonObject *obj, const gchar *key, GError **error)
{
	JsonNode *node = json_object_get_member(obj, key);
	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'%s' is not a string", key);
		return NULL;
	}
	return json_node_get_string(node);
}

static gboolean
kl_tpm_agent_data_parse(const gchar *contents,
			gsize len,
			TPMI_ALG_HASH *hash,
			TPMI_ALG_SIG_SCHEME *scheme,
			TPMT_PUBLIC *ak_public,
			TPM2B_PRIVATE *ak_private,
			gchar **ek_hash,
			GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;
	JsonObject *obj;
	const gchar *s;
	guint8 buf[sizeof(TPMT_PUBLIC)];
	guint8 ekh[129];
	gsize n = 0;
	size_t off = 0;
	TSS2_RC rc;

	if (!json_parser_load_from_data(parser, contents, (gssize)len, error))
		return FALSE;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "not a JSON object");
		return FALSE;
	}
	obj = json_node_get_object(root);

	s = kl_tpm_agent_data_get_string(obj, "ak_hash_alg", error);
	if (s == NULL)
		return FALSE;
	*hash = kl_tpm_alg_from_rust_name(s);
	if (kl_tpm_hash_size(*hash) == 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "unknown ak_hash_alg '%s'", s);
		return FALSE;
	}
	s = kl_tpm_agent_data_get_string(obj, "ak_sign_alg", error);
	if (s == NULL)
		return FALSE;
	*scheme = kl_tpm_alg_from_rust_name(s);
	if (*scheme == TPM2_ALG_ERROR || kl_tpm_hash_size(*scheme) != 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "unknown ak_sign_alg '%s'", s);
		return FALSE;
	}

	if (!kl_tpm_agent_data_get_bytes(obj, "ak_public", buf, sizeof(buf), &n, error))
		return FALSE;
	memset(ak_public, 0, sizeof(*ak_public));
	rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(buf, n, &off, ak_public);
	if (rc != TSS2_RC_SUCCESS || off != n) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "'ak_public' is not a marshalled TPMT_PUBLIC");
		return FALSE;
	}
	memset(ak_private, 0, sizeof(*ak_private));
	if (!kl_tpm_agent_data_get_bytes(
		obj, "ak_private", ak_private->buffer, sizeof(ak_private->buffer), &n, error))
		return FALSE;
	if (n == 0) {
		g_set_error(error, KL_ERROR, KL_ERROR_INVALID_DATA, "'ak_private' is empty");
		return FALSE;
	}
	ak_private->size = (UINT16)n;
	if (!kl_tpm_agent_data_get_bytes(obj, "ek_hash", ekh, sizeof(ekh) - 1, &n, error))
		return FALSE;
	ekh[n] = '\0';
	*ek_hash = g_strndup((const gchar *)ekh, n);
	return TRUE;
}

gboolean
kl_tpm_agent_data_load(const gchar *path,
		       const KlTpmKeyParams *params,
		       const gchar *ek_hash,
		       TPMT_PUBLIC *ak_public,
		       TPM2B_PRIVATE *ak_private,
		       GError **error)
{
	g_autofree gchar *contents = NULL;
	g_autofree gchar *file_ek_hash = NULL;
	g_autoptr(GError) error_local = NULL;
	gsize len = 0;
	TPMI_ALG_HASH hash = TPM2_ALG_ERROR;
	TPMI_ALG_SIG_SCHEME scheme = TPM2_ALG_ERROR;
	const gchar *file_type;
	const gchar *want_type;

	if (!g_file_get_contents(path, &contents, &len, &error_local)) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_set_error(error, KL_ERROR, KL_ERROR_NOT_FOUND, "%s does not exist", path);
			return FALSE;
		}
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the AK file %s: %s",
			    path,
			    error_local->message);
		return FALSE;
	}
	if (!kl_tpm_agent_data_parse(contents,
				     len,
				     &hash,
				     &scheme,
				     ak_public,
				     ak_private,
				     &file_ek_hash,
				     &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "the AK file %s is corrupt (%s); to start over with a new AK, delete "
			    "it and the agent's record at the registrar",
			    path,
			    error_local->message);
		return FALSE;
	}
	file_type =
	    ak_public->type == TPM2_ALG_RSA
		? kl_tpm_key_type_name(
		      TPM2_ALG_RSA, ak_public->parameters.rsaDetail.keyBits, TPM2_ECC_NONE)
		: kl_tpm_key_type_name(ak_public->type, 0, ak_public->parameters.eccDetail.curveID);
	want_type = kl_tpm_key_type_name(params->type, params->key_bits, params->curve);
	if (hash != params->hash || scheme != params->scheme || file_type == NULL ||
	    g_strcmp0(file_type, want_type) != 0) {
		g_set_error(
		    error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "the AK in %s (%s %s %s) does not match tpm_encryption_alg/tpm_hash_alg/"
		    "tpm_signing_alg (%s %s %s); restore the previous settings, or delete "
		    "the file and the agent's record at the registrar to create a new AK",
		    path,
		    file_type ?: kl_tpm_alg_to_name(ak_public->type) ?: "?",
		    kl_tpm_alg_to_name(hash) ?: "?",
		    kl_tpm_alg_to_name(scheme) ?: "?",
		    want_type ?: "?",
		    kl_tpm_alg_to_name(params->hash),
		    kl_tpm_alg_to_name(params->scheme));
		return FALSE;
	}
	if (g_strcmp0(file_ek_hash, ek_hash) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "the AK in %s was made under another EK (EK hash %s, this TPM: %s); "
			    "check ek_handle/tpm_encryption_alg, or delete the file and the "
			    "agent's record at the registrar to create a new AK",
			    path,
			    file_ek_hash,
			    ek_hash);
		return FALSE;
	}
	return TRUE;
}
