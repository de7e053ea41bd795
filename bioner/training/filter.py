"""Hybrid Superfiltering (BioSelectTune): keep the examples a weak model finds most informative.

A small ("weak") model of the same family scores every example by its instruction-following
difficulty (Superfiltering, Li et al. 2024)::

    IFD = loss(response | instruction) / loss(response alone)

(mean token cross-entropy of the response; scoring lives in :mod:`infra.training.superfilter`).
A high IFD means the instruction helps little to predict the answer: the example is hard and
informative. IFD >= 1 means the instruction does not help at all, which Superfiltering treats
as a misaligned pair: dropped (``max_ifd``).

"Hybrid", as implemented here (our reading of BioSelectTune, which trains on a fraction of the
*positive* data): examples with entities (positives) are ranked by IFD and the top
``fraction`` kept; examples without entities (negatives, a fixed "None" answer whose IFD says
nothing about the passage) are not ranked but subsampled to ``negative_fraction`` by a stable
hash of their id, so the model still learns to say "None". With ``per_dataset`` the selection
is made within each dataset, so joint training keeps its mix. Ties in IFD break on the id;
the result is deterministic and keeps the input order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bioner.training.data import stable_fraction

_SALT = "bioner-superfilter-negatives-v1"


@dataclass(frozen=True, slots=True)
class Scored:
    """One example's scores: losses of its response with and without the instruction."""

    id: str
    dataset: str
    positive: bool  # has at least one gold entity
    loss_with: float
    loss_without: float

    @property
    def ifd(self) -> float:
        """Instruction-following difficulty; +inf when the response alone has no loss."""
        if self.loss_without <= 0:
            return math.inf
        return self.loss_with / self.loss_without


@dataclass(frozen=True)
class FilterOptions:
    """How many to keep: see the module docstring."""

    fraction: float = 0.5
    negative_fraction: float | None = None  # None: the same as ``fraction``
    max_ifd: float | None = 1.0
    per_dataset: bool = True

    def __post_init__(self) -> None:
        for name, v in (("fraction", self.fraction), ("negative_fraction", self.negative_fraction)):
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")


def select(scores: Sequence[Scored], options: FilterOptions | None = None) -> list[str]:
    """Ids of the kept examples, in input order."""
    options = options or FilterOptions()
    neg_fraction = (
        options.fraction if options.negative_fraction is None else options.negative_fraction
    )
    groups: dict[str, list[Scored]] = {}
    for s in scores:
        groups.setdefault(s.dataset if options.per_dataset else "", []).append(s)
    kept: set[str] = set()
    for group in groups.values():
        positives = [s for s in group if s.positive]
        n_keep = round(len(positives) * options.fraction)
        eligible = [
            s
            for s in positives
            if options.max_ifd is None or (math.isfinite(s.ifd) and s.ifd < options.max_ifd)
        ]
        ranked = sorted(eligible, key=lambda s: (-s.ifd, s.id))
        kept.update(s.id for s in ranked[:n_keep])
        kept.update(
            s.id for s in group if not s.positive and stable_fraction(s.id, _SALT) < neg_fraction
        )
    return [s.id for s in scores if s.id in kept]


def summary(scores: Sequence[Scored], kept: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per dataset: examples, kept, positives kept, mean IFD of all and of the kept positives."""
    keep = set(kept)
    out: dict[str, dict[str, float]] = {}
    for s in scores:
        d = out.setdefault(
            s.dataset,
            {"examples": 0, "kept": 0, "positives": 0, "positives_kept": 0, "ifd_ge_1": 0},
        )
        d["examples"] += 1
        d["kept"] += s.id in keep
        d["positives"] += s.positive
        d["positives_kept"] += s.positive and s.id in keep
        d["ifd_ge_1"] += s.positive and not s.ifd < 1.0
    for name, d in out.items():
        pos = [s.ifd for s in scores if s.dataset == name and s.positive and math.isfinite(s.ifd)]
        pos_kept = [
            s.ifd
            for s in scores
            if s.dataset == name and s.positive and s.id in keep and math.isfinite(s.ifd)
        ]
        d["mean_ifd_positives"] = round(sum(pos) / len(pos), 4) if pos else 0.0
        d["mean_ifd_kept"] = round(sum(pos_kept) / len(pos_kept), 4) if pos_kept else 0.0
    return out
