#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the keylime-agent-c container image (OCI) from Debian 12 packages,
# without a base image from a container registry and without a Dockerfile:
#
#   deploy/container/build.sh                # the agent image
#   deploy/container/build.sh --swtpm        # and the swtpm sidecar image (development)
#
# 1. the agent: the project's own .deb packages (dpkg-buildpackage on a copy of
#    the tree, or --debs DIR), or a `meson install --destdir` tree (AGENT_FROM);
# 2. mmdebstrap --variant=extract unpacks the agent's Debian 12 run-time
#    libraries from the host's apt sources (or KL_IMAGE_MIRROR): no
#    maintainer script, no shell, no package manager ends up in the image;
# 3. assemble.py keeps only the packages in the agent's shared-library
#    closure, writes the user database, /var/lib/dpkg/status and the
#    container defaults (/usr/etc/keylime/agent.conf.d/50-container.conf);
# 4. buildah commits the tree as a one-layer image: user 0 (the agent drops
#    to keylime:tss itself once the TPM and the logs are open), entrypoint
#    the agent. The image's size is printed.
#
# Options / environment:
#   --swtpm                 also build the swtpm sidecar image
#   --tag NAME              agent image name (KL_IMAGE, default localhost/keylime-agent-c:VERSION)
#   --swtpm-tag NAME        swtpm image name (default localhost/keylime-agent-c-swtpm:VERSION)
#   --oci-archive FILE      also write the agent image as an OCI archive (for `kind load`,
#                           `skopeo copy oci-archive:FILE docker://REGISTRY/...`)
#   --debs DIR              take the project's .deb packages from DIR instead of building them
#   KL_IMAGE_AGENT_FROM     debs (default) or destdir
#   KL_IMAGE_MIRROR         mmdebstrap MIRROR argument (default: the host's apt sources)
#   KL_IMAGE_WORKDIR        work directory (default: a temporary one, removed at exit)
#   SOURCE_DATE_EPOCH       timestamps (default: the last commit's time)
#
# Needs (Debian 12): mmdebstrap buildah podman binutils python3, and to build the
# packages dpkg-dev debhelper + the Build-Depends of debian/control (or, for
# destdir, those of .ci/deps.sh). Run as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/container"
VERSION="$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -1)"

# Where the agent comes from: "debs" (the project's Debian packages, built here
# with dpkg-buildpackage from debian/, or taken from --debs DIR) or "destdir"
# (a `meson install --destdir` tree built here). Switching is this one line.
AGENT_FROM="${KL_IMAGE_AGENT_FROM:-debs}"

IMAGE="${KL_IMAGE:-localhost/keylime-agent-c:$VERSION}"
SWTPM_IMAGE="${KL_SWTPM_IMAGE:-localhost/keylime-agent-c-swtpm:$VERSION}"
WITH_SWTPM=0
OCI_ARCHIVE=""
DEBS_DIR=""
while [ $# -gt 0 ]; do
	case "$1" in
	--swtpm) WITH_SWTPM=1 ;;
	--tag) IMAGE="$2"; shift ;;
	--swtpm-tag) SWTPM_IMAGE="$2"; shift ;;
	--oci-archive) OCI_ARCHIVE="$(realpath -m "$2")"; shift ;;
	--debs) DEBS_DIR="$(realpath "$2")"; AGENT_FROM=debs; shift ;;
	--destdir) AGENT_FROM=destdir ;;
	-h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap and buildah write root-owned trees)"
for c in mmdebstrap buildah objdump readelf ldconfig python3 dpkg-deb; do
	command -v "$c" >/dev/null 2>&1 || die "$c is missing: apt-get install mmdebstrap buildah binutils python3"
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}"
if [ -n "${KL_IMAGE_MIRROR:-}" ]; then
	MIRROR="$KL_IMAGE_MIRROR"
elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
	MIRROR=/etc/apt/sources.list.d/debian.sources
elif [ -s /etc/apt/sources.list ]; then
	MIRROR=/etc/apt/sources.list
else
	MIRROR=http://deb.debian.org/debian
fi

if [ -n "${KL_IMAGE_WORKDIR:-}" ]; then
	W="$KL_IMAGE_WORKDIR"
	rm -rf "$W"
	mkdir -p "$W"
else
	W="$(mktemp -d "${TMPDIR:-/tmp}/kl-image.XXXXXX")"
	trap 'rm -rf "$W"' EXIT
fi

# ------------------------------------------------------------------ the agent
# the run-time libraries the agent links (destdir mode; the .debs say it themselves)
# and the TPM access modules that libtss2-tctildr loads with dlopen()
AGENT_LIBS="libc6 libglib2.0-0 libjson-glib-1.0-0 libcurl3-gnutls libgnutls30
	libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-rc0 libtss2-tctildr0"
TCTI_LIBS="libtss2-tcti-device0 libtss2-tcti-swtpm0"
PAYLOAD_ARGS=()
REPO=""
case "$AGENT_FROM" in
destdir)
	B="$ROOT/build-image"
	say "building the agent (meson, release, into $B)"
	if [ ! -f "$B/build.ninja" ]; then
		meson setup "$B" "$ROOT" --prefix=/usr -Dbuildtype=release -Db_ndebug=if-release \
			-Dtests=false -Dplugin_devel=false -Dintegration_tests=disabled >"$W/meson.log" 2>&1 ||
			{ cat "$W/meson.log"; die "meson setup failed"; }
	fi
	ninja -C "$B" >"$W/ninja.log" 2>&1 || { tail -40 "$W/ninja.log"; die "build failed"; }
	DESTDIR="$W/destdir" meson install -C "$B" --no-rebuild --strip >/dev/null ||
		die "meson install failed"
	INCLUDE="$AGENT_LIBS $TCTI_LIBS"
	PAYLOAD_ARGS=(--payload "$W/destdir")
	;;
