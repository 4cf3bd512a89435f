#!/usr/bin/env bash
# `make images-tar`: the ActorMesh images as docker-archive tars for a node that has no registry, with
# `images.txt` (`<ref> <tarfile>` per line) beside them. The test cluster imports each tar with
# `ctr -n k8s.io images import`. Refs (see /work/coord/INTERFACES.md and config/e2e):
#   actormesh/actormesh:<version> and actormesh/actormesh:<version>-b (one image, two tags: the e2e
#   rolling-change test switches spec.image between them), actormesh/operator:<version>,
#   actormesh/nats:<nats-server version>, actormesh/redis:<redis-server version>.
#
# The images come from the Dockerfiles through hack/images/build.sh (what `make images` builds), so
# the e2e suite runs what users run. Nothing is pulled: the base is debootstrapped locally.
#
# Cached by a content key over every input (Dockerfiles, base/build/tar scripts, pyproject.toml, README.md,
# runtime/ and operator/ as .dockerignore admits them, the Debian suite and mirror): when
# $ACTORMESH_IMAGES_DIR holds tars made with the current key, the script returns at once without
# touching Docker. Otherwise it installs what is missing (apt: docker.io, debootstrap), starts a
# private dockerd if none is running (hack/images/engine.sh), builds, saves, checks that the refs
# config/e2e names were built, and stops the dockerd and containerd it started, even on failure.
#
# Environment:
#   ACTORMESH_IMAGES_DIR  output directory, default ~/.cache/actormesh/images/e2e
#   FORCE=1               rebuild and save even if the key matches (Docker's layer cache still applies)
#   FORCE_BASE=1          also debootstrap the base image again (so every layer is rebuilt)
#   IMPORT_CHECK=1        also import every tar into a scratch containerd namespace (ctr) and remove it
#   plus build.sh's and engine.sh's variables (BUILD_FLAGS, DEBIAN_MIRROR, ENGINE_DATA_DIR, ...)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n1)"
OUT_DIR="${ACTORMESH_IMAGES_DIR:-${HOME}/.cache/actormesh/images/e2e}"
FORCE="${FORCE:-0}"
IMPORT_CHECK="${IMPORT_CHECK:-0}"
SECOND_TAG="actormesh/actormesh:${version}-b"

# shellcheck source=hack/images/engine.sh
. "$here/engine.sh"

