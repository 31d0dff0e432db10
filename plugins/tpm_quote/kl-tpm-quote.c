/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * tpm_quote: TPM2_Quote of the PCRs the verifier selects, with the AK, plus
 * the PCR values in the tpm2-tools blob Keylime parses. A steady-state cycle
 * issues exactly one TPM2_Quote and the TPM2_PCR_Read calls for the same PCRs;
 * the capabilities come from facts the core read once at start-up.
 */
#include "config.h"

#include <string.h>

#include <tss2/tss2_mu.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-pcr-blob.h"
#include "kl-tpm-quote-private.h"

#define KL_TPM_QUOTE_DEFAULT_SERVER_ID "ak"

static guint32
kl_tpm_quote_bank_mask(KlTpm *tpm, TPMI_ALG_HASH hash)
{
	GArray *banks = kl_tpm_get_pcr_banks(tpm);

	for (guint i = 0; i < banks->len; i++) {
		KlTpmPcrBank *b = &g_array_index(banks, KlTpmPcrBank, i);
		if (b->hash == hash)
			return b->pcr_mask & 0xffffff;
	}
	return 0;
}

static JsonArray *
kl_tpm_quote_name_list(const gchar *name)
{
	JsonArray *arr = json_array_new();
	json_array_add_string_element(arr, name);
	return arr;
}

static guint
kl_tpm_quote_key_size(const TPMT_PUBLIC *ak)
{
	if (ak->type == TPM2_ALG_RSA)
		return ak->parameters.rsaDetail.keyBits;
	switch (ak->parameters.eccDetail.curveID) {
	case TPM2_ECC_NIST_P192:
		return 192;
	case TPM2_ECC_NIST_P224:
		return 224;
	case TPM2_ECC_NIST_P384:
		return 384;
	case TPM2_ECC_NIST_P521:
		return 521;
	default:
		return 256;
	}
}

JsonObject *
kl_tpm_quote_build_capabilities(KlTpm *tpm, const gchar *server_identifier, GError **error)
{
	g_autoptr(JsonObject) caps = json_object_new();
	JsonArray *hashes = json_array_new();
	JsonArray *schemes = json_array_new();
	JsonObject *subjects = json_object_new();
	JsonArray *keys = json_array_new();
	JsonObject *key = json_object_new();
	GArray *algs = kl_tpm_get_hash_algorithms(tpm);
	GArray *sigs = kl_tpm_get_signature_schemes(tpm);
	const TPMT_PUBLIC *ak = kl_tpm_get_ak_public_area(tpm);
	TPMI_ALG_HASH ak_hash = kl_tpm_get_ak_hash_alg(tpm);
	TPMI_ALG_SIG_SCHEME ak_scheme = kl_tpm_get_ak_sign_scheme(tpm);
	GBytes *ak_public = kl_tpm_get_ak_public(tpm);
	g_autofree gchar *public_b64 = NULL;
	g_autoptr(GString) banks_text = g_string_new(NULL);

	json_object_set_string_member(caps, "component_version", "2.0");
	json_object_set_array_member(caps, "hash_algorithms", hashes);
	json_object_set_array_member(caps, "signature_schemes", schemes);
	json_object_set_object_member(caps, "available_subjects", subjects);
	json_object_set_array_member(caps, "certification_keys", keys);

	/* hash algorithms that have an allocated bank; the subjects are those banks */
	for (guint i = 0; i < algs->len; i++) {
		TPMI_ALG_HASH h = g_array_index(algs, guint16, i);
		const gchar *name = kl_tpm_alg_to_name(h);
		guint32 mask = kl_tpm_quote_bank_mask(tpm, h);
		JsonArray *pcrs;
		if (name == NULL || kl_tpm_hash_size(h) == 0 || mask == 0)
			continue;
		json_array_add_string_element(hashes, name);
		pcrs = json_array_new();
		for (guint pcr = 0; pcr < 24; pcr++) {
			if (mask & (1u << pcr))
				json_array_add_int_element(pcrs, pcr);
		}
		json_object_set_array_member(subjects, name, pcrs);
		g_string_append_printf(banks_text, "%s%s", banks_text->len > 0 ? ", " : "", name);
	}
	/* the schemes of the TPM that a key of the AK's type can use (the AK itself: its own) */
	for (guint i = 0; i < sigs->len; i++) {
		TPMI_ALG_SIG_SCHEME scheme = g_array_index(sigs, guint16, i);
		const gchar *name = kl_tpm_alg_to_name(scheme);
		gboolean rsa_scheme = scheme == TPM2_ALG_RSASSA || scheme == TPM2_ALG_RSAPSS;
		if (name != NULL && rsa_scheme == (ak->type == TPM2_ALG_RSA))
			json_array_add_string_element(schemes, name);
	}
	if (kl_tpm_quote_bank_mask(tpm, ak_hash) == 0) {
		json_array_add_object_element(keys, key);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "the AK signs with %s but the TPM has no %s PCR bank to quote; set "
			    "tpm_hash_alg to one of: %s (this needs a new AK)",
			    kl_tpm_alg_to_name(ak_hash) ?: "?",
			    kl_tpm_alg_to_name(ak_hash) ?: "?",
			    banks_text->str);
		return NULL;
	}

	public_b64 =
	    g_base64_encode(g_bytes_get_data(ak_public, NULL), g_bytes_get_size(ak_public));
	json_object_set_string_member(key, "key_class", "asymmetric");
	json_object_set_string_member(key, "key_algorithm", kl_tpm_alg_to_name(ak->type));
	json_object_set_int_member(key, "key_size", kl_tpm_quote_key_size(ak));
	json_object_set_string_member(key,
				      "server_identifier",
				      server_identifier != NULL && *server_identifier != '\0'
					  ? server_identifier
					  : KL_TPM_QUOTE_DEFAULT_SERVER_ID);
	/* the exact registered TPM2B_PUBLIC: the verifier prefers the key that matches */
	json_object_set_string_member(key, "public", public_b64);
	/* one value each, or the verifier picks a bank the AK cannot quote */
	json_object_set_array_member(
	    key, "allowable_hash_algorithms", kl_tpm_quote_name_list(kl_tpm_alg_to_name(ak_hash)));
	json_object_set_array_member(key,
				     "allowable_signature_schemes",
				     kl_tpm_quote_name_list(kl_tpm_alg_to_name(ak_scheme)));
	json_array_add_object_element(keys, key);
	return g_steal_pointer(&caps);
}

