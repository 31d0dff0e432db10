/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keylime-agent/kl-error.h"

/* the quark string is part of the ABI: "kl-error-quark" */
/* clang-format off */
G_DEFINE_QUARK(kl-error-quark, kl_error)
/* clang-format on */
