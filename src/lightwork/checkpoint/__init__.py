"""Checkpoints: a long map that is killed resumes where it stopped.

``lightwork.map(fn, items, checkpoint="run.db")`` (and ``imap``, ``starmap``, and the
Executor's ``imap`` and ``starmap``, on every backend) writes each finished task's outcome to
the SQLite file ``run.db``. Run the same call again and it skips every task whose outcome is
stored, yielding the stored results in their place, in the order the call promises (with
``ordered=False``, each stored result comes as soon as the input reaches it, ahead of the tasks
still running). Failed tasks run again unless
``Checkpoint(path, rerun_failed=False)``; a finished checkpoint is a cache: a call whose every
outcome is stored starts no worker.

The file records what the run is (the function's code, each input item's fingerprint, the
``seed``) and refuses another run with :class:`lightwork.CheckpointMismatchError`; a second
process using it at the same time gets :class:`lightwork.CheckpointInUseError` at once.

>>> import os, tempfile, lightwork, lightwork.checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "squares.db")
>>> lightwork.map(abs, [-1, -2, -3], backend="threads", checkpoint=path)
[1, 2, 3]
>>> lightwork.checkpoint.load(path).results
{0: 1, 1: 2, 2: 3}
>>> lightwork.checkpoint.summary(path).done
3
"""

from .._core._options import Checkpoint as Checkpoint
from ._read import CheckpointContents as CheckpointContents
from ._read import CheckpointSummary as CheckpointSummary
from ._read import load as load
from ._read import remove as remove
from ._read import summary as summary

__all__ = ["Checkpoint", "CheckpointContents", "CheckpointSummary", "load", "remove", "summary"]
