/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The agent id (the `uuid` option): a literal UUID, "generate" (random once,
 * then kept in keylime_dir/agent_uuid), "hash_ek", "hostname", "dmidecode".
 */
#include "config.h"

#include <string.h>

#include "keylime-agent/kl-error.h"
#include "kl-agent-id.h"
#include "kl-atomic-file.h"
#include "kl-tpm-backend.h"

#define KL_TPM_AGENT_ID_MAX 80

gboolean
kl_tpm_agent_id_is_valid(const gchar *id)
{
	gsize len;

	if (id == NULL)
		return FALSE;
	len = strlen(id);
	if (len == 0 || len > KL_TPM_AGENT_ID_MAX)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isalnum(id[i]) && id[i] != '_' && id[i] != '.' && id[i] != '-')
			return FALSE;
	}
	return TRUE;
}

gchar *
kl_tpm_read_dmi_uuid(const gchar *path, GError **error)
{
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error_local = NULL;

	if (!g_file_get_contents(path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_NOT_FOUND,
			    "uuid = dmidecode: cannot read %s (%s); it needs DMI firmware tables "
			    "and is readable by root only: run the agent with the privileges to "
			    "read it, or choose another uuid mode (generate, hash_ek, hostname)",
			    path,
			    error_local->message);
		return NULL;
	}
	g_strstrip(contents);
	if (!g_uuid_string_is_valid(contents)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_INVALID_DATA,
			    "uuid = dmidecode: %s does not hold a UUID; choose another uuid mode",
			    path);
		return NULL;
	}
	return g_ascii_strdown(contents, -1);
}

static gchar *
kl_tpm_agent_id_generate(const gchar *state_dir, GError **error)
{
	g_autofree gchar *path = NULL;
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *uuid = NULL;
	g_autofree gchar *line = NULL;

	if (state_dir == NULL || *state_dir == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "uuid = generate needs keylime_dir to keep the generated id");
		return NULL;
	}
	path = g_build_filename(state_dir, "agent_uuid", NULL);
	if (g_file_get_contents(path, &contents, NULL, &error_local)) {
		g_strstrip(contents);
		if (!g_uuid_string_is_valid(contents)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_INVALID_DATA,
				    "%s does not hold a UUID; delete it to generate a new agent id "
				    "(the old id must then be removed from the registrar and the "
				    "verifier)",
				    path);
			return NULL;
		}
		return g_ascii_strdown(contents, -1);
	}
	if (!g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_IO,
			    "cannot read the generated agent id: %s",
			    error_local->message);
		return NULL;
	}
	uuid = g_uuid_string_random();
	line = g_strdup_printf("%s\n", uuid);
	if (!kl_tpm_write_file_atomic(path, line, strlen(line), 0600, error)) {
		g_prefix_error(error, "uuid = generate: ");
		return NULL;
	}
	return g_steal_pointer(&uuid);
}

gchar *
kl_tpm_resolve_agent_id(KlTpm *tpm,
			const gchar *uuid_option,
			const gchar *state_dir,
			GError **error)
{
	if (uuid_option == NULL || *uuid_option == '\0') {
		g_set_error(error,
			    KL_ERROR,
			    KL_ERROR_CONFIG,
			    "uuid is empty; set a UUID or one of generate, hash_ek, hostname, "
			    "dmidecode");
		return NULL;
	}
	if (g_strcmp0(uuid_option, "generate") == 0)
		return kl_tpm_agent_id_generate(state_dir, error);
	if (g_strcmp0(uuid_option, "hash_ek") == 0) {
		if (tpm == NULL || tpm->ek_hash == NULL) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "uuid = hash_ek needs a TPM with an EK");
			return NULL;
		}
		return g_strdup(tpm->ek_hash);
	}
	if (g_strcmp0(uuid_option, "hostname") == 0) {
		const gchar *host = g_get_host_name();
		if (!kl_tpm_agent_id_is_valid(host)) {
			g_set_error(error,
				    KL_ERROR,
				    KL_ERROR_CONFIG,
				    "uuid = hostname: the host name '%s' is not a valid agent id "
				    "(letters, digits, '_', '.', '-', at most %d characters); set "
				    "uuid explicitly",
				    host,
				    KL_TPM_AGENT_ID_MAX);
			return NULL;
		}
		return g_strdup(host);
	}
	if (g_strcmp0(uuid_option, "dmidecode") == 0)
		return kl_tpm_read_dmi_uuid("/sys/class/dmi/id/product_uuid", error);
	/* kept as written: the id is the registrar's primary key */
	if (g_uuid_string_is_valid(uuid_option))
		return g_strdup(uuid_option);
	g_set_error(error,
		    KL_ERROR,
		    KL_ERROR_CONFIG,
		    "uuid '%s' is neither a UUID nor one of generate, hash_ek, hostname, "
		    "dmidecode",
		    uuid_option);
	return NULL;
}
