"""Progress bars: tqdm, imported only when a caller asks for progress."""

from __future__ import annotations

from typing import Any, Protocol


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


def progress_bar(total: int | None, description: str) -> ProgressBar:
    """A bar counting items (not chunks) with rate and ETA; ``tqdm.auto`` works in notebooks."""
    from tqdm.auto import tqdm

    bar: ProgressBar = tqdm(total=total, desc=description, unit="task", dynamic_ncols=True)
    return bar
