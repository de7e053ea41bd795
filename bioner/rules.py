"""The decode rules: one post-processing stage between the tagger's spans and the entity table.

The stage is named :data:`STAGE` and versioned by :data:`RULES_VERSION` (the versions of the
lexicon's rules and of the abbreviation rules it runs). Each rule has a name and can be
switched off (:class:`DecodeRules`); which are on by default is configured per schema
(:data:`DEFAULT_OFF`), chosen on the development sets of the evaluation that asks that schema.

Per passage, in order:

- ``shape``: a span that is not entity-shaped (:func:`bioner.constraint.entity_shaped`: no
  letter, or a lone Latin character) is dropped. Copy-constrained decoding never writes one;
  this catches unconstrained and grammar-constrained (vLLM) answers.
- the training lexicon's rules (:data:`bioner.lexicon.RULES`: ``veto``, ``unit-veto``, ``foreign``,
  ``relabel``, ``fill``, ``complete``, ``trim``, ``suffix``, ``shape-code``), with the lexicon
  of the schema asked (its base: ``general`` for ``general[Gene]``), giving only the labels
  asked.

Per document, in order (:mod:`bioner.abbreviations`):

- ``abbreviation-redefined``: the spans on a short form the document defines on no mention go;
- ``abbreviation-labels``: a span on a short form defined with another label takes that label;
- ``abbreviation-uses``: later uses of a short form defined on a mention become mentions.

Pure: spans in, spans out, with counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from bioner import abbreviations
from bioner.abbreviations import ABBREVIATIONS_VERSION
from bioner.constraint import entity_shaped
from bioner.labels import EntitySchema
from bioner.lexicon import APPLY_VERSION, Lexicon
from bioner.lexicon import RULES as _LEXICON_RULES
from bioner.records import Span

STAGE = "decode-rules"
SHAPE = "shape"
#: The lexicon's rules as the stage names them (the lexicon's own ``shape``, a code labelled by
#: how it is written, is ``shape-code`` here).
LEXICON_RULES = tuple("shape-code" if r == "shape" else r for r in _LEXICON_RULES)
ABBREVIATION_RULES = ("abbreviation-redefined", "abbreviation-labels", "abbreviation-uses")
RULES = (SHAPE, *LEXICON_RULES, *ABBREVIATION_RULES)
#: Names for several rules at once in :meth:`DecodeRules.parse`.
GROUPS = {"lexicon": LEXICON_RULES, "abbreviations": ABBREVIATION_RULES}
RULES_VERSION = f"{STAGE}-v1+{APPLY_VERSION}+{ABBREVIATIONS_VERSION}"

#: Where the spans of an entity came from.
TAGGER, LEXICON, ABBREVIATION = "tagger", "lexicon", "abbreviation"

#: Rules off by default, per schema (its base name); a schema not listed runs every rule. The
#: unified schemas' choice is measured in ``models/reference/README.md`` (the development sets
#: of ``bioner evaluate --schema general``).
DEFAULT_OFF: dict[str, frozenset[str]] = {
    # Measured to change no development F1 of the unified evaluation (U1: every set equal
    # with and without): off, so the stage does only what pays. ``shape`` stays on though it
    # gains nothing on copy-constrained answers: it is the safety net of the other engines.
    "general": frozenset({"foreign", "shape-code"}),
    "general-zh": frozenset({"foreign", "shape-code", "suffix", *ABBREVIATION_RULES}),
}


@dataclass(frozen=True)
class DecodeRules:
    """Which rules of the stage run: all but those in ``off``."""

    off: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.off) - set(RULES))
        if unknown:
            raise ValueError(f"unknown decode rule {unknown[0]!r}; known: {', '.join(RULES)}")
        object.__setattr__(self, "off", frozenset(self.off))

    @classmethod
    def parse(cls, spec: str = "", schema: str | None = None) -> DecodeRules:
        """The rules for ``schema`` (its defaults, :data:`DEFAULT_OFF`) changed by ``spec``:
        comma-separated ``-NAME`` (off) and ``+NAME`` (on), NAME a rule of :data:`RULES` or a
        group, ``lexicon`` or ``abbreviations`` (``"-abbreviations,+suffix"``); ``""``: the
        defaults. A ValueError names an unknown rule."""
        base = (schema or "").partition("[")[0]
        off = set(DEFAULT_OFF.get(base, frozenset()))
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            sign, name = item[0], item[1:].strip()
            if sign not in "+-" or not name:
                raise ValueError(f"decode rules: write -NAME or +NAME, got {item!r}")
            names = GROUPS.get(name, (name,))
            unknown = [n for n in names if n not in RULES]
            if unknown:
                known = ", ".join((*RULES, *GROUPS))
                raise ValueError(f"unknown decode rule {unknown[0]!r}; known: {known}")
            off = off | set(names) if sign == "-" else off - set(names)
        return cls(frozenset(off))

    def on(self, rule: str) -> bool:
        return rule not in self.off

    @property
    def lexicon(self) -> bool:
        """Whether any of the lexicon's rules runs."""
        return any(self.on(r) for r in LEXICON_RULES)

    @property
    def abbreviations(self) -> bool:
        """Whether any of the abbreviation rules runs."""
        return any(self.on(r) for r in ABBREVIATION_RULES)

    def setting(self) -> str:
        """What the stage's output depends on besides the lexicon: the version and the rules
        off, as one string (``decode-rules-v1+apply-v7+abbreviations-v4 off=suffix``)."""
        off = ",".join(sorted(self.off))
        return f"{RULES_VERSION} off={off}" if off else RULES_VERSION


