#!/usr/bin/env bash
# Builds one pinned Go tool (promtool, helm) from its Go module into a version-keyed cache outside
# the repository: $TOOLS_CACHE/<name>-<version>/<name>. Called by `make tools-bin` (and so by
# `.ci/run` through `make test`). A warm cache returns at once; a cold build takes minutes, runs
# under `nice -n 19` (the CPU is shared) and holds a lock, so a second caller waits and reuses it.
#
# Usage: hack/tools/build.sh promtool|helm [download]
# `download` only fetches the modules a cold build needs into Go's module cache (nothing when the tool
# is cached): .ci/run runs it in the background while other steps use the CPU.
# Environment: TOOLS_CACHE (default ~/.cache/actormesh/tools), PROMTOOL_VERSION, HELM_VERSION.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_CACHE="${TOOLS_CACHE:-${HOME}/.cache/actormesh/tools}"
# Prometheus 3.x is published as Go module versions v0.3XX.Y (v0.316.0 = Prometheus 3.16.0).
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

log() { echo "tools-bin: $*" >&2; }

name="${1:?usage: build.sh promtool|helm [download]}"
mode="${2:-build}"
# remove_all_sd: promtool without Prometheus' ~25 service-discovery plugins (AWS, Azure, GCE, Kubernetes,
# ...): the tests only run `check rules` and `test rules`, and a cold build compiles less than half the
# source (63 of 143 MB; docs/e2e.md, "CI: a cold run").
tags=""
case "$name" in
promtool) package="github.com/prometheus/prometheus/cmd/promtool" version="$PROMTOOL_VERSION" tags=remove_all_sd ;;
helm) package="helm.sh/helm/v3/cmd/helm" version="$HELM_VERSION" ;;
*) log "unknown tool $name"; exit 2 ;;
esac
dest="$TOOLS_CACHE/$name-$version"
stamp="$package@$version $(sha256sum "$here/build.sh" | cut -d' ' -f1)"

warm() { [[ -x "$dest/$name" ]] && [[ "$(cat "$dest/.stamp" 2>/dev/null)" == "$stamp" ]]; }

if warm; then
	[[ "$mode" == download ]] || echo "$dest/$name"
	exit 0
fi
if ! command -v go >/dev/null; then
	log "Go is needed to build $name ($package@$version)"
	case "${CI:-}" in 1 | true | TRUE | True | yes) exit 2 ;; *) exit 0 ;; esac
fi
if [[ "$mode" == download ]]; then
	# -n: resolve and download every module the install needs, print the build plan (to stderr, long),
	# run nothing.
	if ! plan="$(cd "${TMPDIR:-/tmp}" && go install -n -tags "$tags" "$package@$version" 2>&1)"; then
		tail -n 20 <<<"$plan" >&2
		log "downloading the modules of $package@$version failed"
		exit 1
	fi
	exit 0
elif [[ "$mode" != build ]]; then
	log "usage: build.sh promtool|helm [download]"
	exit 2
fi
mkdir -p "$TOOLS_CACHE"
exec 9>"$TOOLS_CACHE/.$name-$version.lock"
command -v flock >/dev/null && flock 9
if warm; then
	echo "$dest/$name"
	exit 0
fi
tmp="$(mktemp -d "$TOOLS_CACHE/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "building $package@$version (nice -n 19)"
start=$SECONDS
# Outside any module: `go install pkg@version` resolves the tool's own go.mod, nothing of ours.
(cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" GOFLAGS=-trimpath nice -n 19 go install -tags "$tags" -ldflags "-s -w" "$package@$version")
mkdir -p "$tmp/out"
mv "$tmp/bin/$name" "$tmp/out/$name"
echo "$stamp" >"$tmp/out/.stamp"
rm -rf "$dest"
mv -T "$tmp/out" "$dest"
log "built $name in $((SECONDS - start))s into $dest"
echo "$dest/$name"
