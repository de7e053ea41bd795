"""The Prefect task of the training flow: fine-tune a tagger, resuming from its checkpoints.

One coarse task (minutes to hours). Its retries continue from the latest checkpoint in the output
folder rather than starting over, and a run whose output already holds a finished model with
the same settings resumes at its last step and only saves it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks._common import RETRY_OPTIONS, TASK_OPTIONS


@task(name="train-tagger", **{**RETRY_OPTIONS, "retries": 1}, **TASK_OPTIONS)
def train_model(config: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune with :func:`infra.training.sft.train` (``config``: :class:`SFTConfig`'s
    fields); resumes when the output folder has a checkpoint. Returns the result's facts."""
    from infra.training.sft import SFTConfig, latest_checkpoint, train  # torch: only here

    settings = SFTConfig.from_json(config)
    resume = latest_checkpoint(Path(settings.out)) is not None
    result = train(settings, resume=resume)
    return {
        "out": str(result.out),
        "steps": result.steps,
        "total_steps": result.total_steps,
        "stopped": result.stopped,
        "resumed": resume,
        "final_loss": result.losses[-1] if result.losses else None,
        "training_time_s": round(result.training_time_s, 1),
        "examples_seen": result.examples_seen,
        "skipped_too_long": result.skipped_too_long,
    }
