#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# .ci/deb-test.sh [WORKDIR]
#
# The Debian packages, end to end:
#  1. builds them from a clean export of HEAD (dpkg-buildpackage -us -uc -b,
#     DEB_BUILD_OPTIONS=nocheck: the main CI build already ran the tests),
#  2. lintian: no error and no warning,
#  3. the unit: systemd-analyze security --offline exposure <= 2.0, and
#     systemd-analyze verify,
#  4. a fresh Debian 12 root (mmdebstrap, the host's apt sources), then under
#     a manufactured swtpm on the host's loopback with the test registrar and
#     verifier (tests/peers) on the host:
#     - apt installs the packages in the root (chroot); the keylime user and
#       /var/lib/keylime (0700) come from sysusers.d/tmpfiles.d,
#     - keylime_push_model_agent --check finds no problem and every plugin active,
#     - the agent registers, is enrolled (PCR + IMA + measured boot policy) and
#       passes attestation cycles with tpm_quote, uefi_log and ima_log,
#     - apt removes the ima_log plugin package: --check no longer lists it, and
#       the verifier, whose policy needs IMA, is no longer offered ima_log,
#     - apt purges the packages: no file of theirs is left, only what the
#       administrator made (removed by the test afterwards) and the keylime user.
# Prints one line per step; exit status 0 when everything passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "${1:-}" != "--inner" ]; then
	W="${1:-$ROOT/build-ci-deb}"
	case "$W" in /*) ;; *) W="$PWD/$W" ;; esac
	if [ -d "$W/root" ]; then
		umount -l "$W/root/proc" 2>/dev/null || true
	fi
	rm -rf --one-file-system "$W"
	mkdir -p "$W/src"

	step "building the packages from a clean export of HEAD"
	git -C "$ROOT" archive HEAD | tar -x -C "$W/src"
	if ! (cd "$W/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
		dpkg-buildpackage -us -uc -b) >"$W/build.log" 2>&1; then
		tail -40 "$W/build.log"
		fail "dpkg-buildpackage failed"
	fi
	changes=$(ls "$W"/*.changes)
	for deb in "$W"/*.deb; do
		case "$deb" in *-dbgsym_*) continue ;; esac
		printf '   %-60s %6s KiB installed\n' "$(basename "$deb")" \
			"$(dpkg-deb -f "$deb" Installed-Size)"
	done

	step "lintian (no error, no warning)"
	if ! lintian --fail-on error,warning --tag-display-limit 0 "$changes" >"$W/lintian.log" 2>&1; then
		cat "$W/lintian.log"
		fail "lintian reported errors or warnings"
	fi
	grep -E '^[EW]:' "$W/lintian.log" && fail "lintian reported errors or warnings"
	echo "   lintian: $(grep -c '^[EW]:' "$W/lintian.log" || true) errors/warnings"

	step "the unit: security exposure and verify"
	mkdir -p "$W/unit"
	dpkg-deb -x "$W"/keylime-push-model-agent_*.deb "$W/unit"
	unit=$(find "$W/unit" -name keylime_push_model_agent.service)
	[ -n "$unit" ] || fail "the agent package has no unit"
	exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
	echo "   exposure: $exposure"
	awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure > 2.0"

	step "a fresh Debian 12 root (mmdebstrap)"
	sources=/etc/apt/sources.list.d/debian.sources
	[ -f "$sources" ] || sources=/etc/apt/sources.list
	# the packages' dependencies go into the root up front, so that apt
	# installs the local .debs without the network
	deps=$(for deb in "$W"/*.deb; do
		case "$deb" in *-dbgsym_*|*-dev_*) continue ;; esac
		dpkg-deb -f "$deb" Depends
	done | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*//' -e 's/[[:space:]]//g' |
		grep -v -e '^$' -e '^libkeylime-agent-plugin1$' -e '^keylime-push-model-agent$' | sort -u | paste -sd,)
	# KL_DEB_ROOT_CACHE=FILE.tar (developers): the root is made once and reused
	cache="${KL_DEB_ROOT_CACHE:-}"
	if [ -n "$cache" ] && [ -s "$cache" ]; then
		mkdir -p "$W/root"
		tar -C "$W/root" -xf "$cache"
	elif ! mmdebstrap --variant=apt --include="$deps,libtss2-tcti-swtpm0,ca-certificates" \
		bookworm "$W/root" "$sources" >"$W/mmdebstrap.log" 2>&1; then
		tail -30 "$W/mmdebstrap.log"
		fail "mmdebstrap failed"
	elif [ -n "$cache" ]; then
		tar -C "$W/root" -cf "$cache" .
	fi
	export KL_DEB_W="$W"
	KL_SWTPM_SETUP=1 exec "$ROOT/tests/integration/run-with-swtpm.sh" "$0" --inner
