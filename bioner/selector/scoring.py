"""Scores from nearest labelled neighbours, the F1-optimal threshold, and the decision.

The index holds embeddings of training samples, each with a label and a truth (a gold span,
or a negative of that label). A candidate of label ``T`` is *supported* by a neighbour that is
a gold span of type ``T``; everything else (a boundary-shifted twin, another type, a tagger's
false positive) opposes it.

* ``vote``: the softmax weight (similarities over ``temperature``) of the supporting
  neighbours among the ``k`` found; in [0, 1].
* ``margin``: the best supporting similarity minus the best opposing one; a side with no
  neighbour counts -1 (the lowest cosine), so the score lies in [-2, 2].

Neighbour ids of -1 (FAISS: fewer than ``k`` vectors) are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

METHODS = ("vote", "margin")


class Reason(StrEnum):
    """Why a candidate was accepted or rejected (the ``reason`` column)."""

    ACCEPTED = "accepted"
    BELOW_THRESHOLD = "below_threshold"
    UNKNOWN_LABEL = "unknown_label"  # a type the selector was not trained on
    NO_PASSAGE = "no_passage"  # the passage it names is not in the passages table
    OUTSIDE_PASSAGE = "offsets_outside_passage"
    TEXT_MISMATCH = "text_mismatch"  # its text is not the passage's text at its offsets


def knn_scores(
    labels: Sequence[str],
    neighbour_ids: np.ndarray,
    similarities: np.ndarray,
    bank_labels: np.ndarray,
    bank_positive: np.ndarray,
    *,
    method: str = "vote",
    temperature: float = 0.1,
) -> np.ndarray:
    """One score per candidate (row) from its neighbours (see the module docstring).

    ``neighbour_ids`` and ``similarities`` are ``(n, k)`` as FAISS returns them;
    ``bank_labels`` / ``bank_positive`` describe the indexed vectors.
    """
    if method not in METHODS:
        raise ValueError(f"unknown scoring method {method!r}; known: {', '.join(METHODS)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    ids = np.asarray(neighbour_ids, dtype=np.int64)
    sims = np.asarray(similarities, dtype=np.float64)
    if ids.shape != sims.shape or ids.ndim != 2 or ids.shape[0] != len(labels):
        raise ValueError(f"neighbours {ids.shape} and similarities {sims.shape} do not match")
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    wanted = np.asarray(labels, dtype=object)[:, None]
    support = valid & np.asarray(bank_positive, dtype=bool)[safe]
    support &= np.asarray(bank_labels, dtype=object)[safe] == wanted
    oppose = valid & ~support
    if method == "margin":
        best_for = np.where(support, sims, -np.inf).max(axis=1, initial=-np.inf)
        best_against = np.where(oppose, sims, -np.inf).max(axis=1, initial=-np.inf)
        return (np.maximum(best_for, -1.0) - np.maximum(best_against, -1.0)).astype(np.float32)
    logits = np.where(valid, sims / temperature, -np.inf)
    top = logits.max(axis=1, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(valid, np.exp(logits - top), 0.0)
    total = weights.sum(axis=1)
    mass = np.where(support, weights, 0.0).sum(axis=1)
    return np.divide(mass, total, out=np.zeros_like(total), where=total > 0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Threshold:
    """The chosen threshold (accept iff ``score >= value``) and what it gives on the data."""

    value: float
    f1: float
    precision: float
    recall: float
    accepted: int
    true_positives: int


def best_threshold(scores: Sequence[float], correct: Sequence[bool], n_gold: int) -> Threshold:
    """The threshold with the best F1 over candidates ``scores`` whose truth is ``correct``.

    ``n_gold`` counts every gold span, those no candidate found included (recall's
    denominator). Cuts fall only between distinct scores; the threshold is the midpoint
    between the lowest accepted score and the next lower one (the lowest accepted score when
    none is lower). On equal F1 the higher threshold wins; with no F1 above 0, nothing is
    accepted (the threshold is just above the highest score).
    """
    s = np.asarray(scores, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if s.shape != ok.shape:
        raise ValueError(f"{len(s)} scores but {len(ok)} truths")
    if n_gold < int(ok.sum()):
        raise ValueError(f"n_gold={n_gold} is below the {int(ok.sum())} correct candidates")
    top = float(s.max()) if len(s) else 0.0
    best = Threshold(float(np.nextafter(top, np.inf)), 0.0, 0.0, 0.0, 0, 0)
    order = np.argsort(-s, kind="stable")
    s, ok = s[order], ok[order]
    tp = 0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            tp += int(ok[j])
            j += 1
        f1 = 2 * tp / (j + n_gold) if j + n_gold else 0.0
        if f1 > best.f1:
            value = float(s[i]) if j == len(s) else float((s[i] + s[j]) / 2)
            if j < len(s) and not s[j] < value <= s[i]:  # adjacent floats: no room between
                value = float(s[i])
            best = Threshold(value, f1, tp / j, tp / n_gold if n_gold else 0.0, j, tp)
        i = j
    return best
