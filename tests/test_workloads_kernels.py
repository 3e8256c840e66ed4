"""The per-task kernels of the pi workloads: Monte Carlo counts and BBP digits."""

from __future__ import annotations

import decimal
import math
import random
import subprocess
import sys
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
from numpy.typing import NDArray

from lightwork.workloads import _bbp as bbp
from lightwork.workloads import _montecarlo as mc

P = math.pi / 4
BIT_GENERATORS = [np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64, np.random.Philox]
BIT_GENERATORS += [np.random.MT19937]  # 32-bit raw output


def assert_pi_estimate(inside: int, samples: int) -> None:
    """4 * inside / samples is within 5 standard errors of pi (a 1 in 1.7 million miss)."""
    standard_error = 4 * math.sqrt(P * (1 - P) / samples)
    assert abs(4 * inside / samples - math.pi) < 5 * standard_error


def naive_python_count(rnd: random.Random, samples: int) -> int:
    """The tutorial's loop, as written there."""
    inside = 0
    for _ in range(samples):
        x = rnd.random()
        y = rnd.random()
        if x * x + y * y <= 1:
            inside += 1
    return inside


# Monte Carlo, pure Python


def test_python_kernel_estimates_pi() -> None:
    assert_pi_estimate(mc.count_inside_python(random.Random(2024), 10**6), 10**6)


@pytest.mark.parametrize("samples", [0, 1, 2, 3, mc._PY_CHUNK - 1, mc._PY_CHUNK, mc._PY_CHUNK + 1])
def test_python_kernel_equals_the_tutorial_loop(samples: int) -> None:
    """Same draws in the same order (x then y), so the same count, chunk boundaries included."""
    expected = naive_python_count(random.Random(7), samples)
    assert mc.count_inside_python(random.Random(7), samples) == expected


def test_python_kernel_is_deterministic_and_advances_the_generator() -> None:
    rnd = random.Random(11)
    first = mc.count_inside_python(rnd, 5000)
    assert first == mc.count_inside_python(random.Random(11), 5000)
    # 10 000 draws were used, no more.
    reference = random.Random(11)
    for _ in range(10_000):
        reference.random()
    assert rnd.random() == reference.random()


# Monte Carlo, NumPy


@pytest.mark.parametrize("samples", [10**6, 10**7, 3 * mc._BLOCK + 12345])
def test_numpy_kernel_estimates_pi(samples: int) -> None:
    assert_pi_estimate(mc.count_inside_numpy(np.random.default_rng(samples), samples), samples)


@pytest.mark.parametrize("samples", [1, 3, 5, 1000, mc._BLOCK, mc._BLOCK + 1, 2 * mc._BLOCK - 3])
def test_numpy_kernel_is_deterministic(samples: int) -> None:
    counts = {mc.count_inside_numpy(np.random.default_rng(99), samples) for _ in range(3)}
    assert len(counts) == 1
    (count,) = counts
    assert 0 <= count <= samples


def test_numpy_kernel_zero_samples_draws_nothing() -> None:
    rng = np.random.default_rng(5)
    assert mc.count_inside_numpy(rng, 0) == 0
    assert rng.bit_generator.state == np.random.default_rng(5).bit_generator.state


def test_numpy_kernel_advances_the_generator() -> None:
    rng = np.random.default_rng(8)
    counts = [mc.count_inside_numpy(rng, 100_000) for _ in range(4)]
    assert len(set(counts)) > 1


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_numpy_kernel_other_bit_generators(bit_generator: type[np.random.BitGenerator]) -> None:
    rng = np.random.Generator(bit_generator(3))
    assert_pi_estimate(mc.count_inside_numpy(rng, 10**6), 10**6)


