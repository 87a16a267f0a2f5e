# One entry point per job. Every target sets up what it needs on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
STAGE   ?= dev
SCENARIO ?= answered

.PHONY: all setup test lint typecheck demo bench synth deploy destroy clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[bridge,local,infra,dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP) ## create .venv with every pinned dependency

test: $(STAMP) ## the whole test suite
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP) ## a whole call on the embedded default (moto + stand-ins); SCENARIO=answered|retry|busy|voicemail|invalid|interrupt
	$(BIN)/callflow demo --scenario $(SCENARIO)

bench: $(STAMP) ## benchmarks, one JSON line each
	$(BIN)/python -m bench

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
	rm -rf $(VENV) infra/cdk/cdk.out infra/cdk/node_modules .pytest_cache .mypy_cache .ruff_cache
