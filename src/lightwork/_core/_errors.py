"""What lightwork raises.

Every error is a :class:`LightworkError` and also subclasses what users already catch, so
``except ValueError`` or ``except concurrent.futures.BrokenExecutor`` keeps working when code
moves from the standard library to lightwork::

    LightworkError
    ├── InvalidOptionError (ValueError)          a bad option: max_workers=0, backend="gpu", ...
    ├── InvalidArgumentError (TypeError)         a non-callable fn, a non-iterable input, ...
    ├── SerializationError (pickle.PicklingError) a function, argument or result that won't pickle
    ├── ExecutorShutdownError (RuntimeError)     submit() after shutdown()
    ├── MissingDependencyError (ImportError)     an optional backend or feature isn't installed
    ├── SubinterpreterImportError (ImportError)  a module that cannot load in a subinterpreter
    ├── TaskTimeoutError (TimeoutError)          a task ran past task_timeout
    ├── CheckpointError                          a checkpoint= file that can't be used
    │   ├── CheckpointMismatchError (ValueError) it holds another run (function, input, seed)
    │   └── CheckpointInUseError                 another process is running with it now
    └── BrokenWorkerError (BrokenExecutor)
        ├── WorkerCrashedError                   a worker died while it held a task
        └── WorkerInitializationError            the initializer raised

On the process backend the ``BrokenWorkerError`` s are also the standard library's
``concurrent.futures.process.BrokenProcessPool``, and on threads an initializer's failure a
``concurrent.futures.thread.BrokenThreadPool``, so ``except BrokenProcessPool:`` written for
``ProcessPoolExecutor`` catches them (see :func:`as_process_pool_error`).

A task's own exception is never wrapped: it reaches the caller as its own type, with the
worker's traceback text as ``__cause__`` (a :class:`RemoteTraceback`) and a note naming the
index of the task that raised it.
"""

from __future__ import annotations

import pickle
from concurrent.futures import BrokenExecutor

__all__ = [
    "BrokenWorkerError",
    "CheckpointError",
    "CheckpointInUseError",
    "CheckpointMismatchError",
    "ExecutorShutdownError",
    "InvalidArgumentError",
    "InvalidOptionError",
    "LightworkError",
    "MissingDependencyError",
    "RemoteTraceback",
    "SerializationError",
    "SubinterpreterImportError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerInitializationError",
]


class LightworkError(Exception):
    """Base class of every error lightwork raises itself (never of a task's own errors)."""


class InvalidOptionError(LightworkError, ValueError):
    """An option has a value lightwork cannot use; the message names the option and the value."""


class InvalidArgumentError(LightworkError, TypeError):
    """An argument of the wrong kind (a non-callable function, a non-iterable input, an
    unknown keyword); the message names it."""


class SerializationError(LightworkError, pickle.PicklingError):
    """A function, an argument or a result could not be pickled or unpickled.

    Raised for the one task concerned; the message says what failed (function, arguments or
    result), for which task index, and why. The executor stays usable.
    """


class ExecutorShutdownError(LightworkError, RuntimeError):
    """Work was submitted to an executor after ``shutdown()``."""


class MissingDependencyError(LightworkError, ImportError):
    """An optional part needs a package that isn't installed; the message says what to install."""


class SubinterpreterImportError(LightworkError, ImportError):
    """On ``backend="interpreters"``: a task, its function or its arguments needed an extension
    module that does not support subinterpreters (NumPy, among others). The message names the
    module and suggests ``backend="processes"``; ``name`` is the module, and the ``__cause__``
    the original ImportError with the worker's traceback."""


class TaskTimeoutError(LightworkError, TimeoutError):
    """A task ran longer than ``task_timeout`` seconds and was stopped."""


