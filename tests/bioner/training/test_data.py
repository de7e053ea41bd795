"""Training examples: passages, crossing spans, prompts/responses, dedup, CMeEE split, stats."""

from __future__ import annotations

import pytest

from bioner.codec import json_entities, symbolic
from bioner.labels import DATASETS
from bioner.prompts import build_prompt
from bioner.records import AnnotatedDocument, Document, Span
from bioner.training.data import (
    BuildOptions,
    Counts,
    Example,
    build_json_prompt,
    cmeee_part,
    deduplicate,
    drop_overlap,
    examples_of,
    passages_with_spans,
    stable_fraction,
    statistics_of,
)

BC5 = DATASETS["bc5cdr"]
TEXT = "Famotidine-associated delirium. It resolved. Dr. Smith treated the delirium."


def _doc(text=TEXT, spans=(), doc_id="d1", title=""):
    return AnnotatedDocument(Document(doc_id, text, title=title), tuple(sorted(spans)))


def test_examples_are_segmented_passages_with_prompt_and_response():
    spans = (Span(0, 10, "Chemical"), Span(22, 30, "Disease"))
    exs = list(examples_of([_doc(spans=spans)], BC5, "src", BuildOptions()))
    assert [e.text for e in exs] == [
        "Famotidine-associated delirium.",
        "It resolved.",
        "Dr. Smith treated the delirium.",
    ]
    first = exs[0]
    assert first.prompt == build_prompt(first.text, BC5.schema)
    assert first.response == (
        "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium]."
    )
    assert exs[1].response == "None"
    assert first.id == "src:d1#0" and first.start == 0 and exs[2].start == 45
    assert first.spans == ((0, 10, "Chemical"), (22, 30, "Disease"))
    assert (first.dataset, first.language, first.schema, first.format) == (
        "bc5cdr",
        "en",
        "bc5cdr",
        "symbolic",
    )


def test_responses_decode_back_to_the_gold_spans_in_both_formats():
    spans = (Span(0, 10, "Chemical"), Span(22, 30, "Disease"), Span(67, 75, "Disease"))
    opts = BuildOptions(formats=("symbolic", "json"))
    exs = list(examples_of([_doc(spans=spans)], BC5, "src", opts))
    assert len(exs) == 6
    for e in exs:
        codec = symbolic if e.format == "symbolic" else json_entities
        decoded, issues = codec.decode(e.response, e.text, BC5.schema)
        assert not issues
        assert [(s.start, s.end, s.label) for s in decoded] == list(e.spans)
    json_ex = exs[1]
    assert json_ex.id == "src:d1#0:json"
    assert json_ex.prompt == build_json_prompt(json_ex.text, BC5.schema)
    assert "Passage: Famotidine-associated delirium." in json_ex.prompt
    assert json_ex.prompt.endswith('answer {"entities": []}')


def test_json_prompt_in_chinese():
    schema = DATASETS["cmeee"].schema
    prompt = build_json_prompt("患者有高血压。", schema)
    assert prompt.startswith(build_prompt("患者有高血压。", schema).rpartition("\n\n")[0])
    assert prompt.endswith('输出{"entities": []}')


def test_span_crossing_a_sentence_boundary_keeps_the_passages_whole():
    # "delirium. It" crosses the first boundary: passages 0 and 1 are merged.
    crossing = Span(22, 34, "Disease")
    counts = Counts()
    got = passages_with_spans(_doc(spans=(crossing,)), BuildOptions(), counts)
    assert [p.text for p, _ in got] == [
        "Famotidine-associated delirium. It resolved.",
        "Dr. Smith treated the delirium.",
    ]
    assert got[0][1] == [Span(22, 34, "Disease")]
    assert [p.index for p, _ in got] == [0, 1]
    assert counts.merged_passages == 2 and counts.dropped_passages == 0


def test_span_crossing_a_line_break_drops_the_passages_with_a_count():
    text = "Title about cancer\nbreast cancer is common. Next one."
    counts = Counts()
    spans = (Span(12, 26, "Disease"), Span(20, 33, "Disease"))
    got = passages_with_spans(_doc(text, spans), BuildOptions(), counts)
    assert [p.text for p, _ in got] == ["Next one."]
    assert counts.dropped_passages == 2 and counts.dropped_spans == 2


