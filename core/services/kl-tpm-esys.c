/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The real TPM through ESYS. Without a resource manager (swtpm, /dev/tpm0)
 * the TPM has only a few object slots, so every transient object and session
 * created here is flushed as soon as it is no longer needed: only the AK stays
 * loaded; a transient EK is re-created for ActivateCredential and flushed
 * right after.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-data.h"
#include "kl-esys-autoptr.h"
#include "kl-tpm-backend.h"

typedef struct {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	gchar *tcti_conf;
	KlTpmKeyParams params;
	gchar *endorsement_auth;
	ESYS_TR ek;		/* ESYS_TR_NONE when not loaded */
	gboolean ek_persistent; /* never flushed */
	gchar *ek_handle_text;	/* ek_handle option (persistent EK), to load it again */
	TSS2_RC last_rc;	/* of the last failed command (advice for the operator) */
	int lock_fd;		/* flock on agent_data.json.lock while this agent runs, or -1 */
	gboolean sole_user;	/* no other agent with this agent_data.json runs */
	/* the EK: template (TCG EK Credential Profile, or from NV), its certificate's NV index */
	const KlTpmEkProfile *ek_profile; /* NULL for a persistent EK of no known profile */
	TPMT_PUBLIC ek_template;
	guint32 ek_cert_index;	    /* 0: no certificate */
	gboolean ek_user_with_auth; /* high range: a password session serves the EK */
	TPMI_ALG_HASH ek_name_alg;  /* hash of the PolicySecret session otherwise */
	gboolean have_rsa;
	gboolean have_ecc;
	/* the transient EK saved when it is flushed: loaded again instead of re-created */
	TPMS_CONTEXT *ek_context;
	guint32 nv_buffer_max;
	/* the AK as loaded at start-up, to load it again when the TPM lost it */
	gboolean have_ak_blob;
	TPMT_PUBLIC ak_public;
	TPM2B_PRIVATE ak_private;
} KlTpmEsys;

static void
kl_tpm_esys_free_data(KlTpmEsys *self)
{
	if (self->endorsement_auth != NULL)
		memset(self->endorsement_auth, 0, strlen(self->endorsement_auth));
	g_free(self->endorsement_auth);
	g_free(self->tcti_conf);
	g_free(self->ek_handle_text);
	if (self->lock_fd >= 0)
		close(self->lock_fd); /* releases the lock */
	Esys_Free(self->ek_context);
	memset(&self->ak_private, 0, sizeof(self->ak_private));
	g_free(self);
}

static KlTpmEsys *
kl_tpm_esys_get(KlTpm *tpm)
{
	return tpm->backend_data;
}

static void
kl_tpm_esys_flush(KlTpmEsys *self, ESYS_TR *handle)
{
	if (*handle == ESYS_TR_NONE || *handle == ESYS_TR_PASSWORD)
		return;
	(void)Esys_FlushContext(self->esys, *handle);
	*handle = ESYS_TR_NONE;
}

/* ------------------------------------------------------------------ */
/* capabilities                                                         */

static gboolean
kl_tpm_esys_get_cap(KlTpmEsys *self,
		    TPM2_CAP cap,
		    guint32 property,
		    guint32 count,
		    TPMI_YES_NO *more,
		    TPMS_CAPABILITY_DATA **data,
		    GError **error)
{
	TSS2_RC rc = Esys_GetCapability(
	    self->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, cap, property, count, more, data);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_GetCapability"));
		return FALSE;
	}
	return TRUE;
}

static gboolean
kl_tpm_esys_read_algorithms(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	guint32 next = TPM2_ALG_FIRST;
	TPMI_YES_NO more = TPM2_YES;

	while (more == TPM2_YES) {
		g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
		TPML_ALG_PROPERTY *algs;
		if (!kl_tpm_esys_get_cap(
			self, TPM2_CAP_ALGS, next, TPM2_MAX_CAP_ALGS, &more, &data, error))
			return FALSE;
		algs = &data->data.algorithms;
		for (guint32 i = 0; i < algs->count; i++) {
			TPM2_ALG_ID alg = algs->algProperties[i].alg;
			guint16 v = alg;
			next = (guint32)alg + 1;
			if (alg == TPM2_ALG_RSA)
				self->have_rsa = TRUE;
			else if (alg == TPM2_ALG_ECC)
				self->have_ecc = TRUE;
			if (kl_tpm_alg_to_name(alg) == NULL)
				continue;
			if (kl_tpm_hash_size(alg) != 0)
				g_array_append_val(tpm->hash_algorithms, v);
			else if (alg == TPM2_ALG_RSASSA || alg == TPM2_ALG_RSAPSS ||
				 alg == TPM2_ALG_ECDSA || alg == TPM2_ALG_ECSCHNORR ||
				 alg == TPM2_ALG_SM2)
				g_array_append_val(tpm->signature_schemes, v);
		}
		if (algs->count == 0)
			more = TPM2_NO;
	}
	return TRUE;
}

static gboolean
kl_tpm_esys_read_pcr_banks(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TPML_PCR_SELECTION *sel;

	if (!kl_tpm_esys_get_cap(self, TPM2_CAP_PCRS, 0, 1, &more, &data, error))
		return FALSE;
	sel = &data->data.assignedPCR;
	for (guint32 i = 0; i < sel->count; i++) {
		KlTpmPcrBank bank = { .hash = sel->pcrSelections[i].hash, .pcr_mask = 0 };
		for (guint j = 0; j < sel->pcrSelections[i].sizeofSelect && j < 3; j++)
			bank.pcr_mask |= (guint32)sel->pcrSelections[i].pcrSelect[j] << (8 * j);
		if (bank.pcr_mask != 0 && kl_tpm_hash_size(bank.hash) != 0)
			g_array_append_val(tpm->pcr_banks, bank);
	}
	return TRUE;
}

static void
kl_tpm_esys_append_chars(GString *s, guint32 v)
{
	for (int shift = 24; shift >= 0; shift -= 8) {
		gchar c = (gchar)((v >> shift) & 0xff);
		if (!g_ascii_isprint(c))
			continue;
		/* vendor strings are space-padded: keep single spaces */
		if (c == ' ' && (s->len == 0 || s->str[s->len - 1] == ' '))
			continue;
		g_string_append_c(s, c);
	}
}

static gboolean
kl_tpm_esys_read_properties(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
	TPMI_YES_NO more = TPM2_NO;
	guint32 manufacturer = 0;
	guint32 vendor[4] = { 0 };
	guint32 fw1 = 0;
	guint32 fw2 = 0;
	g_autoptr(GString) manuf = g_string_new(NULL);
	g_autoptr(GString) vend = g_string_new(NULL);

	if (!kl_tpm_esys_get_cap(self,
				 TPM2_CAP_TPM_PROPERTIES,
				 TPM2_PT_FIXED,
				 TPM2_MAX_TPM_PROPERTIES,
				 &more,
				 &data,
				 error))
		return FALSE;
	for (guint32 i = 0; i < data->data.tpmProperties.count; i++) {
		TPMS_TAGGED_PROPERTY *p = &data->data.tpmProperties.tpmProperty[i];
		switch (p->property) {
		case TPM2_PT_MANUFACTURER:
			manufacturer = p->value;
			break;
		case TPM2_PT_VENDOR_STRING_1:
		case TPM2_PT_VENDOR_STRING_2:
		case TPM2_PT_VENDOR_STRING_3:
		case TPM2_PT_VENDOR_STRING_4:
			vendor[p->property - TPM2_PT_VENDOR_STRING_1] = p->value;
			break;
		case TPM2_PT_FIRMWARE_VERSION_1:
			fw1 = p->value;
			break;
		case TPM2_PT_FIRMWARE_VERSION_2:
			fw2 = p->value;
			break;
		case TPM2_PT_NV_BUFFER_MAX:
			self->nv_buffer_max = p->value;
			break;
		default:
			break;
		}
	}

	kl_tpm_esys_append_chars(manuf, manufacturer);
	for (guint i = 0; i < G_N_ELEMENTS(vendor); i++)
		kl_tpm_esys_append_chars(vend, vendor[i]);
	g_strstrip(manuf->str);
	g_strstrip(vend->str);
	tpm->description = g_strdup_printf("TPM 2.0, manufacturer %s (%s), firmware %u.%u.%u.%u, "
					   "TCTI %s",
					   manuf->str,
					   vend->str,
					   fw1 >> 16,
					   fw1 & 0xffff,
					   fw2 >> 16,
					   fw2 & 0xffff,
					   self->tcti_conf != NULL ? self->tcti_conf : "default");
	return TRUE;
}

/* TRUE if @handle is listed by GetCapability(HANDLES): no TSS error output for absent ones */
static gboolean
kl_tpm_esys_handle_exists(KlTpmEsys *self, TPM2_HANDLE handle, gboolean *exists, GError **error)
{
	g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
	TPMI_YES_NO more = TPM2_NO;

	if (!kl_tpm_esys_get_cap(self, TPM2_CAP_HANDLES, handle, 1, &more, &data, error))
		return FALSE;
	*exists = data->data.handles.count > 0 && data->data.handles.handle[0] == handle;
	return TRUE;
}

/* ------------------------------------------------------------------ */
/* sessions                                                             */

static gboolean
kl_tpm_esys_flush_sessions(KlTpmEsys *self);

/*
 * The authorisation of the EK in the USER role (parent of the AK, key of
 * ActivateCredential): a password session when the EK has userWithAuth (high
 * range templates), else a policy session satisfying the low-range policy
 * PolicySecret(TPM_RH_ENDORSEMENT). Release it with kl_tpm_esys_flush().
 */