debs)
	if [ -z "$DEBS_DIR" ]; then
		command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1 ||
			die "dpkg-buildpackage/dh missing: apt-get install dpkg-dev debhelper and the Build-Depends of debian/control (or KL_IMAGE_AGENT_FROM=destdir)"
		say "building the project's Debian packages (dpkg-buildpackage -b, nocheck)"
		mkdir -p "$W/src/keylime-agent-c"
		(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) |
			tar -xf - -C "$W/src/keylime-agent-c"
		(cd "$W/src/keylime-agent-c" &&
			DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
			>"$W/dpkg-buildpackage.log" 2>&1 ||
			{ tail -40 "$W/dpkg-buildpackage.log"; die "dpkg-buildpackage failed"; }
		DEBS_DIR="$W/src"
	fi
	[ -d "$DEBS_DIR" ] || die "--debs DIR: the directory of the project's .deb packages"
	# the agent, its plugin library and every plugin package; no -dev, no debug symbols
	mapfile -t DEBS < <(find "$DEBS_DIR" -maxdepth 1 -name '*.deb' ! -name '*-dbgsym_*' \
		! -name '*-dev_*' | sort)
	[ "${#DEBS[@]}" -gt 0 ] || die "no .deb in $DEBS_DIR"
	printf '    %s\n' "${DEBS[@]##*/}"
	PROJECT_PACKAGES="$(for d in "${DEBS[@]}"; do dpkg-deb -f "$d" Package; done | paste -sd,)"
	# a local apt repository of them, beside the Debian archive
	mkdir -p "$W/repo"
	cp "${DEBS[@]}" "$W/repo/"
	(cd "$W/repo" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null) ||
		die "dpkg-scanpackages failed"
	REPO="deb [trusted=yes] copy://$W/repo/ ./"
	INCLUDE="${PROJECT_PACKAGES//,/ } $TCTI_LIBS"
	PAYLOAD_ARGS=(--project-packages "$PROJECT_PACKAGES")
	;;
*) die "KL_IMAGE_AGENT_FROM must be destdir or debs" ;;
esac

extract() { # extract DIR PACKAGES...
	local dir="$1" item
	local includes=(--include=base-files)
	shift
	for item in $*; do includes+=("--include=$item"); done
	mmdebstrap --quiet --variant=extract --mode=root --skip=cleanup/apt \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${includes[@]}" \
		bookworm "$dir" "$MIRROR" ${REPO:+"$REPO"} >"$W/mmdebstrap.log" 2>&1 ||
		{ tail -30 "$W/mmdebstrap.log"; die "mmdebstrap failed (mirror: $MIRROR)"; }
}

commit() { # commit ROOTFS IMAGE ENTRYPOINT-JSON DESCRIPTION
	local rootfs="$1" image="$2" entrypoint="$3" description="$4" ctr
	tar --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
		-C "$rootfs" -cf "$W/rootfs.tar" .
	ctr="$(buildah from scratch)"
	buildah add --quiet "$ctr" "$W/rootfs.tar" / >/dev/null
	buildah config \
		--entrypoint "$entrypoint" --cmd '[]' --user 0:0 --workingdir / \
		--env PATH=/usr/sbin:/usr/bin --stop-signal SIGTERM \
		--label org.opencontainers.image.title="$(basename "${image%%:*}")" \
		--label org.opencontainers.image.description="$description" \
		--label org.opencontainers.image.version="$VERSION" \
		--label org.opencontainers.image.licenses=Apache-2.0 \
		--label org.opencontainers.image.base.name=debian:bookworm \
		"$ctr"
	buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$image" >/dev/null
	rm -f "$W/rootfs.tar"
}

say "unpacking Debian 12 packages (mmdebstrap --variant=extract)"
extract "$W/extract" "$INCLUDE"
say "assembling the image root"
python3 "$HERE/assemble.py" --extract "$W/extract" --out "$W/rootfs" --role agent \
	"${PAYLOAD_ARGS[@]}" | tee "$W/assemble.log"
commit "$W/rootfs" "$IMAGE" '["/usr/bin/keylime_push_model_agent"]' \
	"Keylime push-model attestation agent (C)"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)"
say "built $IMAGE: $(awk -v s="$size" 'BEGIN { printf "%.1f MB (%d bytes)", s / 1e6, s }')"
if [ -n "$OCI_ARCHIVE" ]; then
	rm -f "$OCI_ARCHIVE"
	podman save --quiet --format oci-archive -o "$OCI_ARCHIVE" "$IMAGE"
	say "wrote $OCI_ARCHIVE ($(du -h "$OCI_ARCHIVE" | cut -f1))"
fi

# ------------------------------------------------------------------ swtpm (development)
if [ "$WITH_SWTPM" = 1 ]; then
	say "swtpm sidecar image: unpacking swtpm, swtpm-tools and tpm2-tools"
	extract "$W/extract-swtpm" "swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0"
	python3 "$HERE/assemble.py" --extract "$W/extract-swtpm" --out "$W/rootfs-swtpm" \
		--role swtpm | tee "$W/assemble-swtpm.log"
	commit "$W/rootfs-swtpm" "$SWTPM_IMAGE" '["/usr/bin/swtpm"]' \
		"swtpm TPM 2.0 emulator, for developing with keylime-agent-c (not for production)"
	size="$(podman image inspect --format '{{.Size}}' "$SWTPM_IMAGE" 2>/dev/null || echo 0)"
	say "built $SWTPM_IMAGE: $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }')"
fi
