#!/usr/bin/env bash
# `make e2e`: the e2e suite (tests/e2e, marker e2e) on a sealed cluster that this script brings up
# and always tears down, then the cluster teardown test (marker cluster_lifecycle), which needs the
# machine to itself. With E2E_KUBECONFIG set (e.g. kind), only the suite runs, against that cluster.
# Extra arguments go to pytest. Environment: K8S_CACHE, PYTHON (the venv's python).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export ACTORMESH_K8S_BIN="${K8S_CACHE:-}"
suite=("$PYTHON" -m pytest -p no:xdist -ra tests/e2e)

if [[ -n "${E2E_KUBECONFIG:-}" ]]; then
	exec "${suite[@]}" -m "e2e and not cluster_lifecycle" "$@"
fi

start=$(date +%s)
make --no-print-directory k8s-bin node-bin || exit $?
up_log="$(mktemp)"
trap 'rm -f "$up_log"' EXIT
status=0
# Whatever happens from here on, the cluster goes down.
trap 'make --no-print-directory cluster-down; rm -f "$up_log"' INT TERM
make --no-print-directory cluster-up | tee "$up_log"
status=${PIPESTATUS[0]}
up_done=$(date +%s)
if [[ $status -eq 0 ]]; then
	kubeconfig="$(tail -1 "$up_log" | sed -n 's/^export KUBECONFIG=//p')"
	E2E_KUBECONFIG="$kubeconfig" KUBECONFIG="$kubeconfig" "${suite[@]}" -m "e2e and not cluster_lifecycle" "$@"
	status=$?
fi
suite_done=$(date +%s)
down_status=0
make --no-print-directory cluster-down || down_status=$?
trap - INT TERM
# The teardown test needs the machine to itself: only once our cluster is really gone.
if [[ $down_status -eq 0 ]]; then
	"${suite[@]}" -m cluster_lifecycle || status=$((status ? status : 1))
else
	status=$((status ? status : down_status))
fi
echo "e2e: cluster-up $((up_done - start))s, suite $((suite_done - up_done))s," \
	"total $(($(date +%s) - start))s, exit $status"
exit $status
