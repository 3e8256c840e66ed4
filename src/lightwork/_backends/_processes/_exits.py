"""How a worker's death is told: its exit status in words, a likely cause, the errors raised.

The supervisor decides *who* is charged with a death (see _deaths); this module only says it.
Every message here is matched by tests: change one only with them.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from ..._core._errors import (
    LightworkError,
    RemoteTraceback,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerInitializationError,
    as_process_pool_error,
)

if TYPE_CHECKING:
    from ..._core._tasks import Chunk

# A worker whose resident memory was above this share of the machine's when it was SIGKILLed
# was most likely chosen by the kernel's out-of-memory killer.
OOM_SHARE = 0.25


def describe_exit(exit_code: int | None) -> str:
    """``exit code 3``, ``killed by SIGKILL``: how a process ended."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"


def likely_cause(exit_code: int | None, rss: int) -> str:
    """What most likely ended a worker with ``exit_code`` that last used ``rss`` bytes ("")."""
    if exit_code == -signal.SIGKILL:
        import psutil

        total = psutil.virtual_memory().total
        if rss > OOM_SHARE * total:
            return (
                f"it was using {rss / 2**30:.1f} GiB of {total / 2**30:.0f} GiB: out of memory? "
                "(the kernel's OOM killer sends SIGKILL)"
            )
        return "SIGKILL comes from the kernel's out-of-memory killer or from another process"
    if exit_code == -signal.SIGSEGV:
        return "a segmentation fault, usually in C code (an extension module or ctypes)"
    if exit_code is not None and exit_code > 0:
        return "the task or code it called ended the process (os._exit, sys.exit in C code?)"
    return ""


def death_error(
    chunk: Chunk,
    position: int,
    pid: int | None,
    exit_code: int | None,
    rss: int,
    timeout: float | None,
) -> LightworkError:
    """The outcome of the task at ``position`` once its worker's death is charged to it and it
    has no retry left: a TaskTimeoutError if the worker was killed for overrunning ``timeout``,
    else a WorkerCrashedError (also a BrokenProcessPool)."""
    index = chunk.indices[position]
    retries = chunk.job.options.retries
    tried = f"{retries + 1} attempts" if retries else "1 attempt (retries=0)"
    unnamed = sum(lo <= position < hi for lo, hi in chunk.unattributed_deaths)
    if unnamed:  # the worker it killed first, before the task was known
        tried += f", and {unnamed} more in its chunk before it was identified"
    if timeout is not None:
        return TaskTimeoutError(
            f"task {index} ran longer than task_timeout={timeout:g}s in worker {pid}, "
            f"which was killed ({tried})"
        )
    cause = likely_cause(exit_code, rss)
    return as_process_pool_error(
        WorkerCrashedError(
            f"worker {pid} died ({describe_exit(exit_code)}) while running task {index}, "
            f"after {tried}{': ' + cause if cause else ''}"
        )
    )


def startup_error(
    deaths: int, pid: int | None, exit_code: int | None, start_method: str
) -> WorkerCrashedError:
    """The pool gives up: ``deaths`` workers in a row died before running any task."""
    hint = ""
    if exit_code == 1 and start_method != "fork":
        hint = (
            "; a worker that exits with code 1 as it starts usually failed to "
            "import your main module (its traceback is above): code that starts "
            "a pool belongs under `if __name__ == '__main__':`"
        )
    return WorkerCrashedError(
        f"{deaths} workers in a row died before running any task "
        f"(the last: pid {pid}, {describe_exit(exit_code)})" + hint
    )


def initializer_error(traceback_text: str) -> WorkerInitializationError:
    """The executor's initializer raised in a worker (its traceback, as text)."""
    error = WorkerInitializationError(
        "the executor's initializer raised in a worker; its traceback is the cause"
    )
    error.__cause__ = RemoteTraceback(traceback_text)
    return error
