/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>

#include "kl-evidence-request.h"

KlEvidenceRequest *
kl_evidence_request_new(const gchar *evidence_class,
			const gchar *evidence_type,
			JsonObject *chosen_parameters)
{
	KlEvidenceRequest *request;
	gsize class_size;
	gsize type_size;

	g_return_val_if_fail(evidence_class != NULL, NULL);
	g_return_val_if_fail(evidence_type != NULL, NULL);

	/* one allocation: the request, then its two strings */
	class_size = strlen(evidence_class) + 1;
	type_size = strlen(evidence_type) + 1;
	request = g_malloc0(sizeof(KlEvidenceRequest) + class_size + type_size);
	request->evidence_class = memcpy((gchar *)(request + 1), evidence_class, class_size);
	request->evidence_type =
	    memcpy(request->evidence_class + class_size, evidence_type, type_size);
	request->chosen_parameters =
	    chosen_parameters != NULL ? json_object_ref(chosen_parameters) : json_object_new();
	json_object_seal(request->chosen_parameters);
	return request;
}

void
kl_evidence_request_free(KlEvidenceRequest *request)
{
	if (request == NULL)
		return;
	json_object_unref(request->chosen_parameters);
	g_free(request); /* and its strings */
}

void
kl_evidence_report_clear(KlEvidenceReport *report)
{
	g_clear_pointer(&report->summary, g_free);
	report->entry_count = 0;
}

gchar *
kl_evidence_requests_describe(GPtrArray *requests)
{
	guint n = requests != NULL ? requests->len : 0;
	gsize size = 1;
	gchar *text;
	gchar *p;

	/* one allocation of the right size */
	for (guint i = 0; i < n; i++) {
		const KlEvidenceRequest *request = g_ptr_array_index(requests, i);

		size += (i > 0 ? 2 : 0) + strlen(request->evidence_type);
	}
	p = text = g_malloc(size);
	for (guint i = 0; i < n; i++) {
		const KlEvidenceRequest *request = g_ptr_array_index(requests, i);
		gsize len = strlen(request->evidence_type);

		if (i > 0) {
			*p++ = ',';
			*p++ = ' ';
		}
		memcpy(p, request->evidence_type, len);
		p += len;
	}
	*p = '\0';
	return text;
}
