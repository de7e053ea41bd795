"""The stage tasks, called through ``.fn`` (no Prefect run needed): where offsets are proven."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from collections.abc import Sequence

import pytest

from bioner.abbreviations import ABBREVIATIONS_VERSION
from bioner.codec import symbolic
from bioner.constraint import SymbolicTarget
from bioner.gencache import cache_key
from bioner.generation import Generation, GenerationParams
from bioner.labels import SCHEMAS, get_schema, schema_for
from bioner.lexicon import Entry, Lexicon
from bioner.prompts import COMPACT_PROMPT_VERSION, PROMPT_VERSION
from bioner.records import Entity, Passage, Span
from bioner.rules import RULES_VERSION
from infra import storage
from infra.ingest_store import THROUGH, ingest_paths
from infra.lexicon import lexicon_setting, write_lexicon
from infra.llm.local import MARKER
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V3,
    GENERATIONS_V1,
    GENERATIONS_V2,
    PASSAGES_V1,
    TOMBSTONES_V2,
)
from tasks import annotate as t

TEXT = (
    "Famotidine-associated delirium. Famotidine is an H2 blocker. "
    "It caused delirium and seizures in a patient with renal failure."
)
TITLE = "Famotidine-associated delirium."


def article(pmid: str, title: str, abstract: str) -> str:
    return (
        f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
        f"<ArticleTitle>{title}</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText>"
        "</Abstract><Language>eng</Language></Article></MedlineCitation></PubmedArticle>"
    )


@pytest.fixture
def shard(tmp_path):
    """Documents and passages of one shard, made by the real ingest engine."""
    source = tmp_path / "in.xml.gz"
    abstract = "Famotidine is an H2 blocker. It caused delirium and seizures in a patient with "
    xml = (
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n'
        + article("1", "Old title.", "Old abstract.")
        + article("2", "Nothing here.", "Plain words only.")
        + article("1", TITLE, abstract + "renal failure.")
        + '<DeleteCitation><PMID Version="1">9</PMID></DeleteCitation>'
        "</PubmedArticleSet>\n"
    )
    source.write_bytes(gzip.compress(xml.encode()))
    ingest_paths([str(source)], str(tmp_path / "out"), 1, run_id="run-1")
    return t.ShardPaths.under(str(tmp_path / "out"), 0)


def test_ingest_keeps_last_version_of_a_pmid_and_tombstones(shard):
    assert shard.documents.endswith("/out/documents/shard=0.parquet")
    documents = storage.read_table(shard.documents, DOCUMENTS_V2).to_pylist()
    assert [(d["id"], d["text"]) for d in documents] == [
        ("2", "Nothing here. Plain words only."),
        ("1", TEXT),
    ]
    assert documents[1]["source"] == "in.xml.gz"
    tombstones = storage.read_table(shard.tombstones, TOMBSTONES_V2).to_pylist()
    assert tombstones == [{"id": "9", "source": "in.xml.gz", "position": 4}]


def test_segment_writes_exact_passages(shard):
    passages = storage.read_table(shard.passages, PASSAGES_V1).to_pylist()
    assert [(p["doc_id"], p["index"], p["start"], p["end"]) for p in passages] == [
        ("2", 0, 0, 13),
        ("2", 1, 14, 31),
        ("1", 0, 0, 31),
        ("1", 1, 32, 60),
        ("1", 2, 61, 125),
    ]


def generation(doc_id: str, index: int, text: str, finish: str = "stop") -> dict[str, object]:
    return {
        "doc_id": doc_id,
        "doc_version": 1,
        "passage_index": index,
        "model_id": "hand@0",
        "prompt_version": PROMPT_VERSION,
        "run_id": "run-1",
        "text": text,
        "prompt_tokens": 10,
        "output_tokens": 5,
        "finish_reason": finish,
    }


HAND_WRITTEN = [
    generation("2", 0, "None"),
    generation("2", 1, "Drug: Plain [words] only."),
    generation(
        "1",
        0,
        "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium].",
    ),
    generation("1", 1, "Chemical: [Famotidine] is an H2 blocker."),
    generation(
        "1",
        2,
        "Disease: It caused [delirium] and [seizures] in a patient with [renal failure].\n"
        "Chemical: It caused deli",
        "length",
    ),
]


def entity(
    passage: int, start: int, end: int, text: str, label: str, issues=(), source="tagger"
) -> dict:
    return {
        "doc_id": "1",
        "doc_version": 1,
        "passage_index": passage,
        "start": start,
        "end": end,
        "text": text,
        "label": label,
        "model_id": "hand@0",
        "prompt_version": PROMPT_VERSION,
        "run_id": "run-2",
        "score": None,
        "selected": None,
        "issues": list(issues),
        "source": source,
    }


def test_decode_hand_written_generations_to_exact_entity_rows(shard):
    # Written as version 1: generations tables of that version stay readable.
    storage.write_rows(HAND_WRITTEN, shard.generations, GENERATIONS_V1)
    result = t.decode.fn(
        shard.generations,
        shard.passages,
        shard.documents,
        shard.entities,
        shard.decode_issues,
        "bc5cdr",
        "run-2",
    )
    assert result == (shard.entities, shard.decode_issues)
    entities = storage.read_table(shard.entities, ENTITIES_V3).to_pylist()
    assert entities == [
        entity(0, 0, 10, "Famotidine", "Chemical"),
        entity(0, 22, 30, "delirium", "Disease"),
        entity(1, 32, 42, "Famotidine", "Chemical"),
        entity(2, 71, 79, "delirium", "Disease", ["truncated"]),
        entity(2, 84, 92, "seizures", "Disease", ["truncated"]),
        entity(2, 111, 124, "renal failure", "Disease", ["truncated"]),
    ]
    for e in entities:
        assert TEXT[e["start"] : e["end"]] == e["text"]
    issues = storage.read_table(shard.decode_issues, DECODE_ISSUES_V1).to_pylist()
    assert [
        (i["doc_id"], i["passage_index"], i["kind"], i["line"], i["lossy"]) for i in issues
    ] == [
        ("2", 1, "unknown_type", 1, True),
        ("1", 2, "truncated", 2, True),
    ]
    summary = t.shard_summary(shard)
    assert set(summary.pop("timing")) == {"decode"}  # the V1 generations carry no timing
    assert summary | {"issues": None} == {
        "documents": 2,
        "tombstones": 1,
        "passages": 5,
        "generations": 5,
        "generated": 5,  # a version 1 table: no cached rows
        "cached": 0,
        "prompt_tokens": 50,
        "output_tokens": 25,
        "truncated": 1,
        "resumed": 0,
        "spans": 6,
        "entities": 6,
        "lossy_issues": 2,
        "lexicon_entities": 0,
        "abbreviation_entities": 0,
        "lexicon_dropped": 0,
        "abbreviation_dropped": 0,
        "issues": None,
    }
    assert summary["issues"] == {"unknown_type": 1, "truncated": 1}


def test_decode_adds_the_models_lexicon_entities_in_the_taggers_gaps(shard, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    entries = {
        "seizures": Entry("seizures", "Disease", 3, 3),  # the tagger found it: not added
        "H2 blocker": Entry("H2 blocker", "Chemical", 2, 2),  # in passage 1: added
        "patient": Entry("patient", "Disease", 1, 9),  # annotated 1 time in 9: never
    }
    # "renal failure" is never annotated in 3 occurrences of training: the tagger's one drops.
    lexicon = Lexicon("bc5cdr", entries, unseen={"renal failure": 3})
    write_lexicon({"bc5cdr": lexicon}, model, {"data": "hand"})
    storage.write_rows(HAND_WRITTEN, shard.generations, GENERATIONS_V1)
    args = [shard.generations, shard.passages, shard.documents, shard.entities]
    args += [shard.decode_issues, "bc5cdr", "run-2"]
    t.decode.fn(*args, model=str(model))
    entities = storage.read_table(shard.entities, ENTITIES_V3).to_pylist()
    added = [e for e in entities if e["source"] == "lexicon"]
    assert added == [entity(1, 49, 59, "H2 blocker", "Chemical", source="lexicon")]
    assert len(entities) == 6 and "renal failure" not in {e["text"] for e in entities}
    meta = storage.read_metadata(shard.entities)
    assert meta["bioner.lexicon"] == lexicon_setting(model) != ""
    summary = t.shard_summary(shard)
    assert (summary["lexicon_entities"], summary["lexicon_dropped"]) == (1, 1)
    t.decode.fn(*args, model=str(model), rules="-lexicon")
    assert storage.count_rows(shard.entities) == 6
    assert storage.read_metadata(shard.entities)["bioner.lexicon"] == ""


def test_decode_drops_spans_only_the_lexicon_of_an_excluded_schema_knows(shard, tmp_path):
    # BC5CDR excludes JNLPBA's mentions: a string JNLPBA's training annotates, and BC5CDR's
    # never does, is dropped from a bc5cdr decode (the mechanism, on hand-written answers).
    model = tmp_path / "model"
    model.mkdir()
    own = Lexicon("bc5cdr", {"seizures": Entry("seizures", "Disease", 3, 3)})
    other = Lexicon("jnlpba", {"Famotidine": Entry("Famotidine", "protein", 4, 4)})
    write_lexicon({"bc5cdr": own, "jnlpba": other}, model, {"data": "hand"})
    storage.write_rows(HAND_WRITTEN, shard.generations, GENERATIONS_V1)
    decode_shard(shard, "bc5cdr", model=str(model))
    texts = [e["text"] for e in storage.read_table(shard.entities, ENTITIES_V3).to_pylist()]
    assert "Famotidine" not in texts and "seizures" in texts
    assert t.shard_summary(shard)["lexicon_dropped"] == 2  # both passages' Famotidine
    # Without JNLPBA's lexicon beside it, nothing is dropped.
    write_lexicon({"bc5cdr": own}, model, {"data": "hand"})
    decode_shard(shard, "bc5cdr", model=str(model))
    texts = [e["text"] for e in storage.read_table(shard.entities, ENTITIES_V3).to_pylist()]
    assert texts.count("Famotidine") == 2


def decode_shard(shard: t.ShardPaths, schema: str, **options) -> tuple[str, str]:
    """Run the decode task on the shard's own tables, as run "run-2"."""
    paths = [shard.generations, shard.passages, shard.documents, shard.entities]
    return t.decode.fn(*paths, shard.decode_issues, schema, "run-2", **options)


