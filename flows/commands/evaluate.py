"""``bioner eval``: strict and relaxed span P/R/F1 of predictions against gold JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bioner.errors import InputError
from bioner.metrics import TABLE_HEADER, Evaluation, evaluate, score_row, table_rows
from bioner.readers.canonical import iter_canonical
from bioner.records import AnnotatedDocument
from flows.commands._common import console, decode_text, located, read_input

_SHOWN_IDS = 5


def _load(path: Path) -> list[tuple[int, AnnotatedDocument]]:
    """Documents of a canonical JSON lines file with line numbers, or a one-line error."""
    text = decode_text(path, read_input(path))
    with located(path):
        return list(iter_canonical(text))


def check_same_texts(
    gold: dict[str, AnnotatedDocument], pred: list[tuple[int, AnnotatedDocument]]
) -> None:
    """Raise InputError at the first predicted document whose text differs from gold's.

    Offsets index into the text, so spans over different texts cannot be compared.
    """
    for line, doc in pred:
        g = gold.get(doc.id)
        if g is not None and g.text != doc.text:
            raise InputError(
                f"text differs from the gold document (gold length {len(g.text)}, "
                f"here {len(doc.text)}); offsets are not comparable",
                line=line,
                record=doc.id,
            )


def _ids(ids: tuple[str, ...]) -> str:
    shown = ", ".join(escape(i) for i in ids[:_SHOWN_IDS])
    return shown + (f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else "")


def _warn(ev: Evaluation, gold: Path, pred: Path) -> None:
    g, p = escape(str(gold)), escape(str(pred))
    if ev.missing_docs:
        n, ids = len(ev.missing_docs), _ids(ev.missing_docs)
        _warning(f"{n} document(s) of {g} have no prediction in {p}; counted as no spans: {ids}")
    if ev.extra_docs:
        n, ids = len(ev.extra_docs), _ids(ev.extra_docs)
        _warning(
            f"{n} document(s) of {p} are not in {g}; their spans count as false positives: {ids}"
        )


def _warning(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _table(title: str, rows: list[tuple[str, ...]], n_types: int) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(TABLE_HEADER):
        table.add_column(name, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        # Text, not str: a label is data and must not be read as rich markup.
        table.add_row(*map(Text, row), end_section=i == n_types - 1)
    return table


def main(
    gold: Path = typer.Option(..., "--gold", help="Gold documents, canonical JSON lines."),
    pred: Path = typer.Option(..., "--pred", help="Predicted documents, canonical JSON lines."),
    json_out: bool = typer.Option(
        False, "--json", help="Print the full result as JSON (fractions, not percent)."
    ),
    relaxed: bool = typer.Option(
        False, "--relaxed", help="Also print the per-type table under overlap matching."
    ),
    labels: list[str] | None = typer.Option(
        None, "--label", help="Average macro over these types (repeatable); default: all seen."
    ),
) -> None:
    """Score predicted spans against gold: per-type, micro and macro P/R/F1, strict and relaxed.

    Strict needs the exact (start, end, label); relaxed accepts any overlap with the same
    label, one-to-one. Gold documents without a prediction count as predicting nothing;
    predicted documents absent from gold count as false positives. Both are warned about.
    """
    gold_docs = _load(gold)
    pred_docs = _load(pred)
    gold_by_id = {d.id: d for _, d in gold_docs}
    with located(pred):
        check_same_texts(gold_by_id, pred_docs)
    ev = evaluate(
        {d.id: d.spans for _, d in gold_docs},
        {d.id: d.spans for _, d in pred_docs},
        labels=labels or None,
    )
    _warn(ev, gold, pred)
    if json_out:
        print(json.dumps(ev.to_dict(), indent=2, ensure_ascii=False))
        return
    out = Console(highlight=False)
    n_types = len(ev.strict.per_type)
    out.print(_table("strict (exact span and label)", table_rows(ev), n_types))
    if relaxed:
        rows = [score_row(label, s) for label, s in ev.relaxed.per_type.items()]
        out.print(_table("relaxed (overlap, same label, one-to-one)", rows, len(rows)))
    fp = ev.false_positives
    out.print(
        f"false positives: {fp.wrong_type} wrong type, {fp.wrong_boundary} wrong boundary, "
        f"{fp.wrong_both} wrong type and boundary, {fp.spurious} spurious",
        soft_wrap=True,
    )
