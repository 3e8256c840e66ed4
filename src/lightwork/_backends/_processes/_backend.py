"""The process backend as the executor sees it: every method may be called from any thread.

    any thread                             ProcessBackend                 supervisor thread
    ----------                             --------------                 -----------------
    prepare(job)      --> pickle the function (Encoder); the spec cache
                          (_specs) gives it an id: workers get each once
    submit(attempt)   --> pickle the arguments (Encoder), large arrays
                          by shared memory --> inbox.pending + wake ----> Supervisor (_supervisor)
    shutdown, cancel_pending, start_workers,
    terminate         --> a flag in the inbox + wake ------------------->   acts on it
    a call ends       --> forget its spec: inbox.forgotten + wake ------>   DROP to workers
    lent arrays done  --> every fork pool's inbox.released + wake ------>   retire their holders
    worker_statistics <-- what the supervisor publishes <----------------   counters, totals

Nothing here touches a worker: the supervisor is their only owner (see its module for the
diagram of a task's way and who reads and writes what). ``terminate`` asks the supervisor to
stop and waits for it a bounded time; the supervisor kills the workers still busy.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import multiprocessing.util  # before our atexit handler: see _shutdown_at_exit
import os
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._core._errors import ExecutorShutdownError, InvalidOptionError, LightworkError
from ..._core._options import START_METHODS  # the standard library's, which workers can set
from ..._core._tasks import Attempt, Job, copy_error
from .._base import Backend
from .._pickling import interactive_main
from ._encoder import Encoder
from ._initializer import Initializer
from ._supervisor import EXIT_GRACE_SECONDS, SPEC_CACHE_SIZE, Inbox, Supervisor

if TYPE_CHECKING:
    from ..._core._stats import WorkerStatistics


def default_start_method() -> str:
    """forkserver where it exists (Linux, and Python 3.14's default there), else spawn.

    fork is fast but unsafe once the parent has threads, and this backend always has one (the
    supervisor): a child forked while another thread holds a lock inherits it locked. forkserver
    forks workers from a clean single-threaded server; ``start_method="fork"`` opts back in.
    """
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"


class ProcessBackend(Backend):
    """Worker processes, watched by one supervisor thread (see _supervisor)."""

    name = "processes"

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        start_method: str | None = None,
        native_threads: int | None = None,
        prefetch: bool = True,
    ) -> None:
        if getattr(multiprocessing.process.current_process(), "_inheriting", False):
            # This is a worker re-importing the main module (spawn, forkserver), and the main
            # module starts a pool as it is imported: without this, every worker would try to
            # start workers of its own and die with a traceback from deep in multiprocessing.
            raise LightworkError(
                "a lightwork worker is importing your main module, which starts a process "
                "pool at import time: put the code that runs lightwork under "
                "`if __name__ == '__main__':`"
            )
        self.workers = max_workers
        self.native_threads = native_threads  # per worker; None: left to the environment
        self.start_method = start_method or default_start_method()
        self._context: Any = multiprocessing.get_context(self.start_method)
        pickled = None if initializer is None else Initializer(initializer, initargs)
        # Workers inherit a call's very large arrays instead of mapping a copy (see _arrays):
        # not with an initializer, which each call's new workers would run again.
        inherits = self.start_method == "fork" and initializer is None
        self._encoder = Encoder(inherits, _announce_released)
        self._inbox = Inbox()
        self._pending = self._inbox.pending
        self._supervisor = Supervisor(
            self._inbox,
            self._encoder,
            self._context,
            self.start_method,
            max_workers,
            # Without prefetch each worker holds one attempt: the next goes to whichever
            # worker frees first, never queued behind a slow one (joblib's unordered results).
            self.lookahead if prefetch else 1,
            pickled,
            max_tasks_per_worker,
            native_threads,
        )
        self._lock = threading.Lock()  # guards starting the supervisor and stopping it
        self._thread: threading.Thread | None = None
        self._spec_ids = itertools.count()
        self._specs: OrderedDict[bytes, int] = OrderedDict()  # a pickled spec -> its id
        self._specs_lock = threading.Lock()
        _live_backends.add(self)
        _stop_before_multiprocessing_joins()

    def prepare(self, job: Job) -> None:
        """Pickle the job's function and retry policy; workers get each distinct pickle once.

        Pickled on every call, as ``ProcessPoolExecutor`` does, so that a callable's state as
        of the call is what runs (a few microseconds for a function sent by reference); the
        bytes, not the function, say whether the workers already hold it.
        """
        payload = self._encoder.function(job)
        if job.arrays is not None:
            # It refers to this call's arrays: never reuse it, and have the workers forget it
            # when the call ends, or they would keep the arrays mapped.
            spec_id = next(self._spec_ids)
            job.spec_id, job.fn_payload = spec_id, payload
            job.on_close.append(lambda: self._forget_spec(spec_id))
            return
        with self._specs_lock:
            found = self._specs.get(payload)
            if found is None:
                found = self._specs[payload] = next(self._spec_ids)
                if len(self._specs) > SPEC_CACHE_SIZE:
                    self._specs.popitem(last=False)
            else:
                self._specs.move_to_end(payload)
        job.spec_id, job.fn_payload = found, payload

    def submit(self, attempt: Attempt) -> None:
        if _interpreter_exiting:
            raise ExecutorShutdownError("cannot schedule new futures after interpreter shutdown")
        if self.start_method == "fork":
            _check_no_subinterpreters()
        if self._inbox.closing:  # shutdown() or terminate()
            raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
        broken = self._supervisor.broken
        if broken is not None:  # as ProcessPoolExecutor does, once it is broken
            raise copy_error(broken)
        attempts = [attempt]
        if attempt.payload is None:
            try:
                attempt.payload = self._encoder.arguments(attempt)
            except Exception:
                # Some argument won't pickle: fail exactly those tasks, send the others singly.
                attempts = self._encoder.one_by_one(attempt)
        with self._lock:  # pickling took a while: not after shutdown() began, or it is lost
            if self._inbox.closing:
                raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
            self._pending.extend(attempts)
        self._inbox.wake()
        if self._thread is None:
            self._start()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._inbox.closing = True
            thread = self._thread
        self._inbox.wake()
        if thread is None:
            self._inbox.close()
        elif wait and thread is not threading.current_thread():
            thread.join()

    def start_workers(self) -> None:
        if self._inbox.closing:
            raise ExecutorShutdownError("cannot start workers: the executor has been shut down")
        if self.start_method == "fork":
            _check_no_subinterpreters()
        all_ready = self._supervisor.all_ready
        all_ready.clear()  # before asking: the supervisor sets it once they all are
        self._inbox.start_all = True
        self._inbox.wake()
        if self._thread is None:
            self._start()
        all_ready.wait()
        broken = self._supervisor.broken
        if broken is not None:
            raise copy_error(broken)

    def cancel_pending(self) -> None:
        self._inbox.cancel_requested = True
        self._inbox.wake()

    def terminate(self) -> None:
        """Have the supervisor kill the workers and stop; wait for it a bounded time."""
        with self._lock:
            self._inbox.closing = self._inbox.terminated = True
            thread = self._thread
        self._inbox.wake()
        if thread is None:
            self._inbox.close()
        elif thread is not threading.current_thread():
            thread.join(timeout=EXIT_GRACE_SECONDS)

    def worker_statistics(self) -> list[WorkerStatistics]:
        return [counters.snapshot() for counters in self._supervisor.counters]

    def extra_statistics(self) -> tuple[int, int, int]:
        supervisor = self._supervisor
        return (supervisor.started, supervisor.crashed, supervisor.retried)

    def arrays_released(self, tokens: frozenset[int]) -> None:
        """Lent arrays (``tokens``) are done with: have the supervisor retire the workers that
        inherited them (any pool's: a fork worker inherits every array lent before it forked,
        whoever lent it)."""
        if self._encoder.inherits and not self._inbox.closing:
            self._inbox.released.append(tokens)
            self._inbox.wake()

    def _forget_spec(self, spec_id: int) -> None:
        self._inbox.forgotten.append(spec_id)
        self._inbox.wake()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self.start_method != "fork":
                _skip_missing_main_file()
            if self.start_method == "forkserver":
                # Workers fork from a server that has already imported the worker loop, and
                # NumPy if this program uses it: each worker would otherwise import it again.
                preload = [__package__ + "._worker", __package__ + "._channel"]
                if "numpy" in sys.modules:
                    preload.append("numpy")
                    if self.native_threads is not None and _installed("threadpoolctl"):
                        preload.append(__package__ + "._native_preload")  # see _native
                if not interactive_main():  # what each worker needs to import the script
                    preload.append(__package__ + "._forkserver_preload")
                self._context.set_forkserver_preload(preload)
            self._thread = threading.Thread(
                target=self._supervise, name="lightwork-supervisor", daemon=True
            )
            self._thread.start()

    def _supervise(self) -> None:
        # The thread holds the backend, and so keeps it among _live_backends: a pool dropped
        # with work in hand finishes it, and is still stopped at exit.
        self._supervisor.run()


def _check_no_subinterpreters() -> None:
    """Refuse to fork while this process has subinterpreters (a backend="interpreters" pool):
    on Python 3.14 a child forked then crashes (SIGSEGV) as it starts."""
    interpreters = sys.modules.get("concurrent.interpreters")
    if interpreters is None:
        return
    others = len(interpreters.list_all()) - 1
    if others > 0:
        raise InvalidOptionError(
            f"start_method='fork' cannot start workers while this process has {others} "
            "subinterpreter(s) (a backend='interpreters' pool, or auto's choice of one): a "
            "child forked then crashes as it starts; use the default start method "
            "(forkserver) or spawn, or shut that pool down first"
        )


def _installed(module: str) -> bool:
    import importlib.util

    return module in sys.modules or importlib.util.find_spec(module) is not None


def _announce_released(tokens: frozenset[int]) -> None:
    """Lent arrays that are done with (told by a call's CallArrays, from any thread): post them
    to every pool, each of which retires its own workers that hold them."""
    for backend in list(_live_backends):
        backend.arrays_released(tokens)


def _skip_missing_main_file() -> None:
    """Have spawned and forkserver workers skip a main "file" that does not exist, and a start
    method of a library's own that they could not set.

    multiprocessing tells each such worker to run the parent's ``__main__.__file__``, even
    when that is ``'<stdin>'``: every worker then dies of FileNotFoundError (the standard
    library's pools too). What that session defines travels by value instead (see
    needs_value), so the worker needs no main module. Installed once, for every pool.
    """
    import multiprocessing.spawn as spawn

    prepare = spawn.get_preparation_data
    if getattr(prepare, "_lightwork", False):
        return

    def preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = prepare(name)
        path = data.get("init_main_from_path")
        if path is not None and not os.path.isfile(path):
            del data["init_main_from_path"]
        if data.get("start_method") not in START_METHODS:
            # A pool started inside a loky worker (joblib's), whose default start method is
            # "loky": a worker told to use it would die, as the standard library knows no such.
            data.pop("start_method", None)
        return data

    preparation_data._lightwork = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = preparation_data


_live_backends: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()
_interpreter_exiting = False  # set at exit: no pool starts workers then


def _forget_parents_pools() -> None:
    """In a forked child the pools are the parent's: its exit must not stop them. Nor is the
    fork server its child: multiprocessing would waitpid() it (ChildProcessError) instead of
    starting one of the child's own."""
    _live_backends.clear()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        alive = server._forkserver_alive_fd
        server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None
        if alive is not None:
            os.close(alive)  # (our copy: the parent keeps its server alive with its own)


os.register_at_fork(after_in_child=_forget_parents_pools)
_finalizer_pid: int | None = None  # the process whose multiprocessing exit runs our hook


def _stop_before_multiprocessing_joins() -> None:
    """Have a multiprocessing child (a Process, a Pool worker, a loky worker) stop its pools
    when its target returns: it runs no atexit handler, but joins every non-daemon child, so
    our workers, waiting for work, would keep it alive for ever. multiprocessing's Finalize
    with an exit priority runs just before those joins (as Pool's own does); a fork clears the
    registry, so each process registers once, when it makes its first pool."""
    global _finalizer_pid
    if _finalizer_pid != os.getpid():
        _finalizer_pid = os.getpid()
        multiprocessing.util.Finalize(None, _shutdown_at_exit, exitpriority=20)


@atexit.register
def _shutdown_at_exit() -> None:
    """Stop every pool at interpreter exit, before multiprocessing joins its children.

    atexit runs handlers last-registered first, and multiprocessing.util registered its own
    (which joins every child) when it was imported, at the top of this module.
    """
    global _interpreter_exiting
    _interpreter_exiting = True
    for backend in list(_live_backends):
        backend.shutdown(wait=True)
