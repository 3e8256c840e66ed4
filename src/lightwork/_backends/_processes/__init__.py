"""The process backend: a supervisor thread, worker processes, and the messages between them."""

from ._supervisor import ProcessBackend, default_start_method

__all__ = ["ProcessBackend", "default_start_method"]
