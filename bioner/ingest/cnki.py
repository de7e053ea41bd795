"""Readers of CNKI (知网) bibliographic exports into documents, pure over bytes.

Four export dialects are read, each record becoming one :class:`~bioner.records.Document`:

* ``estudy``: 知网研学 (E-Study) field-tagged text, each record opens with ``DataType:``, tags like
  ``Title-题名:``, no blank line between records;
* ``noteexpress``: ``{Reference Type}: ...``, ``{Title}: ...`` lines, ``:`` or ``：``, values that
  may run over several lines (blank ones included);
* ``endnote``: ``%0 Journal Article``, ``%A`` (repeated), ``%T``, ``%J``, ``%D``, ``%K``, ``%X``...;
* ``refworks``: ``RT Journal Article``, ``SR 1``, ``A1``, ``T1``, ``JF``, ``YR``, ``K1``, ``AB``...

Text is the title, a space, and the abstract, cleaned: a leading ``<正>`` dropped, CNKI's
``~(...)``/``_(...)`` super- and subscript markers replaced by their content (``CO~(2)`` ->
``CO2``), well-formed HTML entities decoded and inline tags removed, whitespace collapsed;
``(#br)``, ``<br>`` and line breaks split the abstract into parts, each its own section, and an
abstract with labelled parts (目的/方法/结果/结论, Objective/Methods/...) gets one section per
part, labelled as written and categorised like PubMed's ``NlmCategory``.

Ids: ``cnki:`` and 16 hex digits of the SHA-1 of the normalised title, authors, source (journal)
and year (:func:`cnki_id`), so the same record gets the same id whatever the dialect and the
encoding it was exported in. The CNKI file name (``FileName=`` of an E-Study link) and the DOI are
kept (``metadata``, ``doi``) but not used as ids: most exports carry neither, and an id that
depends on the dialect would let one article enter the corpus twice.

Records are read as a stream, a line at a time (:func:`decode_cnki`), so memory does not grow
with the file. A record runs from its start line (``DataType:``, ``{Reference Type}:``, ``%0``,
``RT``) to the next one, whatever the line ends (LF, CRLF, CR); blank lines between records, or
inside a value, never make a record. Every record read is a document or a :class:`Quarantined`
row: one without a title and without an abstract, or holding undecodable bytes, is quarantined
with its position and line, and the records after it are read on.

Encoding (:func:`decode_cnki`): a byte-order mark decides (UTF-8, UTF-16); otherwise strict UTF-8,
then strict GB18030 (a superset of GBK and GB2312), a fixed cascade rather than a guessing
library, so that the same bytes always give the same text, decided once per file on its first
non-ASCII lines. A line that then does not decode is replaced and its record quarantined; text
that is under no encoding is an :class:`InputError` naming the offset.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import AnyStr, BinaryIO

from bioner.errors import InputError
from bioner.ingest.lang import detect_language
from bioner.ingest.types import Quarantined
from bioner.records import Document, Section

DIALECTS = ("estudy", "noteexpress", "endnote", "refworks")
_NAMES = {
    "estudy": "E-Study",
    "noteexpress": "NoteExpress",
    "endnote": "EndNote",
    "refworks": "RefWorks",
}
NO_RECORDS = "no CNKI records found (expected E-Study, NoteExpress, EndNote or RefWorks)"
RAW_LIMIT = 2_000  # characters of a quarantined record kept for inspection

# ---------------------------------------------------------------------------------------------
# Decoding, a line at a time


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an export without its break, and why its bytes did not decode ("" if they
    did; the text then holds U+FFFD in their place)."""

    text: str
    bad: str = ""


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CASCADE = ("utf-8", "gb18030")
_BYTE_BREAK = re.compile(rb"\r\n|\r|\n")
_TEXT_BREAK = re.compile(r"\r\n|\r|\n")
_ASCII = bytes(range(128))
# Non-ASCII bytes that must decode for a file to count as that encoding with a few corrupt
# lines: a GBK text passes for UTF-8 over 8 such bytes about once in 10^4.
_EVIDENCE = 8
_CHUNK = 1 << 16  # bytes read at a time
# Bytes of lines, from the first non-ASCII one, that decide between UTF-8 and GB18030: the
# decision is made once per file, so that a stray line in the other encoding stays one bad line.
_WINDOW = 1 << 16


