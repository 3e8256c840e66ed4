"""Progress bars: tqdm, imported only when a caller asks for progress.

Every bar lightwork shows comes from :func:`progress_bar`: a call's (``progress=True``), a
pipeline stage's, the scaling lab's.
"""

from __future__ import annotations

from typing import Any, Protocol


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def close(self) -> None: ...


def progress_bar(
    total: int | None, description: str, *, unit: str = "task", position: int | None = None
) -> ProgressBar:
    """A bar counting ``unit`` (items, not chunks) with rate and ETA; ``total=None`` when the
    count is unknown; ``position``: its line, for bars shown together. ``tqdm.auto`` works in
    notebooks too."""
    from tqdm.auto import tqdm

    bar: ProgressBar = tqdm(
        total=total, desc=description, unit=unit, position=position, dynamic_ncols=True
    )
    return bar