/* re-codes a kl_json error (INVALID_DATA) as a parameter error */
static void
kl_tpm_quote_param_error(GError **error, GError *error_local)
{
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_INVALID_PARAMETERS,
		    "chosen_parameters: %s",
		    error_local->message);
	g_error_free(error_local);
}

typedef struct {
	GBytes *nonce;
	TPMI_ALG_HASH hash;
	TPMI_ALG_SIG_SCHEME scheme;
	guint32 mask;
} KlTpmQuoteParams;

static void
kl_tpm_quote_params_clear(KlTpmQuoteParams *p)
{
	g_clear_pointer(&p->nonce, g_bytes_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KlTpmQuoteParams, kl_tpm_quote_params_clear)

static gboolean
kl_tpm_quote_parse_params(KlTpm *tpm, JsonObject *params, KlTpmQuoteParams *out, GError **error)
{
	GError *error_local = NULL;
	const gchar *challenge;
	const gchar *hash_name;
	const gchar *scheme_name;
	JsonObject *subjects;
	JsonArray *pcrs;
	guint32 allocated;

	if (params == NULL) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_INVALID_PARAMETERS, "chosen_parameters missing");
		return FALSE;
	}
	challenge = kl_json_object_get_string(params, "challenge", &error_local);
	if (challenge == NULL) {
		kl_tpm_quote_param_error(error, error_local);
		return FALSE;
	}
	out->nonce = kl_base64_decode_strict(challenge, &error_local);
	if (out->nonce == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: challenge is not base64: %s",
			    error_local->message);
		g_error_free(error_local);
		return FALSE;
	}
	if (g_bytes_get_size(out->nonce) == 0 || g_bytes_get_size(out->nonce) > sizeof(TPMU_HA)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: challenge of %" G_GSIZE_FORMAT
			    " bytes (1..%u accepted)",
			    g_bytes_get_size(out->nonce),
			    (guint)sizeof(TPMU_HA));
		return FALSE;
	}

	hash_name = kl_json_object_get_string(params, "hash_algorithm", &error_local);
	if (hash_name == NULL) {
		kl_tpm_quote_param_error(error, error_local);
		return FALSE;
	}
	out->hash = kl_tpm_alg_from_name(hash_name);
	if (out->hash != kl_tpm_get_ak_hash_alg(tpm)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: hash_algorithm '%s' is not the AK's (%s)",
			    hash_name,
			    kl_tpm_alg_to_name(kl_tpm_get_ak_hash_alg(tpm)));
		return FALSE;
	}
	scheme_name = kl_json_object_get_string(params, "signature_scheme", &error_local);
	if (scheme_name == NULL) {
		kl_tpm_quote_param_error(error, error_local);
		return FALSE;
	}
	out->scheme = kl_tpm_alg_from_name(scheme_name);
	if (out->scheme != kl_tpm_get_ak_sign_scheme(tpm)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: signature_scheme '%s' is not the AK's (%s)",
			    scheme_name,
			    kl_tpm_alg_to_name(kl_tpm_get_ak_sign_scheme(tpm)));
		return FALSE;
	}

	/* only the bank of hash_algorithm is quoted; other banks (usually null) are ignored */
	subjects = kl_json_object_get_object(params, "selected_subjects", &error_local);
	if (subjects == NULL) {
		kl_tpm_quote_param_error(error, error_local);
		return FALSE;
	}
	pcrs = kl_json_object_get_array(subjects, hash_name, &error_local);
	if (pcrs == NULL) {
		kl_tpm_quote_param_error(error, error_local);
		g_prefix_error(error, "selected_subjects: ");
		return FALSE;
	}
	out->mask = 0;
	for (guint i = 0; i < json_array_get_length(pcrs); i++) {
		JsonNode *el = json_array_get_element(pcrs, i);
		gint64 pcr;
		if (!JSON_NODE_HOLDS_VALUE(el) || json_node_get_value_type(el) != G_TYPE_INT64) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_PARAMETERS,
				    "chosen_parameters: selected_subjects.%s[%u] is not an integer",
				    hash_name,
				    i);
			return FALSE;
		}
		pcr = json_node_get_int(el);
		if (pcr < 0 || pcr > 23) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_PARAMETERS,
				    "chosen_parameters: selected_subjects.%s: PCR %" G_GINT64_FORMAT
				    " out of range 0..23",
				    hash_name,
				    pcr);
			return FALSE;
		}
		out->mask |= 1u << pcr;
	}
	if (out->mask == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: selected_subjects.%s is empty",
			    hash_name);
		return FALSE;
	}
	allocated = kl_tpm_quote_bank_mask(tpm, out->hash);
	if ((out->mask & ~allocated) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "chosen_parameters: PCRs 0x%06x are not allocated in the %s bank",
			    out->mask & ~allocated,
			    hash_name);
		return FALSE;
	}
	return TRUE;
}