def _split_lines(text: str) -> list[str]:
    """Lines on LF, CRLF or CR, the same breaks as :data:`_BYTE_BREAK` in bytes."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _split(
    chunks: Iterable[AnyStr], breaks: re.Pattern[AnyStr], cr: AnyStr
) -> Iterator[tuple[int, AnyStr]]:
    """``(offset, line)`` of each line of a stream given in chunks, breaks (LF, CRLF, CR) left
    out; a CR at the end of a chunk waits for the next, which may start with its LF."""
    rest = None
    offset = 0
    for chunk in chunks:
        rest = chunk if rest is None else rest + chunk
        start = 0
        for m in breaks.finditer(rest):
            if m.end() == len(rest) and m.group() == cr:
                break
            yield offset + start, rest[start : m.start()]
            start = m.end()
        offset += start
        rest = rest[start:]
    if rest:
        yield offset, rest[:-1] if rest.endswith(cr) else rest


def decode_cnki(stream: BinaryIO) -> Iterator[Line]:
    """Lines of an export read from ``stream`` a chunk at a time; LF, CRLF and CR line ends.

    A byte-order mark decides the encoding (UTF-8, UTF-16); otherwise the first
    :data:`_WINDOW` bytes of lines from the first non-ASCII one decide (:func:`_choose`), by a
    fixed cascade rather than a guessing library so that the same bytes always give the same
    text: UTF-8, then GB18030 (a superset of GBK and GB2312). Each line is then decoded on its
    own: one that fails is replaced and says why in :attr:`Line.bad` (its record is
    quarantined).
    Undecodable text before any decision, or in a UTF-16 file, is an :class:`InputError` that
    names the byte offset.
    """
    head = b""
    while len(head) < 3 and (chunk := stream.read(3 - len(head))):
        head += chunk
    chunks = itertools.chain([head], iter(lambda: stream.read(_CHUNK), b""))
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            if encoding == "utf-16":
                return (Line(text) for _, text in _split(_utf16(chunks), _TEXT_BREAK, "\r"))
            return _decode_lines(_split(chunks, _BYTE_BREAK, b"\r"), encoding)
    return _decode_lines(_split(chunks, _BYTE_BREAK, b"\r"), None)


def _utf16(chunks: Iterable[bytes]) -> Iterator[str]:
    """The text of UTF-16 chunks (the first starting with its byte-order mark), strictly."""
    decoder = codecs.getincrementaldecoder("utf-16")()
    fed = 0
    for chunk in itertools.chain(chunks, [None]):
        waiting = len(decoder.getstate()[0])  # bytes of an unfinished character
        try:
            yield decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as e:
            raise InputError(
                f"undecodable bytes at byte offset {fed - waiting + e.start}: not utf-16 text "
                "although the file starts with its byte-order mark"
            ) from None
        fed += len(chunk or b"")


def _decode_lines(lines: Iterable[tuple[int, bytes]], encoding: str | None) -> Iterator[Line]:
    """Each line decoded on its own in ``encoding``; None: in the one :func:`_choose` takes
    from the first window of lines that are not all ASCII (ASCII lines before it read as such).
    """
    window: list[tuple[int, int, bytes]] = []  # (line index, byte offset, bytes)
    size = 0
    for n, (offset, data) in enumerate(lines):
        if encoding is not None:
            yield _line(n, offset, data, encoding)
        elif not window and data.isascii():
            yield Line(data.decode("ascii"))
        else:
            window.append((n, offset, data))
            size += len(data)
            if size >= _WINDOW:
                encoding = _choose(window)
                yield from (_line(*w, encoding) for w in window)
                window.clear()
    if window:
        encoding = _choose(window)
        yield from (_line(*w, encoding) for w in window)


def _line(n: int, offset: int, data: bytes, encoding: str) -> Line:
    try:
        return Line(data.decode(encoding))
    except UnicodeDecodeError as e:
        return Line(
            data.decode(encoding, "replace"),
            f"undecodable bytes at byte offset {offset + e.start} (line {n + 1}): "
            f"not {encoding} like the rest of the file",
        )


def _choose(window: list[tuple[int, int, bytes]]) -> str:
    """The encoding of a window of lines (see :func:`decode_cnki`): the first of the cascade
    in which every line decodes, or in which the lines that decode hold at least
    :data:`_EVIDENCE` non-ASCII bytes and more than the lines that do not; an
    :class:`InputError` naming the first byte that is not UTF-8 when neither fits.

    UTF-8 is tried first and decides on its own lines: GB18030 accepts most byte pairs, so a
    UTF-8 file with a corrupt byte, or a stray GBK line, would decode in it as mojibake.
    """
    for encoding in _CASCADE:
        good = bad = 0
        for _, _, data in window:
            try:
                data.decode(encoding)
            except UnicodeDecodeError:
                bad += len(data.translate(None, _ASCII))
            else:
                good += len(data.translate(None, _ASCII))
        if not bad or (good >= _EVIDENCE and good > bad):
            return encoding
    for n, offset, data in window:
        try:
            data.decode(_CASCADE[0])
        except UnicodeDecodeError as e:
            raise InputError(
                f"undecodable bytes at byte offset {offset + e.start}: "
                "neither UTF-8 nor GB18030 (GBK) text",
                line=n + 1,
            ) from None
    raise AssertionError("a window that does not decode holds a line that does not")


# ---------------------------------------------------------------------------------------------
# Dialects: record starts and field lines

_START = {
    "estudy": re.compile(r"DataType\s*[:：]\s?(.*)$"),
    "noteexpress": re.compile(r"\{Reference Type\}\s*[:：]\s?(.*)$"),
    "endnote": re.compile(r"%0(?:\s(.*))?$"),
    "refworks": re.compile(r"RT(?:\s(.*))?$"),
}
_REFWORKS_TAGS = (
    "RT|SR|ID|A1|A2|A3|A4|A5|A6|AD|T1|T2|T3|JF|JO|JA|YR|FD|VO|vo|IS|SP|OP|K1|AB|NO|ED|PB|PP|CY|SN|"
    "CN|LA|CL|SF|OT|LK|UL|DO|DB|DS|RD|WP|WT|WV|AN|U1|U2|U3|U4|U5|OL"
)
_FIELD = {
    # ``Title-题名: ...``: the English name before the hyphen is the key.
    "estudy": re.compile(r"([A-Z][A-Za-z]*)-([^\s:：]{1,16})\s*[:：]\s?(.*)$"),
    "noteexpress": re.compile(r"\{([^{}]+)\}\s*[:：]\s?(.*)$"),
    "endnote": re.compile(r"%(\S)(?:\s(.*))?$"),
    # Known tags only, case-sensitive ("vo" is lower case in CNKI's export): a line of an
    # abstract can start with two capitals and a space too ("AD patients ...").
    "refworks": re.compile(rf"({_REFWORKS_TAGS})(?:\s(.*))?$"),
}
# Dialects whose record start is a two-character tag that a stray line may begin with too.
_SHORT_MARKERS = {"endnote", "refworks"}


def _field(dialect: str, line: str) -> tuple[str, str] | None:
    """``(key, value)`` of a field line (key ``"type"`` for a record start, else ``"title"``,
    ``"%T"``, ``"T1"`` ...); None for a continuation line."""
    start = _START[dialect].match(line)
    if start:
        return "type", start.group(1) or ""
    m = _FIELD[dialect].match(line)
    if m is None:
        return None
    if dialect == "estudy":
        return m.group(1).lower(), m.group(3)
    if dialect == "noteexpress":
        return m.group(1).strip().rstrip(",").strip().lower(), m.group(2)
    if dialect == "endnote":
        return "%" + m.group(1), m.group(2) or ""
    return m.group(1).upper(), m.group(2) or ""


def detect_cnki_dialect(text: str) -> str | None:
    """The dialect of an export from its first record start; None if none is recognisable.

    A record start is the first line of a record (``DataType:``, ``{Reference Type}:``,
    ``%0``, ``RT``); for the short EndNote and RefWorks markers a field of the same dialect
    must follow within three lines, so that a stray line does not decide.
    """
    return _detect(_split_lines(text.lstrip("\ufeff")))


def _detect(lines: list[str]) -> str | None:
    """The dialect of the first line that starts a record (see :func:`detect_cnki_dialect`)."""
    for i, line in enumerate(lines):
        for dialect in DIALECTS:
            if not _START[dialect].match(line):
                continue
            if dialect not in _SHORT_MARKERS:
                return dialect
            following = lines[i + 1 : i + 4]
            if any(_FIELD[dialect].match(x) and not _START[dialect].match(x) for x in following):
                return dialect
    return None


@dataclass(slots=True)
class _Record:
    """One record as read: its first line (0-based), its fields in order, the start of its text
    (for a quarantine row) and why one of its lines did not decode."""

    start: int
    fields: dict[str, list[str]] = field(default_factory=dict)
    bad: str = ""
    _raw: list[str] = field(default_factory=list)
    _raw_chars: int = 0
    _blanks: int = 0  # blank lines since the last line kept in ``_raw``

    def add(self, line: Line) -> None:
        """Note a line of the record: its decoding and, up to :data:`RAW_LIMIT`, its text
        (blank lines only between others)."""
        self.bad = self.bad or line.bad
        if not line.text.strip():
            self._blanks += 1
            return
        for text in [*[""] * self._blanks, line.text]:
            if self._raw_chars < RAW_LIMIT:
                self._raw.append(text)
                self._raw_chars += len(text) + 1
        self._blanks = 0

    def raw(self) -> str:
        return "\n".join(self._raw)[:RAW_LIMIT]


def _records(lines: Iterable[Line], dialect: str) -> Iterator[_Record]:
    """Records in file order, each from its start line to the next one; text before the first
    start is a record of its own (without a ``"type"`` field).

    A blank line never ends a record: it separates EndNote and RefWorks records and occurs
    inside values, in every dialect; inside a value it is kept as a line break.
    """
    current: _Record | None = None
    last_key: str | None = None
    for i, line in enumerate(lines):
        if not line.text.strip():
            if current is not None:
                current.add(line)
                if last_key is not None:
                    current.fields[last_key][-1] += "\n"
            continue
        parsed = _field(dialect, line.text)
        if current is None or (parsed is not None and parsed[0] == "type"):
            if current is not None:
                yield current
            current, last_key = _Record(i), None
        current.add(line)
        if parsed is None:
            if last_key is None:  # text before any field: kept under a key of its own
                current.fields.setdefault("", []).append(line.text)
            else:
                current.fields[last_key][-1] += "\n" + line.text
            continue
        key, value = parsed
        current.fields.setdefault(key, []).append(value)
        last_key = key
    if current is not None:
        yield current


# ---------------------------------------------------------------------------------------------
# Clean-up of titles, abstracts, names


_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_BREAK = re.compile(r"\(#br\)|<br\s*/?>|\n", re.IGNORECASE)
# Inline tags with attributes as ``name="value"`` only, so that "P<a and b>c" stays text.
_TAG = re.compile(
    r"</?(?:sub|sup|i|b|em|strong|u|p|span|font|div|a|strike|s|small|big)"
    r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))*\s*/?>""",
    re.IGNORECASE,
)
# 知网 marks an "abstract" that is the start of the full text (正文) with a leading <正>.
_LEADING_MARK = re.compile(r"^\s*<正>")
# ``~(...)`` superscript, ``_(...)`` subscript, one level of nested brackets inside.
_SCRIPT = re.compile(r"[~_]\(((?:[^()]|\([^()]*\))*)\)")
# Bare markers: ``CD4~+``, ``χ~2``, ``H_2O``, ``1×10~6``. ``~`` between digits is a range (3~5).
_BARE_SIGN = re.compile(r"(?<=[A-Za-z0-9\u0370-\u03ff)\]])~(?=[+\-−](?!\d))")
_BARE_DIGIT = re.compile(r"(?<=[A-Za-z\u0370-\u03ff)\]])[~_](?=\d)")
_POWER_OF_TEN = re.compile(r"(?<=[×xX*]10)~(?=[+\-−]?\d)")


