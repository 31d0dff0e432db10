#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Proves the test registrar and verifier with an agent made of tpm2-tools + curl + jq on a
# manufactured swtpm (EK + EK certificate): registration + activation (RSA and ECC EK),
# identity change -> 403, wrong auth tag -> record deleted, registrar TLS, PoP session,
# attestation cycles with a PCR policy + IMA + UEFI replay, incremental IMA offsets,
# premature attestation -> 429 (quote interval 3 s, wide enough for a loaded machine), fault injection, wrong policy -> fail, bad PoP -> 401.
# Prints TAP; exit 0 iff everything passed.
#
#   tests/peers/selftest.sh          (starts its own swtpm via tests/integration/run-with-swtpm.sh)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${TPM2TOOLS_TCTI:-}" ]; then
	KL_SWTPM_SETUP=1 exec "$HERE/../integration/run-with-swtpm.sh" "$0" "$@"
fi
# shellcheck source=../kl-test-skip.sh
. "$HERE/../kl-test-skip.sh"
for c in jq curl od tpm2_createak tpm2_send tpm2_quote tpm2_pcrextend; do
	command -v "$c" >/dev/null || kl_test_skip_all "$c not found"
done

PY=/usr/bin/python3
W="$(mktemp -d "${TMPDIR:-/tmp}/kl-peers-selftest.XXXXXX")"
REG_PID="" VER_PID=""
cleanup() {
	for p in $REG_PID $VER_PID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ]; then echo "# work dir kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
cd "$W" || exit 1

