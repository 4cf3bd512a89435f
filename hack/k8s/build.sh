#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, kubectl, etcd)
# from Go source into a version-keyed cache outside the repository. Called by `make k8s-bin`
# (and so by `.ci/run`). A warm cache returns in well under a second; a cold build takes
# tens of minutes on 2 cores (see docs/k8s-harness.md).
#
# `build.sh download` only fetches the modules a cold build needs into Go's module cache (nothing when
# the cache is warm): .ci/run runs it in the background while other steps use the CPU.
#
# Environment: K8S_VERSION, ETCD_VERSION (must match the pins in hack/k8s/go.mod and
# hack/k8s/etcd/go.mod), K8S_CACHE (destination directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
K8S_CACHE="${K8S_CACHE:-${HOME}/.cache/actormesh/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}}"
BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)

log() { echo "k8s-bin: $*" >&2; }

# The stamp changes whenever a pin, a resolved dependency or this script changes, so a stale cache
# is rebuilt rather than silently reused.
stamp_text() {
	echo "kubernetes=${K8S_VERSION} etcd=${ETCD_VERSION}"
	cat "$here/build.sh" "$here/go.mod" "$here/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" | sha256sum | cut -d' ' -f1
}

cache_is_warm() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "$K8S_CACHE/$b" ]] || return 1
	done
	[[ -f "$K8S_CACHE/.stamp" ]] && [[ "$(cat "$K8S_CACHE/.stamp")" == "$(stamp_text)" ]]
}

check_pins() {
	grep -qE "^require k8s.io/kubernetes ${K8S_VERSION}\$|^[[:space:]]k8s.io/kubernetes ${K8S_VERSION}\$" "$here/go.mod" ||
		{ log "K8S_VERSION=${K8S_VERSION} does not match hack/k8s/go.mod"; exit 2; }
	grep -qE "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}\$" "$here/etcd/go.mod" ||
		{ log "ETCD_VERSION=${ETCD_VERSION} does not match hack/k8s/etcd/go.mod"; exit 2; }
}

# Mirrors upstream hack/lib/version.sh so `--version` and `kubectl version` report the pin.
version_ldflags() {
	local major minor rest pkg flags="-s -w"
	rest="${K8S_VERSION#v}"
	major="${rest%%.*}"
	rest="${rest#*.}"
	minor="${rest%%.*}"
	local date
	date="$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${major}"
		flags+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
		flags+=" -X ${pkg}.gitCommit=${KUBE_GIT_COMMIT:-module-proxy-${K8S_VERSION}}"
		flags+=" -X ${pkg}.buildDate=${date}"
	done
	echo "$flags"
}

# go_build module-dir out ldflags packages...; with MODE=download it only downloads what it would build.
go_build() {
	local dir="$1" out="$2" ldflags="$3"
	shift 3
	if [[ "$MODE" == download ]]; then
		(cd "$dir" && go list -deps "$@" >/dev/null)
		return
	fi
	# -buildvcs=false: the builder lives inside the app's git tree; its VCS state is irrelevant.
	(cd "$dir" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out" "$@")
}

build_into() {
	local out="$1"
	export CGO_ENABLED=0
	log "${MODE}ing kube-apiserver, kube-controller-manager, kubectl ${K8S_VERSION}"
	go_build "$here" "$out/" "$(version_ldflags)" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kubectl
	log "${MODE}ing etcd ${ETCD_VERSION}"
	go_build "$here/etcd" "$out/etcd" "-s -w" ./cmd/etcd
	[[ "$MODE" == download ]] || stamp_text >"$out/.stamp"
}

MODE=build

main() {
	case "${1:-}" in
	"") ;;
	download) MODE=download ;;
	*) log "usage: build.sh [download]"; exit 2 ;;
	esac
	if cache_is_warm; then
		log "cached in $K8S_CACHE"
		return 0
	fi
	if ! command -v go >/dev/null; then
		log "Go (>= 1.26, https://go.dev/dl/) is needed to build the Kubernetes test binaries"
		# `make test` depends on this target: without Go the k8s tests skip locally, but CI must fail.
		case "${CI:-}" in
		1 | true | TRUE | True | yes) exit 2 ;;
		*)
			log "skipping: tests marked k8s will be skipped"
			return 0
			;;
		esac
	fi
	check_pins
	if [[ "$MODE" == download ]]; then
		build_into ""
		return 0
	fi
	local parent
	parent="$(dirname "$K8S_CACHE")"
	mkdir -p "$parent"
	# Serialise concurrent builders; the second one finds a warm cache once the lock is free.
	exec 9>"$parent/.$(basename "$K8S_CACHE").lock"
	command -v flock >/dev/null && flock 9
	if cache_is_warm; then
		log "cached in $K8S_CACHE"
		return 0
	fi
	BUILD_TMP="$(mktemp -d "$parent/.build.XXXXXX")"
	trap 'rm -rf "${BUILD_TMP:-}" "${BUILD_TMP:-}.old"' EXIT
	chmod 755 "$BUILD_TMP"
	local start=$SECONDS
	build_into "$BUILD_TMP"
	# Same filesystem, so each rename is atomic: readers see the old cache or the new one, never a
	# half-written one; running processes keep their (renamed, then deleted) old binaries.
	if [[ -e "$K8S_CACHE" ]]; then
		mv -T "$K8S_CACHE" "$BUILD_TMP.old"
	fi
	mv -T "$BUILD_TMP" "$K8S_CACHE"
	rm -rf "$BUILD_TMP.old"
	trap - EXIT
	log "built in $((SECONDS - start))s into $K8S_CACHE"
}

main "$@"
