# ActorMesh developer entry points. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
K8S_VERSION ?= v1.34.4
ETCD_VERSION ?= v3.6.16
K8S_CACHE ?= $(HOME)/.cache/actormesh/k8s-$(K8S_VERSION)-etcd-$(ETCD_VERSION)
PYTEST_WORKERS ?= 2

.PHONY: help run test test-unit lint fmt venv k8s-bin tools-bin k8s-up k8s-down crds images images-tar clean
.PHONY: node-bin cluster-up cluster-down e2e go-modules

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## List the targets with what each does (the first `##` line above each target).
help:
	@awk '/^## / { if (doc == "") doc = substr($$0, 4); next } \
	      /^\.PHONY/ { next } \
	      /^[a-zA-Z0-9_-]+:/ { if (doc != "") { split($$0, t, ":"); printf "  %-14s %s\n", t[1], doc } } \
	      { doc = "" }' $(MAKEFILE_LIST)

## The Python environment in .venv (runtime, operator and dev extras), reinstalled when pyproject changes.
venv: $(STAMP)

## The main job: the whole mesh on this machine, on embedded defaults; prints the chat URL.
run: $(STAMP)
	$(BIN)/actormesh dev

## Everything CI runs: lint, unit, integration (real nats-server, redis-server, kube-apiserver), browser.
test: $(STAMP) k8s-bin tools-bin
	$(MAKE) lint
	ACTORMESH_K8S_BIN=$(K8S_CACHE) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -ra $(PYTEST_ARGS)

## Unit tests only: no sockets, no cluster, seconds.
test-unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) tests/unit -ra

## Benchmark (not a test): the mesh in rules mode next to a bare JetStream relay chain; see bench/README.md.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench $(or $(BENCH_OUT),.actormesh/bench/results.json) $(BENCH_ARGS)

## Operator benchmark (not a test): the operator on the test control plane, 1/10/50 meshes; bench/operator_bench/README.md.
.PHONY: bench-operator
bench-operator: $(STAMP) k8s-bin
	ACTORMESH_K8S_BIN=$(K8S_CACHE) $(BIN)/python -m bench.operator_bench \
	  $(or $(BENCH_OPERATOR_OUT),.actormesh/bench/operator.json) $(BENCH_OPERATOR_ARGS)

## Chaos soak (not a test): SOAK_N conversations on the real multi-process layout while processes are killed.
## CI runs a short seeded one as tests/integration/test_soak.py; docs/reliability.md.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m soak

## Manifest policy: checkov over the operator's rendered children of every sample and over the installs
## config/ builds (kustomize overlays, built with the test control plane's kubectl). checkov lives in its
## own venv (its pins would fight ours); skips and their reasons: hack/policy/checkov.yaml.
POLICY_VENV ?= .venv-policy
CHECKOV_VERSION ?= 3.3.30
POLICY_OVERLAYS ?= default namespaced e2e policies
# Two makes may race here (pytest-xdist runs both policy tests at once): one holds the lock and builds the
# venv, the other waits and then finds the marker. (Built in place: a venv cannot be moved.)
$(POLICY_VENV)/.installed:
	flock $(POLICY_VENV).lock sh -ec 'test -f $@ && exit 0; rm -rf $(POLICY_VENV); \
	  $(PYTHON) -m venv $(POLICY_VENV); $(POLICY_VENV)/bin/pip install -q "checkov==$(CHECKOV_VERSION)"; touch $@'

## Manifest policy: checkov over every sample's rendered children and the config/ installs (hack/policy/).
.PHONY: policy
policy: $(STAMP) $(POLICY_VENV)/.installed k8s-bin
	rm -rf .actormesh/policy
	$(BIN)/python hack/policy/render_samples.py .actormesh/policy/rendered
	mkdir -p .actormesh/policy/config
	set -e; for overlay in $(POLICY_OVERLAYS); do \
	  $(K8S_CACHE)/kubectl kustomize config/$$overlay > .actormesh/policy/config/$$overlay.yaml; done
	$(POLICY_VENV)/bin/checkov --config-file hack/policy/checkov.yaml -d .actormesh/policy/rendered
	$(POLICY_VENV)/bin/checkov --config-file hack/policy/checkov.yaml -d .actormesh/policy/config

