"""``docs/options.md`` is what ``make docs`` renders from the code, and every option is in it.

The reference is generated (``scripts/gen_options.py``) from the field
documentation of ``DeploymentConfig``, ``QueueDepthAutoscaler``, ``TaskPolicy``
and ``ComputeOptions``, the per-kind defaults and the ranges; these tests fail
when the file was not regenerated after a change to any of them, and when an
option lacks its documentation.
"""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from cove._wire.config import DeploymentConfig

DOC = ROOT / "docs" / "options.md"


@pytest.fixture(scope="module")
def generator() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "scripts" / "gen_options.py"))


def test_the_reference_is_current(generator: dict[str, Any]) -> None:
    assert DOC.read_text(encoding="utf-8") == generator["render"](), "docs/options.md is out of date: run `make docs`"


def test_every_option_and_policy_field_has_a_row(generator: dict[str, Any]) -> None:
    rows = {line.split("|")[1].strip().strip("`") for line in DOC.read_text().splitlines() if line.startswith("| `")}
    options = set(inspect.signature(DeploymentConfig.build).parameters) - {"kind", "schedule"}
    assert options <= rows
    assert {"image", "name", "app", "on_start"} <= rows  # kept by the SDK object, not the config
    for cls in generator["_POLICIES"].values():
        assert set(cls.__slots__) <= rows


def test_every_config_field_is_documented(generator: dict[str, Any]) -> None:
    fields = generator["_fields"](Path(inspect.getsourcefile(DeploymentConfig) or ""), "DeploymentConfig")
    assert set(fields) == set(DeploymentConfig.__slots__)
    assert [name for name, (_, doc) in fields.items() if not doc] == []


def test_an_undocumented_field_stops_the_rendering(generator: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "config.py"
    source.write_text(
        "class DeploymentConfig:\n"
        "    cpu_millis: int\n"
        '    """CPU reserved per container."""\n'
        "    shiny_new_option: int\n"
        "    memory_mib: int  # a comment is no documentation\n"
    )
    fields = generator["_fields"](source, "DeploymentConfig")
    assert fields["cpu_millis"] == ("int", "CPU reserved per container.")
    with pytest.raises(generator["Undocumented"], match="shiny_new_option, memory_mib"):
        generator["_described"](fields, "DeploymentConfig")


def test_check_mode_reports_a_stale_file(
    generator: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stale = tmp_path / "options.md"
    stale.write_text("# Decorator options\n")
    main = generator["main"]
    monkeypatch.setitem(main.__globals__, "TARGET", stale)
    monkeypatch.setitem(main.__globals__, "ROOT", tmp_path)
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert main(["--check"]) == 0
