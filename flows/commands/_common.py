"""What every command shares: one-line errors for bad input, the rich console, the output
lease of the commands that write.

A user-caused failure ends a command with ``error: ...`` on one line and a non-zero exit; the
traceback is shown only with ``bioner --debug`` (or ``BIONER_DEBUG=1``), see :mod:`flows.cli`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from bioner.errors import InputError
from infra import s3, storage
from infra.lease import Lease

console = Console(stderr=True)
#: ``bioner --debug``: print the traceback behind an error line (:func:`fail`).
debug = False


def error(message: str) -> None:
    """Print ``error: message`` on one line to stderr."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the exit to raise; under
    ``--debug``, the traceback of the exception being handled first."""
    if debug and sys.exc_info()[1] is not None:
        traceback.print_exc()
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


def os_error_line(error: OSError, where: str | None = None) -> str:
    """One line for a failed file or storage operation: the path (else ``where``, the output
    written, if given), and what went wrong."""
    if isinstance(error, s3.StorageError):
        return str(error).splitlines()[0]
    what = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ENOSPC or "No space left on device" in what:
        what = "no space left on device"
    place = error.filename or where
    return f"{place}: {what}" if place else what


def check_output(out: str) -> None:
    """A one-line error (exit 2) when ``out`` cannot be an output folder: a file, under a file,
    on a read-only file system, not writable. Makes nothing: :func:`writing` makes the folder
    when it takes the lease (which also finds an S3 output unwritable)."""
    if s3.is_s3(out):
        try:
            s3.split(out)
        except ValueError as e:
            raise fail(str(e)) from None
        return
    try:
        path = storage.local_path(out).absolute()
    except (ValueError, NotImplementedError) as e:
        raise fail(str(e)) from None
    existing = next(p for p in (path, *path.parents) if p.exists())
    doing = "write to" if existing == path else "create"
    if not existing.is_dir():
        if existing == path:
            raise fail(f"{out}: is a file, expected a folder for the output")
        raise fail(f"{out}: cannot create the output folder ({existing} is a file)")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise fail(f"{out}: cannot {doing} the output folder (read-only file system)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise fail(f"{out}: cannot {doing} the output folder (permission denied)")


@contextlib.contextmanager
def writing(out: str, command: str) -> Iterator[Lease]:
    """Hold the lease of ``out`` while the command writes there, released at exit (on an
    error too): a second writer is refused in one line naming the holder.

    Checks ``out`` first (:func:`check_output`). A file or storage failure inside (a full
    disk, S3 unreachable), or a lease lost to another writer on the way, ends the command with
    one line and exit 1.
    """
    check_output(out)
    try:
        lease = Lease(out, command)
    except s3.StorageError as e:  # LeaseHeld; S3 denied or unreachable, no such bucket
        raise fail(os_error_line(e, out), 1) from None
    except OSError as e:  # a read-only file system, no rights on the folder
        raise fail(f"{out}: cannot write to the output folder ({e.strerror})") from None
    except ImportError as e:  # boto3 for an S3 output
        raise fail(str(e)) from None
    if lease.took_over is not None:
        console.print(
            f"note: took over the stale lease of {lease.took_over.describe()}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    with lease:
        try:
            yield lease
        except OSError as e:
            raise fail(os_error_line(e, out), 1) from None
    if lease.lost:
        raise fail(
            f"{out}: another writer took the lease over while this command ran (it was not "
            "renewed for BIONER_LEASE_TTL); check what it wrote before using the output",
            1,
        )


def inputs_argument() -> typer.models.ArgumentInfo:
    """The ``INPUT...`` argument of the commands that read corpora (ingest, run)."""
    return typer.Argument(
        ...,
        metavar="INPUT...",
        show_default=False,
        help="Corpus files or folders: PubMed XML (.gz), BioC XML, PubTator, JSON lines, "
        "Parquet, CNKI exports.",
    )


def out_option(help: str) -> Any:
    """``--out``: where a command writes, a local folder or ``s3://bucket/prefix``, as given
    (a string: a ``Path`` would turn ``s3://b/k`` into the local ``s3:/b/k``)."""
    return typer.Option(..., "--out", "-o", help=help, show_default=False)


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
