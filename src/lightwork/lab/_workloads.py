"""Built-in workloads for ``lightwork scale``: CPU-bound, I/O-bound and pure overhead.

Each task function is defined at module level, so it pickles by reference and every worker
process imports it from here. Default sizes keep one run of each short, about a second of
serial work, so that a round of ``lightwork scale pi`` on a two-core machine (the baseline, 1
and 2 processes, 2 independent ones) takes some three seconds and its minute of budget buys
some eighteen rounds.

>>> from lightwork.lab import WORKLOADS
>>> sorted(WORKLOADS)
['bbp', 'pi', 'pi-python', 'sleep', 'tiny']
>>> WORKLOADS["bbp"].items(3)
[2000, 2666, 3333]
>>> resolve("operator:neg").items(3)
[0, 1, 2]
"""

from __future__ import annotations

import difflib
import importlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._core import _random
from .._core._errors import InvalidOptionError
from ..workloads import count_inside_numpy, count_inside_python, pi_hex_digits

__all__ = ["WORKLOADS", "Workload", "resolve"]

# Samples per Monte Carlo task: about 12 ms (NumPy) and 16 ms (pure Python) on one core here,
# long enough to hide dispatch, short enough that 64 workers still get a few tasks each.
PI_SAMPLES = 1 << 22
PI_PYTHON_SAMPLES = 1 << 17
# BBP positions: a task costs time linear in its position, from ~7 ms at 2000 to ~15 ms at
# 4000, so the tasks are uneven on purpose, as real work often is.
BBP_FIRST, BBP_LAST = 2000, 4000
BBP_DIGITS = 8
SLEEP_SECONDS = 0.01  # an I/O wait: long against dispatch, so any backend can overlap it
DEFAULT_CUSTOM_ITEMS = 100  # "module:function" workloads run over range(100) unless told


@dataclass(frozen=True)
class Workload:
    """A named task function and the items it runs over, for :func:`lightwork.lab.scale`.

    >>> from lightwork.lab import WORKLOADS, scale
    >>> tiny = WORKLOADS["tiny"]
    >>> [tiny.fn(x) for x in tiny.items(4)]
    [0, 1, 4, 9]
    """

    name: str
    description: str
    fn: Callable[[Any], Any]  #: module level, so process workers import it by reference
    default_items: int  #: how many items ``items()`` makes when not told
    make: Callable[[int], list[Any]]  #: ``n`` -> the items
    #: The same work for pools that are not lightwork's (``lightwork bench``), called with
    #: ``(index, item)``: for a ``fn`` that draws from ``lightwork.rng()``/``random()``, which
    #: only a task run by lightwork has. None: ``fn`` needs nothing of lightwork.
    indexed: Callable[[tuple[int, Any]], Any] | None = None

    def items(self, n: int | None = None) -> list[Any]:
        """The workload's ``n`` items (tasks), or its default number of them."""
        count = self.default_items if n is None else n
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidOptionError(f"the number of items must be an int >= 1, not {n!r}")
        return self.make(count)

    def for_any_pool(self, n: int | None = None) -> tuple[Callable[[Any], Any], list[Any]]:
        """A task function and its items that run on any pool, lightwork's or another's.

        >>> fn, items = WORKLOADS["pi-python"].for_any_pool(2)
        >>> items
        [(0, 131072), (1, 131072)]
        >>> fn(items[1]) == fn(items[1])  # seeded by the task's index
        True
        """
        items = self.items(n)
        if self.indexed is None:
            return self.fn, items
        return self.indexed, list(enumerate(items))


# Seed of the indexed variants: fixed, so every contender of ``lightwork bench`` computes the
# very same numbers, and their results can be compared.
INDEXED_SEED = 20240601


def pi_numpy_task(samples: int) -> int:
    """Points of ``samples`` in the quarter disc, drawn from the task's own ``lightwork.rng()``."""
    return count_inside_numpy(_random.rng(), samples)


def pi_python_task(samples: int) -> int:
    """The same with the pure-Python kernel and ``lightwork.random()``."""
    return count_inside_python(_random.random(), samples)