N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
nok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
check() { local d="$1"; shift; if "$@" >"$W/last.log" 2>&1; then ok "$d"; else nok "$d"; sed 's/^/#   /' "$W/last.log" | tail -n 20; fi; }
die() { echo "Bail out! $*"; exit 1; }
flush() { tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -l >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1; true; }
JSONAPI='Content-Type: application/vnd.api+json'
hex2bin() { "$PY" -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'; }
bin2hex() { od -An -tx1 -v | tr -d ' \n'; }

# ------------------------------------------------------------------ peers
"$PY" "$HERE/kl_test_registrar.py" --state-file "$W/reg.json" --tls 2>"$W/registrar.log" &
REG_PID=$!
for _ in $(seq 100); do [ -s "$W/reg.json" ] && break; sleep 0.1; done
[ -s "$W/reg.json" ] || { cat "$W/registrar.log"; die "registrar did not start"; }
REG="$(jq -r .url "$W/reg.json")"
REG_TLS="$(jq -r .tls_url "$W/reg.json")"
REG_CA="$(jq -r .ca_cert "$W/reg.json")"
"$PY" "$HERE/kl_test_verifier.py" --state-file "$W/ver.json" --registrar-url "$REG" --quote-interval 3 \
	2>"$W/verifier.log" &
VER_PID=$!
for _ in $(seq 100); do [ -s "$W/ver.json" ] && break; sleep 0.1; done
[ -s "$W/ver.json" ] || { cat "$W/verifier.log"; die "verifier did not start"; }
VER="$(jq -r .url "$W/ver.json")"
VER_CA="$(jq -r .ca_cert "$W/ver.json")"
echo "# registrar $REG ($REG_TLS), verifier $VER"

# curl_json METHOD URL BODYFILE OUT [args] -> prints HTTP status; body in OUT, headers in OUT.hdr
curl_json() {
	local m="$1" u="$2" b="$3" o="$4"
	shift 4
	curl -sS -X "$m" -o "$o" -D "$o.hdr" -w '%{http_code}' --max-time 20 "$@" ${b:+--data-binary @"$b"} "$u"
}
vcurl() { curl_json "$@" --cacert "$VER_CA"; }
ctl() { curl -sS --max-time 10 --cacert "$VER_CA" -X "$1" "$VER$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

# ------------------------------------------------------------------ agent steps (tpm2-tools)
make_ak() { # make_ak DIR EKHANDLE -> DIR/ak.pub DIR/ak.handle
	local d="$1" ek="$2" h existing
	flush
	tpm2_createak -C "$ek" -c "$d/ak.ctx" -G rsa -g sha256 -s rsassa -u "$d/ak.pub" -n "$d/ak.name" -f tss >/dev/null \
		|| return 1
	existing="$(tpm2_getcap handles-persistent)" || return 1
	for i in $(seq 256 511); do
		h="$(printf '0x%08x' $((0x81000000 + i)))"
		grep -qi "$h" <<<"$existing" && continue
		if tpm2_evictcontrol -C o -c "$d/ak.ctx" "$h" >/dev/null 2>"$d/evict.err"; then
			echo "$h" >"$d/ak.handle"
			flush
			return 0
		fi
		grep -q 0x14c "$d/evict.err" || { cat "$d/evict.err"; return 1; }
	done
	return 1
}

register() { # register ID DIR EKHANDLE EKCERT_NV -> 0 when registered+activated
	local u="$1" d="$2" ek="$3" nv="$4" code
	flush
	tpm2_readpublic -c "$ek" -o "$d/ek.pub" -f tss >/dev/null || return 1
	local cert=""
	if [ -n "$nv" ] && tpm2_nvread "$nv" -C o -o "$d/ekcert.der" >/dev/null 2>&1; then
		cert="$(base64 -w0 "$d/ekcert.der")"
	fi
	flush
	jq -n --arg c "$cert" --arg ek "$(base64 -w0 "$d/ek.pub")" --arg ak "$(base64 -w0 "$d/ak.pub")" \
		'{ek_tpm: $ek, aik_tpm: $ak, ip: "127.0.0.1", port: 9002} + (if $c == "" then {} else {ekcert: $c} end)' \
		>"$d/reg.req"
	code="$(curl_json POST "$REG/v2.6/agents/$u" "$d/reg.req" "$d/reg.resp" -H 'Content-Type: application/json')"
	[ "$code" = 200 ] || { echo "register: HTTP $code $(cat "$d/reg.resp")"; return 1; }
	jq -r .results.blob "$d/reg.resp" | base64 -d >"$d/cred.blob"
	tpm2_startauthsession --policy-session -S "$d/s.ctx" >/dev/null || return 1
	tpm2_policysecret -S "$d/s.ctx" -c e >/dev/null || return 1
	tpm2_activatecredential -c "$(cat "$d/ak.handle")" -C "$ek" -i "$d/cred.blob" -o "$d/secret.bin" \
		-P "session:$d/s.ctx" >/dev/null || { flush; return 1; }
	flush
	[ "$(wc -c <"$d/secret.bin")" = 32 ] || { echo "credential is not 32 bytes"; return 1; }
	grep -qE '^[A-Za-z0-9]{32}$' <(cat "$d/secret.bin"; echo) || { echo "credential not alnum"; return 1; }
	local tag
	tag="$(printf '%s' "$u" | openssl dgst -sha384 -mac HMAC -macopt "key:$(base64 -w0 "$d/secret.bin")" | awk '{print $NF}')"
	[ "${BAD_TAG:-0}" = 1 ] && tag="$(printf '%096d' 0)"
	jq -n --arg t "$tag" '{auth_tag: $t}' >"$d/act.req"
	code="$(curl_json PUT "$REG/v2.6/agents/$u" "$d/act.req" "$d/act.resp" -H 'Content-Type: application/json')"
	[ "$code" = 200 ] || { echo "activate: HTTP $code $(cat "$d/act.resp")"; return 1; }
}

certify() { # certify DIR NONCE_HEX -> DIR/pop.attest DIR/pop.sig (TPM2_Certify AK by AK, raw command)
	local d="$1" n="$2" akh nlen total
	akh="$(cat "$d/ak.handle")"
	nlen=$((${#n} / 2))
	total=$((10 + 8 + 4 + 18 + 2 + nlen + 2))
	printf '8002%08x00000148%08x%08x00000012%s%s%04x%s0010' "$total" "$akh" "$akh" \
		400000090000000000 400000090000000000 "$nlen" "$n" | hex2bin >"$d/certify.cmd"
	tpm2_send -o "$d/certify.rsp" <"$d/certify.cmd" || return 1
	"$PY" - "$d" <<'EOF'
import struct, sys
d = sys.argv[1]
r = open(f"{d}/certify.rsp", "rb").read()
_, _, rc = struct.unpack_from(">HII", r, 0)
if rc:
    sys.exit(f"TPM2_Certify rc=0x{rc:x}")
o = 14
(n,) = struct.unpack_from(">H", r, o)
open(f"{d}/pop.attest", "wb").write(r[o + 2:o + 2 + n])
o += 2 + n
_, _, slen = struct.unpack_from(">HHH", r, o)
open(f"{d}/pop.sig", "wb").write(r[o:o + 6 + slen])
EOF
	flush
}

session() { # session ID DIR -> DIR/token ; prints HTTP status of the PATCH
	local u="$1" d="$2" code sid ch
	jq -n --arg u "$u" '{data: {type: "session", attributes: {agent_id: $u,
		authentication_supported: [{authentication_class: "pop", authentication_type: "tpm_pop"}]}}}' >"$d/s.req"
	code="$(vcurl POST "$VER/v3.0/sessions" "$d/s.req" "$d/s.resp" -H "$JSONAPI")"
	[ "$code" = 200 ] || { echo "POST sessions: $code"; return 1; }
	sid="$(jq -r .data.id "$d/s.resp")"
	ch="$(jq -r '.data.attributes.authentication_requested[0].chosen_parameters.challenge' "$d/s.resp")"
	[ "$(printf '%s' "$ch" | base64 -d | wc -c)" = 16 ] || { echo "challenge is not 16 bytes"; return 1; }
	if [ "${BAD_NONCE:-0}" = 1 ]; then ch="$(head -c 16 /dev/urandom | base64)"; fi
	certify "$d" "$(printf '%s' "$ch" | base64 -d | bin2hex)" || return 1
	jq -n --arg u "$u" --arg m "$(base64 -w0 "$d/pop.attest")" --arg s "$(base64 -w0 "$d/pop.sig")" \
		'{data: {type: "session", attributes: {agent_id: $u, authentication_provided: [{authentication_class: "pop",
		authentication_type: "tpm_pop", data: {message: $m, signature: $s}}]}}}' >"$d/pop.req"
	code="$(vcurl PATCH "$VER/v3.0/sessions/$sid" "$d/pop.req" "$d/pop.resp" -H "$JSONAPI")"
	echo "$code" >"$d/pop.code"
	[ "$code" = 200 ] && [ "$(jq -r .data.attributes.evaluation "$d/pop.resp")" = pass ] || return 1
	jq -r .data.attributes.token "$d/pop.resp" >"$d/token"
}

