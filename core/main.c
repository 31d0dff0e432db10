/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>

int
main(int argc, char **argv)
{
	fprintf(stderr, "keylime_push_model_agent %s: not yet wired\n", PACKAGE_VERSION);
	return 1;
}
