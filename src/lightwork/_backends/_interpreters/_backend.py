"""The interpreters backend, as the executor sees it: the threads backend's pool, queue and
watchdog, where each worker thread owns a subinterpreter and runs its tasks there.

    submit(attempt) --> queue --> worker thread: pickle the args (and the function, the first
                                  time its guest needs it) --pipe--> the guest thread in its
                                  subinterpreter runs them (see _guest; its own GIL: they run
                                  Python in parallel) --pipe--> unpickle the outcome: values,
                                  errors with the worker's traceback as __cause__
                                  --> chunk.resolve()

A worker thread waits on its pipe with the caller's GIL released, so the caller's thread and
every guest run Python at the same time, as processes do, without starting any process. A
guest that stops unexpectedly breaks the pool (BrokenWorkerError), as a thread pool's failed
initializer does: nothing submitted waits forever.
What it cannot do that processes can (said in docs/howto/interpreters.md, and tested):

* a task that crashes the interpreter (a segfault, ``os.abort()``) ends the whole process;
* ``task_timeout`` cannot stop a running task: as on threads, the task fails at its deadline,
  the rest of its chunk goes to a new worker, and the stuck one runs on, abandoned;
* extension modules that do not support subinterpreters (NumPy among them) do not load there:
  the task fails with :class:`SubinterpreterImportError`, which names the module.

Ctrl-C (``terminate``) stops a running task by raising ``WorkerStop`` in its guest thread,
which pure Python obeys at once and a call blocked in C when it returns. At exit, any task still
running (abandoned at its time limit, or after a Ctrl-C) is stopped so and its subinterpreter
closed: Python would otherwise destroy it mid-task as it exits, and crash (SIGSEGV).
"""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import re
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..._core._errors import (
    BrokenWorkerError,
    ExecutorShutdownError,
    SerializationError,
    SubinterpreterImportError,
)
from ..._core._run import Call, Star, add_task_note
from ..._core._tasks import Attempt, Job, copy_error
from .. import _threads
from .._pickling import decode_error, dumps, dumps_by_value, dumps_function, interactive_main
from .._threads import ThreadBackend, _ThreadWorker
from . import _guest

# What CPython says when a single-phase-init extension module is imported in a subinterpreter
# (NumPy wraps it in its own ImportError, quoting it as the "Original error").
_UNSUPPORTED = re.compile(r"module ([\w.]+) does not support loading in subinterpreters")


def unsupported_module(text: str) -> str | None:
    """The extension module that could not load in a subinterpreter, if ``text`` (an error's
    message or traceback) says one could not."""
    found = _UNSUPPORTED.search(text)
    return found.group(1) if found else None


def subinterpreter_error(module: str, cause: BaseException | None) -> SubinterpreterImportError:
    error = SubinterpreterImportError(
        f"the extension module {module} does not support subinterpreters, so it cannot be "
        "imported in a worker of backend='interpreters'; use backend='processes'",
        name=module,
    )
    error.__cause__ = cause
    return error