fi

# ------------------------------------------------------------ under swtpm
W="$KL_DEB_W"
R="$W/root"
REG_PID="" VER_PID="" AGENT_PID=""
stop_pid() {
	local p="$1"
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null || true
}
cleanup() {
	stop_pid "$AGENT_PID"
	stop_pid "$VER_PID"
	stop_pid "$REG_PID"
	umount -l "$R/proc" 2>/dev/null || true
}
trap cleanup EXIT
in_root() { chroot "$R" "$@"; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
listing() { # every path of the root but apt's and dpkg's own state and logs
	(cd "$R" && find . -xdev \( -path ./proc -o -path ./var/cache -o -path ./var/lib/apt \
		-o -path ./var/lib/dpkg -o -path ./var/log -o -path ./tmp -o -path ./run \) -prune \
		-o -print | sort)
}

mount -t proc proc "$R/proc"
[ -c "$R/dev/urandom" ] || fail "the root has no /dev/urandom"
listing >"$W/before.txt"

step "apt install in the root"
mkdir -p "$R/tmp/debs"
cp "$W"/keylime-push-model-agent*.deb "$W"/libkeylime-agent-plugin1_*.deb "$R/tmp/debs/"
rm -f "$R"/tmp/debs/*-dbgsym_*.deb
debs=()
for deb in "$R"/tmp/debs/*.deb; do debs+=("/tmp/debs/$(basename "$deb")"); done
if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	"${debs[@]}" >"$W/install.log" 2>&1; then
	tail -30 "$W/install.log"
	fail "apt-get install failed"
fi
in_root dpkg-query -W -f '   ${Package} ${Version} ${Installed-Size} KiB\n' \
	'keylime-push-model-agent*' 'libkeylime-agent-plugin1'
in_root getent passwd keylime >/dev/null || fail "no keylime user after installation"
# ids as the root's user database has them (the host's may differ)
KL_UID=$(in_root id -u keylime)
TSS_GID=$(in_root getent group tss | cut -d: -f3)
[ "$(stat -c '%a %u %g' "$R/var/lib/keylime")" = "700 $KL_UID $TSS_GID" ] ||
	fail "/var/lib/keylime is $(stat -c '%a %u %g' "$R/var/lib/keylime"), expected 700 keylime tss"
echo "   keylime user: $(in_root id keylime); /var/lib/keylime: 700 keylime tss"
unit="$R/lib/systemd/system/keylime_push_model_agent.service"
if ! systemd-analyze verify --root="$R" --man=no /lib/systemd/system/keylime_push_model_agent.service \
	>"$W/verify.log" 2>&1; then
	cat "$W/verify.log"
	fail "systemd-analyze verify"
fi
[ -s "$W/verify.log" ] && { cat "$W/verify.log"; fail "systemd-analyze verify printed warnings"; }
echo "   systemd-analyze verify: clean"
for page in keylime_push_model_agent.8 keylime_push_model_agent.conf.5; do
	sec="${page##*.}"
	[ -f "$R/usr/share/man/man$sec/$page.gz" ] || fail "man page $page is not installed"
done

step "test registrar and verifier on the host"
"$PY" "$ROOT/tests/peers/kl_test_registrar.py" --state-file "$W/registrar.json" 2>"$W/registrar.log" &
REG_PID=$!
wait_file "$W/registrar.json" || { cat "$W/registrar.log"; fail "registrar did not start"; }
REG_PORT="$(jq -r .port "$W/registrar.json")"
"$PY" "$ROOT/tests/peers/kl_test_verifier.py" --state-file "$W/verifier.json" --quote-interval 1 \
	--registrar-url "http://127.0.0.1:$REG_PORT" 2>"$W/verifier.log" &
VER_PID=$!
wait_file "$W/verifier.json" || { cat "$W/verifier.log"; fail "verifier did not start"; }
VER_URL="$(jq -r .url "$W/verifier.json")"
VER_CA="$(jq -r .ca_cert "$W/verifier.json")"
ctl() { curl -sS --max-time 10 --cacert "$VER_CA" -X "$1" "$VER_URL$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

# what an administrator sets up: the CA, the event logs (synthetic here), a drop-in
mkdir -p "$R/etc/keylime/agent.conf.d" "$R/var/lib/kl-ci"
cp "$VER_CA" "$R/var/lib/kl-ci/verifier-ca.crt"
IMA_LOG="$R/var/lib/kl-ci/ascii_runtime_measurements"
UEFI_LOG="$R/var/lib/kl-ci/binary_bios_measurements"
"$PY" "$ROOT/tests/peers/kl_logtool.py" gen-ima "$IMA_LOG" --count 8
"$PY" "$ROOT/tests/peers/kl_logtool.py" gen-uefi "$UEFI_LOG"
mapfile -t EXT < <("$PY" "$ROOT/tests/peers/kl_logtool.py" extends --uefi "$UEFI_LOG" --ima "$IMA_LOG")
tpm2_pcrextend "${EXT[@]}" >/dev/null
tpm2_pcrextend "15:sha256=$(printf 'keylime-agent-c packages' | sha256sum | cut -c1-64)" >/dev/null
tpm2_pcrread sha256:15 -o "$W/pcr15.bin" >/dev/null
PCR15="$(od -An -tx1 -v "$W/pcr15.bin" | tr -d ' \n')"
UUID="$(cat /proc/sys/kernel/random/uuid)"
cat >"$R/etc/keylime/agent.conf.d/50-ci.conf" <<EOC
[agent]
uuid = "$UUID"
registrar_ip = "127.0.0.1"
registrar_port = $REG_PORT
verifier_url = "$VER_URL"
verifier_tls_ca_cert = "/var/lib/kl-ci/verifier-ca.crt"
tcti = "$KL_TEST_TCTI"
ima_ml_path = "/var/lib/kl-ci/ascii_runtime_measurements"
measuredboot_ml_path = "/var/lib/kl-ci/binary_bios_measurements"
exponential_backoff_initial_delay = 500
exponential_backoff_max_delay = 3000
# one agent: no need to spread the first contact
splay_percent = 0
EOC

step "keylime_push_model_agent --check (in the root)"
in_root keylime_push_model_agent --check >"$W/check1.txt" 2>&1 || { cat "$W/check1.txt"; fail "--check found problems"; }
sed -n '/^Plugins/,/^$/p' "$W/check1.txt" | sed 's/^/   /'
for p in tpm_quote ima_log uefi_log; do
	grep -Eq "^  $p +active" "$W/check1.txt" || { cat "$W/check1.txt"; fail "plugin $p is not active"; }
done

step "attestation cycles (agent in the root, peers and swtpm on the host)"
chroot "$R" keylime_push_model_agent >"$W/agent1.log" 2>&1 &
AGENT_PID=$!
deadline=$((SECONDS + 120))
until [ "$(curl -sS "http://127.0.0.1:$REG_PORT/_test/agents/$UUID" | jq -r '.activations // 0')" -ge 1 ]; do
	kill -0 "$AGENT_PID" 2>/dev/null || { cat "$W/agent1.log"; fail "the agent exited before registering"; }
	[ $SECONDS -lt $deadline ] || { cat "$W/agent1.log"; fail "no registration within 120 s"; }
	sleep 0.5
done
ctl POST /_test/enroll "{\"agent_id\":\"$UUID\",\"tpm_policy\":{\"15\":[\"$PCR15\"]},\"ima\":true,\"mb\":true}" >/dev/null
passes=0
until [ "$passes" -ge 3 ]; do
	kill -0 "$AGENT_PID" 2>/dev/null || { cat "$W/agent1.log"; fail "the agent exited"; }
	[ $SECONDS -lt $deadline ] || { cat "$W/agent1.log"; fail "only $passes passing cycles"; }
	sleep 1
	passes=$(ctl GET "/_test/agents/$UUID" | jq '[.attestations[] | select(.stage == "verification_complete" and .evaluation == "pass" and (.evidence_types | index("ima_log")) and (.evidence_types | index("uefi_log")))] | length')
done
stop_pid "$AGENT_PID"
AGENT_PID=""
grep -E 'attestation [0-9]+ submitted' "$W/agent1.log" | head -3 | sed 's/^/   /'
echo "   $passes cycles passed (tpm_quote + uefi_log + ima_log); fails: $(ctl GET "/_test/agents/$UUID" | jq '.fails')"
grep -q "running as keylime:tss" "$W/agent1.log" || { cat "$W/agent1.log"; fail "the agent did not drop to keylime:tss"; }
[ "$(stat -c '%a %u' "$R/var/lib/keylime/agent_data.json")" = "600 $KL_UID" ] ||
	fail "agent_data.json is not 0600 keylime"

step "apt remove the ima_log plugin package"
in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y keylime-push-model-agent-plugin-ima-log >"$W/remove.log" 2>&1 ||
	{ tail -20 "$W/remove.log"; fail "apt-get remove failed"; }
in_root keylime_push_model_agent --check >"$W/check2.txt" 2>&1 || { cat "$W/check2.txt"; fail "--check found problems"; }
sed -n '/^Plugins/,/^$/p' "$W/check2.txt" | sed 's/^/   /'
grep -Eq '^  ima_log ' "$W/check2.txt" && fail "--check still lists ima_log"
grep -Eq '^  uefi_log +active' "$W/check2.txt" || fail "uefi_log is no longer active"
# the verifier's policy needs IMA: an agent that no longer offers ima_log is refused
chroot "$R" keylime_push_model_agent >"$W/agent2.log" 2>&1 &
AGENT_PID=$!
deadline=$((SECONDS + 60))
until grep -q "an ima_log evidence item is required" "$W/agent2.log"; do
	kill -0 "$AGENT_PID" 2>/dev/null || { cat "$W/agent2.log"; fail "the agent exited"; }
	[ $SECONDS -lt $deadline ] || { cat "$W/agent2.log"; fail "the verifier did not see ima_log missing"; }
	sleep 0.5
done
stop_pid "$AGENT_PID"
AGENT_PID=""
grep -m1 "an ima_log evidence item is required" "$W/agent2.log" | sed 's/^/   /'

step "apt purge"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y keylime-push-model-agent \
	keylime-push-model-agent-plugin-uefi-log libkeylime-agent-plugin1 >"$W/purge.log" 2>&1 ||
	{ tail -20 "$W/purge.log"; fail "apt-get purge failed"; }
left=$(in_root dpkg -l 'keylime-push-model-agent*' 'libkeylime-agent-plugin*' 2>/dev/null | grep -E '^(ii|rc)' || true)
[ -z "$left" ] || fail "packages left: $left"
# what the administrator made survives the purge; the test removes it now
[ -f "$R/etc/keylime/agent.conf.d/50-ci.conf" ] || fail "purge removed the administrator's drop-in"
rm -rf "$R/etc/keylime" "$R/var/lib/kl-ci" "$R/tmp/debs"
listing >"$W/after.txt"
# the keylime user stays (Debian keeps system users): only the user databases differ
extra=$(comm -13 "$W/before.txt" "$W/after.txt" | grep -vE '^\./etc/(passwd|group|shadow|gshadow)-?$' || true)
if [ -n "$extra" ]; then
	echo "$extra"
	fail "files left after purge"
fi
echo "   nothing left (the keylime user stays, as Debian keeps system users)"
echo "deb-test: all passed"
