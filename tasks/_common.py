"""What every task module shares: the retry rule, the task options and the tags."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from infra.ingest_store import code_version

#: The tag of tasks that hold an accelerator. A Prefect tag concurrency limit on it
#: (``prefect concurrency-limit create gpu N``) caps them at N at once across all workers;
#: it is given only to tasks of a run on a GPU device, so CPU runs are never held by it.
GPU_TAG = "gpu"


def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition: I/O and network failures may pass; bad input and bugs will not."""
    try:
        state.result()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False  # the same path will be just as missing on the next try
    except OSError as e:
        # Storage errors say whether another try can help (not with denied credentials).
        return getattr(e, "transient", True)
    except Exception:  # InputError and bugs: retrying would fail the same way
        return False
    return False


#: Tasks pass URIs, so there is nothing worth caching or persisting in Prefect's store: a
#: stage skips its work by its own content-addressed check (see tasks.annotate.is_stale),
#: which holds across flow runs, where Prefect's default cache key includes the run.
TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": transient,
}

#: Retries of tasks whose work is worth another try after a transient error: 3 more tries,
#: 2 s, 4 s, 8 s apart (each +-50% jitter so that many shards do not retry in step).
RETRY_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
}


def table_metadata(run_id: str, **extra: str) -> dict[str, str]:
    """Provenance written into every table's footer."""
    return {"bioner.run_id": run_id, "bioner.code_version": code_version(), **extra}