## ruff, ruff format --check, mypy, and lint-imports (the layering contracts in .importlinter).
lint: $(STAMP)
	$(BIN)/ruff check runtime operator tests bench soak
	$(BIN)/ruff format --check runtime operator tests bench soak
	$(BIN)/mypy
	$(BIN)/mypy bench soak
	$(BIN)/lint-imports

## Format and autofix with ruff.
fmt: $(STAMP)
	$(BIN)/ruff format runtime operator tests bench soak
	$(BIN)/ruff check --fix runtime operator tests bench soak

## Go-built control plane (kube-apiserver, kube-controller-manager, kubectl, etcd), cached by version.
k8s-bin:
	@K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) K8S_CACHE=$(K8S_CACHE) hack/k8s/build.sh

## promtool (alert rule tests) and helm (chart tests), built from their Go modules, cached by version.
tools-bin:
	@hack/tools/build.sh promtool >/dev/null
	@hack/tools/build.sh helm >/dev/null

## Download only the modules cold k8s-bin/tools-bin/node-bin builds need (.ci/run: in the background).
go-modules:
	@K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) K8S_CACHE=$(K8S_CACHE) hack/k8s/build.sh download
	@hack/tools/build.sh promtool download
	@hack/tools/build.sh helm download
	@K8S_VERSION=$(K8S_VERSION) hack/node/build.sh download

## Start the test control plane (etcd, kube-apiserver, kube-controller-manager) in the background.
k8s-up: $(STAMP) k8s-bin
	@ACTORMESH_K8S_BIN=$(K8S_CACHE) $(BIN)/python -m tests.harness.controlplane up

## Stop the test control plane and remove its state.
k8s-down: $(STAMP)
	@$(BIN)/python -m tests.harness.controlplane down

## The sealed test node's binaries (kubelet, containerd, CNI, CoreDNS, ...), cached outside the repo.
## All of them: kubelet, scheduler, kube-proxy, containerd, runc, CNI, crictl, CoreDNS, kube-router, pause;
## cached by version + content stamp (docs/e2e.md).
node-bin:
	@K8S_VERSION=$(K8S_VERSION) hack/node/build.sh

## A sealed single-node cluster on this machine (root); prints `export KUBECONFIG=...` last.
cluster-up: $(STAMP) k8s-bin node-bin images-tar
	@ACTORMESH_K8S_BIN=$(K8S_CACHE) $(BIN)/python -m tests.harness.cluster up

## Removes exactly what cluster-up made, even after a crash; a second call is a no-op.
cluster-down: $(STAMP)
	@ACTORMESH_K8S_BIN=$(K8S_CACHE) $(BIN)/python -m tests.harness.cluster down

## The e2e suite on a fresh sealed cluster (always torn down), then the teardown test (docs/e2e.md).
## With E2E_KUBECONFIG set, only the suite runs, against that cluster (e.g. kind).
e2e: $(STAMP)
	@K8S_CACHE=$(K8S_CACHE) PYTHON=$(BIN)/python hack/e2e.sh $(E2E_ARGS)

## Regenerate crds/ (and the Helm chart's copy) from the pydantic model (a unit test fails when they drift).
crds: $(STAMP)
	$(BIN)/python -m actormesh_operator.api.schema > crds/.generated.tmp
	mv crds/.generated.tmp crds/actormesh.io_actormeshes.yaml
	cp crds/actormesh.io_actormeshes.yaml charts/actormesh-operator/crds/actormesh.io_actormeshes.yaml

## Runtime and operator images with no registry: a debootstrap base, then both Dockerfiles (docs/images.md).
## Needs root, a running Docker Engine and PyPI; manual, not part of CI.
images:
	@hack/images/build.sh

## The same images as docker-archive tars + images.txt, for a node without a registry (the e2e cluster).
## In $(ACTORMESH_IMAGES_DIR) (default ~/.cache/actormesh/images/e2e). Installs docker.io/debootstrap if
## missing, starts and stops its own dockerd; instant when no input changed (docs/images.md).
images-tar:
	@hack/images/tar.sh

## Remove the venv and the lint/test caches.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