def reference_refined_count(rng: np.random.Generator, samples: int, block: int) -> int:
    """The NumPy kernel's algorithm in plain Python integers, consuming the same words (drawn
    the generic way, so PCG64 runs also check the kernel's random_raw shortcut)."""

    def draw(k: int) -> NDArray[np.uint64]:
        return rng.integers(0, 1 << 64, k, dtype=np.uint64)

    inside = 0
    done = 0
    while done < samples:
        m = min(block, samples - done)
        done += m
        words = [int(w) for w in draw((m + 3) // 4).view(np.uint16)[:m]]
        candidates = []
        for w in words:
            x, y = w & 0xFF, w >> 8
            r2 = x * x + y * y
            if r2 < mc._THRESHOLD:
                inside += 1
            elif r2 < 1 << 16:
                candidates.append((x, y))
        for (x, y), fine in zip(candidates, draw(len(candidates)), strict=True):
            big_x = x << 24 | int(fine) >> 40
            big_y = y << 24 | int(fine) & 0xFFFFFF
            inside += big_x * big_x + big_y * big_y < 1 << 64
    return inside


@pytest.mark.parametrize(("samples", "block"), [(5000, 1000), (4099, 256), (777, 4096)])
@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_numpy_kernel_matches_a_plain_integer_reference(
    samples: int, block: int, bit_generator: type[np.random.BitGenerator]
) -> None:
    rng = np.random.Generator(bit_generator(samples))
    reference_rng = np.random.Generator(bit_generator(samples))
    expected = reference_refined_count(reference_rng, samples, block)
    assert mc._count_inside_refined(rng, samples, block) == expected
    # Both consumed the same words.
    assert str(rng.bit_generator.state) == str(reference_rng.bit_generator.state)


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_uint64_source_draws_full_range_words(bit_generator: type[np.random.BitGenerator]) -> None:
    rng = np.random.Generator(bit_generator(1))
    generic = np.random.Generator(bit_generator(1))
    words = mc._uint64_source(rng)(4096)
    assert words.dtype == np.uint64
    assert np.array_equal(words, generic.integers(0, 1 << 64, 4096, dtype=np.uint64))
    assert int(words.max()) >= 1 << 63  # the top bit is random too (MT19937's raw words lack it)


def test_coarse_cells_are_classified_soundly() -> None:
    """Over all 65536 cells: those decided on 8 bits are decided the same way for every choice
    of the 24 low bits, so the kernel samples exactly the 32-bit lattice."""
    c, fine = 1 << 8, 1 << 24
    radius2 = 1 << 64
    for x in range(c):
        for y in range(c):
            r2 = x * x + y * y
            if r2 >= c * c:  # counted outside: the nearest refinement is outside
                assert (x * fine) ** 2 + (y * fine) ** 2 >= radius2
            elif r2 < mc._THRESHOLD:  # counted inside: the farthest refinement is inside
                assert ((x + 1) * fine - 1) ** 2 + ((y + 1) * fine - 1) ** 2 < radius2


def test_numpy_kernel_refines_about_pi_over_256_of_points() -> None:
    cells = np.arange(1 << 16)
    r2 = (cells & 0xFF) ** 2 + (cells >> 8) ** 2
    fraction = np.count_nonzero((r2 >= mc._THRESHOLD) & (r2 < 1 << 16)) / (1 << 16)
    assert fraction == pytest.approx(math.pi / 256, rel=0.05)


@pytest.mark.parametrize(
    ("kernel", "make_generator"),
    [(mc.count_inside_python, random.Random), (mc.count_inside_numpy, np.random.default_rng)],
)
def test_kernels_reject_bad_samples(
    kernel: Callable[[object, int], int], make_generator: Callable[[int], object]
) -> None:
    with pytest.raises(ValueError, match="samples must be >= 0"):
        kernel(make_generator(0), -1)
    with pytest.raises(TypeError):
        kernel(make_generator(0), 10.0)  # type: ignore[arg-type]


def test_importing_the_kernels_does_not_import_numpy() -> None:
    code = (
        "import sys, lightwork.workloads._montecarlo, lightwork.workloads._bbp\n"
        "sys.exit('numpy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# BBP, decimal


def correctly_rounded_pi(precision: int) -> decimal.Decimal:
    with mpmath.workdps(precision + 30):
        text = mpmath.nstr(mpmath.pi, precision + 25, strip_zeros=False)
    with decimal.localcontext(decimal.Context(prec=precision)):
        return +decimal.Decimal(text)


@pytest.mark.parametrize("precision", [1, 2, 3, 10, 28, 50, 100, 333, 1000])
def test_bbp_decimal_is_pi_to_the_precision_asked(precision: int) -> None:
    result = bbp.bbp_pi_decimal(precision)
    assert len(result.as_tuple().digits) == precision
    assert result == correctly_rounded_pi(precision)


def test_bbp_decimal_leaves_the_callers_context_alone() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 7
        ctx.traps[decimal.Inexact] = True
        ctx.rounding = decimal.ROUND_FLOOR
        result = bbp.bbp_pi_decimal(40)
        assert ctx.prec == 7
        assert ctx.traps[decimal.Inexact]
        assert ctx.rounding == decimal.ROUND_FLOOR
    assert str(result) == "3.141592653589793238462643383279502884197"


@pytest.mark.parametrize("precision", [0, -3])
def test_bbp_decimal_rejects_bad_precision(precision: int) -> None:
    with pytest.raises(ValueError, match="precision must be >= 1"):
        bbp.bbp_pi_decimal(precision)


# BBP, hexadecimal digit extraction


def mpmath_hex_digits(position: int, count: int) -> str:
    with mpmath.workdps(int((position + count) * math.log10(16)) + 50):
        digits = int(mpmath.floor(mpmath.pi * mpmath.mpf(16) ** (position + count))) % 16**count
    return f"{digits:0{count}X}"


@pytest.mark.parametrize("position", [0, 1, 7, 100, 1000, 4321])
@pytest.mark.parametrize("count", [1, 8, 20])
def test_hex_digits_match_mpmath(position: int, count: int) -> None:
    assert bbp.pi_hex_digits(position, count) == mpmath_hex_digits(position, count)


def test_hex_digits_known_values() -> None:
    assert bbp.pi_hex_digits(0, 16) == "243F6A8885A308D3"
    # Bailey, Borwein and Plouffe (1997) list the digits from (1-based) position 10**4 onwards.
    assert bbp.pi_hex_digits(10**4 - 1, 10) == "68AC8FCFB8"


def test_hex_digits_long_count_in_one_call() -> None:
    assert bbp.pi_hex_digits(50, 600) == mpmath_hex_digits(50, 600)


def test_hex_digit_blocks_concatenate() -> None:
    blocks = "".join(bbp.pi_hex_digits_block(b) for b in range(10))
    assert blocks == bbp.pi_hex_digits(0, 10 * bbp.HEX_BLOCK)
    assert bbp.pi_hex_digits_block(3, size=5) == bbp.pi_hex_digits(15, 5)


def test_hex_digits_decline_when_the_bits_do_not_settle_them() -> None:
    """Too few guard bits for the error bound: no digits rather than possibly wrong ones."""
    assert bbp._hex_digits_if_certain(1000, 8, 4 * 8 + 4) is None
    assert bbp._hex_digits_if_certain(1000, 8, 4 * 8 + 64) == mpmath_hex_digits(1000, 8)


@pytest.mark.parametrize(
    ("position", "count", "message"),
    [(-1, 8, "position must be >= 0"), (0, 0, "count must be >= 1"), (5, -2, "count must be")],
)
def test_hex_digits_reject_bad_arguments(position: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bbp.pi_hex_digits(position, count)


def test_hex_digit_blocks_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="block must be >= 0"):
        bbp.pi_hex_digits_block(-1)
    with pytest.raises(ValueError, match="size must be >= 1"):
        bbp.pi_hex_digits_block(0, size=0)
    with pytest.raises(TypeError):
        bbp.pi_hex_digits(1.5, 8)  # type: ignore[arg-type]


FAULTS_PER_CALL = """
import resource, threading
import numpy as np
from lightwork.workloads import count_inside_numpy

def faults_per_call():
    rng = np.random.default_rng(1)
    for _ in range(3):  # a thread's first calls allocate, and glibc adjusts its thresholds
        count_inside_numpy(rng, 1 << 22)
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(4):
        count_inside_numpy(rng, 1 << 22)
    return (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 4

other = []
on_main = faults_per_call()
thread = threading.Thread(target=lambda: other.append(faults_per_call()))
thread.start()
thread.join()
print(on_main, other[0])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread fault counts")
def test_numpy_kernel_costs_the_same_on_a_fresh_main_thread_as_on_others() -> None:
    # glibc trimmed the main thread's heap when a call freed its arrays, and the next call
    # page-faulted them in again (~540 faults a task): the serial backend and process workers
    # (fresh processes, tasks on the main thread) paid that and thread workers did not.
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_CALL], capture_output=True, text=True, check=True
    )
    on_main, on_other = map(float, done.stdout.split())
    assert on_main < 20 and on_other < 20, done.stdout
