/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Test module that does not export kl_plugin_get_info(): must be rejected.
 */
#include "config.h"

#include <keylime-agent/keylime-agent-plugin.h>

/* a plausible but wrong entry point; the loader looks only for kl_plugin_get_info */
KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info_v2(void);

KL_PLUGIN_EXPORT const KlPluginInfo *
kl_plugin_get_info_v2(void)
{
	return NULL;
}
