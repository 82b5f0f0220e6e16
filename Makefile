# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[native]'
	touch $@

# The example plugins too: tests/unit/test_example_plugins.py loads them by entry point.
EXAMPLE_PLUGINS := examples/plugins/river_hst examples/plugins/river_forecaster \
	examples/plugins/webhook_action

$(VENV)/.installed-test: pyproject.toml $(EXAMPLE_PLUGINS:=/pyproject.toml) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,native]'
	$(BIN)/pip install --quiet $(EXAMPLE_PLUGINS:%=-e %)
	touch $@ $(VENV)/.installed

# Local Kafka (unless AUTOPILOT_BROKER is set), a worker and the simulator; Ctrl-C stops all.
run: $(VENV)/.installed
	$(BIN)/autopilot native build
	$(BIN)/autopilot up

# The whole suite, on the models' kernels compiled (once for their sources, about 20 s:
# models.native): the tests without a broker on every core (while the OpenTelemetry
# Collector the OTLP tests run is built, once, from Go modules), then those on the real broker
# in two processes, a test file at a time each. Those tests mostly wait (event time, session
# timeouts, a broker down for 20 s): one at a time they kept 0.9 of the two cores busy. Each
# process starts its own broker on a free port and stops it.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/autopilot native build
	$(BIN)/autopilot otelcol build > .otelcol-build.log 2>&1 & build=$$!; \
	$(BIN)/pytest -m "not kafka" -n auto --durations=10; tests=$$?; \
	wait $$build || { cat .otelcol-build.log; exit 1; }; exit $$tests
	$(BIN)/pytest -m kafka -n 2 --dist loadfile --durations=30

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .autopilot .otelcol-build.log
