/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The evidence plugin ABI. A plugin is a shared module exporting exactly one
 * symbol, kl_plugin_get_info(), which returns a static KlPluginInfo.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "kl-plugin-context.h"

G_BEGIN_DECLS

#define KL_PLUGIN_ABI_MAJOR   1
#define KL_PLUGIN_ABI_MINOR   2
#define KL_PLUGIN_INFO_SYMBOL "kl_plugin_get_info"

#if defined(__GNUC__)
#define KL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define KL_PLUGIN_EXPORT
#endif

/**
 * KlPluginConfigKey:
 * @name: a configuration key the plugin reads
 * @default_value: (nullable): its value when nothing sets it; %NULL for an
 *   `[agent]` option of the agent (the agent's option table is its one home)
 *
 * One entry of #KlPluginInfo.config_keys, which ends with an entry whose
 * @name is %NULL.
 *
 * Since: 1.1
 */
typedef struct {
	const gchar *name;
	const gchar *default_value;
} KlPluginConfigKey;

/**
 * KlPluginInfo:
 * @abi_major: %KL_PLUGIN_ABI_MAJOR at build time
 * @abi_minor: %KL_PLUGIN_ABI_MINOR at build time
 * @name: plugin name == evidence_type == module basename, e.g. "ima_log"
 * @evidence_class: "certification" or "log"
 * @version: plugin version string
 * @description: one line for `--check` and logs
 * @startup: (nullable): called once after loading. Return FALSE with
 *   %KL_ERROR_NOT_SUPPORTED when the evidence does not exist on this host; the
 *   plugin is then left out with one info line. Any other error leaves it out
 *   with a warning. The agent keeps running either way.
 * @shutdown: (nullable): called once before the agent exits
 * @get_capabilities: returns the `capabilities` object of the plugin's
 *   `evidence_supported` entry (transfer full). Called at every phase 1.
 *   %KL_ERROR_NOT_SUPPORTED leaves the plugin out of that cycle. While its
 *   facts do not change, a plugin may keep a sealed (json_object_seal())
 *   object and return a new reference to it each time: the agent then reuses
 *   what it made of it in the previous cycle instead of writing it again.
 * @collect: returns the `data` object of the plugin's `evidence_collected`
 *   entry (transfer full) for the verifier's @chosen_parameters (sealed,
 *   transfer none). Must honour @cancellable. May report what it sends for
 *   the agent's log with kl_plugin_context_set_summary() (ABI 1.1). A
 *   plugin whose data did not change may seal it (json_object_seal()) and
 *   return a new reference to the same object each time: the agent never
 *   changes a sealed data object (attached strings are written beside it).
 * @contribute_registration: (nullable): adds members to the registrar's
 *   registration body (transfer none, writable). Called before every
 *   registration.
 * @config_keys: (nullable) (array zero-terminated=1): the configuration keys
 *   the plugin reads (ABI 1.1). kl_plugin_context_get_config() then returns
 *   these keys (from the plugin's table, else `[agent]`, else the declared
 *   default, secrets included) and the non-secret `[agent]` options, nothing
 *   else; a key in the plugin's table that is not declared draws a warning
 *   with a "did you mean". %NULL (and every 1.0 plugin): the plugin's table
 *   and the non-secret `[agent]` options.
 *
 * Threads: get_capabilities(), collect() and contribute_registration() run
 * on the agent's worker thread, one call at a time; they may block and may use
 * the TPM (kl-plugin-tpm.h) but must never touch the main context. startup()
 * runs on the thread that loads the plugins (the agent's main thread) before
 * any other callback of the plugin, and shutdown() on that thread after the
 * last one has returned: no two callbacks of any plugins ever run at the same
 * time. Failing callbacks return FALSE/NULL and set @error.
 *
 * Since: 1.0
 */
