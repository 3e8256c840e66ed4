"""The supervisor: one thread per pool, and the only owner of the pool's worker processes.

    any thread (ProcessBackend)       supervisor thread (Supervisor.run)      worker i (_worker)
    ---------------------------       ----------------------------------      ------------------
    prepare(job): pickle the
      function once -> spec id
    submit(attempt): pickle its
      args --> inbox.pending -+
    forget a spec, arrays     |
      released, cancel,       +-wake-> wait(wake pipe, each worker's pipe
      shutdown, terminate     |  pipe       and sentinel; timeout: the nearest
      --> inbox --------------+             deadline, the next memory sample)
                                       dispatch: an idle worker, else a new one
                                         (spawn) under max_workers, else one
                                         with room to send ahead
                                         --SPEC (first use of a function)-->  unpickle it, keep it
                                         --RUN serial, indices + args------>  slot <- serial;
                                                                              run_chunk, naming
                                                                              tasks in the slot
    chunk.resolve(): a future,   <---- on RESULT, BAD_INPUT <---------------  results, errors
      a stream's queue                 on READY, INIT_FAILED <--------------  as it starts
                                       on a sentinel: it died: attribute_death
                                         (_deaths) requeues and charges a task;
                                         the wording is _exits'
                                       deadlines: kill a worker whose task
                                         overran task_timeout (its slot says
                                         since when); sample memory

Who reads and writes what:

- ``Inbox`` is how other threads reach the supervisor: each request is a deque append or a
  flag, then ``wake()`` (one byte on the wake pipe, at most one unread). ``pending``: attempts
  to run, e.g. ``deque([Attempt(chunk 3, 0..40)])``: any thread appends (submit), the
  supervisor pops, and puts requeued attempts back at the front. ``forgotten``: spec ids every
  worker must drop (a call that captured arrays ended), e.g. ``deque([7])``. ``released``:
  tokens of lent arrays that no call uses any more, e.g. ``deque([frozenset({2})])``. Flags:
  ``closing`` (shutdown: finish the work, then stop), ``terminated`` (stop now), set by the
  facade under its lock; ``cancel_requested`` and ``start_all``, set by the facade and cleared
  by the supervisor.
- The function cache: ``ProcessBackend._specs`` maps a pickled function (with its retry
  policy) to its spec id, e.g. ``{b'\\x80\\x05...': 4}``, the last SPEC_CACHE_SIZE in LRU
  order; any thread, under ``_specs_lock``. A spec that refers to a call's arrays gets an id of
  its own and is forgotten when the call ends. Each ``_Worker.specs`` (the ids that worker
  holds, in the same LRU order) is the supervisor's: SPEC goes with a worker's first RUN of a
  function, DROP when the worker's cache evicts one.
- ``Supervisor._workers`` (number -> _Worker) and everything in a _Worker (its process, pipe,
  lifeline, ``state``, ``inflight``: (serial, attempt) pairs in send order, which is the order
  the worker runs them): the supervisor only.
- A worker's task slot (shared memory, see _wire.SharedSlot): the worker writes the serial of
  the attempt it began, the task it is in and since when; the supervisor reads it to enforce
  deadlines and to attribute a death.
- Published by the supervisor for any thread: ``broken`` (the error that broke the pool),
  ``all_ready`` (an event: every worker said READY, or the pool broke), ``counters`` (every
  worker's WorkerCounters, in a tuple replaced as a worker starts; their fields are written by
  the supervisor only), ``started``, ``crashed`` and ``retried``.
- Chunks are resolved or failed by the supervisor, or by the submitting thread for arguments
  that won't pickle; their jobs hand the outcomes to whoever waits.

A worker's life (see WorkerState):

- Spawned as work needs it (a pool of 500 given 39 tasks starts 39), or all at once by
  ``start_workers()``; it gets its own duplex pipe (a dead worker corrupts no queue others
  share, the failure that makes ``multiprocessing.Pool`` hang, cpython#96062), its task slot,
  and a lifeline: the read end of a pipe whose write end only the supervisor holds and never
  writes. When the parent dies, the kernel signals the worker (SIGIO, on Linux), which dies
  with it; a thread in the worker watching the parent's pid is the fallback (see _worker).
- STARTING: it imports and runs the initializer; it takes work meanwhile if it fits the pipe's
  buffer (its pipe holds it; larger work waits for READY, see below).
  It says READY, or INIT_FAILED with the initializer's traceback, which breaks the pool: every
  waiting and later attempt fails with WorkerInitializationError.
- Work goes ahead: a worker holds up to ``lookahead`` attempts so it never waits for its next
  chunk, but only payloads (and functions) of up to PREFETCH_MAX_BYTES, which fit the pipe's
  buffer: a worker busy computing does not read its pipe, and a large send would block the
  supervisor while that worker, in turn, waits to send its result.
- Deadlines: a task with ``task_timeout`` is named in the slot with its start time; after
  each wait the supervisor kills a worker whose task overran (KILLED) and sleeps no longer
  than the nearest deadline.
- Memory: every MEMORY_SAMPLE_SECONDS the resident memory of the busy workers is sampled, so
  that a SIGKILLed one can be said to have been most likely out of memory.
- Recycling (``max_tasks_per_worker``): an attempt is split to fit the worker's remaining
  budget; a worker that reached it is RETIRING, sent STOP once its attempts are back, and
  replaced as work needs it (its last attempts overlap its successor's first).
- Lending arrays (fork pools, see _arrays): a worker inherits the very large arrays lent
  before it forked (``inherited``). Work that needs newer ones goes to a worker forked after
  them: an idle one that can't run it is retired to make room. When lent arrays are done with,
  their tokens are posted to every fork pool's inbox, and each supervisor retires the workers
  that hold them (DRAINING: they still count against max_workers while they hold work).
- Its end: STOP when it is retired, or at shutdown; a kill at terminate, at shutdown if it
  holds only cancelled work or outstays EXIT_GRACE_SECONDS, for a deadline, or when the pool
  breaks (an initializer failed, a worker could not be started, MAX_STARTUP_DEATHS). When its
  sentinel fires (or its pipe ends), the supervisor first reads the results it sent before
  dying, then: while terminating or once the pool broke, nothing more; RETIRING or DRAINING
  and holding nothing, an expected exit; if it never began an attempt, a start-up death
  (MAX_STARTUP_DEATHS in a row break the pool with WorkerCrashedError); otherwise
  ``attribute_death`` (see _deaths's table) decides what runs again and which task is
  charged, and a task with no retry left fails with TaskTimeoutError (KILLED) or
  WorkerCrashedError (also a BrokenProcessPool).
"""