BOOT_TIME="2026-01-01T00:00:00Z"
caps() { # caps DIR -> DIR/caps.req
	local d="$1" ic
	ic="$(grep -c '' "$d/ima.log" 2>/dev/null || echo 0)"
	jq -n --arg ak "$(base64 -w0 "$d/ak.pub")" --arg bt "$BOOT_TIME" --argjson ic "$ic" \
		'{data: {type: "attestation", attributes: {evidence_supported: [
		{evidence_class: "certification", evidence_type: "tpm_quote", capabilities: {
			component_version: "2.0", signature_schemes: ["rsassa"], hash_algorithms: ["sha256"],
			available_subjects: {sha256: [range(0; 24)]},
			certification_keys: [{key_class: "asymmetric", key_algorithm: "rsa", key_size: 2048,
				server_identifier: "ak", allowable_signature_schemes: ["rsassa"],
				allowable_hash_algorithms: ["sha256"], public: $ak}]}},
		{evidence_class: "log", evidence_type: "uefi_log", capabilities: {evidence_version: "2.1",
			entry_count: 1, supports_partial_access: false, appendable: false,
			formats: ["application/octet-stream"]}},
		{evidence_class: "log", evidence_type: "ima_log", capabilities: {entry_count: $ic,
			supports_partial_access: true, appendable: true, formats: ["text/plain"]}}],
		system_info: {boot_time: $bt}}}}' >"$d/caps.req"
}

phase1() { # phase1 ID DIR -> prints status
	local u="$1" d="$2"
	caps "$d"
	vcurl POST "$VER/v3.0/agents/$u/attestations" "$d/caps.req" "$d/caps.resp" -H "$JSONAPI" \
		-H "Authorization: Bearer $(cat "$d/token")"
}

