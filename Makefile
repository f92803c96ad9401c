# keel: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
KEEL := $(VENV)/bin/keel

.PHONY: install demo test test-slow test-all bench clean

install:
	@$(PYTHON) tools/install.py

demo: install
	$(KEEL) run pipelines/penguin.toml

test: install
	$(VENV)/bin/pytest -q -m "not slow"

test-slow: install
	$(VENV)/bin/pytest -q -m slow

test-all: install
	$(VENV)/bin/pytest -q

# keel vs the same pipeline in raw TFX (bench/raw_tfx/), 2 rounds; writes bench/results/pipeline.md
bench: install
	$(VENV)/bin/python bench/pipeline.py

clean:
	rm -rf pipelines/.keel .pytest_cache
