#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# check-exports.sh MAP LIBRARY [--module MODULE]... [--no-exports MODULE]...
#
# Checks the dynamic symbol tables (TAP output):
#  - each --module exports exactly one symbol, kl_plugin_get_info;
#  - each --no-exports module exports no symbol at all;
#  - LIBRARY (libkeylime-agent-plugin) exports exactly the symbols listed as
#    global in the version nodes of MAP, each with the version of its node.
set -uo pipefail

NM=${NM:-nm}
map="$1"
lib="$2"
shift 2

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }

# "name@@VERSION" (or plain "name") for every defined dynamic symbol, minus the
# version node markers themselves (absolute symbols named like the node)
exports() {
	"$NM" -D --defined-only "$1" | awk '$2 != "A" { print $3 }' | sort
}

check_module() {
	local module="$1" want="$2" got
	got=$(exports "$module" | sed 's/@.*//' | tr '\n' ' ' | sed 's/ $//')
	if [ "$got" = "$want" ]; then
		ok "$(basename "$module") exports [${want}]"
	else
		not_ok "$(basename "$module") exports [${got}], expected [${want}]"
	fi
}

while [ $# -gt 0 ]; do
	case "$1" in
	--module) check_module "$2" "kl_plugin_get_info"; shift 2 ;;
	--no-exports) check_module "$2" ""; shift 2 ;;
	*) echo "Bail out! unknown argument $1"; exit 2 ;;
	esac
done

# symbols of the map: "name@@NODE", from the global: part of each node
expected=$(awk '
	{ sub(/\/\*.*\*\//, "") }
	/^[A-Za-z0-9_.]+[ \t]*\{/ { node = $1; sub(/\{.*/, "", node); scope = ""; next }
	/global:/ { scope = "global"; next }
	/local:/ { scope = "local"; next }
	/^\}/ { node = ""; next }
	node != "" && scope == "global" {
		gsub(/[ \t;]/, "")
		if ($0 != "") print $0 "@@" node
	}' "$map" | sort)
actual=$(exports "$lib")

missing=$(comm -23 <(echo "$expected") <(echo "$actual"))
extra=$(comm -13 <(echo "$expected") <(echo "$actual"))
if [ -z "$expected" ]; then
	not_ok "no symbols found in $map"
elif [ -z "$missing" ] && [ -z "$extra" ]; then
	ok "$(basename "$lib") exports exactly the $(echo "$expected" | wc -l) symbols of $(basename "$map")"
else
	[ -z "$missing" ] || echo "# listed in the map but not exported:" $missing
	[ -z "$extra" ] || echo "# exported but not in the map (or in another node):" $extra
	not_ok "$(basename "$lib") exports differ from $(basename "$map")"
fi

echo "1..$n"
exit $failed
