"""``bioner ingest`` end to end through the Prefect flow: output, exit codes, reruns."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()

BASELINE = "pubmed26n1334.subset.xml.gz"
UPDATE = "pubmed26n1335.subset.xml.gz"


@pytest.fixture(scope="module")
def corpus(prefect_backend, shared_data, tmp_path_factory):
    """The real update then baseline, given in the wrong order, into a new folder."""
    out = tmp_path_factory.mktemp("ingest") / "out"
    files = [str(shared_data / "pubmed" / name) for name in (UPDATE, BASELINE)]
    result = runner.invoke(app, ["ingest", *files, "--out", str(out), "--shards", "4"])
    return result, out, files


@pytest.mark.data
def test_ingest_prints_the_reconciliation_and_the_order(corpus):
    result, out, _ = corpus
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert (
        f"note: PubMed files ordered by their number (baseline first): {BASELINE}, {UPDATE}"
        in result.output
    )
    assert "current view: 60 documents, 6 deletions in force" in result.output
    assert "shards written: 0, 1, 2, 3" in result.output
    # the rows of the table: read, docs, tombstones, quarantined, dups, superseded, deleted
    lines = {
        line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.strip()
    }
    assert lines["pubmed26n1334.subset"][:7] == ["30", "30", "0", "0", "0", "0", "0"]
    assert lines["pubmed26n1335.subset"][:7] == ["36", "30", "6", "0", "0", "0", "0"]
    (manifest,) = (out / "_ingest" / "runs").glob("*.json")
    summary = json.loads(manifest.read_text())
    assert [r["ordinal"] for r in summary["inputs"]] == [1, 2]
    assert summary["totals"]["records_read"] == 66 == 60 + 6 + 0
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "documents").iterdir()) == 60


@pytest.mark.data
def test_rerun_with_json_changes_nothing(corpus):
    _, out, files = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    result = runner.invoke(app, ["ingest", *files, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shards_written"] == [] and summary["totals"]["skipped"] == 2
    assert summary["current"]["documents"] == 60
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


@pytest.mark.data
def test_another_shard_count_is_a_usage_error(corpus):
    _, out, files = corpus
    result = runner.invoke(app, ["ingest", *files, "--out", str(out), "--shards", "8"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {out} has 4 shards; --shards 8 would move documents between shards "
        "(use --shards 4, or a new output folder)"
    )


@pytest.mark.data
def test_a_truncated_file_keeps_its_records_and_exits_1(prefect_backend, shared_data, tmp_path):
    data = (shared_data / "pubmed" / BASELINE).read_bytes()
    cut = tmp_path / "pubmed26n1334.cut.xml.gz"
    cut.write_bytes(data[: len(data) * 6 // 10])
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "README.txt").write_text("Downloaded from NLM.\n")
    (folder / "extra.jsonl").write_text('{"id": "j1", "text": "Aspirin and asthma."}\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", str(cut), str(folder), "--out", str(out)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {cut}: truncated gzip: Compressed file ended before the end-of-stream marker "
        "was reached"
    ]
    assert "skipped 1: README.txt: not a recognised corpus format" in result.output
    (manifest,) = (out / "_ingest" / "runs").glob("*.json")
    summary = json.loads(manifest.read_text())
    kept = summary["inputs"][0]["documents"]
    assert 0 < kept < 30 and summary["current"]["documents"] == kept + 1


def test_no_input_files_and_missing_inputs_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"error: no input files in {tmp_path / 'empty'}",
    )
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope.xml"), "--out", str(tmp_path)])
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"error: {tmp_path / 'nope.xml'}: no such file",
    )
    assert not (tmp_path / "_ingest").exists()
