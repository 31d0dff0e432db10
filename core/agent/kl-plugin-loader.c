/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keylime-agent/kl-error.h"
#include "kl-plugin-context-private.h"
#include "kl-plugin-loader.h"

struct _KlPlugin {
	gchar *name; /* file basename without ".so" */
	gchar *path;
	KlPluginState state;
	gchar *reason;		  /* NULL when active */
	const KlPluginInfo *info; /* NULL unless the descriptor passed the ABI check */
	KlPluginContext *ctx;	  /* NULL for disabled and rejected plugins */
	KlConfig *config;	  /* (nullable) the agent's configuration */
	/* the last capabilities, when the plugin sealed them, and their sealed entry */
	JsonObject *caps_last;
	JsonObject *caps_entry;
	/* the text of its evidence_collected entries before the data (a GRefString) */
	gchar *entry_head;
};

struct _KlPluginLoader {
	KlPluginServices services;
	GPtrArray *plugins; /* of KlPlugin*, load order */
};

static void
kl_plugin_free(KlPlugin *plugin)
{
	kl_plugin_context_free(plugin->ctx);
	g_clear_pointer(&plugin->caps_last, json_object_unref);
	g_clear_pointer(&plugin->caps_entry, json_object_unref);
	g_clear_pointer(&plugin->entry_head, g_ref_string_release);
	g_free(plugin->name);
	g_free(plugin->path);
	g_free(plugin->reason);
	g_free(plugin);
}

/* the keys a plugin declared (ABI 1.1), or NULL */
static const KlPluginConfigKey *
kl_plugin_config_keys(KlPlugin *plugin)
{
	if (plugin->info == NULL || plugin->info->abi_minor < 1)
		return NULL;
	return plugin->info->config_keys;
}

/*
 * config view of a plugin context: its declared keys and the non-secret
 * [agent] options (kl_config_lookup_plugin())
 */
static const gchar *
kl_plugin_loader_config_lookup_cb(gpointer user_data, const gchar *table, const gchar *key)
{
	KlPlugin *plugin = user_data;

	if (plugin->config == NULL)
		return NULL;
	return kl_config_lookup_plugin(
	    plugin->config, plugin->name, kl_plugin_config_keys(plugin), key);
}

KlPluginLoader *
kl_plugin_loader_new(const KlPluginServices *services)
{
	KlPluginLoader *loader = g_new0(KlPluginLoader, 1);

	if (services != NULL)
		loader->services = *services;
	loader->plugins = g_ptr_array_new_with_free_func((GDestroyNotify)kl_plugin_free);
	return loader;
}

/*
 * The thread promise of kl-plugin.h, enforced: no two plugin callbacks ever
 * run at the same time (startup/shutdown on the loading thread, the others on
 * the agent's worker, one at a time). An overlap is a bug of the core: it is
 * reported as a critical (fatal in the tests, G_DEBUG=fatal-criticals).
 */
static gint kl_plugin_callbacks_running;

static void
kl_plugin_callback_enter(KlPlugin *plugin, const gchar *callback)
{
	if (g_atomic_int_add(&kl_plugin_callbacks_running, 1) != 0)
		g_critical("%s: %s() called while another plugin callback runs; plugin "
			   "callbacks must never overlap (kl-plugin.h)",
			   plugin->name,
			   callback);
}

static void
kl_plugin_callback_leave(void)
{
	g_atomic_int_add(&kl_plugin_callbacks_running, -1);
}

void
kl_plugin_loader_free(KlPluginLoader *loader)
{
	if (loader == NULL)
		return;
	/* shut down in reverse load order; modules stay mapped (resident) */
	for (guint i = loader->plugins->len; i > 0; i--) {
		KlPlugin *plugin = g_ptr_array_index(loader->plugins, i - 1);

		if (plugin->state == KL_PLUGIN_STATE_ACTIVE && plugin->info->shutdown != NULL) {
			kl_plugin_callback_enter(plugin, "shutdown");
			plugin->info->shutdown(plugin->ctx);
			kl_plugin_callback_leave();
		}
	}
	g_ptr_array_unref(loader->plugins);
	g_free(loader);
}