class CheckpointError(LightworkError):
    """A ``checkpoint=`` file can't be used: its directory doesn't exist, it is not a lightwork
    checkpoint, it can't be written (read-only, disk full). Raised before anything is written,
    or with the database left as it was at its last commit; the message says which file and why.
    """


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint holds another run: a changed function, a changed input item (the message
    names its index), another ``seed``, or another input length. Nothing stored is changed; the
    message says how to start afresh (``Checkpoint(path, fresh=True)`` or deleting the file)."""


class CheckpointInUseError(CheckpointError):
    """Another process (or another call in this one) is running with this checkpoint now.

    The lock is the operating system's, on the database file: it goes with its holder, even a
    SIGKILLed one, so a stale lock never needs clearing by hand.
    """


class BrokenWorkerError(LightworkError, BrokenExecutor):
    """A worker could not run a task for a reason outside the task's own code."""


class WorkerCrashedError(BrokenWorkerError):
    """A worker process died (signal, ``os._exit``, segfault) while it held the task.

    The message names the task index, the worker's pid, its exit code or signal name and, where
    it can tell, a likely cause such as the out-of-memory killer.
    """


class WorkerInitializationError(BrokenWorkerError):
    """The executor's ``initializer`` raised in a worker; its traceback is the ``__cause__``."""


# Shown and pickled as the public names they are (lightwork.WorkerCrashedError, not the module
# that happens to define them), as trio does: tracebacks read as the documentation does.
for _public in (
    LightworkError,
    InvalidOptionError,
    InvalidArgumentError,
    SerializationError,
    ExecutorShutdownError,
    MissingDependencyError,
    SubinterpreterImportError,
    TaskTimeoutError,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointInUseError,
    BrokenWorkerError,
    WorkerCrashedError,
    WorkerInitializationError,
):
    _public.__module__ = "lightwork"


# The drop-in subclasses, by name: (lightwork's type, the standard library's pool it stands for).
# Made at the first failure, not at import: concurrent.futures.process imports
# multiprocessing.connection, ~3.5 ms before a first pool's first result.
_DROP_IN: dict[str, tuple[type[BrokenWorkerError], str]] = {
    "ProcessPoolBrokenError": (BrokenWorkerError, "process"),
    "ProcessPoolCrashedError": (WorkerCrashedError, "process"),
    "ProcessPoolInitializationError": (WorkerInitializationError, "process"),
    "ThreadPoolInitializationError": (WorkerInitializationError, "thread"),
}


def __getattr__(name: str) -> type[BrokenWorkerError]:
    """Make a drop-in subclass on first use (pickle finds it here by name, too)."""
    try:
        base, pool = _DROP_IN[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    stdlib_type: type[BrokenExecutor]
    if pool == "process":
        from concurrent.futures.process import BrokenProcessPool

        stdlib_type = BrokenProcessPool
    else:
        from concurrent.futures.thread import BrokenThreadPool

        stdlib_type = BrokenThreadPool
    doc = f"A {base.__name__} that is also the standard library's {stdlib_type.__name__}."
    made = type(name, (base, stdlib_type), {"__module__": __name__, "__doc__": doc})
    globals()[name] = made
    return made


def as_process_pool_error(error: BrokenWorkerError) -> BrokenWorkerError:
    """``error`` as the drop-in subclass that is also a ``BrokenProcessPool``."""
    return _as_drop_in(error, "process")


def as_thread_pool_error(error: BrokenWorkerError) -> BrokenWorkerError:
    """``error`` as the drop-in subclass that is also a ``BrokenThreadPool``."""
    return _as_drop_in(error, "thread")


def _as_drop_in(error: BrokenWorkerError, pool: str) -> BrokenWorkerError:
    for name, (base, its_pool) in _DROP_IN.items():
        if its_pool == pool and type(error) is base:
            made = __getattr__(name)(*error.args)
            made.__cause__ = error.__cause__
            return made
    return error  # already one, or a type with no drop-in twin


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as the ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
        self.tb = text  # the attribute ProcessPoolExecutor's own remote traceback has

    def __str__(self) -> str:
        return self.text


RemoteTraceback.__module__ = "lightwork"
