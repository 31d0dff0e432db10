/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The KlAgentSource of the agent binary: the TPM and the plugin loader
 * (kl-agent-source.c).
 */
#pragma once

#include "kl-agent.h"
#include "kl-plugin-loader.h"

G_BEGIN_DECLS

typedef struct {
	KlTpm *tpm;
	KlPluginLoader *loader;
} KlMainSource;

/* the functions of a KlMainSource, for kl_agent_new() */
extern const KlAgentSource kl_main_source_funcs;

G_END_DECLS