class _InterpreterWorker(_ThreadWorker):
    """A worker thread and the subinterpreter it owns, whose guest thread it feeds by pipe."""

    backend: InterpreterBackend

    def __init__(self, backend: ThreadBackend, number: int, first: Attempt | None = None) -> None:
        super().__init__(backend, number, first)
        self.thread.name = f"lightwork-interpreter-{number}"
        self.interpreter: Any = None
        self.guest: threading.Thread | None = None
        self.to_guest = self.from_guest = -1  # this side's ends of the two pipes
        self.interrupts = -1  # this side's end of the guest's interrupt pipe
        self.fds_lock = threading.Lock()  # interrupt() against finish() closing the pipe
        self.stopping = False  # interrupted: a guest that goes away did as told
        self.closed = threading.Event()  # set once its subinterpreter is closed
        self.sent: OrderedDict[int, None] = OrderedDict()  # spec ids the guest holds

    def start_up(self) -> None:
        import concurrent.interpreters as interpreters  # type: ignore[import-not-found,unused-ignore]

        backend = self.backend
        try:
            self.interpreter = _create(interpreters)
            guest_in, self.to_guest = os.pipe()
            self.from_guest, guest_out = os.pipe()
            guest_interrupts, self.interrupts = os.pipe()
            setup = dumps((backend.main_path, backend.init_payload))
            try:
                self.guest = self.interpreter.call_in_thread(
                    _guest.serve, guest_in, guest_out, guest_interrupts, setup
                )
            except BaseException:
                for fd in (guest_in, guest_out, guest_interrupts):
                    os.close(fd)
                raise
            kind, _, _, body = self._receive()
        except BaseException as error:  # not the initializer's fault: say what broke
            broken = BrokenWorkerError(
                f"a subinterpreter worker could not start: {error!r} (the cause)"
            )
            broken.__cause__ = error
            raise broken from error
        if kind == _guest.INIT_FAILED:
            raise _decoded(pickle.loads(body))

    def finish(self) -> None:
        """Stop the guest thread, then close its interpreter (in this thread, which made it)."""
        if self.guest is not None:
            try:
                _guest.write(self.to_guest, _guest.REQUEST.pack(_guest.STOP, 0, 0, 0, 0))
            except OSError:
                pass  # it is gone already
            self.guest.join()
        with self.fds_lock:  # (closing the interrupt pipe ends the guest's watcher thread)
            for fd in (self.to_guest, self.from_guest, self.interrupts):
                if fd >= 0:
                    os.close(fd)
            self.to_guest = self.from_guest = self.interrupts = -1
        interpreter, self.interpreter = self.interpreter, None
        try:
            if interpreter is not None:
                interpreter.close()
        finally:
            self.closed.set()

    def interrupt(self) -> None:
        """Stop the task the guest runs, and the guest (Ctrl-C, exit): see _guest._watch."""
        with self.fds_lock:
            self.stopping = True
            if self.interrupts >= 0:
                try:
                    os.write(self.interrupts, b"!")
                except OSError:
                    pass  # its watcher is gone: so is the guest

    def run_tasks(
        self, job: Job, indices: range, args: list[Any]
    ) -> tuple[list[Any], dict[int, BaseException], float]:
        started = time.perf_counter()
        try:
            payload = dumps(args)
        except Exception:
            try:
                payload = dumps_by_value(args)
            except Exception as error:
                if len(args) == 1:
                    return [None], {0: _unpicklable(indices[0], error)}, 0.0
                return self._one_by_one(job, indices, args)  # fail only the tasks at fault
        try:
            kind, compute, deserialize, body = self._run_payload(job, indices, payload)
        except (OSError, EOFError) as error:  # its guest is gone: nothing here can run
            if self.stopping:  # as told (Ctrl-C, exit): the pool is not broken
                stopped = ExecutorShutdownError("the executor was terminated")
                return [None] * len(args), {p: copy_error(stopped) for p in range(len(args))}, 0.0
            broken = BrokenWorkerError(
                f"the subinterpreter of worker {self.counters.worker} stopped unexpectedly "
                f"({error!r}): the pool is broken"
            )
            self.backend.break_on(broken)
            return [None] * len(args), {p: copy_error(broken) for p in range(len(args))}, 0.0
        if kind == _guest.BAD_INPUT:
            what, text = pickle.loads(body)
            if what == "its arguments" and len(args) > 1:
                return self._one_by_one(job, indices, args)  # to find the task at fault
            return self._fail_all(indices, what, text)
        values, encoded = pickle.loads(body)
        errors: dict[int, BaseException] = {}
        for position, remote in encoded.items():
            errors[position] = _decoded(remote)
            add_task_note(errors[position], indices[position])
        counters = self.counters
        counters.deserialize += deserialize
        counters.serialize += time.perf_counter() - started - compute - deserialize
        return values, errors, compute

    def _run_payload(
        self, job: Job, indices: range, payload: bytes
    ) -> tuple[int, float, float, bytes]:
        """Send one attempt to the guest, with the function if it lacks it; its outcome."""
        header = dumps((job.entropy, indices))
        spec_id = job.spec_id
        spec = b"" if spec_id in self.sent else job.fn_payload or b""
        outcome = self._request(spec_id, spec, header, payload)
        if outcome[0] == _guest.MISSING:  # it evicted the function: send it again
            outcome = self._request(spec_id, job.fn_payload or b"", header, payload)
        self.sent[spec_id] = None
        self.sent.move_to_end(spec_id)
        if len(self.sent) > _guest.SPEC_CACHE_SIZE:
            self.sent.popitem(last=False)
        return outcome

    def _request(
        self, spec_id: int, spec: bytes, header: bytes, payload: bytes
    ) -> tuple[int, float, float, bytes]:
        head = _guest.REQUEST.pack(_guest.RUN, spec_id, len(spec), len(header), len(payload))
        _guest.write(self.to_guest, head + spec + header)
        _guest.write(self.to_guest, payload)
        return self._receive()

    def _receive(self) -> tuple[int, float, float, bytes]:
        """The guest's next outcome; EOFError if the guest is gone."""
        kind, compute, deserialize, size = _guest.OUTCOME.unpack(
            _guest.receive(self.from_guest, _guest.OUTCOME.size)
        )
        return kind, compute, deserialize, _guest.receive(self.from_guest, size)

    def _one_by_one(
        self, job: Job, indices: range, args: list[Any]
    ) -> tuple[list[Any], dict[int, BaseException], float]:
        values: list[Any] = []
        errors: dict[int, BaseException] = {}
        compute = 0.0
        for position, arg in enumerate(args):
            got, failed, seconds = self.run_tasks(job, indices[position : position + 1], [arg])
            values += got
            compute += seconds
            if 0 in failed:
                errors[position] = failed[0]
        return values, errors, compute

    def _fail_all(
        self, indices: range, what: str, text: str
    ) -> tuple[list[Any], dict[int, BaseException], float]:
        errors: dict[int, BaseException] = {}
        for position, index in enumerate(indices):
            module = unsupported_module(text)
            error: BaseException
            if module is not None:
                error = subinterpreter_error(module, _remote(text))
            else:
                error = SerializationError(
                    f"task {index}: {what} could not be unpickled in the subinterpreter: {text}"
                )
            add_task_note(error, index)
            errors[position] = error
        return [None] * len(indices), errors, 0.0


