# Two commands on a fresh machine: `make demo` (the month's roll-up on the sample data) and
# `make test`. Both create .venv and install the pinned dependencies first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
FIRST ?= 2022-08
LAST ?= 2025-12

.PHONY: demo test install sample clean-demo

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# The sample inbox is generated once (deterministic from its seed) and then reused.
data/inbox/.sample-complete: | $(STAMP)
	$(BIN)/shegong sample --inbox data/inbox --from $(FIRST) --to $(LAST)

sample: data/inbox/.sample-complete

demo: $(STAMP) data/inbox/.sample-complete
	$(BIN)/shegong keygen
	$(BIN)/shegong run --from $(FIRST) --to $(LAST)
	@echo
	$(BIN)/shegong show --period $(FIRST)
	@echo
	$(BIN)/shegong show --period $(LAST)

test: $(STAMP)
	$(BIN)/python -m pytest

clean-demo:
	rm -rf data/inbox data/warehouse.duckdb data/warehouse.duckdb.lock
