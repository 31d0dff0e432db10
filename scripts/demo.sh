#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# One-command demo of keylime-agent-c on a software TPM:
#
#   scripts/demo.sh
#
# 1. installs the Debian 12 build dependencies (.ci/deps.sh) when something is missing,
# 2. builds the agent (meson setup build-demo; ninja),
# 3. starts a manufactured swtpm (EK + EK certificate) on free ports,
# 4. starts the test registrar and test verifier (tests/peers, loopback only),
# 5. extends synthetic UEFI + IMA logs into the swtpm PCRs (when the log plugins are built),
# 6. runs the agent: it registers, is enrolled with a PCR policy (+ IMA and measured boot),
#    and attests; the agent's log lines and the verifier's verdict are printed per cycle,
# 7. stops everything it started, by pid.
#
# Exit status 0 when DEMO_CYCLES attestations passed.
#
# Environment: DEMO_CYCLES (5), DEMO_BUILD_DIR (build-demo), DEMO_TIMEOUT (seconds, 180),
# DEMO_SKIP_DEPS=1 (never run .ci/deps.sh), DEMO_KEEP=1 (keep the work directory),
# DEMO_AGENT / DEMO_PLUGIN_DIR (run another agent binary / plugin directory).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CYCLES="${DEMO_CYCLES:-5}"
BUILD="${DEMO_BUILD_DIR:-$ROOT/build-demo}"
TIMEOUT="${DEMO_TIMEOUT:-180}"
PY=/usr/bin/python3

if [ -t 1 ]; then say() { printf '\033[1m==> %s\033[0m\n' "$*"; }; else say() { printf '==> %s\n' "$*"; }; fi
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ outer part: deps + build
if [ "${1:-}" != "--inner" ]; then
	need_deps=0
	for c in meson ninja pkg-config cc swtpm swtpm_setup tpm2_pcrextend tpm2_pcrread curl jq "$PY"; do
		command -v "$c" >/dev/null 2>&1 || need_deps=1
	done
	for p in glib-2.0 json-glib-1.0 tss2-esys tss2-mu tss2-tctildr tss2-rc gnutls libcurl; do
		pkg-config --exists "$p" 2>/dev/null || need_deps=1
	done
	"$PY" -c 'import cryptography' 2>/dev/null || need_deps=1
	if [ "$need_deps" = 1 ]; then
		[ "${DEMO_SKIP_DEPS:-0}" = 1 ] && die "build dependencies are missing (DEMO_SKIP_DEPS=1 set)"
		say "installing build dependencies (.ci/deps.sh)"
		bash "$ROOT/.ci/deps.sh" || die ".ci/deps.sh failed"
	fi

	say "building into $BUILD"
	blog="$(mktemp "${TMPDIR:-/tmp}/kl-demo-build.XXXXXX")"
	if [ ! -f "$BUILD/build.ninja" ]; then
		meson setup "$BUILD" "$ROOT" >"$blog" 2>&1 || { cat "$blog"; rm -f "$blog"; die "meson setup failed"; }
	fi
	ninja -C "$BUILD" >"$blog" 2>&1 || { tail -n 40 "$blog"; rm -f "$blog"; die "build failed"; }
	rm -f "$blog"
	[ -x "$BUILD/core/agent/keylime_push_model_agent" ] || die "the agent binary was not built"

	say "starting a manufactured swtpm (EK + EK certificate)"
	export DEMO_BUILD_DIR="$BUILD"
	KL_SWTPM_SETUP=1 exec "$ROOT/tests/integration/run-with-swtpm.sh" "$0" --inner
fi