static KlPlugin *
kl_plugin_new(const gchar *name, const gchar *path)
{
	KlPlugin *plugin = g_new0(KlPlugin, 1);

	plugin->name = g_strdup(name);
	plugin->path = g_strdup(path);
	plugin->state = KL_PLUGIN_STATE_REJECTED;
	return plugin;
}

static void
kl_plugin_reject(KlPlugin *plugin, const gchar *reason)
{
	plugin->state = KL_PLUGIN_STATE_REJECTED;
	plugin->info = NULL;
	g_free(plugin->reason);
	plugin->reason = g_strdup(reason);
	g_warning("plugin %s rejected: %s", plugin->path, reason);
}

/* file checks before anything of the module is mapped (as NetworkManager does) */
static gboolean
kl_plugin_loader_check_file(const gchar *path, gchar **reason)
{
	struct stat st;

	/* stat() follows symlinks: what counts is the file that would be mapped */
	if (stat(path, &st) != 0) {
		*reason = g_strdup_printf("cannot stat the file: %s", g_strerror(errno));
		return FALSE;
	}
	if (!S_ISREG(st.st_mode)) {
		*reason = g_strdup("not a regular file");
		return FALSE;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		*reason = g_strdup_printf("owned by uid %u, neither root nor the agent's user "
					  "(uid %u); chown it to root",
					  (guint)st.st_uid,
					  (guint)geteuid());
		return FALSE;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		*reason = g_strdup_printf("writable by group or others (mode %04o); "
					  "chmod go-w it",
					  (guint)(st.st_mode & 07777));
		return FALSE;
	}
	if ((st.st_mode & (S_ISUID | S_ISGID)) != 0) {
		*reason = g_strdup_printf("setuid or setgid (mode %04o); chmod ug-s it",
					  (guint)(st.st_mode & 07777));
		return FALSE;
	}
	return TRUE;
}

/* required fields and ABI of a descriptor; @info is only read as far as its ABI allows */
static gboolean
kl_plugin_loader_check_info(KlPlugin *plugin, const KlPluginInfo *info, gchar **reason)
{
	if (info->abi_major != KL_PLUGIN_ABI_MAJOR) {
		*reason = g_strdup_printf("built for plugin ABI %u.%u, the agent supports %u.%u; "
					  "rebuild the plugin against this agent",
					  info->abi_major,
					  info->abi_minor,
					  (guint)KL_PLUGIN_ABI_MAJOR,
					  (guint)KL_PLUGIN_ABI_MINOR);
		return FALSE;
	}
	if (info->abi_minor > KL_PLUGIN_ABI_MINOR) {
		*reason = g_strdup_printf("built for plugin ABI %u.%u, newer than the agent's "
					  "%u.%u; update the agent or rebuild the plugin",
					  info->abi_major,
					  info->abi_minor,
					  (guint)KL_PLUGIN_ABI_MAJOR,
					  (guint)KL_PLUGIN_ABI_MINOR);
		return FALSE;
	}
	if (info->name == NULL || info->name[0] == '\0') {
		*reason = g_strdup("the descriptor has no name");
		return FALSE;
	}
	if (g_strcmp0(info->name, plugin->name) != 0) {
		*reason = g_strdup_printf("the descriptor names the plugin \"%s\", but the "
					  "file is %s.so; name and file must match",
					  info->name,
					  plugin->name);
		return FALSE;
	}
	if (info->evidence_class == NULL) {
		*reason = g_strdup("the descriptor has no evidence_class");
		return FALSE;
	}
	if (g_strcmp0(info->evidence_class, "certification") != 0 &&
	    g_strcmp0(info->evidence_class, "log") != 0) {
		*reason = g_strdup_printf("evidence_class \"%s\" is neither \"certification\" "
					  "nor \"log\"",
					  info->evidence_class);
		return FALSE;
	}
	if (info->version == NULL) {
		*reason = g_strdup("the descriptor has no version");
		return FALSE;
	}
	if (info->get_capabilities == NULL) {
		*reason = g_strdup("the descriptor has no get_capabilities callback");
		return FALSE;
	}
	if (info->collect == NULL) {
		*reason = g_strdup("the descriptor has no collect callback");
		return FALSE;
	}
	return TRUE;
}

