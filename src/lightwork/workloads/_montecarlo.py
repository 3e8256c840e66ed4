"""Monte Carlo pi kernels: how many uniform points of the unit square fall in the quarter disc.

Both kernels are the work of one task: no parallelism here. ``4 * inside / samples`` estimates
pi with standard error ``4 * sqrt(p * (1 - p) / samples)``, ``p = pi / 4``.

* :func:`count_inside_python` is the tutorial's pure-Python loop, made as fast as the
  interpreter allows.
* :func:`count_inside_numpy` is the single-core NumPy kernel (about 45 times faster); see its
  docstring for the formulation and ``bench/bench_pi_kernels.py`` for the measurements behind it.

NumPy is imported inside :func:`count_inside_numpy` only, so importing this module stays cheap.
"""

from __future__ import annotations

import operator
import random
import threading
from collections.abc import Callable
from itertools import repeat, starmap
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["count_inside_numpy", "count_inside_python"]

# Pure Python: how many points each list comprehension holds, which bounds memory (a list of
# about 0.8 * _PY_CHUNK references) while keeping the per-chunk overhead negligible.
_PY_CHUNK = 1 << 15

# NumPy: points per block. Fixed, never tuned at run time, because the block size decides the
# order in which refinement draws interleave with block draws, hence the counts. 2**18 points
# (about 1.8 MiB of working buffers): on one core as fast as 2**17 (374 vs 381 M/s, within
# noise) and faster than 2**16 or 2**19; on two threads in one process it halves the GIL
# hand-offs between NumPy calls, 674 M/s against 603 for 2**17 (what `lightwork pi` runs on).
_BLOCK = 1 << 18

# The NumPy kernel classifies each point on a coarse grid of C x C cells (8 bits per
# coordinate) and refines the few boundary cells to 32 bits per coordinate (24 more bits).
_COARSE_BITS = 8
_FINE_BITS = 32 - _COARSE_BITS
_C = 1 << _COARSE_BITS
# A cell is "sure inside" when x**2 + y**2 <= C**2 - 4*C + 2, because its far corner then has
# (x+1)**2 + (y+1)**2 = x**2 + y**2 + 2x + 2y + 2 <= C**2 (as x, y <= C - 1). Only cells at or
# above this threshold can straddle the circle, and they are about pi / C (1.2 %) of the points.
_THRESHOLD = _C * _C - 4 * _C + 3


def _check_samples(samples: int) -> int:
    n = operator.index(samples)
    if n < 0:
        raise ValueError(f"samples must be >= 0, got {n}")
    return n


def count_inside_python(rnd: random.Random, samples: int) -> int:
    """Count how many of ``samples`` points ``(x, y) = (rnd.random(), rnd.random())`` have
    ``x*x + y*y <= 1``: the tutorial's algorithm, in pure Python.

    Each point draws x then y, so the count equals that of the plain loop
    ``for _ in range(samples): x = rnd.random(); y = rnd.random(); ...`` for the same generator
    state. It runs about twice as fast as that loop, 1.4 times as fast as the loop with
    ``rnd.random`` bound to a local, because C iterators do the drawing and the pairing.

    >>> import random
    >>> inside = count_inside_python(random.Random(42), 100_000)
    >>> abs(4 * inside / 100_000 - 3.14159) < 0.03
    True
    >>> inside == count_inside_python(random.Random(42), 100_000)
    True
    >>> count_inside_python(random.Random(42), 0)
    0
    """
    n = _check_samples(samples)
    draw = rnd.random
    inside = 0
    for start in range(0, n, _PY_CHUNK):
        size = min(_PY_CHUNK, n - start)
        # zip(it, it) pairs consecutive draws: x is the first of each pair, y the second.
        draws = starmap(draw, repeat((), 2 * size))
        inside += len([None for x, y in zip(draws, draws, strict=True) if x * x + y * y <= 1.0])
    return inside


