#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# check-man-render.sh PAGE...: each rendered man page formats without a
# warning at 80 columns (MANWIDTH=80 man --warnings -l), as Debian's lintian
# and a user's terminal see it.
set -u
echo "1..$#"
n=0
rc=0
for page in "$@"; do
	n=$((n + 1))
	warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
	if [ -n "$warnings" ]; then
		echo "not ok $n - $(basename "$page")"
		printf '%s\n' "$warnings" | sed 's/^/# /'
		rc=1
	elif ! MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q .; then
		echo "not ok $n - $(basename "$page") renders empty"
		rc=1
	else
		echo "ok $n - $(basename "$page")"
	fi
done
exit $rc
