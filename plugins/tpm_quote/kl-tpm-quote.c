/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * tpm_quote: TPM2_Quote of the PCRs the verifier selects, with the AK, plus
 * the PCR values in the tpm2-tools blob Keylime parses. A steady-state cycle
 * issues one TPM2_Quote, and TPM2_PCR_Read only for the PCR groups whose kept
 * values no longer hash to the quote's pcrDigest; the capabilities come from
 * facts the core read once at start-up.
 */
#include "config.h"

#include <string.h>

#include <nettle/nettle-meta.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

#include "keylime-agent/keylime-agent-plugin.h"
#include "kl-tpm-quote-attest.h"
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

/*
 * The PCR values of the last cycles, so that a steady cycle needs no
 * TPM2_PCR_Read when the PCRs did not change, and one for the group that did
 * (a growing IMA log: PCR 10). Only values the TPM gave us are kept, and they
 * are sent only when they hash to the pcrDigest of the quote they go with:
 * by the hash's collision resistance, exactly the values the TPM quoted.
 */
typedef union {
	struct sha1_ctx sha1;
	struct sha256_ctx sha256;
	struct sha512_ctx sha512; /* and SHA-384 */
} KlTpmQuoteHashCtx;

struct _KlTpmQuoteCache {
	TPMI_ALG_HASH bank;		       /* of the values; TPM2_ALG_NULL: nothing cached */
	guint32 known;			       /* PCRs with a value */
	guint64 reads;			       /* the PCR reads so far */
	guint64 changed_at[KL_TPM_QUOTE_PCRS]; /* the read that last found a PCR new or changed */
	guint8 values[KL_TPM_QUOTE_PCRS][sizeof(TPMU_HA)];
	/* the digest of the values of digest_mask (0: none), as the quote hashes them */
	guint32 digest_mask;
	TPMI_ALG_HASH digest_hash;
	guint8 digest[sizeof(TPMU_HA)];
	/*
	 * the hash state before each selected PCR's value (of ckpt_mask, 0: none):
	 * after a change only the values from the first changed PCR on are hashed
	 */
	guint32 ckpt_mask;
	TPMI_ALG_HASH ckpt_hash;
	guint32 dirty; /* PCRs changed since the states were taken */
	KlTpmQuoteHashCtx ckpt[KL_TPM_QUOTE_PCRS];
	/* the tpm2-tools PCR blob of blob_mask's values (0: none) and its base64 */
	guint32 blob_mask;
	guint8 *blob;
	gsize blob_size;
	gchar *blob_b64; /* NUL-terminated */
	/* where the message and signature are base64-encoded */
	gchar *scratch;
	gsize scratch_size;
};

KlTpmQuoteCache *
kl_tpm_quote_cache_new(void)
{
	return g_new0(KlTpmQuoteCache, 1);
}

static void
kl_tpm_quote_cache_reset(KlTpmQuoteCache *cache, TPMI_ALG_HASH bank)
{
	cache->bank = bank;
	cache->known = 0;
	cache->digest_mask = 0;
	cache->ckpt_mask = 0;
	cache->blob_mask = 0;
	memset(cache->changed_at, 0, sizeof(cache->changed_at));
}

void
kl_tpm_quote_cache_free(KlTpmQuoteCache *cache)
{
	if (cache == NULL)
		return;
	g_free(cache->blob);
	g_free(cache->blob_b64);
	g_free(cache->scratch);
	g_free(cache);
}

static const struct nettle_hash *
kl_tpm_quote_digest_alg(TPMI_ALG_HASH hash)
{
	switch (hash) {
	case TPM2_ALG_SHA1:
		return &nettle_sha1;
	case TPM2_ALG_SHA256:
		return &nettle_sha256;
	case TPM2_ALG_SHA384:
		return &nettle_sha384;
	case TPM2_ALG_SHA512:
		return &nettle_sha512;
	default:
		return NULL;
	}
}

/*
 * The cached digest of the values of @mask (all known), computed if need be
 * from the hash state before the first PCR that changed
 */
