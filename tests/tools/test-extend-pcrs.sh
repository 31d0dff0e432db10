#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Integration test of extend-pcrs.sh (run through run-with-swtpm.sh): after
# extending a fresh swtpm with the synthetic UEFI and IMA logs, the PCRs equal
# the values of the logs' sidecar files. TAP output.
set -u
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../data"
# shellcheck source=../kl-test-skip.sh
. "$here/../kl-test-skip.sh"

if ! command -v tpm2_pcrread >/dev/null 2>&1; then
	kl_test_skip_all "tpm2-tools not found"
fi
echo "1..3"
n=0
fail=0
check() { # description command...
	local desc=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		fail=1
	fi
}

# "bank pcr hex" lines of the sidecar vs tpm2_pcrread
compare() { # sidecar-kind file pcrs
	local expected actual
	expected=$(python3 - "$1" "$2" "$3" <<'PY'
import json, sys
kind, path, pcrs = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
d = json.load(open(path))
for bank in ("sha1", "sha256"):
    for p in pcrs:
        v = d["pcr10"][bank] if kind == "ima" else d["pcrs"][bank][p]
        print(bank, p, v.lower())
PY
)
	actual=$(tpm2_pcrread "sha1:$3+sha256:$3" | awk '
		/^ *sha1:/ {bank="sha1"; next} /^ *sha256:/ {bank="sha256"; next}
		/:/ {gsub(/ /, ""); split($0, a, ":"); v=tolower(a[2]); sub(/^0x/, "", v); print bank, a[1], v}')
	if [ "$expected" != "$actual" ]; then
		echo "# expected:"; echo "$expected" | sed 's/^/#   /'
		echo "# got:"; echo "$actual" | sed 's/^/#   /'
		return 1
	fi
}

check "extend-pcrs.sh uefi and ima run" \
	sh -c "'$here/extend-pcrs.sh' uefi '$data/uefi/uefi-agile.bin' && '$here/extend-pcrs.sh' ima '$data/ima/ima-ng-small.txt'"
check "PCRs 0-7 match the UEFI log's sidecar" compare uefi "$data/uefi/uefi-agile.json" 0,1,2,3,4,5,6,7
check "PCR 10 matches the IMA log's sidecar" compare ima "$data/ima/ima-ng-small.json" 10
exit $fail
