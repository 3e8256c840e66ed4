"""What runs inside a worker's subinterpreter: one thread of it serves its worker, over pipes.

    worker thread (main interpreter)              guest thread (subinterpreter, this module)
    --------------------------------              ------------------------------------------
    exec: sys.path = the caller's
    Interpreter.call_in_thread(serve, fds) ---->  setup: the initializer
    RUN spec id, fn (first time), header, args -> unpickle fn (once per spec) and the args;
                                                  run_chunk(); pickle the outcomes
    outcome <-----------------------------------  RESULT: seconds + (values, {position: encoded
                                                  error}); BAD_INPUT: what would not unpickle,
                                                  and why; MISSING: spec evicted, send fn again
    STOP -------------------------------------->  return (the thread ends; the caller closes
                                                  the interpreter)
    a byte on the interrupt pipe -------------->  (Ctrl-C, exit) its watcher thread raises
                                                  WorkerStop in the guest thread: the running
                                                  task stops, the guest returns

Only bytes cross between the interpreters, through two pipes (a round trip costs ~3 us here,
against ~50-100 us for an ``Interpreter.call``, which also starts a fresh thread state each
time and so forgets ``threading.local`` values): objects are never shared, each interpreter
having its own GIL. The guest is one long-lived thread, as a process worker's main thread is.

The caller's main script, which pickled references to ``__main__`` need, is run here under the
name ``__mp_main__`` (as multiprocessing's spawned workers run it), at the first function that
needs it: code under ``if __name__ == "__main__":`` does not run again.

Imports kept to the worker's minimum, as a process worker's (see lightwork._core._run).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import threading
import time
from collections import OrderedDict

from ..._core._run import Work, WorkerStop, format_remote, run_chunk
from .._pickling import dumps, encode_error

# Messages to the guest: a REQUEST header, then its parts' bytes.
RUN, STOP = range(2)
REQUEST = struct.Struct("<BqQQQ")  # kind, spec id, then the lengths of fn (0: none), header, args
# Outcomes: an OUTCOME header, then its body.
RESULT, BAD_INPUT, MISSING, READY, INIT_FAILED = range(5)
OUTCOME = struct.Struct("<BddQ")  # kind, compute and deserialize seconds, the body's length
# Functions each subinterpreter keeps unpickled (as a process worker's cache, see _supervisor).
SPEC_CACHE_SIZE = 64

_specs: OrderedDict[int, Work | str] = OrderedDict()  # spec id -> Work, or why it won't load
_main_path: str | None = None  # the caller's main script, run here when first needed


def serve(inbox: int, outbox: int, interrupts: int, setup: bytes) -> None:
    """The guest thread: set up, answer READY (or INIT_FAILED), then run what comes until STOP
    (or until interrupted). ``setup`` pickles (the caller's main script or None, the
    initializer or None); the pipes' ends are this thread's (and its watcher's) to close."""
    try:
        try:  # (failing, the pipes close: the caller hears of it, it does not wait)
            threading.Thread(
                target=_watch, args=(interrupts, threading.get_ident()), name="lightwork-guest-stop"
            ).start()
        except BaseException:
            os.close(interrupts)
            raise
        outcome = _setup(*pickle.loads(setup))
        send(outbox, INIT_FAILED if outcome else READY, 0.0, 0.0, outcome)
        while True:
            kind, spec_id, fn_size, header_size, args_size = REQUEST.unpack(
                receive(inbox, REQUEST.size)
            )
            if kind == STOP:
                return
            spec = receive(inbox, fn_size) if fn_size else None
            header = receive(inbox, header_size)
            args = receive(inbox, args_size)
            _run(outbox, spec_id, spec, header, args)
            del spec, header, args  # not kept while waiting for the next
    except (EOFError, WorkerStop):  # the caller is gone, or stopped this guest
        return
    finally:
        os.close(inbox)
        os.close(outbox)


def _watch(interrupts: int, guest: int) -> None:
    """The guest's watcher thread: at each byte on the interrupt pipe, stop what the guest
    thread runs (the caller cannot run code in this interpreter while the guest does, and a
    subinterpreter still running at the process's exit crashes it); at EOF (the caller closed
    it, after the guest's STOP), end. A task blocked in C (``time.sleep``) stops when it
    returns there."""
    try:
        while os.read(interrupts, 1):
            import ctypes  # only here: ~10 ms, the price of a stop, not of every start

            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(guest), ctypes.py_object(WorkerStop)
            )
    finally:
        os.close(interrupts)