static gboolean
kl_tpm_quote_cache_digest(KlTpmQuoteCache *cache, guint32 mask, TPMI_ALG_HASH hash, GError **error)
{
	const struct nettle_hash *alg = kl_tpm_quote_digest_alg(hash);
	gsize hsize = kl_tpm_hash_size(cache->bank);
	KlTpmQuoteHashCtx ctx;
	guint32 from;

	if (cache->digest_mask == mask && cache->digest_hash == hash)
		return TRUE;
	if (alg == NULL || alg->digest_size > sizeof(cache->digest)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "no PCR digest with %s",
			    kl_tpm_alg_to_name(hash) ?: "this hash");
		return FALSE;
	}
	/* the selected PCRs to hash: from the lowest changed one on, or all */
	if (cache->ckpt_mask == mask && cache->ckpt_hash == hash && (cache->dirty & mask) != 0)
		from = mask & ~((cache->dirty & mask & -(cache->dirty & mask)) - 1);
	else
		from = mask;
	if (from == mask)
		alg->init(&ctx);
	else
		memcpy(&ctx, &cache->ckpt[__builtin_ctz(from)], alg->context_size);
	for (guint pcr = 0; pcr < KL_TPM_QUOTE_PCRS; pcr++) {
		if ((from & (1u << pcr)) == 0)
			continue;
		memcpy(&cache->ckpt[pcr], &ctx, alg->context_size);
		alg->update(&ctx, hsize, cache->values[pcr]);
	}
	alg->digest(&ctx, alg->digest_size, cache->digest);
	cache->ckpt_mask = mask;
	cache->ckpt_hash = hash;
	cache->dirty = 0;
	cache->digest_mask = mask;
	cache->digest_hash = hash;
	return TRUE;
}

/*
 * Reads @group of the bank into the cache; a PCR whose value is new or
 * changed is stamped with this read, and the digest is dropped
 */
static gboolean
kl_tpm_quote_cache_read(KlTpm *tpm, KlTpmQuoteCache *cache, guint32 group, GError **error)
{
	g_autoptr(GPtrArray) values = NULL;
	gsize hsize = kl_tpm_hash_size(cache->bank);
	guint i = 0;

	if (!kl_tpm_pcr_read(tpm, cache->bank, group, &values, error))
		return FALSE;
	if (values->len != (guint)__builtin_popcount(group)) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_TPM, "TPM2_PCR_Read returned an inconsistent answer");
		return FALSE;
	}
	cache->reads++;
	for (guint pcr = 0; pcr < KL_TPM_QUOTE_PCRS; pcr++) {
		GBytes *v;
		if ((group & (1u << pcr)) == 0)
			continue;
		v = g_ptr_array_index(values, i++);
		if (g_bytes_get_size(v) != hsize) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "TPM2_PCR_Read returned an inconsistent answer");
			cache->known &= ~group;
			cache->digest_mask = 0;
			cache->ckpt_mask = 0;
			return FALSE;
		}
		if ((cache->known & (1u << pcr)) != 0 &&
		    memcmp(cache->values[pcr], g_bytes_get_data(v, NULL), hsize) == 0)
			continue;
		memcpy(cache->values[pcr], g_bytes_get_data(v, NULL), hsize);
		cache->known |= 1u << pcr;
		cache->changed_at[pcr] = cache->reads;
		cache->dirty |= 1u << pcr;
		cache->digest_mask = 0;
	}
	return TRUE;
}

/*
 * The selected PCRs in groups of at most 8 (what one TPM2_PCR_Read returns),
 * in the order to read them: groups with a PCR never read first, then the
 * group that changed most recently. Returns the number of groups.
 */
