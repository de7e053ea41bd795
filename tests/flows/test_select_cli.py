"""``bioner select`` and ``bioner train-selector`` end to end on tiny tables and encoders."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("faiss", reason="install the selector extra (faiss-cpu)")
pytest.importorskip("torch", reason="install the llm extra (torch)")

from flows.commands import select
from infra import storage
from infra.selector.tiny import build_tiny_encoder, toy_documents
from infra.selector.train import TrainConfig, train
from schemas import ENTITIES_V1, ENTITIES_V4, PASSAGES_V1

# An app holding only these commands, as the real CLI registers them.
app = typer.Typer(pretty_exceptions_enable=False)
app.command("select")(select.main)
app.command("train-selector")(select.train_main)
runner = CliRunner()

TEXT = "the patient had breast cancer today ."


def entity(start, end, text=None, label="Disease"):
    return {
        "doc_id": "d1", "doc_version": 1, "passage_index": 0, "start": start, "end": end,
        "text": TEXT[start:end] if text is None else text, "label": label, "model_id": "m",
        "prompt_version": "v", "run_id": "r", "score": None, "selected": None, "issues": [],
    }  # fmt: skip


@pytest.fixture(scope="module")
def selector_dir(tmp_path_factory):
    docs = toy_documents(100, seed=1)
    root = tmp_path_factory.mktemp("cli-selector")
    encoder = build_tiny_encoder(root / "enc", [d.text for d in docs])
    config = TrainConfig(max_steps=40, lr=1e-3, k=5, max_shift=1, threads=1)
    train(docs, toy_documents(20, seed=2), ["Chemical", "Disease"], config,
          encoder=str(encoder)).save(root / "sel")  # fmt: skip
    return root / "sel"


@pytest.fixture
def run_out(tmp_path):
    out = tmp_path / "out"
    passage = {"doc_id": "d1", "index": 0, "start": 0, "end": len(TEXT), "text": TEXT,
               "doc_version": 1, "language": "en"}  # fmt: skip
    for k in (0, 1):
        rows = [entity(16, 29), entity(12, 29), entity(16, 40, text="breast cancer today . !!")]
        storage.write_rows(rows, str(out / "entities" / f"shard={k}.parquet"), ENTITIES_V1)
        storage.write_rows([passage], str(out / "passages" / f"shard={k}.parquet"), PASSAGES_V1)
    return out


def test_select_a_run_folder(run_out, selector_dir):
    result = runner.invoke(
        app, ["select", "--candidates", str(run_out), "--selector", str(selector_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["shards"] == 2 and summary["candidates"] == 6
    assert summary["reasons"]["offsets_outside_passage"] == 2
    assert summary["accepted"] + summary["rejected"] == 6
    # a warning names the file and the record of each malformed candidate, kept and rejected
    assert "shard=0.parquet: record d1#0[16:40] Disease: offsets outside passage; kept" in (
        " ".join(result.output.split())
    )
    for k in (0, 1):
        rows = storage.read_table(str(run_out / "selected" / f"shard={k}.parquet"), ENTITIES_V4)
        assert rows.num_rows == 3


def test_select_one_shard_to_a_file_with_a_readable_summary(run_out, selector_dir, tmp_path):
    shard = run_out / "entities" / "shard=1.parquet"
    out = tmp_path / "scored.parquet"
    result = runner.invoke(
        app,
        ["select", "--candidates", str(shard), "--selector", str(selector_dir), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert storage.read_table(str(out), ENTITIES_V4).num_rows == 3
    for words in ("candidates", "accepted", "rejected", "offsets_outside_passage", "candidates/s"):
        assert words in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--selector", "{tmp}/nothing"], "nothing: no such selector folder"),
        (["--candidates", "{tmp}/none"], "none: no such candidates table"),
        (["--candidates", "{out}/passages/shard=0.parquet"], "expected an entities table"),
    ],
)
def test_select_bad_input_is_one_line_naming_the_file(
    run_out, selector_dir, tmp_path, args, message
):
    base = {"--candidates": str(run_out), "--selector": str(selector_dir)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value.format(tmp=tmp_path, out=run_out)
    result = runner.invoke(app, ["select", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in " ".join(result.output.split()), result.output


def test_strict_select_fails_on_a_malformed_candidate(run_out, selector_dir):
    result = runner.invoke(
        app,
        ["select", "--candidates", str(run_out), "--selector", str(selector_dir), "--strict"],
    )
    assert result.exit_code == 2
    assert "shard=0.parquet: record d1#0[16:40] Disease: offsets outside passage" in (
        " ".join(result.output.split())
    )


def test_train_selector_checks_its_options_first(tmp_path):
    result = runner.invoke(app, ["train-selector", "--set", "genia", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "unknown --set 'genia'" in result.output
    result = runner.invoke(
        app,
        ["train-selector", "--set", "ncbi", "--out", str(tmp_path / "s"), "--encoder",
         str(tmp_path / "no-encoder")],
    )  # fmt: skip
    assert result.exit_code == 2 and "not an encoder folder" in result.output
    result = runner.invoke(
        app,
        ["train-selector", "--set", "ncbi", "--out", str(tmp_path / "s"), "--data",
         str(tmp_path / "no-data")],
    )  # fmt: skip
    assert result.exit_code == 2 and "no benchmark data folder" in result.output


def tiny_ncbi(tmp_path):
    """An NCBI-disease folder of toy PubTator train/dev files and a tiny encoder for it."""
    docs = [d for d in toy_documents(60, seed=4) if d.spans[0].label == "Disease"]
    folder = tmp_path / "data" / "ncbi-disease" / "pubtator"
    folder.mkdir(parents=True)
    for split, part in (("train", docs[:20]), ("develop", docs[20:])):
        lines = []
        for i, d in enumerate(part):
            (s,) = d.spans
            pmid = f"{1 if split == 'train' else 2}{i:04d}"
            lines += [f"{pmid}|t|{d.text}", f"{pmid}|a|None.",
                      f"{pmid}\t{s.start}\t{s.end}\t{s.text(d.text)}\tDiseaseClass\tD1", ""]  # fmt: skip
        (folder / f"NCBI{split}set_corpus.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "data", build_tiny_encoder(tmp_path / "enc", [d.text for d in docs])


def test_train_selector_on_a_tiny_benchmark_folder(tmp_path):
    _, encoder = tiny_ncbi(tmp_path)
    result = runner.invoke(
        app,
        ["train-selector", "--set", "ncbi", "--out", str(tmp_path / "sel"), "--encoder",
         str(encoder), "--data", str(tmp_path / "data"), "--max-steps", "3", "--k", "3",
         "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "dev F1" in text and "3 steps (max_steps)" in text
    config = json.loads((tmp_path / "sel" / "selector.json").read_text())
    assert config["set"] == "ncbi" and config["training"]["gold_spans"] == 20


def test_train_selector_flow(prefect_backend, tmp_path):
    from flows.train import train_selector

    data, encoder = tiny_ncbi(tmp_path)
    out = train_selector("ncbi", str(tmp_path / "sel"), encoder=str(encoder),
                         data_root=str(data), max_steps=2, threads=1)  # fmt: skip
    config = json.loads((tmp_path / "sel" / "selector.json").read_text())
    assert out == str(tmp_path / "sel") and config["training"]["gold_spans"] == 20


def test_run_with_a_selector_scores_every_entity_once(prefect_backend, tiny_model, selector_dir,
                                                       tmp_path):  # fmt: skip
    # The select stage of bioner run: every entity kept in OUT/selected with a decision, the
    # summary's counts reconcile, and a rerun with nothing changed selects nothing again.
    from flows.cli import app as bioner
    from flows.commands.run import SAMPLE

    out = tmp_path / "out"
    args = ["run", str(SAMPLE), "--out", str(out), "--model", str(tiny_model),
            "--max-new-tokens", "48", "--selector", str(selector_dir)]  # fmt: skip
    first = runner.invoke(bioner, args)
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    entities = sum(storage.count_rows(str(f)) for f in (out / "entities").iterdir())
    selected = [r for f in sorted((out / "selected").iterdir())
                for r in storage.read_table(str(f), ENTITIES_V4).to_pylist()]  # fmt: skip
    assert entities > 0 and len(selected) == entities
    assert all(r["reason"] and (r["selected"] is (r["reason"] == "accepted")) for r in selected)
    chosen = summary["selected"]
    assert chosen["candidates"] == entities
    assert chosen["accepted"] == sum(r["selected"] for r in selected)
    assert summary["rejected"] == entities - chosen["accepted"]
    (row,) = [r for r in summary["stages"] if r["stage"] == "select"]
    assert (row["in"], row["out"], row["rejected"]) == (entities, chosen["accepted"],
                                                       summary["rejected"])  # fmt: skip
    # Publishing takes the selector's decisions, rejected entities included.
    from infra.publish import run_tables

    published = run_tables(str(out)).entities
    assert published.num_rows == entities
    assert published["selected"].null_count == 0
    assert sum(published["selected"].to_pylist()) == chosen["accepted"]
    again = runner.invoke(bioner, args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "summary.json").read_text())["selected"]["candidates"] == 0
    bad = runner.invoke(bioner, [*args[:-1], str(tmp_path)])
    assert bad.exit_code == 2 and "not a selector folder" in bad.output


@pytest.mark.s3
def test_select_a_run_on_s3(run_out, selector_dir, moto_s3):
    import uuid

    from infra import s3
    from infra.lease import LEASE

    s3.reset()
    out = moto_s3.uri(f"select-{uuid.uuid4().hex[:12]}")
    for table in ("entities", "passages"):
        for f in sorted((run_out / table).iterdir()):
            storage.write_bytes(f.read_bytes(), storage.join(out, table, f.name))
    result = runner.invoke(app, ["select", "--candidates", out, "--selector", str(selector_dir)])
    assert result.exit_code == 0, result.output
    assert storage.list_dir(storage.join(out, "selected")) == [
        "shard=0.parquet",
        "shard=1.parquet",
    ]
    assert LEASE not in storage.list_dir(out)