from __future__ import annotations

import enum
import itertools
import os
import pickle
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Set
from typing import TYPE_CHECKING, Any

from ..._core._counters import WorkerCounters
from ..._core._errors import (
    BrokenWorkerError,
    ExecutorShutdownError,
    SerializationError,
    WorkerInitializationError,
    as_process_pool_error,
)
from ..._core._run import add_task_note
from ..._core._tasks import Attempt, Job, fail_attempt
from .._pickling import decode_error
from . import _wire
from ._channel import Channel, pipe, wait
from ._wire import HEADER, SLOT_INDEX, SLOT_SERIAL, SLOT_STARTED, SharedSlot

if TYPE_CHECKING:
    from ..._core._slot import Slot
    from ._encoder import Encoder
    from ._initializer import Initializer

# A payload this small fits in the pipe's buffer, so it can be sent to a busy worker.
PREFETCH_MAX_BYTES = 32 * 1024
# Functions each worker keeps unpickled; the parent evicts in the same order and says so.
SPEC_CACHE_SIZE = 64
# How often memory is sampled, to say "out of memory?" when a worker is SIGKILLed.
MEMORY_SAMPLE_SECONDS = 0.5
# Workers that die before running anything, in a row, before the executor gives up: a worker
# that cannot even start would otherwise be respawned forever.
MAX_STARTUP_DEATHS = 3
# How long shutdown waits for a worker to exit on its own before killing it.
EXIT_GRACE_SECONDS = 2.0
_NO_TOKENS: frozenset[int] = frozenset()