class InterpreterBackend(ThreadBackend):
    """Worker threads, each running its tasks in a subinterpreter of its own (Python 3.14+)."""

    name = "interpreters"
    worker_class = _InterpreterWorker

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(max_workers)
        # (The threads backend's own initializer is left unset: it runs in the interpreter.)
        self.init_payload = None if initializer is None else dumps_function((initializer, initargs))
        self.main_path = _main_path()
        self._spec_ids = itertools.count()
        self._specs: OrderedDict[bytes, int] = OrderedDict()  # a pickled spec -> its id
        self._specs_lock = threading.Lock()
        _all_backends.add(self)

    def terminate(self) -> None:
        """Stop now (Ctrl-C): drop queued work and stop the running tasks too, which a
        subinterpreter can (pure Python at once; a call blocked in C when it returns)."""
        super().terminate()
        self.interrupt_all()

    def interrupt_all(self) -> None:
        with self.lock:
            workers = list(self._threads)
        for worker in workers:
            if isinstance(worker, _InterpreterWorker):
                worker.interrupt()

    def release_watchers(self) -> None:
        """End the guests' watcher threads (by closing their pipe) without stopping them: at
        exit, after the wait, a subinterpreter should hold no thread but its guest's."""
        for worker in self.running():
            with worker.fds_lock:
                if worker.interrupts >= 0:
                    os.close(worker.interrupts)
                    worker.interrupts = -1

    def running(self) -> list[_InterpreterWorker]:
        """The workers whose subinterpreter is not closed yet."""
        with self.lock:
            return [
                w
                for w in self._threads
                if isinstance(w, _InterpreterWorker) and not w.closed.is_set()
            ]

    def prepare(self, job: Job) -> None:
        """Pickle the job's function and retry policy; each interpreter unpickles it once."""
        spec = (job.fn, job.retries, job.retry_on)
        try:
            payload = dumps_function(spec)
        except Exception as error:
            fn = job.fn.fn if isinstance(job.fn, Star | Call) else job.fn
            message = f"the function {fn!r} could not be pickled: {error}"
            raise SerializationError(message) from error
        with self._specs_lock:
            found = self._specs.get(payload)
            if found is None:
                found = self._specs[payload] = next(self._spec_ids)
                if len(self._specs) > _guest.SPEC_CACHE_SIZE:
                    self._specs.popitem(last=False)
            else:
                self._specs.move_to_end(payload)
        job.spec_id, job.fn_payload = found, payload


def _decoded(encoded: tuple[bytes | None, str, str]) -> BaseException:
    """A task's exception as its own type with the worker's traceback as __cause__; an import
    that failed for want of subinterpreter support becomes a SubinterpreterImportError."""
    error = decode_error(encoded)
    module = unsupported_module(encoded[2])
    return error if module is None else subinterpreter_error(module, error)


def _remote(text: str) -> BaseException:
    from ..._core._errors import RemoteTraceback

    return RemoteTraceback(text)


def _unpicklable(index: int, cause: BaseException) -> BaseException:
    error = SerializationError(f"the arguments of task {index} could not be pickled: {cause}")
    error.__cause__ = cause
    add_task_note(error, index)
    return error


