"""The corpus commands with their output (and inputs) on S3, against moto: the same tables,
atomic commits, skip on rerun and one writer per output as on a local folder."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.commands.run import SAMPLE
from infra import s3, storage
from infra.lease import LEASE, Lease

pytestmark = pytest.mark.s3
runner = CliRunner()


@pytest.fixture
def prefix(moto_s3):
    """A fresh prefix on moto for the test; S3 settings from the environment the fixture set."""
    s3.reset()
    return moto_s3.uri(f"cli-{uuid.uuid4().hex[:12]}")


def _entity_keys(out: str) -> list[tuple]:
    rows = []
    for name in storage.list_dir(storage.join(out, "entities")):
        table = storage.read_table(storage.join(out, "entities", name))
        rows += [(r["doc_id"], r["start"], r["end"], r["label"]) for r in table.to_pylist()]
    return sorted(rows)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_run_on_s3_interrupted_by_a_full_disk_then_rerun_does_only_the_rest(
    prefect_backend, tiny_model, prefix, tmp_path, monkeypatch
):
    import tasks.annotate as t

    out = f"{prefix}/run"
    args = ["--model", str(tiny_model), "--shards", "3", "--max-new-tokens", "16"]
    args += ["--max-concurrency", "1"]
    real = t._generate_rows
    calls: list[str] = []

    def full_disk_on_one_shard(engine, passages_uri, generations_uri, *rest, **kwargs):
        calls.append(passages_uri)
        if passages_uri == calls[0]:  # the first shard, on its retries too
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), generations_uri)
        return real(engine, passages_uri, generations_uri, *rest, **kwargs)

    monkeypatch.setattr(t, "_generate_rows", full_disk_on_one_shard)
    first = runner.invoke(app, ["run", str(SAMPLE), "--out", out, *args])
    assert first.exit_code == 1, first.output
    (line,) = [x for x in _lines(first.stderr) if x.startswith("error:")]
    assert "No space left on device" in line and "run again to retry these" in line
    failed = calls[0].rpartition("/")[2]  # shard=<k>.parquet
    done = storage.list_dir(storage.join(out, "entities"))
    assert done and failed not in done
    assert LEASE not in storage.list_dir(out)  # released on the error too

    monkeypatch.setattr(t, "_generate_rows", real)
    again = runner.invoke(app, ["run", str(SAMPLE), "--out", out, *args])
    assert again.exit_code == 0, again.output
    summary = json.loads(storage.read_text(storage.join(out, "summary.json")))
    assert [f"shard={k}.parquet" for k in summary["shards"]] == [failed]  # the others skipped
    assert storage.list_dir(storage.join(out, "entities")) == sorted([*done, failed])

    local = tmp_path / "local"
    reference = runner.invoke(app, ["run", str(SAMPLE), "--out", str(local), *args])
    assert reference.exit_code == 0, reference.output
    assert _entity_keys(out) == _entity_keys(str(local))
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:")


def test_run_on_s3_killed_then_rerun_takes_over_its_lease_and_resumes(
    prefect_backend, tiny_model, prefix, tmp_path, kill_after_chunks
):
    from prefect.settings import PREFECT_API_URL

    out = f"{prefix}/killed"
    args = ["--model", str(tiny_model), "--shards", "2", "--chunk-size", "2"]
    args += ["--max-new-tokens", "4", "--max-concurrency", "1"]
    command = [str(Path(sys.executable).parent / "bioner"), "run", str(SAMPLE), "--out", out, *args]
    # The subprocesses use the test's Prefect server and, from the environment, moto.
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = kill_after_chunks(command, env, out)  # three chunks committed
    assert proc.returncode == -signal.SIGKILL
    assert LEASE in storage.list_dir(out)  # left behind by the killed run
    work = f"{out}/_work/generations"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (
        f"took over the stale lease of bioner run (host {os.uname().nodename}, pid {proc.pid})"
        in (" ".join(again.stderr.split()))
    )
    summary = json.loads(storage.read_text(storage.join(out, "summary.json")))
    assert summary["resumed"] >= 6  # the killed run's chunks were taken up, not redone
    assert storage.files_under(work) == []  # the chunks removed once their shard committed
    assert LEASE not in storage.list_dir(out)
    local = tmp_path / "local"
    reference = runner.invoke(app, ["run", str(SAMPLE), "--out", str(local), *args])
    assert reference.exit_code == 0, reference.output
    assert _entity_keys(out) == _entity_keys(str(local))


def test_ingest_on_s3_is_refused_while_another_writer_holds_it(prefect_backend, prefix):
    out = f"{prefix}/corpus"
    with Lease(out, "bioner run") as held:
        busy = runner.invoke(app, ["ingest", str(SAMPLE), "--out", out])
    assert busy.exit_code == 1
    (line,) = _lines(busy.stderr)
    assert line.startswith(f"error: {out}: already being written by bioner run (host ")
    assert f"pid {held.holder.pid}) since {held.holder.since}" in line
    assert not storage.exists(storage.join(out, "documents"))

    assert runner.invoke(app, ["ingest", str(SAMPLE), "--out", out]).exit_code == 0
    again = runner.invoke(app, ["ingest", str(SAMPLE), "--out", out, "--json"])
    assert again.exit_code == 0, again.output
    log = storage.read_text(storage.join(out, "_ingest", "inputs.jsonl"))
    assert len(_lines(log)) == 1  # the input once
    assert LEASE not in storage.list_dir(out)


def test_tag_publish_and_export_read_and_write_s3(prefect_backend, tiny_model, prefix):
    pytest.importorskip("deltalake", reason="install the s3 extra (deltalake) to publish")
    out = f"{prefix}/corpus"
    ingested = runner.invoke(app, ["ingest", str(SAMPLE), "--out", out, "--shards", "2"])
    assert ingested.exit_code == 0, ingested.output
    tag = ["tag", "--docs", out, "--model", str(tiny_model), "--max-new-tokens", "4", "--json"]
    tagged = runner.invoke(app, tag)
    assert tagged.exit_code == 0, tagged.output
    summary = json.loads(tagged.stdout)
    assert summary["outputs"]["entities"] == f"{out}/entities"
    assert summary["entities"] == len(_entity_keys(out))
    again = json.loads(runner.invoke(app, tag).stdout)
    assert again["shards"] == []  # nothing stale: skipped

    published = runner.invoke(app, ["publish", out, "--to", f"{prefix}/published"])
    assert published.exit_code == 0, published.output
    assert storage.list_dir(f"{prefix}/published")  # the Delta tables
    exported = runner.invoke(
        app, ["export", out, "--format", "pubtator", "--to", f"{prefix}/pubtator"]
    )
    assert exported.exit_code == 0, exported.output
    files = json.loads(exported.stdout)["files"]
    assert files and all(f.startswith(f"{prefix}/pubtator/") for f in files)
    for root in (out, f"{prefix}/published", f"{prefix}/pubtator"):
        assert LEASE not in storage.list_dir(root)


def test_backfill_and_nightly_from_s3_to_s3(prefect_backend, tiny_model, prefix, moto_s3):
    import boto3

    source = f"{prefix}/updates"
    client = boto3.client("s3", endpoint_url=moto_s3.endpoint)
    # boto3, as a mirror job would upload it (pyarrow would compress a .gz name once more).
    key = source.removeprefix(f"s3://{moto_s3.bucket}/") + "/pubmed26n0001.xml.gz"
    client.put_object(Bucket=moto_s3.bucket, Key=key, Body=SAMPLE.read_bytes())
    model = ["--model", str(tiny_model), "--max-new-tokens", "4"]

    backfilled = runner.invoke(app, ["backfill", source, "--out", f"{prefix}/bf", *model])
    assert backfilled.exit_code == 0, backfilled.output
    assert storage.list_dir(f"{prefix}/bf/entities")  # the shards' tables

    night = runner.invoke(app, ["nightly", source, "--out", f"{prefix}/night", *model])
    assert night.exit_code == 0, night.output
    assert "watermark pubmed26n0001.xml.gz" in night.output
    assert _entity_keys(f"{prefix}/night") == _entity_keys(f"{prefix}/bf")


def test_ingest_reads_an_s3_folder(prefect_backend, prefix, moto_s3):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_s3.endpoint)
    base = prefix.removeprefix(f"s3://{moto_s3.bucket}/")
    client.put_object(
        Bucket=moto_s3.bucket, Key=f"{base}/in/a/sample.xml.gz", Body=SAMPLE.read_bytes()
    )
    client.put_object(Bucket=moto_s3.bucket, Key=f"{base}/in/.hidden/x.xml", Body=b"<x/>")
    result = runner.invoke(app, ["ingest", f"{prefix}/in", "--out", f"{prefix}/out", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout[result.stdout.index("{") :])
    assert [r["name"] for r in manifest["inputs"]] == ["sample.xml.gz"]
    docs = storage.list_dir(f"{prefix}/out/documents")
    rows = sum(
        pq.ParquetFile(storage.open_raw(f"{prefix}/out/documents/{d}")).metadata.num_rows
        for d in docs
    )
    assert rows == 8
