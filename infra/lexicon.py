"""The training lexicon on disk: ``lexicon.parquet`` in a model folder (``bioner lexicon``).

The file holds every entry, unseen string and unit count of every schema
(:data:`schemas.LEXICON_V3`; from ``lexicon-v4`` on, the unseen strings and unit counts of a
schema trained with partial annotation carry the label whose passages they were counted in);
its footer holds the rule (``min_ratio``, ``min_count``,
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
from typing import TypeVar

import pyarrow.compute as pc

from bioner.errors import InputError
from bioner.labels import DATASETS, get_schema
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
    largest,
    lexicon_digest,
)
from bioner.training.data import COPY_DATASET, Example
from infra import storage
from schemas import LEXICON_V1, LEXICON_V2, LEXICON_V3

LEXICON_FILE = "lexicon.parquet"
V = TypeVar("V")

_META = "bioner.lexicon"


#: The lexicon versions this code reads, with the table schema of each.
_READS = {
    "lexicon-v1": LEXICON_V1,
    "lexicon-v2": LEXICON_V2,
    "lexicon-v3": LEXICON_V3,
    LEXICON_VERSION: LEXICON_V3,
}
#: The unified schemas (bioner.labels.UNIFIED_SCHEMAS), whose training is partially annotated.
_UNIFIED = ("general", "general-zh")


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
    (their spans are random). See :func:`annotated_passages`."""
    return build_lexicons(
        (a for e in examples for a in annotated_passages(e)),
        min_ratio,
        min_count,
        veto_count,
        trim_ratio,
    )


def annotated_passages(example: Example) -> list[Annotated]:
    """What a lexicon counts of one training example.

    An example asked in a unified schema counts for that schema with the labels it asked (a
    restricted request, ``general[Gene,Cell]``, is partial annotation). An example asked in its
    dataset's own schema counts for that schema, and, in its unified view (the dataset's
    unified map, :attr:`bioner.labels.DatasetSpec.unified`), for the unified schema with the
    unified types its dataset annotates whole: training data deduplicated across the two views
    still gives the unified lexicon every passage.
    """
    if example.dataset == COPY_DATASET:
        return []
    spans = tuple(example.spans)
    schema = get_schema(example.schema)
    if schema.base in _UNIFIED:
        return [Annotated(schema.base, example.text, spans, schema.labels)]
    out = [Annotated(example.schema, example.text, spans)]
    spec = DATASETS.get(example.dataset)
    if spec is not None and spec.unified and not spec.partial and spec.schema.name == schema.name:
        mapped = tuple((a, b, spec.unified[lb]) for a, b, lb in spans if lb in spec.unified)
        out.append(Annotated(spec.unified_schema.name, example.text, mapped, spec.unified_types))
    return out


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
        if lx.unseen_by_label:  # the label-free counts are the per-label ones' largest
            for t, label, n in _by_labels(lx.unseen_by_label):
                rows.append(_row(name, t, label, 0, n, "unseen"))
            for u, label, (a, n) in _by_labels(lx.inside_by_label):
                rows.append(_row(name, u, label, a, n, "unit"))
            continue
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
    # Shipped inside the model folder: zstd keeps the unified schemas' per-label counts
    # (over a million rows) at about 60% of snappy's size.
    meta = {_META: json.dumps(info, sort_keys=True)}
    storage.write_rows(rows, str(path), LEXICON_V3, meta, compression="zstd", compression_level=9)
    return path


def _by_labels(maps: Mapping[str, Mapping[str, V]]) -> list[tuple[str, str, V]]:
    """``(key, labels, value)`` rows of per-label maps, the labels that share a key's value
    joined by ``|`` in one row (most strings have the same count under every label whose
    passages hold them: one row, not one per label)."""
    grouped: dict[str, dict[V, list[str]]] = {}
    for label in sorted(maps):
        for key, value in maps[label].items():
            grouped.setdefault(key, {}).setdefault(value, []).append(label)
    return [
        (key, "|".join(labels), value)
        for key in sorted(grouped)
        for value, labels in grouped[key].items()
    ]


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
    unseen: dict[str, dict[str, dict[str, int]]] = {}  # schema -> label ("": any) -> string
    inside: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}
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
            for one in label.split("|"):
                unseen.setdefault(schema, {}).setdefault(one, {})[text] = n
        else:
            for one in label.split("|"):
                inside.setdefault(schema, {}).setdefault(one, {})[text] = (annotated, n)
    ratio, count = float(info["min_ratio"]), int(info["min_count"])  # type: ignore[arg-type]
    out = {}
    for s, e in entries.items():
        held, units = unseen.get(s, {}), inside.get(s, {})
        by_label = {label: v for label, v in held.items() if label}
        units_by_label = {label: v for label, v in units.items() if label}
        out[s] = Lexicon(
            s,
            e,
            ratio,
            count,
            held.get("", {}) if not by_label else largest(by_label.values()),
            _veto(info),
            units.get("", {}) if not units_by_label else largest(units_by_label.values()),
            _trim(info),
            by_label,
            units_by_label,
        )
    return out


def _veto(info: Mapping[str, object]) -> int:
    """The footer's veto count; a version 1 lexicon has none (0: no veto)."""
    return int(info.get("veto_count", 0))  # type: ignore[call-overload]


def _trim(info: Mapping[str, object]) -> float | None:
    """The footer's trim ratio; a lexicon before version 3 has no unit counts (None: no
    trimming)."""
    trim = info.get("trim_ratio")
    return None if trim is None else float(trim)  # type: ignore[arg-type]
