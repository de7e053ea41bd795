"""XML records read as a stream, in bounded memory, that survive a break in the XML.

A pull parser is fed the bytes block by block; each record element is handed out when it ends
and freed after, with the siblings before it. Its events are drained after every block, also
after a syntax error, so every record completed before a break comes out first, whatever the
lxml release (``iterparse`` in lxml 6.2 raises without yielding the records it has already
parsed in the failing block). At a break inside the data (a tag mismatch, bytes not in the
file's encoding), the record the break is in is quarantined with where and why, and a new
parser starts at the next record's start tag, found in the bytes, behind the file's own XML
declaration and root start tag. A break no record follows (a cut file) is raised.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lxml import etree

from bioner.errors import InputError
from bioner.ingest.types import Quarantined, printable

FEED_BYTES = 1 << 16  # fed to the parser at a time
RAW_CHARS = 2000  # of a quarantined record's XML kept for inspection
#: Lines from here on are not known: libxml2 keeps an element's line in 16 bits, so a record
#: past line 65,535 may read 65,535 (quarantined records get no line there).
LINE_LIMIT = 65_535
_START_TAG_BYTES = 40  # longer than any record start tag: the overlap kept between blocks
_WINDOW_BYTES = 1 << 18  # of the input kept to find where a break is (a record is smaller)
_XML_DECLARATION = re.compile(rb"<\?xml\s[^<>]*\?>")
_MESSAGE_LINE = re.compile(r"\bline (\d+)")
_LINE_COLUMN = re.compile(r",? line \d+, column \d+$")


@dataclass(frozen=True)
class RecordSyntax:
    """What the records of one XML format look like, for :func:`xml_records`."""

    tags: tuple[str, ...]  #: the record elements' tags (the parser reports these only)
    starts: re.Pattern[bytes]  #: a record's start tag in the bytes, where reading resumes
    id_pattern: re.Pattern[bytes]  #: its id in the bytes of a broken record (group 1)
    id_name: str  #: what the id is called in a message ("PMID")
    #: Whether an element of ``tags`` is a record (not one nested in a record); None: all are.
    is_record: Callable[[etree._Element], bool] | None = None
    #: Checks the tree (its root, its DTD) at the first record, or at the end without one.
    check: Callable[[etree._ElementTree], None] = lambda tree: None


def xml_records(
    stream: BinaryIO,
    head: bytes,
    source: str,
    syntax: RecordSyntax,
    restart: bytes | None,
    line_offset: int = 0,
) -> Iterator[tuple[int, etree._Element | Quarantined, int]]:
    """``(position, record element or quarantined break, line shift)`` in file order.

    ``head`` is the first bytes of the XML, already read from ``stream``; ``restart`` what a
    parser reads before a record to resume after a break (:func:`restart_prologue`; None: a
    break is raised). File line = an element's ``sourceline`` + its shift; ``line_offset``
    is added to every line (the lines of a chunk in its file). The element is freed once the
    caller asks for the next. Raises :class:`InputError` at a break no record follows.
    """
    is_record = syntax.is_record
    position = 0
    data = head  # the file's bytes the next parser reads first
    prologue = b""  # what it reads before them
    shift = line_offset  # file line = parser line + shift
    first = True
    document = None  # the root element, once the whole stream is parsed
    while data:
        parser = etree.XMLPullParser(
            events=("start", "end"),
            tag=syntax.tags,
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
        )
        window = _Window(shift + 1, len(prologue))
        if prologue:
            parser.feed(prologue)
        block = data
        data = b""
        opened = 0  # record elements started and not ended
        while True:
            error = None
            closing = not block
            try:
                if closing:
                    document = parser.close()
                else:
                    window.add(block)
                    parser.feed(block)
            except etree.XMLSyntaxError as e:
                error = e
            # A close() that fails may first end the elements left open (lxml >= 6.2): those
            # records are cut off, so its events are not read.
            if error is None or not closing:
                for event, elem in parser.read_events():
                    if is_record is not None and not is_record(elem):
                        continue
                    if event == "start":
                        opened += 1
                        continue
                    opened -= 1
                    if first:
                        syntax.check(elem.getroottree())
                        first = False
                    position += 1
                    yield position, elem, shift
                    _release(elem)
            if error is None and not closing and _fatal(parser.feed_error_log):
                error = etree.XMLSyntaxError("fatal error", None, 0, 0)  # details in the log
            if error is None:
                if closing:
                    break
                block = stream.read(FEED_BYTES)
                continue
            line, column, message = _break_of(error, parser.feed_error_log, shift)
            broken = _broken(line, column, message)
            if closing or restart is None:
                raise broken
            found = window.resume(stream, syntax.starts, line, column, opened > 0)
            if found is None and not opened:
                raise broken  # nothing follows that could be a record: the file's end broke
            position += 1
            yield (
                position,
                window.quarantined(line, column, message, found, position, source, syntax),
                shift,
            )
            if found is not None:
                data, resume_line = found
                prologue = restart
                shift = resume_line - 1
            break
    if first and document is not None:
        syntax.check(document.getroottree())


def restart_prologue(head: bytes, root: str) -> bytes | None:
    """What a parser reads before a record to resume after a break; None if it cannot.

    The file's XML declaration (its encoding), DOCTYPE and root start tag, on one line so
    that the parser's first line is the record's. Files in an encoding that is not
    ASCII-compatible (UTF-16) are not resumed.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\0" in head[:4]:
        return None
    found = re.compile(
        rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml\s[^<>]*\?>)?\s*(?:<!DOCTYPE\s[^\[<>]*>)?\s*<"
        + re.escape(root.encode())
        + rb"(?:\s[^<>]*)?>"
    ).match(head)
    if found is not None and not found.group(0).endswith(b"/>"):
        prologue = found.group(0)
    else:
        declared = _XML_DECLARATION.match(head.lstrip(b"\xef\xbb\xbf \t\r\n"))
        prologue = (declared.group(0) if declared else b"") + f"<{root}>".encode()
    return prologue.replace(b"\r", b" ").replace(b"\n", b" ")


