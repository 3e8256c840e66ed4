"""Running a chunk's tasks: the one loop every backend shares, in the caller, a thread, a
worker process or a Dask worker.

A process worker imports this module and little else: keep its imports to the standard
library's lightest (no ``typing`` at run time, no ``dataclasses``, nothing of the engine's
bookkeeping). Every spawned worker, and a forkserver's server, pays for each import here before
its first task; ``tests/test_imports.py`` holds the line.
"""

from __future__ import annotations

import operator
import threading
import time

from ._random import task_context
from ._slot import IN_CHUNK, SLOT_INDEX, SLOT_STARTED

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ._slot import Slot


class Work:
    """What running a job's tasks needs, and all that a worker is sent of a job: the function,
    the exceptions it retries in place and how often, and the entropy its random streams come
    from (see ``lightwork._core._random``)."""

    __slots__ = ("entropy", "fn", "retries", "retry_on")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        retries: int,
        retry_on: tuple[type[BaseException], ...],
        entropy: int,
    ) -> None:
        self.fn = fn
        self.retries = retries
        self.retry_on = retry_on
        self.entropy = entropy


class WorkerStop(BaseException):
    """Raised into a worker thread to stop the task it runs (the interpreters backend does, at
    Ctrl-C and at exit, where a subinterpreter still running code would crash the process's
    exit): never a task's outcome, it goes on up out of the chunk."""


class Star:
    """Calls ``fn(*args)`` for starmap: keeps the engine's loop to one ``fn(arg)`` form."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, args: Sequence[Any]) -> Any:
        return self.fn(*args)


class Call:
    """Calls ``fn(*args, **kwargs)`` for ``Executor.submit``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, call: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
        return self.fn(*call[0], **call[1])


def run_chunk(
    work: Work,
    indices: range,
    args: Sequence[Any],
    slot: Slot | None = None,
    per_task: bool = False,
) -> tuple[list[Any], dict[int, BaseException], float]:
    """Run tasks in order in this thread: (values, errors by position, compute seconds).

    The one loop every backend uses, so they agree on semantics: each task sees its own random
    stream, a task's exception is recorded and the next task runs, and exceptions named in
    ``retry_on`` are retried in place up to ``retries`` times.

    ``slot`` says which task runs, for ``lightwork.rng()`` and, for a process worker whose slot
    is shared memory, for the supervisor when the worker dies. By default a chunk of several
    tasks writes it once (``IN_CHUNK``: after a death the supervisor re-runs the chunk with
    ``per_task``, which finds the task at fault) and a one-task chunk writes its index. With
    ``per_task``, each task's start time and index are written before it runs: that re-run
    needs them, so do ``task_timeout`` and ``retries=0`` (where a death must be charged to the
    task that died without running it again).
    """
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    if slot is None:
        slot = task_context.own_slot()
    saved = task_context.enter(work.entropy, slot)
    started = time.perf_counter()
    try:
        if per_task:
            _run_per_task(work, indices, args, slot, values, errors)
        else:
            _run_fast(work, indices, args, slot, values, errors)
    finally:
        task_context.leave(saved)
    return values, errors, time.perf_counter() - started


def _run_fast(
    work: Work,
    indices: range,
    args: Sequence[Any],
    slot: Slot,
    values: list[Any],
    errors: dict[int, BaseException],
) -> None:
    """The default loop: a C-level ``map``, with no Python code between two tasks.

    (Measured here: ~105 ns a task with a trivial function, as ``list(map(fn, args))``; the
    earlier Python loop, which wrote each task's index into the slot, took ~185 ns.) Which task
    runs is read, only when asked, from how far the map has pulled the arguments. A task that
    raises StopIteration runs twice: the map swallows the first one.
    """
    first, count = indices.start, len(indices)
    arguments = iter(args)
    task_context.cursor = (first, count, arguments)
    slot[SLOT_INDEX] = first if count == 1 else IN_CHUNK
    fn = work.fn
    while True:
        try:
            values.extend(map(fn, arguments))  # extend keeps the values before a failure
        except BaseException as error:
            position = count - operator.length_hint(arguments) - 1
            _record_failure(work, first + position, position, args[position], error, values, errors)
            continue
        position = len(values)
        if position == count:
            return
        # The task at ``position`` raised StopIteration, which ends a map as if the arguments
        # had run out and is swallowed by it: run that one task again, alone, to report it.
        task_context.restart_task()
        try:
            values.append(fn(args[position]))
        except BaseException as error:
            _record_failure(work, first + position, position, args[position], error, values, errors)


def _run_per_task(
    work: Work,
    indices: range,
    args: Sequence[Any],
    slot: Slot,
    values: list[Any],
    errors: dict[int, BaseException],
) -> None:
    """The loop that names each task in the slot, with its start time, before running it."""
    fn = work.fn
    monotonic = time.monotonic
    append = values.append
    for position, (index, arg) in enumerate(zip(indices, args, strict=False)):
        slot[SLOT_STARTED] = monotonic()  # before the index: the supervisor reads it after
        slot[SLOT_INDEX] = index
        try:
            append(fn(arg))
        except BaseException as error:
            _record_failure(work, index, position, arg, error, values, errors)


def _record_failure(
    work: Work,
    index: int,
    position: int,
    arg: Any,
    error: BaseException,
    values: list[Any],
    errors: dict[int, BaseException],
) -> None:
    _reraise_ctrl_c(error)  # every loop's failures come here: a real Ctrl-C goes on up
    value, failure = _retry_in_place(work, arg, error)
    values.append(value)
    if failure is not None:
        add_task_note(failure, index)
        errors[position] = failure


def _retry_in_place(work: Work, arg: Any, error: BaseException) -> tuple[Any, BaseException | None]:
    """Re-run a task whose exception the user asked to retry; (value, final error or None)."""
    for _ in range(work.retries):
        if not isinstance(error, work.retry_on):
            break
        task_context.restart_task()
        try:
            return work.fn(arg), None
        except BaseException as again:
            _reraise_ctrl_c(again)
            error = again
    return None, error


def _reraise_ctrl_c(error: BaseException) -> None:
    """Let a real Ctrl-C through; any other exception a task raises is that task's outcome.

    ``SystemExit`` and friends included, as in the standard library's pools: a task that calls
    ``sys.exit(3)`` fails with ``SystemExit(3)`` and its worker goes on. A Ctrl-C can only
    arrive in a main thread whose SIGINT handler raises it: the caller's own thread (the serial
    backend, the ``auto`` probe). Worker processes ignore SIGINT and worker threads never get
    it, so there a KeyboardInterrupt is the task's own and is its outcome too. A WorkerStop
    is never a task's: it goes on up.
    """
    if isinstance(error, WorkerStop):
        raise error
    if (
        isinstance(error, KeyboardInterrupt)
        and threading.current_thread() is threading.main_thread()
    ):
        import signal  # here: it imports enum, ~2 ms of a subinterpreter worker's start

        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            raise error


def add_task_note(error: BaseException, index: int) -> None:
    note = f"lightwork: raised by task {index}"
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)


def format_remote(error: BaseException) -> str:
    # Imported at the first failure: on Python 3.14 traceback imports _colorize, and with it
    # dataclasses and inspect (~25 ms before a worker's first task).
    import traceback

    return "".join(traceback.format_exception(error))
