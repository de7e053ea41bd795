"""``bioner train-data``, ``init-model``, ``train`` and ``superfilter``: fine-tune a tagger.

``train-data`` builds instruction examples from the shared benchmark data into a folder and
prints the statistics; ``init-model`` makes a small randomly initialised Llama whose byte-level
tokenizer is trained on a data folder's passages (the start of the reference model, which is
trained from scratch); ``superfilter`` keeps the most informative examples by a weak model's
IFD scores into a new folder; ``train`` fine-tunes a local model folder on a data folder. torch
is imported only by the commands that need it, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from bioner.lexicon import (
    DEFAULT_MIN_COUNT,
    DEFAULT_MIN_RATIO,
    DEFAULT_TRIM_RATIO,
    DEFAULT_VETO_COUNT,
)
from bioner.prompts import PROMPT_VERSION, PROMPT_VERSIONS
from bioner.training.data import FORMATS, VIEWS, BuildOptions
from bioner.training.filter import FilterOptions
from flows.commands._common import console, fail
from infra.datasets import data_dir
from infra.llm.local import MARKER, ModelFolderError
from infra.training.data import (
    DATASET_NAMES,
    STATS_FILE,
    build_training_data,
    write_training_data,
)


def _split_list(value: str | None, known: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    if not value:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in known]
    if unknown:
        raise fail(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def _repeats(value: str | None) -> dict[str, int] | None:
    """``--repeat``'s ``NAME=K[,NAME=K]`` as a dict; a one-line error for anything else."""
    if not value:
        return None
    out: dict[str, int] = {}
    for item in (v.strip() for v in value.split(",") if v.strip()):
        name, _, count = item.partition("=")
        if not name.strip() or not count.strip().isdecimal() or int(count) < 1:
            raise fail(f"--repeat: {item!r} is not NAME=K with K a whole number >= 1")
        out[name.strip()] = int(count)
    return out


def stats_table(stats: dict[str, dict[str, object]], title: str) -> Table:
    """A rich table of per-dataset statistics (:func:`bioner.training.data.statistics_of`).

    Lengths are mean characters; the full summaries are in ``stats.json``.
    """
    table = Table(title=title, title_justify="left")
    columns = (
        "set",
        "docs",
        "examples",
        "w/ ent.",
        "entities",
        "dups",
        "merged/drop",
        "prompt",
        "resp.",
    )
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for name, s in stats.items():
        prompt = s["prompt_chars"]
        response = s["response_chars"]
        assert isinstance(prompt, dict) and isinstance(response, dict)
        table.add_row(
            Text(name),
            str(s["documents"]),
            str(s["examples"]),
            str(s["with_entities"]),
            str(s["entities"]),
            str(s["duplicates_dropped"]),
            f"{s['merged_passages']}/{s['dropped_passages']}",
            f"{prompt['mean']:.0f}",
            f"{response['mean']:.0f}",
        )
    return table


