"""``bioner select`` and ``bioner train-selector``: the contrastive entity selector.

``train-selector`` fine-tunes the span encoder on a benchmark's gold train split, indexes the
training embeddings and picks the threshold on its dev split, into a selector folder.
``select`` scores the candidate entities of an annotated run (``OUT/entities``) or of one shard
with a selector folder, and writes ``entities/2`` tables that keep every candidate with its
score, decision and reason. torch and faiss are imported only when a command runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from bioner.errors import InputError
from flows.commands._common import check_output, console, fail, writing
from infra import storage

_ENTITIES = "entities"
_SHOWN = 5
_SETS = ("ncbi", "bc5cdr", "jnlpba", "cmeee")


@contextmanager
def _bars(units: dict[str, str]) -> Iterator[Callable[..., None]]:
    """A :data:`tasks.progress.Listener` drawing a bar per stage with items per second."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}  {task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    bars: dict[str, Any] = {}
    started: dict[str, float] = {}

    def listener(
        stage: str, done: int, total: int, count: int | None = None, tokens: int | None = None
    ) -> None:
        if stage not in bars or (done == 0 and progress.tasks[bars[stage]].finished):
            if not progress.live.is_started:
                progress.start()
            bars[stage] = progress.add_task(stage, total=total, unit="", rate="-")
            started[stage] = time.perf_counter()
        elapsed = time.perf_counter() - started[stage]
        rate = f"{done / elapsed:,.1f}" if elapsed > 0 and done else "-"
        progress.update(
            bars[stage], completed=done, total=total, unit=units.get(stage, "items"), rate=rate
        )

    try:
        yield listener
    finally:
        progress.stop()


# --------------------------------------------------------------------------- select


def _shard_files(uri: str) -> tuple[list[str], bool]:
    """The entities shard files ``uri`` names, and whether it named a folder."""
    if not storage.exists(uri):
        raise fail(f"{uri}: no such candidates table")
    if not storage.is_dir(uri):
        return [uri], False
    folder = storage.join(uri, _ENTITIES) if _ENTITIES in storage.list_dir(uri) else uri
    names = [
        n for n in storage.list_dir(folder) if n.startswith("shard=") and n.endswith(".parquet")
    ]
    if not names:
        raise fail(
            f"{uri}: not an entities table (no shard=<k>.parquet files; expected OUT, "
            "OUT/entities or one shard file)"
        )
    return [storage.join(folder, n) for n in names], True


def _targets(
    files: list[str], folder: bool, out: str | None, passages: str | None
) -> list[tuple[str, str, str]]:
    """``(candidates, passages, output)`` URIs per shard file."""
    from tasks.select import SELECTED_TABLE, sibling_uri

    out_default = SELECTED_TABLE
    targets = []
    for f in files:
        name = f.rstrip("/").rpartition("/")[2]
        try:
            p = (
                (storage.join(passages, name) if folder else passages)
                if passages
                else sibling_uri(f, "passages")
            )
            o = (storage.join(out, name) if folder else out) if out else sibling_uri(f, out_default)
        except ValueError as e:
            raise fail(str(e)) from None
        if o == f:
            raise fail(f"{o}: the output would overwrite the candidates; choose another --out")
        targets.append((f, p, o))
    return targets


def _output_root(first: str, folder: bool, out: str | None) -> str:
    """The folder ``bioner select`` writes into, whose lease it takes: ``--out`` for a table,
    the folder of a one-shard ``--out``, else the run's ``OUT`` (``first``: an output file)."""
    if out is not None:
        return out if folder else first.rpartition("/")[0] or "."
    return first.rpartition("/")[0].rpartition("/")[0] or "."


