/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Discovers, validates and loads evidence plugins, and calls them only through
 * guarded runners.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "keylime-agent/kl-plugin.h"
#include "kl-config.h"
#include "kl-evidence-entry.h"
#include "kl-evidence-request.h"
#include "kl-json-body.h"

G_BEGIN_DECLS

typedef struct _KlPluginLoader KlPluginLoader;

typedef enum {
	KL_PLUGIN_STATE_ACTIVE,
	KL_PLUGIN_STATE_DISABLED,    /* listed in disabled_plugins */
	KL_PLUGIN_STATE_REJECTED,    /* bad file, ABI, symbol, duplicate */
	KL_PLUGIN_STATE_UNAVAILABLE, /* startup said NOT_SUPPORTED */
	KL_PLUGIN_STATE_FAILED,	     /* startup failed otherwise */
} KlPluginState;

/* services handed to every plugin context (all borrowed, must outlive the loader) */
typedef struct {
	KlConfig *config;
	KlTpm *tpm; /* may be NULL */
	const gchar *agent_id;
	const gchar *data_dir;
	gint64 boot_time;
} KlPluginServices;

KlPluginLoader *
kl_plugin_loader_new(const KlPluginServices *services);
void
kl_plugin_loader_free(KlPluginLoader *loader); /* calls shutdown of active plugins */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlPluginLoader, kl_plugin_loader_free)

/*
 * Scans @dir for *.so (sorted), validates and dlopen()s each, checks the ABI,
 * skips @disabled (before opening), rejects duplicates, calls startup().
 * Only a missing/unreadable directory is an error; every per-plugin problem is
 * one log line and a recorded state.
 */
gboolean
kl_plugin_loader_load_dir(KlPluginLoader *loader,
			  const gchar *dir,
			  gchar **disabled,
			  GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* all plugins seen (any state), in load order; (transfer none) array of KlPlugin* */
GPtrArray *
kl_plugin_loader_get_plugins(KlPluginLoader *loader);
/* the active plugin for an evidence type, or NULL */
KlPlugin *
kl_plugin_loader_lookup(KlPluginLoader *loader, const gchar *evidence_type);

/* "active", "disabled", "rejected", "unavailable", "failed" */
const gchar *
kl_plugin_state_to_string(KlPluginState state);

const gchar *
kl_plugin_get_name(KlPlugin *plugin);
const gchar *
kl_plugin_get_path(KlPlugin *plugin);
const gchar *
kl_plugin_get_evidence_class(KlPlugin *plugin);
const gchar *
kl_plugin_get_version(KlPlugin *plugin);
const gchar *
kl_plugin_get_description(KlPlugin *plugin);
KlPluginState
kl_plugin_get_state(KlPlugin *plugin);
/* why the plugin is not active (NULL when active) */
const gchar *
kl_plugin_get_state_reason(KlPlugin *plugin);
KlPluginContext *
kl_plugin_get_context(KlPlugin *plugin);

/*
 * Runners: skip NULL optional callbacks, turn a FALSE/NULL without error into
 * KL_ERROR_INTERNAL, prefix errors with "<name>: ".
 */
/* the full evidence_supported entry {evidence_class, evidence_type, capabilities} */
JsonObject *
kl_plugin_run_get_capabilities(KlPlugin *plugin, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * the full evidence_collected entry {evidence_class, evidence_type, data};
 * the plugin gets a sealed (json_object_seal()) deep copy of
 * @chosen_parameters (nullable: an empty object), so it cannot change the
 * caller's object
 */
JsonObject *
kl_plugin_run_collect(KlPlugin *plugin,
		      JsonObject *chosen_parameters,
		      GCancellable *cancellable,
		      GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * Resolves one evidence request to the active plugin that provides its type
 * in its class and records it in @request->plugin. NULL with
 * KL_ERROR_NOT_SUPPORTED (no active plugin for the type) or
 * KL_ERROR_INVALID_PARAMETERS (another class).
 */
KlPlugin *
kl_plugin_loader_resolve(KlPluginLoader *loader,
			 KlEvidenceRequest *request,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/*
 * Collects a resolved request through its plugin: the evidence_collected
 * entry {evidence_class, evidence_type, data}, as the plugin's data and the
 * plugin's head (made once: the envelope never changes, and no object is
 * built for it cycle after cycle). The plugin reads the request's
 * sealed chosen_parameters directly. @report: (out) (optional): what the
 * plugin reported it sent (kl_plugin_context_set_summary(),
 * kl_plugin_context_set_entry_count()); cleared first. @body: (nullable): the
 * request body the entry goes into; the strings the plugin attached
 * (kl_plugin_context_attach_string()) then stay with the entry
 * (@attachments), written by the body from the plugin's buffer as members of
 * the data. Without a body they are copied into the data.
 */
KlEvidenceEntry *
kl_plugin_run_request(KlEvidenceRequest *request,
		      GCancellable *cancellable,
		      KlEvidenceReport *report,
		      KlJsonBody *body,
		      GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean
kl_plugin_run_contribute_registration(KlPlugin *plugin,
				      JsonObject *body,
				      GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
