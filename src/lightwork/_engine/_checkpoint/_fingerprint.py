"""What makes two runs the same run: the function's fingerprint and each input item's.

A function is known by its kind (map or starmap), its name, its pickle (what a worker would
receive) and its code: the bytecode, constants and names of it and of the functions nested in
it, but not line numbers, so moving a function in its file is no change while editing it is.
An input item is known by 8 bytes: an int that fits is its own fingerprint, a str the CRC-32 of
its UTF-8, anything else the CRC-32 of its pickle (each tagged in the high bits by its kind).
What matters is finding the first changed index cheaply, not resisting forgery: a pickle per
item costs ~350 ns, more than a tiny task, while a batch of ints is read as one C array.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
import zlib
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from ..._core._errors import CheckpointError
from ..._core._run import Star

_dumps = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
_utf8 = functools.partial(str.encode, encoding="utf-8", errors="surrogatepass")


def function_fingerprint(fn: Callable[..., Any]) -> tuple[str, str]:
    """(a hex digest, a readable name) of the function a call runs."""
    kind = "starmap" if isinstance(fn, Star) else "map"
    inner = fn.fn if isinstance(fn, Star) else fn
    digest = hashlib.blake2b(kind.encode(), digest_size=16)
    _feed(digest, inner, depth=0)
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    module = getattr(inner, "__module__", None) or type(inner).__module__
    return digest.hexdigest(), f"{kind} of {module}.{name}"


def _feed(digest: Any, fn: Any, depth: int) -> None:
    if depth > 4:  # (partials of partials...: enough to tell runs apart)
        return
    try:
        digest.update(_dumps(fn))
    except Exception:  # a lambda or a closure: its code below still identifies it
        digest.update(repr(type(fn)).encode())
    if isinstance(fn, functools.partial):
        _feed(digest, fn.func, depth + 1)
        return
    function = getattr(fn, "__func__", fn)  # a bound method: its function
    code = getattr(function, "__code__", None)
    if isinstance(code, types.CodeType):
        digest.update(getattr(function, "__qualname__", "").encode())
        _feed_code(digest, code)
        defaults = (
            getattr(function, "__defaults__", None),
            getattr(function, "__kwdefaults__", None),
        )
        _feed_value(digest, defaults)
        # A closure's values are part of what it computes: make(2) and make(3) differ.
        for cell in getattr(function, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # (a cell not yet filled)
                digest.update(b"<empty cell>")
                continue
            if callable(value) and not isinstance(value, type):
                _feed(digest, value, depth + 1)
            else:
                _feed_value(digest, value)
    elif getattr(fn, "__wrapped__", None) is not None:  # functools.lru_cache and the like
        _feed(digest, fn.__wrapped__, depth + 1)
    elif isinstance(call := _class_attribute(type(fn), "__call__"), types.FunctionType):
        _feed(digest, call, depth + 1)  # an instance: its class's __call__


def _class_attribute(cls: type, name: str) -> object:
    return next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), None)


def _feed_value(digest: Any, value: Any) -> None:
    try:
        digest.update(_dumps(value))
    except Exception:  # (its type is all that can be told the same from run to run)
        digest.update(repr(type(value)).encode())


def _feed_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            _feed_code(digest, constant)
        else:
            digest.update(_constant_repr(constant).encode())


def _constant_repr(constant: object) -> str:
    """A code constant's repr, the same in every run: ``x in {"a", "b"}`` compiles to a
    frozenset, whose repr's order follows the per-process hash of str."""
    if isinstance(constant, frozenset):
        return "frozenset({" + ", ".join(sorted(map(_constant_repr, constant))) + "})"
    if isinstance(constant, tuple):
        return "(" + ", ".join(map(_constant_repr, constant)) + ",)"
    return repr(constant)


_STR_TAG = 1 << 40  # (a CRC-32 is below 1 << 32)
_PICKLE_TAG = 2 << 40


def item_fingerprints(first: int, items: Sequence[Any]) -> array[int]:
    """Each item's fingerprint (``first``: the index of ``items[0]``, for errors).

    An item's fingerprint depends on it alone, never on the batch it was read in: batches
    are cut where the chunk sizer says, which differs from run to run."""
    kinds = set(map(type, items))
    if kinds == {int}:
        try:
            return array("q", items)
        except OverflowError:
            pass
    elif kinds == {str}:
        crcs = map(zlib.crc32, map(_utf8, items))
        return array("q", map(_STR_TAG.__or__, crcs))
    digests = array("q")
    for position, item in enumerate(items):
        try:
            digests.append(_item_fingerprint(item))
        except Exception as error:
            raise CheckpointError(
                f"input item {first + position} can't be pickled, and a checkpoint "
                f"fingerprints each item to notice a changed input: {error!r:.200}"
            ) from error
    return digests


def _item_fingerprint(item: Any) -> int:
    kind = type(item)
    if kind is int and -(1 << 63) <= item < 1 << 63:
        return int(item)
    if kind is str:
        return _STR_TAG | zlib.crc32(_utf8(item))
    return _PICKLE_TAG | zlib.crc32(_dumps(item))
