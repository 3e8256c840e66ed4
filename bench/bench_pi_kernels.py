"""Single-core Monte Carlo pi kernels: NumPy formulations side by side, and the chosen one.

    python bench/bench_pi_kernels.py                 # about 40 s
    python bench/bench_pi_kernels.py --samples 4e6 --repeats 3   # a quick look

Prints million samples per second (best of --repeats, runs interleaved so that drifts in clock
speed hit every formulation alike) for each formulation and block size, then the chosen kernel,
``count_inside_numpy``, against the fastest formulation measured. All draw from PCG64
(``np.random.default_rng``, what ``lightwork.rng()`` gives a task).

"bias" is the relative bias of the estimate of pi from the coordinate lattice (4 / (pi * 2**b)
for b-bit coordinates): a formulation is acceptable when nobody could run enough samples to see
it. 16-bit coordinates are shown only as a speed reference: their bias shows after ~1e10 samples.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

try:
    from lightwork.workloads import _montecarlo as mc
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from lightwork.workloads import _montecarlo as mc

Kernel = Callable[[np.random.Generator, int], int]


def _blocks(samples: int, block: int) -> list[int]:
    full, rest = divmod(samples, block)
    return [block] * full + ([rest] if rest else [])


def float64_naive(block: int) -> Kernel:
    """rng.random twice, temporaries for every operation, sum of the booleans."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        inside = 0
        for m in _blocks(samples, block):
            x = rng.random(m)
            y = rng.random(m)
            inside += int((x * x + y * y <= 1.0).sum())
        return inside

    return kernel


def floats_in_place(block: int, dtype: type[np.floating], reduce: str = "count") -> Kernel:
    """rng.random(out=) into preallocated buffers, in-place arithmetic, count_nonzero or sum."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        x_buf = np.empty(block, dtype=dtype)
        y_buf = np.empty(block, dtype=dtype)
        f_buf = np.empty(block, dtype=np.bool_)
        one = dtype(1.0)
        inside = 0
        for m in _blocks(samples, block):
            x, y, flags = x_buf[:m], y_buf[:m], f_buf[:m]
            rng.random(out=x, dtype=dtype)
            rng.random(out=y, dtype=dtype)
            np.multiply(x, x, out=x)
            np.multiply(y, y, out=y)
            np.add(x, y, out=x)
            np.less_equal(x, one, out=flags)
            inside += int(np.count_nonzero(flags)) if reduce == "count" else int(flags.sum())
        return inside

    return kernel


def int32_pairs(block: int) -> Kernel:
    """One 64-bit word per point: X, Y its 32-bit halves, exact uint64 test X^2 <= ~Y^2."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        draw = rng.bit_generator.random_raw
        x_buf = np.empty(block, dtype=np.uint64)
        f_buf = np.empty(block, dtype=np.bool_)
        low, shift = np.uint64(0xFFFFFFFF), np.uint64(32)
        inside = 0
        for m in _blocks(samples, block):
            x, flags = x_buf[:m], f_buf[:m]
            r: NDArray[np.uint64] = draw(m)
            np.bitwise_and(r, low, out=x)
            np.right_shift(r, shift, out=r)
            np.square(x, out=x)
            np.square(r, out=r)
            np.invert(r, out=r)
            np.less_equal(x, r, out=flags)
            inside += int(np.count_nonzero(flags))
        return inside

    return kernel


