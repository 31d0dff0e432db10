#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# ima-append.sh LOG N FIRST            append N synthetic ima-ng lines (files FIRST ...
#                                      FIRST+N-1 of gen-logs.py) to LOG
# ima-append.sh LOG bad-file PATH      append one line for PATH whose file hash is the
#                                      SHA-256 of "tampered\n" (in no runtime policy)
# ima-append.sh LOG bad-template I     append the line of file I with a wrong template
#                                      hash (column 2)
#
# Then PCR 10 of the TPM at $TPM2TOOLS_TCTI is extended with the new lines' template
# data, in the kernel's order (list first, PCR second). For "bad-template" the PCR gets
# the true template data, so only the line's template hash is wrong.
# Used to grow or tamper with the measurement list of a running agent (docs/interop.md).
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 LOG N FIRST | LOG bad-file PATH | LOG bad-template I" >&2
	exit 2
fi
if [ -z "${TPM2TOOLS_TCTI:-}" ]; then
	echo "$0: TPM2TOOLS_TCTI is not set: point it at the test TPM (swtpm)" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
new=$(mktemp)
trap 'rm -f "$new"' EXIT

case "$2" in
bad-file)
	python3 - "$here/gen-logs.py" "$3" >"$new" <<'PY'
import hashlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("gen_logs", sys.argv[1])
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
sys.stdout.write(g.ima_ng_line(hashlib.sha256(b"tampered\n").digest(), sys.argv[2]))
PY
	;;
bad-template)
	python3 "$here/gen-logs.py" ima-lines 1 "$3" |
		awk '{ $2 = "1111111111111111111111111111111111111111"; print }' >"$new"
	;;
*)
	python3 "$here/gen-logs.py" ima-lines "$2" "$3" >"$new"
	;;
esac
cat "$new" >>"$1"
bash "$here/extend-pcrs.sh" ima "$new"
