# Two commands do all the set-up on a fresh machine:
#   make demo   builds the virtualenv if needed, then runs the whole pipeline on the demo dataset
#   make test   builds the virtualenv if needed, lints (ruff, import layers, workflows), then runs the test suite
#   make app    builds the virtualenv if needed, then serves the web app (docs/app.md); APP_ARGS adds options
# VENV may point outside the clone (e.g. a CI cache keyed by the hash of requirements.txt).

VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.requirements.sha256
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test app lint clean-venv mutation

setup:
	@want=$$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
		echo "setting up $(VENV) from requirements.txt (a few minutes the first time)"; \
		[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || exit 1; \
		$(BIN)/python -m pip install --quiet --upgrade pip && \
		$(BIN)/python -m pip install --quiet -r requirements.txt && \
		PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . && \
		echo "$$want" > $(STAMP); \
	fi

demo: setup
	cxrldm check params.yaml
	dvc repro

test: setup lint
	python -m pytest

app: setup
	cxrldm app $(APP_ARGS)

lint: setup
	ruff check .
	ruff format --check .
	lint-imports
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	zizmor --offline --quiet .github/workflows

clean-venv:
	rm -rf $(VENV)

mutation: setup
	bash scripts/mutation.sh
