"""Instruction examples for fine-tuning: passages of gold documents, prompts and responses.

One example is one passage of one document, asked with the dataset's schema:

* ``prompt``: :func:`bioner.prompts.build_prompt` of the passage (the plain text; the chat
  template, when the model has one, is applied at training time exactly as the engine does);
* ``response``: the gold answer, :func:`bioner.codec.symbolic.encode` (format ``"symbolic"``)
  or :func:`bioner.codec.json_entities.encode` with the JSON prompt of :data:`JSON_PROMPT_VERSION`
  (format ``"json"``, BioSelectTune's format).

Passages are those of the inference pipeline: with ``unit="sentence"`` (the default) every
document goes through :func:`bioner.segment.segment`, as ``bioner run`` does, so a model is
trained on the units it will be asked about; with ``unit="document"`` a single-line document
up to ``max_chars`` stays whole and only longer ones are segmented.

Spans crossing a passage boundary (a sentence split inside a mention): the passages the span
touches are **kept whole**, merged into one passage, when the merged text has no line break;
otherwise they are dropped. Both are counted (``merged_passages``, ``dropped_passages``), as
are spans that lie in no passage at all (``spans_outside``; whitespace between passages).

Deduplication drops an example whose (prompt, response) was already seen, keeping the first
in input order; ``conflicts`` counts prompts seen with two different responses (both kept).
Everything is deterministic: same documents and options, same examples in the same order.

**Views** (``views``): ``"dataset"`` asks each passage for its dataset's own types under its
own schema (the paper's per-dataset training); ``"unified"`` asks it for the unified types its
dataset annotates (:attr:`bioner.labels.DatasetSpec.unified_types`), its spans relabelled by the
dataset's unified map, under the unified schema restricted to those types (``general[Gene,Cell]``
for JNLPBA). That is training with partial annotation: a dataset that annotates no genes is never
asked for genes, so it never teaches "no genes here". A type a dataset annotates only in part
(:attr:`~bioner.labels.DatasetSpec.partial`: BioNLP13CG's cancers as Disease) is completed from
the datasets that annotate it whole (:func:`complete_partial`) before it is asked. Where both
views ask the same (NCBI-disease's ``Disease`` is the same header and answer in both), the
duplicate is dropped. ``"full"`` asks a passage of a dataset that annotates only some unified
types the whole unified schema, as ``bioner run`` does, and answers the lines of the types it
annotates (:attr:`Example.annotated`; passages without such a span are left out): the loss then
leaves out which type lines appear (:mod:`infra.training.constrained_loss`) and teaches the
brackets of those lines under the full request, so the full request is not learnt from the one
dataset that annotates every type alone.

**Copy examples** (``copy_examples`` > 0, dataset ``copy``): synthetic passages of words (or
Chinese characters) drawn from the training passages, with random spans of one ``Copy`` type in
brackets. A small model trained from scratch must learn to copy the passage before it can place
brackets in it; real examples let it lower its loss with the language's statistics instead,
while in these only copying helps, so a share of them teaches the copy early. Seeded.
"""

from __future__ import annotations

import hashlib
import random
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bioner.codec import json_entities, symbolic
from bioner.labels import DatasetSpec, EntitySchema, EntityType, schema_for
from bioner.lexicon import Annotated, build_lexicons
from bioner.prompts import PROMPT_VERSION, build_prompt, check_prompt_version
from bioner.records import AnnotatedDocument, Passage, Span
from bioner.segment import DEFAULT_MAX_CHARS, segment

_HARD_BREAK = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

Format = Literal["symbolic", "json"]
FORMATS: tuple[Format, ...] = ("symbolic", "json")
View = Literal["dataset", "unified", "full"]
VIEWS: tuple[View, ...] = ("dataset", "unified", "full")
Unit = Literal["sentence", "document"]

#: Version of the JSON-format prompt below (the symbolic one is bioner.prompts.PROMPT_VERSION).
JSON_PROMPT_VERSION = "json-v1"

_JSON_RULE = {
    "en": (
        "Answer with one JSON object and nothing else: "
        '{"entities": [{"text": ..., "type": ...}, ...]}, listing every entity in passage '
        "order with its exact text and one of the type names above. If the passage contains "
        'no entity, answer {"entities": []}'
    ),
    "zh": (
        '只输出一个JSON对象：{"entities": [{"text": ..., "type": ...}, ...]}，按文本顺序列出每一个'
        '实体的原文和上面的类型名称之一。如果文本中没有任何实体，输出{"entities": []}'
    ),
}

