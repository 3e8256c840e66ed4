"""Native thread pools (BLAS, OpenMP) in a worker: each gets its share of the CPUs.

NumPy's OpenBLAS, MKL and OpenMP start one thread per core in every process that loads them:
N workers doing matrix products would run N x cores threads on cores CPUs. Each worker limits
them to ``native_threads`` before its first task, two ways, because either alone misses a case:

- the variables below, in the worker's environment: read by a library as it loads, so they
  cover every library the worker loads from now on (a spawned worker's NumPy, a task's
  imports), and the worker's own child processes; cheap (no import).
- threadpoolctl, for a library already loaded when the worker starts: a forked worker's,
  or NumPy that the fork server preloaded (it does when the parent imported NumPy), whose
  thread pool read the variables long before. Imported only then, and only if installed
  (~4 ms, and ~2 ms to find the libraries; the fork server does both once, see warm_up,
  leaving 0.2 ms per worker).

The worker imports this module: no more than ``os`` and ``sys`` at its top.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing: a worker imports this module
if TYPE_CHECKING:
    from typing import Any

# What each library reads as it loads: the list joblib's loky workers set.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
# Modules whose import loads a native thread pool: one of them loaded means threadpoolctl.
NATIVE_MODULES = ("numpy", "scipy", "sklearn", "torch", "threadpoolctl")


def limit_native_threads(limit: int) -> None:
    """Limit this process's native thread pools to ``limit`` threads each."""
    value = str(limit)
    for name in THREAD_VARIABLES:
        os.environ[name] = value
    if not any(module in sys.modules for module in NATIVE_MODULES):
        return
    controller = _controller
    if controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # what is loaded keeps its threads: nothing else can change them
            return
        controller = ThreadpoolController()
    controller.limit(limits=limit)


# Made by the fork server (see warm_up): each worker it forks then finds the libraries loaded
# already found, and limits them in 0.2 ms instead of 2.
_controller: Any = None


def warm_up() -> None:
    """In the fork server, after NumPy: find the native libraries once, for every worker."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    _controller = ThreadpoolController()


def left_to_environment() -> bool:
    """Whether the environment already sets a limit, which the default then leaves alone."""
    return any(name in os.environ for name in THREAD_VARIABLES)