def _unescape(text: str) -> str:
    """Well-formed entities decoded: html.unescape alone also rewrites "&para", "&not" ..."""
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def _untag(text: str) -> str:
    """Inline HTML tags removed, their content kept."""
    return _TAG.sub("", text) if "<" in text else text


def _scripts(text: str) -> str:
    """CNKI's super/subscript markers replaced by their content."""
    if "~" not in text and "_" not in text:
        return text
    text = _SCRIPT.sub(r"\1", text)
    text = _BARE_SIGN.sub("", text)
    text = _BARE_DIGIT.sub("", text)
    return _POWER_OF_TEN.sub("", text)


def clean_text(text: str) -> str:
    """A one-line value (title, keyword, name) as text: markup and script markers out, spaces
    collapsed."""
    return " ".join(_scripts(_untag(_unescape(text))).split())


_HEADING = re.compile(r"(?i:abstract|summary)[:：.]?|摘\s*要[:：]?")
_LABELS = {
    "背景": "BACKGROUND",
    "目的": "OBJECTIVE",
    "目标": "OBJECTIVE",
    "方法": "METHODS",
    "结果": "RESULTS",
    "结论": "CONCLUSIONS",
    "background": "BACKGROUND",
    "objective": "OBJECTIVE",
    "objectives": "OBJECTIVE",
    "purpose": "OBJECTIVE",
    "aim": "OBJECTIVE",
    "aims": "OBJECTIVE",
    "method": "METHODS",
    "methods": "METHODS",
    "result": "RESULTS",
    "results": "RESULTS",
    "conclusion": "CONCLUSIONS",
    "conclusions": "CONCLUSIONS",
}
_RANK = {"BACKGROUND": 0, "OBJECTIVE": 1, "METHODS": 2, "RESULTS": 3, "CONCLUSIONS": 4}
_LABEL = re.compile(
    r"背景|目的|目标|方法|结果|结论"
    r"|(?i:background|objectives?|purpose|aims?|methods?|results?|conclusions?)"
    r"(?=\s*[:：]|\s+[A-Z0-9\u4e00-\u9fff])"
)
_SENTENCE_END = set("。；;.!?！？")
_MIN_LABELS = 3  # fewer labelled parts are too often a sentence that happens to start so


