"""Length-bucketed batch plans: deterministic, pure, the same on every machine.

Padding wastes compute in proportion to the spread of lengths in a batch, and sorting the
whole data set by length would make every batch a run of near-identical examples. The usual
middle way, used here: shuffle, cut the shuffled order into windows of ``window`` batches, sort
each window by length, cut it into batches, then shuffle the batches. The plan of an epoch
depends only on the lengths, the batch size, the seed and the epoch number, so a resumed run
recomputes exactly the plan it was following.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_plan(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    window: int = 50,
    shuffle: bool = True,
) -> list[list[int]]:
    """Batches (lists of example indices) of one epoch; every index exactly once."""
    if batch_size < 1 or window < 1:
        raise ValueError("batch_size and window must be >= 1")
    order = list(range(len(lengths)))
    rng = random.Random(f"bioner-batches:{seed}:{epoch}")
    if shuffle:
        rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * window
    for w in range(0, len(order), span):
        chunk = sorted(order[w : w + span], key=lambda i: (lengths[i], i))
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def accumulation_groups(n_batches: int, grad_accum: int) -> list[range]:
    """Consecutive batch ranges of one optimizer step each (the last may be shorter)."""
    if grad_accum < 1:
        raise ValueError("grad_accum must be >= 1")
    return [range(b, min(b + grad_accum, n_batches)) for b in range(0, n_batches, grad_accum)]


def token_chunks(lengths: Sequence[int], max_tokens: int | None) -> list[list[int]]:
    """Split one batch into micro-batches whose padded size stays within ``max_tokens``.

    ``lengths`` are the batch's example lengths; the result holds positions into it, shortest
    examples first, each micro-batch at most ``max_tokens`` tokens once padded to its longest
    example (``len(chunk) * max(lengths of chunk)``). An example longer than the cap goes alone.
    ``None`` keeps the batch whole. Memory of a training step grows with the padded size, so
    this caps it without changing the step: its loss is still summed over every micro-batch
    and divided by the step's response tokens.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    if max_tokens is None:
        return [order] if order else []
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending, so the newest example is the chunk's longest
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks
