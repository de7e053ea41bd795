"""The lexicon beside a model: bioner lexicon writes it, the reader and the model id see it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from bioner.errors import InputError
from bioner.lexicon import APPLY_VERSION, LEXICON_VERSION, Entry, lexicon_digest
from bioner.training.data import COPY_DATASET
from flows.commands import train as train_cmd
from infra.lexicon import (
    lexicon_info,
    lexicon_path,
    lexicon_setting,
    lexicons_from_examples,
    read_lexicons,
    write_lexicon,
)
from infra.llm.local import model_id_of
from infra.training.data import data_digest

app = typer.Typer()
app.command("lexicon")(train_cmd.lexicon)
app.command("unused")(lambda: None)  # two commands: the first is called by name
runner = CliRunner()


@pytest.fixture
def model(tiny_model, tmp_path):
    return shutil.copytree(tiny_model, tmp_path / "model")


def test_the_lexicon_counts_the_training_examples_and_skips_copy_examples(examples):
    first = examples[0]  # "Famotidine-associated delirium.": delirium is a Disease
    assert first.text.startswith("Famotidine")
    # Copy examples' spans are random: counted, delirium would tie as a Chemical.
    fake = replace(first, id="synthetic", dataset=COPY_DATASET, spans=((22, 30, "Chemical"),))
    lexicons = lexicons_from_examples([*examples, fake])
    assert lexicons == lexicons_from_examples(examples)
    entries = lexicons["bc5cdr"].entries
    assert entries["Famotidine"] == Entry("Famotidine", "Chemical", 1, 1)
    assert entries["Cancer"] == Entry("Cancer", "Disease", 1, 1)
    assert entries["delirium"] == Entry("delirium", "Disease", 1, 1)


def test_a_written_lexicon_reads_back_with_its_rule_and_leaves_the_model_id(examples, model):
    before = model_id_of(model)
    lexicons = lexicons_from_examples(examples, min_ratio=0.75, min_count=1)
    path = write_lexicon(lexicons, model, {"data": "toy"})
    assert path == lexicon_path(model) and path.is_file()
    again = read_lexicons(model)
    assert again is not None
    assert {k: v.entries for k, v in again.items()} == {k: v.entries for k, v in lexicons.items()}
    assert {k: v.unseen for k, v in again.items()} == {k: v.unseen for k, v in lexicons.items()}
    assert {k: v.inside for k, v in again.items()} == {k: v.inside for k, v in lexicons.items()}
    assert all(v.inside for v in again.values())
    rules = {(v.min_ratio, v.min_count, v.veto_count, v.trim_ratio) for v in again.values()}
    assert rules == {(0.75, 1, 2, 0.3)}
    info = lexicon_info(model)
    assert info is not None and info["version"] == LEXICON_VERSION
    assert info["source"] == {"data": "toy"}
    # The generated text does not depend on the lexicon: the id that keys it stays.
    assert model_id_of(model) == before
    setting = lexicon_setting(model)
    assert json.loads(setting) == {
        "version": LEXICON_VERSION,
        "digest": info["digest"],
        "min_ratio": 0.75,
        "min_count": 1,
        "apply": APPLY_VERSION,
        "veto_count": 2,
        "trim_ratio": 0.3,
    }
    write_lexicon(lexicons_from_examples(examples, min_ratio=0.5), model, {"data": "toy"})
    assert lexicon_setting(model) != setting


def _rewrite_as(model, version: int, kinds: tuple[str, ...], drop: tuple[str, ...]) -> None:
    """Rewrite the model's lexicon as an older version: only rows of ``kinds``, without the
    ``kind`` column and the footer keys ``drop``."""
    path = lexicon_path(model)
    table = pq.read_table(path)
    meta = table.schema.metadata
    info = json.loads(meta[b"bioner.lexicon"])
    old = {k: v for k, v in info.items() if k not in drop} | {"version": f"lexicon-v{version}"}
    rows = table.filter(pc.is_in(table["kind"], pa.array(kinds))).drop_columns(["kind"])
    assert rows.num_rows < table.num_rows
    older = {
        **meta,
        b"bioner.schema": f"lexicon/{version}".encode(),
        b"bioner.lexicon": json.dumps(old).encode(),
    }
    pq.write_table(rows.replace_schema_metadata(older), path)


def test_a_version_1_lexicon_still_reads_without_a_veto_or_trimming(examples, model):
    written = lexicons_from_examples(examples)
    write_lexicon(written, model, {})
    _rewrite_as(model, 1, ("entry",), ("veto_count", "trim_ratio"))
    again = read_lexicons(model)
    assert again is not None
    assert {k: v.entries for k, v in again.items()} == {k: v.entries for k, v in written.items()}
    assert {(v.veto_count, v.trim_ratio) for v in again.values()} == {(0, None)}
    assert all(not v.unseen and not v.inside for v in again.values())
    setting = json.loads(lexicon_setting(model))
    assert setting["veto_count"] == 0 and setting["trim_ratio"] is None


def test_a_version_2_lexicon_still_reads_with_its_veto_and_no_trimming(examples, model):
    written = lexicons_from_examples(examples)
    write_lexicon(written, model, {})
    _rewrite_as(model, 2, ("entry", "unseen"), ("trim_ratio",))
    again = read_lexicons(model)
    assert again is not None
    assert {k: v.unseen for k, v in again.items()} == {k: v.unseen for k, v in written.items()}
    assert {(v.veto_count, v.trim_ratio) for v in again.values()} == {(2, None)}
    assert all(not v.inside for v in again.values())
    # Its digest is the one version 2 gave (no unit counts to hash).
    assert lexicon_digest(again) == lexicon_digest(
        {k: replace(v, inside={}, inside_by_label={}) for k, v in written.items()}
    )


def test_a_model_without_a_lexicon_has_none(model):
    assert read_lexicons(model) is None and lexicon_info(model) is None
    assert lexicon_setting(model) == lexicon_setting(None) == lexicon_setting("no/folder") == ""


def test_a_foreign_or_newer_file_is_refused_by_name(examples, model):
    write_lexicon(lexicons_from_examples(examples), model, {})
    path = lexicon_path(model)
    table = pq.read_table(path)
    meta = table.schema.metadata
    pq.write_table(table.replace_schema_metadata({b"bioner.schema": meta[b"bioner.schema"]}), path)
    with pytest.raises(InputError, match=f"{path}: not a bioner lexicon"):
        read_lexicons(model)
    newer = meta[b"bioner.lexicon"].replace(LEXICON_VERSION.encode(), b"lexicon-v99")
    pq.write_table(table.replace_schema_metadata({**meta, b"bioner.lexicon": newer}), path)
    with pytest.raises(InputError, match="lexicon version 'lexicon-v99'"):
        read_lexicons(model)


def test_bioner_lexicon_writes_the_file_and_prints_the_counts(examples, data_dir, model):
    result = runner.invoke(app, ["lexicon", "--data", str(data_dir), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "bc5cdr" in result.output and "ratio ≥ 0.3" in result.output
    info = lexicon_info(model)
    assert info is not None and info["min_ratio"] == 0.3 and info["min_count"] == 1
    assert info["source"]["data_digest"] == data_digest(examples)
    assert info["source"]["examples"] == len(examples)
    assert info["trim_ratio"] == 0.3 and "units in mentions" in result.output
    args = ["lexicon", "--data", str(data_dir), "--model", str(model), "--no-trim"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = lexicon_info(model)
    assert info is not None and info["trim_ratio"] is None and "trim ≤ never" in result.output


def test_bioner_lexicon_fails_in_one_line(data_dir, model, tmp_path):
    missing = runner.invoke(app, ["lexicon", "--data", str(data_dir), "--model", str(tmp_path)])
    assert missing.exit_code == 2
    assert f"{tmp_path}: not a model folder (no config.json)" in " ".join(missing.output.split())
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["lexicon", "--data", str(empty), "--model", str(model)])
    assert result.exit_code == 2 and "the lexicon would be empty" in result.output
    zero = runner.invoke(
        app, ["lexicon", "--data", str(data_dir), "--model", str(model), "--min-ratio", "0"]
    )
    assert zero.exit_code == 2 and "--min-ratio must be in (0, 1]" in zero.output
    assert not lexicon_path(model).exists()