static gboolean
kl_tpm_esys_ek_session(KlTpmEsys *self, ESYS_TR *session, GError **error)
{
	TPMT_SYM_DEF symmetric = { .algorithm = TPM2_ALG_NULL };
	TSS2_RC rc;

	*session = ESYS_TR_NONE;
	if (self->ek_user_with_auth) {
		*session = ESYS_TR_PASSWORD;
		return TRUE;
	}
	for (guint attempt = 0;; attempt++) {
		TSS2_RC base;
		rc = Esys_StartAuthSession(self->esys,
					   ESYS_TR_NONE,
					   ESYS_TR_NONE,
					   ESYS_TR_NONE,
					   ESYS_TR_NONE,
					   ESYS_TR_NONE,
					   NULL,
					   TPM2_SE_POLICY,
					   &symmetric,
					   self->ek_name_alg != 0 ? self->ek_name_alg
								  : TPM2_ALG_SHA256,
					   session);
		base = kl_tpm_rc_base(rc);
		if (rc == TSS2_RC_SUCCESS || attempt > 0 ||
		    (base != TPM2_RC_SESSION_MEMORY && base != TPM2_RC_SESSION_HANDLES) ||
		    !kl_tpm_esys_flush_sessions(self))
			break;
	}
	if (rc != TSS2_RC_SUCCESS) {
		self->last_rc = rc;
		*session = ESYS_TR_NONE;
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_StartAuthSession"));
		return FALSE;
	}
	rc = Esys_PolicySecret(self->esys,
			       ESYS_TR_RH_ENDORSEMENT,
			       *session,
			       ESYS_TR_PASSWORD,
			       ESYS_TR_NONE,
			       ESYS_TR_NONE,
			       NULL,
			       NULL,
			       NULL,
			       0,
			       NULL,
			       NULL);
	if (rc != TSS2_RC_SUCCESS) {
		kl_tpm_esys_flush(self, session);
		g_propagate_error(error,
				  kl_tpm_error_from_rc(rc,
						       "Esys_PolicySecret(endorsement); check "
						       "tpm_ownerpassword"));
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------------ */
/* EK                                                                   */

static gboolean
kl_tpm_esys_set_endorsement_auth(KlTpmEsys *self, GError **error)
{
	TPM2B_AUTH auth = { 0 };
	gsize len;
	TSS2_RC rc;

	if (self->endorsement_auth == NULL)
		return TRUE;
	len = strlen(self->endorsement_auth);
	if (len > sizeof(auth.buffer)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "tpm_ownerpassword is too long (at most %u bytes)",
			    (guint)sizeof(auth.buffer));
		return FALSE;
	}
	auth.size = (UINT16)len;
	memcpy(auth.buffer, self->endorsement_auth, len);
	/* tpm_ownerpassword serves the endorsement (EK) and owner (NV read) hierarchies */
	rc = Esys_TR_SetAuth(self->esys, ESYS_TR_RH_ENDORSEMENT, &auth);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_TR_SetAuth(self->esys, ESYS_TR_RH_OWNER, &auth);
	memset(&auth, 0, sizeof(auth));
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_TR_SetAuth"));
		return FALSE;
	}
	return TRUE;
}

/* creates the transient EK from the template; *public (nullable) gets its TPM2B_PUBLIC */
static gboolean
kl_tpm_esys_ek_create(KlTpmEsys *self, GBytes **public, GError **error)
{
	TPM2B_SENSITIVE_CREATE in_sensitive = { 0 };
	TPM2B_PUBLIC in_public;
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation_pcr = { 0 };
	g_autoptr(TPM2B_PUBLIC) out_public = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	TSS2_RC rc;

	memset(&in_public, 0, sizeof(in_public));
	in_public.publicArea = self->ek_template;
	rc = Esys_CreatePrimary(self->esys,
				ESYS_TR_RH_ENDORSEMENT,
				ESYS_TR_PASSWORD,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				&in_sensitive,
				&in_public,
				&outside,
				&creation_pcr,
				&handle,
				&out_public,
				NULL,
				NULL,
				NULL);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error,
				  kl_tpm_error_from_rc(rc,
						       "cannot create the EK (Esys_CreatePrimary "
						       "under the endorsement hierarchy; check "
						       "tpm_ownerpassword)"));
		return FALSE;
	}
	self->ek = handle;
	self->ek_user_with_auth =
	    (out_public->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) != 0;
	self->ek_name_alg = out_public->publicArea.nameAlg;
	if (public != NULL) {
		*public = kl_tpm_marshal_public(&out_public->publicArea, error);
		if (*public == NULL) {
			kl_tpm_esys_flush(self, &self->ek);
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean
kl_tpm_esys_parse_handle(const gchar *text, guint32 *out, GError **error)
{
	guint64 v = 0;
	const gchar *digits = text;

	if (g_str_has_prefix(digits, "0x") || g_str_has_prefix(digits, "0X"))
		digits += 2;
	if (!g_ascii_string_to_unsigned(digits, 16, 0x81000000u, 0x81FFFFFFu, &v, NULL)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "ek_handle '%s' is not a persistent handle (0x81000000..0x81ffffff); "
			    "leave it empty to create the EK from the standard template",
			    text);
		return FALSE;
	}
	*out = (guint32)v;
	return TRUE;
}

static gboolean
kl_tpm_esys_ek_load_persistent(KlTpmEsys *self, const gchar *text, GBytes **public, GError **error)
{
	guint32 handle = 0;
	gboolean exists = FALSE;
	g_autoptr(TPM2B_PUBLIC) out_public = NULL;
	TSS2_RC rc;

	if (!kl_tpm_esys_parse_handle(text, &handle, error))
		return FALSE;
	if (!kl_tpm_esys_handle_exists(self, handle, &exists, error))
		return FALSE;
	if (!exists) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_FOUND,
			    "ek_handle 0x%08x: there is no persistent object at this handle; "
			    "provision the EK there (e.g. tpm2_createek -c 0x%08x) or leave "
			    "ek_handle empty",
			    handle,
			    handle);
		return FALSE;
	}
	rc = Esys_TR_FromTPMPublic(
	    self->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &self->ek);
	if (rc != TSS2_RC_SUCCESS) {
		self->ek = ESYS_TR_NONE;
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_TR_FromTPMPublic(EK)"));
		return FALSE;
	}
	self->ek_persistent = TRUE;
	rc = Esys_ReadPublic(self->esys,
			     self->ek,
			     ESYS_TR_NONE,
			     ESYS_TR_NONE,
			     ESYS_TR_NONE,
			     &out_public,
			     NULL,
			     NULL);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_ReadPublic(EK)"));
		return FALSE;
	}
	if (out_public->publicArea.type != self->params.type ||
	    (out_public->publicArea.objectAttributes & TPMA_OBJECT_DECRYPT) == 0 ||
	    (out_public->publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED) == 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "ek_handle 0x%08x is not a restricted decryption %s key; it cannot be "
			    "the EK for tpm_encryption_alg %s",
			    handle,
			    kl_tpm_alg_to_name(self->params.type),
			    kl_tpm_alg_to_name(self->params.type));
		return FALSE;
	}
	self->ek_user_with_auth =
	    (out_public->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) != 0;
	self->ek_name_alg = out_public->publicArea.nameAlg;
	*public = kl_tpm_marshal_public(&out_public->publicArea, error);
	return *public != NULL;
}

/*
 * makes sure the EK is loaded: persistent, or the transient EK of start-up
 * loaded again from its saved context (ContextLoad, cheap), or, when the TPM
 * no longer accepts that context (TPM reset), created again from the template
 * (CreatePrimary: an RSA key generation, seconds on some TPMs)
 */
static gboolean
kl_tpm_esys_ek_ensure(KlTpmEsys *self, GError **error)
{
	TSS2_RC rc;

	if (self->ek != ESYS_TR_NONE)
		return TRUE;
	if (self->ek_context != NULL) {
		rc = Esys_ContextLoad(self->esys, self->ek_context, &self->ek);
		if (rc == TSS2_RC_SUCCESS)
			return TRUE;
		g_debug("the saved EK context was not accepted (0x%x, TPM reset?); creating the "
			"EK again",
			rc);
		self->ek = ESYS_TR_NONE;
		g_clear_pointer(&self->ek_context, Esys_Free);
	}
	return kl_tpm_esys_ek_create(self, NULL, error);
}

/* frees the EK's object slot (swtpm has three), keeping its context for the next use */
static void
kl_tpm_esys_ek_release(KlTpmEsys *self)
{
	if (self->ek_persistent || self->ek == ESYS_TR_NONE)
		return;
	if (self->ek_context == NULL &&
	    Esys_ContextSave(self->esys, self->ek, &self->ek_context) != TSS2_RC_SUCCESS)
		self->ek_context = NULL;
	kl_tpm_esys_flush(self, &self->ek);
}

/* reads a whole NV index; *out = NULL (and TRUE) when the index does not exist */
static gboolean
kl_tpm_esys_nv_read(KlTpmEsys *self, guint32 index, const gchar *what, GBytes **out, GError **error)
{
	gboolean exists = FALSE;
	ESYS_TR nv = ESYS_TR_NONE;
	ESYS_TR auth;
	g_autoptr(TPM2B_NV_PUBLIC) nv_public = NULL;
	g_autoptr(GByteArray) data_all = g_byte_array_new();
	guint32 chunk;
	guint16 size;
	TPMA_NV attrs;
	TSS2_RC rc;

	*out = NULL;
	if (!kl_tpm_esys_handle_exists(self, index, &exists, error))
		return FALSE;
	if (!exists) {
		g_debug("no %s in NV index 0x%08x", what, index);
		return TRUE;
	}
	rc =
	    Esys_TR_FromTPMPublic(self->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		g_autofree gchar *msg = g_strdup_printf("Esys_TR_FromTPMPublic(%s)", what);
		g_propagate_error(error, kl_tpm_error_from_rc(rc, msg));
		return FALSE;
	}
	rc = Esys_NV_ReadPublic(
	    self->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv_public, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		g_autofree gchar *msg = g_strdup_printf("Esys_NV_ReadPublic(%s)", what);
		(void)Esys_TR_Close(self->esys, &nv);
		g_propagate_error(error, kl_tpm_error_from_rc(rc, msg));
		return FALSE;
	}
	size = nv_public->nvPublic.dataSize;
	attrs = nv_public->nvPublic.attributes;

	if (attrs & TPMA_NV_AUTHREAD) {
		auth = nv;
	} else {
		auth = ESYS_TR_RH_OWNER;
	}
	chunk = self->nv_buffer_max;
	if (chunk == 0 || chunk > TPM2_MAX_NV_BUFFER_SIZE)
		chunk = 512;
	for (guint16 off = 0; off < size;) {
		g_autoptr(TPM2B_MAX_NV_BUFFER) data = NULL;
		guint16 want = (guint16)MIN(chunk, (guint32)(size - off));
		rc = Esys_NV_Read(self->esys,
				  auth,
				  nv,
				  ESYS_TR_PASSWORD,
				  ESYS_TR_NONE,
				  ESYS_TR_NONE,
				  want,
				  off,
				  &data);
		if (rc != TSS2_RC_SUCCESS) {
			g_autofree gchar *msg = g_strdup_printf("Esys_NV_Read(%s)", what);
			(void)Esys_TR_Close(self->esys, &nv);
			g_propagate_error(error, kl_tpm_error_from_rc(rc, msg));
			return FALSE;
		}
		if (data->size == 0)
			break;
		g_byte_array_append(data_all, data->buffer, data->size);
		off += data->size;
	}
	(void)Esys_TR_Close(self->esys, &nv);
	*out = g_byte_array_free_to_bytes(g_steal_pointer(&data_all));
	return TRUE;
}

