# The README's two commands. Both work on a fresh machine: they create .venv and install first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# open_clip otherwise retries the Hugging Face hub for ~50 s before failing offline.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m clipvideo demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo_runs .pytest_cache