def test_span_in_whitespace_between_passages_is_counted():
    text = "One cancer.  Two."
    counts = Counts()
    got = passages_with_spans(_doc(text, (Span(11, 12, "Disease"),)), BuildOptions(), counts)
    assert [p.text for p, _ in got] == ["One cancer.", "Two."]
    assert counts.spans_outside == 1


def test_document_unit_keeps_short_documents_whole():
    opts = BuildOptions(unit="document")
    got = passages_with_spans(_doc(), opts)
    assert [p.text for p, _ in got] == [TEXT]
    long_opts = BuildOptions(unit="document", max_chars=40)
    assert len(passages_with_spans(_doc(), long_opts)) == 3


def test_options_are_checked():
    with pytest.raises(ValueError, match="formats"):
        BuildOptions(formats=("xml",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit"):
        BuildOptions(unit="page")  # type: ignore[arg-type]


def test_deduplicate_keeps_the_first_and_counts_duplicates_and_conflicts():
    a = _doc("Aspirin helps.", (Span(0, 7, "Chemical"),), "a")
    b = _doc("Aspirin helps.", (Span(0, 7, "Chemical"),), "b")  # duplicate
    c = _doc("Aspirin helps.", (), "c")  # same prompt, other response: a conflict
    raw = list(examples_of([a, b, c], BC5, "s", BuildOptions()))
    counts: dict[str, Counts] = {}
    kept = deduplicate(raw, counts)
    assert [e.doc_id for e in kept] == ["a", "c"]
    assert counts["bc5cdr"].duplicates_dropped == 1 and counts["bc5cdr"].conflicts == 1


def test_drop_overlap_removes_training_passages_seen_in_the_held_out_part():
    train = list(examples_of([_doc()], BC5, "s", BuildOptions()))
    held = list(examples_of([_doc("It resolved.", doc_id="e")], BC5, "s", BuildOptions()))
    counts: dict[str, Counts] = {}
    left = drop_overlap(train, held, counts)
    assert [e.text for e in left] == [train[0].text, train[2].text]
    assert counts["bc5cdr"].eval_overlap_dropped == 1


def test_example_json_round_trip():
    ex = next(examples_of([_doc(spans=(Span(0, 10, "Chemical"),))], BC5, "s", BuildOptions()))
    assert Example.from_json(ex.to_json()) == ex


def test_cmeee_split_is_a_stable_hash_of_the_id():
    ids = [str(i) for i in range(5000)]
    parts = [cmeee_part(i) for i in ids]
    # The same id always lands in the same part, whatever the order it is seen in.
    assert [cmeee_part(i) for i in reversed(ids)] == parts[::-1]
    share = parts.count("train") / len(parts)
    assert 0.78 < share < 0.82
    # Pinned values: the split must not move between versions or machines.
    assert stable_fraction("0", "salt") == pytest.approx(0.7351293149980106)
    assert [cmeee_part(str(i)) for i in range(6)] == [
        "eval",
        "train",
        "eval",
        "train",
        "train",
        "eval",
    ]
    assert cmeee_part("7", train_fraction=0.0) == "eval"
    assert cmeee_part("7", train_fraction=1.0) == "train"


def test_statistics_per_dataset():
    spans = (Span(0, 10, "Chemical"), Span(22, 30, "Disease"))
    counts: dict[str, Counts] = {"bc5cdr": Counts(documents=1, passages=3)}
    exs = list(
        examples_of([_doc(spans=spans)], BC5, "s", BuildOptions(formats=("symbolic", "json")))
    )
    stats = statistics_of(exs, counts)["bc5cdr"]
    assert stats["examples"] == 6
    assert stats["examples_per_format"] == {"json": 3, "symbolic": 3}
    assert stats["entities_per_type"] == {"Chemical": 1, "Disease": 1}
    assert stats["entities"] == 2
    assert stats["documents"] == 1 and stats["passages"] == 3
    assert stats["prompt_chars"]["max"] >= stats["prompt_chars"]["mean"] > 0
    assert stats["response_chars"]["min"] == 4  # "None"


def test_copy_examples_are_seeded_valid_answers_in_the_languages_share():
    from bioner.codec import symbolic
    from bioner.prompts import COMPACT_PROMPT_VERSION
    from bioner.training.data import COPY_SCHEMAS, copy_examples

    en = Example(
        "e",
        "ncbi",
        "en",
        "ncbi",
        "symbolic",
        "s",
        "d",
        0,
        0,
        "p",
        "r",
        "Famotidine-associated delirium occurred twice.",
        (),
    )
    zh = Example(
        "z",
        "cmeee",
        "zh",
        "cmeee",
        "symbolic",
        "s",
        "d",
        0,
        0,
        "p",
        "r",
        "乳腺癌是常见的恶性肿瘤，早期诊断很重要。",
        (),
    )
    made = copy_examples([en, zh, zh, zh], 200, seed=3, prompt_version=COMPACT_PROMPT_VERSION)
    assert made == copy_examples(
        [en, zh, zh, zh], 200, seed=3, prompt_version=COMPACT_PROMPT_VERSION
    )
    assert made != copy_examples(
        [en, zh, zh, zh], 200, seed=4, prompt_version=COMPACT_PROMPT_VERSION
    )
    assert 0.6 < sum(e.language == "zh" for e in made) / len(made) < 0.9
    assert any(e.spans for e in made) and any(not e.spans for e in made)
    for e in made:
        schema = COPY_SCHEMAS[e.language]
        assert e.prompt.endswith(e.text) and e.prompt_version == COMPACT_PROMPT_VERSION
        spans, issues = symbolic.decode(e.response, e.text, schema)
        assert not issues
        assert [(s.start, s.end, s.label) for s in spans] == list(e.spans)
        assert all(e.text[a:b].strip() == e.text[a:b] for a, b, _ in e.spans)
        if e.language == "en":
            assert set(e.text.split()) <= set(en.text.split())
        else:
            assert set(e.text) <= set(zh.text)


def test_the_unified_view_relabels_and_asks_only_what_a_dataset_annotates():
    from bioner.labels import DATASETS
    from bioner.training.data import unified_spec, unified_view

    jnlpba = DATASETS["jnlpba"]
    text = "IL-2 gene expression in T cells."
    doc = AnnotatedDocument(
        Document("j1", text),
        (Span(0, 4, "DNA"), Span(24, 31, "cell_type")),
    )
    unified = unified_view(doc, jnlpba)
    assert [(s.text(text), s.label) for s in unified.spans] == [
        ("IL-2", "Gene"),
        ("T cells", "Cell"),
    ]
    [example] = examples_of([unified], unified_spec(jnlpba), "jnlpba/x", BuildOptions())
    assert example.schema == "general[Gene,Cell]"
    assert example.response.splitlines() == [
        "Gene: [IL-2] gene expression in T cells.",
        "Cell: IL-2 gene expression in [T cells].",
    ]
    # cMedQANER's types without a unified counterpart leave the view.
    cmedqaner = DATASETS["cmedqaner"]
    zh = AnnotatedDocument(Document("c1", "孕妇头痛"), (Span(0, 2, "Crowd"), Span(2, 4, "Symptom")))
    assert [s.label for s in unified_view(zh, cmedqaner).spans] == ["Symptom"]
    assert unified_spec(cmedqaner).schema.name == (
        "general-zh[Disease,Symptom,Chemical,Anatomy,Department]"
    )


def test_a_partial_type_is_completed_from_the_sets_that_annotate_it_whole():
    from bioner.training.data import complete_partial

    whole = [  # "diabetes" annotated in 2 of its 2 occurrences (a repeated text counts once)
        AnnotatedDocument(
            Document(f"n{i}", f"{who} with diabetes."),
            (Span(len(who) + 6, len(who) + 14, "Disease"),),
        )
        for i, who in enumerate(["Patients", "Mice"])
    ]
    text = "TP53 in breast cancer and diabetes."
    partial = AnnotatedDocument(Document("cg", text), (Span(0, 4, "Gene"), Span(8, 21, "Disease")))
    [done], added = complete_partial([partial], "Disease", whole)
    assert added == 1
    assert [(s.text(text), s.label) for s in done.spans] == [
        ("TP53", "Gene"),
        ("breast cancer", "Disease"),
        ("diabetes", "Disease"),
    ]
