"""Preloaded by the fork server after NumPy: find the native thread pools once (see _native)."""

from . import _native

_native.warm_up()
