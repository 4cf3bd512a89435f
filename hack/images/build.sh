#!/usr/bin/env bash
# Builds the ActorMesh images without a container registry: the local base image (hack/images/base.sh),
# then Dockerfile.runtime and Dockerfile.operator on top of it, a nats-server image made from the
# runtime image's binary (hack/images/nats.Dockerfile) and a Redis image from Debian's redis-server on
# the same base (hack/images/redis.Dockerfile). Called by `make images` and by hack/images/tar.sh
# (`make images-tar`); see docs/images.md. Needs a running Docker Engine, root (debootstrap), PyPI and
# Debian's mirror.
#
# Environment:
#   LOCAL_BASE=0          use the Dockerfiles' default BASE_IMAGE (python:3.11-slim-bookworm, needs a
#                         registry) instead of building the local one
#   BASE_IMAGE            local base tag (default actormesh/base-python:bookworm)
#   RUNTIME_IMAGE         default actormesh/actormesh:<pyproject version> (the tag config/samples use)
#   OPERATOR_IMAGE        default actormesh/operator:<pyproject version> (the tag config/e2e uses)
#   NATS_IMAGE            default actormesh/nats:<nats-server version>
#   REDIS_IMAGE           default actormesh/redis:<redis-server version, without Debian's revision>
#   BUILD_NETWORK         network of the build containers, default host (pip reaches PyPI the way the
#                         host does; also works when dockerd runs with --bridge=none)
#   BUILD_CA_DIR          extra CA certificates (*.crt) pip trusts in the build stage, default
#                         /usr/local/share/ca-certificates (where Debian keeps local CAs)
#   BUILD_FLAGS           more `docker build` flags, e.g. --no-cache
#   BUILT_REFS_FILE       if set, the built runtime/operator/NATS/Redis refs are written there, one a line
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n1)"
LOCAL_BASE="${LOCAL_BASE:-1}"
export BASE_IMAGE="${BASE_IMAGE:-actormesh/base-python:bookworm}"
RUNTIME_IMAGE="${RUNTIME_IMAGE:-actormesh/actormesh:${version}}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-actormesh/operator:${version}}"
REDIS_BUILD_TAG="actormesh/redis:build"
BUILD_NETWORK="${BUILD_NETWORK:-host}"
BUILD_CA_DIR="${BUILD_CA_DIR:-/usr/local/share/ca-certificates}"

log() { echo "images: $*" >&2; }

build_args=(--network "$BUILD_NETWORK")
read -r -a extra_flags <<<"${BUILD_FLAGS:-}"
build_args+=("${extra_flags[@]}")
if [[ "$LOCAL_BASE" == 1 ]]; then
	"$here/base.sh"
	build_args+=(--build-arg "BASE_IMAGE=${BASE_IMAGE}")
fi
shopt -s nullglob
cas=("$BUILD_CA_DIR"/*.crt)
shopt -u nullglob
if ((${#cas[@]})); then
	log "pip trusts ${#cas[@]} extra CA certificate(s) from ${BUILD_CA_DIR} (build stage only)"
	build_args+=(--build-arg "BUILD_CA_CERTS=$(cat "${cas[@]}")")
fi

build() {
	local dockerfile="$1" tag="$2" start
	shift 2
	start="$(date +%s)"
	log "building ${tag} from ${dockerfile}"
	docker build "${build_args[@]}" "$@" -f "$root/$dockerfile" -t "$tag" "$root"
	log "built ${tag} in $(($(date +%s) - start)) s, $(docker image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec)"
}

build Dockerfile.runtime "$RUNTIME_IMAGE"
build Dockerfile.operator "$OPERATOR_IMAGE"
nats_version="$(docker run --rm --network none --entrypoint nats-server "$RUNTIME_IMAGE" --version | sed 's/.* v//')"
NATS_IMAGE="${NATS_IMAGE:-actormesh/nats:${nats_version}}"
build hack/images/nats.Dockerfile "$NATS_IMAGE" --build-arg "RUNTIME_IMAGE=${RUNTIME_IMAGE}"
# The Redis tag is the upstream version the package ships (7.0.15 in bookworm), known only once built;
# Debian's security revisions keep it, so the tag config/e2e names stays valid across them.
build hack/images/redis.Dockerfile "$REDIS_BUILD_TAG"
redis_version="$(docker run --rm --network none "$REDIS_BUILD_TAG" --version | sed -n 's/.* v=\([0-9.]*\) .*/\1/p')"
[[ -n "$redis_version" ]] || { log "error: cannot read the redis-server version"; exit 1; }
REDIS_IMAGE="${REDIS_IMAGE:-actormesh/redis:${redis_version}}"
docker tag "$REDIS_BUILD_TAG" "$REDIS_IMAGE"
docker rmi "$REDIS_BUILD_TAG" >/dev/null
docker image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.Size}}' |
	grep -E "^(${BASE_IMAGE}|${RUNTIME_IMAGE}|${OPERATOR_IMAGE}|${NATS_IMAGE}|${REDIS_IMAGE})[[:space:]]" >&2 || true
# hack/images/tar.sh reads the tags it should save from here.
if [[ -n "${BUILT_REFS_FILE:-}" ]]; then
	printf '%s\n' "$RUNTIME_IMAGE" "$OPERATOR_IMAGE" "$NATS_IMAGE" "$REDIS_IMAGE" >"$BUILT_REFS_FILE"
fi
