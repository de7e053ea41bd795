"""The run summary per stage: records in and out, quarantined, tombstoned, time, throughput.

Built from the counts of :func:`flows.annotate.annotate_corpus` (read back from the tables, so
they reconcile with what was written) and the stage intervals the tasks recorded; rendered as
the Markdown artifact of the flow run and, by the commands, as a console table.

Time: ``seconds`` is the work of the stage summed over its tasks; ``wall_seconds`` the time
during which at least one of its tasks ran (less than ``seconds`` when shards ran side by side).
Orchestration is the flow's wall time during which no stage was working: Prefect's own calls,
scheduling, waiting on futures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: The columns of a stage row, in display order, with their headings.
COLUMNS = (
    ("stage", "stage"),
    ("in", "in"),
    ("out", "out"),
    ("quarantined", "quar."),
    ("tombstoned", "tomb."),
    ("rejected", "rej."),
    ("seconds", "work s"),
    ("wall_seconds", "wall s"),
    ("per_second", "in/s"),
)


def covered(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by at least one ``(start, end)`` interval (overlaps counted once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def stage_row(
    stage: str,
    records_in: int,
    records_out: int,
    intervals: Sequence[tuple[float, float]],
    *,
    quarantined: int = 0,
    tombstoned: int = 0,
    rejected: int | None = None,
    unit: str = "records",
    **extra: Any,
) -> dict[str, Any]:
    """One stage's row; ``intervals`` are its tasks' ``(start, end)`` times (epoch seconds).

    ``rejected`` is for stages that accept or reject records (the selector); None elsewhere.
    """
    seconds = sum(end - start for start, end in intervals)
    return {
        "stage": stage,
        "unit": unit,
        "in": records_in,
        "out": records_out,
        "quarantined": quarantined,
        "tombstoned": tombstoned,
        "rejected": rejected,
        "seconds": round(seconds, 3),
        "wall_seconds": round(covered(intervals), 3),
        "per_second": round(records_in / seconds, 1) if seconds > 0 else None,
        **extra,
    }


def orchestration(wall: float, intervals: Iterable[tuple[float, float]]) -> dict[str, float]:
    """The flow's wall time, the part of it some stage was working, and the rest's share."""
    busy = min(covered(intervals), wall)
    return {
        "wall_seconds": round(wall, 3),
        "stage_seconds": round(busy, 3),
        "orchestration_seconds": round(wall - busy, 3),
        "orchestration_share": round((wall - busy) / wall, 4) if wall > 0 else 0.0,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def stage_cells(row: dict[str, Any]) -> list[str]:
    """A stage row as display strings, in :data:`COLUMNS` order."""
    return [_cell(row.get(key)) for key, _ in COLUMNS]


def markdown(summary: dict[str, Any]) -> str:
    """The summary of an annotate run as Markdown: the stage table, totals, time split."""
    lines = [
        f"# bioner run {summary['run_id']}",
        "",
        f"model `{summary['model_id'] or 'not loaded'}`, schema `{summary['schema']}`, "
        f"prompt `{summary['prompt_version']}`, shards annotated: "
        f"{', '.join(map(str, summary['shards'])) or 'none'}",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(stage_cells(row)) + " |" for row in summary["stages"]]
    time = summary["time"]
    lines += [
        "",
        f"- passages: {summary['passages']:,}; generations {summary['generations']:,} "
        f"({summary['generated']:,} generated, {summary['cached']:,} cached, "
        f"{summary.get('resumed', 0):,} recovered from an interrupted run)",
        f"- tokens: {summary['prompt_tokens']:,} prompt, {summary['output_tokens']:,} output",
        f"- entities: {summary['entities']:,} accepted "
        f"({summary.get('lexicon_entities', 0):,} of them found by the training lexicon, "
        f"{summary.get('abbreviation_entities', 0):,} labelled by an abbreviation's definition; "
        f"{summary.get('lexicon_dropped', 0):,} decoded spans the lexicon dropped, "
        f"{summary.get('abbreviation_dropped', 0):,} on short forms defined on no mention), "
        + (
            f"{summary['rejected']:,} rejected"
            if summary.get("rejected") is not None
            else "none rejected (no select stage in this run)"
        )
        + f"; {summary['lossy_issues']:,} decode issues that cost or moved a span",
        f"- wall time {time['wall_seconds']:.1f} s: stages {time['stage_seconds']:.1f} s, "
        f"orchestration {time['orchestration_seconds']:.1f} s "
        f"({100 * time['orchestration_share']:.1f}%)",
    ]
    return "\n".join(lines) + "\n"