static gboolean
kl_tpm_esys_read_ek_cert(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GByteArray) cert = NULL;

	if (self->ek_cert_index == 0)
		return TRUE;
	if (!kl_tpm_esys_nv_read(self, self->ek_cert_index, "EK certificate", &bytes, error))
		return FALSE;
	if (bytes == NULL)
		return TRUE;
	cert = g_bytes_unref_to_array(g_steal_pointer(&bytes));

	/* some TPMs pad the index: keep the DER SEQUENCE only */
	if (cert->len >= 4 && cert->data[0] == 0x30 && cert->data[1] == 0x82) {
		guint der_len = 4 + (((guint)cert->data[2] << 8) | cert->data[3]);
		if (der_len < cert->len)
			g_byte_array_set_size(cert, der_len);
	}
	if (cert->len > 0)
		tpm->ek_cert = g_byte_array_free_to_bytes(g_steal_pointer(&cert));
	return TRUE;
}

/*
 * Picks the EK profile for tpm_encryption_alg: the first candidate whose
 * certificate is in NV (a TPM certified in the high range only gets the
 * high-range EK), else the first candidate. The template, and for the low
 * range the nonce, that the TPM keeps in NV override the default, so that the
 * EK is the key its certificate names.
 */
static gboolean
kl_tpm_esys_select_ek_profile(KlTpmEsys *self, gboolean persistent, GError **error)
{
	const KlTpmEkProfile *candidates[4];
	guint n = kl_tpm_ek_profiles_for(&self->params, candidates, G_N_ELEMENTS(candidates));
	const KlTpmEkProfile *chosen = NULL;
	g_autoptr(GBytes) nv_template = NULL;
	g_autoptr(GBytes) nv_nonce = NULL;

	for (guint i = 0; i < n && chosen == NULL; i++) {
		gboolean exists = FALSE;
		if (!kl_tpm_esys_handle_exists(self, candidates[i]->cert_index, &exists, error))
			return FALSE;
		if (exists)
			chosen = candidates[i];
	}
	if (chosen == NULL && n > 0)
		chosen = candidates[0];
	if (chosen == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "no EK template for tpm_encryption_alg %s",
			    kl_tpm_key_type_name(
				self->params.type, self->params.key_bits, self->params.curve)
				?: "?");
		return FALSE;
	}
	self->ek_profile = chosen;
	self->ek_cert_index = chosen->cert_index;
	if (persistent)
		return TRUE;
	kl_tpm_ek_profile_template(chosen, &self->ek_template);
	if (!kl_tpm_esys_nv_read(self, chosen->template_index, "EK template", &nv_template, error))
		return FALSE;
	if (chosen->nonce_index != 0 &&
	    !kl_tpm_esys_nv_read(self, chosen->nonce_index, "EK nonce", &nv_nonce, error))
		return FALSE;
	if (!kl_tpm_ek_apply_nv(&self->ek_template, nv_template, nv_nonce, error))
		return FALSE;
	g_debug("EK: template %s%s%s, certificate NV index 0x%08x",
		chosen->name,
		nv_template != NULL ? " (template from NV)" : "",
		nv_nonce != NULL ? " (nonce from NV)" : "",
		chosen->cert_index);
	return TRUE;
}

/* TRUE when @der is an X.509 certificate of the key in @ek_public (TPM2B_PUBLIC) */
static gboolean
kl_tpm_esys_cert_matches(GBytes *der, GBytes *ek_public, gchar **why)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t key = NULL;
	gnutls_datum_t d = { (unsigned char *)g_bytes_get_data(der, NULL), g_bytes_get_size(der) };
	gnutls_datum_t pem = { NULL, 0 };
	g_autofree gchar *ek_pem = NULL;
	g_autoptr(GError) error_local = NULL;
	TPMT_PUBLIC ek;
	gboolean ok = FALSE;
	int ret;

	if (!kl_tpm_unmarshal_public(ek_public, &ek, &error_local) ||
	    (ek_pem = kl_tpm_public_to_pem(&ek, &error_local)) == NULL) {
		*why = g_strdup(error_local->message);
		return FALSE;
	}
	ret = gnutls_x509_crt_init(&crt);
	if (ret >= 0)
		ret = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
	if (ret >= 0)
		ret = gnutls_pubkey_init(&key);
	if (ret >= 0)
		ret = gnutls_pubkey_import_x509(key, crt, 0);
	if (ret >= 0)
		ret = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_PEM, &pem);
	if (ret < 0) {
		*why = g_strdup_printf("not a DER X.509 certificate (%s)", gnutls_strerror(ret));
	} else if (pem.size != strlen(ek_pem) || memcmp(pem.data, ek_pem, pem.size) != 0) {
		*why = g_strdup("it certifies another key than the EK in use");
	} else {
		ok = TRUE;
	}
	gnutls_free(pem.data);
	if (key != NULL)
		gnutls_pubkey_deinit(key);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	return ok;
}

/*
 * The registrar rejects an `ekcert` whose key is not `ek_tpm`: a certificate
 * that does not fit the EK in use is left out, with a warning, instead.
 */
static void
kl_tpm_esys_check_ek_cert(KlTpm *tpm, const gchar *ek_handle)
{
	g_autofree gchar *why = NULL;

	if (tpm->ek_cert == NULL || kl_tpm_esys_cert_matches(tpm->ek_cert, tpm->ek_public, &why))
		return;
	g_warning("the EK certificate in the TPM's NV memory is not used: %s; %s",
		  why,
		  ek_handle != NULL && *ek_handle != '\0' && g_strcmp0(ek_handle, "generate") != 0
		      ? "check ek_handle"
		      : "the TPM's EK may use a non-default template: provision it at a persistent "
			"handle and set ek_handle");
	g_clear_pointer(&tpm->ek_cert, g_bytes_unref);
}

/*
 * TRUE when the TPM refuses the AK blob itself: it was not made under this
 * TPM's EK (integrity check of the private part, or a public area that does
 * not fit). Only then is deleting the AK the cure.
 */
static gboolean
kl_tpm_esys_rc_key_unusable(TSS2_RC rc)
{
	switch (kl_tpm_rc_base(rc)) {
	case TPM2_RC_INTEGRITY:
	case TPM2_RC_KEY:
	case TPM2_RC_KEY_SIZE:
	case TPM2_RC_ASYMMETRIC:
	case TPM2_RC_SYMMETRIC:
	case TPM2_RC_SIZE:
	case TPM2_RC_BINDING:
	case TPM2_RC_ATTRIBUTES:
	case TPM2_RC_TYPE:
	case TPM2_RC_HASH:
	case TPM2_RC_SCHEME:
		return TRUE;
	default:
		return FALSE;
	}
}

/* /dev/tpmrm*, tpm2-abrmd: a resource manager keeps each client's objects apart */
static gboolean
kl_tpm_esys_tcti_has_rm(const gchar *conf)
{
	return conf != NULL &&
	       (g_str_has_prefix(conf, "tabrmd") || strstr(conf, "/dev/tpmrm") != NULL);
}

/* the transient handles (0x80xxxxxx) or loaded sessions (0x02/0x03xxxxxx) of the TPM */
static GArray *
kl_tpm_esys_list_handles(KlTpmEsys *self, TPM2_HANDLE first, TPM2_HANDLE last)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(TPM2_HANDLE));
	TPMI_YES_NO more = TPM2_YES;
	TPM2_HANDLE next = first;

	while (more == TPM2_YES) {
		g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
		if (!kl_tpm_esys_get_cap(
			self, TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES, &more, &data, NULL))
			break;
		for (guint32 i = 0; i < data->data.handles.count; i++) {
			TPM2_HANDLE h = data->data.handles.handle[i];
			if (h > last) {
				more = TPM2_NO;
				break;
			}
			g_array_append_val(out, h);
			next = h + 1;
		}
		if (data->data.handles.count == 0)
			more = TPM2_NO;
	}
	return out;
}

/* TRUE when @pub is a key made from the EK template (any program can make it again) */
static gboolean
kl_tpm_esys_is_ek_copy(KlTpmEsys *self, const TPMT_PUBLIC *pub)
{
	const TPMT_PUBLIC *templ = &self->ek_template;

	return templ->type != 0 && pub->type == templ->type &&
	       pub->objectAttributes == templ->objectAttributes &&
	       pub->authPolicy.size == templ->authPolicy.size &&
	       memcmp(pub->authPolicy.buffer, templ->authPolicy.buffer, pub->authPolicy.size) == 0;
}

/* TRUE when @a and @b are the same public key (type and unique) */
static gboolean
kl_tpm_esys_same_key(const TPMT_PUBLIC *a, const TPMT_PUBLIC *b)
{
	if (a->type != b->type)
		return FALSE;
	if (a->type == TPM2_ALG_RSA)
		return a->unique.rsa.size == b->unique.rsa.size &&
		       memcmp(a->unique.rsa.buffer, b->unique.rsa.buffer, a->unique.rsa.size) == 0;
	if (a->type == TPM2_ALG_ECC)
		return a->unique.ecc.x.size == b->unique.ecc.x.size &&
		       a->unique.ecc.y.size == b->unique.ecc.y.size &&
		       memcmp(a->unique.ecc.x.buffer,
			      b->unique.ecc.x.buffer,
			      a->unique.ecc.x.size) == 0 &&
		       memcmp(a->unique.ecc.y.buffer,
			      b->unique.ecc.y.buffer,
			      a->unique.ecc.y.size) == 0;
	return FALSE;
}

/*
 * On a TPM without resource manager a killed agent leaves its objects loaded
 * (swtpm has three slots: after two kills nothing can be loaded). Flushes the
 * transient objects that are certainly leftovers of this agent: copies of the
 * EK (made from the standard template) and, when @ak is given, copies of this
 * agent's AK. Other programs' objects are left alone.
 */
