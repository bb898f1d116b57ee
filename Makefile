# The two entry points of the README: `make demo` (train -> index -> serve -> query)
# and `make test`. Both create .venv with the exact versions of requirements.lock.
PYTHON ?= python3
VENV := .venv
DATA ?= ../shared/data/wp_movies_us.ndjson
WORK ?= work

.PHONY: demo test test-fast install clean bench

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	DATA=$(DATA) WORK=$(WORK) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# The browser tests drive Debian's chromium; a fresh machine (CI runs as root) gets it from apt.
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

test: $(VENV)/.installed $(CHROMIUM)
	$(VENV)/bin/python -m pytest

# The edit-test loop, under a minute: no TensorFlow, no real data, no server processes
# (the tests marked tf, real_data or slow are left out; the markers: pyproject.toml).
test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not tf and not real_data and not slow"

clean:
	rm -rf $(VENV) $(WORK)

# The benchmark suite (docs/speed.md, docs/scale.md): SIZE=small (the real 36k films) or SIZE=1m.
bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench --size $(or $(SIZE),small)
