"""The executor's initializer and its arguments, on their way to each worker process.

A worker imports this module to unpickle its initializer: it imports only ``pickle``.
"""

from __future__ import annotations

import pickle

from .._pickling import PICKLE_PROTOCOL, dumps_by_value, dumps_function, needs_value

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Initializer:
    """The executor's initializer and its arguments, as a worker process gets them.

    The arguments travel with the worker's start, as ``ProcessPoolExecutor`` sends them: not
    pickled at all when forked, else pickled by multiprocessing while it starts the process,
    so what may only travel by inheritance (a ``multiprocessing.Queue``, ``Lock``, ``Event``
    or ``Value``) reaches the worker. The function is pickled once, here, as every function
    is (see dumps_function): one that cannot go fails at once, when the executor is made.
    """

    def __init__(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.fn_payload = dumps_function(fn)

    def load(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        return self.fn, self.args  # a forked worker has the objects themselves

    def __reduce__(self) -> tuple[Any, ...]:
        return (PickledInitializer, (self.fn_payload, _dumps_initargs(self.args)))


def _dumps_initargs(args: tuple[Any, ...]) -> bytes:
    """Pickle the initializer's arguments while multiprocessing starts a worker: its own
    pickler shares queues, locks and pipes then; values from a session go by value."""
    from multiprocessing.reduction import ForkingPickler

    try:
        data = bytes(ForkingPickler.dumps(args, PICKLE_PROTOCOL))
    except Exception:
        return dumps_by_value(args)
    return dumps_by_value(args) if needs_value(data) else data


class PickledInitializer:
    """The executor's initializer as a spawned worker receives it (see
    ``Initializer``): unpickled in ``worker_main``, where a failure is reported."""

    def __init__(self, fn_payload: bytes, args_payload: bytes) -> None:
        self.fn_payload = fn_payload
        self.args_payload = args_payload

    def load(self) -> tuple[Any, tuple[Any, ...]]:
        return pickle.loads(self.fn_payload), pickle.loads(self.args_payload)