def _paragraphs(abstract: str) -> list[str]:
    text = _LEADING_MARK.sub("", _untag(_unescape(abstract)))
    parts = (" ".join(_scripts(p).split()) for p in _BREAK.split(text))
    parts = [p for p in parts if p]
    if parts and _HEADING.fullmatch(parts[0]):
        parts = parts[1:]  # an "Abstract" heading before the first break
    return parts


def _labelled(abstract: str, starts: set[int]) -> list[tuple[str, str, int, int]]:
    """``(label, category, start, end)`` of a structured abstract's parts; [] if unstructured.

    A label counts at the start of the abstract or of a part, or after a sentence end, and only
    in order (objective before methods before results ...); the first must open the abstract.
    """
    if not _LABEL.match(abstract):
        return []
    found: list[tuple[str, str, int]] = []
    for m in _LABEL.finditer(abstract):
        i = j = m.start()
        while j > 0 and abstract[j - 1].isspace():
            j -= 1
        if i not in starts and j > 0 and abstract[j - 1] not in _SENTENCE_END:
            continue
        category = _LABELS[m.group(0).lower()]
        if found and _RANK[category] <= _RANK[found[-1][1]]:
            continue
        found.append((m.group(0), category, i))
    if len(found) < _MIN_LABELS or found[0][2] != 0:
        return []
    out = []
    for k, (label, category, start) in enumerate(found):
        end = found[k + 1][2] if k + 1 < len(found) else len(abstract)
        end = start + len(abstract[start:end].rstrip())
        out.append((label, category, start, end))
    return out