static void
kl_tpm_esys_flush_leftovers(KlTpmEsys *self, const TPMT_PUBLIC *ak)
{
	g_autoptr(GArray) handles = NULL;
	guint flushed = 0;

	if (kl_tpm_esys_tcti_has_rm(self->tcti_conf) || !self->sole_user)
		return;
	handles = kl_tpm_esys_list_handles(self, 0x80000000u, 0x80fffffeu);
	for (guint i = 0; i < handles->len; i++) {
		TPM2_HANDLE h = g_array_index(handles, TPM2_HANDLE, i);
		g_autoptr(TPM2B_PUBLIC) pub = NULL;
		ESYS_TR tr = ESYS_TR_NONE;
		gboolean ours;

		if (self->ek != ESYS_TR_NONE) {
			TPM2_HANDLE own = 0;
			if (Esys_TR_GetTpmHandle(self->esys, self->ek, &own) == TSS2_RC_SUCCESS &&
			    own == h)
				continue;
		}
		if (Esys_TR_FromTPMPublic(
			self->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr) !=
		    TSS2_RC_SUCCESS)
			continue;
		if (Esys_ReadPublic(self->esys,
				    tr,
				    ESYS_TR_NONE,
				    ESYS_TR_NONE,
				    ESYS_TR_NONE,
				    &pub,
				    NULL,
				    NULL) != TSS2_RC_SUCCESS) {
			(void)Esys_TR_Close(self->esys, &tr);
			continue;
		}
		ours = ak == NULL ? kl_tpm_esys_is_ek_copy(self, &pub->publicArea)
				  : kl_tpm_esys_same_key(&pub->publicArea, ak);
		if (ours && Esys_FlushContext(self->esys, tr) == TSS2_RC_SUCCESS) {
			flushed++;
			continue;
		}
		(void)Esys_TR_Close(self->esys, &tr);
	}
	if (flushed > 0)
		g_message("freed %u %s left loaded in the TPM by an earlier run of the agent "
			  "(TPM without resource manager)",
			  flushed,
			  ak != NULL ? (flushed == 1 ? "copy of the AK" : "copies of the AK")
				     : (flushed == 1 ? "copy of the EK" : "copies of the EK"));
}

/*
 * The TPM has no room for a session: on a TPM without resource manager these
 * are sessions of killed programs (this agent keeps a session only for the
 * duration of one command). Flushes the loaded sessions so that the agent can
 * start; returns TRUE when any was freed.
 */
static gboolean
kl_tpm_esys_flush_sessions(KlTpmEsys *self)
{
	g_autoptr(GArray) handles = NULL;
	guint flushed = 0;

	if (kl_tpm_esys_tcti_has_rm(self->tcti_conf) || !self->sole_user)
		return FALSE;
	handles = kl_tpm_esys_list_handles(self, 0x02000000u, 0x03fffffeu);
	for (guint i = 0; i < handles->len; i++) {
		ESYS_TR tr = ESYS_TR_NONE;
		if (Esys_TR_FromTPMPublic(self->esys,
					  g_array_index(handles, TPM2_HANDLE, i),
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  &tr) != TSS2_RC_SUCCESS)
			continue;
		if (Esys_FlushContext(self->esys, tr) == TSS2_RC_SUCCESS)
			flushed++;
		else
			(void)Esys_TR_Close(self->esys, &tr);
	}
	if (flushed > 0)
		g_warning(
		    "the TPM had no room for a session: freed %u session%s left by killed "
		    "programs (TPM without resource manager; use /dev/tpmrm0 where it exists)",
		    flushed,
		    flushed == 1 ? "" : "s");
	return flushed > 0;
}

/* ------------------------------------------------------------------ */
/* AK                                                                   */

static void
kl_tpm_esys_ak_template(const KlTpmKeyParams *params, TPM2B_PUBLIC *out)
{
	TPMT_PUBLIC *p = &out->publicArea;

	memset(out, 0, sizeof(*out));
	p->nameAlg = params->hash;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
			      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
			      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	if (params->type == TPM2_ALG_ECC) {
		p->type = TPM2_ALG_ECC;
		p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.eccDetail.scheme.scheme = params->scheme;
		p->parameters.eccDetail.scheme.details.anySig.hashAlg = params->hash;
		p->parameters.eccDetail.curveID = params->curve;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	} else {
		p->type = TPM2_ALG_RSA;
		p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.rsaDetail.scheme.scheme = params->scheme;
		p->parameters.rsaDetail.scheme.details.anySig.hashAlg = params->hash;
		p->parameters.rsaDetail.keyBits = params->key_bits;
		p->parameters.rsaDetail.exponent = 0;
	}
}

/* loads the AK under the (loaded) EK into @handle */
static gboolean
kl_tpm_esys_ak_load_handle(KlTpmEsys *self,
			   const TPMT_PUBLIC *public,
			   const TPM2B_PRIVATE *private,
			   ESYS_TR *handle,
			   GError **error)
{
	TPM2B_PUBLIC in_public = { .size = 0, .publicArea = *public };
	ESYS_TR session = ESYS_TR_NONE;
	TSS2_RC rc;

	if (!kl_tpm_esys_ek_session(self, &session, error))
		return FALSE;
	rc = Esys_Load(
	    self->esys, self->ek, session, ESYS_TR_NONE, ESYS_TR_NONE, private, &in_public, handle);
	kl_tpm_esys_flush(self, &session);
	if (rc != TSS2_RC_SUCCESS) {
		*handle = ESYS_TR_NONE;
		self->last_rc = rc;
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_Load(AK)"));
		return FALSE;
	}
	self->ak_public = *public;
	self->ak_private = *private;
	self->have_ak_blob = TRUE;
	return TRUE;
}

static gboolean
kl_tpm_esys_ak_load(KlTpm *tpm,
		    KlTpmEsys *self,
		    const TPMT_PUBLIC *public,
		    const TPM2B_PRIVATE *private,
		    GError **error)
{
	if (!kl_tpm_esys_ak_load_handle(self, public, private, &tpm->ak_handle, error))
		return FALSE;
	return kl_tpm_set_ak_public(tpm, public, error);
}

/*
 * TPM_RC_REFERENCE_H0 from a command on the AK: the TPM no longer holds it (TPM reset
 * or Startup(CLEAR) under the agent, a restarted resource manager). Loads the same AK
 * again under the EK; this fails when the TPM was cleared or replaced meanwhile.
 */
static gboolean
kl_tpm_esys_ak_reload(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	gboolean ok;

	if (!self->have_ak_blob) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "the TPM no longer holds the AK and it cannot be loaded again; "
			    "restart the agent");
		return FALSE;
	}
	if (tpm->ak_handle != ESYS_TR_NONE)
		(void)Esys_TR_Close(self->esys, &tpm->ak_handle);
	tpm->ak_handle = ESYS_TR_NONE;
	if (!self->ek_persistent && self->ek != ESYS_TR_NONE)
		(void)Esys_TR_Close(self->esys, &self->ek);
	ok = kl_tpm_esys_ek_ensure(self, error) &&
	     kl_tpm_esys_ak_load_handle(
		 self, &self->ak_public, &self->ak_private, &tpm->ak_handle, error);
	kl_tpm_esys_ek_release(self);
	if (!ok) {
		g_prefix_error(error,
			       "the TPM no longer holds the AK (TPM reset?) and loading it "
			       "again failed; if the TPM was cleared or replaced, restart the "
			       "agent: ");
		return FALSE;
	}
	g_info("the TPM had lost the AK (flushed by another program, TPM reset or resource "
	       "manager restart); loaded it again");
	return TRUE;
}

static gboolean
kl_tpm_esys_ak_create(KlTpmEsys *self, TPMT_PUBLIC *public, TPM2B_PRIVATE *private, GError **error)
{
	TPM2B_SENSITIVE_CREATE in_sensitive = { 0 };
	TPM2B_PUBLIC in_public;
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation_pcr = { 0 };
	g_autoptr(TPM2B_PRIVATE) out_private = NULL;
	g_autoptr(TPM2B_PUBLIC) out_public = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	TSS2_RC rc;

	kl_tpm_esys_ak_template(&self->params, &in_public);
	if (!kl_tpm_esys_ek_session(self, &session, error))
		return FALSE;
	rc = Esys_Create(self->esys,
			 self->ek,
			 session,
			 ESYS_TR_NONE,
			 ESYS_TR_NONE,
			 &in_sensitive,
			 &in_public,
			 &outside,
			 &creation_pcr,
			 &out_private,
			 &out_public,
			 NULL,
			 NULL,
			 NULL);
	kl_tpm_esys_flush(self, &session);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error,
				  kl_tpm_error_from_rc(rc, "cannot create the AK (Esys_Create)"));
		return FALSE;
	}
	*public = out_public->publicArea;
	*private = *out_private;
	return TRUE;
}

static gboolean
kl_tpm_esys_setup_ak(KlTpm *tpm, KlTpmEsys *self, const KlTpmOptions *options, GError **error)
{
	const gchar *path = options->agent_data_path;
	gboolean persist = path != NULL && *path != '\0';
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *ek_hash = NULL;
	TPMT_PUBLIC public;
	TPM2B_PRIVATE private;

	ek_hash = kl_tpm_compute_ek_hash(tpm->ek_public, error);
	if (ek_hash == NULL)
		return FALSE;

	if (persist) {
		if (kl_tpm_agent_data_load(
			path, &self->params, ek_hash, &public, &private, &error_local)) {
			self->last_rc = TSS2_RC_SUCCESS;
			kl_tpm_esys_flush_leftovers(self, &public);
			if (!kl_tpm_esys_ak_load(tpm, self, &public, &private, error)) {
				if (kl_tpm_esys_rc_key_unusable(self->last_rc))
					g_prefix_error(
					    error,
					    "the AK in %s cannot be used by this TPM: the TPM "
					    "says the key was not made under its current "
					    "endorsement key (the TPM was cleared or replaced), "
					    "so it can never be loaded again; delete the file "
					    "and the agent's record at the registrar to create "
					    "a new AK: ",
					    path);
				else
					g_prefix_error(error,
						       "the AK in %s could not be loaded (%s is "
						       "kept; the agent exits so that it is "
						       "started again): ",
						       path,
						       path);
				return FALSE;
			}
			g_debug("AK loaded from %s", path);
			tpm->ek_hash = g_steal_pointer(&ek_hash);
			return TRUE;
		}
		if (!g_error_matches(error_local, KL_ERROR, KL_ERROR_NOT_FOUND)) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return FALSE;
		}
		g_clear_error(&error_local);
	}

	if (!kl_tpm_esys_ak_create(self, &public, &private, error))
		return FALSE;
	if (!kl_tpm_esys_ak_load(tpm, self, &public, &private, error))
		return FALSE;
	if (persist) {
		if (!kl_tpm_agent_data_store(path, &public, &private, ek_hash, error))
			return FALSE;
		g_info("created a new AK and saved it in %s", path);
	} else {
		g_info("created a new AK (agent_data_path is empty: it is not kept across "
		       "restarts)");
	}
	memset(&private, 0, sizeof(private));
	tpm->ek_hash = g_steal_pointer(&ek_hash);
	return TRUE;
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

