# The two everyday commands are `make setup` and `make run`; the rest is for developers and CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)

.PHONY: setup setup-spark run test lint format docs report-check bench clean

setup: $(BIN)/propensity

$(BIN)/propensity: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

setup-spark: setup  # the [spark] extra: dbt-spark and pyspark (~630 MB; Java 17); `make test` then runs tests/test_spark.py
	$(BIN)/pip install --quiet -c requirements.lock -e '.[spark]'

run: setup
	$(BIN)/propensity nightly --simulate-if-empty

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check models_py jobs tests
	$(BIN)/ruff format --check models_py jobs tests
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests

format: setup
	$(BIN)/ruff format models_py jobs tests
	$(BIN)/ruff check --fix models_py jobs tests
	$(BIN)/sqlfluff fix dbt_project/models dbt_project/macros dbt_project/tests

docs: setup
	$(BIN)/propensity docs

report-check: setup  # the newest report in headless Chromium (Debian: apt-get install chromium)
	$(BIN)/propensity check-report

bench: setup
	$(BIN)/python -m jobs.bench

clean:  # run-time files only: the reports kept in git stay
	rm -rf warehouse artifacts dbt_project/target dbt_project/logs
	[ ! -d reports ] || find reports -mindepth 1 -maxdepth 1 -not -name bench.json \
		-not -name backtest_scale1.json -not -name ceiling_scale1.json -exec rm -rf {} +
