"""The JSON log lines of ``cove server`` and its workers keep every ``extra=`` field.

Call sites attach what a line is about (``extra={"container_id": cid}``) so the
logs can be searched by it. The formatter ``cove server``'s local worker
installed once dropped all of them; these tests send records through the
formatter that process really installs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove._host.home import Home
from cove.cli import _workers
from cove.cli import app as cove_app
from cove.server import ServerSettings, local_worker_argv
from cove.server import json_logs as _logging
from cove.worker import WorkerSettings


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    """The code under test installs its handler on the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_local_workers_log_lines_keep_extra_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start ``cove worker`` in this process with the arguments ``cove server`` gives its local worker."""
    argv = local_worker_argv(ServerSettings(home=Home(tmp_path / "home"), runtime="process"))
    assert argv[:4] == [sys.executable, "-m", "cove", "worker"]
    monkeypatch.setenv("COVE_TOKEN", "local-token")  # the server hands it over in the environment

    async def log_like_a_worker(settings: WorkerSettings) -> None:
        logging.getLogger("cove.worker.test").warning(
            "container exited", extra={"container_id": "c1", "exit_code": 3, "timings": {"start_ms": 1.5}}
        )

    monkeypatch.setattr(_workers, "run_until_signalled", log_like_a_worker)
    with pytest.raises(SystemExit) as exited:
        cove_app(args=argv[3:], prog_name="cove")
    assert exited.value.code == 0
    [line] = [line for line in _lines(capsys.readouterr().err) if line.get("logger") == "cove.worker.test"]
    assert line["message"] == "container exited"
    assert line["level"] == "warning"
    assert line["container_id"] == "c1"
    assert line["exit_code"] == 3
    assert line["timings"] == {"start_ms": 1.5}


def test_the_server_and_the_worker_install_one_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    """``cove server`` and ``cove worker`` both call :func:`cove.server.json_logs.setup`; its lines keep extras."""
    _logging.setup()
    [handler] = logging.getLogger().handlers
    assert type(handler.formatter) is _logging.JsonFormatter
    logging.getLogger("cove.server").info("placed", extra={"container_id": "c2", "worker_id": "w1"})
    [line] = _lines(capsys.readouterr().err)
    assert (line["container_id"], line["worker_id"]) == ("c2", "w1")
    assert line["logger"] == "cove.server"


def _format(**extra: object) -> dict[str, Any]:
    logger = logging.getLogger("cove.test.format")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed %s", ("x",), None, extra=extra)
    formatted: dict[str, Any] = json.loads(_logging.JsonFormatter().format(record))
    return formatted


def test_an_extra_field_never_replaces_the_lines_own() -> None:
    line = _format(level="debug", logger="other", container_id="c3")
    assert line["level"] == "error"
    assert line["logger"] == "cove.test.format"
    assert line["message"] == "failed x"
    assert (line["extra_level"], line["extra_logger"]) == ("debug", "other")
    assert line["container_id"] == "c3"


def test_uvicorns_coloured_copy_of_the_message_is_left_out() -> None:
    assert "color_message" not in _format(color_message="\x1b[36mfailed x\x1b[0m")


def test_values_json_cannot_hold_are_written_as_text() -> None:
    assert _format(path=Path("/run/cove"))["path"] == "/run/cove"


def test_the_exception_is_kept() -> None:
    logger = logging.getLogger("cove.test.format")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "crashed", (), sys.exc_info(), extra={"container_id": "c4"}
        )
    line = json.loads(_logging.JsonFormatter().format(record))
    assert "RuntimeError: boom" in line["exception"]
    assert line["container_id"] == "c4"
