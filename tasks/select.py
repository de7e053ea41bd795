"""Prefect tasks of the select stage: score a shard's candidate entities, train a selector.

:func:`select_shard` reads an entities table (``entities/1`` from decode, or ``entities/2`` to
score again) and the passages table of the same shard, scores every candidate with a trained
selector (:mod:`infra.selector`) and writes ``entities/2``: every row kept, ``score``,
``selected`` and ``reason`` filled. A row that cannot be a candidate (no such passage, offsets
outside it, text not the passage's at its offsets) is not dropped: it is rejected with that
reason (or, with ``strict``, fails the task naming the file and the record).

:func:`train_selector` trains one on a benchmark's gold train split and chooses its threshold
on the dev split (:mod:`infra.selector.data`), and saves the selector folder.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from bioner.errors import InputError
from bioner.labels import dataset
from bioner.records import Span
from bioner.selector import Candidate, Reason, candidate_in_passage
from infra import publish, storage
from infra.entity_tables import read_entities
from infra.selector.data import load_set
from infra.selector.selector import Selector
from infra.selector.train import TrainConfig, train
from schemas import ENTITIES_V4, PASSAGES_V1, SCHEMA_KEY
from tasks._common import TASK_OPTIONS as _TASK
from tasks._common import table_metadata as _metadata
from tasks.progress import report

log = logging.getLogger(__name__)

#: The table folder the selected entities of ``OUT/entities/shard=<k>.parquet`` go to.
SELECTED_TABLE = publish.SELECTED
_MALFORMED = {Reason.NO_PASSAGE, Reason.OUTSIDE_PASSAGE, Reason.TEXT_MISMATCH}


def sibling_uri(entities_uri: str, table: str) -> str:
    """``OUT/<table>/shard=<k>.parquet`` for ``OUT/entities/shard=<k>.parquet``."""
    head, sep, name = entities_uri.rstrip("/").rpartition("/")
    parent, _, _ = head.rpartition("/")
    if not sep or not parent:
        raise ValueError(
            f"{entities_uri}: not inside a table folder (OUT/entities/shard=<k>.parquet); "
            "give the passages and output URIs"
        )
    return storage.join(parent, table, name)


@functools.lru_cache(maxsize=2)
@functools.lru_cache(maxsize=2)
def selector_for(selector_dir: str, device: str = "cpu", gpu: str = "auto") -> Selector:
    """The selector of this process, loaded once per folder and reused by every shard."""
    return Selector.load(selector_dir, device=device, gpu=gpu)


def selector_version(selector_dir: str) -> str:
    """The content version of a selector folder, from its config alone (no weights loaded)."""
    config = Path(selector_dir) / "selector.json"
    try:
        return str(json.loads(config.read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError) as e:
        raise FileNotFoundError(f"{config}: no selector config ({e})") from None


def selection_is_current(candidates_uri: str, out_uri: str, selector_dir: str) -> bool:
    """Whether ``out_uri`` holds this selector's decisions on the candidates as they are now:
    same candidates run (decode writes a new table on every change) and same selector."""
    if not publish.made_from_current(candidates_uri, out_uri):
        return False
    made_by = storage.read_metadata(out_uri).get("bioner.selector_version")
    return made_by == selector_version(selector_dir)


def record_name(row: Mapping[str, Any]) -> str:
    """How a candidate row is named in messages: ``doc#passage[start:end] label``."""
    return f"{row['doc_id']}#{row['passage_index']}[{row['start']}:{row['end']}] {row['label']}"


def candidates_of(
    rows: Sequence[Mapping[str, Any]], passages: Mapping[tuple[str, int, int], Mapping[str, Any]]
) -> list[Candidate | str]:
    """Each row's candidate in its passage, or the reason it cannot be one."""
    out: list[Candidate | str] = []
    for r in rows:
        p = passages.get((r["doc_id"], r["doc_version"], r["passage_index"]))
        out.append(
            candidate_in_passage(
                p["text"] if p else None,
                p["start"] if p else 0,
                r["start"],
                r["end"],
                r["text"],
                r["label"],
            )
        )
    return out


