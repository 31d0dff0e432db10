#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages needed to build, test and demo the agent.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev \
	libglib2.0-dev libjson-glib-dev libcurl4-gnutls-dev libgnutls28-dev \
	libtss2-dev libtss2-tcti-swtpm0 libtss2-tcti-pcap0 \
	swtpm swtpm-tools tpm2-tools gnutls-bin \
	python3 python3-cryptography clang-format \
	libsystemd-dev systemd scdoc man-db \
	debhelper dpkg-dev lintian mmdebstrap nettle-dev libgmp-dev pkgconf \
	ca-certificates curl jq openssl procps >/dev/null