class Inbox:
    """What other threads ask of the supervisor (see the module's "who reads and writes")."""

    def __init__(self) -> None:
        self.pending: deque[Attempt] = deque()
        self.forgotten: deque[int] = deque()
        self.released: deque[frozenset[int]] = deque()
        self.closing = False  # shutdown(): finish pending work, then stop
        self.terminated = False  # terminate(): stop now
        self.cancel_requested = False  # cancel_pending(): drop what no worker holds yet
        self.start_all = False  # start_workers(): start every worker now
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.wake_sent = False

    def wake(self) -> None:
        """Have the supervisor look at its inbox (it may be asleep in wait())."""
        if not self.wake_sent:
            self.wake_sent = True
            try:
                os.write(self.wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass

    def close(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.wake_r = self.wake_w = -1


class WorkerState(enum.Enum):
    """Where a worker is in its life, as the supervisor sees it.

    STARTING --READY--> READY; either --> RETIRING, DRAINING, KILLED or DYING, and from any
    state its sentinel ends it (an expected exit for RETIRING and DRAINING holding nothing).
    Only STARTING and READY workers are given work.
    """

    STARTING = "starting"  # spawned; importing, running the initializer; it has not said READY
    READY = "ready"  # started and initialized
    # Takes no more work and is sent STOP once its attempts are back: it reached
    # max_tasks_per_worker, or it was forked before arrays that work now needs.
    RETIRING = "retiring"
    # Retired before its work ran out, because it holds lent arrays no call uses any more: it
    # counts against max_workers until its attempts are back (a RETIRING one doesn't).
    DRAINING = "draining"
    KILLED = "killed"  # killed for overrunning task_timeout; ``overran`` says which task
    DYING = "dying"  # a send to it failed: its sentinel will say it died


STARTING, READY, RETIRING, DRAINING, KILLED, DYING = WorkerState


class _Worker:
    """The supervisor's view of one worker process."""

    def __init__(
        self,
        number: int,
        process: Any,
        conn: Channel,
        slot: SharedSlot,
        lifeline: Channel,
        inherited: frozenset[int],
    ) -> None:
        self.number = number
        self.process = process
        self.conn = conn
        self.shared_slot = slot  # keeps the shared memory mapped
        self.slot: Slot = slot.view
        self.lifeline = lifeline  # the write end of the worker's lifeline: held, never written
        self.inherited = inherited  # the lent arrays it has by fork (see _arrays)
        self.state = STARTING
        self.counters = WorkerCounters(number, process.pid)
        self.inflight: deque[tuple[int, Attempt]] = deque()  # (serial, attempt), in send order
        self.specs: OrderedDict[int, None] = OrderedDict()  # spec ids this worker holds
        self.tasks_sent = 0
        self.overran: tuple[int, float] | None = None  # KILLED: (task index, task_timeout)
        self.rss = 0  # last sampled resident memory, bytes
        self.spawned_at = time.monotonic()

    def takes_work(self) -> bool:
        state = self.state
        return state is READY or state is STARTING

    def retire(self, state: WorkerState = RETIRING) -> None:
        """No more work for it: it exits once its attempts are back (``state``: how it counts
        against max_workers meanwhile)."""
        self.state = state
        self.stop_if_done()

    def stop_if_done(self) -> None:
        if (self.state is RETIRING or self.state is DRAINING) and not self.inflight:
            try:
                self.conn.send((_wire.STOP,))
            except OSError:
                pass  # it died meanwhile: its sentinel says so


class Supervisor:
    """Owns one pool's workers; runs on its own thread (``run``) until the pool stops."""

    def __init__(
        self,
        inbox: Inbox,
        encoder: Encoder,
        context: Any,
        start_method: str,
        max_workers: int,
        lookahead: int,
        initializer: Initializer | None,
        max_tasks_per_worker: int | None,
        native_threads: int | None = None,
    ) -> None:
        self.inbox = inbox
        self._pending = inbox.pending
        self._encoder = encoder
        self._context = context
        self._start_method = start_method
        self._max_workers = max_workers
        self._lookahead = lookahead
        self._initializer = initializer
        self._max_tasks_per_worker = max_tasks_per_worker
        self._native_threads = native_threads
        self._workers: dict[int, _Worker] = {}
        self._numbers = itertools.count()
        self._serials = itertools.count(1)
        self._startup_deaths = 0
        # psutil loads at the first sample, after the first results: not on their path.
        self._next_memory_sample = time.monotonic() + MEMORY_SAMPLE_SECONDS
        # Published for any thread (see the module's docstring).
        self.broken: BrokenWorkerError | None = None
        self.all_ready = threading.Event()
        self.counters: tuple[WorkerCounters, ...] = ()
        self.started = self.crashed = self.retried = 0

    def run(self) -> None:
        """The supervisor thread's body: supervise until shutdown or terminate, then stop every
        worker."""
        try:
            self._loop()
        except BaseException as error:  # a bug here must not leave callers waiting forever
            self._break(BrokenWorkerError(f"the lightwork supervisor failed: {error!r}"))
            raise
        finally:
            self._stop_workers()
            self.inbox.close()

    def _loop(self) -> None:
        inbox = self.inbox
        while not inbox.terminated:
            if inbox.cancel_requested:
                inbox.cancel_requested = False
                self._abort_pending(ExecutorShutdownError("cancelled by shutdown()"))
            if self.broken is None:
                self._drop_forgotten()
                self._retire_inheritors()
                try:
                    self._dispatch()
                    self._start_all_workers()
                except SpawnFailed as failure:
                    error = WorkerInitializationError(str(failure))
                    error.__cause__ = failure.__cause__
                    self._break(error)
            if inbox.closing and not self._pending and not self._busy():
                return
            owners: dict[Any, _Worker] = {}  # pipe or sentinel -> its worker
            for worker in self._workers.values():
                owners[worker.conn] = owners[worker.process.sentinel] = worker
            for ready in wait([inbox.wake_r, *owners], timeout=self._next_check()):
                if ready == inbox.wake_r:
                    os.read(inbox.wake_r, 4096)
                    inbox.wake_sent = False
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

    # ---- starting workers and sending them work ---------------------------------------------

    def _spawn(self) -> _Worker:
        from ._worker import worker_main

        number = next(self._numbers)
        parent_conn, child_conn = pipe(duplex=True)
        lifeline_r, lifeline_w = pipe(duplex=False)  # see _worker._arm_lifeline
        slot = SharedSlot(self._context)
        fork = self._start_method == "fork"
        inherited = _inheritable_tokens() if self._encoder.inherits else _NO_TOKENS
        process = self._context.Process(
            target=worker_main,
            args=(
                child_conn,
                slot,
                self._initializer,
                os.getpid(),
                lifeline_r,
                # A forked child inherits the write end too; it must close its copy.
                lifeline_w.fileno() if fork else -1,
                self._native_threads,
            ),
            name=f"lightwork-worker-{number}",
        )
        try:
            process.start()
        except Exception as error:  # the initializer's arguments could not go to the worker
            for end in (parent_conn, child_conn, lifeline_r, lifeline_w):
                end.close()
            slot.close()
            raise SpawnFailed(f"a worker could not be started: {error!r}") from error
        child_conn.close()
        lifeline_r.close()
        worker = _Worker(number, process, parent_conn, slot, lifeline_w, inherited)
        self._workers[number] = worker
        self.counters += (worker.counters,)  # numbers only grow: still in worker order
        self.started += 1
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
            worker = self._choose_worker(job, len(attempt.payload), needs)
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
        one, see Encoder.one_by_one)."""
        try:
            attempt.payload = self._encoder.arguments(attempt)
        except Exception:
            if not attempt.chunk.job.cancelled:
                self._pending.extend(self._encoder.one_by_one(attempt))
            return False
        return True

    def _drop_forgotten(self) -> None:
        forgotten = self.inbox.forgotten
        while forgotten:
            spec_id = forgotten.popleft()
            for worker in self._workers.values():
                if worker.specs.pop(spec_id, 0) is None:
                    try:
                        worker.conn.send((_wire.DROP, spec_id))
                    except OSError:
                        pass

    def _retire_inheritors(self) -> None:
        """Retire the workers that inherited arrays no call uses any more: they hold them."""
        released = self.inbox.released
        while released:
            tokens = released.popleft()
            for worker in self._workers.values():
                if worker.takes_work() and worker.inherited & tokens:
                    worker.retire(DRAINING)

    def _start_all_workers(self) -> None:
        if not self.inbox.start_all:
            return
        live = [w for w in self._workers.values() if w.takes_work()]
        for _ in range(self._max_workers - len(live)):
            live.append(self._spawn())
        if all(w.state is READY for w in live):
            self.inbox.start_all = False
            self.all_ready.set()

    def _choose_worker(self, job: Job, payload_size: int, needs: Set[int]) -> _Worker | None:
        """An idle worker; else a new one while under max_workers; else one to send ahead to.

        ``needs``: the lent arrays the work refers to (see _arrays); a worker forked before
        them can't run it, and one such idle worker is retired to make room if need be.
        """
        ahead_ok = payload_size <= PREFETCH_MAX_BYTES
        # A function the worker lacks goes with the payload: to a busy worker, if both fit.
        spec_fits = payload_size + len(job.fn_payload or b"") <= PREFETCH_MAX_BYTES
        best: _Worker | None = None
        stale: _Worker | None = None
        live = 0
        for worker in self._workers.values():
            state = worker.state
            if state is not READY and state is not STARTING:
                live += state is DRAINING and bool(worker.inflight)  # still using its CPU
                continue
            live += 1
            if not needs <= worker.inherited:
                if not worker.inflight and stale is None:
                    stale = worker
                continue
            if not worker.inflight:
                # A starting worker reads its pipe only once it has imported what it needs
                # (a script's workers import the script: scikit-learn, say, for a second):
                # what won't fit the pipe waits for READY, or the send would block us so long.
                if state is READY or spec_fits or job.spec_id in worker.specs:
                    return worker
                continue
            if (
                ahead_ok
                and best is None
                and len(worker.inflight) < self._lookahead
                and (spec_fits or job.spec_id in worker.specs)
            ):
                best = worker
        if live < self._max_workers or stale is not None:
            if stale is not None and live >= self._max_workers:
                stale.retire()
            started = self._spawn()
            return started if spec_fits else None  # larger work waits for its READY (above)
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
            worker.state = DYING
            self._pending.appendleft(attempt)
            return
        worker.inflight.append((serial, attempt))
        worker.tasks_sent += len(attempt)
        if self._budget(worker) <= 0:
            worker.state = RETIRING  # STOP once this work is back (see _on_message)

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

    # ---- what workers send back ---------------------------------------------------------------

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
            if worker.state is STARTING:
                worker.state = READY
            worker.counters.startup = time.monotonic() - worker.spawned_at
            self._startup_deaths = 0
            return
        if kind == _wire.INIT_FAILED:
            from ._exits import initializer_error

            self._break(initializer_error(pickle.loads(payload)))
            return
        expected, attempt = worker.inflight.popleft()
        assert expected == serial, (expected, serial)
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
            worker.stop_if_done()
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
        worker.stop_if_done()

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

    # ---- deaths, deadlines, memory --------------------------------------------------------------

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
        worker.conn.close()
        worker.lifeline.close()
        if self.inbox.terminated or self.broken is not None:
            return  # the pool's end is decided: its workers were killed, its work failed
        if (worker.state is RETIRING or worker.state is DRAINING) and not worker.inflight:
            return  # an expected exit: a replacement starts as work needs one
        # Imported at the first death, not on a first pool's way to its first result.
        from ._deaths import Blame, attribute_death
        from ._exits import death_error, startup_error

        self.crashed += worker.state is not KILLED
        slot = worker.slot
        overran = worker.overran[0] if worker.overran is not None else None
        verdict = attribute_death(
            worker.inflight, slot[SLOT_SERIAL], int(slot[SLOT_INDEX]), overran
        )
        attempt = worker.inflight[0][1] if worker.inflight else None
        worker.inflight.clear()
        if verdict.unattributed is not None:
            assert attempt is not None
            attempt.chunk.unattributed_deaths.append(verdict.unattributed)
        self.retried += verdict.retried
        if verdict.failed is not None:
            assert attempt is not None
            timeout = worker.overran[1] if worker.overran is not None else None
            process = worker.process
            error = death_error(
                attempt.chunk, verdict.failed, process.pid, process.exitcode, worker.rss, timeout
            )
            attempt.chunk.fail(verdict.failed, error)
        self._pending.extendleft(reversed(verdict.requeue))
        if verdict.blame is Blame.NEVER_STARTED:
            # It died before it even read a task: blame the start-up, not a task.
            self._startup_deaths += 1
            if self._startup_deaths >= MAX_STARTUP_DEATHS:
                process = worker.process
                self._break(
                    startup_error(
                        MAX_STARTUP_DEATHS, process.pid, process.exitcode, self._start_method
                    )
                )

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in self._workers.values():
            if worker.state is KILLED or worker.state is DYING:
                continue
            limit = self._running_limit(worker)
            if limit is None:
                continue
            # The worker writes the start time, then the index; reading in the other order
            # never pairs a new task with an old start time.
            index = worker.slot[SLOT_INDEX]
            started = worker.slot[SLOT_STARTED]
            if now - started > limit and worker.slot[SLOT_INDEX] == index:
                worker.state = KILLED
                worker.overran = (int(index), limit)
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

    # ---- the end -------------------------------------------------------------------------------

    def _break(self, error: BrokenWorkerError) -> None:
        """The pool can't run anything (its initializer fails): fail all work, now and later."""
        error = as_process_pool_error(error)
        self.broken = error
        self.all_ready.set()
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
        terminated = self.inbox.terminated
        if terminated:  # whoever waits on work the workers held must hear of it
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
        deadline = time.monotonic() + (0 if terminated else EXIT_GRACE_SECONDS)
        for worker in workers:
            _join(worker.process, max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _kill(worker.process)
                _join(worker.process, EXIT_GRACE_SECONDS)
            worker.counters.alive = False
            worker.conn.close()
            worker.lifeline.close()
            worker.shared_slot.close()
            worker.process.close()
        self._workers.clear()
        self._abort_pending(ExecutorShutdownError("the executor was terminated"))

    def _abort_pending(self, error: BaseException) -> None:
        while self._pending:
            self._pending.popleft().chunk.job.abort(error)


class SpawnFailed(Exception):
    """Starting a worker process raised (its initializer's arguments would not pickle)."""


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
