"""The training lexicon: mentions the training data annotates, found again in new text.

A small tagger misses many mentions it was shown in training (a chemical name it saw a dozen
times, a Chinese symptom phrase). The lexicon remembers, per entity schema, each annotated
string with how often it was annotated as each label and how often it occurs in the training
passages at all. At inference a string of the lexicon found in a passage where the tagger put
no span becomes a span when the training data annotated it as that label in at least
``min_ratio`` of its occurrences (and at least ``min_count`` times): ``"cisplatin"`` annotated
in 40 of its 41 occurrences is added, ``"patients"`` annotated in 3 of 900 is not.

Matching works on units, so a string never matches inside a word: a run of letters and digits
is one unit, each CJK character and each other symbol is one (``"HIV-1"`` is three units). Of
overlapping matches the longest wins, then the leftmost. A match fills a gap the tagger left, or
replaces tagger spans it strictly contains (the tagger found part of a mention the lexicon knows
whole); a match that cuts across a tagger span is dropped. A tagger span whose very string the
rule accepts with another label takes the lexicon's label.

The lexicon also knows what training never annotates. A tagger span of a string the training
passages hold often and never annotate (``"patients"``, ``"."``) is dropped. A tagger span of a
string training never annotates that contains strings the rule accepts is cut down to them when
its other units rarely lie inside any mention in training (``"perinatal hepatitis B"`` becomes
``"hepatitis B"``: "perinatal" is inside a mention in few of its occurrences).

Pure: no file system. ``infra.lexicon`` reads and writes it beside a model.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from bioner.records import Span

#: v2 adds the strings training never annotated (``unseen``), v3 how often each unit lies
#: inside a mention (``inside``), v4 counts both per label for a schema trained with partial
#: annotation (each passage asked only some of its types: ``unseen_by_label``).
LEXICON_VERSION = "lexicon-v4"
#: How matches become spans (:meth:`Lexicon.apply`), recorded in runs beside the lexicon: v1 only
#: filled the tagger's gaps; v2 also drops a tagger span whose string training never annotated,
#: relabels one whose string it knows as another label and replaces tagger spans a match
#: strictly contains; v3 also trims a tagger span down to the strings it contains that the rule
#: accepts (:meth:`Lexicon.trims`); v4 also finds an accepted string written with a capital
#: first letter (:meth:`Lexicon.accepted`); v5 also drops a tagger span whose string only the
#: lexicon of an excluded schema knows (:meth:`Lexicon.foreign`), and labels a new word by the
#: words of training that end like it (:meth:`Lexicon.by_suffix`); v6 also labels a new code
#: ("CB 3717") by the codes of training written like it (:meth:`Lexicon.by_shape`); v7 vetoes
#: and trims by the passages that asked the span's label (partial annotation), gives only the
#: labels asked, and takes switches for each rule (:data:`RULES`).
APPLY_VERSION = "apply-v7"
#: The rules of :meth:`Lexicon.apply`, each of which can be switched off.
RULES = ("veto", "unit-veto", "foreign", "relabel", "fill", "complete", "trim", "suffix", "shape")
#: ``unit-veto`` (:meth:`Lexicon.common_words`): a tagger span of words training holds often
#: and (almost) never inside a mention is dropped, whatever the span's whole string: each of
#: its units occurs at least UNIT_VETO_COUNT times in the training passages asked its label
#: and lies inside a mention in at most UNIT_VETO_SHARE of them ("rural", "Time Series").
#: A word training never holds is no evidence: new names ("OXCT1") stand.
UNIT_VETO_COUNT = 5
UNIT_VETO_SHARE = 0.02
#: Defaults of :class:`Lexicon`, chosen on the development sets (``bioner evaluate --sets
#: ncbi-dev,bc5cdr-dev,jnlpba-dev``; see ``models/reference/README.md``): minimum ratios 0.2 to
#: 0.5 were within 0.4 F1 of each other, 0.3 among the best; a minimum count above 1 lost 1 to 2.
DEFAULT_MIN_RATIO = 0.3
DEFAULT_MIN_COUNT = 1
#: A tagger span whose string occurs this often in the training passages of its schema, and
#: is never annotated there, is dropped (0: never). Chosen on the development sets: 1 to 3
#: were within 0.4 F1 of each other, each 1 to 4 above no veto.
DEFAULT_VETO_COUNT = 2
#: A tagger span is trimmed (:meth:`Lexicon.trims`) when each unit it would lose lies inside a
#: mention in at most this share of its training occurrences. Chosen on the development sets:
#: each of 0.1 to 0.5 gained on all five (within 1.3 F1 of each other on each); 0.3 gained most
#: on average (+1.4).
DEFAULT_TRIM_RATIO = 0.3
#: Longest entry kept, in units (longer annotations are rare and never recur verbatim).
MAX_UNITS = 24
#: Longest never-annotated string kept, in units, and how often it must occur to be kept.
UNSEEN_UNITS = 6
UNSEEN_KEEP = 2

#: A word the training never holds gets a label by its ending (:meth:`Lexicon.by_suffix`): the
#: longest of these suffix lengths that at least SUFFIX_SUPPORT word types of training share
#: decides, when at least SUFFIX_SHARE of them are whole mentions of one label. Chosen on the
#: development sets (W3's answers, see ``models/reference/README.md``): on BC5CDR support 2
#: gained 0.6, 3 and 5 gained 0.1 to 0.3, shares 0.7 to 1.0 were within 0.05 of each other;
#: NCBI-disease and JNLPBA moved by 0.01 at most (their mentions are seldom lone words).
SUFFIX_LENGTHS = (6, 5, 4)
SUFFIX_SUPPORT = 2
SUFFIX_SHARE = 0.8
#: The words the suffix rule counts and labels: Latin letters, lower case after the first, at
#: least SUFFIX_WORD letters ("quetiapine", "Oedema"; not "NPY", "IL-2" or "mg").
SUFFIX_WORD = 6
_WORD = re.compile(r"[A-Za-z][a-z]+")
#: What may stand on each side of a word the suffix rule labels: a word joined to others by a
#: hyphen or a slash ("5-fluorouracil") is part of a longer name.
_BEFORE = frozenset(" \t\n([")
_AFTER = frozenset(" \t\n,.;:)]")

#: A code gets a label by its shape (:meth:`Lexicon.by_shape`): a capital, up to three more
#: letters, an optional space or hyphen, at least two digits, an optional letter ("CB 3717",
#: "SM-5887", "KF17837", "CD4" no: one digit), standing alone. The shape keeps case and
#: separators, writes a letter run as at most two letters and a digit run as at most three
#: digits ("CB 3717", "BN 52021": ``AA 000``). The most frequent label of training's codes of
#: that shape decides when at least SHAPE_SUPPORT of them share the shape and SHAPE_SHARE of
#: them have it. Chosen on the development sets (W3's answers, see
#: ``models/reference/README.md``): supports 2, 3 and 5 gave the same, +0.2 on BC5CDR
#: (drug codes); nothing moved on the other sets, whose codes are genes and cell lines of
#: every label.
_CODE = r"[A-Z][A-Za-z]{0,3}[- ]?[0-9]{2,}[A-Za-z]?"
_CODE_FULL = re.compile(_CODE)
#: ... and not a quantity: "CP 200 mg/kg" is cyclophosphamide at a dose.
_UNIT_OF_MEASURE = r"\s*(?:[mµunp]?(?:g|l|L|M|mol)|kg|IU|U|%)\b"
_CODE_ALONE = re.compile(rf"(?<![\w/-]){_CODE}(?![\w/-]|{_UNIT_OF_MEASURE})")
_SHAPE_RUN = re.compile(r"(.)\1+")
SHAPE_SUPPORT = 3
SHAPE_SHARE = 0.8

V = TypeVar("V")

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def units(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each unit of ``text`` (module doc), in order."""
    return [m.span() for m in _UNIT.finditer(text)]


