"""Build the training data folder from the shared benchmark data (``BIONER_DATA_DIR``).

Sources (:data:`TRAIN_SOURCES`), in this order:

* NCBI-disease train and BC5CDR train as whole abstracts (PubTator), segmented like the
  inference pipeline segments documents (natural text; the IOB files are tokenised text);
* JNLPBA ``standoff/train`` minus the 200 documents of ``jnlpba/mtl_devel_doc_ids.txt`` (the
  usual train split; those 200 are its development set);
* BioNLP13CG and BioNLP11ID train (tokens re-joined as running text, see ``infra.datasets``);
* cMedQANER and cEHRNER train;
* CMeEE-V2: **its train split is not available here**; its dev split is divided 80/20 by a
  stable hash of the document id (:func:`bioner.training.data.cmeee_part`) into a training
  part and an evaluation part. Training passages whose text also occurs in the evaluation
  part are dropped (``eval_overlap_dropped``).

The folder written (deterministic: the same data and options give the same bytes)::

    train.jsonl           training examples (bioner.training.data.Example, one JSON a line)
    eval.jsonl            examples of the CMeEE evaluation part
    eval/cmeee.jsonl      the CMeEE evaluation part as canonical gold documents (bioner eval)
    stats.json            statistics per dataset, the options and the sources
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bioner.errors import InputError
from bioner.labels import DATASETS, DatasetSpec
from bioner.readers.canonical import write_canonical
from bioner.records import AnnotatedDocument
from bioner.training.data import (
    BuildOptions,
    Counts,
    Example,
    cmeee_part,
    complete_partial,
    copy_examples,
    deduplicate,
    drop_overlap,
    examples_of,
    statistics_of,
    unified_spec,
    unified_view,
)
from infra.datasets import SPLITS, data_dir, load_split

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
STATS_FILE = "stats.json"
CMEEE_EVAL_DOCS = "eval/cmeee.jsonl"


@dataclass(frozen=True)
class TrainSource:
    """One source of training examples: a split of the catalogue and what to keep of it."""

    dataset: str
    split: str  # key of infra.datasets.SPLITS
    exclude_ids: str = ""  # file (relative to the data folder) of document ids to leave out
    part: str = ""  # "train": only the hash-selected training part (CMeEE)
    note: str = ""


TRAIN_SOURCES: tuple[TrainSource, ...] = (
    TrainSource("ncbi", "ncbi/pubtator/train"),
    TrainSource("bc5cdr", "bc5cdr/pubtator/train"),
    TrainSource(
        "jnlpba",
        "jnlpba/standoff/train",
        exclude_ids="jnlpba/mtl_devel_doc_ids.txt",
        note="standoff/train minus the 200 devel documents of mtl_devel_doc_ids.txt",
    ),
    TrainSource("bionlp13cg", "bionlp13cg/train"),
    TrainSource("bionlp11id", "bionlp11id/train"),
    TrainSource("cmedqaner", "cmedqaner/train"),
    TrainSource("cehrner", "cehrner/train"),
    TrainSource(
        "cmeee",
        "cmeee/v2/dev",
        part="train",
        note="CMeEE-V2's own train split is not available here: the dev split is divided "
        "80/20 by a stable hash of the document id; this is the 80% training part",
    ),
)
DATASET_NAMES = tuple(s.dataset for s in TRAIN_SOURCES)


@dataclass
class BuiltData:
    """What :func:`build_training_data` made, in memory (the files hold the same)."""

    train: list[Example]
    eval: list[Example]
    eval_docs: list[AnnotatedDocument]
    stats: dict[str, Any]


def read_ids(path: Path) -> set[str]:
    """The document ids of a file with one id a line (blank lines ignored)."""
    return {line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()}


def _excluded(root: Path, source: TrainSource) -> set[str]:
    return read_ids(root / source.exclude_ids) if source.exclude_ids else set()


def sources_for(datasets: Sequence[str] | None) -> tuple[TrainSource, ...]:
    """The sources of the named datasets (all when None), or ValueError naming the known."""
    if datasets is None:
        return TRAIN_SOURCES
    unknown = sorted(set(datasets) - set(DATASET_NAMES))
    if unknown:
        raise ValueError(f"unknown training set(s) {unknown}; known: {', '.join(DATASET_NAMES)}")
    return tuple(s for s in TRAIN_SOURCES if s.dataset in set(datasets))


def cmeee_eval_documents(root: Path | None = None) -> list[AnnotatedDocument]:
    """The CMeEE-V2 evaluation part (20% of the dev split), for evaluation commands."""
    return [d for d in load_split("cmeee/v2/dev", root) if cmeee_part(d.id) == "eval"]


def build_training_data(
    root: Path | None = None,
    options: BuildOptions | None = None,
    datasets: Sequence[str] | None = None,
) -> BuiltData:
    """Examples and statistics of the training sources (see the module docstring)."""
    root = root or data_dir()
    options = options or BuildOptions()
    counts: dict[str, Counts] = {}
    raw: list[Example] = []
    eval_raw: list[Example] = []
    eval_docs: list[AnnotatedDocument] = []
    eval_counts: dict[str, Counts] = {}
    chosen = sources_for(datasets)
    loaded = {source.dataset: _load(root, source) for source in chosen}
    trained: dict[str, list[AnnotatedDocument]] = {}
    for source in chosen:
        spec = DATASETS[source.dataset]
        docs = loaded[source.dataset]
        if source.part:
            held = [d for d in docs if cmeee_part(d.id) != source.part]
            docs = [d for d in docs if cmeee_part(d.id) == source.part]
            eval_docs.extend(held)
            ec = eval_counts.setdefault(f"{source.dataset}-eval", Counts())
            eval_raw.extend(
                _renamed(examples_of(held, spec, f"{source.split}:eval", options, ec), "-eval")
            )
        trained[source.dataset] = docs
    for source in chosen:
        spec, docs = DATASETS[source.dataset], trained[source.dataset]
        c = counts.setdefault(source.dataset, Counts())
        # A dataset read straight into unified types (BioNLP13CG, BioNLP11ID) has no schema of
        # its own to ask: its unified view is its dataset view, completed.
        own = spec.schema.base not in ("general", "general-zh") or "unified" not in options.views
        if "dataset" in options.views and own:
            raw.extend(examples_of(docs, spec, source.split, options, c))
        if "unified" in options.views:
            unified = [unified_view(d, spec) for d in docs]
            unasked = []
            for label in spec.partial:
                whole = [
                    unified_view(d, DATASETS[other])
                    for other, other_docs in trained.items()
                    if label in DATASETS[other].scored_types
                    and DATASETS[other].schema.language == spec.schema.language
                    for d in other_docs
                ]
                if not whole:  # nothing to complete it from: the type is not asked
                    unasked.append(label)
                    continue
                unified, added = complete_partial(unified, label, whole)
                c.completed += added
            view = unified_spec(spec, unasked)
            unified = [
                AnnotatedDocument(d.document, tuple(s for s in d.spans if s.label not in unasked))
                for d in unified
            ]
            raw.extend(examples_of(unified, view, source.split, options, c))
        if "full" in options.views:
            raw.extend(full_examples(docs, spec, source.split, options, c))
    eval_examples = deduplicate(eval_raw, eval_counts)
    train = deduplicate(drop_overlap(raw, _renamed(eval_examples, ""), counts), counts)
    if options.copy_examples:
        train += copy_examples(train, options.copy_examples, options.copy_seed, options.prompt)
    stats = {
        "datasets": statistics_of(train, counts),
        "eval": statistics_of(eval_examples, eval_counts),
        "total_examples": len(train),
        "total_eval_examples": len(eval_examples),
        "options": {**asdict(options), "prompt_versions": options.prompt_versions},
        "sources": [asdict(s) for s in sources_for(datasets)],
        "split_files": {s.split: SPLITS[s.split].path for s in sources_for(datasets)},
    }
    return BuiltData(train, eval_examples, eval_docs, stats)


def full_examples(
    docs: Sequence[AnnotatedDocument],
    spec: DatasetSpec,
    source: str,
    options: BuildOptions,
    counts: Counts,
) -> list[Example]:
    """The ``full`` view of a dataset (:mod:`bioner.training.data`): its passages with a span
    of a type it annotates whole, asked the whole unified schema, answering those types'
    lines; none for a dataset that annotates every unified type whole."""
    annotated = spec.scored_types
    full = spec.unified_schema
    if set(spec.unified_types) == set(full.labels):  # its unified view asks the full schema
        return []
    docs = [
        AnnotatedDocument(u.document, tuple(s for s in u.spans if s.label in annotated))
        for u in (unified_view(d, spec) for d in docs)
    ]
    view = DatasetSpec(spec.name, full, {}, {})
    return [
        replace(e, annotated=annotated)
        for e in examples_of(docs, view, source, options, counts)
        if e.spans and e.format == "symbolic"
    ]


def _load(root: Path, source: TrainSource) -> list[AnnotatedDocument]:
    """The documents of ``source``'s split, without its excluded ids."""
    excluded = _excluded(root, source)
    return [d for d in load_split(source.split, root) if d.id not in excluded]


