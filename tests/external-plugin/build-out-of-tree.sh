#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# build-out-of-tree.sh DESTDIR [BUILDDIR]
#
# Proves that a third party can build an evidence plugin against the
# *installed* plugin SDK and that the agent's loader accepts it:
#  1. `meson install --destdir DESTDIR` of the agent's build dir BUILDDIR
#     (default: build-ci at the top of the source tree);
#  2. builds tests/external-plugin (its own meson project) against the
#     keylime-agent-plugin.pc found in DESTDIR, and installs it to the .pc's
#     pluginsdir inside DESTDIR;
#  3. checks that the module exports only kl_plugin_get_info, loads it with
#     the agent's loader (BUILDDIR/tests/core/agent/kl-load-check) and requires it
#     to be ACTIVE, with working capabilities and collect.
#
# PKG_CONFIG_SYSROOT_DIR is not used: pkg-config would prefix it to the paths
# of glib, json-glib and tss2 as well, which live on the host, not in DESTDIR.
# Instead the .pc is copied with its prefix pointing into DESTDIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
destdir=${1:?usage: build-out-of-tree.sh DESTDIR [BUILDDIR]}
builddir=${2:-$top/build-ci}
case "$destdir" in /*) ;; *) destdir="$PWD/$destdir" ;; esac
case "$builddir" in /*) ;; *) builddir="$PWD/$builddir" ;; esac

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ -f "$builddir/build.ninja" ] || fail "$builddir is not a configured meson build directory"
load_check="$builddir/tests/core/agent/kl-load-check"

work=$(mktemp -d "${TMPDIR:-/tmp}/kl-oot-XXXXXX")
trap 'rm -rf "$work"' EXIT

step "installing $builddir into $destdir"
rm -rf "$destdir"
meson install -C "$builddir" --destdir "$destdir" --quiet

pc=$(find "$destdir" -name keylime-agent-plugin.pc -print -quit)
[ -n "$pc" ] || fail "no keylime-agent-plugin.pc in $destdir (built with -Dplugin_devel=false?)"
prefix=$(sed -n 's/^prefix=//p' "$pc")
[ -n "$prefix" ] || fail "$pc has no prefix"
mkdir -p "$work/pkgconfig"
sed "s|^prefix=.*|prefix=$destdir$prefix|" "$pc" >"$work/pkgconfig/keylime-agent-plugin.pc"
export PKG_CONFIG_PATH="$work/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pluginsdir=$(pkg-config --variable=pluginsdir keylime-agent-plugin)
case "$pluginsdir" in "$destdir"/*) ;; *) fail "pluginsdir $pluginsdir is not inside $destdir" ;; esac
for h in keylime-agent-plugin.h kl-plugin.h kl-json.h kl-error.h kl-plugin-context.h kl-plugin-tpm.h; do
	[ -f "$destdir$prefix/include/keylime-agent/$h" ] || fail "header $h is not installed"
done

step "building the example plugin against $pc"
# a plain build: no sanitizers, only what a third party would have
meson setup "$work/build" "$here" -Dwerror=true --prefix="$work/prefix" >"$work/setup.log" 2>&1 ||
	{ cat "$work/setup.log"; fail "meson setup of the example plugin failed"; }
ninja -C "$work/build"
meson install -C "$work/build" --quiet

module="$pluginsdir/example.so"
[ -f "$module" ] || fail "example.so was not installed to pluginsdir ($pluginsdir)"
exports=$(nm -D --defined-only "$module" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | tr '\n' ' ')
[ "$exports" = "kl_plugin_get_info " ] || fail "example.so exports [$exports], expected only kl_plugin_get_info"
readelf -d "$module" | grep -q 'NEEDED.*libkeylime-agent-plugin\.so\.1' ||
	fail "example.so does not link libkeylime-agent-plugin.so.1"

step "loading it with the agent's loader"
[ -x "$load_check" ] || fail "$load_check is missing (build with -Dtests=true)"
mkdir -m 0755 "$work/plugins"
install -m 0644 "$module" "$work/plugins/example.so"
# the plugin reads its log file from its own table of agent.conf
printf 'line one\nline two\nline three\n' >"$work/example.log"
printf '[agent]\nkeylime_dir = "%s"\n[example]\nexample_log = "%s"\n' "$work" "$work/example.log" \
	>"$work/agent.conf"
"$load_check" --expect-active example --config "$work/agent.conf" \
	--collect 'example={"starting_offset":1,"entry_count":1}' \
	"$work/plugins" | tee "$work/load.out"
grep -qx 'example ACTIVE' "$work/load.out" || fail "the example plugin is not ACTIVE"
grep -q '"evidence_class":"log","evidence_type":"example","capabilities":{' "$work/load.out" ||
	fail "no evidence_supported entry for the example plugin"
grep -qF '"data":{"format":"text/plain","starting_offset":1,"entry_count":1,"total_entries":3,"entries":"line two\n"}' "$work/load.out" ||
	fail "collect of the example plugin did not return its data"
echo "out-of-tree plugin: OK"
