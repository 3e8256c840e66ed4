"""A task module that imports NumPy at its top: it cannot be imported in a subinterpreter."""

from __future__ import annotations

import numpy as np

SMALLEST = np.int64(0)  # (uses the import)


def python_work_beside_numpy(n: int) -> int:
    """Pure-Python CPU work, in a module that needs NumPy."""
    total = int(SMALLEST)
    for i in range(20_000):
        total += i * n
    return total