def train_data(
    out: Path = typer.Option(..., "--out", help="Folder to write train.jsonl, eval.jsonl, stats."),
    data: Path | None = typer.Option(
        None, "--data", help="Benchmark data folder (default: BIONER_DATA_DIR or ../shared/data)."
    ),
    sets: str | None = typer.Option(
        None,
        "--sets",
        help=f"Comma-separated training sets (default all: {','.join(DATASET_NAMES)}).",
    ),
    formats: str = typer.Option(
        "symbolic", "--formats", help="Comma-separated response formats: symbolic, json."
    ),
    max_chars: int = typer.Option(500, "--max-chars", min=16, help="Longest passage."),
    unit: str = typer.Option(
        "sentence",
        "--unit",
        help="sentence: segment every document as the pipeline does; "
        "document: keep short single-line documents whole.",
    ),
    prompt: str = typer.Option(
        PROMPT_VERSION,
        "--prompt",
        help=f"Prompt of the symbolic examples: {' or '.join(PROMPT_VERSIONS)} (types and "
        "passage only, for small models; the trained model records it).",
    ),
    views: str = typer.Option(
        "dataset,unified",
        "--views",
        help="Requests each passage is asked with: dataset (its dataset's own schema), unified "
        "(the unified schema's types its dataset annotates: partial annotation), full (the "
        "whole unified schema, answering the types its dataset annotates; train it with "
        "--loss constrained). Comma-separated.",
    ),
    copy: int = typer.Option(
        0,
        "--copy-examples",
        min=0,
        help="Add this many synthetic copy examples (random words with bracketed spans) that "
        "teach a small model trained from scratch to copy the passage.",
    ),
) -> None:
    """Build instruction examples (prompt, response) from the benchmark training splits."""
    chosen_formats = _split_list(formats, FORMATS, "format") or ("symbolic",)
    chosen_views = _split_list(views, VIEWS, "view") or ("dataset",)
    chosen_sets = _split_list(sets, DATASET_NAMES, "set")  # names first: no data needed
    if unit not in ("sentence", "document"):
        raise fail(f"--unit must be sentence or document, got {unit!r}")
    if prompt not in PROMPT_VERSIONS:
        raise fail(f"--prompt must be one of {', '.join(PROMPT_VERSIONS)}, got {prompt!r}")
    if prompt != PROMPT_VERSION and "json" in chosen_formats:
        raise fail(f"--prompt {prompt} applies to the symbolic format only; drop json")
    root = data or data_dir()
    if not root.is_dir():
        raise fail(f"{root}: no benchmark data folder (set BIONER_DATA_DIR or --data)")
    options = BuildOptions(
        max_chars=max_chars,
        unit=unit,
        formats=chosen_formats,
        prompt=prompt,
        copy_examples=copy,
        views=chosen_views,
    )  # type: ignore[arg-type]
    built = build_training_data(root, options, chosen_sets)
    write_training_data(built, out)
    console.print(stats_table(built.stats["datasets"], "training examples"))
    if built.stats["eval"]:
        console.print(stats_table(built.stats["eval"], "evaluation part (CMeEE-V2 dev, 20%)"))
    console.print(
        f"{built.stats['total_examples']} training examples, {built.stats['total_eval_examples']} "
        f"evaluation examples -> {out} (statistics in {out / STATS_FILE}); "
        "CMeEE-V2's own train split is not available: 80% of its dev split is used instead",
        highlight=False,
        soft_wrap=True,
    )