static gchar *
kl_tpm_esys_default_tcti(void)
{
	const gchar *env = g_getenv("TCTI");

	if (env != NULL && *env != '\0')
		return g_strdup(env);
	if (g_file_test("/dev/tpmrm0", G_FILE_TEST_EXISTS))
		return g_strdup("device:/dev/tpmrm0");
	return g_strdup("device:/dev/tpm0");
}

static gboolean
kl_tpm_esys_startup_if_needed(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	/* a cheap first command; only an uninitialised TPM gets a Startup */
	rc = Esys_GetCapability(self->esys,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				TPM2_CAP_PCRS,
				0,
				1,
				&more,
				&data);
	if (rc == TSS2_RC_SUCCESS)
		return TRUE;
	if ((rc & 0xfff) != TPM2_RC_INITIALIZE) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "the TPM does not answer"));
		return FALSE;
	}
	rc = Esys_Startup(self->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && (rc & 0xfff) != TPM2_RC_INITIALIZE) {
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_Startup"));
		return FALSE;
	}
	return TRUE;
}

static void
kl_tpm_esys_close(KlTpm *tpm);

/* TRUE when the TPM can make keys of @params' type and size (TPM2_TestParms / ECC curves) */
static gboolean
kl_tpm_esys_supports_key(KlTpmEsys *self,
			 const KlTpmKeyParams *params,
			 const TPML_ECC_CURVE *curves)
{
	TPMT_PUBLIC_PARMS parms = { .type = params->type };

	if (params->type == TPM2_ALG_ECC) {
		if (!self->have_ecc || curves == NULL)
			return FALSE;
		for (guint32 i = 0; i < curves->count; i++) {
			if (curves->eccCurves[i] == params->curve)
				return TRUE;
		}
		return FALSE;
	}
	if (!self->have_rsa)
		return FALSE;
	parms.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
	parms.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
	parms.parameters.rsaDetail.keyBits = params->key_bits;
	parms.parameters.rsaDetail.exponent = 0;
	return Esys_TestParms(self->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &parms) ==
	       TSS2_RC_SUCCESS;
}

static gboolean
kl_tpm_esys_array_has(GArray *a, guint16 v)
{
	for (guint i = 0; i < a->len; i++) {
		if (g_array_index(a, guint16, i) == v)
			return TRUE;
	}
	return FALSE;
}

static gchar *
kl_tpm_esys_alg_list(GArray *a)
{
	g_autoptr(GString) s = g_string_new(NULL);

	for (guint i = 0; i < a->len; i++) {
		const gchar *name = kl_tpm_alg_to_name(g_array_index(a, guint16, i));
		if (name != NULL)
			g_string_append_printf(s, "%s%s", s->len > 0 ? ", " : "", name);
	}
	return g_string_free(g_steal_pointer(&s), FALSE);
}

/*
 * tpm_encryption_alg, tpm_hash_alg and tpm_signing_alg against what this TPM
 * implements (TPM2_GetCapability, TPM2_TestParms): an unsupported choice is an
 * error that names what the TPM offers.
 */
static gboolean
kl_tpm_esys_check_algorithms(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(TPMS_CAPABILITY_DATA) data = NULL;
	TPMI_YES_NO more = TPM2_NO;
	const TPML_ECC_CURVE *curves = NULL;
	gboolean ok = TRUE;

	if (self->have_ecc) {
		if (!kl_tpm_esys_get_cap(self,
					 TPM2_CAP_ECC_CURVES,
					 TPM2_ECC_NONE,
					 TPM2_MAX_ECC_CURVES,
					 &more,
					 &data,
					 error))
			return FALSE;
		curves = &data->data.eccCurves;
	}
	if (!kl_tpm_esys_supports_key(self, &self->params, curves)) {
		g_autoptr(GString) offered = g_string_new(NULL);
		for (gsize i = 0; i < kl_tpm_key_type_count(); i++) {
			KlTpmKeyParams p;
			kl_tpm_key_type_nth(i, &p);
			if (kl_tpm_esys_supports_key(self, &p, curves))
				g_string_append_printf(
				    offered,
				    "%s%s",
				    offered->len > 0 ? ", " : "",
				    kl_tpm_key_type_name(p.type, p.key_bits, p.curve));
		}
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "tpm_encryption_alg %s: this TPM cannot make such keys; it offers: %s; "
			    "set tpm_encryption_alg to one of them",
			    kl_tpm_key_type_name(
				self->params.type, self->params.key_bits, self->params.curve)
				?: "?",
			    offered->len > 0 ? offered->str : "none of the supported types");
		ok = FALSE;
	} else if (!kl_tpm_esys_array_has(tpm->hash_algorithms, self->params.hash)) {
		g_autofree gchar *offered = kl_tpm_esys_alg_list(tpm->hash_algorithms);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "tpm_hash_alg %s: this TPM does not implement it; it offers: %s",
			    kl_tpm_alg_to_name(self->params.hash),
			    offered);
		ok = FALSE;
	} else if (!kl_tpm_esys_array_has(tpm->signature_schemes, self->params.scheme)) {
		g_autofree gchar *offered = kl_tpm_esys_alg_list(tpm->signature_schemes);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "tpm_signing_alg %s: this TPM does not implement it; it offers: %s",
			    kl_tpm_alg_to_name(self->params.scheme),
			    offered);
		ok = FALSE;
	}
	return ok;
}

/* TCTI + ESYS context, Startup when needed, the hierarchy password */
static gboolean
kl_tpm_esys_connect(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	TSS2_RC rc;

	rc = Tss2_TctiLdr_Initialize(self->tcti_conf, &self->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		self->tcti = NULL;
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "cannot open the TPM through TCTI '%s': %s; check that the device "
			    "exists and the agent may use it (group tss), or set `tcti`",
			    self->tcti_conf,
			    Tss2_RC_Decode(rc));
		return FALSE;
	}
	rc = Esys_Initialize(&self->esys, self->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		self->esys = NULL;
		g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_Initialize"));
		return FALSE;
	}
	if (!kl_tpm_esys_startup_if_needed(tpm, self, error))
		return FALSE;
	return kl_tpm_esys_set_endorsement_auth(self, error);
}

/* drops the ESYS context and the TCTI without TPM commands (the connection is gone) */
static void
kl_tpm_esys_disconnect(KlTpm *tpm, KlTpmEsys *self)
{
	if (self->esys != NULL)
		Esys_Finalize(&self->esys);
	self->esys = NULL;
	if (self->tcti != NULL)
		Tss2_TctiLdr_Finalize(&self->tcti);
	self->tcti = NULL;
	tpm->ak_handle = ESYS_TR_NONE;
	self->ek = ESYS_TR_NONE;
}

/*
 * The TPM connection was lost (swtpm or the resource manager restarted, an I/O
 * error, a TPM reset): a new TCTI and ESYS context, the same EK (checked), and
 * the AK loaded again from the blob read at start-up. When this fails the TPM
 * is marked unusable; the agent's watchdog stops the agent (exit status 4)
 * when it stays so for longer than tpm_timeout.
 */
static gboolean
kl_tpm_esys_reconnect(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	g_autoptr(GBytes) ek_public = NULL;
	gboolean was_unusable = kl_tpm_get_unusable_s(tpm, NULL) > 0;
	gboolean ok;

	kl_tpm_esys_disconnect(tpm, self);
	/* a saved EK context is of no use after a TPM reset: the EK is made again */
	g_clear_pointer(&self->ek_context, Esys_Free);
	ok = kl_tpm_esys_connect(tpm, self, error);
	if (ok && self->ek_persistent) {
		self->ek_persistent = FALSE;
		ok = kl_tpm_esys_ek_load_persistent(self, self->ek_handle_text, &ek_public, error);
	} else if (ok) {
		kl_tpm_esys_flush_leftovers(self, NULL);
		ok = kl_tpm_esys_ek_create(self, &ek_public, error);
	}
	if (ok && !g_bytes_equal(ek_public, tpm->ek_public)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_TPM,
			    "the TPM now has another endorsement key (it was cleared or "
			    "replaced): the AK of this agent cannot be used with it");
		ok = FALSE;
	}
	if (ok && self->have_ak_blob) {
		kl_tpm_esys_flush_leftovers(self, &self->ak_public);
		ok = kl_tpm_esys_ak_load_handle(
		    self, &self->ak_public, &self->ak_private, &tpm->ak_handle, error);
	}
	if (ok)
		kl_tpm_esys_ek_release(self);
	if (!ok) {
		kl_tpm_esys_disconnect(tpm, self);
		kl_tpm_set_unusable(tpm, KL_TPM_UNUSABLE_CONNECTION);
		g_prefix_error(error,
			       "the TPM is unusable (TCTI '%s'): reconnecting failed: ",
			       self->tcti_conf);
		return FALSE;
	}
	kl_tpm_set_unusable(tpm, NULL);
	g_message("reconnected to the TPM (TCTI '%s') and loaded the AK again%s",
		  self->tcti_conf,
		  was_unusable ? "; the TPM is usable again" : "");
	return TRUE;
}

typedef enum {
	KL_TPM_RECOVER_GIVE_UP, /* report the command's own error */
	KL_TPM_RECOVER_RETRY,	/* send the command again */
	KL_TPM_RECOVER_FAILED,	/* @error is set */
} KlTpmRecover;

/*
 * After a failed command: reconnects when the connection is lost, loads the AK
 * again when the TPM lost it (TPM2_RC_REFERENCE_H0), and says whether to send
 * the command again. Two recoveries per command at most.
 */
static KlTpmRecover
kl_tpm_esys_recover(
    KlTpm *tpm, KlTpmEsys *self, TSS2_RC rc, const gchar *what, guint attempt, GError **error)
{
	self->last_rc = rc;
	/* no key of the agent can be used until the lockout ends: the watchdog's bound applies */
	if (kl_tpm_rc_base(rc) == TPM2_RC_LOCKOUT)
		kl_tpm_set_unusable(tpm, KL_TPM_UNUSABLE_LOCKOUT);
	if (attempt >= 2)
		return KL_TPM_RECOVER_GIVE_UP;
	if (kl_tpm_rc_is_connection_lost(rc)) {
		g_warning("%s: %s (0x%x): the connection to the TPM is lost; reconnecting",
			  what,
			  Tss2_RC_Decode(rc),
			  (guint)rc);
		return kl_tpm_esys_reconnect(tpm, self, error) ? KL_TPM_RECOVER_RETRY
							       : KL_TPM_RECOVER_FAILED;
	}
	if (rc == TPM2_RC_REFERENCE_H0)
		return kl_tpm_esys_ak_reload(tpm, self, error) ? KL_TPM_RECOVER_RETRY
							       : KL_TPM_RECOVER_FAILED;
	return KL_TPM_RECOVER_GIVE_UP;
}

