"""``bioner tag`` on a documents table ingested from the bundled sample, with a tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bioner.constraint import CONSTRAINT_VERSION
from flows.annotate import TAG_SUMMARY
from flows.cli import app
from flows.commands.run import SAMPLE
from schemas import ENTITIES_V3, GENERATIONS_V2

runner = CliRunner()


def read(out: Path, table: str) -> list[dict]:
    """Every row of a table: all its ``shard=<k>.parquet`` files."""
    return [r for f in sorted((out / table).iterdir()) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """The sample, ingested into two shards (no Prefect run needed to read it)."""
    out = tmp_path_factory.mktemp("ingest") / "out"
    result = runner.invoke(app, ["ingest", str(SAMPLE), "--out", str(out), "--shards", "2"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def corpus(ingested, tmp_path) -> Path:
    """A copy of the ingested folder for one test to write into."""
    return Path(shutil.copytree(ingested, tmp_path / "corpus"))


def tag(*args: str):
    return runner.invoke(app, ["tag", *args, "--max-new-tokens", "4", "--schema", "bc5cdr"])


def test_tag_writes_beside_the_documents_and_a_rerun_does_nothing(
    prefect_backend, tiny_model, corpus
):
    result = tag("--docs", str(corpus / "documents"), "--model", str(tiny_model))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "tokens/s" in result.output  # the progress bar, and the summary's speed
    assert "bioner tag" in result.stdout and "generated" in result.stdout
    summary = json.loads((corpus / TAG_SUMMARY).read_text())
    passages = read(corpus, "passages")
    generations = read(corpus, "generations")
    assert summary["shards"] == [0, 1] and summary["n_shards"] == 2
    assert summary["generations"] == len(generations) == len(passages)
    distinct = len({p["text"] for p in passages})
    assert (summary["generated"], summary["cached"]) == (distinct, len(passages) - distinct)
    assert summary["engine"]["constrained"] == CONSTRAINT_VERSION
    documents = {(d["id"], d["version"]): d["text"] for d in read(corpus, "documents")}
    for e in read(corpus, "entities"):
        assert documents[e["doc_id"], e["doc_version"]][e["start"] : e["end"]] == e["text"]
    for table, schema in [("generations", GENERATIONS_V2), ("entities", ENTITIES_V3)]:
        for file in (corpus / table).iterdir():
            assert pq.read_schema(file).equals(schema)

    # Again, naming the folder above the table: nothing to do.
    again = tag("--docs", str(corpus), "--model", str(tiny_model), "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["shards"], summary["generated"]) == ([], 0)


def test_tag_to_another_folder_cuts_passages_only_when_there_are_none(
    prefect_backend, tiny_model, corpus, tmp_path
):
    # Passages beside the documents are used as they are: nothing is cut.
    elsewhere = tmp_path / "tags"
    args = ["--model", str(tiny_model), "--out", str(elsewhere)]
    result = tag("--docs", str(corpus / "documents"), *args)
    assert result.exit_code == 0, result.output
    assert not (elsewhere / "passages").exists()
    assert {p.name for p in elsewhere.iterdir()} == {
        "generations",
        "entities",
        "decode_issues",
        TAG_SUMMARY,
    }
    assert len(read(elsewhere, "generations")) == len(read(corpus, "passages"))

    # A documents table alone: its passages are cut here, as the ingest cuts them.
    alone = tmp_path / "alone"
    shutil.copytree(corpus / "documents", alone / "documents")
    result = tag("--docs", str(alone / "documents"), "--model", str(tiny_model), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["seconds"]["segment"] > 0
    key = ("doc_id", "doc_version", "index", "start", "end", "text")
    assert sorted(tuple(p[k] for k in key) for p in read(alone, "passages")) == sorted(
        tuple(p[k] for k in key) for p in read(corpus, "passages")
    )
    # The same documents again: their passages are current and tagged, nothing to do.
    result = tag("--docs", str(alone / "documents"), "--model", str(tiny_model), "--json")
    assert json.loads(result.stdout)["shards"] == []


def test_free_decoding_is_another_request(prefect_backend, tiny_model, corpus):
    docs = ["--docs", str(corpus), "--model", str(tiny_model), "--json"]
    assert tag(*docs).exit_code == 0
    result = tag(*docs, "--no-constrain")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shards"] == [0, 1]
    assert summary["engine"]["constrained"] == "off"
    assert summary["generated"] == len({p["text"] for p in read(corpus, "passages")})


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output.strip()


def test_missing_documents_table(tmp_path, tiny_model):
    missing = tmp_path / "nope"
    result = tag("--docs", str(missing), "--model", str(tiny_model))
    assert error_line(result) == f"error: {missing}: no such documents table"


def test_a_folder_that_is_not_a_documents_table(ingested, tiny_model, tmp_path):
    result = tag("--docs", str(ingested / "passages"), "--model", str(tiny_model))
    assert error_line(result) == (
        f"error: {ingested / 'passages' / 'shard=0.parquet'}: not a documents table "
        "(expected documents/2, found passages/1)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tag("--docs", str(empty), "--model", str(tiny_model))
    assert error_line(result).startswith(f"error: {empty}: not a documents table (no shard=")
    file = ingested / "documents" / "shard=0.parquet"
    result = tag("--docs", str(file), "--model", str(tiny_model))
    assert error_line(result).startswith(f"error: {file}: not a documents table (expected")


def test_missing_model_folder(ingested, tmp_path):
    missing = tmp_path / "no-model"
    result = tag("--docs", str(ingested), "--model", str(missing))
    assert error_line(result) == f"error: {missing}: no such model folder"


def test_unknown_engine(ingested, tiny_model):
    result = tag("--docs", str(ingested), "--model", str(tiny_model), "--engine", "llama.cpp")
    assert error_line(result) == "error: unknown engine 'llama.cpp'; known: transformers, vllm"
