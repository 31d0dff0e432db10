#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs one test program against its own swtpm: picks free ports, starts
# `swtpm socket --tpm2` with a private state directory, waits until it
# answers, exports KL_TEST_TCTI / TCTI / TPM2TOOLS_TCTI and the swtpm ports,
# runs "$@", and stops swtpm by its pid. Prints a TAP skip when swtpm is missing
# (a failure under KL_TEST_NO_SKIP).
#
# A test may stop that swtpm (KL_TEST_SWTPM_PID) and start another one on the
# same ports and state; it writes that one's pid to $KL_TEST_SWTPM_STATE/restarted.pid
# so that it is stopped here too.
#
# Set KL_SWTPM_SETUP=1 to manufacture the TPM first (EK + EK certificate in NV,
# like a real TPM): swtpm_setup --create-ek-cert. The TPM's profile:
# KL_SWTPM_PCR_BANKS (active PCR banks, e.g. "sha1,sha256,sha384"; default
# swtpm's) and KL_SWTPM_SETUP_ARGS (more swtpm_setup flags, e.g.
# "--rsa-keysize 3072"); either one implies KL_SWTPM_SETUP=1. swtpm 0.7 makes
# an RSA EK (2048 bits, certificate at 0x01c00002; 3072: 0x01c0001c) and an
# ECC P-384 EK (0x01c00016).
set -u
# shellcheck source=../kl-test-skip.sh
. "$(dirname "$0")/../kl-test-skip.sh"

if ! command -v swtpm >/dev/null 2>&1; then
	kl_test_skip_all "swtpm not found"
fi

state=$(mktemp -d "${TMPDIR:-/tmp}/kl-swtpm.XXXXXX")
swtpm_pid=""
cleanup() {
	if [ -n "$swtpm_pid" ] && kill -0 "$swtpm_pid" 2>/dev/null; then
		# a test may have stopped it (SIGSTOP) to wedge a TPM call
		kill -CONT "$swtpm_pid" 2>/dev/null
		kill "$swtpm_pid" 2>/dev/null
		wait "$swtpm_pid" 2>/dev/null
	fi
	# a swtpm the test started again on the same state (TPM power cycle tests)
	if [ -s "$state/restarted.pid" ]; then
		kill "$(cat "$state/restarted.pid")" 2>/dev/null
	fi
	rm -rf "$state"
}
trap cleanup EXIT

# The tpm2-tss swtpm TCTI talks to the control channel on port+1, so find a
# free pair (P, P+1). It is looked for below the ephemeral range
# (ip_local_port_range): outgoing connections take their local ports there, and
# on a busy machine the TIME_WAIT ones leave hardly an even port free in it.
free_port_pair() {
	/usr/bin/python3 -c 'import random, socket
low = 32768
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    pass
low = max(low, 12000)
for _ in range(400):
    p = random.randrange(10000, low - 1)
    socks = []
    try:
        for port in (p, p + 1):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break'
}

if [ -n "${KL_SWTPM_PCR_BANKS:-}" ] || [ -n "${KL_SWTPM_SETUP_ARGS:-}" ]; then
	KL_SWTPM_SETUP=1
fi
setup_args=()
if [ -n "${KL_SWTPM_PCR_BANKS:-}" ]; then
	setup_args+=(--pcr-banks "$KL_SWTPM_PCR_BANKS")
fi
if [ -n "${KL_SWTPM_SETUP_ARGS:-}" ]; then
	# shellcheck disable=SC2206 # a list of flags
	setup_args+=($KL_SWTPM_SETUP_ARGS)
fi
if [ "${KL_SWTPM_SETUP:-0}" = 1 ]; then
	mkdir -p "$state/localca"
	cat >"$state/swtpm-localca.conf" <<EOC
statedir = $state/localca
signingkey = $state/localca/signkey.pem
issuercert = $state/localca/issuercert.pem
certserial = $state/localca/certserial
EOC
	cat >"$state/swtpm_setup.conf" <<EOC
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $state/swtpm-localca.conf
create_certs_tool_options = /etc/swtpm-localca.options
EOC
	if ! swtpm_setup --tpm2 --tpmstate "$state" --create-ek-cert --create-platform-cert \
		--config "$state/swtpm_setup.conf" --overwrite "${setup_args[@]}" \
		>"$state/setup.log" 2>&1; then
		echo "swtpm_setup failed:" >&2
		cat "$state/setup.log" >&2
		exit 1
	fi
	export KL_TEST_SWTPM_LOCALCA="$state/localca"
fi

for attempt in 1 2 3 4 5; do
	port=$(free_port_pair)
	[ -n "$port" ] || continue
	ctrl=$((port + 1))
	swtpm socket --tpm2 --tpmstate dir="$state" \
		--server type=tcp,port="$port",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port="$ctrl",bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear >"$state/swtpm.log" 2>&1 &
	swtpm_pid=$!
	for _ in $(seq 1 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			break 2
		fi
		kill -0 "$swtpm_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$swtpm_pid" 2>/dev/null
	wait "$swtpm_pid" 2>/dev/null
	swtpm_pid=""
done
if [ -z "$swtpm_pid" ]; then
	echo "could not start swtpm" >&2
	cat "$state/swtpm.log" >&2
	exit 1
fi

export KL_TEST_SWTPM_PORT="$port" KL_TEST_SWTPM_CTRL_PORT="$ctrl" KL_TEST_SWTPM_STATE="$state"
export KL_TEST_SWTPM_PID="$swtpm_pid"
export KL_TEST_TCTI="swtpm:host=127.0.0.1,port=$port"
export TCTI="$KL_TEST_TCTI" TPM2TOOLS_TCTI="$KL_TEST_TCTI"
"$@"
exit $?