def decoded_article(
    tmp_path, pmid: str, title: str, abstract: str, answers: list[str]
) -> tuple[t.ShardPaths, list[dict]]:
    """One article ingested into a one-shard store, its passages answered with ``answers`` (in
    passage order) and decoded as NCBI-disease: the shard and its entity rows."""
    source = tmp_path / "in.xml.gz"
    xml = '<?xml version="1.0"?>\n<PubmedArticleSet>\n' + article(pmid, title, abstract)
    source.write_bytes(gzip.compress((xml + "</PubmedArticleSet>\n").encode()))
    ingest_paths([str(source)], str(tmp_path / "out"), 1, run_id="run-1")
    shard = t.ShardPaths.under(str(tmp_path / "out"), 0)
    rows = [generation(pmid, i, answer) for i, answer in enumerate(answers)]
    storage.write_rows(rows, shard.generations, GENERATIONS_V1)
    decode_shard(shard, "ncbi")
    return shard, storage.read_table(shard.entities, ENTITIES_V3).to_pylist()


def test_decode_labels_the_later_uses_of_an_abbreviation_defined_on_a_found_mention(tmp_path):
    title = "Adenomatous polyposis coli (APC) in two families."
    abstract = "Carriers of APC had polyps. The APC families were large."
    answers = [
        "Disease: [Adenomatous polyposis coli] (APC) in two families.",
        "Disease: Carriers of APC had [polyps].",
        "None",
    ]
    shard, found = decoded_article(tmp_path, "3", title, abstract, answers)
    text = f"{title} {abstract}"
    assert [(e["passage_index"], e["text"], e["source"]) for e in found] == [
        (0, "Adenomatous polyposis coli", "tagger"),
        (0, "APC", "abbreviation"),
        (1, "APC", "abbreviation"),
        (1, "polyps", "tagger"),
        (2, "APC", "abbreviation"),
    ]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in found)
    assert {e["label"] for e in found} == {"Disease"}
    meta = storage.read_metadata(shard.entities)
    assert meta["bioner.decode_rules"] == RULES_VERSION and ABBREVIATIONS_VERSION in RULES_VERSION
    assert t.shard_summary(shard)["abbreviation_entities"] == 3


