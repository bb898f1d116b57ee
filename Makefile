# The entry points of the README: `make demo` (train -> index -> serve -> query), `make serve`
# (serve the index the demo built) and `make test`. Each creates .venv with the exact versions
# of requirements.lock.
PYTHON ?= python3
VENV := .venv
DATA ?= ../shared/data/wp_movies_us.ndjson
WORK ?= work

.PHONY: demo serve test test-fast install clean bench

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	DATA=$(DATA) WORK=$(WORK) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# The index `make demo` built, served on the documented ports until Ctrl-C: gRPC on PORT (the
# client's default server is 127.0.0.1:50051), the HTTP API and the web explorer on HTTP_PORT.
HOST ?= 127.0.0.1
PORT ?= 50051
HTTP_PORT ?= 8080

serve: $(VENV)/.installed
	@test -f "$(WORK)/index/CURRENT" || { echo "make serve: no index in $(WORK)/index: \`make demo\` builds one" >&2; exit 2; }
	@echo "serving $(WORK)/index: gRPC $(HOST):$(PORT), web explorer http://$(HOST):$(HTTP_PORT)/ (Ctrl-C stops)"
	$(VENV)/bin/server --index "$(WORK)/index" --host $(HOST) --port $(PORT) --http-port $(HTTP_PORT)

# The browser tests drive Debian's chromium; a fresh machine (CI runs as root) gets it from apt.
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

test: $(VENV)/.installed $(CHROMIUM)
	$(VENV)/bin/python -m pytest

# The edit-test loop (under a minute on 2 cores): no TensorFlow, no real data
# (the tests marked tf, real_data or slow are left out; the markers: pyproject.toml).
test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not tf and not real_data and not slow"

clean:
	rm -rf $(VENV) $(WORK)

# The benchmark suite (docs/speed.md, docs/scale.md): SIZE=small (the real 36k films) or SIZE=1m.
bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench --size $(or $(SIZE),small)
