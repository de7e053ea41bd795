"""Train, dev and test documents of each benchmark for the selector, from ``BIONER_DATA_DIR``.

Whole abstracts where a set has them (PubTator, brat), so candidates have their context:

* ``ncbi``, ``bc5cdr``: the PubTator train, devel and test splits;
* ``jnlpba``: ``standoff/train`` minus the 200 documents of ``mtl_devel_doc_ids.txt`` (train),
  those 200 (dev), ``standoff/test`` (test);
* ``cmeee``: its labelled train split is not available here; the CMeEE-V2 dev split is divided
  by a stable hash as for the tagger (:func:`bioner.training.data.cmeee_part`): the 20% eval
  part is the test set, and a tenth of the 80% training part (another stable hash) is dev.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bioner.records import AnnotatedDocument
from bioner.training.data import cmeee_part, stable_fraction
from infra.datasets import data_dir, load_split

SETS = ("ncbi", "bc5cdr", "jnlpba", "cmeee")
_CMEEE_DEV_SALT = "selector-cmeee-dev-v1"
_CMEEE_DEV_FRACTION = 0.1


@dataclass(frozen=True)
class SetSplits:
    """The three splits of one benchmark, as gold documents."""

    name: str
    train: list[AnnotatedDocument]
    dev: list[AnnotatedDocument]
    test: list[AnnotatedDocument]


def _ids(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()}


def load_set(name: str, root: Path | None = None, *, test: bool = True) -> SetSplits:
    """The splits of set ``name`` (see the module docstring); ``test=False`` skips reading
    the test split. A ValueError lists the known sets; a missing file raises
    FileNotFoundError naming it."""
    if name not in SETS:
        raise ValueError(f"unknown selector set {name!r}; known: {', '.join(SETS)}")
    root = root or data_dir()
    if name in ("ncbi", "bc5cdr"):
        return SetSplits(
            name,
            load_split(f"{name}/pubtator/train", root),
            load_split(f"{name}/pubtator/devel", root),
            load_split(f"{name}/pubtator/test", root) if test else [],
        )
    if name == "jnlpba":
        devel = _ids(root / "jnlpba" / "mtl_devel_doc_ids.txt")
        docs = load_split("jnlpba/standoff/train", root)
        return SetSplits(
            name,
            [d for d in docs if d.id not in devel],
            [d for d in docs if d.id in devel],
            load_split("jnlpba/standoff/test", root) if test else [],
        )
    docs = load_split("cmeee/v2/dev", root)
    part = [d for d in docs if cmeee_part(d.id) == "train"]

    def is_dev(doc_id: str) -> bool:
        return stable_fraction(doc_id, _CMEEE_DEV_SALT) < _CMEEE_DEV_FRACTION

    return SetSplits(
        name,
        [d for d in part if not is_dev(d.id)],
        [d for d in part if is_dev(d.id)],
        [d for d in docs if cmeee_part(d.id) == "eval"] if test else [],
    )