/* before a command: a TPM that could not be reconnected is tried again */
static gboolean
kl_tpm_esys_ready(KlTpm *tpm, KlTpmEsys *self, GError **error)
{
	if (self->esys != NULL)
		return TRUE;
	return kl_tpm_esys_reconnect(tpm, self, error);
}

/*
 * One attempt of a TPM command for kl_tpm_esys_run(): TRUE once the command
 * was sent, its response code in @rc; FALSE with @error set when it could not
 * be (nothing to recover from).
 */
typedef gboolean (*KlTpmEsysAttempt)(
    KlTpm *tpm, KlTpmEsys *self, guint attempt, gpointer data, TSS2_RC *rc, GError **error);

/*
 * Sends a command and, after a recovery (kl_tpm_esys_recover: reconnection, AK
 * loaded again), sends it again. @reconnect FALSE: a lost connection is not
 * recovered (handles the caller opened do not survive it). TRUE on success;
 * else FALSE with @error set: "@what: <response code>", or why recovering
 * failed. @rc (nullable) gets the last response code.
 */
static gboolean
kl_tpm_esys_run(KlTpm *tpm,
		KlTpmEsys *self,
		const gchar *what,
		gboolean reconnect,
		KlTpmEsysAttempt attempt_func,
		gpointer data,
		TSS2_RC *rc_out,
		GError **error)
{
	TSS2_RC rc = TSS2_RC_SUCCESS;
	gboolean ok = FALSE;

	for (guint attempt = 0;; attempt++) {
		KlTpmRecover next = KL_TPM_RECOVER_GIVE_UP;

		if (!attempt_func(tpm, self, attempt, data, &rc, error))
			break;
		if (rc == TSS2_RC_SUCCESS) {
			ok = TRUE;
			break;
		}
		if (reconnect || !kl_tpm_rc_is_connection_lost(rc))
			next = kl_tpm_esys_recover(tpm, self, rc, what, attempt, error);
		if (next == KL_TPM_RECOVER_RETRY)
			continue;
		if (next == KL_TPM_RECOVER_GIVE_UP)
			g_propagate_error(error, kl_tpm_error_from_rc(rc, what));
		break;
	}
	if (rc_out != NULL)
		*rc_out = rc;
	return ok;
}

/*
 * Leftovers in the TPM may be freed only when no other agent with the same
 * agent_data.json runs (an operator's --once next to the service uses the same
 * AK): an exclusive lock on agent_data.json.lock, held until the agent exits,
 * tells. Without a kept AK nothing is freed.
 */
static void
kl_tpm_esys_lock(KlTpmEsys *self, const KlTpmOptions *options)
{
	g_autofree gchar *path = NULL;

	self->lock_fd = -1;
	self->sole_user = FALSE;
	if (options->agent_data_path == NULL || options->agent_data_path[0] == '\0')
		return;
	path = g_strconcat(options->agent_data_path, ".lock", NULL);
	self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (self->lock_fd < 0) {
		g_debug("cannot open %s (%s): leftovers in the TPM are not freed",
			path,
			g_strerror(errno));
		return;
	}
	if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		g_message("another agent with %s runs: leftovers in the TPM are left alone",
			  options->agent_data_path);
		close(self->lock_fd);
		self->lock_fd = -1;
		return;
	}
	self->sole_user = TRUE;
}

static gboolean
kl_tpm_esys_open_inner(KlTpm *tpm, KlTpmEsys *self, const KlTpmOptions *options, GError **error)
{
	gboolean persistent_ek;

	if (!kl_tpm_key_params_from_options(options, &self->params, error))
		return FALSE;
	if (options->owner_password != NULL && *options->owner_password != '\0')
		self->endorsement_auth = g_strdup(options->owner_password);

	self->tcti_conf = options->tcti != NULL && *options->tcti != '\0'
			      ? g_strdup(options->tcti)
			      : kl_tpm_esys_default_tcti();
	kl_tpm_esys_lock(self, options);
	if (!kl_tpm_esys_connect(tpm, self, error))
		return FALSE;

	/* static facts, read once */
	if (!kl_tpm_esys_read_properties(tpm, self, error) ||
	    !kl_tpm_esys_read_algorithms(tpm, self, error) ||
	    !kl_tpm_esys_read_pcr_banks(tpm, self, error))
		return FALSE;

	if (!kl_tpm_esys_check_algorithms(tpm, self, error))
		return FALSE;

	/* EK */
	persistent_ek = options->ek_handle != NULL && *options->ek_handle != '\0' &&
			g_strcmp0(options->ek_handle, "generate") != 0;
	if (!kl_tpm_esys_select_ek_profile(self, persistent_ek, error))
		return FALSE;
	if (persistent_ek) {
		self->ek_handle_text = g_strdup(options->ek_handle);
		if (!kl_tpm_esys_ek_load_persistent(
			self, options->ek_handle, &tpm->ek_public, error))
			return FALSE;
	} else {
		kl_tpm_esys_flush_leftovers(self, NULL);
		if (!kl_tpm_esys_ek_create(self, &tpm->ek_public, error))
			return FALSE;
	}
	if (!kl_tpm_esys_read_ek_cert(tpm, self, error))
		return FALSE;
	kl_tpm_esys_check_ek_cert(tpm, options->ek_handle);

	/* AK */
	if (!kl_tpm_esys_setup_ak(tpm, self, options, error))
		return FALSE;
	kl_tpm_esys_ek_release(self);
	return TRUE;
}

static gboolean
kl_tpm_esys_open(KlTpm *tpm, const KlTpmOptions *options, GError **error)
{
	KlTpmEsys *self = g_new0(KlTpmEsys, 1);

	self->ek = ESYS_TR_NONE;
	self->lock_fd = -1;
	tpm->backend_data = self;
	if (!kl_tpm_esys_open_inner(tpm, self, options, error)) {
		kl_tpm_esys_close(tpm);
		return FALSE;
	}
	return TRUE;
}

static void
kl_tpm_esys_close(KlTpm *tpm)
{
	KlTpmEsys *self = kl_tpm_esys_get(tpm);

	if (self == NULL)
		return;
	if (self->esys != NULL) {
		kl_tpm_esys_flush(self, &tpm->ak_handle);
		if (!self->ek_persistent)
			kl_tpm_esys_flush(self, &self->ek);
		Esys_Finalize(&self->esys);
	}
	tpm->ak_handle = ESYS_TR_NONE;
	if (self->tcti != NULL)
		Tss2_TctiLdr_Finalize(&self->tcti);
	kl_tpm_esys_free_data(self);
	tpm->backend_data = NULL;
}

static ESYS_CONTEXT *
kl_tpm_esys_get_esys(KlTpm *tpm)
{
	return kl_tpm_esys_get(tpm)->esys;
}

/* ------------------------------------------------------------------ */
/* operations                                                           */

static void
kl_tpm_esys_fill_data(TPM2B_DATA *out, GBytes *data)
{
	memset(out, 0, sizeof(*out));
	if (data != NULL) {
		gsize len = 0;
		const guint8 *p = g_bytes_get_data(data, &len);
		len = MIN(len, sizeof(out->buffer));
		out->size = (UINT16)len;
		if (len > 0)
			memcpy(out->buffer, p, len);
	}
}

static gboolean
kl_tpm_esys_attest_out(TPM2B_ATTEST *attest_in,
		       TPMT_SIGNATURE *sig_in,
		       GBytes **attest,
		       GBytes **signature,
		       GError **error)
{
	guint8 buf[sizeof(TPMT_SIGNATURE)];
	size_t off = 0;
	TPMS_ATTEST parsed;
	size_t aoff = 0;
	TSS2_RC rc;

	/* the TPM2B_ATTEST contents are the marshalled TPMS_ATTEST: check, then pass on */
	rc = Tss2_MU_TPMS_ATTEST_Unmarshal(
	    attest_in->attestationData, attest_in->size, &aoff, &parsed);
	if (rc != TSS2_RC_SUCCESS || aoff != attest_in->size) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_TPM, "the TPM returned a malformed TPMS_ATTEST");
		return FALSE;
	}
	rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig_in, buf, sizeof(buf), &off);
	if (rc != TSS2_RC_SUCCESS) {
		g_propagate_error(error,
				  kl_tpm_error_from_rc(rc, "Tss2_MU_TPMT_SIGNATURE_Marshal"));
		return FALSE;
	}
	*attest = g_bytes_new(attest_in->attestationData, attest_in->size);
	*signature = g_bytes_new(buf, off);
	return TRUE;
}

/* the arguments and results of TPM2_Certify of the AK (quotes: kl_tpm_raw_quote_attempt) */
typedef struct {
	const TPM2B_DATA *qualifying_data;
	const TPMT_SIG_SCHEME *scheme;
	ESYS_TR signer; /* Certify: the signing key, ESYS_TR_NONE = the AK */
	TPM2B_ATTEST **attest;
	TPMT_SIGNATURE **signature;
} KlTpmEsysSigning;

/* the AK's handle is read at every attempt: a recovery may have loaded it again */
static gboolean
kl_tpm_esys_sign_attempt(
    KlTpm *tpm, KlTpmEsys *self, guint attempt, gpointer data, TSS2_RC *rc, GError **error)
{
	KlTpmEsysSigning *args = data;

	*rc = Esys_Certify(self->esys,
			   tpm->ak_handle,
			   args->signer != ESYS_TR_NONE ? args->signer : tpm->ak_handle,
			   ESYS_TR_PASSWORD,
			   ESYS_TR_PASSWORD,
			   ESYS_TR_NONE,
			   args->qualifying_data,
			   args->scheme,
			   args->attest,
			   args->signature);
	return TRUE;
}

