#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# extend-pcrs.sh LOG_KIND FILE
#
# Extends the PCRs of the TPM at $TPM2TOOLS_TCTI (a test swtpm) with the
# digests of a measurement log, so that the PCRs match the log:
#   ima   FILE  an ima-ng ASCII measurement list: PCR 10 gets the SHA-1 and the
#               SHA-256 of each entry's template data (as the kernel extends)
#   uefi  FILE  a TCG event log (crypto-agile or SHA-1): every measured event's
#               digests go into its PCR, bank by bank; EV_NO_ACTION is skipped
# Digests of banks the TPM has not allocated are ignored by the TPM.
# Run it on a fresh TPM (PCRs reset), e.g. through run-with-swtpm.sh.
set -eu

if [ $# -ne 2 ] || { [ "$1" != ima ] && [ "$1" != uefi ]; }; then
	echo "usage: $0 ima|uefi FILE" >&2
	exit 2
fi
if [ -z "${TPM2TOOLS_TCTI:-}" ]; then
	echo "$0: TPM2TOOLS_TCTI is not set: point it at the test TPM (swtpm)" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)

digests=$(python3 "$here/gen-logs.py" digests "$1" "$2")
# tpm2_pcrextend takes several PCR specifications per call: batch them
specs=()
flush() {
	if [ ${#specs[@]} -gt 0 ]; then
		tpm2_pcrextend "${specs[@]}" >/dev/null
		specs=()
	fi
}
while read -r pcr sha1 sha256; do
	spec=""
	[ "$sha1" != - ] && spec="sha1=$sha1"
	[ "$sha256" != - ] && spec="${spec:+$spec,}sha256=$sha256"
	[ -n "$spec" ] || continue
	specs+=("$pcr:$spec")
	[ ${#specs[@]} -lt 32 ] || flush
done <<<"$digests"
flush
