"""The training lexicon on disk: ``lexicon.parquet`` in a model folder (``bioner lexicon``).

The file holds every entry, unseen string and unit count of every schema
(:data:`schemas.LEXICON_V3`); its footer holds the rule (``min_ratio``, ``min_count``,
``veto_count``, ``trim_ratio``) the model is run with, the lexicon version, the digest of the
counts and the training data they were counted from. Older files still read: ``lexicon-v1``
(no unseen strings: no veto) and ``lexicon-v2`` (no unit counts: no trimming). The model id
(:func:`infra.llm.local.model_id_of`) leaves it out, since the generated text does not depend
on it; runs record :func:`lexicon_setting` instead, so a new lexicon or rule decodes again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow.compute as pc

from bioner.errors import InputError
from bioner.lexicon import (
    APPLY_VERSION,
    DEFAULT_MIN_COUNT,
    DEFAULT_MIN_RATIO,
    DEFAULT_TRIM_RATIO,
    DEFAULT_VETO_COUNT,
    LEXICON_VERSION,
    Annotated,
    Entry,
    Lexicon,
    build_lexicons,
    lexicon_digest,
)
from bioner.training.data import COPY_DATASET, Example
from infra import storage
from schemas import LEXICON_V1, LEXICON_V2, LEXICON_V3

LEXICON_FILE = "lexicon.parquet"

_META = "bioner.lexicon"


#: The lexicon versions this code reads, with the table schema of each.
_READS = {"lexicon-v1": LEXICON_V1, "lexicon-v2": LEXICON_V2, LEXICON_VERSION: LEXICON_V3}


def lexicon_path(model_dir: str | Path) -> Path:
    """Where a model folder keeps its lexicon."""
    return Path(model_dir) / LEXICON_FILE


def lexicons_from_examples(
    examples: Iterable[Example],
    min_ratio: float = DEFAULT_MIN_RATIO,
    min_count: int = DEFAULT_MIN_COUNT,
    veto_count: int = DEFAULT_VETO_COUNT,
    trim_ratio: float | None = DEFAULT_TRIM_RATIO,
) -> dict[str, Lexicon]:
    """The lexicons of training examples, one per schema; synthetic copy examples are left out
    (their spans are random)."""
    return build_lexicons(
        (
            Annotated(e.schema, e.text, tuple(e.spans))
            for e in examples
            if e.dataset != COPY_DATASET
        ),
        min_ratio,
        min_count,
        veto_count,
        trim_ratio,
    )


def write_lexicon(
    lexicons: Mapping[str, Lexicon], model_dir: str | Path, source: Mapping[str, object]
) -> Path:
    """Write ``lexicons`` into ``model_dir`` with their rule and ``source`` (what they were
    counted from) in the footer; returns the file."""
    if not lexicons:
        raise ValueError("no lexicon to write: the training data has no annotated span")
    rules = {(lx.min_ratio, lx.min_count, lx.veto_count, lx.trim_ratio) for lx in lexicons.values()}
    if len(rules) != 1:
        raise ValueError(f"one rule for all schemas, got {sorted(rules, key=str)}")
    (min_ratio, min_count, veto_count, trim_ratio) = rules.pop()
    rows = []
    for name in sorted(lexicons):
        lx = lexicons[name]
        entries = sorted(lx.entries.values(), key=lambda e: e.text)
        rows += [_row(name, e.text, e.label, e.annotated, e.occurrences, "entry") for e in entries]
        rows += [_row(name, t, "", 0, n, "unseen") for t, n in sorted(lx.unseen.items())]
        rows += [_row(name, u, "", a, n, "unit") for u, (a, n) in sorted(lx.inside.items())]
    info = {
        "version": LEXICON_VERSION,
        "min_ratio": min_ratio,
        "min_count": min_count,
        "veto_count": veto_count,
        "trim_ratio": trim_ratio,
        "digest": lexicon_digest(lexicons),
        "source": dict(source),
    }
    path = lexicon_path(model_dir)
    storage.write_rows(rows, str(path), LEXICON_V3, {_META: json.dumps(info, sort_keys=True)})
    return path


def _row(
    schema: str, text: str, label: str, annotated: int, occurrences: int, kind: str
) -> dict[str, object]:
    """One row of :data:`schemas.LEXICON_V3`."""
    return {
        "schema": schema,
        "text": text,
        "label": label,
        "annotated": annotated,
        "occurrences": occurrences,
        "kind": kind,
    }


def lexicon_info(model_dir: str | Path) -> dict[str, object] | None:
    """The footer of a model's lexicon (rule, version, digest, source); None without one."""
    path = lexicon_path(model_dir)
    if not path.is_file():
        return None
    found = storage.read_metadata(str(path)).get(_META)
    if found is None:
        raise InputError(f"{path}: not a bioner lexicon (no {_META} footer)")
    info = json.loads(found)
    if info.get("version") not in _READS:
        raise InputError(
            f"{path}: lexicon version {info.get('version')!r}; this code reads " + ", ".join(_READS)
        )
    return info


