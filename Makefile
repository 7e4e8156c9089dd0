# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when needed and compile every
# installed module once: where PYTHONDONTWRITEBYTECODE is set, nothing would cache a module compiled later.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
DEMO := demo
STORE := $(DEMO)/gluelab.duckdb
DEMO_PARTS := part1 part6 part16
DEMO_MODELS := legacy padim patchcore dfm dfkde
DEMO_TRAINED := stfpm fastflow efficient_ad
DEMO_IMAGES := 200
DEMO_FRAMES := 240
DEMO_DRIFT_FROM := 120

CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint

# The venv takes about 8 GB (torch 2.14.1 is a CUDA build, with NVIDIA's libraries beside it): say so before pip
# runs out of room halfway.
VENV_GB := 9

$(STAMP): pyproject.toml constraints.txt
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ ! -x $(BIN)/python ] && [ "$$free" -lt $(VENV_GB) ]; then \
		echo "make: the venv needs about $(VENV_GB) GB and $$(pwd) has $$free GB free; free some space and run make again" >&2; \
		exit 1; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -c constraints.txt -e '.[test,ray]'
	touch $(STAMP)

# pip would compile the 22,000 installed modules one after another (about 35 s of one core); compileall shares them
# among the cores, and `make test` runs it beside the lint. A few files in the packages are written for newer Pythons
# and do not compile here (torch's testing helpers): pip skips them as well, so failures are not errors.
$(COMPILED): $(STAMP)
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(COMPILED)

# The dashboard comes up at once on the study's published figures; the demo plant is generated and its grid
# queued and run by a worker in the background, and the Runs page shows runs as they land. Once the frozen-feature
# grid is done, part1's recommended model is deployed and watches a line whose light doubles halfway (Line monitor),
# then the gradient-trained models are evaluated.
demo: $(COMPILED)
	$(BIN)/gluelab load-published --store $(STORE)
	@echo "Generating the demo plant and running its grid in the background (log: $(DEMO)/background.log)."
	setsid sh -c '\
		$(BIN)/gluelab generate --parts $(DEMO_PARTS) --images $(DEMO_IMAGES) --out $(DEMO)/data --store $(STORE) \
			|| echo "keeping the demo plant generated before"; \
		$(BIN)/gluelab evaluate --submit --parts $(DEMO_PARTS) --models $(DEMO_MODELS) --preset cpu --store $(STORE); \
		$(BIN)/gluelab worker --once --store $(STORE); \
		$(BIN)/gluelab deploy --recommended part1 --format onnx --out $(DEMO)/deployed --store $(STORE) \
			&& { mkdir -p $(DEMO)/line; \
				$(BIN)/gluelab generate --stream --part part1 --frames $(DEMO_FRAMES) --drift brightness \
					--drift-from $(DEMO_DRIFT_FROM) --rate 4 --out $(DEMO)/line > /dev/null & \
				$(BIN)/gluelab inspect $(DEMO)/deployed --images $(DEMO)/line --watch --idle 20 --store $(STORE); }; \
		$(BIN)/gluelab evaluate --submit --parts part1 --models $(DEMO_TRAINED) --preset cpu --store $(STORE); \
		exec $(BIN)/gluelab worker --store $(STORE)' > $(DEMO)/background.log 2>&1 & background=$$!; \
	trap 'kill -TERM -- -$$background 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gluelab dashboard --store $(STORE)

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

# Two workers, each a machine of its own on its share of the cores (tests/conftest.py), a test module each at a time,
# the heavy modules first (the order tests/conftest.py gives them).
TEST_WORKERS ?= 2

# The lint (mostly mypy, on one core) and the venv's compilation run side by side.
test: $(STAMP) $(CHROMIUM)
	@$(MAKE) --no-print-directory -j 2 $(COMPILED) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