static GChecksumType
kl_tpm_quote_checksum_type(TPMI_ALG_HASH hash)
{
	switch (hash) {
	case TPM2_ALG_SHA1:
		return G_CHECKSUM_SHA1;
	case TPM2_ALG_SHA384:
		return G_CHECKSUM_SHA384;
	case TPM2_ALG_SHA512:
		return G_CHECKSUM_SHA512;
	default:
		return G_CHECKSUM_SHA256;
	}
}

/* TRUE when the quote covers exactly @values of @mask in @bank */
static gboolean
kl_tpm_quote_matches(GBytes *attest,
		     TPMI_ALG_HASH bank,
		     guint32 mask,
		     TPMI_ALG_HASH hash,
		     GPtrArray *values,
		     GError **error)
{
	TPMS_ATTEST a;
	size_t off = 0;
	g_autoptr(GChecksum) sum = g_checksum_new(kl_tpm_quote_checksum_type(hash));
	guint8 digest[64];
	gsize dlen = sizeof(digest);
	TPMS_PCR_SELECTION *sel;
	TSS2_RC rc;

	rc = Tss2_MU_TPMS_ATTEST_Unmarshal(
	    g_bytes_get_data(attest, NULL), g_bytes_get_size(attest), &off, &a);
	if (rc != TSS2_RC_SUCCESS || a.type != TPM2_ST_ATTEST_QUOTE ||
	    a.attested.quote.pcrSelect.count != 1) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_TPM, "TPM2_Quote returned an unexpected TPMS_ATTEST");
		return FALSE;
	}
	sel = &a.attested.quote.pcrSelect.pcrSelections[0];
	if (sel->hash != bank || sel->sizeofSelect < 3 ||
	    ((guint32)sel->pcrSelect[0] | ((guint32)sel->pcrSelect[1] << 8) |
	     ((guint32)sel->pcrSelect[2] << 16)) != mask) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_TPM, "TPM2_Quote quoted another PCR selection");
		return FALSE;
	}
	for (guint i = 0; i < values->len; i++) {
		GBytes *v = g_ptr_array_index(values, i);
		g_checksum_update(sum, g_bytes_get_data(v, NULL), g_bytes_get_size(v));
	}
	g_checksum_get_digest(sum, digest, &dlen);
	return a.attested.quote.pcrDigest.size == dlen &&
	       memcmp(a.attested.quote.pcrDigest.buffer, digest, dlen) == 0;
}