def _create(interpreters: Any) -> Any:
    """A new subinterpreter that imports what this one can: the caller's sys.path (a script's
    folder, a path added at run time), set before anything of lightwork's is unpickled there."""
    interpreter = interpreters.create()
    try:
        interpreter.exec(f"import sys; sys.path[:] = {list(sys.path)!r}")
    except BaseException:
        interpreter.close()
        raise
    return interpreter


def _main_path() -> str | None:
    """The caller's script, which the guests run as __mp_main__ when a function of it travels
    by reference (None in a session: what it defines travels by value); results of its
    classes come back under that name, which stands for __main__ here too."""
    main = sys.modules.get("__main__")
    if main is not None:
        sys.modules.setdefault("__mp_main__", main)
    return None if interactive_main() else getattr(main, "__file__", None)


# Verdicts of refusal(), by the function's pickle: a subinterpreter is made once per function.
_verdicts: OrderedDict[bytes, str | None] = OrderedDict()
_VERDICTS_KEPT = 64


def refusal(job: Job, sample: list[Any]) -> str | None:
    """Why the job's function, ``sample`` (its first arguments) or a module that the
    function's own code imports cannot go to a subinterpreter, tried in a fresh one; None if
    they can. For ``backend="auto"``."""
    try:
        spec = dumps_function((job.fn, job.retries, job.retry_on))
    except Exception as error:
        return f"the function does not pickle: {error}"
    if spec in _verdicts:
        return _verdicts[spec]
    try:
        args = dumps(sample)
    except Exception:
        try:
            args = dumps_by_value(sample)
        except Exception as error:
            return f"its arguments do not pickle: {error}"
    import concurrent.interpreters as interpreters  # type: ignore[import-not-found,unused-ignore]

    interpreter = _create(interpreters)
    try:
        imports = imported_by(job.fn)
        text: str = interpreter.call(_guest.check, _main_path(), spec, args, imports)
    finally:
        interpreter.close()
    verdict = None
    if text:
        module = unsupported_module(text)
        last = text.strip().splitlines()[-1]
        verdict = f"{module} cannot load in a subinterpreter" if module else last
    _verdicts[spec] = verdict
    if len(_verdicts) > _VERDICTS_KEPT:
        _verdicts.popitem(last=False)
    return verdict


def imported_by(fn: Any) -> tuple[str, ...]:
    """The modules ``fn``'s own code imports as it runs (``import numpy`` inside a function),
    read from its bytecode: what a task would import in a subinterpreter, beyond its module."""
    while isinstance(fn, Star | Call | functools.partial):
        fn = fn.func if isinstance(fn, functools.partial) else fn.fn
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return ()
    import dis

    names: list[str] = []
    pending = [code]
    while pending:
        current = pending.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname == "IMPORT_NAME" and isinstance(instruction.argval, str):
                names.append(instruction.argval)
        pending += [c for c in current.co_consts if hasattr(c, "co_code")]
    return tuple(dict.fromkeys(names))


# Every interpreters pool, stopped or not: at exit none may leave a subinterpreter running code.
_all_backends: weakref.WeakSet[InterpreterBackend] = weakref.WeakSet()
# How long the exit hook waits for interrupted tasks to stop (a task blocked in C stops only
# when it returns to Python): past it, the process exits as it would have without the hook.
EXIT_STOP_SECONDS = 1.0


def _stop_at_exit() -> None:
    """At interpreter exit: let every live pool finish its work (as the threads backend's hook,
    which runs after this one, would), then stop what subinterpreters still run (tasks of a
    terminated pool, after a Ctrl-C; tasks abandoned at their ``task_timeout``) and wait for
    them to close. Python would otherwise destroy them mid-task as it exits, and crash."""
    try:
        _threads._finish_at_exit()
    except KeyboardInterrupt:  # Ctrl-C while the pools finish their work: stop it instead
        for pool in list(_threads._live_backends):  # (Python's exit hung on a running guest)
            pool.terminate()
    backends = list(_all_backends)
    for backend in backends:
        backend.interrupt_all()
    deadline = time.monotonic() + EXIT_STOP_SECONDS
    while any(b.running() for b in backends):
        if time.monotonic() > deadline:  # blocked in C: let Python's exit deal with them
            for backend in backends:
                backend.release_watchers()
            time.sleep(0.02)  # (for the watchers to see it)
            break
        time.sleep(0.005)


try:
    threading._register_atexit(_stop_at_exit)  # type: ignore[attr-defined]
except RuntimeError:  # first imported as the interpreter exits: nothing of it to stop
    pass
