# The two commands of the quick start: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO   := .demo
DEMO_PINS := images/star/red-star-on-white.jpg videos/blue-square-moving-on-black.mp4 ideas/green-circle-ideas

.PHONY: demo test test-all lint bench nano-model quality clean browser
NANO_EPOCHS ?= 30

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import pinembed, open_clip, lancedb, decord" && touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import pinembed, open_clip, lancedb, decord, pytest, av, playwright" && touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	@echo "== pinembed demo: ingest sample_media/ (images, videos, idea pins) into $(DEMO)/pins.lance =="
	@echo "   model: nano, the small model bundled in sample_media/nano; it knows the sample domain"
	@echo "   (coloured shapes), not real photos. See README for real checkpoints."
	@rm -rf $(DEMO)/pins.lance && mkdir -p $(DEMO)
	$(BIN)/pinembed ingest sample_media --db $(DEMO)/pins.lance --model nano
	@for p in $(DEMO_PINS); do \
	  echo; echo "== related to $$p"; $(BIN)/pinembed related "$$p" --db $(DEMO)/pins.lance -k 5 || exit 1; \
	done
	@echo; echo "== search --text 'a yellow star'"; $(BIN)/pinembed search --text "a yellow star" --db $(DEMO)/pins.lance -k 5

# The page's browser test drives Debian's Chromium (no browser download): installed here when missing
# and we are root on a Debian-like machine; elsewhere the test skips and says how to get one.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ -z "$$PINEMBED_CHROMIUM" ] && command -v apt-get >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ]; then \
	  echo "== installing chromium (apt-get) for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-liberation; } >/dev/null 2>&1 \
	    || echo "   chromium could not be installed: the browser test will skip (and fail in CI)"; \
	fi

test: $(VENV)/.installed-dev browser
	$(PY) -m pytest -q -m "not slow"

test-all: $(VENV)/.installed-dev browser
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/ingest_images.py
	$(PY) benchmarks/ingest_video.py

# Rebuild the bundled model from scratch: generate the training world, train, write sample_media/nano.
nano-model: $(VENV)/.installed
	$(PY) sample_media/world.py --split train --out build/world-train --seed 0 --videos-per-label 6
	$(BIN)/pinembed train --data build/world-train --out sample_media/nano --arch pinembed-nano \
	  --epochs $(NANO_EPOCHS) --batch-size 128 --lr 1e-3 --seed 0 --dtype fp16

quality: $(VENV)/.installed
	$(PY) benchmarks/quality.py

clean:
	rm -rf $(DEMO) .pytest_cache build
