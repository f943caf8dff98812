# The few commands the README names. Everything installed lives outside the clone, under
# $(CACHE), keyed by what determines it, so a fresh clone works and a second run is fast.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/modeljob
PYTHON ?= python3
LOCK := requirements/dev.lock
# The venv is keyed by the lock and the interpreter: a changed lock builds a new one.
VENV_KEY := $(shell cat $(LOCK) 2>/dev/null | cat - <($(PYTHON) -VV) | sha256sum | cut -c1-12)
VENV := $(CACHE)/venv-$(VENV_KEY)
PY := $(VENV)/bin/python
export MODELJOB_CACHE := $(CACHE)

.PHONY: help venv lint test test-unit test-e2e demo cluster cluster-down kind-cluster bench chaos crd lock image kind-load

help:
	@echo "make demo        local control plane + operator + example jobs"
	@echo "make test        lint, types, import contracts and every test (what CI runs)"
	@echo "make cluster     start the local control plane (builds it the first time)"
	@echo "make cluster-down  stop it"
	@echo "make bench       benchmarks; results go to docs/benchmarks.md"
	@echo "make chaos       the chaos soak (30-60 min); results go to docs/reliability.md"
	@echo "make crd         regenerate crds/ from the pydantic models"

# No prerequisite on purpose: the venv's name already hashes the lock, and a fresh clone's files
# are newer than any existing venv, so a timestamp rule would rebuild it on every clone.
$(VENV)/.ok:
	@echo "==> creating $(VENV)"
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	touch $@

# The project itself is installed editable into the shared venv, pointing at *this* clone:
# reinstall whenever the venv points elsewhere (another clone used it last).
venv: $(VENV)/.ok
	@if [ "$$($(PY) -c 'import modeljob,os;print(os.path.dirname(os.path.dirname(modeljob.__file__)))' 2>/dev/null)" != "$(CURDIR)/operator" ]; then \
	  $(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e . ; fi

lint: venv
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

test: lint
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest -m "not e2e"

test-e2e: venv
	$(PY) -m pytest -m e2e

# The CRD and the chart's generated files (CRD template, values schema, settings block) come
# from the same models: regenerate both together.
crd: venv
	$(PY) -m modeljob crd --output crds/modeljob.dev_modeljobs.yaml
	$(PY) -m modeljob crd --kind queue --output crds/modeljob.dev_queues.yaml
	$(PY) -m modeljob.api.chart_values
	$(PY) -m modeljob.settings docs/settings.md

# The image (needs a Docker engine; our CI machines have none, so `make test` lints the
# Dockerfile with hadolint instead). kind-load puts it into the kind cluster of `make kind-cluster`.
IMAGE ?= modeljob-operator:dev
image:
	docker build -t $(IMAGE) .

kind-load: image
	kind load docker-image $(IMAGE) --name modeljob

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --output-file $(LOCK) --quiet
	$(PYTHON) -m uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --output-file requirements/runtime.lock --quiet

# --- local control plane (hack/control-plane; see docs/local-control-plane.md) ----------------
cluster: venv
	hack/control-plane/up.sh
	$(PY) -m modeljob nodes apply --preset mixed --wait 60 --kubeconfig $(CACHE)/cluster/kubeconfig

cluster-down:
	hack/control-plane/down.sh

# For users with Docker: a kind cluster whose nodes advertise fake GPUs (cannot run here).
kind-cluster:
	hack/kind-gpu-nodes.sh

demo: cluster
	hack/demo.sh "$(PY)"

# --- benchmarks: each writes its section of docs/benchmarks.md ----------------------------------
bench: venv
	$(PY) bench/simulate.py
	$(PY) bench/operator_throughput.py
	$(PY) bench/deep_queue.py
	$(PY) bench/failover.py
	$(PY) bench/extender.py
	bench/cluster.sh "$(PY)"
	$(PY) bench/deep_queue_cluster.py

# --- the chaos soak: not part of `make test` (it runs for most of an hour) ------------------------
# Leader and standby kills, kube-apiserver and etcd restarts and node flaps under a stream of
# ModelJobs, on a control plane of its own; rewrites docs/reliability.md. CHAOS_FLAGS: e.g. --seed 3.
CHAOS_FLAGS ?=
chaos: venv
	$(PY) -m bench.chaos $(CHAOS_FLAGS)
