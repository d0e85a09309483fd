"""Terminal side of the stages: progress bars and one-line errors (the library prints nothing)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vat.errors import VatError

console = Console(stderr=True, soft_wrap=True)  # one summary line per stage, unwrapped
T = TypeVar("T")

# A stage's run() takes `track`; the CLI passes rich_track, tests and library callers the identity.
Track = Callable[[Iterable[T], str, int | None], Iterable[T]]


def no_track(items: Iterable[T], description: str = "", total: int | None = None) -> Iterable[T]:
    return items


def rich_track(items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def friendly_errors(fn: Callable) -> Callable:
    """Turn VatError into one red line and exit status 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VatError as e:
            console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
