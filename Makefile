# The two commands of the quick start: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO   := .demo
DEMO_PINS := images/star/red-star-on-white.jpg videos/blue-square-moving-on-black.mp4 ideas/green-circle-ideas

.PHONY: demo test test-all lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import pinembed, open_clip, lancedb, decord" && touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import pinembed, open_clip, lancedb, decord, pytest, av" && touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	@echo "== pinembed demo: ingest sample_media/ (images, videos, idea pins) into $(DEMO)/pins.lance =="
	@echo "NOTE: the bundled 'nano' model is not in the repo yet, so this demo uses a tiny open_clip model"
	@echo "      with RANDOM weights: its neighbours follow colour and layout, not meaning."
	@mkdir -p $(DEMO)
	@model=$$($(PY) -m pinembed.embedders.tiny $(DEMO)/tiny.pt 2>/dev/null) && \
	  $(BIN)/pinembed ingest sample_media --db $(DEMO)/pins.lance --model "$$model"
	@for p in $(DEMO_PINS); do \
	  echo; echo "== related to $$p"; $(BIN)/pinembed related "$$p" --db $(DEMO)/pins.lance -k 5 || exit 1; \
	done

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/ingest_throughput.py
	$(PY) benchmarks/video_throughput.py

clean:
	rm -rf $(DEMO) .pytest_cache
