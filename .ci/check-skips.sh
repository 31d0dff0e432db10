#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# check-skips.sh [BUILDDIR]: CI runs the tests with KL_TEST_NO_SKIP=1, so that
# a test that cannot run fails instead of skipping. That holds only if every
# skip goes through tests/kl-test-skip.h (C) or tests/kl-test-skip.sh (shell).
#  1. no test calls g_test_skip()/g_test_incomplete() or prints a TAP skip
#     itself;
#  2. with BUILDDIR: the test log of that build holds no skip at all.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

hits=$(git grep -n -E 'g_test_skip|g_test_incomplete|# SKIP|exit 77' -- tests bench scripts \
	':!tests/kl-test-skip.h' ':!tests/kl-test-skip.sh' ':!tests/fuzz/corpus')
if [ -n "$hits" ]; then
	echo "skips that bypass KL_TEST_NO_SKIP (use kl_test_skip()/kl_test_skip_all()):"
	echo "$hits"
	status=1
fi

if [ $# -ge 1 ]; then
	log="$1/meson-logs/testlog.txt"
	if [ ! -f "$log" ]; then
		echo "no test log $log"
		status=1
	elif grep -n -E '^(not )?ok [0-9]+.*# (SKIP|skip)|^1\.\.0 # SKIP' "$log"; then
		echo "the tests above were skipped in $1"
		status=1
	fi
fi
exit $status
