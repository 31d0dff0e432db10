/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Corpus file names make promises: bad-* is input the target must reject,
 * valid-* input it must accept. A target with such files reports its verdict
 * on each input with kl_fuzz_report(); the replay driver (fuzz-main.c) checks
 * it against the name. libFuzzer builds ignore it.
 */
#pragma once

#include <glib.h>

/* -1: not reported, 0: rejected, 1: accepted (weak: defined once per program) */
__attribute__((weak)) int kl_fuzz_verdict = -1;

static inline void
kl_fuzz_report(gboolean accepted)
{
	kl_fuzz_verdict = accepted ? 1 : 0;
}
