"""The options ``bioner nightly`` and ``bioner backfill`` hand their flows."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.annotate import AnnotateOptions
from flows.cli import app
from flows.commands.nightly import _options

runner = CliRunner()


@pytest.mark.parametrize("command", ["nightly", "backfill"])
def test_the_scheduled_commands_take_no_lexicon_like_bioner_run(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--no-lexicon" in result.output


@pytest.mark.parametrize("rules", ["", "-lexicon", "-abbreviations,+suffix"])
def test_the_decode_rules_reach_the_flows_options(tmp_path, rules):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    options, _ = _options(model, "bc5cdr", "cpu", None, "transformers", 64, None, None, 4, rules)
    assert AnnotateOptions(**options).rules == rules
