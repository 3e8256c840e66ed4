"""Tasks and estimators for tests/test_joblib.py: importable by reference in every worker (and
kept out of tasks.py, which must not import scikit-learn)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from sklearn.neighbors import KNeighborsClassifier


class KillsItsWorkerOnce(KNeighborsClassifier):  # type: ignore[misc]
    """A classifier whose first fit, anywhere, SIGKILLs the process running it (as the OOM
    killer would); ``marker`` is the file that says it has happened."""

    def __init__(self, n_neighbors: int = 5, marker: str = "") -> None:
        super().__init__(n_neighbors=n_neighbors)
        self.marker = marker

    def fit(self, X: Any, y: Any) -> Any:
        if self.marker:
            try:  # O_EXCL: of two workers fitting at once, only one is first
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y)


class Slow(KNeighborsClassifier):  # type: ignore[misc]
    """A classifier whose fit takes a minute: a search to interrupt."""

    def fit(self, X: Any, y: Any) -> Any:
        time.sleep(60)
        return super().fit(X, y)


def nested_backend(_: int) -> tuple[str, int | None]:
    """What a nested Parallel inside a batch would run on: the backend's class and n_jobs."""
    from joblib.parallel import get_active_backend

    backend, n_jobs = get_active_backend()
    return type(backend).__name__, n_jobs


def nested_sum(n: int) -> int:
    """A nested Parallel call inside a batch."""
    import joblib

    return sum(joblib.Parallel(n_jobs=-1)(joblib.delayed(abs)(-i) for i in range(n)))


def array_flags(array: Any) -> tuple[bool, bool, float]:
    """How a large array arrived: (writeable, owns its memory), and its sum."""
    return bool(array.flags.writeable), bool(array.flags.owndata), float(array.sum())


def blas_threads(_: int) -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def pid(_: int) -> int:
    return os.getpid()


def payload(i: int) -> bytes:
    return bytes(1000)


def native_limits(_: int) -> tuple[str | None, list[int]]:
    """In a worker: OMP_NUM_THREADS, and the threads of each BLAS pool NumPy loaded."""
    import numpy  # noqa: F401  (loads OpenBLAS, if it was not yet)
    from threadpoolctl import threadpool_info

    pools = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return os.environ.get("OMP_NUM_THREADS"), pools


def lightwork_inside(n: int) -> int:
    """A lightwork Parallel call from inside another library's worker (loky's)."""
    import joblib

    import lightwork.joblib  # noqa: F401  (as any module using the backend does)

    calls = (joblib.delayed(abs)(-i) for i in range(n))
    return sum(joblib.Parallel(n_jobs=2, backend="lightwork")(calls))
