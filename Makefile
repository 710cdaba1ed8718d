# plait developer commands. `make test` and `make demo` are all a newcomer needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench stress fuzz clean install proto

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not stress"

demo: $(STAMP)
	$(VENV)/bin/plait demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples fuzz
	$(VENV)/bin/mypy --strict src

bench: $(STAMP)
	$(PY) benchmarks/throughput.py

stress: $(STAMP)
	$(PY) -m pytest -q -m stress tests/stress tests/adversarial

FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= noise yamux negotiation rpc identity messaging
fuzz: $(STAMP)
	$(PY) -m pip install --quiet -e '.[fuzz]'
	for t in $(FUZZ_TARGETS); do $(PY) fuzz/run.py --target $$t --seconds $(FUZZ_SECONDS) || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

proto: $(STAMP)
	$(PY) tools/gen_proto.py