phase2() { # phase2 ID DIR -> prints status (evidence for caps.resp)
	local u="$1" d="$2" loc params halg pcrs ch off
	loc="$(awk 'tolower($1) == "location:" {print $2}' "$d/caps.resp.hdr" | tr -d '\r')"
	params="$(jq -c '.data.attributes.evidence_requested[] | select(.evidence_type == "tpm_quote") | .chosen_parameters' "$d/caps.resp")"
	halg="$(jq -r .hash_algorithm <<<"$params")"
	pcrs="$(jq -r --arg h "$halg" '.selected_subjects[$h] | map(tostring) | join(",")' <<<"$params")"
	ch="$(jq -r .challenge <<<"$params")"
	off="$(jq -r '.data.attributes.evidence_requested[] | select(.evidence_type == "ima_log") | .chosen_parameters.starting_offset' "$d/caps.resp")"
	echo "$off" >"$d/last.offset"
	flush
	tpm2_quote -c "$(cat "$d/ak.handle")" -l "$halg:$pcrs" -q "$(printf '%s' "$ch" | base64 -d | bin2hex)" \
		-g "$halg" -m "$d/q.msg" -s "$d/q.sig" -o "$d/q.pcrs" >/dev/null || { echo quote-failed; return 1; }
	flush
	tail -n +"$((off + 1))" "$d/ima.log" >"$d/ima.part"
	jq -n --arg m "$(base64 -w0 "$d/q.msg")" --arg s "$(base64 -w0 "$d/q.sig")" --arg p "$(base64 -w0 "$d/q.pcrs")" \
		--arg u "$(base64 -w0 "$d/uefi.bin")" --rawfile i "$d/ima.part" \
		'{data: {type: "attestation", attributes: {evidence_collected: [
		{evidence_class: "certification", evidence_type: "tpm_quote", data: {subject_data: $p, message: $m, signature: $s}},
		{evidence_class: "log", evidence_type: "uefi_log", data: {entries: $u}},
		{evidence_class: "log", evidence_type: "ima_log", data: {entries: $i}}]}}}' >"$d/ev.req"
	vcurl PATCH "$VER$loc" "$d/ev.req" "$d/ev.resp" -H "$JSONAPI" -H "Authorization: Bearer $(cat "$d/token")"
}

attest_cycle() { # attest_cycle ID DIR -> 0 when both phases got 201/202
	local c
	c="$(phase1 "$1" "$2")"
	[ "$c" = 201 ] || { echo "phase 1: $c $(cat "$2/caps.resp")"; return 1; }
	c="$(phase2 "$1" "$2")"
	[ "$c" = 202 ] || { echo "phase 2: $c $(cat "$2/ev.resp")"; return 1; }
}

agent_field() { ctl GET "/_test/agents/$1" | jq -r "$2"; }

# ------------------------------------------------------------------ tests
U1="$(cat /proc/sys/kernel/random/uuid)"
U2="$(cat /proc/sys/kernel/random/uuid)"
U3="$(cat /proc/sys/kernel/random/uuid)"
A1="$W/a1" A2="$W/a2" A3="$W/a3"
mkdir -p "$A1" "$A2" "$A3"