/*
 * Quote and PCR_Read, the commands of every cycle, are marshalled here and
 * sent through the TCTI without ESYS (neither uses an HMAC or policy session,
 * so ESYS keeps no state about them): about half the instructions of
 * Esys_Quote / Esys_PCR_Read, whose generic marshalling, copies and
 * allocations dominated a steady cycle. Responses are checked field by field.
 * Response codes are those ESYS would return: the TCTI's, or the TPM's (with
 * TPM_RC_RETRY, _YIELDED and _TESTING sent again, as ESYS does).
 */
#define KL_TPM_RAW_MAX	       4096
#define KL_TPM_RAW_SUBMISSIONS 5

typedef struct {
	guint8 *buf;
	gsize len;
} KlTpmRawOut;

static void
kl_tpm_raw_u8(KlTpmRawOut *o, guint8 v)
{
	o->buf[o->len++] = v;
}

static void
kl_tpm_raw_u16(KlTpmRawOut *o, guint16 v)
{
	o->buf[o->len++] = v >> 8;
	o->buf[o->len++] = v & 0xff;
}

static void
kl_tpm_raw_u32(KlTpmRawOut *o, guint32 v)
{
	kl_tpm_raw_u16(o, v >> 16);
	kl_tpm_raw_u16(o, v & 0xffff);
}

static guint16
kl_tpm_raw_get16(const guint8 *p)
{
	return (guint16)((p[0] << 8) | p[1]);
}

static guint32
kl_tpm_raw_get32(const guint8 *p)
{
	return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

/* one selection of @bank with @mask (PCRs 0..23) */
static void
kl_tpm_raw_pcr_selection(KlTpmRawOut *o, TPMI_ALG_HASH bank, guint32 mask)
{
	kl_tpm_raw_u32(o, 1);
	kl_tpm_raw_u16(o, bank);
	kl_tpm_raw_u8(o, 3);
	kl_tpm_raw_u8(o, mask & 0xff);
	kl_tpm_raw_u8(o, (mask >> 8) & 0xff);
	kl_tpm_raw_u8(o, (mask >> 16) & 0xff);
}

/*
 * Sends the command in @cmd (its size field is set here) and receives the
 * response into @rsp (KL_TPM_RAW_MAX bytes). @rc: the TCTI's error, the TPM's
 * response code, or TSS2_SYS_RC_MALFORMED_RESPONSE for a response whose
 * header does not hold together.
 */
static void
kl_tpm_raw_exchange(KlTpmEsys *self, KlTpmRawOut *cmd, guint8 *rsp, gsize *rsp_size, TSS2_RC *rc)
{
	cmd->buf[2] = (cmd->len >> 24) & 0xff;
	cmd->buf[3] = (cmd->len >> 16) & 0xff;
	cmd->buf[4] = (cmd->len >> 8) & 0xff;
	cmd->buf[5] = cmd->len & 0xff;
	for (guint submission = 1;; submission++) {
		size_t size = KL_TPM_RAW_MAX;

		*rc = Tss2_Tcti_Transmit(self->tcti, cmd->len, cmd->buf);
		if (*rc != TSS2_RC_SUCCESS)
			return;
		*rc = Tss2_Tcti_Receive(self->tcti, &size, rsp, TSS2_TCTI_TIMEOUT_BLOCK);
		if (*rc != TSS2_RC_SUCCESS)
			return;
		if (size < 10 || size > KL_TPM_RAW_MAX || kl_tpm_raw_get32(rsp + 2) != size) {
			*rc = TSS2_SYS_RC_MALFORMED_RESPONSE;
			return;
		}
		*rc = kl_tpm_raw_get32(rsp + 6);
		*rsp_size = size;
		if ((*rc == TPM2_RC_RETRY || *rc == TPM2_RC_YIELDED || *rc == TPM2_RC_TESTING) &&
		    submission < KL_TPM_RAW_SUBMISSIONS)
			continue;
		return;
	}
}

typedef struct {
	TPMI_ALG_HASH bank;
	guint32 mask;
	TPMI_ALG_SIG_SCHEME scheme;
	TPMI_ALG_HASH hash;
	GBytes *qualifying_data;
	GBytes *attest;	   /* out */
	GBytes *signature; /* out */
} KlTpmRawQuote;

static gboolean
kl_tpm_raw_quote_attempt(
    KlTpm *tpm, KlTpmEsys *self, guint attempt, gpointer data, TSS2_RC *rc, GError **error)
{
	KlTpmRawQuote *q = data;
	guint8 cmd_buf[256];
	KlTpmRawOut cmd = { cmd_buf, 0 };
	guint8 rsp[KL_TPM_RAW_MAX];
	gsize rsp_size = 0;
	gsize qsize = 0;
	const guint8 *qdata =
	    q->qualifying_data != NULL ? g_bytes_get_data(q->qualifying_data, &qsize) : NULL;
	TPM2_HANDLE ak = 0;
	TPMT_SIGNATURE sig;
	size_t sig_off = 0;
	guint32 params;
	guint16 attest_size;
	const guint8 *p;
	gsize sig_size;

	/* the AK's handle is read at every attempt: a recovery may have loaded it again */
	*rc = Esys_TR_GetTpmHandle(self->esys, tpm->ak_handle, &ak);
	if (*rc != TSS2_RC_SUCCESS)
		return TRUE;
	qsize = MIN(qsize, sizeof(TPMU_HA));
	kl_tpm_raw_u16(&cmd, TPM2_ST_SESSIONS);
	kl_tpm_raw_u32(&cmd, 0); /* size, set when sent */
	kl_tpm_raw_u32(&cmd, TPM2_CC_Quote);
	kl_tpm_raw_u32(&cmd, ak);
	/* authorization: the AK's empty password */
	kl_tpm_raw_u32(&cmd, 4 + 2 + 1 + 2);
	kl_tpm_raw_u32(&cmd, TPM2_RS_PW);
	kl_tpm_raw_u16(&cmd, 0);
	kl_tpm_raw_u8(&cmd, 0);
	kl_tpm_raw_u16(&cmd, 0);
	/* qualifyingData, inScheme, PCRselect */
	kl_tpm_raw_u16(&cmd, (guint16)qsize);
	if (qsize > 0)
		memcpy(cmd.buf + cmd.len, qdata, qsize);
	cmd.len += qsize;
	kl_tpm_raw_u16(&cmd, q->scheme);
	if (q->scheme != TPM2_ALG_NULL)
		kl_tpm_raw_u16(&cmd, q->hash);
	if (q->scheme == TPM2_ALG_ECDAA)
		kl_tpm_raw_u16(&cmd, 0);
	kl_tpm_raw_pcr_selection(&cmd, q->bank, q->mask);

	kl_tpm_raw_exchange(self, &cmd, rsp, &rsp_size, rc);
	if (*rc != TSS2_RC_SUCCESS)
		return TRUE;
	/* tag, size, rc | parameterSize | TPM2B_ATTEST, TPMT_SIGNATURE | auth area */
	if (rsp_size < 10 + 4 + 2 || kl_tpm_raw_get16(rsp) != TPM2_ST_SESSIONS)
		goto malformed;
	params = kl_tpm_raw_get32(rsp + 10);
	if (params > rsp_size - 14 || params < 2)
		goto malformed;
	p = rsp + 14;
	attest_size = kl_tpm_raw_get16(p);
	if (attest_size < 6 || attest_size > sizeof(TPMS_ATTEST) || attest_size > params - 2)
		goto malformed;
	/* the rest of the parameters is the signature, checked by unmarshalling it */
	sig_size = params - 2 - attest_size;
	if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(p + 2 + attest_size, sig_size, &sig_off, &sig) !=
		TSS2_RC_SUCCESS ||
	    sig_off != sig_size)
		goto malformed;
	/* a quote: the plugin reads the rest of the TPMS_ATTEST */
	if (kl_tpm_raw_get32(p + 2) != TPM2_GENERATED_VALUE ||
	    kl_tpm_raw_get16(p + 6) != TPM2_ST_ATTEST_QUOTE) {
		g_set_error(
		    error, KL_ERROR, KL_ERROR_TPM, "the TPM returned a malformed TPMS_ATTEST");
		return FALSE;
	}
	g_clear_pointer(&q->attest, g_bytes_unref);
	g_clear_pointer(&q->signature, g_bytes_unref);
	q->attest = g_bytes_new(p + 2, attest_size);
	q->signature = g_bytes_new(p + 2 + attest_size, sig_size);
	return TRUE;

malformed:
	*rc = TSS2_SYS_RC_MALFORMED_RESPONSE;
	return TRUE;
}

typedef struct {
	TPMI_ALG_HASH bank;
	guint32 mask; /* asked for */
	guint32 got;  /* read: the PCRs of @bank in the answer's selection */
	guint count;  /* digests */
	const guint8 *digests[8];
	guint16 sizes[8];
	guint8 rsp[KL_TPM_RAW_MAX];
} KlTpmRawPcrRead;

static gboolean
kl_tpm_raw_pcr_read_attempt(
    KlTpm *tpm, KlTpmEsys *self, guint attempt, gpointer data, TSS2_RC *rc, GError **error)
{
	KlTpmRawPcrRead *r = data;
	guint8 cmd_buf[32];
	KlTpmRawOut cmd = { cmd_buf, 0 };
	gsize size = 0;
	gsize off;
	guint32 count;

	kl_tpm_raw_u16(&cmd, TPM2_ST_NO_SESSIONS);
	kl_tpm_raw_u32(&cmd, 0);
	kl_tpm_raw_u32(&cmd, TPM2_CC_PCR_Read);
	kl_tpm_raw_pcr_selection(&cmd, r->bank, r->mask);
	kl_tpm_raw_exchange(self, &cmd, r->rsp, &size, rc);
	if (*rc != TSS2_RC_SUCCESS)
		return TRUE;
	/* tag, size, rc | pcrUpdateCounter | TPML_PCR_SELECTION | TPML_DIGEST */
	off = 14;
	if (size < off + 4 || kl_tpm_raw_get16(r->rsp) != TPM2_ST_NO_SESSIONS)
		goto malformed;
	count = kl_tpm_raw_get32(r->rsp + off);
	off += 4;
	if (count > TPM2_NUM_PCR_BANKS)
		goto malformed;
	r->got = 0;
	for (guint32 i = 0; i < count; i++) {
		guint8 n;
		TPMI_ALG_HASH h;
		if (size < off + 3)
			goto malformed;
		h = kl_tpm_raw_get16(r->rsp + off);
		n = r->rsp[off + 2];
		off += 3;
		if (n > TPM2_PCR_SELECT_MAX || size < off + n)
			goto malformed;
		for (guint j = 0; j < n && j < 3 && h == r->bank; j++)
			r->got |= (guint32)r->rsp[off + j] << (8 * j);
		off += n;
	}
	if (size < off + 4)
		goto malformed;
	count = kl_tpm_raw_get32(r->rsp + off);
	off += 4;
	if (count > G_N_ELEMENTS(r->digests))
		goto malformed;
	r->count = count;
	for (guint32 i = 0; i < count; i++) {
		if (size < off + 2)
			goto malformed;
		r->sizes[i] = kl_tpm_raw_get16(r->rsp + off);
		off += 2;
		if (r->sizes[i] > sizeof(TPMU_HA) || size < off + r->sizes[i])
			goto malformed;
		r->digests[i] = r->rsp + off;
		off += r->sizes[i];
	}
	if (off != size)
		goto malformed;
	return TRUE;

malformed:
	*rc = TSS2_SYS_RC_MALFORMED_RESPONSE;
	return TRUE;
}

