# tritonfil.eks — one entry point for setup, tools, lint, tests, the local environment and benchmarks.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(or $(TRITONFIL_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tritonfil)
SETUP_STAMP := $(VENV)/.setup-$(shell cat requirements/lock.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
export PATH := $(abspath $(BIN)):$(CACHE)/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help setup wheelhouse tools tools-required tools-local scanner lint test test-unit test-integration local local-up local-down local-status bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

setup: $(SETUP_STAMP) ## Python venv with pinned deps, tritonfil editable, the collection linked into it (safe to rerun)
	@# The package finds the collection as the Python package ansible_collections.tritonfil.eks (as an installed
	@# wheel has it): link site-packages/ansible_collections/tritonfil/eks to this checkout. .collections is the
	@# same link for ansible.cfg's collections_path.
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	link=$$site/ansible_collections/tritonfil/eks; \
	if [[ -e $$link && ! -L $$link ]]; then \
		echo "setup: $$link is a directory (an installed tritonfil wheel?): pip uninstall tritonfil, then rerun" >&2; \
		exit 1; \
	fi; \
	mkdir -p "$$(dirname "$$link")" .collections/ansible_collections/tritonfil; \
	ln -sfn "$(CURDIR)" "$$link"; \
	ln -sfn ../../.. .collections/ansible_collections/tritonfil/eks

$(SETUP_STAMP): requirements/lock.txt pyproject.toml
	@start=$$(date +%s); \
	[[ -x $(BIN)/python ]] || $(PYTHON) -m venv $(VENV); \
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/lock.txt; \
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .; \
	rm -f $(VENV)/.setup-*; touch $@; \
	echo "setup: done in $$(( $$(date +%s) - start ))s"

# The packaging tests build the wheel and install it into a fresh venv. As root they run in a loopback-only
# network namespace (tritonfil isolate) with no route to PyPI, so pip takes the build requirements and the wheel's
# dependencies (at the lock's versions) from this wheelhouse, downloaded here, outside the namespace.
WHEELHOUSE := $(CACHE)/wheelhouse
WHEELHOUSE_STAMP := $(WHEELHOUSE)/.stamp-$(shell cat requirements/lock.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)

wheelhouse: $(WHEELHOUSE_STAMP) ## The wheel's build requirements and dependencies from PyPI into the cache (packaging tests)

$(WHEELHOUSE_STAMP): requirements/lock.txt pyproject.toml | $(SETUP_STAMP)
	@start=$$(date +%s); \
	build_requires=$$($(BIN)/python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'); \
	$(BIN)/python -m pip download -q --disable-pip-version-check -d $(WHEELHOUSE) -c requirements/lock.txt . $$build_requires; \
	rm -f $(WHEELHOUSE)/.stamp-*; touch $@; \
	echo "wheelhouse: $(WHEELHOUSE) in $$(( $$(date +%s) - start ))s"

tools: ## Build the pinned binaries (kubernetes, etcd, kwok, metrics-server, helm, eksctl, istioctl, prometheus, karpenter, keda) into the cache
	scripts/tools.sh

tools-required: ## What the local environment, site.yml and the tests need (all of them: the istio role runs istioctl)
	scripts/tools.sh debian kubernetes etcd kwok metrics-server helm eksctl istioctl prometheus karpenter keda

# What `make local` needs: all but eksctl. Locally eks_gpu_cluster runs tritonfil-eksctl-sim (inventory/local/emulator.yml:
# eks_gpu_cluster_eksctl_path); the real eksctl (~11 min to build) only checks rendered ClusterConfigs in the tests,
# which tools-required builds. istioctl stays: the istio role renders Istio's manifest with it, locally too.
LOCAL_TOOLS := debian kubernetes etcd kwok metrics-server helm istioctl prometheus karpenter keda

tools-local: ## What `make local` needs (tools-required without eksctl)
	scripts/tools.sh $(LOCAL_TOOLS)

lint: setup ## ruff, yamllint, ansible-lint (production), helm lint, antsibull-changelog lint, ansible-test sanity
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	@if [[ -d helm/triton ]]; then scripts/tools.sh helm >/dev/null && helm lint --strict helm/triton && helm lint --strict -f helm/triton/ci/default-values.yaml helm/triton; fi
	$(BIN)/antsibull-changelog lint
	scripts/sanity.sh

scanner: ## The security scanner of the tests (checkov from PyPI, requirements/checkov.txt) in its own venv in the cache
	scripts/scanner.sh

test: lint tools-required wheelhouse scanner ## The test command: lint, the pinned tools, the wheelhouse and the scanner (cached), then every pytest suite
	scripts/run-pytest.sh tests

test-unit: setup wheelhouse scanner ## Unit tests only
	scripts/run-pytest.sh tests/unit

lock: ## Re-resolve requirements/base.in into requirements/lock.txt
	rm -rf /tmp/tritonfil-lock && $(PYTHON) -m venv /tmp/tritonfil-lock
	/tmp/tritonfil-lock/bin/pip install -q -r requirements/base.in
	{ sed -n '1,2p' requirements/lock.txt; /tmp/tritonfil-lock/bin/pip freeze; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

# The Python setup (downloads and unpacking, mostly I/O) runs while the Go builds (CPU) start: tools.sh in the
# background, its lines prefixed [tools]. The Go builds stay one after another: each `go build` already uses both
# cores, and a later build reuses the packages an earlier one compiled (docs/development.md).
# Through a variable, not $(MAKE) itself: `make -n local` then prints these recipes instead of running them.
SUBMAKE = $(MAKE) --no-print-directory

local-up: ## Start the local environment (the Python setup and the missing tools first, at the same time)
	@start=$$(date +%s); \
	scripts/tools.sh $(LOCAL_TOOLS) & tools=$$!; \
	if ! $(SUBMAKE) setup; then echo "local-up: setup failed; waiting for scripts/tools.sh to finish" >&2; wait $$tools || true; exit 1; fi; \
	wait $$tools || { echo "local-up: scripts/tools.sh failed (its lines above say which tool)" >&2; exit 1; }; \
	ready=$$(date +%s); \
	$(BIN)/tritonfil local up; \
	end=$$(date +%s); \
	echo "local-up: setup and tools $$((ready - start))s, environment $$((end - ready))s"

local-down: ## Stop everything the local environment started
	@if [[ -x $(BIN)/tritonfil ]]; then $(BIN)/tritonfil local down; else echo "nothing to stop (no venv)"; fi

local-status: setup ## Health of each local component
	$(BIN)/tritonfil local status

local: ## From a fresh clone: set up, build tools, start the local environment, run site.yml against it
	@# As root `local exec` runs the playbook inside the environment's network namespace (`tritonfil`), with its
	@# KUBECONFIG, AWS endpoint variables and the pinned tools on PATH. The last task prints the inference report.
	@start=$$(date +%s); \
	$(SUBMAKE) local-up; \
	up=$$(date +%s); \
	ANSIBLE_DISPLAY_SKIPPED_HOSTS=false $(BIN)/tritonfil local exec -- ansible-playbook site.yml -i inventory/local; \
	end=$$(date +%s); \
	echo "make local: done in $$(( (end - start) / 60 ))m$$(( (end - start) % 60 ))s (local-up $$((up - start))s, site.yml $$((end - up))s)"

BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements/bench.txt 2>/dev/null | sha256sum | cut -c1-16)
BENCH_ARGS ?=

$(BENCH_STAMP): requirements/bench.txt $(SETUP_STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/bench.txt
	rm -f $(VENV)/.bench-*; touch $@

bench: setup tools-required $(BENCH_STAMP) ## Benchmarks (bench/README.md): bench/results/*.json + *.png; BENCH_ARGS="--quick --only infer"
	$(BIN)/tritonfil isolate -- $(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean: local-down ## Remove the venv and build outputs (the tool cache outside the repo stays)
	rm -rf $(VENV) .collections .ansible .ruff_cache .pytest_cache tests/output *.tar.gz
