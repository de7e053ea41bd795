"""Train a selector: supervised contrastive fine-tuning of the span encoder, then the index
of the training embeddings and the threshold chosen on dev data for F1.

Batches hold gold spans together with their boundary-shifted and retyped twins, so the loss
(SupCon, Khosla et al. 2020: InfoNCE with every same-class sample a positive) pulls gold spans
of a type together and pushes their twins, which are of the class ``not:<type>``, away.
Training stops after ``max_steps`` or when ``time_budget_s`` is spent, whichever comes first.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bioner.records import AnnotatedDocument, Span
from bioner.selector import (
    Candidate,
    Sample,
    best_threshold,
    subsample,
    training_samples,
)
from infra.selector.encoder import DEFAULT_MAX_LENGTH, SpanEncoder
from infra.selector.index import GPU_CHOICES, KINDS
from infra.selector.selector import ScoringSettings, Selector, new_selector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a selector's training depends on besides its data and encoder."""

    max_shift: int = 2
    wrong_types: bool = True
    negatives_per_positive: int = 4
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    loss_temperature: float = 0.1
    max_steps: int = 300
    time_budget_s: float | None = None
    max_train_spans: int | None = None
    max_dev_spans: int | None = 2000
    max_bank: int | None = 100_000
    trainable_layers: int | None = None
    k: int = 10
    method: str = "vote"
    vote_temperature: float = 0.1
    index: str = "auto"
    gpu: str = "auto"
    window: int = 64
    max_length: int = DEFAULT_MAX_LENGTH
    encode_batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = ("negatives_per_positive", "batch_size", "max_steps", "k", "max_length")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_shift < 1:
            raise ValueError(f"max_shift must be >= 1, got {self.max_shift}")
        if self.lr <= 0 or self.loss_temperature <= 0:
            raise ValueError("lr and loss_temperature must be positive")
        if self.index not in KINDS:
            raise ValueError(f"index must be one of {', '.join(KINDS)}, got {self.index!r}")
        if self.gpu not in GPU_CHOICES:
            raise ValueError(f"gpu must be one of {', '.join(GPU_CHOICES)}, got {self.gpu!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")
        ScoringSettings(self.k, self.method, self.vote_temperature)  # validates those


#: ``on_progress(stage, done, total)``: stages ``train`` (steps), ``bank`` and ``dev``
#: (candidates encoded).
Progress = Callable[[str, int, int], None]


