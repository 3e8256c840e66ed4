"""Backends by name: where a chunk's tasks run. Each is imported only when asked for."""

from __future__ import annotations

TYPE_CHECKING = False  # a worker imports this package: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

    from ._base import Backend


def create_backend(name: str, max_workers: int, **options: Any) -> Backend:
    """A new backend of kind ``name`` (already validated) with ``max_workers`` workers."""
    if name == "serial":
        from ._serial import SerialBackend

        return SerialBackend(**options)
    if name == "threads":
        from ._threads import ThreadBackend

        return ThreadBackend(max_workers, **options)
    if name == "dask":
        from ._dask import DaskBackend

        return DaskBackend(max_workers, **options)
    if name == "async":
        from ._async import AsyncBackend

        return AsyncBackend(max_workers, **options)
    if name == "interpreters":
        from ._interpreters._backend import InterpreterBackend

        return InterpreterBackend(max_workers, **options)
    if name == "processes":
        from ._processes._backend import ProcessBackend

        return ProcessBackend(max_workers, **options)
    raise AssertionError(f"unvalidated backend {name!r}")
