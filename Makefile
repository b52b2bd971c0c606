# The two front-door commands: `make run` and `make test`. Everything else is a detail of those.
.PHONY: run demo test test-fast lint bench setup clean

setup:
	@scripts/setup.sh

run: setup  ## set up and run the whole system on its embedded default (Ctrl-C stops it)
	.venv/bin/ce run --demo

test: setup  ## set up and run the whole test suite, the linters and the type checker
	@scripts/ensure-postgres.sh
	@scripts/ensure-test-tools.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy libs services simulators ce console tests bench
	.venv/bin/pytest -q

test-fast: setup  ## the quick tier while working: no process stacks, no broker (CI runs `make test`)
	@scripts/ensure-postgres.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy libs services simulators ce console tests bench
	.venv/bin/pytest -q -m "not e2e and not kafka and not subprocess and not browser and not slow"

bench: setup
	.venv/bin/python -m bench.run

clean:
	rm -rf var .venv .pytest_cache .mypy_cache .ruff_cache
