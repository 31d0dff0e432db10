#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Tests of the container image and the Kubernetes manifests (deploy/):
#
#   bash deploy/test/run.sh
#
#  1. validate: every manifest against the Kubernetes OpenAPI schemas, offline,
#     with kubernetes-models pinned by package-lock.json (strict field names,
#     selector and volume rules), and broken copies must be refused;
#  2. build: deploy/container/build.sh --swtpm (agent image made of the
#     project's .deb packages, and the swtpm sidecar); the sizes are printed;
#  3. play: the development DaemonSet's pod template (swtpm sidecar) under
#     `podman kube play`, on the host network, against the project's test
#     registrar and verifier (tests/peers) on 127.0.0.1: the pod registers, is
#     enrolled with a PCR policy and passes attestations; the agent's RSS is
#     printed; the pod is deleted and played again: same agent id, same AK
#     (agent_data.json and the registrar's aik_tpm unchanged), no 403 from the
#     registrar, and attestations pass again.
#
# Prints one "ok"/"not ok" line per check and "N passed, N failed" last; exit
# status 0 when all passed. Exit status 77 (skip) with the reason when the
# machine cannot run it (not root, no apt-get for the missing tools, podman
# cannot start a container); with KL_TEST_NO_SKIP=1 such a machine fails it.
#
# Environment: KL_DEPLOY_REUSE_IMAGES=1 (do not rebuild existing images), KL_DEPLOY_PASSES (3, per pod run), KL_DEPLOY_TIMEOUT (s, 240 per
# pod run), KL_DEPLOY_KEEP=1 (keep the work directory), KL_SWTPM_PORT (3021;
# the swtpm of the pod listens on it and the next port, on the host's loopback).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/test"
PASSES="${KL_DEPLOY_PASSES:-3}"
TIMEOUT="${KL_DEPLOY_TIMEOUT:-240}"
SWTPM_PORT="${KL_SWTPM_PORT:-3021}"
PY=/usr/bin/python3
VERSION="$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -1)"
IMAGE="localhost/keylime-agent-c:$VERSION"
SWTPM_IMAGE="localhost/keylime-agent-c-swtpm:$VERSION"
MANIFEST="$ROOT/deploy/kubernetes/keylime-agent-swtpm.yaml"
POD=keylime-agent-swtpm-test

