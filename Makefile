# The README's two commands. Both work on a fresh machine: they create .venv and install first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# open_clip otherwise retries the Hugging Face hub for ~50 s before failing offline.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean browser

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
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
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo_runs .pytest_cache
