/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Agent configuration: built-in defaults < /usr/etc/keylime/agent.conf (+ .d)
 * < /etc/keylime/agent.conf (+ agent.conf.d/\*, lexicographic)
 * < KEYLIME_AGENT_CONFIG (replaces the file set) < KEYLIME_AGENT_<OPTION>
 * < command line.
 */
#pragma once

#include <glib.h>

#include "keylime-agent/kl-plugin.h"

G_BEGIN_DECLS

typedef struct _KlConfig KlConfig;

typedef enum {
	KL_CONFIG_SOURCE_DEFAULT,
	KL_CONFIG_SOURCE_FILE,
	KL_CONFIG_SOURCE_ENV,
	KL_CONFIG_SOURCE_CLI,
} KlConfigSource;

/* a config with built-in defaults only */
KlConfig *
kl_config_new(void);
void
kl_config_free(KlConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlConfig, kl_config_free)

/**
 * kl_config_load:
 * @usr_etc_dir: normally "/usr/etc/keylime"
 * @etc_dir: normally "/etc/keylime"
 * @envp: the environment (g_get_environ()); KEYLIME_AGENT_CONFIG,
 *   KEYLIME_AGENT_<OPTION> and KEYLIME_DIR are read from it
 *
 * Applies the file and environment layers. Unknown keys give a warning naming
 * file and key; a bad value is an error naming file, line and key.
 */
gboolean
kl_config_load(KlConfig *cfg,
	       const gchar *usr_etc_dir,
	       const gchar *etc_dir,
	       gchar **envp,
	       GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* load exactly one file (used for --config FILE and KEYLIME_AGENT_CONFIG) */
gboolean
kl_config_load_file(KlConfig *cfg, const gchar *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* like kl_config_load_file() for text in memory; @name is used in messages */
gboolean
kl_config_load_data(KlConfig *cfg, const gchar *data, gsize len, const gchar *name, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

/* set one option from a given layer (command line: KL_CONFIG_SOURCE_CLI), validated */
gboolean
kl_config_set(KlConfig *cfg,
	      const gchar *key,
	      const gchar *value,
	      KlConfigSource source,
	      const gchar *origin,
	      GError **error) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Resolve keywords after all layers: "default" paths, relative paths against
 * keylime_dir, KEYLIME_DIR. Must be called once before the getters are used.
 */
gboolean
kl_config_finalize(KlConfig *cfg, gchar **envp, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* getters: the key must be a known option (programmer error otherwise) */
const gchar *
kl_config_get_string(KlConfig *cfg, const gchar *key);
gint64
kl_config_get_int(KlConfig *cfg, const gchar *key);
gboolean
kl_config_get_bool(KlConfig *cfg, const gchar *key);
/* list options (TOML arrays or comma lists); (transfer full) */
gchar **
kl_config_get_strv(KlConfig *cfg, const gchar *key);

/*
 * value of a key in an arbitrary table, e.g. ("ima_log", "foo"); NULL if unset.
 * @table NULL or "agent": the effective value of an [agent] option as a string
 * (lists joined with ","), or an unknown [agent] key as written in the file.
 * A key missing from another table falls back to the [agent] option of that
 * name, so a plugin sees e.g. ima_ml_path in its own table unless it is
 * overridden there.
 */
const gchar *
kl_config_lookup(KlConfig *cfg, const gchar *table, const gchar *key);

/*
 * The configuration as the plugin @plugin sees it (kl_plugin_context_get_config()).
 * @keys: the keys the plugin declared (KlPluginInfo.config_keys), or NULL.
 * A declared key: [@plugin], else the [agent] option, else the declared
 * default. Any other key: the non-secret [agent] options only; a plugin that
 * declares nothing also sees its own table.
 */
const gchar *
kl_config_lookup_plugin(KlConfig *cfg,
			const gchar *plugin,
			const KlPluginConfigKey *keys,
			const gchar *key);

/* warns (file:line, "did you mean") for each key of [@plugin] not in @keys; NULL: no check */
void
kl_config_check_plugin_table(KlConfig *cfg, const gchar *plugin, const KlPluginConfigKey *keys);

/* warns for each table that is neither [agent] nor in @plugins but close to one of them */
void
kl_config_check_tables(KlConfig *cfg, const gchar *const *plugins);

/* where the effective value came from, e.g. "/etc/keylime/agent.conf:12" or "default" */
const gchar *
kl_config_get_origin(KlConfig *cfg, const gchar *key);

/* all known option names, sorted; (transfer none) */
const gchar *const *
kl_config_get_known_keys(void);

/*
 * Applies only the KEYLIME_AGENT_<OPTION> environment layer (kl_config_load()
 * calls it last). With --config FILE: kl_config_load_file() then this.
 */
gboolean
kl_config_load_env(KlConfig *cfg, gchar **envp, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* the layer the effective value came from */
KlConfigSource
kl_config_get_source(KlConfig *cfg, const gchar *key);

/*
 * Every option, one per line in TOML syntax with its origin as a comment, for
 * --check; secrets are shown as "(set)" or "(empty)". (transfer full)
 */
gchar *
kl_config_describe(KlConfig *cfg);

/* TRUE for passwords: never print or log their values (--check shows "(set)") */
/* TRUE for an option that takes a boolean (TOML true/false; true/false in the environment) */
gboolean
kl_config_is_boolean(const gchar *key);
gboolean
kl_config_is_secret(const gchar *key);

G_END_DECLS