def supcon_loss(z: torch.Tensor, classes: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss of normalised embeddings ``z`` with integer ``classes``.

    For each anchor with at least one other sample of its class: minus the mean, over those
    positives, of the log-softmax of its similarity to them among all other samples.
    """
    n = z.shape[0]
    sim = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (classes[:, None] == classes[None, :]) & ~self_mask
    count = positive.sum(1)
    anchors = count > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    per_anchor = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / count[anchors]
    return -per_anchor.mean()


def batches(samples: Sequence[Sample], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of sample indices: whole groups (a gold span and its twins),
    shuffled, packed up to ``batch_size`` without splitting a group (a group larger than a
    batch is cut to one). Batches of a single sample are left out (no pair to contrast)."""
    groups: dict[int, list[int]] = {}
    loose = []
    for i, s in enumerate(samples):
        if s.group < 0:
            loose.append([i])
        else:
            groups.setdefault(s.group, []).append(i)
    units = list(groups.values()) + loose
    rng.shuffle(units)
    out: list[list[int]] = []
    current: list[int] = []
    for unit in units:
        unit = unit[:batch_size]
        if len(current) + len(unit) > batch_size:
            out.append(current)
            current = []
        current.extend(unit)
    if current:
        out.append(current)
    return [b for b in out if len(b) > 1]


def _cap_groups(samples: list[Sample], limit: int | None, rng: random.Random) -> list[Sample]:
    """The samples of at most ``limit`` gold groups (drawn), spurious ones at the same rate."""
    groups = sorted({s.group for s in samples if s.group >= 0})
    if limit is None or len(groups) <= limit:
        return samples
    kept = set(rng.sample(groups, limit))
    rate = limit / len(groups)
    return [s for s in samples if s.group in kept or (s.group < 0 and rng.random() < rate)]


def documents_samples(
    docs: Sequence[AnnotatedDocument],
    labels: Sequence[str],
    config: TrainConfig,
    predictions: Mapping[str, Sequence[Span]] | None = None,
) -> list[Sample]:
    """Training samples of gold documents (and a tagger's predictions, by document id)."""
    by_position = (
        {i: predictions.get(d.id, ()) for i, d in enumerate(docs)} if predictions else None
    )
    return training_samples(
        [(d.text, d.spans) for d in docs],
        labels,
        max_shift=config.max_shift,
        wrong_types=config.wrong_types,
        predictions=by_position,
    )


def dev_candidates(
    docs: Sequence[AnnotatedDocument],
    labels: Sequence[str],
    config: TrainConfig,
    predictions: Mapping[str, Sequence[Span]] | None = None,
) -> tuple[list[Candidate], list[bool], int]:
    """``(candidates, correct, n_gold)`` to choose the threshold on.

    With a tagger's predictions: those, judged against gold. Without: gold spans and their
    sampled twins (boundary shifts, other types), at most ``max_dev_spans`` gold spans.
    """
    rng = random.Random(config.seed + 1)
    if predictions is not None:
        cands, correct, n_gold = [], [], 0
        for d in docs:
            gold = {(s.start, s.end, s.label) for s in d.spans}
            n_gold += len(gold)
            for p in sorted(set(predictions.get(d.id, ()))):
                cands.append(Candidate(d.text, p.start, p.end, p.label))
                correct.append((p.start, p.end, p.label) in gold)
        return cands, correct, n_gold
    samples = documents_samples(docs, labels, config)
    samples = _cap_groups(samples, config.max_dev_spans, rng)
    samples = subsample(samples, 2, seed=config.seed + 1)
    n_gold = sum(s.positive for s in samples)
    return [s.candidate for s in samples], [s.positive for s in samples], n_gold


def train(
    train_docs: Sequence[AnnotatedDocument],
    dev_docs: Sequence[AnnotatedDocument],
    labels: Sequence[str],
    config: TrainConfig,
    *,
    encoder: str | None = None,
    train_predictions: Mapping[str, Sequence[Span]] | None = None,
    dev_predictions: Mapping[str, Sequence[Span]] | None = None,
    on_progress: Progress | None = None,
    info: dict[str, Any] | None = None,
) -> Selector:
    """Fine-tune the encoder (folder ``encoder``, default MiniLM) and build the selector."""
    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    progress = on_progress or (lambda stage, done, total: None)

    all_samples = documents_samples(train_docs, labels, config, train_predictions)
    all_samples = _cap_groups(all_samples, config.max_train_spans, rng)
    samples = subsample(all_samples, config.negatives_per_positive, seed=config.seed)
    if not any(s.positive for s in samples):
        raise ValueError("no gold spans to train the selector on")
    class_ids = {c: i for i, c in enumerate(sorted({s.contrastive_class for s in samples}))}

    span_encoder = SpanEncoder(
        encoder, device=config.device, max_length=config.max_length, window=config.window
    )
    span_encoder.freeze_below(config.trainable_layers)
    params = [p for p in span_encoder.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup_ratio * config.max_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / warmup,
            max(0.0, (config.max_steps - step) / max(1, config.max_steps - warmup)),
        ),
    )
    inputs = span_encoder.inputs([s.candidate for s in samples])
    classes = torch.tensor([class_ids[s.contrastive_class] for s in samples])
    span_encoder.model.train()
    step, losses, stopped = 0, [], "max_steps"
    progress("train", 0, config.max_steps)
    train_started = time.monotonic()
    while step < config.max_steps:
        epoch = batches(samples, config.batch_size, rng)
        if not epoch:
            raise ValueError("too few training samples for one batch")
        for batch in epoch:
            z = span_encoder.forward([inputs[i] for i in batch])
            loss = supcon_loss(z, classes[batch].to(z.device), config.loss_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            progress("train", step, config.max_steps)
            if step >= config.max_steps:
                break
            budget = config.time_budget_s
            if budget is not None and time.monotonic() - train_started >= budget:
                stopped = "time_budget"
                break
        if stopped == "time_budget":
            break
    train_time = time.monotonic() - train_started
    span_encoder.model.eval()

    bank_samples = list(samples)
    if config.max_bank is not None and len(bank_samples) > config.max_bank:
        bank_samples = rng.sample(bank_samples, config.max_bank)
    n_bank = len(bank_samples)
    progress("bank", 0, n_bank)
    vectors = span_encoder.encode(
        [s.candidate for s in bank_samples],
        config.encode_batch_size,
        lambda done: progress("bank", done, n_bank),
    )
    settings = ScoringSettings(
        config.k, config.method, config.vote_temperature, 0.5, config.window, config.max_length
    )
    selector = new_selector(
        span_encoder, vectors, bank_samples, settings, index_kind=config.index, gpu=config.gpu
    )

    cands, correct, n_gold = dev_candidates(dev_docs, labels, config, dev_predictions)
    progress("dev", 0, len(cands))
    scores = selector.score(
        cands, config.encode_batch_size, lambda done: progress("dev", done, len(cands))
    )
    chosen = best_threshold(scores, correct, n_gold)
    selector.settings = ScoringSettings(
        config.k,
        config.method,
        config.vote_temperature,
        chosen.value,
        config.window,
        config.max_length,
    )
    tp_all = int(sum(correct))
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[str(s.kind)] = kinds.get(str(s.kind), 0) + 1
    selector.info = {
        **(info or {}),
        "encoder_source": str(span_encoder.path),
        "training": {
            "config": asdict(config),
            "steps": step,
            "stopped": stopped,
            "loss_first": losses[0] if losses else None,
            "loss_last": float(np.mean(losses[-10:])) if losses else None,
            "train_time_s": round(train_time, 1),
            "total_time_s": round(time.monotonic() - started, 1),
            "gold_spans": sum(s.positive for s in samples),
            "samples": len(samples),
            "samples_by_kind": kinds,
            "bank": n_bank,
            "tagger_predictions": train_predictions is not None,
        },
        "dev": {
            "candidates": len(cands),
            "correct": tp_all,
            "gold": n_gold,
            "from": "tagger" if dev_predictions is not None else "sampled twins",
            "f1_without": 2 * tp_all / (len(cands) + n_gold) if cands or n_gold else 0.0,
            "threshold": chosen.value,
            "f1_with": chosen.f1,
            "precision_with": chosen.precision,
            "recall_with": chosen.recall,
            "accepted": chosen.accepted,
        },
    }
    log.info("selector trained: %s", selector.info["dev"])
    return selector