def main(
    candidates: str = typer.Option(
        ...,
        "--candidates",
        help="Entities table: OUT of bioner run/tag, OUT/entities, or one shard file "
        "(local path or s3:// URI).",
    ),
    selector: Path = typer.Option(
        ..., "--selector", help="Selector folder made by bioner train-selector."
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output: a folder for a table, a file for one shard (default OUT/selected/).",
    ),
    passages: str | None = typer.Option(
        None, "--passages", help="Passages table of the same shards (default OUT/passages/)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Candidates per batch."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda ..."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on a malformed candidate instead of rejecting it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score candidate entities with a trained selector; keep all, mark accepted/rejected."""
    files, folder = _shard_files(candidates)
    targets = _targets(files, folder, out, passages)
    root = _output_root(targets[0][2], folder, out)
    check_output(root)
    from flows.commands._prefect import quiet_libraries

    quiet_libraries()
    import torch
    from transformers.utils import logging as hf_logging

    from infra.selector.selector import SelectorError
    from tasks.progress import listening
    from tasks.select import malformed_rows, select_shard, selection_summary, selector_for

    hf_logging.disable_progress_bar()
    # The command prints its own one-line warning per malformed candidate.
    logging.getLogger("tasks.select").setLevel(logging.ERROR)
    if threads:
        torch.set_num_threads(threads)
    try:
        selector_for(str(selector), device, "auto")  # the same key select_shard loads by
    except SelectorError as e:
        raise fail(str(e)) from None
    summaries = []
    started = time.perf_counter()
    with (
        writing(root, "bioner select"),
        _bars({"select": "candidates"}) as listener,
        listening(listener),
    ):
        for f, p, o in targets:
            try:
                select_shard.fn(
                    f, str(selector), o, p, batch_size=batch_size, device=device, strict=strict
                )
            except InputError as e:
                raise fail(e.located(f)) from None
            except (FileNotFoundError, ValueError) as e:
                raise fail(str(e)) from None
            summaries.append(selection_summary(o))
            for record, reason in malformed_rows(o, _SHOWN):
                console.print(
                    f"[yellow]warning:[/] {f}: record {record}: {reason.replace('_', ' ')}; "
                    "kept, rejected",
                    highlight=False,
                    soft_wrap=True,
                    markup=True,
                )
    elapsed = time.perf_counter() - started
    summary = _merge(summaries, str(selector), elapsed)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_select_summary(summary)


def _merge(parts: list[dict[str, Any]], selector: str, elapsed: float) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    by_label: dict[str, dict[str, int]] = {}
    for s in parts:
        reasons.update(s["reasons"])
        for label, c in s["by_label"].items():
            into = by_label.setdefault(label, {"candidates": 0, "accepted": 0})
            into["candidates"] += c["candidates"]
            into["accepted"] += c["accepted"]
    n = sum(s["candidates"] for s in parts)
    scoring = sum(s["seconds"] for s in parts)
    return {
        "selector": selector,
        "threshold": parts[0]["threshold"] if parts else None,
        "shards": len(parts),
        "candidates": n,
        "accepted": sum(s["accepted"] for s in parts),
        "rejected": n - sum(s["accepted"] for s in parts),
        "reasons": dict(reasons.most_common()),
        "by_label": by_label,
        "candidates_per_s": n / scoring if scoring > 0 else None,
        "seconds": round(elapsed, 2),
        "outputs": [s["uri"] for s in parts],
    }


def _print_select_summary(s: dict[str, Any]) -> None:
    table = Table(title="bioner select", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    n = s["candidates"]
    pct = f" ({100 * s['accepted'] / n:.1f}%)" if n else ""
    table.add_row("selector", Text(f"{s['selector']} (threshold {s['threshold']:.4f})"))
    table.add_row("candidates", f"{n:,} in {s['shards']} shard(s)")
    table.add_row("accepted", f"{s['accepted']:,}{pct}")
    table.add_row("rejected", f"{s['rejected']:,}")
    for reason, count in s["reasons"].items():
        table.add_row(f"  reason {reason}", f"{count:,}")
    for label, c in sorted(s["by_label"].items()):
        table.add_row(Text(f"  type {label}"), f"{c['accepted']:,} of {c['candidates']:,} accepted")
    rate = s["candidates_per_s"]
    table.add_row("speed", f"{rate:,.1f} candidates/s" if rate else "-")
    table.add_row("time", f"{s['seconds']:.1f} s")
    outs = s["outputs"]
    shown = ", ".join(outs[:3]) + (f" ... ({len(outs) - 3} more)" if len(outs) > 3 else "")
    table.add_row("output", Text(shown))
    console.print(table)


# --------------------------------------------------------------------------- train-selector


def train_main(
    set_name: str = typer.Option(
        ..., "--set", help=f"Benchmark to learn from: {', '.join(_SETS)}."
    ),
    out: Path = typer.Option(..., "--out", help="New folder for the selector."),
    encoder: Path | None = typer.Option(
        None, "--encoder", help="Local encoder folder (default: the MiniLM of the selector extra)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Benchmark data folder (default: BIONER_DATA_DIR or ../shared/data)."
    ),
    time_budget: float | None = typer.Option(
        None, "--time-budget", min=0.05, help="Minutes of training; stops cleanly when up."
    ),
    max_steps: int = typer.Option(300, "--max-steps", min=1, help="Optimizer steps."),
    max_train_spans: int | None = typer.Option(
        None, "--max-train-spans", min=1, help="Use at most this many gold spans (drawn)."
    ),
    max_dev_spans: int = typer.Option(2000, "--max-dev-spans", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=2),
    lr: float = typer.Option(5e-5, "--lr", min=0.0),
    negatives: int = typer.Option(4, "--negatives", min=1, help="Negatives per gold span."),
    max_shift: int = typer.Option(2, "--max-shift", min=1, help="Boundary moves, in tokens."),
    trainable_layers: int | None = typer.Option(
        None, "--trainable-layers", min=1, help="Fine-tune only the top N layers."
    ),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours per candidate."),
    method: str = typer.Option("vote", "--method", help="Score: vote or margin."),
    index: str = typer.Option("auto", "--index", help="auto, flat, ivf or hnsw."),
    gpu: str = typer.Option("auto", "--gpu-index", help="FAISS on GPU: auto, yes or no."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda ..."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a contrastive entity selector on a benchmark's gold train and dev splits."""
    if set_name not in _SETS:
        raise fail(f"unknown --set {set_name!r}; known: {', '.join(_SETS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise fail(f"{out}: exists and is not empty; choose a new folder")
    if encoder is not None and not (encoder / "config.json").is_file():
        raise fail(f"{encoder}: not an encoder folder (no config.json)")
    from infra.datasets import data_dir

    root = data or data_dir()
    if not root.is_dir():
        raise fail(f"{root}: no benchmark data folder (set BIONER_DATA_DIR or --data)")
    from flows.commands._prefect import quiet_libraries

    quiet_libraries()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("infra.selector").setLevel(logging.WARNING)
    from infra.selector.encoder import EncoderError
    from infra.selector.train import TrainConfig
    from tasks.progress import listening
    from tasks.select import train_selector

    try:
        config = TrainConfig(
            max_shift=max_shift,
            negatives_per_positive=negatives,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            time_budget_s=time_budget * 60 if time_budget else None,
            max_train_spans=max_train_spans,
            max_dev_spans=max_dev_spans,
            trainable_layers=trainable_layers,
            k=k,
            method=method,
            index=index,
            gpu=gpu,
            seed=seed,
            device=device,
            threads=threads,
        )
    except ValueError as e:
        raise fail(str(e)) from None
    units = {"selector-train": "steps", "selector-bank": "samples", "selector-dev": "candidates"}
    with _bars(units) as listener, listening(listener):
        try:
            folder = train_selector.fn(
                set_name,
                str(out),
                encoder=str(encoder) if encoder else None,
                data_root=str(root),
                config=config,
            )
        except (EncoderError, FileNotFoundError, FileExistsError, ValueError) as e:
            raise fail(str(e)) from None
    info = json.loads((Path(folder) / "selector.json").read_text("utf-8"))
    _print_train_summary(info, folder)


def _print_train_summary(info: dict[str, Any], folder: str) -> None:
    t, dev = info["training"], info["dev"]
    table = Table(title="bioner train-selector", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("set", f"{info.get('set')} ({', '.join(info['labels'])})")
    table.add_row("encoder", Text(str(info["encoder_source"])))
    table.add_row(
        "training",
        f"{t['steps']} steps ({t['stopped']}), {t['train_time_s']:.0f} s, loss "
        f"{t['loss_first']:.3f} -> {t['loss_last']:.3f}",
    )
    table.add_row(
        "samples", f"{t['samples']:,} ({t['gold_spans']:,} gold), bank {t['bank']:,} vectors"
    )
    table.add_row(
        "dev",
        f"{dev['candidates']:,} candidates ({dev['from']}), threshold {dev['threshold']:.4f}",
    )
    table.add_row(
        "dev F1",
        f"{100 * dev['f1_without']:.2f} -> {100 * dev['f1_with']:.2f} "
        f"(P {100 * dev['precision_with']:.2f}, R {100 * dev['recall_with']:.2f})",
    )
    table.add_row("selector", Text(f"{folder} (version {info['version']})"))
    console.print(table)
