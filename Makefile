# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint

$(BIN)/cover2: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian's tools that the tests run for real: promtool and prometheus (rules, scraping),
# amtool (Alertmanager's configuration), docker-compose (the production stack's file),
# stunnel (a TLS terminator in front of the embedded broker, which has no TLS).
TOOLS := promtool:prometheus amtool:prometheus-alertmanager docker-compose:docker-compose \
	stunnel:stunnel4

setup: $(BIN)/cover2
	@missing=$$(for tool in $(TOOLS); do command -v $${tool%%:*} >/dev/null || \
		echo $${tool#*:}; done); \
	if [ -n "$$missing" ]; then echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		$$missing >/dev/null; fi

run: setup
	$(BIN)/cover2 run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest
