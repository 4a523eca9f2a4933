# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: tools run test lint

$(BIN)/cover2: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian's tools that only the tests run, for real: promtool and prometheus (rules,
# scraping), amtool (Alertmanager's configuration), docker-compose (the production stack's
# file), stunnel (a TLS terminator in front of the embedded broker, which has no TLS).
# `make run` needs none of them.
TOOLS := promtool:prometheus amtool:prometheus-alertmanager docker-compose:docker-compose \
	stunnel:stunnel4

tools:
	@missing=$$(for tool in $(TOOLS); do command -v $${tool%%:*} >/dev/null || \
		echo $${tool#*:}; done); \
	if [ -n "$$missing" ]; then echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		$$missing >/dev/null; fi

run: $(BIN)/cover2
	$(BIN)/cover2 run

lint: $(BIN)/cover2
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint tools
	$(BIN)/pytest