static KlPlugin *
kl_plugin_loader_find_claim(KlPluginLoader *loader, const gchar *evidence_type)
{
	for (guint i = 0; i < loader->plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(loader->plugins, i);

		if (plugin->info != NULL && g_strcmp0(plugin->info->name, evidence_type) == 0)
			return plugin;
	}
	return NULL;
}

/*
 * Turns a failed callback into an error that names the plugin; a callback
 * that failed without saying why is a plugin bug, reported as INTERNAL.
 */
static void
kl_plugin_propagate_error(KlPlugin *plugin,
			  const gchar *callback,
			  GError *error_local,
			  GError **error)
{
	if (error_local == NULL) {
		g_warning("plugin %s: %s failed without setting an error (a bug in the plugin)",
			  plugin->name,
			  callback);
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "%s: %s failed without reporting why (a bug in the plugin)",
			    plugin->name,
			    callback);
		return;
	}
	g_propagate_prefixed_error(error, error_local, "%s: ", plugin->name);
}

static void
kl_plugin_loader_startup(KlPlugin *plugin)
{
	g_autoptr(GError) error = NULL;
	GError *error_local = NULL;
	gboolean ok = TRUE;

	if (plugin->info->startup != NULL) {
		kl_plugin_callback_enter(plugin, "startup");
		ok = plugin->info->startup(plugin->ctx, &error_local);
		kl_plugin_callback_leave();
	}
	if (ok) {
		/* a plugin that succeeded must not leave an error behind */
		g_clear_error(&error_local);
		plugin->state = KL_PLUGIN_STATE_ACTIVE;
		g_debug("plugin %s %s (%s) loaded from %s",
			plugin->name,
			plugin->info->version,
			plugin->info->evidence_class,
			plugin->path);
		return;
	}
	if (error_local == NULL) {
		/* reported below in the one FAILED line */
		error =
		    g_error_new(KL_ERROR,
				KL_ERROR_INTERNAL,
				"%s: startup failed without reporting why (a bug in the plugin)",
				plugin->name);
	} else {
		kl_plugin_propagate_error(plugin, "startup", error_local, &error);
	}
	g_free(plugin->reason);
	plugin->reason = g_strdup(error->message);
	if (g_error_matches(error, KL_ERROR, KL_ERROR_NOT_SUPPORTED)) {
		plugin->state = KL_PLUGIN_STATE_UNAVAILABLE;
		g_info("plugin %s is not available on this host: %s", plugin->name, error->message);
		return;
	}
	plugin->state = KL_PLUGIN_STATE_FAILED;
	g_warning("plugin %s failed to start and is left out: %s", plugin->name, error->message);
}

static void
kl_plugin_loader_load_one(KlPluginLoader *loader, KlPlugin *plugin)
{
	g_autofree gchar *reason = NULL;
	KlPluginGetInfoFunc get_info;
	const KlPluginInfo *info;
	KlPlugin *other;
	void *handle;
	void *sym;
	const gchar *dl_message;

	if (!kl_plugin_loader_check_file(plugin->path, &reason)) {
		kl_plugin_reject(plugin, reason);
		return;
	}

	/* immediate binding: an unresolved symbol fails here, not at call time */
	dlerror();
	handle = dlopen(plugin->path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		dl_message = dlerror();
		reason = g_strdup_printf("cannot be loaded: %s",
					 dl_message != NULL ? dl_message : "unknown error");
		kl_plugin_reject(plugin, reason);
		return;
	}
	/* from here on the module stays mapped: it is never dlclose()d */
	dlerror();
	sym = dlsym(handle, KL_PLUGIN_INFO_SYMBOL);
	dl_message = dlerror();
	if (sym == NULL) {
		reason = g_strdup_printf("does not export %s(): %s; it is not an agent plugin",
					 KL_PLUGIN_INFO_SYMBOL,
					 dl_message != NULL ? dl_message : "symbol is NULL");
		kl_plugin_reject(plugin, reason);
		return;
	}
	get_info = (KlPluginGetInfoFunc)sym;
	info = get_info();
	if (info == NULL) {
		reason = g_strdup_printf("%s() returned no descriptor", KL_PLUGIN_INFO_SYMBOL);
		kl_plugin_reject(plugin, reason);
		return;
	}
	if (!kl_plugin_loader_check_info(plugin, info, &reason)) {
		kl_plugin_reject(plugin, reason);
		return;
	}
	other = kl_plugin_loader_find_claim(loader, info->name);
	if (other != NULL) {
		reason = g_strdup_printf(
		    "evidence type \"%s\" is already provided by %s", info->name, other->path);
		kl_plugin_reject(plugin, reason);
		return;
	}

	plugin->info = info;
	plugin->config = loader->services.config;
	if (plugin->config != NULL)
		kl_config_check_plugin_table(
		    plugin->config, plugin->name, kl_plugin_config_keys(plugin));
	plugin->ctx = kl_plugin_context_new(plugin->name,
					    kl_plugin_loader_config_lookup_cb,
					    plugin,
					    loader->services.agent_id,
					    loader->services.data_dir,
					    loader->services.boot_time,
					    loader->services.tpm);
	kl_plugin_loader_startup(plugin);
}

static gint
kl_plugin_loader_compare_names_cb(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const gchar *const *)a, *(const gchar *const *)b);
}

gboolean
kl_plugin_loader_load_dir(KlPluginLoader *loader,
			  const gchar *dir,
			  gchar **disabled,
			  GError **error)
{
	g_autoptr(GDir) gdir = NULL;
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GError) error_local = NULL;
	const gchar *entry;

	g_return_val_if_fail(loader != NULL, FALSE);
	g_return_val_if_fail(dir != NULL, FALSE);

	gdir = g_dir_open(dir, 0, &error_local);
	if (gdir == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_FOUND,
			    "cannot read the plugin directory %s: %s; check plugin_dir or "
			    "--plugin-dir",
			    dir,
			    error_local->message);
		return FALSE;
	}
	while ((entry = g_dir_read_name(gdir)) != NULL) {
		if (g_str_has_suffix(entry, ".so") && strlen(entry) > 3)
			g_ptr_array_add(names, g_strdup(entry));
	}
	/* deterministic load order; strcmp, not the locale's collation */
	g_ptr_array_sort(names, kl_plugin_loader_compare_names_cb);

	for (guint i = 0; i < names->len; i++) {
		const gchar *file = g_ptr_array_index(names, i);
		g_autofree gchar *name = g_strndup(file, strlen(file) - 3);
		g_autofree gchar *path = g_build_filename(dir, file, NULL);
		KlPlugin *plugin = kl_plugin_new(name, path);

		g_ptr_array_add(loader->plugins, plugin);
		/* before opening: a disabled module's constructors never run */
		if (disabled != NULL && g_strv_contains((const gchar *const *)disabled, name)) {
			plugin->state = KL_PLUGIN_STATE_DISABLED;
			plugin->reason = g_strdup("listed in disabled_plugins");
			g_info(
			    "plugin %s is listed in disabled_plugins; %s not loaded", name, path);
			continue;
		}
		kl_plugin_loader_load_one(loader, plugin);
	}
	if (loader->services.config != NULL) {
		g_autoptr(GPtrArray) plugin_names = g_ptr_array_new();

		for (guint i = 0; i < loader->plugins->len; i++)
			g_ptr_array_add(plugin_names,
					((KlPlugin *)g_ptr_array_index(loader->plugins, i))->name);
		g_ptr_array_add(plugin_names, NULL);
		kl_config_check_tables(loader->services.config,
				       (const gchar *const *)plugin_names->pdata);
	}
	return TRUE;
}

GPtrArray *
kl_plugin_loader_get_plugins(KlPluginLoader *loader)
{
	g_return_val_if_fail(loader != NULL, NULL);
	return loader->plugins;
}

KlPlugin *
kl_plugin_loader_lookup(KlPluginLoader *loader, const gchar *evidence_type)
{
	g_return_val_if_fail(loader != NULL, NULL);
	g_return_val_if_fail(evidence_type != NULL, NULL);

	for (guint i = 0; i < loader->plugins->len; i++) {
		KlPlugin *plugin = g_ptr_array_index(loader->plugins, i);

		if (plugin->state == KL_PLUGIN_STATE_ACTIVE &&
		    g_strcmp0(plugin->info->name, evidence_type) == 0)
			return plugin;
	}
	return NULL;
}

