"""The training flow: fine-tune the tagger (``bioner train`` as a Prefect flow).

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
