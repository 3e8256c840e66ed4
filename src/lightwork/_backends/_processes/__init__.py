"""The process backend: a supervisor thread (``_supervisor``), worker processes (``_worker``)
and the messages between them (``_wire``). Nothing is imported here: a worker process imports
only its loop."""