def clean_abstract(abstract: str) -> tuple[str, list[Section]]:
    """The abstract as one line and its sections (offsets into it): labelled parts, else one
    ``ABSTRACT`` section per part between ``(#br)`` breaks."""
    parts = _paragraphs(abstract)
    text = " ".join(parts)
    starts, offset = [], 0
    for p in parts:
        starts.append(offset)
        offset += len(p) + 1
    labelled = _labelled(text, set(starts))
    if labelled:
        return text, [Section(label, s, e, category) for label, category, s, e in labelled]
    return text, [Section("ABSTRACT", s, s + len(p)) for s, p in zip(starts, parts, strict=True)]


_LIST_SEMICOLON = re.compile(r"[;；\n]")
_LIST_COMMA = re.compile(r"[,，\n]")
_DIGIT_COMMA = re.compile(r"(?<=\d)[,，](?=\d)")


def split_list(value: str, *, commas: bool = True) -> list[str]:
    """Items of a keyword or author list: on ``;``/``；`` (and line breaks) when there are any,
    else on commas, except a comma between digits (``1,25-二羟维生素D3``); never on commas
    when ``commas`` is false (EndNote and RefWorks names, one a line: ``Noh, Youngre``)."""
    if not commas or _LIST_SEMICOLON.search(value.strip()):
        items = _LIST_SEMICOLON.split(value)
    else:
        protected = _DIGIT_COMMA.sub("\0", value)
        items = [i.replace("\0", ",") for i in _LIST_COMMA.split(protected)]
    return [c for c in (clean_text(i) for i in items) if c]


_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_"


