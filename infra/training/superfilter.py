"""Superfiltering scores: a small causal LM's response losses with and without the instruction.

For each example the weak model computes the mean token cross-entropy of the response (EOS
included) after the prompt exactly as the engine encodes it, and after only BOS (the response
"alone"); :class:`bioner.training.filter.Scored` turns the pair into IFD and
:func:`bioner.training.filter.select` keeps the top fraction. Batches are length-sorted and
right-padded; scoring is deterministic (eval mode, no sampling).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    import torch
    from torch.nn import functional as F
    from transformers import AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"superfiltering needs torch and transformers ({e.name} is missing): "
        "install the llm extra: pip install -e .[llm]"
    ) from e

from bioner.training.data import Example
from bioner.training.filter import FilterOptions, Scored, select, summary
from infra.llm.local import check_model_dir
from infra.llm.prefixlm import training_mask
from infra.training.data import read_examples, write_examples
from infra.training.encoding import (
    IGNORE_INDEX,
    Encoded,
    encode_example,
    encode_response_alone,
)
from infra.training.sft import collate, load_tokenizer

SCORES_FILE = "scores.jsonl"
SELECTION_FILE = "selection.json"


def mean_losses(
    model: torch.nn.Module,
    encoded: Sequence[Encoded],
    pad_id: int,
    *,
    batch_tokens: int = 8192,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Mean response-token loss of each encoded example (input order)."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    out = [0.0] * len(encoded)
    batch: list[int] = []

    def run(indices: list[int]) -> None:
        tensors = {
            k: v.to(device) for k, v in collate([encoded[i] for i in indices], pad_id).items()
        }
        mask = training_mask(model, tensors["attention_mask"], tensors["prompt_lengths"])
        with torch.inference_mode():
            logits = (
                model(input_ids=tensors["input_ids"], attention_mask=mask).logits[:, :-1, :].float()
            )
        targets = tensors["labels"][:, 1:]
        token_loss = F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
        )
        n = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
        for row, i in enumerate(indices):
            out[i] = float(token_loss[row].sum() / n[row])
        if on_batch is not None:
            on_batch(len(indices))

    for i in order:
        width = max([len(encoded[j]) for j in batch] + [len(encoded[i])])
        if batch and width * (len(batch) + 1) > batch_tokens:
            run(batch)
            batch = []
        batch.append(i)
    if batch:
        run(batch)
    return out


def score_examples(
    model_dir: str | Path,
    examples: Sequence[Example],
    *,
    device: str = "cpu",
    batch_tokens: int = 8192,
    on_batch: Callable[[int], None] | None = None,
) -> list[Scored]:
    """IFD inputs of every example under the weak model in ``model_dir``."""
    path = check_model_dir(model_dir)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(device).eval()
    with_instruction = [encode_example(tokenizer, e.prompt, e.response) for e in examples]
    alone = [encode_response_alone(tokenizer, e.response) for e in examples]
    pad = tokenizer.pad_token_id
    kw = {"batch_tokens": batch_tokens, "device": device, "on_batch": on_batch}
    loss_with = mean_losses(model, with_instruction, pad, **kw)
    loss_without = mean_losses(model, alone, pad, **kw)
    return [
        Scored(e.id, e.dataset, bool(e.spans), lw, lo)
        for e, lw, lo in zip(examples, loss_with, loss_without, strict=True)
    ]


def write_scores(scores: Sequence[Scored], path: Path) -> None:
    """Scores as JSON lines (id, dataset, positive, the two losses, IFD)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = (
        {
            "id": s.id,
            "dataset": s.dataset,
            "positive": s.positive,
            "loss_with": s.loss_with,
            "loss_without": s.loss_without,
            "ifd": s.ifd,
        }
        for s in scores
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")


def read_scores(path: Path) -> list[Scored]:
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [
        Scored(r["id"], r["dataset"], r["positive"], r["loss_with"], r["loss_without"])
        for r in rows
    ]


def superfilter(
    model_dir: str | Path,
    data: Path,
    out_dir: Path,
    options: FilterOptions | None = None,
    *,
    device: str = "cpu",
    batch_tokens: int = 8192,
    scores_path: Path | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Score ``data`` (reusing ``scores_path`` when given), select, write a data folder.

    ``out_dir`` gets ``train.jsonl`` (the kept examples, input order), ``scores.jsonl`` and
    ``selection.json`` (options and per-dataset summary); returns the selection summary.
    """
    options = options or FilterOptions()
    examples = read_examples(data)
    if scores_path is not None:
        scores = read_scores(scores_path)
        if [s.id for s in scores] != [e.id for e in examples]:
            raise ValueError(f"{scores_path}: the scores are not of the examples of {data}")
    else:
        scores = score_examples(
            model_dir, examples, device=device, batch_tokens=batch_tokens, on_batch=on_batch
        )
    kept = set(select(scores, options))
    write_examples([e for e in examples if e.id in kept], out_dir / "train.jsonl")
    write_scores(scores, out_dir / SCORES_FILE)
    info: dict[str, object] = {
        "weak_model": str(model_dir),
        "data": str(data),
        "options": {
            "fraction": options.fraction,
            "negative_fraction": options.negative_fraction,
            "max_ifd": options.max_ifd,
            "per_dataset": options.per_dataset,
        },
        "examples": len(examples),
        "kept": len(kept),
        "datasets": summary(scores, sorted(kept)),
    }
    (out_dir / SELECTION_FILE).write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    return info
