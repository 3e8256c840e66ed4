"""Checkpoints: a call's outcomes kept in SQLite, so a killed run resumes where it stopped.

Imported only by a call given ``checkpoint=``: ``sqlite3`` stays off every other call's path.
"""

from ._run import CheckpointRun as CheckpointRun
