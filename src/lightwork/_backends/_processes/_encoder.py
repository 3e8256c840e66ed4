"""What goes to the workers, pickled: a job's function and each attempt's arguments.

Called from any thread: the caller's for a job's function and its first attempts, the
supervisor's for a re-run (part of a chunk, after a death). Large NumPy arrays go by shared
memory or, to fork workers, by inheritance (see _arrays), which is imported only once NumPy is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._core._run import Call, Star
from ..._core._tasks import Attempt, Job
from .._pickling import dumps, dumps_by_value, dumps_function, needs_value, serialization_error

if TYPE_CHECKING:
    from ._arrays import CallArrays


class Encoder:
    """Pickles for one pool. ``inherits``: lend very large arrays to fork workers (see _arrays);
    ``on_release(tokens)``: told when lent arrays are done with, from any thread."""

    def __init__(self, inherits: bool, on_release: Callable[[frozenset[int]], None]) -> None:
        self.inherits = inherits
        self._on_release = on_release

    def function(self, job: Job) -> bytes:
        """The job's function and retry policy, which the worker makes a Work of."""
        spec = (job.fn, job.retries, job.retry_on)
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
                _adopt(job, arrays)
            return payload
        except Exception as error:
            fn = job.fn.fn if isinstance(job.fn, Star | Call) else job.fn
            message = f"the function {fn!r} could not be pickled: {error}"
            raise serialization_error(message, error) from error

    def arguments(self, attempt: Attempt) -> bytes:
        """Pickle an attempt's arguments; large NumPy arrays go by shared memory."""
        args = attempt.args()
        if "numpy" in sys.modules and args:
            from ._arrays import Held, dumps_function_sharing, has_large_array

            if has_large_array(args[0]):
                job = attempt.chunk.job
                if job.arrays is None:
                    _adopt(job, self._call_arrays())
                before = job.arrays.new_bytes
                attempt.held = Held()
                payload = dumps_function_sharing(args, job.arrays, attempt.held)
                # Bounds the arrays a stream keeps in flight (see ChunkSizer.record_bytes).
                job.measured_bytes(len(attempt), job.arrays.new_bytes - before)
                return payload
        payload = dumps(args)
        # Instances of classes a session defined go by value, as its functions do.
        return dumps_by_value(args) if needs_value(payload) else payload

    def one_by_one(self, attempt: Attempt) -> list[Attempt]:
        """Some argument of ``attempt`` won't pickle: fail exactly those tasks; the others, each
        an attempt of its own, pickled."""
        chunk = attempt.chunk
        singles: list[Attempt] = []
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
            singles.append(Attempt(chunk, position, position + 1, payload))
        return singles

    def _call_arrays(self) -> CallArrays:
        from ._arrays import CallArrays

        return CallArrays(self.inherits, self._on_release)


def _adopt(job: Job, arrays: CallArrays) -> None:
    """Make ``arrays`` the job's, released when it ends."""
    job.arrays = arrays
    job.on_close.append(arrays.close)
