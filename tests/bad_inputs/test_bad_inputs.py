"""The catalogue of bad inputs: each case is run for real and checked the same way.

Every case gets a clear message (a fragment naming the file or value, and a "Fix:" or click's
"Try ... for help"), the exit code click's conventions give (2 usage, 1 other), no traceback and no
unhandled exception; cases that could write something also check that nothing half-written is left
and nothing existing was replaced. CLI cases go through the top-level ``edgelstm.cli.cli`` group, so
its error handling is exercised; ``Engine.step`` cases call the library.

``docs/bad-inputs.md`` holds the table generated from these cases, with the messages they really
produce (temporary paths and hex digests masked). ``test_docs_match_the_catalogue`` fails when the
two drift; regenerate the table with

    EDGELSTM_REGEN_DOCS=1 .venv/bin/python -m pytest tests/bad_inputs

The cases live by area in ``cases_*.py`` beside this file, imported below in the table's order;
``harness.py`` holds what they share: running a case, the checks every case passes, the table.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# the areas, in the order of the docs table: importing them registers their cases
from tests.bad_inputs import cases_bundle, cases_checkpoint_data, cases_source_frame, cases_options_disk  # noqa: F401
from tests.bad_inputs import cases_track  # noqa: F401  (after the others: its rows come last)
from tests.bad_inputs import cases_caption  # noqa: F401  (the captioning rows, after the tracking ones)
from tests.bad_inputs import cases_detect  # noqa: F401  (the detection rows, after the captioning ones)
from tests.bad_inputs import cases_explain  # noqa: F401  (the explain rows, last)
from tests.bad_inputs.harness import BEGIN, CASES, DOC, END, RESULTS, Case, World, _check, _message, render_table
from tests.bundles import make_bundle, make_checkpoint, make_feature_checkpoint


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    import cv2

    root = tmp_path_factory.mktemp("bad-inputs")
    ckpt = make_checkpoint(root, steps=40)
    fckpt = make_feature_checkpoint(root, steps=40)
    bundle = make_bundle(root, checkpoint=ckpt, name="bundle", parity_frames=24)
    fbundle = make_bundle(root, checkpoint=fckpt, name="fbundle", parity_frames=24)
    video = root / "good.avi"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 15.0, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(40):
        wr.write(rng.integers(0, 256, (32, 32, 3), np.uint8))
    wr.release()
    return World(root, ckpt, bundle, fckpt, fbundle, video)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, world: World, tmp_path: Path) -> None:
    out = c.run(world, tmp_path)
    _check(c, out)
    RESULTS[c.id] = _message(c, out, tmp_path, world)


def test_catalogue_is_broad() -> None:
    assert len(CASES) >= 25
    assert {c.area for c in CASES} >= {"bundle", "checkpoint", "data", "source", "frame", "options", "disk"}
    assert {c.code for c in CASES} >= {1, 2}


def test_docs_match_the_catalogue(world: World, tmp_path: Path) -> None:
    """docs/bad-inputs.md shows each case's real message; cases not run in this session are run here."""
    for c in CASES:
        if c.id not in RESULTS:
            tmp = tmp_path / c.id
            tmp.mkdir()
            out = c.run(world, tmp)
            _check(c, out)
            RESULTS[c.id] = _message(c, out, tmp, world)
    table = render_table(RESULTS)
    doc = DOC.read_text(encoding="utf-8")
    assert BEGIN in doc and END in doc, f"{DOC} lost its catalogue markers"
    head, rest = doc.split(BEGIN, 1)
    current = BEGIN + rest.split(END, 1)[0] + END
    if os.environ.get("EDGELSTM_REGEN_DOCS"):
        DOC.write_text(head + table + rest.split(END, 1)[1], encoding="utf-8")
        return
    assert current == table, ("docs/bad-inputs.md is out of date with the catalogue; regenerate it with "
                              "EDGELSTM_REGEN_DOCS=1 .venv/bin/python -m pytest tests/bad_inputs")
