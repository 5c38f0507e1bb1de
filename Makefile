# vtpose: `make run` trains on the bundled sample data; `make test` runs the whole suite.
# Both install what is missing (a .venv pinned by constraints.txt) and get data/ first (`make data`: dvc pull, or
# without the remote a rebuild from its public originals).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/training.yaml
DEPLOYMENT_CONFIG ?= configs/deployment.yaml
TORCH := torch==2.14.1 torchvision==0.29.1

# No usage reporting, no browser popping up, nothing fetched at run time.
export ZENML_ANALYTICS_OPT_IN := false
export ZENML_AUTO_OPEN_DASHBOARD := false
export ZENML_ENABLE_RICH_TRACEBACK := false
export YOLO_OFFLINE := 1
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1
export MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING := false

.PHONY: help install data zenml-init dashboard stack run run-merged test lint mlflow-ui serve clean-runtime

help:  ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs when the pins or the project's metadata change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## Create .venv with the pinned dependencies

# `dvc pull` from the configured remote first (what DVC users and CI expect). Where that remote cannot be reached
# (a clone without ../shared), data/ is rebuilt from its public originals pinned in datasources/ (the same bytes,
# the same `dvc status`), with one line saying so; a complete data/ is left as it is.
data: install  ## Pull data/ from the DVC remote, or rebuild it from its public originals (datasources/)
	$(BIN)/dvc config core.analytics false
	$(BIN)/dvc pull -q || $(BIN)/vtpose data rebuild --after-failed-pull

zenml-init: install
	@test -d .zen || $(BIN)/zenml init >/dev/null

dashboard: zenml-init  ## Start the local ZenML server and dashboard on http://127.0.0.1:8237
	$(BIN)/zenml login --local

stack: dashboard  ## Register and activate the local stack with the MLflow experiment tracker
	bash scripts/setup_stack.sh

# After a promotion the deployment pipeline serves the new version (checked before it replaces what was serving);
# after a rejection the served service stays as it was, and the summary's last line says what serves.
run: data stack  ## Run the training pipeline (CONFIG=configs/training.yaml), deploy a promoted version, print the summary
	$(BIN)/vtpose pipeline check $(CONFIG)
	$(BIN)/zenml pipeline run training_pipeline -c $(CONFIG)
	if $(BIN)/vtpose pipeline promoted; then $(BIN)/zenml pipeline run deployment_pipeline -c $(DEPLOYMENT_CONFIG); fi
	$(BIN)/vtpose pipeline summary

run-merged:  ## Train on the COCO and MPII samples merged (data.sources), evaluated per source: make run CONFIG=configs/merged.yaml
	$(MAKE) run CONFIG=configs/merged.yaml

test: data browser  ## Run the whole test suite (isolated ZenML store, real MLflow, real data, headless Chromium)
	$(BIN)/python -m pytest

.PHONY: test-quick
test-quick: data  ## The suite without the tests marked slow (pipelines, training, exports, servers, the browser): minutes
	$(BIN)/python -m pytest -m "not slow"

lint: install  ## ruff check and format check, then mypy over the library (files in pyproject's [tool.mypy])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

mlflow-ui:  ## Open the MLflow UI of the active stack on http://127.0.0.1:5000
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri "$$($(BIN)/vtpose pipeline summary --mlflow-uri)"

# What runs is what `vtpose model which` names (vtpose.serving.what_runs): the production version's Bento, else the
# pretrained checkpoint's (packaged on first use); never pose-service:latest, never a rejected candidate. The
# deployment pipeline serves it (nothing changes when it already serves), then `attach` follows the service's log;
# Ctrl-C stops following, `.venv/bin/vtpose deployment stop` stops the service.
serve: data stack  ## Deploy what runs (the production version, else the pretrained checkpoint) on http://127.0.0.1:3000 and follow its log
	$(BIN)/zenml pipeline run deployment_pipeline -c $(DEPLOYMENT_CONFIG)
	$(BIN)/vtpose deployment attach

INFERENCE_CONFIG ?= configs/inference.yaml
.PHONY: inference
inference: data stack  ## Run the inference pipeline (INFERENCE_CONFIG=configs/inference.yaml: the bundled media through what runs)
	$(BIN)/zenml pipeline run inference_pipeline -c $(INFERENCE_CONFIG)