def test_offsets_that_do_not_map_are_a_bug_not_a_model_error(shard):
    passages = {
        (p.doc_id, p.index): p
        for p in map(t.passage_of, storage.read_table(shard.passages).to_pylist())
    }
    wrong_document = "X" * len(TEXT)
    with pytest.raises(AssertionError, match="does not map"):
        t.entities_of(passages["1", 1], wrong_document, HAND_WRITTEN[3], t.schema_of("bc5cdr"), "r")


class EchoEngine:
    """Answers every prompt with ``None`` (or ``answer(n)``, n counting the prompts answered)
    and records what it was asked."""

    model_id = "echo@1"
    prompt_version = PROMPT_VERSION

    def __init__(self, answer=None, settings=None) -> None:
        self.answer = answer or (lambda n: "None")
        self.settings = {"constrained": "true"} if settings is None else settings
        self.prompts: list[str] = []
        self.params: list[GenerationParams] = []
        self.targets: list[SymbolicTarget | None] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x.split()) for x in texts]

    def generate(
        self,
        prompts: Sequence[str],
        params: Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        self.prompts += prompts
        self.params += params
        self.targets += targets or [None] * len(prompts)
        return [
            Generation(self.answer(len(self.prompts) - len(prompts) + i), len(p), 1, "stop")
            for i, p in enumerate(prompts)
        ]


def use(monkeypatch, engine: EchoEngine) -> EchoEngine:
    """Make ``engine`` the engine every generate call gets."""
    monkeypatch.setattr(t, "engine_for", lambda *args, **kwargs: engine)
    return engine


def test_generate_writes_one_row_per_passage_with_per_passage_limits(shard, monkeypatch):
    engine = use(monkeypatch, EchoEngine())
    reports = []
    monkeypatch.setattr(t, "report", lambda *args, **kw: reports.append((*args, kw["tokens"])))
    uri = t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1", chunk_size=2)
    rows = storage.read_table(uri, GENERATIONS_V2).to_pylist()
    assert [(r["doc_id"], r["passage_index"], r["text"]) for r in rows] == [
        ("2", 0, "None"),
        ("2", 1, "None"),
        ("1", 0, "None"),
        ("1", 1, "None"),
        ("1", 2, "None"),
    ]
    assert {(r["model_id"], r["prompt_version"], r["run_id"], r["cached"]) for r in rows} == {
        ("echo@1", PROMPT_VERSION, "run-1", False)
    }
    # NCBI: one type, header "Disease" = 1 echo token; passages of n = 2, 3, 2, 5, 11 words:
    # 1 type x (header 1 + ": " 2 + n + (n + 1) // 2 + newline 1) + 4
    assert [p.max_new_tokens for p in engine.params] == [11, 13, 11, 16, 25]
    assert "Passage: It caused delirium" in engine.prompts[4]
    # One copy-constraint target per prompt: its passage and the schema's headers.
    assert engine.targets[4] == SymbolicTarget(
        "It caused delirium and seizures in a patient with renal failure.", ("Disease",)
    )
    # Progress: passages generated of those to generate, and output tokens so far.
    assert reports == [
        ("generate", 0, 5, 0),
        ("generate", 2, 5, 2),
        ("generate", 4, 5, 4),
        ("generate", 5, 5, 5),
    ]
    meta = storage.read_metadata(uri)
    assert meta["bioner.model_id"] == "echo@1"
    assert json.loads(meta["bioner.engine_settings"]) == {"constrained": "true"}
    assert json.loads(rows[4]["params"]) == {
        "schema": "ncbi",
        "max_new_tokens": 25,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": None,
        "settings": {"constrained": "true"},
    }
    assert rows[4]["cache_key"] == cache_key(
        "It caused delirium and seizures in a patient with renal failure.",
        "echo@1",
        PROMPT_VERSION,
        json.loads(rows[4]["params"]),
        prompt=engine.prompts[4],
    )


def test_each_passage_is_asked_in_its_language(tmp_path, monkeypatch):
    engine = use(monkeypatch, EchoEngine())
    passages = str(tmp_path / "passages.parquet")
    rows = [("1", "Aspirin and asthma.", "en"), ("2", "患者有高血压病史。", "zh")]
    storage.write_rows(
        [
            {"doc_id": d, "index": 0, "start": 0, "end": len(x), "text": x}
            | {"doc_version": 1, "language": lang}
            for d, x, lang in rows
        ],
        passages,
        PASSAGES_V1,
    )
    uri = t.generate.fn(passages, str(tmp_path / "generations.parquet"), "m", "general", "r")
    assert engine.prompts[1].startswith("你是") and not engine.prompts[0].startswith("你是")
    zh = schema_for("general", "zh")
    assert engine.targets[1] == SymbolicTarget.of("患者有高血压病史。", zh)
    written = storage.read_table(uri, GENERATIONS_V2).to_pylist()
    assert [json.loads(r["params"])["schema"] for r in written] == ["general", "general-zh"]


def test_a_model_that_wants_the_schema_in_parts_is_asked_each_part_and_decoded_whole(
    tmp_path, monkeypatch
):
    text = "Aspirin and asthma."
    answers = {("Chemical",): "Chemical: [Aspirin] and asthma.", ("Disease",): "Disease: x"}
    engine = use(monkeypatch, EchoEngine())
    engine.answer = lambda i: answers.get(engine.targets[i].headers, "None")
    model = tmp_path / "model"
    model.mkdir()
    (model / MARKER).write_text(json.dumps({"requests": {"general": [["Disease"], ["Chemical"]]}}))
    passages = str(tmp_path / "passages.parquet")
    row = {"doc_id": "1", "doc_version": 1, "index": 0, "start": 0, "end": len(text)}
    storage.write_rows([row | {"text": text, "language": "en"}], passages, PASSAGES_V1)
    uri = t.generate.fn(passages, str(tmp_path / "generations.parquet"), str(model), "general", "r")
    written = storage.read_table(uri, GENERATIONS_V2).to_pylist()
    assert [json.loads(r["params"])["schema"] for r in written] == [
        "general[Disease]",
        "general[Chemical]",
        "general[Gene,Species,Cell,Anatomy]",
    ]
    assert [e.headers for e in engine.targets] == [
        ("Disease",),
        ("Chemical",),
        ("Gene", "Species", "Cell", "Anatomy"),
    ]
    passage = t.passage_of(storage.read_table(passages, PASSAGES_V1).to_pylist()[0])
    entities, issues = t.entities_of(passage, text, written, get_schema("general"), "r")
    assert [(e.text, e.label) for e in entities] == [("Aspirin", "Chemical")]
    assert [str(i.kind) for i in issues] != []  # the Disease answer does not copy its passage


def test_generation_settings_follow_the_passages_and_mark_stale_shards(shard, monkeypatch):
    use(monkeypatch, EchoEngine())
    out = shard.passages.removesuffix("/passages/shard=0.parquet")
    assert t.stale_shards(out, 2, "m", "ncbi", None) == [0]  # shard 1 has no passages
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    t.decode.fn(
        shard.generations,
        shard.passages,
        shard.documents,
        shard.entities,
        shard.decode_issues,
        "ncbi",
        "run-1",
    )
    meta = storage.read_metadata(shard.entities)
    assert meta[THROUGH] == storage.read_metadata(shard.passages)[THROUGH] == "1"
    assert (meta["bioner.model"], meta["bioner.schema_name"]) == ("m", "ncbi")
    assert json.loads(meta["bioner.engine"]) == {"backend": "transformers", "constrained": True}
    assert json.loads(meta["bioner.engine_settings"]) == {"constrained": "true"}
    assert t.stale_shards(out, 2, "m", "ncbi", None) == []
    assert t.stale_shards(out, 2, "m", "bc5cdr", None) == [0]  # another request
    assert t.stale_shards(out, 2, "other", "ncbi", None) == [0]
    assert t.stale_shards(out, 2, "m", "ncbi", 8) == [0]
    assert t.stale_shards(out, 2, "m", "ncbi", None, constrained=False) == [0]
    assert t.stale_shards(out, 2, "m", "ncbi", None, backend="vllm") == [0]


def test_a_model_retrained_in_place_makes_shards_stale(shard, monkeypatch, tmp_path):
    use(monkeypatch, EchoEngine())
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights 1")
    out = shard.passages.removesuffix("/passages/shard=0.parquet")
    t.generate.fn(shard.passages, shard.generations, str(model), "ncbi", "run-1")
    paths = (shard.generations, shard.passages, shard.documents, shard.entities)
    t.decode.fn(*paths, shard.decode_issues, "ncbi", "run-1")
    assert t.stale_shards(out, 1, str(model), "ncbi", None) == []
    (model / "model.safetensors").write_bytes(b"weights 2")
    assert t.stale_shards(out, 1, str(model), "ncbi", None) == [0]


# --------------------------------------------------------------------------- generation cache


def numbered(n: int) -> str:
    return f"answer {n}"


def texts_of(uri: str) -> dict[tuple[str, int, int], tuple[str, bool, str]]:
    """(text, cached, run id) of each generation row, by passage key."""
    return {
        (r["doc_id"], r["doc_version"], r["passage_index"]): (r["text"], r["cached"], r["run_id"])
        for r in storage.read_table(uri, GENERATIONS_V2).to_pylist()
    }


def test_a_rerun_regenerates_nothing(shard, monkeypatch):
    engine = use(monkeypatch, EchoEngine(numbered))
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    first = texts_of(shard.generations)
    assert len(engine.prompts) == 5 and {c for _, c, _ in first.values()} == {False}
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-2")
    assert len(engine.prompts) == 5  # nothing asked again
    second = texts_of(shard.generations)
    # The same answers, each marked cached and still naming the run that generated it.
    assert second == {k: (text, True, "run-1") for k, (text, _, _) in first.items()}
    assert storage.read_metadata(shard.generations)["bioner.run_id"] == "run-2"
    decode_shard(shard, "ncbi")
    summary = t.shard_summary(shard)
    assert (summary["generations"], summary["generated"], summary["cached"]) == (5, 0, 5)
    assert (summary["prompt_tokens"], summary["output_tokens"]) == (0, 0)  # none spent


def test_a_revised_citation_regenerates_only_its_changed_passages(shard, monkeypatch, tmp_path):
    engine = use(monkeypatch, EchoEngine(numbered))
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    before = texts_of(shard.generations)
    # Version 2 of PMID 1: the last sentence changed, the title and first sentence not.
    revision = tmp_path / "update.xml"
    abstract = "Famotidine is an H2 blocker. It caused delirium in an elderly patient."
    revision.write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet>'
        + article("1", TITLE, abstract).replace('Version="1"', 'Version="2"')
        + "</PubmedArticleSet>\n"
    )
    ingest_paths([str(revision)], str(tmp_path / "out"), 1, run_id="run-2")
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-2")
    assert len(engine.prompts) == 6  # one more
    assert "Passage: It caused delirium in an elderly patient." in engine.prompts[5]
    after = texts_of(shard.generations)
    assert after == {
        ("2", 1, 0): (before["2", 1, 0][0], True, "run-1"),
        ("2", 1, 1): (before["2", 1, 1][0], True, "run-1"),
        ("1", 2, 0): (before["1", 1, 0][0], True, "run-1"),
        ("1", 2, 1): (before["1", 1, 1][0], True, "run-1"),
        ("1", 2, 2): ("answer 5", False, "run-2"),
    }


@pytest.mark.parametrize(
    "change",
    ["model", "prompt_version", "schema", "max_new_tokens", "engine_settings"],
)
def test_another_model_prompt_or_parameters_regenerate_everything(shard, monkeypatch, change):
    engine = use(monkeypatch, EchoEngine(numbered))
    args = {"model": "m", "schema": "ncbi", "max_new_tokens": None}
    t.generate.fn(shard.passages, shard.generations, run_id="run-1", **args)
    assert len(engine.prompts) == 5
    if change == "model":
        monkeypatch.setattr(engine, "model_id", "echo@2", raising=False)
    elif change == "prompt_version":
        monkeypatch.setattr(engine, "prompt_version", COMPACT_PROMPT_VERSION)
    elif change == "schema":
        args["schema"] = "bc5cdr"
    elif change == "max_new_tokens":
        args["max_new_tokens"] = 8  # below every passage's own limit (11 to 25): all change
    else:
        engine.settings = {"constrained": "false"}
    t.generate.fn(shard.passages, shard.generations, run_id="run-2", **args)
    assert len(engine.prompts) == 10
    assert {c for _, c, _ in texts_of(shard.generations).values()} == {False}


def test_identical_passages_are_generated_once(tmp_path, monkeypatch):
    source = tmp_path / "in.xml"
    source.write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet>'
        + article("1", TITLE, "Famotidine is an H2 blocker.")
        + article("2", "Another title.", "Famotidine is an H2 blocker.")
        + "</PubmedArticleSet>\n"
    )
    ingest_paths([str(source)], str(tmp_path / "out"), 1, run_id="run-1")
    paths = t.ShardPaths.under(str(tmp_path / "out"), 0)
    engine = use(monkeypatch, EchoEngine(numbered))
    t.generate.fn(paths.passages, paths.generations, "m", "ncbi", "run-1")
    assert len(engine.prompts) == 3
    rows = texts_of(paths.generations)
    assert rows["1", 1, 1] == (rows["2", 1, 1][0], False, "run-1")
    assert [c for _, c, _ in rows.values()].count(True) == 1  # the repeat is a reuse


def test_old_generations_without_keys_are_not_reused(shard, monkeypatch):
    storage.write_rows(HAND_WRITTEN, shard.generations, GENERATIONS_V1)
    engine = use(monkeypatch, EchoEngine())
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-2")
    assert len(engine.prompts) == 5
    assert t.read_generations(shard.generations).schema.equals(GENERATIONS_V2)


def test_unknown_schema():
    with pytest.raises(ValueError, match="known: bc5cdr"):
        t.schema_of("nope")


class WindowEngine(EchoEngine):
    """A model with a small context that tags every "delirium" of the passage it is shown."""

    max_context = 300

    def generate(self, prompts, params, targets=None):
        out = super().generate(prompts, params, targets)
        answers = []
        for g, target in zip(out, targets, strict=True):
            text = target.passage
            spans = [Span(m.start(), m.end(), "Disease") for m in re.finditer("delirium", text)]
            answer = symbolic.encode(text, spans, SCHEMAS["ncbi"])
            answers.append(dataclasses.replace(g, text=answer))
        return answers


def test_a_passage_longer_than_the_context_is_tagged_in_windows_and_merged(tmp_path, monkeypatch):
    engine = use(monkeypatch, WindowEngine())
    words = [("delirium" if k % 17 == 5 else f"w{k}") for k in range(150)]
    source = tmp_path / "in.xml"
    xml = f"<PubmedArticleSet>{article('1', 'Title.', ' '.join(words))}</PubmedArticleSet>"
    source.write_text(xml, encoding="utf-8")
    out = tmp_path / "out"
    ingest_paths([str(source)], str(out), 1, run_id="r", max_chars=5000)
    paths = t.ShardPaths.under(str(out), 0)
    passages = paths.passages
    (passage,) = [p for p in storage.read_table(passages).to_pylist() if p["index"] == 1]
    text = passage["text"]
    generations = t.generate.fn(passages, str(out / "generations.parquet"), "m", "ncbi", "r")
    rows = [
        r for r in storage.read_table(generations, GENERATIONS_V2).to_pylist() if r["passage_index"]
    ]
    assert len(rows) > 1  # windows, not one truncated answer
    assert all(
        len(p.split()) + q.max_new_tokens <= 300
        for p, q in zip(engine.prompts, engine.params, strict=True)
    )
    assert rows[0]["window_start"] == 0 and rows[-1]["window_end"] == len(text)
    entities_uri, _ = t.decode.fn(
        generations,
        passages,
        paths.documents,
        str(out / "entities.parquet"),
        str(out / "issues.parquet"),
        "ncbi",
        "r",
    )
    found = [(e["start"], e["text"]) for e in storage.read_table(entities_uri).to_pylist()]
    start = passage["start"]
    assert sorted(found) == [(start + m.start(), "delirium") for m in re.finditer("delirium", text)]


# --------------------------------------------------------------------------- resume, engines


class Killed(Exception):
    """Stands for the process dying in the middle of a shard."""


class DyingEngine(EchoEngine):
    """An echo engine that dies on its ``calls``-th generate call."""

    def __init__(self, calls: int) -> None:
        super().__init__(answer=lambda n: f"None {n}")
        self.calls_left = calls

    def generate(self, prompts, params, targets=None):
        self.calls_left -= 1
        if self.calls_left == 0:
            raise Killed
        return super().generate(prompts, params, targets)


def test_an_interrupted_shard_keeps_its_chunks_and_resumes_to_the_same_table(
    shard, monkeypatch, tmp_path
):
    # Uninterrupted: the table to reach, in a copy of the shard.
    whole = dataclasses.replace(shard, generations=str(tmp_path / "ref" / "shard=0.parquet"))
    use(monkeypatch, EchoEngine(answer=lambda n: f"None {n}"))
    t.generate.fn(whole.passages, whole.generations, "m", "ncbi", "run-0", chunk_size=2)
    expected = storage.read_table(whole.generations, GENERATIONS_V2).to_pylist()

    use(monkeypatch, DyingEngine(calls=3))  # two chunks of 2 done, dies in the third
    with pytest.raises(Killed):
        t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1", chunk_size=2)
    work = t.work_uri(shard.generations)
    assert work.endswith("/out/_work/generations/shard=0")
    parts = storage.list_dir(work)
    assert len(parts) == 2 and all(p.startswith("part-") for p in parts)
    assert not storage.exists(shard.generations)  # nothing committed as the table
    # Files being written when the process died: hidden temporaries, never read as tables.
    (storage.local_path(work) / ".part-x.parquet.0a1b.tmp").write_bytes(b"PAR1 torn")
    torn = tmp_path / "out" / "generations" / ".shard=0.parquet.0a1b.tmp"
    torn.parent.mkdir()
    torn.write_bytes(b"PAR1 torn")
    os.utime(torn, (0, 0))  # an older bioner's name (no writer in it), untouched for long

    engine = use(monkeypatch, EchoEngine(answer=lambda n: f"None {n + 4}"))
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-2", chunk_size=2)
    assert len(engine.prompts) == 1  # only the passage of the lost chunk is generated again
    rows = storage.read_table(shard.generations, GENERATIONS_V2).to_pylist()
    strip = lambda rs: [{k: v for k, v in r.items() if k != "run_id"} for r in rs]  # noqa: E731
    assert strip(rows) == strip(expected)
    assert [r["run_id"] for r in rows] == ["run-1"] * 4 + ["run-2"]
    assert storage.read_metadata(shard.generations)[t.RESUMED] == "4"
    assert not storage.exists(work)  # committed: the chunks are gone
    assert t.sweep_partial(str(tmp_path / "out")) == 1 and not torn.exists()
    t.prune_work(str(tmp_path / "out"))
    assert not (tmp_path / "out" / t.WORK).exists()


