# Two entry points: `make quickstart` (the whole pipeline on the embedded synthetic dataset)
# and `make test` (the test suite). Each installs what it needs into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-all
RUN ?= runs/quickstart

.PHONY: install quickstart test test-fast test-base bench soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/edgelstm quickstart --out $(RUN)

# The whole suite, including the on-device install check (a second venv with the base install only, no torch,
# runs the demo): that one is marked slow, so `pytest` alone skips it while you iterate.
test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --runslow

# The on-device install: base dependencies only, no torch. Proves runtime/ and the demo run without the extras.
test-base: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/runtime/test_base_install.py --runslow

# Every speed figure in the README: reuses the quickstart's run (trains it first if missing).
bench: $(STAMP)
	test -f $(RUN)/bundle/manifest.json || $(MAKE) quickstart
	$(BIN)/python benchmarks/bench_all.py --run $(RUN)

soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) runs build *.egg-info