static guint
kl_tpm_quote_groups(KlTpmQuoteCache *cache, guint32 mask, guint32 groups[3])
{
	guint64 key[3];
	guint n = 0;
	guint in_group = 0;

	for (guint pcr = 0; pcr < KL_TPM_QUOTE_PCRS; pcr++) {
		if ((mask & (1u << pcr)) == 0)
			continue;
		if (in_group == 0) {
			groups[n] = 0;
			key[n] = 0;
			n++;
		}
		groups[n - 1] |= 1u << pcr;
		if ((cache->known & (1u << pcr)) == 0)
			key[n - 1] = G_MAXUINT64;
		else
			key[n - 1] = MAX(key[n - 1], cache->changed_at[pcr]);
		in_group = (in_group + 1) % 8;
	}
	/* insertion sort, most recent first; ties keep PCR order */
	for (guint i = 1; i < n; i++) {
		for (guint j = i; j > 0 && key[j] > key[j - 1]; j--) {
			guint64 k = key[j];
			guint32 g = groups[j];
			key[j] = key[j - 1];
			groups[j] = groups[j - 1];
			key[j - 1] = k;
			groups[j - 1] = g;
		}
	}
	return n;
}

/*
 * TRUE when the values of @mask hash to @q's pcrDigest, after reading as few
 * PCR groups as needed; FALSE without @error: they did not, even after
 * reading them all (the PCRs changed since the quote)
 */
static gboolean
kl_tpm_quote_cache_match(KlTpm *tpm,
			 KlTpmQuoteCache *cache,
			 guint32 mask,
			 TPMI_ALG_HASH hash,
			 const KlTpmQuoteAttest *q,
			 GError **error)
{
	gsize dsize = kl_tpm_hash_size(hash);
	guint32 groups[3];
	guint n;

	if (q->digest_size != dsize) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "TPM2_Quote returned a pcrDigest of %" G_GSIZE_FORMAT " bytes",
			    q->digest_size);
		return FALSE;
	}
	if ((mask & ~cache->known) == 0) {
		if (!kl_tpm_quote_cache_digest(cache, mask, hash, error))
			return FALSE;
		if (memcmp(cache->digest, q->digest, dsize) == 0)
			return TRUE;
	}
	n = kl_tpm_quote_groups(cache, mask, groups);
	for (guint i = 0; i < n; i++) {
		if (!kl_tpm_quote_cache_read(tpm, cache, groups[i], error))
			return FALSE;
		if ((mask & ~cache->known) != 0)
			continue;
		if (!kl_tpm_quote_cache_digest(cache, mask, hash, error))
			return FALSE;
		if (memcmp(cache->digest, q->digest, dsize) == 0)
			return TRUE;
	}
	return FALSE;
}

/* the byte offset in the PCR blob of the value of the @index-th selected PCR */
static gsize
kl_tpm_quote_blob_value_offset(guint index)
{
	return KL_TPM_QUOTE_PCR_BLOB_HEADER_SIZE +
	       (gsize)(index / 8) * KL_TPM_QUOTE_PCR_BLOB_DIGEST_SIZE + 4 + (index % 8) * 66 + 2;
}

/* the PCR blob of the cached values of @mask and its base64, patched where values changed */
static gboolean
kl_tpm_quote_cache_blob(KlTpmQuoteCache *cache, guint32 mask, GError **error)
{
	gsize hsize = kl_tpm_hash_size(cache->bank);
	gsize lo = G_MAXSIZE;
	gsize hi = 0;
	guint index = 0;

	if (cache->blob_mask != mask) {
		g_autoptr(GPtrArray) values =
		    g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
		g_autoptr(GBytes) blob = NULL;
		gsize b64_len;

		for (guint pcr = 0; pcr < KL_TPM_QUOTE_PCRS; pcr++) {
			if ((mask & (1u << pcr)) != 0)
				g_ptr_array_add(values, g_bytes_new(cache->values[pcr], hsize));
		}
		blob = kl_tpm_quote_pcr_blob_encode(cache->bank, mask, values, error);
		if (blob == NULL)
			return FALSE;
		g_free(cache->blob);
		g_free(cache->blob_b64);
		cache->blob = g_bytes_unref_to_data(g_steal_pointer(&blob), &cache->blob_size);
		b64_len = KL_TPM_QUOTE_B64_LEN(cache->blob_size);
		cache->blob_b64 = g_malloc(b64_len + 1);
		kl_tpm_quote_b64_encode_groups(
		    cache->blob, cache->blob_size, 0, b64_len / 4, cache->blob_b64);
		cache->blob_b64[b64_len] = '\0';
		cache->blob_mask = mask;
		return TRUE;
	}
	for (guint pcr = 0; pcr < KL_TPM_QUOTE_PCRS; pcr++) {
		gsize off;
		if ((mask & (1u << pcr)) == 0)
			continue;
		off = kl_tpm_quote_blob_value_offset(index++);
		if (memcmp(cache->blob + off, cache->values[pcr], hsize) == 0)
			continue;
		memcpy(cache->blob + off, cache->values[pcr], hsize);
		lo = MIN(lo, off);
		hi = MAX(hi, off + hsize);
	}
	if (hi > 0)
		kl_tpm_quote_b64_encode_groups(
		    cache->blob, cache->blob_size, lo / 3, (hi + 2) / 3, cache->blob_b64);
	return TRUE;
}