class _Window:
    """The last blocks fed to a parser, to find in them where it broke and where to resume."""

    def __init__(self, start_line: int, prefix: int) -> None:
        self.blocks: deque[bytes] = deque()
        self.size = 0
        self.start_line = start_line  # the file line the first block starts in
        self.prefix = prefix  # characters of that line before the first block
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")  # counts characters
        self.broken = b""  # the start of the broken stretch, once :meth:`resume` found it
        self.broken_line = start_line  # its file line

    def add(self, block: bytes) -> None:
        """Keep ``block``; drop the oldest blocks beyond :data:`_WINDOW_BYTES`."""
        self.blocks.append(block)
        self.size += len(block)
        while self.size - len(self.blocks[0]) >= _WINDOW_BYTES:
            first = self.blocks.popleft()
            self.size -= len(first)
            lines = first.count(b"\n")
            self.start_line += lines
            if lines:
                self.prefix = 0
                self.decoder.reset()
                first = first[first.rindex(b"\n") + 1 :]
            self.prefix += _characters(first, self.decoder)

    def offset(self, data: bytes, line: int | None, column: int) -> int:
        """The offset in ``data`` (the window's bytes) of a break's file line and column."""
        if line is None or line < self.start_line:
            return 0
        start = 0
        for _ in range(line - self.start_line):
            start = data.find(b"\n", start) + 1
            if start == 0:
                return len(data)
        if line == self.start_line:
            column -= self.prefix
        # libxml2 counts columns in characters: skip that many UTF-8 characters.
        chars = 0
        for i in range(start, len(data)):
            if data[i] & 0xC0 != 0x80:
                chars += 1
                if chars >= column:
                    return i
        return len(data)

    def resume(
        self,
        stream: BinaryIO,
        starts: re.Pattern[bytes],
        line: int | None,
        column: int,
        opened: bool,
    ) -> tuple[bytes, int] | None:
        """``(bytes from the next record start tag on, its file line)`` after a break, or None.

        ``line`` and ``column`` are the break's (file line); ``opened``: whether it is inside
        a record. Reads ``stream`` on as far as needed; what is skipped is dropped. Sets
        :attr:`broken` to the start of the broken stretch: the record the break is in, else
        what follows the last tag before the break.
        """
        data = b"".join(self.blocks)
        at = self.offset(data, line, column)
        if opened:
            start = _record_start(data, at, starts)
        else:
            start = data.rfind(b">", 0, at) + 1
            start += len(data[start:at]) - len(data[start:at].lstrip())
        self.broken_line = self.start_line + data.count(b"\n", 0, start)
        # libxml2 reports a break after what it consumed: the next record may start right there
        # (but not where this parser started, which would read the same break again).
        found = starts.search(data, max(at, 1))
        end = found.start() if found is not None else len(data)
        self.broken = data[start : min(end, start + RAW_CHARS)]
        skipped = 0  # lines dropped before ``data``
        while found is None:
            block = stream.read(FEED_BYTES)
            if not block:
                return None
            keep = max(0, len(data) - _START_TAG_BYTES)
            skipped += data.count(b"\n", 0, keep)
            data = data[keep:] + block
            found = starts.search(data)
        resume_line = self.start_line + skipped + data.count(b"\n", 0, found.start())
        return data[found.start() :], resume_line

    def quarantined(
        self,
        line: int | None,
        column: int,
        message: str,
        found: tuple[bytes, int] | None,
        position: int,
        source: str,
        syntax: RecordSyntax,
    ) -> Quarantined:
        """The quarantine entry of the record a break is in (or of the bytes before the next)."""
        found_id = syntax.id_pattern.search(self.broken)
        record_id = printable(found_id.group(1).decode("utf-8", "replace")) if found_id else ""
        record = f"the record at line {self.broken_line}" + (
            f" ({syntax.id_name} {record_id})" if record_id else ""
        )
        then = f", reading resumed at line {found[1]}" if found else ""
        reason = (
            f"{_where(line, column)}: {message}: {record} of {source or 'the input'} "
            f"quarantined{then}"
        )
        raw = self.broken.decode("utf-8", "replace")
        # The error's line is exact, unlike an element's past LINE_LIMIT.
        return Quarantined(source, position, reason, record_id, line, raw)


