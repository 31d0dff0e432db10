/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Umbrella header for evidence plugins. Plugins include only this file.
 */
#pragma once

#include "kl-error.h"
#include "kl-json.h"
#include "kl-plugin-context.h"
#include "kl-plugin-tpm.h"
#include "kl-plugin.h"
