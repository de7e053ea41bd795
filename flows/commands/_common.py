"""What every command shares: one-line errors for bad input, the rich console."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from bioner.errors import InputError

console = Console(stderr=True)


def error(message: str) -> None:
    """Print ``error: message`` on one line to stderr."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the exit to raise."""
    error(message)
    return typer.Exit(code)


def read_input(path: Path) -> bytes:
    """Bytes of an input file, or a one-line error naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except IsADirectoryError:
        raise fail(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise fail(f"{path}: cannot read ({e.strerror})") from None


def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 text of ``data`` (BOM tolerated) or a one-line error naming the byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise fail(f"{path}: byte {e.start}: not valid UTF-8 ({e.reason})") from None


@contextlib.contextmanager
def located(path: Path | str) -> Iterator[None]:
    """Turn an :class:`InputError` raised inside into a one-line error naming ``path``."""
    try:
        yield
    except InputError as e:
        raise fail(e.located(str(path))) from None


def inputs_argument() -> typer.models.ArgumentInfo:
    """The ``INPUT...`` argument of the commands that read corpora (ingest, run)."""
    return typer.Argument(
        ...,
        metavar="INPUT...",
        show_default=False,
        help="Corpus files or folders: PubMed XML (.gz), BioC XML, PubTator, JSON lines, "
        "Parquet, CNKI exports.",
    )


def workers_option() -> Any:
    """``--workers``: processes that parse a large PubMed file (output identical for any N)."""
    return typer.Option(
        min(2, os.cpu_count() or 1),
        "--workers",
        min=1,
        max=64,
        help="Processes parsing a large PubMed file (default: 2, or 1 on a single core).",
    )


def max_chars_option(default: int) -> typer.models.OptionInfo:
    """The ``--max-chars`` option: the longest passage the segmenter makes."""
    return typer.Option(default, "--max-chars", min=16, help="Longest passage, in characters.")
