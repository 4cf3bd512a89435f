# shellcheck shell=bash
# A private, sealed Docker Engine for one build: sourced by hack/images/tar.sh, which calls
# `engine_start` and `engine_stop` (always, from its EXIT trap).
#
# When a Docker Engine already answers (`docker info`, honouring DOCKER_HOST), it is used as it is and
# left running. Otherwise Debian's containerd and dockerd are started here, and only these two are
# stopped again:
# - containerd with its own socket, state and root (no CRI plugin), never the system socket
#   /run/containerd/containerd.sock: dockerd would otherwise adopt whatever containerd listens there
#   (on this machine, possibly the test cluster's node);
# - dockerd with --bridge=none, no iptables rules, no forwarding and no masquerading: builds and the
#   checks in tar.sh use the host network or none, so the engine adds no bridge, route or rule;
# - data under ENGINE_DATA_DIR (default ~/.cache/actormesh/docker, outside any repository) so the
#   base image and the Dockerfiles' layer cache survive between runs; sockets, pids and exec state
#   under ENGINE_RUN_DIR (default /run/actormesh-images).

ENGINE_DATA_DIR="${ENGINE_DATA_DIR:-${HOME}/.cache/actormesh/docker}"
ENGINE_RUN_DIR="${ENGINE_RUN_DIR:-/run/actormesh-images}"
ENGINE_STOP_TIMEOUT_S="${ENGINE_STOP_TIMEOUT_S:-60}"
engine_started=0

engine_log() { echo "engine: $*" >&2; }

# Waits until the process has exited; SIGKILL after the timeout. Returns at once if it is gone.
engine_stop_pid() {
	local pid="$1" name="$2" deadline=$((SECONDS + ENGINE_STOP_TIMEOUT_S))
	# Only that process: a pid file left by a killed run may name a pid reused by something else.
	[[ -n "$pid" && "$(cat "/proc/${pid}/comm" 2>/dev/null)" == "$name" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			engine_log "${name} (pid ${pid}) ignored SIGTERM for ${ENGINE_STOP_TIMEOUT_S} s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
}

engine_wait_for() {
	local what="$1" timeout_s="$2" log_file="$3" deadline
	shift 3
	deadline=$((SECONDS + timeout_s))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			tail -n 30 "$log_file" >&2 || true
			engine_log "error: ${what} did not come up within ${timeout_s} s (log: ${log_file})"
			return 1
		fi
		sleep 0.2
	done
}

engine_write_containerd_config() {
	cat >"$ENGINE_RUN_DIR/containerd.toml" <<-EOF
		# Written by hack/images/engine.sh: containerd for the image build's private dockerd only.
		version = 2
		root = "${ENGINE_DATA_DIR}/containerd"
		state = "${ENGINE_RUN_DIR}/containerd"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "${ENGINE_RUN_DIR}/containerd.sock"
		[ttrpc]
		  address = "${ENGINE_RUN_DIR}/containerd.sock.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
	EOF
}

engine_start() {
	if docker info >/dev/null 2>&1; then
		engine_log "using the running Docker Engine ($(docker info --format '{{.ServerVersion}}'))"
		return 0
	fi
	if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
		engine_log "error: dockerd/containerd not installed (apt-get install docker.io)"
		return 1
	fi
	mkdir -p "$ENGINE_RUN_DIR" "$ENGINE_DATA_DIR"
	# A leftover from a run that was killed with SIGKILL: its processes are gone, so stop them if not.
	engine_stop_pid "$(cat "$ENGINE_RUN_DIR/dockerd.pid" 2>/dev/null)" dockerd
	engine_stop_pid "$(cat "$ENGINE_RUN_DIR/containerd.pid" 2>/dev/null)" containerd
	engine_started=1
	engine_write_containerd_config
	containerd --config "$ENGINE_RUN_DIR/containerd.toml" >"$ENGINE_RUN_DIR/containerd.log" 2>&1 &
	echo $! >"$ENGINE_RUN_DIR/containerd.pid"
	engine_wait_for containerd 30 "$ENGINE_RUN_DIR/containerd.log" \
		ctr --address "$ENGINE_RUN_DIR/containerd.sock" version || return 1
	dockerd --host "unix://${ENGINE_RUN_DIR}/docker.sock" \
		--containerd "$ENGINE_RUN_DIR/containerd.sock" \
		--data-root "$ENGINE_DATA_DIR/docker" --exec-root "$ENGINE_RUN_DIR/docker" \
		--pidfile "$ENGINE_RUN_DIR/dockerd.pid" \
		--bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
		>"$ENGINE_RUN_DIR/dockerd.log" 2>&1 &
	echo $! >"$ENGINE_RUN_DIR/dockerd.pid.launch"
	export DOCKER_HOST="unix://${ENGINE_RUN_DIR}/docker.sock"
	engine_wait_for dockerd 60 "$ENGINE_RUN_DIR/dockerd.log" docker info || return 1
	engine_log "started dockerd $(docker info --format '{{.ServerVersion}}') (storage $(docker info --format '{{.Driver}}'), data ${ENGINE_DATA_DIR})"
}

# A container shim outlives containerd; ours name our socket on their command line.
engine_stop_shims() {
	local cmdline pid
	for cmdline in /proc/[0-9]*/cmdline; do
		pid="${cmdline#/proc/}"
		pid="${pid%/cmdline}"
		{ tr '\0' ' ' <"$cmdline"; } 2>/dev/null | grep -qF -- "${ENGINE_RUN_DIR}/containerd.sock" || continue
		engine_log "stopping leftover shim ${pid}"
		engine_stop_pid "$pid" "$(cat "/proc/${pid}/comm" 2>/dev/null)"
	done
}

engine_stop() {
	((engine_started)) || return 0
	engine_started=0
	engine_stop_pid "$(cat "$ENGINE_RUN_DIR/dockerd.pid.launch" 2>/dev/null)" dockerd
	engine_stop_pid "$(cat "$ENGINE_RUN_DIR/containerd.pid" 2>/dev/null)" containerd
	engine_stop_shims
	# Anything dockerd or containerd left mounted (a killed build's overlay) would pin the data dir.
	local mounts
	mapfile -t mounts < <(awk -v a="$ENGINE_DATA_DIR" -v b="$ENGINE_RUN_DIR" \
		'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r)
	((${#mounts[@]} == 0)) || umount -l "${mounts[@]}" 2>/dev/null || true
	rm -f "$ENGINE_RUN_DIR"/*.pid "$ENGINE_RUN_DIR"/*.pid.launch "$ENGINE_RUN_DIR"/*.sock*
	engine_log "stopped the dockerd and containerd it started"
}
