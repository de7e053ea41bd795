"""``bioner decode``: outputs to canonical spans, issues kept, one-line errors."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from flows.commands import decode

app = typer.Typer()
app.command()(decode.main)
runner = CliRunner()

TEXT = "Famotidine-associated delirium."


def write_lines(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def test_decode_symbolic_to_canonical(tmp_path) -> None:
    src, out = tmp_path / "gen.jsonl", tmp_path / "spans.jsonl"
    write_lines(
        src,
        [
            {"id": "a", "text": TEXT, "output": "Chemical: [Famotidine]-associated delirium."},
            {
                "id": "b",
                "text": TEXT,
                "output": "Disease: Famotidine-associated [delir",
                "finish_reason": "length",
            },
        ],
    )
    res = runner.invoke(app, [str(src), "--schema", "bc5cdr", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert rows[0]["spans"] == [{"start": 0, "end": 10, "label": "Chemical"}]
    assert rows[0]["issues"] == []
    assert rows[1]["spans"] == [] and {i["kind"] for i in rows[1]["issues"]} == {"truncated"}
    assert "decoded 2 records" in res.output


def test_decode_json_entities(tmp_path) -> None:
    src, out = tmp_path / "gen.jsonl", tmp_path / "spans.jsonl"
    output = json.dumps({"entities": [{"text": "delirium", "type": "Disease"}]})
    write_lines(src, [{"id": "a", "text": TEXT, "output": output}])
    res = runner.invoke(app, [str(src), "-f", "json-entities", "-s", "bc5cdr", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text("utf-8"))["spans"] == [
        {"start": 22, "end": 30, "label": "Disease"}
    ]


def test_bad_input_is_one_line_naming_file_and_line(tmp_path) -> None:
    src, out = tmp_path / "gen.jsonl", tmp_path / "spans.jsonl"
    src.write_text('{"id": "a", "text": "x", "output": "None"}\n{"id": "b", "text": 3}\n', "utf-8")
    res = runner.invoke(app, [str(src), "-o", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"{src}: line 2: field 'text' must be str, got int" in lines[0]
    assert not out.exists()
    res = runner.invoke(app, [str(tmp_path / "missing.jsonl"), "-o", str(out)])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(app, [str(src), "-f", "xml", "-o", str(out)])
    assert res.exit_code == 2 and "unknown --format" in res.output


def test_unwritable_output_is_one_line(tmp_path) -> None:
    src = tmp_path / "gen.jsonl"
    write_lines(src, [{"id": "a", "text": TEXT, "output": "None"}])
    out = src / "spans.jsonl"  # a path under a file cannot be created
    res = runner.invoke(app, [str(src), "-o", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: cannot write")