def pi_numpy_indexed(task: tuple[int, int]) -> int:
    """:func:`pi_numpy_task` for any pool: task ``(index, samples)`` draws from the stream
    ``lightwork.rng()`` gives task ``index`` of a run seeded with :data:`INDEXED_SEED`."""
    import numpy as np

    index, samples = task
    stream = np.random.SeedSequence(INDEXED_SEED, spawn_key=(index,))
    return count_inside_numpy(np.random.Generator(np.random.PCG64(stream)), samples)


def pi_python_indexed(task: tuple[int, int]) -> int:
    """:func:`pi_python_task` for any pool: a ``random.Random`` of its own per task index."""
    index, samples = task
    return count_inside_python(random.Random(f"{INDEXED_SEED}:{index}"), samples)


def bbp_task(position: int) -> str:
    """Eight hexadecimal digits of pi from ``position`` on."""
    return pi_hex_digits(position, BBP_DIGITS)


def sleep_task(seconds: float) -> None:
    """Wait, as a task blocked on I/O does: it releases the GIL and uses no CPU."""
    time.sleep(seconds)


def tiny_task(x: int) -> int:
    """Next to no work: what is measured is the cost of dispatching a task."""
    return x * x


def _pi_items(n: int) -> list[Any]:
    return [PI_SAMPLES] * n


def _pi_python_items(n: int) -> list[Any]:
    return [PI_PYTHON_SAMPLES] * n


def _bbp_items(n: int) -> list[Any]:
    return [BBP_FIRST + (BBP_LAST - BBP_FIRST) * i // n for i in range(n)]


def _sleep_items(n: int) -> list[Any]:
    return [SLEEP_SECONDS] * n


def _range_items(n: int) -> list[Any]:
    return list(range(n))


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "pi",
            f"Monte Carlo pi with NumPy, {PI_SAMPLES:,} samples a task (CPU-bound)",
            pi_numpy_task,
            128,
            _pi_items,
            pi_numpy_indexed,
        ),
        Workload(
            "pi-python",
            f"Monte Carlo pi in pure Python, {PI_PYTHON_SAMPLES:,} samples a task (CPU, GIL)",
            pi_python_task,
            64,
            _pi_python_items,
            pi_python_indexed,
        ),
        Workload(
            "bbp",
            f"hex digits of pi by BBP at positions {BBP_FIRST}..{BBP_LAST} (uneven tasks)",
            bbp_task,
            128,
            _bbp_items,
        ),
        Workload(
            "sleep",
            f"time.sleep({SLEEP_SECONDS}) a task (I/O-bound: no CPU used)",
            sleep_task,
            100,
            _sleep_items,
        ),
        Workload("tiny", "x * x (pure overhead)", tiny_task, 100_000, _range_items),
    ]
}


def resolve(spec: str) -> Workload:
    """A built-in workload by name, or ``"module:function"`` run over ``range(n)``.

    >>> resolve("pi").name
    'pi'
    >>> resolve("math:sqrt").fn(4.0)
    2.0
    >>> resolve("pie")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lightwork.InvalidOptionError: unknown workload 'pie': did you mean 'pi'? ...
    """
    if spec in WORKLOADS:
        return WORKLOADS[spec]
    if ":" not in spec:
        close = difflib.get_close_matches(spec, WORKLOADS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidOptionError(
            f"unknown workload {spec!r}: {hint}choose one of {', '.join(WORKLOADS)}, "
            "or give your own as module:function"
        )
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise InvalidOptionError(f"a workload of your own is module:function, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidOptionError(f"cannot import {module_name!r} for {spec!r}: {error}") from None
    fn: Any = module
    for attribute in function_name.split("."):  # module:Class.method works too
        try:
            fn = getattr(fn, attribute)
        except AttributeError:
            raise InvalidOptionError(
                f"module {module_name!r} has no {function_name!r} (from {spec!r})"
            ) from None
    if not callable(fn):
        raise InvalidOptionError(f"{spec!r} is a {type(fn).__name__}, not a function")
    return Workload(
        spec,
        f"{spec}(i) for i in range(n)",
        fn,
        DEFAULT_CUSTOM_ITEMS,
        _range_items,
    )
