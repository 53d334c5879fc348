# Everything a fresh machine needs, from Python 3.11+ and make alone.
# `make run` and `make test` set up .venv from the committed lock files first.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
# Some machines (containers, CI images) set PYTHONDONTWRITEBYTECODE; then every process
# the tests start (hypercorn, the CLI, pytest's workers) compiles quartapp and the test
# modules again, about half a second each. Python's default, a __pycache__, is kept.
unexport PYTHONDONTWRITEBYTECODE

VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install install-bench run test test-quick bench lint typecheck docs format lock clean

# Two stamps, two lock files. `make run` installs only what serves (requirements.txt,
# the set a PaaS buildpack reads too); `make test` and the other development targets add
# the tools on top (requirements-dev.txt pins the same runtime versions, so nothing is
# reinstalled). A stamp is rebuilt whenever its lock file changes, so `git pull && make
# test` picks up new pins without a manual step.
$(VENV)/.created:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed-run: $(VENV)/.created requirements.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.txt
	@touch $@

$(VENV)/.installed: $(VENV)/.created requirements-dev.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

# The bench's reference apps (Flask, gunicorn...) go into the same .venv, from their own
# lock file, so that requirements.txt stays the app's runtime set.
$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-bench.txt
	@touch $@

install-bench: $(VENV)/.installed-bench

# Browsers offer passkeys at localhost but never at 127.0.0.1, so the address to open is
# localhost's (hypercorn's own line names the address it binds).
run: $(VENV)/.installed-run
	@echo "quartapp: open http://$(if $(filter 127.0.0.1 0.0.0.0,$(HOST)),localhost,$(HOST)):$(PORT)/ (passkeys need localhost, not 127.0.0.1)"
	$(BIN)/python -m quartapp.serve --config hypercorn.toml --bind $(HOST):$(PORT) quartapp:app

# The bench group too: tests/app/test_bench.py runs the bench for a second. The browser
# tests leave screenshots of every page in test-artifacts/screenshots/. `make test-quick`
# is the edit loop: SQLite only, no real server or browser (`make test` runs them all).
# Both run on two pytest-xdist workers, each with its own PostgreSQL, PgBouncer, ports
# and temporary folders. --dist loadgroup keeps the tests marked
# xdist_group("timing") on one worker, one at a time (tests/conftest.py says which).
TEST_WORKERS ?= 2
test: install $(VENV)/.installed-bench
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# On both cores: these tests share no server or database, so two workers can't collide.
test-quick: install
	$(BIN)/python -m pytest -n 2 -m "not browser and not server and not postgres"

# Throughput and latency against the reference apps: `make bench BENCH_ARGS="--rounds 2
# --duration 5"`. Needs wrk (apt-get install wrk).
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench
	@command -v wrk >/dev/null 2>&1 || { echo "error: wrk is not installed: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

# ruff, then the import graph's contracts (.importlinter: layers, features apart).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# mypy --strict over quartapp/, bench/ and tests/ (settings in pyproject.toml). The bench
# group is installed too, because bench/apps imports Flask and its extensions.
typecheck: install $(VENV)/.installed-bench
	$(BIN)/mypy

# The documentation site (docs/, mkdocs.yml), built strictly: a broken link, a page
# missing from the nav or a bad anchor fails the build. Output in site/ (git-ignored).
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-pin after editing pyproject.toml. Needs uv (pip install uv); the result
# installs with plain pip. requirements.txt is the runtime set a PaaS buildpack reads.
lock:
	uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
		--no-emit-index-url --custom-compile-command "make lock" -o requirements.txt
	uv pip compile pyproject.toml --group dev --universal --generate-hashes --python-version 3.11 \
		--no-emit-index-url --custom-compile-command "make lock" -o requirements-dev.txt
	# Constrained by the dev pins so that installing it into .venv changes no version.
	uv pip compile pyproject.toml --group bench --universal --generate-hashes --python-version 3.11 \
		--no-emit-index-url --custom-compile-command "make lock" -c requirements-dev.txt \
		-o requirements-bench.txt

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts
