"""``bioner run`` end to end on the bundled sample, with a tiny untrained model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bioner.constraint import CONSTRAINT_VERSION
from bioner.ingest import shard_of
from flows.cli import app
from flows.commands.run import SAMPLE, UNTRAINED_WARNING
from schemas import DOCUMENTS_V2, ENTITIES_V3, GENERATIONS_V2, PASSAGES_V1

runner = CliRunner()


def read(out: Path, table: str) -> list[dict]:
    """Every row of a table: all its ``shard=<k>.parquet`` files."""
    return [r for f in sorted((out / table).iterdir()) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def sample_run(prefect_backend, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    args = ["run", str(SAMPLE), "--out", str(out), "--model", str(tiny_model)]
    result = runner.invoke(app, [*args, "--max-new-tokens", "24"])
    return result, out


def test_run_exits_cleanly_and_warns_about_the_untrained_model(sample_run):
    result, _ = sample_run
    assert result.exit_code == 0, result.output
    assert UNTRAINED_WARNING in result.output
    assert "documents" in result.output and "entities" in result.output
    assert "Traceback" not in result.output


def test_tables_have_their_schemas(sample_run):
    _, out = sample_run
    summary = json.loads((out / "summary.json").read_text())
    for table, schema in [
        ("documents", DOCUMENTS_V2),
        ("passages", PASSAGES_V1),
        ("generations", GENERATIONS_V2),
        ("entities", ENTITIES_V3),
    ]:
        files = sorted(p.name for p in (out / table).iterdir())
        assert files == [f"shard={k}.parquet" for k in sorted(summary["shards"], key=str)], table
        for file in files:
            written = pq.read_schema(out / table / file)
            assert written.equals(schema), table
            assert written.metadata[b"bioner.schema"] == schema.metadata[b"bioner.schema"]


def test_counts_reconcile(sample_run):
    _, out = sample_run
    documents = {(d["id"], d["version"]): d["text"] for d in read(out, "documents")}
    passages = read(out, "passages")
    generations = read(out, "generations")
    entities = read(out, "entities")
    assert len(documents) == 8
    keys = sorted((p["doc_id"], p["doc_version"], p["index"]) for p in passages)
    assert keys == sorted((g["doc_id"], g["doc_version"], g["passage_index"]) for g in generations)
    for p in passages:
        assert documents[p["doc_id"], p["doc_version"]][p["start"] : p["end"]] == p["text"]
    for e in entities:
        assert documents[e["doc_id"], e["doc_version"]][e["start"] : e["end"]] == e["text"]
    assert all(0 < g["output_tokens"] <= 24 for g in generations)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["documents"], summary["passages"], summary["generations"]) == (
        8,
        len(passages),
        len(generations),
    )
    assert summary["entities"] == len(entities)
    # A first run: every distinct passage text generated once, repeats reused.
    distinct = {p["text"] for p in passages}
    assert (summary["generated"], summary["cached"]) == (
        len(distinct),
        len(passages) - len(distinct),
    )
    assert [g["cached"] for g in generations].count(False) == summary["generated"]
    spent = [g for g in generations if not g["cached"]]
    assert summary["output_tokens"] == sum(g["output_tokens"] for g in spent)
    assert summary["engine"] == {
        "backend": "transformers",
        "constrained": CONSTRAINT_VERSION,
        "dtype": "float32",
    }
    assert set(summary["seconds"]) == {"ingest", "segment", "generate", "decode"}


def test_missing_input_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.xml"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nope.xml'}: no such file"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--schema", "nosuch"], "unknown schema 'nosuch'; known: bc5cdr, bionlp11id"),
        (["--schema", "general[Gene,Variant]"], "schema general: unknown type 'Variant'; known"),
        (["--rules", "-nosuch"], "unknown decode rule 'nosuch'; known: shape, veto"),
    ],
)
def test_an_unknown_schema_type_or_rule_is_one_line_naming_the_known(tmp_path, option, message):
    result = runner.invoke(app, ["run", str(SAMPLE), "--out", str(tmp_path / "out"), *option])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_model_never_taught_the_schema_is_refused_in_one_line(tmp_path, tiny_model):
    import json
    import shutil

    model = shutil.copytree(tiny_model, tmp_path / "model")
    info = {"trained": True, "kind": "bioner-sft", "schemas": ["ncbi"]}
    (model / "bioner-model.json").write_text(json.dumps(info))
    args = ["run", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {model}: trained for the schemas ncbi, not general; ask one of those "
        "(--schema), or train the model on it (bioner train-data --views unified for the "
        "unified schema)"
    )


def test_a_type_a_language_lacks_fails_its_shards_in_one_line_naming_the_cause(
    prefect_backend, tiny_model, tmp_path
):
    corpus = tmp_path / "mixed.jsonl"
    corpus.write_text('{"id": "z1", "text": "患者出现发热和咳嗽。"}\n', "utf-8")
    args = ["run", str(corpus), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]
    result = runner.invoke(app, [*args, "--schema", "general[Gene]", "--max-new-tokens", "4"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: 1 of 1 shard(s) failed: shard 0: ValueError: schema general[Gene]: none of its "
        "types has a zh counterpart in general-zh (Disease, Symptom, Procedure, Equipment, "
        "Chemical, TestItem, Anatomy, Department, Species), so a zh passage cannot be asked it; "
        "add a type general-zh has, or ask general"
    ]


def test_unrecognised_input_fails_before_starting_anything(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("PMID 1\ttitle\n")
    result = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {bad}: not a recognised corpus format "
        "(PubMed XML, BioC XML, PubTator, JSON lines, Parquet, CNKI)"
    )
    assert not (tmp_path / "out").exists()


def test_a_broken_xml_record_is_quarantined_naming_file_and_line(
    prefect_backend, tiny_model, tmp_path
):
    broken = tmp_path / "broken.xml"
    broken.write_text("<PubmedArticleSet>\n<PubmedArticle>\n<Oops>\n</PubmedArticleSet>\n")
    out = tmp_path / "out"
    args = ["run", str(broken), "--out", str(out), "--model", str(tiny_model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "error:" not in result.output
    # The record is accounted for: read 1 = 0 documents + 1 quarantined, with its reason.
    [row] = [
        r for f in (out / "quarantine").glob("*.parquet") for r in pq.read_table(f).to_pylist()
    ]
    assert row["reason"].startswith("XML broken at line 4, column ")
    assert f"of {broken.name} quarantined" in row["reason"]


def test_an_update_replaces_and_deletes_and_only_changed_shards_are_annotated(
    prefect_backend, tiny_model, tmp_path
):
    update = tmp_path / "pubmed-update.xml"
    update.write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet><PubmedArticle><MedlineCitation>'
        '<PMID Version="2">5</PMID><Article><ArticleTitle>Aspirin and asthma.</ArticleTitle>'
        "</Article></MedlineCitation></PubmedArticle>"
        '<DeleteCitation><PMID Version="1">41576520</PMID></DeleteCitation></PubmedArticleSet>\n'
    )
    out = tmp_path / "out"
    base = ["--out", str(out), "--model", str(tiny_model), "--max-new-tokens", "4"]
    base += ["--schema", "bc5cdr", "--shards", "4"]
    first = runner.invoke(app, ["run", str(SAMPLE), *base])
    assert first.exit_code == 0, first.output
    entities = {p.name: p.stat().st_mtime_ns for p in (out / "entities").iterdir()}
    result = runner.invoke(app, ["run", str(SAMPLE), str(update), *base])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    # PMID 5 and the deleted 41576520 fall in these shards; the others are not annotated again.
    changed = sorted({shard_of("5", 4), shard_of("41576520", 4)})
    assert summary["shards"] == changed
    assert summary["ingest"]["totals"] | {"inputs": 0} == {
        "inputs": 0,
        "ingested": 1,
        "skipped": 1,
        "errors": 0,
        "records_read": 2,
        "documents": 1,
        "tombstones": 1,
        "quarantined": 0,
        "duplicates_collapsed": 0,
        "superseded": 0,
        "deleted": 1,
    }
    assert (summary["ingest"]["current"]["documents"], summary["schema"]) == (8, "bc5cdr")
    # Only PMID 5's new passage is generated; the other passages of those shards are reused.
    assert summary["generated"] == 1
    assert summary["cached"] == summary["generations"] - 1 > 0
    assert read(out, "tombstones") == [
        {"id": "41576520", "source": "pubmed-update.xml", "position": 2}
    ]
    assert {d["version"] for d in read(out, "documents") if d["id"] == "5"} == {2}
    assert "41576520" not in {e["doc_id"] for e in read(out, "entities")}
    unchanged = {f"shard={k}.parquet" for k in range(4)} - {f"shard={k}.parquet" for k in changed}
    for name in unchanged & set(entities):
        assert (out / "entities" / name).stat().st_mtime_ns == entities[name]


def test_a_rerun_that_changes_no_output_generates_nothing(prefect_backend, tiny_model, tmp_path):
    out = tmp_path / "out"
    base = ["run", str(SAMPLE), "--out", str(out), "--max-new-tokens", "4", "--shards", "2"]
    first = runner.invoke(app, [*base, "--model", str(tiny_model)])
    assert first.exit_code == 0, first.output
    before = {(g["doc_id"], g["passage_index"]): g for g in read(out, "generations")}
    # The same model in another place: another request (every shard is redone), same answers.
    moved = tmp_path / "elsewhere" / tiny_model.name
    shutil.copytree(tiny_model, moved)
    second = runner.invoke(app, [*base, "--model", str(moved)])
    assert second.exit_code == 0, second.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards"] == [0, 1]
    assert (summary["generated"], summary["cached"]) == (0, len(before))
    assert (summary["prompt_tokens"], summary["output_tokens"]) == (0, 0)
    assert "0 generated" in second.output
    after = {(g["doc_id"], g["passage_index"]): g for g in read(out, "generations")}
    assert {k: (g["text"], g["run_id"], g["cache_key"]) for k, g in after.items()} == {
        k: (g["text"], g["run_id"], g["cache_key"]) for k, g in before.items()
    }
    assert all(g["cached"] for g in after.values())
    # Free decoding changes the engine's settings: every passage is generated again.
    third = runner.invoke(app, [*base, "--model", str(moved), "--no-constrain"])
    assert third.exit_code == 0, third.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"]["constrained"] == "off"
    assert summary["generated"] == len({p["text"] for p in read(out, "passages")})