def _characters(data: bytes, decoder: codecs.IncrementalDecoder) -> int:
    """The UTF-8 characters that start in ``data``, a block of a stream ``decoder`` reads.

    A character cut at the end of the block counts here (libxml2 counts it where it starts).
    """
    if data.isascii() and not decoder.getstate()[0]:
        return len(data)
    pending = bool(decoder.getstate()[0])
    return len(decoder.decode(data)) - pending + bool(decoder.getstate()[0])


def _record_start(data: bytes, at: int, starts: re.Pattern[bytes]) -> int:
    """The offset of the last record start tag before ``at`` in ``data`` (0 if none)."""
    last = 0
    for found in starts.finditer(data, 0, at):
        last = found.start()
    return last


def _fatal(log: etree._ListErrorLog) -> bool:
    return any(e.level == etree.ErrorLevels.FATAL for e in log)


def _break_of(
    error: etree.XMLSyntaxError, log: etree._ListErrorLog, shift: int
) -> tuple[int | None, int, str]:
    """(file line, column, message) of the first fatal libxml2 error of a parse.

    ``shift`` is what to add to the parser's lines, in the line and in the message (libxml2
    names the line of an unclosed tag).
    """
    # lxml may raise a late summary ("no element found", line 0) after the real error.
    first = next((e for e in log if e.level >= etree.ErrorLevels.ERROR), None)
    if first is not None and first.line > 0:
        line, column, message = first.line, first.column, first.message
    else:
        line, column = error.position or (error.lineno, 0)
        message = _LINE_COLUMN.sub("", error.msg or str(error))
    message = message.strip() or "syntax error"
    if "Invalid bytes" in message or "proper UTF-8" in message:
        message += " (the bytes are not in the file's declared encoding; UTF-8 by default)"
    if shift:
        message = _MESSAGE_LINE.sub(lambda m: f"line {int(m.group(1)) + shift}", message)
    return (line + shift if line and line > 0 else None), max(column or 0, 0), message


def _where(line: int | None, column: int) -> str:
    """``XML broken at line L, column C`` (the parts known)."""
    where = [f"line {line}"] if line is not None else []
    if column:
        where.append(f"column {column}")
    return "XML broken" + (" at " + ", ".join(where) if where else "")


def _broken(line: int | None, column: int, message: str) -> InputError:
    """The error a file that breaks where no record follows raises."""
    at = f" at column {column}" if column else ""
    return InputError(f"XML broken{at}: {message}", line=line)


def _release(elem: etree._Element) -> None:
    """Free a parsed record and the already-processed siblings before it."""
    elem.clear(keep_tail=True)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]