# --- containers and Kubernetes (issue 5) ---
# `make run-containers`: the training pipeline with every step in its own container (ZenML's local Docker
# orchestrator on podman's Docker API), images built by ZenML from docker/; `make stack-k8s`: the Kubernetes
# stack of configs/stacks/kubernetes.yaml. The README section "Containers and Kubernetes" explains both.
CONTAINERS_CONFIG ?= configs/containers.yaml
CONTAINERS_STACK := vtpose-containers
PODMAN_SH := bash scripts/containers/podman.sh
SOURCES_SH := bash scripts/containers/sources.sh
.PHONY: podman containers-base containers-stack containers-images run-containers test-containers stack-k8s

podman:  ## Install podman (apt), write .runtime/podman/containers.conf, start its Docker API socket
	$(PODMAN_SH) install
	$(PODMAN_SH) conf >/dev/null
	$(PODMAN_SH) start >/dev/null

containers-base: podman install  ## The registry-free base image: debootstrap + this machine's Python 3.11
	$(PODMAN_SH) base-image

# Every wheel the images install, pinned, fetched once from the host's pip indexes (no download in a build).
.runtime/containers/wheels/.complete: constraints.txt docker/requirements.txt | $(VENV)/.installed
	$(SOURCES_SH) wheels
	touch $@

containers-stack: stack  ## Register the container stack (local Docker orchestrator, same store and tracker)
	bash scripts/containers/stack.sh

containers-images: containers-base containers-stack .runtime/containers/wheels/.complete  ## Build the step images
	$(SOURCES_SH) start >/dev/null
	eval "$$($(PODMAN_SH) env)"; trap '$(SOURCES_SH) stop' EXIT; \
	  $(BIN)/zenml pipeline build pipelines.training_pipeline -c $(CONTAINERS_CONFIG) --stack $(CONTAINERS_STACK)

run-containers: containers-base containers-stack .runtime/containers/wheels/.complete  ## Run the training pipeline, every step in its own container
	$(SOURCES_SH) start >/dev/null
	eval "$$($(PODMAN_SH) env)"; trap '$(SOURCES_SH) stop' EXIT; \
	  $(BIN)/zenml pipeline run pipelines.training_pipeline -c $(CONTAINERS_CONFIG) --stack $(CONTAINERS_STACK)
	$(BIN)/vtpose pipeline summary

INFERENCE_CONTAINERS_CONFIG ?= configs/inference_containers.yaml
.PHONY: run-inference-containers
run-inference-containers: containers-base containers-stack .runtime/containers/wheels/.complete  ## The inference pipeline, every step (and each shard) in its own container
	$(SOURCES_SH) start >/dev/null
	eval "$$($(PODMAN_SH) env)"; trap '$(SOURCES_SH) stop' EXIT; \
	  $(BIN)/zenml pipeline run pipelines.inference_pipeline -c $(INFERENCE_CONTAINERS_CONFIG) --stack $(CONTAINERS_STACK)

test-containers: containers-base containers-stack .runtime/containers/wheels/.complete  ## The container run's test (minutes; not in `make test`)
	$(SOURCES_SH) start >/dev/null
	eval "$$($(PODMAN_SH) env)"; trap '$(SOURCES_SH) stop' EXIT; \
	  VTPOSE_CONTAINER_TESTS=1 $(BIN)/python -m pytest tests/test_containers.py

stack-k8s: install  ## Register the Kubernetes stack (configs/stacks/kubernetes.yaml; see the README, "Containers and Kubernetes")
	bash scripts/containers/stack_k8s.sh

# --- the live studio (issue 8) ---
# `make studio` deploys what runs, as `make serve` does (the pretrained checkpoint's Bento, INT8, packaged first
# when nothing is in production), and names its page /studio; `make browser` installs Debian's chromium, which the
# studio's browser tests drive through Playwright.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: browser studio

browser:  ## Install Debian's chromium (apt-get) for the studio's browser tests; quiet when present
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The prepared 3D avatars are generated from the 2D YAML avatars; the files are checked in (a test regenerates and
# compares them byte for byte), so run this after changing an avatar's YAML or the generator.
.PHONY: vrms
vrms: install  ## Regenerate the prepared VRM 1.0 avatars (vtpose/studio/avatar/assets/vrm/) from the YAML avatars
	$(BIN)/python -m vtpose.studio.avatar3d.generate

studio: data stack  ## The live studio on http://127.0.0.1:3000/studio (camera -> avatar in the browser; OBS output view)
	$(BIN)/zenml pipeline run deployment_pipeline -c $(DEPLOYMENT_CONFIG)
	@echo "studio: open http://127.0.0.1:3000/studio (frames stay on this machine)"
	$(BIN)/vtpose deployment attach --path /studio
