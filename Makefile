# The README's two commands. Both work on a fresh machine: they create .venv and install first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# open_clip otherwise retries the Hugging Face hub for ~50 s before failing offline.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean browser

# `make demo` installs only clipvideo's own dependencies (no extras), and shows pip's progress:
# the first install downloads torch and takes minutes (README: measured size and time).
$(VENV)/.installed-base: pyproject.toml
	@test -x $(PY) || { echo "creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing clipvideo and its own dependencies (torch, torchvision, PyAV, open_clip, ...) into $(VENV)"
	$(PY) -m pip install --disable-pip-version-check -e .
	touch $@

# `make test` installs everything: the [test] extra pulls in [serve] and [export] too.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || { echo "creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing clipvideo with the [test] extra (serve, export, transformers, scikit-learn, selenium) into $(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed-base

install: $(VENV)/.installed

demo: $(VENV)/.installed-base
	$(PY) -m clipvideo demo

# The `clipvideo serve` browser test drives Debian's headless Chromium. Install it where we can
# (root with apt-get), quietly; on failure the test skips with a message and the rest still runs.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver (apt-get) for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	      >/dev/null 2>&1 || echo "could not install chromium: the browser test will skip"; \
	  else \
	    echo "no chromium: the browser test will skip (as root: apt-get install chromium chromium-driver)"; \
	  fi; \
	fi

test: $(VENV)/.installed browser
	$(PY) -m pytest -q --durations=25  # the slowest tests, so a CI log shows where its 30 minutes go

clean:
	rm -rf $(VENV) demo_runs .pytest_cache
