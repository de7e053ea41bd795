"""Abbreviations defined in a document carry the label of their long form.

Biomedical abstracts define a short form once, right after its long form ("adenomatous
polyposis coli (APC)"), and then use it alone. A small tagger finds the long form far more
often than it finds every later "APC". When the tagger (or the lexicon) put a span on a long
form followed by a parenthesised short form that abbreviates it, every unit-bounded occurrence
of that short form in the document that no span covers gets the long form's label, and a span
on it with another label takes that label ("overactive bladder (OAB)" makes an "OAB" tagged a
Chemical a Disease).

Whether a short form abbreviates a long form is the test of Schwartz and Hearst (2003, "A
simple algorithm for identifying abbreviation definitions in biomedical text"): the short form
has 2 to 10 characters, starts with a letter or digit and has a letter; each of its letters and
digits is found in the long form, right to left and in order, and its first one starts a word
of the long form; it is not itself a word of the long form. Here the long form ends where a
span already found ends: the span itself, or the shortest run of words before it that passes,
within Schwartz and Hearst's window of words (:func:`long_form`). A short form defined on a
long form that no span ends names something that is no mention in this document
(:func:`redefined`): a span on it goes, whoever found it. Short forms are Latin-script: a
parenthesis in Chinese text glosses, it does not abbreviate.

Pure: works on one document's text and spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from bioner.lexicon import units
from bioner.records import Span

#: v2: the long form may begin before the mention that ends it; :func:`redefined`. v3: a span
#: on a defined short form takes its long form's label (:func:`relabelled`). v4: a short form
#: has no CJK character and is no word of its long form; the parenthesis may go on after it
#: (``(PB: 15 mg``); a definition inside a mention redefines nothing; the tagger's spans on a
#: redefined short form are dropped too, and it is not spread.
ABBREVIATIONS_VERSION = "abbreviations-v4"

#: ``LF (SF)``: the parenthesis right after the long form, opening with one token, alone or
#: followed by a comma, semicolon or colon ("phenobarbital (PB: 15 mg per rat)").
_DEFINITION = re.compile(r"\s?\(\s?([^\s()\[\];,:]{2,10})\s?(?:\)|[,;:]\s)")
#: What separates the words of a long form, for :func:`abbreviates`.
_LONG_WORDS = re.compile(r"[\s/-]+")
#: A word, as Schwartz and Hearst count them for the long form's window.
_WORD = re.compile(r"\S+")
#: What a long form never reaches across.
_SENTENCE_BREAK = re.compile(r"[.;:!?()\[\]](?:\s|$)|[()\[\]]")
#: Chinese characters: a parenthesis in Chinese text glosses, it does not abbreviate.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def abbreviates(short: str, long: str) -> bool:
    """Whether ``short`` abbreviates ``long`` (the Schwartz-Hearst test, module doc)."""
    if not 2 <= len(short) <= 10 or not short[0].isalnum() or len(short) >= len(long):
        return False
    if not any(c.isalpha() for c in short) or _CJK.search(short):
        return False
    if short.lower() in _LONG_WORDS.split(long.lower()):
        return False  # "enalapril group (enalapril: ...)" names, it does not abbreviate
    s, lf = short.lower(), long.lower()
    i, j = len(s) - 1, len(lf) - 1
    while i >= 0:
        if not s[i].isalnum():
            i -= 1
            continue
        # The first character must start a word of the long form; the others anywhere.
        while j >= 0 and (lf[j] != s[i] or (i == 0 and j > 0 and lf[j - 1].isalnum())):
            j -= 1
        if j < 0:
            return False
        i, j = i - 1, j - 1
    return True


def long_form(text: str, start: int, end: int, short: str) -> tuple[int, int] | None:
    """Bounds of the long form that ``short`` abbreviates, ending at ``end``.

    ``text[start:end]`` (a mention) itself when the test accepts it; otherwise the shortest run
    of words ending with it, at most Schwartz and Hearst's ``min(|SF| + 5, 2 |SF|)`` words long
    and within its sentence, that the test accepts ("contrast media-induced [nephropathy]
    (CIN)", where only "nephropathy" is the mention). None when there is none.
    """
    if abbreviates(short, text[start:end]):
        return start, end
    most = min(len(short) + 5, 2 * len(short))
    starts = [m.start() for m in _WORD.finditer(text, 0, start)]
    words = len(_WORD.findall(text, start, end))
    for count, begin in enumerate(reversed(starts), start=words + 1):
        if count > most or _SENTENCE_BREAK.search(text, begin, start):
            return None
        if abbreviates(short, text[begin:end]):
            return begin, end
    return None


def definitions(text: str, spans: Iterable[Span]) -> dict[str, str]:
    """Short form -> label, for each span of ``text`` followed by ``(SF)`` that ends its long
    form (:func:`long_form`).

    A short form two spans define with different labels is left out.
    """
    found: dict[str, set[str]] = {}
    for span in spans:
        m = _DEFINITION.match(text, span.end)
        if m and long_form(text, span.start, span.end, m.group(1)) is not None:
            found.setdefault(m.group(1), set()).add(span.label)
    return {short: labels.pop() for short, labels in found.items() if len(labels) == 1}


def redefined(text: str, spans: Iterable[Span]) -> set[str]:
    """Short forms ``text`` defines on a long form that no span ends ("Hormone therapy (HT)").

    In this document they name something that is not a mention, whatever a lexicon learnt
    them or the tagger took them for ("HT" for hypertension). The long form is searched as
    :func:`long_form` does, from the word before the parenthesis. A definition inside a span
    is part of that mention ("von Hippel-Lindau (VHL) disease") and redefines nothing.
    """
    spans = list(spans)
    ends = {span.end for span in spans}
    out = set()
    for m in _DEFINITION.finditer(text):
        end = m.start()
        if end in ends or not end or text[end - 1].isspace():
            continue
        if any(s.start < end and m.end() <= s.end for s in spans):
            continue
        start = end
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        if long_form(text, start, end, m.group(1)) is not None:
            out.add(m.group(1))
    return out


def relabelled(text: str, spans: Sequence[Span]) -> dict[Span, str]:
    """The spans of ``text`` whose string is a short form ``spans`` define
    (:func:`definitions`) with another label, each with the label of its definition: the
    document's definition outranks what the tagger called the short form."""
    forms = definitions(text, spans)
    out = {}
    for span in spans:
        label = forms.get(text[span.start : span.end])
        if label is not None and label != span.label:
            out[span] = label
    return out


def propagate(text: str, spans: Sequence[Span]) -> list[Span]:
    """New spans: the occurrences in ``text`` of the short forms ``spans`` define
    (:func:`definitions`) that overlap none of ``spans``, in text order."""
    forms = definitions(text, spans)
    if not forms:
        return []
    taken = list(spans)
    added: list[Span] = []
    for start, _ in units(text):
        # A short form may span several units ("IL-2"): try each form starting here.
        for short, label in sorted(forms.items(), key=lambda f: -len(f[0])):
            stop = start + len(short)
            if text.startswith(short, start) and _unit_end(text, stop):
                span = Span(start, stop, label)
                if not any(span.start < s.end and s.start < span.end for s in taken):
                    taken.append(span)
                    added.append(span)
                break
    return added


def _unit_end(text: str, at: int) -> bool:
    """Whether a match ending at ``at`` ends on a unit bound (nothing of its word follows)."""
    if at >= len(text):
        return True
    return not (text[at].isalnum() and text[at - 1].isalnum())
