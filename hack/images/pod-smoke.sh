#!/usr/bin/env bash
# Runs the managed NATS and Redis pods from the local images exactly as the operator's builders specify
# them (hack/images/pod_smoke.py: user, fsGroup, read-only root, volumes, env, probes, preStop), with
# the default images config/e2e gives the operator. Uses a running Docker Engine or starts (and stops)
# a private one (hack/images/engine.sh); loads the images from `make images-tar`'s tars when the engine
# lacks them. Needs root (nsenter), curl and the dev venv (`make venv`).
#
# Environment: ACTORMESH_IMAGES_DIR (where images.txt is), PYTHON (default .venv/bin/python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
OUT_DIR="${ACTORMESH_IMAGES_DIR:-${HOME}/.cache/actormesh/images/e2e}"
PYTHON="${PYTHON:-$root/.venv/bin/python}"

# shellcheck source=hack/images/engine.sh
. "$here/engine.sh"

log() { echo "pod-smoke: $*" >&2; }

[[ -s "$OUT_DIR/images.txt" ]] || { log "error: no ${OUT_DIR}/images.txt: run make images-tar first"; exit 1; }
trap engine_stop EXIT
engine_start
while read -r ref tar; do
	docker image inspect "$ref" >/dev/null 2>&1 || { log "loading ${tar}"; docker load -q -i "$tar" >/dev/null; }
done <"$OUT_DIR/images.txt"
runtime_ref="$(awk 'NR == 1 { print $1 }' "$OUT_DIR/images.txt")"
cd "$root"
"$PYTHON" "$here/pod_smoke.py" --helper-image "$runtime_ref" "$@"