class PassageResult(NamedTuple):
    """A passage's spans after the stage: the tagger's that stand, those the lexicon gave
    (relabelled, completed, new), and the tagger's it dropped."""

    kept: list[Span]
    added: list[Span]
    dropped: list[Span]


def apply_to_passage(
    text: str,
    spans: Sequence[Span],
    schema: EntitySchema,
    lexicons: Mapping[str, Lexicon],
    rules: DecodeRules,
) -> PassageResult:
    """The passage rules on the tagger's ``spans`` of ``text`` (passage offsets), asked in
    ``schema`` (module doc)."""
    dropped = [s for s in spans if rules.on(SHAPE) and not entity_shaped(text[s.start : s.end])]
    spans = [s for s in spans if s not in set(dropped)]
    lexicon = lexicons.get(schema.base) if rules.lexicon else None
    if lexicon is None:
        return PassageResult(list(spans), [], dropped)
    excluded = [lexicons[name] for name in schema.excludes if name in lexicons]
    off = [("shape" if r == "shape-code" else r) for r in LEXICON_RULES if not rules.on(r)]
    applied = lexicon.apply(text, spans, excluded, schema.labels, off)
    added = [
        s for s in applied.added if not rules.on(SHAPE) or entity_shaped(text[s.start : s.end])
    ]
    return PassageResult(applied.kept, added, dropped + applied.dropped)


@dataclass(frozen=True, slots=True)
class Sourced:
    """A span of a document (document offsets) and what gave it (:data:`TAGGER`, ...)."""

    span: Span
    source: str


class DocumentResult(NamedTuple):
    """A document's spans after the document rules, and how many spans went as uses of a short
    form the document defines on no mention."""

    spans: list[Sourced]
    redefined: int


def apply_to_document(
    text: str,
    found: Sequence[Sourced],
    rules: DecodeRules,
    passages: Sequence[tuple[int, int]] = (),
) -> DocumentResult:
    """The abbreviation rules on a document's spans ``found`` (module doc). A new use is added
    only inside one of ``passages`` (document offsets; none given: anywhere), as the stage
    never gives a span across two passages."""
    found = list(found)
    given = len(found)
    spans = [f.span for f in found]
    redefined = abbreviations.redefined(text, spans) if rules.on(ABBREVIATION_RULES[0]) else set()
    if redefined:
        found = [f for f in found if text[f.span.start : f.span.end] not in redefined]
        spans = [f.span for f in found]
    if rules.on(ABBREVIATION_RULES[1]):
        relabelled = abbreviations.relabelled(text, spans)
        if relabelled:
            found = [
                Sourced(Span(f.span.start, f.span.end, label), ABBREVIATION)
                if (label := relabelled.get(f.span)) is not None
                else f
                for f in found
            ]
            spans = [f.span for f in found]
    out = list(found)
    if rules.on(ABBREVIATION_RULES[2]):
        for span in abbreviations.propagate(text, spans):
            if text[span.start : span.end] in redefined:
                # Also defined on no mention: "nitric oxide (iNOS)", then "... synthase (iNOS)".
                continue
            if passages and not any(a <= span.start and span.end <= b for a, b in passages):
                continue
            out.append(Sourced(span, ABBREVIATION))
    return DocumentResult(out, given - len(found))
