"""What every ``cove reservoir`` command shares: the app, ``--root`` and ``--json``, errors, output.

It lives apart from :mod:`.cli` so that command groups in their own modules
(watch, review, stats, limits, models) register on the same app without
importing :mod:`.cli`, which imports them: no import cycle.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import ReservoirError
from .paths import default_root

app = typer.Typer(
    help="Package reservoir: a PyPI-compatible index, sync, air-gap bundles and policy.",
    no_args_is_help=True,
    add_completion=False,
)

console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])

RootOpt = typer.Option(
    None, "--root", envvar="COVE_RESERVOIR_ROOT", help="Reservoir data folder [default: $COVE_HOME/reservoir]."
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def root_path(root: Path | None) -> Path:
    return Path(root).expanduser().resolve() if root else default_root()


def open_store(root: Path | None) -> Any:
    from .store import Store

    return Store(root_path(root))


def errors(fn: F) -> F:
    """Turn reservoir errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ReservoirError as exc:
            console.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, data: Any, text: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        text()


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A Rich progress display on stderr (quiet when output is JSON or not a terminal)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or not console.is_terminal,
        transient=True,
    )
    with bar:
        yield bar


def parse_size(text: str) -> int:
    """``64M``, ``4G``, ``1.5T`` or plain bytes."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise ReservoirError(f"invalid size {text!r}: use bytes or a suffix such as 64M or 4G") from None
