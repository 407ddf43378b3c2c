# `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

demo: install
	$(PY) app.py

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/tts_speed.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
