#!/usr/bin/env bash
# Builds the local base image for Dockerfile.runtime and Dockerfile.operator without any container
# registry: a Debian bookworm rootfs made by debootstrap (minbase + python3 3.11, python3-venv,
# ca-certificates), trimmed, then `docker import`ed. Never pulls. Called by `make images`
# (see docs/images.md); needs root (debootstrap) and a running Docker Engine.
#
# The image is labelled with a content key (this script, suite, packages, mirror, architecture); a run
# whose image already carries the current key returns at once, and a run that finds the cached rootfs
# tarball only re-imports it. FORCE=1 rebuilds from scratch.
#
# Environment: BASE_IMAGE (tag to produce), DEBIAN_SUITE, DEBIAN_MIRROR, IMAGES_CACHE (tarball dir),
# FORCE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE_IMAGE="${BASE_IMAGE:-actormesh/base-python:bookworm}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGES_CACHE="${IMAGES_CACHE:-${HOME}/.cache/actormesh/images}"
FORCE="${FORCE:-0}"
PACKAGES="python3,python3-venv,ca-certificates"
KEY_LABEL="io.actormesh.base.key"

log() { echo "base-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

content_key() {
	{
		echo "suite=${DEBIAN_SUITE} mirror=${DEBIAN_MIRROR} packages=${PACKAGES} arch=$(dpkg --print-architecture)"
		cat "$here/base.sh"
	} | sha256sum | cut -c1-16
}

preflight() {
	command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"
	docker info >/dev/null 2>&1 ||
		die "Docker Engine not reachable; start it first (e.g. 'dockerd >/var/log/dockerd.log 2>&1 &')"
	command -v dpkg >/dev/null || die "dpkg not found: this script needs a Debian-family host"
}

image_key() {
	docker image inspect --format "{{ index .Config.Labels \"${KEY_LABEL}\" }}" "$BASE_IMAGE" 2>/dev/null || true
}

need_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	[[ "$(id -u)" == 0 ]] || die "debootstrap is missing and installing it needs root"
	log "installing debootstrap with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
}

# Everything the image does not need at run time: package caches and lists, docs (the copyright
# files stay), man pages, translations, logs and host identity copied in by debootstrap.
trim_rootfs() {
	local root="$1"
	rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
		"$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
		"$root"/usr/share/lintian "$root"/usr/share/linda
	find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	find "$root/usr/lib/python3" "$root/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	: >"$root/etc/machine-id"
	rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
	# Later `apt-get install`s in derived images keep docs out too.
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
		'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
		>"$root/etc/dpkg/dpkg.cfg.d/01-actormesh-nodoc"
}

build_tarball() {
	local tarball="$1" root
	need_debootstrap
	root="$(mktemp -d "${TMPDIR:-/tmp}/actormesh-rootfs.XXXXXX")"
	# shellcheck disable=SC2064  # expand now: the variable is local
	trap "rm -rf '$root'" EXIT
	log "debootstrap ${DEBIAN_SUITE} (minbase + ${PACKAGES}) from ${DEBIAN_MIRROR}; a few minutes"
	debootstrap --variant=minbase --include="$PACKAGES" "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" \
		>"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
	rm -f "$root.log"
	chroot "$root" python3 -c 'import ensurepip, ssl, sys; assert sys.version_info >= (3, 11)' ||
		die "the rootfs has no usable python3 >= 3.11 with ensurepip"
	trim_rootfs "$root"
	mkdir -p "$(dirname "$tarball")"
	tar --numeric-owner -C "$root" -cf "$tarball.partial" .
	mv "$tarball.partial" "$tarball"
	rm -rf "$root"
	trap - EXIT
}

import_tarball() {
	local tarball="$1" key="$2"
	log "importing $(du -h "$tarball" | cut -f1) rootfs as ${BASE_IMAGE}"
	docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change "LABEL ${KEY_LABEL}=${key} org.opencontainers.image.description=\"Debian ${DEBIAN_SUITE} minbase with python3 and python3-venv\"" \
		--change 'CMD ["python3"]' \
		"$tarball" "$BASE_IMAGE" >/dev/null
}

main() {
	preflight
	local key tarball
	key="$(content_key)"
	tarball="${IMAGES_CACHE}/base-python-${DEBIAN_SUITE}-${key}.tar"
	if [[ "$FORCE" != 1 && "$(image_key)" == "$key" ]]; then
		log "${BASE_IMAGE} is up to date (key ${key})"
		return 0
	fi
	if [[ "$FORCE" == 1 || ! -s "$tarball" ]]; then
		build_tarball "$tarball"
	else
		log "reusing cached rootfs $tarball"
	fi
	import_tarball "$tarball" "$key"
	docker run --rm --network none "$BASE_IMAGE" python3 -c 'import ensurepip, ssl, venv, sys; print(sys.version.split()[0])' |
		{ read -r v; log "built ${BASE_IMAGE} (python ${v}, $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec))"; }
}

main "$@"