n=0 npass=0 nfail=0
ok() { n=$((n + 1)); npass=$((npass + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $*"; }
note() { echo "# $*"; }
finish() {
	echo "1..$n"
	echo "$npass passed, $nfail failed"
	[ "$nfail" -eq 0 ]
	exit $?
}
skip() {
	if [ "${KL_TEST_NO_SKIP:-0}" = 1 ]; then
		notok "cannot run here (KL_TEST_NO_SKIP is set, so this fails): $*"
		finish
	fi
	echo "1..0 # SKIP $*"
	exit 77
}

# ------------------------------------------------------------------ tools
[ "$(id -u)" -eq 0 ] || skip "needs root (mmdebstrap, buildah and podman with hostPath volumes)"
need=()
for c in podman:podman buildah:buildah mmdebstrap:mmdebstrap runc:runc catatonit:catatonit \
	objdump:binutils swtpm:swtpm meson:meson curl:curl jq:jq; do
	command -v "${c%%:*}" >/dev/null 2>&1 || [ -x "/usr/libexec/podman/${c%%:*}" ] || need+=("${c#*:}")
done
"$PY" -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
command -v dpkg-buildpackage >/dev/null 2>&1 || need+=(dpkg-dev)
command -v dh >/dev/null 2>&1 || need+=(debhelper)
if [ "${#need[@]}" -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || skip "missing ${need[*]} and no apt-get"
	note "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
		>/tmp/kl-deploy-apt.log 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				"${need[@]}" >/tmp/kl-deploy-apt.log 2>&1; } ||
		skip "apt-get install ${need[*]} failed (see /tmp/kl-deploy-apt.log)"
fi
# the Build-Depends of debian/control (the image is made of the project's packages)
if ! (cd "$ROOT" && dpkg-checkbuilddeps -P nocheck) >/dev/null 2>&1; then
	note "installing the Build-Depends of debian/control"
	(cd "$ROOT" && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./) \
		>/tmp/kl-deploy-apt.log 2>&1 || skip "apt-get build-dep ./ failed (see /tmp/kl-deploy-apt.log)"
fi
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip "node and npm are needed for the manifest validator (Node.js >= 18)"

W="$(mktemp -d "${TMPDIR:-/tmp}/kl-deploy.XXXXXX")"
# podman on this kind of machine: runc, cgroupfs, and no default ulimits
# (the container may not raise RLIMIT_NOFILE above the sandbox's hard limit)
printf '[containers]\ndefault_ulimits = []\n' >"$W/containers.conf"
export CONTAINERS_CONF="$W/containers.conf"
pm() { podman --runtime runc --cgroup-manager cgroupfs "$@"; }
REG_PID="" VER_PID=""
stop_pid() {
	local p="$1"
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}
cleanup() {
	[ -f "$W/pod.yaml" ] && pm kube down "$W/pod.yaml" >/dev/null 2>&1
	stop_pid "$VER_PID"
	stop_pid "$REG_PID"
	if [ "${KL_DEPLOY_KEEP:-0}" = 1 ]; then echo "# work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ 1. validate
if (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >"$W/npm.log" 2>&1); then
	if node "$HERE/validate.mjs" --self-test "$ROOT"/deploy/kubernetes/*.yaml >"$W/validate.log" 2>&1; then
		ok "manifests valid against the Kubernetes schemas ($(head -1 "$W/validate.log" | sed 's/^# //'); $(tail -1 "$W/validate.log"))"
	else
		notok "manifests valid against the Kubernetes schemas"
		grep -v '^ok' "$W/validate.log"
	fi
else
	notok "npm ci (the pinned validator)"
	tail -20 "$W/npm.log"
fi

# ------------------------------------------------------------------ 2. build
t0=$SECONDS
if [ "${KL_DEPLOY_REUSE_IMAGES:-0}" = 1 ] && pm image exists "$IMAGE" && pm image exists "$SWTPM_IMAGE"; then
	echo "kept: images reused (KL_DEPLOY_REUSE_IMAGES=1)" >"$W/build.log"
	built=0
elif KL_IMAGE_WORKDIR="$W/image" bash "$ROOT/deploy/container/build.sh" --swtpm >"$W/build.log" 2>&1; then
	built=1
else
	built=""
fi
if [ -n "$built" ]; then
	size="$(pm image inspect --format '{{.Size}}' "$IMAGE")"
	ssize="$(pm image inspect --format '{{.Size}}' "$SWTPM_IMAGE")"
	ok "image $([ "$built" = 1 ] && echo "built in $((SECONDS - t0)) s" || echo reused): $IMAGE $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}'), $SWTPM_IMAGE $(awk -v s="$ssize" 'BEGIN{printf "%.1f MB", s/1e6}')"
	grep -E '^(kept|dropped)' "$W/build.log" | head -2 | sed 's/^/# agent image: /'
else
	notok "image build (deploy/container/build.sh --swtpm)"
	tail -30 "$W/build.log"
	finish
fi
rm -rf "$W/image"

if out="$(pm run --rm --network none "$IMAGE" --version 2>&1)" && [ "$out" = "keylime_push_model_agent $VERSION" ]; then
	ok "the image runs the agent: $out"
else
	notok "the image runs the agent (got: $out)"
fi
if pm run --rm --network none --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
	notok "the image has no shell"
else
	ok "the image has no shell (/bin/sh cannot be run)"
fi

# a pod that cannot start a container: say so and stop here
if ! pm run --rm --network host --entrypoint /usr/bin/swtpm "$SWTPM_IMAGE" --version >"$W/probe.log" 2>&1; then
	cat "$W/probe.log"
	skip "podman cannot run a container here"
fi

# ------------------------------------------------------------------ 3. play
"$PY" "$ROOT/tests/peers/kl_test_registrar.py" --state-file "$W/registrar.json" 2>"$W/registrar.log" &
REG_PID=$!
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_file "$W/registrar.json" || { cat "$W/registrar.log"; notok "test registrar started"; finish; }
REG_PORT="$(jq -r .port "$W/registrar.json")"
"$PY" "$ROOT/tests/peers/kl_test_verifier.py" --state-file "$W/verifier.json" --quote-interval 2 \
	--registrar-url "http://127.0.0.1:$REG_PORT" 2>"$W/verifier.log" &
VER_PID=$!
wait_file "$W/verifier.json" || { cat "$W/verifier.log"; notok "test verifier started"; finish; }
VER_URL="$(jq -r .url "$W/verifier.json")"
mkdir -p "$W/ca" "$W/node"
cp "$(jq -r .ca_cert "$W/verifier.json")" "$W/ca/cacert.crt"
note "registrar http://127.0.0.1:$REG_PORT, verifier $VER_URL, swtpm on 127.0.0.1:$SWTPM_PORT"
ctl() { curl -sS --max-time 10 --cacert "$W/ca/cacert.crt" -X "$1" "$VER_URL$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }
reg() { curl -sS --max-time 10 "http://127.0.0.1:$REG_PORT$1"; }

jq -n --arg root "$W/node" --arg ca "$W/ca/cacert.crt" --arg pod "$POD" \
	--arg sp "$SWTPM_PORT" --arg cp "$((SWTPM_PORT + 1))" \
	--arg conf "$(printf '[agent]\nregistrar_ip = "127.0.0.1"\nregistrar_port = %s\nverifier_url = "%s"\nattestation_interval_seconds = 2\nexponential_backoff_initial_delay = 1000\nexponential_backoff_max_delay = 4000\ntcti = "swtpm:host=127.0.0.1,port=%s"\ndisabled_plugins = ["ima_log", "uefi_log"]\n' "$REG_PORT" "$VER_URL" "$SWTPM_PORT")" \
	'{name: $pod, hostNetwork: true, hostPathRoot: $root,
	  secrets: {"keylime-verifier-ca": {"cacert.crt": $ca}},
	  configMaps: {"keylime-agent-swtpm-config": {"50-cluster.conf": $conf}},
	  replace: {"2321": $sp, "2322": $cp}, preStopFile: ($root + "/../prestop.json"), probesFile: ($root + "/../probes.json")}' >"$W/overrides.json"
if node "$HERE/extract-pod.mjs" "$MANIFEST" "$W/overrides.json" >"$W/pod.yaml" 2>"$W/extract.log"; then
	ok "pod extracted from the DaemonSet's template ($(node -e '
const Y=require(process.argv[1]);const d=Y.parseAllDocuments(require("fs").readFileSync(process.argv[2],"utf8")).map(x=>x.toJS()).find(x=>x.kind==="Pod");
console.log("init: "+(d.spec.initContainers||[]).map(c=>c.name).join(",")+"; containers: "+d.spec.containers.map(c=>c.name).join(","))' \
		"$HERE/node_modules/yaml" "$W/pod.yaml"))"
else
	notok "pod extracted from the DaemonSet's template"
	cat "$W/extract.log"
	finish
fi

agent_ctr="$POD-agent"
agent_id=""
# play_and_attest RUN: plays the pod, waits for registration, (enrols), waits for passes
play_and_attest() {
	local run="$1" deadline=$((SECONDS + TIMEOUT)) regs0=0 acts0=0 passes0=0 ids st passes fails
	if [ -n "$agent_id" ]; then
		regs0="$(reg "/_test/agents/$agent_id" | jq -r '.registrations // 0')"
		acts0="$(reg "/_test/agents/$agent_id" | jq -r '.activations // 0')"
	fi
	passes0=0
	[ -n "$agent_id" ] && passes0="$(ctl GET "/_test/agents/$agent_id" | jq -r '.passes // 0')"
	if ! pm kube play "$W/pod.yaml" >"$W/play-$run.log" 2>&1; then
		notok "run $run: podman kube play"
		cat "$W/play-$run.log"
		return 1
	fi
	# registration
	while :; do
		if [ -z "$agent_id" ]; then
			ids="$(reg /_test/agents 2>/dev/null | jq -r '.agents[0] // empty' 2>/dev/null)"
			[ -n "$ids" ] && agent_id="$ids"
		fi
		if [ -n "$agent_id" ] &&
			[ "$(reg "/_test/agents/$agent_id" | jq -r '.activations // 0')" -gt "$acts0" ] &&
			[ "$(reg "/_test/agents/$agent_id" | jq -r '.registrations // 0')" -gt "$regs0" ]; then
			break
		fi
		if [ $SECONDS -ge $deadline ]; then
			notok "run $run: the pod registered within ${TIMEOUT}s"
			pm logs "$agent_ctr" 2>&1 | tail -20 | sed 's/^/#   agent | /'
			pm logs "$POD-swtpm" 2>&1 | tail -10 | sed 's/^/#   swtpm | /'
			return 1
		fi
		sleep 1
	done
	ok "run $run: the pod registered and activated agent $agent_id"
	if [ "$run" = 1 ]; then
		# registered, not enrolled: alive (no restart), not ready
		probe "$agent_ctr" livenessProbe 0 "alive while it waits for enrolment"
		probe "$agent_ctr" readinessProbe 1 "not ready before its first attestation"
		# swtpm starts with PCR 15 at zero: the policy the docs give for a software TPM
		ctl POST /_test/enroll "{\"agent_id\":\"$agent_id\",\"tpm_policy\":{\"15\":[\"$(printf '0%.0s' $(seq 64))\"]}}" \
			>/dev/null || { notok "run $run: enrolment at the test verifier"; return 1; }
	fi
	while :; do
		st="$(ctl GET "/_test/agents/$agent_id" 2>/dev/null)"
		passes="$(jq -r '.passes // 0' <<<"$st" 2>/dev/null || echo 0)"
		fails="$(jq -r '.fails // 0' <<<"$st" 2>/dev/null || echo 0)"
		[ "$passes" -ge $((passes0 + PASSES)) ] && break
		if [ $SECONDS -ge $deadline ]; then
			notok "run $run: $PASSES attestations passed within ${TIMEOUT}s (passes $((passes - passes0)), fails $fails, $(jq -r '.last_failure_reason // "no failure"' <<<"$st"))"
			pm logs "$agent_ctr" 2>&1 | tail -20 | sed 's/^/#   agent | /'
			return 1
		fi
		sleep 1
	done
	if [ "$fails" -eq 0 ]; then
		ok "run $run: $((passes - passes0)) attestations passed at the verifier, none failed"
	else
		notok "run $run: attestations passed, but $fails failed ($(jq -r '.last_failure_reason' <<<"$st"))"
	fi
	return 0
}

# probe CTR livenessProbe|readinessProbe EXPECTED-STATUS WHAT: runs the manifest's exec probe
probe() {
	local ctr="$1" kind="$2" want="$3" what="$4" rc out
	mapfile -t argv < <(jq -r --arg c "$ctr" --arg k "$kind" '.[$c][$k][]?' "$W/probes.json")
	if [ "${#argv[@]}" -eq 0 ]; then
		notok "$kind of $ctr: the manifest has none"
		return
	fi
	out="$(pm exec "$ctr" "${argv[@]}" 2>&1)"
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$kind ($(basename "${argv[0]}") ${argv[*]:1}): exit $rc, $what"
	else
		notok "$kind ($(basename "${argv[0]}") ${argv[*]:1}): exit $rc, expected $want ($what)"
		printf '%s\n' "$out" | head -12 | sed 's/^/#   /'
	fi
}

agent_rss() {
	local pid
	pid="$(pm inspect --format '{{.State.Pid}}' "$agent_ctr" 2>/dev/null)"
	[ -n "$pid" ] && [ "$pid" != 0 ] || { echo "?"; return; }
	awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB, ", $1, $2/1024}' "/proc/$pid/status"
	# CPU time since the start (utime + stime, fields 14 and 15)
	awk -v hz="$(getconf CLK_TCK)" '{printf "CPU %.2f s ", ($14 + $15) / hz}' "/proc/$pid/stat"
	echo "(pid $pid, $(ps -o etimes= -p "$pid" | tr -d ' ') s old, $(tr '\0' ' ' <"/proc/$pid/cmdline"| sed 's/ $//'))"
}

if play_and_attest 1; then
	ak1="$(reg "/_test/agents/$agent_id" | jq -r .aik_tpm)"
	data1="$(sha256sum "$W/node/var/lib/keylime-swtpm/agent/agent_data.json" 2>/dev/null | cut -c1-64)"
	note "agent RSS in the pod: $(agent_rss)"
	probe "$agent_ctr" readinessProbe 0 "ready while it attests on schedule"
	probe "$agent_ctr" livenessProbe 0 "alive while it attests"
	if [ -n "$data1" ]; then
		ok "agent_data.json is on the node's directory (hostPath), sha256 ${data1:0:16}..."
	else
		notok "agent_data.json is on the node's directory (hostPath)"
	fi
	owner="$(pm top "$agent_ctr" user huser comm 2>/dev/null | awk 'NR==2 {print $1" (host "$2")"}')"
	note "the agent process runs as: $owner"
	if [ "${owner%% *}" = keylime ]; then
		ok "the agent runs as keylime (run_as), not root"
	else
		notok "the agent runs as keylime (run_as), not root (user: $owner)"
	fi

	# delete the pod and play it again: the node keeps the TPM state and the AK.
	# As a kubelet does: stop the agent, then the sidecar's preStop hook, then the rest
	pm stop --time 20 "$agent_ctr" >/dev/null 2>&1
	code="$(pm inspect --format '{{.State.ExitCode}}' "$agent_ctr")"
	if [ "$code" = 0 ]; then
		ok "the agent stopped cleanly on SIGTERM (exit status 0)"
	else
		notok "the agent stopped cleanly on SIGTERM (exit status $code)"
	fi
	while read -r ctr cmd; do
		mapfile -t argv < <(jq -r '.[]' <<<"$cmd")
		if pm exec "$ctr" "${argv[@]}" >"$W/prestop.log" 2>&1; then
			ok "preStop hook of $ctr: ${argv[*]}"
		else
			notok "preStop hook of $ctr: ${argv[*]}"
			cat "$W/prestop.log"
		fi
	done < <(jq -rc 'to_entries[] | "\(.key) \(.value)"' "$W/prestop.json")
	pm kube down "$W/pod.yaml" >"$W/down.log" 2>&1 || { notok "podman kube down"; cat "$W/down.log"; }
	if play_and_attest 2; then
		ak2="$(reg "/_test/agents/$agent_id" | jq -r .aik_tpm)"
		data2="$(sha256sum "$W/node/var/lib/keylime-swtpm/agent/agent_data.json" | cut -c1-64)"
		rec="$(reg "/_test/agents/$agent_id")"
		if [ "$ak1" = "$ak2" ] && [ "$data1" = "$data2" ] && [ -n "$ak1" ] && [ "$ak1" != null ]; then
			ok "replayed pod: same agent id and the same AK (registrar aik_tpm and agent_data.json unchanged)"
		else
			notok "replayed pod: same AK (aik_tpm changed: $([ "$ak1" = "$ak2" ] && echo no || echo yes), agent_data.json changed: $([ "$data1" = "$data2" ] && echo no || echo yes))"
		fi
		if [ "$(jq -r '.forbidden // 0' <<<"$rec")" -eq 0 ] && [ "$(jq -r '.rejected_registrations // 0' <<<"$rec")" -eq 0 ]; then
			ok "no 403 from the registrar across the replay ($(jq -r .registrations <<<"$rec") registrations, $(jq -r .activations <<<"$rec") activations)"
		else
			notok "no 403 from the registrar (forbidden $(jq -r .forbidden <<<"$rec"), rejected $(jq -r .rejected_registrations <<<"$rec"))"
		fi
		note "agent RSS in the replayed pod: $(agent_rss)"
	fi
fi
pm logs "$agent_ctr" 2>&1 | grep -E 'attestation [0-9]+ |Dropped privileges|agent ID' | tail -4 | sed 's/^/#   agent | /'
finish
