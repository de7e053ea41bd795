"""Readers and writers of annotated-corpus formats: pure functions over text, no file system.

Every reader returns ``list[AnnotatedDocument]`` with gold spans as character offsets (end
exclusive), maps raw labels through an optional :class:`~bioner.labels.DatasetSpec` and raises
:class:`~bioner.errors.InputError` (with ``line`` or ``record``) on malformed input. Every writer
takes documents and an optional :data:`WriteReport` in which it counts what the format could
not represent (nested spans in IOB2, line breaks in PubTator ...), so nothing is lost silently.
:data:`FORMATS` lists them by name for the ``convert`` command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport
from bioner.readers.bioc import read_bioc, write_bioc
from bioner.readers.brat import read_brat, read_brat_files, write_brat, write_brat_files
from bioner.readers.canonical import read_canonical, write_canonical
from bioner.readers.chineseblue import read_chineseblue, write_chineseblue
from bioner.readers.cmeee import read_cmeee, write_cmeee
from bioner.readers.genia import read_genia, write_genia
from bioner.readers.iob2 import read_iob2, write_iob2
from bioner.readers.pubtator import read_pubtator, write_pubtator
from bioner.records import AnnotatedDocument


class Reader(Protocol):
    """``(source, *, dataset=None) -> documents``; ``source`` as the format's layout says."""

    def __call__(
        self, source: Any, /, *, dataset: DatasetSpec | None = None
    ) -> list[AnnotatedDocument]: ...


class Writer(Protocol):
    """``(documents, *, report=None) -> str`` (``dict[str, str]`` for a directory layout)."""

    def __call__(
        self, docs: Iterable[AnnotatedDocument], /, *, report: WriteReport | None = None
    ) -> Any: ...


Layout = Literal["text", "bytes", "directory"]


@dataclass(frozen=True)
class Format:
    """A named format: its reader, its writer, a one-line description and its layout.

    ``layout`` says what the reader takes and the writer returns: ``"text"`` a ``str`` (one
    file, UTF-8), ``"bytes"`` the file's raw bytes for the reader (XML, which declares its own
    encoding) and a ``str`` from the writer, ``"directory"`` a ``{file name: str}`` mapping both
    ways; a directory reader's errors name the file as their ``record``, and ``suffixes`` says
    which files of the folder it reads.
    """

    name: str
    description: str
    read: Reader
    write: Writer
    layout: Layout = "text"
    suffixes: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "iob2",
            "token<TAB>tag lines, blank line between sentences, -DOCSTART- between documents",
            read_iob2,
            write_iob2,
        ),
        Format(
            "pubtator",
            "PMID|t|title, PMID|a|abstract, then PMID<TAB>start<TAB>end<TAB>text<TAB>type lines",
            read_pubtator,
            write_pubtator,
        ),
        Format(
            "bioc",
            "BioC XML collection: passages at offsets, annotations with locations",
            read_bioc,
            write_bioc,
            "bytes",
        ),
        Format(
            "brat",
            "brat standoff folder: <id>.txt with <id>.ann (T1<TAB>type start end<TAB>text)",
            read_brat_files,
            write_brat_files,
            "directory",
            (".txt", ".ann"),
        ),
        Format(
            "cmeee",
            "CMeEE JSON array of {text, entities: [{start_idx, end_idx (inclusive), type}]}",
            read_cmeee,
            write_cmeee,
        ),
        Format(
            "chineseblue",
            "ChineseBLUE JSON lines {text, mention_data: [{mention, type|label, offset}]}",
            read_chineseblue,
            write_chineseblue,
        ),
        Format(
            "genia",
            "GENIA nested JSON lines {tokens, entity_mentions: [{start, end, entity_type}]}",
            read_genia,
            write_genia,
        ),
        Format(
            "canonical",
            'the project\'s JSON lines {"id", "text", "spans": [{"start", "end", "label"}]}',
            read_canonical,
            write_canonical,
        ),
    )
}


def get_format(name: str) -> Format:
    """The format called ``name``; a KeyError listing the known ones otherwise."""
    try:
        return FORMATS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise KeyError(f"unknown format {name!r}; known: {known}") from None


__all__ = [
    "FORMATS",
    "Format",
    "Layout",
    "Reader",
    "WriteReport",
    "Writer",
    "get_format",
    "read_bioc",
    "read_brat",
    "read_brat_files",
    "read_canonical",
    "read_chineseblue",
    "read_cmeee",
    "read_genia",
    "read_iob2",
    "read_pubtator",
    "write_bioc",
    "write_brat",
    "write_brat_files",
    "write_canonical",
    "write_chineseblue",
    "write_cmeee",
    "write_genia",
    "write_iob2",
    "write_pubtator",
]