const gchar *
kl_plugin_state_to_string(KlPluginState state)
{
	switch (state) {
	case KL_PLUGIN_STATE_ACTIVE:
		return "active";
	case KL_PLUGIN_STATE_DISABLED:
		return "disabled";
	case KL_PLUGIN_STATE_REJECTED:
		return "rejected";
	case KL_PLUGIN_STATE_UNAVAILABLE:
		return "unavailable";
	case KL_PLUGIN_STATE_FAILED:
		return "failed";
	default:
		return "unknown";
	}
}

const gchar *
kl_plugin_get_name(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->name;
}

const gchar *
kl_plugin_get_path(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->path;
}

const gchar *
kl_plugin_get_evidence_class(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->info != NULL ? plugin->info->evidence_class : NULL;
}

const gchar *
kl_plugin_get_version(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->info != NULL ? plugin->info->version : NULL;
}

const gchar *
kl_plugin_get_description(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->info != NULL ? plugin->info->description : NULL;
}

KlPluginState
kl_plugin_get_state(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, KL_PLUGIN_STATE_REJECTED);
	return plugin->state;
}

const gchar *
kl_plugin_get_state_reason(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->state == KL_PLUGIN_STATE_ACTIVE ? NULL : plugin->reason;
}

KlPluginContext *
kl_plugin_get_context(KlPlugin *plugin)
{
	g_return_val_if_fail(plugin != NULL, NULL);
	return plugin->ctx;
}

static gboolean
kl_plugin_check_active(KlPlugin *plugin, GError **error)
{
	if (plugin->state == KL_PLUGIN_STATE_ACTIVE)
		return TRUE;
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_NOT_SUPPORTED,
		    "%s: the plugin is %s (%s)",
		    plugin->name,
		    kl_plugin_state_to_string(plugin->state),
		    plugin->reason != NULL ? plugin->reason : "no reason recorded");
	return FALSE;
}

/* the envelope comes from the descriptor, never from the plugin's output */
static JsonObject *
kl_plugin_wrap(KlPlugin *plugin, const gchar *member, JsonObject *content)
{
	JsonObject *entry = json_object_new();

	json_object_set_string_member(entry, "evidence_class", plugin->info->evidence_class);
	json_object_set_string_member(entry, "evidence_type", plugin->info->name);
	json_object_set_object_member(entry, member, content);
	return entry;
}

JsonObject *
kl_plugin_run_get_capabilities(KlPlugin *plugin, GError **error)
{
	GError *error_local = NULL;
	JsonObject *caps;

	g_return_val_if_fail(plugin != NULL, NULL);

	if (!kl_plugin_check_active(plugin, error))
		return NULL;
	kl_plugin_callback_enter(plugin, "get_capabilities");
	caps = plugin->info->get_capabilities(plugin->ctx, &error_local);
	kl_plugin_callback_leave();
	if (caps == NULL) {
		kl_plugin_propagate_error(plugin, "get_capabilities", error_local, error);
		return NULL;
	}
	g_clear_error(&error_local);
	/*
	 * a plugin whose facts did not change may hand back the same sealed
	 * object: then the entry (sealed too) is the same, and so is its text
	 * (kl-capabilities.c)
	 */
	if (caps == plugin->caps_last && plugin->caps_entry != NULL) {
		json_object_unref(caps);
		return json_object_ref(plugin->caps_entry);
	}
	g_clear_pointer(&plugin->caps_last, json_object_unref);
	g_clear_pointer(&plugin->caps_entry, json_object_unref);
	if (json_object_is_immutable(caps)) {
		plugin->caps_last = json_object_ref(caps);
		plugin->caps_entry = kl_plugin_wrap(plugin, "capabilities", caps);
		json_object_seal(plugin->caps_entry);
		return json_object_ref(plugin->caps_entry);
	}
	return kl_plugin_wrap(plugin, "capabilities", caps);
}

static JsonNode *
kl_plugin_json_copy_node(JsonNode *node);