def _normal(text: str) -> str:
    """Letters and digits only, NFKC-folded: full/half width, case, spaces and punctuation
    differ between dialects and exports of one record."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).casefold())


def cnki_id(title: str, authors: tuple[str, ...] | list[str], journal: str, year: str) -> str:
    """``cnki:`` + 16 hex digits of SHA-1 over the normalised title, authors, journal, year."""
    key = "\x1f".join(
        [_normal(title), "\x1e".join(_normal(a) for a in authors), _normal(journal), year]
    )
    return "cnki:" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


_DATE = re.compile(r"(\d{4})(?:\s*[-/.年]\s*(\d{1,2})(?:\s*[-/.月]\s*(\d{1,2}))?)?")


def iso_date(value: str) -> str:
    """``"2021"``, ``"2021-01"`` or ``"2021-01-18"`` from a CNKI date (``2021-01-18 16:54``,
    ``2021/1/18``, ``2021年1月``); "" when there is no year."""
    m = _DATE.search(value)
    if m is None:
        return ""
    year, month, day = m.groups()
    if month is None or not 1 <= int(month) <= 12:
        return year
    if day is None or not 1 <= int(day) <= 31:
        return f"{year}-{int(month):02d}"
    return f"{year}-{int(month):02d}-{int(day):02d}"


# ---------------------------------------------------------------------------------------------
# Fields of each dialect -> one shape


@dataclass(slots=True)
class _Fields:
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    journal: str = ""
    year: str = ""
    date: str = ""
    keywords: list[str] = field(default_factory=list)
    doi: str = ""
    type: str = ""
    metadata: list[tuple[str, str]] = field(default_factory=list)


def _get(fields: dict[str, list[str]], *keys: str) -> str:
    """The first non-empty value among ``keys``, stripped."""
    for key in keys:
        for value in fields.get(key, ()):
            if value.strip():
                return value.strip()
    return ""


def _all(fields: dict[str, list[str]], *keys: str) -> list[str]:
    return [v for key in keys for v in fields.get(key, ()) if v.strip()]


_SEMICOLON = re.compile(r"[;；]")


def _joined(fields: dict[str, list[str]], *keys: str) -> str:
    """The items of every value among ``keys`` (``;``-separated, or a field repeated with one
    affiliation a line, as dialects differ), ``"; "`` between them."""
    items = (i.strip() for v in _all(fields, *keys) for i in _SEMICOLON.split(v))
    return "; ".join(i for i in items if i)


# CNKI database names (E-Study ``SrcDatabase``) as the reference types the other dialects write.
_DATABASE_TYPES = {
    "期刊": "Journal Article",
    "特色期刊": "Journal Article",
    "博士": "Thesis",
    "硕士": "Thesis",
    "报纸": "Newspaper Article",
    "会议": "Conference Proceedings",
    "国内会议": "Conference Proceedings",
    "国际会议": "Conference Proceedings",
    "专利": "Patent",
    "中国专利": "Patent",
    "标准": "Standard",
    "国家标准": "Standard",
    "行业标准": "Standard",
    "图书": "Book",
}
_FILENAME = re.compile(r"[?&]filename=([A-Za-z0-9_.-]+)", re.IGNORECASE)
_LANGUAGES = {
    "chi": "zh",
    "zho": "zh",
    "zh": "zh",
    "chinese": "zh",
    "中文": "zh",
    "eng": "en",
    "en": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
}


def _meta(out: _Fields, key: str, value: str) -> None:
    value = clean_text(value)
    if value:
        out.metadata.append((key, value))


def _estudy(f: dict[str, list[str]]) -> _Fields:
    out = _Fields(
        title=_get(f, "title"),
        abstract=_get(f, "summary", "abstract"),
        authors=[a for v in _all(f, "author") for a in split_list(v)],
        journal=_get(f, "source"),
        year=_get(f, "year"),
        date=_get(f, "pubtime", "date"),
        keywords=[k for v in _all(f, "keyword") for k in split_list(v)],
        doi=_get(f, "doi"),
    )
    database = clean_text(_get(f, "srcdatabase"))
    out.type = _DATABASE_TYPES.get(database, database)
    link = _get(f, "link")
    filename = _FILENAME.search(link)
    _meta(out, "cnki_filename", filename.group(1) if filename else "")
    _meta(out, "cnki_datatype", _get(f, "type"))
    _meta(out, "volume", _get(f, "roll", "volume"))
    _meta(out, "issue", _get(f, "period", "issue"))
    _meta(out, "pages", _get(f, "page"))
    _meta(out, "affiliations", _joined(f, "organ"))
    _meta(out, "fund", _get(f, "fund"))
    _meta(out, "clc", _get(f, "clc"))
    _meta(out, "issn", _get(f, "issn"))
    _meta(out, "cn", _get(f, "cn"))
    _meta(out, "url", link)
    return out


def _noteexpress(f: dict[str, list[str]]) -> _Fields:
    out = _Fields(
        title=_get(f, "title"),
        abstract=_get(f, "abstract"),
        authors=[a for v in _all(f, "author") for a in split_list(v)],
        journal=_get(f, "journal", "secondary title", "publisher"),
        year=_get(f, "year"),
        date=_get(f, "date"),
        keywords=[k for v in _all(f, "keywords") for k in split_list(v)],
        doi=_get(f, "doi"),
        type=clean_text(_get(f, "type")),
    )
    _meta(out, "translated_title", _get(f, "translated title"))
    _meta(out, "translated_journal", _get(f, "translated journal"))
    _meta(out, "volume", _get(f, "volume"))
    _meta(out, "issue", _get(f, "issue"))
    _meta(out, "pages", _get(f, "pages"))
    _meta(out, "affiliations", _joined(f, "author address"))
    _meta(out, "issn", _get(f, "isbn/issn", "isbn"))
    _meta(out, "cn", _get(f, "notes"))
    _meta(out, "declared_language", _get(f, "language"))
    _meta(out, "database", _get(f, "database provider", "srcdatabase"))
    _meta(out, "url", _get(f, "url"))
    return out


def _endnote(f: dict[str, list[str]]) -> _Fields:
    out = _Fields(
        title=_get(f, "%T"),
        abstract=_get(f, "%X"),
        authors=[a for v in _all(f, "%A") for a in split_list(v, commas=False)],
        journal=_get(f, "%J", "%B", "%I"),
        year=_get(f, "%D"),
        date=_get(f, "%8"),
        keywords=[k for v in _all(f, "%K") for k in split_list(v)],
        doi=_get(f, "%R"),
        type=clean_text(_get(f, "type")),
    )
    _meta(out, "volume", _get(f, "%V"))
    _meta(out, "issue", _get(f, "%N"))
    _meta(out, "pages", _get(f, "%P"))
    _meta(out, "affiliations", _joined(f, "%+"))
    _meta(out, "issn", _get(f, "%@"))
    _meta(out, "cn", _get(f, "%L"))
    _meta(out, "declared_language", _get(f, "%G"))
    _meta(out, "database", _get(f, "%W"))
    _meta(out, "url", _get(f, "%U"))
    return out


def _refworks(f: dict[str, list[str]]) -> _Fields:
    out = _Fields(
        title=_get(f, "T1"),
        abstract=_get(f, "AB"),
        authors=[a for v in _all(f, "A1", "AU") for a in split_list(v, commas=False)],
        journal=_get(f, "JF", "JO", "T2", "PB"),
        year=_get(f, "YR"),
        date=_get(f, "FD"),
        keywords=[k for v in _all(f, "K1") for k in split_list(v)],
        doi=_get(f, "DO"),
        type=clean_text(_get(f, "type")),
    )
    _meta(out, "volume", _get(f, "VO"))
    _meta(out, "issue", _get(f, "IS"))
    _meta(out, "pages", _get(f, "OP", "SP"))
    _meta(out, "affiliations", _joined(f, "AD"))
    _meta(out, "issn", _get(f, "SN"))
    _meta(out, "cn", _get(f, "CN"))
    _meta(out, "declared_language", _get(f, "LA").strip(";；"))
    _meta(out, "database", _get(f, "DS"))
    _meta(out, "url", _get(f, "LK", "UL"))
    return out


_MAPPERS: dict[str, Callable[[dict[str, list[str]]], _Fields]] = {
    "estudy": _estudy,
    "noteexpress": _noteexpress,
    "endnote": _endnote,
    "refworks": _refworks,
}
_DOI_PREFIX = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)", re.IGNORECASE)


def _pub_date(year_field: str, date_field: str) -> str:
    """The full date when it agrees with the year field (or there is none), else the year."""
    year = iso_date(year_field)[:4]
    date = iso_date(date_field)
    if date and (not year or date.startswith(year)):
        return date
    return year


def _document(fields: _Fields, dialect: str, source: str) -> Document:
    """The document of a record's fields: cleaned text, sections, stable id."""
    title = clean_text(fields.title)
    abstract, abstract_sections = clean_abstract(fields.abstract)
    text = f"{title} {abstract}" if title and abstract else title or abstract
    shift = len(title) + 1 if title and abstract else 0
    sections = [Section("TITLE", 0, len(title))] if title else []
    sections += [
        Section(s.label, s.start + shift, s.end + shift, s.category) for s in abstract_sections
    ]
    authors = tuple(fields.authors)
    journal = clean_text(fields.journal)
    pub_date = _pub_date(fields.year, fields.date)
    # The text decides the language; the declared one only when the text has no letters.
    declared = dict(fields.metadata).get("declared_language", "").strip(";；").lower()
    return Document(
        id=cnki_id(title, authors, journal, pub_date[:4]),
        text=text,
        title=title,
        language=detect_language(text, default=_LANGUAGES.get(declared, "zh")),
        source=source,
        metadata=(("format", f"cnki-{dialect}"), *fields.metadata),
        journal=journal,
        pub_date=pub_date,
        doi=_DOI_PREFIX.sub("", clean_text(fields.doi)),
        authors=authors,
        keywords=tuple(dict.fromkeys(fields.keywords)),
        publication_types=(fields.type,) if fields.type else (),
        sections=tuple(sections),
    )


