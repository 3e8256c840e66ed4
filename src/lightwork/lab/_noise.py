"""How sure the lab is of what it measured: medians over rounds, their errors, and verdicts.

The lab runs every configuration once per round, in a shuffled order, so the times of one
round were taken seconds apart under the same conditions. A ratio within a round (a speed-up,
a share of the machine's ceiling) cancels what drifts between rounds, and the median over the
rounds ignores a round that a burst of other work disturbed. Its standard error comes from
the spread of the rounds (the median absolute deviation, robust to that burst), and the
serial fraction's from a bootstrap over the rounds, which keeps each round's ratios together.

Pure arithmetic, no clock: the tests feed it numbers.

>>> e = median_estimate([1.95, 1.97, 1.96, 1.40, 1.96])  # one disturbed round
>>> round(e.value, 2), round(e.stderr, 3)
(1.96, 0.008)
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Z_95", "Estimate", "bootstrap", "fit_notes", "median_estimate"]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
# For normal noise the median's standard error is sqrt(pi / 2) times the mean's, and the median
# absolute deviation times 1.4826 estimates the standard deviation.
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
MAD_TO_SIGMA = 1.4826
MIN_ROUNDS_FOR_ERROR = 3  # below this the spread of the rounds says nothing
BOOTSTRAP_SAMPLES = 2000  # resamples: the interval's ends move by < 1% of its width beyond this
BOOTSTRAP_SEED = 0  # fixed: the same rounds give the same interval


@dataclass(frozen=True)
class Estimate:
    """A median over rounds with its standard error (NaN with fewer than three rounds)."""

    value: float
    stderr: float

    @property
    def low(self) -> float:
        """The lower end of the 95% interval."""
        return self.value - Z_95 * self.stderr

    @property
    def high(self) -> float:
        """The upper end of the 95% interval."""
        return self.value + Z_95 * self.stderr

    def relative_error(self) -> float:
        """``stderr / value``: what the stopping rule compares with the target precision."""
        return self.stderr / abs(self.value) if self.value else math.inf


def median_estimate(values: Sequence[float]) -> Estimate:
    """The median of ``values`` and its robust standard error.

    >>> median_estimate([2.0, 2.0]).stderr  # two rounds: no error estimate
    nan
    """
    middle = statistics.median(values)
    if len(values) < MIN_ROUNDS_FOR_ERROR:
        return Estimate(middle, math.nan)
    mad = statistics.median(abs(v - middle) for v in values)
    return Estimate(middle, MEDIAN_SE_FACTOR * MAD_TO_SIGMA * mad / math.sqrt(len(values)))


def bootstrap(rounds: int, statistic: Callable[[list[int]], float]) -> tuple[float, float, float]:
    """Standard error and 95% interval of ``statistic(round indices)`` over resampled rounds.

    ``statistic`` gets a list of round indices drawn with replacement and computes the
    estimate from those rounds only. NaNs when there are too few rounds or no finite result.

    >>> values = [0.02, 0.03, 0.025, 0.022, 0.028]
    >>> se, low, high = bootstrap(5, lambda picked: statistics.median(values[i] for i in picked))
    >>> low <= 0.025 <= high and 0 < se < 0.01
    True
    """
    if rounds < MIN_ROUNDS_FOR_ERROR:
        return math.nan, math.nan, math.nan
    draw = random.Random(BOOTSTRAP_SEED)
    results = []
    for _ in range(BOOTSTRAP_SAMPLES):
        value = statistic([draw.randrange(rounds) for _ in range(rounds)])
        if math.isfinite(value):
            results.append(value)
    if len(results) < BOOTSTRAP_SAMPLES // 2:
        return math.nan, math.nan, math.nan
    results.sort()
    low = results[int(0.025 * (len(results) - 1))]
    high = results[int(0.975 * (len(results) - 1))]
    return statistics.stdev(results), low, high


def fit_notes(raw: float, stderr: float, low: float, high: float) -> tuple[str, ...]:
    """What a fitted serial fraction's noise allows one to say, as notes for the reader.

    >>> fit_notes(0.03, 0.005, 0.02, 0.04)
    ()
    >>> print(fit_notes(-0.004, 0.006, -0.015, 0.008)[0])  # doctest: +ELLIPSIS
    noise larger than the effect: f is within noise of 0 (better than linear by less ...
    >>> print(fit_notes(-0.05, 0.01, -0.07, -0.03)[0])  # doctest: +ELLIPSIS
    better than linear beyond the noise ...
    """
    if math.isnan(raw):
        return ()
    if math.isnan(stderr):
        return ("uncertainty unknown: it takes at least 3 rounds; treat f as a rough guess",)
    notes = []
    if high < 0:
        notes.append(
            f"better than linear beyond the noise (least squares gave {raw:.3f}, 95% interval "
            f"{low:.3f} to {high:.3f}): suspect the baseline, caches or a change of load, not "
            "a negative serial part; f is shown as 0"
        )
    elif low <= 0 or stderr >= abs(raw):
        what = "better than linear by less than its noise, " if raw < 0 else ""
        notes.append(
            f"noise larger than the effect: f is within noise of 0 ({what}least squares gave "
            f"{raw:.3f} ± {stderr:.3f}, 95% interval {low:.3f} to {high:.3f}): no serial part "
            "measurable above this run's noise"
        )
    return tuple(notes)
