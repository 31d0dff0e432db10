/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Command line of keylime_push_model_agent. Parsing is strict (unknown flags
 * are an error, exit status 2) and happens before any privileged work.
 */
#pragma once

#include <glib.h>

#include "kl-config.h"

G_BEGIN_DECLS

/* one config option set on the command line (element of KlCli.overrides) */
typedef struct {
	gchar *key;   /* config option name, e.g. "request_timeout" */
	gchar *value; /* as given (paths made absolute) */
	gchar *flag;  /* the flag that set it, e.g. "--timeout", for messages */
} KlCliOverride;

typedef struct {
	/* CLI-only switches */
	gchar *config_file; /* --config FILE: replaces the config file set */
	gboolean once;	    /* --once: one attestation cycle, exit status tells */
	gboolean check;	    /* --check: validate and print a report */
	gboolean status;    /* --status: print the running agent's state, exit 0 when on schedule */
	gboolean json;	    /* --json: --status as JSON */
	gboolean alive;	    /* --alive: --status exits 0 while the agent runs and is not stuck */
	gboolean version;   /* --version */
	gboolean avoid_tpm; /* --avoid-tpm: software TPM stand-in (insecure) */
	/* debug one-shot message (see README): --json-file and friends */
	gchar *json_file;
	gchar *message_type;	  /* "attestation" (default), "evidence", "session" */
	gchar *method;		  /* "POST" (default) or "PATCH" */
	gchar *attestation_index; /* default "latest" for PATCH */
	gchar *session_index;	  /* session id for a session PATCH */
	/* KlCliOverride: options set on the command line, applied by kl_cli_apply() */
	GPtrArray *overrides;
} KlCli;

KlCli *
kl_cli_new(void);
void
kl_cli_free(KlCli *cli);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlCli, kl_cli_free)

/*
 * Parses argv. Bad usage: FALSE with G_OPTION_ERROR (the caller prints it and
 * exits 2). --help prints the help and exits 0 from inside (GOption).
 * Option values are checked with the config validators here already.
 * @argc and @argv are left as they are (the agent takes no positional arguments).
 */
gboolean
kl_cli_parse(KlCli *cli, int *argc, char ***argv, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* applies the option overrides to @cfg as the KL_CONFIG_SOURCE_CLI layer */
gboolean
kl_cli_apply(KlCli *cli, KlConfig *cfg, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* the --help text; (transfer full) */
gchar *
kl_cli_get_help(void);

G_END_DECLS
