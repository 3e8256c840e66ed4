"""Imported by the fork server, and only there, when the program is a script.

Each worker imports the script through ``runpy``, whose ``pkgutil`` brings in ``typing``:
~5 ms a worker, which workers forked from a server that imported them once don't pay. (The
server's own preload of ``__main__``, meant to spare that, never runs before Python 3.13.)
Only the standard library's ``pkgutil``: the server's ``sys.path`` starts with its working
directory, where a file of that name must not be picked up (workers get the parent's path).
"""

import os
from importlib.util import find_spec

_origin = getattr(find_spec("pkgutil"), "origin", None)
if _origin is not None and os.path.dirname(_origin) == os.path.dirname(os.__file__):
    import pkgutil  # noqa: F401