@task(name="select", **_TASK)
def select_shard(
    candidates_uri: str,
    selector_dir: str,
    out_uri: str | None = None,
    passages_uri: str | None = None,
    run_id: str = "",
    *,
    batch_size: int = 64,
    device: str = "cpu",
    gpu: str = "auto",
    strict: bool = False,
) -> str:
    """Score and decide every candidate of one shard; returns the URI written.

    Defaults: passages from ``OUT/passages/shard=<k>.parquet`` and output to
    ``OUT/selected/shard=<k>.parquet`` for candidates at ``OUT/entities/shard=<k>.parquet``.
    """
    # A wrong or missing table fails here, before the selector loads.
    rows = read_entities(candidates_uri, what="candidates").to_pylist()
    passages_uri = passages_uri or sibling_uri(candidates_uri, "passages")
    out_uri = out_uri or sibling_uri(candidates_uri, SELECTED_TABLE)
    if not storage.exists(passages_uri):
        raise FileNotFoundError(f"{passages_uri}: no such passages table (for {candidates_uri})")
    selector = selector_for(str(selector_dir), device, gpu)
    passages = {
        (p["doc_id"], p["doc_version"], p["index"]): p
        for p in storage.read_table(passages_uri, PASSAGES_V1).to_pylist()
    }
    found = candidates_of(rows, passages)
    if strict:
        for r, c in zip(rows, found, strict=True):
            if isinstance(c, str):
                raise InputError(f"{c.replace('_', ' ')} ({passages_uri})", record=record_name(r))
    good = [i for i, c in enumerate(found) if isinstance(c, Candidate)]
    cands = [c for c in found if isinstance(c, Candidate)]
    started = time.perf_counter()
    report("select", 0, len(cands), 0)
    scores = selector.score(
        cands, batch_size, lambda done: report("select", done, len(cands), done)
    )
    elapsed = time.perf_counter() - started
    reasons = selector.decide(scores, [c.label for c in cands])
    out_rows = []
    by_row = {i: (float(s), r) for i, s, r in zip(good, scores, reasons, strict=True)}
    for i, (row, c) in enumerate(zip(rows, found, strict=True)):
        score, reason = by_row.get(i, (None, Reason(c) if isinstance(c, str) else None))
        if reason in _MALFORMED:
            log.warning("%s: %s: %s; kept, rejected", candidates_uri, record_name(row), reason)
        out_rows.append(
            {
                **row,
                "score": score,
                "selected": reason is Reason.ACCEPTED,
                "reason": str(reason),
            }
        )
    counts = Counter(r["reason"] for r in out_rows)
    settings = storage.read_metadata(candidates_uri)
    meta = {
        k: v for k, v in settings.items() if k.startswith("bioner.") and k != SCHEMA_KEY.decode()
    }
    meta.update(
        _metadata(
            run_id or settings.get("bioner.run_id", ""),
            **{
                "bioner.selector": str(selector_dir),
                publish.CANDIDATES_RUN: settings.get("bioner.run_id", ""),
                "bioner.selector_version": str(selector.info.get("version", "")),
                "bioner.selector_threshold": repr(selector.settings.threshold),
                "bioner.selector_method": selector.settings.method,
                "bioner.select_reasons": ",".join(f"{k}={v}" for k, v in sorted(counts.items())),
                "bioner.select_seconds": f"{elapsed:.3f}",
            },
        )
    )
    return storage.write_rows(out_rows, out_uri, ENTITIES_V4, meta)


def selection_summary(out_uri: str) -> dict[str, Any]:
    """Counts of a selected entities table: rows, accepted, by reason, by label, scores."""
    table = read_entities(out_uri, ["label", "score", "selected", "reason"])
    labels = table["label"].to_pylist()
    selected = table["selected"].to_pylist()
    scores = [s for s in table["score"].to_pylist() if s is not None]
    by_label: dict[str, list[int]] = {}
    for label, ok in zip(labels, selected, strict=True):
        by_label.setdefault(label, [0, 0])[0] += 1
        by_label[label][1] += int(bool(ok))
    meta = storage.read_metadata(out_uri)
    return {
        "uri": out_uri,
        "candidates": table.num_rows,
        "accepted": sum(bool(s) for s in selected),
        "reasons": dict(Counter(table["reason"].to_pylist())),
        "by_label": {k: {"candidates": v[0], "accepted": v[1]} for k, v in by_label.items()},
        "mean_score": float(np.mean(scores)) if scores else None,
        "threshold": float(meta.get("bioner.selector_threshold", "nan")),
        "seconds": float(meta.get("bioner.select_seconds", "0")),
    }


def malformed_rows(out_uri: str, limit: int = 5) -> list[tuple[str, str]]:
    """``(record, reason)`` of up to ``limit`` rows that could not be candidates."""
    table = read_entities(out_uri).to_pylist()
    bad = [(record_name(r), r["reason"]) for r in table if r["reason"] in _MALFORMED]
    return bad[:limit]


@task(name="train-selector", **_TASK)
def train_selector(
    set_name: str,
    out_dir: str,
    *,
    encoder: str | None = None,
    data_root: str | None = None,
    config: TrainConfig | None = None,
    train_predictions: Mapping[str, Sequence[Span]] | None = None,
    dev_predictions: Mapping[str, Sequence[Span]] | None = None,
) -> str:
    """Train a selector on benchmark ``set_name`` (train split; threshold on dev) into
    ``out_dir``; returns ``out_dir``. Progress goes to :func:`tasks.progress.report` as
    ``selector-train`` (steps), ``selector-bank`` and ``selector-dev`` (candidates)."""
    config = config or TrainConfig()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not empty; choose a new folder")
    splits = load_set(set_name, Path(data_root) if data_root else None, test=False)
    labels = dataset(set_name).schema.labels
    selector = train(
        splits.train,
        splits.dev,
        labels,
        config,
        encoder=encoder,
        train_predictions=train_predictions,
        dev_predictions=dev_predictions,
        on_progress=lambda stage, done, total: report(f"selector-{stage}", done, total),
        info={"set": set_name, "schema": dataset(set_name).schema.name},
    )
    selector.save(out)
    return str(out)
