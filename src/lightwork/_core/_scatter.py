"""The scatter protocol: objects a cluster backend sends to its workers once, ahead of tasks.

A cluster backend (Dask) pickles every task for workers on other machines. An argument whose
type subclasses :class:`Scatterable` is not pickled into the task: the backend sends the value
its ``__lightwork_scatter__()`` returns to every worker once (Dask's ``scatter(broadcast=True)``),
the task carries only its key, and on the worker it unpickles as a stand-in whose ``.value`` is
that copy (and whose ``.closed`` is False). ``lightwork.share``'s ``Shared`` is one: its memory
segment exists on this machine only. Backends on this machine ignore the protocol: there a
``Shared`` pickles as the name of its segment.

The protocol lives here so that the backend knows it without importing the feature that
implements it.
"""

from __future__ import annotations


class Scatterable:
    """Base of the objects a cluster backend scatters once instead of pickling them per task.

    A backend checks ``Scatterable.__subclasses__()`` before pickling: while no subclass is
    defined (``lightwork.share`` never imported), it pickles without looking for any.
    """

    __slots__ = ()

    def __lightwork_scatter__(self) -> object:
        """The value to send to every remote worker once: tasks there see it as ``.value``."""
        raise NotImplementedError
