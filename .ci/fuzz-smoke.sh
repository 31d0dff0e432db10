#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Short libFuzzer runs: builds every fuzz target with clang, -Dfuzzing=true,
# ASan and UBSan, then fuzzes each for KL_FUZZ_SECONDS (default 20) seeded
# with the checked-in corpora. Fails on any crash or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build-ci-fuzz}"
secs="${KL_FUZZ_SECONDS:-20}"
rm -rf "$B"
CC=clang meson setup "$B" -Dfuzzing=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dintegration_tests=disabled >/dev/null
ninja -C "$B"
seeds=(tests/fuzz/corpus/*)
status=0
while read -r target; do
	work=$(mktemp -d)
	echo "== $(basename "$target") for ${secs}s"
	if ! "$target" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$work/" "$work" "${seeds[@]}" >"$work.log" 2>&1; then
		tail -n 40 "$work.log"
		status=1
	else
		grep -E "^Done|^#[0-9]+.*DONE" "$work.log" | tail -n 1 || true
	fi
	rm -rf "$work" "$work.log"
done < <(find "$B/tests" -type f -executable -name 'fuzz-*' | sort)
exit $status
