# The README's two commands are `make demo` and `make test`; everything else is a helper behind them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv demo test test-engine test-all lint soak bench pin

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import airflow_provider_prefinery, airflow"
	touch $(STAMP)

venv: $(STAMP)

# The main job: the sample sync DAG, end to end, in real Airflow, against the bundled sandbox.
demo: $(STAMP)
	$(BIN)/python -m airflow_provider_prefinery.demo

# Lint, then every test (the short soak included; the browser test runs when Chromium is present) but the
# real-deployment suite, which has its own target below (.ci/run runs both).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not engine"

# The example DAGs on a real Airflow deployment (api-server, scheduler, dag-processor, triggerer): ~6 min.
test-engine: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m engine tests/engine

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

pin:
	$(BIN)/pip freeze --exclude-editable | grep -v "^airflow-provider-prefinery" > requirements/constraints.txt.new
	{ echo "# Pins installed by 'make venv'. Regenerate with 'make pin'."; cat requirements/constraints.txt.new; } > requirements/constraints.txt
	rm requirements/constraints.txt.new
