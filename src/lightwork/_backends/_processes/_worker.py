"""The worker process's main loop.

    supervisor --SPEC--> worker: unpickle fn once, keep it by spec id
    supervisor --RUN + payload--> worker: slot <- serial; unpickle args; run_chunk() writing
        into the slot which task runs (per chunk, or per task with its start time when the job
        needs it); pickle results --RESULT--> supervisor

A worker ignores SIGINT, so a Ctrl-C in a terminal (which signals the whole process group) is
handled once, by the parent, which then terminates the workers. A watcher thread exits the
worker when its parent dies, so a SIGKILLed parent leaves no orphans running.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

from ..._core._run import Work, format_remote, run_chunk
from .._pickling import dumps, dumps_by_value, encode_error
from ._wire import (
    BAD_INPUT,
    DROP,
    HEADER,
    INIT_FAILED,
    NO_TASK,
    READY,
    RESULT,
    RUN,
    SLOT_INDEX,
    SLOT_SERIAL,
    SPEC,
    STOP,
)

TYPE_CHECKING = False  # not typing: see lightwork._core._run on a worker's imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..._core._slot import Slot
    from ._channel import Channel
    from ._initializer import Initializer, PickledInitializer

# How often a worker checks that its parent is alive: it exits within this of the parent's death.
PARENT_CHECK_SECONDS = 0.5


class _BrokenSpec:
    """Stands for a function that could not be unpickled here: why, for each of its tasks."""

    def __init__(self, traceback_text: str) -> None:
        self.traceback_text = traceback_text


def worker_main(
    conn: Channel,
    slot_array: Any,
    initializer: PickledInitializer | Initializer | None,
    parent: int,
    lifeline: Channel,
    inherited_lifeline_end: int,
    native_threads: int | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if inherited_lifeline_end >= 0:
        os.close(inherited_lifeline_end)
    _arm_lifeline(lifeline)
    _watch_parent(parent)
    if native_threads is not None:  # before the initializer: it may import NumPy
        from ._native import limit_native_threads

        limit_native_threads(native_threads)
    # Forked, we hold the parent's SharedSlot itself (its mapping is shared); otherwise the
    # memory it was pickled into.
    shared = getattr(slot_array, "view", None)
    slot: Slot = shared if shared is not None else memoryview(slot_array).cast("B").cast("d")
    if initializer is not None:
        try:
            function, args = initializer.load()
            function(*args)
        except BaseException as error:
            conn.send_bytes(HEADER.pack(INIT_FAILED, 0, 0, 0, 0, 0) + dumps(format_remote(error)))
            return
    conn.send_bytes(HEADER.pack(READY, 0, 0, 0, 0, 0))
    specs: dict[int, Work | _BrokenSpec] = {}
    deserialize = 0.0
    waiting_since = time.perf_counter()
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent closed our pipe: it is gone or shutting down
            return
        kind = message[0]
        if kind == RUN:
            idle = time.perf_counter() - waiting_since
            _run(conn, slot, specs[message[2]], message, idle, deserialize)
            deserialize = 0.0
            waiting_since = time.perf_counter()
        elif kind == SPEC:
            started = time.perf_counter()
            specs[message[1]] = _load_spec(message[2])
            deserialize += time.perf_counter() - started
        elif kind == DROP:
            specs.pop(message[1], None)
        elif kind == STOP:
            return


def _load_spec(data: bytes) -> Work | _BrokenSpec:
    """A function and its retry policy, unpickled; its own frame, so nothing else holds them.
    (Each attempt brings its job's entropy.)"""
    try:
        fn, retries, retry_on = pickle.loads(data)
        return Work(fn, retries, retry_on, 0)
    except BaseException as error:
        return _BrokenSpec(format_remote(error))


def _run(
    conn: Channel,
    slot: Slot,
    spec: Work | _BrokenSpec,
    message: tuple[Any, ...],
    idle: float,
    deserialize: float,
) -> None:
    """Run one attempt and send its outcome.

    A function of its own so that the attempt's arguments and results (a large array's
    mapping, say) are released as soon as it returns, not kept until the next message.
    """
    _, serial, _, entropy, indices, per_task = message
    slot[SLOT_SERIAL] = serial
    slot[SLOT_INDEX] = NO_TASK
    payload = conn.recv_bytes()
    started = time.perf_counter()
    if isinstance(spec, _BrokenSpec):
        culprit = ("the function", spec.traceback_text)
        _send(conn, BAD_INPUT, serial, 0.0, deserialize, 0.0, idle, culprit)
        return
    try:
        args = pickle.loads(payload)
    except BaseException as error:
        culprit = ("its arguments", format_remote(error))
        _send(conn, BAD_INPUT, serial, 0.0, deserialize, 0.0, idle, culprit)
        return
    deserialize += time.perf_counter() - started
    work = Work(spec.fn, spec.retries, spec.retry_on, entropy)
    values, errors, compute = run_chunk(work, indices, args, slot, per_task)
    encoded = {position: encode_error(e) for position, e in errors.items()}
    _send(conn, RESULT, serial, compute, deserialize, 0.0, idle, (values, encoded))


def _send(
    conn: Channel,
    kind: int,
    serial: int,
    compute: float,
    deserialize: float,
    serialize: float,
    idle: float,
    payload: Any,
) -> None:
    """Send one message; a result that will not pickle is replaced, task by task, by an error."""
    started = time.perf_counter()
    try:
        data = dumps(payload)
    except BaseException:  # even SystemExit from a __reduce__: the worker must answer
        data = _dumps_by_value(payload)
    serialize += time.perf_counter() - started
    conn.send_bytes(HEADER.pack(kind, serial, compute, deserialize, serialize, idle) + data)


def _dumps_by_value(payload: Any) -> bytes:
    """What plain pickle refused: instances of classes a session defined (which came here by
    value, with the function), lambdas; else each result that won't go becomes an error."""
    try:
        return dumps_by_value(payload)
    except BaseException:
        return dumps_by_value(_replace_unpicklable(payload, dumps_by_value))


def _replace_unpicklable(
    payload: tuple[list[Any], dict[int, Any]], pickles: Callable[[Any], bytes]
) -> tuple[list[Any], Any]:
    from ..._core._errors import SerializationError

    values, errors = payload
    for position, value in enumerate(values):
        if position in errors:
            continue
        try:
            pickles(value)
        except Exception as error:
            values[position] = None
            problem = SerializationError(
                f"the result of type {type(value).__qualname__} could not be pickled to send it "
                f"back: {error}"
            )
            errors[position] = encode_error(problem)
        except BaseException as error:  # SystemExit while pickling: the task's outcome, as
            values[position] = None  # the standard library reports it
            errors[position] = encode_error(error)
    return values, errors


def _arm_lifeline(lifeline: Channel) -> None:
    """Let the kernel kill this process the moment its parent dies, even mid-C-call.

    The parent holds the only write end of the lifeline pipe and never writes: when it dies,
    the pipe reports end-of-file and, with O_ASYNC, the kernel sends SIGIO, whose default action
    terminates the process. No Python code has to run, so a task holding the GIL in a long C
    call can't delay it. The watcher thread below stays as the portable fallback.
    """
    try:
        import fcntl
        import select

        fd = lifeline.fileno()
        signal.signal(signal.SIGIO, signal.SIG_DFL)
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        if select.select([fd], [], [], 0)[0]:  # the parent died before we were armed
            os._exit(1)
    except (ImportError, OSError, AttributeError, ValueError):
        pass  # not Linux: the watcher thread covers it
    _keep_alive.append(lifeline)


_keep_alive: list[Channel] = []  # the lifeline must not be closed by garbage collection


def _watch_parent(parent: int) -> None:
    """Exit when the parent dies, so a SIGKILLed parent leaves no workers running.

    With fork and spawn this process is re-parented and getppid() changes. With forkserver its
    parent is the fork server, which outlives the pool's owner while workers hold its pipe, so
    the owner's pid is watched directly.
    """
    original_ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != original_ppid or not _alive(parent):
                os._exit(1)

    threading.Thread(target=watch, name="lightwork-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: exists, and on Linux is not a zombie awaiting its own parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True