def init_model(
    data: Path = typer.Option(
        ..., "--data", help="Data folder (train.jsonl): its passages train the tokenizer."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the new, untrained model."),
    from_encoder: str | None = typer.Option(
        None,
        "--from-encoder",
        help="Warm start: a local BERT-style encoder folder, or 'minilm' for the MiniLM of the "
        "selector extra. Its layers become a decoder; default: a random Llama.",
    ),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=300),
    hidden_size: int | None = typer.Option(
        None, "--hidden-size", min=8, help="Random Llama only. [default: 256]"
    ),
    layers: int | None = typer.Option(
        None, "--layers", min=1, help="Random Llama only. [default: 4]"
    ),
    heads: int | None = typer.Option(
        None, "--heads", min=1, help="Random Llama only. [default: 8]"
    ),
    max_positions: int | None = typer.Option(
        None, "--max-positions", min=64, help="[default: 2048; 1024 with --from-encoder]"
    ),
    attention: str = typer.Option(
        "causal",
        "--attention",
        help="Warm start only: 'prefix' keeps the encoder's bidirectional attention over the "
        "prompt (a prefix-LM; the answer stays causal), 'causal' makes it a plain decoder.",
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A small model to train: a random Llama, or a decoder warm-started from an encoder.

    Either way its tokenizer is a byte-level BPE learnt from the data's passages.
    """
    from infra.training.data import read_examples

    if from_encoder is not None:
        given = [n for n, v in (("--hidden-size", hidden_size), ("--layers", layers),
                                ("--heads", heads)) if v is not None]  # fmt: skip
        if given:
            raise fail(f"{', '.join(given)}: the shape of a warm start comes from the encoder")
    if attention not in ("causal", "prefix"):
        raise fail(f"--attention {attention!r}: causal or prefix")
    if attention != "causal" and from_encoder is None:
        raise fail("--attention prefix needs --from-encoder (the random Llama is causal)")
    hidden_size, layers, heads = hidden_size or 256, layers or 4, heads or 8
    if hidden_size % heads:
        raise fail(f"--hidden-size {hidden_size} is not a multiple of --heads {heads}")
    try:
        examples = read_examples(data)
    except FileNotFoundError as e:
        raise fail(f"{e.filename}: no training data (make it with bioner train-data)") from None
    except ValueError as e:  # a malformed line: the message names the file and line
        raise fail(str(e)) from None
    # Each passage once, in file order (a passage has one example per schema and format).
    texts = list(dict.fromkeys(e.text for e in examples))
    if from_encoder is not None:
        _init_warm(out, from_encoder, texts, vocab_size, max_positions or 1024, seed, attention)
        return
    from infra.llm.tiny import build_tiny_model

    build_tiny_model(
        out,
        corpus_texts=texts,
        seed=seed,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        max_positions=max_positions or 2048,
        initializer_range=0.02,  # the usual start for training (the demo model's 0.3 is noise)
    )
    console.print(
        f"untrained {layers}x{hidden_size} Llama, tokenizer of {vocab_size} from "
        f"{len(texts)} passages -> {out}",
        highlight=False,
        soft_wrap=True,
    )


def _init_warm(
    out: Path,
    encoder: str,
    texts: list[str],
    vocab_size: int,
    max_positions: int,
    seed: int,
    attention: str,
) -> None:
    from infra.llm.warmstart import WarmStartError, build_warm_model
    from infra.selector.encoder import EncoderError, default_encoder_path

    try:
        folder = default_encoder_path() if encoder.lower() == "minilm" else Path(encoder)
        record = build_warm_model(
            out,
            folder,
            texts,
            vocab_size=vocab_size,
            max_positions=max_positions,
            seed=seed,
            attention=attention,
        )
    except (WarmStartError, EncoderError) as e:
        raise fail(str(e)) from None
    console.print(
        f"untrained {record['encoder_layers']}x{record['encoder_hidden_size']} BERT "
        f"{'prefix-LM' if attention == 'prefix' else 'decoder'} "
        f"warm-started from {record['encoder_name'] or folder}: {record['parameters']:,} "
        f"parameters; tokenizer of {record['vocab_size']} from {len(texts)} passages, "
        f"{record['tokens_from_wordpieces']} tokens from WordPiece embeddings, "
        f"{record['tokens_from_unk']} from [UNK] -> {out}",
        highlight=False,
        soft_wrap=True,
    )


def train(
    model: Path = typer.Option(..., "--model", help="Local causal LM folder to start from."),
    data: Path = typer.Option(
        ..., "--data", help="Data folder (train.jsonl) or a JSON lines file."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for checkpoints and the trained model."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters instead of all weights."),
    lora_r: int = typer.Option(16, "--lora-r", min=1),
    lora_alpha: int = typer.Option(32, "--lora-alpha", min=1),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", min=0.0, max=1.0),
    target_modules: str | None = typer.Option(
        None, "--target-modules", help="Comma-separated LoRA targets (default: detected)."
    ),
    no_merge: bool = typer.Option(False, "--no-merge", help="LoRA: save only the adapter."),
    sets: str | None = typer.Option(None, "--sets", help="Train only on these datasets."),
    formats: str | None = typer.Option(None, "--formats", help="Train only on these formats."),
    repeat: str | None = typer.Option(
        None,
        "--repeat",
        help="Up-weight datasets: NAME=K[,NAME=K] shows each example of NAME K times an epoch.",
    ),
    epochs: int = typer.Option(1, "--epochs", min=1),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Optimizer steps."),
    time_budget: float | None = typer.Option(
        None, "--time-budget", min=0.1, help="Minutes of wall clock; stops cleanly when up."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    max_batch_tokens: int | None = typer.Option(
        None,
        "--max-batch-tokens",
        min=1,
        help="Cap on padded tokens per forward pass: a larger batch runs as micro-batches of "
        "the same optimizer step (caps memory; the update is unchanged).",
    ),
    loss: str = typer.Option(
        "token",
        "--loss",
        help="token: cross-entropy over the vocabulary; constrained: over the tokens "
        "copy-constrained decoding allows at each position (the model is then meant to run "
        "constrained; see infra/training/constrained_loss.py).",
    ),
    lr: float = typer.Option(1e-4, "--lr", min=0.0),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0),
    warmup_ratio: float = typer.Option(0.03, "--warmup-ratio", min=0.0, max=1.0),
    max_length: int = typer.Option(1024, "--max-length", min=8, help="Longer examples skipped."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or bf16-mixed."),
    save_dtype: str | None = typer.Option(
        None,
        "--save-dtype",
        help="fp32 or bf16: the saved model's weights (bf16 halves the folder); "
        "default: as trained. Checkpoints keep the training dtype.",
    ),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    save_every: int = typer.Option(200, "--save-every", min=0, help="Checkpoint every N steps."),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Fine-tune a local causal LM on instruction examples (loss on the response only)."""
    from infra.training.sft import SFTConfig, rich_progress
    from infra.training.sft import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = SFTConfig(
            model=str(model),
            data=str(data),
            out=str(out),
            lora=lora,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=tuple(t.strip() for t in target_modules.split(","))
            if target_modules
            else None,
            merge_lora=not no_merge,
            datasets=tuple(s.strip() for s in sets.split(",")) if sets else None,
            formats=_split_list(formats, FORMATS, "format"),
            repeat=_repeats(repeat),
            max_length=max_length,
            epochs=epochs,
            max_steps=max_steps,
            time_budget_s=time_budget * 60 if time_budget else None,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_batch_tokens=max_batch_tokens,
            loss=loss,
            lr=lr,
            weight_decay=weight_decay,
            warmup_ratio=warmup_ratio,
            seed=seed,
            device=device,
            precision=precision,  # type: ignore[arg-type]
            save_dtype=save_dtype,
            gradient_checkpointing=gradient_checkpointing,
            threads=threads,
            save_every=save_every,
            keep_checkpoints=keep_checkpoints,
            command=tuple(sys.argv),
        )
        if progress:
            with rich_progress() as on_step:
                result = run_training(config, resume=resume, on_step=on_step)
        else:
            result = run_training(config, resume=resume)
    except (ModelFolderError, FileNotFoundError, FileExistsError, ValueError) as e:
        raise fail(str(e)) from None
    console.print(
        f"{result.stopped}: {result.steps}/{result.total_steps} steps, "
        f"loss {result.losses[-1] if result.losses else float('nan'):.4f}, "
        f"{result.training_time_s / 60:.1f} min, {result.examples_seen} examples seen "
        f"({result.skipped_too_long} skipped as too long) -> {out}",
        highlight=False,
        soft_wrap=True,
    )


def export_checkpoint(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint folder: OUT/checkpoints/step-NNNNNNNN of a bioner train run."
    ),
    out: Path = typer.Option(..., "--out", help="New folder for the model."),
    save_dtype: str | None = typer.Option(
        None, "--save-dtype", help="fp32 or bf16; default: as the run would have saved it."
    ),
) -> None:
    """Save a training checkpoint as a model folder, to evaluate an intermediate step."""
    from infra.training.sft import export_checkpoint as export

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        folder = export(checkpoint, out, save_dtype=save_dtype)
    except (ModelFolderError, FileNotFoundError, FileExistsError, ValueError) as e:
        raise fail(str(e)) from None
    info = json.loads((folder / MARKER).read_text("utf-8"))
    console.print(
        f"step {info['steps']}/{info['planned_steps']} of {checkpoint} "
        f"(loss {info['final_loss']:.4f}, {info['saved_dtype']}) -> {folder}",
        highlight=False,
        soft_wrap=True,
    )


def superfilter(
    model: Path = typer.Option(..., "--model", help="Small (weak) model folder that scores."),
    data: Path = typer.Option(..., "--data", help="Data folder (train.jsonl) or JSON lines file."),
    out: Path = typer.Option(..., "--out", help="Folder for the selected train.jsonl and scores."),
    fraction: float = typer.Option(0.5, "--fraction", min=0.0, max=1.0, help="Positives kept."),
    negative_fraction: float | None = typer.Option(
        None, "--negative-fraction", min=0.0, max=1.0, help="Negatives kept (default: --fraction)."
    ),
    max_ifd: float | None = typer.Option(1.0, "--max-ifd", help="Drop positives with IFD >= this."),
    per_dataset: bool = typer.Option(True, "--per-dataset/--global"),
    scores: Path | None = typer.Option(None, "--scores", help="Reuse a scores.jsonl."),
    device: str = typer.Option("cpu", "--device"),
    batch_tokens: int = typer.Option(8192, "--batch-tokens", min=64),
) -> None:
    """Hybrid Superfiltering: keep the examples with the highest IFD under a weak model."""
    from infra.training.superfilter import superfilter as run_superfilter

    try:
        info = run_superfilter(
            model,
            data,
            out,
            FilterOptions(fraction, negative_fraction, max_ifd, per_dataset),
            device=device,
            batch_tokens=batch_tokens,
            scores_path=scores,
        )
    except (ModelFolderError, FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    console.print_json(json.dumps(info["datasets"]))
    console.print(f"kept {info['kept']} of {info['examples']} examples -> {out}", highlight=False)


def lexicon(
    data: Path = typer.Option(
        ..., "--data", help="Data folder (train.jsonl) or JSON lines file the model trained on."
    ),
    model: Path = typer.Option(..., "--model", help="Model folder to write lexicon.parquet into."),
    min_ratio: float = typer.Option(
        DEFAULT_MIN_RATIO,
        "--min-ratio",
        min=0.0,
        max=1.0,
        help="A string becomes a span where training annotated it in at least this share of "
        "its occurrences.",
    ),
    min_count: int = typer.Option(
        DEFAULT_MIN_COUNT, "--min-count", min=1, help="... and at least this often."
    ),
    veto_count: int = typer.Option(
        DEFAULT_VETO_COUNT,
        "--veto-count",
        min=0,
        help="Drop a tagger span whose string training holds at least this often and never "
        "annotates (0: never).",
    ),
    trim_ratio: float = typer.Option(
        DEFAULT_TRIM_RATIO,
        "--trim-ratio",
        min=0.0,
        max=1.0,
        help="Trim a tagger span of a string training never annotates down to the strings it "
        "contains that the rule accepts, when each unit it loses lies inside a mention in at "
        "most this share of its training occurrences.",
    ),
    trim: bool = typer.Option(True, "--trim/--no-trim", help="Trim tagger spans at all."),
) -> None:
    """Count the training mentions into the model's lexicon: it fills the tagger's gaps,
    completes mentions it cuts short, trims words training keeps outside mentions, corrects
    labels and drops strings training never annotates."""
    from bioner.errors import InputError
    from infra.lexicon import lexicons_from_examples, write_lexicon
    from infra.llm.local import check_model_dir
    from infra.training.data import data_digest, read_examples

    if not 0.0 < min_ratio <= 1.0:
        raise fail(f"--min-ratio must be in (0, 1], got {min_ratio}")
    try:
        check_model_dir(model)
        examples = read_examples(data)
    except (ModelFolderError, InputError) as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{data}: {e.strerror or e}") from None
    trimming = trim_ratio if trim else None
    lexicons = lexicons_from_examples(examples, min_ratio, min_count, veto_count, trimming)
    if not lexicons:
        raise fail(f"{data}: no annotated span to count; the lexicon would be empty")
    source = {
        "data": str(data.resolve()),
        "examples": len(examples),
        "data_digest": data_digest(examples),
    }
    path = write_lexicon(lexicons, model, source)
    table = Table(title=f"lexicon of {model}", title_justify="left")
    columns = ("schema", "entries", "spans by the rule", "unseen strings", "units in mentions")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for name, lx in sorted(lexicons.items()):
        counts = (len(lx.entries), lx.active, len(lx.unseen), len(lx.inside))
        table.add_row(Text(name), *map(str, counts))
    console.print(table)
    console.print(
        f"rule: ratio ≥ {min_ratio}, count ≥ {min_count}, veto ≥ {veto_count}, trim ≤ "
        f"{trimming if trimming is not None else 'never'} → {path}",
        highlight=False,
        soft_wrap=True,
    )
