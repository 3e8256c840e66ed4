"""Built-in workloads: the tutorials' pi computations, parallel and reproducible.

>>> from lightwork.workloads import monte_carlo_pi
>>> result = monte_carlo_pi(1_000_000, backend="serial", seed=1)
>>> round(result.estimate, 1)
3.1
"""

from ._bbp import bbp_pi_decimal as bbp_pi_decimal
from ._bbp import pi_hex_digits as pi_hex_digits
from ._montecarlo import count_inside_numpy as count_inside_numpy
from ._montecarlo import count_inside_python as count_inside_python
from ._pi import KERNELS as KERNELS
from ._pi import TASK_SAMPLES as TASK_SAMPLES
from ._pi import PiEstimate as PiEstimate
from ._pi import bbp_pi as bbp_pi
from ._pi import monte_carlo_pi as monte_carlo_pi
from ._pi import pi_hex as pi_hex
from ._pi import split_samples as split_samples

__all__ = [
    "KERNELS",
    "TASK_SAMPLES",
    "PiEstimate",
    "bbp_pi",
    "bbp_pi_decimal",
    "count_inside_numpy",
    "count_inside_python",
    "monte_carlo_pi",
    "pi_hex",
    "pi_hex_digits",
    "split_samples",
]
