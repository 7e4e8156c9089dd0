# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo
DEMO_MODELS := legacy padim patchcore dfm dfkde
DEMO_TRAINED := stfpm fastflow efficient_ad
DEMO_IMAGES := 200

CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gluelab generate --parts part1 part6 part16 --images $(DEMO_IMAGES) --out $(DEMO)/data --store $(DEMO)/gluelab.duckdb
	$(BIN)/gluelab load-published --store $(DEMO)/gluelab.duckdb
	-$(BIN)/gluelab evaluate --parts part1 part6 part16 --models $(DEMO_MODELS) --preset cpu --store $(DEMO)/gluelab.duckdb
	@echo "Training $(DEMO_TRAINED) on part1 in the background (log: $(DEMO)/training.log); the Runs page shows them as they land."
	$(BIN)/gluelab evaluate --parts part1 --models $(DEMO_TRAINED) --preset cpu --store $(DEMO)/gluelab.duckdb \
		> $(DEMO)/training.log 2>&1 & training=$$!; \
	trap 'kill $$training 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gluelab dashboard --store $(DEMO)/gluelab.duckdb

# Debian's Chromium for the dashboard's browser test (Playwright drives it; it never downloads a browser).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Style, types and the import contracts (stages import downwards; the dashboard never loads torch).
lint: $(STAMP)
	$(BIN)/ruff check engine store dashboard tests benchmarks
	$(BIN)/ruff format --check engine store dashboard tests benchmarks
	$(BIN)/mypy engine store dashboard
	$(BIN)/lint-imports

test: $(STAMP) $(CHROMIUM) lint
	$(BIN)/python -m pytest
