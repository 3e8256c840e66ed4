"""lightwork: many hands make light work.

One API for embarrassingly parallel Python on serial, thread and process backends::

    import lightwork

    squares = lightwork.map(lambda x: x * x, range(10))            # a warm process pool
    for result in lightwork.imap(slow, endless(), ordered=False):  # lazy, bounded memory
        ...
    with lightwork.Executor(4) as ex:                              # concurrent.futures drop-in
        future = ex.submit(pow, 2, 10)

``import lightwork`` is cheap (about a millisecond): every name loads when first used, and NumPy,
tqdm, Dask and matplotlib only by the features that need them.
"""

import importlib

# Names load on first use: ``import lightwork`` imports nothing else, because a worker process
# imports the package too and needs only its task loop (see lightwork._core._run).
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from ._core._cpus import available_cpus as available_cpus
    from ._core._errors import BrokenWorkerError as BrokenWorkerError
    from ._core._errors import CheckpointError as CheckpointError
    from ._core._errors import CheckpointInUseError as CheckpointInUseError
    from ._core._errors import CheckpointMismatchError as CheckpointMismatchError
    from ._core._errors import ExecutorShutdownError as ExecutorShutdownError
    from ._core._errors import InvalidArgumentError as InvalidArgumentError
    from ._core._errors import InvalidOptionError as InvalidOptionError
    from ._core._errors import LightworkError as LightworkError
    from ._core._errors import MissingDependencyError as MissingDependencyError
    from ._core._errors import RemoteTraceback as RemoteTraceback
    from ._core._errors import SerializationError as SerializationError
    from ._core._errors import SubinterpreterImportError as SubinterpreterImportError
    from ._core._errors import TaskTimeoutError as TaskTimeoutError
    from ._core._errors import WorkerCrashedError as WorkerCrashedError
    from ._core._errors import WorkerInitializationError as WorkerInitializationError
    from ._core._random import random as random
    from ._core._random import rng as rng
    from ._core._stats import ExecutorStatistics as ExecutorStatistics
    from ._core._stats import WorkerStatistics as WorkerStatistics
    from ._engine._api import imap as imap
    from ._engine._api import map as map
    from ._engine._api import starmap as starmap
    from ._engine._executor import Executor as Executor
    from ._pipeline import Pipeline as Pipeline
    from ._pipeline import PipelineStatistics as PipelineStatistics
    from ._pipeline import StageStatistics as StageStatistics
    from ._shared import Shared as Shared
    from ._shared import SharedArray as SharedArray
    from ._shared import SharedClosedError as SharedClosedError
    from ._shared import SharedLock as SharedLock
    from ._shared import SharedValue as SharedValue
    from ._shared import share as share
    from .lab import ScalingReport as ScalingReport
    from .lab import scale as scale

# The public names, by the module that defines it: the one list. Each loads on first use;
# __all__ and the type checkers' imports above follow it (tests/test_api_surface.py).
_PUBLIC: dict[str, tuple[str, ...]] = {
    "._core._cpus": ("available_cpus",),
    "._core._errors": (
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
    ),
    "._core._random": (
        "random",
        "rng",
    ),
    "._core._stats": (
        "ExecutorStatistics",
        "WorkerStatistics",
    ),
    "._engine._api": (
        "imap",
        "map",
        "starmap",
    ),
    "._engine._executor": ("Executor",),
    "._pipeline": (
        "Pipeline",
        "PipelineStatistics",
        "StageStatistics",
    ),
    "._shared": (
        "Shared",
        "SharedArray",
        "SharedClosedError",
        "SharedLock",
        "SharedValue",
        "share",
    ),
    ".lab": (
        "ScalingReport",
        "scale",
    ),
}
_LAZY = {name: module for module, names in _PUBLIC.items() for name in names}


# Public submodules, imported on first access as ``lightwork.checkpoint.load(...)``.
_SUBMODULES = ("checkpoint",)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None and name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)  # (the import sets the global)
    if module is None:
        raise AttributeError(f"module 'lightwork' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))  # tab completion sees the lazy names too


__version__ = "0.1.0"

# Not in __all__: ``from lightwork import *`` must not shadow the builtin ``map`` or the
# standard ``random`` module. Use them as ``lightwork.map`` and ``lightwork.random``.
_NOT_STARRED = ("map", "random")
__all__ = sorted(name for name in _LAZY if name not in _NOT_STARRED)