static gboolean
kl_tpm_esys_quote(KlTpm *tpm,
		  TPMI_ALG_HASH bank,
		  guint32 pcr_mask,
		  TPMI_ALG_SIG_SCHEME scheme,
		  TPMI_ALG_HASH hash,
		  GBytes *qualifying_data,
		  GBytes **attest,
		  GBytes **signature,
		  GError **error)
{
	KlTpmEsys *self = kl_tpm_esys_get(tpm);
	KlTpmRawQuote args = { bank, pcr_mask, scheme, hash, qualifying_data, NULL, NULL };

	if (!kl_tpm_esys_ready(tpm, self, error) ||
	    !kl_tpm_esys_run(
		tpm, self, "TPM2_Quote", TRUE, kl_tpm_raw_quote_attempt, &args, NULL, error)) {
		g_clear_pointer(&args.attest, g_bytes_unref);
		g_clear_pointer(&args.signature, g_bytes_unref);
		return FALSE;
	}
	*attest = args.attest;
	*signature = args.signature;
	return TRUE;
}

static gboolean
kl_tpm_esys_pcr_read(
    KlTpm *tpm, TPMI_ALG_HASH bank, guint32 pcr_mask, GPtrArray **values, GError **error)
{
	KlTpmEsys *self = kl_tpm_esys_get(tpm);
	GBytes *by_pcr[24] = { NULL };
	guint32 remaining = pcr_mask;
	gsize hsize = kl_tpm_hash_size(bank);
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	KlTpmRawPcrRead read; /* 4 kB on the worker thread's stack: no malloc per cycle */
	KlTpmRawPcrRead *args = &read;
	gboolean ok = kl_tpm_esys_ready(tpm, self, error);

	/* the TPM returns at most 8 digests per call: loop until all are read */
	for (guint round = 0; remaining != 0 && ok; round++) {
		guint32 got;
		guint d = 0;

		args->bank = bank;
		args->mask = remaining;
		args->got = 0;
		args->count = 0;
		if (!kl_tpm_esys_run(tpm,
				     self,
				     "TPM2_PCR_Read",
				     TRUE,
				     kl_tpm_raw_pcr_read_attempt,
				     args,
				     NULL,
				     error)) {
			ok = FALSE;
			break;
		}
		got = args->got & remaining;
		for (guint pcr = 0; pcr < 24 && ok; pcr++) {
			if ((got & (1u << pcr)) == 0)
				continue;
			if (d >= args->count || args->sizes[d] != hsize) {
				g_set_error(error,
					    KL_ERROR,
					    KL_ERROR_TPM,
					    "TPM2_PCR_Read returned an inconsistent answer");
				ok = FALSE;
				break;
			}
			by_pcr[pcr] = g_bytes_new(args->digests[d], hsize);
			d++;
		}
		if (ok && got == 0) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_PARAMETERS,
				    "PCRs 0x%06x are not allocated in the %s bank",
				    remaining,
				    kl_tpm_alg_to_name(bank));
			ok = FALSE;
		}
		remaining &= ~got;
		if (round > 24) {
			g_set_error(
			    error, KL_ERROR, KL_ERROR_TPM, "TPM2_PCR_Read does not progress");
			ok = FALSE;
		}
	}
	for (guint pcr = 0; pcr < 24; pcr++) {
		if (by_pcr[pcr] == NULL)
			continue;
		if (ok)
			g_ptr_array_add(out, by_pcr[pcr]);
		else
			g_bytes_unref(by_pcr[pcr]);
	}
	if (!ok)
		return FALSE;
	*values = g_steal_pointer(&out);
	return TRUE;
}

static gboolean
kl_tpm_esys_certify_ak(KlTpm *tpm,
		       ESYS_TR signer,
		       const gchar *signer_auth,
		       TPMI_ALG_SIG_SCHEME scheme,
		       TPMI_ALG_HASH hash,
		       GBytes *qualifying_data,
		       GBytes **attest,
		       GBytes **signature,
		       GError **error)
{
	KlTpmEsys *self = kl_tpm_esys_get(tpm);
	TPM2B_DATA qdata;
	TPMT_SIG_SCHEME in_scheme = { .scheme = scheme };
	g_autoptr(TPM2B_ATTEST) certified = NULL;
	g_autoptr(TPMT_SIGNATURE) sig = NULL;
	KlTpmEsysSigning args = {
		.qualifying_data = &qdata,
		.scheme = &in_scheme,
		.signer = signer,
		.attest = &certified,
		.signature = &sig,
	};
	TSS2_RC rc;

	if (scheme != TPM2_ALG_NULL)
		in_scheme.details.any.hashAlg = hash;
	if (!kl_tpm_esys_ready(tpm, self, error))
		return FALSE;
	if (signer != ESYS_TR_NONE && signer_auth != NULL) {
		TPM2B_AUTH auth = { 0 };
		gsize len = strlen(signer_auth);
		if (len > sizeof(auth.buffer)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "the signing key's password is too long");
			return FALSE;
		}
		auth.size = (UINT16)len;
		memcpy(auth.buffer, signer_auth, len);
		rc = Esys_TR_SetAuth(self->esys, signer, &auth);
		memset(&auth, 0, sizeof(auth));
		if (rc != TSS2_RC_SUCCESS) {
			g_propagate_error(error, kl_tpm_error_from_rc(rc, "Esys_TR_SetAuth"));
			return FALSE;
		}
	}
	kl_tpm_esys_fill_data(&qdata, qualifying_data);
	/* a signer other than the AK (IAK) does not survive a reconnection */
	if (!kl_tpm_esys_run(tpm,
			     self,
			     "Esys_Certify",
			     signer == ESYS_TR_NONE,
			     kl_tpm_esys_sign_attempt,
			     &args,
			     NULL,
			     error))
		return FALSE;
	return kl_tpm_esys_attest_out(certified, sig, attest, signature, error);
}

typedef struct {
	const TPM2B_ID_OBJECT *id_object;
	const TPM2B_ENCRYPTED_SECRET *encrypted_secret;
	TPM2B_DIGEST **cert_info;
} KlTpmEsysActivate;

/* the EK is loaded only for this command (object slots are scarce) */
static gboolean
kl_tpm_esys_activate_attempt(
    KlTpm *tpm, KlTpmEsys *self, guint attempt, gpointer data, TSS2_RC *rc, GError **error)
{
	KlTpmEsysActivate *args = data;
	ESYS_TR session = ESYS_TR_NONE;

	self->last_rc = TSS2_RC_SUCCESS;
	if (!kl_tpm_esys_ek_ensure(self, error))
		return FALSE;
	if (!kl_tpm_esys_ek_session(self, &session, error)) {
		if (!kl_tpm_rc_is_connection_lost(self->last_rc) || attempt > 0) {
			kl_tpm_esys_ek_release(self);
			return FALSE;
		}
		/* the connection was lost while opening the session: recovered like a command */
		g_clear_error(error);
		*rc = self->last_rc;
	} else {
		*rc = Esys_ActivateCredential(self->esys,
					      tpm->ak_handle,
					      self->ek,
					      ESYS_TR_PASSWORD,
					      session,
					      ESYS_TR_NONE,
					      args->id_object,
					      args->encrypted_secret,
					      args->cert_info);
		kl_tpm_esys_flush(self, &session);
	}
	if (*rc == TSS2_RC_SUCCESS || !kl_tpm_rc_is_connection_lost(*rc))
		kl_tpm_esys_ek_release(self);
	return TRUE;
}

static gboolean
kl_tpm_esys_activate_credential(KlTpm *tpm, GBytes *blob, GBytes **secret, GError **error)
{
	KlTpmEsys *self = kl_tpm_esys_get(tpm);
	TPM2B_ID_OBJECT id_object;
	TPM2B_ENCRYPTED_SECRET enc_secret;
	g_autoptr(TPM2B_DIGEST) cert_info = NULL;
	KlTpmEsysActivate args = { &id_object, &enc_secret, &cert_info };
	TSS2_RC rc = TSS2_RC_SUCCESS;

	if (!kl_tpm_split_credential_blob(blob, &id_object, &enc_secret, error))
		return FALSE;
	if (!kl_tpm_esys_ready(tpm, self, error))
		return FALSE;
	if (!kl_tpm_esys_run(tpm,
			     self,
			     "Esys_ActivateCredential",
			     TRUE,
			     kl_tpm_esys_activate_attempt,
			     &args,
			     &rc,
			     error)) {
		switch (kl_tpm_rc_base(rc)) {
		case TPM2_RC_INTEGRITY:
		case TPM2_RC_VALUE:
		case TPM2_RC_SIZE:
		case TPM2_RC_ECC_POINT:
		case TPM2_RC_INSUFFICIENT:
			/* the TPM could not open the credential: it is not for this EK/AK */
			g_clear_error(error);
			g_propagate_error(
			    error,
			    kl_tpm_error_from_rc(rc,
						 "Esys_ActivateCredential: the registrar's "
						 "challenge was not made for this EK and AK"));
			break;
		default:
			break;
		}
		return FALSE;
	}
	*secret = g_bytes_new(cert_info->buffer, cert_info->size);
	memset(cert_info->buffer, 0, cert_info->size);
	return TRUE;
}

const KlTpmBackend kl_tpm_esys_backend = {
	.name = "esys",
	.open = kl_tpm_esys_open,
	.close = kl_tpm_esys_close,
	.get_esys = kl_tpm_esys_get_esys,
	.quote = kl_tpm_esys_quote,
	.pcr_read = kl_tpm_esys_pcr_read,
	.certify_ak = kl_tpm_esys_certify_ak,
	.activate_credential = kl_tpm_esys_activate_credential,
};