check "registrar GET /version -> 2.6" bash -c "curl -sS '$REG/version' | jq -e '.results.current_version == \"2.6\" and (.results.supported_versions | index(\"2.6\"))'"
check "registrar v3.0 route -> 500 like the real one" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$REG/v3.0/agents/")" = 500
check "registrar TLS /version with the test CA" bash -c "curl -sS --cacert '$REG_CA' '$REG_TLS/version' | jq -e .results.current_version"
check "AK created (RSA EK 0x81010001)" make_ak "$A1" 0x81010001
check "register + ActivateCredential + auth_tag (RSA EK, EK cert)" register "$U1" "$A1" 0x81010001 0x1c00002
check "registrar record is active with the EK cert" bash -c "curl -sS '$REG/v2.6/agents/$U1' | jq -e '.results.ekcert != null and .results.regcount == 1'"
check "re-registration with the same identity -> 200 (regcount 2)" register "$U1" "$A1" 0x81010001 0x1c00002
cp -r "$A1" "$W/a1-other"
make_ak "$W/a1-other" 0x81010001 >/dev/null
c="$(curl_json POST "$REG/v2.6/agents/$U1" <(jq --arg ak "$(base64 -w0 "$W/a1-other/ak.pub")" '.aik_tpm = $ak' "$A1/reg.req") "$W/x" -H 'Content-Type: application/json')"
check "re-registration with a different AK -> 403" test "$c" = 403
make_ak "$A2" 0x81010001 >"$W/ak2.log" 2>&1 || { echo "# make_ak A2 failed:"; sed "s/^/#  /" "$W/ak2.log"; }
if BAD_TAG=1 register "$U2" "$A2" 0x81010001 "" >"$W/last.out" 2>&1; then nok "wrong auth_tag -> 400"
elif grep -q 'activate: HTTP 400' "$W/last.out"; then ok "wrong auth_tag -> 400"
else nok "wrong auth_tag -> 400"; sed 's/^/#   /' "$W/last.out"; fi
check "after a wrong auth_tag the record is deleted" test "$(curl -s -o /dev/null -w '%{http_code}' "$REG/v2.6/agents/$U2")" = 404
# a standard ECC P-256 EK (TCG template L-2, PolicySecret(endorsement)) persisted at 0x81010002
ecc_ek() { flush; tpm2_createek -G ecc -c "$A3/eccek.ctx" >/dev/null && tpm2_evictcontrol -C o -c "$A3/eccek.ctx" 0x81010002 >/dev/null; flush; make_ak "$A3" 0x81010002; }
check "ECC EK + AK created" ecc_ek
check "register with the ECC EK (ECDH + KDFe MakeCredential)" register "$U3" "$A3" 0x81010002 ""
check "ECC EK registration recorded" test "$(curl -sS "$REG/_test/agents/$U3" | jq -r .ek_type)" = ecc
tpm2_nvread 0x1c00016 -C o -o "$W/ecc-ekcert.der" >/dev/null 2>&1; flush
wrong_cert() { jq --arg c "$(base64 -w0 "$W/ecc-ekcert.der")" '.ekcert = $c' "$A1/reg.req" \
	| curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- \
	"$REG/v2.6/agents/$(cat /proc/sys/kernel/random/uuid)" | grep -qx 400; }
check "ekcert of a different key -> 400" wrong_cert

# logs + PCRs for the policies
"$PY" "$HERE/kl_logtool.py" gen-ima "$A1/ima.log" --count 4
"$PY" "$HERE/kl_logtool.py" gen-uefi "$A1/uefi.bin"
mapfile -t EXT < <("$PY" "$HERE/kl_logtool.py" extends --uefi "$A1/uefi.bin" --ima "$A1/ima.log")
check "extend swtpm PCRs from the synthetic UEFI + IMA logs (${#EXT[@]} extends)" tpm2_pcrextend "${EXT[@]}"
pcr() { tpm2_pcrread "sha256:$1" -o "$W/pcr.bin" >/dev/null && bin2hex <"$W/pcr.bin"; }
replay_ok() { test "$(pcr 0)$(pcr 10)" = "$("$PY" "$HERE/kl_logtool.py" replay --uefi "$A1/uefi.bin" --ima "$A1/ima.log" | jq -r '.["0"] + .["10"]')"; }
check "PCRs 0 and 10 equal the replay" replay_ok
tpm2_pcrextend "15:sha256=$(printf 'policy' | sha256sum | cut -c1-64)" >/dev/null
P15="$(pcr 15)"
flush

