# Two commands matter: `make demo` and `make test`. Both build the virtual environment first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Azurite (the Azure Storage emulator) for the state-store tests: tools/package.json, not deployed.
NPM_STAMP := tools/node_modules/.installed
# checkov (the security scan of infra/) in a virtual environment of its own: requirements-infra.txt.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed

.PHONY: demo test lint typecheck unit fuzz bench references soak clean
.PHONY: infra

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

$(NPM_STAMP): tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js 20 (the state-store tests start Azurite from tools/)" >&2; exit 2; }
	cd tools && npm ci --no-audit --no-fund
	@touch $(NPM_STAMP)

$(INFRA_STAMP): requirements-infra.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'" >&2; exit 2; }
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $(INFRA_STAMP)

demo: $(STAMP)
	$(BIN)/python -m diagnostics demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Under make (and in CI) the Azurite and checkov tests must run: =required fails them, not skips.
unit: $(STAMP) $(NPM_STAMP) $(INFRA_STAMP)
	DIAG_TEST_AZURITE=required DIAG_TEST_CHECKOV=required $(BIN)/python -m pytest

# The checks of infra/ alone (Bicep parsed offline, settings and roles, checkov): a few seconds.
infra: $(STAMP) $(INFRA_STAMP)
	DIAG_TEST_CHECKOV=required $(BIN)/python -m pytest tests/infra

test: lint typecheck unit

# The fuzz tests with many more examples than `make test` gives them (tests/conftest.py); `make test` draws the same few examples every run.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The account matcher on the shipped labelled cases: top-1, auto-fix precision and recall.
references: $(STAMP)
	$(BIN)/python -m diagnostics references evaluate data/reference-cases.jsonl

# The long soak (tests/soak): 2,000 generated customers followed for a simulated month, fault free
# and with 20% faults and 50% duplicate deliveries; `make test` runs it with 150 customers for 6 days.
SOAK_CUSTOMERS ?= 2000
SOAK_DAYS ?= 30
soak: $(STAMP)
	DIAG_SOAK_CUSTOMERS=$(SOAK_CUSTOMERS) DIAG_SOAK_DAYS=$(SOAK_DAYS) $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/soak

clean:
	rm -rf $(VENV) $(INFRA_VENV) .pytest_cache .mypy_cache .ruff_cache tools/node_modules