def _renamed(examples: Iterable[Example], suffix: str) -> list[Example]:
    """Examples with ``-eval`` added to (``suffix="-eval"``) or removed from the dataset name."""
    return [replace(ex, dataset=ex.dataset.removesuffix("-eval") + suffix) for ex in examples]


def _json_lines(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_training_data(data: BuiltData, out_dir: Path) -> Path:
    """Write the folder described in the module docstring; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAIN_FILE).write_text(_json_lines(e.to_json() for e in data.train), "utf-8")
    (out_dir / EVAL_FILE).write_text(_json_lines(e.to_json() for e in data.eval), "utf-8")
    (out_dir / CMEEE_EVAL_DOCS).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / CMEEE_EVAL_DOCS).write_text(write_canonical(data.eval_docs), "utf-8")
    (out_dir / STATS_FILE).write_text(
        json.dumps(data.stats, ensure_ascii=False, indent=2) + "\n", "utf-8"
    )
    return out_dir


def read_examples(path: Path) -> list[Example]:
    """Examples of a JSON lines file (``train.jsonl``), or of a data folder's ``train.jsonl``."""
    if path.is_dir():
        path = path / TRAIN_FILE
    examples = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                examples.append(Example.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
                # This function resolved the file, so it names it.
                raise InputError(
                    f"not a training example: {what}", line=n, file=str(path)
                ) from None
    return examples


def data_digest(examples: Sequence[Example]) -> str:
    """A digest of examples (ids, prompts, responses in order): names the data a model saw."""
    h = hashlib.blake2b(digest_size=8)
    for e in examples:
        h.update(e.id.encode() + b"\0" + e.prompt.encode() + b"\0" + e.response.encode() + b"\0")
    return h.hexdigest()


def write_examples(examples: Iterable[Example], path: Path) -> None:
    """Examples as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_json_lines(e.to_json() for e in examples), "utf-8")
