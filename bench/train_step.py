"""Training step cost: the output layer on answer positions only, against the whole sequence.

``bioner train`` computes the logits only from the shortest prompt's last token on
(``logits_to_keep``, :func:`infra.training.sft._loss_sum`): no prompt token has a loss. The
peer is the same loss over logits of every position, as a plain causal-LM step computes it.
Both sides run the same model, the same batches (``--batches`` batches of the first epoch's
plan, ``--batch-size`` examples, seed 0) and the same loss (``--loss``), forward and backward
with dropout off and no optimizer step (the weights never change: every batch is measured
twice on the same weights), alternating which side goes first from batch to batch. Printed:
seconds per batch of each side, the ratio, and the largest relative difference of the losses.

    .venv/bin/python bench/train_step.py --model models/reference --data DATA
        [--batches 40] [--batch-size 16] [--threads 2] [--loss token|constrained]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bioner.training.batching import epoch_plan
from infra.llm.transformers_engine import stop_token_ids
from infra.training import sft
from infra.training.constrained_loss import ConstraintSets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss", choices=("token", "constrained"), default="token")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = sft.SFTConfig(model=str(args.model), data=str(args.data), out="-", loss=args.loss)
    tokenizer = sft.load_tokenizer(args.model)
    model = sft.build_model(config)
    model.eval()  # dropout off: both sides compute the same loss (gradients still flow)
    constraint = None
    if args.loss == "constrained":
        constraint = ConstraintSets(tokenizer, stop_token_ids(model.generation_config, tokenizer))
    encoded, _ = sft.encode_all(tokenizer, sft.load_examples(config), 1024, constraint)
    plan = epoch_plan([len(e) for e in encoded], args.batch_size, 0, 0)[: args.batches]
    keeps = sft._keeps_logits
    if not keeps(model):
        raise SystemExit(f"error: {args.model}: its forward takes no logits_to_keep")
    seconds = {"answer positions": 0.0, "every position": 0.0}
    worst = 0.0
    tokens = 0
    for n, rows in enumerate(plan):
        batch = sft.collate([encoded[i] for i in rows], tokenizer.pad_token_id)
        tokens += int(batch["attention_mask"].sum())
        losses = {}
        sides = list(seconds) if n % 2 == 0 else list(reversed(seconds))
        for side in sides:
            sft._keeps_logits = keeps if side == "answer positions" else (lambda m: False)
            model.zero_grad(set_to_none=True)
            started = time.perf_counter()
            loss = sft._loss_sum(model, batch)
            loss.backward()
            seconds[side] += time.perf_counter() - started
            losses[side] = float(loss.detach())
        sft._keeps_logits = keeps
        a, b = losses.values()
        worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
    ours, peer = seconds["answer positions"], seconds["every position"]
    print(
        f"train step ({args.loss} loss, {len(plan)} batches of {args.batch_size}, "
        f"{tokens / len(plan):.0f} tokens a batch, {args.threads} threads, forward + backward)"
    )
    print(f"  every position (peer):  {peer / len(plan):.3f} s a batch")
    print(f"  answer positions only:  {ours / len(plan):.3f} s a batch")
    print(f"  speed-up {peer / ours:.2f}x; largest relative loss difference {worst:.1e}")


if __name__ == "__main__":
    main()
