# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean bucket deploy destroy package

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

## Run the worker and the cleanup locally against an embedded S3.
run: $(STAMP)
	$(PY) -m devtools.run_local

## Local Lambda loop (README "Local Lambda loop"): embedded S3 on 127.0.0.1:4572 and the
## app's schedules firing until Ctrl-C; `make invoke NAME=worker < events/worker.json`.
.PHONY: up invoke
up: $(STAMP)
	$(PY) -m devtools up --stage $(or $(STAGE),dev)

invoke: $(STAMP)
	$(PY) -m devtools invoke $(NAME) --stage $(or $(STAGE),dev)

## Measure the cleanup and the worker, also in Lambda's CPU slice at each memory size, and
## one scheduled cleanup run on 100,000 objects: bench/results.json, BENCHMARKS.md.
## Needs writable cgroups for the slice (else it says so); python -m bench --help lists flags.
.PHONY: bench
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## Deploy to AWS (README "Deploy to AWS"). STAGE is a stage in .chalice/config.json.
STAGE ?= dev
CHALICE := $(VENV)/bin/chalice

## Path 1: create or update the stage's bucket stack (infra/bucket.json), and wait.
bucket: $(STAMP)
	$(PY) -m devtools.bucket_stack deploy --stage $(STAGE)

## Path 1: the bucket stack, then chalice deploy (without stale bytecode in the zip).
deploy: bucket
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	PYTHONDONTWRITEBYTECODE=1 $(CHALICE) deploy --stage $(STAGE)

## Path 1: refuse while the bucket holds objects; else chalice delete, then the bucket stack.
destroy: $(STAMP)
	$(PY) -m devtools.bucket_stack check-empty --stage $(STAGE)
	$(CHALICE) delete --stage $(STAGE)
	$(PY) -m devtools.bucket_stack delete --stage $(STAGE)

## Path 2: one template with the bucket merged in: out/$(STAGE)/{sam.json,deployment.zip}.
package: $(STAMP)
	$(PY) -m devtools.package --stage $(STAGE)

## Lint, then the whole test suite (what CI runs).
test: $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out .local
