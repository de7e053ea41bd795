"""The train-data, train and superfilter commands (flows.commands.train) on a local app.

flows/cli.py registers them for ``bioner``; here a Typer app of their own keeps the test
independent of that file.
"""

from __future__ import annotations

import json

import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from flows.commands import train as train_cmd
from infra.llm.local import marker
from infra.training.data import read_examples


def _weights(folder):
    return load_file(folder / "model.safetensors")


app = typer.Typer()
app.command("train-data")(train_cmd.train_data)
app.command("init-model")(train_cmd.init_model)
app.command("train")(train_cmd.train)
app.command("superfilter")(train_cmd.superfilter)
app.command("export-checkpoint")(train_cmd.export_checkpoint)
runner = CliRunner()


@pytest.mark.data
def test_train_data_writes_a_folder_and_prints_statistics(shared_data, tmp_path):
    out = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "train-data",
            "--out",
            str(out),
            "--data",
            str(shared_data),
            "--sets",
            "cehrner",
            "--formats",
            "symbolic,json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cehrner" in result.output and "not available" in result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["datasets"]["cehrner"]["examples_per_format"].keys() == {"json", "symbolic"}


def test_train_data_refuses_unknown_names(tmp_path):
    result = runner.invoke(app, ["train-data", "--out", str(tmp_path), "--formats", "xml"])
    assert result.exit_code == 2 and "unknown format xml" in result.output
    result = runner.invoke(app, ["train-data", "--out", str(tmp_path), "--sets", "bc2gm"])
    assert result.exit_code == 2 and "unknown set bc2gm" in result.output


def test_train_and_superfilter(tiny_model, data_dir, tmp_path):
    out = tmp_path / "model"
    args = [
        "train",
        "--model",
        str(tiny_model),
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--max-batch-tokens",
        "64",
        "--loss",
        "constrained",
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "max_steps: 2/2 steps" in result.output
    info = marker(out)
    assert info["trained"] is True and info["command"]
    assert info["config"]["max_batch_tokens"] == 64
    assert info["training_loss"] == "constrained"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "checkpoints" in again.output
    sf = tmp_path / "sf"
    result = runner.invoke(
        app,
        [
            "superfilter",
            "--model",
            str(tiny_model),
            "--data",
            str(data_dir),
            "--out",
            str(sf),
            "--fraction",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (sf / "train.jsonl").is_file() and "kept" in result.output


def test_train_saves_the_model_in_bf16_on_request(tiny_model, data_dir, tmp_path):
    import torch
    from safetensors import safe_open

    out = tmp_path / "model"
    args = ["train", "--model", str(tiny_model), "--data", str(data_dir), "--out", str(out),
            "--max-steps", "2", "--batch-size", "2", "--threads", "1", "--no-progress",
            "--save-every", "1"]  # fmt: skip
    result = runner.invoke(app, [*args, "--save-dtype", "bf16"])
    assert result.exit_code == 0, result.output
    with safe_open(out / "model.safetensors", framework="pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
    assert dtypes == {"BF16"}
    assert marker(out)["saved_dtype"] == "bf16"
    checkpoint = next((out / "checkpoints").glob("step-*"))
    weights = torch.load(checkpoint / "trainable.pt", weights_only=True)
    assert {w.dtype for w in weights.values()} == {torch.float32}
    bad = runner.invoke(app, [*args[:6], str(tmp_path / "other"), *args[7:], "--save-dtype", "fp8"])
    assert bad.exit_code == 2 and "save_dtype must be fp32 or bf16" in bad.output


def test_train_reports_a_missing_model(tmp_path, data_dir):
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            str(tmp_path / "none"),
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2 and "no such model folder" in result.output


def test_init_model_learns_its_tokenizer_from_the_data(data_dir, examples, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    out = tmp_path / "init"
    args = ["init-model", "--data", str(data_dir), "--out", str(out), "--vocab-size", "400"]
    result = runner.invoke(app, [*args, "--hidden-size", "32", "--layers", "1", "--heads", "4"])
    assert result.exit_code == 0, result.output
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers, config.initializer_range) == (32, 1, 0.02)
    assert marker(out)["trained"] is False
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = examples[0].text
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_init_model_refuses_a_folder_without_data(tmp_path):
    result = runner.invoke(
        app, ["init-model", "--data", str(tmp_path), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0
    assert "train.jsonl" in result.output and "train-data" in result.output


@pytest.mark.parametrize("command", ["init-model", "train", "superfilter"])
@pytest.mark.parametrize("line", ["{not json", '{"id": "x"}'])
def test_commands_name_the_file_and_line_of_a_malformed_example(
    tiny_model, data_dir, tmp_path, command, line
):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = (data_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (bad / "train.jsonl").write_text(good + "\n" + line + "\n", encoding="utf-8")
    out = tmp_path / "m"
    args = [command, "--data", str(bad), "--out", str(out)]
    if command != "init-model":
        args += ["--model", str(tiny_model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{bad / 'train.jsonl'}: line 2: not a training example" in message
    assert "Traceback" not in result.output
    assert not out.exists()


def test_export_checkpoint_saves_an_intermediate_step(tiny_model, data_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_model), "--data", str(data_dir), "--out", str(out),
            "--max-steps", "4", "--batch-size", "2", "--threads", "1", "--save-every", "2",
            "--keep-checkpoints", "3", "--no-progress"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    step2 = out / "checkpoints" / "step-00000002"
    result = runner.invoke(app, ["export-checkpoint", str(step2), "--out", str(tmp_path / "s2")])
    assert result.exit_code == 0, result.output
    assert "step 2/4" in result.output
    info = marker(tmp_path / "s2")
    assert (info["steps"], info["planned_steps"], info["stopped"]) == (2, 4, "checkpoint")
    assert info["trained"] is True and info["prompt"] == marker(out)["prompt"]
    # the last checkpoint's export is the run's own final model
    result = runner.invoke(
        app, ["export-checkpoint", str(out / "checkpoints" / "step-00000004"), "--out",
              str(tmp_path / "s4")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    final, exported = _weights(out), _weights(tmp_path / "s4")
    assert final.keys() == exported.keys()
    assert all(torch.equal(final[k], exported[k]) for k in final)
    assert not all(torch.equal(final[k], _weights(tmp_path / "s2")[k]) for k in final)
    again = runner.invoke(app, ["export-checkpoint", str(step2), "--out", str(tmp_path / "s2")])
    assert again.exit_code == 2 and "not empty" in again.output
    bad = runner.invoke(app, ["export-checkpoint", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a training checkpoint" in bad.output


def test_train_repeat_is_parsed_and_bad_values_are_refused_in_one_line(
    tiny_model, data_dir, tmp_path
):
    args = ["train", "--model", str(tiny_model), "--data", str(data_dir), "--out",
            str(tmp_path / "m"), "--max-steps", "1", "--batch-size", "2", "--threads", "1",
            "--no-progress", "--save-every", "0"]  # fmt: skip
    for bad in ("ncbi", "ncbi=0", "ncbi=1.5", "=2"):
        result = runner.invoke(app, [*args, "--repeat", bad])
        assert result.exit_code == 2 and "--repeat" in result.output, (bad, result.output)
        assert "Traceback" not in result.output
    result = runner.invoke(app, [*args, "--repeat", "nosuchset=2"])
    assert result.exit_code == 2 and "no training examples here: nosuchset" in result.output
    name = next(e.dataset for e in read_examples(data_dir))
    result = runner.invoke(app, [*args, "--repeat", f"{name}=2"])
    assert result.exit_code == 0, result.output
    assert marker(tmp_path / "m")["config"]["repeat"] == {name: 2}