#: Fraction of CMeEE-V2 dev documents that go to the training part (the rest: evaluation).
CMEEE_TRAIN_FRACTION = 0.8
_CMEEE_SALT = "cmeee-v2-dev-split-v1"


def build_json_prompt(passage_text: str, schema: EntitySchema) -> str:
    """The JSON-format prompt: the symbolic prompt's instruction, passage and types, JSON rule."""
    symbolic_prompt = build_prompt(passage_text, schema)
    # The symbolic prompt's last paragraph is its output rule; the rest is shared.
    head, _, _ = symbolic_prompt.rpartition("\n\n")
    return f"{head}\n\n{_JSON_RULE[schema.language]}"


def stable_fraction(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``key`` (blake2b), the same on every machine."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def cmeee_part(doc_id: str, train_fraction: float = CMEEE_TRAIN_FRACTION) -> str:
    """``"train"`` or ``"eval"``: the part of the CMeEE-V2 dev split a document belongs to.

    A stable hash of the document id, not the order of the file, decides, so the split does
    not move when documents are added, removed or reordered.
    """
    return "train" if stable_fraction(doc_id, _CMEEE_SALT) < train_fraction else "eval"


@dataclass(frozen=True, slots=True)
class Example:
    """One instruction example: a passage, its prompt and the gold response."""

    id: str
    dataset: str
    language: str
    schema: str
    format: str
    source: str  # the split it comes from, e.g. "ncbi/pubtator/train"
    doc_id: str
    passage: int  # index of the passage in the document (after merges)
    start: int  # offset of the passage in the document text
    prompt: str
    response: str
    text: str
    spans: tuple[tuple[int, int, str], ...]  # gold spans, offsets into ``text``
    #: The version of ``prompt`` (files written before it was recorded: the instruction prompt).
    prompt_version: str = PROMPT_VERSION
    #: The types whose lines the response gives in full, when the schema asks more (the
    #: ``full`` view); empty: every type asked. Which type lines appear is then no lesson.
    annotated: tuple[str, ...] = ()

    @property
    def n_entities(self) -> int:
        return len(self.spans)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (spans as lists)."""
        d = asdict(self)
        d["spans"] = [list(s) for s in self.spans]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Example:
        """The example of a dict written by :meth:`to_json`."""
        spans = tuple((int(a), int(b), str(c)) for a, b, c in d["spans"])
        return cls(**{**d, "spans": spans, "annotated": tuple(d.get("annotated", ()))})


@dataclass
class Counts:
    """What building examples of one dataset did, for the statistics."""

    documents: int = 0
    passages: int = 0
    examples: int = 0
    duplicates_dropped: int = 0
    conflicts: int = 0
    merged_passages: int = 0
    dropped_passages: int = 0
    dropped_spans: int = 0
    spans_outside: int = 0
    eval_overlap_dropped: int = 0
    #: Spans of a partial type filled in before the unified view asks it (complete_partial).
    completed: int = 0
    entities: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class BuildOptions:
    """How documents become examples."""

    max_chars: int = DEFAULT_MAX_CHARS
    unit: Unit = "sentence"
    formats: tuple[Format, ...] = ("symbolic",)
    #: The symbolic format's prompt version (:data:`bioner.prompts.PROMPT_VERSIONS`).
    prompt: str = PROMPT_VERSION
    #: Synthetic copy examples added to the training examples (see the module doc).
    copy_examples: int = 0
    copy_seed: int = 0
    #: Which requests each passage is asked with (module doc): its dataset's schema, the
    #: unified schema's types it annotates, or both.
    views: tuple[View, ...] = ("dataset",)

    def __post_init__(self) -> None:
        if not self.views or any(v not in VIEWS for v in self.views):
            raise ValueError(f"views must be a non-empty subset of {VIEWS}: {self.views}")
        if not self.formats or any(f not in FORMATS for f in self.formats):
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}: {self.formats}")
        check_prompt_version(self.prompt)
        if self.copy_examples < 0:
            raise ValueError(f"copy_examples must be >= 0, got {self.copy_examples}")
        if self.prompt != PROMPT_VERSION and "json" in self.formats:
            raise ValueError(f"the JSON format has no {self.prompt} prompt; build it apart")
        if self.unit not in ("sentence", "document"):
            raise ValueError(f"unit must be 'sentence' or 'document', got {self.unit!r}")

    @property
    def prompt_versions(self) -> dict[str, str]:
        versions = {"symbolic": self.prompt, "json": JSON_PROMPT_VERSION}
        return {f: versions[f] for f in self.formats}


def _touches(span: Span, p: Passage) -> bool:
    return span.start < p.end and p.start < span.end


def _base_passages(doc: AnnotatedDocument, options: BuildOptions) -> list[Passage]:
    d = doc.document
    text = d.text
    if (
        options.unit == "document"
        and len(text) <= options.max_chars
        and "\n" not in text
        and "\r" not in text
        and text.strip()
    ):
        start = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        return [Passage(d.id, 0, start, end, text[start:end], d.version, d.language)]
    return segment(d, max_chars=options.max_chars)


def passages_with_spans(
    doc: AnnotatedDocument, options: BuildOptions, counts: Counts | None = None
) -> list[tuple[Passage, list[Span]]]:
    """The passages of ``doc`` with the gold spans inside each (offsets into the passage).

    See the module docstring for spans crossing a boundary (merged, else dropped).
    """
    counts = counts if counts is not None else Counts()
    text = doc.document.text
    base = _base_passages(doc, options)
    link = [False] * len(base)  # link[i]: passage i is merged with passage i + 1
    broken = [False] * len(base)  # a span sticks out of passage i into no other passage
    for s in doc.spans:
        touched = [i for i, p in enumerate(base) if _touches(s, p)]
        if not touched:
            counts.spans_outside += 1
            continue
        lo, hi = touched[0], touched[-1]
        for k in range(lo, hi):
            link[k] = True
        if s.start < base[lo].start or s.end > base[hi].end:
            broken[lo] = True  # marks the group: the span reaches into whitespace only
    out: list[tuple[Passage, list[Span]]] = []
    i = 0
    while i < len(base):
        j = i
        while link[j]:
            j += 1
        start, end = base[i].start, base[j].end
        n = j - i + 1
        spans_here = [s for s in doc.spans if s.start < end and start < s.end]
        if any(broken[i : j + 1]) or (n > 1 and _HARD_BREAK.search(text, start, end)):
            counts.dropped_passages += n
            counts.dropped_spans += len(spans_here)
        else:
            if n > 1:
                counts.merged_passages += n
            d = doc.document
            p = Passage(d.id, len(out), start, end, text[start:end], d.version, d.language)
            out.append((p, sorted({s.shifted(-start) for s in spans_here})))
        i = j + 1
    return out


#: A partial type is completed with the strings the datasets that annotate it whole annotate in
#: at least this share of their occurrences, and at least this often (stricter than decoding's
#: lexicon rule: these become training answers).
COMPLETE_MIN_RATIO = 0.5
COMPLETE_MIN_COUNT = 2


def unified_spec(spec: DatasetSpec, unasked: Iterable[str] = ()) -> DatasetSpec:
    """The spec of ``spec``'s unified view: same name, the unified request as its schema
    (without the types ``unasked``)."""
    left = [label for label in spec.unified_types if label not in set(unasked)]
    return DatasetSpec(spec.name, spec.unified_schema.restrict(left), {}, {}, spec.partial)


def unified_view(doc: AnnotatedDocument, spec: DatasetSpec) -> AnnotatedDocument:
    """``doc`` with its spans relabelled by ``spec``'s unified map; spans of a label the map
    leaves out go (see :attr:`bioner.labels.DatasetSpec.unified`)."""
    spans = [
        Span(s.start, s.end, spec.unified[s.label]) for s in doc.spans if s.label in spec.unified
    ]
    return AnnotatedDocument(doc.document, tuple(sorted(set(spans))))


def complete_partial(
    docs: Sequence[AnnotatedDocument], label: str, whole: Iterable[AnnotatedDocument]
) -> tuple[list[AnnotatedDocument], int]:
    """``docs`` with the mentions of ``label`` they leave unannotated filled in, and how many.

    ``whole`` are documents (unified view) of datasets that annotate ``label`` whole. Their
    strings annotated ``label`` in at least :data:`COMPLETE_MIN_RATIO` of their occurrences
    and at least :data:`COMPLETE_MIN_COUNT` times are found in ``docs`` (unit-bounded, longest
    first), and each one that overlaps no span of the document becomes a ``label`` span: in
    BioNLP13CG, which annotates cancers only, "diabetes" or "ischemia".
    """
    passages = [
        Annotated("whole", d.document.text, tuple((s.start, s.end, s.label) for s in d.spans))
        for d in whole
    ]
    lexicon = build_lexicons(passages, COMPLETE_MIN_RATIO, COMPLETE_MIN_COUNT, veto_count=0).get(
        "whole"
    )
    if lexicon is None:
        return list(docs), 0
    out, added = [], 0
    for d in docs:
        found = [
            m
            for m in lexicon.find(d.document.text)
            if m.label == label and not any(m.start < s.end and s.start < m.end for s in d.spans)
        ]
        added += len(found)
        out.append(AnnotatedDocument(d.document, tuple(sorted({*d.spans, *found}))))
    return out, added


def _example(
    p: Passage, spans: list[Span], spec: DatasetSpec, source: str, fmt: Format, prompt_version: str
) -> Example:
    schema = spec.schema
    if fmt == "symbolic":
        prompt = build_prompt(p.text, schema, prompt_version)
        response = symbolic.encode(p.text, spans, schema)
    else:
        prompt = build_json_prompt(p.text, schema)
        response = json_entities.encode(p.text, spans, schema)
    suffix = "" if fmt == "symbolic" else f":{fmt}"
    return Example(
        id=f"{source}:{p.doc_id}#{p.index}{suffix}",
        dataset=spec.name,
        language=schema.language,
        schema=schema.name,
        format=fmt,
        source=source,
        doc_id=p.doc_id,
        passage=p.index,
        start=p.start,
        prompt=prompt,
        response=response,
        text=p.text,
        spans=tuple((s.start, s.end, s.label) for s in spans),
        prompt_version=prompt_version if fmt == "symbolic" else JSON_PROMPT_VERSION,
    )


def examples_of(
    docs: Iterable[AnnotatedDocument],
    spec: DatasetSpec,
    source: str,
    options: BuildOptions,
    counts: Counts | None = None,
) -> Iterator[Example]:
    """Examples of ``docs`` (not deduplicated) in document, passage, format order."""
    counts = counts if counts is not None else Counts()
    for doc in docs:
        counts.documents += 1
        for p, spans in passages_with_spans(doc, options, counts):
            counts.passages += 1
            for fmt in options.formats:
                yield _example(p, spans, spec, source, fmt, options.prompt)


def deduplicate(
    examples: Iterable[Example], counts: dict[str, Counts] | None = None
) -> list[Example]:
    """Examples with the first of each (prompt, response) kept; counts per dataset updated."""
    counts = counts if counts is not None else {}
    seen: set[tuple[str, str]] = set()
    responses: dict[str, str] = {}
    conflicted: set[str] = set()
    out: list[Example] = []
    for ex in examples:
        c = counts.setdefault(ex.dataset, Counts())
        key = (ex.prompt, ex.response)
        if key in seen:
            c.duplicates_dropped += 1
            continue
        seen.add(key)
        first = responses.setdefault(ex.prompt, ex.response)
        if first != ex.response and ex.prompt not in conflicted:
            conflicted.add(ex.prompt)
            c.conflicts += 1
        out.append(ex)
    return out


def drop_overlap(
    examples: Sequence[Example], held_out: Iterable[Example], counts: dict[str, Counts]
) -> list[Example]:
    """``examples`` without those whose (dataset, passage text) occurs in ``held_out``.

    Guards an evaluation part against leaks through repeated texts in the source.
    """
    banned = {(e.dataset, e.text) for e in held_out}
    out = []
    for ex in examples:
        if (ex.dataset, ex.text) in banned:
            counts.setdefault(ex.dataset, Counts()).eval_overlap_dropped += 1
        else:
            out.append(ex)
    return out


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def statistics_of(
    examples: Sequence[Example], counts: dict[str, Counts] | None = None
) -> dict[str, dict[str, Any]]:
    """Per dataset (in first-seen order): examples, entities per type, lengths, the counts."""
    counts = counts or {}
    by_dataset: dict[str, list[Example]] = {}
    for ex in examples:
        by_dataset.setdefault(ex.dataset, []).append(ex)
    for name in counts:
        by_dataset.setdefault(name, [])
    out: dict[str, dict[str, Any]] = {}
    for name, exs in by_dataset.items():
        c = counts.get(name, Counts())
        entities: Counter[str] = Counter()
        per_format: Counter[str] = Counter()
        for ex in exs:
            per_format[ex.format] += 1
            if ex.format == exs[0].format:  # count each passage's entities once
                entities.update(label for _, _, label in ex.spans)
        out[name] = {
            "examples": len(exs),
            "examples_per_format": dict(sorted(per_format.items())),
            "with_entities": sum(1 for ex in exs if ex.spans),
            "without_entities": sum(1 for ex in exs if not ex.spans),
            "entities": sum(entities.values()),
            "entities_per_type": dict(sorted(entities.items())),
            "documents": c.documents,
            "passages": c.passages,
            "duplicates_dropped": c.duplicates_dropped,
            "conflicts": c.conflicts,
            "merged_passages": c.merged_passages,
            "dropped_passages": c.dropped_passages,
            "dropped_spans": c.dropped_spans,
            "spans_outside": c.spans_outside,
            "eval_overlap_dropped": c.eval_overlap_dropped,
            "completed": c.completed,
            "prompt_chars": _summary([len(ex.prompt) for ex in exs]),
            "response_chars": _summary([len(ex.response) for ex in exs]),
        }
    return out


COPY_DATASET = "copy"
_COPY_TYPE = EntityType("Copy", "Copy", "any span of the passage")
COPY_SCHEMAS = {
    language: EntitySchema(COPY_DATASET, language, (_COPY_TYPE,)) for language in ("en", "zh")
}


def example_schema(example: Example) -> EntitySchema:
    """The schema ``example`` was asked with: the copy examples' own, else its dataset's."""
    if example.dataset == COPY_DATASET:
        return COPY_SCHEMAS[example.language]
    return schema_for(example.schema, example.language)


def _random_spans(rng: random.Random, bounds: list[tuple[int, int]], most: int) -> list[Span]:
    """Up to 3 non-overlapping spans over runs of 1..``most`` units (``bounds``: unit offsets)."""
    spans: list[Span] = []
    taken: set[int] = set()
    for _ in range(rng.randint(0, 3)):
        a = rng.randrange(len(bounds))
        b = min(len(bounds), a + rng.randint(1, most))
        if taken.isdisjoint(range(a, b)):
            taken.update(range(a, b))
            spans.append(Span(bounds[a][0], bounds[b - 1][1], _COPY_TYPE.label))
    return sorted(spans)


def copy_examples(
    train: Sequence[Example], n: int, seed: int = 0, prompt_version: str = PROMPT_VERSION
) -> list[Example]:
    """``n`` synthetic copy examples from the words and characters of ``train`` (module doc).

    Languages in the proportion of ``train``'s symbolic examples. English: 3 to 45 words drawn
    at random; Chinese: 5 to 80 characters, drawn at random or a stretch of a real passage.
    """
    symbolic_train = [e for e in train if e.format == "symbolic" and e.dataset != COPY_DATASET]
    words = [w for e in symbolic_train if e.language == "en" for w in e.text.split()]
    zh_texts = [e.text for e in symbolic_train if e.language == "zh"]
    chars = [c for t in zh_texts for c in t if not c.isspace()]
    share_zh = len(zh_texts) / max(1, len(symbolic_train))
    rng = random.Random(seed)
    out = []
    for i in range(n):
        zh = bool(chars) and (not words or rng.random() < share_zh)
        if zh:
            if rng.random() < 0.5:
                text = "".join(rng.choice(chars) for _ in range(rng.randint(5, 80)))
            else:
                t = rng.choice(zh_texts)
                a = rng.randrange(len(t))
                text = t[a : a + rng.randint(5, 80)].strip() or t.strip()
            bounds = [(k, k + 1) for k in range(len(text))]
            spans = _random_spans(rng, bounds, 6)
        else:
            picked = [rng.choice(words) for _ in range(rng.randint(3, 45))]
            text = " ".join(picked)
            bounds, at = [], 0
            for w in picked:
                bounds.append((at, at + len(w)))
                at += len(w) + 1
            spans = _random_spans(rng, bounds, 3)
        schema = COPY_SCHEMAS["zh" if zh else "en"]
        out.append(
            Example(
                id=f"synthetic/copy:{i}",
                dataset=COPY_DATASET,
                language=schema.language,
                schema=schema.name,
                format="symbolic",
                source="synthetic/copy",
                doc_id=str(i),
                passage=0,
                start=0,
                prompt=build_prompt(text, schema, prompt_version),
                response=symbolic.encode(text, spans, schema),
                text=text,
                spans=tuple((s.start, s.end, s.label) for s in spans),
                prompt_version=prompt_version,
            )
        )
    return out
