"""``bioner convert``: read an annotated corpus in one format and write it in another."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from bioner.codec import TAG_FORMATS
from bioner.codec.lines import read_tagged, write_tagged
from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.labels import dataset as dataset_spec
from bioner.readers import FORMATS, Format
from bioner.records import AnnotatedDocument
from flows.commands._common import console, decode_text, fail, located, read_input
from infra import storage

_NAMES = ", ".join([*FORMATS, *TAG_FORMATS])


def _format(name: str, option: str, spec: DatasetSpec | None) -> Format:
    """The corpus format, or a tagger-output format bound to the dataset's entity schema."""
    if name in TAG_FORMATS:
        if spec is None:
            raise fail(f"{option} {name} needs --dataset (it fixes the entity schema)")
        schema = spec.schema
        return Format(
            name,
            f"tagger outputs in the {name} format, JSON lines {{id, text, output}}",
            lambda source, *, dataset=None, **_: read_tagged(source, schema, name),
            lambda docs, *, report=None: write_tagged(docs, schema, name),
        )
    if name not in FORMATS:
        raise fail(f"unknown {option} format {name!r}; choose one of {_NAMES}")
    return FORMATS[name]


def _reader_options(fmt: Format, pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options for the reader, checked against what it accepts."""
    accepted = [
        p.name
        for p in inspect.signature(fmt.read).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "dataset"
    ]
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in accepted:
            known = ", ".join(accepted) or "none"
            raise fail(f"--reader-option {pair!r}: the {fmt.name} reader accepts {known}")
        options[key] = value
    return options


def _read(
    fmt: Format, src: Path, spec: DatasetSpec | None, options: dict[str, str]
) -> list[AnnotatedDocument]:
    """Documents of ``src`` (a file, or a folder for a directory format), errors on one line."""
    if fmt.layout != "directory":
        data = read_input(src)
        source = data if fmt.layout == "bytes" else decode_text(src, data)
        with located(src):
            return fmt.read(source, dataset=spec, **options)
    if not src.is_dir():
        raise fail(f"{src}: the {fmt.name} format is a folder of files, not a file")
    files = {
        p.name: decode_text(p, read_input(p))
        for p in sorted(src.iterdir())
        if p.is_file() and p.suffix in fmt.suffixes
    }
    try:
        return fmt.read(files, dataset=spec, **options)
    except InputError as e:  # a directory reader names the file as the record
        file = src / e.record if e.record in files else src
        record = None if e.record in files else e.record
        raise fail(InputError(e.message, line=e.line, record=record).located(str(file))) from None


def _write(fmt: Format, result: Any, out: Path) -> None:
    """Write a writer's result: one file (atomically), or the files of a folder."""
    try:
        if fmt.layout == "directory":
            out.mkdir(parents=True, exist_ok=True)
            for name, content in result.items():
                (out / name).write_bytes(content.encode("utf-8"))
        else:
            storage.write_text(result, str(out))
    except OSError as e:
        raise fail(f"{out}: cannot write ({e.strerror})") from None


def main(
    src: Path = typer.Argument(..., help="Input file (a folder of .txt/.ann files for brat)."),
    from_: str = typer.Option(..., "--from", help=f"Input format: {_NAMES}."),
    to: str = typer.Option(..., "--to", help=f"Output format: {_NAMES}."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (a folder for brat)."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Map raw labels to this dataset's labels (ncbi, bc5cdr ...)."
    ),
    reader_option: list[str] = typer.Option(
        [],
        "--reader-option",
        help="KEY=VALUE passed to the reader, e.g. misaligned=nearest for chineseblue.",
    ),
) -> None:
    """Convert an annotated corpus between formats, checking every offset on the way in."""
    spec = None
    if dataset is not None:
        try:
            spec = dataset_spec(dataset)
        except KeyError as e:
            raise fail(str(e.args[0])) from None
    source_fmt, target_fmt = _format(from_, "--from", spec), _format(to, "--to", spec)
    options = _reader_options(source_fmt, reader_option)
    if src.resolve() == out.resolve():
        raise fail(f"{out}: the output would overwrite the input")

    docs = _read(source_fmt, src, spec, options)
    report: Counter[str] = Counter()
    try:
        result = target_fmt.write(docs, report=report)
    except ValueError as e:
        raise fail(f"cannot write {to}: {e}") from None
    _write(target_fmt, result, out)

    spans = sum(len(d.spans) for d in docs)
    relations = sum(len(d.relations) for d in docs)
    console.print(
        f"converted {len(docs)} documents, {spans} spans, {relations} relations: "
        f"{src} ({from_}) -> {out} ({to})",
        highlight=False,
        soft_wrap=True,
    )
    for reason, n in sorted(report.items()):
        console.print(f"[yellow]warning:[/] {n} x {reason}", highlight=False, soft_wrap=True)
