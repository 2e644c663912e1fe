"""Output a running call posts while it runs: followed by its caller, and folded into its outcome.

A call that runs for a while has its container post what it prints (see
``cove.runner._capture``). Callers waiting on ``.remote`` read it from here
as it arrives; when the call ends, the posted text goes in front of the
output that came back with the result, so ``FunctionCall.get``, a ``.map``
and the stored outcome still hold the call's whole output. The envelope's
``live_chars`` says how much of it was posted live, so a caller that
followed along shows only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .._wire.payload import CUT_NOTE, MAX_LOG_CHARS, PayloadError, unwrap, wrap

KEEP_CHARS = 1024 * 1024  # what followers can read; the container log keeps everything


class LiveOutput:
    """The text posted so far, and a wake-up for those waiting on more (or on the call's end)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.full = False
        self._changed = asyncio.Event()

    def add(self, text: str) -> None:
        if self.full or not text:
            return
        if self.size + len(text) > KEEP_CHARS:
            text = text[: KEEP_CHARS - self.size] + CUT_NOTE
            self.full = True
        self.parts.append(text)
        self.size += len(text)
        self.pulse()

    def pulse(self) -> None:
        """Wake everyone waiting (new text, or the call ended)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def text(self, after: int = 0) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0][after:] if self.parts else ""

    async def wait(self, timeout: float) -> None:
        """Until the next ``pulse`` or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def for_outcome(self) -> str:
        text = self.text()
        return text if len(text) <= MAX_LOG_CHARS else text[:MAX_LOG_CHARS] + CUT_NOTE


def merged_result(live: LiveOutput | None, result: bytes) -> bytes:
    """A pickled result's envelope with the posted output in front of the output it carries."""
    if live is None or not live.size:
        return result
    try:
        header, body = unwrap(result)
    except PayloadError:
        return result  # not an envelope the caller could read either; it reports that
    posted = live.for_outcome()
    header["logs"] = posted + str(header.get("logs") or "")
    header["live_chars"] = len(posted)
    return wrap(header, body)


def merged_error(live: LiveOutput | None, error: dict[str, Any]) -> dict[str, Any]:
    """A failure's error with the posted output in front of the output it carries."""
    if live is None or not live.size:
        return error
    posted = live.for_outcome()
    return {**error, "logs": posted + str(error.get("logs") or ""), "live_chars": len(posted)}
