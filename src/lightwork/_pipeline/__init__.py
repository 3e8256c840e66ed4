"""Pipelines: chains of executors joined by bounded buffers, the producer-consumer done once.

    source ─► stage 0 thread ──put─► buffer 0 ──get─► stage 1 thread ──put─► buffer 1 ─► caller
              imap(fn0, source)     (bounded)         imap(fn1, buffer 0)   (bounded)   for x in p
                 │        ▲                              │        ▲
              submit   results                        submit   results
                 ▼        │                              ▼        │
              Executor 0 workers                      Executor 1 workers
              (threads, say)                          (processes, say)

Who touches what:

* the source iterator: only stage 0's thread, from inside its ``imap``, so a generator never
  runs in two threads and is pulled only when stage 0 has room for more work;
* buffer k (a deque of at most ``buffer`` items, under a Condition): stage k puts, stage k + 1
  (or the caller, for the last one) gets; ``stop()`` wakes both sides at once;
* executor k: created by the caller when iteration starts, fed and drained by stage k's thread
  through one ``imap`` call, shut down by that thread when it ends, or terminated by the
  caller on Ctrl-C;
* the run's failure: written once, by the first stage that fails; raised by the caller.

Backpressure needs no code of its own: a stage's ``imap`` pulls input only when it has room in
flight, and its thread waits while the next buffer is full, so a slow stage stops its
``imap``, which stops pulling from the buffer before it, and so on back to the source. Each
stage holds at most its buffer plus its executor's look-ahead (``4 * workers * chunksize``
items for threads and processes), so memory is bounded whatever the source's length.

Stopping: when the source ends, every item already taken drains through all stages and
iteration ends. An error in any stage, ``close()``, or leaving the ``for`` loop (which closes
the iterator) stops all of them: no more input is taken, queued tasks are cancelled, running
ones finish, and every thread and worker is gone before control returns. Ctrl-C does not wait
for running tasks: it terminates the stage executors (killing process workers) and re-raises
within a second. A stage thread that cannot be woken by then is left behind as a daemon: one
inside a thread worker's task, or a process stage whose tasks were all running (none queued),
whose ``imap`` a terminated executor never ends.

One trade-off of feeding through ``imap``: a stage's thread both submits and collects, so while
it waits for more input it does not pass on results it already has. With a steady source this
costs nothing; with a source that pauses, up to a stage's look-ahead of results wait in it
until the next item arrives or the source ends.
"""

# The modules, from the bottom up: _stats, _stages (as declared), _buffer (between two stages),
# _progress (a stage's bar), _run (threads, buffers and executors of one run), _api (Pipeline).
from ._api import Pipeline as Pipeline
from ._stats import PipelineStatistics as PipelineStatistics
from ._stats import StageStatistics as StageStatistics

__all__ = ["Pipeline", "PipelineStatistics", "StageStatistics"]