# ------------------------------------------------------------------ inner part: under swtpm
AGENT="${DEMO_AGENT:-$BUILD/core/agent/keylime_push_model_agent}"
PLUGINS="${DEMO_PLUGIN_DIR:-$BUILD/plugins}"
W="$(mktemp -d "${TMPDIR:-/tmp}/kl-demo.XXXXXX")"
REG_PID="" VER_PID="" AGENT_PID=""
stop_pid() { # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
	local p="$1"
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}
cleanup() {
	stop_pid "$AGENT_PID"
	stop_pid "$VER_PID"
	stop_pid "$REG_PID"
	if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

say "starting the test registrar and verifier"
"$PY" "$ROOT/tests/peers/kl_test_registrar.py" --state-file "$W/registrar.json" 2>"$W/registrar.log" &
REG_PID=$!
wait_file "$W/registrar.json" || { cat "$W/registrar.log"; die "registrar did not start"; }
REG_PORT="$(jq -r .port "$W/registrar.json")"
"$PY" "$ROOT/tests/peers/kl_test_verifier.py" --state-file "$W/verifier.json" --quote-interval 2 \
	--registrar-url "http://127.0.0.1:$REG_PORT" 2>"$W/verifier.log" &
VER_PID=$!
wait_file "$W/verifier.json" || { cat "$W/verifier.log"; die "verifier did not start"; }
VER_URL="$(jq -r .url "$W/verifier.json")"
VER_CA="$(jq -r .ca_cert "$W/verifier.json")"
echo "    registrar http://127.0.0.1:$REG_PORT (pid $REG_PID), verifier $VER_URL (pid $VER_PID)"
ctl() { curl -sS --max-time 10 --cacert "$VER_CA" -X "$1" "$VER_URL$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

# measured boot + IMA: only when the agent has the log plugins
POLICY_EXTRA=""
IMA_LOG="" UEFI_LOG=""
if [ -e "$PLUGINS/ima_log.so" ] && [ -e "$PLUGINS/uefi_log.so" ]; then
	IMA_LOG="$W/ascii_runtime_measurements"
	UEFI_LOG="$W/binary_bios_measurements"
	if [ -s "$ROOT/tests/data/ima/ima-ng-small.txt" ] && [ -s "$ROOT/tests/data/uefi/uefi-agile.bin" ]; then
		cp "$ROOT/tests/data/ima/ima-ng-small.txt" "$IMA_LOG"
		cp "$ROOT/tests/data/uefi/uefi-agile.bin" "$UEFI_LOG"
	else
		"$PY" "$ROOT/tests/peers/kl_logtool.py" gen-ima "$IMA_LOG" --count 8
		"$PY" "$ROOT/tests/peers/kl_logtool.py" gen-uefi "$UEFI_LOG"
	fi
	mapfile -t EXT < <("$PY" "$ROOT/tests/peers/kl_logtool.py" extends --uefi "$UEFI_LOG" --ima "$IMA_LOG")
	say "extending ${#EXT[@]} synthetic UEFI + IMA events into the swtpm PCRs"
	tpm2_pcrextend "${EXT[@]}" >/dev/null || die "tpm2_pcrextend failed"
	POLICY_EXTRA=',"ima":true,"mb":true'
else
	say "log plugins not built: PCR policy only"
fi
tpm2_pcrextend "15:sha256=$(printf 'keylime-agent-c demo' | sha256sum | cut -c1-64)" >/dev/null \
	|| die "tpm2_pcrextend failed"
tpm2_pcrread sha256:15 -o "$W/pcr15.bin" >/dev/null || die "tpm2_pcrread failed"
PCR15="$(od -An -tx1 -v "$W/pcr15.bin" | tr -d ' \n')"

UUID="$(cat /proc/sys/kernel/random/uuid)"
mkdir -p "$W/keylime"
{
	echo "[agent]"
	echo "uuid = \"$UUID\""
	echo "keylime_dir = \"$W/keylime\""
	echo "registrar_ip = \"127.0.0.1\""
	echo "registrar_port = $REG_PORT"
	echo "verifier_url = \"$VER_URL\""
	echo "verifier_tls_ca_cert = \"$VER_CA\""
	echo "tcti = \"$KL_TEST_TCTI\""
	echo "plugin_dir = \"$PLUGINS\""
	echo "run_as = \"\""
	echo "exponential_backoff_initial_delay = 500"
	echo "exponential_backoff_max_delay = 5000"
	# a single agent has no fleet to spread its first contact over
	echo "splay_percent = 0"
	[ -n "$IMA_LOG" ] && echo "ima_ml_path = \"$IMA_LOG\""
	[ -n "$UEFI_LOG" ] && echo "measuredboot_ml_path = \"$UEFI_LOG\""
} >"$W/agent.conf"

say "starting the agent ($UUID)"
KEYLIME_AGENT_CONFIG="$W/agent.conf" KEYLIME_DIR="$W/keylime" TCTI="$KL_TEST_TCTI" \
	"$AGENT" >"$W/agent.log" 2>&1 &
AGENT_PID=$!
LOG_OFF=0
show_agent_log() {
	local size
	size="$(stat -c %s "$W/agent.log" 2>/dev/null || echo 0)"
	if [ "$size" -gt "$LOG_OFF" ]; then
		tail -c +"$((LOG_OFF + 1))" "$W/agent.log" | head -c "$((size - LOG_OFF))" | sed 's/^/    agent | /'
		LOG_OFF="$size"
	fi
}

deadline=$((SECONDS + TIMEOUT))
until [ "$(curl -sS "http://127.0.0.1:$REG_PORT/_test/agents/$UUID" | jq -r '.activations // 0')" -ge 1 ]; do
	show_agent_log
	kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited before registering"
	[ $SECONDS -lt $deadline ] || die "the agent did not register within ${TIMEOUT}s"
	sleep 0.5
done
show_agent_log
say "agent registered and activated; enrolling it at the verifier (PCR 15${POLICY_EXTRA:+ + IMA + measured boot})"
ctl POST /_test/enroll "{\"agent_id\":\"$UUID\",\"tpm_policy\":{\"15\":[\"$PCR15\"]}$POLICY_EXTRA}" >/dev/null \
	|| die "enrollment failed"

seen=0 passed=0 failed=0
while [ "$seen" -lt "$CYCLES" ]; do
	show_agent_log
	kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited"
	[ $SECONDS -lt $deadline ] || die "only $seen of $CYCLES cycles completed within ${TIMEOUT}s"
	ctl GET "/_test/agents/$UUID" >"$W/status.json" 2>/dev/null || { sleep 0.5; continue; }
	while [ "$seen" -lt "$CYCLES" ]; do
		at="$(jq -c --argjson i "$seen" '[.attestations[] | select(.stage == "verification_complete")][$i] // empty' "$W/status.json")"
		[ -n "$at" ] || break
		[ "$seen" -gt 0 ] || sleep 0.3
		sleep 0.2
		show_agent_log
		seen=$((seen + 1))
		ev="$(jq -r .evaluation <<<"$at")"
		if [ "$ev" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
		say "cycle $seen: verifier verdict $ev (evidence: $(jq -r '.evidence_types | join(", ")' <<<"$at")$(jq -r 'if .failure_reason then "; " + .failure_reason else "" end' <<<"$at"))"
		if [ -n "$IMA_LOG" ] && [ "$seen" -lt "$CYCLES" ] && [ $((seen % 2)) -eq 0 ]; then
			# a program runs between two cycles: IMA measures it (a new line in
			# the log, PCR 10 extended); the agent sends only that new line
			spec="$("$PY" "$ROOT/tests/peers/kl_logtool.py" append-ima "$IMA_LOG" \
				"/usr/bin/demo-tool-$seen" "demo tool build $seen")" || die "append-ima failed"
			tpm2_pcrextend "$spec" >/dev/null || die "tpm2_pcrextend failed"
			say "a new program ran: 1 IMA entry appended and PCR 10 extended"
		fi
	done
	sleep 0.5
done
show_agent_log

say "stopping the agent (SIGTERM)"
stop_pid "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=""
show_agent_log
echo
echo "demo: $passed of $CYCLES attestation cycles passed, $failed failed"
[ "$passed" = "$CYCLES" ]
