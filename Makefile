# keel: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
KEEL := $(VENV)/bin/keel

.PHONY: install demo docs lint test-fast test test-slow test-all bench clean

install:
	@$(PYTHON) tools/install.py

demo: install
	$(KEEL) run pipelines/penguin.toml

# docs/spec.md from the spec's pydantic models (tests/test_spec_docs.py fails when it is stale)
docs: install
	$(VENV)/bin/python -m keel.core.spec_docs

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the unit tier: pure parts on real objects, no pipeline runs; well under a minute
test-fast: install
	$(VENV)/bin/pytest -q tests/unit

# the unit tier first (fast feedback), then everything else that is not slow
test: test-fast
	$(VENV)/bin/pytest -q -m "not slow" --ignore=tests/unit --durations=30

test-slow: install
	$(VENV)/bin/pytest -q -m slow

test-all: install
	$(VENV)/bin/pytest -q

# keel vs the same pipeline in raw TFX (bench/raw_tfx/), 2 rounds; writes bench/results/pipeline.md
bench: install
	$(VENV)/bin/python bench/pipeline.py

clean:
	rm -rf pipelines/.keel .pytest_cache
