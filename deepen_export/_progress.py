"""Progress on a terminal, silence in a pipe.

A command opens one :func:`display`; whatever runs inside it (reading, a writer's file loop, a
download) adds its own task to that display with :func:`progress`, :func:`task` or
:func:`status`, so nested steps show as lines under one live area instead of fighting over
the terminal. Outside any display, a step on a terminal draws a display of its own for as long
as it runs, unless another one is live in this process (steps nested in it stay quiet); in a
pipe or a notebook nothing is drawn, and :func:`quiet` silences a block (a Dask task, whose
worker may share the terminal).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

Advance = Callable[..., None]


class Sink(Protocol):
    """What a progress display must accept (:class:`rich.progress.Progress` does)."""

    def add_task(self, description: str, *, total: float | None = ..., **fields: Any) -> Any: ...

    def update(self, task_id: Any, **kwargs: Any) -> None: ...

    def remove_task(self, task_id: Any) -> None: ...


_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar(
    "deepen_export_progress", default=None
)
_live_lock = threading.Lock()
_live = 0


def _rich_display() -> Any:
    from rich.console import Console
    from rich.filesize import decimal
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.fields.get("unit") == "bytes":
                done = decimal(int(task.completed))
                total = "?" if task.total is None else decimal(int(task.total))
                speed = "" if not task.speed else f"  {decimal(int(task.speed))}/s"
                return Text(f"{done}/{total}{speed}", style="progress.download")
            if task.total is None:
                return Text("")
            return Text(f"{int(task.completed):,}/{int(task.total):,}", style="progress.download")

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        Count(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@contextlib.contextmanager
def display(sink: Sink | None = None, *, share: bool = True) -> Iterator[Sink | None]:
    """Send the progress of everything in the block to one display.

    Parameters
    ----------
    sink
        Where tasks go; by default a live display on stderr when stderr is a terminal, else none.
        Inside another display, the block joins that one.
    share
        Whether steps nested in the block join the display (what a command wants). A step that
        opens a display for itself passes False: its display may be finished in another thread
        or context (a generator), where it could not be unset.

    Examples
    --------
    >>> with display() as shown:  # in a pipe (as under a test runner) nothing is drawn
    ...     list(progress(range(3), description="counting"))
    [0, 1, 2]
    """
    global _live
    outer = _sink.get()
    if sink is None and outer is not None:
        yield outer
        return
    if sink is not None:
        _sink.set(sink)
        try:
            yield sink
        finally:
            _sink.set(outer)
        return
    with _live_lock:
        # A display in another thread owns the terminal; a second live area would garble it.
        busy = _live > 0
        if not busy and sys.stderr.isatty():
            _live += 1
        else:
            busy = True
    if busy:
        yield None
        return
    try:
        with _rich_display() as shown:
            if not share:
                yield shown
                return
            _sink.set(shown)
            try:
                yield shown
            finally:
                _sink.set(outer)
    finally:
        with _live_lock:
            _live -= 1


class _Nowhere:
    def add_task(self, description: str, *, total: float | None = None, **fields: Any) -> int:
        return 0

    def update(self, task_id: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, task_id: Any) -> None:
        pass


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Draw nothing for the steps in the block, whatever the terminal.

    Examples
    --------
    >>> with quiet():
    ...     list(progress(range(2), description="not shown"))
    [0, 1]
    """
    with display(_Nowhere()):
        yield


@contextlib.contextmanager
def task(description: str, total: float | None = None, **fields: Any) -> Iterator[Advance]:
    """Show one task while the block runs; yields ``advance(n=1, total=None)``.

    ``fields`` go to the display (``unit="bytes"`` shows sizes and speed). ``advance`` also
    takes ``completed=`` to set the count outright.

    Examples
    --------
    >>> with task("writing files", total=2) as advance:
    ...     advance()
    ...     advance()
    """
    with display(share=False) as sink:
        if sink is None:
            yield _nothing
            return
        shown = sink
        tid = shown.add_task(description, total=total, **fields)
        refresh = getattr(shown, "refresh", None)
        if refresh is not None:
            refresh()  # a step shows when it starts, not at the next tick (which it may not see)

        def advance(
            n: float = 1, *, total: float | None = None, completed: float | None = None
        ) -> None:
            kw: dict[str, Any] = {}
            if total is not None:
                kw["total"] = total
            if completed is not None:
                kw["completed"] = completed
            else:
                kw["advance"] = n
            shown.update(tid, **kw)

        try:
            yield advance
        finally:
            shown.remove_task(tid)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def progress(items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
    """Yield ``items``, advancing a bar of ``total`` steps (``len(items)`` when it has one).

    Examples
    --------
    >>> [x * 2 for x in progress([1, 2, 3], description="doubling")]
    [2, 4, 6]
    """
    if total is None and isinstance(items, Sized):
        total = len(items)
    with task(description, total) as advance:
        for item in items:
            yield item
            del item  # hold nothing while the next item is made: streams keep one batch alive
            advance()


@contextlib.contextmanager
def bytes_task(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A byte-count task; yields the ``progress(done, total)`` callback the fetch layer calls.

    Examples
    --------
    >>> with bytes_task("downloading labels") as update:
    ...     update(1024, 4096)
    """
    with task(description, None, unit="bytes") as advance:

        def update(done: int, total: int | None) -> None:
            advance(completed=done, total=total)

        yield update


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """Show ``message`` with a spinner and the elapsed time while the block runs.

    Examples
    --------
    >>> with status("reading labels.json"):
    ...     pass
    """
    with task(message):
        yield


@contextlib.contextmanager
def count_task(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A counting task shown from its first update on; yields ``update(done, total)``.

    For a step that may not happen at all (image sizes read during a pull): nothing is drawn
    until the fetch layer first reports.

    Examples
    --------
    >>> with count_task("reading image sizes") as update:
    ...     update(1, 10)
    """
    with contextlib.ExitStack() as stack:
        started: list[Advance] = []

        def update(done: int, total: int | None) -> None:
            if not started:
                started.append(stack.enter_context(task(description, total)))
            started[0](completed=done, total=total)

        yield update
