"""The core: what every other layer builds on, and which imports nothing of theirs.

Errors and option checks, the units of work (jobs, chunks, attempts), the one loop that runs a
chunk's tasks, per-task random streams and the task slot, the shared-memory segment (for call
arrays, shared state and the slot), counters and statistics, chunk sizing, the retry rule and
the progress bar. Backends (``lightwork._backends``) build on it, the engine
(``lightwork._engine``) on both, and the features (pipelines, shared state, the lab, the
workloads, the CLI) on all three; ``tests/test_layers.py`` keeps it so.

A worker process imports this package for its task loop: keep this file empty of imports.
"""
