# The README's commands. `make demo` and `make test` each set themselves up first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup debs demo test test-unit bench clean

setup: debs $(STAMP)

# Re-running costs seconds: the stamp is newer than pyproject.toml unless it changed.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

demo: setup
	$(BIN)/lact-audio demo

# Unit tests on both cores (pytest-xdist); the integration tests one at a time, since each starts
# Ray workers that already keep both cores busy (two at once ran no faster and much louder).
test: setup
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -n 2 -m "not integration" --durations=5
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -m integration --durations=15

test-unit: setup
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -n 2 -m "not integration"

bench: setup
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/sequence_scaling.py
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/train_fixed_cost.py

clean:
	rm -rf $(VENV) runs .pytest_cache