typedef struct {
	guint16 abi_major;
	guint16 abi_minor;
	const gchar *name;
	const gchar *evidence_class;
	const gchar *version;
	const gchar *description;
	/* ABI 1.0; append only, bump KL_PLUGIN_ABI_MINOR for each addition */
	gboolean (*startup)(KlPluginContext *ctx, GError **error);
	void (*shutdown)(KlPluginContext *ctx);
	JsonObject *(*get_capabilities)(KlPluginContext *ctx, GError **error);
	JsonObject *(*collect)(KlPluginContext *ctx,
			       JsonObject *chosen_parameters,
			       GCancellable *cancellable,
			       GError **error);
	gboolean (*contribute_registration)(KlPluginContext *ctx,
					    JsonObject *registration_body,
					    GError **error);
	/* ABI 1.1 */
	const KlPluginConfigKey *config_keys;
	/*< private >*/
	gpointer padding[7];
} KlPluginInfo;

typedef const KlPluginInfo *(*KlPluginGetInfoFunc)(void);

/**
 * KL_PLUGIN_DEFINE:
 *
 * Defines kl_plugin_get_info() for a plugin, filling in the ABI fields.
 *
 * |[
 * KL_PLUGIN_DEFINE("ima_log", "log", "1.0", "IMA runtime measurement list",
 *                  kl_ima_log_startup, kl_ima_log_shutdown,
 *                  kl_ima_log_get_capabilities, kl_ima_log_collect, NULL)
 * ]|
 *
 * Since: 1.0
 */
#define KL_PLUGIN_DEFINE(                                                                          \
    name_, class_, version_, description_, startup_, shutdown_, caps_, collect_, registration_)    \
	KL_PLUGIN_DEFINE_WITH_CONFIG(name_,                                                        \
				     class_,                                                       \
				     version_,                                                     \
				     description_,                                                 \
				     NULL,                                                         \
				     startup_,                                                     \
				     shutdown_,                                                    \
				     caps_,                                                        \
				     collect_,                                                     \
				     registration_)

/**
 * KL_PLUGIN_DEFINE_WITH_CONFIG:
 *
 * KL_PLUGIN_DEFINE() with the configuration keys the plugin reads
 * (#KlPluginInfo.config_keys).
 *
 * |[
 * static const KlPluginConfigKey keys[] = {
 *         { "ima_ml_path", NULL },   // an [agent] option: its default is the agent's
 *         { "cache_size", "4096" },  // the plugin's own key: [ima_log] cache_size
 *         { NULL },
 * };
 * KL_PLUGIN_DEFINE_WITH_CONFIG("ima_log", "log", "1.0", "IMA runtime measurement list", keys,
 *                              kl_ima_log_startup, kl_ima_log_shutdown,
 *                              kl_ima_log_get_capabilities, kl_ima_log_collect, NULL)
 * ]|
 *
 * Since: 1.1
 */
#define KL_PLUGIN_DEFINE_WITH_CONFIG(name_,                                                        \
				     class_,                                                       \
				     version_,                                                     \
				     description_,                                                 \
				     config_keys_,                                                 \
				     startup_,                                                     \
				     shutdown_,                                                    \
				     caps_,                                                        \
				     collect_,                                                     \
				     registration_)                                                \
	KL_PLUGIN_EXPORT const KlPluginInfo *kl_plugin_get_info(void);                             \
	KL_PLUGIN_EXPORT const KlPluginInfo *kl_plugin_get_info(void)                              \
	{                                                                                          \
		static const KlPluginInfo info = {                                                 \
			.abi_major = KL_PLUGIN_ABI_MAJOR,                                          \
			.abi_minor = KL_PLUGIN_ABI_MINOR,                                          \
			.name = (name_),                                                           \
			.evidence_class = (class_),                                                \
			.version = (version_),                                                     \
			.description = (description_),                                             \
			.startup = (startup_),                                                     \
			.shutdown = (shutdown_),                                                   \
			.get_capabilities = (caps_),                                               \
			.collect = (collect_),                                                     \
			.contribute_registration = (registration_),                                \
			.config_keys = (config_keys_),                                             \
		};                                                                                 \
		return &info;                                                                      \
	}

G_END_DECLS