def lexicon_setting(model_dir: str | Path | None) -> str:
    """What a run's output depends on of the model's lexicon: version, digest, rule and how
    matches are applied (:data:`bioner.lexicon.APPLY_VERSION`) as canonical JSON; ``""`` when
    there is none (or no model folder)."""
    info = lexicon_info(model_dir) if model_dir is not None and Path(model_dir).is_dir() else None
    if info is None:
        return ""
    keep = ("version", "digest", "min_ratio", "min_count")
    setting = {k: info[k] for k in keep} | {
        "apply": APPLY_VERSION,
        "veto_count": _veto(info),
        "trim_ratio": _trim(info),
    }
    return json.dumps(setting, sort_keys=True, separators=(",", ":"))


def read_lexicons(model_dir: str | Path) -> dict[str, Lexicon] | None:
    """The lexicons of a model folder under its rule, by schema; None when it has none."""
    info = lexicon_info(model_dir)
    if info is None:
        return None
    table = storage.read_table(str(lexicon_path(model_dir)), _READS[str(info["version"])])
    entries: dict[str, dict[str, Entry]] = {}
    unseen: dict[str, dict[str, int]] = {}
    inside: dict[str, dict[str, tuple[int, int]]] = {}
    # Column by column, one pass: most rows are unseen strings, which need no Entry object.
    kinds = (
        table["kind"]
        if "kind" in table.column_names  # before version 3, the counts tell the kind
        else pc.if_else(pc.greater(table["annotated"], 0), "entry", "unseen")
    )
    columns = (
        table[c].to_pylist() for c in ("schema", "text", "label", "annotated", "occurrences")
    )
    for kind, schema, text, label, annotated, n in zip(kinds.to_pylist(), *columns, strict=True):
        if kind == "entry":
            entries.setdefault(schema, {})[text] = Entry(text, label, annotated, n)
        elif kind == "unseen":
            unseen.setdefault(schema, {})[text] = n
        else:
            inside.setdefault(schema, {})[text] = (annotated, n)
    ratio, count = float(info["min_ratio"]), int(info["min_count"])  # type: ignore[arg-type]
    return {
        s: Lexicon(
            s, e, ratio, count, unseen.get(s, {}), _veto(info), inside.get(s, {}), _trim(info)
        )
        for s, e in entries.items()
    }


def _veto(info: Mapping[str, object]) -> int:
    """The footer's veto count; a version 1 lexicon has none (0: no veto)."""
    return int(info.get("veto_count", 0))  # type: ignore[call-overload]


def _trim(info: Mapping[str, object]) -> float | None:
    """The footer's trim ratio; a lexicon before version 3 has no unit counts (None: no
    trimming)."""
    trim = info.get("trim_ratio")
    return None if trim is None else float(trim)  # type: ignore[arg-type]