/* a deep copy (json_node_copy() shares objects and arrays) */
static JsonObject *
kl_plugin_json_copy_object(JsonObject *obj)
{
	JsonObject *copy = json_object_new();
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *member;

	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &member))
		json_object_set_member(copy, name, kl_plugin_json_copy_node(member));
	return copy;
}

static JsonNode *
kl_plugin_json_copy_node(JsonNode *node)
{
	JsonNode *copy;

	if (JSON_NODE_HOLDS_OBJECT(node)) {
		g_autoptr(JsonObject) obj = kl_plugin_json_copy_object(json_node_get_object(node));

		copy = json_node_init_object(json_node_alloc(), obj);
	} else if (JSON_NODE_HOLDS_ARRAY(node)) {
		JsonArray *src = json_node_get_array(node);
		g_autoptr(JsonArray) array = json_array_sized_new(json_array_get_length(src));

		for (guint i = 0; i < json_array_get_length(src); i++)
			json_array_add_element(
			    array, kl_plugin_json_copy_node(json_array_get_element(src, i)));
		copy = json_node_init_array(json_node_alloc(), array);
	} else {
		/* values and null: copied by value */
		copy = json_node_copy(node);
	}
	return copy;
}

/*
 * without a body (tests, --check tools), the strings the plugin attached
 * (kl_plugin_context_attach_string()) are copied into @data: an existing
 * member is replaced where it stands
 */
static void
kl_plugin_place_attachments(JsonObject *data, GPtrArray *attachments)
{
	for (guint i = 0; attachments != NULL && i < attachments->len; i++) {
		KlPluginAttachment *attachment = g_ptr_array_index(attachments, i);
		gsize len = 0;
		const gchar *text = g_bytes_get_data(attachment->text, &len);
		g_autofree gchar *copy = g_strndup(text, len);

		json_object_set_string_member(data, attachment->member, copy);
	}
}

/* what the plugin reported during its last collect(), taken from its context */
static void
kl_plugin_take_report(KlPlugin *plugin, KlEvidenceReport *report)
{
	g_autofree gchar *summary = kl_plugin_context_take_summary(plugin->ctx);
	guint64 entry_count = kl_plugin_context_take_entry_count(plugin->ctx);

	if (report == NULL)
		return;
	report->summary = g_steal_pointer(&summary);
	report->entry_count = entry_count;
}

/*
 * @params: sealed, read by the plugin only; returns the plugin's data object;
 * the strings it attached go to @attachments_out (nullable: copied into the data)
 */
static JsonObject *
kl_plugin_collect(KlPlugin *plugin,
		  JsonObject *params,
		  GCancellable *cancellable,
		  KlEvidenceReport *report,
		  GPtrArray **attachments_out,
		  GError **error)
{
	GError *error_local = NULL;
	g_autoptr(GPtrArray) attachments = NULL;
	JsonObject *data;

	if (!kl_plugin_check_active(plugin, error))
		return NULL;
	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return NULL;
	kl_plugin_take_report(plugin, NULL);
	/* anything attached outside a collect() is not sent */
	attachments = kl_plugin_context_take_attachments(plugin->ctx);
	g_clear_pointer(&attachments, g_ptr_array_unref);
	kl_plugin_callback_enter(plugin, "collect");
	data = plugin->info->collect(plugin->ctx, params, cancellable, &error_local);
	kl_plugin_callback_leave();
	attachments = kl_plugin_context_take_attachments(plugin->ctx);
	if (data == NULL) {
		kl_plugin_take_report(plugin, NULL);
		kl_plugin_propagate_error(plugin, "collect", error_local, error);
		return NULL;
	}
	g_clear_error(&error_local);
	kl_plugin_take_report(plugin, report);
	if (attachments_out != NULL) {
		*attachments_out = g_steal_pointer(&attachments);
	} else if (attachments != NULL && attachments->len > 0) {
		/* a plugin's sealed object (the same as last time) is not changed: a copy is */
		if (json_object_is_immutable(data)) {
			JsonObject *copy = kl_plugin_json_copy_object(data);

			json_object_unref(data);
			data = copy;
		}
		kl_plugin_place_attachments(data, attachments);
	}
	return data;
}

