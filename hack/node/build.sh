#!/usr/bin/env bash
# Builds the sealed test node's binaries from Go (and C) source into a version-keyed cache outside
# the repository. Called by `make node-bin` (and so by `make cluster-up` and `.ci/run`). A warm
# cache returns at once; a cold build takes ~10 min on 2 cores (docs/e2e.md).
#
#   kubelet, kube-scheduler, kube-proxy   k8s.io/kubernetes, hack/node/kube (the pins of hack/k8s)
#   containerd, containerd-shim-runc-v2, ctr, runc, CNI plugins, crictl, coredns, kube-router,
#   metrics-server                        one pinned builder module each under hack/node/
#   pause                                 build/pause/linux/pause.c of k8s.io/kubernetes, gcc -static
#
# `build.sh download` only fetches the modules a cold build needs into Go's module cache (nothing when
# the cache is warm): .ci/run runs it in the background while other steps use the CPU.
#
# Environment: K8S_VERSION (must match hack/node/kube/go.mod), NODE_CACHE (destination directory).
# Needs Go, gcc and Debian's libseccomp-dev (runc is built with cgo for seccomp).
set -euo pipefail

node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_dir="$node_dir/kube"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3
CNI_VERSION=v1.10.0
CRICTL_VERSION=v1.37.0
COREDNS_VERSION=v1.15.0
KUBE_ROUTER_VERSION=v2.1.0
METRICS_SERVER_VERSION=v0.8.0
NODE_CACHE="${NODE_CACHE:-${HOME}/.cache/actormesh/node-${K8S_VERSION}-containerd-${CONTAINERD_VERSION}}"
BINARIES=(kubelet kube-scheduler kube-proxy containerd containerd-shim-runc-v2 ctr runc crictl coredns
	kube-router metrics-server pause cni/bridge cni/host-local cni/loopback cni/portmap)

log() { echo "node-bin: $*" >&2; }

