"""The scaling lab: how much faster does the work get with more workers, and why not more?

:func:`scale` times a function over its items on the serial backend (the baseline T1), on each
backend at each worker count and as independent processes (the machine's own ceiling), taking
turns in rounds; reports speed-up with its error, efficiency, the Karp-Flatt serial fraction
and where the workers' time went, and fits Amdahl's law (or Gustafson's, for weak scaling) to
predict larger machines, saying so where the noise is larger than the effect::

    >>> import time
    >>> from lightwork.lab import scale
    >>> report = scale(time.sleep, [0.01] * 16, max_workers=[1, 2, 4],
    ...                backends=["threads"], repeat=3, chunksize=1, name="sleep")
    >>> print(report.table())  # doctest: +SKIP
    sleep: strong scaling on 2 CPUs, 16 items; 3 rounds (as many as asked), ...
    ...
    threads (Amdahl): serial fraction f = 0.004 ± 0.002 (rounds ± ..., machine ± ...; ...
    >>> report.points[-1].speedup > 2  # 4 threads: ideally 4
    True
    >>> path = report.plot("scaling.png")  # doctest: +SKIP

From a shell: ``lightwork scale pi --max-workers 1,2 --plot scaling.png``. The built-in
workloads are in :data:`WORKLOADS`.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._fit import AmdahlFit as AmdahlFit
    from ._fit import GustafsonFit as GustafsonFit
    from ._fit import fit_amdahl as fit_amdahl
    from ._fit import fit_gustafson as fit_gustafson
    from ._fit import karp_flatt as karp_flatt
    from ._scale import ScalingPoint as ScalingPoint
    from ._scale import ScalingReport as ScalingReport
    from ._scale import TimeBreakdown as TimeBreakdown
    from ._scale import scale as scale
    from ._workloads import WORKLOADS as WORKLOADS
    from ._workloads import Workload as Workload
    from ._workloads import resolve as resolve

# Imported on first use: the command line loads this package for every command.
_LAZY = {
    "AmdahlFit": "._fit",
    "GustafsonFit": "._fit",
    "fit_amdahl": "._fit",
    "fit_gustafson": "._fit",
    "karp_flatt": "._fit",
    "ScalingPoint": "._scale",
    "ScalingReport": "._scale",
    "TimeBreakdown": "._scale",
    "scale": "._scale",
    "WORKLOADS": "._workloads",
    "Workload": "._workloads",
    "resolve": "._workloads",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lightwork.lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "scale",
    "ScalingReport",
    "ScalingPoint",
    "TimeBreakdown",
    "AmdahlFit",
    "GustafsonFit",
    "fit_amdahl",
    "fit_gustafson",
    "karp_flatt",
    "WORKLOADS",
    "Workload",
    "resolve",
]
