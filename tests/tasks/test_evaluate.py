"""Evaluation through the pipeline's path, with hand-made engines whose answers are known."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from bioner.codec import symbolic
from bioner.constraint import SymbolicTarget
from bioner.generation import Engine, Generation, GenerationParams
from bioner.labels import SCHEMAS
from bioner.lexicon import Entry, Lexicon
from bioner.metrics import evaluate
from bioner.prompts import PROMPT_VERSION
from bioner.records import AnnotatedDocument, Document, Span
from tasks.evaluate import (
    constraint_version,
    evaluate_documents,
    passages_of,
    plan_requests,
    spans_across_passages,
)

BC5CDR = SCHEMAS["bc5cdr"]


class FakeEngine:
    """An engine whose answer to a request is ``answer(target)``; tokens are characters."""

    model_id = "fake@000000"
    prompt_version = PROMPT_VERSION

    def __init__(
        self, answer: Callable[[SymbolicTarget], str], max_context: int | None = None
    ) -> None:
        self.answer = answer
        self.settings = {"backend": "fake", "constrained": "off"}
        self.max_context = max_context
        self.prompts: list[str] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        assert targets is not None and len(targets) == len(prompts)
        self.prompts.extend(prompts)
        out = []
        for prompt, target in zip(prompts, targets, strict=True):
            text = self.answer(target)
            out.append(Generation(text, len(prompt), len(text), "stop"))
        return out


def answering(
    start: str, answer: str, otherwise: str | Callable[[SymbolicTarget], str]
) -> FakeEngine:
    """An engine that answers ``answer`` to the passage starting with ``start`` and
    ``otherwise`` (an answer, or a function of the target) to the others."""
    return FakeEngine(
        lambda t: (
            answer
            if t.passage.startswith(start)
            else otherwise(t)
            if callable(otherwise)
            else otherwise
        )
    )


def gold_answers(docs: Sequence[AnnotatedDocument]) -> Callable[[SymbolicTarget], str]:
    """Answers that tag each passage (or window) with the gold spans lying inside it."""

    def answer(target: SymbolicTarget) -> str:
        for d in docs:
            start = d.text.find(target.passage)
            if start != -1:
                end = start + len(target.passage)
                inside = [s.shifted(-start) for s in d.spans if start <= s.start and s.end <= end]
                return symbolic.encode(target.passage, inside, BC5CDR)
        raise AssertionError(f"no document holds {target.passage!r}")

    return answer


def doc(doc_id: str, text: str, *spans: tuple[str, str]) -> AnnotatedDocument:
    """A document with a span on the first occurrence of each (mention, label)."""
    found = []
    for mention, label in spans:
        start = text.index(mention)
        found.append(Span(start, start + len(mention), label))
    return AnnotatedDocument(Document(doc_id, text), tuple(sorted(found)))


DOCS = [
    doc(
        "d1",
        "Famotidine-associated delirium. Cancer of the lung was seen in 3 patients.",
        ("Famotidine", "Chemical"),
        ("delirium", "Disease"),
        ("Cancer of the lung", "Disease"),
    ),
    doc("d2", "Aspirin caused cancer.", ("Aspirin", "Chemical"), ("cancer", "Disease")),
    doc("d3", "Nothing to see here."),
]


def test_the_fake_engine_is_an_engine():
    assert isinstance(FakeEngine(gold_answers(DOCS)), Engine)


def test_gold_answers_score_100_and_give_the_gold_spans_back():
    engine = FakeEngine(gold_answers(DOCS))
    run = evaluate_documents(engine, DOCS, "bc5cdr")
    assert run.passages == 4 == run.requests  # d1 has two sentences
    assert len(engine.prompts) == 4
    assert [d.spans for d in run.predictions] == [d.spans for d in DOCS]
    for scores in (run.evaluation.strict, run.evaluation.relaxed):
        assert scores.micro.f1 == 1.0
        assert scores.macro.f1 == 1.0
        assert {k: s.f1 for k, s in scores.per_type.items()} == {"Chemical": 1.0, "Disease": 1.0}
    summary = run.summary()
    assert summary["decode_issues"] == {"total": 0, "by_kind": {}, "lossy_passages": 0}
    assert summary["gold_spans"] == summary["predicted_spans"] == 5
    assert summary["documents"] == 3 and summary["truncated"] == 0
    assert summary["speed"]["output_tokens"] == sum(g.output_tokens for g in run.generations)


def test_a_known_wrong_answer_gives_the_hand_computed_scores():
    wrong = {
        # Disease is cut too wide, Chemical is missed.
        "Famotidine-associated delirium.": "Disease: [Famotidine-associated delirium].",
        # Right chemical; the disease tagged as a chemical.
        "Aspirin caused cancer.": "Chemical: [Aspirin] caused [cancer].",
    }
    gold = gold_answers(DOCS)
    engine = FakeEngine(lambda t: wrong.get(t.passage) or gold(t))
    docs = [DOCS[0], DOCS[1]]
    # d1's second sentence is answered right: one more Disease true positive.
    run = evaluate_documents(engine, docs, "bc5cdr")
    strict, relaxed = run.evaluation.strict, run.evaluation.relaxed
    # Strict: Chemical tp 1 (Aspirin), fp 1 (cancer), fn 1 (Famotidine);
    #         Disease tp 1 (Cancer of the lung), fp 1 (the wide span), fn 2 (delirium, cancer).
    assert (strict.per_type["Chemical"].tp, strict.per_type["Chemical"].fp) == (1, 1)
    assert strict.per_type["Chemical"].fn == 1
    assert (strict.micro.tp, strict.micro.fp, strict.micro.fn) == (2, 2, 3)
    assert strict.micro.precision == pytest.approx(2 / 4)
    assert strict.micro.recall == pytest.approx(2 / 5)
    assert strict.micro.f1 == pytest.approx(4 / 9)  # 2tp / (2tp + fp + fn) = 4 / 9
    assert strict.per_type["Disease"].f1 == pytest.approx(2 / 5)  # 2 / (2 + 1 + 2)
    assert strict.macro.f1 == pytest.approx((1 / 2 + 2 / 5) / 2)
    # Relaxed: the wide Disease overlaps delirium: Disease tp 2, fp 0, fn 1; Chemical as strict.
    assert (relaxed.micro.tp, relaxed.micro.fp, relaxed.micro.fn) == (3, 1, 2)
    assert relaxed.micro.f1 == pytest.approx(6 / 9)
    fp = run.evaluation.false_positives
    assert (fp.wrong_boundary, fp.wrong_type, fp.wrong_both, fp.spurious) == (1, 1, 0, 0)
    # The same numbers as bioner.metrics on the decoded spans.
    again = evaluate(
        {d.id: d.spans for d in docs},
        {d.id: d.spans for d in run.predictions},
        labels=BC5CDR.labels,
    )
    assert again.to_dict() == run.evaluation.to_dict() == run.summary()["metrics"]


def test_undecodable_answers_are_counted_as_issues_never_raised():
    engine = FakeEngine(lambda t: "Chemical: something else entirely [")
    run = evaluate_documents(engine, DOCS, "bc5cdr")
    summary = run.summary()
    assert summary["decode_issues"]["total"] > 0
    assert summary["decode_issues"]["lossy_passages"] == 4
    assert run.evaluation.strict.micro.tp == 0


def test_a_passage_too_long_for_the_context_is_asked_in_windows_and_merged():
    words = [f"word{i}" for i in range(60)]
    for i in range(0, 60, 7):
        words[i] = f"aspirin{i}"
    text = " ".join(words)
    long_doc = doc("long", text, *((f"aspirin{i}", "Chemical") for i in range(0, 60, 7)))
    whole = FakeEngine(gold_answers([long_doc]))
    [request] = plan_requests(whole, passages_of([long_doc]), "bc5cdr")
    needed = len(request.prompt) + request.params.max_new_tokens + 32
    engine = FakeEngine(gold_answers([long_doc]), max_context=needed - 100)
    run = evaluate_documents(engine, [long_doc], "bc5cdr")
    assert run.passages == 1 and run.requests > 1
    assert run.predictions[0].spans == long_doc.spans
    assert run.evaluation.strict.micro.f1 == 1.0


def test_a_token_cap_caps_every_request():
    engine = FakeEngine(gold_answers(DOCS))
    requests = plan_requests(engine, passages_of(DOCS), "bc5cdr", cap=7)
    assert {r.params.max_new_tokens for r in requests} == {7}


def test_gold_spans_across_passages_are_counted():
    across = doc("x", "It was seen. Then it was not.", ("seen. Then", "Disease"))
    assert spans_across_passages([across], passages_of([across])) == 1
    assert spans_across_passages(DOCS, passages_of(DOCS)) == 0


def test_the_constraint_version_comes_from_the_engine():
    assert constraint_version(FakeEngine(gold_answers(DOCS)), True) == "off"
    bare = FakeEngine(gold_answers(DOCS))
    bare.settings = {}
    assert constraint_version(bare, False) == "off"
    assert constraint_version(bare, True).startswith("copy-")


def test_a_lexicon_fills_the_taggers_gaps_and_the_tagger_alone_is_scored_too():
    # The tagger misses Aspirin; the lexicon knows it, and Famotidine, which the tagger found.
    engine = answering("Aspirin", "Disease: Aspirin caused [cancer].", gold_answers(DOCS))
    entries = {
        "Aspirin": Entry("Aspirin", "Chemical", 9, 10),
        "Famotidine": Entry("Famotidine", "Chemical", 5, 5),
        "see": Entry("see", "Disease", 1, 50),  # ratio 0.02: not a span
    }
    run = evaluate_documents(
        engine, DOCS, "bc5cdr", lexicons={"bc5cdr": Lexicon("bc5cdr", entries)}
    )
    assert run.lexicon_added == 1
    assert [d.spans for d in run.predictions] == [d.spans for d in DOCS]
    assert run.evaluation.strict.micro.f1 == 1.0
    assert run.tagger is not None
    assert (run.tagger.strict.micro.tp, run.tagger.strict.micro.fn) == (4, 1)
    summary = run.summary()
    assert summary["lexicon_added"] == 1
    assert summary["tagger_metrics"] == run.tagger.to_dict()
    assert evaluate_documents(engine, DOCS, "bc5cdr").summary()["tagger_metrics"] is None


def test_later_uses_of_an_abbreviation_are_scored_as_the_pipeline_outputs_them():
    text = "Malignant hyperthermia (MH) after anaesthesia. Two MH crises were fatal."
    spans = tuple(
        sorted([Span(0, 22, "Disease"), Span(24, 26, "Disease"), Span(51, 53, "Disease")])
    )
    docs = [AnnotatedDocument(Document("7", text), spans)]
    engine = answering(
        "Malignant", "Disease: [Malignant hyperthermia] (MH) after anaesthesia.", "None"
    )
    run = evaluate_documents(engine, docs, "ncbi")
    assert run.abbreviations_added == 2 and run.lexicon_added == 0
    assert run.evaluation.strict.micro.f1 == 1.0
    assert run.tagger is not None and run.tagger.strict.micro.tp == 1
    assert run.summary()["abbreviations_added"] == 2


def test_spans_on_a_short_form_defined_on_no_mention_are_dropped_and_counted():
    text = "Hormone therapy (HT) was stopped. HT users were followed."
    docs = [AnnotatedDocument(Document("8", text), ())]
    engine = answering(
        "Hormone",
        "Disease: Hormone therapy ([HT]) was stopped.",
        "Disease: [HT] users were followed.",
    )
    run = evaluate_documents(engine, docs, "ncbi")
    # The tagger took both "HT" for a disease; the document defines it on no mention.
    assert run.tagger is not None and run.tagger.strict.micro.fp == 2
    assert run.evaluation.strict.micro.fp == 0
    assert run.abbreviations_dropped == 2 and run.summary()["abbreviations_dropped"] == 2


def test_a_schema_asked_in_parts_asks_each_type_once_and_merges_the_answers():
    def part_answers(target: SymbolicTarget) -> str:
        asked = [label for label in BC5CDR.labels if BC5CDR.header_of(label) in target.headers]
        part = BC5CDR.restrict(asked)
        for d in DOCS:
            start = d.text.find(target.passage)
            if start != -1:
                end = start + len(target.passage)
                inside = [
                    s.shifted(-start)
                    for s in d.spans
                    if start <= s.start and s.end <= end and s.label in asked
                ]
                return symbolic.encode(target.passage, inside, part)
        raise AssertionError(f"no document holds {target.passage!r}")

    engine = FakeEngine(part_answers)
    groups = {"bc5cdr": [["Disease"]]}
    requests = plan_requests(engine, passages_of(DOCS), "bc5cdr", groups=groups)
    # Disease first (its group), then the types in no group; each passage's parts together.
    assert [(r.passage, r.schema.name) for r in requests[:2]] == [
        (0, "bc5cdr[Disease]"),
        (0, "bc5cdr[Chemical]"),
    ]
    assert {r.asked.name for r in requests} == {"bc5cdr"}
    run = evaluate_documents(engine, DOCS, "bc5cdr", groups=groups)
    assert run.passages == 4 and run.requests == 8 == len(engine.prompts)
    assert [d.spans for d in run.predictions] == [d.spans for d in DOCS]
    assert run.evaluation.strict.micro.f1 == 1.0