def int31_pairs(block: int) -> Kernel:
    """31-bit halves of one word, so X^2 + Y^2 < 2^63 never overflows: add, compare to 2^62."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        draw = rng.bit_generator.random_raw
        x_buf = np.empty(block, dtype=np.uint64)
        f_buf = np.empty(block, dtype=np.bool_)
        low, shift, r2 = np.uint64(0x7FFFFFFF), np.uint64(33), np.uint64(1 << 62)
        inside = 0
        for m in _blocks(samples, block):
            x, flags = x_buf[:m], f_buf[:m]
            r: NDArray[np.uint64] = draw(m)
            np.bitwise_and(r, low, out=x)
            np.right_shift(r, shift, out=r)
            np.square(x, out=x)
            np.square(r, out=r)
            np.add(x, r, out=x)
            np.less(x, r2, out=flags)
            inside += int(np.count_nonzero(flags))
        return inside

    return kernel


def int16_pairs(block: int) -> Kernel:
    """Two points per word, 16-bit coordinates, exact uint32 test. Biased: speed reference."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        draw = rng.bit_generator.random_raw
        x_buf = np.empty(block, dtype=np.uint32)
        f_buf = np.empty(block, dtype=np.bool_)
        low, shift = np.uint32(0xFFFF), np.uint32(16)
        inside = 0
        for m in _blocks(samples, block):
            x, flags = x_buf[:m], f_buf[:m]
            raw: NDArray[np.uint64] = draw((m + 1) // 2)
            r = raw.view(np.uint32)[:m]
            np.bitwise_and(r, low, out=x)
            np.right_shift(r, shift, out=r)
            np.square(x, out=x)
            np.square(r, out=r)
            np.invert(r, out=r)
            np.less_equal(x, r, out=flags)
            inside += int(np.count_nonzero(flags))
        return inside

    return kernel


def refined16(block: int) -> Kernel:
    """Coarse 16-bit cells in uint32, boundary cells refined to 32 bits (exact, like chosen)."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        draw = rng.bit_generator.random_raw
        x_buf = np.empty(block, dtype=np.uint32)
        s_buf = np.empty(block, dtype=np.uint32)
        f_buf = np.empty(block, dtype=np.bool_)
        low, shift = np.uint32(0xFFFF), np.uint32(16)
        threshold = np.uint32(2**32 - 4 * 2**16 + 3)
        inside = 0
        for m in _blocks(samples, block):
            x, s, flags = x_buf[:m], s_buf[:m], f_buf[:m]
            raw: NDArray[np.uint64] = draw((m + 1) // 2)
            words = raw.view(np.uint32)[:m]
            np.bitwise_and(words, low, out=x)
            np.right_shift(words, shift, out=s)
            np.square(x, out=x)
            np.square(s, out=s)
            np.add(x, s, out=s)
            np.less_equal(x, s, out=flags)
            inside += int(np.count_nonzero(flags))
            np.greater_equal(s, threshold, out=flags)
            cells = words[flags].astype(np.uint64)
            if cells.size:
                fine: NDArray[np.uint64] = draw(cells.size)
                c16 = np.uint64(16)
                big_x = ((cells & np.uint64(0xFFFF)) << c16) | (fine >> np.uint64(48))
                big_y = ((cells >> c16) << c16) | (fine & np.uint64(0xFFFF))
                big_x *= big_x
                big_y *= big_y
                inside += int(np.count_nonzero(big_x <= ~big_y)) - int(cells.size)
        return inside

    return kernel


def refined8(block: int) -> Kernel:
    """The chosen algorithm (coarse 8-bit cells in uint16, refined to 32 bits) at this block."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        return mc._count_inside_refined(rng, samples, block)

    return kernel


def draw_only(block: int) -> Kernel:
    """Only the drawing of 16 bits per point: the ceiling for the chosen algorithm."""

    def kernel(rng: np.random.Generator, samples: int) -> int:
        draw = rng.bit_generator.random_raw
        for m in _blocks(samples, block):
            draw((m + 3) // 4)
        return 0

    return kernel


# name, factory(block), bits per coordinate (0: draws only, no sampling)
FORMULATIONS: list[tuple[str, Callable[[int], Kernel], int]] = [
    ("float64, temporaries, sum", float64_naive, 53),
    ("float64, in place, sum", lambda b: floats_in_place(b, np.float64, "sum"), 53),
    ("float64, in place, count_nonzero", lambda b: floats_in_place(b, np.float64), 53),
    ("float32, in place, count_nonzero", lambda b: floats_in_place(b, np.float32), 24),
    ("uint64: 32-bit X,Y, exact", int32_pairs, 32),
    ("uint64: 31-bit X,Y, exact", int31_pairs, 31),
    ("uint32: 16-bit X,Y (biased)", int16_pairs, 16),
    ("refined 16->32 bits (uint32)", refined16, 32),
    ("refined 8->32 bits (uint16) *", refined8, 32),
    ("draw 16 bits/point only", draw_only, 0),
]
ACCEPTABLE_BIAS = 1e-9  # needs ~1e17 samples to show at one standard error


def bias(bits: int) -> float:
    return 4 / (math.pi * 2.0**bits)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(kernel: Kernel, samples: int) -> float:
    rng = np.random.default_rng(12345)
    start = time.perf_counter()
    kernel(rng, samples)
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=2**24, help="samples per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many")
    parser.add_argument(
        "--blocks",
        type=int,
        nargs="+",
        default=[14, 16, 17, 18, 20, 22],
        help="log2 of the block sizes (points per block) to sweep",
    )
    args = parser.parse_args()
    samples = int(args.samples)
    blocks = [1 << b for b in args.blocks]

    print(f"numpy {np.__version__}, Python {platform.python_version()}, {cpu_name()}")
    print(f"{samples:,} samples per run, best of {args.repeats}, M samples/s, one core\n")

    cells = {(name, b): factory(b) for name, factory, _ in FORMULATIONS for b in blocks}
    chosen_name = f"count_inside_numpy (block 2^{mc._BLOCK.bit_length() - 1})"
    cells[(chosen_name, 0)] = mc.count_inside_numpy
    rates: dict[tuple[str, int], float] = dict.fromkeys(cells, 0.0)
    for _ in range(args.repeats):
        for key, kernel in cells.items():
            rates[key] = max(rates[key], measure(kernel, samples))

    width = max(len(name) for name, _, _ in FORMULATIONS) + 2
    header = "".join(f"{'2^' + str(b.bit_length() - 1):>8}" for b in blocks)
    print(f"{'formulation':<{width}}{header}{'bias':>10}")
    for name, _, bits in FORMULATIONS:
        row = "".join(f"{rates[(name, b)] / 1e6:8.0f}" for b in blocks)
        print(f"{name:<{width}}{row}{f'{bias(bits):.1e}' if bits else '-':>10}")

    python_samples = max(samples // 32, 1)
    start = time.perf_counter()
    mc.count_inside_python(random.Random(1), python_samples)
    python_rate = python_samples / (time.perf_counter() - start)
    print(f"{'count_inside_python (pure Python)':<{width}}{python_rate / 1e6:8.1f}")

    sampling = [(name, b) for name, _, bits in FORMULATIONS if bits for b in blocks]
    acceptable = [n for n, _, bits in FORMULATIONS if bits and bias(bits) < ACCEPTABLE_BIAS]
    exact_cells = [(n, b) for n in acceptable for b in blocks]
    fastest = max(sampling, key=rates.__getitem__)
    fastest_exact = max(exact_cells, key=rates.__getitem__)
    chosen = rates[(chosen_name, 0)]
    print()
    print(f"chosen: {chosen_name}: {chosen / 1e6:.0f} M samples/s")
    for label, (name, b) in [("fastest measured", fastest), ("fastest acceptable", fastest_exact)]:
        rate = rates[(name, b)]
        print(
            f"{label}: {name.rstrip(' *')} at block 2^{b.bit_length() - 1}: {rate / 1e6:.0f} M/s;"
            f" chosen / it = {chosen / rate:.2f}"
        )
    print(f"chosen / pure Python = {chosen / python_rate:.0f}")


if __name__ == "__main__":
    main()
