"""Printing for people (Rich) or scripts (``--json``), and errors that say what is wrong."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ..exceptions import ConfigError, ResponseError
from ..sdk.client import Client

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def fail(message: str, as_json: bool = False, code: int = 1) -> NoReturn:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def errors(as_json: bool) -> Iterator[None]:
    """Turn known failures into one clear line and a non-zero exit."""
    try:
        yield
    except ResponseError as exc:
        fail(exc.message if exc.status == 0 else f"{exc.message} ({exc.status})", as_json)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        fail(str(exc), as_json)


def client(as_json: bool) -> Client:
    with errors(as_json):
        return Client.from_env()
    raise AssertionError("unreachable")


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    t = Table(*columns, title=title, header_style="bold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def stream_json(records: Iterator[dict[str, Any]]) -> None:
    for record in records:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
