# Two commands on a fresh machine: `make demo` (the month's roll-up on the sample data) and
# `make test`. Both create .venv and install the pinned dependencies first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml datadocs-assets.toml | cksum | cut -d' ' -f1)
FIRST ?= 2022-08
LAST ?= 2025-12

# What the tests need beyond the Python packages: the oldest DuckDB release the warehouse promises
# to open (data/settings.toml warehouse.storage_version), to prove it does, and Debian's Chromium
# with a Chinese font, to render the HTML report headless. apt needs root (or sudo).
OLD_DUCKDB := 1.1.0
TOOLS := .tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The lock is installed with uv (its version pinned in the lock too): 15-20 s where pip takes
# 80-150 s, on 2 cores, with byte-compiled modules as pip leaves them. uv reads neither pip's
# configuration nor its index settings: where it cannot reach the registry, pip installs the
# same lock instead.
UV := $(shell grep '^uv==' requirements.lock)
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install sample clean-demo browser bench

install: $(STAMP)

# The Data Docs pages' scripts, styles and fonts are npm packages pinned in datadocs-assets.toml
# (version and SHA-512), fetched from the npm registry into the environment (flows/validate/vendor.py).
$(STAMP): requirements.lock pyproject.toml datadocs-assets.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)
	$(UV_INSTALL) -r requirements.lock || $(PIP_INSTALL) -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m flows.validate.vendor
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

$(TOOLS)/duckdb-$(OLD_DUCKDB)/.installed: | $(STAMP)
	$(UV_INSTALL) --no-deps --target $(TOOLS)/duckdb-$(OLD_DUCKDB) duckdb==$(OLD_DUCKDB) || \
	  $(PIP_INSTALL) --no-deps --target $(TOOLS)/duckdb-$(OLD_DUCKDB) duckdb==$(OLD_DUCKDB)
	touch $@

browser:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

# Two pytest workers, a test file each at a time (its module fixtures shared): most tests wait on
# subprocesses, servers and DuckDB, so two cores finish the suite in about half the time.
TEST_WORKERS ?= 2
test: $(STAMP) $(TOOLS)/duckdb-$(OLD_DUCKDB)/.installed browser
	OLD_DUCKDB_PATH=$(TOOLS)/duckdb-$(OLD_DUCKDB) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

clean-demo:
	rm -rf data/inbox data/warehouse.duckdb data/warehouse.duckdb.lock

# A month at city and province scale: ours (the flow, `shegong run` as a user runs it, a 1 %-late
# rerun, a backfill), the read floor, a pandas read loop and the plain pandas baseline, with wall
# time, files/s, rows/s, peak memory, the ratios and issue 17's targets (README, Performance). Not
# a test: BENCH_SCALE=tiny proves it works; BENCH_ARGS="--task-runner dask" runs it on Dask.
BENCH_SCALE ?= city,province
bench: $(STAMP)
	$(BIN)/python -m flows.tools.bench --scale $(BENCH_SCALE) $(BENCH_ARGS)
