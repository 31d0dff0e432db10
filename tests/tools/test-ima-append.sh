#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Integration test of ima-append.sh (run through run-with-swtpm.sh): a measurement
# list grown with new, unknown-file and wrong-template-hash lines keeps PCR 10 equal to
# the replay of its template data, and only the tampered lines are wrong. TAP output.
set -u
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../data"
# shellcheck source=../kl-test-skip.sh
. "$here/../kl-test-skip.sh"

if ! command -v tpm2_pcrread >/dev/null 2>&1; then
	kl_test_skip_all "tpm2-tools not found"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log="$tmp/ima.txt"
cp "$data/ima/ima-ng-small.txt" "$log"

echo "1..5"
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

pcr10_is_replay() {
	local expected actual
	expected=$(python3 - "$here/gen-logs.py" "$log" <<'PY'
import hashlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("gen_logs", sys.argv[1])
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
pcr = bytes(32)
for line in open(sys.argv[2]):
    pcr = hashlib.sha256(pcr + hashlib.sha256(g.ima_template_data_of_line(line)).digest()).digest()
print(pcr.hex())
PY
)
	actual=$(tpm2_pcrread sha256:10 | awk '/10 *:/ {v=tolower($NF); sub(/^0x/, "", v); print v}')
	[ "$expected" = "$actual" ] || { echo "# PCR 10 $actual, replay $expected"; return 1; }
}

# "line-number:ok|bad" of the template-hash check of each line
template_checks() {
	python3 - "$here/gen-logs.py" "$log" <<'PY'
import hashlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("gen_logs", sys.argv[1])
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
for i, line in enumerate(open(sys.argv[2]), 1):
    ok = hashlib.sha1(g.ima_template_data_of_line(line)).hexdigest() == line.split(" ")[1]
    print("%d:%s" % (i, "ok" if ok else "bad"))
PY
}

check "the base log and 30 appended lines extend PCR 10" \
	sh -c "'$here/extend-pcrs.sh' ima '$log' && '$here/ima-append.sh' '$log' 30 20"
check "bad-file and bad-template lines are appended" \
	sh -c "'$here/ima-append.sh' '$log' bad-file /usr/bin/evil &&
	       '$here/ima-append.sh' '$log' bad-template 50 && [ \$(wc -l <'$log') -eq 53 ]"
check "PCR 10 equals the replay of the whole list" pcr10_is_replay
only_line_53_bad() {
	local bad
	bad=$(template_checks | grep ':bad$')
	[ "$bad" = "53:bad" ] || { echo "# lines with a wrong template hash: ${bad:-none}"; return 1; }
}
check "only the bad-template line has a wrong template hash" only_line_53_bad
check "the bad-file line names the path with an unknown file hash" \
	sh -c "sed -n 52p '$log' | grep -q ' /usr/bin/evil\$' &&
	       ! grep -q \"\$(sed -n 52p '$log' | cut -d' ' -f4)\" '$data/ima/ima-ng-1k.txt'"
exit $fail
