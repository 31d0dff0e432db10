/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * keylime_push_model_agent --check (kl-check.c).
 */
#pragma once

#include <glib.h>

#include "kl-config.h"
#include "kl-plugin-loader.h"

G_BEGIN_DECLS

/*
 * Prints the report on stdout. @tpm, @agent_id and @loader may be NULL, with
 * @tpm_error / @loader_error saying why. Returns KL_EXIT_OK or KL_EXIT_FAILURE.
 */
gint
kl_main_check(KlConfig *cfg,
	      KlTpm *tpm,
	      const GError *tpm_error,
	      const gchar *agent_id,
	      KlPluginLoader *loader,
	      const GError *loader_error);

G_END_DECLS
