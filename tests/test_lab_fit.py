"""The scaling laws of the lab, fitted to synthetic speed-ups: pure arithmetic, no workers."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from lightwork import InvalidOptionError
from lightwork.lab import AmdahlFit, GustafsonFit, fit_amdahl, fit_gustafson, karp_flatt
from lightwork.lab._fit import gustafson_serial_fraction

WORKERS = (1, 2, 4, 8, 16)


def amdahl(f: float, p: int) -> float:
    return 1 / (f + (1 - f) / p)


def gustafson(f: float, p: int) -> float:
    return p - f * (p - 1)


def noisy(
    law: Callable[[float, int], float], f: float, noise: float, repeats: int = 5
) -> list[tuple[int, float]]:
    """Each worker count measured ``repeats`` times, each off by up to ``noise`` (relative)."""
    rnd = random.Random(20240601)
    return [
        (p, law(f, p) * (1 + rnd.uniform(-noise, noise))) for p in WORKERS for _ in range(repeats)
    ]


# ---- Karp-Flatt --------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [2, 3, 8, 64])
def test_karp_flatt_recovers_the_serial_fraction_of_an_amdahl_speedup(p: int) -> None:
    assert karp_flatt(amdahl(0.1, p), p) == pytest.approx(0.1)


def test_karp_flatt_is_none_for_one_worker() -> None:
    assert karp_flatt(1.0, 1) is None
    assert gustafson_serial_fraction(1.0, 1) is None


def test_karp_flatt_of_a_perfect_speedup_is_zero_and_of_no_speedup_one() -> None:
    assert karp_flatt(4.0, 4) == pytest.approx(0.0)
    assert karp_flatt(1.0, 4) == pytest.approx(1.0)


def test_gustafson_serial_fraction_inverts_the_law() -> None:
    assert gustafson_serial_fraction(gustafson(0.2, 8), 8) == pytest.approx(0.2)


# ---- Amdahl ------------------------------------------------------------------------------------


def test_amdahl_fit_of_noisy_data_is_within_three_hundredths_of_the_true_fraction() -> None:
    fit = fit_amdahl(noisy(amdahl, 0.1, noise=0.03))
    assert abs(fit.serial_fraction - 0.1) < 0.03
    assert 0 < fit.stderr < 0.03
    assert fit.n_points == 4 * 5  # the one-worker runs carry no information about f


def test_amdahl_fit_of_exact_data_is_exact() -> None:
    fit = fit_amdahl([(p, amdahl(0.08, p)) for p in WORKERS])
    assert fit.serial_fraction == pytest.approx(0.08)
    assert fit.raw_serial_fraction == pytest.approx(0.08)
    assert fit.stderr == pytest.approx(0.0, abs=1e-12)
    assert fit.ceiling == pytest.approx(12.5)
    assert fit.predicted == pytest.approx({p: amdahl(0.08, p) for p in (4, 8, 16, 64)})
    assert fit.speedup(10) == pytest.approx(amdahl(0.08, 10))


def test_amdahl_fit_predicts_at_4_8_16_and_64_workers() -> None:
    assert list(fit_amdahl([(2, 1.5)]).predicted) == [4, 8, 16, 64]


def test_perfect_scaling_fits_zero_with_no_ceiling() -> None:
    fit = fit_amdahl([(p, float(p)) for p in WORKERS])
    assert fit.serial_fraction == 0.0
    assert fit.ceiling == math.inf
    assert fit.predicted[64] == pytest.approx(64)
    assert "ceiling none" in fit.summary()


def test_only_one_worker_leaves_the_fraction_undetermined() -> None:
    fit = fit_amdahl([(1, 1.0), (1, 0.98)])
    assert math.isnan(fit.serial_fraction) and math.isnan(fit.stderr)
    assert math.isnan(fit.ceiling) and math.isnan(fit.predicted[4])
    assert fit.n_points == 0
    assert "not determined" in fit.summary()


def test_one_multi_worker_point_has_a_fraction_but_no_standard_error() -> None:
    fit = fit_amdahl([(1, 1.0), (2, 1.6)])
    assert fit.serial_fraction == pytest.approx(0.25)
    assert math.isnan(fit.stderr)
    assert "± n/a" in fit.summary()


def test_a_slowdown_clamps_the_fraction_to_one() -> None:
    fit = fit_amdahl([(2, 0.8), (4, 0.7)])
    assert fit.serial_fraction == 1.0
    assert fit.raw_serial_fraction > 1
    assert fit.ceiling == 1.0
    assert fit.predicted[64] == pytest.approx(1.0)
    assert "slower than one worker; clamped" in fit.summary()


def test_a_better_than_linear_speedup_clamps_the_fraction_to_zero() -> None:
    fit = fit_amdahl([(2, 2.2), (4, 4.5)])
    assert fit.serial_fraction == 0.0
    assert fit.raw_serial_fraction < 0
    assert "better than linear; clamped" in fit.summary()


def test_amdahl_summary_reads_as_a_sentence() -> None:
    fit = fit_amdahl(noisy(amdahl, 0.1, noise=0.01))
    summary = fit.summary()
    assert summary.startswith(f"serial fraction f = {fit.serial_fraction:.3f} ± ")
    assert "predicted speed-up 4: " in summary and ", 64: " in summary
    assert summary.endswith(f"ceiling {fit.ceiling:.1f}")


# ---- Gustafson ---------------------------------------------------------------------------------


def test_gustafson_fit_of_noisy_data_is_within_three_hundredths_of_the_true_fraction() -> None:
    fit = fit_gustafson(noisy(gustafson, 0.1, noise=0.03))
    assert isinstance(fit, GustafsonFit)
    assert abs(fit.serial_fraction - 0.1) < 0.03
    assert 0 < fit.stderr < 0.03


def test_gustafson_fit_of_exact_data_is_exact() -> None:
    fit = fit_gustafson([(p, gustafson(0.3, p)) for p in WORKERS])
    assert fit.serial_fraction == pytest.approx(0.3)
    assert fit.predicted[64] == pytest.approx(gustafson(0.3, 64))
    assert fit.speedup(10) == pytest.approx(gustafson(0.3, 10))
    assert "predicted scaled speed-up" in fit.summary()


def test_gustafson_edge_cases_match_amdahls() -> None:
    assert math.isnan(fit_gustafson([(1, 1.0)]).serial_fraction)
    assert fit_gustafson([(p, float(p)) for p in WORKERS]).serial_fraction == 0.0
    assert fit_gustafson([(2, 0.5), (4, 0.9)]).serial_fraction == 1.0


# ---- bad input ---------------------------------------------------------------------------------

BAD_POINTS = {
    "no points": [],
    "zero workers": [(0, 1.0)],
    "fractional workers": [(1.5, 1.0)],
    "boolean workers": [(True, 1.0)],
    "zero speed-up": [(2, 0.0)],
    "negative speed-up": [(2, -1.0)],
    "NaN speed-up": [(2, math.nan)],
    "infinite speed-up": [(2, math.inf)],
}


@pytest.mark.parametrize("fit", [fit_amdahl, fit_gustafson], ids=["amdahl", "gustafson"])
@pytest.mark.parametrize("points", list(BAD_POINTS.values()), ids=list(BAD_POINTS))
def test_bad_points_raise_invalid_option_error(
    fit: Callable[[list[Any]], object], points: list[Any]
) -> None:
    with pytest.raises(InvalidOptionError):
        fit(points)


@pytest.mark.parametrize(("speedup", "workers"), [(1.0, 0), (0.0, 2), (-2.0, 2)])
def test_karp_flatt_rejects_impossible_input(speedup: float, workers: int) -> None:
    with pytest.raises(InvalidOptionError):
        karp_flatt(speedup, workers)


def test_fits_are_frozen() -> None:
    fit = fit_amdahl([(2, 1.8)])
    assert isinstance(fit, AmdahlFit)
    with pytest.raises(AttributeError):
        fit.serial_fraction = 0.5  # type: ignore[misc]
