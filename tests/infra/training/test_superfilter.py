"""Superfiltering with a tiny weak model: IFD scores, selection, the output folder."""

from __future__ import annotations

import json
import math

from bioner.training.filter import FilterOptions
from infra.training.data import read_examples
from infra.training.superfilter import (
    SCORES_FILE,
    SELECTION_FILE,
    read_scores,
    score_examples,
    superfilter,
)


def test_scores_are_finite_losses_and_deterministic(tiny_model, examples):
    scores = score_examples(tiny_model, examples, batch_tokens=512)
    assert [s.id for s in scores] == [e.id for e in examples]
    assert all(s.loss_with > 0 and s.loss_without > 0 and math.isfinite(s.ifd) for s in scores)
    assert [s.positive for s in scores] == [bool(e.spans) for e in examples]
    again = score_examples(tiny_model, examples, batch_tokens=100_000)  # other batching
    for a, b in zip(scores, again, strict=True):
        assert math.isclose(a.loss_with, b.loss_with, rel_tol=1e-4)
        assert math.isclose(a.loss_without, b.loss_without, rel_tol=1e-4)


def test_superfilter_writes_a_data_folder(tiny_model, data_dir, examples, tmp_path):
    out = tmp_path / "sf"
    options = FilterOptions(fraction=0.5, negative_fraction=1.0, max_ifd=None)
    info = superfilter(tiny_model, data_dir, out, options, batch_tokens=4096)
    kept = read_examples(out)
    # 3 positives -> 2 kept (round(1.5)), the negative kept by negative_fraction=1
    assert info["kept"] == len(kept) == 3
    assert [e.id for e in kept] == [e.id for e in examples if e.id in {k.id for k in kept}]
    scores = read_scores(out / SCORES_FILE)
    positives = sorted((s for s in scores if s.positive), key=lambda s: -s.ifd)
    assert {s.id for s in positives[:2]} <= {e.id for e in kept}
    assert json.loads((out / SELECTION_FILE).read_text())["datasets"]["bc5cdr"]["kept"] == 3
    # Reusing the scores gives the same selection without a model run.
    again = superfilter(
        "unused", data_dir, tmp_path / "sf2", options, scores_path=out / SCORES_FILE
    )
    assert again["kept"] == 3
