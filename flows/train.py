"""The training flows: fine-tune the tagger (``bioner train`` as a Prefect flow), train the
selector (``bioner train-selector``).

Builds the same :class:`~infra.training.sft.SFTConfig` as the command and runs it as one task
(:func:`tasks.train.train_model`), tagged ``gpu`` on a GPU device so that Prefect's tag
concurrency limit and the GPU work pool keep one training per accelerator. A rerun, or a retry
after a crash, resumes from the output folder's latest checkpoint.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import Field

from flows.runners import is_gpu
from infra.selector.train import TrainConfig
from tasks import select as select_tasks
from tasks._common import GPU_TAG
from tasks.train import train_model


@flow(name="train-tagger", validate_parameters=True)
def train_tagger(
    model: str,
    data: str,
    out: str,
    lora: bool = False,
    datasets: list[str] | None = None,
    formats: list[str] | None = None,
    epochs: Annotated[int, Field(ge=1)] = 1,
    max_steps: Annotated[int, Field(ge=1)] | None = None,
    time_budget_min: Annotated[float, Field(gt=0)] | None = None,
    batch_size: Annotated[int, Field(ge=1)] = 8,
    grad_accum: Annotated[int, Field(ge=1)] = 1,
    max_batch_tokens: Annotated[int, Field(ge=1)] | None = None,
    loss: Literal["token", "constrained"] = "token",
    lr: Annotated[float, Field(ge=0)] = 1e-4,
    max_length: Annotated[int, Field(ge=8)] = 1024,
    seed: int = 0,
    device: str = "cpu",
    precision: Literal["fp32", "bf16", "bf16-mixed"] = "fp32",
    gradient_checkpointing: bool = False,
    threads: Annotated[int, Field(ge=1)] | None = None,
    save_every: Annotated[int, Field(ge=0)] = 200,
) -> dict[str, Any]:
    """Fine-tune the local model folder ``model`` on the examples in ``data`` into ``out``
    (full weights, or LoRA adapters merged into it); returns what the run did."""
    config = {
        "model": model,
        "data": data,
        "out": out,
        "lora": lora,
        "datasets": datasets,
        "formats": formats,
        "epochs": epochs,
        "max_steps": max_steps,
        "time_budget_s": time_budget_min * 60 if time_budget_min else None,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "max_batch_tokens": max_batch_tokens,
        "loss": loss,
        "lr": lr,
        "max_length": max_length,
        "seed": seed,
        "device": device,
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
        "threads": threads,
        "save_every": save_every,
        "command": [*sys.argv[:1], "train-tagger flow"],
    }
    task = train_model.with_options(tags={GPU_TAG}) if is_gpu(device) else train_model
    return task(config)


@flow(name="train-selector", validate_parameters=True)
def train_selector(
    set_name: str,
    out: str,
    encoder: str | None = None,
    data_root: str | None = None,
    max_steps: Annotated[int, Field(ge=1)] = 300,
    time_budget_min: Annotated[float, Field(gt=0)] | None = None,
    max_train_spans: Annotated[int, Field(ge=1)] | None = None,
    trainable_layers: Annotated[int, Field(ge=1)] | None = None,
    device: str = "cpu",
    threads: Annotated[int, Field(ge=1)] | None = None,
    seed: int = 0,
) -> str:
    """Train the contrastive selector on benchmark ``set_name`` (``bioner train-selector`` as a
    flow: one task, tagged ``gpu`` on a GPU device); returns the selector folder ``out``."""
    config = TrainConfig(
        max_steps=max_steps,
        time_budget_s=time_budget_min * 60 if time_budget_min else None,
        max_train_spans=max_train_spans,
        trainable_layers=trainable_layers,
        device=device,
        threads=threads,
        seed=seed,
    )
    task = select_tasks.train_selector
    task = task.with_options(tags={GPU_TAG}) if is_gpu(device) else task
    return task(set_name, out, encoder=encoder, data_root=data_root, config=config)
