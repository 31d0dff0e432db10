/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test plugin referencing a symbol nothing defines: dlopen(RTLD_NOW) must fail.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

/* defined nowhere: immediate binding refuses the module at load time */
extern void
kl_test_undefined_symbol(void);

static JsonObject *
kl_undefined_ref_get_capabilities(KlPluginContext *ctx, GError **error)
{
	kl_test_undefined_symbol();
	return json_object_new();
}

static JsonObject *
kl_undefined_ref_collect(KlPluginContext *ctx,
			 JsonObject *chosen_parameters,
			 GCancellable *cancellable,
			 GError **error)
{
	return json_object_new();
}

KL_PLUGIN_DEFINE("undefined_ref",
		 "log",
		 "1.0",
		 "plugin with an unresolved symbol",
		 NULL,
		 NULL,
		 kl_undefined_ref_get_capabilities,
		 kl_undefined_ref_collect,
		 NULL)
