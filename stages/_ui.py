"""Terminal side of the stages: progress bars and one-line errors (the library prints nothing)."""

from __future__ import annotations

import functools
import time
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


def _started() -> float:
    """When this process started (its imports count: the user waits for them too)."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # no /proc: from the first import of this module
        return _IMPORTED


_IMPORTED = time.time()


def wall_time(seconds: float) -> str:
    """``seconds`` as a person reads it: 4.2 s, 41 s, 3 min 05 s."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def finish(text: str) -> None:
    """A command's last line: ``text`` and the wall time of the whole process so far, imports
    included (so a `dvc repro` log shows where the time went, stage by stage)."""
    console.print(f"{text} ({wall_time(time.time() - _started())})")


def sayer(prefix: str) -> Callable[[str], None]:
    """A function that prints one line for the user, ``prefix: line`` (what a library
    function is given as ``say``)."""

    def say(line: str) -> None:
        console.print(f"{prefix}: {line}", highlight=False, soft_wrap=True)

    return say


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


def speed_options(fn: Callable) -> Callable:
    """Give a command one flag per field of :class:`vat.train.speed.Speed` (its flag and help in
    the field's metadata) and pass them to ``fn`` as one ``speed`` argument."""
    import inspect
    import typing
    from dataclasses import fields

    from vat.train.speed import Speed

    hints = typing.get_type_hints(Speed)
    sig = inspect.signature(fn)
    params = [p for name, p in sig.parameters.items() if name != "speed"]
    for f in fields(Speed):
        help = f.metadata["help"] + (" (default: on CUDA)" if f.default is None else "")
        option = typer.Option(f.default, f.metadata["flags"], help=help)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=hints[f.name]))  # fmt: skip

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        speed = Speed(**{f.name: kwargs.pop(f.name) for f in fields(Speed)})
        return fn(*args, speed=speed, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def shout(stage: str, metrics: dict) -> None:
    """Print a stage's weak links (``metrics["warnings"]``, vat/eval/weak_links.py) loudly, one
    line each, after its summary line; the report gathers the same list."""
    for w in metrics.get("warnings") or []:
        console.print(f"[bold yellow]WARNING {stage}:[/bold yellow] {w}", highlight=False)
