"""Progress reporting shared by the API and the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

ProgressArg = bool | Callable[[int, int], Any] | None


@contextlib.contextmanager
def progress_callback(progress: ProgressArg, description: str) -> Iterator[Callable[[int, int], Any] | None]:
    """Yield a ``(done, total)`` callback: the user's own, a rich progress bar
    (``progress=True``), or ``None``."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