def count_inside_numpy(rng: np.random.Generator, samples: int) -> int:
    """Count how many of ``samples`` uniform points of the unit square fall in the quarter disc,
    on one core with NumPy, drawing uniform 64-bit words from ``rng``.

    The count depends only on the generator's state and ``samples`` (blocks have a fixed size);
    the generator advances past the bits used.

    >>> import numpy as np
    >>> inside = count_inside_numpy(np.random.default_rng(42), 1_000_000)
    >>> abs(4 * inside / 1_000_000 - 3.14159) < 0.01
    True
    >>> inside == count_inside_numpy(np.random.default_rng(42), 1_000_000)
    True
    >>> count_inside_numpy(np.random.default_rng(42), 0)
    0

    **What is sampled.** Exactly this: ``X, Y`` independent and uniform on the integers
    ``[0, 2**32)`` and the point is inside when ``X**2 + Y**2 < 2**64`` (exact integer
    arithmetic, no rounding anywhere). That is the continuous problem on a lattice of step
    ``2**-32``: the lattice adds about ``2**32`` points along the axes, a relative bias of
    ``4 / (pi * 2**32) ~ 3e-10``, which would take some 10**18 samples to detect. (Float32
    coordinates, with 24 bits and a rounded ``x*x + y*y``, are biased at ``~8e-8``; plain 16-bit
    integer coordinates at ``2e-5``, plain to see within 10**10 samples.)

    **How, cheaply.** Drawing is the bottleneck: NumPy gives about 300 M 64-bit words per
    second here, which with the arithmetic holds formulations spending a word per point (32-bit
    integer pairs) to about 160 M points/s, and float64 pairs (two words) to 100 M. So each point
    first uses only 16 bits, ``x`` and ``y`` the top 8
    bits of ``X`` and ``Y``, with exact ``uint16`` arithmetic on the coarse cell:

    * ``x**2 + y**2 >= 256**2``: every refinement of the cell is outside;
    * ``x**2 + y**2 <= 256**2 - 4*256 + 2``: the cell's far corner is inside, so is every point;
    * otherwise (about 1.2 % of the points) one more 64-bit word supplies the 24 low bits of
      ``X`` and of ``Y`` and the exact 64-bit test decides.

    Since the low bits are uniform and independent of the coarse bits whether or not they are
    drawn, the count has exactly the distribution of the 32-bit lattice above. Measured on one
    core: about 375 M points/s (see ``bench/bench_pi_kernels.py``).

    Each 64-bit word is split into 16-bit points through a native-endian view, so big-endian
    hosts pair the bits differently: same distribution, different counts for one seed.
    """
    return _count_inside_refined(rng, samples, _BLOCK)


