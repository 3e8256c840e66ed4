"""The process backend: worker processes watched by one supervisor thread.

    submit() (any thread)                 supervisor thread                     worker i
    ---------------------                 -----------------                     --------
    pickle the attempt's args  --pending deque + wake pipe-->  dispatch  --RUN-->  run_chunk
                                                                          <-RESULT-- (slot: which
    chunk.resolve() <----------------------------------------  on result            task runs)
                                          on sentinel: the worker died: requeue the unfinished
                                          positions, charge the task it held (when its slot
                                          names one; else re-run them naming each), start a
                                          replacement

Only the supervisor thread touches workers, their in-flight attempts and the spec caches; other
threads append to ``_pending`` and write a byte to the wake pipe. The supervisor sleeps in
``wait`` (see _channel) on every worker's pipe *and* sentinel, so a dead worker is
noticed at once, and it always knows which attempts each worker holds (in send order, which is
the order the worker runs them). Each worker has its own pipe, so a dead worker never corrupts a
queue that others share, the failure that makes ``multiprocessing.Pool`` hang (cpython#96062).

Attempts are sent ahead: a worker holds up to ``lookahead`` of them so it never waits for its
next chunk. Only small payloads go ahead of time: a worker busy computing does not read its pipe,
and a large payload would block the supervisor in send() while that worker, in turn, waits to
send its result.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import multiprocessing.util  # before our atexit handler: see _shutdown_at_exit
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Set
from typing import TYPE_CHECKING, Any

from ..._core._counters import WorkerCounters
from ..._core._errors import (
    BrokenWorkerError,
    ExecutorShutdownError,
    LightworkError,
    RemoteTraceback,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerInitializationError,
    as_process_pool_error,
)
from ..._core._run import Call, Star, add_task_note
from ..._core._tasks import Attempt, Chunk, Job, copy_error, fail_attempt
from .._base import Backend
from .._pickling import (
    decode_error,
    dumps,
    dumps_by_value,
    dumps_function,
    interactive_main,
    needs_value,
    serialization_error,
)
from . import _wire
from ._channel import Channel, pipe, wait
from ._initializer import Initializer
from ._wire import HEADER, IN_CHUNK, SLOT_INDEX, SLOT_SERIAL, SLOT_STARTED, SharedSlot

if TYPE_CHECKING:
    from ..._core._slot import Slot
    from ..._core._stats import WorkerStatistics
    from ._arrays import CallArrays

# A payload this small fits in the pipe's buffer, so it can be sent to a busy worker.
PREFETCH_MAX_BYTES = 32 * 1024
# Functions each worker keeps unpickled; the parent evicts in the same order and says so.
SPEC_CACHE_SIZE = 64
# How often memory is sampled, to say "out of memory?" when a worker is SIGKILLed.
MEMORY_SAMPLE_SECONDS = 0.5
_NO_TOKENS: frozenset[int] = frozenset()
# A worker whose resident memory was above this share of the machine's when it was SIGKILLed
# was most likely chosen by the kernel's out-of-memory killer.
OOM_SHARE = 0.25
# Workers that die before running anything, in a row, before the executor gives up: a worker
# that cannot even start would otherwise be respawned forever.
MAX_STARTUP_DEATHS = 3
# How long shutdown waits for a worker to exit on its own before killing it.
EXIT_GRACE_SECONDS = 2.0


def default_start_method() -> str:
    """forkserver where it exists (Linux, and Python 3.14's default there), else spawn.

    fork is fast but unsafe once the parent has threads, and this backend always has one (the
    supervisor): a child forked while another thread holds a lock inherits it locked. forkserver
    forks workers from a clean single-threaded server; ``start_method="fork"`` opts back in.
    """
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"


class _Worker:
    """The supervisor's view of one worker process."""

    def __init__(
        self, number: int, process: Any, conn: Channel, slot: SharedSlot, lifeline: Channel
    ) -> None:
        self.number = number
        self.process = process
        self.conn = conn
        self.shared_slot = slot  # keeps the shared memory mapped
        self.slot: Slot = slot.view
        self.lifeline = lifeline  # the write end of the worker's lifeline: held, never written
        self.counters = WorkerCounters(number, process.pid)
        self.inflight: deque[tuple[int, Attempt]] = deque()  # (serial, attempt), in send order
        self.specs: OrderedDict[int, None] = OrderedDict()  # spec ids this worker holds
        self.tasks_sent = 0
        self.retiring = False  # recycled after max_tasks_per_worker: its exit is expected
        # Retired before its tasks ran out (it holds lent arrays no longer used): it still
        # counts against max_workers until they have (a recycled one overlaps its successor).
        self.draining = False
        self.timed_out: tuple[int, float] | None = None  # (task index, limit) if killed for it
        self.rss = 0  # last sampled resident memory, bytes
        self.ran_something = False
        self.spawned_at = time.monotonic()
        self.ready = False  # it said READY: started and initialized
        self.dead = False  # a send failed: it is dying, its sentinel will say so
        self.inherited: frozenset[int] = frozenset()  # large arrays it has by fork (_arrays)


class ProcessBackend(Backend):
    name = "processes"

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        start_method: str | None = None,
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
        self.start_method = start_method or default_start_method()
        self._context: Any = multiprocessing.get_context(self.start_method)
        self._initializer = None if initializer is None else Initializer(initializer, initargs)
        # Workers inherit a call's very large arrays instead of mapping a copy (see _arrays):
        # not with an initializer, which each call's new workers would run again.
        self._inherits = self.start_method == "fork" and initializer is None
        self._released: deque[frozenset[int]] = deque()  # inherited arrays no call uses now
        self._max_tasks_per_worker = max_tasks_per_worker
        self._pending: deque[Attempt] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_sent = False
        self._lock = threading.Lock()  # guards starting the supervisor and the state changes
        self._thread: threading.Thread | None = None
        self._closing = False  # shutdown(): finish pending work, then stop
        self._terminated = False  # terminate(): stop now
        self._cancel_requested = False  # cancel_pending(): drop what no worker holds yet
        self._start_all = False  # start_workers(): start every worker now
        self._forgotten: deque[int] = deque()  # spec ids the workers must drop now
        self._all_ready = threading.Event()  # set once they all said READY
        self._broken: BrokenWorkerError | None = None
        self._workers: dict[int, _Worker] = {}
        self._retired: list[WorkerCounters] = []
        self._numbers = itertools.count()
        self._serials = itertools.count(1)
        self._spec_ids = itertools.count()
        self._specs: OrderedDict[bytes, int] = OrderedDict()  # a pickled spec -> its id
        self._specs_lock = threading.Lock()
        self._startup_deaths = 0
        self._workers_started = 0
        self._workers_crashed = 0
        self._tasks_retried = 0
        # psutil loads at the first sample, after the first results: not on their path.
        self._next_memory_sample = time.monotonic() + MEMORY_SAMPLE_SECONDS
        _live_backends.add(self)

    # ---- called from any thread -------------------------------------------------------------

    def prepare(self, job: Job) -> None:
        """Pickle the job's function and retry policy; workers get each distinct pickle once.

        Pickled on every call, as ``ProcessPoolExecutor`` does, so that a callable's state as
        of the call is what runs (a few microseconds for a function sent by reference); the
        bytes, not the function, say whether the workers already hold it.
        """
        payload = self._pickle_function(job)
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

    def _pickle_function(self, job: Job) -> bytes:
        spec = (job.fn, job.retries, job.retry_on)  # the worker makes a Work of it
        try:
            if "numpy" not in sys.modules:
                return dumps_function(spec)
            from ._arrays import dumps_function_sharing

            arrays = self._call_arrays()
            try:
                payload = dumps_function_sharing(spec, arrays, arrays.function)
            except BaseException:
                arrays.close()  # leave no segment behind
                raise
            if arrays.function.arrays:
                self._adopt(job, arrays)
            return payload
        except Exception as error:
            fn = job.fn.fn if isinstance(job.fn, Star | Call) else job.fn
            message = f"the function {fn!r} could not be pickled: {error}"
            raise serialization_error(message, error) from error

    def _encode(self, attempt: Attempt) -> bytes:
        """Pickle an attempt's arguments; large NumPy arrays go by shared memory."""
        args = attempt.args()
        if "numpy" in sys.modules and args:
            from ._arrays import Held, dumps_function_sharing, has_large_array

            if has_large_array(args[0]):
                job = attempt.chunk.job
                if job.arrays is None:
                    self._adopt(job, self._call_arrays())
                before = job.arrays.new_bytes
                attempt.held = Held()
                payload = dumps_function_sharing(args, job.arrays, attempt.held)
                # Bounds the arrays a stream keeps in flight (see ChunkSizer.record_bytes).
                job.measured_bytes(len(attempt), job.arrays.new_bytes - before)
                return payload
        payload = dumps(args)
        # Instances of classes a session defined go by value, as its functions do.
        return dumps_by_value(args) if needs_value(payload) else payload

    def _call_arrays(self) -> CallArrays:
        from ._arrays import CallArrays

        return CallArrays(self._inherits, self._on_arrays_released)

    def _adopt(self, job: Job, arrays: CallArrays) -> None:
        """Make ``arrays`` the job's, released when it ends."""
        job.arrays = arrays
        job.on_close.append(arrays.close)

    @staticmethod
    def _on_arrays_released(tokens: frozenset[int]) -> None:
        """Lent arrays that are done with: retire the workers that hold them, in every fork
        pool (a worker inherits all that were lent when it forked, whoever lent them)."""
        for backend in list(_live_backends):
            if backend._inherits and not (backend._closing or backend._terminated):
                backend._released.append(tokens)
                backend._wake()

    def submit(self, attempt: Attempt) -> None:
        if _interpreter_exiting:
            raise ExecutorShutdownError("cannot schedule new futures after interpreter shutdown")
        if self._closing or self._terminated:
            raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
        if self._broken is not None:  # as ProcessPoolExecutor does, once it is broken
            raise copy_error(self._broken)
        if attempt.payload is None:
            try:
                attempt.payload = self._encode(attempt)
            except Exception:
                self._submit_isolated(attempt)
                return
        self._pending.append(attempt)
        self._wake()
        if self._thread is None:
            self._start()

    def _submit_isolated(self, attempt: Attempt) -> None:
        """Some argument won't pickle: fail exactly those tasks, send the others one by one."""
        chunk = attempt.chunk
        for position in range(attempt.lo, attempt.hi):
            arg = chunk.args[position]
            try:
                payload = dumps([arg])
            except Exception:
                try:
                    payload = dumps_by_value([arg])
                except Exception as error:
                    chunk.fail(
                        position,
                        serialization_error(
                            f"the arguments of task {chunk.indices[position]} could not be "
                            f"pickled: {error}",
                            error,
                        ),
                    )
                    continue
            self._pending.append(Attempt(chunk, position, position + 1, payload))
        self._wake()
        if self._thread is None:
            self._start()

    def _forget_spec(self, spec_id: int) -> None:
        self._forgotten.append(spec_id)
        self._wake()

    def _wake(self) -> None:
        if not self._wake_sent:
            self._wake_sent = True
            try:
                os.write(self._wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass

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
                if not interactive_main():  # what each worker needs to import the script
                    preload.append(__package__ + "._forkserver_preload")
                self._context.set_forkserver_preload(preload)
            self._thread = threading.Thread(
                target=self._supervise, name="lightwork-supervisor", daemon=True
            )
            self._thread.start()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake()
        if thread is None:
            self._close_wake_pipe()
        elif wait and thread is not threading.current_thread():
            thread.join()

    def start_workers(self) -> None:
        if self._closing or self._terminated:
            raise ExecutorShutdownError("cannot start workers: the executor has been shut down")
        self._start_all = True
        self._all_ready.clear()
        self._wake()
        if self._thread is None:
            self._start()
        self._all_ready.wait()
        if self._broken is not None:
            raise copy_error(self._broken)

    def cancel_pending(self) -> None:
        self._cancel_requested = True
        self._wake()

    def terminate(self) -> None:
        with self._lock:
            self._closing = self._terminated = True
            thread = self._thread
        for worker in list(self._workers.values()):
            _kill(worker.process)
        self._wake()
        if thread is None:
            self._close_wake_pipe()
        elif thread is not threading.current_thread():
            thread.join(timeout=EXIT_GRACE_SECONDS)

    def worker_statistics(self) -> list[WorkerStatistics]:
        live = [w.counters for w in list(self._workers.values())]
        return [c.snapshot() for c in sorted(self._retired + live, key=lambda c: c.worker)]

    def extra_statistics(self) -> tuple[int, int, int]:
        return (self._workers_started, self._workers_crashed, self._tasks_retried)

    # ---- the supervisor thread --------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # a bug here must not leave callers waiting forever
            self._break(BrokenWorkerError(f"the lightwork supervisor failed: {error!r}"))
            raise
        finally:
            self._stop_workers()
            self._close_wake_pipe()

    def _loop(self) -> None:
        while not self._terminated:
            if self._cancel_requested:
                self._cancel_requested = False
                self._abort_pending(ExecutorShutdownError("cancelled by shutdown()"))
            if self._broken is None:
                self._drop_forgotten()
                self._retire_inheritors()
                try:
                    self._dispatch()
                    self._start_all_workers()
                except _SpawnFailed as failure:
                    error = WorkerInitializationError(str(failure))
                    error.__cause__ = failure.__cause__
                    self._break(error)
            if self._closing and not self._pending and not self._busy():
                return
            owners: dict[Any, _Worker] = {}  # pipe or sentinel -> its worker
            for worker in self._workers.values():
                owners[worker.conn] = owners[worker.process.sentinel] = worker
            for ready in wait([self._wake_r, *owners], timeout=self._next_check()):
                if ready == self._wake_r:
                    os.read(self._wake_r, 4096)
                    self._wake_sent = False
                    continue
                owner = owners.get(ready)
                if owner is None or owner.number not in self._workers:
                    continue  # it exited while an earlier handle of this round was handled
                if ready is owner.conn:
                    self._receive(owner)
                else:
                    self._on_exit(owner)
            self._check_deadlines()
            self._sample_memory()

    def _busy(self) -> bool:
        """Whether a worker holds work someone still waits for (cancelled work doesn't count)."""
        return any(
            not attempt.chunk.job.cancelled
            for worker in self._workers.values()
            for _, attempt in worker.inflight
        )

    def _spawn(self) -> _Worker:
        from ._worker import worker_main

        number = next(self._numbers)
        parent_conn, child_conn = pipe(duplex=True)
        lifeline_r, lifeline_w = pipe(duplex=False)  # see _worker._arm_lifeline
        slot = SharedSlot(self._context)
        inherited = _inheritable_tokens() if self._inherits else _NO_TOKENS
        process = self._context.Process(
            target=worker_main,
            args=(
                child_conn,
                slot,
                self._initializer,
                os.getpid(),
                lifeline_r,
                # A forked child inherits the write end too; it must close its copy.
                lifeline_w.fileno() if self.start_method == "fork" else -1,
            ),
            name=f"lightwork-worker-{number}",
        )
        try:
            process.start()
        except Exception as error:  # the initializer's arguments could not go to the worker
            for end in (parent_conn, child_conn, lifeline_r, lifeline_w):
                end.close()
            slot.close()
            raise _SpawnFailed(f"a worker could not be started: {error!r}") from error
        child_conn.close()
        lifeline_r.close()
        worker = _Worker(number, process, parent_conn, slot, lifeline_w)
        worker.inherited = inherited
        self._workers[number] = worker
        self._workers_started += 1
        return worker

    def _dispatch(self) -> None:
        """Send pending attempts to workers with room, idle workers first."""
        while self._pending:
            attempt = self._pending[0]
            job = attempt.chunk.job
            if job.cancelled or (attempt.payload is None and not self._encode_rerun(attempt)):
                self._pending.popleft()
                continue
            assert attempt.payload is not None
            needs = _NO_TOKENS if job.arrays is None else job.arrays.needs(attempt.held)
            worker = self._choose_worker(len(attempt.payload), needs)
            if worker is None:
                return
            self._pending.popleft()
            budget = self._budget(worker)
            if budget < len(attempt):
                # Recycle on time: send only what the worker may run. That part is pickled
                # anew, and then needs a worker that can read it: the next round finds one.
                self._pending.appendleft(Attempt(attempt.chunk, attempt.lo + budget, attempt.hi))
                self._pending.appendleft(Attempt(attempt.chunk, attempt.lo, attempt.lo + budget))
                continue
            if not job.start():
                job.close()  # a future cancelled while it waited: release what it holds
                continue
            self._send(worker, attempt)

    def _encode_rerun(self, attempt: Attempt) -> bool:
        """Pickle the arguments of a re-run (part of a chunk) here; False if it is not to be
        sent: its call ended meanwhile, or they don't pickle now (then its tasks go one by
        one, see _submit_isolated)."""
        try:
            attempt.payload = self._encode(attempt)
        except Exception:
            if not attempt.chunk.job.cancelled:
                self._submit_isolated(attempt)
            return False
        return True

    def _drop_forgotten(self) -> None:
        while self._forgotten:
            spec_id = self._forgotten.popleft()
            for worker in self._workers.values():
                if worker.specs.pop(spec_id, 0) is None:
                    try:
                        worker.conn.send((_wire.DROP, spec_id))
                    except OSError:
                        pass

    def _retire_inheritors(self) -> None:
        """Retire the workers that inherited arrays no call uses any more: they hold them."""
        while self._released:
            released = self._released.popleft()
            for worker in self._workers.values():
                if not worker.retiring and worker.inherited & released:
                    worker.retiring = worker.draining = True
                    self._maybe_retire(worker)

    def _start_all_workers(self) -> None:
        if not self._start_all:
            return
        live = [w for w in self._workers.values() if not (w.retiring or w.dead)]
        for _ in range(self.workers - len(live)):
            live.append(self._spawn())
        if all(w.ready for w in live):
            self._start_all = False
            self._all_ready.set()

    def _choose_worker(self, payload_size: int, needs: Set[int]) -> _Worker | None:
        """An idle worker; else a new one while under max_workers; else one to send ahead to.

        Workers start as work needs them: a pool of 500 given 39 tasks starts 39 processes.
        ``needs``: the lent arrays the work refers to (see _arrays); a worker forked before
        them can't run it, and one such idle worker is retired to make room if need be.
        """
        busy_ok = payload_size <= PREFETCH_MAX_BYTES
        best: _Worker | None = None
        stale: _Worker | None = None
        live = 0
        for worker in self._workers.values():
            if worker.retiring or worker.dead or worker.timed_out is not None:
                live += worker.draining and bool(worker.inflight)  # still using its CPU
                continue
            live += 1
            if not needs <= worker.inherited:
                if not worker.inflight and stale is None:
                    stale = worker
                continue
            if not worker.inflight:
                return worker
            if busy_ok and len(worker.inflight) < self.lookahead and best is None:
                best = worker
        if live < self.workers:
            return self._spawn()
        if stale is not None:
            stale.retiring = True
            self._maybe_retire(stale)
            return self._spawn()
        return best

    def _budget(self, worker: _Worker) -> int:
        if self._max_tasks_per_worker is None:
            return sys.maxsize
        return self._max_tasks_per_worker - worker.tasks_sent

    def _send(self, worker: _Worker, attempt: Attempt) -> None:
        job = attempt.chunk.job
        serial = next(self._serials)
        # Deadlines need each task's start in the slot; retries=0 needs each death charged to
        # the task that died, not found by running the chunk's tasks again (see run_chunk).
        options = job.options
        per_task = options.task_timeout is not None or options.retries == 0 or attempt.per_task
        try:
            self._send_spec(worker, job)
            worker.conn.send(
                (_wire.RUN, serial, job.spec_id, job.entropy, attempt.indices(), per_task)
            )
            assert attempt.payload is not None
            worker.conn.send_bytes(attempt.payload)
        except OSError:
            # It died and its sentinel has not been seen yet: _on_exit will handle it.
            worker.dead = True
            self._pending.appendleft(attempt)
            return
        worker.inflight.append((serial, attempt))
        worker.tasks_sent += len(attempt)
        if self._budget(worker) <= 0:
            worker.retiring = True

    def _send_spec(self, worker: _Worker, job: Job) -> None:
        spec_id = job.spec_id
        if spec_id in worker.specs:
            worker.specs.move_to_end(spec_id)
            return
        assert job.fn_payload is not None
        worker.conn.send((_wire.SPEC, spec_id, job.fn_payload))
        worker.specs[spec_id] = None
        if len(worker.specs) > SPEC_CACHE_SIZE:
            old, _ = worker.specs.popitem(last=False)
            worker.conn.send((_wire.DROP, old))

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._on_exit(worker)
            return
        self._on_message(worker, message)

    def _on_message(self, worker: _Worker, message: bytes | bytearray) -> None:
        kind, serial, compute, deserialize, serialize, idle = HEADER.unpack_from(message)
        payload = memoryview(message)[HEADER.size :]
        if kind == _wire.READY:
            worker.ready = True
            worker.counters.startup = time.monotonic() - worker.spawned_at
            self._startup_deaths = 0
            return
        if kind == _wire.INIT_FAILED:
            text = pickle.loads(payload)
            error = WorkerInitializationError(
                "the executor's initializer raised in a worker; its traceback is the cause"
            )
            error.__cause__ = RemoteTraceback(text)
            self._break(error)
            return
        expected, attempt = worker.inflight.popleft()
        assert expected == serial, (expected, serial)
        worker.ran_something = True
        self._startup_deaths = 0
        counters = worker.counters
        counters.chunks += 1
        counters.tasks += len(attempt)
        counters.busy += compute
        counters.deserialize += deserialize
        counters.serialize += serialize
        counters.idle += idle
        chunk = attempt.chunk
        if kind == _wire.BAD_INPUT:
            what, text = pickle.loads(payload)
            self._isolate(attempt, what, "could not be unpickled in the worker: " + text)
            self._maybe_retire(worker)
            return
        try:
            values, encoded = pickle.loads(payload)
            errors = {attempt.lo + p: decode_error(e) for p, e in encoded.items()}
        except BaseException as error:  # even SystemExit: nothing a result does stops us
            self._isolate(attempt, "its result", f"could not be unpickled in the parent: {error!r}")
        else:
            chunk.job.measured(len(values), compute)
            for position, exc in errors.items():
                add_task_note(exc, chunk.indices[position])
            chunk.resolve(attempt.lo, values, errors)
        self._maybe_retire(worker)

    def _isolate(self, attempt: Attempt, what: str, problem: str) -> None:
        """``what`` (its arguments, its result, the function) failed to unpickle: re-run the
        attempt's tasks singly to find the one at fault."""
        chunk = attempt.chunk
        if len(attempt) > 1:
            for position in reversed(range(attempt.lo, attempt.hi)):
                self._pending.appendleft(Attempt(chunk, position, position + 1))
            return
        index = chunk.indices[attempt.lo]
        chunk.fail(attempt.lo, SerializationError(f"task {index}: {what} {problem}"))

    def _maybe_retire(self, worker: _Worker) -> None:
        if worker.retiring and not worker.inflight:
            try:
                worker.conn.send((_wire.STOP,))
            except OSError:
                pass  # it died meanwhile: its sentinel says so

    def _on_exit(self, worker: _Worker) -> None:
        """The worker's process ended: requeue what it held, charge the task it was running."""
        try:
            self._account_for_exit(worker)
        finally:
            if worker.number not in self._workers:
                worker.shared_slot.close()

    def _account_for_exit(self, worker: _Worker) -> None:
        while True:  # results it sent before dying are not lost
            try:
                if not worker.conn.poll(0):
                    break
                message = worker.conn.recv_bytes()
            except (EOFError, OSError):
                break
            self._on_message(worker, message)
            if worker.number not in self._workers:
                return
        _join(worker.process, EXIT_GRACE_SECONDS)
        del self._workers[worker.number]
        worker.counters.alive = False
        self._retired.append(worker.counters)
        worker.conn.close()
        worker.lifeline.close()
        if self._terminated:
            return
        if worker.retiring and not worker.inflight and worker.timed_out is None:
            return  # recycled after max_tasks_per_worker: _spawn_missing replaces it
        self._workers_crashed += worker.timed_out is None
        if not worker.ran_something and worker.slot[SLOT_SERIAL] < 0:
            # It died before it even read a task: blame the start-up, not a task.
            self._pending.extendleft(reversed([a for _, a in worker.inflight]))
            worker.inflight.clear()
            self._startup_deaths += 1
            if self._startup_deaths >= MAX_STARTUP_DEATHS:
                exitcode = worker.process.exitcode
                hint = ""
                if exitcode == 1 and self.start_method != "fork":
                    hint = (
                        "; a worker that exits with code 1 as it starts usually failed to "
                        "import your main module (its traceback is above): code that starts "
                        "a pool belongs under `if __name__ == '__main__':`"
                    )
                self._break(
                    WorkerCrashedError(
                        f"{MAX_STARTUP_DEATHS} workers in a row died before running any task "
                        f"(the last: pid {worker.process.pid}, {_describe_exit(exitcode)})" + hint
                    )
                )
            return
        self._requeue_after_death(worker)

    def _requeue_after_death(self, worker: _Worker) -> None:
        if not worker.inflight:
            return
        serial, attempt = worker.inflight[0]
        chunk = attempt.chunk
        requeue: list[Attempt] = []
        slot_serial, slot_index = worker.slot[SLOT_SERIAL], int(worker.slot[SLOT_INDEX])
        if worker.timed_out is not None:
            slot_serial, slot_index = serial, worker.timed_out[0]
        slot_position = slot_index - chunk.indices.start if slot_index >= 0 else -1
        if slot_serial != serial:
            requeue.append(attempt)  # it died between attempts: nobody is to blame
        elif slot_index == IN_CHUNK:
            # It died somewhere in a chunk run without per-task bookkeeping: run the same
            # tasks again, naming each in the slot, charging none of them now; the one at
            # fault dies again and is charged then.
            chunk.unattributed_deaths.append((attempt.lo, attempt.hi))
            requeue.append(
                Attempt(chunk, attempt.lo, attempt.hi, attempt.payload, True, attempt.held)
            )
        elif slot_position < 0 and len(attempt) > 1:
            # It died unpickling the arguments: find out which task's arguments, one by one.
            requeue += [Attempt(chunk, p, p + 1) for p in range(attempt.lo, attempt.hi)]
        else:
            position = max(slot_position, attempt.lo)
            if attempt.lo < position:
                requeue.append(Attempt(chunk, attempt.lo, position))  # done, but results lost
            if chunk.charge_retry(position):
                self._tasks_retried += 1
                # Still naming each task: if this one dies again, it is charged at once.
                requeue.append(Attempt(chunk, position, attempt.hi, per_task=True))
            else:
                chunk.fail(position, self._death_error(worker, chunk, position))
                if position + 1 < attempt.hi:
                    requeue.append(Attempt(chunk, position + 1, attempt.hi))
        requeue += [held for _, held in list(worker.inflight)[1:]]
        worker.inflight.clear()
        self._pending.extendleft(reversed(requeue))

    def _death_error(self, worker: _Worker, chunk: Chunk, position: int) -> LightworkError:
        index = chunk.indices[position]
        pid = worker.process.pid
        retries = chunk.job.options.retries
        tried = f"{retries + 1} attempts" if retries else "1 attempt (retries=0)"
        unnamed = sum(lo <= position < hi for lo, hi in chunk.unattributed_deaths)
        if unnamed:  # the worker it killed first, before the task was known
            tried += f", and {unnamed} more in its chunk before it was identified"
        if worker.timed_out is not None:
            limit = worker.timed_out[1]
            return TaskTimeoutError(
                f"task {index} ran longer than task_timeout={limit:g}s in worker {pid}, "
                f"which was killed ({tried})"
            )
        exit_code = worker.process.exitcode
        cause = _likely_cause(exit_code, worker.rss)
        return as_process_pool_error(
            WorkerCrashedError(
                f"worker {pid} died ({_describe_exit(exit_code)}) while running task {index}, "
                f"after {tried}{': ' + cause if cause else ''}"
            )
        )

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in self._workers.values():
            limit = self._running_limit(worker)
            if limit is None or worker.timed_out is not None:
                continue
            # The worker writes the start time, then the index; reading in the other order
            # never pairs a new task with an old start time.
            index = worker.slot[SLOT_INDEX]
            started = worker.slot[SLOT_STARTED]
            if now - started > limit and worker.slot[SLOT_INDEX] == index:
                worker.timed_out = (int(index), limit)
                _kill(worker.process)

    def _running_limit(self, worker: _Worker) -> float | None:
        """The time limit of the task the worker is running now, if it has one."""
        if not worker.inflight:
            return None
        serial, attempt = worker.inflight[0]
        limit = attempt.chunk.job.options.task_timeout
        slot = worker.slot
        if limit is None or slot[SLOT_SERIAL] != serial or slot[SLOT_INDEX] < 0:
            return None
        return limit

    def _next_check(self) -> float:
        """How long the supervisor may sleep: until the nearest task deadline, at most 0.5 s."""
        wait_for = MEMORY_SAMPLE_SECONDS
        now = time.monotonic()
        for worker in self._workers.values():
            limit = self._running_limit(worker)
            if limit is not None:
                remaining = worker.slot[SLOT_STARTED] + limit - now
                wait_for = min(wait_for, max(remaining, 0.0) + 0.001)
        return wait_for

    def _sample_memory(self) -> None:
        now = time.monotonic()
        if now < self._next_memory_sample:
            return
        self._next_memory_sample = now + MEMORY_SAMPLE_SECONDS
        import psutil

        for worker in self._workers.values():
            if worker.inflight:
                try:
                    worker.rss = psutil.Process(worker.process.pid).memory_info().rss
                except psutil.Error:
                    pass

    def _break(self, error: BrokenWorkerError) -> None:
        """The pool can't run anything (its initializer fails): fail all work, now and later."""
        error = as_process_pool_error(error)
        self._broken = error
        self._all_ready.set()
        held = [a for w in self._workers.values() for _, a in w.inflight] + list(self._pending)
        self._pending.clear()
        for worker in self._workers.values():
            worker.inflight.clear()
            _kill(worker.process)
        for attempt in held:
            fail_attempt(attempt, error)

    def _stop_workers(self) -> None:
        """Ask every worker to exit, kill those that don't, and reap them all."""
        workers = list(self._workers.values())
        if self._terminated:  # whoever waits on work the workers held must hear of it
            stopped = ExecutorShutdownError("the executor was terminated")
            for worker in workers:
                for _, attempt in worker.inflight:
                    attempt.chunk.job.abort(stopped)
        for worker in workers:
            if worker.inflight:  # only cancelled work is left: don't wait for it
                _kill(worker.process)
                continue
            try:
                worker.conn.send((_wire.STOP,))
            except OSError:
                pass
        deadline = time.monotonic() + (0 if self._terminated else EXIT_GRACE_SECONDS)
        for worker in workers:
            _join(worker.process, max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _kill(worker.process)
                _join(worker.process, EXIT_GRACE_SECONDS)
            worker.counters.alive = False
            self._retired.append(worker.counters)
            worker.conn.close()
            worker.lifeline.close()
            worker.shared_slot.close()
            worker.process.close()
        self._workers.clear()
        self._abort_pending(ExecutorShutdownError("the executor was terminated"))

    def _abort_pending(self, error: BaseException) -> None:
        while self._pending:
            self._pending.popleft().chunk.job.abort(error)

    def _close_wake_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1


def _join(process: Any, timeout: float) -> None:
    """``process.join(timeout)``, which imports multiprocessing.connection for its timed wait
    (see _channel): wait on the process's sentinel here, then reap it."""
    if wait([process.sentinel], timeout):
        if timeout == 0:
            process.is_alive()  # reaps it if it has exited; never blocks
        else:
            process.join()


def _inheritable_tokens() -> frozenset[int]:
    """The large arrays a worker forked now inherits (see _arrays): read just before it forks,
    without importing the array machinery into a program that never passed one."""
    mapped = sys.modules.get(__package__ + "._mapped")
    return _NO_TOKENS if mapped is None else frozenset(mapped.inheritable)


def _kill(process: Any) -> None:
    try:
        process.kill()
    except (OSError, ValueError, AttributeError):
        pass


class _SpawnFailed(Exception):
    """Starting a worker process raised (its initializer's arguments would not pickle)."""


def _skip_missing_main_file() -> None:
    """Have spawned and forkserver workers skip a main "file" that does not exist.

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
        return data

    preparation_data._lightwork = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = preparation_data


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"


def _likely_cause(exit_code: int | None, rss: int) -> str:
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


_live_backends: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()
_interpreter_exiting = False  # set at exit: no pool starts workers then


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