JsonObject *
kl_plugin_run_collect(KlPlugin *plugin,
		      JsonObject *chosen_parameters,
		      GCancellable *cancellable,
		      GError **error)
{
	g_autoptr(JsonObject) params = NULL;
	JsonObject *data;

	g_return_val_if_fail(plugin != NULL, NULL);
	g_return_val_if_fail(cancellable == NULL || G_IS_CANCELLABLE(cancellable), NULL);

	/*
	 * the plugin reads the caller's parameters but must not change them: it
	 * gets a sealed copy (json-glib's seal stops writes to value nodes, but not
	 * json_object_set_member(), so the copy is what protects the caller)
	 */
	params = chosen_parameters != NULL ? kl_plugin_json_copy_object(chosen_parameters)
					   : json_object_new();
	json_object_seal(params);
	data = kl_plugin_collect(plugin, params, cancellable, NULL, NULL, error);
	return data != NULL ? kl_plugin_wrap(plugin, "data", data) : NULL;
}

KlPlugin *
kl_plugin_loader_resolve(KlPluginLoader *loader, KlEvidenceRequest *request, GError **error)
{
	KlPlugin *plugin;

	g_return_val_if_fail(loader != NULL, NULL);
	g_return_val_if_fail(request != NULL, NULL);

	request->plugin = NULL;
	plugin = kl_plugin_loader_lookup(loader, request->evidence_type);
	if (plugin == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_SUPPORTED,
			    "the verifier requested evidence type '%s', which no active plugin "
			    "provides",
			    request->evidence_type);
		return NULL;
	}
	if (g_strcmp0(plugin->info->evidence_class, request->evidence_class) != 0) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_PARAMETERS,
			    "the verifier requested '%s' as class '%s', but the plugin provides "
			    "class '%s'",
			    request->evidence_type,
			    request->evidence_class,
			    plugin->info->evidence_class);
		return NULL;
	}
	request->plugin = plugin;
	return plugin;
}

KlEvidenceEntry *
kl_plugin_run_request(KlEvidenceRequest *request,
		      GCancellable *cancellable,
		      KlEvidenceReport *report,
		      KlJsonBody *body,
		      GError **error)
{
	KlPlugin *plugin;
	JsonObject *data;
	GPtrArray *attachments = NULL;
	KlEvidenceEntry *entry;

	g_return_val_if_fail(request != NULL, NULL);
	g_return_val_if_fail(cancellable == NULL || G_IS_CANCELLABLE(cancellable), NULL);

	if (report != NULL)
		kl_evidence_report_clear(report);
	plugin = request->plugin;
	if (plugin == NULL) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INTERNAL,
			    "the %s request was not resolved to a plugin",
			    request->evidence_type);
		return NULL;
	}
	/* the request's parameters are sealed and nobody else reads them: no copy */
	data = kl_plugin_collect(plugin,
				 request->chosen_parameters,
				 cancellable,
				 report,
				 body != NULL ? &attachments : NULL,
				 error);
	if (data == NULL)
		return NULL;
	/* the envelope comes from the descriptor, never from the plugin's output */
	if (plugin->entry_head == NULL)
		plugin->entry_head =
		    kl_evidence_entry_head_new(plugin->info->evidence_class, plugin->info->name);
	entry = kl_evidence_entry_new(plugin->entry_head, data);
	entry->attachments = attachments;
	return entry;
}

gboolean
kl_plugin_run_contribute_registration(KlPlugin *plugin, JsonObject *body, GError **error)
{
	GError *error_local = NULL;
	gboolean ok;

	g_return_val_if_fail(plugin != NULL, FALSE);
	g_return_val_if_fail(body != NULL, FALSE);

	if (!kl_plugin_check_active(plugin, error))
		return FALSE;
	if (plugin->info->contribute_registration == NULL)
		return TRUE;
	kl_plugin_callback_enter(plugin, "contribute_registration");
	ok = plugin->info->contribute_registration(plugin->ctx, body, &error_local);
	kl_plugin_callback_leave();
	if (!ok) {
		kl_plugin_propagate_error(plugin, "contribute_registration", error_local, error);
		return FALSE;
	}
	g_clear_error(&error_local);
	return TRUE;
}