# ---------------------------------------------------------------------------------------------
# Readers

#: Lines searched for the first record start when the dialect is to be detected.
DETECT_LINES = 1_000


def _lines(data: bytes | str | BinaryIO) -> Iterator[Line]:
    """Lines of a stream or bytes (decoded by :func:`decode_cnki`) or of decoded text."""
    if isinstance(data, str):
        return (Line(text) for text in _split_lines(data.lstrip("\ufeff")))
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    return decode_cnki(data)


def _read(lines: Iterable[Line], dialect: str, source: str) -> Iterator[Document | Quarantined]:
    """Documents, and quarantined records with their 1-based position, in file order."""
    mapper = _MAPPERS[dialect]
    position = 0
    for record in _records(lines, dialect):
        line = record.start + 1
        if "type" not in record.fields:
            # text before the first record (a header, a stray line): not a record
            yield Quarantined(
                source, 0, "text before the first record", line=line, raw=record.raw()
            )
            continue
        position += 1
        if record.bad:
            yield Quarantined(source, position, record.bad, line=line, raw=record.raw())
            continue
        doc = _document(mapper(record.fields), dialect, source)
        if not doc.text:
            yield Quarantined(
                source,
                position,
                "record without a title or an abstract",
                line=line,
                raw=record.raw(),
            )
            continue
        yield doc
    if not position:
        raise InputError(f"no CNKI {_NAMES[dialect]} records found")


