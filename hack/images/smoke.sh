#!/usr/bin/env bash
# Runs a whole mesh from the built images and sends it one chat. The containers are nats-server
# (actormesh/nats with the operator's nats.conf, or the runtime image's own nats-server when that image
# is absent), the mock APIs, the nine actors, history and the gateway. Each gets the operator's
# configuration (hack/images/pod_plan.py, run in the operator image), a read-only root filesystem, a
# 64 MiB /tmp tmpfs, uid 10001, no capabilities and the pod's memory limit, as in the cluster.
#
# All containers share one network namespace that has only a loopback interface (like one pod; a
# `sleep` holder container owns it), so nothing is reachable from outside and no bridge network is
# needed; the Service names the operator writes resolve to 127.0.0.1 there. Actors get distinct
# ACTOR_HTTP_PORTs (they would all be on 8080). Curl runs in that namespace through nsenter (root).
# SMOKE_LLM=1 adds spec.llm pointing at hack/images/llm_stub.py (an OpenAI-compatible stand-in in its
# own container), so the LLM actors import and call litellm for real on the read-only filesystem.
# Secret-backed variables get a dummy value. Removes every container and volume it made on exit;
# KEEP=1 leaves them for debugging. Uses a running Docker Engine or starts (and stops) a private one
# (hack/images/engine.sh).
#
# Environment: RUNTIME_IMAGE, OPERATOR_IMAGE, NATS_IMAGE, PREFIX (container name prefix),
# READY_TIMEOUT_S, KEEP, SMOKE_LLM.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../../pyproject.toml" | head -n1)"
RUNTIME_IMAGE="${RUNTIME_IMAGE:-actormesh/actormesh:${version}}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-actormesh/operator:${version}}"
NATS_IMAGE="${NATS_IMAGE:-}"
PREFIX="${PREFIX:-actormesh-smoke}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"
KEEP="${KEEP:-0}"
SMOKE_LLM="${SMOKE_LLM:-0}"
LLM_PORT=8900
LABEL="io.actormesh.smoke=${PREFIX}"
ACTOR_PORT_BASE=18081

# Every URL curl fetches is inside the smoke namespace: never through a proxy from the environment.
export no_proxy='*' NO_PROXY='*'

# shellcheck source=hack/images/engine.sh
. "$here/engine.sh"

log() { echo "smoke: $*" >&2; }
die() { log "error: $*"; exit 1; }

