# One entry point per job. Every target sets up what it needs on a fresh machine.
#
# Every dependency is pinned, with hashes, in uv.lock. The only thing installed before the lock
# can be read is uv itself, from requirements/uv.txt (the lock's own export, hashes checked).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV      := $(BIN)/uv
LOCK_INPUTS := uv.lock pyproject.toml tools/pyproject.toml
STAMP   := $(VENV)/.installed-$(shell cat $(LOCK_INPUTS) | sha1sum | cut -c1-12)
STAGE   ?= dev
SCENARIO ?= answered
FUZZ_EXAMPLES ?= 2000
export UV_PYTHON_DOWNLOADS := never

.PHONY: all setup lock test fuzz lint typecheck demo bench synth deploy destroy clean

all: test

$(UV): requirements/uv.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $(UV)

$(STAMP): $(UV) $(LOCK_INPUTS)
	$(UV) sync --quiet --frozen --all-packages --all-extras --all-groups --python $(BIN)/python
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP) ## create .venv with every locked dependency (runtime, tools, infra, dev)

lock: $(UV) ## re-resolve uv.lock after editing a pyproject.toml, and refresh its exports
	$(UV) lock
	$(BIN)/python -m callflow_dev.lockfiles --write

test: $(STAMP) ## the whole test suite
	$(BIN)/pytest -q

fuzz: $(STAMP) ## a long schemathesis run over the API with valid credentials (FUZZ_EXAMPLES per route; make test runs 15)
	CALLFLOW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/integration/test_api_fuzz.py

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP) ## a whole call on the embedded default (moto + stand-ins); SCENARIO=answered|retry|busy|voicemail|invalid|interrupt|optout|reminder|callback|campaign
	$(BIN)/callflow demo --scenario $(SCENARIO)

bench: $(STAMP) bench/reference/node_modules/.installed ## benchmarks, one JSON line each
	$(BIN)/python -m bench

# The reference relay the bridge's CPU is compared with (bench/bridge_reference.py).
bench/reference/node_modules/.installed: bench/reference/package.json bench/reference/package-lock.json
	npm ci --prefix bench/reference --no-audit --no-fund --silent
	touch $@

infra/cdk/node_modules/.installed: infra/cdk/package.json infra/cdk/package-lock.json
	cd infra/cdk && npm ci --no-audit --no-fund --silent
	touch $@

synth: $(STAMP) infra/cdk/node_modules/.installed ## synthesize the CloudFormation template (offline, no Docker)
	cd infra/cdk && PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk synth --quiet -c stage=$(STAGE)

deploy: $(STAMP) infra/cdk/node_modules/.installed ## deploy to the AWS account in your environment
	cd infra/cdk && PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk deploy -c stage=$(STAGE) --require-approval broadening

destroy: $(STAMP) infra/cdk/node_modules/.installed
	cd infra/cdk && PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk destroy -c stage=$(STAGE)

clean:
	rm -rf $(VENV) infra/cdk/cdk.out infra/cdk/node_modules infra/cdk/.bundle .pytest_cache .mypy_cache .ruff_cache
