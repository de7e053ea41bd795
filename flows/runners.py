"""Where a flow's shard tasks run: threads here (default), a Ray cluster, or a Dask cluster.

Chosen by configuration, never by code: the ``runner`` and ``runner_address`` parameters of the
flows, else ``BIONER_TASK_RUNNER`` (``thread``, ``ray``, ``dask``) and ``BIONER_RUNNER_ADDRESS``
(``ray://head:10001`` or ``auto`` for Ray, ``tcp://scheduler:8786`` for Dask; none starts a
local cluster). Ray and Dask come with the ``scale`` extra; asking for one that is not
installed fails with the extra to install.

GPU placement: a task of a run on a GPU device asks Ray for ``num_gpus=1`` (Ray sets
``CUDA_VISIBLE_DEVICES``) and Dask for a ``GPU`` resource (workers started with
``--resources GPU=1``), and carries the ``gpu`` tag for Prefect's tag concurrency limit. Ray
ends a GPU task's worker process after each call unless told otherwise; ``max_calls=0`` keeps it,
so the engine a worker built (:func:`tasks.annotate.engine_for`) serves its next shards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

RUNNERS: tuple[str, ...] = ("thread", "ray", "dask")
ENV_RUNNER = "BIONER_TASK_RUNNER"
ENV_ADDRESS = "BIONER_RUNNER_ADDRESS"


@dataclass(frozen=True)
class RunnerSettings:
    """Which task runner, the address of its cluster (None: a local one), and for the thread
    runner its number of threads (None: Prefect's default)."""

    kind: str = "thread"
    address: str | None = None
    max_workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown task runner {self.kind!r}; known: {', '.join(RUNNERS)}")
        if self.address is not None and self.kind == "thread":
            raise ValueError("the thread runner takes no address (it runs in this process)")
        if self.max_workers is not None and self.max_workers < 1:
            raise ValueError(f"max_workers must be at least 1: {self.max_workers}")

    @classmethod
    def resolve(
        cls, kind: str | None = None, address: str | None = None, max_workers: int | None = None
    ) -> RunnerSettings:
        """The settings a flow was given, completed from the environment."""
        kind = kind or os.environ.get(ENV_RUNNER) or "thread"
        if address is None and kind != "thread":
            address = os.environ.get(ENV_ADDRESS) or None
        return cls(kind, address, max_workers)


def _missing(package: str, error: ImportError) -> ImportError:
    return ImportError(
        f"the {package} task runner needs {error.name}: install the scale extra: "
        "pip install -e .[scale]"
    )


def task_runner(settings: RunnerSettings) -> Any:
    """A new Prefect task runner for ``settings`` (a flow takes it with ``with_options``)."""
    if settings.kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as e:
            raise _missing("ray", e) from None
        # Workers are Ray's; the runner's own ray.init (no cluster running here) starts a local
        # one, without the dashboard.
        return RayTaskRunner(
            address=settings.address,
            init_kwargs={} if settings.address else {"include_dashboard": False},
        )
    if settings.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as e:
            raise _missing("dask", e) from None
        if settings.address:
            return DaskTaskRunner(address=settings.address)
        return DaskTaskRunner(cluster_kwargs={"processes": True, "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner  # Prefect: only once it is needed

    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


def is_gpu(device: str) -> bool:
    """Whether a torch device string names an accelerator (``cuda``, ``cuda:1`` ...)."""
    return device.split(":")[0] in ("cuda", "gpu")


@contextmanager
def gpu_placement(settings: RunnerSettings, device: str) -> Iterator[None]:
    """Tasks submitted inside ask their engine for one GPU (see the module doc)."""
    if not is_gpu(device) or settings.kind == "thread":
        with nullcontext():
            yield
        return
    if settings.kind == "ray":
        from prefect_ray.context import remote_options

        with remote_options(num_gpus=1, max_calls=0):
            yield
        return
    import dask

    with dask.annotate(resources={"GPU": 1}):
        yield
