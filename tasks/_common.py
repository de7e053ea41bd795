"""What every task module shares: the retry rule and the task options."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task

from infra.ingest_store import code_version


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


#: Tasks pass URIs, so there is nothing worth caching or persisting in Prefect's store.
TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": transient,
}


def table_metadata(run_id: str, **extra: str) -> dict[str, str]:
    """Provenance written into every table's footer."""
    return {"bioner.run_id": run_id, "bioner.code_version": code_version(), **extra}
