/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * g_autoptr() for what ESYS allocates: the out-parameters of Esys_* commands
 * are malloc()ed by the library and released with Esys_Free(). Declare them
 * `g_autoptr(TPM2B_PUBLIC) out_public = NULL;` and they are freed on every
 * return path.
 *
 * Private to this source tree (header only, not installed, no symbols): the
 * services library and the in-tree plugins that talk to ESYS themselves
 * (dependency kl_esys_autoptr_dep) include it; the plugin SDK in include/ does
 * not.
 */
#pragma once

#include <glib.h>
#include <tss2/tss2_esys.h>

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_ATTEST, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_CREATION_DATA, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_DIGEST, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_MAX_NV_BUFFER, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_NV_PUBLIC, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_PRIVATE, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPM2B_PUBLIC, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPML_DIGEST, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPML_PCR_SELECTION, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPMS_CAPABILITY_DATA, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPMT_SIGNATURE, Esys_Free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TPMT_TK_CREATION, Esys_Free)

G_END_DECLS
