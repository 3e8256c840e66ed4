"""The error of a shared object used after its memory was released."""

from __future__ import annotations

from .._core._errors import LightworkError

__all__ = ["SharedClosedError"]


class SharedClosedError(LightworkError, ValueError):
    """A shared object was used, pickled or attached after its owner released it.

    Raised by ``SharedValue``, ``SharedArray`` and ``Shared`` after ``close()`` (like the
    ``ValueError`` of a closed file), and in a worker that receives the handle of a segment its
    owner has since closed, garbage-collected, or lost when its process exited.

    >>> import pickle, lightwork
    >>> counter = lightwork.SharedValue("i")
    >>> counter.close()
    >>> try:
    ...     pickle.dumps(counter)
    ... except lightwork.SharedClosedError as error:
    ...     print(str(error).endswith("it was closed, its memory is gone"))
    True
    """


# Shown and pickled as the public name it is, like lightwork's other errors.
SharedClosedError.__module__ = "lightwork"
