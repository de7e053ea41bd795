"""``bioner convert``: every kind of format pair, a summary line, one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()

TITLE = "Naloxone reverses the antihypertensive effect of clonidine."
PUBTATOR = (
    f"227508|t|{TITLE}\n227508|a|In rats.\n"
    "227508\t0\t8\tNaloxone\tChemical\tD009270\n"
    "227508\t26\t38\thypertensive\tDisease\tD006973\n"
    "227508\t49\t58\tclonidine\tChemical\tD003000\n"
    "227508\tCID\tD003000\tD006973\n\n"
)


def convert(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["convert", *map(str, args)])
    return result.exit_code, result.stderr


def test_pubtator_to_canonical_file_to_file(tmp_path: Path):
    src, out = tmp_path / "cdr.txt", tmp_path / "out" / "cdr.jsonl"
    src.write_text(PUBTATOR, "utf-8")
    code, err = convert(
        src, "--from", "pubtator", "--to", "canonical", "-o", out, "--dataset", "bc5cdr"
    )
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"converted 1 documents, 3 spans, 1 relations: {src} (pubtator) -> {out} (canonical)"
    ]
    (row,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert row["spans"][1] == {"start": 26, "end": 38, "label": "Disease"}
    assert row["relations"] == [{"type": "CID", "args": ["D003000", "D006973"]}]


def test_bioc_to_brat_folder_and_back_to_pubtator(tmp_path: Path):
    pubtator, bioc = tmp_path / "a.txt", tmp_path / "a.xml"
    pubtator.write_text(PUBTATOR, "utf-8")
    assert convert(pubtator, "--from", "pubtator", "--to", "bioc", "-o", bioc)[0] == 0
    folder = tmp_path / "brat"
    code, err = convert(bioc, "--from", "bioc", "--to", "brat", "-o", folder)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["227508.ann", "227508.txt"]
    assert (folder / "227508.ann").read_text("utf-8").startswith("T1\tChemical 0 8\tNaloxone\n")
    assert "relations that do not come from brat dropped" in err  # CID has no brat form
    back = tmp_path / "back.txt"
    assert convert(folder, "--from", "brat", "--to", "pubtator", "-o", back)[0] == 0
    # concept ids are not kept: the writer says -1
    columns = [line.split("\t")[:5] for line in back.read_text("utf-8").splitlines()[2:5]]
    assert columns == [line.split("\t")[:5] for line in PUBTATOR.splitlines()[2:5]]


def test_cmeee_to_iob2_reports_dropped_nesting(tmp_path: Path):
    src, out = tmp_path / "dev.json", tmp_path / "dev.tsv"
    entities = [
        {"start_idx": 0, "end_idx": 2, "type": "dis", "entity": "肺损伤"},
        {"start_idx": 0, "end_idx": 0, "type": "bod", "entity": "肺"},
    ]
    src.write_text(json.dumps([{"text": "肺损伤。", "entities": entities}]), "utf-8")
    code, err = convert(src, "--from", "cmeee", "--to", "iob2", "-o", out, "--dataset", "cmeee")
    assert code == 0, err
    assert out.read_text("utf-8") == "肺\tB-Disease\n损\tI-Disease\n伤\tI-Disease\n。\tO\n\n"
    assert "warning: 1 x iob2: nested or crossing spans dropped (outermost kept)" in err


def test_iob2_to_genia_and_chineseblue(tmp_path: Path):
    src = tmp_path / "train.tsv"
    src.write_text("-DOCSTART-\tO\n\nIL-2\tB-protein\ngene\tO\n", "utf-8")
    genia = tmp_path / "g.jsonl"
    assert convert(src, "--from", "iob2", "--to", "genia", "-o", genia)[0] == 0
    assert json.loads(genia.read_text("utf-8"))["tokens"] == ["IL-2", "gene"]
    blue = tmp_path / "b.jsonl"
    assert convert(genia, "--from", "genia", "--to", "chineseblue", "-o", blue)[0] == 0
    assert json.loads(blue.read_text("utf-8"))["mention_data"] == [
        {"mention": "IL-2", "type": "protein", "offset": "0"}
    ]


def one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_malformed_input_is_one_line_naming_file_and_line(tmp_path: Path):
    src = tmp_path / "bad.txt"
    src.write_text(PUBTATOR.replace("\tclonidine\t", "\tclonidin\t"), "utf-8")
    line = one_line_error(*convert(src, "--from", "pubtator", "--to", "iob2", "-o", tmp_path / "o"))
    assert line == (
        f"error: {src}: line 5: offsets 49-58 give 'clonidine' but the annotation says 'clonidin'"
    )
    assert not (tmp_path / "o").exists()


def test_bad_brat_file_is_named(tmp_path: Path):
    folder = tmp_path / "brat"
    folder.mkdir()
    (folder / "1.txt").write_text("fever", "utf-8")
    (folder / "1.ann").write_text("T1\tDisease 0 5\tfever\nT2\tDisease 0\tf\n", "utf-8")
    line = one_line_error(
        *convert(folder, "--from", "brat", "--to", "canonical", "-o", tmp_path / "o")
    )
    assert line.startswith(f"error: {folder / '1.ann'}: line 2: expected 'type start end")


def test_truncated_xml_and_unknown_label(tmp_path: Path):
    xml = tmp_path / "x.xml"
    xml.write_text("<collection>\n<document><id>1</id>\n", "utf-8")
    line = one_line_error(
        *convert(xml, "--from", "bioc", "--to", "canonical", "-o", tmp_path / "o")
    )
    assert line.startswith(f"error: {xml}: line 3: malformed XML")
    src = tmp_path / "p.txt"
    src.write_text(PUBTATOR, "utf-8")
    line = one_line_error(
        *convert(
            src, "--from", "pubtator", "--to", "iob2", "-o", tmp_path / "o", "--dataset", "ncbi"
        )
    )
    assert line.startswith(f"error: {src}: line 3: unknown label 'Chemical' for dataset ncbi")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "conll", "--to", "iob2"], "unknown --from format 'conll'; choose one of iob2"),
        (["--from", "pubtator", "--to", "xml"], "unknown --to format 'xml'"),
        (["--from", "pubtator", "--to", "iob2", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["--from", "brat", "--to", "iob2"], "the brat format is a folder of files, not a file"),
    ],
)
def test_bad_options(tmp_path: Path, args, message):
    src = tmp_path / "p.txt"
    src.write_text(PUBTATOR, "utf-8")
    assert message in one_line_error(*convert(src, *args, "-o", tmp_path / "o"))


def test_unreadable_inputs_and_unwritable_documents(tmp_path: Path):
    missing = tmp_path / "missing.txt"
    line = one_line_error(
        *convert(missing, "--from", "pubtator", "--to", "iob2", "-o", tmp_path / "o")
    )
    assert line == f"error: {missing}: no such file"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("1|t|caf\xe9\n1|a|\n".encode("latin-1"))
    line = one_line_error(
        *convert(latin, "--from", "pubtator", "--to", "iob2", "-o", tmp_path / "o")
    )
    assert line.startswith(f"error: {latin}: byte 7: not valid UTF-8")
    canonical = tmp_path / "c.jsonl"
    canonical.write_text('{"id": "a|b", "text": "x", "spans": []}\n', "utf-8")
    line = one_line_error(
        *convert(canonical, "--from", "canonical", "--to", "pubtator", "-o", tmp_path / "o")
    )
    assert "cannot write pubtator: document id 'a|b'" in line
    line = one_line_error(
        *convert(canonical, "--from", "canonical", "--to", "iob2", "-o", canonical)
    )
    assert "would overwrite the input" in line


def test_unwritable_output_leaves_no_temporary_file(tmp_path: Path):
    src, out = tmp_path / "p.txt", tmp_path / "taken"
    src.write_text(PUBTATOR, "utf-8")
    out.mkdir()
    line = one_line_error(*convert(src, "--from", "pubtator", "--to", "iob2", "-o", out))
    assert line.startswith(f"error: {out}: cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt", "taken"]