static gchar *
kl_tpm_quote_b64(GBytes *b)
{
	return g_base64_encode(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
}

#ifdef KL_TPM_QUOTE_TESTING
static KlTpmQuoteTestHook kl_tpm_quote_test_hook;
static gpointer kl_tpm_quote_test_hook_data;

void
kl_tpm_quote_set_test_hook(KlTpmQuoteTestHook hook, gpointer user_data)
{
	kl_tpm_quote_test_hook = hook;
	kl_tpm_quote_test_hook_data = user_data;
}
#endif

JsonObject *
kl_tpm_quote_collect_with_tpm(KlTpm *tpm,
			      JsonObject *chosen_parameters,
			      GCancellable *cancellable,
			      GError **error)
{
	g_auto(KlTpmQuoteParams) params = { NULL };
	JsonObject *data;

	if (!kl_tpm_quote_parse_params(tpm, chosen_parameters, &params, error))
		return NULL;

	for (guint attempt = 1; attempt <= KL_TPM_QUOTE_MAX_ATTEMPTS; attempt++) {
		g_autoptr(GBytes) attest = NULL;
		g_autoptr(GBytes) signature = NULL;
		g_autoptr(GPtrArray) values = NULL;
		g_autoptr(GBytes) blob = NULL;
		g_autofree gchar *message_b64 = NULL;
		g_autofree gchar *signature_b64 = NULL;
		g_autofree gchar *blob_b64 = NULL;
		g_autoptr(GError) error_local = NULL;

		if (g_cancellable_set_error_if_cancelled(cancellable, error))
			return NULL;
		/* bank == signature hash: the verifier checks the bank of the signature's hash */
		if (!kl_tpm_quote(tpm,
				  params.hash,
				  params.mask,
				  params.scheme,
				  params.hash,
				  params.nonce,
				  &attest,
				  &signature,
				  error))
			return NULL;
#ifdef KL_TPM_QUOTE_TESTING
		if (kl_tpm_quote_test_hook != NULL)
			kl_tpm_quote_test_hook(attempt, kl_tpm_quote_test_hook_data);
#endif
		if (!kl_tpm_pcr_read(tpm, params.hash, params.mask, &values, error))
			return NULL;
		if (!kl_tpm_quote_matches(
			attest, params.hash, params.mask, params.hash, values, &error_local)) {
			if (error_local != NULL) {
				g_propagate_error(error, g_steal_pointer(&error_local));
				return NULL;
			}
			g_debug("PCRs changed between quote and read (attempt %u of %u)",
				attempt,
				KL_TPM_QUOTE_MAX_ATTEMPTS);
			continue;
		}
		blob = kl_tpm_quote_pcr_blob_encode(params.hash, params.mask, values, error);
		if (blob == NULL)
			return NULL;
		message_b64 = kl_tpm_quote_b64(attest);
		signature_b64 = kl_tpm_quote_b64(signature);
		blob_b64 = kl_tpm_quote_b64(blob);
		data = json_object_new();
		json_object_set_string_member(data, "message", message_b64);
		json_object_set_string_member(data, "signature", signature_b64);
		json_object_set_string_member(data, "subject_data", blob_b64);
		return data;
	}
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_TPM,
		    "the selected PCRs kept changing between TPM2_Quote and TPM2_PCR_Read "
		    "(%u attempts); the next attestation will try again",
		    KL_TPM_QUOTE_MAX_ATTEMPTS);
	return NULL;
}