/* base64 of @data in the cache's scratch buffer */
static const gchar *
kl_tpm_quote_cache_b64(KlTpmQuoteCache *cache, GBytes *data)
{
	gsize size = 0;
	const guint8 *p = g_bytes_get_data(data, &size);
	gsize len = KL_TPM_QUOTE_B64_LEN(size);

	if (cache->scratch_size < len + 1) {
		g_free(cache->scratch);
		cache->scratch_size = MAX(len + 1, 1024);
		cache->scratch = g_malloc(cache->scratch_size);
	}
	kl_tpm_quote_b64_encode_groups(p, size, 0, len / 4, cache->scratch);
	cache->scratch[len] = '\0';
	return cache->scratch;
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
			      KlTpmQuoteCache *cache,
			      JsonObject *chosen_parameters,
			      GCancellable *cancellable,
			      GError **error)
{
	g_auto(KlTpmQuoteParams) params = { NULL };
	g_autoptr(KlTpmQuoteCache) own = NULL;

	if (!kl_tpm_quote_parse_params(tpm, chosen_parameters, &params, error))
		return NULL;
	if (cache == NULL)
		cache = own = kl_tpm_quote_cache_new();
	if (cache->bank != params.hash)
		kl_tpm_quote_cache_reset(cache, params.hash);

	for (guint attempt = 1; attempt <= KL_TPM_QUOTE_MAX_ATTEMPTS; attempt++) {
		g_autoptr(GBytes) attest = NULL;
		g_autoptr(GBytes) signature = NULL;
		g_autoptr(GError) error_local = NULL;
		KlTpmQuoteAttest q;
		JsonObject *data;

		if (g_cancellable_set_error_if_cancelled(cancellable, error))
			return NULL;
		/* without a cache, every attempt reads all the PCRs after its quote */
		if (own != NULL)
			kl_tpm_quote_cache_reset(cache, params.hash);
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
		if (!kl_tpm_quote_attest_read(
			g_bytes_get_data(attest, NULL), g_bytes_get_size(attest), &q)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "TPM2_Quote returned an unexpected TPMS_ATTEST");
			return NULL;
		}
		if (q.bank != params.hash || q.mask != params.mask) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_TPM,
				    "TPM2_Quote quoted another PCR selection");
			return NULL;
		}
		if (!kl_tpm_quote_cache_match(
			tpm, cache, params.mask, params.hash, &q, &error_local)) {
			if (error_local != NULL) {
				g_propagate_error(error, g_steal_pointer(&error_local));
				return NULL;
			}
			g_debug("PCRs changed between quote and read (attempt %u of %u)",
				attempt,
				KL_TPM_QUOTE_MAX_ATTEMPTS);
			continue;
		}
		if (!kl_tpm_quote_cache_blob(cache, params.mask, error))
			return NULL;
		data = json_object_new();
		json_object_set_string_member(
		    data, "message", kl_tpm_quote_cache_b64(cache, attest));
		json_object_set_string_member(
		    data, "signature", kl_tpm_quote_cache_b64(cache, signature));
		json_object_set_string_member(data, "subject_data", cache->blob_b64);
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