stamp_text() {
	echo "kubernetes=${K8S_VERSION} containerd=${CONTAINERD_VERSION} runc=${RUNC_VERSION} cni=${CNI_VERSION}" \
		"crictl=${CRICTL_VERSION} coredns=${COREDNS_VERSION} kube-router=${KUBE_ROUTER_VERSION}" \
		"metrics-server=${METRICS_SERVER_VERSION}"
	cat "$node_dir/build.sh" "$kube_dir"/cmd/*/main.go "$node_dir"/*/go.mod "$node_dir"/*/go.sum |
		sha256sum | cut -d' ' -f1
}

cache_is_warm() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "$NODE_CACHE/$b" ]] || return 1
	done
	[[ -f "$NODE_CACHE/.stamp" ]] && [[ "$(cat "$NODE_CACHE/.stamp")" == "$(stamp_text)" ]]
}

check_pins() {
	grep -qE "^[[:space:]]k8s.io/kubernetes ${K8S_VERSION}\$" "$kube_dir/go.mod" ||
		{ log "K8S_VERSION=${K8S_VERSION} does not match hack/node/kube/go.mod"; exit 2; }
	local pin
	for pin in "containerd github.com/containerd/containerd/v2 ${CONTAINERD_VERSION}" \
		"runc github.com/opencontainers/runc ${RUNC_VERSION}" \
		"cni github.com/containernetworking/plugins ${CNI_VERSION}" \
		"crictl sigs.k8s.io/cri-tools ${CRICTL_VERSION}" \
		"coredns github.com/coredns/coredns ${COREDNS_VERSION}" \
		"kube-router github.com/cloudnativelabs/kube-router/v2 ${KUBE_ROUTER_VERSION}" \
		"metrics-server sigs.k8s.io/metrics-server ${METRICS_SERVER_VERSION}"; do
		set -- $pin
		grep -qE "^[[:space:]]*(require )?$2 $3( // indirect)?\$" "$node_dir/$1/go.mod" ||
			{ log "hack/node/$1/go.mod does not pin $2 $3"; exit 2; }
	done
}

# As hack/k8s/build.sh (upstream hack/lib/version.sh), so `kubelet --version` says the pin.
k8s_ldflags() {
	local rest major minor pkg date flags="-s -w"
	rest="${K8S_VERSION#v}"
	major="${rest%%.*}"
	rest="${rest#*.}"
	minor="${rest%%.*}"
	date="$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
		flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.gitCommit=${KUBE_GIT_COMMIT:-module-proxy-${K8S_VERSION}}"
		flags+=" -X ${pkg}.buildDate=${date}"
	done
	echo "$flags"
}

go_build() { # module-dir out tags ldflags packages...; with MODE=download it only downloads them
	local dir="$1" out="$2" tags="$3" ldflags="$4"
	shift 4
	if [[ "$MODE" == download ]]; then
		(cd "$dir" && go list -deps -tags "$tags" "$@" >/dev/null)
		return
	fi
	(cd "$dir" && go build -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" -o "$out" "$@")
}

build_into() {
	local out="$1" kver="${K8S_VERSION#v}"
	[[ "$MODE" == download ]] || mkdir -p "$out/cni"
	export CGO_ENABLED=0
	log "${MODE}ing kubelet, kube-scheduler, kube-proxy ${K8S_VERSION}"
	go_build "$kube_dir" "$out/" "" "$(k8s_ldflags)" ./cmd/kubelet ./cmd/kube-scheduler ./cmd/kube-proxy
	log "${MODE}ing containerd ${CONTAINERD_VERSION}"
	go_build "$node_dir/containerd" "$out/" "no_btrfs no_devmapper no_zfs" \
		"-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}" \
		github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}
	log "${MODE}ing CNI plugins ${CNI_VERSION}"
	go_build "$node_dir/cni" "$out/cni/" "" \
		"-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=${CNI_VERSION}" \
		github.com/containernetworking/plugins/plugins/{main/bridge,ipam/host-local,main/loopback,meta/portmap}
	log "${MODE}ing crictl ${CRICTL_VERSION}"
	go_build "$node_dir/crictl" "$out/crictl" "" \
		"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}" sigs.k8s.io/cri-tools/cmd/crictl
	log "${MODE}ing coredns ${COREDNS_VERSION}"
	go_build "$node_dir/coredns" "$out/coredns" "" \
		"-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}" github.com/coredns/coredns
	log "${MODE}ing kube-router ${KUBE_ROUTER_VERSION}"
	go_build "$node_dir/kube-router" "$out/kube-router" "" \
		"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${KUBE_ROUTER_VERSION}" \
		github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
	log "${MODE}ing metrics-server ${METRICS_SERVER_VERSION}"
	go_build "$node_dir/metrics-server" "$out/metrics-server" "" \
		"-s -w -X k8s.io/component-base/version.gitVersion=${METRICS_SERVER_VERSION}" \
		sigs.k8s.io/metrics-server/cmd/metrics-server
	log "${MODE}ing runc ${RUNC_VERSION} (cgo, seccomp)"
	CGO_ENABLED=1 go_build "$node_dir/runc" "$out/runc" "seccomp urfave_cli_no_docs" \
		"-s -w -X main.version=${RUNC_VERSION#v}" github.com/opencontainers/runc
	[[ "$MODE" != download ]] || return 0
	log "${MODE}ing pause (gcc -static)"
	local pause_c
	pause_c="$(cd "$kube_dir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
	gcc -Os -Wall -Werror -static -DVERSION="v${kver}-actormesh" -o "$out/pause" "$pause_c"
	strip "$out/pause"
	stamp_text >"$out/.stamp"
}

MODE=build

main() {
	case "${1:-}" in
	"") ;;
	download) MODE=download ;;
	*) log "usage: build.sh [download]"; exit 2 ;;
	esac
	if cache_is_warm; then
		log "cached in $NODE_CACHE"
		return 0
	fi
	if [[ "$MODE" == download ]]; then
		# gcc and libseccomp-dev (being installed meanwhile) are needed only to build.
		command -v go >/dev/null || { log "cannot download the test node's modules: missing Go >= 1.26"; exit 2; }
		check_pins
		build_into ""
		return 0
	fi
	local missing=()
	command -v go >/dev/null || missing+=("Go >= 1.26")
	command -v gcc >/dev/null || missing+=(gcc)
	[[ -f /usr/include/seccomp.h ]] || missing+=("libseccomp-dev (apt-get install libseccomp-dev)")
	if [[ ${#missing[@]} -gt 0 ]]; then
		log "cannot build the test node: missing ${missing[*]}"
		exit 2
	fi
	check_pins
	local parent
	parent="$(dirname "$NODE_CACHE")"
	mkdir -p "$parent"
	# Serialise concurrent builders; the second one finds a warm cache once the lock is free.
	exec 9>"$parent/.$(basename "$NODE_CACHE").lock"
	command -v flock >/dev/null && flock 9
	if cache_is_warm; then
		log "cached in $NODE_CACHE"
		return 0
	fi
	BUILD_TMP="$(mktemp -d "$parent/.node-build.XXXXXX")"
	trap 'rm -rf "${BUILD_TMP:-}" "${BUILD_TMP:-}.old"' EXIT
	chmod 755 "$BUILD_TMP"
	local start=$SECONDS
	build_into "$BUILD_TMP"
	# Same filesystem, so each rename is atomic; running processes keep their old binaries.
	if [[ -e "$NODE_CACHE" ]]; then
		mv -T "$NODE_CACHE" "$BUILD_TMP.old"
	fi
	mv -T "$BUILD_TMP" "$NODE_CACHE"
	rm -rf "$BUILD_TMP.old"
	trap - EXIT
	log "built in $((SECONDS - start))s into $NODE_CACHE"
}

main "$@"