remove_mesh() {
	local ids=()
	if [[ "$KEEP" == 1 ]]; then
		log "KEEP=1: leaving containers labelled ${LABEL} (and the Docker Engine running)"
		return
	fi
	mapfile -t ids < <(docker ps -aq --filter "label=${LABEL}")
	((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
	docker volume rm -f "${PREFIX}-history" >/dev/null 2>&1 || true
	[[ -z "${workdir:-}" ]] || rm -rf "$workdir"
}

cleanup() {
	remove_mesh
	[[ "$KEEP" == 1 ]] || engine_stop
}

# Restricted-profile container settings shared by every container of the smoke mesh.
# shellcheck disable=SC2054  # the commas are tmpfs mount options
COMMON=(--detach --label "$LABEL" --read-only --tmpfs /tmp:rw,nosuid,nodev,size=64m,mode=1777
	--user 10001:10001 --cap-drop ALL --security-opt no-new-privileges)

mesh_yaml() {
	cat <<-EOF
		apiVersion: actormesh.io/v1alpha1
		kind: ActorMesh
		metadata: {name: demo, namespace: default}
		spec:
		  image: ${RUNTIME_IMAGE}
		  redis: {enabled: false}
	EOF
	if [[ "$SMOKE_LLM" == 1 ]]; then
		cat <<-EOF
			  llm:
			    model: openai/smoke-model
			    apiBase: http://127.0.0.1:${LLM_PORT}/v1
			    apiKeySecretRef: {name: smoke-llm, key: api-key}
		EOF
	fi
}

in_pod() { nsenter --target "$(docker inspect --format '{{.State.Pid}}' "${PREFIX}-pod")" --net "$@"; }

# Polls until the URL answers 2xx, or fails naming the container whose log to read.
wait_ready() {
	local url="$1" who="$2" deadline=$((SECONDS + READY_TIMEOUT_S))
	until in_pod curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null; do
		if [[ "$(docker inspect --format '{{.State.Running}}' "$who")" != true ]]; then
			docker logs --tail 30 "$who" >&2 || true
			die "$who exited"
		fi
		((SECONDS < deadline)) || { docker logs --tail 30 "$who" >&2; die "$who not ready at $url"; }
		sleep 1
	done
}

start_runtime() {
	local name="$1" envfile="$2" spec="$3" extra=()
	local args env_args
	mapfile -t args < <(jq -r '.args[]' <<<"$spec")
	mapfile -t env_args < <(jq -r '(.env | to_entries[] | "--env=\(.key)=\(.value)"),
		(.secrets[] | "--env=\(.)=smoke-not-a-secret")' <<<"$spec")
	# The pod's memory limit, so a container that outgrows it is OOM-killed here as in the cluster.
	local memory
	memory="$(jq -r '.memory_limit // empty' <<<"$spec" | sed -E 's/Mi$/m/; s/Gi$/g/')"
	[[ -z "$memory" ]] || extra+=(--memory "$memory")
	if [[ "${args[0]}" == history ]]; then
		extra+=(--mount "type=volume,src=${PREFIX}-history,dst=/var/lib/actormesh")
	fi
	docker run "${COMMON[@]}" --name "$name" --network "container:${PREFIX}-pod" --env-file "$envfile" \
		"${env_args[@]}" "${extra[@]}" "$RUNTIME_IMAGE" "${args[@]}" >/dev/null
}

# The operator's NATS container: its nats.conf, args, mount points and memory limit. The store and pid
# directories are world-writable tmpfs here (docker has no fsGroup; the store is a PVC in the cluster).
start_nats() {
	local plan="$1" conf_dir store pid memory image entry=()
	conf_dir="$(jq -r '.nats.mounts.config' <<<"$plan")"
	store="$(jq -r '.nats.mounts.jetstream' <<<"$plan")"
	pid="$(jq -r '.nats.mounts.pid' <<<"$plan")"
	memory="$(jq -r '.nats.memory_limit' <<<"$plan" | sed -E 's/Mi$/m/; s/Gi$/g/')"
	mkdir -p "$workdir/nats-config"
	jq -r '.nats.config' <<<"$plan" >"$workdir/nats-config/nats.conf"
	chmod -R a+rX "$workdir"
	image="${NATS_IMAGE:-$(docker image ls --format '{{.Repository}}:{{.Tag}}' actormesh/nats | head -n1)}"
	if [[ -z "$image" ]]; then
		log "no actormesh/nats image: nats-server from ${RUNTIME_IMAGE} (--entrypoint)"
		image="$RUNTIME_IMAGE"
		entry=(--entrypoint /opt/actormesh/bin/nats-server)
	fi
	log "nats-server: ${image}, operator's nats.conf: $(tr '\n' ' ' <"$workdir/nats-config/nats.conf")"
	mapfile -t nats_args < <(jq -r '.nats.args[]' <<<"$plan")
	docker run "${COMMON[@]}" --name "${PREFIX}-nats" --network "container:${PREFIX}-pod" --memory "$memory" \
		--env POD_NAME=demo-nats-0 -v "$workdir/nats-config:${conf_dir}:ro" --tmpfs "${store}:rw,size=256m,mode=1777" \
		--tmpfs "${pid}:rw,size=1m,mode=1777" "${entry[@]}" "$image" "${nats_args[@]}" >/dev/null
}

main() {
	local tool
	for tool in jq nsenter curl; do
		command -v "$tool" >/dev/null || die "needs $tool on the host (jq, util-linux, curl)"
	done
	trap cleanup EXIT
	engine_start
	docker image inspect "$RUNTIME_IMAGE" "$OPERATOR_IMAGE" >/dev/null || die "build the images first: make images"
	remove_mesh

	workdir="$(mktemp -d)"
	local plan envfile started
	plan="$(mesh_yaml | docker run --rm -i --network none --read-only --tmpfs /tmp --user 10001:10001 \
		-v "$here/pod_plan.py:/plan/pod_plan.py:ro" --entrypoint python3 "$OPERATOR_IMAGE" /plan/pod_plan.py)"
	envfile="$workdir/runtime.env"
	jq -r '.config | to_entries[] | "\(.key)=\(.value)"' <<<"$plan" >"$envfile"
	log "runtime ConfigMap from the operator: $(tr '\n' ' ' <"$envfile")"

	local hosts=()
	mapfile -t hosts < <(jq -r '.services[] | "--add-host=\(.):127.0.0.1"' <<<"$plan")
	started=$SECONDS
	docker run "${COMMON[@]}" --name "${PREFIX}-pod" --network none "${hosts[@]}" \
		--entrypoint sleep "$RUNTIME_IMAGE" infinity >/dev/null
	start_nats "$plan"
	wait_ready "http://127.0.0.1:8222/healthz?js-enabled-only=true" "${PREFIX}-nats"
	if [[ "$SMOKE_LLM" == 1 ]]; then
		docker run "${COMMON[@]}" --name "${PREFIX}-llm-stub" --network "container:${PREFIX}-pod" \
			-v "$here/llm_stub.py:/stub/llm_stub.py:ro" --entrypoint python3 "$RUNTIME_IMAGE" \
			/stub/llm_stub.py "$LLM_PORT" >/dev/null
		wait_ready "http://127.0.0.1:${LLM_PORT}/calls" "${PREFIX}-llm-stub"
	fi

	local n spec name i=0 ready=()
	n="$(jq '.containers | length' <<<"$plan")"
	for ((k = 0; k < n; k++)); do
		spec="$(jq -c ".containers[$k]" <<<"$plan")"
		name="${PREFIX}-$(jq -r '.name' <<<"$spec" | sed 's/^demo-//')"
		if [[ "$(jq -r '.args[0]' <<<"$spec")" == actor ]]; then
			spec="$(jq -c --arg p "$((ACTOR_PORT_BASE + i))" '.env.ACTOR_HTTP_PORT = $p' <<<"$spec")"
			ready+=("http://127.0.0.1:$((ACTOR_PORT_BASE + i))/readyz $name")
			i=$((i + 1))
		fi
		case "$(jq -r '.args[0]' <<<"$spec")" in
		history) ready+=("http://127.0.0.1:8080/readyz $name") ;;
		gateway) ready+=("http://127.0.0.1:8000/api/ready $name") ;;
		mocks) ready+=("http://127.0.0.1:8001/healthz $name" "http://127.0.0.1:8002/healthz $name"
			"http://127.0.0.1:8003/healthz $name") ;;
		esac
		start_runtime "$name" "$envfile" "$spec"
	done
	local r
	for r in "${ready[@]}"; do
		wait_ready "${r% *}" "${r##* }"
	done
	log "all $((n + 1)) mesh containers ready $((SECONDS - started)) s after the first started"

	local body result session
	body='{"message":"Where is my order ORD-10002?","customer_email":"john.doe@example.com"}'
	log "POST /api/chat ${body}"
	result="$(in_pod curl -fsS --max-time 60 -H 'content-type: application/json' -d "$body" \
		http://127.0.0.1:8000/api/chat)" || die "chat failed"
	jq . <<<"$result"
	session="$(jq -r '.session_id // empty' <<<"$result")"
	if [[ -n "$session" ]]; then
		wait_history "$session"
	fi
	if [[ "$SMOKE_LLM" == 1 ]]; then
		local calls
		calls="$(in_pod curl -fsS "http://127.0.0.1:${LLM_PORT}/calls" | jq .calls)"
		((calls > 0)) || die "the LLM actors never called the LLM stub"
		log "the LLM stub served ${calls} completion(s); method: $(jq -c .method <<<"$result")"
	fi
	local running=()
	mapfile -t running < <(docker ps -q --filter "label=${LABEL}")
	docker stats --no-stream --format 'table {{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}' "${running[@]}"
	log "image sizes: $(docker image inspect --format '{{index .RepoTags 0}}={{.Size}}' "$RUNTIME_IMAGE" "$OPERATOR_IMAGE" | tr '\n' ' ')"
}

# The history service writes asynchronously; poll the gateway's history API until the turn is there.
wait_history() {
	local session="$1" deadline=$((SECONDS + 30)) turns
	while ((SECONDS < deadline)); do
		turns="$(in_pod curl -fsS --max-time 5 "http://127.0.0.1:8000/api/conversations/${session}" 2>/dev/null |
			jq '.turns | length' 2>/dev/null || echo 0)"
		if [[ "$turns" -gt 0 ]]; then
			log "history service stored the conversation (${turns} entries for session ${session})"
			return 0
		fi
		sleep 1
	done
	log "warning: history has no entry for session ${session} after 30 s"
}

main "$@"
