"""The one record set every stage speaks: documents, passages, spans and entities.

Offsets are Python string indices (Unicode code points) into the text they belong to;
``end`` is exclusive everywhere, whatever the source format used.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A labelled character range ``text[start:end]``."""

    start: int
    end: int
    label: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end}) for {self.label!r}")
        if not self.label:
            raise ValueError("span label must not be empty")

    def text(self, of: str) -> str:
        """The covered substring of ``of``."""
        return of[self.start : self.end]

    def shifted(self, by: int) -> Span:
        """The same span with offsets moved by ``by`` (passage <-> document offsets)."""
        return Span(self.start + by, self.end + by, self.label)


@dataclass(frozen=True, slots=True)
class Relation:
    """A relation line kept from a source format (PubTator ``CID``, brat ``R``/``E``...)."""

    type: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """A labelled part of a document's text, e.g. a structured abstract's ``METHODS``."""

    label: str
    start: int
    end: int
    category: str = ""  # PubMed's NlmCategory (BACKGROUND, METHODS ...), when given


@dataclass(frozen=True, slots=True)
class OtherAbstract:
    """An abstract in another language (PubMed ``OtherAbstract``), kept beside the text."""

    language: str
    text: str
    type: str = ""  # e.g. "Publisher", "plain-language-summary"


@dataclass(frozen=True, slots=True)
class Document:
    """One unit of input text: an abstract, a sentence of a benchmark, a CNKI record.

    ``text`` is what is tagged: for literature records the title, a space, then the abstract;
    ``sections`` locate the title and the abstract's parts in it. The bibliographic fields are
    empty where a source does not have them.
    """

    id: str
    text: str
    version: int = 1
    title: str = ""
    language: str = "en"
    source: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    journal: str = ""
    pub_date: str = ""  # ISO 8601, as precise as the source: "2024", "2024-05", "2024-05-17"
    doi: str = ""
    authors: tuple[str, ...] = ()
    mesh_headings: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    publication_types: tuple[str, ...] = ()
    vernacular_title: str = ""
    other_abstracts: tuple[OtherAbstract, ...] = ()
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("document id must not be empty")
        if self.version < 1:
            raise ValueError(f"document {self.id}: version must be >= 1, got {self.version}")
        for s in self.sections:
            if not 0 <= s.start <= s.end <= len(self.text):
                raise ValueError(
                    f"document {self.id}: section {s.label!r} [{s.start}, {s.end}) "
                    f"outside text of length {len(self.text)}"
                )


@dataclass(frozen=True, slots=True)
class AnnotatedDocument:
    """A document with its gold spans (sorted, unique) and any relations of the source."""

    document: Document
    spans: tuple[Span, ...] = ()
    relations: tuple[Relation, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.document.text)
        for s in self.spans:
            if s.end > n:
                raise ValueError(
                    f"document {self.document.id}: span {s} outside text of length {n}"
                )

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def text(self) -> str:
        return self.document.text


@dataclass(frozen=True, slots=True)
class Passage:
    """A slice of a document that is tagged as one unit; offsets into the document text."""

    doc_id: str
    index: int
    start: int
    end: int
    text: str
    doc_version: int = 1
    language: str = "en"

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start or self.end - self.start != len(self.text):
            raise ValueError(
                f"passage {self.doc_id}#{self.index}: offsets [{self.start}, {self.end}) "
                f"do not fit its text of length {len(self.text)}"
            )

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.index}"


@dataclass(frozen=True, slots=True)
class Entity:
    """A predicted mention as published: document offsets plus provenance."""

    doc_id: str
    doc_version: int
    passage_index: int
    start: int
    end: int
    text: str
    label: str
    model_id: str
    prompt_version: str
    run_id: str
    score: float | None = None
    selected: bool | None = None
    issues: tuple[str, ...] = field(default=())
    # "tagger", "lexicon" (found by the training lexicon, bioner.lexicon) or "abbreviation" (a
    # later use of an abbreviation defined on a found mention, bioner.abbreviations)
    source: str = "tagger"

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start or self.end - self.start != len(self.text):
            raise ValueError(
                f"entity {self.doc_id}[{self.start}:{self.end}] does not fit its text {self.text!r}"
            )


def sorted_unique(spans: object) -> tuple[Span, ...]:
    """Spans as a canonical tuple: unique, ordered by (start, end, label)."""
    return tuple(sorted(set(spans)))  # type: ignore[arg-type]