def _grams(bounds: Sequence[tuple[int, int]], most: int) -> Iterator[tuple[int, int]]:
    for i, (start, _) in enumerate(bounds):
        for j in range(i, min(len(bounds), i + most)):
            yield start, bounds[j][1]


@dataclass(frozen=True, slots=True)
class Entry:
    """One string of a schema's lexicon: its most frequent label and the counts behind it."""

    text: str
    label: str
    annotated: int  # times annotated with ``label``
    occurrences: int  # times it occurs unit-bounded in the training passages of the schema

    @property
    def ratio(self) -> float:
        """Share of the string's occurrences annotated with ``label``."""
        return self.annotated / max(self.occurrences, self.annotated, 1)


@dataclass(frozen=True)
class Lexicon:
    """The entries of one entity schema and the rule that turns a found string into a span."""

    schema: str
    entries: Mapping[str, Entry]
    min_ratio: float = DEFAULT_MIN_RATIO
    min_count: int = DEFAULT_MIN_COUNT
    #: Strings of at most UNSEEN_UNITS units the training passages hold at least UNSEEN_KEEP
    #: times and never annotate, with how often they occur.
    unseen: Mapping[str, int] = field(default_factory=dict)
    veto_count: int = DEFAULT_VETO_COUNT
    #: Per unit (lower-cased) that lies inside a mention at least once in the training passages
    #: of the schema: (occurrences inside a mention, occurrences).
    inside: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: See :data:`DEFAULT_TRIM_RATIO`; None: never trim.
    trim_ratio: float | None = DEFAULT_TRIM_RATIO
    #: For a schema trained with partial annotation: per label, the never-annotated strings
    #: (``unseen``) and unit counts (``inside``) of the passages that asked that label only.
    #: ``unseen`` and ``inside`` then hold them over every passage (the largest count).
    unseen_by_label: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    inside_by_label: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)
    _active: dict[str, Entry] = field(init=False, repr=False, compare=False)
    _most: int = field(init=False, repr=False, compare=False)
    _suffixes: dict[str, Counter[str]] | None = field(
        init=False, default=None, repr=False, compare=False
    )
    _shapes: dict[str, Counter[str]] | None = field(
        init=False, default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in (0, 1], got {self.min_ratio}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if self.veto_count < 0:
            raise ValueError(f"veto_count must be >= 0, got {self.veto_count}")
        if self.trim_ratio is not None and not 0.0 <= self.trim_ratio <= 1.0:
            raise ValueError(f"trim_ratio must be in [0, 1] or None, got {self.trim_ratio}")
        active = {
            k: e
            for k, e in self.entries.items()
            if e.annotated >= self.min_count and e.ratio >= self.min_ratio
        }
        object.__setattr__(self, "_active", active)
        object.__setattr__(self, "_most", max((len(units(k)) for k in active), default=0))

    @property
    def active(self) -> int:
        """How many entries the rule turns into spans."""
        return len(self._active)

    def with_rule(
        self,
        min_ratio: float,
        min_count: int,
        veto_count: int | None = None,
        trim_ratio: float | Literal["same"] | None = "same",
    ) -> Lexicon:
        """The same counts under another rule (the same veto and trim unless given)."""
        veto = self.veto_count if veto_count is None else veto_count
        trim = self.trim_ratio if trim_ratio == "same" else trim_ratio
        return Lexicon(
            self.schema,
            self.entries,
            min_ratio,
            min_count,
            self.unseen,
            veto,
            self.inside,
            trim,
            self.unseen_by_label,
            self.inside_by_label,
        )

    def inside_share(self, unit: str, label: str | None = None) -> float:
        """Share of ``unit``'s training occurrences that lie inside a mention (0 when it never
        does, or never occurs); with ``label``, in the passages that asked it (partial
        annotation)."""
        counts = self.inside_by_label.get(label, {}) if self.inside_by_label and label else None
        within, occurrences = (self.inside if counts is None else counts).get(unit.lower(), (0, 0))
        return within / occurrences if occurrences else 0.0

    def trims(self, text: str, span: Span) -> list[Span]:
        """What a tagger ``span`` of ``text`` is cut down to; ``[]``: it stands.

        The span's string must be one training never annotates, and contain strings the rule
        accepts (:meth:`find` within it); each of its other units must lie inside a mention in
        at most ``trim_ratio`` of its training occurrences (a unit training never holds counts
        as outside). Then those strings, with the lexicon's labels, replace the span:
        ``"perinatal hepatitis B"`` becomes ``"hepatitis B"``, ``"liposomal daunorubicin"``
        becomes ``"daunorubicin"``.
        """
        string = text[span.start : span.end]
        if self.trim_ratio is None or string in self.entries:
            return []
        parts = self.find(string)
        if not parts:
            return []
        for start, end in units(string):
            if any(p.start <= start and end <= p.end for p in parts):
                continue
            if self.inside_share(string[start:end], span.label) > self.trim_ratio:
                return []
        return [p.shifted(span.start) for p in parts]

    def common_words(self, string: str, label: str | None = None) -> bool:
        """Whether every unit of ``string`` is a word training holds at least
        :data:`UNIT_VETO_COUNT` times (in the passages that asked ``label``, for a partially
        annotated schema) and finds inside a mention in at most :data:`UNIT_VETO_SHARE` of
        them: no mention of any type is made of such words alone."""
        partial = bool(self.inside_by_label)
        inside = self.inside_by_label.get(label or "", {}) if partial else self.inside
        held = self.unseen_by_label.get(label or "", {}) if partial else self.unseen
        found = units(string)
        if not found:
            return False
        for start, end in found:
            unit = string[start:end]
            within, occurrences = inside.get(unit.lower(), (0, 0))
            if not occurrences:  # never inside a mention: its count among the unseen strings
                occurrences = held.get(unit, 0) + (
                    held.get(unit.lower(), 0) if unit.lower() != unit else 0
                )
            if occurrences < UNIT_VETO_COUNT or within > UNIT_VETO_SHARE * occurrences:
                return False
        return True

    def vetoes(self, string: str, label: str | None = None) -> bool:
        """Whether a tagger span of ``string`` is dropped: training holds the string at least
        ``veto_count`` times and never annotates it (``"patients"``, ``"study"``, ``"."``).
        For a schema trained with partial annotation, the passages that asked ``label``
        count: a gene name in passages that never asked for genes vetoes nothing."""
        if self.veto_count <= 0:
            return False
        held = self.unseen_by_label.get(label or "", {}) if self.unseen_by_label else self.unseen
        return held.get(string, 0) >= self.veto_count

    def foreign(self, string: str, excluded: Sequence[Lexicon]) -> bool:
        """Whether a tagger span of ``string`` is dropped as another schema's mention.

        ``excluded`` are the lexicons of schemas whose mentions are never this schema's
        (BC5CDR annotates no proteins or genes: JNLPBA's). The span goes when this schema's
        training never annotates the string and an excluded lexicon's rule accepts it:
        "PARP" or "STAT3" tagged a Chemical.
        """
        if string in self.entries or self.accepted(string) is not None:
            return False
        return any(x.accepted(string) is not None for x in excluded)

    def suffixes(self) -> dict[str, Counter[str]]:
        """Per suffix (:data:`SUFFIX_LENGTHS`, lower-cased), how many word types of training
        end with it, by label: an entry's label when the rule's ratio holds for it, else
        ``""`` (an entry rarely annotated, or a word training holds and never annotates).
        Counted once, on first use."""
        if self._suffixes is None:
            labels: dict[str, str] = {}
            for text, entry in self.entries.items():
                if _is_word(text) and labels.get(text.lower(), "") == "":
                    labels[text.lower()] = entry.label if entry.ratio >= self.min_ratio else ""
            for text in self.unseen:
                if _is_word(text):
                    labels.setdefault(text.lower(), "")
            table: dict[str, Counter[str]] = defaultdict(Counter)
            for word, label in labels.items():
                for k in SUFFIX_LENGTHS:
                    table[word[-k:]][label] += 1
            object.__setattr__(self, "_suffixes", dict(table))
        return self._suffixes  # type: ignore[return-value]

    def by_suffix(self, word: str) -> str | None:
        """The label a word training never holds gets by its ending, or None.

        The longest suffix of :data:`SUFFIX_LENGTHS` that at least :data:`SUFFIX_SUPPORT`
        word types of training share decides: its most frequent label, when that is a label
        and holds for at least :data:`SUFFIX_SHARE` of them ("quetiapine" by "-apine",
        "mangiferin" by "-erin": Chemical; "akinesia" by "-nesia": Disease).
        """
        if not _is_word(word) or word in self.entries or word in self.unseen:
            return None
        low = word.lower()
        if low in self.entries or low in self.unseen:
            return None
        table = self.suffixes()
        for k in SUFFIX_LENGTHS:
            counts = table.get(low[-k:])
            if counts is None or counts.total() < SUFFIX_SUPPORT:
                continue
            return _deciding_label(counts, SUFFIX_SHARE)
        return None

    def shapes(self) -> dict[str, Counter[str]]:
        """Per code shape (:func:`code_shape`), how many codes of training have it, by label:
        an entry's label when the rule's ratio holds for it, else ``""`` (a code rarely
        annotated, or one training holds and never annotates). Counted once, on first use."""
        if self._shapes is None:
            table: dict[str, Counter[str]] = defaultdict(Counter)
            for text, entry in self.entries.items():
                if _CODE_FULL.fullmatch(text):
                    label = entry.label if entry.ratio >= self.min_ratio else ""
                    table[code_shape(text)][label] += 1
            for text in self.unseen:
                if _CODE_FULL.fullmatch(text) and text not in self.entries:
                    table[code_shape(text)][""] += 1
            object.__setattr__(self, "_shapes", dict(table))
        return self._shapes  # type: ignore[return-value]

    def by_shape(self, code: str) -> str | None:
        """The label a code training never holds gets by its shape, or None: the most frequent
        label of training's codes of the same shape, when at least :data:`SHAPE_SUPPORT` of
        them have that shape and :data:`SHAPE_SHARE` of them that label ("CB 3717" is a
        Chemical in BC5CDR, as "FK 506" and "CP 93129" are)."""
        if not _CODE_FULL.fullmatch(code) or code in self.entries or code in self.unseen:
            return None
        counts = self.shapes().get(code_shape(code))
        if counts is None or counts.total() < SHAPE_SUPPORT:
            return None
        return _deciding_label(counts, SHAPE_SHARE)

    def accepted(self, string: str) -> Entry | None:
        """The entry the rule accepts ``string`` as, or None.

        The string itself, or else, when it starts with a capital that training never writes
        it with (neither an entry nor an unannotated string), the same string with a small
        first letter: "Mannitol" opening a sentence or a title is "mannitol".
        """
        entry = self._active.get(string)
        if entry is not None or not string[:1].isupper():
            return entry
        if string in self.entries or string in self.unseen:
            return None
        return self._active.get(string[0].lower() + string[1:])

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans of ``text`` whose string the rule accepts (:meth:`accepted`;
        longest first)."""
        if not self._active:
            return []
        found = []
        for start, end in _grams(units(text), self._most):
            entry = self.accepted(text[start:end])
            if entry is not None:
                found.append((end - start, start, end, entry.label))
        taken: list[Span] = []
        for _, start, end, label in sorted(found, key=lambda f: (-f[0], f[1])):
            if not any(start < s.end and s.start < end for s in taken):
                taken.append(Span(start, end, label))
        return sorted(taken)

    def apply(
        self,
        text: str,
        spans: Iterable[Span],
        excluded: Sequence[Lexicon] = (),
        labels: Iterable[str] | None = None,
        off: Iterable[str] = (),
    ) -> Applied:
        """What becomes of the tagger's ``spans`` in ``text``, and the spans the lexicon gives.

        Each rule has a name in :data:`RULES`; those in ``off`` are skipped. Only ``labels``
        (the labels asked; None: every label) are given.

        - ``veto``: a span whose string training never annotates is dropped (:meth:`vetoes`);
          ``foreign``: so is one whose string only the lexicon of an ``excluded`` schema knows
          (:meth:`foreign`).
        - ``relabel``: a span whose very string the rule accepts with another label takes the
          lexicon's label (``Wilms tumor`` tagged a Chemical becomes a Disease).
        - ``fill``: each match of :meth:`find` that overlaps none of the spans is added (a gap
          filled).
        - ``complete``: one that strictly contains every span it overlaps replaces them: the
          tagger found part of a mention the lexicon knows whole (``[hereditary] [breast
          cancer]`` becomes ``hereditary breast cancer``). One that overlaps a span partly,
          or has a span's very bounds, is dropped: the tagger's boundary stands.
        - ``trim``: a span left unchanged is then trimmed to the strings it contains that the
          rule accepts, when :meth:`trims` says so.
        - ``suffix``: a word no span covers, standing alone (no hyphen or slash joins it to
          another), that training never holds, gets the label its ending gives
          (:meth:`by_suffix`); ``shape``: so does a code ("CB 3717"), by its shape
          (:meth:`by_shape`).
        """
        skip = frozenset(off)
        unknown = skip - set(RULES)
        if unknown:
            raise ValueError(f"unknown lexicon rule {sorted(unknown)[0]!r}; known: {RULES}")
        asked = None if labels is None else frozenset(labels)

        def wanted(label: str | None) -> bool:
            return label is not None and (asked is None or label in asked)

        kept: list[Span] = []
        added: list[Span] = []
        dropped: list[Span] = []
        for span in spans:
            string = text[span.start : span.end]
            entry = self._active.get(string)
            if (
                ("veto" not in skip and self.vetoes(string, span.label))
                or ("foreign" not in skip and self.foreign(string, excluded))
                or (
                    "unit-veto" not in skip
                    and entry is None
                    and self.common_words(string, span.label)
                )
            ):
                dropped.append(span)
            elif (
                "relabel" not in skip
                and entry is not None
                and entry.label != span.label
                and wanted(entry.label)
            ):
                added.append(Span(span.start, span.end, entry.label))
            else:
                kept.append(span)
        for match in self.find(text) if {"fill", "complete"} - skip else ():
            if not wanted(match.label):
                continue
            inside = [s for s in kept + added if match.start < s.end and s.start < match.end]
            if inside and (
                "complete" in skip or not all(_strictly_within(s, match) for s in inside)
            ):
                continue
            if not inside and "fill" in skip:
                continue
            kept = [s for s in kept if s not in inside]
            added = [s for s in added if s not in inside] + [match]
        standing = []
        for span in kept:
            parts = [] if "trim" in skip else self.trims(text, span)
            if parts and all(wanted(p.label) for p in parts):
                added += parts
            else:
                standing.append(span)
        covered = standing + added
        for start, end in units(text) if "suffix" not in skip else ():
            if end - start < SUFFIX_WORD or not _alone(text, start, end):
                continue
            if any(start < s.end and s.start < end for s in covered):
                continue
            label = self.by_suffix(text[start:end])
            if wanted(label):
                added.append(Span(start, end, label))  # type: ignore[arg-type]
        covered = standing + added
        for m in _CODE_ALONE.finditer(text) if "shape" not in skip else ():
            start, end = m.span()
            if any(start < s.end and s.start < end for s in covered):
                continue
            label = self.by_shape(m.group())
            if wanted(label):
                added.append(Span(start, end, label))  # type: ignore[arg-type]
        return Applied(standing, sorted(added), dropped)


class Applied(NamedTuple):
    """:meth:`Lexicon.apply`'s answer: the tagger's spans that stand unchanged, the spans the
    lexicon gives (relabelled, completed or new), and the tagger's spans it vetoed."""

    kept: list[Span]
    added: list[Span]
    dropped: list[Span]


def _deciding_label(counts: Counter[str], share: float) -> str | None:
    """The most frequent label of ``counts`` (the first by name on a tie), when it is a label
    (not ``""``) and holds for at least ``share`` of them; else None."""
    label, n = min(counts.items(), key=lambda c: (-c[1], c[0]))
    return label if label and n >= share * counts.total() else None


def code_shape(code: str) -> str:
    """How a code is written (:data:`_CODE`): ``A`` per capital, ``a`` per small letter, ``0``
    per digit, runs of one letter class cut to two and runs of digits to three ("BN 52021" and
    "CB 3717": ``AA 000``; "NIK-247": ``AA-000``)."""
    classes = "".join(
        "A" if c.isupper() else "a" if c.islower() else "0" if c.isdigit() else c for c in code
    )
    return _SHAPE_RUN.sub(
        lambda m: m.group(1) * min(len(m.group()), 3 if m.group(1) == "0" else 2), classes
    )


def _is_word(text: str) -> bool:
    """Whether the suffix rule counts ``text`` (:data:`SUFFIX_WORD`)."""
    return len(text) >= SUFFIX_WORD and _WORD.fullmatch(text) is not None


def _alone(text: str, start: int, end: int) -> bool:
    """Whether the unit ``text[start:end]`` stands alone: nothing but a space, a bracket or
    (after it) a stop joins it to what is beside it."""
    return (start == 0 or text[start - 1] in _BEFORE) and (end == len(text) or text[end] in _AFTER)


def _strictly_within(span: Span, match: Span) -> bool:
    """Whether ``span`` lies inside ``match`` without having its very bounds."""
    inside = match.start <= span.start and span.end <= match.end
    return inside and (span.start, span.end) != (match.start, match.end)


@dataclass(frozen=True, slots=True)
class Annotated:
    """One training passage of a schema with its gold spans: what a lexicon is built from.

    ``asked``: the labels the passage was annotated for, when its dataset annotates only some
    of the schema's (partial annotation); None: all of them.
    """

    schema: str
    text: str
    spans: tuple[tuple[int, int, str], ...]
    asked: tuple[str, ...] | None = None


def build_lexicons(
    passages: Iterable[Annotated],
    min_ratio: float = DEFAULT_MIN_RATIO,
    min_count: int = DEFAULT_MIN_COUNT,
    veto_count: int = DEFAULT_VETO_COUNT,
    trim_ratio: float | None = DEFAULT_TRIM_RATIO,
) -> dict[str, Lexicon]:
    """One lexicon per schema from its training passages (each distinct passage counted once).

    Every annotated string of at most :data:`MAX_UNITS` units whose ends fall on unit bounds is
    an entry; the others could never be found again and are left out. Every string of at most
    :data:`UNSEEN_UNITS` units that the passages hold at least :data:`UNSEEN_KEEP` times and
    never annotate (with any label, at any bounds) goes into ``unseen``. Every unit that lies
    inside an annotated span at least once goes into ``inside`` with its counts.

    Partial annotation (passages with ``asked`` labels): an entry's occurrences are counted in
    the passages that asked its label, and the unseen strings and unit counts per label, in
    the passages that asked it (``unseen_by_label``, ``inside_by_label``): a string is not
    "never annotated" as a gene in passages that were never asked for genes.
    """
    distinct = list(dict.fromkeys(passages))
    labels: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    bounds_of = [units(p.text) for p in distinct]
    for p, bounds in zip(distinct, bounds_of, strict=True):
        starts, ends = {b[0] for b in bounds}, {b[1] for b in bounds}
        for start, end, label in p.spans:
            key = p.text[start:end]
            if start in starts and end in ends and len(units(key)) <= MAX_UNITS:
                labels[p.schema][key][label] += 1
    annotated = defaultdict(set)
    for p in distinct:
        annotated[p.schema].update(p.text[start:end] for start, end, _ in p.spans)
    # Counted per group of passages asked the same labels, then summed per label.
    Group = tuple[str, tuple[str, ...] | None]
    occurrences: dict[Group, Counter[str]] = defaultdict(Counter)
    grams: dict[Group, Counter[str]] = defaultdict(Counter)
    within: dict[Group, Counter[str]] = defaultdict(Counter)
    total: dict[Group, Counter[str]] = defaultdict(Counter)
    for p, bounds in zip(distinct, bounds_of, strict=True):
        group = (p.schema, p.asked)
        for start, end in bounds:
            unit = p.text[start:end].lower()
            total[group][unit] += 1
            if any(a <= start and end <= b for a, b, _ in p.spans):
                within[group][unit] += 1
        known = labels.get(p.schema)
        if known:
            for start, end in _grams(bounds, MAX_UNITS):
                if p.text[start:end] in known:
                    occurrences[group][p.text[start:end]] += 1
        grams[group].update(p.text[start:end] for start, end in _grams(bounds, UNSEEN_UNITS))
    out = {}
    for schema, strings in sorted(labels.items()):
        groups = [g for g in total if g[0] == schema]
        partial = any(asked is not None for _, asked in groups)

        def over(counters: dict[Group, Counter[str]], label: str | None) -> Counter[str]:
            """The counts of the groups that asked ``label`` (None: every group)."""
            summed: Counter[str] = Counter()
            for g in groups:  # noqa: B023 (called within this iteration only)
                if label is None or g[1] is None or label in g[1]:
                    summed.update(counters[g])
            return summed

        asked_labels = sorted({label for c in strings.values() for label in c})
        if partial:
            asked_labels = sorted(
                {*asked_labels, *(label for _, asked in groups for label in asked or ())}
            )
        occ = {label: over(occurrences, label) for label in asked_labels} if partial else {}
        every = over(occurrences, None)
        entries = {}
        for key, counts in strings.items():
            label, n = min(counts.items(), key=lambda c: (-c[1], c[0]))
            entries[key] = Entry(key, label, n, (occ[label] if partial else every)[key])

        def unseen_of(held: Counter[str]) -> dict[str, int]:
            return {
                key: n
                for key, n in held.items()
                if n >= UNSEEN_KEEP and key not in annotated[schema]  # noqa: B023
            }

        def inside_of(label: str | None) -> dict[str, tuple[int, int]]:
            every_unit = over(total, label)
            return {u: (n, every_unit[u]) for u, n in over(within, label).items()}

        unseen_by_label = {lb: unseen_of(over(grams, lb)) for lb in asked_labels} if partial else {}
        inside_by_label = {lb: inside_of(lb) for lb in asked_labels} if partial else {}
        out[schema] = Lexicon(
            schema,
            entries,
            min_ratio,
            min_count,
            largest(unseen_by_label.values()) if partial else unseen_of(over(grams, None)),
            veto_count,
            largest(inside_by_label.values()) if partial else inside_of(None),
            trim_ratio,
            unseen_by_label,
            inside_by_label,
        )
    return out


def largest(maps: Iterable[Mapping[str, V]]) -> dict[str, V]:
    """The union of ``maps``, each key with its largest value (a count, or a pair of counts):
    a partially annotated schema's label-free counts, from its per-label ones."""
    out: dict[str, V] = {}
    for m in maps:
        for k, v in m.items():
            if k not in out or v > out[k]:  # type: ignore[operator]
                out[k] = v
    return out


def lexicon_digest(lexicons: Mapping[str, Lexicon]) -> str:
    """A short digest of the entries, unseen strings and unit counts (not the rule), to name a
    lexicon in provenance."""
    h = hashlib.blake2b(digest_size=6)
    for schema in sorted(lexicons):
        for key in sorted(lexicons[schema].entries):
            e = lexicons[schema].entries[key]
            h.update(f"{schema}\t{key}\t{e.label}\t{e.annotated}\t{e.occurrences}\n".encode())
        for key in sorted(lexicons[schema].unseen):
            h.update(f"{schema}\t{key}\t\t0\t{lexicons[schema].unseen[key]}\n".encode())
        for key in sorted(lexicons[schema].inside):
            within, n = lexicons[schema].inside[key]
            h.update(f"{schema}\tunit\t{key}\t{within}\t{n}\n".encode())
        for label, held in sorted(lexicons[schema].unseen_by_label.items()):
            for key in sorted(held):
                h.update(f"{schema}\t{key}\t{label}\t0\t{held[key]}\n".encode())
        for label, units_ in sorted(lexicons[schema].inside_by_label.items()):
            for key in sorted(units_):
                within, n = units_[key]
                h.update(f"{schema}\tunit:{label}\t{key}\t{within}\t{n}\n".encode())
    return h.hexdigest()