def _setup(main_path: str | None, initializer: bytes | None) -> bytes:
    """Prepare this interpreter; b"" when ready, else the initializer's encoded error."""
    global _main_path
    _main_path = main_path
    if initializer is None:
        return b""
    try:
        _need_main(initializer)
        fn, args = pickle.loads(initializer)
        fn(*args)
    except BaseException as error:
        return dumps(encode_error(error))
    return b""


def _run(outbox: int, spec_id: int, spec: bytes | None, header: bytes, args: bytes) -> None:
    """Run one attempt's tasks and send the outcome (see the module's diagram)."""
    if spec is not None:
        _specs[spec_id] = _load_spec(spec)
        if len(_specs) > SPEC_CACHE_SIZE:
            _specs.popitem(last=False)
    work = _specs.get(spec_id)
    if work is None:
        send(outbox, MISSING, 0.0, 0.0, b"")
        return
    _specs.move_to_end(spec_id)
    if isinstance(work, str):
        send(outbox, BAD_INPUT, 0.0, 0.0, dumps(("the function", work)))
        return
    started = time.perf_counter()
    entropy, indices = pickle.loads(header)
    try:
        arguments = pickle.loads(args)
    except BaseException as error:
        send(outbox, BAD_INPUT, 0.0, 0.0, dumps(("its arguments", format_remote(error))))
        return
    deserialize = time.perf_counter() - started
    task = Work(work.fn, work.retries, work.retry_on, entropy)
    values, errors, compute = run_chunk(task, indices, arguments)
    encoded = {position: encode_error(e) for position, e in errors.items()}
    try:
        body = dumps((values, encoded))
    except BaseException:  # the process worker's rule: by value, else an error in its place
        from .._processes._worker import _dumps_by_value

        body = _dumps_by_value((values, encoded))
    send(outbox, RESULT, compute, deserialize, body)


def send(fd: int, kind: int, compute: float, deserialize: float, body: bytes) -> None:
    """An outcome: its header and body, written whole."""
    write(fd, OUTCOME.pack(kind, compute, deserialize, len(body)) + body)


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def receive(fd: int, size: int) -> bytes:
    """Exactly ``size`` bytes from the pipe; EOFError if it closed first."""
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.read(fd, min(size - got, 1 << 20))
        if not more:
            raise EOFError
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def check(main_path: str | None, spec: bytes, args: bytes, imports: tuple[str, ...]) -> str:
    """Whether a function, an argument and the modules its code imports load here (for
    ``backend="auto"``): "" if they do, else the traceback of why not."""
    _setup(main_path, None)
    work = _load_spec(spec)
    if isinstance(work, str):
        return work
    try:
        pickle.loads(args)
    except BaseException as error:
        return format_remote(error)
    import importlib

    for name in imports:
        try:
            importlib.import_module(name)
        except BaseException as error:  # only a refusal to load here counts: a relative or
            text = format_remote(error)  # optional import may fail for other reasons
            if "does not support loading in subinterpreters" in text:
                return text
    return ""


def _load_spec(data: bytes) -> Work | str:
    """A function and its retry policy, unpickled; or why they would not (a traceback)."""
    try:
        _need_main(data)
        fn, retries, retry_on = pickle.loads(data)
        return Work(fn, retries, retry_on, 0)
    except BaseException as error:
        return format_remote(error)


def _need_main(data: bytes) -> None:
    """Run the caller's main script here, once, if ``data`` refers to something of it."""
    global _main_path
    if _main_path is None or b"__main__" not in data:
        return
    path, _main_path = _main_path, None
    import runpy
    import types

    # As multiprocessing.spawn does for a spawned worker: the script runs as __mp_main__ (its
    # `if __name__ == "__main__":` block stays out) and stands for __main__ while unpickling.
    main = types.ModuleType("__mp_main__")
    sys.modules["__mp_main__"] = main
    main.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
    sys.modules["__main__"] = main
