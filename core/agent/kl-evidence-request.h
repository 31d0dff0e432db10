/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * One item of the verifier's evidence_requested, as a typed value: the
 * verifier client parses it once (kl_verifier_parse_evidence_requested), the
 * plugin loader resolves it once to the plugin that owns its type
 * (kl_plugin_loader_resolve) and hands its parameters to that plugin
 * (kl_plugin_run_request).
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _KlPlugin KlPlugin;

typedef struct {
	/* in the request's allocation: never freed nor replaced on their own */
	gchar *evidence_class;
	gchar *evidence_type;
	/* sealed; an empty object when the verifier sent none; read only by the plugin */
	JsonObject *chosen_parameters;
	/* the active plugin that provides it, set by kl_plugin_loader_resolve() (borrowed) */
	KlPlugin *plugin;
} KlEvidenceRequest;

/* @chosen_parameters: (transfer none) (nullable): referenced and sealed */
KlEvidenceRequest *
kl_evidence_request_new(const gchar *evidence_class,
			const gchar *evidence_type,
			JsonObject *chosen_parameters);
void
kl_evidence_request_free(KlEvidenceRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlEvidenceRequest, kl_evidence_request_free)

/* what the plugin reported about the evidence it collected for one request */
typedef struct {
	gchar *summary;	     /* kl_plugin_context_set_summary(): "3 new entries", or NULL */
	guint64 entry_count; /* kl_plugin_context_set_entry_count(); 0 when not reported */
} KlEvidenceReport;

void
kl_evidence_report_clear(KlEvidenceReport *report);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KlEvidenceReport, kl_evidence_report_clear)

/* "tpm_quote, ima_log" (transfer full) */
gchar *
kl_evidence_requests_describe(GPtrArray *requests);

G_END_DECLS
