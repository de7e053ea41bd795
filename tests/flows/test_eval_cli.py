"""``bioner eval`` end to end on tiny canonical JSON lines files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows.commands import evaluate

# flows.cli imports every command module; test through an app holding only this one so the
# test does not depend on the others. The callback keeps "eval" a subcommand as in the real CLI.
app = typer.Typer(pretty_exceptions_enable=False)
app.command("eval")(evaluate.main)


@app.callback()
def _root() -> None:
    pass


runner = CliRunner()

TEXT = "IL-2 gene expression in T cells"
GOLD = [
    {
        "id": "d1",
        "text": TEXT,
        "spans": [
            {"start": 0, "end": 4, "label": "protein"},
            {"start": 0, "end": 9, "label": "DNA"},
            {"start": 24, "end": 31, "label": "cell_type"},
        ],
    },
    {"id": "d2", "text": "aspirin", "spans": [{"start": 0, "end": 7, "label": "Chemical"}]},
]
PRED = [
    {
        "id": "d1",
        "text": TEXT,
        "spans": [
            {"start": 0, "end": 4, "label": "protein"},  # tp
            {"start": 0, "end": 9, "label": "protein"},  # wrong type (DNA extent)
            {"start": 26, "end": 31, "label": "cell_type"},  # wrong boundary, relaxed tp
        ],
    },
    {"id": "d2", "text": "aspirin", "spans": [{"start": 0, "end": 7, "label": "Chemical"}]},
]


def write(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "gold.jsonl", GOLD), write(tmp_path / "pred.jsonl", PRED)


def run(*args: object) -> object:
    return runner.invoke(app, ["eval", *map(str, args)])


def row(stdout: str, label: str) -> list[str]:
    """Cells of the table row whose first cell is ``label``."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


def test_table(files):
    gold, pred = files
    result = run("--gold", gold, "--pred", pred)
    assert result.exit_code == 0, result.output
    out = result.stdout
    # support, TP, FP, FN, P, R, F1 (percent, two decimals), computed by hand.
    assert row(out, "protein") == ["1", "1", "1", "0", "50.00", "100.00", "66.67"]
    assert row(out, "DNA") == ["1", "0", "0", "1", "0.00", "0.00", "0.00"]
    assert row(out, "cell_type") == ["1", "0", "1", "1", "0.00", "0.00", "0.00"]
    assert row(out, "Chemical") == ["1", "1", "0", "0", "100.00", "100.00", "100.00"]
    # micro: tp 2, fp 2, fn 2; macro: P (1/2+0+0+1)/4, R (1+0+0+1)/4, F1 (2/3+0+0+1)/4.
    assert row(out, "micro") == ["4", "2", "2", "2", "50.00", "50.00", "50.00"]
    assert row(out, "macro") == ["4", "", "", "", "37.50", "50.00", "41.67"]
    # relaxed: (26, 31) now matches (24, 31); micro tp 3, fp 1, fn 1; macro
    # P (1/2+0+1+1)/4, R (1+0+1+1)/4, F1 (2/3+0+1+1)/4.
    assert row(out, "micro (relaxed)") == ["4", "3", "1", "1", "75.00", "75.00", "75.00"]
    assert row(out, "macro (relaxed)") == ["4", "", "", "", "62.50", "75.00", "66.67"]
    assert out.splitlines()[-1] == (
        "false positives: 1 wrong type, 1 wrong boundary, 0 wrong type and boundary, 0 spurious"
    )
    assert result.stderr == ""


def test_relaxed_flag_adds_per_type_table(files):
    gold, pred = files
    result = run("--gold", gold, "--pred", pred, "--relaxed")
    assert result.exit_code == 0, result.output
    assert "relaxed (overlap" in result.stdout
    cell_rows = [ln for ln in result.stdout.splitlines() if ln.strip("│┃ ").startswith("cell_type")]
    assert len(cell_rows) == 2
    assert "100.00" in cell_rows[1]