log() { echo "images-tar: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Every file the images are made from, as `sha256  path` lines in a stable order.
input_digests() {
	(
		cd "$root"
		{
			printf '%s\n' Dockerfile.runtime Dockerfile.operator .dockerignore pyproject.toml README.md
			# The scripts that shape the images and the tars; not the smoke tests or engine.sh.
			printf '%s\n' hack/images/base.sh hack/images/build.sh hack/images/tar.sh
			find hack/images -maxdepth 1 -type f -name '*.Dockerfile'
			find runtime operator -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' \
				! -path '*/.mypy_cache/*' ! -path '*/.pytest_cache/*' ! -path '*/.ruff_cache/*' \
				! -path '*.egg-info/*' ! -name .DS_Store
		} | LC_ALL=C sort | xargs -d '\n' sha256sum
	)
}

content_key() {
	{
		input_digests
		echo "suite=${DEBIAN_SUITE:-bookworm} mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
		echo "local_base=${LOCAL_BASE:-1} arch=$(dpkg --print-architecture)"
	} | sha256sum | cut -c1-16
}

# True when images.txt was written under this key and every tar it lists is still there.
up_to_date() {
	local key="$1" ref tar
	[[ "$FORCE" != 1 && -s "$OUT_DIR/images.txt" && "$(cat "$OUT_DIR/key" 2>/dev/null)" == "$key" ]] || return 1
	while read -r ref tar; do
		[[ -s "$tar" ]] || return 1
	done <"$OUT_DIR/images.txt"
}

install_missing() {
	local missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	((${#missing[@]})) || return 0
	[[ "$(id -u)" == 0 ]] || die "needs root to install ${missing[*]} (and for debootstrap)"
	log "installing ${missing[*]} with apt-get"
	# Installing must not start Docker's or containerd's services (they would bring a docker0 bridge
	# and NAT rules): a policy-rc.d that forbids starts, unless the machine already has one.
	local policy=/usr/sbin/policy-rc.d own_policy=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
	fi
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
	"${apt[@]}" >/dev/null || { apt-get update -q >/dev/null && "${apt[@]}" >/dev/null; } ||
		{ ((own_policy)) && rm -f "$policy"; die "apt-get install ${missing[*]} failed"; }
	((own_policy)) && rm -f "$policy"
	return 0
}

image_file() { echo "$OUT_DIR/$(echo "$1" | tr '/:' '__').tar"; }

# Each config/e2e reference to an actormesh/* image must be one that was just built: a nats-server
# or redis-server version bump shows up here, naming the file to update, not as ErrImageNeverPull.
check_overlay_refs() {
	local ref missing=()
	while read -r ref; do
		[[ "$ref" == "$SECOND_TAG" ]] || grep -qxF "$ref" "$1" || missing+=("$ref")
	done < <({
		grep -ohE 'actormesh/[a-z0-9-]+:[A-Za-z0-9._-]+' "$root"/config/e2e/*.yaml
		# kustomize `images:` entries name the ref in two fields.
		paste -d: <(sed -n 's/^ *newName: *//p' "$root/config/e2e/kustomization.yaml") \
			<(sed -n 's/^ *newTag: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/config/e2e/kustomization.yaml")
	} | sort -u)
	((${#missing[@]} == 0)) ||
		die "config/e2e names ${missing[*]}, but the build made: $(tr '\n' ' ' <"$1"); update config/e2e"
}

save_images() {
	local refs_file="$1" ref file start
	mkdir -p "$OUT_DIR"
	: >"$OUT_DIR/images.txt.partial"
	while read -r ref; do
		file="$(image_file "$ref")"
		start="$SECONDS"
		if [[ "$ref" == "actormesh/actormesh:${version}" ]]; then
			docker tag "$ref" "$SECOND_TAG"
			docker save -o "$file.partial" "$ref" "$SECOND_TAG"
			printf '%s %s\n%s %s\n' "$ref" "$file" "$SECOND_TAG" "$file" >>"$OUT_DIR/images.txt.partial"
		else
			docker save -o "$file.partial" "$ref"
			printf '%s %s\n' "$ref" "$file" >>"$OUT_DIR/images.txt.partial"
		fi
		chmod 0644 "$file.partial" # docker save writes 0600; an unprivileged `kind load` reads them too
		mv "$file.partial" "$file"
		log "saved ${ref} -> ${file} ($(du -h "$file" | cut -f1), $((SECONDS - start)) s)"
	done <"$refs_file"
}

# Optional: the tars import into a containerd as the node imports them (ctr from Debian's containerd).
import_check() {
	[[ -S "$ENGINE_RUN_DIR/containerd.sock" ]] || { log "IMPORT_CHECK needs the private engine"; return 1; }
	local ns="actormesh-import-check" ctr=(ctr --address "$ENGINE_RUN_DIR/containerd.sock" -n actormesh-import-check)
	local ref tar
	while read -r ref tar; do
		"${ctr[@]}" images import "$tar" >/dev/null # unpacked, as the node does
		"${ctr[@]}" images ls -q | grep -qxF "docker.io/${ref}" || die "ctr import of ${tar} did not yield ${ref}"
		log "ctr import ok: ${ref}"
	done <"$OUT_DIR/images.txt"
	# --sync: wait for the garbage collector, so the unpacked snapshots are gone before the namespace.
	"${ctr[@]}" images ls -q | xargs -r "${ctr[@]}" images rm --sync >/dev/null
	ctr --address "$ENGINE_RUN_DIR/containerd.sock" namespaces rm "$ns" >/dev/null
}

# Tars from an older key that the new images.txt no longer lists.
remove_stale() {
	local tar
	for tar in "$OUT_DIR"/*.tar; do
		[[ -e "$tar" ]] || continue
		grep -qF " ${tar}" "$OUT_DIR/images.txt" || rm -f "$tar"
	done
}

build_and_save() {
	local key="$1" refs_file mark="$SECONDS"
	install_missing
	log "tools ready in $((SECONDS - mark)) s"
	trap engine_stop EXIT
	engine_start
	refs_file="$(mktemp)"
	mark="$SECONDS"
	# docker build's step-by-step output goes to a log; the scripts' own lines and errors stay on stderr.
	# FORCE here means "re-save"; only FORCE_BASE=1 makes base.sh debootstrap again (a new base image
	# invalidates every cached layer: a full rebuild, ~6-7 min).
	FORCE="${FORCE_BASE:-0}" BUILT_REFS_FILE="$refs_file" "$here/build.sh" >"$OUT_DIR/build.log" ||
		{ tail -n 40 "$OUT_DIR/build.log" >&2; die "build failed (log: $OUT_DIR/build.log)"; }
	log "images built in $((SECONDS - mark)) s (log: ${OUT_DIR}/build.log)"
	check_overlay_refs "$refs_file"
	save_images "$refs_file"
	rm -f "$refs_file"
	mv "$OUT_DIR/images.txt.partial" "$OUT_DIR/images.txt"
	echo "$key" >"$OUT_DIR/key"
	remove_stale
	[[ "$IMPORT_CHECK" != 1 ]] || import_check
	engine_stop
	trap - EXIT
}

main() {
	local key start="$SECONDS"
	key="$(content_key)"
	if up_to_date "$key"; then
		log "up to date (key ${key}): ${OUT_DIR}/images.txt"
		return 0
	fi
	mkdir -p "$OUT_DIR"
	# One build per output directory and per engine directory at a time; a second caller waits and
	# then finds the tars up to date.
	mkdir -p "$ENGINE_RUN_DIR"
	exec {out_lock}>"$OUT_DIR/.lock" {engine_lock}>"$ENGINE_RUN_DIR/.lock"
	flock "$out_lock"
	flock "$engine_lock"
	if up_to_date "$key"; then
		log "up to date (key ${key}), built by a concurrent run: ${OUT_DIR}/images.txt"
		return 0
	fi
	log "building (key ${key}) into ${OUT_DIR}"
	build_and_save "$key"
	log "done in $((SECONDS - start)) s: ${OUT_DIR}/images.txt"
	cat "$OUT_DIR/images.txt" >&2
}

main "$@"