def _count_inside_refined(rng: np.random.Generator, samples: int, block: int) -> int:
    # The block size is a parameter only so that the benchmark can sweep it.
    import numpy as np

    n = _check_samples(samples)
    if n == 0:
        return 0
    draw = _uint64_source(rng)
    raw, x2, s, flags = _buffers(min(n, block))
    low_mask = np.uint16(_C - 1)
    shift = np.uint16(_COARSE_BITS)
    threshold = np.uint16(_THRESHOLD)
    inside = 0
    done = 0
    while done < n:
        m = min(block, n - done)
        done += m
        # Four 16-bit points per 64-bit word; a final partial word's spare points are dropped.
        words = _fill(draw, raw[: (m + 3) // 4]).view(np.uint16)[:m]
        xb, sb, fb = x2[:m], s[:m], flags[:m]
        np.bitwise_and(words, low_mask, out=xb)
        np.right_shift(words, shift, out=sb)
        np.square(xb, out=xb)
        np.square(sb, out=sb)
        # Wraps modulo 2**16 exactly when x**2 + y**2 >= C**2, i.e. when the cell is outside:
        # then the sum is below x**2, since y**2 < 2**16.
        np.add(xb, sb, out=sb)
        np.less_equal(xb, sb, out=fb)
        inside += int(np.count_nonzero(fb))
        # A wrapped sum is at most 2 * (C-1)**2 - C**2 = _THRESHOLD - 1, so this selects exactly
        # the unwrapped cells that may straddle the circle, all of them counted just above.
        np.greater_equal(sb, threshold, out=fb)
        candidates = words[fb]
        if candidates.size:
            inside += _refine(draw, candidates) - int(candidates.size)
    return inside


# Words drawn per call of the generator when filling a block: 64 KiB, half glibc's smallest
# mmap threshold, so the array NumPy allocates for a piece comes from the heap and is reused
# for the next one (see _buffers). Copying into the block costs a few percent of a task on a
# thread that never faulted; the faults it avoids cost 10-20% on one that did.
_PIECE = 1 << 13

_Arrays: TypeAlias = (
    "tuple[NDArray[np.uint64], NDArray[np.uint16], NDArray[np.uint16], NDArray[np.bool_]]"
)


class _Buffers(threading.local):
    """One thread's working arrays for the NumPy kernel, kept from one call to the next."""

    arrays: _Arrays | None = None


_kept = _Buffers()


def _buffers(size: int) -> _Arrays:
    """A block's working arrays (its words, x**2, the sum, the flags), kept per thread.

    This makes a task cost the same on every thread. glibc returns the freed top of the main
    thread's heap to the kernel once it exceeds ``M_TRIM_THRESHOLD`` (dynamic: about twice
    the largest block freed so far), and a block's 512 KiB of fresh random words, or the 1.3
    MiB of arrays a call freed at its end, often did: the next block or call page-faulted them
    in afresh, up to ~540 minor faults a task of 2**22 samples, 10-20% of its time here.
    Threads other than the main one allocate from arenas that glibc does not trim that way,
    with no faults. So the serial backend and process workers (tasks on the main thread) paid
    and thread workers did not: one thread beat the serial baseline by 5-20%. Setting
    ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` large evened them out, and counting
    faults with ``getrusage(RUSAGE_THREAD).ru_minflt`` per thread showed why; how many faults
    depended on what the process had allocated before, so no allocation pattern was safe. Now
    nothing large is allocated per block or per call: the arrays live here (~2 MiB per thread
    that ran the kernel) and the words are drawn in small pieces (``_fill``).
    """
    import numpy as np

    cached = _kept.arrays
    if cached is None or cached[1].size < size:
        cached = (
            np.empty((size + 3) // 4, dtype=np.uint64),
            np.empty(size, dtype=np.uint16),
            np.empty(size, dtype=np.uint16),
            np.empty(size, dtype=np.bool_),
        )
        _kept.arrays = cached
    return cached[0][: (size + 3) // 4], cached[1][:size], cached[2][:size], cached[3][:size]


def _fill(draw: Callable[[int], NDArray[np.uint64]], out: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """``out`` filled with the generator's next ``out.size`` words, drawn ``_PIECE`` at a time:
    the very words one draw of ``out.size`` gives, since every source draws them in order."""
    for start in range(0, out.size, _PIECE):
        stop = min(start + _PIECE, out.size)
        out[start:stop] = draw(stop - start)
    return out


def _uint64_source(rng: np.random.Generator) -> Callable[[int], NDArray[np.uint64]]:
    """A function drawing that many independent uniform 64-bit words from ``rng``."""
    import numpy as np

    bitgen = rng.bit_generator
    # random_raw skips the bounded-integer machinery (about 12 % faster) but only these bit
    # generators output 64 bits per raw draw (MT19937 outputs 32), and for them it returns the
    # very words integers() would, so the counts do not depend on which path is taken.
    if type(bitgen) in (np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64, np.random.Philox):
        raw: Callable[[int], NDArray[np.uint64]] = bitgen.random_raw
        return raw

    def full_range(k: int) -> NDArray[np.uint64]:
        return rng.integers(0, 1 << 64, k, dtype=np.uint64)

    return full_range


def _refine(draw: Callable[[int], NDArray[np.uint64]], cells: NDArray[np.uint16]) -> int:
    """How many of the coarse ``cells`` (``y << 8 | x`` each) are inside once their 24 low
    bits per coordinate are drawn, with exact 64-bit arithmetic."""
    import numpy as np

    w = cells.astype(np.uint64)
    fine = draw(w.size)
    fine_bits = np.uint64(_FINE_BITS)
    x = (w & np.uint64(_C - 1)) << fine_bits
    x |= fine >> np.uint64(64 - _FINE_BITS)
    y = (w >> np.uint64(_COARSE_BITS)) << fine_bits
    y |= fine & np.uint64((1 << _FINE_BITS) - 1)
    x *= x
    y *= y
    # X**2 + Y**2 < 2**64 (inside) <=> X**2 <= 2**64 - 1 - Y**2 == ~Y**2, with no overflow.
    np.invert(y, out=y)
    return int(np.count_nonzero(x <= y))