def test_an_unreadable_chunk_is_generated_again(shard, monkeypatch):
    work = t.work_uri(shard.generations)
    storage.write_bytes(b"not parquet", storage.join(work, "part-bad.parquet"))
    assert t.saved_chunks(work) == {}
    engine = use(monkeypatch, EchoEngine())
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    assert len(engine.prompts) == 5


def test_stage_timing_is_in_the_footers(shard, monkeypatch):
    use(monkeypatch, EchoEngine())
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    t.decode.fn(
        shard.generations,
        shard.passages,
        shard.documents,
        shard.entities,
        shard.decode_issues,
        "ncbi",
        "run-1",
    )
    timing = t.shard_summary(shard)["timing"]
    assert set(timing) == {"generate", "decode"}
    (g_start, g_seconds), (d_start, d_seconds) = timing["generate"], timing["decode"]
    assert g_seconds >= 0 and d_seconds >= 0 and d_start >= g_start


def test_one_engine_per_process_reused_until_other_settings(monkeypatch):
    built = []

    def load(model, **kwargs):
        built.append((model, kwargs))
        return object()

    monkeypatch.setattr(t, "load_engine", load)
    monkeypatch.setattr(t, "_engines", {})
    first = t.engine_for("a", "cpu", 512)
    assert t.engine_for("a", "cpu", 512) is first and len(built) == 1
    other = t.engine_for("a", "cpu", 1024)  # another batch budget: another engine
    assert other is not first and len(built) == 2
    assert t.loaded_engines() == [t.EngineKey("a", "cpu", 1024)]  # the first one is dropped


