"""Supervised fine-tuning of a local causal LM on instruction examples (full or LoRA).

Why a plain training loop and not ``transformers.Trainer``: the three things this command must
get exactly right are each simpler to state and to test in forty lines of loop than through
Trainer's callbacks and hidden state:

* **response-only loss**: labels carry ``-100`` on every prompt token (:mod:`.encoding`), and
  the loss of an optimizer step is the sum of token losses over all micro-batches of the step
  divided by the step's number of response tokens, so gradient accumulation gives the same
  update as one big batch, and so does ``max_batch_tokens``, which runs a batch whose padded
  size is over the cap as several micro-batches (memory grows with the longest example);
* **resume = uninterrupted**: a checkpoint holds the trainable weights, the optimizer, the
  scheduler, the RNG states and the data position (epoch, next batch); the batch plan of an
  epoch is a pure function of (lengths, batch size, seed, epoch)
  (:func:`bioner.training.batching.epoch_plan`), so a resumed run replays exactly the batches
  that were left, and on CPU in fp32 gives bit-identical weights (tested);
* **wall-clock budget**: checked after every optimizer step with the last step's duration as
  the margin; when the time is up, a checkpoint and the final model are saved and the marker
  says ``"stopped": "time_budget"`` (a later ``--resume`` continues).

The same code serves a small model on a 2-core CPU (fp32, few threads) and a 7B model on a GPU
(``device="cuda"``, ``precision="bf16"`` weights or ``"bf16-mixed"`` autocast over fp32 weights,
``gradient_checkpointing``, LoRA). Models are folders only: ``local_files_only``, never a hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"training needs torch and transformers ({e.name} is missing): "
        "install the llm extra: pip install -e .[llm]"
    ) from e

from bioner.labels import get_schema
from bioner.prompts import PROMPT_VERSION
from bioner.training.batching import accumulation_groups, epoch_plan, token_chunks
from bioner.training.data import COPY_DATASET, Example
from infra.llm.local import MARKER, check_model_dir, marker, model_id_of
from infra.llm.prefixlm import training_mask
from infra.llm.transformers_engine import stop_token_ids
from infra.training.constrained_loss import LOSSES, ConstraintSets, loss_sum, restriction
from infra.training.data import data_digest, read_examples
from infra.training.encoding import IGNORE_INDEX, Encoded, encode_example

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "bf16-mixed"]
CHECKPOINTS = "checkpoints"
_STATE = "state.json"

#: LoRA target module names by architecture family (the family with most names present wins).
LORA_TARGETS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),  # Llama, Qwen
    ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),  # GPT-NeoX, Falcon
    ("c_attn", "c_proj", "c_fc"),  # GPT-2
    ("Wqkv", "out_proj", "fc1", "fc2"),  # Phi
    ("query", "key", "value", "dense"),  # BERT-ish (MiniLM as a decoder)
)


@dataclass
class SFTConfig:
    """Everything a training run depends on (saved in checkpoints and the model marker)."""

    model: str
    data: str
    out: str
    # what is trained
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    merge_lora: bool = True
    # which examples
    datasets: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    #: dataset -> how many times each of its examples is seen per epoch (up-weighting a set in
    #: joint training); the others once
    repeat: dict[str, int] | None = None
    max_length: int = 1024
    # how long
    epochs: int = 1
    max_steps: int | None = None
    time_budget_s: float | None = None
    # optimisation
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    bucket_window: int = 50
    #: padded tokens per forward pass: a batch over it runs as several micro-batches of the
    #: same optimizer step (same update up to float rounding; caps memory, not the math)
    max_batch_tokens: int | None = None
    #: "token": cross-entropy over the vocabulary; "constrained": over the tokens the copy
    #: constraint allows at each position (:mod:`infra.training.constrained_loss`)
    loss: str = "token"
    seed: int = 0
    # hardware
    device: str = "cpu"
    precision: Precision = "fp32"
    #: dtype of the saved model ("fp32" or "bf16"; None: as trained); checkpoints keep theirs.
    save_dtype: str | None = None
    gradient_checkpointing: bool = False
    threads: int | None = None
    # bookkeeping
    save_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    command: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "bf16-mixed"):
            raise ValueError(f"precision must be fp32, bf16 or bf16-mixed: {self.precision!r}")
        if self.save_dtype not in (None, "fp32", "bf16"):
            raise ValueError(f"save_dtype must be fp32 or bf16: {self.save_dtype!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.epochs < 1:
            raise ValueError("batch_size, grad_accum and epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError("max_batch_tokens must be >= 1")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}: {self.loss!r}")
        bad = {k: n for k, n in (self.repeat or {}).items() if not isinstance(n, int) or n < 1}
        if bad:
            raise ValueError(f"repeat counts must be whole numbers >= 1: {bad}")

    # What a resumed run must share with the run it resumes.
    _RESUME_KEYS = (
        "model",
        "lora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "datasets",
        "formats",
        "repeat",
        "max_length",
        "epochs",
        "max_steps",
        "batch_size",
        "grad_accum",
        "lr",
        "weight_decay",
        "warmup_ratio",
        "bucket_window",
        "seed",
        "precision",
        "loss",
    )

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> SFTConfig:
        """The config of :meth:`to_json`'s output (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


@dataclass
class StepInfo:
    """Progress after one optimizer step (for progress bars and logs)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    examples_per_s: float
    elapsed_s: float


@dataclass
class TrainResult:
    """What a run did."""

    out: Path
    steps: int
    total_steps: int
    stopped: str  # "completed", "max_steps" or "time_budget"
    losses: list[float]
    training_time_s: float
    examples_seen: int
    skipped_too_long: int
    checkpoint: Path | None


# --------------------------------------------------------------------------- data


def load_examples(config: SFTConfig) -> list[Example]:
    """The examples of ``config.data`` with the dataset and format filters applied, each of a
    dataset in ``config.repeat`` as many times as it says (right after the original)."""
    examples = read_examples(Path(config.data))
    if config.datasets:
        examples = [e for e in examples if e.dataset in set(config.datasets)]
    if config.formats:
        examples = [e for e in examples if e.format in set(config.formats)]
    if not examples:
        raise ValueError(f"{config.data}: no training examples (after the filters)")
    check_one_prompt(examples)
    if config.repeat:
        unknown = sorted(set(config.repeat) - {e.dataset for e in examples})
        if unknown:
            raise ValueError(
                f"{config.data}: --repeat names datasets with no training examples here: "
                + ", ".join(unknown)
            )
        examples = [e for e in examples for _ in range(config.repeat.get(e.dataset, 1))]
    return examples


def encode_all(
    tokenizer: Any,
    examples: Sequence[Example],
    max_length: int,
    constraint: ConstraintSets | None = None,
) -> tuple[list[Encoded], int]:
    """Encoded examples no longer than ``max_length`` tokens, and how many were skipped;
    with ``constraint``, each with its allowed sets (the constrained loss).

    Too long examples are skipped, not truncated: a cut response teaches an unfinished copy.
    """
    out, skipped = [], 0
    for ex in examples:
        enc = encode_example(tokenizer, ex.prompt, ex.response)
        if len(enc) > max_length:
            skipped += 1
        else:
            out.append(constraint.attach(enc, ex) if constraint is not None else enc)
    return out, skipped


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and pad),
    and each row's ``prompt_lengths`` (a prefix-LM's mask needs them); when examples carry
    allowed sets, the restricted positions and their ids
    (:func:`infra.training.constrained_loss.restriction`)."""
    width = max(len(e) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    prompts = torch.tensor([e.n_prompt for e in batch], dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels, "prompt_lengths": prompts}
    if any(e.allowed is not None for e in batch):
        out.update(restriction(batch, width))
    return out


def n_targets(batch: Sequence[Encoded]) -> int:
    """Number of tokens with a loss (response tokens; the first token is never a target)."""
    return sum(len(e) - max(e.n_prompt, 1) for e in batch)


# --------------------------------------------------------------------------- model


def _dtype(precision: Precision) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def load_tokenizer(model_dir: Path) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def detect_lora_targets(model: torch.nn.Module) -> list[str]:
    """The LoRA target module names for ``model``'s architecture (see :data:`LORA_TARGETS`)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    # The family with the most names present (first on ties): "dense" alone is not BERT.
    found = max(([n for n in family if n in names] for family in LORA_TARGETS), key=len)
    if found:
        return found
    raise ValueError(
        "no known LoRA target modules in this model; give them (target_modules), "
        f"e.g. from: {sorted(n for n in names if n)[:30]}"
    )


def build_model(config: SFTConfig) -> torch.nn.Module:
    """The model to train: the base model, wrapped in LoRA adapters when ``config.lora``."""
    model = AutoModelForCausalLM.from_pretrained(
        check_model_dir(config.model), local_files_only=True, dtype=_dtype(config.precision)
    )
    if config.gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "LoRA needs peft: install the llm extra: pip install -e .[llm]"
            ) from e
        targets = list(config.target_modules or detect_lora_targets(model))
        torch.manual_seed(config.seed)  # the adapters' initialisation
        model = get_peft_model(
            model,
            LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            ),
        )
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
    return model.to(config.device)


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def make_optimizer(model: torch.nn.Module, config: SFTConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms (parameters of fewer than 2 dimensions)."""
    params = trainable_parameters(model)
    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the peak rate, then linear decay to zero at ``total_steps``."""
    warmup = max(0, round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``out/checkpoints``, if any."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / _STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(
    out: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``out/checkpoints/step-N`` atomically (staged, renamed); keep the last ``keep``."""
    root = out / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state['step']:08d}"
    staging = root / f".staging-{final.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    weights = {n: p.detach().cpu() for n, p in trainable_parameters(model).items()}
    torch.save(weights, staging / "trainable.pt")
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    torch.save(_rng_state(), staging / "rng.pt")
    (staging / _STATE).write_text(json.dumps(state, indent=2) + "\n", "utf-8")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    done = sorted((p for p in root.glob("step-*") if (p / _STATE).is_file()), key=lambda p: p.name)
    for old in done[: max(0, len(done) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_trainable(path: Path, model: torch.nn.Module) -> None:
    params = trainable_parameters(model)
    weights = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
    if set(weights) != set(params):
        raise ValueError(f"{path}: its trainable parameters do not match this model's")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; returns its state."""
    _load_trainable(path, model)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    _set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / _STATE).read_text("utf-8"))


# --------------------------------------------------------------------------- the loop


def _autocast(config: SFTConfig) -> contextlib.AbstractContextManager[Any]:
    if config.precision == "bf16-mixed":
        return torch.autocast(device_type=torch.device(config.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _keeps_logits(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (most causal LMs of transformers)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed response loss of one micro-batch.

    No prompt token has a loss, so the output layer runs only from the shortest prompt's last
    token on (``logits_to_keep``): on a small model with a large vocabulary that layer is a
    large share of the compute, and the prompt about half of the tokens.
    """
    mask = training_mask(model, batch["attention_mask"], batch["prompt_lengths"])
    ids = batch["input_ids"]
    width = ids.size(1)
    start = max(int(batch["prompt_lengths"].min()) - 1, 0) if _keeps_logits(model) else 0
    kwargs = {"logits_to_keep": width - start} if start else {}
    logits = model(input_ids=ids, attention_mask=mask, **kwargs).logits
    shifted = logits[:, -(width - start) : -1, :].float()  # predicts columns start+1 .. width-1
    targets = batch["labels"][:, start + 1 :]
    positions = batch.get("restrict_positions")
    if positions is not None and start:  # re-index from the (rows, width - 1) grid
        row, col = positions // (width - 1), positions % (width - 1)
        positions = row * (width - 1 - start) + col - start
    return loss_sum(shifted, targets, positions, batch.get("restrict_ids"))


def _steps(config: SFTConfig, n_examples: int) -> tuple[int, int]:
    """Optimizer steps per epoch and in the whole run."""
    steps_per_epoch = math.ceil(math.ceil(n_examples / config.batch_size) / config.grad_accum)
    return steps_per_epoch, config.max_steps or steps_per_epoch * config.epochs


def train(
    config: SFTConfig,
    *,
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` into ``config.out`` (see the module doc).

    ``resume`` continues from the latest checkpoint in ``config.out`` (an error if there is
    none or its settings differ). ``stop_after_steps`` ends this invocation after that many
    optimizer steps with a checkpoint, as an interruption would (for tests).
    """
    started = time.monotonic()
    out = Path(config.out)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    base = check_model_dir(config.model)
    tokenizer = load_tokenizer(base)
    examples = load_examples(config)
    model = build_model(config)
    constraint = None
    if config.loss != "constrained" and any(e.annotated for e in examples):
        raise ValueError(
            "the data has examples of the full view (they answer only some of the types they "
            "ask): train them with --loss constrained, which leaves the other lines out"
        )
    if config.loss == "constrained":
        constraint = ConstraintSets(tokenizer, stop_token_ids(model.generation_config, tokenizer))
    encoded, skipped = encode_all(tokenizer, examples, config.max_length, constraint)
    if not encoded:
        raise ValueError(f"every example is longer than max_length={config.max_length} tokens")
    lengths = [len(e) for e in encoded]
    steps_per_epoch, total_steps = _steps(config, len(encoded))
    epochs = math.ceil(total_steps / steps_per_epoch)

    model.train()
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, total_steps, config.warmup_ratio)
    digest = data_digest(examples)
    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "next_batch": 0,
        "examples_seen": 0,
        "training_time_s": 0.0,
        "losses": [],
        "data_digest": digest,
        "config": config.to_json(),
    }
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise FileNotFoundError(f"{out}: no checkpoint to resume from")
        saved = json.loads((ckpt / _STATE).read_text("utf-8"))
        _check_resumable(config, saved, digest, ckpt)
        state = load_checkpoint(ckpt, model, optimizer, scheduler)
        log.info("resuming from %s (step %d)", ckpt, state["step"])
    elif latest_checkpoint(out) is not None:
        raise FileExistsError(f"{out} has checkpoints: resume, or choose an empty folder")

    device = torch.device(config.device)
    pad_id = tokenizer.pad_token_id
    budget = config.time_budget_s
    run_started = time.monotonic()
    prior_time = float(state["training_time_s"])
    stopped = "completed"
    steps_this_run = 0
    last_step_s = 0.0
    last_ckpt: Path | None = None

    def checkpoint() -> Path:
        state["training_time_s"] = prior_time + (time.monotonic() - run_started)
        return save_checkpoint(out, model, optimizer, scheduler, state, config.keep_checkpoints)

    while state["step"] < total_steps and state["epoch"] < epochs:
        plan = epoch_plan(
            lengths, config.batch_size, config.seed, state["epoch"], window=config.bucket_window
        )
        groups = accumulation_groups(len(plan), config.grad_accum)
        for group in groups:
            if group.start < state["next_batch"]:
                continue
            step_started = time.monotonic()
            batches = [[encoded[i] for i in plan[b]] for b in group]
            total = sum(n_targets(b) for b in batches)
            loss_total = 0.0
            optimizer.zero_grad(set_to_none=True)
            micro = [
                [b[i] for i in chunk]
                for b in batches
                for chunk in token_chunks([len(e) for e in b], config.max_batch_tokens)
            ]
            for b in micro:
                tensors = {k: v.to(device) for k, v in collate(b, pad_id).items()}
                with _autocast(config):
                    loss = _loss_sum(model, tensors)
                (loss / max(total, 1)).backward()
                loss_total += float(loss.detach())
            if config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(
                    list(trainable_parameters(model).values()), config.max_grad_norm
                )
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["next_batch"] = group.stop
            n_examples = sum(len(b) for b in batches)
            state["examples_seen"] += n_examples
            step_loss = loss_total / max(total, 1)
            state["losses"].append(round(step_loss, 6))
            steps_this_run += 1
            last_step_s = time.monotonic() - step_started
            if on_step is not None:
                on_step(
                    StepInfo(
                        state["step"],
                        total_steps,
                        state["epoch"],
                        step_loss,
                        scheduler.get_last_lr()[0],
                        n_examples / max(last_step_s, 1e-9),
                        prior_time + time.monotonic() - run_started,
                    )
                )
            if config.log_every and state["step"] % config.log_every == 0:
                log.info("step %d/%d loss %.4f", state["step"], total_steps, step_loss)
            if state["step"] >= total_steps:
                break
            if stop_after_steps is not None and steps_this_run >= stop_after_steps:
                last_ckpt = checkpoint()
                return _result(config, state, total_steps, "interrupted", skipped, last_ckpt)
            if budget is not None and time.monotonic() - started + last_step_s > budget:
                stopped = "time_budget"
                break
            if config.save_every and state["step"] % config.save_every == 0:
                last_ckpt = checkpoint()
        if stopped == "time_budget" or state["step"] >= total_steps:
            break
        state["epoch"] += 1
        state["next_batch"] = 0
    if stopped == "completed" and config.max_steps and state["step"] >= config.max_steps:
        stopped = "max_steps"
    last_ckpt = checkpoint()
    save_final(config, model, tokenizer, state, total_steps, stopped, skipped, examples)
    return _result(config, state, total_steps, stopped, skipped, last_ckpt)


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, *, save_dtype: str | None = None
) -> Path:
    """Save the model of a training checkpoint as a model folder in ``out``, as the run would
    have saved it had it stopped there (marker ``"stopped": "checkpoint"``), to evaluate or
    compare intermediate steps. The base model and data the run used must still be where its
    settings say (paths are as the run was given them)."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / _STATE).is_file():
        raise FileNotFoundError(f"{checkpoint}: not a training checkpoint (no {_STATE})")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; export into a new folder")
    state = json.loads((checkpoint / _STATE).read_text("utf-8"))
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    saved = {k: v for k, v in state["config"].items() if k in known}
    config = SFTConfig.from_json(
        {**saved, "out": str(out), "save_dtype": save_dtype or saved.get("save_dtype")}
    )
    for path, what in ((config.model, "base model"), (config.data, "training data")):
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{checkpoint}: its {what} {path} is not here (run from the folder it trained in)"
            )
    tokenizer = load_tokenizer(check_model_dir(config.model))
    examples = load_examples(config)
    if data_digest(examples) != state["data_digest"]:
        raise ValueError(f"{checkpoint}: the training examples in {config.data} have changed")
    encoded, skipped = encode_all(tokenizer, examples, config.max_length)
    total_steps = _steps(config, len(encoded))[1]
    model = build_model(config)
    _load_trainable(checkpoint, model)
    return save_final(config, model, tokenizer, state, total_steps, "checkpoint", skipped, examples)


def _check_resumable(config: SFTConfig, saved: dict[str, Any], digest: str, ckpt: Path) -> None:
    now = config.to_json()
    # A setting added after the checkpoint was written ran at its default there.
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(SFTConfig)
        if f.default is not dataclasses.MISSING
    }
    then = {**defaults, **saved["config"]}
    differ = [k for k in SFTConfig._RESUME_KEYS if now.get(k) != then.get(k)]
    if differ:
        raise ValueError(f"{ckpt}: cannot resume, settings differ: {', '.join(differ)}")
    if saved["data_digest"] != digest:
        raise ValueError(f"{ckpt}: cannot resume, the training examples differ")


def _result(
    config: SFTConfig,
    state: dict[str, Any],
    total_steps: int,
    stopped: str,
    skipped: int,
    ckpt: Path | None,
) -> TrainResult:
    return TrainResult(
        Path(config.out),
        state["step"],
        total_steps,
        stopped,
        list(state["losses"]),
        float(state["training_time_s"]),
        int(state["examples_seen"]),
        skipped,
        ckpt,
    )


def save_final(
    config: SFTConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    state: dict[str, Any],
    total_steps: int,
    stopped: str,
    skipped: int,
    examples: Sequence[Example],
) -> Path:
    """``save_pretrained`` of the model (LoRA: ``adapter/`` and, merged, the folder itself),
    the tokenizer, and the ``bioner-model.json`` marker with ``"trained": true``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(config.save_dtype or "")
    if config.lora:
        model.save_pretrained(out / "adapter")
        if config.merge_lora:
            merged = model.merge_and_unload()
            (merged.to(dtype) if dtype else merged).save_pretrained(out)
    else:
        (model.to(dtype) if dtype else model).save_pretrained(out)
    tokenizer.save_pretrained(out)
    per_dataset: dict[str, int] = {}
    for e in examples:
        per_dataset[e.dataset] = per_dataset.get(e.dataset, 0) + 1
    info = {
        "trained": True,
        "kind": "bioner-sft-lora" if config.lora else "bioner-sft",
        "prompt": trained_prompt(examples),
        # What the model can be asked (infra.llm.local.trained_schemas).
        "schemas": sorted(
            {get_schema(e.schema).base for e in examples if e.dataset != COPY_DATASET}
        ),
        "base_model": model_id_of(config.model),
        "base_marker": marker(config.model),
        "data": {
            "path": str(config.data),
            "examples": len(examples),
            "examples_per_dataset": per_dataset,
            "skipped_too_long": skipped,
            "digest": state["data_digest"],
        },
        "config": config.to_json(),
        "training_loss": config.loss,
        "command": list(config.command) or sys.argv,
        "steps": state["step"],
        "planned_steps": total_steps,
        "epochs_started": state["epoch"] + 1,
        "examples_seen": state["examples_seen"],
        "stopped": stopped,
        "final_loss": state["losses"][-1] if state["losses"] else None,
        "training_time_s": round(float(state["training_time_s"]), 1),
        "merged": bool(config.lora and config.merge_lora),
        "saved_dtype": config.save_dtype or ("bf16" if config.precision == "bf16" else "fp32"),
    }
    (out / MARKER).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return out


def trained_prompt(examples: Sequence[Example]) -> str:
    """The one symbolic prompt version of ``examples`` (the model answers prompts made so).

    Examples of several symbolic prompt versions make a model no engine can prompt rightly,
    so training refuses them (:func:`check_one_prompt`, before the first step).
    """
    versions = {e.prompt_version for e in examples if e.format == "symbolic"}
    return versions.pop() if len(versions) == 1 else PROMPT_VERSION


def check_one_prompt(examples: Sequence[Example]) -> None:
    """ValueError when the symbolic examples were made with more than one prompt version."""
    versions = sorted({e.prompt_version for e in examples if e.format == "symbolic"})
    if len(versions) > 1:
        raise ValueError(
            f"the examples use {len(versions)} prompt versions ({', '.join(versions)}); "
            "train on data built with one --prompt"
        )


@contextlib.contextmanager
def rich_progress(total_steps: int | None = None) -> Iterator[Callable[[StepInfo], None]]:
    """A rich progress bar (to stderr) and the ``on_step`` callback that advances it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[speed]} ex/s  lr {task.fields[lr]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task("train", total=total_steps, loss="-", speed="-", lr="-")

    def on_step(info: StepInfo) -> None:
        progress.update(
            task,
            completed=info.step,
            total=info.total_steps,
            loss=f"{info.loss:.4f}",
            speed=f"{info.examples_per_s:.1f}",
            lr=f"{info.lr:.2e}",
        )

    with progress:
        yield on_step
