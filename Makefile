# Two commands from a fresh clone: `make run` and `make test`; `make check` while you work.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check lint format clean bucket ops deploy destroy package policies

$(STAMP): requirements.txt requirements-dev.txt chalice-loop/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

## The per-function policy files in .chalice/, from config.json (the names) and
## infra/policies.json (the statements); only changed files are rewritten. test, run,
## deploy and package run it first (docs/configuration.md).
policies: $(STAMP)
	$(PY) -m devtools.deploy.policies

## Run the worker and the cleanup locally against an embedded S3.
run: $(STAMP) policies
	$(PY) -m devtools.run_local

## Local Lambda loop (docs/local-loop.md): embedded S3 on 127.0.0.1:4572 and the
## app's schedules firing until Ctrl-C; `make invoke NAME=worker < events/worker.json`.
.PHONY: up invoke
up: $(STAMP)
	$(VENV)/bin/chalice-loop up --stage $(or $(STAGE),dev) --lambda-settings infra/lambda_settings.json

invoke: $(STAMP)
	$(VENV)/bin/chalice-loop invoke $(NAME) --stage $(or $(STAGE),dev)

## Measure the cleanup and the worker on moto and on SeaweedFS (a real S3 server), beside
## s5cmd, aws s3 rm and boto3, also in Lambda's CPU slice at each memory size, and one
## scheduled cleanup run on 100,000 objects (BENCH_ARGS=--full: 1,000,000): bench/results.json,
## BENCHMARKS.md. Needs writable cgroups for the slice (else it says so); python -m bench --help.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## Deploy to AWS (docs/deploy.md). STAGE is a stage in .chalice/config.json.
STAGE ?= dev
CHALICE := $(VENV)/bin/chalice

## Path 1: create or update the stage's bucket stack (infra/bucket.json), and wait.
## RETENTION_DAYS=N sets the lifecycle backstop (kept from the last deploy if unset).
bucket: $(STAMP)
	$(PY) -m devtools.deploy.bucket_stack deploy --stage $(STAGE) $(if $(RETENTION_DAYS),--retention-days $(RETENTION_DAYS))

## Path 1: create or update the stage's ops stack (infra/ops.json: failure queue, alarm
## topic, alarms), and wait. ALARM_EMAIL=you@example.com subscribes an address.
ops: $(STAMP)
	$(PY) -m devtools.deploy.bucket_stack deploy --stack ops --stage $(STAGE) $(if $(ALARM_EMAIL),--alarm-email $(ALARM_EMAIL))

## Path 1: the bucket and ops stacks, chalice deploy (without stale bytecode in the
## zip), then the Lambda settings chalice cannot express (infra/lambda_settings.json).
deploy: policies bucket ops
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	PYTHONDONTWRITEBYTECODE=1 $(CHALICE) deploy --stage $(STAGE)
	$(PY) -m devtools.deploy.lambda_settings apply --stage $(STAGE)

## Path 1: refuse while the bucket holds objects or the failure queue holds failed runs;
## else chalice delete (its event invoke config goes with the cleanup), then both stacks.
destroy: $(STAMP)
	$(PY) -m devtools.deploy.bucket_stack check-empty --stage $(STAGE)
	$(CHALICE) delete --stage $(STAGE)
	$(PY) -m devtools.deploy.bucket_stack delete --stage $(STAGE)
	$(PY) -m devtools.deploy.bucket_stack delete --stack ops --stage $(STAGE)

## Path 2: one template with the bucket and ops stacks merged in: out/$(STAGE)/{sam.json,deployment.zip}.
package: $(STAMP) policies
	$(PY) -m devtools.deploy.package --stage $(STAGE)

## Lint, then every tier of both test suites on TEST_WORKERS parallel workers (what CI
## runs; docs/testing.md). TEST_WORKERS=0 runs them in this process, one after another.
## Four workers on two CPUs: while some wait out the timeouts the tests inject, the
## others use the CPU. The longest files go first (conftest.py), in that order.
## Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE):
## each worker and each process a test starts would otherwise compile and rewrite the
## same modules again; packaging copies the project without __pycache__ (devtools/deploy).
TEST_WORKERS ?= 4
PYTEST = PYTHONDONTWRITEBYTECODE= $(PY) -m pytest
test: $(STAMP) policies lint
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## While you work: lint, then the unit tiers (no server, no process) in seconds.
check: $(STAMP) lint
	$(PYTEST) -q -n 2 tests/unit chalice-loop/tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out .local
