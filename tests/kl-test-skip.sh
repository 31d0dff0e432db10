# SPDX-License-Identifier: Apache-2.0
# Sourced by the shell tests: the shell twin of kl-test-skip.h.
#
# kl_test_skip_all REASON: prints a TAP skip and exits 0, or, when
# KL_TEST_NO_SKIP is set (CI), a failure and exits 1.
kl_test_skip_all() {
	if [ -n "${KL_TEST_NO_SKIP:-}" ]; then
		echo "1..1"
		echo "not ok 1 - $1 (KL_TEST_NO_SKIP is set: not skipped)"
		exit 1
	fi
	echo "1..0 # SKIP $1"
	exit 0
}
