# `make demo` and `make test` do all set-up on a fresh machine.
# The install comes from uv.lock (exact versions of every package); `make lock` refreshes it.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
UV := .uv/bin/uv
# uv uses the interpreter named here and never downloads one.
export UV_PYTHON_DOWNLOADS := never

.PHONY: install lock demo test test-quick lint bench clean

install: $(VENV)/.installed

# uv itself lives in its own small venv, so that syncing .venv never removes it.
$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	touch $@

# The only way dependencies change: edit pyproject.toml, then `make lock` and commit uv.lock.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

demo: install
	$(PY) app.py

test: install
	$(PY) -m pytest -q

# The fast tier (about a minute): no slow tests, none that need ../shared.
test-quick: install
	$(PY) -m pytest -q -m "not slow and not needs_shared"

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/tts_speed.py

clean:
	rm -rf $(VENV) .uv *.egg-info .pytest_cache
