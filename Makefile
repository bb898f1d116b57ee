# The two entry points of the README: `make demo` (train -> index -> serve -> query)
# and `make test`. Both create .venv with the exact versions of requirements.lock.
PYTHON ?= python3
VENV := .venv
DATA ?= ../shared/data/wp_movies_us.ndjson
WORK ?= work

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	DATA=$(DATA) WORK=$(WORK) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(WORK)