not() { ! "$@"; }
pop_unenrolled() { ! session "$U1" "$A1" && test "$(cat "$A1/pop.code")" = 200 && test "$(jq -r .data.attributes.evaluation "$A1/pop.resp")" = fail; }
check "PoP before enrollment -> 200 fail" pop_unenrolled
enroll() { ctl POST /_test/enroll "{\"agent_id\":\"$U1\",\"tpm_policy\":{\"15\":[\"$P15\"]},\"ima\":true,\"mb\":true}" | jq -e ".agent_id == \"$U1\""; }
check "enroll at the verifier (AK fetched from the registrar)" enroll
bad_nonce() { BAD_NONCE=1 session "$U1" "$A1"; test "$(cat "$A1/pop.code")" = 401; }
check "PoP with a wrong nonce -> 401" bad_nonce
check "PoP session -> token" session "$U1" "$A1"
check "attestation without Authorization -> 403" test "$(caps "$A1"; curl -s -o /dev/null -w '%{http_code}' --cacert "$VER_CA" -X POST -H "$JSONAPI" --data-binary @"$A1/caps.req" "$VER/v3.0/agents/$U1/attestations")" = 403
check "attestation with application/json -> 415" test "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$VER_CA" -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $(cat "$A1/token")" --data-binary @"$A1/caps.req" "$VER/v3.0/agents/$U1/attestations")" = 415
check "cycle 1: quote + UEFI + IMA from offset 0" attest_cycle "$U1" "$A1"
check "cycle 1 passed (PCR 15 policy, UEFI replay, IMA replay)" test "$(agent_field "$U1" .passes)/$(agent_field "$U1" .last_failure_reason)" = "1/null"
c="$(phase1 "$U1" "$A1")"
check "premature phase 1 -> 429 with Retry-After" bash -c "test '$c' = 429 && grep -qiE '^retry-after: [1-3]' '$A1/caps.resp.hdr'"
sleep 3.1
"$PY" "$HERE/kl_logtool.py" append-ima "$A1/ima.log" /usr/bin/new-file "new content" >"$W/ext"
tpm2_pcrextend "$(cat "$W/ext")" >/dev/null
check "cycle 2 with one new IMA line" attest_cycle "$U1" "$A1"
check "cycle 2 asked from offset 5 and passed" test "$(cat "$A1/last.offset")/$(agent_field "$U1" .passes)" = "5/2"
sleep 3.1
ctl POST /_test/faults '{"phase1":[401]}' >/dev/null
check "injected phase-1 fault 401 is served" test "$(phase1 "$U1" "$A1")" = 401
check "the 401 fault invalidated the token (re-auth needed)" test "$(phase1 "$U1" "$A1")" = 401
session "$U1" "$A1" >/dev/null
# a tampered line: its template hash does not match the template data
"$PY" "$HERE/kl_logtool.py" append-ima "$A1/ima.log" /usr/bin/evil "unexpected" >/dev/null
sed -i '$ s/^10 [0-9a-f]*/10 1111111111111111111111111111111111111111/' "$A1/ima.log"
check "cycle 3 (tampered IMA line)" attest_cycle "$U1" "$A1"
ima_failed() { test "$(agent_field "$U1" .fails)" = 1 && agent_field "$U1" .last_failure_reason | grep -q 'template hash'; }
check "cycle 3 failed with an IMA template-hash reason" ima_failed
sed -i '$d' "$A1/ima.log"
sleep 3.1
retry_offset() { attest_cycle "$U1" "$A1" && test "$(cat "$A1/last.offset")" = 6 && test "$(agent_field "$U1" .passes)" = 3; }
check "cycle 4 retries from the last passed offset (6) and passes" retry_offset
ctl POST /_test/policy "{\"agent_id\":\"$U1\",\"tpm_policy\":{\"15\":[\"$(printf '%064d' 0)\"]}}" >/dev/null
sleep 3.1
attest_cycle "$U1" "$A1" >/dev/null
pcr_fail() { agent_field "$U1" .last_failure_reason | grep -q 'PCR 15'; }
check "wrong PCR 15 policy -> verdict fail naming PCR 15" pcr_fail

echo "# verifier: $(agent_field "$U1" '{passes, fails, sessions_created, rate_limited, faults_served}' | tr -d '\n ')"
[ "$FAILED" = 0 ] || { echo "# registrar log:"; tail -n 30 "$W/registrar.log" | sed 's/^/#  /'; echo "# verifier log:"; tail -n 40 "$W/verifier.log" | sed 's/^/#  /'; }
echo "1..$N"
echo "# $((N - FAILED)) passed, $FAILED failed"
[ "$FAILED" = 0 ]
