"""The process backend. Nothing is imported here: a worker process imports only its loop.

_backend      ProcessBackend, what the executor calls, from any thread: pickles the work
              (_encoder) and posts requests to the supervisor's inbox
_supervisor   the supervisor thread, the only owner of the workers: spawns them, sends
              them work, reads their results, notices deaths, enforces deadlines
_deaths       which task a dead worker is charged with: a pure function and its table
_exits        how a death is told: exit status, likely cause, the errors raised
_worker       the worker process's loop
_wire         the messages between supervisor and worker, and the worker's task slot
_channel      a worker's pipe, and waiting on many
_initializer  the executor's initializer on its way to each worker
_arrays       large NumPy arrays by shared memory or inheritance (parent side);
_mapped       the worker's side
"""
