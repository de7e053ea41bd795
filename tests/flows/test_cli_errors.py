"""User-caused failures end a command with one ``error:`` line and a non-zero exit, checked
before Prefect starts where they can be; a traceback only with ``bioner --debug``."""

from __future__ import annotations

import errno
import shutil

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.commands import _common
from flows.commands.run import SAMPLE
from infra import storage
from infra.lease import Lease

runner = CliRunner()


def _one_error_line(result, prefect_ran: bool = False) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    # Under the test harness Prefect's own loggers print the flow's failure; bioner quiets
    # them when it imports Prefect itself (as the installed command does).
    assert prefect_ran or "Traceback" not in result.output
    return errors[0]


def test_out_that_is_a_file(tmp_path):
    out = tmp_path / "taken"
    out.write_text("x")
    result = runner.invoke(app, ["ingest", str(SAMPLE), "--out", str(out)])
    assert result.exit_code == 2
    assert _one_error_line(result) == f"error: {out}: is a file, expected a folder for the output"


def test_out_under_a_file(tmp_path, tiny_model):
    taken = tmp_path / "taken"
    taken.write_text("x")
    out = taken / "out"
    result = runner.invoke(app, ["run", str(SAMPLE), "--out", str(out), "--model", str(tiny_model)])
    assert result.exit_code == 2
    assert _one_error_line(result) == (
        f"error: {out}: cannot create the output folder ({taken} is a file)"
    )


def test_a_model_folder_with_a_broken_config_is_named(tmp_path, tiny_model):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "config.json").write_text('{"model_type": "llama",\n}')
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(SAMPLE), "--out", str(out), "--model", str(model)])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line.startswith(f"error: {model / 'config.json'}: not valid JSON (Expecting ")
    assert "line 2 column 1" in line
    assert not (out / "documents").exists()  # nothing started


def test_a_full_disk_during_ingest(prefect_backend, tmp_path, monkeypatch):
    def full(uri, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "_atomic_write", full)
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", str(SAMPLE), "--out", str(out)])
    assert result.exit_code == 1
    assert _one_error_line(result, prefect_ran=True) == f"error: {out}: no space left on device"
    assert not (out / "_lease.json").exists()  # released


def test_a_second_local_writer_is_refused(tmp_path):
    out = tmp_path / "out"
    with Lease(str(out), "bioner nightly") as held:
        result = runner.invoke(app, ["ingest", str(SAMPLE), "--out", str(out)])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert line.startswith(f"error: {out}: already being written by bioner nightly (host ")
    assert f"pid {held.holder.pid}) since {held.holder.since}" in line


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    from flows.commands import ingest

    def broken(paths):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(ingest, "expand_inputs", broken)
    monkeypatch.setattr(_common, "debug", False)
    with pytest.raises(SystemExit) as stopped:
        app(["ingest", str(SAMPLE), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: RuntimeError: boom second line (bioner --debug shows the traceback)"
    )
    with pytest.raises(RuntimeError, match="boom"):
        app(["--debug", "ingest", str(SAMPLE), "--out", str(tmp_path / "out")])


def test_an_unreachable_s3_endpoint_is_one_line(monkeypatch, capsys):
    from infra import s3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_EC2_METADATA_DISABLED": "true",
        "BIONER_S3_ENDPOINT": "http://127.0.0.1:9",  # nothing listens on the discard port
        "BIONER_S3_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    s3.reset()
    monkeypatch.setattr(_common, "debug", False)
    with pytest.raises(SystemExit) as stopped:
        app(["ingest", str(SAMPLE), "--out", "s3://bucket/out"])
    s3.reset()
    assert stopped.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: s3://bucket/out/")
    assert line.endswith("cannot reach the S3 endpoint http://127.0.0.1:9")


def test_a_lease_lost_while_running_fails_the_command(tmp_path, monkeypatch, capsys):
    import typer

    class LostOnTheWay(Lease):
        def release(self) -> None:
            self.lost = True  # as a renewal finding another writer's lease would
            super().release()

    monkeypatch.setattr(_common, "Lease", LostOnTheWay)
    out = tmp_path / "out"
    with pytest.raises(typer.Exit) as stopped, _common.writing(str(out), "bioner run"):
        pass
    assert stopped.value.exit_code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {out}: another writer took the lease over while this command")