def test_json_output(files):
    gold, pred = files
    result = run("--gold", gold, "--pred", pred, "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["strict"]["micro"] == {
        "tp": 2,
        "fp": 2,
        "fn": 2,
        "support": 4,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }
    assert d["strict"]["macro"]["f1"] == pytest.approx((2 / 3 + 1) / 4)
    assert d["strict"]["macro"]["labels"] == ["Chemical", "DNA", "cell_type", "protein"]
    assert d["relaxed"]["micro"]["tp"] == 3
    assert d["false_positives"] == {
        "wrong_type": 1,
        "wrong_boundary": 1,
        "wrong_both": 0,
        "spurious": 0,
    }
    assert d["documents"] == {"gold": 2, "pred": 2, "missing_in_pred": [], "extra_in_pred": []}


def test_label_option_fixes_macro(files):
    gold, pred = files
    result = run("--gold", gold, "--pred", pred, "--json", "--label", "Chemical", "--label", "DNA")
    d = json.loads(result.stdout)
    assert d["strict"]["macro"]["labels"] == ["Chemical", "DNA"]
    assert d["strict"]["macro"]["f1"] == 0.5


def test_missing_and_extra_documents_warn(tmp_path):
    gold = write(tmp_path / "gold.jsonl", GOLD)
    pred = write(tmp_path / "pred.jsonl", [PRED[0], {"id": "d9", "text": "x", "spans": []}])
    result = run("--gold", gold, "--pred", pred, "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)  # warnings stay off stdout
    assert d["documents"]["missing_in_pred"] == ["d2"]
    assert d["documents"]["extra_in_pred"] == ["d9"]
    assert d["strict"]["per_type"]["Chemical"]["fn"] == 1
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: 1 document(s) of ")
    assert "counted as no spans: d2" in warnings[0]
    assert "false positives: d9" in warnings[1]


def _one_error_line(result: object) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("bad", "where", "what"),
    [
        ("{oops", "line 2", "invalid JSON"),
        ('{"id": "d2", "text": "aspirin"}', "line 2", "missing field 'spans'"),
        (
            '{"id": "d2", "text": "aspirin", "spans": [{"start": 0, "end": 8, "label": "C"}]}',
            "line 2, record d2, span 0",
            "offsets 0-8 are not a non-empty range inside the text of length 7",
        ),
        (
            '{"id": "d2", "text": "aspirin", "spans": [{"start": 5, "end": 5, "label": "C"}]}',
            "line 2, record d2, span 0",
            "offsets 5-5 are not a non-empty range inside the text of length 7",
        ),
    ],
)
def test_malformed_pred_line(files, bad, where, what):
    gold, pred = files
    pred.write_text(json.dumps(PRED[0]) + "\n" + bad + "\n", encoding="utf-8")
    err = _one_error_line(run("--gold", gold, "--pred", pred))
    assert err.startswith(f"error: {pred}: {where}: ")
    assert what in err


def test_malformed_gold_line(files):
    gold, pred = files
    gold.write_text("\n\n[]\n", encoding="utf-8")
    err = _one_error_line(run("--gold", gold, "--pred", pred))
    assert err == f"error: {gold}: line 3: expected a JSON object, got list"


def test_text_mismatch_names_pred_line(files):
    gold, pred = files
    write(pred, [PRED[0], {**PRED[1], "text": "aspirin."}])
    err = _one_error_line(run("--gold", gold, "--pred", pred))
    assert err.startswith(f"error: {pred}: line 2, record d2: text differs from the gold")


def test_missing_file(tmp_path, files):
    gold, _ = files
    err = _one_error_line(run("--gold", gold, "--pred", tmp_path / "nope.jsonl"))
    assert err == f"error: {tmp_path / 'nope.jsonl'}: no such file"


def test_invalid_utf8(files):
    gold, pred = files
    pred.write_bytes(b'{"id": "d1", "text": "\xff", "spans": []}\n')
    err = _one_error_line(run("--gold", gold, "--pred", pred))
    assert err.startswith(f"error: {pred}: byte 22: not valid UTF-8")


def test_label_with_markup_characters_is_printed_verbatim(tmp_path):
    docs = [{"id": "d", "text": "abc", "spans": [{"start": 0, "end": 1, "label": "[bold]X"}]}]
    gold, pred = write(tmp_path / "g.jsonl", docs), write(tmp_path / "p.jsonl", docs)
    result = run("--gold", gold, "--pred", pred)
    assert result.exit_code == 0, result.output
    assert row(result.stdout, "[bold]X")[-1] == "100.00"