def test_retries_are_for_transient_errors_with_backoff():
    from infra.s3 import StorageError
    from tasks._common import transient

    class Failed:
        def __init__(self, error):
            self.error = error

        def result(self):
            raise self.error

    assert transient(None, None, Failed(StorageError("s3://b/k: SlowDown")))
    assert not transient(None, None, Failed(StorageError("s3://b/k: denied", transient=False)))
    assert not transient(None, None, Failed(FileNotFoundError("gone")))
    assert not transient(None, None, Failed(ValueError("bad input")))
    for task in (t.generate, t.decode):
        assert task.retries == 3
        assert task.retry_delay_seconds == [2, 4, 8] and task.retry_jitter_factor == 0.5


def test_a_new_lexicon_decodes_again_but_keeps_the_model_version(shard, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    before = t.annotation_settings(shard.passages, str(model), "bc5cdr", None)
    assert before["bioner.lexicon"] == ""
    lexicon = Lexicon("bc5cdr", {"seizures": Entry("seizures", "Disease", 3, 3)})
    write_lexicon({"bc5cdr": lexicon}, model, {"data": "hand"})
    after = t.annotation_settings(shard.passages, str(model), "bc5cdr", None)
    # Only the lexicon differs: the shard is stale, its answers' cache keys (by the model
    # version) still match, so a rerun decodes again without generating.
    assert {k for k in after if after[k] != before[k]} == {"bioner.lexicon"}
    off = t.annotation_settings(shard.passages, str(model), "bc5cdr", None, rules="-lexicon")
    # Without the lexicon its file does not matter; the rules asked are recorded.
    assert off["bioner.lexicon"] == before["bioner.lexicon"] == ""
    assert {k for k in off if off[k] != before[k]} == {"bioner.decode_rules"}


def test_entities_on_a_short_form_the_document_redefines_are_dropped():
    text = (
        "Hormone therapy (HT) lowers fractures. HT users with HT had cisplatin. "
        "Later, hypertension (HT) was seen."
    )
    passage = Passage("9", 0, 0, len(text), text)
    provenance = {"model_id": "m", "prompt_version": "p"}

    def entity(string: str, nth: int, source: str) -> Entity:
        start = [m.start() for m in re.finditer(string, text)][nth]
        span = Span(start, start + len(string), "Disease")
        return t._derived(passage, provenance, span, text, source, "run-1")

    # The lexicon knew "HT" as hypertension and the tagger took it for a disease; this
    # document defines it once as no mention, so neither stays, and the later definition on
    # a mention does not spread it either. The lexicon's other entities stay.
    found = [
        entity("HT", 1, t.LEXICON),
        entity("HT", 2, "tagger"),
        entity("cisplatin", 0, t.LEXICON),
        entity("hypertension", 0, "tagger"),
    ]
    kept, redefined = t.document_entities([(passage, provenance, found)], text, "run-1")
    assert redefined == 2  # the lexicon's "HT" and the tagger's
    assert [(e.text, e.source) for e in kept] == [
        ("cisplatin", t.LEXICON),
        ("hypertension", "tagger"),
    ]


def test_an_entity_on_a_defined_short_form_takes_the_label_of_the_definition():
    text = "Overactive bladder (OAB) was treated. OAB improved."
    passage = Passage("9", 0, 0, len(text), text)
    provenance = {"model_id": "m", "prompt_version": "p"}

    def entity(string: str, nth: int, label: str, source: str = "tagger") -> Entity:
        start = [m.start() for m in re.finditer(string, text)][nth]
        span = Span(start, start + len(string), label)
        return t._derived(passage, provenance, span, text, source, "run-1")

    found = [
        entity("Overactive bladder", 0, "Disease"),
        entity("OAB", 0, "Chemical"),
        entity("OAB", 1, "Chemical"),
    ]
    out, redefined = t.document_entities([(passage, provenance, found)], text, "run-1")
    assert redefined == 0
    assert [(e.start, e.text, e.label, e.source) for e in out] == [
        (0, "Overactive bladder", "Disease", "tagger"),
        (20, "OAB", "Disease", t.ABBREVIATION),
        (38, "OAB", "Disease", t.ABBREVIATION),
    ]


def test_decode_drops_and_counts_spans_on_a_short_form_defined_on_no_mention(tmp_path):
    title = "Hormone therapy (HT) and fractures."
    abstract = "HT users had fewer fractures. Stopping HT changed little."
    answers = [
        "Disease: Hormone therapy ([HT]) and [fractures].",
        "Disease: [HT] users had fewer [fractures].",
        "None",
    ]
    shard, found = decoded_article(tmp_path, "4", title, abstract, answers)
    assert [(e["passage_index"], e["text"]) for e in found] == [(0, "fractures"), (1, "fractures")]
    assert t.shard_summary(shard)["abbreviation_dropped"] == 2