def read_cnki(
    data: bytes | str | BinaryIO, source: str = "", dialect: str | None = None
) -> Iterator[Document | Quarantined]:
    """Documents and quarantined records of a CNKI export, in file order, read as a stream;
    dialect detected from the first :data:`DETECT_LINES` lines unless given.

    Raises :class:`InputError` for undecodable bytes (see :func:`decode_cnki`) or no
    recognisable record; when detecting, at the call for those in the lines it reads.
    """
    lines = _lines(data)
    if dialect is None:
        head = list(itertools.islice(lines, DETECT_LINES))
        dialect = _detect([line.text for line in head])
        if dialect is None:
            raise InputError(NO_RECORDS)
        lines = itertools.chain(head, lines)
    elif dialect not in _MAPPERS:
        raise ValueError(f"unknown CNKI dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return _read(lines, dialect, source)


def read_cnki_estudy(
    data: bytes | str | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Records of a 知网研学 (E-Study) export (``DataType:`` opens each record)."""
    return _read(_lines(data), "estudy", source)


def read_cnki_noteexpress(
    data: bytes | str | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Records of a NoteExpress export (``{Reference Type}:`` opens each record)."""
    return _read(_lines(data), "noteexpress", source)


def read_cnki_endnote(
    data: bytes | str | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Records of an EndNote tagged export (``%0`` opens each record, blank lines between)."""
    return _read(_lines(data), "endnote", source)


def read_cnki_refworks(
    data: bytes | str | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Records of a RefWorks tagged export (``RT`` opens each record, blank lines between)."""
    return _read(_lines(data), "refworks", source)
