# Two commands on a fresh machine: `make run` (the main job) and `make test` (lint + tests).
# Both create .venv from requirements.lock (exact versions) when it is missing or stale.
PYTHON ?= python3
# pytest-xdist workers of `make test` (each takes whole test modules, so module fixtures are
# built once); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-lock

.PHONY: run test lint format theory bench sweep lock clean-venv

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	cp requirements.lock $(STAMP)

run: $(STAMP)
	$(BIN)/python -m cliffjax.experiments.train $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

theory: $(STAMP)
	$(BIN)/python -m cliffjax.theory_checks $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the lock from pyproject ranges (run by a maintainer, not by CI). The lock holds
# everything `make test` needs (the test extra: plots, launchers, hf, bench) plus setuptools,
# which installs the project itself in editable mode without build isolation.
lock:
	rm -rf /tmp/cliffjax-lock && $(PYTHON) -m venv /tmp/cliffjax-lock
	/tmp/cliffjax-lock/bin/pip install --quiet --upgrade "pip>=24"
	/tmp/cliffjax-lock/bin/pip install --quiet -e ".[test]"
	/tmp/cliffjax-lock/bin/pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==' > requirements.lock

clean-venv:
	rm -rf $(VENV)

# The default policy-cliff sweep (6 Hydra jobs; seeds x eps vmapped inside each job), then
# the report (its path is printed at the end).
sweep: $(STAMP)
	$(BIN)/python -m cliffjax.experiments.policy_cliff -m algo=grpo,dr_grpo,mhpo trainer.rl.entropy_coef=0,0.1 $(ARGS)

# Benchmarks against PyTorch / transformers (pinned in requirements.lock with everything else).
bench: $(STAMP)
	$(BIN)/python -m cliffjax.experiments.bench $(ARGS)
