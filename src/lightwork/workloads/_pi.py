"""The tutorials' pi computations, parallel and reproducible.

Monte Carlo pi splits the samples into tasks of a fixed size per kernel, never per worker, so
the tasks, their random streams (``lightwork.rng()`` and ``lightwork.random()`` follow the task
index) and hence the estimate are the same on 1 worker or 64, on any backend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from itertools import count
from typing import Any

from .._core import _random
from .._core._errors import InvalidOptionError
from .._engine._api import warm_executor
from ._bbp import HEX_BLOCK, bbp_pi_decimal, pi_hex_digits
from ._montecarlo import count_inside_numpy, count_inside_python

# Samples per task: about 25 ms of work for each kernel on one core here, long enough to hide
# dispatch, short enough to balance; fixed so that results don't depend on the worker count.
TASK_SAMPLES = {"numpy": 1 << 23, "python": 1 << 18}
KERNELS = tuple(TASK_SAMPLES)
Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class PiEstimate:
    """A Monte Carlo estimate of pi with its uncertainty and how fast it was made."""

    estimate: float
    stderr: float  #: standard error of the estimate, 4 * sqrt(p (1 - p) / samples)
    ci_low: float  #: 95% confidence interval
    ci_high: float
    samples: int
    inside: int
    seconds: float
    samples_per_second: float
    max_workers: int
    backend: str
    kernel: str
    seed: int | None
    auto_reason: str | None = None  #: with backend="auto": why ``backend`` was chosen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numpy_task(samples: int) -> int:
    return count_inside_numpy(_random.rng(), samples)


def _python_task(samples: int) -> int:
    return count_inside_python(_random.random(), samples)


_TASKS: dict[str, Callable[[int], int]] = {"numpy": _numpy_task, "python": _python_task}


def split_samples(samples: int, kernel: str) -> list[int]:
    """The task sizes for ``samples`` samples: full tasks, then the remainder."""
    size = TASK_SAMPLES[kernel]
    full, rest = divmod(samples, size)
    return [size] * full + ([rest] if rest else [])


def monte_carlo_pi(
    samples: int | None = None,
    *,
    kernel: str = "numpy",
    backend: str = "processes",
    max_workers: int | None = None,
    seed: int | None = None,
    target_error: float | None = None,
    progress: bool = False,
) -> PiEstimate:
    """Estimate pi from random points in the unit square, on all cores.

    Give ``samples``, or ``target_error`` to keep adding samples until the 95% interval's
    half-width is below it (``samples`` then caps the count). A seeded run gives the same
    estimate, to the last bit, for any ``max_workers`` and backend.

    >>> from lightwork.workloads import monte_carlo_pi
    >>> a = monte_carlo_pi(2_000_000, backend="threads", seed=7)
    >>> b = monte_carlo_pi(2_000_000, backend="serial", seed=7)
    >>> a.estimate == b.estimate and abs(a.estimate - 3.14159) < 5 * a.stderr
    True
    """
    if kernel not in TASK_SAMPLES:
        raise InvalidOptionError(f"unknown kernel {kernel!r}: choose one of {KERNELS}")
    if samples is None and target_error is None:
        raise InvalidOptionError("give samples, target_error, or both")
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise InvalidOptionError(f"samples must be a positive int, not {samples!r}")
    if target_error is not None and not (
        isinstance(target_error, int | float) and target_error > 0
    ):
        raise InvalidOptionError(f"target_error must be a number > 0, not {target_error!r}")
    task = _TASKS[kernel]
    started = time.perf_counter()
    with warm_executor(backend, max_workers) as executor:
        if target_error is None:
            assert samples is not None
            sizes: list[int] | Iterator[int] = split_samples(samples, kernel)
            inside = sum(executor.imap(task, sizes, seed=seed, progress=progress))
            total = samples
        else:
            inside, total = _until_precise(
                executor.imap(task, _endless(kernel, samples), seed=seed, progress=progress),
                kernel,
                target_error,
            )
        workers = executor.max_workers
        choice = executor.statistics().auto if backend == "auto" else None
    seconds = time.perf_counter() - started
    result = _estimate(inside, total, seconds, workers, backend, kernel, seed)
    if choice is not None:
        # The workers auto ran the tasks on, which may differ from the executor's default.
        result = replace(
            result, backend=choice.backend, auto_reason=choice.reason, max_workers=choice.workers
        )
    return result


def _endless(kernel: str, cap: int | None) -> Iterator[int]:
    if cap is not None:
        yield from split_samples(cap, kernel)
        return
    size = TASK_SAMPLES[kernel]
    for _ in count():
        yield size


def _until_precise(counts: Iterator[int], kernel: str, target: float) -> tuple[int, int]:
    """Consume task counts in order until the interval is narrow enough: (inside, samples)."""
    inside = total = 0
    size = TASK_SAMPLES[kernel]
    try:
        for got in counts:
            inside += got
            total += size
            if _half_width(inside, total) < target:
                break
    finally:
        counts.close()  # type: ignore[attr-defined]  # cancels tasks already in flight
    return inside, total


def _half_width(inside: int, samples: int) -> float:
    return Z_95 * _stderr(inside, samples)


def _stderr(inside: int, samples: int) -> float:
    p = inside / samples
    return 4 * math.sqrt(max(p * (1 - p), 1e-300) / samples)


def _estimate(
    inside: int,
    samples: int,
    seconds: float,
    workers: int,
    backend: str,
    kernel: str,
    seed: int | None,
) -> PiEstimate:
    estimate = 4 * inside / samples
    stderr = _stderr(inside, samples)
    return PiEstimate(
        estimate=estimate,
        stderr=stderr,
        ci_low=estimate - Z_95 * stderr,
        ci_high=estimate + Z_95 * stderr,
        samples=samples,
        inside=inside,
        seconds=seconds,
        samples_per_second=samples / seconds if seconds > 0 else math.inf,
        max_workers=workers,
        backend=backend,
        kernel=kernel,
        seed=seed,
    )


def bbp_pi(
    precisions: list[int],
    *,
    backend: str = "processes",
    max_workers: int | None = None,
) -> list[Decimal]:
    """The tutorials' calc_pi2: the BBP sum at several precisions, one task each.

    >>> from lightwork.workloads import bbp_pi
    >>> [str(p)[:7] for p in bbp_pi([10, 20], backend="serial")]
    ['3.14159', '3.14159']
    """
    with warm_executor(backend, max_workers) as executor:
        return list(executor.imap(bbp_pi_decimal, precisions, chunksize=1))


def _hex_block(block: tuple[int, int]) -> str:
    return pi_hex_digits(*block)


def pi_hex(
    position: int,
    digits: int,
    *,
    backend: str = "processes",
    max_workers: int | None = None,
    block: int = HEX_BLOCK,
) -> str:
    """Hexadecimal digits of pi from ``position`` on, by BBP digit extraction in parallel:
    blocks of ``block`` digits, each its own task at its own position.

    >>> from lightwork.workloads import pi_hex
    >>> pi_hex(0, 20, backend="threads")
    '243F6A8885A308D31319'
    """
    if position < 0 or digits < 1 or block < 1:
        raise InvalidOptionError("position must be >= 0, digits and block >= 1")
    end = position + digits
    blocks = [(start, min(block, end - start)) for start in range(position, end, block)]
    with warm_executor(backend, max_workers) as executor:
        return "".join(executor.imap(_hex_block, blocks, chunksize=1))
