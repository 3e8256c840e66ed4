"""Pickling for the backends that send work to other processes: one home for the protocol,
the choice between a plain pickle and cloudpickle, and how an exception travels back.

Processes and Dask workers both use it; a process worker imports it for its results, so it
imports only ``pickle`` (cloudpickle loads when something must travel by value).

    dumps(obj)             a plain pickle: functions and classes by reference, as the stdlib
    dumps_by_value(obj)    cloudpickle: lambdas, closures, what a session defined
    dumps_function(obj)    by reference where workers can import it, else by value
    encode_error(error)    an exception as (pickle if it round-trips, description, traceback)
    decode_error(encoded)  back to the exception, with the worker's traceback as __cause__
"""

from __future__ import annotations

import os
import pickle
import sys

from .._core._run import format_remote

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

    from .._core._errors import SerializationError

PICKLE_PROTOCOL = 5


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def dumps_by_value(obj: Any) -> bytes:
    import cloudpickle

    data: bytes = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return data


def dumps_function(obj: Any) -> bytes:
    """Pickle a function (with what travels with it) for the workers, once.

    Functions that workers can import travel by reference, as the standard library sends
    them: a function from your script's ``__main__`` then runs in the worker's own import of
    that script (multiprocessing imports it there as ``__mp_main__``), so it shares globals
    with your initializer. Lambdas, closures and what an interactive session (a notebook,
    ``python -c``) defines travel by value with cloudpickle.
    """
    try:
        data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except Exception:
        return dumps_by_value(obj)
    return dumps_by_value(obj) if needs_value(data) else data


def needs_value(data: bytes) -> bool:
    """Whether a plain pickle refers by name to something that must travel by value instead.

    A reference names its module literally: ``__main__`` in a session (a notebook,
    ``python -c``), which has no file for workers to import, or a module registered with
    ``cloudpickle.register_pickle_by_value``. Anything else is safe as it is, and spares a
    session's first pool the ~4 ms import of cloudpickle. (A false match only costs time.)
    """
    if b"__main__" in data and interactive_main():
        return True
    cloudpickle = sys.modules.get("cloudpickle")  # if it was never imported, none registered
    if cloudpickle is None:
        return False
    return any(name.encode() in data for name in cloudpickle.list_registry_pickle_by_value())


def interactive_main() -> bool:
    """Whether ``__main__`` is a session rather than a file workers can import: a REPL, a
    notebook, ``python -c``, or a script read from standard input (``__file__`` '<stdin>')."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or not _is_main_file(path)


def _is_main_file(path: str) -> bool:
    """Whether a worker could run ``path`` as multiprocessing does: relative to where the
    program started."""
    import multiprocessing.process

    original_dir = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(path) and original_dir is not None:
        path = os.path.join(original_dir, path)
    return os.path.isfile(path)


def encode_error(error: BaseException) -> tuple[bytes | None, str, str]:
    """An exception as (pickle if it round-trips, 'module.Type: message', traceback text).

    The round trip is tried here because an exception class whose ``__init__`` takes extra
    arguments pickles fine but fails to unpickle in the parent; errors are rare, so it's cheap.
    """
    text = format_remote(error)
    described = f"{type(error).__module__}.{type(error).__qualname__}: {error}"
    try:
        data = dumps(error)
        pickle.loads(data)
    except BaseException:  # whatever its pickling raises, even SystemExit: send the text
        data = None
    return data, described, text


def decode_error(encoded: tuple[bytes | None, str, str]) -> BaseException:
    """The worker's exception, as its own type, with its traceback text as ``__cause__``."""
    # Imported here: only the parent decodes, and the errors module imports concurrent.futures.
    from .._core._errors import RemoteTraceback, SerializationError

    data, described, text = encoded
    error: BaseException
    if data is not None:
        error = pickle.loads(data)
    else:
        error = SerializationError(
            f"the task raised {described}, and that exception could not be sent back "
            "(it does not survive pickling); its traceback is the cause"
        )
    error.__cause__ = RemoteTraceback(text)
    return error


def serialization_error(message: str, cause: BaseException) -> SerializationError:
    from .._core._errors import SerializationError

    error = SerializationError(message)
    error.__cause__ = cause
    return error
