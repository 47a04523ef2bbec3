# segctl developer entry points. Every target that needs tools runs `setup` first;
# scripts/setup.sh is idempotent and fast when nothing changed.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint typecheck-and-lint demo clean bench

setup:
	./scripts/setup.sh

# pytest exit 5 ("no tests collected") is a failure on purpose: there are tests.
test: setup
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory typecheck-and-lint

lint: setup typecheck-and-lint

# ruff everywhere; mypy on segctl/, strict where the pure computation lives (topology,
# openflow, flows, verifier, reports: [tool.mypy] in pyproject.toml).
typecheck-and-lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy segctl

demo: setup
	$(VENV)/bin/segctl demo

# Benchmarks (table with same-run baselines; see docs/performance.md). Not part of `test`.
bench: setup
	$(PY) bench/run.py

# Removes only testbed leftovers (bridges, namespaces, veths named sgXXXX*).
clean:
	@if [ -x $(PY) ]; then $(PY) -m segctl.testbed.cleanup; \
	else echo "clean: no $(VENV), nothing to clean"; fi
